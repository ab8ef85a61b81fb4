package oncall

import (
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"
	"gopkg.in/yaml.v3"
)

var e164 = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)

var errNotE164 = errors.New("not an e.164 number")

// normalize stands in for sms.NormalizeNumber, which this package does
// not import.
func normalize(s string) (string, error) {
	n := strings.ReplaceAll(strings.TrimSpace(s), " ", "")
	if !e164.MatchString(n) {
		return "", errNotE164
	}
	return n, nil
}

// testConfig is the part of the daemon's configuration this package reads.
type testConfig struct {
	People        []Person `yaml:"people"`
	TimeIntervals []struct {
		Name          string                      `yaml:"name"`
		TimeIntervals []timeinterval.TimeInterval `yaml:"time_intervals"`
	} `yaml:"time_intervals"`
	Oncall []List `yaml:"oncall"`
}

func compileYAML(src string) (map[string]*Schedule, []*Error) {
	var c testConfig
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	if err := dec.Decode(&c); err != nil {
		panic(err)
	}
	dir, errs := NewDirectory(c.People, normalize)
	intervals := map[string][]timeinterval.TimeInterval{}
	for _, ti := range c.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	list, _, more := Compile(c.Oncall, Options{Directory: dir, TimeIntervals: intervals})
	out := map[string]*Schedule{}
	for _, s := range list {
		out[s.Name] = s
	}
	return out, append(errs, more...)
}

func mustCompile(t testing.TB, src string) map[string]*Schedule {
	t.Helper()
	s, errs := compileYAML(src)
	for _, e := range errs {
		t.Errorf("%s: %v", e.Path, e)
	}
	if len(errs) > 0 {
		t.FailNow()
	}
	return s
}

const schedules = `
people:
  - {name: alice, number: "+27830000001"}
  - {name: bob, number: "+27830000002"}
  - {name: carol, number: "+27830000003"}
  - {name: dave, number: "+27830000004"}
  - {name: erin, number: "+27830000005"}
  - {name: frank, number: "+27830000006"}
time_intervals:
  - name: business-hours
    time_intervals:
      - weekdays: [monday:friday]
        times: [{start_time: "09:00", end_time: "17:00"}]
        location: Europe/Berlin
  - name: utc-night
    time_intervals:
      - times: [{start_time: "00:00", end_time: "06:00"}]
  - name: berlin-small-hours
    time_intervals:
      - times: [{start_time: "02:15", end_time: "02:45"}]
        location: Europe/Berlin
oncall:
  - name: weekly
    time_zone: Europe/Berlin
    rotation: {members: [alice, bob, carol], shift: 1w, start: "2026-01-05T09:00"}
  - name: twelve
    time_zone: Europe/Berlin
    rotation: {members: [alice, bob], shift: 12h, start: "2026-03-01T08:00"}
  - name: daily-ny
    time_zone: America/New_York
    rotation: {members: [alice, bob, carol], shift: 1d, start: "2026-03-01T02:30"}
  - name: daily-ny-early
    time_zone: America/New_York
    rotation: {members: [alice, bob], shift: 1d, start: "2026-10-01T01:30"}
  - name: hourly
    time_zone: Europe/Berlin
    rotation: {members: [alice, bob, carol], shift: 1h, start: "2026-03-29T00:00"}
  - name: half-hourly
    time_zone: Europe/Berlin
    rotation: {members: [alice, bob], shift: 30m, start: "2026-10-25T00:00"}
  - name: layered
    time_zone: Europe/Berlin
    rotation: {members: [alice, bob], shift: 1w, start: "2026-01-05T09:00"}
    layers:
      - time_intervals: [business-hours]
        members: [dave]
      - time_intervals: [utc-night]
        members: [erin, "+27830000009"]
  - name: holidays
    time_zone: Europe/Berlin
    rotation: {members: [alice, bob], shift: 1w, start: "2026-01-05T09:00"}
    layers:
      - time_intervals: [business-hours]
        members: [dave]
    overrides:
      - {members: [erin], start: "2026-12-24T00:00", end: "2026-12-27T00:00"}
      - {members: [frank], start: "2026-12-25T12:00", end: "2026-12-26T12:00"}
      - {members: [carol], start: "2026-12-20T00:00", end: "2026-12-28T00:00"}
  - name: fixed
    numbers: [alice, "+27830000009"]
  - name: solo
    rotation: {members: [alice], shift: 1d, start: "2026-01-01T00:00"}
  - name: small-hours
    time_zone: Europe/Berlin
    rotation: {members: [alice], shift: 1w, start: "2026-01-05T09:00"}
    layers:
      - time_intervals: [berlin-small-hours]
        members: [bob]
`

