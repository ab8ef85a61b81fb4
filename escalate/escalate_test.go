package escalate

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/outbox/sqlite"
	"github.com/smsbridge/smsbridge/templates"
	"github.com/smsbridge/smsbridge/twoway"
)

const (
	alice = "+27830000001"
	bob   = "+27830000002"
	carol = "+27830000003"
	group = `{}:{alertname="DiskFull"}`
)

var t0 = time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)

// fakeChecker answers GroupState with state or err, and counts the
// questions.
type fakeChecker struct {
	mu    sync.Mutex
	state twoway.GroupState
	err   error
	asked int
}

func (f *fakeChecker) GroupState(context.Context, map[string]string) (twoway.GroupState, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.asked++
	return f.state, f.err
}

func (f *fakeChecker) set(st twoway.GroupState, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.state, f.err = st, err
}

// env is an Escalator on a real store with a fake clock: db-oncall pages
// alice, and escalates to db-secondary (bob) after 10m and managers
// (carol) after 30m.
type env struct {
	t       *testing.T
	store   *sqlite.Store
	esc     *Escalator
	am      *fakeChecker
	cfg     *Config
	mu      sync.Mutex
	now     time.Time
	logs    *bytes.Buffer
	members map[string][]oncall.Member
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ev := &env{t: t, now: t0, logs: &bytes.Buffer{}, am: &fakeChecker{state: twoway.GroupState{Alerts: 1, Active: 1}},
		members: map[string][]oncall.Member{
			"db-secondary": {{Name: "bob", Number: bob}},
			"managers":     {{Name: "carol", Number: carol}},
		}}
	st, err := sqlite.Open(t.TempDir(), sqlite.Options{Retention: 7 * 24 * time.Hour, PruneInterval: -1, Clock: ev.clock})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	ev.store = st
	ev.cfg = &Config{Alertmanager: ev.am, CheckTimeout: time.Second, Target: func(name string, at time.Time) (Target, bool) {
		ev.mu.Lock()
		defer ev.mu.Unlock()
		ms, ok := ev.members[name]
		return Target{Name: name, Members: ms, Unthrottled: name == "managers", MaxSegments: 2}, ok
	}}
	ev.esc = New(Options{Store: st, Config: func() *Config { return ev.cfg }, Now: ev.clock, Metrics: NewMetrics(prometheus.NewRegistry()),
		Logger: slog.New(slog.NewTextHandler(&syncWriter{w: ev.logs}, nil))})
	return ev
}

type syncWriter struct {
	mu sync.Mutex
	w  *bytes.Buffer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}

func (ev *env) clock() time.Time {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	return ev.now
}

func (ev *env) at(d time.Duration) {
	ev.mu.Lock()
	defer ev.mu.Unlock()
	ev.now = t0.Add(d)
}

// page queues db-oncall's firing page of the group, at t0.
func (ev *env) page(source string) outbox.Enqueued {
	ev.t.Helper()
	ev.at(0)
	res, err := ev.store.Enqueue(context.Background(), outbox.Notification{Source: source, GroupKey: group, Status: "firing",
		AlertName: "DiskFull", EscalationLabels: map[string]string{"alertname": "DiskFull"},
		Messages: []outbox.Message{{Receiver: "db-oncall", Text: "FIRING:1 DiskFull db1\nReply ACK " + outbox.ReplyCodePlaceholder + " to silence 1h",
			Segments: 1, Numbers: []string{alice}, People: []string{"alice"}, ReplyCode: true, Summary: "DiskFull db1", Critical: true,
			Escalate: []outbox.EscalationPlan{{After: 10 * time.Minute, Receiver: "db-secondary"}, {After: 30 * time.Minute, Receiver: "managers"}}}}})
	if err != nil || res.EscalationsScheduled != 1 {
		ev.t.Fatalf("page: %+v %v", res, err)
	}
	return res
}

// step runs the escalator at d after the page.
func (ev *env) step(d time.Duration) time.Time {
	ev.at(d)
	return ev.esc.Step(context.Background())
}

// sentTo returns the texts queued to number, oldest first.
func (ev *env) sentTo(number string) []string {
	ev.t.Helper()
	rs, err := ev.store.Deliveries(context.Background(), outbox.Filter{Limit: 1000})
	if err != nil {
		ev.t.Fatal(err)
	}
	var out []string
	for i := len(rs) - 1; i >= 0; i-- {
		if rs[i].Number == number {
			out = append(out, rs[i].Text)
		}
	}
	return out
}

