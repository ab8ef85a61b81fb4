package dispatch

import (
	"fmt"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/smsbridge/smsbridge/outbox"
)

func digestOf(held []outbox.Record) (outbox.Message, error) {
	var parts []string
	for _, r := range held {
		parts = append(parts, r.Text)
	}
	return outbox.Message{Receiver: held[0].Receiver, Text: fmt.Sprintf("%d held: %s", len(held), strings.Join(parts, "; ")), Segments: 1}, nil
}

// TestThrottle: a storm to one number sends what its bucket allows, holds
// the rest (counted per receiver), and sends them as one digest when the
// number may receive again; nothing is lost, nothing sent twice.
func TestThrottle(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newProvider(accept)
		s := testSettings(primary(p, 50))
		s.Limits = Limits{Throttle: []outbox.Bucket{{Count: 3, Per: 10 * time.Second}}, Digest: digestOf}
		h := newHarness(t, s, nil)
		h.m.InitReceivers("ops", "other")
		const x = "+27830000001"
		start := time.Now()
		for i := range 8 {
			h.store.add("ops", fmt.Sprintf("storm %d", i), 1, x)
		}
		h.store.add("other", "elsewhere", 1, "+27830000002")
		h.run()
		defer h.stop()

		until(t, time.Minute, "the digest", func() bool { return h.count(outbox.StateBundled) == 5 && h.count(outbox.StateAccepted) == 5 })
		var toX []call
		for _, c := range p.Calls() {
			for _, n := range c.numbers {
				if n == x {
					toX = append(toX, c)
				}
			}
		}
		if len(toX) != 4 {
			t.Fatalf("%d requests to the number, want 3 and a digest: %+v", len(toX), toX)
		}
		for _, c := range toX[:3] {
			if c.start.Sub(start) > time.Second {
				t.Errorf("a first send started after %s", c.start.Sub(start))
			}
		}
		d := toX[3]
		if d.start.Sub(toX[0].start) < 10*time.Second || d.text != "5 held: storm 3; storm 4; storm 5; storm 6; storm 7" {
			t.Errorf("digest %q at +%s after the first, want all five held after 10s", d.text, d.start.Sub(toX[0].start))
		}
		if got := testutil.ToFloat64(h.m.throttled.WithLabelValues("ops")); got != 5 {
			t.Errorf("throttled{ops} = %v, want 5", got)
		}
		if got := testutil.ToFloat64(h.m.throttled.WithLabelValues("other")); got != 0 {
			t.Errorf("throttled{other} = %v, want 0", got)
		}
		if got := testutil.ToFloat64(h.m.digests); got != 1 {
			t.Errorf("digests sent = %v, want 1", got)
		}
		if !strings.Contains(h.logs.String(), "held sms bundled into one digest") || !strings.Contains(h.logs.String(), "+2783****001") {
			t.Errorf("the release is not logged with the number masked:\n%s", h.logs)
		}
		if strings.Contains(h.logs.String(), x) {
			t.Error("a full number in the log")
		}
	})
}

// TestThrottleSingleHeld: one held message goes out as itself, not as a
// digest of one.
func TestThrottleSingleHeld(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		p := newProvider(accept)
		s := testSettings(primary(p, 50))
		s.Limits = Limits{Throttle: []outbox.Bucket{{Count: 1, Per: time.Minute}}, Digest: digestOf}
		h := newHarness(t, s, nil)
		h.store.add("ops", "first", 1, "+27830000001")
		h.store.add("ops", "second", 1, "+27830000001")
		h.run()
		defer h.stop()
		until(t, 2*time.Minute, "both sent", func() bool { return h.count(outbox.StateAccepted) == 2 })
		calls := p.Calls()
		if len(calls) != 2 || calls[1].text != "second" || calls[1].start.Sub(calls[0].start) < time.Minute {
			t.Errorf("calls %+v, want second as itself a minute after first", calls)
		}
		if testutil.ToFloat64(h.m.digests) != 0 {
			t.Error("a digest of one was sent")
		}
	})
}

