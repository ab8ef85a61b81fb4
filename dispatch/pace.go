package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/sms"
)

// Hold is an account problem (401, 403, 405) that stops sending through
// the account until a probe succeeds.
type Hold struct {
	// Kind is "unauthorized", "suspended" or "no_credits".
	Kind string `json:"kind"`
	// Status is the provider's HTTP status.
	Status int `json:"status"`
	// Message is the provider's own words.
	Message string `json:"message,omitempty"`
	// Since is when the account was first refused.
	Since time.Time `json:"since"`
}

// saved is the part of an account's pace that outlives the process: it is
// written to the store whenever it changes and read back at start.
type saved struct {
	PausedUntil  time.Time `json:"paused_until,omitzero"`
	Hold         *Hold     `json:"hold,omitempty"`
	FailingSince time.Time `json:"failing_since,omitzero"`
}

func (s saved) equal(o saved) bool {
	holdEq := (s.Hold == nil) == (o.Hold == nil) && (s.Hold == nil || *s.Hold == *o.Hold)
	return s.PausedUntil.Equal(o.PausedUntil) && s.FailingSince.Equal(o.FailingSince) && holdEq
}

// stateKey is the store key of an account's saved pace.
func stateKey(account string) string { return "dispatch/pace/" + account }

// pace is one account's state. The dispatcher's mutex guards it.
type pace struct {
	name string
	saved
	// persisted is what the store holds, as far as this process knows.
	persisted saved

	// nextStart is the earliest start of the next request (the rate).
	nextStart time.Time
	// inflight counts this account's requests on the wire.
	inflight int
	// lastEnd is when the latest request through the account ended: a
	// probe of a down account follows it by HoldRetry.
	lastEnd time.Time
	// nextReminder is when a held account is logged again.
	nextReminder time.Time

	lastError   string
	lastErrorAt time.Time
	window      window
	// sent are the times the latest requests went out, for admit.
	sent []time.Time
}

// windowGuard is how much longer than one second the sliding window of
// admit is: room for the jitter between a request leaving and the
// provider counting it. It must stay below what the spacing's margin
// leaves (rate limit requests at spacing take 1/rateMargin seconds, 1.031
// s), or the window, not the spacing, sets the pace: at 50 ms it held the
// drain to 1/1.05 = 95.2% of the limit at best (docs/performance.md).
const windowGuard = 20 * time.Millisecond

// admit records a request going out at now and returns 0, or returns how
// long to wait first: no more than the rate limit's requests go out
// within any window of one second and windowGuard. Spacing alone keeps
// the planned starts apart, but a request whose goroutine woke late
// arrives closer to the next ones; this counts the times requests really
// left.
func (p *pace) admit(now time.Time, rateLimit float64) time.Duration {
	n := max(1, int(rateLimit))
	if len(p.sent) >= n {
		if floor := p.sent[len(p.sent)-n].Add(time.Second + windowGuard); now.Before(floor) {
			return floor.Sub(now)
		}
	}
	p.sent = append(p.sent, now)
	if len(p.sent) > 2*n {
		p.sent = append(p.sent[:0], p.sent[len(p.sent)-n:]...)
	}
	return 0
}

// down reports whether requests should avoid the account: it is held, or
// (when there is another account to turn to) it has failed every attempt
// for FallbackAfter. A down account only gets probes.
func (p *pace) down(now time.Time, s Settings, hasFallback bool) bool {
	if p.Hold != nil {
		return true
	}
	return hasFallback && !p.FailingSince.IsZero() && now.Sub(p.FailingSince) >= s.FallbackAfter
}

// nextProbe is when a down account may next be probed.
func (p *pace) nextProbe(s Settings) time.Time {
	t := p.lastEnd.Add(s.HoldRetry)
	if p.Hold != nil {
		t = later(t, p.Hold.Since.Add(s.HoldRetry))
	}
	return t
}

