package dispatch

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// verdict is one row's outcome and, for a failure, the metric reason.
type verdict struct {
	out    outbox.Outcome
	reason string
}

func asSMSError(err error) *sms.Error {
	var se *sms.Error
	if !errors.As(err, &se) {
		se = &sms.Error{Kind: sms.KindTransient, Message: err.Error(), Err: err}
	}
	return se
}

// deferAll returns every row of b to the queue, due at at, without counting
// an attempt.
func deferAll(b outbox.Batch, at time.Time, why string) []verdict {
	vs := make([]verdict, len(b.Deliveries))
	for i, dl := range b.Deliveries {
		vs[i].out = outbox.Deferred(dl, at, sms.KindRateLimited.String(), why)
	}
	return vs
}

// numbersAnswered turns a reply into one verdict per row.
func (d *Dispatcher) numbersAnswered(b outbox.Batch, account string, res sms.Result, now time.Time, s Settings) []verdict {
	byNumber := make(map[string]sms.NumberResult, len(res.Numbers))
	for _, nr := range res.Numbers {
		byNumber[nr.Number] = nr
	}
	vs := make([]verdict, len(b.Deliveries))
	var missing []outbox.Delivery
	for i, dl := range b.Deliveries {
		nr, ok := byNumber[dl.Number]
		switch {
		case !ok:
			// The provider promises one result per number; if one is
			// missing the request's fate for it is unknown, so retry.
			missing = append(missing, dl)
			vs[i].out = outbox.Rescheduled(dl, account, now.Add(backoff(s, dl.Attempts+1)), "no_result", "the reply named no result for this number")
		case nr.Accepted:
			vs[i].out = outbox.Accepted(dl, account, nr.MessageID)
		default:
			code := nr.ErrorCode
			if code == "" {
				code = ReasonRejected
			}
			reason := strings.Join(slices.DeleteFunc([]string{nr.Error, nr.Description}, func(s string) bool { return s == "" }), ": ")
			if reason == "" {
				reason = "rejected by the sms api"
			}
			vs[i] = verdict{out: outbox.Failed(dl, account, code, reason), reason: ReasonRejected}
		}
	}
	if len(missing) > 0 {
		d.logger.Warn("sms reply lacks a result for some numbers; they will be retried", "account", account,
			"receivers", receivers(missing), "notifications", notifications(missing), "numbers", mask(missing))
	}
	return vs
}

// requestFailed turns a request that failed as a whole into one verdict per
// row. The pace has already recorded what the failure means for the
// account.
func (d *Dispatcher) requestFailed(b outbox.Batch, account string, se *sms.Error, a answer, now time.Time, s Settings) []verdict {
	vs := make([]verdict, len(b.Deliveries))
	code := se.Kind.String()
	switch a {
	case answerPause:
		d.mu.Lock()
		until := d.paces[account].PausedUntil
		d.mu.Unlock()
		for i, dl := range b.Deliveries {
			vs[i].out = outbox.Deferred(dl, until, code, se.Error())
		}
	case answerHold:
		for i, dl := range b.Deliveries {
			// Due at once: the hold, not the row, decides when it goes
			// (through the fallback, or after a successful probe).
			vs[i].out = outbox.Rescheduled(dl, account, now, code, se.Error())
		}
	case answerTransient:
		// One delay for the whole batch, so its rows come due together and
		// go out in one request again; jitter separates batches. A wait
		// the provider named is the least delay.
		attempts := 0
		for _, dl := range b.Deliveries {
			attempts = max(attempts, dl.Attempts)
		}
		delay := max(backoff(s, attempts+1), se.RetryAfter)
		for i, dl := range b.Deliveries {
			vs[i].out = outbox.Rescheduled(dl, account, now.Add(delay), code, se.Error())
		}
		d.logger.Warn("sms request failed; will retry", "account", account, "err", se,
			"receivers", receivers(b.Deliveries), "notifications", notifications(b.Deliveries),
			"numbers", mask(b.Deliveries), "retry_in", delay.Round(time.Millisecond))
	default:
		reason := ReasonPermanent
		if se.Kind == sms.KindBadRequest {
			reason = ReasonBadRequest
		}
		for i, dl := range b.Deliveries {
			vs[i] = verdict{out: outbox.Failed(dl, account, reason, se.Error()), reason: reason}
		}
	}
	return vs
}

