package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// TwoWay is the part of the contract that two-way SMS needs: handset
// receipts, reply codes and acknowledgements, the silences acknowledgements
// ask Alertmanager for (stored and retried), opt-outs, and two small
// primitives for the callback endpoint (a claim per callback body and a
// counter per number). Every Store implements it; outboxtest pins it.
//
// Times are the caller's (now), so that a component with an injected clock
// stays consistent; Enqueue's reply codes use the store's clock, which in
// production is the same wall clock.
type TwoWay interface {
	// RecordReceipt records a handset receipt on the latest outstanding
	// delivery to r.Number: the one in state accepted (or sending: the
	// provider may report before the bridge recorded its answer), last
	// updated within r.Window before now, with no final receipt yet
	// (neither ReceiptDelivered nor ReceiptFailed), the newest first. The
	// delivery's state is not changed: a receipt is recorded beside it,
	// with the provider's word and its time (r.At, or now when zero). A
	// word that is no final status (r.Status "") is recorded as
	// information and keeps the delivery outstanding. The error wraps
	// ErrNotFound when no delivery matches; nothing is recorded then.
	RecordReceipt(ctx context.Context, now time.Time, r Receipt) (ReceiptMatch, error)

	// ReplyCode resolves code, as number replied it, to the notification
	// it was issued with to that number within ReplyCodeLifetime before
	// now. The error wraps ErrNotFound for a code not issued to the number
	// in that time.
	ReplyCode(ctx context.Context, number string, code int, now time.Time) (ReplyTarget, error)
	// ReplyTargets returns, for every group a reply code was issued to
	// number for at or after since, the newest such code's target, newest
	// first.
	ReplyTargets(ctx context.Context, number string, since time.Time) ([]ReplyTarget, error)

	// Acknowledge records a, an acknowledgement of a.GroupKey at a.At,
	// unless an acknowledgement of the group is in force then (its Until
	// after a.At): then it returns that one and false, and records
	// nothing. The decision is atomic with the write, so two replies (or
	// two replicas) never both acknowledge a group. a.Silence is
	// SilencePending (the silence is then due at once) or SilenceNone.
	// It returns the stored acknowledgement, with its ID, and true.
	Acknowledge(ctx context.Context, a Ack) (Ack, bool, error)
	// Acknowledged returns the latest acknowledgement of groupKey
	// recorded at or after since; ok is false when there is none. It is
	// the seam escalation stops on.
	Acknowledged(ctx context.Context, groupKey string, since time.Time) (a Ack, ok bool, err error)
	// Acks returns the acknowledgements recorded at or after since,
	// newest first, at most limit (default 100, at most 1000).
	Acks(ctx context.Context, since time.Time, limit int) ([]Ack, error)
	// LeaseSilences takes up to max acknowledgements whose silence is
	// pending and due at now (NextAttempt not after now) and not leased
	// by anyone until after now, and leases them until now+leaseFor under
	// a token no other call returns (Ack.Lease). It also returns when the
	// next pending silence not leased now is due (zero when none is).
	LeaseSilences(ctx context.Context, now time.Time, max int, leaseFor time.Duration) ([]Ack, time.Time, error)
	// CompleteSilence records the outcome of one attempt at a leased
	// silence, counted in its Attempts, and ends the lease. The error
	// wraps ErrNotFound when no acknowledgement id carries lease any
	// more: the lease lapsed and someone else holds it; nothing is
	// recorded.
	CompleteSilence(ctx context.Context, id int64, lease string, o SilenceOutcome) error

	// SetOptOut records that number opted out (out true: it replied STOP)
	// or back in (START), at at. Opting out fails every pending or held
	// delivery to the number, with ErrorCode CodeOptedOut, in the same
	// transaction. changed is false when the number already was in that
	// state; failed counts the deliveries it failed.
	SetOptOut(ctx context.Context, number string, out bool, at time.Time) (changed bool, failed int, err error)
	// OptOuts returns every opted-out number, the earliest first.
	OptOuts(ctx context.Context) ([]OptOut, error)
	// OptedOut returns those of numbers that are opted out, in the order
	// given.
	OptedOut(ctx context.Context, numbers []string) ([]string, error)

	// Claim takes key until now+ttl and reports true, unless someone
	// holds it then (it was claimed and has not expired): then false.
	// Atomic: of two concurrent claims of a key, one wins.
	Claim(ctx context.Context, key string, now time.Time, ttl time.Duration) (bool, error)
	// Claimed reports whether key is held at now (claimed, not given
	// back, not expired), without taking it.
	Claimed(ctx context.Context, key string, now time.Time) (bool, error)
	// Unclaim gives key back, so the next Claim of it wins.
	Unclaim(ctx context.Context, key string) error
	// Allow counts one event under key and reports true, unless limit
	// events were counted under key within per before now: then false,
	// and nothing is counted. Atomic per key.
	Allow(ctx context.Context, key string, now time.Time, limit int, per time.Duration) (bool, error)
}

// ErrOptedOut is returned by Retry for a delivery whose number opted out.
var ErrOptedOut = errors.New("the number opted out of SMS (it replied STOP)")

