package dispatch

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// Store is what the dispatcher needs of the outbox.
type Store interface {
	// Wake receives a value when new work is due now.
	Wake() <-chan struct{}
	Lease(ctx context.Context, now time.Time, maxBatches, maxNumbers int, leaseFor time.Duration) ([]outbox.Batch, error)
	Complete(ctx context.Context, outcomes []outbox.Outcome) error
	FailExpired(ctx context.Context, now time.Time, maxAge time.Duration) (int, error)
	Schedule(ctx context.Context, now time.Time) (outbox.Schedule, error)
	GetState(ctx context.Context, key string) ([]byte, bool, error)
	PutState(ctx context.Context, key string, value []byte) error
	// The noise controls at send time (see Limits).
	Admit(ctx context.Context, now time.Time, ds []outbox.Delivery, limits outbox.Limits) (outbox.Admission, error)
	// OptedOut returns those of numbers that replied STOP: they get
	// nothing.
	OptedOut(ctx context.Context, numbers []string) ([]string, error)
	Release(ctx context.Context, now time.Time, digest outbox.DigestFunc) ([]outbox.ReleasedHold, error)
	BudgetUsed(ctx context.Context, day string) (int, error)
}

// Options configure a Dispatcher.
type Options struct {
	Store Store
	// Settings returns the settings of the configuration generation in
	// force; the dispatcher reads it once per step and once per request.
	Settings func() Settings
	// Logger and Metrics may be nil.
	Logger  *slog.Logger
	Metrics *Metrics
	// Now is the clock; default time.Now.
	Now func() time.Time
	// Leadership, when set, makes Run dispatch only while this process
	// leads the store's replicas (see RunLeader); nil means this process
	// is the only dispatcher (SQLite).
	Leadership outbox.Leadership
}

// Dispatcher moves deliveries from the Store to the provider accounts.
type Dispatcher struct {
	store    Store
	settings func() Settings
	logger   *slog.Logger
	m        *Metrics
	now      func() time.Time
	leader   outbox.Leadership
	running  atomic.Bool

	// mu guards paces and active.
	mu     sync.Mutex
	paces  map[string]*pace
	active string
	// inflight counts requests on the wire, for State.
	inflight atomic.Int32
	// persistMu orders writes of saved paces, so an older snapshot never
	// overwrites a newer one.
	persistMu sync.Mutex
	// budgetLog is the share of the day's budget last logged (d.mu).
	budgetLog budgetLevel
}

// New returns a dispatcher. It fails if opts lack a store or settings.
func New(opts Options) (*Dispatcher, error) {
	if opts.Store == nil || opts.Settings == nil {
		return nil, errors.New("dispatch: a store and settings are required")
	}
	d := &Dispatcher{
		store: opts.Store, settings: opts.Settings, logger: opts.Logger, m: opts.Metrics, now: opts.Now,
		leader: opts.Leadership, paces: map[string]*pace{},
	}
	if d.logger == nil {
		d.logger = slog.New(slog.DiscardHandler)
	}
	if d.m == nil {
		d.m = NewMetrics(nil)
	}
	if d.now == nil {
		d.now = time.Now
	}
	d.m.budget.source = d.budgetNow
	return d, nil
}

// Run dispatches until ctx ends, then lets requests in flight finish within
// the shutdown grace, returns the rows of every unfinished batch to the
// queue, and returns nil. Before the first request it restores every
// account's saved pause and hold from the store. With Options.Leadership
// it dispatches only while this process leads (see lead). It is an error
// to call Run twice at once.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.running.CompareAndSwap(false, true) {
		return errors.New("dispatcher already running")
	}
	defer d.running.Store(false)
	if err := d.settings().Validate(); err != nil {
		return err
	}
	if d.leader != nil {
		return d.lead(ctx)
	}
	d.m.setLeader(true)
	defer d.m.setLeader(false)
	return d.runTerm(ctx)
}