// verdict classifies a reply for the pace: whether the account answered,
// and what it asks of us.
type answer int

const (
	answerOK        answer = iota // a reply the account sends with
	answerAnswered                // the API answered, but not with success (400, other)
	answerTransient               // no reply or 5xx: the account may be down
	answerPause                   // 429
	answerHold                    // 401, 403, 405
)

func classify(err error) (answer, *sms.Error) {
	if err == nil {
		return answerOK, nil
	}
	se := asSMSError(err)
	switch {
	case se.Kind == sms.KindRateLimited:
		return answerPause, se
	case se.AccountProblem():
		return answerHold, se
	case se.Retryable():
		return answerTransient, se
	default:
		return answerAnswered, se
	}
}

// observe updates p with a request's result at now and returns what
// changed, for the log.
func (p *pace) observe(a answer, se *sms.Error, now time.Time, s Settings) (ev event) {
	p.lastEnd = now
	p.window.add(now, a != answerOK)
	if se != nil {
		p.lastError, p.lastErrorAt = se.Error(), now
	}
	switch a {
	case answerOK:
		if p.Hold != nil {
			ev.unheld = p.Hold
			p.Hold = nil
		}
		if !p.FailingSince.IsZero() {
			ev.recovered = now.Sub(p.FailingSince)
			p.FailingSince = time.Time{}
		}
	case answerAnswered:
		p.FailingSince = time.Time{}
	case answerTransient:
		if p.FailingSince.IsZero() {
			p.FailingSince = now
		}
	case answerPause:
		p.FailingSince = time.Time{}
		wait := se.RetryAfter
		if wait <= 0 {
			wait = s.DefaultPause
		}
		if until := now.Add(wait); until.After(p.PausedUntil) {
			p.PausedUntil = until
		}
		ev.paused = wait
	case answerHold:
		h := &Hold{Kind: se.Kind.String(), Status: se.StatusCode, Message: se.Message, Since: now}
		if p.Hold != nil {
			// A change of kind is news; the time it started is not.
			h.Since = p.Hold.Since
			ev.held = p.Hold.Kind != h.Kind
		} else {
			ev.held = true
			p.nextReminder = now.Add(s.HoldReminder)
		}
		p.Hold = h
	}
	return ev
}

// event is what a result changed, for logging outside the lock.
type event struct {
	paused    time.Duration
	held      bool
	unheld    *Hold
	recovered time.Duration
}

// load reads the saved pace of account from the store. A value it cannot
// decode is reported as corrupt, not as an error: it must not stop paging.
// The pause it held is lost, and the provider will say so again.
func load(ctx context.Context, st Store, account string) (sv saved, corrupt, err error) {
	raw, ok, err := st.GetState(ctx, stateKey(account))
	if err != nil || !ok {
		return saved{}, nil, err
	}
	if err := json.Unmarshal(raw, &sv); err != nil {
		return saved{}, fmt.Errorf("saved pace of account %s: %w", account, err), nil
	}
	return sv, nil, nil
}

// window counts requests and failures per minute over the last 15
// minutes, for the status page's error rate.
type window struct {
	start  time.Time // the minute of slot 0
	slots  [15]struct{ total, failed int }
	latest int
}

func (w *window) roll(now time.Time) {
	m := now.Truncate(time.Minute)
	if w.start.IsZero() {
		w.start = m
	}
	for i := int(m.Sub(w.start) / time.Minute); i > w.latest; {
		w.latest++
		w.slots[w.latest%len(w.slots)] = struct{ total, failed int }{}
	}
}

func (w *window) add(now time.Time, failed bool) {
	w.roll(now)
	s := &w.slots[w.latest%len(w.slots)]
	s.total++
	if failed {
		s.failed++
	}
}

func (w *window) counts(now time.Time) (total, failed int) {
	w.roll(now)
	for _, s := range w.slots {
		total += s.total
		failed += s.failed
	}
	return total, failed
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}
