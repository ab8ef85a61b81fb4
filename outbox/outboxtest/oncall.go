package outboxtest

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// The contract's parts for on-call schedules: who was on call per
// delivery, notifications that happen once (handoff notices), and
// overrides added at run time.

func testPeople(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	n := outbox.Notification{Source: "alertmanager", GroupKey: "g", Status: "firing", Messages: []outbox.Message{
		{Receiver: "db", Text: "disk", Segments: 1, Numbers: []string{"+27830000001", "+27830000009", "+27830000001"}, People: []string{"alice", "", "alice"}},
		{Receiver: "ops", Text: "disk (ops)", Segments: 1, Numbers: []string{"+27830000002"}}, // no names at all
	}}
	id := enqueue(t, s, n).ID
	byNumber := map[string]string{}
	for _, r := range records(t, s, outbox.Filter{NotificationID: id}) {
		byNumber[r.Receiver+" "+r.Number] = r.Person
	}
	want := map[string]string{"db +27830000001": "alice", "db +27830000009": "", "ops +27830000002": ""}
	if len(byNumber) != len(want) {
		t.Errorf("records %v, want %v", byNumber, want)
	}
	for k, w := range want {
		if got, ok := byNumber[k]; !ok || got != w {
			t.Errorf("record %s: person %q (present %v), want %q", k, got, ok, w)
		}
	}
	for _, d := range deliveries(lease(t, s, e.clock.Now(), 10, 10)) {
		if w := want[d.Receiver+" "+d.Number]; d.Person != w {
			t.Errorf("leased %s %s: person %q, want %q", d.Receiver, d.Number, d.Person, w)
		}
	}
	bad := outbox.Notification{Source: "x", Messages: []outbox.Message{{Receiver: "r", Text: "t", Segments: 1, Numbers: []string{"+1", "+2"}, People: []string{"a"}}}}
	if _, err := s.Enqueue(context.Background(), bad); !errors.Is(err, outbox.ErrInvalid) {
		t.Errorf("people not matching the numbers: err = %v, want ErrInvalid", err)
	}
}

func testOnceKey(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	notice := func(key string) outbox.Notification {
		return outbox.Notification{Source: "oncall", GroupKey: "handoff:db", Status: "firing", OnceKey: key,
			Messages: []outbox.Message{{Receiver: "handoff:db", Text: "You are on call", Segments: 1, Numbers: []string{"+27830000001"}, People: []string{"alice"}}}}
	}
	first := enqueue(t, s, notice("handoff/db/1"))
	if first.Outcome != outbox.OutcomeAccepted || first.Recipients != 1 {
		t.Fatalf("first notice %+v", first)
	}
	drain(s)
	again := enqueue(t, s, notice("handoff/db/1"))
	if again.ID != first.ID || again.Outcome != outbox.OutcomeDuplicate || again.Recipients != 0 {
		t.Errorf("the same key again: %+v, want id %d, %s, no recipients", again, first.ID, outbox.OutcomeDuplicate)
	}
	if woken(s) {
		t.Error("a duplicate woke the dispatcher")
	}
	if n := len(records(t, s, outbox.Filter{})); n != 1 {
		t.Errorf("%d deliveries after the duplicate, want 1", n)
	}
	// Another key is another notice; no key is never a duplicate.
	if other := enqueue(t, s, notice("handoff/db/2")); other.Outcome != outbox.OutcomeAccepted || other.ID == first.ID {
		t.Errorf("another key: %+v", other)
	}
	for range 2 {
		if plain := enqueue(t, s, notice("")); plain.Outcome != outbox.OutcomeAccepted {
			t.Errorf("no key: %+v", plain)
		}
	}
	// The key survives a restart.
	s = e.Reopen(s)
	if after := enqueue(t, s, notice("handoff/db/1")); after.ID != first.ID || after.Outcome != outbox.OutcomeDuplicate {
		t.Errorf("after reopening: %+v", after)
	}
	// Racing callers: exactly one records it.
	const racers = 16
	got := make([]outbox.Enqueued, racers)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range racers {
		wg.Go(func() {
			<-start
			got[i] = enqueueOrError(t, s, notice("handoff/db/3"))
		})
	}
	close(start)
	wg.Wait()
	accepted := 0
	for _, g := range got {
		switch g.Outcome {
		case outbox.OutcomeAccepted:
			accepted++
		case outbox.OutcomeDuplicate:
		default:
			t.Errorf("racer got %+v", g)
		}
	}
	if accepted != 1 {
		t.Errorf("%d racers recorded the notice, want exactly 1", accepted)
	}
	// The key lives as long as its notification: once pruned, it is free.
	complete(t, s, acceptAll(lease(t, s, e.clock.Now(), 100, 100))...)
	e.clock.Advance(48 * time.Hour)
	if _, err := s.Prune(context.Background(), 24*time.Hour); err != nil {
		t.Fatal(err)
	}
	if after := enqueue(t, s, notice("handoff/db/1")); after.Outcome != outbox.OutcomeAccepted {
		t.Errorf("after prune: %+v", after)
	}
}

func acceptAll(bs []outbox.Batch) []outbox.Outcome {
	var out []outbox.Outcome
	for _, d := range deliveries(bs) {
		out = append(out, outbox.Accepted(d, "primary", "id"))
	}
	return out
}

