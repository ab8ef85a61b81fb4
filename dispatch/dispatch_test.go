package dispatch

import (
	"golang.org/x/time/rate"

	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// call is one request the fake sender saw.
type call struct {
	start, end time.Time
	text       string
	numbers    []string
}

// reply decides the fake's answer to call number n (0-based).
type reply func(ctx context.Context, n int, text string, numbers []string) (sms.Result, error)

// fakeSender is a scripted Sender. It counts requests that start before a
// 429 pause it announced has ended: the dispatcher must keep that at zero.
type fakeSender struct {
	mu       sync.Mutex
	reply    reply
	calls    []call
	pauseEnd time.Time
	early    int
}

func newFake(r reply) *fakeSender { return &fakeSender{reply: r} }

func (f *fakeSender) Send(ctx context.Context, text string, numbers []string) (sms.Result, error) {
	start := time.Now()
	f.mu.Lock()
	if start.Before(f.pauseEnd) {
		f.early++
	}
	n := len(f.calls)
	f.calls = append(f.calls, call{start: start, text: text, numbers: append([]string(nil), numbers...)})
	r := f.reply
	f.mu.Unlock()

	res, err := r(ctx, n, text, numbers)

	end := time.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	f.calls[n].end = end
	var se *sms.Error
	if errors.As(err, &se) && se.Kind == sms.KindRateLimited {
		// The pause runs from when the reply left the provider.
		f.pauseEnd = end.Add(se.RetryAfter)
	}
	return res, err
}

func (f *fakeSender) setReply(r reply) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.reply = r
}

func (f *fakeSender) Calls() []call {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]call(nil), f.calls...)
}

func (f *fakeSender) Early() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.early
}

// accept answers like a provider that took every number.
func accept(_ context.Context, n int, _ string, numbers []string) (sms.Result, error) {
	res := sms.Result{}
	for i, num := range numbers {
		res.Numbers = append(res.Numbers, sms.NumberResult{Number: num, Accepted: true, MessageID: fmt.Sprintf("m%d-%d", n, i)})
	}
	return res, nil
}

// failWith answers every request with err.
func failWith(err error) reply {
	return func(context.Context, int, string, []string) (sms.Result, error) { return sms.Result{}, err }
}

// firstFail answers the first k requests with err, then accepts.
func firstFail(k int, err error) reply {
	return func(ctx context.Context, n int, text string, numbers []string) (sms.Result, error) {
		if n < k {
			return sms.Result{}, err
		}
		return accept(ctx, n, text, numbers)
	}
}

// syncBuffer is a log sink safe for concurrent writers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// harness runs a Dispatcher over a real outbox in a temporary directory.
type harness struct {
	t      *testing.T
	store  *outbox.Store
	fake   *fakeSender
	d      *Dispatcher
	m      *Metrics
	logs   *syncBuffer
	cancel context.CancelFunc
	runErr chan error
}

// storeWrapper lets a test put a different Store in front of the outbox.
type storeWrapper func(*outbox.Store) Store

