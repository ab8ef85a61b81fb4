// Package escalate pages the next receiver when nobody acknowledges a
// page: a receiver's escalate steps, scheduled in the store with the page
// (pipeline.Escalation), are leased when due, checked, and sent as a page
// of their own, prefixed "ESCALATED (10m, no ack): ", to whoever the
// step's receiver pages at that time.
//
// A step is checked before it pages anyone, and every later step of the
// group is stopped, with its reason, when:
//   - someone who got a page of the group acknowledged it by reply
//     (Store.Acknowledged, from any replica; the processor's OnAck stops
//     them at once in the replica that took the reply);
//   - the group resolved (the store stops the steps with the resolution
//     itself; at the step, Alertmanager no longer having the alerts says
//     the same);
//   - with alertmanager_api, Alertmanager shows every alert of the group
//     silenced or inhibited (a silence made in its UI or with amtool).
//
// An Alertmanager that does not answer is asked again every 5 seconds
// for 30 seconds after the step was due; then the step pages anyway: an
// unanswered page is the failure the bridge exists to prevent, and a
// page too many is the lesser harm. A check Alertmanager refuses (a 4xx)
// pages at once.
//
// The Escalator outlives configuration generations and reads the one in
// force at each step. Steps live in the store, leased like deliveries, so
// they survive a restart and another replica takes over those of one that
// died; the page a step sends is written with the end of the step, so it
// is sent once.
package escalate

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/common/model"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
	"github.com/smsbridge/smsbridge/templates"
	"github.com/smsbridge/smsbridge/twoway"
)

// Tuning. Not settings: the tests pin behaviour.
const (
	// batch is how many due steps one lease takes; they are checked in
	// parallel.
	batch = 10
	// poll is how often the Escalator looks for steps it was not told of:
	// another replica's, or ones whose lease lapsed.
	poll = 5 * time.Second
	// minLease is the shortest lease on a step: longer than a check and a
	// write take.
	minLease = 2 * time.Minute
	// CheckRetry is the wait before asking an Alertmanager that did not
	// answer again; CheckGrace how long after the step was due it is
	// asked before the step pages without its answer.
	CheckRetry = 5 * time.Second
	CheckGrace = 30 * time.Second
	// storeRetry is the wait after the store failed.
	storeRetry = 5 * time.Second
	// maxAcks bounds the acknowledgements waiting to stop their groups'
	// steps; past it the step's own check stops them.
	maxAcks = 1000
)

// Store is what escalation needs of the outbox.
type Store interface {
	Enqueue(ctx context.Context, n outbox.Notification) (outbox.Enqueued, error)
	Acknowledged(ctx context.Context, groupKey string, since time.Time) (outbox.Ack, bool, error)
	LeaseEscalations(ctx context.Context, now time.Time, max int, leaseFor time.Duration) ([]outbox.EscalationStep, time.Time, error)
	CompleteEscalation(ctx context.Context, id int64, lease string, o outbox.EscalationOutcome) error
	StopEscalations(ctx context.Context, s outbox.EscalationStop) ([]outbox.EscalationStep, error)
	EscalationSteps(ctx context.Context, f outbox.EscalationFilter) ([]outbox.EscalationStep, error)
}

// Checker asks Alertmanager about a group's alerts (*twoway.Alertmanager).
type Checker interface {
	GroupState(ctx context.Context, matchers map[string]string) (twoway.GroupState, error)
}

// Target is the receiver a step pages, as the configuration in force has
// it at the step's time.
type Target struct {
	Name string
	// Members are who it pages then: its numbers and whoever is on call
	// on its lists.
	Members []oncall.Member
	// Unthrottled is its throttle: false (the per-number throttle does
	// not hold its pages).
	Unthrottled bool
	// MaxSegments is its text budget.
	MaxSegments int
}

