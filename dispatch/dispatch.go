// Package dispatch sends what the outbox holds: it leases due deliveries,
// sends each text once to up to a batch of numbers, records every number's
// outcome, and obeys the SMS API's rate limits, pauses and account problems.
//
// The rules, per request:
//   - a number accepted is delivered; a number rejected fails for good with
//     the provider's reason;
//   - 429: no request at all, from any worker, before the announced time;
//   - 5xx or no reply: the rows retry with exponential backoff and jitter;
//   - 401, 403, 405: the whole queue is held, one probe request per
//     HoldRetry, logged at error level and exported as a gauge;
//   - 400 or an unknown status: the rows fail for good;
//   - a row not delivered within MaxAge of its receipt fails, counted and
//     logged.
//
// Delivery is at-least-once (see package outbox): a row in flight when the
// process dies is sent again after restart.
package dispatch

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// Store is what the dispatcher needs from the outbox. *outbox.Store
// implements it; a shared-database implementation can too.
type Store interface {
	// Wake receives a value when new work is due now.
	Wake() <-chan struct{}
	Lease(ctx context.Context, now time.Time, maxBatches, maxNumbers int, leaseFor time.Duration) ([]outbox.Batch, error)
	Complete(ctx context.Context, outcomes []outbox.Outcome) error
	FailExpired(ctx context.Context, now time.Time, maxAge time.Duration) (int, error)
	Schedule(ctx context.Context, now time.Time) (outbox.Schedule, error)
}

// Sender sends one text to many numbers in one request. *sms.Client
// implements it: the Result has one entry per number, and an error is an
// *sms.Error for a request that failed as a whole.
type Sender interface {
	Send(ctx context.Context, text string, numbers []string) (sms.Result, error)
}

// The concrete types main wires in.
var (
	_ Store  = (*outbox.Store)(nil)
	_ Sender = (*sms.Client)(nil)
)

// Config tunes the dispatcher. Zero fields take the defaults named.
type Config struct {
	// Workers is the most requests in flight at once. Default 1, which
	// keeps the provider's 429 rule exactly. With more than one, a request
	// already on the wire when another gets a 429 may land inside the
	// pause (nothing can recall it), and batches leased before a 401/403/
	// 405 still go out once; every request started after a 429 waits for
	// the pause to end, and no batch is leased while the queue is held.
	Workers int
	// BatchSize is the most numbers in one request. Default 100.
	BatchSize int
	// RateLimit is the most requests per second. Default 10; negative
	// means no client-side limit.
	RateLimit float64
	// MinBackoff and MaxBackoff bound the retry delay after a 5xx or
	// network failure. Defaults 1s and 5m.
	MinBackoff, MaxBackoff time.Duration
	// MaxAge is how long after receipt a delivery may still be sent; then
	// it fails with reason max_age. Default 6h.
	MaxAge time.Duration
	// HoldRetry is the least time from the end of one request to the start
	// of the next (a probe) while the queue is held for an account
	// problem. Default 1m.
	HoldRetry time.Duration
	// HoldReminder is how often a held queue is logged again at error
	// level. Default 15m.
	HoldReminder time.Duration
	// LeaseFor is how long a leased batch belongs to its worker before the
	// store hands it out again; it must exceed the SMS client's timeout.
	// Default 5m.
	LeaseFor time.Duration
	// ShutdownGrace is how long requests in flight may finish after Run's
	// context ends before they are cut off and their rows released.
	// Default 10s.
	ShutdownGrace time.Duration
	// DefaultPause is the pause after a 429 that names no wait. Default 30s.
	DefaultPause time.Duration
}

func (c Config) withDefaults() Config {
	def := func(v *time.Duration, d time.Duration) {
		if *v <= 0 {
			*v = d
		}
	}
	if c.Workers <= 0 {
		c.Workers = 1
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 100
	}
	if c.RateLimit == 0 {
		c.RateLimit = 10
	}
	def(&c.MinBackoff, time.Second)
	def(&c.MaxBackoff, 5*time.Minute)
	c.MaxBackoff = max(c.MaxBackoff, c.MinBackoff)
	def(&c.MaxAge, 6*time.Hour)
	def(&c.HoldRetry, time.Minute)
	def(&c.HoldReminder, 15*time.Minute)
	def(&c.LeaseFor, 5*time.Minute)
	def(&c.ShutdownGrace, 10*time.Second)
	def(&c.DefaultPause, 30*time.Second)
	return c
}

