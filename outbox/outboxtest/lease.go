package outboxtest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

func testLeaseGrouping(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	// Two notifications sent the same text; one number got both (within
	// one notification the store merges equal texts instead).
	enqueue(t, s, outbox.Notification{Source: "am", Messages: []outbox.Message{msg("ops", "same", "+1", "+2")}})
	enqueue(t, s, outbox.Notification{Source: "am", Messages: []outbox.Message{
		msg("db", "same", "+2", "+3"),
		msg("db", "other", "+4", "+5", "+6"),
	}})
	enqueue(t, s, outbox.Notification{Source: "am", Messages: []outbox.Message{msg("ops", "third", "+7")}})

	type want struct {
		text string
		nums []string
	}
	for _, tc := range []struct {
		name                   string
		maxBatches, maxNumbers int
		want                   []want
	}{
		{"duplicate number waits", 1, 100, []want{{"same", []string{"+1", "+2", "+3"}}}},
		{"batches and numbers capped", 2, 2, []want{{"same", []string{"+2"}}, {"other", []string{"+4", "+5"}}}},
		{"rest", 5, 5, []want{{"other", []string{"+6"}}, {"third", []string{"+7"}}}},
		{"nothing left", 5, 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := lease(t, s, e.clock.Now(), tc.maxBatches, tc.maxNumbers)
			var got []want
			for _, b := range bs {
				got = append(got, want{b.Text, b.Numbers()})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("leased %v, want %v", got, tc.want)
			}
		})
	}
	for _, c := range [][2]int{{0, 10}, {10, 0}, {-1, 10}} {
		if bs, err := s.Lease(context.Background(), e.clock.Now(), c[0], c[1], time.Minute); err != nil || len(bs) != 0 {
			t.Errorf("lease of %d batches of %d numbers = %v, %v; want nothing", c[0], c[1], bs, err)
		}
	}
}

// testLeaseOwner: every lease names the store that took it, and each
// store has its own owner id.
func testLeaseOwner(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	first := s.Owner()
	if first == "" {
		t.Fatal("empty owner")
	}
	if s.Owner() != first {
		t.Error("owner changed within one store")
	}
	enqueue(t, s, note("a", "b"))
	lease(t, s, e.clock.Now(), 1, 10)
	sending := records(t, s, outbox.Filter{State: outbox.StateSending})
	if len(sending) != 2 {
		t.Fatalf("%d rows sending, want 2", len(sending))
	}
	for _, r := range sending {
		if r.LeaseOwner != first {
			t.Errorf("leased row %d owned by %q, want %q", r.ID, r.LeaseOwner, first)
		}
	}
	for _, r := range records(t, s, outbox.Filter{State: outbox.StatePending}) {
		if r.LeaseOwner != "" {
			t.Errorf("never leased row %d owned by %q", r.ID, r.LeaseOwner)
		}
	}

	s = e.Reopen(s)
	if s.Owner() == first {
		t.Errorf("the next store has the same owner %q", first)
	}
	// Whatever happens to the first store's lease, the next store's
	// lease of the rows it takes names the next store.
	e.clock.Advance(time.Minute)
	bs := lease(t, s, e.clock.Now(), 10, 10)
	if len(deliveries(bs)) != 4 {
		t.Fatalf("leased %d rows after the first lease lapsed, want 4", len(deliveries(bs)))
	}
	for _, d := range deliveries(bs) {
		if r := record(t, s, d.ID); r.LeaseOwner != s.Owner() {
			t.Errorf("row %d owned by %q, want %q", d.ID, r.LeaseOwner, s.Owner())
		}
	}
}

// testLeaseTokensUnique: no two Lease calls return the same token, in one
// store or across restarts, even with a clock that stands still.
func testLeaseTokensUnique(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	seen := map[string]int{}
	for run := range 3 {
		for i := range 5 {
			enqueue(t, s, outbox.Notification{Source: "t", Messages: []outbox.Message{msg("r", fmt.Sprintf("run %d text %d", run, i), "+1")}})
		}
		for range 5 {
			bs := lease(t, s, e.clock.Now(), 1, 1)
			if len(bs) != 1 {
				t.Fatalf("run %d: leased %d batches, want 1", run, len(bs))
			}
			tok := bs[0].Deliveries[0].Lease
			if tok == "" {
				t.Fatal("empty lease token")
			}
			if prev, dup := seen[tok]; dup {
				t.Fatalf("run %d: token %q already returned in run %d", run, tok, prev)
			}
			seen[tok] = run
		}
		s = e.Reopen(s)
	}
}

