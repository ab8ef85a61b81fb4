// Package pipeline turns one notification into what the outbox stores:
// Plan routes it and renders one text per receiver, then an ordered list of
// stages (as Alertmanager's notify.Stage) may drop, hold or annotate it,
// and the result is written to the store in one durable commit.
//
// Intake, `smsbridge routes test`, the status page's routes test and the
// test send all go through Plan, so what they show is what is sent.
package pipeline

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/templates"
)

// Store is the part of the outbox the pipeline writes to.
type Store interface {
	Enqueue(ctx context.Context, n outbox.Notification) (outbox.Enqueued, error)
}

// Stage is one step between Plan and the store. Exec may drop the whole
// notification or some of its entries (recorded and counted, nothing
// sent), hold entries, or annotate the record (a guard the store
// evaluates atomically with the write). An error means the notification
// cannot be judged now (the store is unreachable): nothing is written and
// the caller answers 503 so the sender retries.
type Stage interface {
	Name() string
	Exec(ctx context.Context, e *Envelope) error
}

// Options configure a Pipeline: one configuration generation's routing,
// rendering and stages, writing to the process's store.
type Options struct {
	Router   *routing.Router
	Renderer *templates.Renderer
	// Stages run in order after Plan.
	Stages []Stage
	Store  Store
	Logger *slog.Logger
	// Now is the pipeline's clock: on-call lists are resolved and time
	// intervals judged at it; default time.Now.
	Now func() time.Time
	// Overrides are the on-call overrides added at run time; nil for
	// none.
	Overrides routing.OverridesFunc
	// Replies, when set, gives every firing text a reply code
	// (replies.enabled); nil for none.
	Replies *Replies
}

// Replies is how firing texts ask for an answer.
type Replies struct {
	// Silence is how long an acknowledgement silences an Alertmanager
	// group, as the text says it ("1h"); empty when acknowledgements
	// silence nothing (no alertmanager_api).
	Silence string
}

// Pipeline is immutable and safe for concurrent use.
type Pipeline struct {
	router   *routing.Router
	renderer *templates.Renderer
	stages   []Stage
	store    Store
	logger   *slog.Logger
	now      func() time.Time

	// overrides are the on-call overrides added at run time.
	overrides routing.OverridesFunc
	// replies, when set, gives firing texts a reply code.
	replies *Replies
}

// New returns a Pipeline for opts.
func New(opts Options) (*Pipeline, error) {
	if opts.Router == nil || opts.Renderer == nil {
		return nil, errors.New("pipeline: a router and a renderer are required")
	}
	p := &Pipeline{router: opts.Router, renderer: opts.Renderer,
		stages: opts.Stages, store: opts.Store, logger: opts.Logger, now: opts.Now, overrides: opts.Overrides, replies: opts.Replies}
	if p.logger == nil {
		p.logger = slog.New(slog.DiscardHandler)
	}
	if p.now == nil {
		p.now = time.Now
	}
	return p, nil
}

// StageNames returns the names of the stages, in the order they run.
func (p *Pipeline) StageNames() []string {
	out := make([]string, len(p.stages))
	for i, st := range p.stages {
		out[i] = st.Name()
	}
	return out
}

// Result is what Accept recorded.
type Result struct {
	// ID is the stored notification's id.
	ID int64
	// Outcome is the notification's recorded outcome: accepted,
	// unrouted, filtered, or the outcome of the stage that dropped it; or
	// duplicate, when the store had its delivery id already (ID is then
	// the first notification's).
	Outcome string
	// Recipients counts the deliveries written.
	Recipients int
	// Receivers are the receivers a text was written for, in routing
	// order; none when nothing is sent.
	Receivers []string
	// Replayed is set when the store had the delivery id already
	// (outbox.Enqueued.Replayed): nothing was written.
	Replayed bool
}

