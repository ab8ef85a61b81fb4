package sqlite

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the outbox's Prometheus metrics.
type Metrics struct {
	batchSize      prometheus.Histogram
	commitDuration prometheus.Histogram
	commitErrors   prometheus.Counter
	stats          *statsCollector
}

// NewMetrics registers the outbox's metrics with reg (nil registers
// nothing). The queue gauges are
// read from the open Store at scrape time, so they are exact and cost two
// indexed queries per scrape.
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
			Help:    "Time to write and fsync one group commit.",
			Buckets: []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
		}),
		commitErrors: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_outbox_commit_errors_total",
			Help: "Group commits that failed; every notification in them was refused (503).",
		}),
		stats: &statsCollector{
			pending: prometheus.NewDesc("smsbridge_outbox_pending",
				"Deliveries (one text to one number) not yet delivered or failed, including those in flight.", nil, nil),
			oldest: prometheus.NewDesc("smsbridge_outbox_oldest_pending_age_seconds",
				"Age of the oldest delivery not yet delivered or failed; 0 when there is none.", nil, nil),
		},
	}
	if reg != nil {
		reg.MustRegister(m.stats)
	}
	return m
}

// statsCollector reads the queue gauges from the store being scraped.
type statsCollector struct {
	pending, oldest *prometheus.Desc
	source          atomic.Pointer[Store]
}

func (c *statsCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.pending
	ch <- c.oldest
}

func (c *statsCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.source.Load()
	if s == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	st, err := s.Stats(ctx)
	if err != nil {
		// An invalid metric would fail the whole scrape; the gap in these
		// two series is the signal, and the log says why.
		s.logger.Error("read outbox stats for metrics", "err", err)
		return
	}
	age := 0.0
	if !st.Oldest.IsZero() {
		age = max(0, s.clock().Sub(st.Oldest).Seconds())
	}
	ch <- prometheus.MustNewConstMetric(c.pending, prometheus.GaugeValue, float64(st.Pending))
	ch <- prometheus.MustNewConstMetric(c.oldest, prometheus.GaugeValue, age)
}