// testLeaseLapses: a lease that lapses makes its rows due again; the old
// holder's late result is ignored, and logged.
func testLeaseLapses(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	enqueue(t, s, note("x"))
	old, err := s.Lease(ctx, e.clock.Now(), 1, 10, time.Second)
	if err != nil || len(old) != 1 || len(old[0].Deliveries) != 2 {
		t.Fatalf("lease: %v %v", old, err)
	}
	if sc := schedule(t, s, e.clock.Now()); !sc.NextDue.Equal(e.clock.Now().Add(time.Second)) || !sc.OldestQueued.IsZero() {
		t.Errorf("schedule while leased = %+v", sc)
	}
	if bs := lease(t, s, e.clock.Now().Add(999*time.Millisecond), 1, 10); len(bs) != 0 {
		t.Fatal("lease taken before it lapsed")
	}
	e.clock.Advance(time.Second)
	// The lapsed lease's rows count as waiting again, for max age.
	if sc := schedule(t, s, e.clock.Now()); !sc.OldestQueued.Equal(old[0].Deliveries[0].QueuedAt) {
		t.Errorf("schedule after the lease lapsed = %+v", sc)
	}
	fresh := lease(t, s, e.clock.Now(), 1, 10)
	if len(fresh) != 1 || !slices.Equal(ids(fresh), ids(old)) || fresh[0].Deliveries[0].Lease == old[0].Deliveries[0].Lease {
		t.Fatalf("lapsed lease not re-leased under a new token: %+v", fresh)
	}
	warned := e.logs.warnings()
	complete(t, s, outbox.Accepted(old[0].Deliveries[0], "primary", "old"))
	if e.logs.warnings() == warned {
		t.Error("a result for a lapsed lease was ignored without a warning")
	}
	complete(t, s, outbox.Accepted(fresh[0].Deliveries[0], "primary", "new"))
	r := records(t, s, outbox.Filter{State: outbox.StateAccepted})
	if len(r) != 1 || r[0].APIMessageID != "new" {
		t.Errorf("accepted %+v, want only the fresh lease's result", r)
	}
	// The other row is still the fresh holder's, whatever the old one says.
	complete(t, s, outbox.Failed(old[0].Deliveries[1], "primary", "E", "late"))
	if r := record(t, s, old[0].Deliveries[1].ID); r.State != outbox.StateSending || r.Error != "" {
		t.Errorf("row under a live lease changed by a stale result: %+v", r)
	}
}

// testCompleteStaleToken: a result carrying a token the row does not hold
// changes nothing.
func testCompleteStaleToken(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	enqueue(t, s, note("x"))
	bs := lease(t, s, e.clock.Now(), 1, 10)
	a, b := bs[0].Deliveries[0], bs[0].Deliveries[1]

	forged := a
	forged.Lease = "not-a-lease"
	empty := a
	empty.Lease = ""
	complete(t, s, outbox.Accepted(forged, "primary", "forged"), outbox.Accepted(empty, "primary", "empty"))
	if r := record(t, s, a.ID); r.State != outbox.StateSending || r.APIMessageID != "" {
		t.Errorf("a forged token recorded a result: %+v", r)
	}

	// Released, the row no longer carries the token: a second result for
	// the same lease is ignored.
	complete(t, s, outbox.Released(b))
	complete(t, s, outbox.Accepted(b, "primary", "twice"))
	if r := record(t, s, b.ID); r.State != outbox.StatePending || r.Attempts != 0 || r.APIMessageID != "" {
		t.Errorf("a result after release was recorded: %+v", r)
	}
}

