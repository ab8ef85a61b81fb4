// Package touchbase is the client of TouchBasePro's SMS API, the
// provider behind the sms.Provider seam: it sends one text to many numbers
// in one request and classifies the reply, per number where the provider
// answered per number, and as a whole (with whether and when to retry)
// where the request failed as a whole.
package touchbase

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/smsbridge/smsbridge/sms"
)

// Defaults for the zero values of Config.
const (
	DefaultTimeout = 10 * time.Second
	// DefaultPause is the wait after a 429 that names no wait. The provider
	// names one in practice; when it does not, half a minute keeps us clear
	// of a per-minute window without delaying pages for long.
	DefaultPause = 30 * time.Second
)

// Config configures a Client.
type Config struct {
	// URL is the full send endpoint, e.g.
	// https://api.touchbasepro.com/sms/messages.
	URL string
	// APIKey is sent as a bearer token and never appears in an error.
	APIKey string
	// Timeout bounds one request, reply body included (DefaultTimeout if 0).
	Timeout time.Duration
	// DefaultPause is the wait after a 429 that names none (DefaultPause
	// if 0).
	DefaultPause time.Duration
}

// Client sends messages through the SMS API. It is safe for concurrent use;
// all its requests share one pool of keep-alive connections.
type Client struct {
	url          string
	apiKey       string
	defaultPause time.Duration
	http         *http.Client
	metrics      *sms.AccountMetrics
	// now is the clock for rate-limit pauses, replaced in tests.
	now func() time.Time

	mu          sync.Mutex
	pausedUntil time.Time
}

// New returns a Client for cfg. m may be nil, for no metrics.
func New(cfg Config, m *sms.AccountMetrics) (*Client, error) {
	u, err := url.Parse(cfg.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// url.Error repeats the URL, which may hold anything.
			err = ue.Err
		}
		return nil, fmt.Errorf("sms url: %w", err)
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, fmt.Errorf("sms url: scheme must be http or https, not %q", u.Scheme)
	case u.Host == "":
		return nil, errors.New("sms url: no host")
	case u.User != nil:
		return nil, errors.New("sms url: must not contain credentials, the api key is sent as a bearer token")
	case cfg.APIKey == "":
		return nil, errors.New("sms api key is empty")
	case strings.IndexFunc(cfg.APIKey, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		// A key read from a file with its newline would fail every request
		// with a cryptic error; say so at start.
		return nil, errors.New("sms api key contains whitespace or control characters")
	case cfg.Timeout < 0:
		return nil, fmt.Errorf("sms timeout %s is negative", cfg.Timeout)
	case cfg.DefaultPause < 0:
		return nil, fmt.Errorf("sms default pause %s is negative", cfg.DefaultPause)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = DefaultTimeout
	}
	pause := cfg.DefaultPause
	if pause == 0 {
		pause = DefaultPause
	}
	// An own Transport rather than http.DefaultTransport: nothing else in
	// the process can change or exhaust our pool, and the idle pool per
	// host is sized for the dispatcher's workers, all of which talk to the
	// one API host (the default keeps only 2).
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   min(timeout, 30*time.Second),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(timeout, 10*time.Second),
		ExpectContinueTimeout: time.Second,
	}
	return &Client{
		url:          u.String(),
		apiKey:       cfg.APIKey,
		defaultPause: pause,
		metrics:      m,
		now:          time.Now,
		http: &http.Client{
			Transport: transport,
			Timeout:   timeout,
			// A redirect would turn our POST into a GET and lose the
			// message; report it instead, as a permanent failure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// CloseIdleConnections closes the keep-alive connections not in use, for a
// clean shutdown.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// PausedUntil is the end of the pause the last 429 announced; the zero time
// if none was announced. Until then Send fails at once with sms.KindRateLimited
// and sends nothing.
func (c *Client) PausedUntil() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pausedUntil
}

// Send sends text to numbers in one request.
//
// The sms.Result has one sms.NumberResult per input number, in input order. Invalid
// numbers are never sent and come back rejected with ErrorCode
// sms.CodeInvalidNumber; a number given twice is sent once and reported for each
// occurrence. If no number is valid, no request is made and the error is nil.
//
// A non-nil error is an *Error: the request failed as a whole, and the
// sms.Result is empty. While a 429 pause is in force Send returns sms.KindRateLimited
// without sending, so no request reaches the provider before it allowed.
func (c *Client) Send(ctx context.Context, text string, numbers []string) (sms.Result, error) {
	res := sms.Result{Numbers: make([]sms.NumberResult, len(numbers))}
	normalized := make([]string, len(numbers))
	var sent []string
	seen := make(map[string]bool, len(numbers))
	invalid := 0
	for i, n := range numbers {
		norm, err := sms.NormalizeNumber(n)
		if err != nil {
			invalid++
			res.Numbers[i] = sms.NumberResult{
				Number:      n,
				ErrorCode:   sms.CodeInvalidNumber,
				Error:       "InvalidNumber",
				Description: err.Error(),
			}
			continue
		}
		normalized[i] = norm
		if !seen[norm] {
			seen[norm] = true
			sent = append(sent, norm)
		}
	}
	countInvalid := func() {
		for range invalid {
			c.metrics.NumberRejected(sms.CodeInvalidNumber)
		}
	}
	if len(sent) == 0 {
		countInvalid()
		return res, nil
	}
	if strings.TrimSpace(text) == "" {
		return sms.Result{}, &sms.Error{Kind: sms.KindBadRequest, Message: "empty text, nothing sent"}
	}
	if wait := c.pauseLeft(); wait > 0 {
		return sms.Result{}, &sms.Error{
			Kind:       sms.KindRateLimited,
			RetryAfter: wait,
			Message:    fmt.Sprintf("rate limit pause announced by the provider still running for %s, nothing sent", wait.Round(time.Millisecond)),
		}
	}
	got, e := c.post(ctx, text, sent)
	if e != nil {
		return sms.Result{}, e
	}
	countInvalid()
	for _, n := range sent {
		if r := got[digitsKey(n)]; r.Accepted {
			c.metrics.NumberAccepted()
		} else if r.ErrorCode == "" {
			c.metrics.NumberRejected(sms.CodeOther)
		} else {
			c.metrics.NumberRejected(r.ErrorCode)
		}
	}
	for i, n := range numbers {
		if normalized[i] == "" {
			continue
		}
		r := got[digitsKey(normalized[i])]
		r.Number = n
		res.Numbers[i] = r
	}
	return res, nil
}

// request is the body of a send request. The API wants strings starting
// with "+", never JSON numbers.
type request struct {
	Text string   `json:"text"`
	To   []string `json:"to"`
}

// post makes the request and interprets the reply.
func (c *Client) post(ctx context.Context, text string, to []string) (map[string]sms.NumberResult, *sms.Error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(request{Text: text, To: to}); err != nil {
		return nil, &sms.Error{Kind: sms.KindBadRequest, Message: "encode request: " + c.clean(err.Error(), maxMessage), Err: err}
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.url, &buf)
	if err != nil {
		return nil, &sms.Error{Kind: sms.KindPermanent, Message: "build request: " + c.clean(err.Error(), maxMessage), Err: err}
	}
	req.Header.Set("Authorization", "Bearer "+c.apiKey)
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "smsbridge")

	start := time.Now()
	resp, err := c.http.Do(req)
	if err != nil {
		c.metrics.ObserveRequest(0, time.Since(start))
		return nil, c.transportError(err)
	}
	defer resp.Body.Close()
	body, readErr := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	c.metrics.ObserveRequest(resp.StatusCode, time.Since(start))

	if resp.StatusCode/100 == 2 {
		if readErr != nil {
			// The provider took the request but we cannot know for whom:
			// retrying risks a duplicate, giving up risks a lost page.
			e := c.transportError(readErr)
			e.StatusCode = resp.StatusCode
			e.Message = "reading the reply: " + e.Message
			return nil, e
		}
		return c.interpretAccepted(resp.StatusCode, body, to)
	}
	// For an error status the status decides; a body cut short only makes
	// the message shorter.
	e := c.interpretError(resp.StatusCode, resp.Header, body, c.now())
	if e.Kind == sms.KindRateLimited {
		c.PauseUntil(c.now().Add(e.RetryAfter))
		c.metrics.RateLimited(e.RetryAfter)
	}
	return nil, e
}