func (ev *env) steps() []outbox.EscalationStep {
	ev.t.Helper()
	ss, err := ev.store.EscalationSteps(context.Background(), outbox.EscalationFilter{})
	if err != nil {
		ev.t.Fatal(err)
	}
	return ss
}

func (ev *env) count(vec *prometheus.CounterVec, labels ...string) float64 {
	return testutil.ToFloat64(vec.WithLabelValues(labels...))
}

// TestEscalates: nobody acknowledges: bob gets the escalated page at 10m
// with a reply code of his own, carol at 30m, each once.
func TestEscalates(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ev.page("alertmanager")
	if next := ev.step(9 * time.Minute); !next.Equal(t0.Add(10 * time.Minute)) {
		t.Errorf("next due %v, want 10m", next)
	}
	if got := ev.sentTo(bob); len(got) != 0 {
		t.Fatalf("bob got %q before the step", got)
	}
	if next := ev.step(10 * time.Minute); !next.Equal(t0.Add(30 * time.Minute)) {
		t.Errorf("next due %v, want 30m", next)
	}
	got := ev.sentTo(bob)
	if len(got) != 1 || got[0] != "ESCALATED (10m, no ack): FIRING:1 DiskFull db1\nReply ACK 1 to silence 1h" {
		t.Fatalf("bob got %q", got)
	}
	ev.step(11 * time.Minute)
	if got := ev.sentTo(bob); len(got) != 1 {
		t.Errorf("bob got %d pages, want 1", len(got))
	}
	ev.step(30 * time.Minute)
	if got := ev.sentTo(carol); len(got) != 1 || !strings.HasPrefix(got[0], "ESCALATED (30m, no ack): FIRING:1 DiskFull") {
		t.Errorf("carol got %q", got)
	}
	ss := ev.steps()
	if len(ss) != 2 || ss[0].State != outbox.EscalationEscalated || ss[1].State != outbox.EscalationEscalated || ss[0].EscalatedTo == 0 {
		t.Errorf("steps %+v", ss)
	}
	// The escalated page is the group's: bob's code acknowledges it.
	rs, _ := ev.store.Deliveries(context.Background(), outbox.Filter{NotificationID: ss[0].EscalatedTo})
	if len(rs) != 1 || rs[0].GroupKey != group || rs[0].Receiver != "db-secondary" || rs[0].Person != "bob" || rs[0].ReplyCode != "1" ||
		!rs[0].Critical || rs[0].Summary != "ESCALATED (10m, no ack): DiskFull db1" {
		t.Errorf("the escalated page %+v", rs)
	}
	if n := ev.count(ev.esc.metrics.escalations, "db-oncall", "1"); n != 1 {
		t.Errorf("escalations{step=1} %v", n)
	}
	if n := ev.count(ev.esc.metrics.escalations, "db-oncall", "2"); n != 1 {
		t.Errorf("escalations{step=2} %v", n)
	}
	if ev.am.asked != 2 {
		t.Errorf("Alertmanager asked %d times, want once a step", ev.am.asked)
	}
}

// TestStops: what stops the steps before they page, each with its
// reason, counted once per escalation.
func TestStops(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		before func(ev *env)
		reason string
		detail string
	}{
		{"acknowledged by reply", func(ev *env) {
			ev.at(5 * time.Minute)
			if _, _, err := ev.store.Acknowledge(context.Background(), outbox.Ack{GroupKey: group, Source: "alertmanager", Number: alice,
				Person: "alice", Code: 1, At: ev.clock(), Until: ev.clock().Add(time.Hour), Silence: outbox.SilenceNone}); err != nil {
				t.Fatal(err)
			}
		}, outbox.StopAcked, "acknowledged by alice (+2783****001) (ACK 1)"},
		{"silenced in Alertmanager", func(ev *env) {
			ev.am.set(twoway.GroupState{Alerts: 2, SilencedBy: []string{"sil-1"}, InhibitedBy: []string{"fp-2"}}, nil)
		}, outbox.StopSilenced, "Alertmanager: silenced by sil-1; inhibited by fp-2"},
		{"gone from Alertmanager", func(ev *env) { ev.am.set(twoway.GroupState{}, nil) }, outbox.StopResolved, "Alertmanager no longer has the group's alerts"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t)
			ev.page("alertmanager")
			tc.before(ev)
			if next := ev.step(10 * time.Minute); !next.IsZero() {
				t.Errorf("next due %v after the stop, want none", next)
			}
			if got := ev.sentTo(bob); len(got) != 0 {
				t.Errorf("bob got %q", got)
			}
			for _, s := range ev.steps() {
				if s.State != outbox.EscalationStopped || s.Reason != tc.reason || s.Detail != tc.detail {
					t.Errorf("step %+v, want stopped: %s (%s)", s, tc.reason, tc.detail)
				}
			}
			for _, r := range outbox.StopReasons {
				want := 0.0
				if r == tc.reason {
					want = 1
				}
				if n := ev.count(ev.esc.metrics.stopped, r); n != want {
					t.Errorf("stopped{%s} %v, want %v", r, n, want)
				}
			}
		})
	}
}

