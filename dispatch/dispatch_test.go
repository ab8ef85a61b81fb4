package dispatch

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// call is one request a fake provider saw.
type call struct {
	start, end time.Time
	text       string
	numbers    []string
}

// reply decides a fake provider's answer to its call number n (0-based).
type reply func(n int, text string, numbers []string) (sms.Result, error)

// provider is a scripted sms.Provider with a latency. It counts requests
// that start after it answered 429 and before that pause ended: requests
// inside the pause, which the dispatcher must keep at zero.
type provider struct {
	mu       sync.Mutex
	reply    reply
	latency  time.Duration
	calls    []call
	pauseEnd time.Time
	paused   bool
	early    int
}

func newProvider(r reply) *provider { return &provider{reply: r} }

func (p *provider) Send(ctx context.Context, text string, numbers []string) (sms.Result, error) {
	start := time.Now()
	p.mu.Lock()
	if p.paused && start.Before(p.pauseEnd) {
		p.early++
	}
	n := len(p.calls)
	p.calls = append(p.calls, call{start: start, text: text, numbers: append([]string(nil), numbers...)})
	r, latency := p.reply, p.latency
	p.mu.Unlock()
	if latency > 0 {
		t := time.NewTimer(latency)
		select {
		case <-ctx.Done():
			t.Stop()
			return sms.Result{}, &sms.Error{Kind: sms.KindTransient, Message: "request canceled", Err: ctx.Err()}
		case <-t.C:
		}
	}
	res, err := r(n, text, numbers)
	end := time.Now()
	p.mu.Lock()
	defer p.mu.Unlock()
	p.calls[n].end = end
	var se *sms.Error
	if errors.As(err, &se) && se.Kind == sms.KindRateLimited {
		// The pause runs from when the reply reached the caller.
		wait := se.RetryAfter
		if wait == 0 {
			wait = testSettings().DefaultPause
		}
		p.paused, p.pauseEnd = true, end.Add(wait)
	}
	return res, err
}

func (p *provider) set(r reply) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.reply = r
}

func (p *provider) Calls() []call {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]call(nil), p.calls...)
}

func (p *provider) Early() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.early
}

func accept(n int, _ string, numbers []string) (sms.Result, error) {
	res := sms.Result{}
	for i, num := range numbers {
		res.Numbers = append(res.Numbers, sms.NumberResult{Number: num, Accepted: true, MessageID: fmt.Sprintf("m%d-%d", n, i)})
	}
	return res, nil
}

func failWith(err error) reply {
	return func(int, string, []string) (sms.Result, error) { return sms.Result{}, err }
}

// firstFail fails the first k requests with err, then accepts.
func firstFail(k int, err error) reply {
	return func(n int, text string, numbers []string) (sms.Result, error) {
		if n < k {
			return sms.Result{}, err
		}
		return accept(n, text, numbers)
	}
}

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

// testSettings are complete settings with small times, for a fake clock.
func testSettings(accounts ...Account) Settings {
	return Settings{
		Accounts: accounts, BatchSize: 100, MaxInFlight: 4,
		MinBackoff: time.Second, MaxBackoff: 10 * time.Second, MaxAge: time.Hour,
		HoldRetry: time.Minute, HoldReminder: 15 * time.Minute, DefaultPause: 30 * time.Second,
		FallbackAfter: 2 * time.Minute, LeaseFor: time.Minute, ShutdownGrace: 10 * time.Second,
	}
}

// harness runs a Dispatcher over a memStore; inside synctest its clock is
// the bubble's.
type harness struct {
	t        *testing.T
	store    *memStore
	d        *Dispatcher
	m        *Metrics
	reg      *prometheus.Registry
	logs     *syncBuffer
	mu       sync.Mutex
	settings Settings
	cancel   context.CancelFunc
	runErr   chan error
}

