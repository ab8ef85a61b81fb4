// Package receiver holds the HTTP intake of smsbridge: the Alertmanager
// webhook and generic JSON webhooks. It decodes, authenticates and validates
// a request into a Notification and hands it to a Sink; the status code it
// answers is the caller's retry policy (Alertmanager retries 5xx, never 4xx).
package receiver

import (
	"context"
	"time"

	"github.com/prometheus/alertmanager/template"
)

// Notification is one group of alerts from any source, in the shape
// Alertmanager's templates know.
type Notification struct {
	// Source is "alertmanager" or the name of a webhooks entry.
	Source string
	// Data is the group as Alertmanager's templates see it.
	Data template.Data
	// GroupKey identifies the group across repeats of one event.
	GroupKey string
	// TruncatedAlerts counts alerts the sender left out (max_alerts).
	TruncatedAlerts int
	// ReceivedAt is when the request arrived.
	ReceivedAt time.Time
}

// Accepted is what the Sink reports for a notification it wrote durably.
type Accepted struct {
	ID         int64
	Recipients int
	// Filtered is set when the notification was recorded but sends
	// nothing by design (a resolution of a group that was not firing).
	Filtered bool
}

// Sink routes, renders and durably stores a notification. An error means
// nothing was stored and the caller should retry (503).
type Sink interface {
	Accept(ctx context.Context, n *Notification) (Accepted, error)
}

// Outcomes are the bounded values of the outcome label of
// smsbridge_notifications_received_total.
var Outcomes = []string{
	"accepted", "unrouted", "filtered", "invalid", "unauthorized",
	"rate_limited", "too_large", "unsupported_media_type", "unknown_source", "store_error",
}

// SourceAlertmanager is the source name of the Alertmanager endpoint.
const SourceAlertmanager = "alertmanager"
