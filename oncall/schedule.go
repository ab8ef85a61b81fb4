package oncall

import (
	"slices"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"
)

// Schedule is one compiled on-call list. It is immutable and safe for
// concurrent use; every answer is a pure function of the time asked about
// and the run-time overrides passed in.
type Schedule struct {
	Name string
	// Location is the list's time zone (UTC unless configured).
	Location *time.Location
	// NotifyHandoff says whoever comes on call gets an SMS.
	NotifyHandoff bool

	fixed     []Member
	rotation  *rotation
	layers    []layer
	overrides []Override
}

type rotation struct {
	members   []Member
	shift     time.Duration
	shiftText string
	start     time.Time // a wall time: the first member's turn begins
}

type layer struct {
	names     []string
	intervals []timeinterval.TimeInterval
	members   []Member
}

// Override puts Members on call from Start (inclusive) to End
// (exclusive). ID is the store's id of a run-time override, 0 for one
// from the configuration.
type Override struct {
	ID      int64
	Members []Member
	Start   time.Time
	End     time.Time
}

// Source says what put the members on call.
type Source string

// Sources, in order of precedence.
const (
	SourceOverride Source = "override"
	SourceLayer    Source = "layer"
	SourceRotation Source = "rotation"
	// SourceFixed is the fixed form: numbers, everyone at all times.
	SourceFixed Source = "numbers"
	// SourceNone is an empty list.
	SourceNone Source = ""
)

// State is who is on call at one instant and why.
type State struct {
	Members []Member
	Source  Source
	// Layer is the index of the layer in force when Source is
	// SourceLayer.
	Layer int
	// Override is the override in force when Source is SourceOverride.
	Override Override
	// Turn is the rotation's turn when Source is SourceRotation: 0 is the
	// turn beginning at rotation.start, 1 the next, -1 the one before.
	Turn int64
}

// OnCall is who is on call at At, until when, and who comes next.
type OnCall struct {
	State
	At time.Time
	// Until is the next handoff: the first instant after At at which the
	// members on call change. Zero when none happens within Horizon.
	Until time.Time
	// Next is who is on call from Until.
	Next State
}

// Horizon is how far ahead a schedule looks for the next handoff.
const Horizon = 366 * 24 * time.Hour

// Who returns who is on call at t. runtime are the overrides added at run
// time, in the order they were added; they rank with the configuration's:
// the override that started last wins, and between two that started
// together the one added last. Then the first layer whose time intervals
// contain t; then the rotation's turn (or the fixed numbers).
func (s *Schedule) Who(t time.Time, runtime []Override) State {
	if o, ok := s.override(t, runtime); ok {
		return State{Members: o.Members, Source: SourceOverride, Override: o}
	}
	utc := t.UTC() // intervals without a location are UTC, as in Alertmanager
	for i, ly := range s.layers {
		for _, ti := range ly.intervals {
			if ti.ContainsTime(utc) {
				return State{Members: ly.members, Source: SourceLayer, Layer: i}
			}
		}
	}
	if r := s.rotation; r != nil {
		k := r.turn(t, s.Location)
		return State{Members: []Member{r.member(k)}, Source: SourceRotation, Turn: k}
	}
	if len(s.fixed) > 0 {
		return State{Members: s.fixed, Source: SourceFixed}
	}
	return State{}
}

// override returns the override in force at t, if any.
func (s *Schedule) override(t time.Time, runtime []Override) (Override, bool) {
	var best Override
	found := false
	for _, list := range [][]Override{s.overrides, runtime} {
		for _, o := range list {
			if len(o.Members) == 0 || t.Before(o.Start) || !t.Before(o.End) {
				continue
			}
			if !found || !o.Start.Before(best.Start) {
				best, found = o, true
			}
		}
	}
	return best, found
}

// At returns who is on call at t, until when, and who follows.
func (s *Schedule) At(t time.Time, runtime []Override) OnCall {
	cur := s.Who(t, runtime)
	oc := OnCall{State: cur, At: t}
	oc.Until, oc.Next = s.next(t, runtime, func(st State) bool { return !sameMembers(st.Members, cur.Members) })
	return oc
}

