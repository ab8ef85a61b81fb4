package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// escGroup is the group the escalation tests page.
const escGroup = `{}:{alertname="DiskFull"}`

// escPage is a firing page of escGroup to receiver, whose steps go to
// db-secondary after 10m and managers after 30m.
func escPage(receiver, text string) outbox.Notification {
	return outbox.Notification{Source: "alertmanager", GroupKey: escGroup, Status: "firing", AlertName: "DiskFull",
		EscalationLabels: map[string]string{"alertname": "DiskFull", "team": "db"},
		Messages: []outbox.Message{{Receiver: receiver, Text: text, Segments: 1, Numbers: []string{"+27830000001"},
			Summary: "DiskFull db1", Critical: true,
			Escalate: []outbox.EscalationPlan{{After: 10 * time.Minute, Receiver: "db-secondary"}, {After: 30 * time.Minute, Receiver: "managers"}}}}}
}

func escResolved() outbox.Notification {
	return outbox.Notification{Source: "alertmanager", GroupKey: escGroup, Status: "resolved", AlertName: "DiskFull",
		Messages: []outbox.Message{msg("db-oncall", "RESOLVED DiskFull", "+27830000001")}}
}

func steps(t testing.TB, s outbox.Store, f outbox.EscalationFilter) []outbox.EscalationStep {
	t.Helper()
	out, err := s.EscalationSteps(context.Background(), f)
	if err != nil {
		t.Fatalf("escalation steps: %v", err)
	}
	return out
}

func leaseSteps(t testing.TB, s outbox.Store, now time.Time, max int) ([]outbox.EscalationStep, time.Time) {
	t.Helper()
	out, next, err := s.LeaseEscalations(context.Background(), now, max, time.Minute)
	if err != nil {
		t.Fatalf("lease escalation steps: %v", err)
	}
	return out, next
}

