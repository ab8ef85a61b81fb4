package outbox

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// fakeStats is a StatsSource with a fixed answer.
type fakeStats struct {
	st  Stats
	err error
}

func (f fakeStats) Stats(context.Context) (Stats, error) { return f.st, f.err }

// gather returns every metric of reg by name, with its one sample's value
// (histograms: their sample count).
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		m := mf.GetMetric()[0]
		switch mf.GetType() {
		case dto.MetricType_GAUGE:
			out[mf.GetName()] = m.GetGauge().GetValue()
		case dto.MetricType_COUNTER:
			out[mf.GetName()] = m.GetCounter().GetValue()
		case dto.MetricType_HISTOGRAM:
			out[mf.GetName()] = float64(m.GetHistogram().GetSampleCount())
			out[mf.GetName()+"_sum"] = m.GetHistogram().GetSampleSum()
		}
	}
	return out
}

func TestObserveCommit(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	// Every series exists at zero before the first commit.
	want := map[string]float64{
		"smsbridge_outbox_commit_batch_size":           0,
		"smsbridge_outbox_commit_batch_size_sum":       0,
		"smsbridge_outbox_commit_duration_seconds":     0,
		"smsbridge_outbox_commit_duration_seconds_sum": 0,
		"smsbridge_outbox_commit_errors_total":         0,
		"smsbridge_store_query_duration_seconds":       0,
		"smsbridge_store_query_duration_seconds_sum":   0,
	}
	if got := gather(t, reg); !equal(got, want) {
		t.Errorf("before any commit: %v, want %v", got, want)
	}
	m.ObserveCommit(3, 2*time.Millisecond, nil)
	m.ObserveCommit(5, 4*time.Millisecond, nil)
	m.ObserveCommit(7, time.Millisecond, errors.New("disk full"))
	want = map[string]float64{
		"smsbridge_outbox_commit_batch_size":           2,
		"smsbridge_outbox_commit_batch_size_sum":       8,
		"smsbridge_outbox_commit_duration_seconds":     3,
		"smsbridge_outbox_commit_duration_seconds_sum": 0.007,
		"smsbridge_outbox_commit_errors_total":         1,
		"smsbridge_store_query_duration_seconds":       0,
		"smsbridge_store_query_duration_seconds_sum":   0,
	}
	if got := gather(t, reg); !equal(got, want) {
		t.Errorf("after commits: %v, want %v", got, want)
	}
}

// TestObserveQuery: every op the drivers time exists before its first
// call, and a call lands under its own op.
func TestObserveQuery(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	m.ObserveQuery("lease", 3*time.Millisecond, nil)
	m.ObserveQuery("lease", time.Millisecond, errors.New("connection refused"))
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]uint64{}
	for _, mf := range mfs {
		if mf.GetName() != "smsbridge_store_query_duration_seconds" {
			continue
		}
		for _, s := range mf.GetMetric() {
			got[s.GetLabel()[0].GetValue()] = s.GetHistogram().GetSampleCount()
		}
	}
	if len(got) != len(QueryOps) {
		t.Errorf("%d ops exported, want %d: %v", len(got), len(QueryOps), got)
	}
	if got["lease"] != 2 || got["complete"] != 0 {
		t.Errorf("samples by op: %v", got)
	}
}

func equal(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		w, ok := b[k]
		if !ok || v-w > 1e-9 || w-v > 1e-9 {
			return false
		}
	}
	return true
}

func TestWatch(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	const pending, oldest = "smsbridge_outbox_pending", "smsbridge_outbox_oldest_pending_age_seconds"

	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	gauges := func() map[string]float64 {
		got := gather(t, reg)
		for k := range got {
			if k != pending && k != oldest {
				delete(got, k)
			}
		}
		return got
	}
	if got := gauges(); len(got) != 0 {
		t.Errorf("gauges without a source: %v, want none", got)
	}

	stopOld := m.Watch(fakeStats{st: Stats{Pending: 4, InFlight: 1, Oldest: now.Add(-90 * time.Second)}}, clock, logger)
	if got, want := gauges(), map[string]float64{pending: 4, oldest: 90}; !equal(got, want) {
		t.Errorf("gauges = %v, want %v", got, want)
	}

	// A successor replaces the source; the old store's late stop must
	// not remove it.
	stopNew := m.Watch(fakeStats{st: Stats{}}, clock, logger)
	stopOld()
	if got, want := gauges(), map[string]float64{pending: 0, oldest: 0}; !equal(got, want) {
		t.Errorf("gauges of an empty queue after the old stop = %v, want %v", got, want)
	}
	stopNew()
	if got := gauges(); len(got) != 0 {
		t.Errorf("gauges after stop: %v, want none", got)
	}

	// A failed read leaves the series out and says why.
	stop := m.Watch(fakeStats{err: errors.New("database is locked")}, clock, logger)
	defer stop()
	if got := gauges(); len(got) != 0 {
		t.Errorf("gauges after a failed read: %v, want none", got)
	}
	if !strings.Contains(logs.String(), "database is locked") {
		t.Errorf("failed read not logged: %s", logs.String())
	}
}

// TestWatchClockBehind: an oldest row stamped after now (a clock step)
// reports age 0, never a negative age.
func TestWatchClockBehind(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	stop := m.Watch(fakeStats{st: Stats{Pending: 1, Oldest: now.Add(time.Minute)}}, func() time.Time { return now }, slog.New(slog.DiscardHandler))
	defer stop()
	if got := gather(t, reg)["smsbridge_outbox_oldest_pending_age_seconds"]; got != 0 {
		t.Errorf("age = %v, want 0", got)
	}
}