// OnCallUntil returns the first instant after t at which m is no longer
// on call; zero when m stays on call through Horizon.
func (s *Schedule) OnCallUntil(m Member, t time.Time, runtime []Override) time.Time {
	until, _ := s.next(t, runtime, func(st State) bool { return !hasNumber(st.Members, m.Number) })
	return until
}

// Handoff is a change of who is on call.
type Handoff struct {
	At       time.Time
	From, To State
}

// Joining returns the members on call after the handoff who were not
// before it.
func (h Handoff) Joining() []Member {
	var out []Member
	for _, m := range h.To.Members {
		if !hasNumber(h.From.Members, m.Number) {
			out = append(out, m)
		}
	}
	return out
}

// Handoffs returns every change of who is on call in (from, to], in
// order.
func (s *Schedule) Handoffs(from, to time.Time, runtime []Override) []Handoff {
	var out []Handoff
	prev := s.Who(from, runtime)
	for _, b := range s.boundaries(from, to, runtime) {
		st := s.Who(b, runtime)
		if !sameMembers(st.Members, prev.Members) {
			out = append(out, Handoff{At: b, From: prev, To: st})
		}
		prev = st
	}
	return out
}

// next returns the first instant after t, within Horizon, whose state
// satisfies changed, and that state. The search widens step by step, so
// the common case (a handoff within days) reads only a few days.
func (s *Schedule) next(t time.Time, runtime []Override, changed func(State) bool) (time.Time, State) {
	from := t
	for _, span := range []time.Duration{24 * time.Hour, 8 * 24 * time.Hour, 40 * 24 * time.Hour, Horizon} {
		to := t.Add(span)
		for _, b := range s.boundaries(from, to, runtime) {
			if st := s.Who(b, runtime); changed(st) {
				return b, st
			}
		}
		from = to
	}
	return time.Time{}, State{}
}

// boundaries returns, sorted and without repeats, every instant in
// (from, to] at which what Who answers may change: the rotation's
// handoffs, the overrides' starts and ends, and the instants the layers'
// time intervals may begin or end. Between two consecutive boundaries Who
// answers the same.
func (s *Schedule) boundaries(from, to time.Time, runtime []Override) []time.Time {
	var out []time.Time
	// A rotation of one person never changes who is on call: its
	// handoffs are no boundaries (with a short shift, a year of them
	// would only cost time).
	if r := s.rotation; r != nil && r.varies() {
		for k := r.turn(from, s.Location) + 1; ; k++ {
			h := r.handoff(k, s.Location)
			if h.After(to) {
				break
			}
			if h.After(from) {
				out = append(out, h)
			}
		}
	}
	for _, list := range [][]Override{s.overrides, runtime} {
		for _, o := range list {
			for _, b := range []time.Time{o.Start, o.End} {
				if b.After(from) && !b.After(to) {
					out = append(out, b)
				}
			}
		}
	}
	for _, ly := range s.layers {
		for _, ti := range ly.intervals {
			out = intervalBoundaries(out, ti, from, to)
		}
	}
	slices.SortFunc(out, func(a, b time.Time) int { return a.Compare(b) })
	return slices.CompactFunc(out, func(a, b time.Time) bool { return a.Equal(b) })
}

