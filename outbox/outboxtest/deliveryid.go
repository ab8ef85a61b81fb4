package outboxtest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// withID returns n carrying the delivery id id until expires.
func withID(n outbox.Notification, id string, expires time.Time) outbox.Notification {
	n.DeliveryID, n.DeliveryIDExpires = id, expires
	return n
}

// testDeliveryID: a delivery id seen before and not yet expired makes
// Enqueue write nothing and answer the first notification's id with
// OutcomeDuplicate, across a restart; other ids, and the same id once
// expired, are recorded as usual.
func testDeliveryID(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	now := e.clock.Now()
	first := enqueue(t, s, withID(note("deploy failed"), "github:abc", now.Add(time.Hour)))
	if first.Outcome != outbox.OutcomeAccepted || first.Recipients != 2 {
		t.Fatalf("first delivery: %+v", first)
	}
	drain(s)
	again := enqueue(t, s, withID(note("deploy failed"), "github:abc", now.Add(time.Hour)))
	if again.Outcome != outbox.OutcomeDuplicate || again.ID != first.ID || again.Recipients != 0 || !again.Replayed {
		t.Errorf("repeat: %+v, want a replayed duplicate of notification %d with no recipients", again, first.ID)
	}
	if first.Replayed {
		t.Errorf("the first delivery is marked replayed: %+v", first)
	}
	if woken(s) {
		t.Error("a duplicate woke the dispatcher")
	}
	if st := stats(t, s); st.Pending != 2 {
		t.Errorf("pending = %d after a duplicate, want the first delivery's 2", st.Pending)
	}
	// Ids are compared whole: another source's id with the same value is
	// another id.
	if other := enqueue(t, s, withID(note("deploy failed"), "gitea:abc", now.Add(time.Hour))); other.Outcome != outbox.OutcomeAccepted {
		t.Errorf("another id: %+v, want accepted", other)
	}

	// A restart keeps the ids.
	s = e.Reopen(s)
	e.clock.Advance(59 * time.Minute)
	if r := enqueue(t, s, withID(note("deploy failed"), "github:abc", e.clock.Now().Add(time.Hour))); r.Outcome != outbox.OutcomeDuplicate || r.ID != first.ID {
		t.Errorf("repeat after a restart: %+v, want duplicate of %d", r, first.ID)
	}
	// The duplicate did not extend the first record: at its expiry the id
	// is free, and whoever comes next records it anew.
	e.clock.Advance(time.Minute)
	later := enqueue(t, s, withID(note("deploy failed"), "github:abc", e.clock.Now().Add(time.Hour)))
	if later.Outcome != outbox.OutcomeAccepted || later.ID == first.ID {
		t.Fatalf("after expiry: %+v, want a new accepted notification", later)
	}
	if r := enqueue(t, s, withID(note("deploy failed"), "github:abc", e.clock.Now().Add(time.Hour))); r.Outcome != outbox.OutcomeDuplicate || r.ID != later.ID {
		t.Errorf("repeat of the renewed id: %+v, want duplicate of %d", r, later.ID)
	}
}