// TestOnAck: the processor's hook stops the steps at once, before they
// are due.
func TestOnAck(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ev.page("alertmanager")
	ev.at(time.Minute)
	ev.esc.Acknowledged(outbox.Ack{GroupKey: group, Number: alice, Code: 3, At: ev.clock()})
	ev.esc.stopAcknowledged(context.Background())
	for _, s := range ev.steps() {
		if s.State != outbox.EscalationStopped || s.Reason != outbox.StopAcked || !s.EndedAt.Equal(t0.Add(time.Minute)) ||
			s.Detail != "acknowledged by +2783****001 (ACK 3)" {
			t.Errorf("step %+v", s)
		}
	}
	if n := ev.count(ev.esc.metrics.stopped, outbox.StopAcked); n != 1 {
		t.Errorf("stopped{acked} %v, want 1 (one escalation of two steps)", n)
	}
}

// TestResolvedObserver: a resolution stops the steps in the store; the
// pipeline reports it, and it is counted.
func TestResolvedObserver(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ev.page("alertmanager")
	ev.at(time.Minute)
	res, err := ev.store.Enqueue(context.Background(), outbox.Notification{Source: "alertmanager", GroupKey: group, Status: "resolved"})
	if err != nil || res.EscalationsStopped != 1 {
		t.Fatalf("resolution: %+v %v", res, err)
	}
	ev.esc.Resolved(group, res.EscalationsStopped)
	if n := ev.count(ev.esc.metrics.stopped, outbox.StopResolved); n != 1 {
		t.Errorf("stopped{resolved} %v", n)
	}
	ev.step(40 * time.Minute)
	if got := ev.sentTo(bob); len(got) != 0 {
		t.Errorf("bob got %q after the resolution", got)
	}
}