func names(ms []Member) string {
	var out []string
	for _, m := range ms {
		if m.Name != "" {
			out = append(out, m.Name)
		} else {
			out = append(out, m.Number)
		}
	}
	return strings.Join(out, ",")
}

// TestAt pins who is on call, why, until when and who follows, across
// both 2026 DST changes in Europe/Berlin and America/New_York, for shifts
// of 30m, 1h, 12h, 1d and 1w, layers and overlapping overrides.
func TestAt(t *testing.T) {
	t.Parallel()
	s := mustCompile(t, schedules)
	for _, tc := range []struct {
		list, at string
		who      string
		source   Source
		until    string // RFC 3339 in the list's zone; "" for none
		next     string
	}{
		// A weekly rotation: turn 0 from the start, in order.
		{"weekly", "2026-01-05T08:00:00Z", "alice", SourceRotation, "2026-01-12T09:00:00+01:00", "bob"},
		{"weekly", "2026-01-05T07:59:00Z", "carol", SourceRotation, "2026-01-05T09:00:00+01:00", "alice"},
		{"weekly", "2025-12-29T08:00:00Z", "carol", SourceRotation, "2026-01-05T09:00:00+01:00", "alice"},
		// The handoff after the spring change is at 09:00 local, 07:00Z.
		{"weekly", "2026-03-26T12:00:00Z", "carol", SourceRotation, "2026-03-30T09:00:00+02:00", "alice"},
		{"weekly", "2026-03-30T06:59:59Z", "carol", SourceRotation, "2026-03-30T09:00:00+02:00", "alice"},
		{"weekly", "2026-03-30T07:00:00Z", "alice", SourceRotation, "2026-04-06T09:00:00+02:00", "bob"},
		// And after the autumn change at 09:00 local again, 08:00Z: that
		// turn lasted a week and an hour.
		{"weekly", "2026-10-26T07:30:00Z", "carol", SourceRotation, "2026-10-26T09:00:00+01:00", "alice"},
		{"weekly", "2026-10-26T08:00:00Z", "alice", SourceRotation, "2026-11-02T09:00:00+01:00", "bob"},

		// 12h turns at 08:00 and 20:00 local; the night of the spring
		// change is 11 hours long, that of the autumn change 13.
		{"twelve", "2026-03-28T19:00:00Z", "bob", SourceRotation, "2026-03-29T08:00:00+02:00", "alice"},
		{"twelve", "2026-03-29T06:00:00Z", "alice", SourceRotation, "2026-03-29T20:00:00+02:00", "bob"},
		{"twelve", "2026-10-24T19:00:00Z", "bob", SourceRotation, "2026-10-25T08:00:00+01:00", "alice"},
		{"twelve", "2026-10-25T06:59:00Z", "bob", SourceRotation, "2026-10-25T08:00:00+01:00", "alice"},

		// Daily at 02:30 New York time: on 2026-03-08 02:30 does not
		// exist, so that handoff is at 03:00 EDT, the first valid instant
		// after it.
		{"daily-ny", "2026-03-08T06:59:00Z", "alice", SourceRotation, "2026-03-08T03:00:00-04:00", "bob"},
		{"daily-ny", "2026-03-08T07:00:00Z", "bob", SourceRotation, "2026-03-09T02:30:00-04:00", "carol"},
		// Daily at 01:30: on 2026-11-01 01:30 happens twice; the handoff is
		// at the first, 05:30Z, and the turn lasts 25 hours.
		{"daily-ny-early", "2026-11-01T05:29:00Z", "alice", SourceRotation, "2026-11-01T01:30:00-04:00", "bob"},
		{"daily-ny-early", "2026-11-01T05:30:00Z", "bob", SourceRotation, "2026-11-02T01:30:00-05:00", "alice"},
		{"daily-ny-early", "2026-11-01T06:45:00Z", "bob", SourceRotation, "2026-11-02T01:30:00-05:00", "alice"},

		// Hourly from midnight Berlin on the spring change: 00:00 alice,
		// 01:00 bob, 02:00 does not exist (carol's turn falls into the
		// gap and lasts nothing), 03:00 alice.
		{"hourly", "2026-03-29T00:30:00Z", "bob", SourceRotation, "2026-03-29T03:00:00+02:00", "alice"},
		{"hourly", "2026-03-29T01:00:00Z", "alice", SourceRotation, "2026-03-29T04:00:00+02:00", "bob"},
		// Half-hourly on the autumn change: 02:00 CEST bob, 02:30 CEST
		// alice, then the repeated hour belongs to alice until 03:00 CET.
		{"half-hourly", "2026-10-25T00:10:00Z", "alice", SourceRotation, "2026-10-25T02:30:00+02:00", "bob"},
		{"half-hourly", "2026-10-25T00:40:00Z", "bob", SourceRotation, "2026-10-25T03:00:00+01:00", "alice"},
		{"half-hourly", "2026-10-25T01:40:00Z", "bob", SourceRotation, "2026-10-25T03:00:00+01:00", "alice"},

		// Layers: business hours in Berlin put dave on call; the UTC night
		// puts erin and a bare number on; the rotation otherwise.
		{"layered", "2026-03-25T08:00:00Z", "dave", SourceLayer, "2026-03-25T17:00:00+01:00", "bob"},
		{"layered", "2026-03-25T16:00:00Z", "bob", SourceRotation, "2026-03-26T01:00:00+01:00", "erin,+27830000009"},
		{"layered", "2026-03-26T03:00:00Z", "erin,+27830000009", SourceLayer, "2026-03-26T07:00:00+01:00", "bob"},
		// After the change the UTC night ends at 08:00 local, and business
		// hours begin at 07:00Z; the rotation hands over at 09:00 local
		// too, unseen behind the layer.
		{"layered", "2026-03-30T05:30:00Z", "erin,+27830000009", SourceLayer, "2026-03-30T08:00:00+02:00", "bob"},
		{"layered", "2026-03-30T06:59:00Z", "bob", SourceRotation, "2026-03-30T09:00:00+02:00", "dave"},
		{"layered", "2026-03-30T15:00:00Z", "alice", SourceRotation, "2026-03-31T02:00:00+02:00", "erin,+27830000009"},
		// Friday evening: the rotation until the UTC night.
		{"layered", "2026-03-27T17:00:00Z", "bob", SourceRotation, "2026-03-28T01:00:00+01:00", "erin,+27830000009"},

		// Overlapping overrides: the one that started last wins.
		{"holidays", "2026-12-21T10:00:00Z", "carol", SourceOverride, "2026-12-24T00:00:00+01:00", "erin"},
		{"holidays", "2026-12-25T10:00:00Z", "erin", SourceOverride, "2026-12-25T12:00:00+01:00", "frank"},
		{"holidays", "2026-12-25T11:00:00Z", "frank", SourceOverride, "2026-12-26T12:00:00+01:00", "erin"},
		{"holidays", "2026-12-26T12:00:00Z", "erin", SourceOverride, "2026-12-27T00:00:00+01:00", "carol"},
		{"holidays", "2026-12-27T10:00:00Z", "carol", SourceOverride, "2026-12-28T00:00:00+01:00", "alice"},
		// No override: business hours, then the rotation.
		{"holidays", "2026-12-28T10:00:00Z", "dave", SourceLayer, "2026-12-28T17:00:00+01:00", "bob"},

		// The fixed form never changes.
		{"fixed", "2026-06-01T00:00:00Z", "alice,+27830000009", SourceFixed, "", ""},
		// One member, nothing else: no handoff, whatever the shift.
		{"solo", "2026-06-01T00:00:00Z", "alice", SourceRotation, "", ""},
		// A layer on the wall clock's 02:15 to 02:45: on the spring change
		// those minutes do not exist; on the autumn change they happen
		// twice, so bob is on call twice that night.
		{"small-hours", "2026-03-28T23:00:00Z", "alice", SourceRotation, "2026-03-30T02:15:00+02:00", "bob"},
		{"small-hours", "2026-10-25T00:20:00Z", "bob", SourceLayer, "2026-10-25T02:45:00+02:00", "alice"},
		{"small-hours", "2026-10-25T00:50:00Z", "alice", SourceRotation, "2026-10-25T02:15:00+01:00", "bob"},
		{"small-hours", "2026-10-25T01:20:00Z", "bob", SourceLayer, "2026-10-25T02:45:00+01:00", "alice"},
	} {
		t.Run(tc.list+" "+tc.at, func(t *testing.T) {
			t.Parallel()
			sc := s[tc.list]
			oc := sc.At(utc(tc.at), nil)
			if got := names(oc.Members); got != tc.who || oc.Source != tc.source {
				t.Errorf("on call %s (%s), want %s (%s)", got, oc.Source, tc.who, tc.source)
			}
			until := ""
			if !oc.Until.IsZero() {
				until = oc.Until.In(sc.Location).Format(time.RFC3339)
			}
			if until != tc.until || names(oc.Next.Members) != tc.next {
				t.Errorf("until %q then %s, want %q then %s", until, names(oc.Next.Members), tc.until, tc.next)
			}
		})
	}
}

