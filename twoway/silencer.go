package twoway

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// Tuning of the Silencer. Not settings: the tests pin behaviour.
const (
	// silenceBatch is how many pending silences one lease takes.
	silenceBatch = 10
	// silencePoll is how often the Silencer looks for silences another
	// replica acknowledged (or whose retry came due while it slept on a
	// wrong estimate).
	silencePoll = 30 * time.Second
	// minRetry and maxRetry bound the backoff between attempts at one
	// silence.
	minRetry = 5 * time.Second
	maxRetry = 5 * time.Minute
	// storeRetry is the wait after the store failed.
	storeRetry = 5 * time.Second
)

// Silencer creates the silences acknowledgements ask for, in
// Alertmanager, and retries them with backoff while Alertmanager does not
// answer: each pending silence is stored with its acknowledgement, so a
// restart (or another replica) carries on. It answers the person who
// acknowledged: silenced, pending (after the first failed attempt), or
// refused. Run it once per process.
type Silencer struct {
	p *Processor
}

// Silencer returns the Processor's Silencer, woken by the
// acknowledgements the Processor records.
func (p *Processor) Silencer() *Silencer { return &Silencer{p: p} }

// Run creates silences until ctx ends.
func (s *Silencer) Run(ctx context.Context) error {
	timer := time.NewTimer(0)
	defer timer.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-s.p.kick:
		case <-timer.C:
		}
		next := s.Step(ctx)
		wait := silencePoll
		if !next.IsZero() {
			wait = min(wait, max(0, next.Sub(s.p.now())))
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

// Step attempts every silence due now and returns when the next one is
// due (zero for none known).
func (s *Silencer) Step(ctx context.Context) time.Time {
	p := s.p
	for ctx.Err() == nil {
		cfg := p.config()
		leaseFor := 2 * time.Minute
		if cfg != nil && cfg.Alertmanager != nil {
			leaseFor = max(leaseFor, 2*cfg.Alertmanager.Timeout()+10*time.Second)
		}
		now := p.now()
		as, next, err := p.store.LeaseSilences(ctx, now, silenceBatch, leaseFor)
		if err != nil {
			if ctx.Err() == nil {
				p.logger.Error("cannot read the pending silences; retrying", "err", err, "retry_in", storeRetry)
			}
			return now.Add(storeRetry)
		}
		if len(as) == 0 {
			return next
		}
		for _, a := range as {
			s.attempt(ctx, cfg, a)
		}
	}
	return time.Time{}
}

// attempt tries one leased silence once and records the outcome.
func (s *Silencer) attempt(ctx context.Context, cfg *Config, a outbox.Ack) {
	p := s.p
	now := p.now()
	outcome := outbox.SilenceOutcome{At: now}
	var answer, what string
	switch {
	case !now.Before(a.Until):
		outcome.State, outcome.Error = outbox.SilenceFailed, "the acknowledgement ended before Alertmanager took the silence"
		p.metrics.silenceErrors.WithLabelValues(ReasonExpired).Inc()
		p.logger.Error("silence given up: Alertmanager did not take it before the acknowledgement ended", "ack", a.ID,
			"group_key", a.GroupKey, "attempts", a.Attempts, "last_error", a.Error)
	case cfg == nil || cfg.Alertmanager == nil:
		outcome.State, outcome.Error = outbox.SilenceFailed, "alertmanager_api is no longer configured"
		p.metrics.silenceErrors.WithLabelValues(ReasonNotConfigured).Inc()
		p.logger.Error("silence given up: alertmanager_api is no longer configured", "ack", a.ID, "group_key", a.GroupKey)
	default:
		id, err := cfg.Alertmanager.CreateSilence(ctx, Silence{Matchers: a.Labels, StartsAt: now, EndsAt: a.Until,
			Comment: fmt.Sprintf("Acknowledged by SMS from %s (ACK %d)", who(a.Person, a.Number), a.Code)})
		if ctx.Err() != nil {
			// Shutting down: the lease lapses and the next start retries.
			return
		}
		if err == nil {
			outcome.State, outcome.SilenceID = outbox.SilenceCreated, id
			p.metrics.silencesCreated.Inc()
			p.logger.Info("silence created in alertmanager", "ack", a.ID, "silence_id", id, "group_key", a.GroupKey,
				"matchers", describe(a), "until", a.Until.UTC().Format(time.RFC3339), "by", who(a.Person, a.Number))
			answer, what = silencedText(a, a.Until.Sub(now)), fmt.Sprintf("answer: silenced (ACK %d)", a.Code)
			break
		}
		var se *APIError
		if !errors.As(err, &se) {
			se = &APIError{Reason: ReasonUnreachable, Err: err}
		}
		p.metrics.silenceErrors.WithLabelValues(se.Reason).Inc()
		outcome.Error = err.Error()
		if se.Permanent {
			outcome.State = outbox.SilenceFailed
			p.logger.Error("alertmanager refused the silence of an acknowledgement", "ack", a.ID, "group_key", a.GroupKey, "err", err)
			answer, what = refusedText(a, err), fmt.Sprintf("answer: silence refused (ACK %d)", a.Code)
			break
		}
		outcome.State = outbox.SilencePending
		outcome.NextAttempt = now.Add(retryAfter(a.Attempts))
		p.logger.Warn("cannot create the silence of an acknowledgement; retrying", "ack", a.ID, "group_key", a.GroupKey,
			"reason", se.Reason, "attempts", a.Attempts+1, "retry_at", outcome.NextAttempt.UTC().Format(time.RFC3339), "err", err)
		if a.Attempts == 0 {
			answer, what = pendingText(a), fmt.Sprintf("answer: silence pending (ACK %d)", a.Code)
		}
	}
	if err := p.store.CompleteSilence(ctx, a.ID, a.Lease, outcome); err != nil {
		// Someone else holds it now, or the store failed: the lease
		// lapses and the silence is tried again.
		p.logger.Error("cannot record the attempt at a silence", "ack", a.ID, "err", err)
		return
	}
	if answer == "" {
		return
	}
	onceKey := fmt.Sprintf("ack/%d/%s", a.ID, outcome.State)
	// One of several groups one reply acknowledged (ACK ALL): its sender
	// had a summary saying the silences are pending, so it is not
	// confirmed on its own; a refusal is said, within the limit of
	// answers, so twenty refusals do not make twenty SMS.
	batch, err := p.store.Claimed(ctx, batchAckKey(a.ID), now)
	if err != nil {
		// Answered on its own, as if alone: an SMS too many at worst.
		p.logger.Error("cannot read whether an acknowledgement was answered with others", "ack", a.ID, "err", err)
		batch = false
	}
	switch {
	case batch && outcome.State == outbox.SilenceFailed:
		_, err = p.answers.limited(ctx, now, a.Number, a.Person, answer, what, onceKey)
	case batch:
	default:
		err = p.answers.send(ctx, []string{a.Number}, []string{a.Person}, answer, what, onceKey)
	}
	if err != nil {
		p.logger.Error("cannot queue the answer to an acknowledgement", "ack", a.ID, "number", sms.MaskNumber(a.Number), "err", err)
	}
}

// retryAfter is the wait after attempts failed attempts (the first
// counts 0): 5s, 10s, 20s... up to 5m.
func retryAfter(attempts int) time.Duration {
	d := minRetry
	for range attempts {
		d *= 2
		if d >= maxRetry {
			return maxRetry
		}
	}
	return d
}
