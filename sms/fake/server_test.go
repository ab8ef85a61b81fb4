package fake

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

const key = "fake-key-0123456789"

// post sends body to s with the given Authorization header and returns the
// status and decoded JSON reply (nil if not JSON).
func post(t *testing.T, s *Server, auth, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var v map[string]any
	_ = json.Unmarshal(raw, &v)
	return resp.StatusCode, v, resp.Header
}

func send(t *testing.T, s *Server, text string, to ...any) (int, map[string]any) {
	t.Helper()
	b, _ := json.Marshal(map[string]any{"text": text, "to": to})
	status, v, _ := post(t, s, "Bearer "+key, string(b))
	return status, v
}

func newTest(t *testing.T, opts Options) *Server {
	t.Helper()
	if opts.APIKey == "" {
		opts.APIKey = key
	}
	s := NewServer(opts)
	t.Cleanup(s.Close)
	return s
}

func entries(t *testing.T, v map[string]any) []map[string]any {
	t.Helper()
	list, ok := v["messages"].([]any)
	if !ok {
		t.Fatalf("reply %v has no messages list", v)
	}
	var out []map[string]any
	for _, e := range list {
		out = append(out, e.(map[string]any))
	}
	return out
}

func TestAcceptAndReject(t *testing.T) {
	t.Parallel()
	var seen []Message
	var mu sync.Mutex
	s := newTest(t, Options{Credits: Unlimited, OnMessage: func(m Message) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, m)
	}})
	status, v := send(t, s, "hello", "+27831234567", "+27abc", 2783123456, "27831234567", "+4412345678")
	if status != http.StatusAccepted {
		t.Fatalf("status %d, want 202", status)
	}
	es := entries(t, v)
	wantAccepted := []bool{true, false, false, false, true}
	if len(es) != len(wantAccepted) {
		t.Fatalf("%d entries, want %d", len(es), len(wantAccepted))
	}
	idRe := regexp.MustCompile(`^[0-9a-f]{32}$`)
	for i, e := range es {
		if e["accepted"] != wantAccepted[i] {
			t.Errorf("entry %d accepted=%v, want %v", i, e["accepted"], wantAccepted[i])
		}
		if wantAccepted[i] {
			if !idRe.MatchString(e["apiMessageId"].(string)) || e["errorCode"] != nil {
				t.Errorf("entry %d = %v", i, e)
			}
		} else if e["errorCode"] != "E101" || e["error"] != "InvalidNumber" || e["apiMessageId"] != "" {
			t.Errorf("entry %d = %v, want an E101 rejection", i, e)
		}
	}
	if _, ok := v["errorCode"]; !ok || v["errorCode"] != nil {
		t.Errorf("top-level errorCode %v, want null", v["errorCode"])
	}
	msgs := s.Messages()
	if len(msgs) != 2 || msgs[0].Number != "+27831234567" || msgs[1].Number != "+4412345678" ||
		msgs[0].Text != "hello" || msgs[0].ID != es[0]["apiMessageId"] || msgs[0].ID == msgs[1].ID {
		t.Errorf("messages %+v", msgs)
	}
	if s.Accepted() != 2 || s.Requests() != 1 {
		t.Errorf("accepted %d, requests %d", s.Accepted(), s.Requests())
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 2 {
		t.Errorf("OnMessage saw %d messages, want 2", len(seen))
	}
}

func TestAuthorization(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Credits: Unlimited})
	body := `{"text":"x","to":["+27831234567"]}`
	for _, auth := range []string{"", "Bearer", "Bearer ", "Bearer  " + key, "bearer " + key, "Bearer wrong", "Basic " + key} {
		status, v, _ := post(t, s, auth, body)
		if status != http.StatusUnauthorized || v["message"] != "API key is invalid." || v["status"] != float64(401) {
			t.Errorf("Authorization %q: %d %v, want the documented 401", auth, status, v)
		}
	}
	if status, _, _ := post(t, s, "Bearer "+key, body); status != http.StatusAccepted {
		t.Errorf("right key: %d", status)
	}
	anyKey := NewServer(Options{Credits: Unlimited}) // no key: takes any
	t.Cleanup(anyKey.Close)
	if status, _, _ := post(t, anyKey, "Bearer whatever", body); status != http.StatusAccepted {
		t.Errorf("any key: %d", status)
	}
	if status, _, _ := post(t, anyKey, "", body); status != http.StatusUnauthorized {
		t.Errorf("no key: %d", status)
	}
}