// TestRuntimeOverrides: run-time overrides rank with the configuration's
// by start; on a tie the one added last wins.
func TestRuntimeOverrides(t *testing.T) {
	t.Parallel()
	s := mustCompile(t, schedules)["holidays"]
	bob := Member{Name: "bob", Number: "+27830000002"}
	dave := Member{Name: "dave", Number: "+27830000004"}
	rt := []Override{
		{ID: 7, Members: []Member{bob}, Start: utc("2026-12-24T23:00:00Z"), End: utc("2026-12-25T06:00:00Z")},
		{ID: 8, Members: []Member{dave}, Start: utc("2026-12-24T23:00:00Z"), End: utc("2026-12-25T01:00:00Z")},
	}
	for _, tc := range []struct {
		at, who string
		id      int64
	}{
		{"2026-12-24T22:00:00Z", "erin", 0},
		{"2026-12-24T23:30:00Z", "dave", 8},
		{"2026-12-25T02:00:00Z", "bob", 7},
		{"2026-12-25T06:00:00Z", "erin", 0},
	} {
		st := s.Who(utc(tc.at), rt)
		if names(st.Members) != tc.who || st.Source != SourceOverride || st.Override.ID != tc.id {
			t.Errorf("at %s: %s (%s, override %d), want %s (override %d)", tc.at, names(st.Members), st.Source, st.Override.ID, tc.who, tc.id)
		}
	}
	// An override without members (its people were removed) is ignored.
	st := s.Who(utc("2026-12-24T23:30:00Z"), []Override{{ID: 9, Start: utc("2026-12-24T23:00:00Z"), End: utc("2026-12-25T00:00:00Z")}})
	if names(st.Members) != "erin" {
		t.Errorf("empty override: %s", names(st.Members))
	}
}

