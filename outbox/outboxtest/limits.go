package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// one queues one notification with one text to number.
func one(t testing.TB, s outbox.Store, text, number string) outbox.Enqueued {
	t.Helper()
	return enqueue(t, s, outbox.Notification{Source: "alertmanager", GroupKey: "g:" + text, Status: "firing",
		Messages: []outbox.Message{{Receiver: "ops", Text: text, Segments: 1, Numbers: []string{number}, Summary: "FIRING " + text}}})
}

// deliveryOf returns the one delivery of notification id.
func deliveryOf(t testing.TB, s outbox.Store, id int64) outbox.Record {
	t.Helper()
	rs := records(t, s, outbox.Filter{NotificationID: id})
	if len(rs) != 1 {
		t.Fatalf("notification %d has %d deliveries, want 1", id, len(rs))
	}
	return rs[0]
}

// testAdmitThrottle: a number's buckets hold what would exceed them, until
// the oldest admission in the full window ages out.
func testAdmitThrottle(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	t0 := e.clock.Now()
	const x, y, z = "+27830000001", "+27830000002", "+27830000003"
	three := outbox.Limits{Throttle: []outbox.Bucket{{Count: 3, Per: 10 * time.Second}}}

	for i := range 3 {
		one(t, s, fmt.Sprintf("x%d", i), x)
		if adm := admitAll(t, s, e.clock.Now(), three); len(adm.Send) != 1 || len(adm.Held) != 0 {
			t.Fatalf("send %d: %+v, want it sent", i, adm)
		}
		e.clock.Advance(time.Second)
	}
	fourth := one(t, s, "x3", x)
	adm := admitAll(t, s, e.clock.Now(), three)
	if len(adm.Send) != 0 || len(adm.Held) != 1 || !adm.Held[0].Until.Equal(t0.Add(10*time.Second)) {
		t.Fatalf("fourth: %+v, want held until %v (the first admission plus 10s)", adm, t0.Add(10*time.Second))
	}
	r := deliveryOf(t, s, fourth.ID)
	if r.State != outbox.StateHeld || !r.NextAttemptAt.Equal(t0.Add(10*time.Second)) {
		t.Errorf("held record %+v", r)
	}
	if st := stats(t, s); st.Held != 1 || st.Pending != 3 || st.InFlight != 3 {
		t.Errorf("stats %+v, want 1 held apart from 3 pending (in flight)", st)
	}
	if sc := schedule(t, s, e.clock.Now()); !sc.NextHeld.Equal(t0.Add(10 * time.Second)) {
		t.Errorf("next held %v", sc.NextHeld)
	}
	// Not leased again while held.
	if bs := lease(t, s, t0.Add(30*time.Second), 10, 10); len(bs) != 0 {
		t.Errorf("a held row was leased: %+v", bs)
	}
	// An unthrottled message passes, and counts.
	enqueue(t, s, outbox.Notification{Source: "am", Messages: []outbox.Message{{Receiver: "last-resort", Text: "u", Segments: 1,
		Numbers: []string{x}, Unthrottled: true}}})
	if adm := admitAll(t, s, e.clock.Now(), three); len(adm.Send) != 1 {
		t.Errorf("unthrottled: %+v, want sent", adm)
	}
	if ns := numbers(t, s, t0); len(ns) != 1 || ns[0].Number != x || ns[0].Sent != 4 || ns[0].Held != 1 || !ns[0].NextRelease.Equal(t0.Add(10*time.Second)) {
		t.Errorf("numbers %+v", ns)
	}

	// Several buckets: the latest end among the full ones.
	two := outbox.Limits{Throttle: []outbox.Bucket{{Count: 2, Per: 10 * time.Second}, {Count: 3, Per: time.Minute}}}
	base := e.clock.Now()
	for i, at := range []time.Duration{0, time.Second, 11 * time.Second} {
		e.clock.Set(base.Add(at))
		one(t, s, fmt.Sprintf("y%d", i), y)
		if adm := admitAll(t, s, e.clock.Now(), two); len(adm.Send) != 1 {
			t.Fatalf("y%d at +%s: %+v, want sent", i, at, adm)
		}
	}
	e.clock.Set(base.Add(22 * time.Second))
	one(t, s, "y3", y)
	if adm := admitAll(t, s, e.clock.Now(), two); len(adm.Held) != 1 || !adm.Held[0].Until.Equal(base.Add(time.Minute)) {
		t.Errorf("y3: %+v, want held until the minute bucket frees (+1m)", adm)
	}

	// What was not sent gives its place back; what was accepted keeps it.
	one1 := outbox.Limits{Throttle: []outbox.Bucket{{Count: 1, Per: time.Hour}}}
	one(t, s, "z0", z)
	adm = admitAll(t, s, e.clock.Now(), one1)
	complete(t, s, outbox.Failed(adm.Send[0], "primary", "E101", "InvalidNumber"))
	one(t, s, "z1", z)
	adm = admitAll(t, s, e.clock.Now(), one1)
	if len(adm.Send) != 1 {
		t.Fatalf("after a failure the place is free: %+v", adm)
	}
	e.clock.Advance(5 * time.Second) // a slow request
	accepted := e.clock.Now()
	complete(t, s, outbox.Accepted(adm.Send[0], "primary", "p"))
	one(t, s, "z2", z)
	if adm := admitAll(t, s, e.clock.Now(), one1); len(adm.Held) != 1 || !adm.Held[0].Until.Equal(accepted.Add(time.Hour)) {
		t.Errorf("after an accepted one the place is taken until an hour after it was accepted (%v): %+v", accepted.Add(time.Hour), adm)
	}

	// A delivery no longer leased under its token is in no list.
	one(t, s, "gone", "+27830000009")
	bs := lease(t, s, e.clock.Now(), 1, 1)
	d := bs[0].Deliveries[0]
	d.Lease = "not-the-token"
	got, err := s.Admit(context.Background(), e.clock.Now(), []outbox.Delivery{d}, three)
	if err != nil || len(got.Send)+len(got.Held)+len(got.Failed)+len(got.Deferred) != 0 {
		t.Errorf("a stale token: %+v %v", got, err)
	}
	for _, bad := range []outbox.Limits{
		{Throttle: []outbox.Bucket{{Count: 0, Per: time.Minute}}},
		{Throttle: []outbox.Bucket{{Count: 1}}},
		{Budget: outbox.Budget{Limit: 5}},
	} {
		if _, err := s.Admit(context.Background(), e.clock.Now(), bs[0].Deliveries, bad); !errors.Is(err, outbox.ErrInvalid) {
			t.Errorf("limits %+v: %v, want ErrInvalid", bad, err)
		}
	}
}

