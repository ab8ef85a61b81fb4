package escalate

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/twoway"
)

// CheckReasons are the values of the reason label of
// smsbridge_escalation_check_errors_total: why Alertmanager could not say
// whether a group is silenced.
var CheckReasons = []string{twoway.ReasonUnreachable, twoway.ReasonServerError, twoway.ReasonUnauthorized,
	twoway.ReasonRejected, twoway.ReasonBadResponse}

// Metrics are escalation's.
type Metrics struct {
	escalations *prometheus.CounterVec
	stopped     *prometheus.CounterVec
	failed      prometheus.Counter
	checkErrors *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg (nil registers nowhere),
// every bounded label value at zero; Init adds a receiver's steps.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		escalations: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_escalations_total",
			Help: "Escalated pages queued: step (from 1) of the escalate list of receiver, sent because nobody acknowledged the page.",
		}, []string{"receiver", "step"}),
		stopped: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_escalations_stopped_total",
			Help: "Escalations stopped with steps still to come, by reason: acked, resolved, silenced (in Alertmanager), cancelled (by an operator).",
		}, []string{"reason"}),
		failed: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_escalation_steps_failed_total",
			Help: "Escalation steps that could page nobody: their receiver was removed from the configuration, or had nobody on call.",
		}),
		checkErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_escalation_check_errors_total",
			Help: "Failed attempts to ask Alertmanager whether an escalating group is silenced, by reason; after 30 s without an answer the step pages anyway.",
		}, []string{"reason"}),
	}
	for _, r := range outbox.StopReasons {
		m.stopped.WithLabelValues(r)
	}
	for _, r := range CheckReasons {
		m.checkErrors.WithLabelValues(r)
	}
	return m
}

// Init creates the series of receiver's steps (1 to steps) at zero.
func (m *Metrics) Init(receiver string, steps int) {
	for i := 1; i <= steps; i++ {
		m.escalations.WithLabelValues(receiver, stepLabel(i))
	}
}