// TestBoundariesComplete checks the engine against brute force: minute by
// minute over both DST days in two zones, Who changes only at instants
// boundaries lists, so "until" cannot miss a handoff.
func TestBoundariesComplete(t *testing.T) {
	t.Parallel()
	s := mustCompile(t, schedules)
	for _, list := range []string{"layered", "twelve", "hourly", "half-hourly", "daily-ny", "daily-ny-early", "small-hours", "holidays"} {
		for _, day := range []string{"2026-03-07T12:00:00Z", "2026-03-28T12:00:00Z", "2026-10-24T12:00:00Z", "2026-10-31T12:00:00Z", "2026-12-24T12:00:00Z"} {
			from := utc(day)
			to := from.Add(48 * time.Hour)
			listed := map[int64]bool{}
			for _, b := range s[list].boundaries(from, to, nil) {
				if !b.After(from) || b.After(to) {
					t.Errorf("%s: boundary %s outside (%s, %s]", list, b, from, to)
				}
				listed[b.Unix()] = true
			}
			prev := s[list].Who(from, nil)
			for m := from.Add(time.Minute); !m.After(to); m = m.Add(time.Minute) {
				cur := s[list].Who(m, nil)
				// A new turn of the same person needs no boundary.
				changed := !sameMembers(cur.Members, prev.Members) || cur.Source != prev.Source || cur.Layer != prev.Layer
				if changed && !listed[m.Unix()] {
					t.Errorf("%s: who changes at %s (%s -> %s) but no boundary is listed", list, m.Format(time.RFC3339), names(prev.Members), names(cur.Members))
				}
				prev = cur
			}
		}
	}
}