// Mode is the dispatcher's overall state.
type Mode string

// Modes, as the status page shows them.
const (
	ModeOK     Mode = "ok"
	ModePaused Mode = "paused" // a 429 pause is running
	ModeHeld   Mode = "held"   // the API refuses the account
)

// State is a snapshot for the status page.
type State struct {
	Mode Mode
	// PausedUntil is the end of the running 429 pause; zero when none.
	PausedUntil time.Time
	// HeldKind ("unauthorized", "suspended", "no_credits"), HeldStatus,
	// HeldMessage (the provider's words) and HeldSince describe a hold.
	HeldKind    string
	HeldStatus  int
	HeldMessage string
	HeldSince   time.Time
	// InFlight counts batches leased by workers.
	InFlight int
}

// Dispatcher moves deliveries from the Store to the Sender.
type Dispatcher struct {
	store   Store
	sender  Sender
	cfg     atomic.Pointer[Config] // swapped by SetConfig
	logger  *slog.Logger
	m       *Metrics
	limiter *rate.Limiter
	running atomic.Bool

	inflight atomic.Int32

	mu          sync.Mutex
	pausedUntil time.Time
	hold        *hold
}

// hold is the account problem that holds the queue.
type hold struct {
	kind    sms.Kind
	status  int
	message string
	since   time.Time
}

// New returns a dispatcher; logger and m may be nil.
func New(store Store, sender Sender, cfg Config, logger *slog.Logger, m *Metrics) *Dispatcher {
	cfg = cfg.withDefaults()
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	if m == nil {
		m = NewMetrics(prometheus.NewRegistry())
	}
	d := &Dispatcher{
		store:  store,
		sender: sender,
		logger: logger,
		m:      m,
		// Burst 1: requests are spaced evenly rather than bunched, which is
		// what a provider's per-second limit counts.
		limiter: rate.NewLimiter(limitFor(cfg.RateLimit), 1),
	}
	d.cfg.Store(&cfg)
	return d
}

// State returns the dispatcher's state now.
func (d *Dispatcher) State() State {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := State{Mode: ModeOK, InFlight: int(d.inflight.Load())}
	if time.Now().Before(d.pausedUntil) {
		s.Mode, s.PausedUntil = ModePaused, d.pausedUntil
	}
	if h := d.hold; h != nil {
		s.Mode = ModeHeld
		s.HeldKind, s.HeldStatus, s.HeldMessage, s.HeldSince = h.kind.String(), h.status, h.message, h.since
	}
	return s
}

// Run dispatches until ctx ends, then lets requests in flight finish within
// the shutdown grace, returns the rows of every unfinished batch to the
// queue, and returns nil. It is an error to call Run twice at once.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("dispatcher already running")
	}
	defer d.running.Store(false)

	// Requests outlive ctx by the grace: one already on the wire is better
	// finished and recorded than cut off and repeated after restart.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	graceTimer := make(chan *time.Timer, 1)
	stopGrace := context.AfterFunc(ctx, func() {
		graceTimer <- time.AfterFunc(d.conf().ShutdownGrace, cancelSends)
	})
	defer func() {
		if !stopGrace() {
			(<-graceTimer).Stop()
		}
	}()

	d.logger.Info("dispatcher started", "workers", d.conf().Workers, "batch_size", d.conf().BatchSize,
		"rate_limit", d.conf().RateLimit, "max_age", d.conf().MaxAge)
	r := &runner{d: d, ctx: ctx, sendCtx: sendCtx, done: make(chan struct{}, d.conf().Workers)}
	r.loop()
	if r.inflight > 0 {
		d.logger.Info("dispatcher stopping; waiting for requests in flight", "batches", r.inflight, "grace", d.conf().ShutdownGrace)
	}
	r.wg.Wait()
	d.logger.Info("dispatcher stopped")
	return nil
}

// runner is the state of one Run, owned by its loop goroutine.
type runner struct {
	d            *Dispatcher
	ctx, sendCtx context.Context
	done         chan struct{} // one value per finished batch
	wg           sync.WaitGroup
	inflight     int

	holdSince    time.Time // the hold the probe timers belong to
	nextProbe    time.Time
	nextReminder time.Time
	lastDone     time.Time // when the latest batch finished

	storeBackoff time.Duration
	storeRetryAt time.Time
	// nextExpiry is when the oldest queued row reaches max age, as of
	// the last schedule query.
	nextExpiry time.Time
}