// Reply codes. A firing message may carry a short code the recipient
// answers with ("ACK 12"). Enqueue chooses it in the write transaction, one
// per notification, the same for all of its numbers so that its text stays
// one text (one request per text): the smallest code from 1 that none of
// the notification's numbers was issued within ReplyCodeLifetime. So a code
// is unique among each number's codes of the last day (its open
// notifications among them) and never reused within a day.
const (
	// ReplyCodePlaceholder marks, in the Text of a Message with ReplyCode
	// set, where Enqueue writes the code. It is three septets wide, as
	// wide as the widest code, so a text fitted with it fits with the
	// code.
	ReplyCodePlaceholder = "¤¤¤"
	// ReplyCodeLifetime is how long a code resolves (ReplyCode) after it
	// was issued, and how long it is not issued again to the same number.
	ReplyCodeLifetime = 24 * time.Hour
	// MaxReplyCode is the largest code.
	MaxReplyCode = 999
	// ReplyCodeAll is written instead of a code when every code up to
	// MaxReplyCode was issued to one of the numbers within the lifetime:
	// "ACK ALL" still works.
	ReplyCodeAll = "ALL"
)

// CodeOptedOut is the error code of a delivery failed because its number
// opted out (it replied STOP).
const CodeOptedOut = "opted_out"

// Handset receipt statuses (Record.Receipt).
const (
	ReceiptDelivered = "delivered"
	ReceiptFailed    = "failed"
)

// Receipt is one delivery status the provider reported for a number.
type Receipt struct {
	Number string
	// Status is ReceiptDelivered, ReceiptFailed, or "" for any other word
	// (information such as "Enroute").
	Status string
	// Word is the provider's status word as sent.
	Word string
	// At is when the provider says it happened; zero for now.
	At time.Time
	// Window is how long after it was accepted a delivery can still get a
	// receipt (sms.callback.match_window).
	Window time.Duration
}

// ReceiptMatch is the delivery a receipt was recorded on.
type ReceiptMatch struct {
	// Delivery is the row as it is now, the receipt included.
	Delivery Record
	// Template is the delivery's text as the sender wrote it, with
	// ReplyCodePlaceholder where Enqueue wrote its code; Text when it had
	// none. A failover sends it again, with a code of its own.
	Template string
	// AckLabels are its notification's (Notification.AckLabels).
	AckLabels map[string]string
}

// ReplyTarget is what a reply code stands for.
type ReplyTarget struct {
	NotificationID int64
	GroupKey       string
	Source         string
	Status         string
	AlertName      string
	// Code is the code as issued.
	Code     int
	IssuedAt time.Time
	// Person is who was on call at the number when the notification was
	// routed, or "".
	Person string
	// AckLabels are the notification's (Notification.AckLabels).
	AckLabels map[string]string
	// Numbers are every number the code was issued to with the
	// notification: the recipients of the same page.
	Numbers []string
	// GroupOpen is true when the newest notification recorded for the
	// group is firing.
	GroupOpen bool
}

// SilenceState is what became of the silence an acknowledgement asked
// for.
type SilenceState string

// Silence states.
const (
	// SilenceNone: no silence was asked for (not an Alertmanager group,
	// no labels to match, or no alertmanager_api configured).
	SilenceNone SilenceState = "none"
	// SilencePending: not created yet; due at NextAttempt.
	SilencePending SilenceState = "pending"
	// SilenceCreated: Alertmanager took it; SilenceID names it.
	SilenceCreated SilenceState = "created"
	// SilenceFailed: given up on (refused, or too late to matter).
	SilenceFailed SilenceState = "failed"
)

// Ack is one acknowledgement: a recipient replied a code (or ACK ALL) and
// so took the group in hand until Until.
type Ack struct {
	ID             int64
	GroupKey       string
	NotificationID int64
	Source         string
	AlertName      string
	// Number replied; Person is the name known for it, or "".
	Number string
	Person string
	// Code is the code that was acknowledged (ACK ALL acknowledges each
	// group by its own code).
	Code int
	At   time.Time
	// Until is when the acknowledgement, and the silence it asks for,
	// ends.
	Until time.Time
	// Labels are the equality matchers of the silence; empty for none.
	Labels  map[string]string
	Silence SilenceState
	// SilenceID is Alertmanager's id of the silence, once created.
	SilenceID string
	// Attempts counts the attempts at creating the silence; NextAttempt
	// is when a pending one is due; Error is the last attempt's error.
	Attempts    int
	NextAttempt time.Time
	Error       string
	// Lease is the token LeaseSilences gave; empty otherwise.
	Lease string
}

// Stored is a as Acknowledge records it under id: no attempt yet, no
// silence id, error or lease; a pending silence due at once.
func (a Ack) Stored(id int64) Ack {
	a.ID, a.Attempts, a.SilenceID, a.Error, a.Lease = id, 0, "", "", ""
	a.NextAttempt = time.Time{}
	if a.Silence == SilencePending {
		a.NextAttempt = a.At
	}
	return a
}

// SilenceOutcome is what one attempt at a silence came to.
type SilenceOutcome struct {
	// State is SilenceCreated, SilencePending (try again at NextAttempt)
	// or SilenceFailed.
	State       SilenceState
	SilenceID   string
	Error       string
	NextAttempt time.Time
	At          time.Time
}

// Next checks o for CompleteSilence under lease and returns when the
// silence is tried again: o.NextAttempt for one still pending, else o.At
// (the row is done). An error wraps ErrInvalid (an unknown state) or
// ErrNotFound (no lease).
func (o SilenceOutcome) Next(lease string) (time.Time, error) {
	switch o.State {
	case SilenceCreated, SilencePending, SilenceFailed:
	default:
		return time.Time{}, fmt.Errorf("%w: state %q", ErrInvalid, o.State)
	}
	if lease == "" {
		return time.Time{}, fmt.Errorf("%w: no lease", ErrNotFound)
	}
	if o.State != SilencePending || o.NextAttempt.IsZero() {
		return o.At, nil
	}
	return o.NextAttempt, nil
}

// OptOut is a number that replied STOP, and when.
type OptOut struct {
	Number string
	At     time.Time
}