func newHarness(t *testing.T, s Settings, store *memStore) *harness {
	t.Helper()
	if store == nil {
		store = newMemStore()
	}
	reg := prometheus.NewRegistry()
	h := &harness{t: t, store: store, settings: s, logs: &syncBuffer{}, m: NewMetrics(reg), reg: reg}
	logger := slog.New(slog.NewTextHandler(h.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	d, err := New(Options{Store: store, Settings: h.current, Logger: logger, Metrics: h.m})
	if err != nil {
		t.Fatal(err)
	}
	h.d = d
	return h
}

func (h *harness) current() Settings {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.settings
}

func (h *harness) update(f func(*Settings)) {
	h.mu.Lock()
	defer h.mu.Unlock()
	f(&h.settings)
}

func (h *harness) run() {
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel = cancel
	h.runErr = make(chan error, 1)
	go func() { h.runErr <- h.d.Run(ctx) }()
}

// stop cancels Run and waits for it to return.
func (h *harness) stop() {
	h.t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	if err := <-h.runErr; err != nil {
		h.t.Errorf("run: %v", err)
	}
}

func (h *harness) count(state outbox.State) int { return len(h.store.rowsIn(state)) }

// until advances the fake clock in small steps until cond holds or limit
// passes; it fails the test on the limit.
func until(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not %s within %s", what, limit)
		}
		time.Sleep(10 * time.Millisecond)
		synctest.Wait()
	}
}

func primary(p sms.Provider, rate float64) Account {
	return Account{Name: "primary", Provider: p, RateLimit: rate}
}

func TestDeliver(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProvider(accept)
		h := newHarness(t, testSettings(primary(p, 100)), nil)
		h.m.InitReceivers("ops", "db")
		h.store.add("ops", "disk full", 2, "+27830000001", "+27830000002")
		h.store.add("db", "disk full", 2, "+27830000002", "+27830000003")
		h.store.add("db", "other", 1, "+27830000003")
		h.run()
		until(t, time.Second, "all accepted", func() bool { return h.count(outbox.StateAccepted) == 5 })
		h.stop()
		calls := p.Calls()
		// One request per text; the same number twice for one text goes in
		// the next request rather than twice in one.
		if len(calls) != 3 {
			t.Errorf("%d requests, want 3: %+v", len(calls), calls)
		}
		for _, r := range h.store.rowsIn(outbox.StateAccepted) {
			if r.account != "primary" || r.apiID == "" || r.Attempts != 1 {
				t.Errorf("row %+v", r)
			}
		}
		if v := testutil.ToFloat64(h.m.sent.WithLabelValues("db", "primary")); v != 3 {
			t.Errorf("sent{db,primary} = %v, want 3", v)
		}
		// "disk full" (2 segments) went to 3 numbers in one request and to
		// the repeated number in a second; "other" (1 segment) to one.
		if v := testutil.ToFloat64(h.m.segments.WithLabelValues("primary")); v != 9 {
			t.Errorf("segments = %v, want 2*3+2+1 = 9", v)
		}
		if !strings.Contains(h.logs.String(), "sms accepted by the provider") {
			t.Errorf("no accepted line in the log:\n%s", h.logs)
		}
	})
}

// TestOptedOut: a number that replied STOP gets nothing, whatever was
// queued for it: its rows fail with reason opted_out just before a
// request, which goes to the other numbers (or is not made at all).
func TestOptedOut(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProvider(accept)
		h := newHarness(t, testSettings(primary(p, 100)), nil)
		h.m.InitReceivers("ops")
		h.store.optOut("+27830000002", "+27830000009")
		h.store.add("ops", "disk full", 1, "+27830000001", "+27830000002")
		h.store.add("ops", "only the stopped one", 1, "+27830000009")
		h.run()
		until(t, time.Second, "settled", func() bool {
			return h.count(outbox.StateAccepted) == 1 && h.count(outbox.StateFailed) == 2
		})
		h.stop()
		calls := p.Calls()
		if len(calls) != 1 || !slices.Equal(calls[0].numbers, []string{"+27830000001"}) {
			t.Errorf("requests %+v, want one, to the number that did not stop", calls)
		}
		for _, r := range h.store.rowsIn(outbox.StateFailed) {
			if r.code != outbox.CodeOptedOut || r.Attempts != 0 || r.account != "" {
				t.Errorf("failed row %+v, want opted_out without an attempt", r)
			}
		}
		if v := testutil.ToFloat64(h.m.failed.WithLabelValues(ReasonOptedOut)); v != 2 {
			t.Errorf("failed{opted_out} = %v, want 2", v)
		}
	})
}

