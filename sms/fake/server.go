// Package fake is a fake of the provider's SMS API that behaves as its
// documentation says: it checks the bearer key, validates each number,
// charges credits per segment and recipient, and can be told to fail in
// every way the documentation names (and some it does not). With
// Options.CallbackURL it also plays the provider's webhooks: a delivery
// receipt for every number it accepted, and, through Reply, a recipient's
// answer. Tests of the whole project use it, and so does the daemon's
// --sms.dry-run, which thereby shows the whole loop.
//
// It imports nothing from the project, so that the client and the fake do
// not share a mistake.
package fake

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math"
	mrand "math/rand/v2"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Unlimited is the value of Options.Credits for a balance that never runs
// out.
const Unlimited = -1

// Path is the path of the send endpoint.
const Path = "/sms/messages"

// maxRequest bounds a request body the fake reads.
const maxRequest = 1 << 20

// Options configure a Server.
type Options struct {
	// APIKey is the bearer token the fake accepts. Empty accepts any
	// non-empty token.
	APIKey string
	// Credits is the balance in segments, one per segment per recipient.
	// Zero means none at all; use Unlimited (<0) for no limit.
	Credits int
	// Logger, if set, gets one line per accepted message (text and masked
	// number), as --sms.dry-run shows them. The key is never logged.
	Logger *slog.Logger
	// Latency delays every reply.
	Latency time.Duration
	// RateLimit, if positive, is the number of requests allowed per second;
	// the next one gets a 429 announcing RateLimitPause seconds.
	RateLimit int
	// RateLimitPause is the pause announced when RateLimit trips (1 if 0).
	RateLimitPause int

	// The reply options below exercise the robustness the documentation
	// asks of a client.

	// NumbersAsJSON writes messages[].to as JSON numbers without "+", as
	// the documentation's examples do.
	NumbersAsJSON bool
	// StripPlus writes messages[].to as strings without "+".
	StripPlus bool
	// Reverse lists the entries of a 202 in the reverse order of "to".
	Reverse bool
	// Omit leaves the last Omit entries out of each 202.
	Omit int
	// ExtraFields adds fields the documentation does not name to replies.
	ExtraFields bool
	// RejectNonGSM answers 400 to a text outside GSM-7 ("Unicode is not
	// currently supported"); otherwise such text is charged as GSM-7.
	RejectNonGSM bool

	// MaxMessages, if positive, keeps only the latest MaxMessages accepted
	// messages for Messages(), so a long dry run does not grow without
	// bound. Counts are not affected.
	MaxMessages int
	// OnMessage, if set, is called for each accepted message, outside any
	// lock.
	OnMessage func(Message)
	// Seed seeds the choice of requests FailRate fails, so runs repeat.
	Seed uint64
	// IDPrefix starts every apiMessageId the fake gives. The daemon's dry
	// run sets one, so a message the fake took is never mistaken, on a
	// page or in the store, for one that reached a phone.
	IDPrefix string

	// CallbackURL, if set, is the bridge's callback endpoint: the fake
	// POSTs a MessageStatusUpdate there for the numbers of each request it
	// accepted (status "Delivered", or the word given to FailDelivery),
	// in the provider's shape, and Reply POSTs replies there. It is the
	// webhook's secret and never appears in the fake's logs or errors.
	CallbackURL string
	// CallbackDelay holds each batch of delivery callbacks back after the
	// messages were accepted, as the provider's arrive a few seconds late.
	// Zero sends them at once, possibly before the sender has read the
	// reply that accepted them.
	CallbackDelay time.Duration
}

// Fault is a reply the fake gives instead of the normal one.
type Fault struct {
	// Status is the reply status. 0 (or a 2xx without Body) means the normal
	// reply, after Delay.
	Status int
	// Message replaces the documented message for Status.
	Message string
	// RetryAfter is the N in a 429's "Try again in N seconds." 0 leaves the
	// sentence out.
	RetryAfter int
	// RetryAfterHeader, if positive, is sent as a Retry-After header.
	RetryAfterHeader int
	// Delay holds the reply back; if the client gives up or the server
	// closes first, the connection closes without a reply.
	Delay time.Duration
	// Hang never replies: the connection closes without a reply when the
	// client gives up or the server closes.
	Hang bool
	// Drop closes the connection (with a reset) after reading the request,
	// without a reply.
	Drop bool
	// Body is sent as the raw body instead of the JSON one (with status 202
	// if Status is 0).
	Body string
}

