package dispatch

import (
	"fmt"
	"sync"
	"testing"
	"testing/synctest"
	"time"
)

// TestPaceFromActualStart: a lease that takes a while (a busy database)
// delays its request, and the next request is spaced from that delayed
// start, not from when the step began: no second holds more requests than
// the rate limit.
func TestPaceFromActualStart(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		p := newProvider(accept)
		store := newMemStore()
		leases := 0
		store.fail = func(method string) error {
			if method == "Lease" {
				if leases++; leases == 1 {
					time.Sleep(60 * time.Millisecond)
				}
			}
			return nil
		}
		h := newHarness(t, testSettings(primary(p, 10)), store)
		for i := range 30 {
			store.add("ops", fmt.Sprintf("text %d", i), 1, "+27830000001")
		}
		h.run()
		until(t, time.Minute, "all sent", func() bool { return len(p.Calls()) == 30 })
		h.stop()
		calls := p.Calls()
		for i := 0; i+10 < len(calls); i++ {
			if span := calls[i+10].start.Sub(calls[i].start); span < time.Second {
				t.Fatalf("requests %d to %d started within %v: 11 in one second at a limit of 10", i, i+10, span)
			}
		}
	})
}

// TestAdmit: the sliding window counts when requests really left. Ten go
// out late and close together; the eleventh waits until a second and the
// guard after the first, however the planned slots were spaced.
func TestAdmit(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const ms = time.Millisecond
	for _, tc := range []struct {
		name string
		rate float64
		at   []time.Duration // when each request tries to go, from t0
		want []time.Duration // the wait admit answers for each
	}{
		{"under the limit", 10, []time.Duration{0, 100 * ms, 200 * ms}, []time.Duration{0, 0, 0}},
		{"eleventh in the window", 10,
			[]time.Duration{0, 10 * ms, 20 * ms, 30 * ms, 40 * ms, 50 * ms, 60 * ms, 70 * ms, 80 * ms, 90 * ms, 950 * ms},
			[]time.Duration{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 50*ms + windowGuard}},
		{"below one a second", 0.5, []time.Duration{0, 500 * ms}, []time.Duration{0, 500*ms + windowGuard}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := &pace{}
			for i, at := range tc.at {
				if got := p.admit(t0.Add(at), tc.rate); got != tc.want[i] {
					t.Errorf("request %d at %v: wait %v, want %v", i, at, got, tc.want[i])
				}
			}
		})
	}
	// Admitted after the wait, the request counts, and the next waits on.
	p := &pace{}
	for i := range 10 {
		p.admit(t0.Add(time.Duration(i)*ms), 10)
	}
	if w := p.admit(t0.Add(time.Second+windowGuard), 10); w != 0 {
		t.Errorf("at the window's end: wait %v, want 0", w)
	}
	if w := p.admit(t0.Add(time.Second+windowGuard), 10); w != ms {
		t.Errorf("the twelfth: wait %v, want 1ms (a window after the second)", w)
	}
}

// TestAdmitLeavesSpacingAlone: requests that leave at their planned
// slots never wait for the window; the window only catches late ones. A
// window longer than rate limit requests at spacing would set the pace
// itself, below the spacing's share of the limit.
func TestAdmitLeavesSpacingAlone(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, rate := range []float64{1, 2, 10, 50, 97, 1000} {
		t.Run(fmt.Sprint(rate), func(t *testing.T) {
			p := &pace{}
			gap := spacing(rate)
			for i := range 3 * int(rate+1) {
				if w := p.admit(t0.Add(time.Duration(i)*gap), rate); w != 0 {
					t.Fatalf("request %d at its slot waits %v for the window", i, w)
				}
			}
		})
	}
}

// TestWakeWhileWaitingForSlot: while due work waits for the pace's next
// slot, the wake-ups of further commits (a storm: one per group commit)
// run no schedule query, and the work still goes at the pace, every text
// in its own request.
func TestWakeWhileWaitingForSlot(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name string
		// wakes are the store wake-ups while the first text waits.
		wakes int
	}{{"one wake", 1}, {"a storm", 40}} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newProvider(accept)
				store := newMemStore()
				var mu sync.Mutex
				schedules := 0
				store.fail = func(method string) error {
					if method == "Schedule" {
						mu.Lock()
						schedules++
						mu.Unlock()
					}
					return nil
				}
				count := func() int {
					mu.Lock()
					defer mu.Unlock()
					return schedules
				}
				h := newHarness(t, testSettings(primary(p, 1)), store)
				store.add("ops", "first", 1, "+27830000001")
				h.run()
				until(t, time.Second, "first sent", func() bool { return len(p.Calls()) == 1 })
				// The next text is due at once, and waits for the slot a
				// spacing after the first request.
				store.add("ops", "second", 1, "+27830000001")
				synctest.Wait()
				before := count()
				for i := range c.wakes {
					store.add("ops", fmt.Sprintf("storm %d", i), 1, "+27830000001")
					synctest.Wait()
				}
				if n := count() - before; n != 0 {
					t.Errorf("%d schedule queries for %d wake-ups while work waited for a slot, want 0", n, c.wakes)
				}
				until(t, time.Duration(c.wakes+3)*2*time.Second, "all sent", func() bool { return len(p.Calls()) == c.wakes+2 })
				h.stop()
				calls := p.Calls()
				for i := 1; i < len(calls); i++ {
					if gap := calls[i].start.Sub(calls[i-1].start); gap < spacing(1) {
						t.Errorf("request %d %v after the one before, under the spacing %v", i, gap, spacing(1))
					}
				}
			})
		})
	}
}

// TestLeaseStallKeepsPace: at 50 requests a second a lease that stalls
// for less than the lookahead (a busy database) delays no request: the
// loop leases ahead of the slots, so every request still starts a spacing
// after the one before it, and the stalls do not add up over a drain.
func TestLeaseStallKeepsPace(t *testing.T) {
	t.Parallel()
	for _, stall := range []time.Duration{15 * time.Millisecond, 40 * time.Millisecond, 70 * time.Millisecond} {
		t.Run(stall.String(), func(t *testing.T) {
			t.Parallel()
			synctest.Test(t, func(t *testing.T) {
				p := newProvider(accept)
				store := newMemStore()
				leases := 0
				store.fail = func(method string) error {
					if method == "Lease" {
						if leases++; leases%10 == 0 {
							time.Sleep(stall)
						}
					}
					return nil
				}
				h := newHarness(t, testSettings(primary(p, 50)), store)
				const n = 100
				for i := range n {
					store.add("ops", fmt.Sprintf("text %d", i), 1, "+27830000001")
				}
				h.run()
				until(t, time.Minute, "all sent", func() bool { return len(p.Calls()) == n })
				h.stop()
				calls := p.Calls()
				gap := spacing(50)
				for i := 1; i < len(calls); i++ {
					if d := calls[i].start.Sub(calls[i-1].start); d != gap {
						t.Fatalf("requests %d and %d started %v apart, want the spacing %v", i-1, i, d, gap)
					}
				}
			})
		})
	}
}
