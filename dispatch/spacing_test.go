package dispatch

import (
	"fmt"
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