func newHarness(t *testing.T, cfg Config, sender Sender, wrap storeWrapper) *harness {
	t.Helper()
	st, err := outbox.Open(t.TempDir(), outbox.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	m := NewMetrics(prometheus.NewRegistry())
	var store Store = st
	if wrap != nil {
		store = wrap(st)
	}
	if cfg.RateLimit == 0 {
		cfg.RateLimit = -1
	}
	h := &harness{t: t, store: st, m: m, logs: logs, runErr: make(chan error, 1)}
	h.fake, _ = sender.(*fakeSender)
	h.d = New(store, sender, cfg, logger, m)
	return h
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	go func() { h.runErr <- h.d.Run(ctx) }()
	h.t.Cleanup(h.stop)
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() {
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.runErr:
		if err != nil {
			h.t.Errorf("run: %v", err)
		}
	case <-time.After(30 * time.Second):
		h.t.Fatal("Run did not return after cancel")
	}
}

func (h *harness) enqueue(receiver, text string, numbers ...string) int64 {
	h.t.Helper()
	id, err := h.store.Enqueue(context.Background(), outbox.Notification{Source: "alertmanager", Status: "firing",
		Messages: []outbox.Message{{Receiver: receiver, Text: text, Segments: 2, Numbers: numbers}}})
	if err != nil {
		h.t.Fatal(err)
	}
	return id
}

func (h *harness) records(f outbox.Filter) []outbox.Record {
	h.t.Helper()
	rs, err := h.store.Deliveries(context.Background(), f)
	if err != nil {
		h.t.Fatal(err)
	}
	return rs
}

func (h *harness) count(state outbox.State) int {
	return len(h.records(outbox.Filter{State: state, Limit: 1000}))
}

// waitFor polls cond until it holds. The deadline is generous on purpose:
// it only bounds a broken test, it never decides a passing one.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func value(t *testing.T, c prometheus.Collector) float64 {
	t.Helper()
	ch := make(chan prometheus.Metric, 1)
	c.Collect(ch)
	var m dto.Metric
	if err := (<-ch).Write(&m); err != nil {
		t.Fatal(err)
	}
	switch {
	case m.Counter != nil:
		return m.GetCounter().GetValue()
	default:
		return m.GetGauge().GetValue()
	}
}

func TestDeliver(t *testing.T) {
	fake := newFake(accept)
	h := newHarness(t, Config{}, fake, nil)
	h.m.InitReceivers("ops", "db", "never")
	h.run()
	// The loop is idle now with an hour-long timer; only the outbox's wake
	// can get these sent promptly.
	id1 := h.enqueue("ops", "disk full", "+27831234567", "+27831234568")
	h.enqueue("db", "db down", "+27831234569")
	waitFor(t, "3 delivered", func() bool { return h.count(outbox.StateDelivered) == 3 })

	calls := fake.Calls()
	if len(calls) != 2 {
		t.Fatalf("%d requests, want 2 (one per text)", len(calls))
	}
	if calls[0].text != "disk full" || strings.Join(calls[0].numbers, ",") != "+27831234567,+27831234568" {
		t.Errorf("first request %+v", calls[0])
	}
	for _, r := range h.records(outbox.Filter{NotificationID: id1}) {
		if r.APIMessageID == "" || r.Attempts != 1 {
			t.Errorf("record %+v", r)
		}
	}
	for _, tc := range []struct {
		c    prometheus.Collector
		want float64
	}{
		{h.m.sent.WithLabelValues("ops"), 2},
		{h.m.sent.WithLabelValues("db"), 1},
		{h.m.sent.WithLabelValues("never"), 0},
		{h.m.segments, 6},
		{h.m.failed.WithLabelValues(ReasonRejected), 0},
	} {
		if got := value(t, tc.c); got != tc.want {
			t.Errorf("%v = %v, want %v", tc.c, got, tc.want)
		}
	}
	logs := h.logs.String()
	if strings.Count(logs, "msg=\"sms delivered\"") != 2 || !strings.Contains(logs, "+2783****567") {
		t.Errorf("want one masked log line per batch:\n%s", logs)
	}
	if strings.Contains(logs, "1234567") {
		t.Errorf("a full number reached the log:\n%s", logs)
	}
	if s := h.d.State(); s.Mode != ModeOK {
		t.Errorf("state %+v", s)
	}
}

func TestBatchSizeAndWorkers(t *testing.T) {
	fake := newFake(accept)
	h := newHarness(t, Config{BatchSize: 2, Workers: 3}, fake, nil)
	h.enqueue("ops", "a", "+27830000001", "+27830000002", "+27830000003", "+27830000004", "+27830000005")
	h.enqueue("ops", "b", "+27830000001")
	h.run()
	waitFor(t, "6 delivered", func() bool { return h.count(outbox.StateDelivered) == 6 })
	calls := fake.Calls()
	if len(calls) != 4 {
		t.Errorf("%d requests, want 4 (a: 2+2+1, b: 1)", len(calls))
	}
	for _, c := range calls {
		if len(c.numbers) > 2 {
			t.Errorf("request with %d numbers, batch size 2", len(c.numbers))
		}
	}
}

