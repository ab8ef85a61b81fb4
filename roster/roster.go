// Package roster is the live side of the on-call schedules: the overrides
// operators add at run time (kept in the store, cached here so routing
// never waits on it), the handoff notices, and the gauge of who is on call.
// The schedules themselves are package oncall's, compiled per
// configuration generation; the Roster outlives generations and reads the
// one in force through View.
//
// Handoff notices are exactly once per handoff and member: each is a
// notification with a once key (list, handoff instant, number) that the
// store records atomically with the notice, so neither a restart nor a
// second replica sends it twice, and one crash between deciding and
// writing loses nothing (the next check writes it).
package roster

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/sms"
)

// Store is the part of the outbox the roster uses.
type Store interface {
	Enqueue(ctx context.Context, n outbox.Notification) (outbox.Enqueued, error)
	AddOverride(ctx context.Context, o outbox.Override) (outbox.Override, error)
	Overrides(ctx context.Context) ([]outbox.Override, error)
	DeleteOverride(ctx context.Context, id int64) error
}

// View is what the roster reads of the configuration in force.
type View struct {
	// Lists are every on-call list, in configuration order.
	Lists []*oncall.Schedule
	// Directory resolves people's names and numbers.
	Directory *oncall.Directory
}

// list returns the schedule called name.
func (v View) list(name string) (*oncall.Schedule, bool) {
	for _, s := range v.Lists {
		if s.Name == name {
			return s, true
		}
	}
	return nil, false
}

// Options configure a Roster.
type Options struct {
	Store Store
	// View returns the configuration in force; a View without lists when
	// none is loaded.
	View func() View
	// Now is the clock; default time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	// Metrics counts the notices; nil counts nothing.
	Metrics *Metrics
	// Tick is how often Run checks for handoffs; default 15s.
	Tick time.Duration
	// Refresh is how often Run rereads the overrides from the store, for
	// the ones another replica added; default 30s.
	Refresh time.Duration
	// MaxLate is how late a handoff notice may still be sent, for a
	// bridge that was down at the handoff; default (and at most) a day.
	// It must not exceed the store's retention: a notice pruned from the
	// store no longer guards against being sent again.
	MaxLate time.Duration
}

// Limits of an override added at run time.
const (
	// MaxOverride is the longest one: a holiday, not a new rotation.
	MaxOverride = 90 * 24 * time.Hour
	// MaxOverrideMembers is the most people one override puts on call.
	MaxOverrideMembers = 10
	// maxLate is how late a handoff notice may still be sent by default:
	// a bridge that was down at a handoff tells the newcomer when it is
	// back, as long as that is within a day and they are still on call.
	maxLate = 24 * time.Hour
)

// Errors of Add and Delete, for the admin API to map to status codes.
var (
	ErrUnknownList     = errors.New("no such on-call list")
	ErrBadOverride     = errors.New("bad override")
	ErrUnknownOverride = errors.New("no such override")
)

// Roster is safe for concurrent use.
type Roster struct {
	store   Store
	view    func() View
	now     func() time.Time
	logger  *slog.Logger
	metrics *Metrics
	tick    time.Duration
	refresh time.Duration
	maxLate time.Duration

	mu        sync.RWMutex
	overrides []outbox.Override
	// sent are the notices already in the store, by once key, with their
	// handoff instant, so a check does not write them again every tick.
	sent map[string]time.Time
	// kick asks Run to check now: an override was added or deleted.
	kick chan struct{}
}

// New returns a Roster; call Load before serving.
func New(o Options) *Roster {
	r := &Roster{store: o.Store, view: o.View, now: o.Now, logger: o.Logger, metrics: o.Metrics,
		tick: o.Tick, refresh: o.Refresh, maxLate: o.MaxLate, sent: map[string]time.Time{}, kick: make(chan struct{}, 1)}
	if r.now == nil {
		r.now = time.Now
	}
	if r.logger == nil {
		r.logger = slog.New(slog.DiscardHandler)
	}
	if r.tick <= 0 {
		r.tick = 15 * time.Second
	}
	if r.refresh <= 0 {
		r.refresh = 30 * time.Second
	}
	if r.maxLate <= 0 || r.maxLate > maxLate {
		r.maxLate = maxLate
	}
	return r
}

