package dispatch

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smsbridge/smsbridge/outbox"
)

// fakeLeadership grants terms when the test says so.
type fakeLeadership struct {
	grant chan *fakeTerm
}

func (f *fakeLeadership) Lead(ctx context.Context) (outbox.Term, error) {
	select {
	case t := <-f.grant:
		return t, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

type fakeTerm struct {
	lost     chan struct{}
	once     sync.Once
	resigned chan struct{}
	delay    time.Duration
}

func newTerm() *fakeTerm { return &fakeTerm{lost: make(chan struct{}), resigned: make(chan struct{})} }

func (t *fakeTerm) Lost() <-chan struct{}     { return t.lost }
func (t *fakeTerm) StartDelay() time.Duration { return t.delay }
func (t *fakeTerm) Resign() {
	t.once.Do(func() { close(t.resigned) })
}

// TestLeadership: with a Leadership, the dispatcher sends only during a
// term, starts a term after its start delay, with the pause the store
// holds then, and stops at once when the term is lost.
func TestLeadership(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProvider(accept)
		store := newMemStore()
		lead := &fakeLeadership{grant: make(chan *fakeTerm)}
		h := newHarness(t, testSettings(primary(p, 100)), store)
		h.d.leader = lead
		store.add("ops", "first", 1, "+27830000001")
		h.run()
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(p.Calls()); n != 0 {
			t.Fatalf("%d requests before this process led", n)
		}
		if v := testutil.ToFloat64(h.m.leader); v != 0 {
			t.Errorf("leader gauge %v while following", v)
		}

		// Another replica saw a 429 while this one followed: the pause is in
		// the store, and the new term must honour it.
		pauseEnd := time.Now().Add(10 * time.Second)
		raw, _ := json.Marshal(saved{PausedUntil: pauseEnd})
		if err := store.PutState(context.Background(), stateKey("primary"), raw); err != nil {
			t.Fatal(err)
		}
		first := newTerm()
		first.delay = time.Second
		took := time.Now()
		lead.grant <- first
		until(t, time.Minute, "the first text sent", func() bool { return len(p.Calls()) == 1 })
		if c := p.Calls()[0]; c.start.Before(pauseEnd) || c.start.Sub(took) < first.delay {
			t.Errorf("first request %v after taking over; want after the start delay and the stored pause (%v)", c.start.Sub(took), pauseEnd.Sub(took))
		}
		if v := testutil.ToFloat64(h.m.leader); v != 1 {
			t.Errorf("leader gauge %v while leading", v)
		}

		close(first.lost)
		synctest.Wait()
		select {
		case <-first.resigned:
		default:
			t.Fatal("the lost term was not resigned")
		}
		store.add("ops", "second", 1, "+27830000002")
		time.Sleep(time.Minute)
		synctest.Wait()
		if n := len(p.Calls()); n != 1 {
			t.Fatalf("%d requests after the term was lost, want 1", n)
		}
		if v := testutil.ToFloat64(h.m.leader); v != 0 {
			t.Errorf("leader gauge %v after losing the term", v)
		}

		// The next term reads the store again: a pause put meanwhile holds.
		pauseEnd = time.Now().Add(20 * time.Second)
		raw, _ = json.Marshal(saved{PausedUntil: pauseEnd})
		if err := store.PutState(context.Background(), stateKey("primary"), raw); err != nil {
			t.Fatal(err)
		}
		lead.grant <- newTerm()
		until(t, time.Minute, "the second text sent", func() bool { return len(p.Calls()) == 2 })
		if c := p.Calls()[1]; c.start.Before(pauseEnd) {
			t.Errorf("the second term sent %v before the pause it found in the store ended", pauseEnd.Sub(c.start))
		}
		h.stop()
		if v := testutil.ToFloat64(h.m.leaderChanges); v != 2 {
			t.Errorf("leader changes %v, want 2", v)
		}
		if !strings.Contains(h.logs.String(), "lost the dispatch lock") {
			t.Errorf("losing the term was not logged:\n%s", h.logs)
		}
	})
}

// TestTermStartDelay: a term's first request waits exactly its start
// delay, and none at all when the store says no earlier leader could have
// sent within a provider second.
func TestTermStartDelay(t *testing.T) {
	t.Parallel()
	for _, delay := range []time.Duration{0, 250 * time.Millisecond, 1250 * time.Millisecond} {
		t.Run(delay.String(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newProvider(accept)
				store := newMemStore()
				lead := &fakeLeadership{grant: make(chan *fakeTerm)}
				h := newHarness(t, testSettings(primary(p, 100)), store)
				h.d.leader = lead
				store.add("ops", "first", 1, "+27830000001")
				h.run()
				synctest.Wait()
				term := newTerm()
				term.delay = delay
				took := time.Now()
				lead.grant <- term
				until(t, time.Minute, "the first text sent", func() bool { return len(p.Calls()) == 1 })
				if got := p.Calls()[0].start.Sub(took); got != delay {
					t.Errorf("first request %v after taking over, want %v", got, delay)
				}
				h.stop()
			})
		})
	}
}

// TestSoleDispatcherLeads: without a Leadership the process is the leader
// for the whole run.
func TestSoleDispatcherLeads(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := newHarness(t, testSettings(primary(newProvider(accept), 100)), nil)
		h.run()
		synctest.Wait()
		if v := testutil.ToFloat64(h.m.leader); v != 1 {
			t.Errorf("leader gauge %v, want 1", v)
		}
		h.stop()
		if v := testutil.ToFloat64(h.m.leader); v != 0 {
			t.Errorf("leader gauge %v after the run, want 0", v)
		}
		if v := testutil.ToFloat64(h.m.leaderChanges); v != 1 {
			t.Errorf("leader changes %v, want 1", v)
		}
	})
}
