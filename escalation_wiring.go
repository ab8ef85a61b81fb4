package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/smsbridge/smsbridge/escalate"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/status"
)

// The wiring of escalation: the escalator, which outlives generations,
// and what the status page reads and changes of it.

// escalationConfig is escalation's configuration in force.
func (b *bridge) escalationConfig() *escalate.Config {
	if g := b.gen.Load(); g != nil {
		return g.Escalation
	}
	return nil
}

// newEscalator builds the escalator, after the store is open and before
// the two-way processor, whose acknowledgements it hears.
func (b *bridge) newEscalator() {
	b.escalator = escalate.New(escalate.Options{
		Store:   b.store,
		Config:  b.escalationConfig,
		Logger:  b.logger.With("component", "escalate"),
		Metrics: b.escalateM,
	})
}

// runEscalator runs the escalator until ctx ends; done is closed then.
func (b *bridge) runEscalator(ctx context.Context, done chan<- struct{}) {
	defer close(done)
	if err := b.escalator.Run(ctx); err != nil {
		b.logger.Error("escalator stopped", "err", fmt.Errorf("escalator: %w", err))
	}
}

// statusEscalations is escalation as the status page reads and changes
// it.
type statusEscalations struct{ b *bridge }

func (s statusEscalations) Escalations(ctx context.Context, f outbox.EscalationFilter) ([]outbox.Escalation, error) {
	steps, err := s.b.store.EscalationSteps(ctx, f)
	if err != nil {
		return nil, err
	}
	return outbox.GroupEscalations(steps), nil
}

func (s statusEscalations) Cancel(ctx context.Context, id int64, by string) (outbox.Escalation, error) {
	esc, err := s.b.escalator.Cancel(ctx, id, by)
	switch {
	case errors.Is(err, escalate.ErrUnknown):
		return esc, fmt.Errorf("%w: %w", status.ErrUnknownEscalation, err)
	case errors.Is(err, escalate.ErrNotPending):
		return esc, fmt.Errorf("%w: %w", status.ErrEscalationOver, err)
	}
	return esc, err
}