// Config is escalation's part of one configuration generation, compiled
// by package generation.
type Config struct {
	// Target returns the receiver called name and who it pages at t;
	// false when the configuration has no such receiver.
	Target func(name string, t time.Time) (Target, bool)
	// Alertmanager is asked about the group at each step; nil without
	// alertmanager_api.
	Alertmanager Checker
	// CheckTimeout bounds one check at all of Alertmanager's URLs.
	CheckTimeout time.Duration
}

// Options configure an Escalator.
type Options struct {
	Store Store
	// Config returns escalation's configuration in force; read once per
	// step. Nil, or a nil Config, sends nothing: steps wait.
	Config  func() *Config
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Leading reports whether this process sends steps now: with replicas
	// sharing a store, only the dispatching leader does (Wake it when it
	// begins to lead). Every process stops the steps of the
	// acknowledgements it records. Nil means always.
	Leading func() bool
}

// Escalator sends the escalation steps that come due. Its methods are
// safe for concurrent use; run one per process.
type Escalator struct {
	store   Store
	config  func() *Config
	logger  *slog.Logger
	metrics *Metrics
	now     func() time.Time
	leading func() bool
	kick    chan struct{}

	mu sync.Mutex
	// acks are acknowledgements whose groups' steps are still to stop.
	acks []outbox.Ack
}

// New returns an Escalator for o.
func New(o Options) *Escalator {
	e := &Escalator{store: o.Store, config: o.Config, logger: o.Logger, metrics: o.Metrics, now: o.Now, leading: o.Leading,
		kick: make(chan struct{}, 1)}
	if e.logger == nil {
		e.logger = slog.New(slog.DiscardHandler)
	}
	if e.metrics == nil {
		e.metrics = NewMetrics(nil)
	}
	if e.now == nil {
		e.now = time.Now
	}
	if e.config == nil {
		e.config = func() *Config { return nil }
	}
	if e.leading == nil {
		e.leading = func() bool { return true }
	}
	return e
}

// Wake makes Run look for due steps now (this process began to lead).
func (e *Escalator) Wake() { e.wake() }

func (e *Escalator) wake() {
	select {
	case e.kick <- struct{}{}:
	default:
	}
}

// Scheduled implements pipeline.EscalationObserver: a page began
// escalations, so the next due time moved.
func (e *Escalator) Scheduled(string, int) { e.wake() }

// Resolved implements pipeline.EscalationObserver: a resolution of group
// stopped n escalations, in the store, with its write.
func (e *Escalator) Resolved(group string, n int) {
	e.metrics.stopped.WithLabelValues(outbox.StopResolved).Add(float64(n))
	e.logger.Info("escalation stopped: the group resolved", "group_key", group, "escalations", n)
}

// Acknowledged stops the steps of a's group, soon; it is the two-way
// processor's OnAck and does not block. Another replica's
// acknowledgements are found at each step (Store.Acknowledged).
func (e *Escalator) Acknowledged(a outbox.Ack) {
	e.mu.Lock()
	if len(e.acks) < maxAcks {
		e.acks = append(e.acks, a)
	}
	e.mu.Unlock()
	e.wake()
}

// Run sends steps as they come due until ctx ends (while Leading), and
// stops the steps of acknowledgements as they come.
func (e *Escalator) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-e.kick:
		case <-timer.C:
		}
		e.stopAcknowledged(ctx)
		var next time.Time
		if e.leading() {
			next = e.Step(ctx)
		}
		wait := poll
		if !next.IsZero() {
			wait = min(wait, max(0, next.Sub(e.now())))
		}
		if !timer.Stop() {
			select {
			case <-timer.C:
			default:
			}
		}
		timer.Reset(wait)
	}
}

// stopAcknowledged stops the steps of the groups acknowledged since the
// last call.
func (e *Escalator) stopAcknowledged(ctx context.Context) {
	e.mu.Lock()
	acks := e.acks
	e.acks = nil
	e.mu.Unlock()
	for _, a := range acks {
		e.stop(ctx, outbox.EscalationStop{GroupKey: a.GroupKey, Reason: outbox.StopAcked, Detail: ackDetail(a), At: a.At})
	}
}

