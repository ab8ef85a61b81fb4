package main

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"

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
// the two-way processor, whose acknowledgements it hears. With replicas
// sharing the store, it sends steps only while this replica dispatches
// (it leads); every replica stops the steps of the acknowledgements it
// records.
func (b *bridge) newEscalator() {
	leading := func() bool { return true }
	if l, ok := b.store.(outbox.Leadership); ok {
		b.leader = &leaderWatch{Leadership: l}
		leading = b.leader.leading
	}
	b.escalator = escalate.New(escalate.Options{
		Store:   b.store,
		Config:  b.escalationConfig,
		Logger:  b.logger.With("component", "escalate"),
		Metrics: b.escalateM,
		Leading: leading,
	})
	if b.leader != nil {
		b.leader.onLead = b.escalator.Wake
	}
}

// leaderWatch is the store's Leadership as the dispatcher uses it, and
// tells whether this replica holds a term now.
type leaderWatch struct {
	outbox.Leadership
	// term is the number of the term held, 0 between terms; onLead is
	// called as each begins.
	term   atomic.Int64
	terms  atomic.Int64
	onLead func()
}

// Lead waits for a term as the store's Lead does, and notes it until it
// is lost (or resigned).
func (l *leaderWatch) Lead(ctx context.Context) (outbox.Term, error) {
	t, err := l.Leadership.Lead(ctx)
	if err != nil {
		return nil, err
	}
	n := l.terms.Add(1)
	l.term.Store(n)
	go func() {
		<-t.Lost()
		l.term.CompareAndSwap(n, 0)
	}()
	if l.onLead != nil {
		l.onLead()
	}
	return t, nil
}

// leading reports whether this replica holds a term.
func (l *leaderWatch) leading() bool { return l.term.Load() != 0 }

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
