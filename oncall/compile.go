package oncall

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/common/model"
)

// Options are what Compile needs besides the lists.
type Options struct {
	// Directory resolves members; nil means no people, numbers only.
	Directory *Directory
	// TimeIntervals are the configuration's named time intervals, for
	// layers.
	TimeIntervals map[string][]timeinterval.TimeInterval
}

// Compile validates lists and compiles each into a Schedule. It returns
// the schedules of the lists without problems, in configuration order, and
// the names of the lists with problems (so that a receiver using one is not
// also reported as naming an unknown list). Every problem is reported, with
// its path ("oncall[0].rotation.shift").
func Compile(lists []List, opts Options) ([]*Schedule, map[string]bool, []*Error) {
	dir := opts.Directory
	if dir == nil {
		dir, _ = NewDirectory(nil, nil)
	}
	c := &compiler{dir: dir, intervals: opts.TimeIntervals}
	var out []*Schedule
	bad := map[string]bool{}
	seen := map[string]bool{}
	for i := range lists {
		l := &lists[i]
		at := fmt.Sprintf("oncall[%d]", i)
		if strings.TrimSpace(l.Name) == "" {
			c.add(at+".name", nil, "%s: empty name", at)
			continue
		}
		if seen[l.Name] {
			c.add(at+".name", nil, "duplicate oncall list name %q", l.Name)
			continue
		}
		seen[l.Name] = true
		before := len(c.errs)
		s := c.list(l, at)
		if len(c.errs) > before {
			bad[l.Name] = true
			continue
		}
		out = append(out, s)
	}
	return out, bad, c.errs
}

type compiler struct {
	dir       *Directory
	intervals map[string][]timeinterval.TimeInterval
	errs      []*Error
}

func (c *compiler) add(path string, cause error, format string, args ...any) {
	c.errs = append(c.errs, errorf(path, cause, format, args...))
}

// members resolves refs at path.field[i], reporting each problem.
func (c *compiler) members(what, path string, refs []string) []Member {
	var out []Member
	for i, ref := range refs {
		at := fmt.Sprintf("%s[%d]", path, i)
		if strings.TrimSpace(ref) == "" {
			empty := "empty member"
			if strings.HasSuffix(path, ".numbers") {
				empty = "empty number"
			}
			c.add(at, nil, "%s: %s", what, empty)
			continue
		}
		m, err := c.dir.Lookup(ref)
		if err != nil {
			var le *LookupError
			if errors.As(err, &le) {
				c.add(at, le.Err, "%s: %s", what, le.Msg())
			} else {
				c.add(at, err, "%s", what)
			}
			continue
		}
		out = addMember(out, m)
	}
	return out
}

func (c *compiler) list(l *List, at string) *Schedule {
	what := "oncall list " + strconv.Quote(l.Name)
	s := &Schedule{Name: l.Name, Location: time.UTC, NotifyHandoff: l.NotifyHandoff}
	if tz := strings.TrimSpace(l.TimeZone); tz != "" {
		loc, err := LoadLocation(tz)
		if err != nil {
			c.add(at+".time_zone", nil, "%s: %v", what, err)
		} else {
			s.Location = loc
		}
	}
	s.fixed = c.members(what, at+".numbers", l.Numbers)
	switch {
	case l.Rotation != nil && len(l.Numbers) > 0:
		c.add(at+".rotation", nil, "%s: set numbers (everyone on call at all times) or rotation (one at a time), not both", what)
	case l.Rotation != nil:
		s.rotation = c.rotation(l.Rotation, what, at+".rotation", s.Location)
	case len(l.Numbers) == 0 && (len(l.Layers) > 0 || len(l.Overrides) > 0):
		c.add(at, nil, "%s: layers and overrides need a rotation (or numbers) for the times none of them applies", what)
	}
	for k, ly := range l.Layers {
		s.layers = append(s.layers, c.layer(ly, what, fmt.Sprintf("%s.layers[%d]", at, k)))
	}
	for k, o := range l.Overrides {
		ov := c.override(o, what, fmt.Sprintf("%s.overrides[%d]", at, k), s.Location)
		s.overrides = append(s.overrides, ov)
	}
	return s
}