// testAdmitConcurrent: admissions racing for one number's bucket, or for
// the budget's last segments (two dispatchers, or two replicas), never
// take more than there is.
func testAdmitConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	stores := []outbox.Store{e.Open()}
	if h.Concurrent() {
		stores = append(stores, e.Open())
	}
	race := func(limits outbox.Limits) (sent, held, failed int) {
		var mu sync.Mutex
		var wg sync.WaitGroup
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := stores[w%len(stores)]
				for {
					bs, err := s.Lease(context.Background(), e.clock.Now(), 1, 1, time.Minute)
					if err != nil {
						t.Errorf("lease: %v", err)
						return
					}
					if len(bs) == 0 {
						return
					}
					adm, err := s.Admit(context.Background(), e.clock.Now(), bs[0].Deliveries, limits)
					if err != nil {
						t.Errorf("admit: %v", err)
						return
					}
					mu.Lock()
					sent, held, failed = sent+len(adm.Send), held+len(adm.Held), failed+len(adm.Failed)
					mu.Unlock()
				}
			}()
		}
		wg.Wait()
		return sent, held, failed
	}
	for i := range 12 {
		one(t, stores[0], fmt.Sprintf("t%d", i), "+27830000001")
	}
	if sent, held, failed := race(outbox.Limits{Throttle: []outbox.Bucket{{Count: 3, Per: time.Hour}}}); sent != 3 || held != 9 || failed != 0 {
		t.Errorf("one number: sent %d, held %d, failed %d; want 3, 9, 0", sent, held, failed)
	}
	for i := range 10 {
		one(t, stores[0], fmt.Sprintf("b%d", i), fmt.Sprintf("+278310000%02d", i))
	}
	if sent, held, failed := race(outbox.Limits{Budget: outbox.Budget{Day: "d", Limit: 5}}); sent != 5 || held != 0 || failed != 5 {
		t.Errorf("the budget: sent %d, held %d, failed %d; want 5, 0, 5", sent, held, failed)
	}
	if used, err := stores[0].BudgetUsed(context.Background(), "d"); err != nil || used != 5 {
		t.Errorf("budget used %d %v, want 5", used, err)
	}
}

