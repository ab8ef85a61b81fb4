package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Reasons a delivery fails for good: the values of the reason label of
// smsbridge_deliveries_failed_total.
const (
	// ReasonRejected: the provider refused the message for this number.
	ReasonRejected = "rejected"
	// ReasonMaxAge: not delivered within delivery.max_age of receipt.
	ReasonMaxAge = "max_age"
	// ReasonBadRequest: the provider answered 400 to the request.
	ReasonBadRequest = "bad_request"
	// ReasonPermanent: the provider answered with a status that will not
	// change on retry and that its documentation does not name.
	ReasonPermanent = "permanent"
)

// heldKinds are the values of the kind label of smsbridge_dispatch_held_reason.
var heldKinds = []string{"unauthorized", "suspended", "no_credits"}

// Metrics are the dispatcher's Prometheus metrics.
type Metrics struct {
	sent        *prometheus.CounterVec
	segments    prometheus.Counter
	failed      *prometheus.CounterVec
	held        prometheus.Gauge
	heldReason  *prometheus.GaugeVec
	pausedUntil prometheus.Gauge
}

// NewMetrics registers the dispatcher's metrics with reg, every bounded
// label value created at zero.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_sent_total",
			Help: "Numbers an SMS was delivered to (accepted by the provider), by receiver.",
		}, []string{"receiver"}),
		segments: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_sms_segments_sent_total",
			Help: "SMS segments sent: segments of each text times the numbers it was accepted for.",
		}),
		failed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_deliveries_failed_total",
			Help: "Deliveries (one text to one number) that failed for good, by reason.",
		}, []string{"reason"}),
		held: f.NewGauge(prometheus.GaugeOpts{
			Name: "smsbridge_dispatch_held",
			Help: "1 while the queue is held because the SMS API refuses the account (401, 403, 405).",
		}),
		heldReason: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smsbridge_dispatch_held_reason",
			Help: "1 for the reason the queue is held: unauthorized (401), suspended (403), no_credits (405).",
		}, []string{"kind"}),
		pausedUntil: f.NewGauge(prometheus.GaugeOpts{
			Name: "smsbridge_dispatch_paused_until_timestamp_seconds",
			Help: "End of the latest rate-limit pause the SMS API announced (429), as a unix timestamp; in the past when not paused.",
		}),
	}
	for _, r := range []string{ReasonRejected, ReasonMaxAge, ReasonBadRequest, ReasonPermanent} {
		m.failed.WithLabelValues(r)
	}
	for _, k := range heldKinds {
		m.heldReason.WithLabelValues(k)
	}
	return m
}

// InitReceivers creates smsbridge_sms_sent_total at zero for each receiver,
// so rate() works from the first SMS. Call it with the configured names.
func (m *Metrics) InitReceivers(names ...string) {
	for _, n := range names {
		m.sent.WithLabelValues(n)
	}
}

func (m *Metrics) setHeld(kind string) {
	if kind == "" {
		m.held.Set(0)
	} else {
		m.held.Set(1)
	}
	for _, k := range heldKinds {
		v := 0.0
		if k == kind {
			v = 1
		}
		m.heldReason.WithLabelValues(k).Set(v)
	}
}