// testEscalationSchedule: a firing page schedules its receiver's steps
// with what they need to send later; further pages of the group in the
// episode schedule nothing, another receiver's have their own; a
// resolution stops them (counted) and ends the episode, so the next page
// begins a new one; an episode nobody resolved ends a day after it began.
func testEscalationSchedule(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	t0 := e.clock.Now()
	page := escPage("db-oncall", "FIRING DiskFull\nReply ACK "+outbox.ReplyCodePlaceholder)
	page.Messages[0].ReplyCode = true
	first := enqueue(t, s, page)
	if first.EscalationsScheduled != 1 || first.Outcome != outbox.OutcomeAccepted {
		t.Fatalf("the page: %+v, want one escalation begun", first)
	}
	got := steps(t, s, outbox.EscalationFilter{Open: true})
	if len(got) != 2 {
		t.Fatalf("%d steps, want 2: %+v", len(got), got)
	}
	for i, want := range []struct {
		step     int
		after    time.Duration
		receiver string
	}{{1, 10 * time.Minute, "db-secondary"}, {2, 30 * time.Minute, "managers"}} {
		st := got[i]
		if st.Step != want.step || st.After != want.after || st.StepReceiver != want.receiver || st.Receiver != "db-oncall" ||
			!st.DueAt.Equal(t0.Add(want.after)) || !st.StartedAt.Equal(t0) || st.State != outbox.EscalationPending ||
			st.NotificationID != first.ID || st.Escalation != got[0].ID || st.GroupKey != escGroup || st.AlertName != "DiskFull" ||
			st.Source != "alertmanager" || st.Summary != "DiskFull db1" || !st.Critical || st.Lease != "" || !st.EndedAt.IsZero() {
			t.Errorf("step %d: %+v", i+1, st)
		}
		// The text as the receiver's template made it, the code's place
		// kept for the escalated page's own code.
		if st.Text != page.Messages[0].Text {
			t.Errorf("step %d text %q, want the page's with the placeholder %q", i+1, st.Text, page.Messages[0].Text)
		}
		if !maps.Equal(st.Labels, page.EscalationLabels) {
			t.Errorf("step %d labels %v", i+1, st.Labels)
		}
	}
	if got[0].ID != got[0].Escalation {
		t.Errorf("the escalation's id %d is not its first step's %d", got[0].Escalation, got[0].ID)
	}
	// The page itself still got its code.
	if rs := records(t, s, outbox.Filter{NotificationID: first.ID}); len(rs) != 1 || rs[0].Text == page.Messages[0].Text {
		t.Errorf("the page's deliveries %+v: want the code written in", rs)
	}

	// Alertmanager's repeat, and a new alert joining the group: nothing
	// new in this episode.
	e.clock.Advance(time.Minute)
	for _, text := range []string{"FIRING DiskFull again", "FIRING:2 DiskFull"} {
		if r := enqueue(t, s, escPage("db-oncall", text)); r.EscalationsScheduled != 0 {
			t.Errorf("%q began %d escalations in the episode, want 0", text, r.EscalationsScheduled)
		}
	}
	// Another receiver of the group has its own.
	if r := enqueue(t, s, escPage("web-oncall", "FIRING DiskFull web")); r.EscalationsScheduled != 1 {
		t.Errorf("another receiver began %d escalations, want 1", r.EscalationsScheduled)
	}
	if all := outbox.GroupEscalations(steps(t, s, outbox.EscalationFilter{Open: true})); len(all) != 2 || all[0].Receiver != "web-oncall" ||
		all[1].Receiver != "db-oncall" || len(all[1].Steps) != 2 {
		t.Errorf("open escalations %+v: want web-oncall's (the newest) then db-oncall's", all)
	}
	// A message its guards drop schedules nothing: the HA peer's copy.
	dup := escPage("db-oncall", "FIRING DiskFull peer")
	dup.GroupKey, dup.DedupWindow = `{}:{alertname="Other"}`, time.Minute
	dup.Messages[0].DedupKey = "k"
	enqueue(t, s, dup)
	if r := enqueue(t, s, dup); r.Outcome != outbox.OutcomeDuplicate || r.EscalationsScheduled != 0 {
		t.Errorf("the duplicate: %+v, want nothing scheduled", r)
	}

	// The resolution stops both escalations and ends the episode.
	e.clock.Advance(time.Minute)
	res := enqueue(t, s, escResolved())
	if res.EscalationsStopped != 2 {
		t.Errorf("the resolution stopped %d escalations, want 2", res.EscalationsStopped)
	}
	for _, st := range steps(t, s, outbox.EscalationFilter{Since: t0}) {
		if st.GroupKey != escGroup {
			continue
		}
		if st.State != outbox.EscalationStopped || st.Reason != outbox.StopResolved || !st.EndedAt.Equal(t0.Add(2*time.Minute)) {
			t.Errorf("after the resolution: %+v", st)
		}
	}
	for _, st := range steps(t, s, outbox.EscalationFilter{Open: true}) {
		if st.GroupKey == escGroup {
			t.Errorf("open after the resolution: %+v", st)
		}
	}
	// A second resolution (the peer's) stops nothing more.
	if r := enqueue(t, s, escResolved()); r.EscalationsStopped != 0 {
		t.Errorf("a second resolution stopped %d", r.EscalationsStopped)
	}
	// A new episode starts over.
	e.clock.Advance(time.Minute)
	again := enqueue(t, s, escPage("db-oncall", "FIRING DiskFull"))
	if again.EscalationsScheduled != 1 {
		t.Fatalf("the page after the resolution began %d escalations, want 1", again.EscalationsScheduled)
	}
	// No resolution comes: the episode ends a day after it began, once
	// its steps are over.
	for _, st := range steps(t, s, outbox.EscalationFilter{Open: true}) {
		if st.NotificationID == again.ID {
			if _, err := s.StopEscalations(context.Background(), outbox.EscalationStop{Escalation: st.ID, Reason: outbox.StopAcked, At: e.clock.Now()}); err != nil {
				t.Fatal(err)
			}
			break
		}
	}
	e.clock.Advance(outbox.EscalationEpisode - time.Minute)
	if r := enqueue(t, s, escPage("db-oncall", "FIRING DiskFull late")); r.EscalationsScheduled != 0 {
		t.Errorf("within the day, acknowledged: began %d, want 0", r.EscalationsScheduled)
	}
	e.clock.Advance(2 * time.Minute)
	if r := enqueue(t, s, escPage("db-oncall", "FIRING DiskFull next day")); r.EscalationsScheduled != 1 {
		t.Errorf("a day after the episode began: began %d, want 1", r.EscalationsScheduled)
	}
	// Resolved notifications of any outcome end it: one with nothing to
	// send (send_resolved: false) too.
	quiet := escResolved()
	quiet.Messages = nil
	if r := enqueue(t, s, quiet); r.EscalationsStopped != 1 || r.Outcome != outbox.OutcomeUnrouted {
		t.Errorf("an unrouted resolution: %+v, want the escalation stopped", r)
	}
}