// testDeliveryIDGuards: the id is checked before every other guard and
// recorded whatever the outcome, so a repeat of a filtered or unrouted
// notification is a duplicate too; a call that fails records no id.
func testDeliveryIDGuards(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	exp := e.clock.Now().Add(time.Hour)

	// Resolved with nothing firing before: filtered, and the id recorded.
	resolved := outbox.Notification{Source: "ci", GroupKey: "ci:1", Status: "resolved", RequireFiring: true,
		Messages: []outbox.Message{msg("ops", "RESOLVED", "+27830000001")}}
	r1 := enqueue(t, s, withID(resolved, "ci:r1", exp))
	if r1.Outcome != outbox.OutcomeFiltered {
		t.Fatalf("resolved without firing: %+v", r1)
	}
	if r := enqueue(t, s, withID(resolved, "ci:r1", exp)); r.Outcome != outbox.OutcomeDuplicate || r.ID != r1.ID {
		t.Errorf("repeat of a filtered notification: %+v, want duplicate of %d", r, r1.ID)
	}
	// An unrouted one, and a pipeline outcome of its own.
	u := enqueue(t, s, withID(outbox.Notification{Source: "ci"}, "ci:u", exp))
	if r := enqueue(t, s, withID(outbox.Notification{Source: "ci"}, "ci:u", exp)); r.Outcome != outbox.OutcomeDuplicate || r.ID != u.ID {
		t.Errorf("repeat of an unrouted notification: %+v, want duplicate of %d", r, u.ID)
	}
	m := enqueue(t, s, withID(outbox.Notification{Source: "ci", Outcome: "muted"}, "ci:m", exp))
	if r := enqueue(t, s, withID(outbox.Notification{Source: "ci", Outcome: "muted"}, "ci:m", exp)); r.Outcome != outbox.OutcomeDuplicate || r.ID != m.ID {
		t.Errorf("repeat of a muted notification: %+v, want duplicate of %d", r, m.ID)
	}

	// The delivery id comes before the once key: a repeat carrying a new
	// once key is a duplicate, and the once key stays unused.
	once := withID(note("notice"), "ci:once", exp)
	once.OnceKey = "notice:1"
	if r := enqueue(t, s, once); r.Outcome != outbox.OutcomeAccepted {
		t.Fatalf("first with a once key: %+v", r)
	}
	again := withID(note("notice"), "ci:once", exp)
	again.OnceKey = "notice:2"
	if r := enqueue(t, s, again); r.Outcome != outbox.OutcomeDuplicate {
		t.Errorf("repeat with a new once key: %+v, want duplicate", r)
	}
	fresh := note("notice")
	fresh.OnceKey = "notice:2"
	if r := enqueue(t, s, fresh); r.Outcome != outbox.OutcomeAccepted {
		t.Errorf("the once key of a duplicate was recorded: %+v", r)
	}

	// A refused call records nothing: the corrected retry is taken.
	bad := withID(outbox.Notification{Source: "ci", Status: "resolved", RequireFiring: true}, "ci:bad", exp)
	if _, err := s.Enqueue(ctx, bad); !errors.Is(err, outbox.ErrInvalid) {
		t.Fatalf("invalid notification: err = %v, want ErrInvalid", err)
	}
	if r := enqueue(t, s, withID(note("x"), "ci:bad", exp)); r.Outcome != outbox.OutcomeAccepted {
		t.Errorf("retry after a refused call: %+v, want accepted", r)
	}
	// A call abandoned before the write records nothing either.
	gone, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := s.Enqueue(gone, withID(note("y"), "ci:gone", exp)); err == nil {
		t.Fatal("enqueue with an ended context succeeded")
	}
	if r := enqueue(t, s, withID(note("y"), "ci:gone", exp)); r.Outcome != outbox.OutcomeAccepted {
		t.Errorf("retry after an abandoned call: %+v, want accepted", r)
	}
}

// testDeliveryIDNoise: the delivery id comes before the noise guards. A
// replay writes nothing at all: no notification, no duplicate key (the
// dedup window still runs from the first), no resolved alert, no
// cancellation; it is marked Replayed. A new id with the same content is
// the noise guards' to judge, and recorded as their duplicate, not
// replayed.
func testDeliveryIDNoise(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	const w = 5 * time.Minute
	exp := e.clock.Now().Add(time.Hour)
	notifications := func() int {
		t.Helper()
		c, err := s.Counts(ctx, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		return c.Notifications
	}

	first := enqueue(t, s, withID(keyed("g", w, "a"), "am:1", exp))
	if first.Outcome != outbox.OutcomeAccepted || first.Replayed {
		t.Fatalf("first: %+v", first)
	}
	before := notifications()
	e.clock.Advance(4 * time.Minute)
	replay := enqueue(t, s, withID(keyed("g", w, "a"), "am:1", exp))
	if replay.Outcome != outbox.OutcomeDuplicate || !replay.Replayed || replay.ID != first.ID || len(replay.Suppressed) != 0 {
		t.Errorf("replay: %+v, want a replayed duplicate of %d, nothing suppressed", replay, first.ID)
	}
	if n := notifications(); n != before {
		t.Errorf("a replay recorded a notification: %d, want %d", n, before)
	}
	// Another id, same content: the dedup guard's duplicate, recorded.
	dup := enqueue(t, s, withID(keyed("g", w, "a"), "am:2", exp))
	if dup.Outcome != outbox.OutcomeDuplicate || dup.Replayed || dup.ID == first.ID || len(dup.Suppressed) != 1 {
		t.Errorf("same content under a new id: %+v, want the dedup guard's duplicate", dup)
	}
	if r := enqueue(t, s, withID(keyed("g", w, "a"), "am:2", exp)); !r.Replayed || r.ID != dup.ID {
		t.Errorf("replay of the dedup duplicate: %+v, want replayed of %d", r, dup.ID)
	}
	// The window runs from the first: neither the replay nor the
	// duplicate refreshed the key.
	e.clock.Advance(90 * time.Second)
	if r := enqueue(t, s, withID(keyed("g", w, "a"), "am:3", exp)); r.Outcome != outbox.OutcomeAccepted {
		t.Errorf("after the first's window: %+v, want accepted", r)
	}

	// A replayed resolution remembers no resolved alert: the replay
	// carries alerts the first did not, and a firing of those still goes.
	start := e.clock.Now().Add(-time.Hour)
	a := outbox.AlertRef{Fingerprint: "aaaa", StartsAt: start}
	b := outbox.AlertRef{Fingerprint: "bbbb", StartsAt: start}
	resolved := func(refs ...outbox.AlertRef) outbox.Notification {
		return outbox.Notification{Source: "ci", GroupKey: "r", Status: "resolved", Resolved: refs,
			Messages: []outbox.Message{msg("ops", "resolved", "+27830000009")}}
	}
	enqueue(t, s, withID(resolved(a), "ci:r", exp))
	if r := enqueue(t, s, withID(resolved(b), "ci:r", exp)); !r.Replayed {
		t.Fatalf("replayed resolution: %+v", r)
	}
	firing := func(ref outbox.AlertRef) outbox.Notification {
		m := msg("ops", "firing "+ref.Fingerprint, "+27830000009")
		m.Alerts = []outbox.AlertRef{ref}
		return outbox.Notification{Source: "ci", GroupKey: "r", Status: "firing", Messages: []outbox.Message{m}}
	}
	if r := enqueue(t, s, firing(a)); r.Outcome != outbox.OutcomeStale {
		t.Errorf("firing of the first's resolved alert: %s, want stale", r.Outcome)
	}
	if r := enqueue(t, s, firing(b)); r.Outcome != outbox.OutcomeAccepted {
		t.Errorf("firing of an alert only the replay named: %s, want accepted", r.Outcome)
	}
}

// testDeliveryIDConcurrent: many callers with one id at once (a sender
// retrying while the first attempt is still being written, or replicas):
// exactly one is recorded, and every other is its duplicate.
func testDeliveryIDConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	exp := e.clock.Now().Add(time.Hour)
	const callers = 16
	var wg sync.WaitGroup
	res := make([]outbox.Enqueued, callers)
	errs := make([]error, callers)
	for i := range callers {
		wg.Go(func() {
			res[i], errs[i] = s.Enqueue(context.Background(), withID(note("storm"), "am:same", exp))
		})
	}
	wg.Wait()
	accepted, dup := int64(0), 0
	for i := range callers {
		switch {
		case errs[i] != nil:
			t.Fatalf("enqueue %d: %v", i, errs[i])
		case res[i].Outcome == outbox.OutcomeAccepted:
			if accepted != 0 {
				t.Fatalf("two accepted: %d and %d", accepted, res[i].ID)
			}
			accepted = res[i].ID
		case res[i].Outcome == outbox.OutcomeDuplicate:
			dup++
		default:
			t.Fatalf("enqueue %d: %+v", i, res[i])
		}
	}
	if accepted == 0 || dup != callers-1 {
		t.Fatalf("accepted %d, duplicates %d; want one and %d", accepted, dup, callers-1)
	}
	for i := range callers {
		if res[i].ID != accepted {
			t.Errorf("caller %d got id %d, want %d", i, res[i].ID, accepted)
		}
	}
	if st := stats(t, s); st.Pending != 2 {
		t.Errorf("pending = %d, want one notification's 2", st.Pending)
	}
}