// MaxShift is the longest rotation shift.
const MaxShift = 365 * 24 * time.Hour

func (c *compiler) rotation(r *Rotation, what, at string, loc *time.Location) *rotation {
	rot := &rotation{members: c.members(what+": rotation", at+".members", r.Members), shiftText: r.Shift}
	if len(r.Members) == 0 {
		c.add(at+".members", nil, "%s: the rotation has no members", what)
	}
	switch d, err := ParseShift(r.Shift); {
	case err != nil:
		c.add(at+".shift", nil, "%s: rotation.shift %v", what, err)
	default:
		rot.shift = d
	}
	if strings.TrimSpace(r.Start) == "" {
		c.add(at+".start", nil, "%s: rotation.start is missing: the local time of one handoff, such as 2026-01-05T09:00", what)
	} else if w, err := ParseWall(r.Start); err != nil {
		c.add(at+".start", nil, "%s: rotation.start %v", what, err)
	} else {
		rot.start = w
	}
	return rot
}

// ParseShift reads a shift length as Alertmanager writes durations (12h,
// 1d, 1w, 8h30m): at least a minute, in whole minutes, at most a year.
func ParseShift(s string) (time.Duration, error) {
	if strings.TrimSpace(s) == "" {
		return 0, errors.New("is missing: write how long each turn lasts, such as 12h, 1d or 1w")
	}
	d, err := model.ParseDuration(strings.TrimSpace(s))
	switch {
	case err != nil:
		return 0, fmt.Errorf("%q is not a duration such as 12h, 1d or 1w", s)
	case time.Duration(d) < time.Minute:
		return 0, fmt.Errorf("%q must be at least 1m", s)
	case time.Duration(d)%time.Minute != 0:
		return 0, fmt.Errorf("%q must be whole minutes", s)
	case time.Duration(d) > MaxShift:
		return 0, fmt.Errorf("%q must be at most 1y", s)
	}
	return time.Duration(d), nil
}

// LoadLocation loads an IANA time zone. "Local" is refused: a schedule
// must not depend on the machine it runs on.
func LoadLocation(name string) (*time.Location, error) {
	if name == "Local" {
		return nil, errors.New(`time_zone "Local" depends on the machine; name an IANA zone such as Europe/Berlin`)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("time_zone %q is not an IANA time zone such as Europe/Berlin or America/New_York", name)
	}
	return loc, nil
}

func (c *compiler) layer(ly Layer, what, at string) layer {
	out := layer{names: ly.TimeIntervals, members: c.members(what+": layer", at+".members", ly.Members)}
	if len(ly.TimeIntervals) == 0 {
		c.add(at+".time_intervals", nil, "%s: the layer names no time_intervals", what)
	}
	for j, name := range ly.TimeIntervals {
		ti, ok := c.intervals[name]
		if !ok {
			c.add(fmt.Sprintf("%s.time_intervals[%d]", at, j), nil, "%s: unknown time interval %q", what, name)
			continue
		}
		out.intervals = append(out.intervals, ti...)
	}
	if len(ly.Members) == 0 {
		c.add(at+".members", nil, "%s: the layer has no members", what)
	}
	return out
}

func (c *compiler) override(o OverrideConfig, what, at string, loc *time.Location) Override {
	ov := Override{Members: c.members(what+": override", at+".members", o.Members)}
	if len(o.Members) == 0 {
		c.add(at+".members", nil, "%s: the override has no members", what)
	}
	var okStart, okEnd bool
	if t, err := ParseTime(o.Start, loc); err != nil {
		c.add(at+".start", nil, "%s: override start %v", what, err)
	} else {
		ov.Start, okStart = t, true
	}
	if t, err := ParseTime(o.End, loc); err != nil {
		c.add(at+".end", nil, "%s: override end %v", what, err)
	} else {
		ov.End, okEnd = t, true
	}
	if okStart && okEnd && !ov.End.After(ov.Start) {
		c.add(at+".end", nil, "%s: override end %s is not after its start %s", what, o.End, o.Start)
	}
	return ov
}
