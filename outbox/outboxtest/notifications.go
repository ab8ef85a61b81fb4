package outboxtest

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// notifications lists what f selects, failing the test on an error.
func notifications(t testing.TB, s outbox.Store, f outbox.NotificationFilter) []outbox.NotificationRecord {
	t.Helper()
	ns, err := s.Notifications(context.Background(), f)
	if err != nil {
		t.Fatalf("notifications: %v", err)
	}
	return ns
}

func notificationIDs(ns []outbox.NotificationRecord) []int64 {
	out := make([]int64, len(ns))
	for i, n := range ns {
		out[i] = n.ID
	}
	return out
}

// testNotifications pins the grouped view's query: newest first, every
// delivery of each notification in recording order, notifications without
// deliveries included unless a state is asked for, the alert name kept.
func testNotifications(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	first := note("one", "two")
	first.AlertName = "DiskFull"
	a := enqueue(t, s, first).ID
	e.clock.Advance(time.Minute)
	since := e.clock.Now()
	unrouted := enqueue(t, s, outbox.Notification{Source: "ci", GroupKey: "g", Status: "firing", AlertName: "BuildFailed"}).ID
	e.clock.Advance(time.Minute)
	c := enqueue(t, s, outbox.Notification{Source: "alertmanager", Status: "resolved", AlertName: "HighLatency, DiskFull",
		Messages: []outbox.Message{msg("ops", "three", "+27830000003")}}).ID

	// Fail one number of the first notification; the rest go back to
	// the queue.
	var outs []outbox.Outcome
	failed := false
	for _, d := range deliveries(lease(t, s, e.clock.Now(), 10, 10)) {
		if d.NotificationID == a && !failed {
			outs, failed = append(outs, outbox.Failed(d, "primary", "E101", "InvalidNumber")), true
			continue
		}
		outs = append(outs, outbox.Released(d))
	}
	if !failed {
		t.Fatal("leased nothing of the first notification")
	}
	complete(t, s, outs...)

	all := notifications(t, s, outbox.NotificationFilter{})
	if got, want := notificationIDs(all), []int64{c, unrouted, a}; !slices.Equal(got, want) {
		t.Fatalf("notifications %v, want %v (newest first, the unrouted one included)", got, want)
	}
	n := all[2]
	if n.AlertName != "DiskFull" || n.Source != "alertmanager" || n.Status != "firing" || n.Outcome != outbox.OutcomeAccepted ||
		n.GroupKey != `{}:{alertname="X"}` || !n.ReceivedAt.Equal(since.Add(-time.Minute)) {
		t.Errorf("first notification %+v", n)
	}
	if len(n.Deliveries) != 4 {
		t.Fatalf("first notification has %d deliveries, want 4", len(n.Deliveries))
	}
	var texts []string
	for i, r := range n.Deliveries {
		texts = append(texts, r.Text+" "+r.Number)
		if i > 0 && r.ID < n.Deliveries[i-1].ID {
			t.Errorf("deliveries out of recording order: %d after %d", r.ID, n.Deliveries[i-1].ID)
		}
		if r.NotificationID != a || r.AlertName != "DiskFull" {
			t.Errorf("delivery %+v does not carry its notification", r)
		}
	}
	if want := []string{"one +27830000001", "one +27830000002", "two +27830000001", "two +27830000002"}; !slices.Equal(texts, want) {
		t.Errorf("deliveries %v, want %v", texts, want)
	}
	if u := all[1]; u.Outcome != outbox.OutcomeUnrouted || len(u.Deliveries) != 0 || u.AlertName != "BuildFailed" {
		t.Errorf("unrouted notification %+v", u)
	}
	if r := all[0].Deliveries; len(r) != 1 || r[0].Receiver != "ops" || r[0].State != outbox.StatePending || r[0].AlertName != "HighLatency, DiskFull" {
		t.Errorf("last notification's deliveries %+v", r)
	}

	for _, tc := range []struct {
		name string
		f    outbox.NotificationFilter
		want []int64
	}{
		{"failed", outbox.NotificationFilter{State: outbox.StateFailed}, []int64{a}},
		{"pending", outbox.NotificationFilter{State: outbox.StatePending}, []int64{c, a}},
		{"accepted", outbox.NotificationFilter{State: outbox.StateAccepted}, nil},
		{"since", outbox.NotificationFilter{Since: since}, []int64{c, unrouted}},
		{"since and state", outbox.NotificationFilter{Since: since, State: outbox.StatePending}, []int64{c}},
		{"limit", outbox.NotificationFilter{Limit: 2}, []int64{c, unrouted}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := notifications(t, s, tc.f)
			if !slices.Equal(notificationIDs(got), tc.want) && !(len(got) == 0 && len(tc.want) == 0) {
				t.Errorf("got %v, want %v", notificationIDs(got), tc.want)
			}
			// A state filter selects notifications, not rows: each comes
			// with all of its deliveries.
			for _, n := range got {
				if n.ID == a && len(n.Deliveries) != 4 {
					t.Errorf("notification %d came with %d deliveries, want all 4", a, len(n.Deliveries))
				}
			}
		})
	}

	// The default limit is 25, and no caller gets more than 200.
	for i := range 210 {
		enqueue(t, s, outbox.Notification{Source: "t", AlertName: fmt.Sprint(i)})
	}
	if got := len(notifications(t, s, outbox.NotificationFilter{})); got != 25 {
		t.Errorf("default limit returned %d notifications, want 25", got)
	}
	if got := len(notifications(t, s, outbox.NotificationFilter{Limit: 5000})); got != 200 {
		t.Errorf("limit 5000 returned %d notifications, want 200", got)
	}
}

// testCounts pins the status page's 24-hour figures: notifications
// received in the period, and deliveries accepted or failed in it by their
// last update.
func testCounts(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	counts := func(since time.Time) outbox.Counts {
		t.Helper()
		c, err := s.Counts(ctx, since)
		if err != nil {
			t.Fatalf("counts: %v", err)
		}
		return c
	}
	start := e.clock.Now()
	if c := counts(start.Add(-time.Hour)); c != (outbox.Counts{}) {
		t.Errorf("empty store counts %+v", c)
	}
	enqueue(t, s, note("old"))
	bs := lease(t, s, e.clock.Now(), 1, 10)
	complete(t, s, outbox.Accepted(bs[0].Deliveries[0], "primary", "a1"), outbox.Failed(bs[0].Deliveries[1], "primary", "E", "e"))
	e.clock.Advance(2 * time.Hour)
	mid := e.clock.Now()
	enqueue(t, s, note("new"))
	enqueue(t, s, outbox.Notification{Source: "ci"}) // unrouted
	bs = lease(t, s, e.clock.Now(), 1, 10)
	complete(t, s, outbox.Accepted(bs[0].Deliveries[0], "primary", "a2"), outbox.Rescheduled(bs[0].Deliveries[1], "primary", e.clock.Now(), "5xx", "e"))

	if got, want := counts(start), (outbox.Counts{Notifications: 3, Accepted: 2, Failed: 1}); got != want {
		t.Errorf("counts since the start %+v, want %+v", got, want)
	}
	if got, want := counts(mid), (outbox.Counts{Notifications: 2, Accepted: 1, Failed: 0}); got != want {
		t.Errorf("counts since the second hour %+v, want %+v", got, want)
	}
	if got := counts(e.clock.Now().Add(time.Minute)); got != (outbox.Counts{}) {
		t.Errorf("counts since a time to come %+v", got)
	}
}