// Accept plans n, runs the stages and writes the result durably. A
// notification is recorded even when nothing is sent for it; an error
// means nothing was recorded and the sender should retry.
func (p *Pipeline) Accept(ctx context.Context, n *alert.Notification) (Result, error) {
	if p.store == nil {
		return Result{}, errors.New("pipeline: no store to write to")
	}
	e := &Envelope{Notification: n, Plan: p.Plan(n), p: p,
		Record: outbox.Notification{Source: n.Source, GroupKey: n.GroupKey, Status: n.Data.Status, AlertName: n.AlertName(),
			DeliveryID: n.DeliveryID, DeliveryIDExpires: n.DeliveryIDExpires, AckLabels: p.ackLabels(n)}}
	for _, st := range p.stages {
		if e.outcome != "" {
			break
		}
		if err := st.Exec(ctx, e); err != nil {
			return Result{}, fmt.Errorf("stage %s: %w", st.Name(), err)
		}
	}
	rec := e.Record
	if e.outcome != "" {
		rec.Outcome = e.outcome
	} else {
		rec.Messages = e.Plan.stored()
		rec.Outcome = outbox.OutcomeAccepted
		if len(rec.Messages) == 0 {
			rec.Outcome = outbox.OutcomeUnrouted
		}
	}
	res, err := p.store.Enqueue(ctx, rec)
	if err != nil {
		return Result{}, fmt.Errorf("enqueue notification from %s: %w", n.Source, err)
	}
	p.logGuards(n, res)
	for _, st := range p.stages {
		if c, ok := st.(Committer); ok {
			c.Committed(e, res)
		}
	}
	out := Result{ID: res.ID, Outcome: res.Outcome, Recipients: res.Recipients, Replayed: res.Replayed}
	if res.Recipients > 0 {
		for _, en := range e.Plan.Entries {
			if en.Skipped != "" || slices.ContainsFunc(res.Suppressed, func(sp outbox.Suppressed) bool { return sp.Receiver == en.Receiver.Name }) {
				continue
			}
			if !slices.Contains(out.Receivers, en.Receiver.Name) {
				out.Receivers = append(out.Receivers, en.Receiver.Name)
			}
		}
	}
	return out, nil
}

// Envelope is a notification on its way to the store: its plan, and what
// the stages decided so far.
type Envelope struct {
	Notification *alert.Notification
	Plan         *Plan
	// Record is what will be stored; stages may set its guards.
	Record outbox.Notification
	// outcome, once set by Drop, ends the stages: the notification is
	// recorded with it and sends nothing.
	outcome string
	p       *Pipeline
}

// Committer is a stage that hears what the store made of the record it
// annotated: Accept calls Committed after a successful Enqueue, for every
// such stage, whatever the outcome. It must not block.
type Committer interface {
	Committed(e *Envelope, res outbox.Enqueued)
}

// Previewer is a stage whose judgement needs no store and changes
// nothing outside the envelope: Preview marks the plan's entries as Exec
// would, without dropping, counting or logging, so that a routes test
// shows it (muted by a time interval, say).
type Previewer interface {
	Preview(e *Envelope)
}

// Preview plans n at at and applies the stages that are Previewers, for
// the routes test: what would be sent, and what the stages would hold
// back and why. Nothing is stored.
func (p *Pipeline) Preview(n *alert.Notification, at time.Time) *Plan {
	e := &Envelope{Notification: n, Plan: p.PlanAt(n, at), p: p}
	for _, st := range p.stages {
		if pv, ok := st.(Previewer); ok {
			pv.Preview(e)
		}
	}
	for i := range e.Plan.Entries {
		// The store chooses the code when the text is queued.
		e.Plan.Entries[i].Text = strings.ReplaceAll(e.Plan.Entries[i].Text, outbox.ReplyCodePlaceholder, PreviewReplyCode)
	}
	return e.Plan
}

// PreviewReplyCode stands for the reply code in a preview's texts (the
// routes test): the store chooses the code when a text is queued.
const PreviewReplyCode = "###"

// ackLabels are the labels an acknowledgement of n's group silences: its
// group labels, or its common labels when it has none, and for an
// Alertmanager group its route's equality matchers too
// (alertmanagerAckLabels). Nil without replies.
func (p *Pipeline) ackLabels(n *alert.Notification) map[string]string {
	if p.replies == nil {
		return nil
	}
	if n.Source == alert.SourceAlertmanager {
		return alertmanagerAckLabels(n)
	}
	return groupLabels(n)
}

// groupLabels are the labels that select n's group: its group labels, or
// its common labels when it has none; nil when it has neither.
func groupLabels(n *alert.Notification) map[string]string {
	l := n.Data.GroupLabels
	if len(l) == 0 {
		l = n.Data.CommonLabels
	}
	if len(l) == 0 {
		return nil
	}
	return maps.Clone(map[string]string(l))
}

// Drop records the whole notification with outcome (duplicate, muted...)
// and sends nothing for it; the stages after this one do not run.
func (e *Envelope) Drop(outcome string) { e.outcome = outcome }

// Dropped returns the outcome Drop set, or "".
func (e *Envelope) Dropped() string { return e.outcome }
