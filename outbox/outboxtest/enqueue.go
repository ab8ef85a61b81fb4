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

func testEnqueueLeaseComplete(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	now := e.clock.Now()
	got := enqueue(t, s, note("disk full on db1", "disk full on db1 (short)"))
	if got.ID <= 0 || got.Outcome != outbox.OutcomeAccepted || got.Recipients != 4 {
		t.Fatalf("enqueued %+v, want a positive id, accepted, 4 recipients", got)
	}
	if !woken(s) {
		t.Fatal("no wake-up after an enqueue with deliveries")
	}
	if st := stats(t, s); st.Pending != 4 || st.InFlight != 0 || !st.Oldest.Equal(now) {
		t.Errorf("stats = %+v", st)
	}

	batches := lease(t, s, now, 10, 100)
	if len(batches) != 2 {
		t.Fatalf("got %d batches, want 2", len(batches))
	}
	for _, b := range batches {
		if got := b.Numbers(); !slices.Equal(got, []string{"+27830000001", "+27830000002"}) {
			t.Errorf("batch %q numbers %v", b.Text, got)
		}
		if b.Segments != 1 || !b.LeaseUntil.Equal(now.Add(time.Minute)) {
			t.Errorf("batch %+v", b)
		}
		for _, d := range b.Deliveries {
			if d.NotificationID != got.ID || d.MessageID == 0 || d.Receiver == "" || d.Lease == "" || d.Attempts != 0 || !d.QueuedAt.Equal(now) {
				t.Errorf("delivery %+v", d)
			}
		}
	}
	if again := lease(t, s, now, 10, 100); len(again) != 0 {
		t.Fatalf("leased rows were leased again: %+v", again)
	}
	if st := stats(t, s); st.Pending != 4 || st.InFlight != 4 {
		t.Errorf("stats while leased = %+v", st)
	}

	b := batches[0]
	e.clock.Advance(time.Second)
	complete(t, s, outbox.Accepted(b.Deliveries[0], "primary", "api-1"))
	complete(t, s, outbox.Failed(b.Deliveries[1], "primary", "E101", "InvalidNumber"))
	r0 := record(t, s, b.Deliveries[0].ID)
	want0 := outbox.Record{
		ID: b.Deliveries[0].ID, NotificationID: got.ID, ReceivedAt: now, UpdatedAt: now.Add(time.Second),
		Source: "alertmanager", GroupKey: `{}:{alertname="X"}`, Status: "firing", Receiver: b.Deliveries[0].Receiver,
		Number: b.Deliveries[0].Number, Text: b.Text, Segments: 1, State: outbox.StateAccepted, Attempts: 1,
		Account: "primary", APIMessageID: "api-1", LeaseOwner: s.Owner(),
	}
	if !sameRecord(r0, want0) {
		t.Errorf("accepted record\n got %+v\nwant %+v", r0, want0)
	}
	r1 := record(t, s, b.Deliveries[1].ID)
	if r1.State != outbox.StateFailed || r1.ErrorCode != "E101" || r1.Error != "InvalidNumber" || r1.Attempts != 1 || r1.Account != "primary" {
		t.Errorf("failed record %+v", r1)
	}
	if n := len(records(t, s, outbox.Filter{State: outbox.StateSending})); n != 2 {
		t.Errorf("%d rows sending, want 2", n)
	}
}

// sameRecord compares records with time.Time.Equal.
func sameRecord(a, b outbox.Record) bool {
	if !a.ReceivedAt.Equal(b.ReceivedAt) || !a.UpdatedAt.Equal(b.UpdatedAt) || !a.NextAttemptAt.Equal(b.NextAttemptAt) {
		return false
	}
	a.ReceivedAt, a.UpdatedAt, a.NextAttemptAt = b.ReceivedAt, b.UpdatedAt, b.NextAttemptAt
	return a == b
}