func testCompleteOutcomes(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	now := e.clock.Now()
	later := now.Add(time.Hour)
	for _, tc := range []struct {
		name         string
		outcome      func(outbox.Delivery) outbox.Outcome
		state        outbox.State
		attempts     int
		account      string
		code, errMsg string
		dueAt        time.Time // zero: not due again
	}{
		{"accepted", func(d outbox.Delivery) outbox.Outcome { return outbox.Accepted(d, "primary", "id") }, outbox.StateAccepted, 1, "primary", "", "", time.Time{}},
		{"failed", func(d outbox.Delivery) outbox.Outcome { return outbox.Failed(d, "fallback", "bad_request", "400") }, outbox.StateFailed, 1, "fallback", "bad_request", "400", time.Time{}},
		{"failed without a request", func(d outbox.Delivery) outbox.Outcome { return outbox.Failed(d, "", "no_account", "held") }, outbox.StateFailed, 0, "", "no_account", "held", time.Time{}},
		{"rescheduled", func(d outbox.Delivery) outbox.Outcome {
			return outbox.Rescheduled(d, "primary", later, "transient", "500")
		}, outbox.StatePending, 1, "primary", "transient", "500", later},
		{"deferred", func(d outbox.Delivery) outbox.Outcome { return outbox.Deferred(d, later, "rate_limited", "429") }, outbox.StatePending, 0, "", "rate_limited", "429", later},
		{"released", outbox.Released, outbox.StatePending, 0, "", "", "", now},
		{"rescheduled in the past is due now", func(d outbox.Delivery) outbox.Outcome {
			return outbox.Rescheduled(d, "primary", now.Add(-time.Hour), "", "")
		}, outbox.StatePending, 1, "primary", "", "", now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := enqueue(t, s, outbox.Notification{Source: "t", Messages: []outbox.Message{msg("r", tc.name, "+1")}}).ID
			bs := lease(t, s, now, 1, 1)
			if len(bs) != 1 || bs[0].Text != tc.name {
				t.Fatalf("leased %+v", bs)
			}
			complete(t, s, tc.outcome(bs[0].Deliveries[0]))
			rs := records(t, s, outbox.Filter{NotificationID: id})
			if len(rs) != 1 {
				t.Fatalf("records %+v", rs)
			}
			r := rs[0]
			if r.State != tc.state || r.Attempts != tc.attempts || r.Account != tc.account || r.ErrorCode != tc.code || r.Error != tc.errMsg ||
				!r.NextAttemptAt.Equal(tc.dueAt) || r.LeaseOwner != s.Owner() {
				t.Errorf("record %+v", r)
			}
			if sc := schedule(t, s, e.clock.Now()); !sc.NextDue.Equal(tc.dueAt) {
				t.Errorf("next due %v, want %v", sc.NextDue, tc.dueAt)
			}
			// Clear the row out of the way of the next case.
			if tc.state == outbox.StatePending {
				bs := lease(t, s, later, 1, 1)
				if len(bs) != 1 {
					t.Fatalf("the pending row could not be leased at %v: %+v", later, bs)
				}
				complete(t, s, outbox.Accepted(bs[0].Deliveries[0], "primary", ""))
			}
		})
	}
}

// testCompleteAtomic: an outcome that cannot be recorded fails the whole
// call, and none of it is recorded.
func testCompleteAtomic(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	enqueue(t, s, note("x"))
	bs := lease(t, s, e.clock.Now(), 1, 10)
	a, b := bs[0].Deliveries[0], bs[0].Deliveries[1]
	bad := outbox.Outcome{Delivery: b, State: outbox.StateSending}
	if err := s.Complete(context.Background(), []outbox.Outcome{outbox.Accepted(a, "primary", "x"), bad}); err == nil {
		t.Fatal("complete with state sending succeeded")
	}
	if r := record(t, s, a.ID); r.State != outbox.StateSending || r.APIMessageID != "" {
		t.Errorf("part of a failed Complete was recorded: %+v", r)
	}
	complete(t, s, outbox.Accepted(a, "primary", "x"))
	if r := record(t, s, a.ID); r.State != outbox.StateAccepted {
		t.Errorf("the lease did not survive the failed Complete: %+v", r)
	}
	if err := s.Complete(context.Background(), nil); err != nil {
		t.Errorf("complete of nothing: %v", err)
	}
}

func testRescheduleKeepsLastError(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	enqueue(t, s, note("x"))
	bs := lease(t, s, e.clock.Now(), 1, 1)
	complete(t, s, outbox.Rescheduled(bs[0].Deliveries[0], "primary", e.clock.Now(), "", "status 500"))
	bs = lease(t, s, e.clock.Now(), 1, 1)
	d := bs[0].Deliveries[0]
	if d.Attempts != 1 {
		t.Errorf("attempts = %d, want 1", d.Attempts)
	}
	complete(t, s, outbox.Released(d))
	if r := record(t, s, d.ID); r.State != outbox.StatePending || r.Error != "status 500" || r.Attempts != 1 || r.Account != "primary" {
		t.Errorf("after release: %+v; the last error, attempts and account must stay", r)
	}
}