func TestRejectedNumbers(t *testing.T) {
	fake := newFake(func(_ context.Context, _ int, _ string, numbers []string) (sms.Result, error) {
		return sms.Result{Numbers: []sms.NumberResult{
			{Number: numbers[0], Accepted: true, MessageID: "ok"},
			{Number: numbers[1], ErrorCode: "E101", Error: "InvalidNumber", Description: "not a mobile number"},
			{Number: numbers[2]},
		}}, nil
	})
	h := newHarness(t, Config{}, fake, nil)
	h.enqueue("ops", "x", "+27830000001", "+27830000002", "+27830000003")
	h.run()
	waitFor(t, "all settled", func() bool { return h.count(outbox.StateDelivered) == 1 && h.count(outbox.StateFailed) == 2 })
	got := map[string]outbox.Record{}
	for _, r := range h.records(outbox.Filter{}) {
		got[r.Number] = r
	}
	if r := got["+27830000002"]; r.ErrorCode != "E101" || r.Error != "InvalidNumber: not a mobile number" {
		t.Errorf("rejected record %+v", r)
	}
	if r := got["+27830000003"]; r.ErrorCode != ReasonRejected || r.Error != "rejected by the sms api" {
		t.Errorf("rejected record without code %+v", r)
	}
	if v := value(t, h.m.failed.WithLabelValues(ReasonRejected)); v != 2 {
		t.Errorf("failed{rejected} = %v, want 2", v)
	}
	if v := value(t, h.m.sent.WithLabelValues("ops")); v != 1 {
		t.Errorf("sent{ops} = %v, want 1", v)
	}
	logs := h.logs.String()
	if !strings.Contains(logs, "sms failed for good") || !strings.Contains(logs, "+2783****002 E101") {
		t.Errorf("rejection not logged with masked number and code:\n%s", logs)
	}
}

func TestMissingResultRetried(t *testing.T) {
	fake := newFake(func(ctx context.Context, n int, text string, numbers []string) (sms.Result, error) {
		if n == 0 {
			return sms.Result{Numbers: []sms.NumberResult{{Number: numbers[0], Accepted: true}}}, nil
		}
		return accept(ctx, n, text, numbers)
	})
	h := newHarness(t, Config{MinBackoff: time.Millisecond, MaxBackoff: 2 * time.Millisecond}, fake, nil)
	h.enqueue("ops", "x", "+27830000001", "+27830000002")
	h.run()
	waitFor(t, "both delivered", func() bool { return h.count(outbox.StateDelivered) == 2 })
	calls := fake.Calls()
	if len(calls) != 2 || len(calls[1].numbers) != 1 || calls[1].numbers[0] != "+27830000002" {
		t.Errorf("calls %+v; only the number without a result is sent again", calls)
	}
	if !strings.Contains(h.logs.String(), "lacks a result") {
		t.Error("missing result not logged")
	}
}

// TestRateLimitPause: after a 429, no request may start before the
// announced pause has run out, and the rows wait instead of failing.
func TestRateLimitPause(t *testing.T) {
	const pause = 300 * time.Millisecond
	fake := newFake(firstFail(1, &sms.Error{Kind: sms.KindRateLimited, StatusCode: 429, RetryAfter: pause,
		Message: "Rate limit is exceeded.  Try again in 1 seconds."}))
	h := newHarness(t, Config{}, fake, nil)
	for i := range 3 {
		h.enqueue("ops", fmt.Sprintf("alert %d", i), "+27830000001")
	}
	h.run()
	waitFor(t, "3 delivered", func() bool { return h.count(outbox.StateDelivered) == 3 })
	if e := fake.Early(); e != 0 {
		t.Errorf("%d requests inside the 429 pause", e)
	}
	calls := fake.Calls()
	if len(calls) != 4 {
		t.Errorf("%d requests, want 4 (one 429, three sends)", len(calls))
	}
	if gap := calls[1].start.Sub(calls[0].end); gap < pause {
		t.Errorf("next request %s after the 429, want at least %s", gap, pause)
	}
	if v := value(t, h.m.pausedUntil); v < float64(calls[0].end.Add(pause).UnixMilli())/1000 {
		t.Errorf("paused_until gauge %v, before the pause end", v)
	}
	for _, r := range h.records(outbox.Filter{}) {
		if r.Attempts != 1 {
			t.Errorf("record %+v: a 429 is not the row's attempt", r)
		}
	}
	if !strings.Contains(h.logs.String(), "rate limit hit") {
		t.Error("pause not logged")
	}
}