// intervalBoundaries appends the instants in (from, to] at which ti may
// begin or end containing the time. ti reads the wall clock of its
// location (UTC when it names none): the year, month, day, weekday and
// minute of the day. Those change only at local midnight, at the start and
// end minutes of its time ranges, and when the zone's offset changes.
func intervalBoundaries(out []time.Time, ti timeinterval.TimeInterval, from, to time.Time) []time.Time {
	loc := time.UTC
	if ti.Location != nil && ti.Location.Location != nil {
		loc = ti.Location.Location
	}
	minutes := []int{0}
	for _, tr := range ti.Times {
		for _, m := range []int{tr.StartMinute, tr.EndMinute} {
			if m > 0 && m < 24*60 && !slices.Contains(minutes, m) {
				minutes = append(minutes, m)
			}
		}
	}
	first, last := wallOf(from, loc), wallOf(to, loc)
	day := time.Date(first.Year(), first.Month(), first.Day()-1, 0, 0, 0, 0, time.UTC)
	end := time.Date(last.Year(), last.Month(), last.Day()+1, 0, 0, 0, 0, time.UTC)
	for ; !day.After(end); day = day.AddDate(0, 0, 1) {
		for _, m := range minutes {
			for _, in := range instants(day.Add(time.Duration(m)*time.Minute), loc) {
				if in.After(from) && !in.After(to) {
					out = append(out, in)
				}
			}
		}
	}
	return zoneChanges(out, loc, from, to)
}

// turn returns the rotation's turn at t: the last k whose handoff is at
// or before t. Handoffs are at wall times start + k×shift, each resolved
// by the DST rules; resolving keeps their order (a skipped time moves to
// the jump, a repeated one is read at its first occurrence), so a turn
// may last less or more than shift in real time, or nothing at all when
// all of it falls into a skipped hour.
func (r *rotation) turn(t time.Time, loc *time.Location) int64 {
	k := floorDiv(wallOf(t, loc).Sub(r.start), r.shift)
	for !r.handoff(k+1, loc).After(t) {
		k++
	}
	for r.handoff(k, loc).After(t) {
		k--
	}
	return k
}

// handoff returns the instant turn k begins.
func (r *rotation) handoff(k int64, loc *time.Location) time.Time {
	return resolve(r.start.Add(time.Duration(k)*r.shift), loc)
}

// varies reports whether the rotation has two or more different members.
func (r *rotation) varies() bool {
	for _, m := range r.members[1:] {
		if m.Number != r.members[0].Number {
			return true
		}
	}
	return false
}

func (r *rotation) member(k int64) Member {
	n := int64(len(r.members))
	return r.members[((k%n)+n)%n]
}

func floorDiv(a, b time.Duration) int64 {
	q := a / b
	if a%b != 0 && (a < 0) != (b < 0) {
		q--
	}
	return int64(q)
}

func hasNumber(ms []Member, number string) bool {
	for _, m := range ms {
		if m.Number == number {
			return true
		}
	}
	return false
}

// sameMembers reports whether a and b hold the same numbers, in any order.
func sameMembers(a, b []Member) bool {
	if len(a) != len(b) {
		return false
	}
	for _, m := range a {
		if !hasNumber(b, m.Number) {
			return false
		}
	}
	return true
}

// Fixed returns the numbers of the fixed form; nil for a schedule.
func (s *Schedule) Fixed() []Member { return slices.Clone(s.fixed) }

// RotationInfo describes a rotation for people.
type RotationInfo struct {
	Members []Member
	// Shift is as configured ("1w").
	Shift string
	// Start is the configured handoff, resolved in the list's zone.
	Start time.Time
}

// Rotation describes the rotation; ok is false when there is none.
func (s *Schedule) Rotation() (RotationInfo, bool) {
	r := s.rotation
	if r == nil {
		return RotationInfo{}, false
	}
	return RotationInfo{Members: slices.Clone(r.members), Shift: r.shiftText, Start: resolve(r.start, s.Location)}, true
}

// LayerInfo describes a layer for people.
type LayerInfo struct {
	TimeIntervals []string
	Members       []Member
}

// Layers describes the layers, in order.
func (s *Schedule) Layers() []LayerInfo {
	out := make([]LayerInfo, len(s.layers))
	for i, ly := range s.layers {
		out[i] = LayerInfo{TimeIntervals: slices.Clone(ly.names), Members: slices.Clone(ly.members)}
	}
	return out
}

// Overrides returns the configuration's overrides.
func (s *Schedule) Overrides() []Override { return slices.Clone(s.overrides) }