// Step sends or stops every step due now and returns when the next one is
// due (zero for none known).
func (e *Escalator) Step(ctx context.Context) time.Time {
	for ctx.Err() == nil {
		cfg := e.config()
		if cfg == nil {
			return e.now().Add(poll)
		}
		leaseFor := max(minLease, 2*cfg.CheckTimeout+CheckGrace)
		now := e.now()
		steps, next, err := e.store.LeaseEscalations(ctx, now, batch, leaseFor)
		if err != nil {
			if ctx.Err() == nil {
				e.logger.Error("cannot read the escalation steps due; retrying", "err", err, "retry_in", storeRetry)
			}
			return now.Add(storeRetry)
		}
		if len(steps) == 0 {
			return next
		}
		var wg sync.WaitGroup
		for _, s := range steps {
			wg.Go(func() { e.handle(ctx, cfg, s) })
		}
		wg.Wait()
	}
	return time.Time{}
}

// handle checks one leased step and sends, stops, fails or defers it.
func (e *Escalator) handle(ctx context.Context, cfg *Config, s outbox.EscalationStep) {
	now := e.now()
	log := e.logger.With("group_key", s.GroupKey, "alertname", s.AlertName, "receiver", s.Receiver, "step", s.Step,
		"step_receiver", s.StepReceiver, "escalation", s.Escalation)
	a, acked, err := e.store.Acknowledged(ctx, s.GroupKey, s.StartedAt)
	if err != nil {
		e.later(ctx, log, s, now, now.Add(storeRetry), fmt.Errorf("read the group's acknowledgements: %w", err))
		return
	}
	if acked {
		e.stop(ctx, outbox.EscalationStop{GroupKey: s.GroupKey, Reason: outbox.StopAcked, Detail: ackDetail(a), At: now})
		return
	}
	unchecked := ""
	if cfg.Alertmanager != nil && s.Source == alert.SourceAlertmanager && len(s.Labels) > 0 {
		st, err := cfg.Alertmanager.GroupState(ctx, s.Labels)
		if ctx.Err() != nil {
			return // shutting down: the lease lapses and the step is checked again
		}
		switch {
		case err != nil:
			var ae *twoway.APIError
			reason, permanent := twoway.ReasonUnreachable, false
			if errors.As(err, &ae) {
				reason, permanent = ae.Reason, ae.Permanent
			}
			e.metrics.checkErrors.WithLabelValues(reason).Inc()
			if !permanent && now.Before(s.DueAt.Add(CheckGrace)) {
				log.Warn("cannot ask Alertmanager whether the group is silenced; asking again", "reason", reason, "err", err,
					"pages_anyway_at", s.DueAt.Add(CheckGrace).UTC().Format(time.RFC3339))
				e.later(ctx, log, s, now, now.Add(CheckRetry), err)
				return
			}
			unchecked = err.Error()
			log.Error("escalating without knowing whether Alertmanager silenced the group: it did not answer; a page too many beats none",
				"reason", reason, "err", err)
		case st.Active > 0:
		case st.Alerts > 0:
			e.stop(ctx, outbox.EscalationStop{GroupKey: s.GroupKey, Reason: outbox.StopSilenced, Detail: silencedDetail(st), At: now})
			return
		default:
			e.stop(ctx, outbox.EscalationStop{GroupKey: s.GroupKey, Reason: outbox.StopResolved,
				Detail: "Alertmanager no longer has the group's alerts", At: now})
			return
		}
	}
	t, ok := Target{}, false
	if cfg.Target != nil {
		t, ok = cfg.Target(s.StepReceiver, now)
	}
	switch {
	case !ok:
		e.fail(ctx, log, s, now, fmt.Sprintf("receiver %q is no longer configured", s.StepReceiver))
		return
	case len(t.Members) == 0:
		e.fail(ctx, log, s, now, fmt.Sprintf("receiver %q pages nobody now (nobody on call)", s.StepReceiver))
		return
	}
	text, segs := Text(s.After, s.Text, t.MaxSegments)
	var numbers, people []string
	for _, m := range t.Members {
		numbers, people = append(numbers, m.Number), append(people, m.Name)
	}
	summary := s.Summary
	if summary != "" {
		summary = Prefix(s.After) + summary
	}
	res, err := e.store.Enqueue(ctx, outbox.Notification{
		Source: s.Source, GroupKey: s.GroupKey, Status: alert.StatusFiring, AlertName: s.AlertName, AckLabels: s.Labels,
		Escalation: outbox.EscalationRef{ID: s.ID, Lease: s.Lease},
		Messages: []outbox.Message{{Receiver: t.Name, Text: text, Segments: segs, Numbers: numbers, People: people,
			Unthrottled: t.Unthrottled, Critical: s.Critical, Summary: summary,
			ReplyCode: strings.Contains(text, outbox.ReplyCodePlaceholder)}},
	})
	if err != nil {
		if ctx.Err() == nil {
			e.later(ctx, log, s, now, now.Add(storeRetry), fmt.Errorf("queue the escalated page: %w", err))
		}
		return
	}
	if res.Outcome == outbox.OutcomeDuplicate {
		// Stopped meanwhile (an acknowledgement, a resolution), or
		// another holder took the lease: nothing was written.
		log.Info("escalation step ended elsewhere; nothing sent", "escalated_to", res.ID)
		return
	}
	e.metrics.escalations.WithLabelValues(s.Receiver, stepLabel(s.Step)).Inc()
	attrs := []any{"after", model.Duration(s.After).String(), "id", res.ID, "numbers", oncall.FormatMembers(t.Members, sms.MaskNumber)}
	if unchecked != "" {
		// Paged without Alertmanager's word on the group: why.
		attrs = append(attrs, "unchecked", unchecked)
	}
	log.Warn("escalated: nobody acknowledged the page", attrs...)
}