func TestBatchSize(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProvider(accept)
		s := testSettings(primary(p, 100))
		s.BatchSize = 2
		h := newHarness(t, s, nil)
		h.store.add("ops", "x", 1, "+27830000001", "+27830000002", "+27830000003", "+27830000004", "+27830000005")
		h.run()
		until(t, time.Second, "all accepted", func() bool { return h.count(outbox.StateAccepted) == 5 })
		h.stop()
		for _, c := range p.Calls() {
			if len(c.numbers) > 2 {
				t.Errorf("request with %d numbers, batch size 2", len(c.numbers))
			}
		}
		if n := len(p.Calls()); n != 3 {
			t.Errorf("%d requests, want 3", n)
		}
	})
}

func TestRejectedAndMissingNumbers(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProvider(func(n int, text string, numbers []string) (sms.Result, error) {
			if n == 0 {
				return sms.Result{Numbers: []sms.NumberResult{
					{Number: numbers[0], Accepted: true, MessageID: "a"},
					{Number: numbers[1], ErrorCode: "E101", Error: "InvalidNumber", Description: "bad number"},
				}}, nil
			}
			return accept(n, text, numbers)
		})
		h := newHarness(t, testSettings(primary(p, 100)), nil)
		h.store.add("ops", "x", 1, "+27830000001", "+27830000002", "+27830000003")
		h.run()
		until(t, time.Minute, "settled", func() bool {
			return h.count(outbox.StateAccepted) == 2 && h.count(outbox.StateFailed) == 1
		})
		h.stop()
		failed := h.store.rowsIn(outbox.StateFailed)[0]
		if failed.code != "E101" || failed.err != "InvalidNumber: bad number" {
			t.Errorf("failed row %+v", failed)
		}
		if v := testutil.ToFloat64(h.m.failed.WithLabelValues(ReasonRejected)); v != 1 {
			t.Errorf("failed{rejected} = %v", v)
		}
		if v := testutil.ToFloat64(h.m.receiverFailed.WithLabelValues("ops")); v != 1 {
			t.Errorf("sms_failed{ops} = %v", v)
		}
		if len(p.Calls()) != 2 || !strings.Contains(h.logs.String(), "lacks a result") {
			t.Errorf("the number missing from the reply was not retried and logged: %d calls", len(p.Calls()))
		}
	})
}

// TestRateLimitPause: after a 429 no request starts before the announced
// pause has run out, the rows wait instead of failing, and the wait is not
// counted as the rows' attempt.
func TestRateLimitPause(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		after time.Duration
		want  time.Duration
	}{
		{"announced", 17 * time.Second, 17 * time.Second},
		{"default when none is named", 0, 30 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newProvider(firstFail(1, &sms.Error{Kind: sms.KindRateLimited, StatusCode: 429, RetryAfter: tc.after, Message: "Rate limit is exceeded."}))
				h := newHarness(t, testSettings(primary(p, 100)), nil)
				for i := range 3 {
					h.store.add("ops", fmt.Sprintf("alert %d", i), 1, "+27830000001")
				}
				h.run()
				until(t, time.Minute, "all accepted", func() bool { return h.count(outbox.StateAccepted) == 3 })
				h.stop()
				if e := p.Early(); e != 0 {
					t.Errorf("%d requests inside the 429 pause", e)
				}
				calls := p.Calls()
				if gap := calls[1].start.Sub(calls[0].end); gap < tc.want {
					t.Errorf("next request %s after the 429, want at least %s", gap, tc.want)
				}
				for _, r := range h.store.rowsIn("") {
					if r.Attempts != 1 {
						t.Errorf("row %d has %d attempts: the pause is not the row's attempt", r.ID, r.Attempts)
					}
				}
				if !strings.Contains(h.logs.String(), "rate limit hit") {
					t.Error("pause not logged")
				}
			})
		})
	}
}