func TestBadRequests(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Credits: Unlimited, RejectNonGSM: true})
	for _, body := range []string{
		"", "not json", `{"text":"","to":["+27831234567"]}`, `{"text":"x","to":[]}`, `{"text":"x"}`,
		`{"text":"x","to":"+27831234567"}`, `{"text":"x","to":["+27831234567"]` + strings.Repeat(" ", maxRequest),
	} {
		status, v, _ := post(t, s, "Bearer "+key, body)
		if status != http.StatusBadRequest || v["message"] != "The request was not properly formatted." {
			t.Errorf("body %.40q: %d %v, want the documented 400", body, status, v)
		}
	}
	status, v := send(t, s, "fire 🔥", "+27831234567")
	if status != http.StatusBadRequest || !strings.Contains(v["message"].(string), "Unicode") {
		t.Errorf("non-GSM text: %d %v", status, v)
	}
	req, _ := http.NewRequest(http.MethodGet, s.URL, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("GET: %d, want 405", resp.StatusCode)
	}
	resp, err = http.Post(strings.TrimSuffix(s.URL, Path)+"/other", "application/json", strings.NewReader(`{}`))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("wrong path: %d, want 404", resp.StatusCode)
	}
}

func TestCredits(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Credits: 5})
	long := strings.Repeat("a", 161) // two segments
	if status, _ := send(t, s, long, "+27831234567", "+4412345678", "+27abc"); status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	if s.Credits() != 1 {
		t.Errorf("credits %d, want 1 (2 segments x 2 valid numbers)", s.Credits())
	}
	status, v := send(t, s, long, "+27831234567")
	if status != http.StatusMethodNotAllowed || v["message"] != "You don't have enough credits on your account!" {
		t.Errorf("exhausted: %d %v", status, v)
	}
	if s.Credits() != 1 || s.Accepted() != 2 {
		t.Errorf("a refused request changed the balance or records: %d, %d", s.Credits(), s.Accepted())
	}
	if status, _ := send(t, s, "short", "+27831234567"); status != http.StatusAccepted {
		t.Errorf("one segment with one credit: %d", status)
	}
	s.SetCredits(0)
	if status, _ := send(t, s, "short", "+27831234567"); status != http.StatusMethodNotAllowed {
		t.Errorf("zero credits: %d", status)
	}
	if status, _ := send(t, s, "short", "+27abc"); status != http.StatusAccepted {
		t.Errorf("no valid number costs nothing: %d", status)
	}
}

func TestSegments(t *testing.T) {
	t.Parallel()
	tests := []struct {
		text     string
		septets  int
		ok       bool
		segments int
	}{
		{"", 0, true, 1},
		{"hello", 5, true, 1},
		{strings.Repeat("a", 160), 160, true, 1},
		{strings.Repeat("a", 161), 161, true, 2},
		{strings.Repeat("a", 306), 306, true, 2},
		{strings.Repeat("a", 307), 307, true, 3},
		{strings.Repeat("€", 80), 160, true, 1},
		{strings.Repeat("{", 81), 162, true, 2},
		{"^{}\\[~]|€\f", 20, true, 1},
		{"Ünïcode?", 8, false, 1},
		{"ÆØÅ æøå ÄÖÑÜ§¿ ΔΦΓΛΩΠΨΣΘΞ @£$¥èéùìòÇ", 36, true, 1},
	}
	for _, tc := range tests {
		n, ok := Septets(tc.text)
		if n != tc.septets || ok != tc.ok || Segments(tc.text) != tc.segments {
			t.Errorf("%.20q: septets %d %v, segments %d; want %d %v, %d", tc.text, n, ok, Segments(tc.text), tc.septets, tc.ok, tc.segments)
		}
	}
	seen := map[rune]bool{}
	for _, r := range gsmBasic + gsmExtension {
		if seen[r] {
			t.Errorf("%q listed twice", r)
		}
		seen[r] = true
	}
	if n := len([]rune(gsmBasic)); n != 127 {
		t.Errorf("basic table has %d characters, want 127 (128 less the escape)", n)
	}
}