// TestUncheckable: an Alertmanager that does not answer is asked every
// 5s for 30s after the step was due, then the step pages anyway; one that
// refuses the question pages at once; a webhook's group is never asked
// about.
func TestUncheckable(t *testing.T) {
	t.Parallel()
	t.Run("unreachable", func(t *testing.T) {
		t.Parallel()
		ev := newEnv(t)
		ev.page("alertmanager")
		ev.am.set(twoway.GroupState{}, &twoway.APIError{Reason: twoway.ReasonUnreachable, Err: errors.New("connection refused")})
		for _, at := range []time.Duration{0, 5, 10, 15, 20, 25} {
			next := ev.step(10*time.Minute + at*time.Second)
			if want := t0.Add(10*time.Minute + (at+5)*time.Second); !next.Equal(want) {
				t.Errorf("at +%ds: next %v, want %v", at, next, want)
			}
		}
		if got := ev.sentTo(bob); len(got) != 0 {
			t.Fatalf("bob paged within the grace: %q", got)
		}
		if s := ev.steps()[0]; s.Attempts != 6 || s.Error == "" || s.State != outbox.EscalationPending {
			t.Errorf("step after 6 failed checks: %+v", s)
		}
		ev.step(10*time.Minute + 30*time.Second)
		if got := ev.sentTo(bob); len(got) != 1 {
			t.Errorf("bob got %q after the grace, want the page", got)
		}
		if n := ev.count(ev.esc.metrics.checkErrors, twoway.ReasonUnreachable); n != 7 {
			t.Errorf("check errors %v, want 7", n)
		}
		if !strings.Contains(ev.logs.String(), "escalating without knowing whether Alertmanager silenced the group") {
			t.Errorf("not logged:\n%s", ev.logs)
		}
	})
	t.Run("refused", func(t *testing.T) {
		t.Parallel()
		ev := newEnv(t)
		ev.page("alertmanager")
		ev.am.set(twoway.GroupState{}, &twoway.APIError{Reason: twoway.ReasonRejected, Permanent: true, Err: errors.New("bad matcher")})
		ev.step(10 * time.Minute)
		if got := ev.sentTo(bob); len(got) != 1 {
			t.Errorf("bob got %q, want the page at once", got)
		}
	})
	t.Run("a webhook's group", func(t *testing.T) {
		t.Parallel()
		ev := newEnv(t)
		ev.page("ci")
		ev.am.set(twoway.GroupState{}, nil) // would say gone
		ev.step(10 * time.Minute)
		if got := ev.sentTo(bob); len(got) != 1 || ev.am.asked != 0 {
			t.Errorf("bob got %q, Alertmanager asked %d times; want the page, no question", got, ev.am.asked)
		}
	})
	t.Run("no alertmanager_api", func(t *testing.T) {
		t.Parallel()
		ev := newEnv(t)
		ev.cfg.Alertmanager = nil
		ev.page("alertmanager")
		ev.step(10 * time.Minute)
		if got := ev.sentTo(bob); len(got) != 1 {
			t.Errorf("bob got %q", got)
		}
	})
}

// TestNobodyToPage: a step whose receiver is gone or pages nobody fails,
// counted and logged; the next step still runs.
func TestNobodyToPage(t *testing.T) {
	t.Parallel()
	for name, mod := range map[string]func(ev *env){
		"receiver removed": func(ev *env) { delete(ev.members, "db-secondary") },
		"nobody on call":   func(ev *env) { ev.members["db-secondary"] = nil },
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t)
			ev.page("alertmanager")
			mod(ev)
			ev.step(10 * time.Minute)
			ss := ev.steps()
			if ss[0].State != outbox.EscalationFailed || !strings.Contains(ss[0].Detail, "db-secondary") || ss[1].State != outbox.EscalationPending {
				t.Errorf("steps %+v", ss)
			}
			if n := testutil.ToFloat64(ev.esc.metrics.failed); n != 1 {
				t.Errorf("failed %v", n)
			}
			ev.step(30 * time.Minute)
			if got := ev.sentTo(carol); len(got) != 1 {
				t.Errorf("carol got %q, want step 2's page", got)
			}
		})
	}
}

// TestCancel: an operator cancels an escalation by any of its steps;
// again, or an unknown one, is refused.
func TestCancel(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ev.page("alertmanager")
	ss := ev.steps()
	esc, err := ev.esc.Cancel(context.Background(), ss[1].ID, "status page (127.0.0.1)")
	if err != nil || esc.ID != ss[0].ID || len(esc.Steps) != 2 || esc.Steps[0].Reason != outbox.StopCancelled ||
		esc.Steps[1].Detail != "cancelled by status page (127.0.0.1)" {
		t.Fatalf("cancel: %+v %v", esc, err)
	}
	if _, err := ev.esc.Cancel(context.Background(), ss[0].ID, "api"); !errors.Is(err, ErrNotPending) {
		t.Errorf("cancel again: %v, want ErrNotPending", err)
	}
	if _, err := ev.esc.Cancel(context.Background(), 999, "api"); !errors.Is(err, ErrUnknown) {
		t.Errorf("cancel an unknown one: %v, want ErrUnknown", err)
	}
	if n := ev.count(ev.esc.metrics.stopped, outbox.StopCancelled); n != 1 {
		t.Errorf("stopped{cancelled} %v", n)
	}
	ev.step(time.Hour)
	if got := ev.sentTo(bob); len(got) != 0 {
		t.Errorf("bob got %q after the cancel", got)
	}
}