// Message is one accepted (text, number) pair.
type Message struct {
	Text     string
	Number   string
	ID       string
	Segments int
	At       time.Time
}

// Server is the fake. Its methods are safe for concurrent use.
type Server struct {
	// URL is the full send endpoint (base URL + Path); empty for a Server
	// made by New, which does not listen.
	URL string

	opts Options
	now  func() time.Time // the clock of pauses and the rate window; replaced in tests
	srv  *http.Server     // nil for a Server made by New
	// ctx ends when Close is called: it releases held replies.
	ctx    context.Context
	cancel context.CancelFunc

	// life guards closed, so that no request handler starts to run once
	// Close waits for those under way (wg).
	life   sync.Mutex
	closed bool
	wg     sync.WaitGroup

	mu          sync.Mutex
	credits     int
	next        []Fault
	rate        float64
	rateFault   Fault
	rng         *mrand.Rand
	pauseUntil  time.Time
	windowStart time.Time
	windowCount int
	messages    []Message
	accepted    int
	requests    int
	early       int
	changed     chan struct{}
	// deliveryWords maps a number (without "+") to the status its
	// delivery callbacks report instead of "Delivered".
	deliveryWords map[string]string
	// callback is where callbacks go: Options.CallbackURL, or what
	// SetCallbackURL set.
	callback string

	// callbacks is the client that POSTs callbacks.
	callbacks *http.Client
}

// New returns a fake that does not listen: serve its Handler yourself.
func New(opts Options) *Server {
	ctx, cancel := context.WithCancel(context.Background())
	return &Server{
		opts:     opts,
		callback: opts.CallbackURL,
		now:      time.Now,
		ctx:      ctx,
		cancel:   cancel,
		credits:  opts.Credits,
		rng:      mrand.New(mrand.NewPCG(opts.Seed, opts.Seed^0x5eed)),
		changed:  make(chan struct{}),
		callbacks: &http.Client{
			Timeout: 10 * time.Second,
			// The provider's webhooks do not follow redirects either; a
			// redirect is a wrong URL.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
}

// Listen returns a fake listening on a free port of the loopback
// interface; URL is its send endpoint. Close it when done.
func Listen(opts Options) (*Server, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		var err6 error
		if l, err6 = net.Listen("tcp6", "[::1]:0"); err6 != nil {
			return nil, fmt.Errorf("fake sms api: listen on loopback: %w", err)
		}
	}
	s := New(opts)
	s.srv = &http.Server{
		Handler:           http.HandlerFunc(s.serveTracked),
		ReadHeaderTimeout: 10 * time.Second,
	}
	s.URL = "http://" + l.Addr().String() + Path
	go func() { _ = s.srv.Serve(l) }()
	return s, nil
}

// NewServer is Listen for tests: it panics if the loopback interface
// cannot be listened on.
func NewServer(opts Options) *Server {
	s, err := Listen(opts)
	if err != nil {
		panic(err)
	}
	return s
}

// serveTracked serves one request of the listening server, so that Close
// can wait for it to end.
func (s *Server) serveTracked(w http.ResponseWriter, r *http.Request) {
	if !s.track() {
		panic(http.ErrAbortHandler)
	}
	defer s.wg.Done()
	s.ServeHTTP(w, r)
}

// track counts one more goroutine Close must wait for; false once Close
// was called.
func (s *Server) track() bool {
	s.life.Lock()
	defer s.life.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	return true
}

// Handler returns the fake's http.Handler, for serving it in process.
func (s *Server) Handler() http.Handler { return s }

// Close stops the server and waits for the requests under way to end.
// Requests that hang or wait are cut off at once (their connections close
// without a reply), so Close does not wait for a client's timeout.
// Calling it again does nothing.
func (s *Server) Close() {
	s.life.Lock()
	s.closed = true
	s.life.Unlock()
	s.cancel()
	if s.srv != nil {
		_ = s.srv.Close()
	}
	s.wg.Wait()
	s.callbacks.CloseIdleConnections()
}

// FailNext makes the next k requests get f, after any queued before.
func (s *Server) FailNext(k int, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for range k {
		s.next = append(s.next, f)
	}
}

// FailRate makes each request (not taken by FailNext) get f with
// probability rate.
func (s *Server) FailRate(rate float64, f Fault) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.rate, s.rateFault = rate, f
}