// TestHandoffs lists the changes in a window, each once, with who joins.
func TestHandoffs(t *testing.T) {
	t.Parallel()
	s := mustCompile(t, schedules)
	var got []string
	for _, h := range s["hourly"].Handoffs(utc("2026-03-28T23:30:00Z"), utc("2026-03-29T02:00:00Z"), nil) {
		got = append(got, fmt.Sprintf("%s %s->%s +%s", h.At.UTC().Format(time.RFC3339), names(h.From.Members), names(h.To.Members), names(h.Joining())))
	}
	// 00:00 local is alice's, 01:00 bob's; carol's 02:00 does not exist
	// and lasts nothing; 03:00 is alice's.
	want := []string{
		"2026-03-29T00:00:00Z alice->bob +bob",
		"2026-03-29T01:00:00Z bob->alice +alice",
		"2026-03-29T02:00:00Z alice->bob +bob",
	}
	if !slices.Equal(got, want) {
		t.Errorf("handoffs\n got %q\nwant %q", got, want)
	}
	// A layer of two replacing a layer of one: only the newcomers join.
	got = nil
	for _, h := range s["layered"].Handoffs(utc("2026-03-25T23:00:00Z"), utc("2026-03-26T09:00:00Z"), nil) {
		got = append(got, fmt.Sprintf("%s +%s", h.At.UTC().Format(time.RFC3339), names(h.Joining())))
	}
	want = []string{"2026-03-26T00:00:00Z +erin,+27830000009", "2026-03-26T06:00:00Z +bob", "2026-03-26T08:00:00Z +dave"}
	if !slices.Equal(got, want) {
		t.Errorf("layer handoffs\n got %q\nwant %q", got, want)
	}
}

func TestOnCallUntil(t *testing.T) {
	t.Parallel()
	s := mustCompile(t, schedules)
	erin := Member{Name: "erin", Number: "+27830000005"}
	// erin is on from the 24th, interrupted by frank on the 25th.
	if got := s["holidays"].OnCallUntil(erin, utc("2026-12-24T00:00:00Z"), nil); !got.Equal(utc("2026-12-25T11:00:00Z")) {
		t.Errorf("erin until %s", got)
	}
	alice := Member{Name: "alice", Number: "+27830000001"}
	if got := s["solo"].OnCallUntil(alice, utc("2026-12-24T00:00:00Z"), nil); !got.IsZero() {
		t.Errorf("solo alice until %s, want never", got)
	}
}