// Load reads the overrides from the store.
func (r *Roster) Load(ctx context.Context) error {
	all, err := r.store.Overrides(ctx)
	if err != nil {
		return fmt.Errorf("load on-call overrides: %w", err)
	}
	r.mu.Lock()
	r.overrides = all
	r.mu.Unlock()
	return nil
}

// Stored returns the overrides of list added at run time, in the order
// added; every list's when list is "".
func (r *Roster) Stored(list string) []outbox.Override {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []outbox.Override
	for _, o := range r.overrides {
		if list == "" || o.List == list {
			out = append(out, o)
		}
	}
	return out
}

// For returns the run-time overrides of list, their members resolved with
// dir; members dir does not know (a person removed from the
// configuration) are left out. It implements generation.OverrideSource.
func (r *Roster) For(list string, dir *oncall.Directory) []oncall.Override {
	r.mu.RLock()
	defer r.mu.RUnlock()
	var out []oncall.Override
	for _, o := range r.overrides {
		if o.List != list {
			continue
		}
		ov := oncall.Override{ID: o.ID, Start: o.Start, End: o.End}
		for _, ref := range o.Members {
			if m, err := dir.Lookup(ref); err == nil && !slices.ContainsFunc(ov.Members, func(x oncall.Member) bool { return x.Number == m.Number }) {
				ov.Members = append(ov.Members, m)
			}
		}
		out = append(out, ov)
	}
	return out
}

// AddRequest is an override as an operator asks for it.
type AddRequest struct {
	// Members are people's names or numbers.
	Members []string
	// Start and End are RFC 3339 times, or local times in the list's zone
	// ("2026-12-24T00:00"). An empty Start means now.
	Start, End string
}

// Add validates req against the configuration in force and stores it.
// Its errors wrap ErrUnknownList or ErrBadOverride (with a message for the
// operator) when the request is wrong; anything else is the store's.
func (r *Roster) Add(ctx context.Context, list string, req AddRequest) (outbox.Override, error) {
	v := r.view()
	s, ok := v.list(list)
	if !ok {
		return outbox.Override{}, fmt.Errorf("%w %q", ErrUnknownList, list)
	}
	now := r.now()
	o, err := r.check(s, v.Directory, req, now)
	if err != nil {
		return outbox.Override{}, fmt.Errorf("%w: %w", ErrBadOverride, err)
	}
	stored, err := r.store.AddOverride(ctx, o)
	if err != nil {
		return outbox.Override{}, fmt.Errorf("store the override: %w", err)
	}
	r.mu.Lock()
	if !slices.ContainsFunc(r.overrides, func(x outbox.Override) bool { return x.ID == stored.ID }) {
		r.overrides = append(r.overrides, stored)
		slices.SortFunc(r.overrides, func(a, b outbox.Override) int { return int(a.ID - b.ID) })
	}
	r.mu.Unlock()
	r.checkSoon()
	members, _ := v.Directory.LookupAll(stored.Members)
	r.logger.Info("on-call override added", "oncall", list, "id", stored.ID, "members", oncall.FormatMembers(members, sms.MaskNumber),
		"start", stored.Start.In(s.Location).Format(time.RFC3339), "end", stored.End.In(s.Location).Format(time.RFC3339))
	return stored, nil
}