// runTerm dispatches until ctx ends: one term of leadership, or the whole
// run of a sole dispatcher.
func (d *Dispatcher) runTerm(ctx context.Context) error {
	s := d.settings()
	if err := s.Validate(); err != nil {
		return err
	}

	// Requests outlive ctx by the grace: one already on the wire is better
	// finished and recorded than cut off and repeated after restart.
	sendCtx, cancelSends := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelSends()
	graceTimer := make(chan *time.Timer, 1)
	stopGrace := context.AfterFunc(ctx, func() {
		graceTimer <- time.AfterFunc(d.settings().ShutdownGrace, cancelSends)
	})
	defer func() {
		if !stopGrace() {
			(<-graceTimer).Stop()
		}
	}()

	d.logger.Info("dispatcher started", "accounts", accountNames(s.Accounts), "max_in_flight", s.MaxInFlight,
		"batch_size", s.BatchSize, "rate_limit", s.Accounts[0].RateLimit, "max_age", s.MaxAge)
	r := &runner{d: d, ctx: ctx, sendCtx: sendCtx, done: make(chan struct{}, 64)}
	r.loop()
	if r.inflight > 0 {
		d.logger.Info("dispatcher stopping; waiting for requests in flight", "requests", r.inflight, "grace", d.settings().ShutdownGrace)
	}
	r.wg.Wait()
	d.logger.Info("dispatcher stopped")
	return nil
}

// runner is the state of one Run, owned by its loop goroutine.
type runner struct {
	d            *Dispatcher
	ctx, sendCtx context.Context
	done         chan struct{} // one value per finished request
	wg           sync.WaitGroup
	inflight     int

	storeBackoff time.Duration
	storeRetryAt time.Time
	// nextExpiry is when the oldest queued row reaches max age, as of the
	// last schedule query.
	nextExpiry time.Time
	// waitingForSlot is set by a step that left work due because no
	// account could start a request (its pace, a pause or a probe's
	// turn): until the step's own timer or a finished request, a store
	// wake-up, which only says more work is due, changes nothing.
	waitingForSlot bool
}

func (r *runner) loop() {
	timer := time.NewTimer(idle)
	defer timer.Stop()
	for {
		timer.Reset(r.step())
		for waiting := true; waiting; {
			select {
			case <-r.ctx.Done():
				return
			case <-r.d.store.Wake():
				// In a storm every group commit wakes the loop; while
				// due work already waits for a slot, the schedule query
				// would only find it again, on the store intake needs.
				waiting = r.waitingForSlot
			case <-r.done:
				r.inflight--
				waiting = false
			case <-timer.C:
				waiting = false
			}
		}
	}
}

// idle is how long the loop sleeps with nothing scheduled; wake-ups and
// finished requests interrupt it.
const idle = time.Hour