func (r *runner) loop() {
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		timer.Reset(r.step())
		select {
		case <-r.ctx.Done():
			return
		case <-r.d.store.Wake():
		case <-r.done:
			r.inflight--
			r.lastDone = time.Now()
		case <-timer.C:
		}
	}
}

// rateMargin is the share of sms.rate_limit the limiter actually allows.
const rateMargin = 0.97

// limitFor is the limiter's rate for a configured RateLimit (negative:
// unlimited). It keeps a margin under the configured rate: with requests
// spaced exactly 1/rate apart, the (rate+1)-th leaves one second after the
// first, and a provider counting per one-second window sees rate+1
// whenever the first was a little late, answers 429 and costs a whole
// pause. Measured on a backlog drain: 71-87% of the limit without the
// margin, 97% with it (docs/performance.md).
func limitFor(perSecond float64) rate.Limit {
	if perSecond < 0 {
		return rate.Inf
	}
	return rate.Limit(perSecond * rateMargin)
}

// conf returns the configuration in force.
func (d *Dispatcher) conf() *Config { return d.cfg.Load() }

// Config returns a copy of the configuration in force, defaults applied.
func (d *Dispatcher) Config() Config { return *d.conf() }

// SetConfig applies a reloaded configuration to the running dispatcher:
// rate limit, batch size, backoff, max age, hold timings, lease and pause
// defaults take effect from the next step. Workers stays as started: the
// loop sized itself for it.
func (d *Dispatcher) SetConfig(cfg Config) {
	cfg = cfg.withDefaults()
	cfg.Workers = d.conf().Workers
	d.cfg.Store(&cfg)
	d.limiter.SetLimit(limitFor(cfg.RateLimit))
}

// idle is how long the loop sleeps with nothing scheduled; wake-ups and
// finished batches interrupt it.
const idle = time.Hour

// step does whatever is due now and returns how long to sleep.
func (r *runner) step() time.Duration {
	d := r.d
	now := time.Now()
	if now.Before(r.storeRetryAt) {
		return r.storeRetryAt.Sub(now)
	}
	var next time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	d.mu.Lock()
	held := d.hold != nil
	d.mu.Unlock()
	if !held && r.inflight >= d.conf().Workers && now.Before(r.nextExpiry) {
		// Every worker is busy: a store wake-up (a webhook committed) has
		// nothing to start, and a finished batch wakes the loop anyway.
		// Skipping the schedule queries here keeps the store's single
		// writer free for intake during a storm.
		return r.nextExpiry.Sub(now)
	}

	sched, err := d.store.Schedule(r.ctx, now)
	if err != nil {
		return r.storeFailed(now, err)
	}
	if !sched.OldestQueued.IsZero() && !now.Before(sched.OldestQueued.Add(d.conf().MaxAge)) {
		n, err := d.store.FailExpired(r.ctx, now, d.conf().MaxAge)
		if err != nil {
			return r.storeFailed(now, err)
		}
		if n > 0 {
			d.m.failed.WithLabelValues(ReasonMaxAge).Add(float64(n))
			d.logger.Error("deliveries failed: not delivered within max age", "deliveries", n, "max_age", d.conf().MaxAge)
		}
		if sched, err = d.store.Schedule(r.ctx, now); err != nil {
			return r.storeFailed(now, err)
		}
	}
	r.nextExpiry = now.Add(idle)
	if !sched.OldestQueued.IsZero() {
		r.nextExpiry = sched.OldestQueued.Add(d.conf().MaxAge)
		at(r.nextExpiry)
	}

	d.mu.Lock()
	pausedUntil, h := d.pausedUntil, d.hold
	var hc hold
	if h != nil {
		hc = *h
	}
	d.mu.Unlock()

	switch {
	case h != nil:
		if !hc.since.Equal(r.holdSince) {
			// The failing request that started the hold counts as the
			// last one: the first probe follows it by HoldRetry.
			r.holdSince = hc.since
			r.nextProbe = hc.since.Add(d.conf().HoldRetry)
			r.nextReminder = hc.since.Add(d.conf().HoldReminder)
		}
		if !now.Before(r.nextReminder) {
			d.logger.Error("sms api still refuses the account; all sending is held", "kind", hc.kind.String(),
				"status", hc.status, "provider_message", hc.message, "held_for", now.Sub(hc.since).Round(time.Second))
			r.nextReminder = now.Add(d.conf().HoldReminder)
		}
		at(r.nextReminder)
		switch {
		case now.Before(pausedUntil):
			at(pausedUntil)
		case r.inflight > 0:
			// Its end wakes the loop.
		case now.Before(r.nextProbe) || now.Before(r.lastDone.Add(d.conf().HoldRetry)):
			// A probe follows the end of the previous request, whatever
			// it was, by HoldRetry: slow and steady, however long each
			// request takes.
			at(r.nextProbe)
			at(r.lastDone.Add(d.conf().HoldRetry))
		default:
			batches, err := d.store.Lease(r.ctx, now, 1, d.conf().BatchSize, d.conf().LeaseFor)
			if err != nil {
				return r.storeFailed(now, err)
			}
			if len(batches) == 0 {
				// Nothing to probe with; probe as soon as something is due.
				at(sched.NextDue)
				break
			}
			d.logger.Info("probing whether the sms api accepts the account again", "kind", hc.kind.String())
			r.start(batches[0])
			r.nextProbe = now.Add(d.conf().HoldRetry)
		}
	case now.Before(pausedUntil):
		at(pausedUntil)
	default:
		free := d.conf().Workers - r.inflight
		if free <= 0 {
			break
		}
		batches, err := d.store.Lease(r.ctx, now, free, d.conf().BatchSize, d.conf().LeaseFor)
		if err != nil {
			return r.storeFailed(now, err)
		}
		for _, b := range batches {
			r.start(b)
		}
		if len(batches) < free {
			if sched, err = d.store.Schedule(r.ctx, now); err != nil {
				return r.storeFailed(now, err)
			}
			at(sched.NextDue)
		}
	}
	r.storeBackoff = 0
	if next.IsZero() {
		return idle
	}
	return max(0, time.Until(next))
}