// testEscalationLease: due steps are leased once, earliest first, with a
// token and owner; the next due time is reported; an attempt returned to
// the queue keeps its error; a failed one ends; a lapsed lease goes to
// the next caller, whose token alone is honoured.
func testEscalationLease(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	t0 := e.clock.Now()
	enqueue(t, s, escPage("db-oncall", "FIRING DiskFull"))
	if got, next := leaseSteps(t, s, t0.Add(9*time.Minute), 10); len(got) != 0 || !next.Equal(t0.Add(10*time.Minute)) {
		t.Errorf("before it is due: %+v, next %v; want nothing, next at 10m", got, next)
	}
	due := t0.Add(10 * time.Minute)
	got, next := leaseSteps(t, s, due, 10)
	if len(got) != 1 || got[0].Step != 1 || got[0].Lease == "" || got[0].LeaseOwner != s.Owner() || !next.Equal(t0.Add(30*time.Minute)) {
		t.Fatalf("at 10m: %+v, next %v; want step 1 leased, next at 30m", got, next)
	}
	if more, next := leaseSteps(t, s, due, 10); len(more) != 0 || !next.Equal(due.Add(time.Minute)) {
		t.Errorf("leased again: %+v, next %v; want nothing until the lease lapses", more, next)
	}
	if err := s.CompleteEscalation(ctx, got[0].ID, "not-the-lease", outbox.EscalationOutcome{State: outbox.EscalationPending, At: due}); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("another token: %v, want ErrNotFound", err)
	}
	if err := s.CompleteEscalation(ctx, got[0].ID, got[0].Lease, outbox.EscalationOutcome{State: outbox.EscalationEscalated, At: due}); !errors.Is(err, outbox.ErrInvalid) {
		t.Errorf("state escalated: %v, want ErrInvalid (Enqueue records it)", err)
	}
	retry := due.Add(5 * time.Second)
	if err := s.CompleteEscalation(ctx, got[0].ID, got[0].Lease, outbox.EscalationOutcome{State: outbox.EscalationPending, Next: retry,
		Error: "alertmanager unreachable", At: due}); err != nil {
		t.Fatal(err)
	}
	if more, next := leaseSteps(t, s, due.Add(time.Second), 10); len(more) != 0 || !next.Equal(retry) {
		t.Errorf("before the retry: %+v, next %v; want next at the retry", more, next)
	}
	got, _ = leaseSteps(t, s, retry, 10)
	if len(got) != 1 || got[0].Attempts != 1 || got[0].Error != "alertmanager unreachable" || !got[0].DueAt.Equal(due) {
		t.Fatalf("the retry: %+v; want the attempt counted, its error, the due time kept", got)
	}
	// The lease lapses and another caller takes it.
	stale := got[0].Lease
	taken, _ := leaseSteps(t, s, retry.Add(time.Minute), 10)
	if len(taken) != 1 || taken[0].Lease == stale {
		t.Fatalf("after the lease lapsed: %+v", taken)
	}
	if err := s.CompleteEscalation(ctx, got[0].ID, stale, outbox.EscalationOutcome{State: outbox.EscalationFailed, At: retry}); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("the lapsed holder: %v, want ErrNotFound", err)
	}
	ended := retry.Add(time.Minute)
	if err := s.CompleteEscalation(ctx, taken[0].ID, taken[0].Lease, outbox.EscalationOutcome{State: outbox.EscalationFailed,
		Error: `receiver "db-secondary" is no longer configured`, At: ended}); err != nil {
		t.Fatal(err)
	}
	st := steps(t, s, outbox.EscalationFilter{Escalation: taken[0].ID})
	if len(st) != 2 || st[0].State != outbox.EscalationFailed || st[0].Detail == "" || !st[0].EndedAt.Equal(ended) || st[0].Lease != "" ||
		st[1].State != outbox.EscalationPending {
		t.Errorf("after failing step 1: %+v; want it failed with its reason, step 2 pending", st)
	}
	// Nothing is leased for max 0, and the steps survive a restart.
	if got, _ := leaseSteps(t, s, t0.Add(time.Hour), 0); len(got) != 0 {
		t.Errorf("max 0 leased %+v", got)
	}
	s = e.Reopen(s)
	got, next = leaseSteps(t, s, t0.Add(time.Hour), 10)
	if len(got) != 1 || got[0].Step != 2 || !next.IsZero() {
		t.Errorf("after a restart: %+v, next %v; want step 2", got, next)
	}
}