// record stores the verdicts, then counts and logs them: counting first
// would count twice a batch whose rows are sent again after a failed write.
func (d *Dispatcher) record(b outbox.Batch, account string, vs []verdict) {
	outs := make([]outbox.Outcome, len(vs))
	for i, v := range vs {
		outs[i] = v.out
	}
	if err := d.complete(outs); err != nil {
		d.logger.Error("cannot record sms results; the rows will be sent again when their lease lapses (at-least-once)",
			"err", err, "receivers", receivers(b.Deliveries), "notifications", notifications(b.Deliveries), "numbers", len(outs))
		return
	}
	var accepted, failed []outbox.Delivery
	var failures []string
	reasons := map[string]int{}
	segments := max(b.Segments, 1)
	for _, v := range vs {
		dl := v.out.Delivery
		switch v.out.State {
		case outbox.StateAccepted:
			accepted = append(accepted, dl)
			d.m.sent.WithLabelValues(dl.Receiver, account).Inc()
			d.m.segments.WithLabelValues(account).Add(float64(segments))
			if dl.Digest {
				d.m.digests.Inc()
			}
		case outbox.StateFailed:
			failed = append(failed, dl)
			failures = append(failures, sms.MaskNumber(dl.Number)+" "+v.out.ErrorCode)
			d.m.failed.WithLabelValues(v.reason).Inc()
			d.m.receiverFailed.WithLabelValues(dl.Receiver).Inc()
			reasons[v.reason]++
		}
	}
	if len(accepted) > 0 {
		d.logger.Info("sms accepted by the provider", "account", account, "receivers", receivers(accepted),
			"notifications", notifications(accepted), "numbers", mask(accepted), "segments", segments)
	}
	if len(failed) > 0 {
		d.logger.Error("sms failed for good", "account", account, "receivers", receivers(failed), "notifications", notifications(failed),
			"failures", failures, "reasons", reasons, "err", failedError(vs))
	}
}

// failedError is the error text of the first failed verdict, for the log.
func failedError(vs []verdict) string {
	for _, v := range vs {
		if v.out.State == outbox.StateFailed {
			return v.out.Error
		}
	}
	return ""
}

// complete records outcomes, retrying briefly: the provider has already
// acted on them, and a row not recorded is a text sent twice.
func (d *Dispatcher) complete(outs []outbox.Outcome) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	wait := 50 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := d.store.Complete(ctx, outs)
		if err == nil || attempt == 5 {
			return err
		}
		d.logger.Warn("recording sms results failed; retrying", "err", err, "attempt", attempt)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
		wait *= 2
	}
}

// backoff is the delay before attempt number attempt (1 for the first
// retry): MinBackoff doubled per attempt up to MaxBackoff, then "equal
// jitter" (a random point in its upper half, never below MinBackoff), so
// rows that failed together do not retry in lockstep.
func backoff(s Settings, attempt int) time.Duration {
	base := s.MinBackoff
	for i := 1; i < attempt && base < s.MaxBackoff; i++ {
		base *= 2
	}
	base = min(base, s.MaxBackoff)
	half := base / 2
	return max(half+rand.N(base-half+1), s.MinBackoff)
}

// mask returns the rows' numbers masked for a log line.
// mask writes each delivery's number masked, after the name of the
// person on call there: "alice (+2783****001)".
func mask(ds []outbox.Delivery) []string {
	out := make([]string, len(ds))
	for i, dl := range ds {
		out[i] = sms.MaskNumber(dl.Number)
		if dl.Person != "" {
			out[i] = dl.Person + " (" + out[i] + ")"
		}
	}
	return out
}

func receivers(ds []outbox.Delivery) []string {
	var out []string
	for _, dl := range ds {
		if !slices.Contains(out, dl.Receiver) {
			out = append(out, dl.Receiver)
		}
	}
	return out
}

func notifications(ds []outbox.Delivery) []int64 {
	var out []int64
	for _, dl := range ds {
		if !slices.Contains(out, dl.NotificationID) {
			out = append(out, dl.NotificationID)
		}
	}
	return out
}

// optedOutError is the error of a delivery the dispatcher failed because
// its number opted out.
const optedOutError = "the number opted out of SMS (it replied STOP); it gets nothing until it replies START"

// skipOptedOut fails the deliveries of b whose number replied STOP and
// returns b without them. The check is made just before sending, so it
// covers whatever was queued before the opt-out (a retry, a digest).
func (d *Dispatcher) skipOptedOut(ctx context.Context, b outbox.Batch) (outbox.Batch, error) {
	out, err := d.store.OptedOut(ctx, b.Numbers())
	if err != nil {
		// Back to the queue now rather than when the lease lapses; if the
		// store cannot take that either, the lapse returns them.
		outs := make([]outbox.Outcome, len(b.Deliveries))
		for i, dl := range b.Deliveries {
			outs[i] = outbox.Released(dl)
		}
		_ = d.store.Complete(ctx, outs)
		return outbox.Batch{}, fmt.Errorf("read opt-outs: %w", err)
	}
	if len(out) == 0 {
		return b, nil
	}
	var keep []outbox.Delivery
	var vs []verdict
	for _, dl := range b.Deliveries {
		if slices.Contains(out, dl.Number) {
			vs = append(vs, verdict{out: outbox.Failed(dl, "", outbox.CodeOptedOut, optedOutError), reason: ReasonOptedOut})
			continue
		}
		keep = append(keep, dl)
	}
	d.record(b, "", vs)
	b.Deliveries = keep
	return b, nil
}