// TestPipelinedPace: requests start at the rate limit's spacing without
// waiting for replies, so a slow provider is still used at its full rate;
// a 429 stops every start after its reply arrived.
func TestPipelinedPace(t *testing.T) {
	t.Parallel()
	for _, latency := range []time.Duration{20 * time.Millisecond, 200 * time.Millisecond} {
		t.Run(latency.String(), func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newProvider(accept)
				p.latency = latency
				const rate, n = 10.0, 200
				s := testSettings(primary(p, rate))
				s.MaxInFlight = AutoInFlight(rate)
				h := newHarness(t, s, nil)
				for i := range n {
					h.store.add("ops", fmt.Sprintf("alert %d", i), 1, "+27830000001")
				}
				start := time.Now()
				h.run()
				until(t, time.Hour, "drained", func() bool { return h.count(outbox.StateAccepted) == n })
				h.stop()
				calls := p.Calls()
				elapsed := calls[len(calls)-1].start.Sub(start)
				got := float64(len(calls)-1) / elapsed.Seconds()
				if got < 0.95*rate || got > rate {
					t.Errorf("drained at %.2f requests/s, want between 95%% and 100%% of %v", got, rate)
				}
				for i := range calls {
					j := i + int(rate)
					if j < len(calls) && calls[j].start.Sub(calls[i].start) < time.Second {
						t.Fatalf("%d requests within one second from request %d", int(rate)+1, i)
					}
				}
			})
		})
	}
	t.Run("429 with requests in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newProvider(firstFail(0, nil))
			p.latency = 300 * time.Millisecond
			p.set(func(n int, text string, numbers []string) (sms.Result, error) {
				if n == 5 {
					return sms.Result{}, &sms.Error{Kind: sms.KindRateLimited, StatusCode: 429, RetryAfter: 20 * time.Second}
				}
				return accept(n, text, numbers)
			})
			s := testSettings(primary(p, 10))
			s.MaxInFlight = 10
			h := newHarness(t, s, nil)
			for i := range 40 {
				h.store.add("ops", fmt.Sprintf("alert %d", i), 1, "+27830000001")
			}
			h.run()
			until(t, time.Hour, "drained", func() bool { return h.count(outbox.StateAccepted) == 40 })
			h.stop()
			if e := p.Early(); e != 0 {
				t.Errorf("%d requests started after the 429 arrived and before its pause ended", e)
			}
		})
	})
}

// TestPauseSurvivesRestart: a bridge restarted 2.5 s into a 60 s pause
// sends nothing until the pause ends.
func TestPauseSurvivesRestart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		p := newProvider(firstFail(1, &sms.Error{Kind: sms.KindRateLimited, StatusCode: 429, RetryAfter: 60 * time.Second}))
		h := newHarness(t, testSettings(primary(p, 10)), store)
		store.add("ops", "x", 1, "+27830000001")
		h.run()
		until(t, time.Second, "the 429", func() bool { return len(p.Calls()) == 1 && p.Calls()[0].end != (time.Time{}) })
		pauseEnd := p.Calls()[0].end.Add(60 * time.Second)
		time.Sleep(2500 * time.Millisecond)
		h.stop()

		h2 := newHarness(t, testSettings(primary(p, 10)), store)
		store.add("ops", "y", 1, "+27830000002")
		h2.run()
		until(t, 2*time.Minute, "both accepted", func() bool { return h2.count(outbox.StateAccepted) == 2 })
		h2.stop()
		calls := p.Calls()
		if calls[1].start.Before(pauseEnd) {
			t.Errorf("the restarted dispatcher sent at %s, %s before the saved pause ended", calls[1].start, pauseEnd.Sub(calls[1].start))
		}
		if !strings.Contains(h2.logs.String(), "pause from before the restart") {
			t.Errorf("the restored pause is not logged:\n%s", h2.logs)
		}
	})
}

func TestTransientBackoff(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		err     error
		minWait time.Duration
	}{
		{"5xx", &sms.Error{Kind: sms.KindTransient, StatusCode: 500}, time.Second},
		{"5xx with Retry-After", &sms.Error{Kind: sms.KindTransient, StatusCode: 503, RetryAfter: 45 * time.Second}, 45 * time.Second},
		{"network", &sms.Error{Kind: sms.KindTransient, Message: "connection reset"}, time.Second},
		{"not an sms.Error", errors.New("something odd"), time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newProvider(firstFail(2, tc.err))
				h := newHarness(t, testSettings(primary(p, 100)), nil)
				h.store.add("ops", "x", 1, "+27830000001", "+27830000002")
				h.run()
				until(t, 10*time.Minute, "accepted", func() bool { return h.count(outbox.StateAccepted) == 2 })
				h.stop()
				calls := p.Calls()
				if len(calls) != 3 {
					t.Fatalf("%d requests, want 3", len(calls))
				}
				for i := 1; i < len(calls); i++ {
					if gap := calls[i].start.Sub(calls[i-1].end); gap < tc.minWait {
						t.Errorf("retry %d after %s, want at least %s", i, gap, tc.minWait)
					}
				}
				for _, r := range h.store.rowsIn("") {
					if r.Attempts != 3 {
						t.Errorf("attempts %d, want 3", r.Attempts)
					}
				}
				// Each retry is logged with the receivers, notification ids and
				// masked numbers it concerns, as the final lines are.
				retries := 0
				for _, l := range strings.Split(h.logs.String(), "\n") {
					if !strings.Contains(l, "will retry") {
						continue
					}
					retries++
					for _, w := range []string{"receivers=[ops]", "notifications=[1]", "numbers=\"[+2783****001 +2783****002]\"", "retry_in="} {
						if !strings.Contains(l, w) {
							t.Errorf("retry line lacks %s: %s", w, l)
						}
					}
				}
				if retries != 2 {
					t.Errorf("%d retry lines, want 2:\n%s", retries, h.logs)
				}
			})
		})
	}
}

