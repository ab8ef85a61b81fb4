package outbox

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// Escalations is the part of the contract escalation needs: the steps a
// firing page schedules when its receiver has escalate steps, leased when
// due like deliveries, and ended by the page they send or by what makes
// them moot. Every Store implements it; outboxtest pins it.
//
// A step is scheduled by Enqueue (Message.Escalate), atomically with the
// page, and stopped by a resolution of its group atomically with that
// resolution's write; the page a step sends is written by Enqueue too
// (Notification.Escalation), atomically with the end of the step. So a
// 202 always carries its escalation timers, a resolution always stops
// them, and a step sends at most once, across restarts and replicas.
//
// One escalation is one receiver's steps for one firing episode of a
// group: from the first firing page of the group to that receiver after
// the group last resolved, until the group resolves (or, failing that,
// EscalationEpisode later). Further pages of the group in the episode
// (Alertmanager's repeat_interval, a new alert joining the group)
// schedule nothing: each step fires at most once per episode.
type Escalations interface {
	// LeaseEscalations takes up to max pending steps due at now (DueAt
	// not after now) that nobody holds a lease on until after now, the
	// earliest due first, and leases them to Owner until now+leaseFor
	// under a token no other call returns (EscalationStep.Lease). It
	// also returns when the next pending step not leased now is due, or
	// its lease lapses (zero when there is none).
	LeaseEscalations(ctx context.Context, now time.Time, max int, leaseFor time.Duration) ([]EscalationStep, time.Time, error)
	// CompleteEscalation records the outcome of one attempt at a leased
	// step and ends the lease: EscalationPending returns it to the queue
	// due at o.Next (a check that could not be made, to try again), with
	// its Attempts counted and o.Error kept; EscalationFailed ends it
	// (it cannot be sent: its receiver is gone, or pages nobody), with
	// o.Error as its Detail. The error wraps ErrNotFound when the step is
	// not pending under lease any more (the lease lapsed and someone else
	// holds it, or the step was stopped); nothing is recorded then.
	CompleteEscalation(ctx context.Context, id int64, lease string, o EscalationOutcome) error
	// StopEscalations stops every pending step s selects (leased or
	// not) with s.Reason and s.Detail at s.At, and returns them as
	// stopped. A step leased at the time can no longer send its page
	// (the Notification.Escalation guard refuses). Stopping nothing is
	// no error.
	StopEscalations(ctx context.Context, s EscalationStop) ([]EscalationStep, error)
	// EscalationSteps returns the steps f selects, each escalation's
	// steps together in step order, the most recently started
	// escalation first.
	EscalationSteps(ctx context.Context, f EscalationFilter) ([]EscalationStep, error)
}

// EscalationEpisode is the longest a firing episode lasts for escalation
// when no resolution ends it: a firing page more than this after an
// episode began (and after its last step) starts a new one. It covers a
// sender that never reports resolutions (Alertmanager's send_resolved:
// false), which would otherwise leave a group without escalation for
// good.
const EscalationEpisode = 24 * time.Hour

// EscalationState is the state of one escalation step.
type EscalationState string

// Escalation step states. A step is pending until it sends its page
// (escalated), something makes it moot (stopped, with a reason), or it
// cannot be sent (failed).
const (
	EscalationPending   EscalationState = "pending"
	EscalationEscalated EscalationState = "escalated"
	EscalationStopped   EscalationState = "stopped"
	EscalationFailed    EscalationState = "failed"
)

// Reasons a step is stopped (EscalationStep.Reason), the values of the
// reason label of smsbridge_escalations_stopped_total.
const (
	// StopAcked: someone who received the group acknowledged it by reply.
	StopAcked = "acked"
	// StopResolved: the group resolved (a resolved notification, or
	// Alertmanager no longer has its alerts).
	StopResolved = "resolved"
	// StopSilenced: Alertmanager shows every alert of the group silenced
	// or inhibited.
	StopSilenced = "silenced"
	// StopCancelled: an operator cancelled the escalation.
	StopCancelled = "cancelled"
)

// StopReasons lists every stop reason.
var StopReasons = []string{StopAcked, StopResolved, StopSilenced, StopCancelled}

// EscalationPlan is one step a firing message schedules (Message.Escalate):
// the message's receiver's step, After the page was queued, to Receiver.
type EscalationPlan struct {
	After    time.Duration
	Receiver string
}

// EscalationRef names the leased step whose page a notification is
// (Notification.Escalation).
type EscalationRef struct {
	ID    int64
	Lease string
}