func testEnqueueValidation(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ok := msg("r", "x", "+27830000001")
	for _, tc := range []struct {
		name string
		n    outbox.Notification
	}{
		{"empty number", outbox.Notification{Source: "x", Messages: []outbox.Message{msg("r", "x", "+27830000001", "")}}},
		{"negative segments", outbox.Notification{Source: "x", Messages: []outbox.Message{{Receiver: "r", Text: "x", Segments: -1, Numbers: []string{"+27830000001"}}}}},
		{"numbers without text", outbox.Notification{Source: "x", Messages: []outbox.Message{{Numbers: []string{"+27830000001"}}}}},
		{"require firing without group key", outbox.Notification{Source: "x", Status: "resolved", RequireFiring: true, Messages: []outbox.Message{ok}}},
		{"messages with an outcome other than accepted", outbox.Notification{Source: "x", Outcome: outbox.OutcomeFiltered, Messages: []outbox.Message{ok}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Enqueue(context.Background(), tc.n)
			if !errors.Is(err, outbox.ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
	if rs := records(t, s, outbox.Filter{}); len(rs) != 0 {
		t.Errorf("invalid notifications stored deliveries: %+v", rs)
	}
	if woken(s) {
		t.Error("wake-up after refused notifications")
	}
}

func testEnqueueUnroutedAndDuplicates(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	if woken(s) {
		t.Fatal("wake-up on an empty store")
	}
	un := enqueue(t, s, outbox.Notification{Source: "ci", GroupKey: "ci:build", Status: "firing"})
	if un.ID <= 0 || un.Outcome != outbox.OutcomeUnrouted || un.Recipients != 0 {
		t.Errorf("unrouted: enqueued %+v", un)
	}
	if woken(s) {
		t.Fatal("wake-up after an unrouted notification")
	}
	// The unrouted notification is recorded: the group counts as firing.
	res := enqueue(t, s, outbox.Notification{Source: "ci", GroupKey: "ci:build", Status: "resolved", RequireFiring: true,
		Messages: []outbox.Message{msg("r", "resolved", "+27830000003")}})
	if res.Outcome != outbox.OutcomeAccepted || res.ID <= un.ID {
		t.Errorf("resolution after an unrouted firing: %+v (unrouted id %d)", res, un.ID)
	}

	dup := enqueue(t, s, outbox.Notification{Source: "ci", Messages: []outbox.Message{
		msg("r", "t", "+27830000001", "+27830000001", "+27830000002"),
	}})
	if dup.Recipients != 2 {
		t.Errorf("recipients = %d, want 2 (a duplicate number is stored once)", dup.Recipients)
	}
	if st := stats(t, s); st.Pending != 3 {
		t.Errorf("pending = %d, want 3", st.Pending)
	}
	// An outcome of the pipeline's own is recorded as given.
	if got := enqueue(t, s, outbox.Notification{Source: "ci", Outcome: "duplicate"}); got.Outcome != "duplicate" || got.Recipients != 0 {
		t.Errorf("pipeline outcome: %+v", got)
	}
}

// testRequireFiring: a guarded resolution is sent only when the newest
// notification of its group, whatever became of it, is firing.
func testRequireFiring(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	for _, tc := range []struct {
		name    string
		history []string // statuses stored before, in the same group
		other   []string // statuses stored in another group
		want    string
	}{
		{"nothing stored", nil, nil, outbox.OutcomeFiltered},
		{"firing", []string{"firing"}, nil, outbox.OutcomeAccepted},
		{"already resolved", []string{"firing", "resolved"}, nil, outbox.OutcomeFiltered},
		{"firing again", []string{"firing", "resolved", "firing"}, nil, outbox.OutcomeAccepted},
		{"another group firing", nil, []string{"firing"}, outbox.OutcomeFiltered},
	} {
		t.Run(tc.name, func(t *testing.T) {
			group := "ci:" + tc.name
			for _, st := range tc.history {
				enqueue(t, s, outbox.Notification{Source: "ci", GroupKey: group, Status: st})
				e.clock.Advance(time.Second)
			}
			for _, st := range tc.other {
				enqueue(t, s, outbox.Notification{Source: "ci", GroupKey: group + "-other", Status: st})
			}
			got := enqueue(t, s, outbox.Notification{Source: "ci", GroupKey: group, Status: "resolved", RequireFiring: true,
				Messages: []outbox.Message{msg("r", "resolved "+tc.name, "+27830000001")}})
			wantRecipients := 0
			if tc.want == outbox.OutcomeAccepted {
				wantRecipients = 1
			}
			if got.Outcome != tc.want || got.Recipients != wantRecipients {
				t.Errorf("enqueued %+v, want outcome %s with %d recipients", got, tc.want, wantRecipients)
			}
			if rs := records(t, s, outbox.Filter{NotificationID: got.ID}); len(rs) != wantRecipients {
				t.Errorf("stored %d deliveries, want %d", len(rs), wantRecipients)
			}
			// The guarded resolution is itself recorded: the next one is
			// filtered whatever became of this one.
			again := enqueue(t, s, outbox.Notification{Source: "ci", GroupKey: group, Status: "resolved", RequireFiring: true,
				Messages: []outbox.Message{msg("r", "again", "+27830000001")}})
			if again.Outcome != outbox.OutcomeFiltered {
				t.Errorf("second resolution: %+v, want filtered", again)
			}
		})
	}

	// The rule reads what is stored, so it holds across a restart.
	enqueue(t, s, outbox.Notification{Source: "ci", GroupKey: "ci:restart", Status: "firing"})
	s = e.Reopen(s)
	got := enqueue(t, s, outbox.Notification{Source: "ci", GroupKey: "ci:restart", Status: "resolved", RequireFiring: true,
		Messages: []outbox.Message{msg("r", "resolved after restart", "+27830000001")}})
	if got.Outcome != outbox.OutcomeAccepted {
		t.Errorf("resolution after a restart: %+v, want accepted", got)
	}
}

// testRequireFiringConcurrent races a firing and its resolution in many
// groups: whatever order the store records them in (and however it
// batches them), the resolution is sent exactly when the firing was
// recorded before it.
func testRequireFiringConcurrent(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	const groups = 20
	type pair struct{ firing, resolved outbox.Enqueued }
	got := make([]pair, groups)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range groups {
		group := fmt.Sprintf("ci:%d", i)
		wg.Add(2)
		go func() {
			defer wg.Done()
			<-start
			got[i].firing = enqueueOrError(t, s, outbox.Notification{Source: "ci", GroupKey: group, Status: "firing"})
		}()
		go func() {
			defer wg.Done()
			<-start
			got[i].resolved = enqueueOrError(t, s, outbox.Notification{Source: "ci", GroupKey: group, Status: "resolved", RequireFiring: true,
				Messages: []outbox.Message{msg("r", "resolved "+group, "+27830000001")}})
		}()
	}
	close(start)
	wg.Wait()
	for i, p := range got {
		want := outbox.OutcomeFiltered
		if p.firing.ID < p.resolved.ID {
			want = outbox.OutcomeAccepted
		}
		if p.resolved.Outcome != want {
			t.Errorf("group %d: firing id %d, resolution id %d recorded %s, want %s", i, p.firing.ID, p.resolved.ID, p.resolved.Outcome, want)
		}
	}
}

// enqueueOrError is enqueue for goroutines other than the test's.
func enqueueOrError(t *testing.T, s outbox.Store, n outbox.Notification) outbox.Enqueued {
	got, err := s.Enqueue(context.Background(), n)
	if err != nil {
		t.Errorf("enqueue: %v", err)
	}
	return got
}