func TestBackoffBounds(t *testing.T) {
	t.Parallel()
	s := Settings{MinBackoff: time.Second, MaxBackoff: time.Minute}
	for _, tc := range []struct {
		attempt  int
		min, max time.Duration
	}{
		{1, time.Second, time.Second},
		{2, time.Second, 2 * time.Second},
		{3, 2 * time.Second, 4 * time.Second},
		{6, 16 * time.Second, 32 * time.Second},
		{7, 30 * time.Second, time.Minute},
		{1000, 30 * time.Second, time.Minute},
	} {
		for range 200 {
			if got := backoff(s, tc.attempt); got < tc.min || got > tc.max {
				t.Fatalf("backoff(%d) = %s, want within [%s, %s]", tc.attempt, got, tc.min, tc.max)
			}
		}
	}
}

func TestHold(t *testing.T) {
	t.Parallel()
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
			synctest.Test(t, func(t *testing.T) {
				se := &sms.Error{Kind: tc.kind, StatusCode: tc.status, Message: "provider says no"}
				p := newProvider(failWith(se))
				s := testSettings(primary(p, 100))
				s.HoldReminder = 3 * time.Minute
				h := newHarness(t, s, nil)
				h.store.add("ops", "a", 1, "+27830000001")
				h.store.add("ops", "b", 1, "+27830000002")
				h.run()
				until(t, time.Second, "held", func() bool { return h.d.State().Accounts[0].Mode == ModeHeld })
				st := h.d.State().Accounts[0]
				if st.Hold.Kind != tc.label || st.Hold.Status != tc.status || st.Hold.Message != "provider says no" || st.NextProbe.IsZero() {
					t.Errorf("state %+v hold %+v", st, st.Hold)
				}
				if v := testutil.ToFloat64(h.m.held.WithLabelValues("primary")); v != 1 {
					t.Errorf("held gauge %v", v)
				}
				if v := testutil.ToFloat64(h.m.heldReason.WithLabelValues("primary", tc.label)); v != 1 {
					t.Errorf("held_reason %v", v)
				}
				time.Sleep(5 * time.Minute)
				synctest.Wait()
				if n := len(p.Calls()); n < 5 || n > 6 {
					t.Errorf("%d requests in 5 minutes held, want one probe a minute", n)
				}
				if !strings.Contains(h.logs.String(), "still refuses") {
					t.Error("no reminder")
				}
				if n := strings.Count(h.logs.String(), `msg="sms api refuses the account`); n != 1 {
					t.Errorf("hold logged %d times, want once per state change", n)
				}
				p.set(accept)
				until(t, 2*time.Minute, "accepted after recovery", func() bool { return h.count(outbox.StateAccepted) == 2 })
				h.stop()
				if v := testutil.ToFloat64(h.m.held.WithLabelValues("primary")); v != 0 {
					t.Errorf("held gauge %v after recovery", v)
				}
				if s := h.d.State().Accounts[0]; s.Mode != ModeOK {
					t.Errorf("state after recovery %+v", s)
				}
				calls := p.Calls()
				for i := 1; i < len(calls)-1; i++ {
					if gap := calls[i].start.Sub(calls[i-1].end); gap < time.Minute {
						t.Errorf("request %d started %s after the previous one ended, want at least the hold retry", i, gap)
					}
				}
			})
		})
	}
}

