package outboxtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"

	"github.com/smsbridge/smsbridge/outbox"
)

func testPrune(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	done := enqueue(t, s, note("done")).ID
	open := enqueue(t, s, note("open")).ID
	enqueue(t, s, outbox.Notification{Source: "x"}) // unrouted
	var outs []outbox.Outcome
	for _, b := range lease(t, s, e.clock.Now(), 10, 10) {
		if b.Text == "done" {
			outs = append(outs, outbox.Accepted(b.Deliveries[0], "primary", "a"), outbox.Failed(b.Deliveries[1], "primary", "E", "e"))
		}
	}
	complete(t, s, outs...)
	e.clock.Advance(23 * time.Hour)
	enqueue(t, s, outbox.Notification{Source: "x"}) // unrouted, recent
	if n, err := s.Prune(ctx, 24*time.Hour); err != nil || n != 0 {
		t.Fatalf("prune before retention: n=%d err=%v", n, err)
	}
	e.clock.Advance(2 * time.Hour)
	n, err := s.Prune(ctx, 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("pruned %d notifications, want 2 (finished and unrouted)", n)
	}
	if rs := records(t, s, outbox.Filter{NotificationID: done}); len(rs) != 0 {
		t.Errorf("the finished notification kept %d deliveries", len(rs))
	}
	// Unfinished work is never pruned, however old.
	if rs := records(t, s, outbox.Filter{NotificationID: open}); len(rs) != 2 {
		t.Errorf("the unfinished notification has %d deliveries, want 2", len(rs))
	}
	// The recent unrouted notification was kept: it goes only once it is
	// old enough.
	e.clock.Advance(24 * time.Hour)
	if n, err := s.Prune(ctx, 24*time.Hour); err != nil || n != 1 {
		t.Errorf("later prune: n=%d err=%v, want the recent unrouted notification", n, err)
	}
	if n, err := s.Prune(ctx, 24*time.Hour); err != nil || n != 0 {
		t.Errorf("prune of nothing: n=%d err=%v", n, err)
	}
}

func testDeliveriesFilter(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	a := enqueue(t, s, note("a")).ID
	e.clock.Advance(time.Minute)
	since := e.clock.Now()
	b := enqueue(t, s, note("b")).ID
	e.clock.Advance(time.Minute)
	bs := lease(t, s, e.clock.Now(), 1, 1)
	complete(t, s, outbox.Failed(bs[0].Deliveries[0], "primary", "E", "e"))
	for _, tc := range []struct {
		name string
		f    outbox.Filter
		want int
	}{
		{"all", outbox.Filter{}, 4},
		{"failed", outbox.Filter{State: outbox.StateFailed}, 1},
		{"pending", outbox.Filter{State: outbox.StatePending}, 3},
		{"since", outbox.Filter{Since: since}, 3},
		{"notification", outbox.Filter{NotificationID: b}, 2},
		{"limit", outbox.Filter{Limit: 1}, 1},
		{"notification and state", outbox.Filter{NotificationID: b, State: outbox.StateFailed}, 0},
		{"other notification and state", outbox.Filter{NotificationID: a, State: outbox.StateFailed}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(records(t, s, tc.f)); got != tc.want {
				t.Errorf("got %d rows, want %d", got, tc.want)
			}
		})
	}
	rs := records(t, s, outbox.Filter{Limit: 1})
	if rs[0].State != outbox.StateFailed {
		t.Errorf("most recently updated first: got %+v", rs[0])
	}
	// The default limit is 100, and no caller gets more than 1000.
	var many []string
	for i := range 1001 {
		many = append(many, fmt.Sprintf("+2783%07d", i))
	}
	enqueue(t, s, outbox.Notification{Source: "t", Messages: []outbox.Message{msg("r", "many", many...)}})
	if got := len(records(t, s, outbox.Filter{})); got != 100 {
		t.Errorf("default limit returned %d rows, want 100", got)
	}
	if got := len(records(t, s, outbox.Filter{Limit: 5000})); got != 1000 {
		t.Errorf("limit 5000 returned %d rows, want 1000", got)
	}
}

func testDeliveryByProviderID(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	id := enqueue(t, s, outbox.Notification{Source: "ci", Messages: []outbox.Message{msg("ops", "x", "+1", "+2", "+3")}}).ID
	ds := deliveries(lease(t, s, e.clock.Now(), 1, 10))
	complete(t, s,
		outbox.Accepted(ds[0], "primary", "api-1"),
		outbox.Accepted(ds[1], "fallback", "api-2"),
		outbox.Accepted(ds[2], "primary", ""), // the provider named no id
	)
	r, err := s.DeliveryByProviderID(ctx, "api-2")
	if err != nil {
		t.Fatal(err)
	}
	if r.ID != ds[1].ID || r.NotificationID != id || r.Number != ds[1].Number || r.Account != "fallback" ||
		r.APIMessageID != "api-2" || r.State != outbox.StateAccepted || r.Source != "ci" || r.Text != "x" {
		t.Errorf("by provider id: %+v", r)
	}
	for _, unknown := range []string{"api-3", ""} {
		if _, err := s.DeliveryByProviderID(ctx, unknown); !errors.Is(err, outbox.ErrNotFound) {
			t.Errorf("provider id %q: err = %v, want ErrNotFound", unknown, err)
		}
	}
}