// TestBudget: once the day's segments are spent, non-critical messages
// fail with budget_exhausted (counted, logged) and critical ones go; the
// logs say 80% and 100% once; the gauges read the store; at local
// midnight the budget starts afresh.
func TestBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		berlin, err := time.LoadLocation("Europe/Berlin")
		if err != nil {
			t.Fatal(err)
		}
		// synctest starts at 2000-01-01 00:00 UTC: 01:00 in Berlin.
		p := newProvider(accept)
		s := testSettings(primary(p, 50))
		s.Limits = Limits{DailySegments: 5, Location: berlin}
		h := newHarness(t, s, nil)
		h.m.InitReceivers("ops")
		reg := h.reg
		for i := range 4 {
			h.store.add("ops", fmt.Sprintf("n%d", i), 1, "+27830000001")
		}
		crit := h.store.add("ops", "critical", 2, "+27830000002")
		h.store.mark(crit, false, true)
		h.store.add("ops", "too much", 1, "+27830000003")
		h.run()
		defer h.stop()

		until(t, time.Minute, "all decided", func() bool { return h.count(outbox.StateAccepted)+h.count(outbox.StateFailed) == 6 })
		failed := h.store.rowsIn(outbox.StateFailed)
		if len(failed) != 1 || failed[0].text != "too much" || failed[0].code != ReasonBudgetExhausted {
			t.Errorf("failed %+v, want only the non-critical message after the budget", failed)
		}
		if got := testutil.ToFloat64(h.m.failed.WithLabelValues(ReasonBudgetExhausted)); got != 1 {
			t.Errorf("failed{budget_exhausted} = %v", got)
		}
		logs := h.logs.String()
		if strings.Count(logs, "80% of the daily sms budget is spent") != 1 || strings.Count(logs, "the daily sms budget is spent: only critical") != 1 {
			t.Errorf("the 80%% and 100%% lines should each appear once:\n%s", logs)
		}
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP smsbridge_budget_segments_remaining Segments left in today's budget; 0 once spent (critical messages still go); absent without a budget.
# TYPE smsbridge_budget_segments_remaining gauge
smsbridge_budget_segments_remaining 0
# HELP smsbridge_budget_segments_used Segments counted against today's budget (segments times numbers sent, in the budget's time zone); absent without a budget.
# TYPE smsbridge_budget_segments_used gauge
smsbridge_budget_segments_used 6
`), "smsbridge_budget_segments_used", "smsbridge_budget_segments_remaining"); err != nil {
			t.Error(err)
		}

		// At midnight in Berlin (23:00 UTC) a new day begins.
		time.Sleep(time.Until(time.Date(2000, 1, 1, 23, 0, 0, 0, time.UTC)))
		h.store.add("ops", "next day", 1, "+27830000003")
		until(t, time.Minute, "sent the next day", func() bool { return h.count(outbox.StateAccepted) == 6 })
		if err := testutil.GatherAndCompare(reg, strings.NewReader(`
# HELP smsbridge_budget_segments_used Segments counted against today's budget (segments times numbers sent, in the budget's time zone); absent without a budget.
# TYPE smsbridge_budget_segments_used gauge
smsbridge_budget_segments_used 1
`), "smsbridge_budget_segments_used"); err != nil {
			t.Error(err)
		}
	})
}

// TestBudgetGaugesAbsentWithoutBudget: without a budget the gauges are
// not exported at all, rather than a misleading 0 remaining.
func TestBudgetGaugesAbsentWithoutBudget(t *testing.T) {
	t.Parallel()
	h := newHarness(t, testSettings(primary(newProvider(accept), 10)), nil)
	if n, err := testutil.GatherAndCount(h.reg, "smsbridge_budget_segments_used", "smsbridge_budget_segments_remaining"); err != nil || n != 0 {
		t.Errorf("%d budget series without a budget (%v)", n, err)
	}
}

// TestDay: the budget's day is the local date, across both DST changes.
func TestDay(t *testing.T) {
	t.Parallel()
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		utc  string
		loc  *time.Location
		want string
	}{
		{"2026-03-28T22:59:59Z", berlin, "2026-03-28"}, // 23:59:59 CET
		{"2026-03-28T23:00:00Z", berlin, "2026-03-29"}, // midnight; this day has 23 hours
		{"2026-03-29T21:59:59Z", berlin, "2026-03-29"}, // 23:59:59 CEST
		{"2026-03-29T22:00:00Z", berlin, "2026-03-30"},
		{"2026-10-24T21:59:59Z", berlin, "2026-10-24"},
		{"2026-10-24T22:00:00Z", berlin, "2026-10-25"}, // this day has 25 hours
		{"2026-10-25T22:59:59Z", berlin, "2026-10-25"}, // 23:59:59 CET
		{"2026-10-25T23:00:00Z", berlin, "2026-10-26"},
		{"2026-10-25T23:30:00Z", nil, "2026-10-25"}, // UTC
	} {
		at, err := time.Parse(time.RFC3339, tc.utc)
		if err != nil {
			t.Fatal(err)
		}
		if got := Day(at, tc.loc); got != tc.want {
			t.Errorf("Day(%s) = %s, want %s", tc.utc, got, tc.want)
		}
	}
}
