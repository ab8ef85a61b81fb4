package sms

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"
)

// Names of the provider accounts, the values of the account label. The set
// is closed: the bridge has a primary account and may have a fallback.
const (
	// AccountPrimary is the account the bridge sends through normally.
	AccountPrimary = "primary"
	// AccountFallback is the second account, used while the primary is
	// held or failing.
	AccountFallback = "fallback"
)

// Values of the code label of smsbridge_sms_numbers_rejected_total besides
// the providers' known codes. The set is closed so the label stays bounded.
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

// rejectCodes are the values of the code label: ours, then the per-number
// error codes the providers document (TouchBasePro: E101, invalid number).
var rejectCodes = []string{CodeInvalidNumber, CodeMissingInReply, CodeOther, "E101"}

// requestClasses are the values of the class label of
// smsbridge_sms_api_requests_total: the HTTP status class, or "error" when
// no reply arrived.
var requestClasses = []string{"2xx", "3xx", "4xx", "5xx", "error"}

// Metrics are the Prometheus metrics of the provider accounts. Each provider
// instance records through the AccountMetrics of its account. A nil
// *Metrics records nothing.
type Metrics struct {
	requests     *prometheus.CounterVec
	duration     *prometheus.HistogramVec
	accepted     *prometheus.CounterVec
	rejected     *prometheus.CounterVec
	rateLimited  *prometheus.CounterVec
	pauseSeconds *prometheus.CounterVec
}

// NewMetrics registers the providers' metrics with reg, every label value
// created at zero for AccountPrimary, so that rate() and alerts work from
// the first scrape. The fallback's series are created when a configuration
// that has one builds its client (Account), and not before: a series
// exists only for an account that can count.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		requests: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_api_requests_total",
			Help: "Requests to the SMS API, by account and HTTP status class (error: no reply).",
		}, []string{"account", "class"}),
		duration: f.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "smsbridge_sms_api_request_duration_seconds",
			Help:    "Time from sending a request to the SMS API to having read its reply, by account.",
			Buckets: []float64{0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30},
		}, []string{"account"}),
		accepted: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_numbers_accepted_total",
			Help: "Numbers the SMS API accepted a message for, by account.",
		}, []string{"account"}),
		rejected: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_numbers_rejected_total",
			Help: "Numbers a message was not accepted for, by account and error code (invalid_number: refused before sending; missing_in_reply: not named in the reply).",
		}, []string{"account", "code"}),
		rateLimited: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_rate_limited_total",
			Help: "Replies 429 (rate limit exceeded) from the SMS API, by account.",
		}, []string{"account"}),
		pauseSeconds: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_rate_limit_pause_seconds_total",
			Help: "Seconds of pause the SMS API announced in its 429 replies, by account (a 429 that names no wait adds nothing; the dispatcher then pauses for its default).",
		}, []string{"account"}),
	}
	m.Account(AccountPrimary)
	return m
}

// Account returns the recorder for the account named name, with all its
// series created at zero. A nil *Metrics returns a nil *AccountMetrics,
// which records nothing.
func (m *Metrics) Account(name string) *AccountMetrics {
	if m == nil {
		return nil
	}
	a := &AccountMetrics{
		requests:     make(map[string]prometheus.Counter, len(requestClasses)),
		duration:     m.duration.WithLabelValues(name),
		accepted:     m.accepted.WithLabelValues(name),
		rejected:     make(map[string]prometheus.Counter, len(rejectCodes)),
		rateLimited:  m.rateLimited.WithLabelValues(name),
		pauseSeconds: m.pauseSeconds.WithLabelValues(name),
	}
	for _, c := range requestClasses {
		a.requests[c] = m.requests.WithLabelValues(name, c)
	}
	for _, c := range rejectCodes {
		a.rejected[c] = m.rejected.WithLabelValues(name, c)
	}
	return a
}

// AccountMetrics records what one provider account does. Its series are
// resolved once, so recording takes no lookup by label. A nil
// *AccountMetrics records nothing. It is safe for concurrent use.
type AccountMetrics struct {
	requests     map[string]prometheus.Counter
	duration     prometheus.Observer
	accepted     prometheus.Counter
	rejected     map[string]prometheus.Counter
	rateLimited  prometheus.Counter
	pauseSeconds prometheus.Counter
}

// ObserveRequest records one request that took d: status is the HTTP
// status of the reply, or 0 when no reply arrived.
func (a *AccountMetrics) ObserveRequest(status int, d time.Duration) {
	if a == nil {
		return
	}
	a.requests[StatusClass(status)].Inc()
	a.duration.Observe(d.Seconds())
}

// NumberAccepted records one number the provider accepted a message for.
func (a *AccountMetrics) NumberAccepted() {
	if a == nil {
		return
	}
	a.accepted.Inc()
}

// NumberRejected records one number a message was not accepted for. A code
// outside the known set is recorded as CodeOther, so the label stays
// bounded whatever the provider sends.
func (a *AccountMetrics) NumberRejected(code string) {
	if a == nil {
		return
	}
	c, ok := a.rejected[code]
	if !ok {
		c = a.rejected[CodeOther]
	}
	c.Inc()
}

// RateLimited records one 429 and the pause it announced (0 if it named
// none).
func (a *AccountMetrics) RateLimited(pause time.Duration) {
	if a == nil {
		return
	}
	a.rateLimited.Inc()
	a.pauseSeconds.Add(max(pause, 0).Seconds())
}

// StatusClass maps an HTTP status to the class label of
// smsbridge_sms_api_requests_total: "2xx" to "5xx", or "error" for 0 (no
// reply) and anything outside 200-599.
func StatusClass(status int) string {
	switch status / 100 {
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
