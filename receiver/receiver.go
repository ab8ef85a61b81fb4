// Package receiver holds the HTTP intake of smsbridge: the Alertmanager
// webhook and generic JSON webhooks. It decodes, authenticates and validates
// a request into an *alert.Notification and hands it to a Sink; the status
// code it answers is the caller's retry policy (Alertmanager retries 5xx,
// never 4xx).
//
// Every request reads the running configuration generation once, through
// the accessor given to New, and uses that generation's Sources and Sink
// throughout: a reload in the middle of a request never mixes two.
package receiver

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sort"
	"time"

	"golang.org/x/time/rate"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/receiver/auth"
	"github.com/smsbridge/smsbridge/receiver/mapping"
)

// Intake is what the handler serves one request with: the sources and the
// sink of one configuration generation. Main builds it from the running
// generation; a zero Intake (no configuration loaded yet) is answered 503.
type Intake struct {
	Sources *Sources
	Sink    Sink
	// Health, when set, is asked before a notification goes to the Sink:
	// an error (the store cannot write durably now) answers 503 with its
	// text, so the sender retries, and nothing is stored. It must be cheap:
	// main answers from a cached background check.
	Health func() error
}

// Sink routes, renders and durably stores a notification. An error means
// nothing was stored and the caller should retry (503).
type Sink interface {
	Accept(ctx context.Context, n *alert.Notification) (Accepted, error)
}

// Accepted is what the Sink reports for a notification it recorded.
type Accepted struct {
	ID int64
	// Recipients counts the deliveries written.
	Recipients int
	// Outcome is what became of the notification, one of SinkOutcomes; it
	// is the outcome label of smsbridge_notifications_received_total.
	Outcome string
	// Receivers are the receivers a text was written for, for the log.
	Receivers []string
	// AlertName says what the notification is about, for the log.
	AlertName string
	// Replayed is set when the store had the request's delivery id
	// already: nothing was stored, ID is the first notification's.
	Replayed bool
}

// Values of the outcome label of smsbridge_notifications_received_total.
const (
	// Reported by the Sink.
	OutcomeAccepted = "accepted" // stored, with deliveries
	OutcomeUnrouted = "unrouted" // stored, but no receiver with numbers matched
	OutcomeFiltered = "filtered" // stored or dropped by design, sends nothing
	// Stored, sends nothing: every receiver already got it (an
	// Alertmanager HA peer's copy), or some did and the rest are stale.
	// Also a delivery id the store had seen (a replay, or a retry of
	// something already accepted): then nothing is stored or sent. The
	// answer is 202 either way.
	OutcomeDuplicate = "duplicate"
	// Stored, sends nothing: a firing whose alerts all resolved already.
	OutcomeStale = "stale"
	// Stored, sends nothing: its routes' time intervals muted it for
	// every receiver.
	OutcomeMuted = "muted"
	// Counted by the handler for the requests it refuses.
	OutcomeInvalid              = "invalid"
	OutcomeUnauthorized         = "unauthorized"
	OutcomeRateLimited          = "rate_limited"
	OutcomeTooLarge             = "too_large"
	OutcomeUnsupportedMediaType = "unsupported_media_type"
	OutcomeUnknownSource        = "unknown_source"
	OutcomeStoreError           = "store_error"
)

// sinkOutcomes are the outcomes a Sink may report. A stage that settles a
// new one (duplicate, stale, muted) adds its value here and nowhere else:
// its series are then created at zero for every source, and the handler
// counts it and answers it as the 202's status.
var sinkOutcomes = []string{OutcomeAccepted, OutcomeUnrouted, OutcomeFiltered, OutcomeDuplicate, OutcomeStale, OutcomeMuted}

// refusalOutcomes are the outcomes of requests the handler answers itself.
var refusalOutcomes = []string{
	OutcomeInvalid, OutcomeUnauthorized, OutcomeRateLimited, OutcomeTooLarge,
	OutcomeUnsupportedMediaType, OutcomeUnknownSource, OutcomeStoreError,
}