// testAccountRecorded: a row shows the account of its last request, and
// an outcome without a request leaves it.
func testAccountRecorded(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	enqueue(t, s, outbox.Notification{Source: "t", Messages: []outbox.Message{msg("r", "x", "+1")}})
	step := func(out func(outbox.Delivery) outbox.Outcome, want string) {
		t.Helper()
		bs := lease(t, s, e.clock.Now(), 1, 1)
		if len(bs) != 1 {
			t.Fatalf("nothing to lease")
		}
		d := bs[0].Deliveries[0]
		complete(t, s, out(d))
		if r := record(t, s, d.ID); r.Account != want {
			t.Errorf("account %q, want %q (%+v)", r.Account, want, r)
		}
	}
	now := e.clock.Now()
	step(outbox.Released, "")
	step(func(d outbox.Delivery) outbox.Outcome {
		return outbox.Rescheduled(d, "primary", now, "transient", "500")
	}, "primary")
	step(func(d outbox.Delivery) outbox.Outcome { return outbox.Deferred(d, now, "held", "primary held") }, "primary")
	step(func(d outbox.Delivery) outbox.Outcome { return outbox.Accepted(d, "fallback", "fb-1") }, "fallback")
	// Accepted, the row no longer shows the errors of earlier attempts.
	if rs := records(t, s, outbox.Filter{}); len(rs) != 1 || rs[0].Error != "" || rs[0].ErrorCode != "" || rs[0].Attempts != 2 {
		t.Errorf("accepted row %+v, want no error and 2 attempts", rs)
	}
}

// testCrashRecovery leases rows and closes the store without recording a
// result, as a kill -9 would. The next store sends them again: at once
// when the harness is exclusive (the holder is provably gone), once the
// lease lapses when it is not. The old holder's result cannot land.
func testCrashRecovery(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	enqueue(t, s, note("a", "b"))
	first := lease(t, s, e.clock.Now(), 10, 10)
	if len(first) != 2 {
		t.Fatalf("leased %d batches", len(first))
	}
	warned := e.logs.warnings()
	s = e.Reopen(s)
	if h.Concurrent() {
		if bs := lease(t, s, e.clock.Now(), 10, 10); len(bs) != 0 {
			t.Fatalf("leased %v while the old lease was live", ids(bs))
		}
		e.clock.Advance(time.Minute)
	} else {
		if !woken(s) {
			t.Error("no wake-up after reopening with recovered work")
		}
		if e.logs.warnings() == warned {
			t.Error("recovering leases at open was not logged as a warning")
		}
	}
	again := lease(t, s, e.clock.Now(), 10, 10)
	if !slices.Equal(ids(first), ids(again)) {
		t.Fatalf("after restart leased %v, want %v", ids(again), ids(first))
	}
	for i, d := range deliveries(again) {
		if d.Lease == deliveries(first)[i].Lease {
			t.Errorf("delivery %d leased again under the old token %q", d.ID, d.Lease)
		}
	}
	// The old lease cannot record over the new one.
	complete(t, s, outbox.Accepted(first[0].Deliveries[0], "primary", "stale"))
	if n := len(records(t, s, outbox.Filter{State: outbox.StateAccepted})); n != 0 {
		t.Errorf("a stale lease recorded %d deliveries", n)
	}
}

