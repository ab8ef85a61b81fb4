package pipeline

import (
	"context"

	"github.com/smsbridge/smsbridge/alert"
)

// Throttle marks messages for the per-number throttle, which the
// dispatcher applies when it is about to send (outbox.Store.Admit): what a
// number may receive depends on what it was sent by then, not on what
// arrived, and only the send can be counted atomically across replicas and
// requests in flight. The stage notes what only intake knows: whether the
// receiver opted out (throttle: false, for a last resort), the message's
// one-line summary for a digest, and, on a resolution, that it cancels
// its group's firing still held for a number ("resolved before sent").
type Throttle struct {
	// Summary renders the digest line of one receiver's view of a
	// notification (the sms.digest.item template); nil leaves it empty.
	Summary func(receiver string, n *alert.Notification) string
}

// Name implements Stage.
func (Throttle) Name() string { return "throttle" }

// Exec implements Stage.
func (t Throttle) Exec(_ context.Context, e *Envelope) error {
	n := e.Notification
	if n.Data.Status == alert.StatusResolved && n.GroupKey != "" {
		e.Record.CancelHeld = true
	}
	for i := range e.Plan.Entries {
		en := &e.Plan.Entries[i]
		if en.Skipped != "" || en.Notification == nil {
			continue
		}
		en.Marks.Unthrottled = !en.Receiver.Throttle
		if t.Summary != nil {
			en.Marks.Summary = t.Summary(en.Receiver.Name, en.Notification)
		}
	}
	return nil
}
