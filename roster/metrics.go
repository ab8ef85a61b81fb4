package roster

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Metrics are the roster's: notices queued, and (through Collector) who is
// on call.
type Metrics struct {
	notices *prometheus.CounterVec
}

// NewMetrics registers the notice counter with reg; nil registers
// nowhere.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{notices: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
		Name: "smsbridge_oncall_handoff_notices_total",
		Help: "Handoff notices queued, by on-call list.",
	}, []string{"oncall"})}
}

// Init creates the series of each list at zero.
func (m *Metrics) Init(lists ...string) {
	if m == nil {
		return
	}
	for _, l := range lists {
		m.notices.WithLabelValues(l)
	}
}

func (m *Metrics) notice(list string) {
	if m != nil {
		m.notices.WithLabelValues(list).Inc()
	}
}

var membersDesc = prometheus.NewDesc("smsbridge_oncall_members",
	"Members on call now, by on-call list.", []string{"oncall"}, nil)

// Collector reports smsbridge_oncall_members for every list of the
// configuration in force, computed at scrape time, so it is never stale
// and a list that has nobody on call shows 0.
func (r *Roster) Collector() prometheus.Collector { return collector{r} }

type collector struct{ r *Roster }

func (c collector) Describe(ch chan<- *prometheus.Desc) { ch <- membersDesc }

func (c collector) Collect(ch chan<- prometheus.Metric) {
	v := c.r.view()
	now := c.r.now()
	for _, s := range v.Lists {
		n := len(s.Who(now, c.r.For(s.Name, v.Directory)).Members)
		ch <- prometheus.MustNewConstMetric(membersDesc, prometheus.GaugeValue, float64(n), s.Name)
	}
}