// step does whatever is due now and returns how long to sleep.
func (r *runner) step() time.Duration {
	d := r.d
	now := d.now()
	r.waitingForSlot = false
	if now.Before(r.storeRetryAt) {
		return r.storeRetryAt.Sub(now)
	}
	s := d.settings()
	var next time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	if err := d.ensurePaces(r.ctx, s.Accounts); err != nil {
		return r.storeFailed(now, err)
	}
	if r.inflight >= s.MaxInFlight && now.Before(r.nextExpiry) {
		// Every slot is taken: a wake-up (a webhook committed) has nothing
		// to start, and a finished request wakes the loop anyway. Skipping
		// the schedule query keeps the store free for intake in a storm.
		return r.nextExpiry.Sub(now)
	}
	sched, err := d.store.Schedule(r.ctx, now)
	if err != nil {
		return r.storeFailed(now, err)
	}
	if !sched.OldestQueued.IsZero() && !now.Before(sched.OldestQueued.Add(s.MaxAge)) {
		n, err := d.store.FailExpired(r.ctx, now, s.MaxAge)
		if err != nil {
			return r.storeFailed(now, err)
		}
		if n > 0 {
			d.m.failed.WithLabelValues(ReasonMaxAge).Add(float64(n))
			d.logger.Error("deliveries failed: not accepted by the provider within max age", "deliveries", n, "max_age", s.MaxAge)
		}
		if sched, err = d.store.Schedule(r.ctx, now); err != nil {
			return r.storeFailed(now, err)
		}
	}
	r.nextExpiry = now.Add(idle)
	if !sched.OldestQueued.IsZero() {
		r.nextExpiry = sched.OldestQueued.Add(s.MaxAge)
	}
	at(r.nextExpiry)
	at(d.remind(now, s))
	if !sched.NextHeld.IsZero() {
		if sched.NextHeld.After(now) {
			at(sched.NextHeld)
		} else if err := d.release(r.ctx, now, s.Limits); err != nil {
			return r.storeFailed(now, err)
		}
	}

	due := !sched.NextDue.IsZero() && !sched.NextDue.After(now)
	if !due {
		at(sched.NextDue)
	}
	for due && r.inflight < s.MaxInFlight {
		c, wake := d.pick(now, s)
		at(wake)
		if c.pace == nil {
			// wake is when an account can start one; next includes it.
			r.waitingForSlot = !wake.IsZero()
			break
		}
		batches, err := d.store.Lease(r.ctx, now, 1, s.BatchSize, s.LeaseFor)
		if err != nil {
			return r.storeFailed(now, err)
		}
		if len(batches) == 0 {
			// Someone else took it, or only lapsed leases were due.
			if sched, err = d.store.Schedule(r.ctx, now); err != nil {
				return r.storeFailed(now, err)
			}
			if sched.NextDue.After(now) {
				at(sched.NextDue)
			}
			// Admit may have held rows since the step began.
			at(sched.NextHeld)
			break
		}
		b := batches[0]
		if b, err = d.skipOptedOut(r.ctx, b); err != nil {
			return r.storeFailed(now, err)
		}
		if len(b.Deliveries) == 0 {
			continue
		}
		if lim := s.Limits.at(now); lim.Active() {
			// Decided now, not at intake: what a number may receive depends
			// on what it was sent by now, requests in flight included.
			if b, err = d.admit(r.ctx, now, b, lim); err != nil {
				return r.storeFailed(now, err)
			}
			if len(b.Deliveries) == 0 {
				continue // nothing of it goes now; the slot is still free
			}
		}
		r.start(c, b, s, now)
	}
	r.storeBackoff = 0
	if next.IsZero() {
		return idle
	}
	return max(0, next.Sub(d.now()))
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

// choice is an account a request may start through now.
type choice struct {
	account Account
	pace    *pace
	probe   bool
}

// pick chooses the account the next request goes through, or says when to
// look again. The primary carries the traffic unless it is down (held, or
// failing for FallbackAfter while a fallback exists); a down account gets a
// probe every HoldRetry, the primary's first so it takes over again soon.
func (d *Dispatcher) pick(now time.Time, s Settings) (choice, time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	var wake time.Time
	at := func(t time.Time) {
		if !t.IsZero() && (wake.IsZero() || t.Before(wake)) {
			wake = t
		}
	}
	hasFallback := len(s.Accounts) > 1
	ready := func(a Account, p *pace, probe bool) bool {
		switch {
		case now.Before(p.PausedUntil):
			at(p.PausedUntil)
		case now.Before(p.nextStart.Add(-lookahead(a.RateLimit))):
			at(p.nextStart.Add(-lookahead(a.RateLimit)))
		case probe && p.inflight > 0:
			// Its end wakes the loop.
		case probe && now.Before(p.nextProbe(s)):
			at(p.nextProbe(s))
		default:
			return true
		}
		return false
	}
	var probes []choice
	for i, a := range s.Accounts {
		p := d.paces[a.Name]
		if p.down(now, s, hasFallback) {
			probes = append(probes, choice{account: a, pace: p, probe: true})
			continue
		}
		// The first account that is up carries the traffic; a paused one
		// (429) is waited for, not replaced: the pause is short, and the
		// fallback is for an account that does not work.
		d.setActive(a.Name, i)
		for _, c := range probes {
			if ready(c.account, c.pace, true) {
				return c, wake
			}
		}
		if ready(a, p, false) {
			return choice{account: a, pace: p}, wake
		}
		return choice{}, wake
	}
	// Every account is down: probe them in turn, the primary first.
	d.setActive(s.Accounts[0].Name, 0)
	for _, c := range probes {
		if ready(c.account, c.pace, true) {
			return c, wake
		}
	}
	return choice{}, wake
}

// updateActive records the first account that is up as the one that
// carries traffic (the primary when all are down). d.mu is held.
func (d *Dispatcher) updateActive(now time.Time, s Settings) {
	for i, a := range s.Accounts {
		if p := d.paces[a.Name]; p != nil && !p.down(now, s, len(s.Accounts) > 1) {
			d.setActive(a.Name, i)
			return
		}
	}
	d.setActive(s.Accounts[0].Name, 0)
}

// setActive records which account carries traffic, logging a change.
// d.mu is held.
func (d *Dispatcher) setActive(name string, index int) {
	if d.active == name {
		return
	}
	prev := d.active
	d.active = name
	d.m.setActive(name)
	switch {
	case prev == "":
	case index > 0:
		d.logger.Warn("the primary sms account does not work; sending through the fallback account", "account", name, "instead_of", prev)
	default:
		d.logger.Warn("sending through the primary sms account again", "account", name, "instead_of", prev)
	}
}

// start hands b to a new goroutine that sends it through c.
func (r *runner) start(c choice, b outbox.Batch, s Settings, now time.Time) {
	d := r.d
	d.mu.Lock()
	c.pace.inflight++
	// The request's slot is a spacing after the previous request's slot,
	// whatever the step's store queries cost (a lease from a busy database
	// takes milliseconds): the loop leases up to a lookahead early, so
	// their time overlaps the wait instead of shortening or lengthening
	// the gap, and the request waits for its slot.
	slot := later(d.now(), c.pace.nextStart)
	c.pace.nextStart = slot.Add(spacing(c.account.RateLimit))
	d.mu.Unlock()
	if c.probe {
		d.logger.Info("probing whether the sms api accepts the account again", "account", c.account.Name)
	}
	r.inflight++
	d.inflight.Add(1)
	d.m.inflight.Inc()
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		d.send(r.ctx, r.sendCtx, c, b, s, slot)
		d.mu.Lock()
		c.pace.inflight--
		d.mu.Unlock()
		d.inflight.Add(-1)
		d.m.inflight.Dec()
		r.done <- struct{}{}
	}()
}