// later returns a leased step to the queue, due at next.
func (e *Escalator) later(ctx context.Context, log *slog.Logger, s outbox.EscalationStep, now, next time.Time, why error) {
	if err := e.store.CompleteEscalation(ctx, s.ID, s.Lease, outbox.EscalationOutcome{State: outbox.EscalationPending, Next: next,
		Error: why.Error(), At: now}); err != nil && ctx.Err() == nil {
		// The lease lapses and the step is tried again.
		log.Error("cannot record the escalation step's attempt", "err", err, "cause", why)
	}
}

// fail ends a step that cannot page anyone.
func (e *Escalator) fail(ctx context.Context, log *slog.Logger, s outbox.EscalationStep, now time.Time, why string) {
	e.metrics.failed.Inc()
	log.Error("escalation step cannot page anyone; the next step, if any, still runs", "reason", why)
	if err := e.store.CompleteEscalation(ctx, s.ID, s.Lease, outbox.EscalationOutcome{State: outbox.EscalationFailed, Error: why, At: now}); err != nil && ctx.Err() == nil {
		log.Error("cannot record the escalation step failed", "err", err)
	}
}

// stop stops the pending steps st selects, counting each escalation it
// stopped once.
func (e *Escalator) stop(ctx context.Context, st outbox.EscalationStop) []outbox.EscalationStep {
	steps, err := e.store.StopEscalations(ctx, st)
	if err != nil {
		if ctx.Err() == nil {
			// The steps stay pending; their own check stops them.
			e.logger.Error("cannot stop escalation steps", "group_key", st.GroupKey, "escalation", st.Escalation, "reason", st.Reason, "err", err)
		}
		return nil
	}
	for _, esc := range outbox.GroupEscalations(steps) {
		e.metrics.stopped.WithLabelValues(st.Reason).Inc()
		e.logger.Info("escalation stopped", "group_key", esc.GroupKey, "alertname", esc.AlertName, "receiver", esc.Receiver,
			"escalation", esc.ID, "reason", st.Reason, "detail", st.Detail, "steps", len(esc.Steps))
	}
	return steps
}