// TestRateLimitState checks what a long pause looks like from outside: the
// state says paused, the rows wait in the queue for the pause's end.
func TestRateLimitState(t *testing.T) {
	fake := newFake(failWith(&sms.Error{Kind: sms.KindRateLimited, StatusCode: 429, RetryAfter: time.Hour}))
	h := newHarness(t, Config{}, fake, nil)
	h.enqueue("ops", "x", "+27830000001")
	h.run()
	waitFor(t, "paused", func() bool { return h.d.State().Mode == ModePaused })
	st := h.d.State()
	if time.Until(st.PausedUntil) < 59*time.Minute {
		t.Errorf("paused until %v, want about an hour from now", st.PausedUntil)
	}
	waitFor(t, "row back in the queue", func() bool { return h.count(outbox.StatePending) == 1 })
	sc, err := h.store.Schedule(context.Background(), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if sc.NextDue.Before(st.PausedUntil.Add(-time.Second)) {
		t.Errorf("row due %v, before the pause ends %v", sc.NextDue, st.PausedUntil)
	}
	// New work during the pause is not sent either: the loop does not lease.
	h.enqueue("ops", "y", "+27830000002")
	h.stop()
	if n := len(fake.Calls()); n != 1 {
		t.Errorf("%d requests during the pause, want just the one that got the 429", n)
	}
}

func TestTransientBackoff(t *testing.T) {
	const minB = 20 * time.Millisecond
	for _, tc := range []struct {
		name string
		err  error
	}{
		{"5xx", &sms.Error{Kind: sms.KindTransient, StatusCode: 500, Message: "An internal error has occurred."}},
		{"network", &sms.Error{Kind: sms.KindTransient, Message: "connection reset"}},
		{"not an sms.Error", errors.New("something odd")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(firstFail(2, tc.err))
			h := newHarness(t, Config{MinBackoff: minB, MaxBackoff: time.Second}, fake, nil)
			h.enqueue("ops", "x", "+27830000001", "+27830000002")
			h.run()
			waitFor(t, "delivered", func() bool { return h.count(outbox.StateDelivered) == 2 })
			calls := fake.Calls()
			if len(calls) != 3 {
				t.Fatalf("%d requests, want 3", len(calls))
			}
			for i := 1; i < len(calls); i++ {
				if gap := calls[i].start.Sub(calls[i-1].end); gap < minB {
					t.Errorf("retry %d after %s, want at least the min backoff %s", i, gap, minB)
				}
			}
			for _, r := range h.records(outbox.Filter{}) {
				if r.Attempts != 3 {
					t.Errorf("attempts %d, want 3", r.Attempts)
				}
			}
			if !strings.Contains(h.logs.String(), "will retry") {
				t.Error("retry not logged")
			}
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	d := New(nil, nil, Config{MinBackoff: time.Second, MaxBackoff: time.Minute}, nil, nil)
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, time.Second, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{6, 16 * time.Second, 32 * time.Second},
		{7, 30 * time.Second, time.Minute},
		{8, 30 * time.Second, time.Minute},
		{1000, 30 * time.Second, time.Minute},
	} {
		for range 200 {
			if got := d.backoff(tc.attempt); got < tc.min || got > tc.max {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tc.attempt, got, tc.min, tc.max)
			}
		}
	}
}

func TestHold(t *testing.T) {
	for _, tc := range []struct {
		kind   sms.Kind
		status int
		label  string
	}{
		{sms.KindUnauthorized, 401, "unauthorized"},
		{sms.KindSuspended, 403, "suspended"},
		{sms.KindNoCredits, 405, "no_credits"},
	} {
		t.Run(tc.label, func(t *testing.T) {
			const retry = 40 * time.Millisecond
			se := &sms.Error{Kind: tc.kind, StatusCode: tc.status, Message: "provider says no"}
			fake := newFake(failWith(se))
			h := newHarness(t, Config{HoldRetry: retry, HoldReminder: 30 * time.Millisecond}, fake, nil)
			h.enqueue("ops", "a", "+27830000001")
			h.enqueue("ops", "b", "+27830000002")
			h.run()
			waitFor(t, "held", func() bool { return h.d.State().Mode == ModeHeld })
			st := h.d.State()
			if st.HeldKind != tc.label || st.HeldStatus != tc.status || st.HeldMessage != "provider says no" || st.HeldSince.IsZero() {
				t.Errorf("state %+v", st)
			}
			if v := value(t, h.m.held); v != 1 {
				t.Errorf("held gauge %v", v)
			}
			for _, k := range heldKinds {
				want := 0.0
				if k == tc.label {
					want = 1
				}
				if v := value(t, h.m.heldReason.WithLabelValues(k)); v != want {
					t.Errorf("held_reason{%s} = %v, want %v", k, v, want)
				}
			}
			waitFor(t, "probes and a reminder", func() bool {
				return len(fake.Calls()) >= 5 && strings.Contains(h.logs.String(), "still refuses")
			})
			if n := strings.Count(h.logs.String(), `msg="sms api refuses the account`); n != 1 {
				t.Errorf("hold logged %d times, want once per state change", n)
			}

			held := len(fake.Calls())
			fake.setReply(accept)
			waitFor(t, "delivered after recovery", func() bool { return h.count(outbox.StateDelivered) == 2 })
			if v := value(t, h.m.held); v != 0 {
				t.Errorf("held gauge %v after recovery", v)
			}
			if s := h.d.State(); s.Mode != ModeOK {
				t.Errorf("state after recovery %+v", s)
			}
			if !strings.Contains(h.logs.String(), "accepts the account again") {
				t.Error("recovery not logged")
			}
			// While held, each request (the first probe after the switch
			// included) starts HoldRetry after the previous one ended.
			calls := fake.Calls()
			for i := 1; i <= held; i++ {
				if gap := calls[i].start.Sub(calls[i-1].end); gap < retry {
					t.Errorf("request %d started %s after the previous one ended, want at least %s", i, gap, retry)
				}
			}
		})
	}
}

func TestHoldKindChangeLogged(t *testing.T) {
	fake := newFake(func(_ context.Context, n int, _ string, _ []string) (sms.Result, error) {
		if n == 0 {
			return sms.Result{}, &sms.Error{Kind: sms.KindUnauthorized, StatusCode: 401}
		}
		return sms.Result{}, &sms.Error{Kind: sms.KindNoCredits, StatusCode: 405}
	})
	h := newHarness(t, Config{HoldRetry: time.Millisecond}, fake, nil)
	h.enqueue("ops", "a", "+27830000001")
	h.run()
	waitFor(t, "hold for no credits", func() bool { return h.d.State().HeldKind == "no_credits" })
	if v := value(t, h.m.heldReason.WithLabelValues("unauthorized")); v != 0 {
		t.Errorf("held_reason{unauthorized} = %v after the kind changed", v)
	}
	if n := strings.Count(h.logs.String(), `msg="sms api refuses the account`); n != 2 {
		t.Errorf("hold logged %d times, want 2 (one per kind)", n)
	}
}

func TestPermanentFailures(t *testing.T) {
	for _, tc := range []struct {
		name   string
		err    *sms.Error
		reason string
	}{
		{"bad request", &sms.Error{Kind: sms.KindBadRequest, StatusCode: 400, Message: "The request was not properly formatted."}, ReasonBadRequest},
		{"permanent", &sms.Error{Kind: sms.KindPermanent, StatusCode: 418, Message: "teapot"}, ReasonPermanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(failWith(tc.err))
			h := newHarness(t, Config{}, fake, nil)
			h.enqueue("ops", "x", "+27830000001", "+27830000002")
			h.run()
			waitFor(t, "failed", func() bool { return h.count(outbox.StateFailed) == 2 })
			for _, r := range h.records(outbox.Filter{}) {
				if r.ErrorCode != tc.reason || !strings.Contains(r.Error, tc.err.Message) {
					t.Errorf("record %+v", r)
				}
			}
			if v := value(t, h.m.failed.WithLabelValues(tc.reason)); v != 2 {
				t.Errorf("failed{%s} = %v, want 2", tc.reason, v)
			}
			if n := len(fake.Calls()); n != 1 {
				t.Errorf("%d requests, want 1: a permanent failure is not retried", n)
			}
		})
	}
}

