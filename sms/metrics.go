package sms

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Values of the code label of smsbridge_sms_numbers_rejected_total besides
// the provider's known codes. The set is closed so the label stays bounded.
const (
	// CodeInvalidNumber marks a number that failed NormalizeNumber and was
	// never sent.
	CodeInvalidNumber = "invalid_number"
	// CodeMissingInReply marks a number the provider's reply did not
	// mention although it named others: it is reported as not accepted.
	CodeMissingInReply = "missing_in_reply"
	// CodeOther is the label for any rejection code not listed here.
	CodeOther = "other"
)

// providerCodes are the per-number error codes the provider documents.
var providerCodes = []string{"E101"}

// requestClasses are the values of the class label of
// smsbridge_sms_api_requests_total: the HTTP status class, or "error" when
// no reply arrived.
var requestClasses = []string{"2xx", "3xx", "4xx", "5xx", "error"}

// Metrics are the client's Prometheus metrics. A nil *Metrics records
// nothing.
type Metrics struct {
	requests       *prometheus.CounterVec
	duration       prometheus.Histogram
	accepted       prometheus.Counter
	rejected       *prometheus.CounterVec
	rateLimited    prometheus.Counter
	pauseSeconds   prometheus.Counter
	rejectedLabels map[string]bool
}

// NewMetrics registers the client's metrics with reg, every label value
// created at zero so that rate() and alerts work from the first scrape.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_api_requests_total",
			Help: "Requests to the SMS API, by HTTP status class (error: no reply).",
		}, []string{"class"}),
		duration: f.NewHistogram(prometheus.HistogramOpts{
			Name:    "smsbridge_sms_api_request_duration_seconds",
			Help:    "Time from sending a request to the SMS API to having read its reply.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}),
		accepted: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_sms_numbers_accepted_total",
			Help: "Numbers the SMS API accepted a message for.",
		}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_numbers_rejected_total",
			Help: "Numbers a message was not accepted for, by error code (invalid_number: refused before sending; missing_in_reply: not named in the reply).",
		}, []string{"code"}),
		rateLimited: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_sms_rate_limited_total",
			Help: "Replies 429 (rate limit exceeded) from the SMS API.",
		}),
		pauseSeconds: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_sms_rate_limit_pause_seconds_total",
			Help: "Seconds of pause the SMS API announced in its 429 replies (the default pause where it named none).",
		}),
		rejectedLabels: map[string]bool{},
	}
	for _, c := range requestClasses {
		m.requests.WithLabelValues(c)
	}
	for _, c := range append([]string{CodeInvalidNumber, CodeMissingInReply, CodeOther}, providerCodes...) {
		m.rejected.WithLabelValues(c)
		m.rejectedLabels[c] = true
	}
	return m
}

func (m *Metrics) observeRequest(class string, d time.Duration) {
	if m == nil {
		return
	}
	m.requests.WithLabelValues(class).Inc()
	m.duration.Observe(d.Seconds())
}

func (m *Metrics) numberAccepted() {
	if m == nil {
		return
	}
	m.accepted.Inc()
}

func (m *Metrics) numberRejected(code string) {
	if m == nil {
		return
	}
	if !m.rejectedLabels[code] {
		code = CodeOther
	}
	m.rejected.WithLabelValues(code).Inc()
}

func (m *Metrics) rateLimit(pause time.Duration) {
	if m == nil {
		return
	}
	m.rateLimited.Inc()
	m.pauseSeconds.Add(pause.Seconds())
}

// statusClass maps an HTTP status to its class label.
func statusClass(code int) string {
	switch code / 100 {
	case 2:
		return "2xx"
	case 3:
		return "3xx"
	case 4:
		return "4xx"
	case 5:
		return "5xx"
	default:
		return "error"
	}
}