// TestHoldSurvivesRestart: a restarted bridge probes a held account before
// it sends anything else through it.
func TestHoldSurvivesRestart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := newMemStore()
		p := newProvider(failWith(&sms.Error{Kind: sms.KindNoCredits, StatusCode: 405}))
		h := newHarness(t, testSettings(primary(p, 100)), store)
		store.add("ops", "a", 1, "+27830000001")
		h.run()
		until(t, time.Second, "held", func() bool { return h.d.State().Accounts[0].Mode == ModeHeld })
		h.stop()
		h2 := newHarness(t, testSettings(primary(p, 100)), store)
		h2.run()
		synctest.Wait()
		if st := h2.d.State().Accounts[0]; st.Mode != ModeHeld || st.Hold.Kind != "no_credits" {
			t.Errorf("restarted state %+v", st)
		}
		if n := len(p.Calls()); n != 1 {
			t.Errorf("%d requests right after the restart, want none (the next probe waits its hold retry)", n)
		}
		h2.stop()
	})
}

// TestFallbackAccount: while the primary is held or has failed every
// attempt for FallbackAfter, requests go through the fallback; the primary
// is probed and takes over again when it answers.
func TestFallbackAccount(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		err  *sms.Error
		// switchAfter is how long the primary fails before the fallback
		// takes over.
		switchAfter time.Duration
	}{
		{"held", &sms.Error{Kind: sms.KindSuspended, StatusCode: 403}, 0},
		{"failing", &sms.Error{Kind: sms.KindTransient, StatusCode: 502}, 2 * time.Minute},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				prim, fb := newProvider(failWith(tc.err)), newProvider(accept)
				s := testSettings(primary(prim, 100), Account{Name: "fallback", Provider: fb, RateLimit: 5})
				h := newHarness(t, s, nil)
				start := time.Now()
				h.store.add("ops", "a", 1, "+27830000001")
				h.run()
				until(t, 10*time.Minute, "accepted through the fallback", func() bool { return h.count(outbox.StateAccepted) == 1 })
				if got := h.store.rowsIn(outbox.StateAccepted)[0].account; got != "fallback" {
					t.Errorf("accepted through %q", got)
				}
				if took := fb.Calls()[0].start.Sub(start); took < tc.switchAfter {
					t.Errorf("fallback used after %s, want after %s", took, tc.switchAfter)
				}
				if st := h.d.State(); !st.Accounts[1].Active || st.Accounts[0].Active {
					t.Errorf("active accounts %+v", st.Accounts)
				}
				if v := testutil.ToFloat64(h.m.active.WithLabelValues("fallback")); v != 1 {
					t.Errorf("active{fallback} = %v", v)
				}
				// More work goes through the fallback while the primary stays down.
				h.store.add("ops", "b", 1, "+27830000002")
				until(t, time.Minute, "b accepted", func() bool { return h.count(outbox.StateAccepted) == 2 })

				// The primary answers again: the next work probes it, and it
				// carries the traffic from then on.
				prim.set(accept)
				time.Sleep(2 * time.Minute)
				h.store.add("ops", "c", 1, "+27830000003")
				until(t, time.Minute, "c accepted", func() bool { return h.count(outbox.StateAccepted) == 3 })
				if st := h.d.State(); !st.Accounts[0].Active || st.Accounts[0].Mode != ModeOK {
					t.Errorf("after a successful probe: %+v", st.Accounts)
				}
				h.stop()
				var last memRow
				for _, r := range h.store.rowsIn(outbox.StateAccepted) {
					if r.Number == "+27830000003" {
						last = r
					}
				}
				if last.account != "primary" {
					t.Errorf("after the primary answered again, c went through %q", last.account)
				}
				logs := h.logs.String()
				if !strings.Contains(logs, "sending through the fallback") || !strings.Contains(logs, "primary sms account again") {
					t.Errorf("switches not logged:\n%s", logs)
				}
			})
		})
	}
}

