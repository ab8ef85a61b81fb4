package oncall

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// A wall time is a local date and clock reading without a zone, such as
// "2026-03-29 02:30" in Europe/Berlin. It is held in a time.Time in UTC, so
// that adding a duration to it is calendar arithmetic on the wall clock:
// 09:00 plus 24h is 09:00 the next day, whatever DST does in between.

// wallOf returns the wall time of the instant t in loc.
func wallOf(t time.Time, loc *time.Location) time.Time {
	l := t.In(loc)
	return time.Date(l.Year(), l.Month(), l.Day(), l.Hour(), l.Minute(), l.Second(), l.Nanosecond(), time.UTC)
}

// instants returns every instant whose wall time in loc is w, earliest
// first: one for most wall times, none for a time skipped when the clocks
// go forward, two for a time repeated when they go back.
func instants(w time.Time, loc *time.Location) []time.Time {
	sec, nsec := w.Unix(), int64(w.Nanosecond())
	// The offsets in force around w: no zone changes its offset twice in
	// two days, so one of these is the offset of every instant showing w.
	var offsets [3]int
	for i, d := range []int64{-2 * 86400, 0, 2 * 86400} {
		_, offsets[i] = time.Unix(sec+d, 0).In(loc).Zone()
	}
	var out []time.Time
	for i, off := range offsets {
		if i > 0 && (off == offsets[0] || (i == 2 && off == offsets[1])) {
			continue // tried already
		}
		t := time.Unix(sec-int64(off), nsec).In(loc)
		if _, o := t.Zone(); o == off {
			out = append(out, t)
		}
	}
	if len(out) == 2 && out[1].Before(out[0]) {
		out[0], out[1] = out[1], out[0]
	}
	return out
}

// resolve returns the instant a handoff at wall time w in loc happens:
// the instant showing w; when the clocks show w twice (they went back), the
// first; when they skip it (they went forward), the first valid instant
// after it, which is the moment the clocks jumped.
func resolve(w time.Time, loc *time.Location) time.Time {
	if in := instants(w, loc); len(in) > 0 {
		return in[0]
	}
	// w is in a gap. Read with the offset in force after the jump (the
	// larger one: the clocks went forward), w is an instant before the
	// jump; the zone period holding that instant ends at the jump.
	sec := w.Unix()
	maxOff := 0
	for i, d := range []int64{-2 * 86400, 0, 2 * 86400} {
		_, off := time.Unix(sec+d, 0).In(loc).Zone()
		if i == 0 || off > maxOff {
			maxOff = off
		}
	}
	_, end := time.Unix(sec-int64(maxOff), 0).In(loc).ZoneBounds()
	if end.IsZero() {
		// Not a gap after all (cannot happen with real zone data): keep the
		// reading nearest to w.
		return time.Unix(sec-int64(maxOff), int64(w.Nanosecond())).In(loc)
	}
	return end.In(loc)
}

// zoneChanges appends to out the instants in (from, to] at which loc's
// offset changes.
func zoneChanges(out []time.Time, loc *time.Location, from, to time.Time) []time.Time {
	t := from
	for {
		_, end := t.In(loc).ZoneBounds()
		if end.IsZero() || end.After(to) || !end.After(t) {
			return out
		}
		out = append(out, end)
		t = end
	}
}

// Local time layouts accepted for a rotation's start and for overrides.
var wallLayouts = []string{"2006-01-02T15:04", "2006-01-02T15:04:05", "2006-01-02 15:04", "2006-01-02 15:04:05", "2006-01-02"}

// offsetLayouts are the layouts of an instant with its offset.
var offsetLayouts = []string{time.RFC3339Nano, "2006-01-02T15:04Z07:00"}

// errHasOffset is returned by ParseWall for a time that names its offset.
var errHasOffset = errors.New("has a UTC offset or zone")

// ParseWall reads a local date and time without an offset, such as
// "2026-01-05T09:00" (seconds and a space instead of T are accepted; a date
// alone is midnight), as a wall time.
func ParseWall(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range wallLayouts {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	for _, layout := range offsetLayouts {
		if _, err := time.Parse(layout, s); err == nil {
			return time.Time{}, fmt.Errorf("%q %w; write the local time alone, such as 2026-01-05T09:00", s, errHasOffset)
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a local time such as 2026-01-05T09:00", s)
}

// ParseTime reads an instant: RFC 3339 with an offset
// ("2026-12-24T00:00:00+01:00", "2026-12-24T00:00Z"), or a local time
// without one ("2026-12-24T00:00"), read in loc by the handoff rules (a
// skipped time moves to the jump, a repeated one is its first occurrence).
func ParseTime(s string, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range offsetLayouts {
		if t, err := time.Parse(layout, s); err == nil {
			return t, nil
		}
	}
	w, err := ParseWall(s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a local time (2026-12-24T09:00) nor a time with an offset (2026-12-24T09:00+01:00)", s)
	}
	return resolve(w, loc), nil
}

// ResolveWall returns the instant of the wall time w in loc by the handoff
// rules; w's own location is ignored.
func ResolveWall(w time.Time, loc *time.Location) time.Time {
	return resolve(time.Date(w.Year(), w.Month(), w.Day(), w.Hour(), w.Minute(), w.Second(), w.Nanosecond(), time.UTC), loc)
}