// SinkOutcomes returns the outcomes a Sink may report.
func SinkOutcomes() []string { return slices.Clone(sinkOutcomes) }

// Outcomes returns every value of the outcome label, the Sink's first.
func Outcomes() []string { return slices.Concat(sinkOutcomes, refusalOutcomes) }

// unknownSource is the source label of requests for a webhook source that
// is not configured; no source may be called so.
const unknownSource = "unknown"

// Source is one intake endpoint as a configuration generation defines it.
type Source struct {
	Name string
	// Verifier authenticates requests; nil means the endpoint is open.
	Verifier *auth.Verifier
	// Mapping turns a generic JSON body into a notification; nil for
	// Alertmanager, required for every webhook.
	Mapping *mapping.Mapping
	// BodyLimit is the largest body accepted, in bytes; it must be
	// positive (config applies the default).
	BodyLimit int64
	// Limiter bounds the request rate; nil means unlimited.
	Limiter *rate.Limiter
	// DeliveryIDHeader names the sender's delivery id header, read before
	// the well-known ones (DeliveryIDHeaders); empty for none.
	DeliveryIDHeader string
	// DeliveryIDTTL is how long a delivery id from a header is remembered;
	// zero ignores those headers. A Standard Webhooks id signed under the
	// source's auth is remembered for its tolerance window instead.
	DeliveryIDTTL time.Duration
}

// DeliveryIDHeaders are the headers in which well-known senders identify
// a delivery, the same on every retry of it, read in this order after the
// source's own: GitHub's, Gitea's and Forgejo's (which also send GitHub's
// with the same value), GitLab's (and any sender following the IETF
// Idempotency-Key draft), and Standard Webhooks' when its signature is not
// checked.
var DeliveryIDHeaders = []string{"X-GitHub-Delivery", "X-Gitea-Delivery", "Idempotency-Key", "Webhook-Id"}

// Sources are the intake endpoints of one configuration generation.
type Sources struct {
	Alertmanager *Source
	// Webhooks are the generic webhook sources by name.
	Webhooks map[string]*Source
}

// Validate reports what would make the handler unable to serve s: it is
// checked when a generation is built, not per request.
func (s *Sources) Validate() error {
	if s.Alertmanager == nil {
		return errors.New("intake: no alertmanager source")
	}
	var errs []error
	check := func(src *Source, webhook bool) {
		switch {
		case src.BodyLimit <= 0:
			errs = append(errs, fmt.Errorf("intake source %q: body limit %d is not positive", src.Name, src.BodyLimit))
		case webhook && src.Mapping == nil:
			errs = append(errs, fmt.Errorf("intake source %q: no mapping", src.Name))
		case !webhook && src.Mapping != nil:
			errs = append(errs, fmt.Errorf("intake source %q: the alertmanager source takes no mapping", src.Name))
		}
	}
	if s.Alertmanager.Name != alert.SourceAlertmanager {
		errs = append(errs, fmt.Errorf("intake: the alertmanager source is named %q", s.Alertmanager.Name))
	}
	check(s.Alertmanager, false)
	for _, name := range s.SourceNames() {
		w := s.Webhooks[name]
		switch {
		case w == nil:
			errs = append(errs, fmt.Errorf("intake source %q: nil", name))
			continue
		case w.Name != name:
			errs = append(errs, fmt.Errorf("intake source %q: listed as %q", w.Name, name))
		case name == unknownSource:
			errs = append(errs, fmt.Errorf("intake source %q: the name is reserved", name))
		}
		check(w, true)
	}
	return errors.Join(errs...)
}

// Authenticated reports whether any source requires credentials.
func (s *Sources) Authenticated() bool {
	if s.Alertmanager != nil && s.Alertmanager.Verifier != nil {
		return true
	}
	for _, w := range s.Webhooks {
		if w.Verifier != nil {
			return true
		}
	}
	return false
}

// SourceNames lists the configured webhook sources, sorted, for summaries.
func (s *Sources) SourceNames() []string {
	names := make([]string, 0, len(s.Webhooks))
	for n := range s.Webhooks {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
