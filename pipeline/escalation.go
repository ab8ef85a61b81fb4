package pipeline

import (
	"context"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/outbox"
)

// Escalation is the last stage: a firing page to a receiver with
// escalate steps carries them to the store, which schedules them in the
// same transaction as the page (once per firing episode of the group: see
// outbox.Escalations), so a 202 always comes with its timers. A
// resolution needs no mark: the store stops its group's steps with any
// resolved notification, whatever becomes of it. What the store did is
// reported to Observer.
type Escalation struct {
	// Observer hears of escalations begun and stopped; nil for nobody.
	Observer EscalationObserver
}

// EscalationObserver is told what a commit did to escalations: the
// escalator wakes for new steps, and counts the ones a resolution
// stopped. Its methods must not block.
type EscalationObserver interface {
	// Scheduled is called when a page began n escalations of group.
	Scheduled(group string, n int)
	// Resolved is called when a resolution of group stopped n
	// escalations.
	Resolved(group string, n int)
}

// Name implements Stage.
func (Escalation) Name() string { return "escalation" }

// Exec implements Stage.
func (Escalation) Exec(_ context.Context, e *Envelope) error {
	n := e.Notification
	if n.Data.Status != alert.StatusFiring || n.GroupKey == "" {
		return nil
	}
	marked := false
	for i := range e.Plan.Entries {
		en := &e.Plan.Entries[i]
		if en.Skipped != "" || en.Notification == nil || len(en.Receiver.Escalate) == 0 {
			continue
		}
		en.Marks.Escalate = nil
		for _, st := range en.Receiver.Escalate {
			en.Marks.Escalate = append(en.Marks.Escalate, outbox.EscalationPlan{After: st.After, Receiver: st.Receiver})
		}
		marked = true
	}
	if marked {
		// The same labels an acknowledgement silences: for an
		// Alertmanager group its route's matchers too, so that the check
		// in Alertmanager does not find other routes' alerts.
		if n.Source == alert.SourceAlertmanager {
			e.Record.EscalationLabels = alertmanagerAckLabels(n)
		} else {
			e.Record.EscalationLabels = groupLabels(n)
		}
	}
	return nil
}

// Committed implements Committer.
func (s Escalation) Committed(e *Envelope, res outbox.Enqueued) {
	if s.Observer == nil {
		return
	}
	if res.EscalationsScheduled > 0 {
		s.Observer.Scheduled(e.Record.GroupKey, res.EscalationsScheduled)
	}
	if res.EscalationsStopped > 0 {
		s.Observer.Resolved(e.Record.GroupKey, res.EscalationsStopped)
	}
}
