package outboxtest

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// keyed is a firing notification of group with one message per receiver,
// each with its own text and dedup key.
func keyed(group string, window time.Duration, receivers ...string) outbox.Notification {
	n := outbox.Notification{Source: "alertmanager", GroupKey: group, Status: "firing", DedupWindow: window}
	for _, r := range receivers {
		m := msg(r, "text for "+r, "+2783000000"+fmt.Sprint(len(n.Messages)+1))
		m.DedupKey = "key-" + r
		n.Messages = append(n.Messages, m)
	}
	return n
}

// testMergeByText: messages of one notification with the same text are
// merged, each number once, with every message's marks and the first
// name on call at it.
func testMergeByText(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	a := msg("ops", "same", "+1", "+2")
	a.People = []string{"alice", ""}
	b := msg("db", "same", "+2", "+3")
	b.People = []string{"bob", "carol"}
	b.Critical = true
	c := msg("web", "other", "+2")
	got := enqueue(t, s, outbox.Notification{Source: "am", GroupKey: "g", Status: "firing", Messages: []outbox.Message{a, b, c}})
	if got.Recipients != 4 {
		t.Errorf("recipients %d, want 4 (+1, +2, +3 once for the shared text, +2 for the other)", got.Recipients)
	}
	type row struct {
		receiver, text, number string
		critical               bool
		person                 string
	}
	var rows []row
	for _, r := range records(t, s, outbox.Filter{NotificationID: got.ID}) {
		rows = append(rows, row{r.Receiver, r.Text, r.Number, r.Critical, r.Person})
	}
	slices.SortFunc(rows, func(x, y row) int {
		return cmpStrings(x.text+x.number, y.text+y.number)
	})
	want := []row{{"web", "other", "+2", false, ""}, {"ops", "same", "+1", false, "alice"}, {"ops", "same", "+2", true, "bob"}, {"ops", "same", "+3", true, "carol"}}
	if !slices.Equal(rows, want) {
		t.Errorf("rows\n got %+v\nwant %+v", rows, want)
	}
	bs := lease(t, s, e.clock.Now(), 10, 10)
	if len(bs) != 2 {
		t.Fatalf("%d batches, want one per text", len(bs))
	}
}

func cmpStrings(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// testDedup: a message whose key equals the latest for its (receiver,
// group) within the window is dropped; nothing else is.
func testDedup(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	const w = 5 * time.Minute
	steps := []struct {
		name    string
		advance time.Duration
		n       outbox.Notification
		outcome string
		dropped []string // receivers
	}{
		{"first", 0, keyed("g1", w, "a", "b"), outbox.OutcomeAccepted, nil},
		{"the same at once", 0, keyed("g1", w, "a", "b"), outbox.OutcomeDuplicate, []string{"a", "b"}},
		{"the same a little later", 4 * time.Minute, keyed("g1", w, "a", "b"), outbox.OutcomeDuplicate, []string{"a", "b"}},
		// The duplicates did not extend the window: it runs from the first.
		{"after the window", 90 * time.Second, keyed("g1", w, "a", "b"), outbox.OutcomeAccepted, nil},
		{"another group", 0, keyed("g2", w, "a"), outbox.OutcomeAccepted, nil},
		{"one receiver new", 0, keyed("g1", w, "a", "c"), outbox.OutcomeAccepted, []string{"a"}},
		{"no window", 0, keyed("g1", 0, "a"), outbox.OutcomeAccepted, nil},
	}
	for _, st := range steps {
		e.clock.Advance(st.advance)
		got := enqueue(t, s, st.n)
		var dropped []string
		for _, sp := range got.Suppressed {
			if sp.Reason != outbox.ReasonDuplicate {
				t.Errorf("%s: suppressed %+v, want duplicates only", st.name, sp)
			}
			dropped = append(dropped, sp.Receiver)
		}
		if got.Outcome != st.outcome || !slices.Equal(dropped, st.dropped) {
			t.Errorf("%s: outcome %s dropped %v, want %s %v", st.name, got.Outcome, dropped, st.outcome, st.dropped)
		}
		wantRows := len(st.n.Messages) - len(st.dropped)
		if n := len(records(t, s, outbox.Filter{NotificationID: got.ID})); n != wantRows || got.Recipients != wantRows {
			t.Errorf("%s: %d rows, %d recipients, want %d", st.name, n, got.Recipients, wantRows)
		}
	}

	// Only the latest key counts: A, then B, then A again is news.
	n := keyed("g3", w, "a")
	enqueue(t, s, n)
	other := keyed("g3", w, "a")
	other.Messages[0].DedupKey = "changed"
	if got := enqueue(t, s, other); got.Outcome != outbox.OutcomeAccepted {
		t.Errorf("a changed key: %s", got.Outcome)
	}
	if got := enqueue(t, s, n); got.Outcome != outbox.OutcomeAccepted {
		t.Errorf("the first key again after another: %s, want accepted", got.Outcome)
	}

	// The keys are stored: a restart keeps them.
	s = e.Reopen(s)
	if got := enqueue(t, s, n); got.Outcome != outbox.OutcomeDuplicate {
		t.Errorf("after a restart: %s, want duplicate", got.Outcome)
	}
}

// testDedupConcurrent: the same notification posted many times at once
// (two Alertmanager peers, and their retries) is accepted exactly once,
// on one store and, where several may be open, across two.
func testDedupConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	stores := []outbox.Store{e.Open()}
	if h.Concurrent() {
		stores = append(stores, e.Open())
	}
	const groups, copies = 10, 6
	var mu sync.Mutex
	accepted := map[string]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for g := range groups {
		for c := range copies {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				group := fmt.Sprintf("g%d", g)
				got := enqueueOrError(t, stores[c%len(stores)], keyed(group, time.Minute, "ops"))
				if got.Outcome == outbox.OutcomeAccepted {
					mu.Lock()
					accepted[group]++
					mu.Unlock()
				}
			}()
		}
	}
	close(start)
	wg.Wait()
	for g := range groups {
		if n := accepted[fmt.Sprintf("g%d", g)]; n != 1 {
			t.Errorf("group %d accepted %d times, want once", g, n)
		}
	}
}