// ClearFaults drops the faults set by FailNext, FailRate and
// FailDelivery.
func (s *Server) ClearFaults() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.next, s.rate, s.rateFault, s.deliveryWords = nil, 0, Fault{}, nil
}

// SetCredits sets the balance in segments (Unlimited for no limit).
func (s *Server) SetCredits(n int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.credits = n
}

// Credits returns the balance left in segments.
func (s *Server) Credits() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.credits
}

// Messages returns the accepted messages in order of acceptance.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.messages...)
}

// Accepted returns how many messages (text, number) were accepted in all.
func (s *Server) Accepted() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.accepted
}

// Requests returns how many requests arrived, whatever their fate.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// EarlyRequests returns how many requests arrived while a 429 pause the
// fake had announced was still running. A client that obeys the pause keeps
// it at zero when it sends one request at a time; with several in flight,
// those already on their way when the 429 was written count too (up to one
// per concurrent sender), as the server cannot tell them apart.
func (s *Server) EarlyRequests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.early
}

// WaitMessages waits until at least n messages were accepted in all.
func (s *Server) WaitMessages(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		have, ch := s.accepted, s.changed
		s.mu.Unlock()
		if have >= n {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("wait for %d accepted messages, have %d: %w", n, have, ctx.Err())
		}
	}
}

// ServeHTTP answers one request as the provider would.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	// Read the request first, whatever comes next: a dropped connection
	// must look like the provider hung up after receiving it.
	body, readErr := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequest))
	now := s.now()

	s.mu.Lock()
	s.requests++
	if now.Before(s.pauseUntil) {
		s.early++
		left := int(math.Ceil(s.pauseUntil.Sub(now).Seconds()))
		s.mu.Unlock()
		s.hold(r, s.opts.Latency)
		writeJSON(w, http.StatusTooManyRequests, errorBody(http.StatusTooManyRequests, rateLimitMessage(left)))
		return
	}
	if s.opts.RateLimit > 0 {
		if now.Sub(s.windowStart) >= time.Second {
			s.windowStart, s.windowCount = now, 0
		}
		s.windowCount++
		if s.windowCount > s.opts.RateLimit {
			pause := s.opts.RateLimitPause
			if pause <= 0 {
				pause = 1
			}
			s.mu.Unlock()
			s.hold(r, s.opts.Latency)
			s.writeFault(w, Fault{Status: http.StatusTooManyRequests, RetryAfter: pause})
			return
		}
	}
	f, faulted := s.takeFault()
	s.mu.Unlock()

	s.hold(r, s.opts.Latency)
	if faulted {
		s.hold(r, f.Delay)
		switch {
		case f.Hang:
			s.hold(r, -1) // does not return
		case f.Drop:
			drop(w)
			return
		case f.Status != 0 && (f.Status/100 != 2 || f.Body != ""):
			s.writeFault(w, f)
			return
		case f.Body != "":
			f.Status = http.StatusAccepted
			s.writeFault(w, f)
			return
		}
	}
	s.send(w, r, body, readErr)
}

// takeFault picks the fault for this request, if any. s.mu is held.
func (s *Server) takeFault() (Fault, bool) {
	if len(s.next) > 0 {
		f := s.next[0]
		s.next = s.next[1:]
		return f, true
	}
	if s.rate > 0 && s.rng.Float64() < s.rate {
		return s.rateFault, true
	}
	return Fault{}, false
}

// hold holds the reply back for d (forever if d < 0). If the client gives
// up or the server closes first, the response is aborted: the connection
// closes without a reply, as a provider's would on shutdown.
func (s *Server) hold(r *http.Request, d time.Duration) {
	if d == 0 {
		return
	}
	var elapsed <-chan time.Time
	if d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		elapsed = t.C
	}
	select {
	case <-elapsed:
		return
	case <-r.Context().Done():
	case <-s.ctx.Done():
	}
	panic(http.ErrAbortHandler)
}