// TestCompileErrors maps each mistake to its message and path.
func TestCompileErrors(t *testing.T) {
	t.Parallel()
	head := "people: [{name: alice, number: \"+27830000001\"}]\ntime_intervals: [{name: bh, time_intervals: [{weekdays: [monday]}]}]\noncall:\n"
	for _, tc := range []struct {
		name, list string
		want       []string // path: message
	}{
		{"unknown person", `[{name: p, rotation: {members: [alise], shift: 1w, start: "2026-01-05T09:00"}}]`,
			[]string{`oncall[0].rotation.members[0]: oncall list "p": rotation: unknown person "alise"; people are alice`}},
		{"bad number", `[{name: p, numbers: ["0800 CALL ME"]}]`,
			[]string{`oncall[0].numbers[0]: oncall list "p": bad number "0800 CALL ME": not an e.164 number`}},
		{"empty number", `[{name: p, numbers: [" "]}]`, []string{`oncall[0].numbers[0]: oncall list "p": empty number`}},
		{"both forms", `[{name: p, numbers: [alice], rotation: {members: [alice], shift: 1w, start: "2026-01-05T09:00"}}]`,
			[]string{`oncall[0].rotation: oncall list "p": set numbers (everyone on call at all times) or rotation (one at a time), not both`}},
		{"bad zone", `[{name: p, time_zone: Europe/Berln, numbers: [alice]}]`,
			[]string{`oncall[0].time_zone: oncall list "p": time_zone "Europe/Berln" is not an IANA time zone such as Europe/Berlin or America/New_York`}},
		{"local zone", `[{name: p, time_zone: Local, numbers: [alice]}]`,
			[]string{`oncall[0].time_zone: oncall list "p": time_zone "Local" depends on the machine; name an IANA zone such as Europe/Berlin`}},
		{"shift", `[{name: p, rotation: {members: [alice], shift: 1x, start: "2026-01-05T09:00"}}]`,
			[]string{`oncall[0].rotation.shift: oncall list "p": rotation.shift "1x" is not a duration such as 12h, 1d or 1w`}},
		{"short shift", `[{name: p, rotation: {members: [alice], shift: 30s, start: "2026-01-05T09:00"}}]`,
			[]string{`oncall[0].rotation.shift: oncall list "p": rotation.shift "30s" must be at least 1m`}},
		{"no shift, no start, no members", `[{name: p, rotation: {}}]`, []string{
			`oncall[0].rotation.members: oncall list "p": the rotation has no members`,
			`oncall[0].rotation.shift: oncall list "p": rotation.shift is missing: write how long each turn lasts, such as 12h, 1d or 1w`,
			`oncall[0].rotation.start: oncall list "p": rotation.start is missing: the local time of one handoff, such as 2026-01-05T09:00`,
		}},
		{"start with offset", `[{name: p, rotation: {members: [alice], shift: 1d, start: "2026-01-05T09:00+01:00"}}]`,
			[]string{`oncall[0].rotation.start: oncall list "p": rotation.start "2026-01-05T09:00+01:00" has a UTC offset or zone; write the local time alone, such as 2026-01-05T09:00`}},
		{"layer", `[{name: p, rotation: {members: [alice], shift: 1d, start: "2026-01-05"}, layers: [{time_intervals: [nope]}, {members: [alice]}]}]`, []string{
			`oncall[0].layers[0].time_intervals[0]: oncall list "p": unknown time interval "nope"`,
			`oncall[0].layers[0].members: oncall list "p": the layer has no members`,
			`oncall[0].layers[1].time_intervals: oncall list "p": the layer names no time_intervals`,
		}},
		{"override", `[{name: p, numbers: [alice], overrides: [{members: [alice], start: "2026-12-27", end: "2026-12-24"}, {start: soon, end: "2026-12-24"}]}]`, []string{
			`oncall[0].overrides[0].end: oncall list "p": override end 2026-12-24 is not after its start 2026-12-27`,
			`oncall[0].overrides[1].members: oncall list "p": the override has no members`,
			`oncall[0].overrides[1].start: oncall list "p": override start "soon" is neither a local time (2026-12-24T09:00) nor a time with an offset (2026-12-24T09:00+01:00)`,
		}},
		{"layers without a base", `[{name: p, layers: [{time_intervals: [bh], members: [alice]}]}]`,
			[]string{`oncall[0]: oncall list "p": layers and overrides need a rotation (or numbers) for the times none of them applies`}},
		{"names", `[{numbers: [alice]}, {name: q, numbers: [alice]}, {name: q}]`,
			[]string{`oncall[0].name: oncall[0]: empty name`, `oncall[2].name: duplicate oncall list name "q"`}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, errs := compileYAML(head + "  " + strings.ReplaceAll(tc.list, "\n", "\n  ") + "\n")
			var got []string
			for _, e := range errs {
				got = append(got, e.Path+": "+e.Error())
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("errors\n got %q\nwant %q", got, tc.want)
			}
		})
	}
}

func TestDirectory(t *testing.T) {
	t.Parallel()
	_, errs := NewDirectory([]Person{
		{Name: "alice", Number: "+27830000001"},
		{Name: "alice", Number: "+27830000002"},
		{Name: "+27830000003", Number: "+27830000003"},
		{Name: "bob", Number: "+27 83 000 0001"},
		{Name: "carol"},
		{Name: "dave", Number: "nope"},
		{Number: "+27830000004"},
	}, normalize)
	var got []string
	for _, e := range errs {
		got = append(got, e.Path+": "+e.Error())
	}
	want := []string{
		`people[1].name: person "alice" is listed twice`,
		`people[2].name: person "+27830000003": a name must not start with '+', '(' or a digit, which mark a phone number`,
		`people[3].number: person "bob" has the same number as "alice"; one number, one name`,
		`people[4].number: person "carol": no number`,
		`people[5].number: person "dave": bad number "nope": not an e.164 number`,
		`people[6].name: people[6]: empty name`,
	}
	if !slices.Equal(got, want) {
		t.Errorf("errors\n got %q\nwant %q", got, want)
	}
	d, _ := NewDirectory([]Person{{Name: "alice", Number: "+27830000001"}}, normalize)
	for _, tc := range []struct{ ref, want string }{
		{"alice", "alice (+27830000001)"},
		{" alice ", "alice (+27830000001)"},
		{"+27 83 000 0001", "alice (+27830000001)"}, // a person's number names them
		{"+27830000002", "+27830000002"},
	} {
		m, err := d.Lookup(tc.ref)
		if err != nil || m.Format(func(s string) string { return s }) != tc.want {
			t.Errorf("Lookup(%q) = %+v, %v; want %s", tc.ref, m, err, tc.want)
		}
	}
}