// testStale: a firing whose every alert instance was already seen
// resolved is dropped as stale; a re-fire (a new start) is not.
func testStale(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	start := e.clock.Now().Add(-time.Hour)
	a := outbox.AlertRef{Fingerprint: "aaaa", StartsAt: start}
	b := outbox.AlertRef{Fingerprint: "bbbb", StartsAt: start}
	firing := func(alerts ...outbox.AlertRef) outbox.Notification {
		m := msg("ops", fmt.Sprintf("firing %d", len(alerts)), "+27830000001")
		m.Alerts = alerts
		return outbox.Notification{Source: "alertmanager", GroupKey: "g", Status: "firing", Messages: []outbox.Message{m}}
	}
	if got := enqueue(t, s, firing(a)); got.Outcome != outbox.OutcomeAccepted {
		t.Fatalf("before any resolution: %s", got.Outcome)
	}
	// The resolution is remembered even when it was itself a duplicate
	// (or filtered, or unrouted): it still says the alert resolved.
	enqueue(t, s, outbox.Notification{Source: "alertmanager", GroupKey: "g", Status: "resolved", Outcome: outbox.OutcomeDuplicate,
		Resolved: []outbox.AlertRef{a}})
	for _, tc := range []struct {
		name string
		n    outbox.Notification
		want string
	}{
		{"the same instance late", firing(a), outbox.OutcomeStale},
		{"a re-fire", firing(outbox.AlertRef{Fingerprint: "aaaa", StartsAt: start.Add(time.Minute)}), outbox.OutcomeAccepted},
		{"one of two resolved", firing(a, b), outbox.OutcomeAccepted},
		{"no alerts named", firing(), outbox.OutcomeAccepted},
	} {
		got := enqueue(t, s, tc.n)
		if got.Outcome != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got.Outcome, tc.want)
		}
		if tc.want == outbox.OutcomeStale && (len(got.Suppressed) != 1 || got.Suppressed[0].Reason != outbox.ReasonStale || got.Recipients != 0) {
			t.Errorf("%s: %+v", tc.name, got)
		}
	}
	// A resolved notification is never stale.
	res := firing(a)
	res.Status = "resolved"
	if got := enqueue(t, s, res); got.Outcome != outbox.OutcomeAccepted {
		t.Errorf("a resolution: %s", got.Outcome)
	}
	// A stale message stores no dedup key: a genuine re-fire right after
	// is not taken for its duplicate.
	late := firing(a)
	late.DedupWindow = time.Minute
	late.Messages[0].DedupKey = "k"
	if got := enqueue(t, s, late); got.Outcome != outbox.OutcomeStale {
		t.Fatalf("late firing with a key: %s", got.Outcome)
	}
	again := firing(outbox.AlertRef{Fingerprint: "aaaa", StartsAt: start.Add(2 * time.Minute)})
	again.DedupWindow = time.Minute
	again.Messages[0].DedupKey = "k"
	if got := enqueue(t, s, again); got.Outcome != outbox.OutcomeAccepted {
		t.Errorf("re-fire after a stale one: %s", got.Outcome)
	}
	// Duplicate and stale at once: duplicate wins for the notification.
	mixed := firing(a)
	mixed.DedupWindow = time.Minute
	dup := msg("db", "again", "+27830000002")
	dup.DedupKey = "d"
	first := mixed
	first.Messages = []outbox.Message{dup}
	enqueue(t, s, first)
	mixed.Messages = append(mixed.Messages, dup)
	if got := enqueue(t, s, mixed); got.Outcome != outbox.OutcomeDuplicate || len(got.Suppressed) != 2 {
		t.Errorf("stale and duplicate: %+v", got)
	}
	// Remembered across a restart.
	s = e.Reopen(s)
	if got := enqueue(t, s, firing(a)); got.Outcome != outbox.OutcomeStale {
		t.Errorf("after a restart: %s", got.Outcome)
	}
}

