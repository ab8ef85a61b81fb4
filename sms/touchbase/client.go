// Package touchbase is the client of TouchBasePro's SMS API, the
// provider behind the sms.Provider seam: it sends one text to many numbers
// in one request and classifies the reply, per number where the provider
// answered per number, and as a whole (with whether and when to retry)
// where the request failed as a whole. It also reads the callbacks the
// provider POSTs back (delivery statuses and replies) as sms.Events.
package touchbase

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"syscall"
	"time"
	"unicode"

	"github.com/smsbridge/smsbridge/sms"
)

// Config configures a Client. It is complete as given: the user-facing
// defaults are applied by the configuration, and New refuses what is
// invalid instead of filling it in.
type Config struct {
	// URL is the full send endpoint, e.g.
	// https://api.touchbasepro.com/sms/messages.
	URL string
	// APIKey is sent as a bearer token and never appears in an error.
	APIKey string
	// Timeout bounds one request, reply body included. It must be
	// positive.
	Timeout time.Duration
}

// Client sends messages through the SMS API. It keeps no state between
// requests beyond its pool of keep-alive connections: the pace of requests
// and the pauses a 429 announces belong to the caller. It is safe for
// concurrent use.
type Client struct {
	url     string
	apiKey  string
	http    *http.Client
	metrics *sms.AccountMetrics
	// now is the clock that reads a Retry-After date, replaced in tests.
	now func() time.Time
}

var _ sms.Provider = (*Client)(nil)

// Fields of Config that a ConfigError names, as the configuration calls
// them.
const (
	FieldAPIKey  = "api_key"
	FieldURL     = "url"
	FieldTimeout = "timeout"
)

// ConfigError is New's error: Field names the Config field it concerns
// (FieldAPIKey, FieldURL or FieldTimeout), so a configuration error can
// point at its line. Its text never holds the key.
type ConfigError struct {
	Field string
	Err   error
}

func (e *ConfigError) Error() string { return e.Err.Error() }

func (e *ConfigError) Unwrap() error { return e.Err }

func configError(field string, err error) error { return &ConfigError{Field: field, Err: err} }

// minKeyInURL is the length from which New looks for the key in the URL: a
// shorter key could occur in any URL by chance.
const minKeyInURL = 8

// New returns a Client for cfg. m records the account's metrics; nil
// records none.
func New(cfg Config, m *sms.AccountMetrics) (*Client, error) {
	key := cfg.APIKey
	switch {
	case key == "":
		return nil, configError(FieldAPIKey, errors.New("sms api key is empty"))
	case strings.IndexFunc(key, func(r rune) bool { return r <= ' ' || r == 0x7f || unicode.IsSpace(r) }) >= 0:
		// A key read from a file with its newline would fail every request
		// with a cryptic error; say so at start.
		return nil, configError(FieldAPIKey, errors.New("sms api key contains whitespace or control characters"))
	}
	u, err := url.Parse(cfg.URL)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			// url.Error repeats the URL, which may hold anything.
			err = ue.Err
		}
		// Not wrapped: the parser's message can quote a part of the URL
		// (a port, say), and the key may be there. The redacted text says
		// all there is to say.
		return nil, configError(FieldURL, fmt.Errorf("sms url does not parse: %s", redact(err.Error(), key)))
	}
	switch {
	case u.Scheme != "http" && u.Scheme != "https":
		return nil, configError(FieldURL, fmt.Errorf("sms url: scheme must be http or https, not %q", redact(u.Scheme, key)))
	case u.Host == "":
		return nil, configError(FieldURL, errors.New("sms url: no host"))
	case u.User != nil:
		return nil, configError(FieldURL, errors.New("sms url: must not contain credentials, the api key is sent as a bearer token"))
	case len(key) >= minKeyInURL && (strings.Contains(cfg.URL, key) ||
		strings.Contains(cfg.URL, url.QueryEscape(key)) || strings.Contains(cfg.URL, url.PathEscape(key))):
		// A URL is logged and shown on the status page; the key must not be.
		return nil, configError(FieldURL, errors.New("sms url: must not contain the api key, it is sent as a bearer token"))
	case cfg.Timeout <= 0:
		return nil, configError(FieldTimeout, fmt.Errorf("sms timeout must be positive, not %s", cfg.Timeout))
	}
	// An own Transport rather than http.DefaultTransport: nothing else in
	// the process can change or exhaust our pool, and the idle pool per
	// host is sized for the dispatcher's workers, all of which talk to the
	// one API host (the default keeps only 2).
	transport := &http.Transport{
		Proxy: http.ProxyFromEnvironment,
		DialContext: (&net.Dialer{
			Timeout:   min(cfg.Timeout, 30*time.Second),
			KeepAlive: 30 * time.Second,
		}).DialContext,
		ForceAttemptHTTP2:     true,
		MaxIdleConns:          32,
		MaxIdleConnsPerHost:   16,
		IdleConnTimeout:       90 * time.Second,
		TLSHandshakeTimeout:   min(cfg.Timeout, 10*time.Second),
		ExpectContinueTimeout: time.Second,
	}
	return &Client{
		url:     u.String(),
		apiKey:  key,
		metrics: m,
		now:     time.Now,
		http: &http.Client{
			Transport: transport,
			Timeout:   cfg.Timeout,
			// A redirect would turn our POST into a GET and lose the
			// message; report it instead, as a permanent failure.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}, nil
}

// redact replaces every occurrence of key in s, and of the forms a
// provider or proxy may echo it in: percent-encoded (query or path),
// HTML-escaped, and base64 (standard or URL alphabet, padded or not).
func redact(s, key string) string {
	if key == "" {
		return s
	}
	for _, form := range keyForms(key) {
		s = strings.ReplaceAll(s, form, "<secret>")
	}
	return s
}

// keyForms returns key and its encoded forms, longest first (a padded
// base64 form before the unpadded one that is its prefix).
func keyForms(key string) []string {
	b := []byte(key)
	forms := []string{
		base64.StdEncoding.EncodeToString(b), base64.URLEncoding.EncodeToString(b),
		base64.RawStdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b),
		url.QueryEscape(key), url.PathEscape(key), html.EscapeString(key), key,
	}
	slices.SortStableFunc(forms, func(a, b string) int { return len(b) - len(a) })
	return forms
}

// CloseIdleConnections closes the keep-alive connections not in use, for a
// clean shutdown.
func (c *Client) CloseIdleConnections() { c.http.CloseIdleConnections() }

// Send sends text to numbers in one request.
//
// The Result has one NumberResult per input number, in input order.
// Invalid numbers are never sent and come back rejected with ErrorCode
// sms.CodeInvalidNumber; a number given twice is sent once and reported for
// each occurrence. If no number is valid, no request is made and the error
// is nil.
//
// A non-nil error is an *sms.Error: the request failed as a whole, the
// Result is empty, and the error's Kind and RetryAfter say whether and
// when to try again. Send does not hold back after a 429 itself: the caller
// must.
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
		c.metrics.RateLimited(e.RetryAfter)
	}
	return nil, e
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