// testRelease: held deliveries go out as one digest when their number may
// receive again; a single one goes as itself.
func testRelease(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	const x, w = "+27830000001", "+27830000002"
	limits := outbox.Limits{Throttle: []outbox.Bucket{{Count: 1, Per: 10 * time.Second}}}
	t0 := e.clock.Now()
	one(t, s, "first", x)
	adm := admitAll(t, s, t0, limits)
	complete(t, s, outbox.Accepted(adm.Send[0], "primary", "p1"))
	var heldIDs []int64
	// Who was on call and what it is about carry over to the digest: the
	// first name, the distinct alert names.
	for i, text := range []string{"a", "b", "c"} {
		person := []string{"", "alice", "bob"}[i]
		enqueue(t, s, outbox.Notification{Source: "alertmanager", GroupKey: "g:" + text, Status: "firing", AlertName: "Disk" + map[string]string{"a": "Full", "b": "Full", "c": "Slow"}[text],
			Messages: []outbox.Message{{Receiver: "ops", Text: text, Segments: 1, Numbers: []string{x}, People: []string{person}, Summary: "FIRING " + text}}})
	}
	for _, sa := range admitAll(t, s, t0, limits).Held {
		heldIDs = append(heldIDs, sa.Delivery.ID)
	}
	slices.Sort(heldIDs)
	if len(heldIDs) != 3 {
		t.Fatalf("held %v", heldIDs)
	}
	var seen [][]outbox.Record
	digest := func(held []outbox.Record) (outbox.Message, error) {
		seen = append(seen, held)
		return outbox.Message{Receiver: "ops", Text: fmt.Sprintf("%d held", len(held)), Segments: 1}, nil
	}
	if rel, err := s.Release(ctx, t0.Add(5*time.Second), digest); err != nil || len(rel) != 0 {
		t.Fatalf("before it is due: %+v %v", rel, err)
	}
	if _, err := s.Release(ctx, t0.Add(10*time.Second), func([]outbox.Record) (outbox.Message, error) {
		return outbox.Message{}, errors.New("template broke")
	}); err == nil {
		t.Error("a failing digest did not fail the release")
	}
	if st := stats(t, s); st.Held != 3 {
		t.Errorf("a failed release changed the held rows: %+v", st)
	}
	drain(s)
	e.clock.Set(t0.Add(10 * time.Second))
	rel, err := s.Release(ctx, e.clock.Now(), digest)
	if err != nil || len(rel) != 1 || rel[0].Number != x || rel[0].Digest == 0 || !slices.Equal(rel[0].Deliveries, heldIDs) ||
		!slices.Equal(rel[0].Receivers, []string{"ops"}) {
		t.Fatalf("release %+v %v", rel, err)
	}
	if !woken(s) {
		t.Error("no wake-up for the digest")
	}
	if len(seen) != 1 || len(seen[0]) != 3 || seen[0][0].Text != "a" || seen[0][0].Summary != "FIRING a" || seen[0][0].Status != "firing" {
		t.Errorf("the digest was rendered from %+v", seen)
	}
	for _, id := range heldIDs {
		if r := record(t, s, id); r.State != outbox.StateBundled || r.BundledInto != rel[0].Digest {
			t.Errorf("held %d: %s into %d, want bundled into %d", id, r.State, r.BundledInto, rel[0].Digest)
		}
	}
	dg := record(t, s, rel[0].Digest)
	if dg.Source != outbox.SourceDigest || dg.State != outbox.StatePending || dg.Text != "3 held" || dg.Number != x || dg.Receiver != "ops" ||
		dg.Person != "alice" || dg.AlertName != "DiskFull, DiskSlow" {
		t.Errorf("digest record %+v", dg)
	}
	if sc := schedule(t, s, e.clock.Now()); !sc.NextHeld.IsZero() {
		t.Errorf("next held %v after the release", sc.NextHeld)
	}

	// While the digest waits, a new message joins the held ones, and the
	// number is not released again before the digest went.
	one(t, s, "d", x)
	bs := lease(t, s, e.clock.Now(), 10, 10)
	var all []outbox.Delivery
	for _, b := range bs {
		all = append(all, b.Deliveries...)
	}
	if len(all) != 2 || !all[0].Digest || all[1].Digest {
		t.Fatalf("leased %+v, want the digest (marked) then d", all)
	}
	adm, err = s.Admit(ctx, e.clock.Now(), all, limits)
	if err != nil || len(adm.Send) != 1 || adm.Send[0].ID != rel[0].Digest || len(adm.Held) != 1 {
		t.Fatalf("admit digest and d: %+v %v", adm, err)
	}
	if rel, err := s.Release(ctx, e.clock.Now().Add(time.Hour), digest); err != nil || len(rel) != 0 {
		t.Errorf("released while the digest is sending: %+v %v", rel, err)
	}
	if ns := numbers(t, s, t0); len(ns) != 1 || !ns[0].DigestWaiting || ns[0].Held != 1 {
		t.Errorf("numbers %+v", ns)
	}
	complete(t, s, outbox.Accepted(adm.Send[0], "primary", "p2"))
	e.clock.Advance(10 * time.Second)
	rel, err = s.Release(ctx, e.clock.Now(), digest)
	if err != nil || len(rel) != 1 || rel[0].Digest != 0 || len(rel[0].Deliveries) != 1 {
		t.Fatalf("a single held row: %+v %v", rel, err)
	}
	if r := record(t, s, rel[0].Deliveries[0]); r.State != outbox.StatePending || r.Text != "d" {
		t.Errorf("released single %+v", r)
	}

	// A digest whose number is full again (an unthrottled message went
	// first) waits in the queue (deferred); it is never held or bundled.
	base := e.clock.Now()
	one(t, s, "w0", w)
	admitAll(t, s, base, limits)
	one(t, s, "w1", w)
	one(t, s, "w2", w)
	admitAll(t, s, base, limits)
	e.clock.Set(base.Add(10 * time.Second))
	enqueue(t, s, outbox.Notification{Source: "am", Messages: []outbox.Message{{Receiver: "r", Text: "urgent", Segments: 1,
		Numbers: []string{w}, Unthrottled: true}}})
	admitAll(t, s, e.clock.Now(), limits)
	rel, err = s.Release(ctx, e.clock.Now(), digest)
	if err != nil || len(rel) != 1 || rel[0].Digest == 0 {
		t.Fatalf("release w: %+v %v", rel, err)
	}
	adm = admitAll(t, s, e.clock.Now(), limits)
	if len(adm.Deferred) != 1 || adm.Deferred[0].Delivery.ID != rel[0].Digest || !adm.Deferred[0].Until.Equal(e.clock.Now().Add(10*time.Second)) {
		t.Errorf("digest behind an unthrottled message: %+v", adm)
	}
	if r := record(t, s, rel[0].Digest); r.State != outbox.StatePending || !r.NextAttemptAt.Equal(e.clock.Now().Add(10*time.Second)) {
		t.Errorf("deferred digest %+v", r)
	}
}

