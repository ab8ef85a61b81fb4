package status

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/receiver"
)

// gateServer serves a Handler with the admin API on or off, on a clock
// the test moves, logging into logs.
func gateServer(t *testing.T, admin bool, b *fakeBridge) (srv *httptest.Server, clock *testClock, logs *lockedBuffer, st *fakeStore) {
	t.Helper()
	st = &fakeStore{records: sampleRecords()}
	clock = &testClock{t: testNow}
	logs = &lockedBuffer{}
	h, err := New(Options{Store: st, Bridge: b, Started: testNow, Now: clock.now, AdminAPI: admin,
		Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	e.HTTPErrorHandler = receiver.ErrorHandler(slog.New(slog.DiscardHandler))
	h.Register(e)
	// An endpoint registered elsewhere (as on-call overrides will be) takes
	// the same gate.
	e.POST("/api/v1/elsewhere", func(c echo.Context) error { return c.NoContent(http.StatusNoContent) }, h.Admin().Middleware)
	srv = httptest.NewServer(e)
	t.Cleanup(srv.Close)
	return srv, clock, logs, st
}

type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// TestAdminGate: without --web.enable-admin-api every endpoint that
// changes state answers 403 naming the flag, changes nothing and is
// logged with the caller's address, while reading stays open; with it
// they work, and cross-site requests are refused either way. Before the
// gate, anyone who reached the port could send SMS and resend deliveries.
func TestAdminGate(t *testing.T) {
	t.Parallel()
	writes := []struct{ path, body string }{
		{"/api/v1/test", `{"receiver":"ops"}`},
		{"/api/v1/deliveries/2/retry", ""},
		{"/deliveries/2/retry", ""},
		{"/api/v1/elsewhere", ""},
	}
	t.Run("disabled", func(t *testing.T) {
		t.Parallel()
		srv, _, logs, st := gateServer(t, false, &fakeBridge{})
		for _, w := range writes {
			code, body := do(t, "POST", srv.URL+w.path, w.body, "Content-Type", "application/json")
			if code != http.StatusForbidden || !strings.Contains(body, "start smsbridge with --web.enable-admin-api to allow it") {
				t.Errorf("POST %s: %d %s, want 403 naming the flag", w.path, code, body)
			}
		}
		if len(st.retried) != 0 {
			t.Errorf("retried %v through a closed gate", st.retried)
		}
		for _, path := range []string{"/", "/routes-test?labels=team%3Ddb", "/api/v1/status", "/api/v1/deliveries"} {
			if code, body := do(t, "GET", srv.URL+path, ""); code != http.StatusOK {
				t.Errorf("GET %s: %d %s", path, code, body)
			}
		}
		if n := strings.Count(logs.String(), "request to a disabled endpoint refused"); n != len(writes) || !strings.Contains(logs.String(), "remote_addr=127.0.0.1:") {
			t.Errorf("%d refusals logged, want %d with the caller's address:\n%s", n, len(writes), logs)
		}
		// The page offers no button it cannot use, and says why.
		_, page := do(t, "GET", srv.URL+"/", "")
		if strings.Contains(page, "/retry") || !strings.Contains(page, `id="admin-disabled"`) {
			t.Errorf("page with the admin API off offers a retry, or does not say why not:\n%s", page)
		}
		_, js := do(t, "GET", srv.URL+"/api/v1/status", "")
		if !strings.Contains(js, `"admin_api":false`) {
			t.Errorf("status JSON: %s", js)
		}
	})
	t.Run("enabled", func(t *testing.T) {
		t.Parallel()
		srv, _, _, st := gateServer(t, true, &fakeBridge{})
		// Before the writes below retry it: the failed delivery has its
		// button.
		_, page := do(t, "GET", srv.URL+"/?status=failed", "")
		if strings.Contains(page, `id="admin-disabled"`) || !strings.Contains(page, `action="/deliveries/2/retry"`) {
			t.Errorf("the page says the admin API is off, or offers no retry of the failed delivery:\n%s", page)
		}
		for _, w := range writes {
			for _, cross := range [][]string{{"Sec-Fetch-Site", "cross-site"}, {"Origin", "https://evil.example"}} {
				code, _ := do(t, "POST", srv.URL+w.path, w.body, "Content-Type", "application/json", cross[0], cross[1])
				if code != http.StatusForbidden {
					t.Errorf("cross-site POST %s (%s): %d, want 403", w.path, cross[0], code)
				}
			}
		}
		if len(st.retried) != 0 {
			t.Fatalf("a cross-site request retried %v", st.retried)
		}
		wantCodes := map[string]int{"/api/v1/test": 202, "/api/v1/deliveries/2/retry": 202, "/deliveries/2/retry": 409, "/api/v1/elsewhere": 204}
		for _, w := range writes {
			if code, body := do(t, "POST", srv.URL+w.path, w.body, "Content-Type", "application/json"); code != wantCodes[w.path] {
				t.Errorf("POST %s: %d %s, want %d", w.path, code, body, wantCodes[w.path])
			}
		}
	})
}

// TestTestSendLimits: at most one test SMS per receiver per 10 s and 20 in
// any 24 hours, answered 429 with Retry-After beyond; sends that failed do
// not count; every attempt is logged with the caller's address.
func TestTestSendLimits(t *testing.T) {
	t.Parallel()
	srv, clock, logs, _ := gateServer(t, true, &fakeBridge{})
	send := func(receiver string) (int, string, string) {
		t.Helper()
		req, _ := http.NewRequest("POST", srv.URL+"/api/v1/test", strings.NewReader(`{"receiver":"`+receiver+`"}`))
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("X-Forwarded-For", "203.0.113.9")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var b bytes.Buffer
		_, _ = b.ReadFrom(resp.Body)
		return resp.StatusCode, resp.Header.Get("Retry-After"), b.String()
	}
	if code, _, body := send("ops"); code != http.StatusAccepted {
		t.Fatalf("first test send: %d %s", code, body)
	}
	clock.advance(3 * time.Second)
	code, ra, body := send("ops")
	if code != http.StatusTooManyRequests || ra != "7" || !strings.Contains(body, "at most one per 10s and 20 a day per receiver") {
		t.Errorf("second within 10s: %d Retry-After %q %s", code, ra, body)
	}
	// Failures neither count nor block: an unknown receiver, twice at once.
	for range 2 {
		if code, _, _ := send("nobody"); code != http.StatusNotFound {
			t.Errorf("unknown receiver: %d, want 404", code)
		}
	}
	for i := 1; i < TestSendDailyCap; i++ {
		clock.advance(TestSendInterval)
		if code, _, body := send("ops"); code != http.StatusAccepted {
			t.Fatalf("test send %d: %d %s", i+1, code, body)
		}
	}
	clock.advance(time.Hour)
	code, ra, _ = send("ops")
	// The first of the 20 was sent 1h+193s ago: its slot frees in the rest
	// of the 24 hours.
	want := 24*time.Hour - time.Hour - 3*time.Second - time.Duration(TestSendDailyCap-1)*TestSendInterval
	if code != http.StatusTooManyRequests || ra != retryAfter(want) {
		t.Errorf("21st in a day: %d Retry-After %q, want 429 after %s", code, ra, retryAfter(want))
	}
	if code, _, _ := send("db"); code == http.StatusTooManyRequests {
		t.Error("another receiver was limited too")
	}
	clock.advance(want)
	if code, _, body := send("ops"); code != http.StatusAccepted {
		t.Errorf("once the oldest left the 24 hours: %d %s", code, body)
	}
	for _, wantLog := range []string{"test sms queued", "test sms refused: over the limit", "remote_addr=127.0.0.1:", "forwarded_for=203.0.113.9"} {
		if !strings.Contains(logs.String(), wantLog) {
			t.Errorf("log lacks %q:\n%s", wantLog, logs)
		}
	}
}

// TestNotReadyShown: the page and the status JSON say why the bridge is
// not ready.
func TestNotReadyShown(t *testing.T) {
	t.Parallel()
	b := &notReadyBridge{fakeBridge: &fakeBridge{}, reason: "storage directory /data was removed"}
	st := &fakeStore{records: sampleRecords(), stats: outbox.Stats{}}
	h, err := New(Options{Store: st, Bridge: b, Now: func() time.Time { return testNow }})
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	h.Register(e)
	srv := httptest.NewServer(e)
	defer srv.Close()
	if _, page := do(t, "GET", srv.URL+"/", ""); !strings.Contains(page, `id="readiness"`) || !strings.Contains(page, b.reason) {
		t.Errorf("page does not say why it is not ready:\n%s", page)
	}
	if _, js := do(t, "GET", srv.URL+"/api/v1/status", ""); !strings.Contains(js, `"ready":false,"not_ready_reason":"storage directory /data was removed"`) {
		t.Errorf("status JSON: %s", js)
	}
}

type notReadyBridge struct {
	*fakeBridge
	reason string
}

func (b *notReadyBridge) Info() Info {
	i := b.fakeBridge.Info()
	i.NotReady = b.reason
	return i
}