func testState(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	ctx := context.Background()
	get := func(key string) ([]byte, bool) {
		t.Helper()
		v, ok, err := s.GetState(ctx, key)
		if err != nil {
			t.Fatalf("get %q: %v", key, err)
		}
		return v, ok
	}
	put := func(key string, v []byte) {
		t.Helper()
		if err := s.PutState(ctx, key, v); err != nil {
			t.Fatalf("put %q: %v", key, err)
		}
	}
	if v, ok := get("dispatch/primary"); ok || v != nil {
		t.Errorf("a key never put: %q %v", v, ok)
	}
	put("dispatch/primary", []byte(`{"pause_until":"x"}`))
	put("dispatch/fallback", []byte("other"))
	put("dispatch/primary", []byte(`{"hold":"suspended"}`))
	put("empty", nil)
	want := map[string]string{"dispatch/primary": `{"hold":"suspended"}`, "dispatch/fallback": "other", "empty": ""}
	check := func(when string) {
		t.Helper()
		for k, w := range want {
			if v, ok := get(k); !ok || !bytes.Equal(v, []byte(w)) {
				t.Errorf("%s: %q = %q %v, want %q", when, k, v, ok, w)
			}
		}
	}
	check("after put")
	if err := s.PutState(ctx, "", []byte("x")); err == nil {
		t.Error("put with an empty key succeeded")
	}
	if _, _, err := s.GetState(ctx, ""); err == nil {
		t.Error("get with an empty key succeeded")
	}
	// The caller's slice is not the store's.
	v, _ := get("dispatch/fallback")
	v[0] = 'X'
	check("after changing a returned value")

	s = e.Reopen(s)
	check("after reopening")
}

func testMetrics(t *testing.T, h Harness) {
	e := newEnv(t, h)
	const pending, oldest = "smsbridge_outbox_pending", "smsbridge_outbox_oldest_pending_age_seconds"
	gauges := func() map[string]float64 {
		t.Helper()
		mfs, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]float64{}
		for _, mf := range mfs {
			if mf.GetType() == dto.MetricType_GAUGE {
				out[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
			}
		}
		return out
	}
	commits := func() *dto.Histogram {
		t.Helper()
		mfs, err := e.reg.Gather()
		if err != nil {
			t.Fatal(err)
		}
		for _, mf := range mfs {
			if mf.GetName() == "smsbridge_outbox_commit_batch_size" {
				return mf.GetMetric()[0].GetHistogram()
			}
		}
		t.Fatal("no commit batch size histogram")
		return nil
	}
	// Before a store is open the gauges are absent, not zero.
	if g := gauges(); len(g) != 0 {
		t.Errorf("gauges without a store: %v", g)
	}
	s := e.Open()
	for _, n := range []outbox.Notification{note("x"), {Source: "t"}, {Source: "t", Outcome: "duplicate"}} {
		enqueue(t, s, n)
	}
	if h := commits(); h.GetSampleSum() != 3 || h.GetSampleCount() < 1 || h.GetSampleCount() > 3 {
		t.Errorf("commits: %d carrying %v notifications, want 1 to 3 carrying 3", h.GetSampleCount(), h.GetSampleSum())
	}
	e.clock.Advance(90 * time.Second)
	if g := gauges(); g[pending] != 2 || g[oldest] != 90 {
		t.Errorf("gauges = %v, want pending 2 and oldest age 90", g)
	}
	bs := lease(t, s, e.clock.Now(), 1, 10)
	complete(t, s, outbox.Accepted(bs[0].Deliveries[0], "primary", ""), outbox.Accepted(bs[0].Deliveries[1], "primary", ""))
	if g := gauges(); g[pending] != 0 || g[oldest] != 0 {
		t.Errorf("gauges after acceptance = %v, want zeros", g)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if g := gauges(); len(g) != 0 {
		t.Errorf("gauges after close: %v", g)
	}
	// The same Metrics serves the next store.
	s = e.Open()
	enqueue(t, s, note("y"))
	if g := gauges(); g[pending] != 2 {
		t.Errorf("gauges of the next store = %v, want pending 2", g)
	}
}

// testClosedStore: every method of a closed store fails with ErrClosed
// rather than pretending.
func testClosedStore(t *testing.T, h Harness) {
	e := newEnv(t, h)
	s := e.Open()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second close: %v", err)
	}
	ctx := context.Background()
	now := e.clock.Now()
	stale := outbox.Delivery{ID: 1, Lease: "x"}
	for name, call := range map[string]func() error{
		"enqueue":      func() error { _, err := s.Enqueue(ctx, note("x")); return err },
		"lease":        func() error { _, err := s.Lease(ctx, now, 1, 1, time.Minute); return err },
		"complete":     func() error { return s.Complete(ctx, []outbox.Outcome{outbox.Released(stale)}) },
		"fail expired": func() error { _, err := s.FailExpired(ctx, now, time.Hour); return err },
		"schedule":     func() error { _, err := s.Schedule(ctx, now); return err },
		"stats":        func() error { _, err := s.Stats(ctx); return err },
		"deliveries":   func() error { _, err := s.Deliveries(ctx, outbox.Filter{}); return err },
		"by provider":  func() error { _, err := s.DeliveryByProviderID(ctx, "x"); return err },
		"retry":        func() error { return s.Retry(ctx, 1) },
		"prune":        func() error { _, err := s.Prune(ctx, time.Hour); return err },
		"get state":    func() error { _, _, err := s.GetState(ctx, "k"); return err },
		"put state":    func() error { return s.PutState(ctx, "k", []byte("v")) },
	} {
		if err := call(); !errors.Is(err, outbox.ErrClosed) {
			t.Errorf("%s on a closed store: err = %v, want ErrClosed", name, err)
		}
	}
}