// send makes one request for b through c at slot and records every row's
// outcome. A request still waiting for its slot when runCtx ends (shutdown,
// or the end of a leadership term) is not sent: its rows return to the
// queue. One on the wire has until sendCtx ends.
func (d *Dispatcher) send(runCtx, ctx context.Context, c choice, b outbox.Batch, s Settings, slot time.Time) {
	// Wait for the slot, then for the sliding window: a request whose
	// goroutine woke late must not bring the next ones closer than the
	// limit allows (see admit).
	for wait := slot.Sub(d.now()); ; {
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-runCtx.Done():
				t.Stop()
				vs := make([]verdict, len(b.Deliveries))
				for i, dl := range b.Deliveries {
					vs[i].out = outbox.Released(dl)
				}
				d.record(b, c.account.Name, vs)
				return
			}
		}
		d.mu.Lock()
		wait = c.pace.admit(d.now(), c.account.RateLimit)
		d.mu.Unlock()
		if wait <= 0 {
			break
		}
	}
	// A 429 or a hold may have arrived since the loop chose: a request
	// started after it would land inside the pause.
	d.mu.Lock()
	pausedUntil, held := c.pace.PausedUntil, c.pace.Hold != nil && !c.probe
	d.mu.Unlock()
	if now := d.now(); now.Before(pausedUntil) || held {
		at, why := pausedUntil, "waiting for the sms api's rate-limit pause"
		if held {
			at, why = now, "the account is held"
		}
		d.record(b, c.account.Name, deferAll(b, at, why))
		return
	}
	res, err := c.account.Provider.Send(ctx, b.Text, b.Numbers())
	now := d.now()
	if err != nil && ctx.Err() != nil {
		d.logger.Warn("sms request cut off by shutdown; its numbers return to the queue and may receive the text twice",
			"receivers", receivers(b.Deliveries), "notifications", notifications(b.Deliveries), "numbers", mask(b.Deliveries), "err", err)
		vs := make([]verdict, len(b.Deliveries))
		for i, dl := range b.Deliveries {
			vs[i].out = outbox.Released(dl)
		}
		d.record(b, c.account.Name, vs)
		return
	}
	a, se := classify(err)
	d.mu.Lock()
	ev := c.pace.observe(a, se, now, s)
	d.updateActive(now, s)
	d.mu.Unlock()
	d.logEvent(c.account.Name, ev, se, s)
	d.persist(c.account.Name)
	if err != nil {
		d.record(b, c.account.Name, d.requestFailed(b, c.account.Name, se, a, now, s))
		return
	}
	d.record(b, c.account.Name, d.numbersAnswered(b, c.account.Name, res, now, s))
}