// PauseUntil extends the rate-limit pause to t; it never shortens one. A
// caller that replaces the Client (on a config reload) hands the pause on
// with next.PauseUntil(prev.PausedUntil()), since the provider's limit is
// per account, not per client.
func (c *Client) PauseUntil(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.pausedUntil) {
		c.pausedUntil = t
	}
}

// pauseLeft is how long the last announced 429 pause still runs.
func (c *Client) pauseLeft() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pausedUntil.Sub(c.now())
}

// transportError classifies a request that got no (complete) reply. All
// such failures are transient: the network, DNS or the provider may be back
// in a moment, and the message must not be dropped for it.
func (c *Client) transportError(err error) *sms.Error {
	inner := err
	var ue *url.Error
	if errors.As(err, &ue) {
		// Drop the URL that url.Error repeats: it is not ours to log.
		inner = ue.Err
	}
	what := "request failed"
	var dnsErr *net.DNSError
	var timeout interface{ Timeout() bool }
	switch {
	case errors.Is(err, context.Canceled):
		what = "request canceled"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &timeout) && timeout.Timeout()):
		what = "request timed out"
	case errors.As(err, &dnsErr):
		what = "dns lookup failed"
	case errors.Is(err, syscall.ECONNREFUSED):
		what = "connection refused"
	case errors.Is(err, syscall.ECONNRESET):
		what = "connection reset"
	case errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF):
		what = "connection closed before a complete reply"
	}
	return &sms.Error{Kind: sms.KindTransient, Message: c.clean(what+": "+inner.Error(), maxMessage), Err: inner}
}