// drop closes the connection with a reset and no reply.
func drop(w http.ResponseWriter) {
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		// Not hijackable (HTTP/2, a recorder): abort the response instead.
		panic(http.ErrAbortHandler)
	}
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// writeFault writes f's reply and starts the pause a 429 announces.
func (s *Server) writeFault(w http.ResponseWriter, f Fault) {
	if f.RetryAfterHeader > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(f.RetryAfterHeader))
	}
	if f.Status == http.StatusTooManyRequests {
		if p := max(f.RetryAfter, f.RetryAfterHeader); p > 0 {
			until := s.now().Add(time.Duration(p) * time.Second)
			s.mu.Lock()
			if until.After(s.pauseUntil) {
				s.pauseUntil = until
			}
			s.mu.Unlock()
		}
	}
	if f.Body != "" {
		w.Header().Set("Content-Type", http.DetectContentType([]byte(f.Body)))
		w.WriteHeader(f.Status)
		_, _ = io.WriteString(w, f.Body)
		return
	}
	msg := f.Message
	if msg == "" {
		msg = documentedMessage(f.Status, f.RetryAfter)
	}
	writeJSON(w, f.Status, s.extra(errorBody(f.Status, msg)))
}

// send is the normal reply to a send request.
func (s *Server) send(w http.ResponseWriter, r *http.Request, body []byte, readErr error) {
	if r.Method != http.MethodPost {
		writeJSON(w, http.StatusMethodNotAllowed, errorBody(http.StatusMethodNotAllowed, "The requested method is not allowed."))
		return
	}
	if !strings.HasSuffix(r.URL.Path, Path) {
		writeJSON(w, http.StatusNotFound, errorBody(http.StatusNotFound, "Not found."))
		return
	}
	if !s.authorized(r.Header.Get("Authorization")) {
		writeJSON(w, http.StatusUnauthorized, errorBody(http.StatusUnauthorized, documentedMessage(http.StatusUnauthorized, 0)))
		return
	}
	var req struct {
		Text string            `json:"text"`
		To   []json.RawMessage `json:"to"`
	}
	if readErr != nil || json.Unmarshal(body, &req) != nil || req.Text == "" || len(req.To) == 0 {
		writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, documentedMessage(http.StatusBadRequest, 0)))
		return
	}
	if _, ok := Septets(req.Text); !ok && s.opts.RejectNonGSM {
		writeJSON(w, http.StatusBadRequest, errorBody(http.StatusBadRequest, "Unicode is not currently supported."))
		return
	}

	type outcome struct {
		raw    json.RawMessage
		number string // "" if invalid
		id     string
	}
	outs := make([]outcome, len(req.To))
	valid := 0
	for i, raw := range req.To {
		outs[i].raw = raw
		var n string
		// The documentation wants strings starting with "+"; a bare JSON
		// number is rejected like any malformed number.
		if json.Unmarshal(raw, &n) == nil && validNumber(n) {
			outs[i].number = n
			valid++
		}
	}
	segments := Segments(req.Text)
	now := s.now()

	s.mu.Lock()
	if need := segments * valid; s.credits >= 0 && need > s.credits {
		s.mu.Unlock()
		writeJSON(w, http.StatusMethodNotAllowed, errorBody(http.StatusMethodNotAllowed, documentedMessage(http.StatusMethodNotAllowed, 0)))
		return
	} else if s.credits >= 0 {
		s.credits -= need
	}
	var accepted []Message
	for i := range outs {
		if outs[i].number == "" {
			continue
		}
		outs[i].id = s.opts.IDPrefix + newID()
		m := Message{Text: req.Text, Number: outs[i].number, ID: outs[i].id, Segments: segments, At: now}
		accepted = append(accepted, m)
		s.messages = append(s.messages, m)
	}
	if k := s.opts.MaxMessages; k > 0 && len(s.messages) > k {
		s.messages = append([]Message(nil), s.messages[len(s.messages)-k:]...)
	}
	s.accepted += len(accepted)
	if len(accepted) > 0 {
		close(s.changed)
		s.changed = make(chan struct{})
	}
	s.mu.Unlock()

	s.scheduleReceipts(accepted)
	for _, m := range accepted {
		if s.opts.Logger != nil {
			s.opts.Logger.Info("fake sms api accepted message", "id", m.ID, "to", mask(m.Number), "segments", m.Segments, "text", m.Text)
		}
		if s.opts.OnMessage != nil {
			s.opts.OnMessage(m)
		}
	}

	entries := make([]map[string]any, 0, len(outs))
	for _, o := range outs {
		e := map[string]any{
			"apiMessageId": o.id, "accepted": o.number != "", "to": s.echo(o.raw),
			"errorCode": nil, "error": nil, "errorDescription": nil,
		}
		if o.number == "" {
			e["errorCode"], e["error"] = "E101", "InvalidNumber"
			e["errorDescription"] = "The number is not a valid mobile number in international format."
		}
		if s.opts.ExtraFields {
			e["segments"], e["status"] = segments, "queued"
		}
		entries = append(entries, e)
	}
	if s.opts.Reverse {
		for i, j := 0, len(entries)-1; i < j; i, j = i+1, j-1 {
			entries[i], entries[j] = entries[j], entries[i]
		}
	}
	entries = entries[:len(entries)-min(max(s.opts.Omit, 0), len(entries))]
	writeJSON(w, http.StatusAccepted, s.extra(map[string]any{
		"messages": entries, "errorCode": nil, "error": nil, "errorDescription": nil,
	}))
}