func testOverrides(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	now := e.clock.Now()
	day := 24 * time.Hour
	add := func(o outbox.Override) outbox.Override {
		t.Helper()
		got, err := s.AddOverride(ctx, o)
		if err != nil {
			t.Fatalf("add override: %v", err)
		}
		return got
	}
	a := add(outbox.Override{List: "db", Members: []string{"erin"}, Start: now, End: now.Add(day)})
	e.clock.Advance(time.Second)
	b := add(outbox.Override{List: "db", Members: []string{"frank", "+27830000009"}, Start: now.Add(time.Hour), End: now.Add(2 * time.Hour)})
	c := add(outbox.Override{List: "web", Members: []string{"alice"}, Start: now, End: now.Add(3 * day)})
	if a.ID <= 0 || b.ID <= a.ID || c.ID <= b.ID {
		t.Errorf("ids %d %d %d, want positive and ascending", a.ID, b.ID, c.ID)
	}
	if !a.CreatedAt.Equal(now) || !b.CreatedAt.Equal(now.Add(time.Second)) {
		t.Errorf("created %s %s", a.CreatedAt, b.CreatedAt)
	}
	check := func(when string, want ...outbox.Override) {
		t.Helper()
		got, err := s.Overrides(ctx)
		if err != nil {
			t.Fatalf("%s: list: %v", when, err)
		}
		same := len(got) == len(want)
		for i := 0; same && i < len(got); i++ {
			g, w := got[i], want[i]
			same = g.ID == w.ID && g.List == w.List && slices.Equal(g.Members, w.Members) &&
				g.Start.Equal(w.Start) && g.End.Equal(w.End) && g.CreatedAt.Equal(w.CreatedAt)
		}
		if !same {
			t.Errorf("%s: overrides\n got %+v\nwant %+v", when, got, want)
		}
	}
	check("after adding", a, b, c)
	s = e.Reopen(s)
	check("after reopening", a, b, c)

	if err := s.DeleteOverride(ctx, b.ID); err != nil {
		t.Fatal(err)
	}
	check("after deleting", a, c)
	if err := s.DeleteOverride(ctx, b.ID); !errors.Is(err, outbox.ErrNotFound) {
		t.Errorf("deleting it again: %v, want ErrNotFound", err)
	}
	for name, o := range map[string]outbox.Override{
		"no list":        {Members: []string{"erin"}, Start: now, End: now.Add(day)},
		"no members":     {List: "db", Start: now, End: now.Add(day)},
		"empty member":   {List: "db", Members: []string{" "}, Start: now, End: now.Add(day)},
		"ends at start":  {List: "db", Members: []string{"erin"}, Start: now, End: now},
		"ends before it": {List: "db", Members: []string{"erin"}, Start: now, End: now.Add(-time.Hour)},
	} {
		if _, err := s.AddOverride(ctx, o); !errors.Is(err, outbox.ErrInvalid) {
			t.Errorf("%s: err = %v, want ErrInvalid", name, err)
		}
	}
	check("after refusals", a, c)

	// Prune removes the overrides that ended more than retention ago.
	e.clock.Advance(2*day + time.Hour)
	if _, err := s.Prune(ctx, day); err != nil {
		t.Fatal(err)
	}
	check("after prune", c)

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"add":    func() error { _, err := s.AddOverride(ctx, a); return err },
		"list":   func() error { _, err := s.Overrides(ctx); return err },
		"delete": func() error { return s.DeleteOverride(ctx, c.ID) },
	} {
		if err := call(); !errors.Is(err, outbox.ErrClosed) {
			t.Errorf("%s on a closed store: err = %v, want ErrClosed", name, err)
		}
	}
}

// testConcurrentOnceKey: two stores on one backing record a notice once.
func testConcurrentOnceKey(t *testing.T, h Harness) {
	e := newEnv(t, h)
	a, b := openPair(t, e)
	n := outbox.Notification{Source: "oncall", GroupKey: "handoff:db", Status: "firing", OnceKey: "handoff/db/9",
		Messages: []outbox.Message{msg("handoff:db", "You are on call", "+27830000001")}}
	var got [2]outbox.Enqueued
	var wg sync.WaitGroup
	for i, s := range []outbox.Store{a, b} {
		wg.Go(func() { got[i] = enqueueOrError(t, s, n) })
	}
	wg.Wait()
	outcomes := []string{got[0].Outcome, got[1].Outcome}
	slices.Sort(outcomes)
	if !slices.Equal(outcomes, []string{outbox.OutcomeAccepted, outbox.OutcomeDuplicate}) || got[0].ID != got[1].ID {
		t.Errorf("two stores enqueued one notice: %+v", got)
	}
	// An override one store adds, the other lists.
	o, err := a.AddOverride(context.Background(), outbox.Override{List: "db", Members: []string{"erin"}, Start: e.clock.Now(), End: e.clock.Now().Add(time.Hour)})
	if err != nil {
		t.Fatal(err)
	}
	list, err := b.Overrides(context.Background())
	if err != nil || len(list) != 1 || list[0].ID != o.ID {
		t.Errorf("b lists %+v, %v", list, err)
	}
}
