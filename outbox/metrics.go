package outbox

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// StatsSource is what the queue gauges read at scrape time: any open
// Store.
type StatsSource interface {
	Stats(ctx context.Context) (Stats, error)
}

// Metrics are the outbox's Prometheus metrics, the same for every driver.
// A driver reports its commits with ObserveCommit and has the queue gauges
// read from it with Watch.
type Metrics struct {
	batchSize      prometheus.Histogram
	commitDuration prometheus.Histogram
	commitErrors   prometheus.Counter
	queryDuration  *prometheus.HistogramVec
	queue          *queueCollector
}

// QueryOps are the values of the op label of
// smsbridge_store_query_duration_seconds: the store's calls that a driver
// times.
var QueryOps = []string{
	"lease", "complete", "fail_expired", "schedule", "stats", "deliveries", "delivery_by_provider_id",
	"retry", "prune", "get_state", "put_state", "health", "take_over", "leader_check",
	"admit", "release", "budget_used", "numbers", "notifications", "counts",
	"overrides", "add_override", "delete_override",
}

// NewMetrics registers the outbox's metrics with reg (nil registers
// nothing). The queue gauges are read from the watched store at scrape
// time, so they are exact and cost one query per scrape.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		batchSize: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "smsbridge_outbox_commit_batch_size",
			Help:    "Notifications written per group commit (one fsync).",
			Buckets: prometheus.ExponentialBuckets(1, 2, 10),
		}),
		commitDuration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "smsbridge_outbox_commit_duration_seconds",
			Help:    "Time to write and sync one group commit.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
		}),
		commitErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_outbox_commit_errors_total",
			Help: "Group commits that failed; every notification in them was refused (503).",
		}),
		queryDuration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smsbridge_store_query_duration_seconds",
			Help:    "Time of the store's calls other than the group commit, by call, failed ones included (reported by the PostgreSQL driver).",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10},
		}, []string{"op"}),
		queue: &queueCollector{
			pending: prometheus.NewDesc("smsbridge_outbox_pending",
				"Deliveries (one text to one number) not yet accepted or failed, including those in flight.", nil, nil),
			oldest: prometheus.NewDesc("smsbridge_outbox_oldest_pending_age_seconds",
				"Age of the oldest delivery not yet accepted or failed; 0 when there is none.", nil, nil),
		},
	}
	for _, op := range QueryOps {
		m.queryDuration.WithLabelValues(op)
	}
	if reg != nil {
		reg.MustRegister(m.queue)
	}
	return m
}

// ObserveQuery records one call of the store that took d. op is one of
// QueryOps; err is accepted for symmetry with ObserveCommit (a failed
// call is timed like any other).
func (m *Metrics) ObserveQuery(op string, d time.Duration, _ error) {
	m.queryDuration.WithLabelValues(op).Observe(d.Seconds())
}

// ObserveCommit records one commit of n notifications that took d. A
// non-nil err counts a failed commit (its duration is still observed; its
// size is not, since nothing was written).
func (m *Metrics) ObserveCommit(n int, d time.Duration, err error) {
	m.commitDuration.Observe(d.Seconds())
	if err != nil {
		m.commitErrors.Inc()
		return
	}
	m.batchSize.Observe(float64(n))
}

// Watch has the queue gauges read src at every scrape, taking ages against
// now and logging a failed read to logger, until the returned stop is
// called. The latest Watch wins; stop removes only its own source, so a
// store closing late cannot blank the gauges of its successor. Without a
// source the gauges are absent rather than zero: a gap says "unknown".
func (m *Metrics) Watch(src StatsSource, now func() time.Time, logger *slog.Logger) (stop func()) {
	w := &watched{src: src, now: now, logger: logger}
	m.queue.mu.Lock()
	m.queue.cur = w
	m.queue.mu.Unlock()
	return func() {
		m.queue.mu.Lock()
		defer m.queue.mu.Unlock()
		if m.queue.cur == w {
			m.queue.cur = nil
		}
	}
}

// watched is one registered source of the queue gauges.
type watched struct {
	src    StatsSource
	now    func() time.Time
	logger *slog.Logger
}

// queueCollector reads the queue gauges from the watched store.
type queueCollector struct {
	pending, oldest *prometheus.Desc

	mu  sync.Mutex
	cur *watched
}

func (c *queueCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.oldest
}

func (c *queueCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	w := c.cur
	c.mu.Unlock()
	if w == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := w.src.Stats(ctx)
	if err != nil {
		// An invalid metric would fail the whole scrape; the gap in these
		// two series is the signal, and the log says why.
		w.logger.Error("read outbox stats for metrics", "err", err)
		return
	}
	age := 0.0
	if !st.Oldest.IsZero() {
		age = max(0, w.now().Sub(st.Oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