func TestMaxAge(t *testing.T) {
	const maxAge = 150 * time.Millisecond
	for _, tc := range []struct {
		name string
		err  error
		cfg  Config
	}{
		{"failing provider", &sms.Error{Kind: sms.KindTransient, StatusCode: 503},
			Config{MaxAge: maxAge, MinBackoff: 5 * time.Millisecond, MaxBackoff: 20 * time.Millisecond}},
		{"held queue, no probes", &sms.Error{Kind: sms.KindUnauthorized, StatusCode: 401},
			Config{MaxAge: maxAge, HoldRetry: time.Hour}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fake := newFake(failWith(tc.err))
			h := newHarness(t, tc.cfg, fake, nil)
			h.enqueue("ops", "x", "+27830000001", "+27830000002")
			h.run()
			waitFor(t, "failed for max age", func() bool { return h.count(outbox.StateFailed) == 2 })
			for _, r := range h.records(outbox.Filter{}) {
				if r.ErrorCode != "max_age" || !strings.Contains(r.Error, "max age") {
					t.Errorf("record %+v", r)
				}
				if age := r.UpdatedAt.Sub(r.ReceivedAt); age < maxAge-time.Millisecond {
					t.Errorf("failed after %s, before max age %s", age, maxAge)
				}
			}
			if v := value(t, h.m.failed.WithLabelValues(ReasonMaxAge)); v != 2 {
				t.Errorf("failed{max_age} = %v, want 2", v)
			}
			if !strings.Contains(h.logs.String(), "not delivered within max age") {
				t.Error("max age failure not logged")
			}
		})
	}
}