// testDeliveryIDPrune: Prune forgets expired ids without counting them,
// and keeps those still valid.
func testDeliveryIDPrune(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	short := enqueue(t, s, withID(outbox.Notification{Source: "x"}, "x:short", e.clock.Now().Add(time.Minute)))
	long := enqueue(t, s, withID(outbox.Notification{Source: "x"}, "x:long", e.clock.Now().Add(48*time.Hour)))
	e.clock.Advance(2 * time.Minute)
	if n, err := s.Prune(ctx, 24*time.Hour); err != nil || n != 0 {
		t.Fatalf("prune: n=%d err=%v, want 0 notifications", n, err)
	}
	if r := enqueue(t, s, withID(outbox.Notification{Source: "x"}, "x:short", e.clock.Now().Add(time.Minute))); r.Outcome == outbox.OutcomeDuplicate || r.ID == short.ID {
		t.Errorf("expired id after prune: %+v, want recorded anew", r)
	}
	// The id outlives its notification's retention.
	e.clock.Advance(25 * time.Hour)
	if n, err := s.Prune(ctx, 24*time.Hour); err != nil || n < 1 {
		t.Fatalf("prune: n=%d err=%v, want the old notifications gone", n, err)
	}
	if r := enqueue(t, s, withID(outbox.Notification{Source: "x"}, "x:long", e.clock.Now().Add(time.Hour))); r.Outcome != outbox.OutcomeDuplicate || r.ID != long.ID {
		t.Errorf("id kept past its notification: %+v, want duplicate of %d", r, long.ID)
	}
}

// testHealth: a store that reports its health (outbox.HealthChecker)
// reports a fresh store healthy and a closed one not.
func testHealth(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	hc, ok := s.(outbox.HealthChecker)
	if !ok {
		t.Log("the driver does not implement outbox.HealthChecker: readiness then rests on its write errors alone")
		return
	}
	ctx := context.Background()
	for range 3 {
		if err := hc.Health(ctx); err != nil {
			t.Fatalf("health of a fresh store: %v", err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := hc.Health(ctx); err == nil {
		t.Error("a closed store reports itself healthy")
	}
}