// EscalationStep is one scheduled step.
type EscalationStep struct {
	ID int64
	// Escalation is the id of the escalation's first step: the steps of
	// one receiver's escalation in one episode share it.
	Escalation int64
	GroupKey   string
	Source     string
	AlertName  string
	// Receiver is the receiver whose escalate list the step is in; Step
	// its position there (from 1), After its delay, StepReceiver the
	// receiver it pages.
	Receiver     string
	Step         int
	After        time.Duration
	StepReceiver string
	// NotificationID is the page that began the escalation; StartedAt
	// when it was queued; DueAt StartedAt+After.
	NotificationID int64
	StartedAt      time.Time
	DueAt          time.Time
	State          EscalationState
	// Reason is a stopped step's reason (StopAcked...); Detail says more
	// for people: who acknowledged or cancelled, what Alertmanager
	// showed, why a failed step could not be sent.
	Reason string
	Detail string
	// EndedAt is when it left pending; zero while pending.
	EndedAt time.Time
	// EscalatedTo is the notification that carried its page; 0 until it
	// escalated.
	EscalatedTo int64
	// Text is the page's text as its receiver got it, with
	// ReplyCodePlaceholder where the page's code went; Summary its
	// digest line; Critical its budget mark; Labels the group's labels
	// (Notification.EscalationLabels).
	Text     string
	Summary  string
	Critical bool
	Labels   map[string]string
	// Attempts counts the attempts CompleteEscalation returned to the
	// queue; Error is the last one's error.
	Attempts int
	Error    string
	// Lease is the token LeaseEscalations gave (empty otherwise);
	// LeaseOwner the Owner of the store that last leased it.
	Lease      string
	LeaseOwner string
}

// EscalationOutcome is what one attempt at a leased step came to.
type EscalationOutcome struct {
	// State is EscalationPending (try again at Next) or EscalationFailed.
	State EscalationState
	Next  time.Time
	Error string
	At    time.Time
}

// EscalationStop selects pending steps to stop: those of GroupKey, or
// those of the escalation Escalation (the id of its first step, or of any
// of its steps). Exactly one of the two is set.
type EscalationStop struct {
	GroupKey   string
	Escalation int64
	// Reason is one of StopReasons.
	Reason string
	Detail string
	At     time.Time
}

// EscalationFilter selects steps for EscalationSteps.
type EscalationFilter struct {
	// Open selects the escalations with a pending step; otherwise Since
	// selects those started at or after it (zero: all).
	Open  bool
	Since time.Time
	// Escalation selects one escalation (the id of any of its steps);
	// zero selects all.
	Escalation int64
	// Limit caps the steps returned; default 200, at most 1000.
	Limit int
}

// Escalation is one receiver's escalation of one episode, its steps in
// order.
type Escalation struct {
	// ID is the id of its first step.
	ID        int64
	GroupKey  string
	Source    string
	AlertName string
	Receiver  string
	// NotificationID is the page that began it, StartedAt when.
	NotificationID int64
	StartedAt      time.Time
	Steps          []EscalationStep
}

// Next returns the escalation's first pending step; ok is false when
// none is pending.
func (e Escalation) Next() (EscalationStep, bool) {
	for _, s := range e.Steps {
		if s.State == EscalationPending {
			return s, true
		}
	}
	return EscalationStep{}, false
}

// Open reports whether a step is still pending.
func (e Escalation) Open() bool {
	_, ok := e.Next()
	return ok
}

// GroupEscalations folds steps, as EscalationSteps returns them, into
// escalations, in the order their first steps appear.
func GroupEscalations(steps []EscalationStep) []Escalation {
	var out []Escalation
	at := map[int64]int{}
	for _, s := range steps {
		i, ok := at[s.Escalation]
		if !ok {
			i = len(out)
			at[s.Escalation] = i
			out = append(out, Escalation{ID: s.Escalation, GroupKey: s.GroupKey, Source: s.Source, AlertName: s.AlertName,
				Receiver: s.Receiver, NotificationID: s.NotificationID, StartedAt: s.StartedAt})
		}
		out[i].Steps = append(out[i].Steps, s)
	}
	return out
}

// CheckEscalate checks the escalation steps of m, a message of n, for a
// driver's Enqueue: each step names a receiver and comes after the one
// before it, and a notification that schedules steps has a group key and
// is no escalated page itself.
func CheckEscalate(n Notification, m Message) error {
	if len(m.Escalate) == 0 {
		return nil
	}
	if n.GroupKey == "" {
		return errors.New("escalation steps need a group key")
	}
	if n.Escalation.ID != 0 {
		return errors.New("an escalated page schedules no escalation steps")
	}
	var prev time.Duration
	for k, st := range m.Escalate {
		switch {
		case st.Receiver == "":
			return fmt.Errorf("escalation step %d names no receiver", k+1)
		case st.After <= 0:
			return fmt.Errorf("escalation step %d is due %s after the page; a step comes after it", k+1, st.After)
		case st.After <= prev:
			return fmt.Errorf("escalation step %d is due %s after the page, not after step %d (%s)", k+1, st.After, k, prev)
		}
		prev = st.After
	}
	return nil
}