// storeFailed logs a store error and schedules the next try with backoff:
// the store may be briefly busy, or the disk full until someone acts.
func (r *runner) storeFailed(now time.Time, err error) time.Duration {
	if r.ctx.Err() != nil {
		return idle // shutting down: the loop is about to return
	}
	r.storeBackoff = min(max(2*r.storeBackoff, 100*time.Millisecond), 30*time.Second)
	r.storeRetryAt = now.Add(r.storeBackoff)
	r.d.logger.Error("outbox unavailable to the dispatcher; retrying", "err", err, "retry_in", r.storeBackoff)
	return r.storeBackoff
}

// start hands b to a new worker goroutine.
func (r *runner) start(b outbox.Batch) {
	r.inflight++
	r.d.inflight.Add(1)
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		r.d.deliver(r.ctx, r.sendCtx, b)
		r.d.inflight.Add(-1)
		r.done <- struct{}{}
	}()
}

// errPauseTooLong says a 429 pause outlasts the batch's lease.
type errPauseTooLong struct{ until time.Time }

func (e *errPauseTooLong) Error() string {
	return fmt.Sprintf("paused until %s, past the lease", e.until.Format(time.RFC3339))
}

// permit waits until a request may be sent: no 429 pause running, and the
// rate limiter agrees. A pause that would outlast most of the lease is
// returned as *errPauseTooLong so the rows go back to the queue instead of
// lapsing while their holder still means to send them.
func (d *Dispatcher) permit(ctx context.Context, leaseUntil time.Time) error {
	for {
		d.mu.Lock()
		until := d.pausedUntil
		d.mu.Unlock()
		now := time.Now()
		if now.Before(until) {
			if until.After(leaseUntil.Add(-d.conf().LeaseFor / 2)) {
				return &errPauseTooLong{until}
			}
			t := time.NewTimer(until.Sub(now))
			select {
			case <-ctx.Done():
				t.Stop()
				return ctx.Err()
			case <-t.C:
			}
			continue
		}
		if err := d.limiter.Wait(ctx); err != nil {
			return err
		}
		// A 429 may have arrived while the limiter held us.
		d.mu.Lock()
		until = d.pausedUntil
		d.mu.Unlock()
		if !time.Now().Before(until) {
			return nil
		}
	}
}