// testCancelHeld: a resolution cancels the held firing of its group to a
// number, and itself unless the number was sent a firing it must follow.
func testCancelHeld(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	const x, y = "+27830000001", "+27830000002"
	limits := outbox.Limits{Throttle: []outbox.Bucket{{Count: 1, Per: time.Hour}}}
	send := func(group, status, text string, numbers ...string) outbox.Enqueued {
		return enqueue(t, s, outbox.Notification{Source: "alertmanager", GroupKey: group, Status: status,
			CancelHeld: status == "resolved", Messages: []outbox.Message{msg("ops", text, numbers...)}})
	}
	// Fill x's and y's one place, then hold a firing of g for both.
	send("fill", "firing", "fill", x, y)
	admitAll(t, s, e.clock.Now(), limits)
	first := send("g", "firing", "g firing", x, y)
	if adm := admitAll(t, s, e.clock.Now(), limits); len(adm.Held) != 2 {
		t.Fatalf("held %d, want 2", len(adm.Held))
	}
	// y is sent a firing of g all the same, by an unthrottled message (a
	// last-resort receiver): y's resolution must then follow it.
	enqueue(t, s, outbox.Notification{Source: "alertmanager", GroupKey: "g", Status: "firing",
		Messages: []outbox.Message{{Receiver: "ops", Text: "g firing before", Segments: 1, Numbers: []string{y}, Unthrottled: true}}})
	for _, b := range lease(t, s, e.clock.Now(), 10, 10) {
		adm, err := s.Admit(ctx, e.clock.Now(), b.Deliveries, limits)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range adm.Send {
			complete(t, s, outbox.Accepted(d, "primary", "p"))
		}
	}
	res := send("g", "resolved", "g resolved", x, y)
	if res.Cancelled != 3 || res.Recipients != 1 {
		t.Errorf("resolution %+v, want 3 cancelled (both held firings, x's resolution) and 1 recipient (y)", res)
	}
	for _, r := range records(t, s, outbox.Filter{NotificationID: first.ID}) {
		if r.State != outbox.StateCancelled || r.ErrorCode != outbox.CodeResolvedBeforeSent || r.Error == "" {
			t.Errorf("held firing to %s: %s %s %q", r.Number, r.State, r.ErrorCode, r.Error)
		}
	}
	for _, r := range records(t, s, outbox.Filter{NotificationID: res.ID}) {
		want := outbox.StateCancelled
		if r.Number == y {
			want = outbox.StatePending // y was sent "g firing before": the resolution follows it
		}
		if r.State != want {
			t.Errorf("resolution to %s: %s, want %s", r.Number, r.State, want)
		}
	}
	// Without the flag, or for another group, nothing is cancelled.
	held := send("h", "firing", "h firing", x)
	admitAll(t, s, e.clock.Now(), limits)
	other := enqueue(t, s, outbox.Notification{Source: "alertmanager", GroupKey: "h", Status: "resolved",
		Messages: []outbox.Message{msg("ops", "h resolved", x)}})
	if other.Cancelled != 0 {
		t.Errorf("without CancelHeld: %+v", other)
	}
	if got := send("other", "resolved", "other resolved", x); got.Cancelled != 0 {
		t.Errorf("another group's resolution: %+v", got)
	}
	if r := records(t, s, outbox.Filter{NotificationID: held.ID}); len(r) != 1 || r[0].State != outbox.StateHeld {
		t.Errorf("h's firing: %+v, want still held", r)
	}
}

func testEnqueueGuardValidation(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	keyNoGroup := keyed("", time.Minute, "a")
	for _, tc := range []struct {
		name string
		n    outbox.Notification
	}{
		{"dedup key without group key", keyNoGroup},
		{"negative window", keyed("g", -time.Second, "a")},
		{"cancel held without group key", outbox.Notification{Source: "x", Status: "resolved", CancelHeld: true}},
		{"resolved alert without fingerprint", outbox.Notification{Source: "x", Resolved: []outbox.AlertRef{{}}}},
		{"message alert without fingerprint", outbox.Notification{Source: "x", Status: "firing",
			Messages: []outbox.Message{{Receiver: "r", Text: "t", Numbers: []string{"+1"}, Alerts: []outbox.AlertRef{{}}}}}},
	} {
		if _, err := s.Enqueue(context.Background(), tc.n); !isInvalid(err) {
			t.Errorf("%s: err = %v, want ErrInvalid", tc.name, err)
		}
	}
}