// TestReplicas: two escalators on one store, stepping at once, send each
// step once.
func TestReplicas(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ev.page("alertmanager")
	other := New(Options{Store: ev.store, Config: func() *Config { return ev.cfg }, Now: ev.clock})
	ev.at(time.Hour)
	var wg sync.WaitGroup
	for _, e := range []*Escalator{ev.esc, other} {
		wg.Go(func() { e.Step(context.Background()) })
	}
	wg.Wait()
	if b, c := ev.sentTo(bob), ev.sentTo(carol); len(b) != 1 || len(c) != 1 {
		t.Errorf("bob got %d, carol %d pages; want one each", len(b), len(c))
	}
}

// TestRun: Run wakes for a page it is told of and for the steps as they
// come due.
func TestRun(t *testing.T) {
	t.Parallel()
	ev := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = ev.esc.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	ev.page("alertmanager")
	ev.at(10 * time.Minute)
	ev.esc.Scheduled(group, 1)
	deadline := time.Now().Add(10 * time.Second)
	for len(ev.sentTo(bob)) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("Run did not send the due step")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestRunNotLeading: a replica that does not lead sends no step, however
// due, but stops the steps of an acknowledgement it recorded; once it
// leads, it sends what is due.
func TestRunNotLeading(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		ack  bool
	}{{"acknowledged", true}, {"then leading", false}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			ev := newEnv(t)
			var leading atomic.Bool
			ev.esc = New(Options{Store: ev.store, Config: func() *Config { return ev.cfg }, Now: ev.clock,
				Metrics: NewMetrics(prometheus.NewRegistry()), Leading: leading.Load})
			ctx, cancel := context.WithCancel(context.Background())
			done := make(chan struct{})
			go func() { _ = ev.esc.Run(ctx); close(done) }()
			defer func() { cancel(); <-done }()
			ev.page("alertmanager")
			ev.at(10 * time.Minute)
			ev.esc.Scheduled(group, 1)
			if tc.ack {
				ev.esc.Acknowledged(outbox.Ack{GroupKey: group, Number: alice, Code: 1, At: ev.clock()})
			}
			deadline := time.Now().Add(10 * time.Second)
			for {
				open, err := ev.store.EscalationSteps(context.Background(), outbox.EscalationFilter{Open: true})
				if err != nil {
					t.Fatal(err)
				}
				if tc.ack && len(open) == 0 || !tc.ack && time.Now().After(deadline.Add(-9*time.Second)) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatal("the acknowledgement did not stop the steps")
				}
				time.Sleep(5 * time.Millisecond)
			}
			if n := len(ev.sentTo(bob)); n != 0 {
				t.Fatalf("a replica that does not lead sent %d pages", n)
			}
			if tc.ack {
				return
			}
			leading.Store(true)
			ev.esc.Wake()
			for len(ev.sentTo(bob)) == 0 {
				if time.Now().After(deadline) {
					t.Fatal("Run did not send the due step once leading")
				}
				time.Sleep(5 * time.Millisecond)
			}
		})
	}
}

// TestText: the prefix, the reply line kept whole when the text is cut,
// texts without a code fitted as they are.
func TestText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("disk almost full on db1 ", 20)
	for _, tc := range []struct {
		name    string
		after   time.Duration
		text    string
		maxSegs int
		want    string
	}{
		{"short", 10 * time.Minute, "FIRING DiskFull\nReply ACK ¤¤¤", 1, "ESCALATED (10m, no ack): FIRING DiskFull\nReply ACK ¤¤¤"},
		{"seconds and hours", 90 * time.Minute, "x", 1, "ESCALATED (1h30m, no ack): x"},
		{"no code", 10 * time.Second, "build failed", 1, "ESCALATED (10s, no ack): build failed"},
	} {
		got, segs := Text(tc.after, tc.text, tc.maxSegs)
		if got != tc.want || segs != templates.Segments(tc.want) {
			t.Errorf("%s: %q (%d segments), want %q", tc.name, got, segs, tc.want)
		}
	}
	got, segs := Text(10*time.Minute, long+"\nReply ACK ¤¤¤ to silence 1h", 1)
	if segs != 1 || !strings.HasPrefix(got, "ESCALATED (10m, no ack): disk") || !strings.HasSuffix(got, "...\nReply ACK ¤¤¤ to silence 1h") {
		t.Errorf("cut to one segment: %q (%d)", got, segs)
	}
	got, segs = Text(10*time.Minute, long, 2)
	if segs != 2 || !strings.HasSuffix(got, "...") {
		t.Errorf("cut without a code: %q (%d)", got, segs)
	}
}