// testBudget: non-critical deliveries fail once the day's segments are
// spent; critical ones go; what was not sent is given back; days are
// counted apart.
func testBudget(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	day := func(d string, limit int) outbox.Limits {
		return outbox.Limits{Budget: outbox.Budget{Day: d, Limit: limit}}
	}
	queue := func(text string, segments int, critical bool) {
		enqueue(t, s, outbox.Notification{Source: "am", Messages: []outbox.Message{{Receiver: "ops", Text: text, Segments: segments,
			Numbers: []string{"+27830000001"}, Critical: critical}}})
	}
	for i := range 3 {
		queue(fmt.Sprintf("n%d", i), 1, false)
	}
	queue("two segments", 2, false)
	queue("critical", 2, true)
	queue("n3", 1, false)
	var sent []outbox.Delivery
	var failed []outbox.SetAside
	used := 0
	for _, b := range lease(t, s, e.clock.Now(), 10, 10) {
		adm, err := s.Admit(ctx, e.clock.Now(), b.Deliveries, day("2025-03-01", 4))
		if err != nil {
			t.Fatal(err)
		}
		sent, failed, used = append(sent, adm.Send...), append(failed, adm.Failed...), adm.BudgetUsed
	}
	// n0, n1, n2 take 3; "two segments" does not fit in the 1 left; the
	// critical one goes past the limit (5); n3 finds nothing left.
	if len(sent) != 4 || len(failed) != 2 || used != 5 {
		t.Fatalf("sent %d, failed %d, used %d; want 4, 2, 5", len(sent), len(failed), used)
	}
	for _, f := range failed {
		r := record(t, s, f.Delivery.ID)
		if r.State != outbox.StateFailed || r.ErrorCode != outbox.ReasonBudgetExhausted || r.Error == "" || r.Attempts != 0 {
			t.Errorf("failed for the budget: %+v", r)
		}
	}
	budgetIs := func(d string, want int) {
		t.Helper()
		if got, err := s.BudgetUsed(ctx, d); err != nil || got != want {
			t.Errorf("budget used on %s: %d %v, want %d", d, got, err, want)
		}
	}
	budgetIs("2025-03-01", 5)
	budgetIs("2025-02-28", 0)
	// Rejected and rescheduled rows were not sent: their segments come back.
	complete(t, s, outbox.Failed(sent[0], "primary", "E101", "InvalidNumber"))
	complete(t, s, outbox.Rescheduled(sent[1], "primary", e.clock.Now(), "5xx", "server error"))
	complete(t, s, outbox.Accepted(sent[2], "primary", "p"))
	budgetIs("2025-03-01", 3)
	// A new day starts afresh; the old one keeps its count.
	if err := s.Retry(ctx, failed[0].Delivery.ID); err != nil {
		t.Fatal(err)
	}
	adm := admitAll(t, s, e.clock.Now(), day("2025-03-02", 4))
	if len(adm.Send) != 2 || adm.BudgetUsed != 3 {
		t.Fatalf("next day: %+v, want the rescheduled and the retried row sent (1 + 2 segments)", adm)
	}
	for _, d := range adm.Send {
		complete(t, s, outbox.Accepted(d, "primary", "p"))
	}
	budgetIs("2025-03-01", 3)
	// A lapsed lease gives its segments back when the row is taken again.
	queue("late", 1, false)
	admitAll(t, s, e.clock.Now(), day("2025-03-02", 4))
	budgetIs("2025-03-02", 4)
	e.clock.Advance(2 * time.Minute)
	if bs := lease(t, s, e.clock.Now(), 10, 10); len(bs) == 0 {
		t.Fatal("the lapsed row was not leased again")
	}
	budgetIs("2025-03-02", 3)
	// Counted in the store: a restart keeps it.
	s = e.Reopen(s)
	budgetIs("2025-03-02", 3)
}

