package twoway

import (
	"context"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/smsbridge/smsbridge/outbox"
)

// Outcomes of a callback request: the values of the outcome label of
// smsbridge_callbacks_total.
const (
	CallbackAccepted   = "accepted"
	CallbackDuplicate  = "duplicate"
	CallbackNotFound   = "not_found"
	CallbackInvalid    = "invalid"
	CallbackTooLarge   = "too_large"
	CallbackStoreError = "store_error"
	// CallbackInProgress: the same body is being handled by another
	// request (or was, by a process that died less than workFor ago);
	// 503, so the provider retries.
	CallbackInProgress = "in_progress"
)

// CallbackOutcomes lists every value of the outcome label.
var CallbackOutcomes = []string{CallbackAccepted, CallbackDuplicate, CallbackNotFound, CallbackInvalid, CallbackTooLarge, CallbackStoreError, CallbackInProgress}

// Kinds of callback events, the values of the kind label of
// smsbridge_callback_events_total.
var eventKinds = []string{"status", "reply", "unknown"}

// Receipt statuses, the values of the status label of
// smsbridge_receipts_total: delivered, failed, and other for every other
// word the provider sends.
const (
	ReceiptDelivered = outbox.ReceiptDelivered
	ReceiptFailed    = outbox.ReceiptFailed
	ReceiptOther     = "other"
)

// Results of a reply: the values of the result label of
// smsbridge_replies_total.
const (
	ResultAck          = "ack"
	ResultAckAll       = "ack_all"
	ResultAlreadyAcked = "already_acked"
	ResultBadCode      = "bad_code"
	ResultNothingOpen  = "nothing_open"
	ResultJunk         = "junk"
	ResultStop         = "stop"
	ResultStart        = "start"
	// ResultUnknownNumber: from a number the bridge does not page; not
	// answered, and a STOP or START from it changes nothing.
	ResultUnknownNumber = "unknown_number"
	// ResultIgnored: an acknowledgement or other text while replies are
	// off (replies.enabled: false); not answered.
	ResultIgnored = "ignored"
)

// ReplyResults lists every value of the result label.
var ReplyResults = []string{ResultAck, ResultAckAll, ResultAlreadyAcked, ResultBadCode, ResultNothingOpen, ResultJunk,
	ResultStop, ResultStart, ResultUnknownNumber, ResultIgnored}

// Metrics are two-way SMS's.
type Metrics struct {
	callbacks       *prometheus.CounterVec
	events          *prometheus.CounterVec
	receipts        *prometheus.CounterVec
	unmatched       prometheus.Counter
	replies         *prometheus.CounterVec
	suppressed      prometheus.Counter
	failovers       prometheus.Counter
	silencesCreated prometheus.Counter
	silenceErrors   *prometheus.CounterVec
}

// NewMetrics registers the metrics with reg (nil registers nowhere),
// every label value at zero.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	f := promauto.With(reg)
	m := &Metrics{
		callbacks: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_callbacks_total",
			Help: "Requests to the provider's callback endpoint, by outcome: accepted, duplicate (a body already handled), not_found (a wrong token), invalid, too_large, store_error.",
		}, []string{"outcome"}),
		events: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_callback_events_total",
			Help: "Events in accepted callbacks, by kind: status (a delivery receipt), reply, unknown (a type or number the bridge cannot use; ignored).",
		}, []string{"kind"}),
		receipts: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_receipts_total",
			Help: "Delivery receipts recorded on a message, by status: delivered, failed, other (any other word of the provider's).",
		}, []string{"status"}),
		unmatched: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_receipts_unmatched_total",
			Help: "Delivery receipts for a number with no outstanding message within sms.callback.match_window; ignored.",
		}),
		replies: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_replies_total",
			Help: "Replies received, by result.",
		}, []string{"result"}),
		suppressed: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_reply_answers_suppressed_total",
			Help: "Answers not sent to replies that are not actions, because the number had its 5 per hour (the reply-loop guard).",
		}),
		failovers: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_failovers_total",
			Help: "Texts sent to a receiver's on_undelivered receiver because the provider reported them undelivered.",
		}),
		silencesCreated: f.NewCounter(prometheus.CounterOpts{
			Name: "smsbridge_silences_created_total",
			Help: "Silences created in Alertmanager for acknowledgements by SMS.",
		}),
		silenceErrors: f.NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_silence_errors_total",
			Help: "Attempts at creating a silence that failed, by reason; unreachable, server_error and unauthorized are retried.",
		}, []string{"reason"}),
	}
	for _, o := range CallbackOutcomes {
		m.callbacks.WithLabelValues(o)
	}
	for _, k := range eventKinds {
		m.events.WithLabelValues(k)
	}
	for _, s := range []string{ReceiptDelivered, ReceiptFailed, ReceiptOther} {
		m.receipts.WithLabelValues(s)
	}
	for _, r := range ReplyResults {
		m.replies.WithLabelValues(r)
	}
	for _, r := range SilenceReasons {
		m.silenceErrors.WithLabelValues(r)
	}
	return m
}

// OptOutStore counts the opted-out numbers.
type OptOutStore interface {
	OptOuts(ctx context.Context) ([]outbox.OptOut, error)
}

var optedOutDesc = prometheus.NewDesc("smsbridge_opted_out_numbers",
	"Numbers that replied STOP and get no SMS until they reply START: each is a hole in paging.", nil, nil)

// OptOutCollector reports smsbridge_opted_out_numbers, read from the
// store at scrape time, so replicas sharing a store agree. A store that
// cannot answer leaves a gap (logged), not a zero.
func OptOutCollector(store OptOutStore, logger *slog.Logger) prometheus.Collector {
	return optOutCollector{store: store, logger: logger}
}

type optOutCollector struct {
	store  OptOutStore
	logger *slog.Logger
}

func (c optOutCollector) Describe(ch chan<- *prometheus.Desc) { ch <- optedOutDesc }

func (c optOutCollector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	outs, err := c.store.OptOuts(ctx)
	if err != nil {
		if c.logger != nil {
			c.logger.Error("read opt-outs for metrics", "err", err)
		}
		return
	}
	ch <- prometheus.MustNewConstMetric(optedOutDesc, prometheus.GaugeValue, float64(len(outs)))
}
