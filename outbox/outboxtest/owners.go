package outboxtest

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// openDeadline is how long a refused second Open may take: it must fail at
// once, not wait for the first store to go away.
const openDeadline = time.Second

// testExclusiveOpen: on an exclusive backing, a second store cannot open
// while the first is open, and opens once it is closed.
func testExclusiveOpen(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	enqueue(t, s, note("x"))
	start := time.Now()
	second, err := e.open(e.config())
	if err == nil {
		second.Close()
		t.Fatal("a second store opened on a backing in use")
	}
	if took := time.Since(start); took > openDeadline {
		t.Errorf("the second Open took %v to fail, want under %v", took, openDeadline)
	}
	// The refused Open must not have disturbed the first store.
	if st := stats(t, s); st.Pending != 2 {
		t.Errorf("first store after the refused Open: %+v", st)
	}
	enqueue(t, s, note("y"))
	s = e.Reopen(s)
	if st := stats(t, s); st.Pending != 4 {
		t.Errorf("reopened store: %+v, want 4 pending", st)
	}
}

// openPair opens two stores on one backing at once.
func openPair(t *testing.T, e *env) (outbox.Store, outbox.Store) {
	t.Helper()
	a, b := e.Open(), e.Open()
	if a.Owner() == b.Owner() {
		t.Fatalf("two open stores share the owner %q", a.Owner())
	}
	return a, b
}

// testConcurrentOwners: two stores open on one backing never hold the same
// row at once; one takes the other's rows only when the lease lapsed, and
// the first holder's late result is then ignored.
func testConcurrentOwners(t *testing.T, h Harness) {
	e := newEnv(t, h)
	a, b := openPair(t, e)
	enqueue(t, a, note("x", "y"))
	first, err := a.Lease(context.Background(), e.clock.Now(), 1, 10, time.Minute)
	if err != nil || len(first) != 1 {
		t.Fatalf("a leased %v, %v", first, err)
	}
	// b takes the rest, never a's rows.
	rest := lease(t, b, e.clock.Now(), 10, 10)
	if len(rest) != 1 || rest[0].Text == first[0].Text {
		t.Fatalf("b leased %+v while a held %q", rest, first[0].Text)
	}
	for _, d := range first[0].Deliveries {
		if r := record(t, b, d.ID); r.State != outbox.StateSending || r.LeaseOwner != a.Owner() {
			t.Errorf("row %d as b sees it: %+v, want sending for %q", d.ID, r, a.Owner())
		}
	}
	if bs := lease(t, b, e.clock.Now().Add(59*time.Second), 10, 10); len(bs) != 0 {
		t.Fatalf("b took a's live lease: %v", ids(bs))
	}
	complete(t, b, outbox.Accepted(rest[0].Deliveries[0], "primary", "b-1"), outbox.Accepted(rest[0].Deliveries[1], "primary", "b-2"))

	// a hangs past its lease; b takes the rows over.
	e.clock.Advance(time.Minute)
	taken := lease(t, b, e.clock.Now(), 1, 10)
	if len(taken) != 1 || !slices.Equal(ids(taken), ids(first)) {
		t.Fatalf("b took %v after a's lease lapsed, want %v", ids(taken), ids(first))
	}
	complete(t, a, outbox.Accepted(first[0].Deliveries[0], "primary", "a-late"))
	complete(t, b, outbox.Accepted(taken[0].Deliveries[0], "fallback", "b-new"))
	if r := record(t, a, first[0].Deliveries[0].ID); r.APIMessageID != "b-new" || r.Account != "fallback" || r.LeaseOwner != b.Owner() {
		t.Errorf("after both results: %+v, want b's", r)
	}
}

// testConcurrentShared: what one store writes, another open on the same
// backing reads: the resolved rule and the durable state.
func testConcurrentShared(t *testing.T, h Harness) {
	e := newEnv(t, h)
	a, b := openPair(t, e)
	ctx := context.Background()
	enqueue(t, a, outbox.Notification{Source: "ci", GroupKey: "ci:build", Status: "firing"})
	got := enqueue(t, b, outbox.Notification{Source: "ci", GroupKey: "ci:build", Status: "resolved", RequireFiring: true,
		Messages: []outbox.Message{msg("r", "resolved", "+1")}})
	if got.Outcome != outbox.OutcomeAccepted {
		t.Errorf("b's resolution of a's firing: %+v", got)
	}
	if again := enqueue(t, a, outbox.Notification{Source: "ci", GroupKey: "ci:build", Status: "resolved", RequireFiring: true,
		Messages: []outbox.Message{msg("r", "resolved", "+1")}}); again.Outcome != outbox.OutcomeFiltered {
		t.Errorf("a's second resolution after b's: %+v", again)
	}
	if err := a.PutState(ctx, "dispatch/primary", []byte("paused")); err != nil {
		t.Fatal(err)
	}
	if v, ok, err := b.GetState(ctx, "dispatch/primary"); err != nil || !ok || !bytes.Equal(v, []byte("paused")) {
		t.Errorf("b reads a's state: %q %v %v", v, ok, err)
	}
}