// authorized checks "Bearer <key>", with exactly one space as documented.
func (s *Server) authorized(h string) bool {
	token, ok := strings.CutPrefix(h, "Bearer ")
	if !ok || token == "" {
		return false
	}
	return s.opts.APIKey == "" || token == s.opts.APIKey
}

// echo renders a number of the request for messages[].to in the chosen
// reply style.
func (s *Server) echo(raw json.RawMessage) any {
	var n string
	if json.Unmarshal(raw, &n) != nil {
		return raw
	}
	digits := strings.TrimPrefix(n, "+")
	switch {
	case s.opts.NumbersAsJSON && digits != "" && strings.Trim(digits, "0123456789") == "":
		return json.Number(digits)
	case s.opts.StripPlus:
		return digits
	}
	return n
}

// extra adds fields the documentation does not name, if asked to.
func (s *Server) extra(body map[string]any) map[string]any {
	if s.opts.ExtraFields {
		body["requestId"] = newID()
		body["meta"] = map[string]any{"version": 2, "region": "test"}
	}
	return body
}

func errorBody(status int, msg string) map[string]any {
	return map[string]any{"status": status, "message": msg}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// documentedMessage is the provider's message for status, as its
// documentation shows it.
func documentedMessage(status, retryAfter int) string {
	switch status {
	case http.StatusBadRequest:
		return "The request was not properly formatted."
	case http.StatusUnauthorized:
		return "API key is invalid."
	case http.StatusForbidden:
		return "Your account has been suspended! Please contact support."
	case http.StatusMethodNotAllowed:
		return "You don't have enough credits on your account!"
	case http.StatusTooManyRequests:
		return rateLimitMessage(retryAfter)
	case http.StatusInternalServerError:
		return "An internal error has occurred. Please try again later."
	}
	return http.StatusText(status)
}

func rateLimitMessage(seconds int) string {
	if seconds <= 0 {
		return "Rate limit is exceeded."
	}
	// Two spaces, as the provider writes it.
	return fmt.Sprintf("Rate limit is exceeded.  Try again in %d seconds.", seconds)
}

// validNumber is the provider's check as documented: "+", a country code
// that does not start with 0, and at most 15 digits in all.
func validNumber(n string) bool {
	d, ok := strings.CutPrefix(n, "+")
	if !ok || len(d) < 7 || len(d) > 15 || d[0] == '0' {
		return false
	}
	return strings.Trim(d, "0123456789") == ""
}

// mask hides the middle of a number ("+27831234567") for logs, at least
// four digits of it, as the bridge does.
func mask(n string) string {
	switch {
	case len(n) >= 12:
		return n[:5] + "****" + n[len(n)-3:]
	case len(n) >= 10:
		return n[:4] + "****" + n[len(n)-2:]
	default:
		return "****"
	}
}

func newID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