func (d *Dispatcher) logEvent(account string, ev event, se *sms.Error, s Settings) {
	switch {
	case ev.paused > 0:
		d.mu.Lock()
		until := d.paces[account].PausedUntil
		d.mu.Unlock()
		d.m.pausedUntil.WithLabelValues(account).Set(float64(until.UnixMilli()) / 1000)
		d.logger.Warn("sms api rate limit hit; no request starts through the account until the pause ends",
			"account", account, "until", until.Format(time.RFC3339), "pause", ev.paused, "provider_message", se.Message)
	case ev.held:
		d.m.setHeld(account, se.Kind.String())
		d.logger.Error("sms api refuses the account; sending through it is held until it accepts again",
			"account", account, "kind", se.Kind.String(), "status", se.StatusCode, "provider_message", se.Message, "probe_every", s.HoldRetry)
	}
	if ev.unheld != nil {
		d.m.setHeld(account, "")
		d.logger.Warn("sms api accepts the account again; sending resumes", "account", account, "kind", ev.unheld.Kind,
			"held_for", d.now().Sub(ev.unheld.Since).Round(time.Second))
	}
	if ev.recovered > 0 {
		d.logger.Info("sms api answers again", "account", account, "failing_for", ev.recovered.Round(time.Second))
	}
}

// remind logs held accounts again every HoldReminder and returns when the
// next reminder is due.
func (d *Dispatcher) remind(now time.Time, s Settings) time.Time {
	d.mu.Lock()
	defer d.mu.Unlock()
	var next time.Time
	for _, a := range s.Accounts {
		p := d.paces[a.Name]
		if p.Hold == nil {
			continue
		}
		if p.nextReminder.IsZero() {
			p.nextReminder = now.Add(s.HoldReminder)
		}
		if !now.Before(p.nextReminder) {
			d.logger.Error("sms api still refuses the account; sending through it is held", "account", a.Name,
				"kind", p.Hold.Kind, "status", p.Hold.Status, "provider_message", p.Hold.Message,
				"held_for", now.Sub(p.Hold.Since).Round(time.Second))
			p.nextReminder = now.Add(s.HoldReminder)
		}
		if next.IsZero() || p.nextReminder.Before(next) {
			next = p.nextReminder
		}
	}
	return next
}

// ensurePaces creates the pace of every configured account, reading its
// saved pause and hold from the store first: nothing is sent through an
// account before its saved pace is known.
func (d *Dispatcher) ensurePaces(ctx context.Context, accounts []Account) error {
	for _, a := range accounts {
		d.mu.Lock()
		_, ok := d.paces[a.Name]
		d.mu.Unlock()
		if ok {
			continue
		}
		sv, corrupt, err := load(ctx, d.store, a.Name)
		if err != nil {
			return fmt.Errorf("read saved pace of account %s: %w", a.Name, err)
		}
		if corrupt != nil {
			d.logger.Error("ignoring the unreadable saved pause and hold of an account", "account", a.Name, "err", corrupt)
		}
		now := d.now()
		p := &pace{name: a.Name, saved: sv, persisted: sv}
		if sv.Hold != nil {
			d.m.setHeld(a.Name, sv.Hold.Kind)
			p.lastEnd = now
			d.logger.Error("the account was held when the bridge stopped; it is probed before anything is sent through it",
				"account", a.Name, "kind", sv.Hold.Kind, "since", sv.Hold.Since.Format(time.RFC3339))
		}
		if now.Before(sv.PausedUntil) {
			d.m.pausedUntil.WithLabelValues(a.Name).Set(float64(sv.PausedUntil.UnixMilli()) / 1000)
			d.logger.Warn("a rate-limit pause from before the restart is still running; nothing is sent through the account until it ends",
				"account", a.Name, "until", sv.PausedUntil.Format(time.RFC3339))
		}
		d.mu.Lock()
		if _, ok := d.paces[a.Name]; !ok {
			d.paces[a.Name] = p
		}
		d.mu.Unlock()
	}
	return nil
}

// persist writes an account's saved pace to the store if it changed. A
// failed write is logged: the pause still holds in memory, but a restart
// would not know it.
func (d *Dispatcher) persist(account string) {
	d.persistMu.Lock()
	defer d.persistMu.Unlock()
	d.mu.Lock()
	p := d.paces[account]
	sv, prev := p.saved, p.persisted
	d.mu.Unlock()
	if sv.equal(prev) {
		return
	}
	raw, err := json.Marshal(sv)
	if err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err = d.store.PutState(ctx, stateKey(account), raw)
		cancel()
	}
	if err != nil {
		d.logger.Error("cannot save the account's pause and hold; a restart now would not know them", "account", account, "err", err)
		return
	}
	d.mu.Lock()
	p.persisted = sv
	d.mu.Unlock()
}

func accountNames(as []Account) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.Name
	}
	return out
}
