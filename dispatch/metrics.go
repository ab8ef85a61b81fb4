package dispatch

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// Reasons a delivery fails for good: the values of the reason label of
// smsbridge_deliveries_failed_total.
const (
	// ReasonRejected: the provider refused the message for this number.
	ReasonRejected = "rejected"
	// ReasonMaxAge: not accepted within delivery.max_age of receipt.
	ReasonMaxAge = "max_age"
	// ReasonBadRequest: the provider answered 400 to the request.
	ReasonBadRequest = "bad_request"
	// ReasonPermanent: the provider answered with a status that will not
	// change on retry and that its documentation does not name.
	ReasonPermanent = "permanent"
)

// ReasonOptedOut: the number replied STOP (outbox.CodeOptedOut).
const ReasonOptedOut = outbox.CodeOptedOut

// Reasons lists every value of the reason label.
var Reasons = []string{ReasonRejected, ReasonMaxAge, ReasonBadRequest, ReasonPermanent, ReasonBudgetExhausted, ReasonOptedOut}

// AccountNames are the values the account label can take; a series is
// created only for the accounts a configuration has (InitAccounts).
var AccountNames = []string{sms.AccountPrimary, sms.AccountFallback}

// heldKinds are the values of the kind label of smsbridge_dispatch_held_reason.
var heldKinds = []string{"unauthorized", "suspended", "no_credits"}

// Metrics are the dispatcher's Prometheus metrics.
type Metrics struct {
	sent           *prometheus.CounterVec
	segments       *prometheus.CounterVec
	failed         *prometheus.CounterVec
	receiverFailed *prometheus.CounterVec
	held           *prometheus.GaugeVec
	heldReason     *prometheus.GaugeVec
	pausedUntil    *prometheus.GaugeVec
	active         *prometheus.GaugeVec
	inflight       prometheus.Gauge
	leader         prometheus.Gauge
	leaderChanges  prometheus.Counter
	throttled      *prometheus.CounterVec
	digests        prometheus.Counter
	budget         *budgetCollector

	mu sync.Mutex
	// accounts are the accounts whose series exist: the primary, and the
	// fallback once a configuration had one. One that a reload removed
	// keeps its series until the next start, as a removed receiver does.
	accounts []string
}

// NewMetrics registers the dispatcher's metrics with reg (nil registers
// nothing), every bounded label value created at zero.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		sent: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_sent_total",
			Help: "Numbers an SMS was accepted for by the provider, by receiver and account.",
		}, []string{"receiver", "account"}),
		segments: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_segments_sent_total",
			Help: "SMS segments sent: segments of each text times the numbers it was accepted for, by account.",
		}, []string{"account"}),
		failed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_deliveries_failed_total",
			Help: "Deliveries (one text to one number) that failed for good, by reason.",
		}, []string{"reason"}),
		receiverFailed: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_sms_failed_total",
			Help: "Deliveries that failed for good when sent, by receiver (max_age expiries are counted in smsbridge_deliveries_failed_total only).",
		}, []string{"receiver"}),
		held: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smsbridge_dispatch_held",
			Help: "1 while sending through the account is held because the SMS API refuses it (401, 403, 405).",
		}, []string{"account"}),
		heldReason: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smsbridge_dispatch_held_reason",
			Help: "1 for the reason the account is held: unauthorized (401), suspended (403), no_credits (405).",
		}, []string{"account", "kind"}),
		pausedUntil: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smsbridge_dispatch_paused_until_timestamp_seconds",
			Help: "End of the latest rate-limit pause the SMS API announced (429) for the account, as a unix timestamp; in the past when not paused.",
		}, []string{"account"}),
		active: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smsbridge_dispatch_active_account",
			Help: "1 for the account new requests go through: primary, or fallback while the primary does not work.",
		}, []string{"account"}),
		inflight: f.NewGauge(prometheus.GaugeOpts{
			Name: "smsbridge_dispatch_requests_in_flight",
			Help: "Requests to the SMS API on the wire now.",
		}),
		leader: f.NewGauge(prometheus.GaugeOpts{
			Name: "smsbridge_dispatch_leader",
			Help: "1 while this process is the one that dispatches (always, with SQLite; the leader among replicas, with PostgreSQL).",
		}),
		leaderChanges: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_leader_changes_total",
			Help: "Times this process became the dispatching leader.",
		}),
		throttled: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_throttled_total",
			Help: "Deliveries held because their number had its fill of the per-number throttle, by receiver; they go out in a digest.",
		}, []string{"receiver"}),
		digests: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_digests_sent_total",
			Help: "Digests of held deliveries accepted by the provider (one per number).",
		}),
		budget: &budgetCollector{
			used: prometheus.NewDesc("smsbridge_budget_segments_used",
				"Segments counted against today's budget (segments times numbers sent, in the budget's time zone); absent without a budget.", nil, nil),
			remaining: prometheus.NewDesc("smsbridge_budget_segments_remaining",
				"Segments left in today's budget; 0 once spent (critical messages still go); absent without a budget.", nil, nil),
		},
	}
	if reg != nil {
		reg.MustRegister(m.budget)
	}
	for _, r := range Reasons {
		m.failed.WithLabelValues(r)
	}
	m.InitAccounts(sms.AccountPrimary)
	return m
}

// InitAccounts creates the per-account series of the configured accounts
// at zero; call it with each generation's accounts, before InitReceivers.
func (m *Metrics) InitAccounts(names ...string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, a := range names {
		if slices.Contains(m.accounts, a) {
			continue
		}
		m.accounts = append(m.accounts, a)
		m.segments.WithLabelValues(a)
		m.held.WithLabelValues(a)
		m.pausedUntil.WithLabelValues(a)
		m.active.WithLabelValues(a)
		for _, k := range heldKinds {
			m.heldReason.WithLabelValues(a, k)
		}
	}
}

// knownAccounts returns the accounts whose series exist.
func (m *Metrics) knownAccounts() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.accounts)
}

// AddFailed counts n deliveries failed for good for reason (one of
// Reasons) outside the dispatcher: the opt-out fails what waits for a
// number at once.
func (m *Metrics) AddFailed(reason string, n int) {
	if n > 0 {
		m.failed.WithLabelValues(reason).Add(float64(n))
	}
}

// InitReceivers creates the per-receiver counters at zero, so rate() works
// from the first SMS. Call it with the configured names.
func (m *Metrics) InitReceivers(names ...string) {
	accounts := m.knownAccounts()
	for _, n := range names {
		for _, a := range accounts {
			m.sent.WithLabelValues(n, a)
		}
		m.receiverFailed.WithLabelValues(n)
		m.throttled.WithLabelValues(n)
	}
}

func (m *Metrics) setHeld(account, kind string) {
	v := 0.0
	if kind != "" {
		v = 1
	}
	m.held.WithLabelValues(account).Set(v)
	for _, k := range heldKinds {
		v := 0.0
		if k == kind {
			v = 1
		}
		m.heldReason.WithLabelValues(account, k).Set(v)
	}
}

func (m *Metrics) setActive(account string) {
	m.InitAccounts(account)
	for _, a := range m.knownAccounts() {
		v := 0.0
		if a == account {
			v = 1
		}
		m.active.WithLabelValues(a).Set(v)
	}
}

func (m *Metrics) setLeader(on bool) {
	if on {
		m.leader.Set(1)
		m.leaderChanges.Inc()
		return
	}
	m.leader.Set(0)
}