// testPruneNoise: the noise controls' memory is pruned with retention;
// held deliveries are unfinished work and are kept.
func testPruneNoise(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	n := keyed("g", 10*time.Hour, "ops")
	enqueue(t, s, n)
	limits := outbox.Limits{Throttle: []outbox.Bucket{{Count: 1, Per: time.Hour}}, Budget: outbox.Budget{Day: "old", Limit: 10}}
	admitAll(t, s, e.clock.Now(), limits)
	held := one(t, s, "held", "+27830000001")
	admitAll(t, s, e.clock.Now(), limits)
	enqueue(t, s, outbox.Notification{Source: "am", Status: "resolved", Resolved: []outbox.AlertRef{{Fingerprint: "f", StartsAt: e.clock.Now()}}})
	e.clock.Advance(3 * time.Hour)
	if _, err := s.Prune(ctx, 2*time.Hour); err != nil {
		t.Fatal(err)
	}
	if got := enqueue(t, s, n); got.Outcome != outbox.OutcomeAccepted {
		t.Errorf("after pruning, the old key: %s", got.Outcome)
	}
	if used, _ := s.BudgetUsed(ctx, "old"); used != 0 {
		t.Errorf("an old budget day survived the prune: %d", used)
	}
	m := msg("ops", "late", "+27830000002")
	m.Alerts = []outbox.AlertRef{{Fingerprint: "f", StartsAt: e.clock.Now().Add(-3 * time.Hour)}}
	if got := enqueue(t, s, outbox.Notification{Source: "am", Status: "firing", Messages: []outbox.Message{m}}); got.Outcome != outbox.OutcomeAccepted {
		t.Errorf("after pruning, an old resolution still made a firing stale: %s", got.Outcome)
	}
	if r := deliveryOf(t, s, held.ID); r.State != outbox.StateHeld {
		t.Errorf("the held delivery was pruned or changed: %+v", r)
	}
}