// check turns req into an override for s, or says what is wrong with it.
func (r *Roster) check(s *oncall.Schedule, dir *oncall.Directory, req AddRequest, now time.Time) (outbox.Override, error) {
	o := outbox.Override{List: s.Name}
	switch n := len(req.Members); {
	case n == 0:
		return o, errors.New(`"members" is empty: name who is on call, people's names or numbers`)
	case n > MaxOverrideMembers:
		return o, fmt.Errorf("%d members; an override puts at most %d people on call", n, MaxOverrideMembers)
	}
	for _, ref := range req.Members {
		if strings.TrimSpace(ref) == "" {
			return o, errors.New("a member is empty")
		}
		m, err := dir.Lookup(ref)
		if err != nil {
			return o, err
		}
		// Stored as the person's name where there is one: it follows a
		// change of their number in the configuration.
		ref := m.Number
		if m.Name != "" {
			ref = m.Name
		}
		if !slices.Contains(o.Members, ref) {
			o.Members = append(o.Members, ref)
		}
	}
	o.Start = now
	if strings.TrimSpace(req.Start) != "" {
		t, err := oncall.ParseTime(req.Start, s.Location)
		if err != nil {
			return o, fmt.Errorf("start %w", err)
		}
		o.Start = t
	}
	if strings.TrimSpace(req.End) == "" {
		return o, errors.New(`"end" is missing: say until when, such as 2026-12-27T09:00`)
	}
	t, err := oncall.ParseTime(req.End, s.Location)
	if err != nil {
		return o, fmt.Errorf("end %w", err)
	}
	o.End = t
	switch {
	case !o.End.After(o.Start):
		return o, fmt.Errorf("end %s is not after start %s", o.End.In(s.Location).Format(time.RFC3339), o.Start.In(s.Location).Format(time.RFC3339))
	case !o.End.After(now):
		return o, fmt.Errorf("end %s is in the past", o.End.In(s.Location).Format(time.RFC3339))
	case o.End.Sub(o.Start) > MaxOverride:
		return o, fmt.Errorf("the override lasts %s; at most %d days (change the rotation for longer)", o.End.Sub(o.Start).Round(time.Minute), MaxOverride/(24*time.Hour))
	}
	return o, nil
}

// Delete removes the override with id from list. Its error wraps
// ErrUnknownOverride when list has no override id.
func (r *Roster) Delete(ctx context.Context, list string, id int64) error {
	if !slices.ContainsFunc(r.Stored(list), func(o outbox.Override) bool { return o.ID == id }) {
		// Another replica may have added it since the last refresh.
		if err := r.Load(ctx); err != nil {
			return err
		}
		if !slices.ContainsFunc(r.Stored(list), func(o outbox.Override) bool { return o.ID == id }) {
			return fmt.Errorf("%w %d on list %q", ErrUnknownOverride, id, list)
		}
	}
	err := r.store.DeleteOverride(ctx, id)
	switch {
	case errors.Is(err, outbox.ErrNotFound):
		err = fmt.Errorf("%w %d on list %q", ErrUnknownOverride, id, list)
	case err != nil:
		return fmt.Errorf("delete the override: %w", err)
	}
	r.mu.Lock()
	r.overrides = slices.DeleteFunc(r.overrides, func(o outbox.Override) bool { return o.ID == id })
	r.mu.Unlock()
	r.checkSoon()
	if err == nil {
		r.logger.Info("on-call override deleted", "oncall", list, "id", id)
	}
	return err
}

// checkSoon makes Run check for handoffs now rather than at the next
// tick, so whoever an override puts on call is told at once.
func (r *Roster) checkSoon() {
	select {
	case r.kick <- struct{}{}:
	default:
	}
}

// Run checks for handoffs every Tick and rereads the overrides every
// Refresh until ctx ends.
func (r *Roster) Run(ctx context.Context) error {
	t := time.NewTicker(r.tick)
	defer t.Stop()
	lastLoad := r.now()
	for {
		if err := r.CheckHandoffs(ctx, r.now()); err != nil && ctx.Err() == nil {
			r.logger.Error("handoff notices not queued; retrying at the next check", "err", err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-t.C:
		case <-r.kick:
		}
		if now := r.now(); now.Sub(lastLoad) >= r.refresh {
			if err := r.Load(ctx); err != nil && ctx.Err() == nil {
				r.logger.Error("rereading the on-call overrides failed; the ones known keep applying", "err", err)
			} else {
				lastLoad = now
			}
		}
	}
}