func testFailExpired(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	enqueue(t, s, outbox.Notification{Source: "t", Messages: []outbox.Message{msg("r", "a", "+1"), msg("r", "b", "+2"), msg("r", "c", "+3")}})
	// +1 failed once and waits in the queue (keeping its error), +2 is in
	// flight with a live lease, +3 in flight with a lease that will lapse.
	leaseOne := func(leaseFor time.Duration) outbox.Delivery {
		t.Helper()
		bs, err := s.Lease(ctx, e.clock.Now(), 1, 1, leaseFor)
		if err != nil || len(bs) != 1 {
			t.Fatalf("lease: %v %v", bs, err)
		}
		return bs[0].Deliveries[0]
	}
	complete(t, s, outbox.Rescheduled(leaseOne(time.Minute), "primary", e.clock.Now().Add(time.Millisecond), "", "status 500"))
	if d := leaseOne(2 * time.Hour); d.Number != "+2" {
		t.Fatalf("leased %s, want +2", d.Number)
	}
	if d := leaseOne(time.Minute); d.Number != "+3" {
		t.Fatalf("leased %s, want +3", d.Number)
	}
	e.clock.Advance(30 * time.Minute)
	enqueue(t, s, outbox.Notification{Source: "t", Messages: []outbox.Message{msg("r", "young", "+4")}})

	if n, err := s.FailExpired(ctx, e.clock.Now(), time.Hour); err != nil || n != 0 {
		t.Fatalf("before max age: n=%d err=%v", n, err)
	}
	e.clock.Advance(31 * time.Minute)
	n, err := s.FailExpired(ctx, e.clock.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// +1 waits in the queue, +3's one-minute lease lapsed: both fail. +2
	// holds a live lease and +4 is young.
	if n != 2 {
		t.Errorf("failed %d, want 2", n)
	}
	got := map[string]outbox.Record{}
	for _, r := range records(t, s, outbox.Filter{}) {
		got[r.Number] = r
	}
	if r := got["+1"]; r.State != outbox.StateFailed || r.ErrorCode != "max_age" || r.Error != "not delivered within max age 1h0m0s; last error: status 500" {
		t.Errorf("+1: %+v", r)
	}
	if r := got["+3"]; r.State != outbox.StateFailed || r.ErrorCode != "max_age" || r.Error != "not delivered within max age 1h0m0s" {
		t.Errorf("+3: %+v", r)
	}
	if got["+2"].State != outbox.StateSending || got["+4"].State != outbox.StatePending {
		t.Errorf("+2 %s, +4 %s", got["+2"].State, got["+4"].State)
	}
}

func testRetry(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	enqueue(t, s, note("x"))
	enqueue(t, s, outbox.Notification{Source: "t", Messages: []outbox.Message{msg("r", "y", "+3")}})
	bs := lease(t, s, e.clock.Now(), 1, 2)
	failed, accepted := bs[0].Deliveries[0], bs[0].Deliveries[1]
	complete(t, s, outbox.Failed(failed, "primary", "E101", "no"), outbox.Accepted(accepted, "primary", "a"))
	// Held under a lease that outlives the test's clock.
	held, err := s.Lease(context.Background(), e.clock.Now(), 1, 1, 100*time.Hour)
	if err != nil || len(held) != 1 {
		t.Fatalf("lease: %v %v", held, err)
	}
	sending := held[0].Deliveries[0]
	drain(s)
	e.clock.Advance(48 * time.Hour)
	for _, tc := range []struct {
		name string
		id   int64
		want error
	}{
		{"failed", failed.ID, nil},
		{"again: now pending", failed.ID, outbox.ErrNotFailed},
		{"accepted", accepted.ID, outbox.ErrNotFailed},
		{"sending", sending.ID, outbox.ErrNotFailed},
		{"unknown", 999999, outbox.ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Retry(context.Background(), tc.id)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	if !woken(s) {
		t.Error("no wake-up after retry")
	}
	bs = lease(t, s, e.clock.Now(), 1, 2)
	if len(bs) != 1 || len(bs[0].Deliveries) != 1 || bs[0].Deliveries[0].ID != failed.ID {
		t.Fatalf("after retry leased %+v", bs)
	}
	d := bs[0].Deliveries[0]
	if d.Attempts != 0 || !d.QueuedAt.Equal(e.clock.Now()) {
		t.Errorf("retried delivery %+v: attempts and age must start afresh", d)
	}
}

// testWake: the store wakes its reader for work due now, and only then.
func testWake(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	if woken(s) {
		t.Fatal("wake-up on an empty store")
	}
	enqueue(t, s, outbox.Notification{Source: "t"})
	if woken(s) {
		t.Error("wake-up after an unrouted notification")
	}
	enqueue(t, s, outbox.Notification{Source: "t", Messages: []outbox.Message{msg("r", "x", "+1", "+2")}})
	if !woken(s) {
		t.Error("no wake-up after an enqueue with deliveries")
	}
	if woken(s) {
		t.Error("a second wake-up for one commit")
	}

	bs := lease(t, s, e.clock.Now(), 1, 10)
	a, b := bs[0].Deliveries[0], bs[0].Deliveries[1]
	complete(t, s, outbox.Deferred(a, e.clock.Now().Add(time.Minute), "rate_limited", "429"))
	if woken(s) {
		t.Error("wake-up after deferring a row to later")
	}
	complete(t, s, outbox.Failed(b, "primary", "E", "e"))
	if woken(s) {
		t.Error("wake-up after a failure")
	}
	e.clock.Advance(time.Minute)
	bs = lease(t, s, e.clock.Now(), 1, 10)
	complete(t, s, outbox.Released(bs[0].Deliveries[0]))
	if !woken(s) {
		t.Error("no wake-up after a release (due now)")
	}
	if err := s.Retry(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	if !woken(s) {
		t.Error("no wake-up after retry")
	}

	// A store opened on due work wakes its reader at once.
	s = e.Reopen(s)
	if !woken(s) {
		t.Error("no wake-up after opening a store with due work")
	}
}