func numbers(t testing.TB, s outbox.Store, since time.Time) []outbox.NumberStats {
	t.Helper()
	ns, err := s.Numbers(context.Background(), since)
	if err != nil {
		t.Fatalf("numbers: %v", err)
	}
	return ns
}

// testReleaseConcurrent: releases racing (two dispatchers, or two
// replicas) make one digest per number, never two.
func testReleaseConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	stores := []outbox.Store{e.Open()}
	if h.Concurrent() {
		stores = append(stores, e.Open())
	}
	limits := outbox.Limits{Throttle: []outbox.Bucket{{Count: 1, Per: time.Minute}}}
	numbers := []string{"+27830000001", "+27830000002", "+27830000003"}
	for _, num := range numbers {
		for i := range 4 {
			one(t, stores[0], fmt.Sprintf("%s-%d", num, i), num)
		}
	}
	adm := admitAll(t, stores[0], e.clock.Now(), limits)
	if len(adm.Send) != 3 || len(adm.Held) != 9 {
		t.Fatalf("admitted %d, held %d; want 3 and 9", len(adm.Send), len(adm.Held))
	}
	at := e.clock.Now().Add(time.Minute)
	var mu sync.Mutex
	digests := map[string]int{}
	var wg sync.WaitGroup
	for w := range 6 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rel, err := stores[w%len(stores)].Release(context.Background(), at, func(held []outbox.Record) (outbox.Message, error) {
				return outbox.Message{Receiver: "ops", Text: fmt.Sprintf("%d held", len(held)), Segments: 1}, nil
			})
			if err != nil {
				t.Errorf("release: %v", err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			for _, r := range rel {
				if r.Digest != 0 {
					digests[r.Number]++
				}
			}
		}()
	}
	wg.Wait()
	for _, num := range numbers {
		if digests[num] != 1 {
			t.Errorf("%s: %d digests, want 1", num, digests[num])
		}
	}
	if st := stats(t, stores[0]); st.Held != 0 {
		t.Errorf("%d still held", st.Held)
	}
}