func TestPermanentFailures(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		err    *sms.Error
		reason string
	}{
		{&sms.Error{Kind: sms.KindBadRequest, StatusCode: 400, Message: "The request was not properly formatted."}, ReasonBadRequest},
		{&sms.Error{Kind: sms.KindPermanent, StatusCode: 302}, ReasonPermanent},
	} {
		t.Run(tc.reason, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				p := newProvider(failWith(tc.err))
				h := newHarness(t, testSettings(primary(p, 100)), nil)
				h.store.add("ops", "x", 1, "+27830000001", "+27830000002")
				h.run()
				until(t, time.Second, "failed", func() bool { return h.count(outbox.StateFailed) == 2 })
				h.stop()
				if v := testutil.ToFloat64(h.m.failed.WithLabelValues(tc.reason)); v != 2 {
					t.Errorf("failed{%s} = %v", tc.reason, v)
				}
				if len(p.Calls()) != 1 || !strings.Contains(h.logs.String(), "sms failed for good") {
					t.Errorf("%d calls; logs:\n%s", len(p.Calls()), h.logs)
				}
			})
		})
	}
}

func TestMaxAge(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProvider(failWith(&sms.Error{Kind: sms.KindTransient, StatusCode: 500}))
		s := testSettings(primary(p, 100))
		s.MaxAge = 5 * time.Minute
		h := newHarness(t, s, nil)
		h.store.add("ops", "x", 1, "+27830000001")
		h.run()
		until(t, 10*time.Minute, "expired", func() bool { return h.count(outbox.StateFailed) == 1 })
		h.stop()
		r := h.store.rowsIn(outbox.StateFailed)[0]
		if r.code != "max_age" {
			t.Errorf("row %+v", r)
		}
		if v := testutil.ToFloat64(h.m.failed.WithLabelValues(ReasonMaxAge)); v != 1 {
			t.Errorf("failed{max_age} = %v", v)
		}
	})
}

func TestShutdown(t *testing.T) {
	t.Parallel()
	t.Run("finishes requests in flight", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newProvider(accept)
			p.latency = 2 * time.Second
			h := newHarness(t, testSettings(primary(p, 100)), nil)
			h.store.add("ops", "x", 1, "+27830000001")
			h.run()
			until(t, time.Second, "sending", func() bool { return len(p.Calls()) == 1 })
			h.stop()
			if h.count(outbox.StateAccepted) != 1 {
				t.Error("the request in flight was not finished and recorded")
			}
		})
	})
	t.Run("releases what outlasts the grace", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			p := newProvider(accept)
			p.latency = time.Hour
			h := newHarness(t, testSettings(primary(p, 100)), nil)
			h.store.add("ops", "x", 1, "+27830000001")
			h.run()
			until(t, time.Second, "sending", func() bool { return len(p.Calls()) == 1 })
			h.stop()
			rows := h.store.rowsIn(outbox.StatePending)
			if len(rows) != 1 || rows[0].Attempts != 0 {
				t.Errorf("rows %+v, want the row back in the queue without an attempt", rows)
			}
			if !strings.Contains(h.logs.String(), "cut off by shutdown") {
				t.Error("cut-off request not logged")
			}
		})
	})
}

func TestRunTwice(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, testSettings(primary(newProvider(accept), 10)), nil)
		h.run()
		synctest.Wait()
		if err := h.d.Run(context.Background()); err == nil {
			t.Error("a second Run at once succeeded")
		}
		h.stop()
	})
}

func TestStoreFailures(t *testing.T) {
	t.Parallel()
	for _, method := range []string{"Schedule", "Lease", "GetState", "OptedOut"} {
		t.Run(method, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				store := newMemStore()
				var mu sync.Mutex
				failing := 3
				store.fail = func(m string) error {
					mu.Lock()
					defer mu.Unlock()
					if m == method && failing > 0 {
						failing--
						return errors.New("disk I/O error")
					}
					return nil
				}
				p := newProvider(accept)
				h := newHarness(t, testSettings(primary(p, 100)), store)
				store.add("ops", "x", 1, "+27830000001")
				h.run()
				until(t, time.Minute, "accepted after the store recovered", func() bool { return h.count(outbox.StateAccepted) == 1 })
				h.stop()
				if !strings.Contains(h.logs.String(), "outbox unavailable to the dispatcher") {
					t.Errorf("store failure not logged:\n%s", h.logs)
				}
			})
		})
	}
	t.Run("cannot record", func(t *testing.T) {
		synctest.Test(t, func(t *testing.T) {
			store := newMemStore()
			store.fail = func(m string) error {
				if m == "Complete" {
					return errors.New("database or disk is full")
				}
				return nil
			}
			p := newProvider(accept)
			h := newHarness(t, testSettings(primary(p, 100)), store)
			store.add("ops", "x", 1, "+27830000001")
			h.run()
			until(t, time.Minute, "logged", func() bool { return strings.Contains(h.logs.String(), "cannot record sms results") })
			h.stop()
			if v := testutil.ToFloat64(h.m.sent.WithLabelValues("ops", "primary")); v != 0 {
				t.Errorf("counted %v sent although nothing was recorded", v)
			}
		})
	})
}