func TestFaults(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Credits: Unlimited})
	body := `{"text":"x","to":["+27831234567"]}`
	s.FailNext(1, Fault{Status: 400})
	s.FailNext(2, Fault{Status: 403})
	s.FailNext(1, Fault{Status: 405, Message: "Message sending failed for your credit balance couldn't be updated!"})
	s.FailNext(1, Fault{Status: 500})
	s.FailNext(1, Fault{Status: 502, Body: "<html><title>Bad Gateway</title></html>"})
	s.FailNext(1, Fault{Body: "not json"})
	s.FailNext(1, Fault{Status: 202, Delay: time.Millisecond})
	want := []struct {
		status int
		msg    string
	}{
		{400, "The request was not properly formatted."},
		{403, "Your account has been suspended! Please contact support."},
		{403, "Your account has been suspended! Please contact support."},
		{405, "Message sending failed for your credit balance couldn't be updated!"},
		{500, "An internal error has occurred. Please try again later."},
		{502, ""},
		{202, ""},
		{202, ""}, // delayed, then normal
		{202, ""}, // no fault left
	}
	for i, w := range want {
		status, v, _ := post(t, s, "Bearer "+key, body)
		if status != w.status || (w.msg != "" && v["message"] != w.msg) {
			t.Errorf("request %d: %d %v, want %d %q", i, status, v, w.status, w.msg)
		}
	}
	if s.Accepted() != 2 {
		t.Errorf("accepted %d, want 2 (faults record nothing)", s.Accepted())
	}

	s.FailRate(1, Fault{Status: 500})
	for range 3 {
		if status, _, _ := post(t, s, "Bearer "+key, body); status != 500 {
			t.Errorf("rate 1: %d", status)
		}
	}
	s.FailNext(1, Fault{Status: 403})
	if status, _, _ := post(t, s, "Bearer "+key, body); status != 403 {
		t.Errorf("FailNext before FailRate: %d", status)
	}
	s.ClearFaults()
	if status, _, _ := post(t, s, "Bearer "+key, body); status != 202 {
		t.Errorf("after ClearFaults: %d", status)
	}

	// A rate of one half fails some and not all, the same ones every run.
	counts := func() (failed int) {
		r := newTest(t, Options{Credits: Unlimited, Seed: 7})
		r.FailRate(0.5, Fault{Status: 500})
		for range 40 {
			if status, _, _ := post(t, r, "Bearer "+key, body); status == 500 {
				failed++
			}
		}
		return failed
	}
	a, b := counts(), counts()
	if a == 0 || a == 40 || a != b {
		t.Errorf("rate 0.5 failed %d then %d of 40", a, b)
	}
}

// TestRateLimitPause checks the 429 the fake announces, and that it counts
// requests that come before the pause is over, with a clock the test moves.
func TestRateLimitPause(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Credits: Unlimited})
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	var mu sync.Mutex
	s.now = func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		return now
	}
	advance := func(d time.Duration) {
		mu.Lock()
		defer mu.Unlock()
		now = now.Add(d)
	}
	body := `{"text":"x","to":["+27831234567"]}`
	s.FailNext(1, Fault{Status: 429, RetryAfter: 17, RetryAfterHeader: 20})
	status, v, h := post(t, s, "Bearer "+key, body)
	if status != 429 || v["message"] != "Rate limit is exceeded.  Try again in 17 seconds." || h.Get("Retry-After") != "20" {
		t.Fatalf("429: %d %v %v", status, v, h)
	}
	advance(10 * time.Second)
	status, v, _ = post(t, s, "Bearer "+key, body)
	if status != 429 || v["message"] != "Rate limit is exceeded.  Try again in 10 seconds." {
		t.Errorf("early: %d %v, want 429 with the 10 seconds left of the larger wait", status, v)
	}
	if s.EarlyRequests() != 1 {
		t.Errorf("early %d, want 1", s.EarlyRequests())
	}
	advance(10 * time.Second)
	if status, _, _ := post(t, s, "Bearer "+key, body); status != 202 {
		t.Errorf("after the pause: %d", status)
	}
	if s.EarlyRequests() != 1 || s.Requests() != 3 {
		t.Errorf("early %d requests %d, want 1, 3", s.EarlyRequests(), s.Requests())
	}

	// A 429 naming no wait announces no pause.
	s.FailNext(1, Fault{Status: 429})
	status, v, _ = post(t, s, "Bearer "+key, body)
	if status != 429 || v["message"] != "Rate limit is exceeded." {
		t.Errorf("429 without wait: %d %v", status, v)
	}
	if status, _, _ := post(t, s, "Bearer "+key, body); status != 202 || s.EarlyRequests() != 1 {
		t.Errorf("after a 429 without wait: %d, early %d", status, s.EarlyRequests())
	}
}

func TestRateLimitOption(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Credits: Unlimited, RateLimit: 2, RateLimitPause: 3})
	now := time.Date(2025, 1, 1, 12, 0, 0, 0, time.UTC)
	s.now = func() time.Time { return now } // frozen: all requests in one window
	body := `{"text":"x","to":["+27831234567"]}`
	var got []int
	for range 4 {
		status, _, _ := post(t, s, "Bearer "+key, body)
		got = append(got, status)
	}
	if want := []int{202, 202, 429, 429}; !equalInts(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if s.EarlyRequests() != 1 {
		t.Errorf("early %d, want 1 (the 4th came during the announced pause)", s.EarlyRequests())
	}
}

func equalInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

func TestReplyStyles(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  Options
		check func(t *testing.T, v map[string]any, es []map[string]any)
	}{
		{"numbers as json", Options{NumbersAsJSON: true}, func(t *testing.T, _ map[string]any, es []map[string]any) {
			if es[0]["to"] != float64(27831234567) || es[2]["to"] != "+27abc" {
				t.Errorf("to %v, %v", es[0]["to"], es[2]["to"])
			}
		}},
		{"strip plus", Options{StripPlus: true}, func(t *testing.T, _ map[string]any, es []map[string]any) {
			if es[0]["to"] != "27831234567" {
				t.Errorf("to %v", es[0]["to"])
			}
		}},
		{"reverse and omit", Options{Reverse: true, Omit: 1}, func(t *testing.T, _ map[string]any, es []map[string]any) {
			if len(es) != 2 || es[0]["to"] != "+27abc" || es[1]["to"] != "+4412345678" {
				t.Errorf("entries %v", es)
			}
		}},
		{"omit more than all", Options{Omit: 9}, func(t *testing.T, _ map[string]any, es []map[string]any) {
			if len(es) != 0 {
				t.Errorf("entries %v", es)
			}
		}},
		{"extra fields", Options{ExtraFields: true}, func(t *testing.T, v map[string]any, es []map[string]any) {
			if v["requestId"] == nil || v["meta"] == nil || es[0]["segments"] != float64(1) {
				t.Errorf("reply %v", v)
			}
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.opts.Credits = Unlimited
			s := newTest(t, tc.opts)
			status, v := send(t, s, "x", "+27831234567", "+4412345678", "+27abc")
			if status != http.StatusAccepted {
				t.Fatalf("status %d", status)
			}
			tc.check(t, v, entries(t, v))
			if s.Accepted() != 2 {
				t.Errorf("accepted %d, want 2 whatever the reply shows", s.Accepted())
			}
		})
	}
}

func TestLoggerAndMaxMessages(t *testing.T) {
	t.Parallel()
	var buf bytes.Buffer
	s := newTest(t, Options{Credits: Unlimited, MaxMessages: 2, Logger: slog.New(slog.NewTextHandler(&buf, nil))})
	for _, n := range []string{"+27831234567", "+4412345678", "+12025550123"} {
		send(t, s, "disk full", n)
	}
	msgs := s.Messages()
	if len(msgs) != 2 || msgs[0].Number != "+4412345678" || s.Accepted() != 3 {
		t.Errorf("kept %+v of %d", msgs, s.Accepted())
	}
	out := buf.String()
	if strings.Count(out, "fake sms api accepted message") != 3 || !strings.Contains(out, "+2783****567") ||
		!strings.Contains(out, `text="disk full"`) {
		t.Errorf("log:\n%s", out)
	}
	if strings.Contains(out, "+27831234567") || strings.Contains(out, key) {
		t.Errorf("log shows a number unmasked or the key:\n%s", out)
	}
}

func TestWaitMessages(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Credits: Unlimited})
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		done <- s.WaitMessages(ctx, 2)
	}()
	send(t, s, "x", "+27831234567")
	send(t, s, "x", "+4412345678")
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.WaitMessages(ctx, 3); err == nil || !strings.Contains(err.Error(), "have 2") {
		t.Errorf("canceled wait: %v", err)
	}
	if err := s.WaitMessages(ctx, 2); err != nil {
		t.Errorf("already there: %v", err)
	}
}

// TestHangAndClose checks that a hung request ends when the client gives
// up, and that Close does not wait for a client that never gives up.
func TestHangAndClose(t *testing.T) {
	t.Parallel()
	s := NewServer(Options{APIKey: key, Credits: Unlimited})
	body := `{"text":"x","to":["+27831234567"]}`

	s.FailNext(1, Fault{Hang: true})
	c := &http.Client{Timeout: 100 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("hang answered")
	}

	// A client without a timeout, hung on the server.
	s.FailNext(1, Fault{Hang: true})
	s.FailNext(1, Fault{Delay: time.Hour})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+key)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			errs <- err
		}()
	}
	deadline := time.Now().Add(30 * time.Second)
	for s.Requests() < 3 {
		if time.Now().After(deadline) {
			t.Fatal("the hung requests never arrived")
		}
		time.Sleep(5 * time.Millisecond)
	}
	closed := make(chan struct{})
	go func() {
		s.Close()
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(30 * time.Second):
		t.Fatal("Close hangs with hung requests")
	}
	for range 2 {
		if err := <-errs; err == nil {
			t.Error("a request cut off by Close got a reply")
		}
	}
	s.Close() // twice is fine
}

