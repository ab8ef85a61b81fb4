package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"sync"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// providerPause is the pause the fake announces with a 429.
const providerPause = time.Second

// providerKey is the fake's API key; it guards nothing but proves the
// bridge sends one.
const providerKey = "loadgen-key"

// nameRE finds the unique alert name the load tool puts in every
// notification (see payload), in the rendered SMS text.
var nameRE = regexp.MustCompile(`\bLG[a-z]+\d{7}\b`)

// provider is an sms/fake fake behind a recorder: the recorder notes
// when each request arrived and how the fake answered it, and can answer
// every request with the provider's 500 until released, so a backlog
// builds up as it does in a provider outage.
type provider struct {
	URL  string
	fake *smsfake.Server
	srv  *http.Server

	mu       sync.Mutex
	down     bool // answering 500 until release
	requests []providerRequest
	// firstOK is when the first request carrying a name arrived that the
	// fake then accepted; sends counts such requests per name.
	firstOK map[string]time.Time
	sends   map[string]int
}

// providerRequest is one request the fake answered.
type providerRequest struct {
	At      time.Time
	Status  int
	Numbers int
	// Answered is when the fake's answer had been written: for a 429,
	// the moment the pause began as the bridge can know it.
	Answered time.Time
}

// pauseViolations counts the requests that arrived after a 429 had been
// answered and before the pause it announced (pause) ended: requests the
// bridge sent inside a pause it knew of. A request already on its way
// when the 429 arrived is not one.
func pauseViolations(reqs []providerRequest, pause time.Duration) int {
	n := 0
	for _, r := range reqs {
		for _, p := range reqs {
			if p.Status == http.StatusTooManyRequests && r.At.After(p.Answered) && r.At.Before(p.Answered.Add(pause)) {
				n++
				break
			}
		}
	}
	return n
}

// startProvider serves a fake with the given latency and rate limit on
// 127.0.0.1; down starts it in an outage that release ends.
func startProvider(latency time.Duration, rateLimit int, down bool) (*provider, error) {
	p := &provider{
		fake: smsfake.New(smsfake.Options{
			APIKey: providerKey, Credits: smsfake.Unlimited,
			Latency: latency, RateLimit: rateLimit, RateLimitPause: int(providerPause / time.Second),
			// The recorder keeps what the tool needs; the fake need not
			// keep every message of a long run.
			MaxMessages: 1,
		}),
		firstOK: map[string]time.Time{},
		sends:   map[string]int{},
		down:    down,
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("listen for the fake provider: %w", err)
	}
	p.URL = "http://" + ln.Addr().String() + smsfake.Path
	p.srv = &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = p.srv.Serve(ln) }()
	return p, nil
}

// release ends the outage; it returns the moment it ended.
func (p *provider) release() time.Time {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.down = false
	return time.Now()
}

func (p *provider) close() {
	p.fake.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = p.srv.Shutdown(ctx)
}

func (p *provider) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
		return
	}
	p.mu.Lock()
	down := p.down
	p.mu.Unlock()
	if down {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		_, _ = io.WriteString(w, `{"status":500,"message":"An internal error has occurred. Please try again later."}`)
		return
	}
	at := time.Now()
	var req struct {
		Text string   `json:"text"`
		To   []string `json:"to"`
	}
	_ = json.Unmarshal(body, &req)
	r.Body = io.NopCloser(bytes.NewReader(body))
	rec := &statusRecorder{ResponseWriter: w}
	p.fake.ServeHTTP(rec, r)

	answered := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.requests = append(p.requests, providerRequest{At: at, Status: rec.status, Numbers: len(req.To), Answered: answered})
	if rec.status == http.StatusAccepted {
		if name := nameRE.FindString(req.Text); name != "" {
			if _, ok := p.firstOK[name]; !ok {
				p.firstOK[name] = at
			}
			p.sends[name]++
		}
	}
}

// snapshot returns copies of what the recorder saw.
func (p *provider) snapshot() (reqs []providerRequest, firstOK map[string]time.Time, sends map[string]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	firstOK = make(map[string]time.Time, len(p.firstOK))
	for k, v := range p.firstOK {
		firstOK[k] = v
	}
	sends = make(map[string]int, len(p.sends))
	for k, v := range p.sends {
		sends[k] = v
	}
	return append([]providerRequest(nil), p.requests...), firstOK, sends
}

// delivered reports how many of names the fake has accepted.
func (p *provider) delivered(names []string) int {
	p.mu.Lock()
	defer p.mu.Unlock()
	n := 0
	for _, name := range names {
		if _, ok := p.firstOK[name]; ok {
			n++
		}
	}
	return n
}

// waitDelivered waits until every name was accepted by the fake, or ctx
// ends.
func (p *provider) waitDelivered(ctx context.Context, names []string) error {
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		got := p.delivered(names)
		if got == len(names) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d of %d notifications delivered: %w", got, len(names), ctx.Err())
		case <-t.C:
		}
	}
}

// statusRecorder notes the status the fake writes. It unwraps, so the
// fake can still hijack the connection for its Drop fault.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(b []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	return s.ResponseWriter.Write(b)
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Hijack is here for callers that type-assert instead of using
// http.ResponseController.
func (s *statusRecorder) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	h, ok := s.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("response writer cannot hijack")
	}
	return h.Hijack()
}