// Errors of Cancel.
var (
	ErrUnknown    = errors.New("no such escalation")
	ErrNotPending = errors.New("the escalation has no step left to stop")
)

// Cancel stops the pending steps of escalation id (the id of any of its
// steps), as by asked; its error wraps ErrUnknown or ErrNotPending when
// there is nothing to cancel.
func (e *Escalator) Cancel(ctx context.Context, id int64, by string) (outbox.Escalation, error) {
	steps, err := e.store.EscalationSteps(ctx, outbox.EscalationFilter{Escalation: id})
	if err != nil {
		return outbox.Escalation{}, fmt.Errorf("read escalation %d: %w", id, err)
	}
	if len(steps) == 0 {
		return outbox.Escalation{}, fmt.Errorf("%w %d", ErrUnknown, id)
	}
	stopped, err := e.store.StopEscalations(ctx, outbox.EscalationStop{Escalation: id, Reason: outbox.StopCancelled, Detail: "cancelled by " + by, At: e.now()})
	if err != nil {
		return outbox.Escalation{}, fmt.Errorf("cancel escalation %d: %w", id, err)
	}
	esc := outbox.GroupEscalations(steps)[0]
	if len(stopped) == 0 {
		return esc, fmt.Errorf("%w: escalation %d", ErrNotPending, esc.ID)
	}
	e.metrics.stopped.WithLabelValues(outbox.StopCancelled).Inc()
	e.logger.Info("escalation stopped", "group_key", esc.GroupKey, "alertname", esc.AlertName, "receiver", esc.Receiver,
		"escalation", esc.ID, "reason", outbox.StopCancelled, "detail", "cancelled by "+by, "steps", len(stopped))
	for i, s := range esc.Steps {
		if k := slices.IndexFunc(stopped, func(x outbox.EscalationStep) bool { return x.ID == s.ID }); k >= 0 {
			esc.Steps[i] = stopped[k]
		}
	}
	return esc, nil
}

// Prefix is what an escalated page begins with: "ESCALATED (10m, no
// ack): ".
func Prefix(after time.Duration) string {
	return fmt.Sprintf("ESCALATED (%s, no ack): ", model.Duration(after))
}

// Text is the escalated page of a step after after: the page's text
// (with the reply code's placeholder) after Prefix, fitted to
// maxSegments. The reply line is kept whole, as the renderer keeps it:
// the text before it is cut instead.
func Text(after time.Duration, text string, maxSegments int) (string, int) {
	p := Prefix(after)
	if i := strings.LastIndex(text, "\n"); i >= 0 && strings.Contains(text[i:], outbox.ReplyCodePlaceholder) &&
		!strings.Contains(text[:i], outbox.ReplyCodePlaceholder) {
		out := templates.FitSuffix(p+text[:i], text[i:], maxSegments)
		return out, templates.Segments(out)
	}
	out := templates.Fit(p+text, maxSegments)
	return out, templates.Segments(out)
}

// ackDetail says who acknowledged, for the step's record: a name and
// the number masked.
func ackDetail(a outbox.Ack) string {
	who := sms.MaskNumber(a.Number)
	if a.Person != "" {
		who = a.Person + " (" + who + ")"
	}
	return fmt.Sprintf("acknowledged by %s (ACK %d)", who, a.Code)
}

// silencedDetail says what suppresses the group's alerts.
func silencedDetail(st twoway.GroupState) string {
	var parts []string
	if len(st.SilencedBy) > 0 {
		parts = append(parts, "silenced by "+strings.Join(st.SilencedBy, ", "))
	}
	if len(st.InhibitedBy) > 0 {
		parts = append(parts, "inhibited by "+strings.Join(st.InhibitedBy, ", "))
	}
	return "Alertmanager: " + strings.Join(parts, "; ")
}

func stepLabel(step int) string { return fmt.Sprint(step) }