func TestDrop(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Credits: Unlimited})
	s.FailNext(1, Fault{Drop: true})
	req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(`{"text":"x","to":["+27831234567"]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err == nil {
		resp.Body.Close()
		t.Fatalf("dropped connection answered %d", resp.StatusCode)
	}
	if s.Accepted() != 0 || s.Requests() != 1 {
		t.Errorf("accepted %d requests %d", s.Accepted(), s.Requests())
	}
	// In process, where there is no connection to hijack, the response is
	// aborted instead.
	h := New(Options{APIKey: key})
	h.FailNext(1, Fault{Drop: true})
	defer func() {
		if r := recover(); r != http.ErrAbortHandler {
			t.Errorf("recovered %v, want http.ErrAbortHandler", r)
		}
	}()
	h.Handler().ServeHTTP(httptest.NewRecorder(), httptest.NewRequest(http.MethodPost, Path, strings.NewReader("{}")))
}

func TestInProcessHandler(t *testing.T) {
	t.Parallel()
	s := New(Options{APIKey: key, Credits: Unlimited})
	defer s.Close()
	rec := httptest.NewRecorder()
	req := httptest.NewRequest(http.MethodPost, "/base"+Path, strings.NewReader(`{"text":"x","to":["+27831234567"]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	s.Handler().ServeHTTP(rec, req)
	if rec.Code != http.StatusAccepted || s.Accepted() != 1 || s.URL != "" {
		t.Errorf("in process: %d, accepted %d", rec.Code, s.Accepted())
	}
}

func TestLatencyReleasedByClient(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Credits: Unlimited, Latency: time.Hour})
	c := &http.Client{Timeout: 100 * time.Millisecond}
	req, _ := http.NewRequest(http.MethodPost, s.URL, strings.NewReader(`{"text":"x","to":["+27831234567"]}`))
	req.Header.Set("Authorization", "Bearer "+key)
	if resp, err := c.Do(req); err == nil {
		resp.Body.Close()
		t.Fatal("answered despite an hour of latency")
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"+27831234567": "+2783****567", "+2783123456": "+278****56", "+278312345": "+278****45", "+1234567": "****",
	} {
		if got := mask(in); got != want {
			t.Errorf("mask(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestListen checks the listening fake: its URL is the send endpoint on
// the loopback interface, and after Close nothing answers there.
func TestListen(t *testing.T) {
	t.Parallel()
	s, err := Listen(Options{APIKey: key, Credits: Unlimited})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s.URL, "http://127.0.0.1:") && !strings.HasPrefix(s.URL, "http://[::1]:") || !strings.HasSuffix(s.URL, Path) {
		t.Errorf("URL %q, want a loopback send endpoint", s.URL)
	}
	if status, _ := send(t, s, "x", "+27831234567"); status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	s.Close()
	resp, err := http.Post(s.URL, "application/json", strings.NewReader(`{}`))
	if err == nil {
		resp.Body.Close()
		t.Errorf("closed fake answered %d", resp.StatusCode)
	}
	if s.Accepted() != 1 {
		t.Errorf("accepted %d, want 1", s.Accepted())
	}
}

// TestIDPrefix: the ids of a fake with a prefix carry it, as the dry run's
// do, so nobody takes them for a provider's.
func TestIDPrefix(t *testing.T) {
	t.Parallel()
	s := newTest(t, Options{Credits: Unlimited, IDPrefix: "dry-run-"})
	status, v := send(t, s, "hello", "+27831234567", "+27abc")
	if status != http.StatusAccepted {
		t.Fatalf("status %d", status)
	}
	es := entries(t, v)
	if id, _ := es[0]["apiMessageId"].(string); !regexp.MustCompile(`^dry-run-[0-9a-f]{32}$`).MatchString(id) {
		t.Errorf("id %q, want dry-run- and 32 hex digits", id)
	}
	if es[1]["apiMessageId"] != "" {
		t.Errorf("a rejected number got the id %v", es[1]["apiMessageId"])
	}
	if m := s.Messages(); len(m) != 1 || m[0].ID != es[0]["apiMessageId"] {
		t.Errorf("messages %+v", m)
	}
}
