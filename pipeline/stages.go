package pipeline

import (
	"context"

	"github.com/smsbridge/smsbridge/alert"
)

// ResolvedRule is the first stage: a resolved notification from a generic
// webhook is sent only if its group was last stored as firing. Every green
// CI build says "success", and only the one after a failure is news.
// Alertmanager sends resolved only for what it notified as firing, so its
// notifications pass. The check is a guard the store evaluates in the same
// transaction as the write, so two resolutions racing (or two replicas)
// cannot both pass.
type ResolvedRule struct{}

// Name implements Stage.
func (ResolvedRule) Name() string { return "resolved_rule" }

// Exec implements Stage.
func (ResolvedRule) Exec(_ context.Context, e *Envelope) error {
	n := e.Notification
	if n.Source != alert.SourceAlertmanager && n.Data.Status == alert.StatusResolved && n.GroupKey != "" {
		e.Record.RequireFiring = true
	}
	return nil
}