// TestSettingsReload: a new generation's settings apply from the next
// step, the rate limit included, and a new provider replaces the old one
// while the pace (a pause) carries over by account name.
func TestSettingsReload(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		old := newProvider(firstFail(1, &sms.Error{Kind: sms.KindRateLimited, StatusCode: 429, RetryAfter: 30 * time.Second}))
		h := newHarness(t, testSettings(primary(old, 1)), nil)
		h.store.add("ops", "x", 1, "+27830000001")
		h.run()
		until(t, time.Second, "the 429", func() bool { return len(old.Calls()) == 1 && !old.Calls()[0].end.IsZero() })
		pauseEnd := old.Calls()[0].end.Add(30 * time.Second)
		fresh := newProvider(accept)
		h.update(func(s *Settings) { s.Accounts = []Account{primary(fresh, 50)} })
		for i := range 20 {
			h.store.add("ops", fmt.Sprintf("y%d", i), 1, "+27830000002")
		}
		until(t, time.Minute, "all accepted", func() bool { return h.count(outbox.StateAccepted) == 21 })
		h.stop()
		calls := fresh.Calls()
		if calls[0].start.Before(pauseEnd) {
			t.Errorf("the new provider sent %s before the pause ended", pauseEnd.Sub(calls[0].start))
		}
		if took := calls[len(calls)-1].start.Sub(calls[0].start); took > time.Second {
			t.Errorf("21 requests took %s: the new rate limit of 50/s was not applied", took)
		}
	})
}

func TestSettingsValidate(t *testing.T) {
	t.Parallel()
	good := testSettings(primary(newProvider(accept), 10))
	if err := good.Validate(); err != nil {
		t.Fatalf("good settings refused: %v", err)
	}
	for _, tc := range []struct {
		name string
		edit func(*Settings)
		want string
	}{
		{"no account", func(s *Settings) { s.Accounts = nil }, "0 accounts"},
		{"zero rate", func(s *Settings) { s.Accounts[0].RateLimit = 0 }, "rate limit"},
		{"no provider", func(s *Settings) { s.Accounts[0].Provider = nil }, "no provider"},
		{"same name", func(s *Settings) { s.Accounts = append(s.Accounts, s.Accounts[0]) }, "repeated name"},
		{"zero max age", func(s *Settings) { s.MaxAge = 0 }, "max age"},
		{"backoffs", func(s *Settings) { s.MinBackoff = time.Hour }, "longer than max backoff"},
		{"batch", func(s *Settings) { s.BatchSize = 0 }, "batch size"},
		{"in flight", func(s *Settings) { s.MaxInFlight = 0 }, "in flight"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := testSettings(primary(newProvider(accept), 10))
			tc.edit(&s)
			if err := s.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("Validate() = %v, want an error about %q", err, tc.want)
			}
		})
	}
}

// TestStateInFlight: the status page's provider card counts each account's
// requests on the wire.
func TestStateInFlight(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProvider(accept)
		p.latency = 5 * time.Second
		h := newHarness(t, testSettings(primary(p, 100)), nil)
		h.store.add("ops", "one", 1, "+27830000001")
		h.store.add("ops", "two", 1, "+27830000002")
		h.run()
		until(t, time.Second, "two requests on the wire", func() bool { return len(p.Calls()) == 2 })
		if st := h.d.State(); st.InFlight != 2 || st.Accounts[0].InFlight != 2 {
			t.Errorf("in flight %d, account %+v; want 2 and 2", st.InFlight, st.Accounts[0])
		}
		until(t, 10*time.Second, "all accepted", func() bool { return h.count(outbox.StateAccepted) == 2 })
		if st := h.d.State(); st.InFlight != 0 || st.Accounts[0].InFlight != 0 {
			t.Errorf("after the replies: in flight %d, account %+v", st.InFlight, st.Accounts[0])
		}
		h.stop()
	})
}