// TestShutdownReleases cuts off a request that outlives the grace: its rows
// must be back in the queue, due, with no attempt counted.
func TestShutdownReleases(t *testing.T) {
	entered := make(chan struct{})
	fake := newFake(func(ctx context.Context, _ int, _ string, _ []string) (sms.Result, error) {
		close(entered)
		<-ctx.Done()
		return sms.Result{}, &sms.Error{Kind: sms.KindTransient, Message: "context canceled", Err: ctx.Err()}
	})
	h := newHarness(t, Config{ShutdownGrace: 20 * time.Millisecond}, fake, nil)
	h.enqueue("ops", "x", "+27830000001")
	h.run()
	<-entered
	h.stop()
	rs := h.records(outbox.Filter{})
	if len(rs) != 1 || rs[0].State != outbox.StatePending || rs[0].Attempts != 0 {
		t.Errorf("after shutdown %+v, want pending with no attempt", rs)
	}
	if !strings.Contains(h.logs.String(), "cut off by shutdown") {
		t.Error("cut-off not logged")
	}
}

// TestShutdownFinishes lets a request in flight finish within the grace: its
// result must be recorded.
func TestShutdownFinishes(t *testing.T) {
	entered, proceed := make(chan struct{}), make(chan struct{})
	fake := newFake(func(ctx context.Context, n int, text string, numbers []string) (sms.Result, error) {
		close(entered)
		<-proceed
		return accept(ctx, n, text, numbers)
	})
	h := newHarness(t, Config{ShutdownGrace: time.Minute}, fake, nil)
	h.enqueue("ops", "x", "+27830000001")
	h.run()
	<-entered
	stopped := make(chan struct{})
	go func() { h.stop(); close(stopped) }()
	select {
	case <-stopped:
		t.Fatal("Run returned with a request in flight")
	case <-time.After(20 * time.Millisecond):
	}
	close(proceed)
	<-stopped
	if n := h.count(outbox.StateDelivered); n != 1 {
		t.Errorf("%d delivered, want the in-flight request recorded", n)
	}
}