// testEscalationSend: a leased step's page is written, and the step ends
// escalated, in one transaction; a second attempt, a lapsed holder or a
// stopped step writes nothing.
func testEscalationSend(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	t0 := e.clock.Now()
	enqueue(t, s, escPage("db-oncall", "FIRING DiskFull"))
	page := func(step outbox.EscalationStep, lease string) outbox.Notification {
		return outbox.Notification{Source: step.Source, GroupKey: step.GroupKey, Status: "firing", AlertName: step.AlertName,
			Escalation: outbox.EscalationRef{ID: step.ID, Lease: lease},
			Messages:   []outbox.Message{msg(step.StepReceiver, "ESCALATED (10m, no ack): "+step.Text, "+27830000009")}}
	}
	e.clock.Advance(10 * time.Minute)
	got, _ := leaseSteps(t, s, e.clock.Now(), 10)
	if len(got) != 1 {
		t.Fatalf("leased %+v", got)
	}
	step := got[0]
	sent := enqueue(t, s, page(step, step.Lease))
	if sent.Outcome != outbox.OutcomeAccepted || sent.Recipients != 1 || sent.EscalationsScheduled != 0 {
		t.Fatalf("the escalated page: %+v", sent)
	}
	st := steps(t, s, outbox.EscalationFilter{Escalation: step.ID})
	if st[0].State != outbox.EscalationEscalated || st[0].EscalatedTo != sent.ID || !st[0].EndedAt.Equal(e.clock.Now()) || st[0].Lease != "" {
		t.Errorf("step 1 after its page: %+v", st[0])
	}
	// Sent again (a retry after an error that was no error): nothing.
	if again := enqueue(t, s, page(step, step.Lease)); again.Outcome != outbox.OutcomeDuplicate || again.ID != sent.ID {
		t.Errorf("the page again: %+v, want duplicate of %d", again, sent.ID)
	}
	if rs := records(t, s, outbox.Filter{Limit: 1000}); len(rs) != 2 {
		t.Errorf("%d deliveries, want the page and one escalated page", len(rs))
	}
	// Step 2: its lease lapses and another holder takes it; the first
	// holder's page is refused, the second's taken.
	e.clock.Advance(20 * time.Minute)
	got, _ = leaseSteps(t, s, e.clock.Now(), 10)
	if len(got) != 1 || got[0].Step != 2 {
		t.Fatalf("step 2: %+v", got)
	}
	taken, _ := leaseSteps(t, s, e.clock.Now().Add(time.Minute), 10)
	if len(taken) != 1 {
		t.Fatalf("step 2 after its lease lapsed: %+v", taken)
	}
	if r := enqueue(t, s, page(got[0], got[0].Lease)); r.Outcome != outbox.OutcomeDuplicate || r.ID != 0 {
		t.Errorf("the lapsed holder's page: %+v, want duplicate with no id", r)
	}
	// Stopped while the new holder checks: its page is refused too.
	stopped, err := s.StopEscalations(ctx, outbox.EscalationStop{GroupKey: escGroup, Reason: outbox.StopAcked, Detail: "acked by alice", At: e.clock.Now()})
	if err != nil || len(stopped) != 1 || stopped[0].ID != taken[0].ID || stopped[0].State != outbox.EscalationStopped || stopped[0].Reason != outbox.StopAcked {
		t.Fatalf("stop: %+v, %v", stopped, err)
	}
	if r := enqueue(t, s, page(taken[0], taken[0].Lease)); r.Outcome != outbox.OutcomeDuplicate || r.ID != 0 {
		t.Errorf("the page of a stopped step: %+v, want duplicate", r)
	}
	if rs := records(t, s, outbox.Filter{Limit: 1000}); len(rs) != 2 {
		t.Errorf("%d deliveries, want still 2", len(rs))
	}
	// An escalated page for a step that never was: nothing.
	if r := enqueue(t, s, page(outbox.EscalationStep{ID: 999, GroupKey: escGroup}, "x")); r.Outcome != outbox.OutcomeDuplicate {
		t.Errorf("a page for no step: %+v", r)
	}
	_ = t0
}