// verdict is one row's outcome and, for a failure, the metric reason.
type verdict struct {
	out    outbox.Outcome
	reason string
}

// deliver sends one batch and records the outcome of every row in it.
func (d *Dispatcher) deliver(ctx, sendCtx context.Context, b outbox.Batch) {
	if err := d.permit(ctx, b.LeaseUntil); err != nil {
		var tooLong *errPauseTooLong
		vs := make([]verdict, len(b.Deliveries))
		for i, dl := range b.Deliveries {
			if errors.As(err, &tooLong) {
				vs[i].out = outbox.Deferred(dl, tooLong.until, sms.KindRateLimited.String(), "waiting for the sms api's rate-limit pause")
			} else {
				vs[i].out = outbox.Released(dl)
			}
		}
		d.record(b, vs)
		return
	}
	res, err := d.sender.Send(sendCtx, b.Text, b.Numbers())
	now := time.Now()
	if err != nil && sendCtx.Err() != nil {
		d.logger.Warn("sms request cut off by shutdown; its numbers return to the queue and may receive the text twice",
			"numbers", mask(b.Deliveries), "err", err)
		vs := make([]verdict, len(b.Deliveries))
		for i, dl := range b.Deliveries {
			vs[i].out = outbox.Released(dl)
		}
		d.record(b, vs)
		return
	}
	if err != nil {
		d.record(b, d.requestFailed(b, err, now))
		return
	}
	d.clearHold(now)
	d.record(b, d.numbersAnswered(b, res, now))
}

// numbersAnswered turns a reply into one verdict per row.
func (d *Dispatcher) numbersAnswered(b outbox.Batch, res sms.Result, now time.Time) []verdict {
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
			// The client promises one result per number; if one is
			// missing the request's fate for it is unknown, so retry.
			missing = append(missing, dl)
			vs[i].out = outbox.Rescheduled(dl, now.Add(d.backoff(dl.Attempts+1)), "no_result", "the reply named no result for this number")
		case nr.Accepted:
			vs[i].out = outbox.Delivered(dl, nr.MessageID)
		default:
			code := nr.ErrorCode
			if code == "" {
				code = ReasonRejected
			}
			reason := strings.Join(slices.DeleteFunc([]string{nr.Error, nr.Description}, func(s string) bool { return s == "" }), ": ")
			if reason == "" {
				reason = "rejected by the sms api"
			}
			vs[i] = verdict{out: outbox.Failed(dl, code, reason), reason: ReasonRejected}
		}
	}
	if len(missing) > 0 {
		d.logger.Warn("sms reply lacks a result for some numbers; they will be retried", "numbers", mask(missing))
	}
	return vs
}

// requestFailed turns a failed request into one verdict per row, pausing or
// holding the whole dispatcher as the failure demands.
func (d *Dispatcher) requestFailed(b outbox.Batch, err error, now time.Time) []verdict {
	var se *sms.Error
	if !errors.As(err, &se) {
		se = &sms.Error{Kind: sms.KindTransient, Message: err.Error(), Err: err}
	}
	vs := make([]verdict, len(b.Deliveries))
	code := se.Kind.String()
	switch {
	case se.Kind == sms.KindRateLimited:
		pause := se.RetryAfter
		if pause <= 0 {
			pause = d.conf().DefaultPause
		}
		until := d.setPause(now.Add(pause))
		d.logger.Warn("sms api rate limit hit; all sending paused", "until", until.Format(time.RFC3339), "pause", pause, "provider_message", se.Message)
		for i, dl := range b.Deliveries {
			vs[i].out = outbox.Deferred(dl, until, code, se.Error())
		}
	case se.AccountProblem():
		d.setHold(se, now)
		for i, dl := range b.Deliveries {
			// Due at once: the hold, not the row, decides when it goes.
			vs[i].out = outbox.Rescheduled(dl, now, code, se.Error())
		}
	case se.Retryable():
		// One delay for the whole batch, so its rows come due together and
		// go out in one request again; jitter separates batches.
		attempts := 0
		for _, dl := range b.Deliveries {
			attempts = max(attempts, dl.Attempts)
		}
		delay := d.backoff(attempts + 1)
		for i, dl := range b.Deliveries {
			vs[i].out = outbox.Rescheduled(dl, now.Add(delay), code, se.Error())
		}
		d.logger.Warn("sms request failed; will retry", "err", se, "numbers", len(b.Deliveries), "retry_in", delay.Round(time.Millisecond))
	default:
		reason := ReasonPermanent
		if se.Kind == sms.KindBadRequest {
			reason = ReasonBadRequest
		}
		for i, dl := range b.Deliveries {
			vs[i] = verdict{out: outbox.Failed(dl, reason, se.Error()), reason: reason}
		}
	}
	return vs
}