func TestRunTwice(t *testing.T) {
	h := newHarness(t, Config{}, newFake(accept), nil)
	h.run()
	waitFor(t, "running", func() bool { return h.d.running.Load() })
	if err := h.d.Run(context.Background()); err == nil {
		t.Error("second Run succeeded")
	}
}

func TestPermit(t *testing.T) {
	d := New(nil, nil, Config{RateLimit: -1, LeaseFor: time.Minute}, nil, nil)
	ctx := context.Background()
	lease := time.Now().Add(time.Minute)

	end := d.setPause(time.Now().Add(30 * time.Millisecond))
	if err := d.permit(ctx, lease); err != nil {
		t.Fatal(err)
	}
	if time.Now().Before(end) {
		t.Error("permit returned inside the pause")
	}

	// A pause past most of the lease hands the rows back instead.
	far := d.setPause(time.Now().Add(45 * time.Second))
	var tooLong *errPauseTooLong
	if err := d.permit(ctx, lease); !errors.As(err, &tooLong) || !tooLong.until.Equal(far) || !strings.Contains(err.Error(), "past the lease") {
		t.Errorf("err = %v, want errPauseTooLong until %v", err, far)
	}

	// An earlier end does not shorten a running pause.
	if got := d.setPause(time.Now()); !got.Equal(far) {
		t.Errorf("pause shortened to %v", got)
	}

	d2 := New(nil, nil, Config{RateLimit: -1}, nil, nil)
	d2.setPause(time.Now().Add(time.Second))
	cctx, cancel := context.WithCancel(ctx)
	cancel()
	if err := d2.permit(cctx, time.Now().Add(time.Hour)); !errors.Is(err, context.Canceled) {
		t.Errorf("permit with cancelled ctx: %v", err)
	}
}

// TestPauseOutlastsLease: a batch leased before a pause that ends after most
// of its lease goes back to the queue, due when the pause ends, rather than
// waiting in the worker until the lease lapses.
func TestPauseOutlastsLease(t *testing.T) {
	fake := newFake(accept)
	h := newHarness(t, Config{LeaseFor: time.Minute}, fake, nil)
	h.enqueue("ops", "x", "+27830000001")
	until := h.d.setPause(time.Now().Add(time.Hour))
	bs, err := h.store.Lease(context.Background(), time.Now(), 1, 10, time.Minute)
	if err != nil || len(bs) != 1 {
		t.Fatal(bs, err)
	}
	h.d.deliver(context.Background(), context.Background(), bs[0])
	rs := h.records(outbox.Filter{})
	if rs[0].State != outbox.StatePending || rs[0].Attempts != 0 || rs[0].ErrorCode != "rate_limited" {
		t.Errorf("record %+v", rs[0])
	}
	sc, _ := h.store.Schedule(context.Background(), time.Now())
	if !sc.NextDue.Equal(time.UnixMilli(until.UnixMilli())) {
		t.Errorf("due %v, want the pause end %v", sc.NextDue, until)
	}
	if len(fake.Calls()) != 0 {
		t.Error("sent during the pause")
	}
}

// flakyStore fails chosen calls, to show the dispatcher rides out a store
// that is briefly unavailable.
type flakyStore struct {
	*outbox.Store
	mu               sync.Mutex
	scheduleFailures int
	completeFailures int
	leaseFailures    int
	expireFailures   int
}

var errDisk = errors.New("disk I/O error")

func (f *flakyStore) fail(n *int) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	if *n > 0 {
		*n--
		return true
	}
	return false
}

func (f *flakyStore) Schedule(ctx context.Context, now time.Time) (outbox.Schedule, error) {
	if f.fail(&f.scheduleFailures) {
		return outbox.Schedule{}, errDisk
	}
	return f.Store.Schedule(ctx, now)
}

func (f *flakyStore) Lease(ctx context.Context, now time.Time, b, n int, l time.Duration) ([]outbox.Batch, error) {
	if f.fail(&f.leaseFailures) {
		return nil, errDisk
	}
	return f.Store.Lease(ctx, now, b, n, l)
}