// testEscalationStop: stopping by group reaches every receiver's pending
// steps, by escalation only that escalation's (named by any of its
// steps); what already ended is untouched; bad selections are refused.
func testEscalationStop(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	now := e.clock.Now()
	enqueue(t, s, escPage("db-oncall", "FIRING DiskFull"))
	enqueue(t, s, escPage("web-oncall", "FIRING DiskFull web"))
	other := escPage("db-oncall", "FIRING Other")
	other.GroupKey = "other"
	enqueue(t, s, other)
	open := outbox.GroupEscalations(steps(t, s, outbox.EscalationFilter{Open: true}))
	if len(open) != 3 {
		t.Fatalf("%d open escalations, want 3", len(open))
	}
	web := open[1]
	// Cancel web-oncall's by its second step's id.
	got, err := s.StopEscalations(ctx, outbox.EscalationStop{Escalation: web.Steps[1].ID, Reason: outbox.StopCancelled, Detail: "by the status page", At: now})
	if err != nil || len(got) != 2 || got[0].Receiver != "web-oncall" || got[1].Detail != "by the status page" {
		t.Fatalf("cancel: %+v, %v", got, err)
	}
	if again, err := s.StopEscalations(ctx, outbox.EscalationStop{Escalation: web.ID, Reason: outbox.StopCancelled, At: now}); err != nil || len(again) != 0 {
		t.Errorf("cancel again: %+v, %v; want nothing", again, err)
	}
	// Silenced: the group's, not the other group's.
	got, err = s.StopEscalations(ctx, outbox.EscalationStop{GroupKey: escGroup, Reason: outbox.StopSilenced, At: now})
	if err != nil || len(got) != 2 || got[0].Receiver != "db-oncall" || got[0].Reason != outbox.StopSilenced {
		t.Errorf("silenced: %+v, %v; want db-oncall's two steps", got, err)
	}
	if open := outbox.GroupEscalations(steps(t, s, outbox.EscalationFilter{Open: true})); len(open) != 1 || open[0].GroupKey != "other" {
		t.Errorf("open after the stops: %+v", open)
	}
	if one := steps(t, s, outbox.EscalationFilter{Escalation: web.ID}); len(one) != 2 || one[0].Reason != outbox.StopCancelled {
		t.Errorf("web-oncall's steps %+v", one)
	}
	if none := steps(t, s, outbox.EscalationFilter{Escalation: 12345}); len(none) != 0 {
		t.Errorf("an unknown escalation's steps: %+v", none)
	}
	for _, bad := range []outbox.EscalationStop{
		{Reason: outbox.StopAcked},
		{GroupKey: "g", Escalation: 1, Reason: outbox.StopAcked},
		{GroupKey: "g", Reason: "bored"},
	} {
		if _, err := s.StopEscalations(ctx, bad); !errors.Is(err, outbox.ErrInvalid) {
			t.Errorf("stop %+v: %v, want ErrInvalid", bad, err)
		}
	}
}

// testEscalationValidation: steps that cannot be scheduled are refused
// whole, and write nothing.
func testEscalationValidation(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	for name, mod := range map[string]func(*outbox.Notification){
		"no group key":     func(n *outbox.Notification) { n.GroupKey = "" },
		"no receiver":      func(n *outbox.Notification) { n.Messages[0].Escalate[1].Receiver = "" },
		"not increasing":   func(n *outbox.Notification) { n.Messages[0].Escalate[1].After = 10 * time.Minute },
		"not after":        func(n *outbox.Notification) { n.Messages[0].Escalate[0].After = 0 },
		"escalated itself": func(n *outbox.Notification) { n.Escalation = outbox.EscalationRef{ID: 1, Lease: "x"} },
		"page without a lease": func(n *outbox.Notification) {
			n.Messages[0].Escalate, n.Escalation = nil, outbox.EscalationRef{ID: 1}
		},
	} {
		n := escPage("db-oncall", "FIRING")
		mod(&n)
		if _, err := s.Enqueue(context.Background(), n); !errors.Is(err, outbox.ErrInvalid) {
			t.Errorf("%s: %v, want ErrInvalid", name, err)
		}
	}
	if got := steps(t, s, outbox.EscalationFilter{}); len(got) != 0 {
		t.Errorf("refused pages scheduled %+v", got)
	}
	// Steps on a resolved page are ignored.
	r := escPage("db-oncall", "RESOLVED")
	r.Status = "resolved"
	if got := enqueue(t, s, r); got.EscalationsScheduled != 0 {
		t.Errorf("a resolved page began %d escalations", got.EscalationsScheduled)
	}
}