// record stores the verdicts, then counts and logs them: counting first
// would count twice a batch whose rows are sent again after a failed write.
func (d *Dispatcher) record(b outbox.Batch, vs []verdict) {
	outs := make([]outbox.Outcome, len(vs))
	for i, v := range vs {
		outs[i] = v.out
	}
	if err := d.complete(outs); err != nil {
		d.logger.Error("cannot record sms results; the rows will be sent again when their lease lapses (at-least-once)",
			"err", err, "numbers", len(outs))
		return
	}
	var delivered, failed []outbox.Delivery
	var failures []string
	reasons := map[string]int{}
	for _, v := range vs {
		dl := v.out.Delivery
		switch v.out.State {
		case outbox.StateDelivered:
			delivered = append(delivered, dl)
			d.m.sent.WithLabelValues(dl.Receiver).Inc()
			d.m.segments.Add(float64(max(b.Segments, 1)))
		case outbox.StateFailed:
			failed = append(failed, dl)
			failures = append(failures, sms.MaskNumber(dl.Number)+" "+v.out.ErrorCode)
			d.m.failed.WithLabelValues(v.reason).Inc()
			reasons[v.reason]++
		}
	}
	if len(delivered) > 0 {
		d.logger.Info("sms delivered", "receivers", receivers(delivered), "notifications", notifications(delivered),
			"numbers", mask(delivered), "segments", max(b.Segments, 1))
	}
	if len(failed) > 0 {
		d.logger.Error("sms failed for good", "receivers", receivers(failed), "notifications", notifications(failed),
			"failures", failures, "reasons", reasons, "error", failedError(vs))
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
func (d *Dispatcher) backoff(attempt int) time.Duration {
	base := d.conf().MinBackoff
	for i := 1; i < attempt && base < d.conf().MaxBackoff; i++ {
		base *= 2
	}
	base = min(base, d.conf().MaxBackoff)
	half := base / 2
	return max(half+rand.N(base-half+1), d.conf().MinBackoff)
}

// setPause extends the 429 pause to until and returns its end.
func (d *Dispatcher) setPause(until time.Time) time.Time {
	d.mu.Lock()
	if until.After(d.pausedUntil) {
		d.pausedUntil = until
	}
	until = d.pausedUntil
	d.mu.Unlock()
	d.m.pausedUntil.Set(float64(until.UnixMilli()) / 1000)
	return until
}

// setHold holds the queue for the account problem se; a change of kind is
// logged again, a repeat of the same one is not (the reminder is).
func (d *Dispatcher) setHold(se *sms.Error, now time.Time) {
	d.mu.Lock()
	prev := d.hold
	changed := prev == nil || prev.kind != se.Kind
	h := &hold{kind: se.Kind, status: se.StatusCode, message: se.Message, since: now}
	if prev != nil {
		h.since = prev.since
	}
	d.hold = h
	d.mu.Unlock()
	if changed {
		d.m.setHeld(se.Kind.String())
		d.logger.Error("sms api refuses the account; all sending is held until it accepts again",
			"kind", se.Kind.String(), "status", se.StatusCode, "provider_message", se.Message,
			"probe_every", d.conf().HoldRetry)
	}
}

// clearHold ends a hold: a request succeeded, so the account works.
func (d *Dispatcher) clearHold(now time.Time) {
	d.mu.Lock()
	h := d.hold
	d.hold = nil
	d.mu.Unlock()
	if h != nil {
		d.m.setHeld("")
		d.logger.Warn("sms api accepts the account again; sending resumes", "kind", h.kind.String(),
			"held_for", now.Sub(h.since).Round(time.Second))
	}
}

// mask returns the rows' numbers masked for a log line.
func mask(ds []outbox.Delivery) []string {
	out := make([]string, len(ds))
	for i, dl := range ds {
		out[i] = sms.MaskNumber(dl.Number)
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