func (f *flakyStore) Complete(ctx context.Context, o []outbox.Outcome) error {
	if f.fail(&f.completeFailures) {
		return errDisk
	}
	return f.Store.Complete(ctx, o)
}

func (f *flakyStore) FailExpired(ctx context.Context, now time.Time, maxAge time.Duration) (int, error) {
	if f.fail(&f.expireFailures) {
		return 0, errDisk
	}
	return f.Store.FailExpired(ctx, now, maxAge)
}

func TestStoreUnavailable(t *testing.T) {
	flaky := &flakyStore{scheduleFailures: 2, leaseFailures: 1, completeFailures: 2}
	fake := newFake(accept)
	h := newHarness(t, Config{}, fake, func(s *outbox.Store) Store { flaky.Store = s; return flaky })
	h.enqueue("ops", "x", "+27830000001")
	h.run()
	waitFor(t, "delivered", func() bool { return h.count(outbox.StateDelivered) == 1 })
	logs := h.logs.String()
	if !strings.Contains(logs, "outbox unavailable") || !strings.Contains(logs, "recording sms results failed; retrying") {
		t.Errorf("store failures not logged:\n%s", logs)
	}
	if v := value(t, h.m.sent.WithLabelValues("ops")); v != 1 {
		t.Errorf("sent = %v, want 1 (counted once, after recording)", v)
	}
}

func TestStoreCannotRecord(t *testing.T) {
	flaky := &flakyStore{completeFailures: 5}
	fake := newFake(accept)
	h := newHarness(t, Config{}, fake, func(s *outbox.Store) Store { flaky.Store = s; return flaky })
	h.enqueue("ops", "x", "+27830000001")
	h.run()
	waitFor(t, "give-up logged", func() bool { return strings.Contains(h.logs.String(), "cannot record sms results") })
	h.stop()
	if v := value(t, h.m.sent.WithLabelValues("ops")); v != 0 {
		t.Errorf("sent = %v, want 0: nothing is counted that was not recorded", v)
	}
	if n := h.count(outbox.StateSending); n != 1 {
		t.Errorf("%d rows sending, want 1 (left to its lease, to be sent again)", n)
	}
}

func TestMaxAgeStoreFailure(t *testing.T) {
	flaky := &flakyStore{expireFailures: 1}
	fake := newFake(failWith(&sms.Error{Kind: sms.KindTransient}))
	h := newHarness(t, Config{MaxAge: 50 * time.Millisecond, MinBackoff: 5 * time.Millisecond, MaxBackoff: 10 * time.Millisecond},
		fake, func(s *outbox.Store) Store { flaky.Store = s; return flaky })
	h.enqueue("ops", "x", "+27830000001")
	h.run()
	waitFor(t, "failed for max age", func() bool { return h.count(outbox.StateFailed) == 1 })
	if !strings.Contains(h.logs.String(), "outbox unavailable") {
		t.Error("failed expiry not logged")
	}
}

func TestSetConfig(t *testing.T) {
	d := New(nil, nil, Config{Workers: 2, RateLimit: 10, MaxAge: time.Hour}, nil, nil)
	d.SetConfig(Config{Workers: 8, RateLimit: 20, MaxAge: 2 * time.Hour, BatchSize: 7})
	c := d.conf()
	if c.Workers != 2 {
		t.Errorf("workers = %d, want the 2 the dispatcher started with", c.Workers)
	}
	if c.MaxAge != 2*time.Hour || c.BatchSize != 7 || c.HoldRetry != time.Minute {
		t.Errorf("config not applied with defaults: %+v", c)
	}
	if got, want := d.limiter.Limit(), rate.Limit(20*rateMargin); got != want {
		t.Errorf("limiter at %v, want %v", got, want)
	}
	d.SetConfig(Config{RateLimit: -1})
	if d.limiter.Limit() != rate.Inf {
		t.Errorf("negative rate limit: limiter at %v, want unlimited", d.limiter.Limit())
	}
}