// testEscalationLeaseConcurrent: callers leasing at once (goroutines on
// one store, and two stores where the driver has replicas) each get
// different steps, and every due step once.
func testEscalationLeaseConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	stores := []outbox.Store{e.Open()}
	if h.Concurrent() {
		stores = append(stores, e.Open())
	}
	for i := range 20 {
		n := escPage("db-oncall", "FIRING")
		n.GroupKey = fmt.Sprint("g", i)
		enqueue(t, stores[0], n)
	}
	due := e.clock.Now().Add(time.Hour)
	var mu sync.Mutex
	seen := map[int64]int{}
	var wg sync.WaitGroup
	for i := range 8 {
		s := stores[i%len(stores)]
		wg.Go(func() {
			for {
				got, _, err := s.LeaseEscalations(context.Background(), due, 3, time.Hour)
				if err != nil {
					t.Error(err)
					return
				}
				if len(got) == 0 {
					return
				}
				mu.Lock()
				for _, st := range got {
					seen[st.ID]++
				}
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if len(seen) != 40 {
		t.Errorf("%d steps leased, want all 40", len(seen))
	}
	for id, n := range seen {
		if n != 1 {
			t.Errorf("step %d leased %d times", id, n)
		}
	}
}

// testPruneEscalations: Prune forgets escalations that ended long ago
// and began more than an episode ago, never a pending step nor an
// episode still running.
func testPruneEscalations(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	enqueue(t, s, escPage("db-oncall", "FIRING"))
	pending := escPage("db-oncall", "FIRING pending")
	pending.GroupKey = "pending"
	pending.Messages[0].Escalate = []outbox.EscalationPlan{{After: 20 * time.Hour, Receiver: "x"}, {After: 40 * time.Hour, Receiver: "y"}}
	enqueue(t, s, pending)
	if _, err := s.StopEscalations(ctx, outbox.EscalationStop{GroupKey: escGroup, Reason: outbox.StopAcked, At: e.clock.Now()}); err != nil {
		t.Fatal(err)
	}
	e.clock.Advance(2 * time.Hour)
	if _, err := s.Prune(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := steps(t, s, outbox.EscalationFilter{}); len(got) != 4 {
		t.Errorf("%d steps after pruning within the episode, want 4", len(got))
	}
	// Unresolved and acknowledged, the episode holds the next page back.
	if r := enqueue(t, s, escPage("db-oncall", "FIRING repeat")); r.EscalationsScheduled != 0 {
		t.Errorf("the repeat began %d escalations", r.EscalationsScheduled)
	}
	e.clock.Advance(outbox.EscalationEpisode)
	if _, err := s.Prune(ctx, time.Hour); err != nil {
		t.Fatal(err)
	}
	got := steps(t, s, outbox.EscalationFilter{})
	if len(got) != 2 || got[0].GroupKey != "pending" {
		t.Errorf("after the episode: %+v; want only the escalation with a pending step", got)
	}
}

// testEscalationScheduleConcurrent: pages of one group to one receiver
// enqueued at once (an HA pair's two copies reaching two replicas, with
// no dedup window) begin one escalation between them, not one each.
func testEscalationScheduleConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	stores := []outbox.Store{e.Open()}
	if h.Concurrent() {
		stores = append(stores, e.Open())
	}
	var mu sync.Mutex
	began := 0
	var wg sync.WaitGroup
	for i := range 8 {
		s := stores[i%len(stores)]
		wg.Go(func() {
			r := enqueueOrError(t, s, escPage("db-oncall", fmt.Sprint("FIRING DiskFull copy ", i)))
			mu.Lock()
			began += r.EscalationsScheduled
			mu.Unlock()
		})
	}
	wg.Wait()
	if got := steps(t, stores[0], outbox.EscalationFilter{Open: true}); began != 1 || len(got) != 2 {
		t.Errorf("8 pages at once began %d escalations with %d steps, want 1 with 2", began, len(got))
	}
}
