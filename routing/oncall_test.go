package routing

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"

	"github.com/smsbridge/smsbridge/oncall"
)

var testIntervals = map[string][]timeinterval.TimeInterval{
	"business-hours": {{Weekdays: []timeinterval.WeekdayRange{{InclusiveRange: timeinterval.InclusiveRange{Begin: 1, End: 5}}}}},
	"nights":         {{Times: []timeinterval.TimeRange{{StartMinute: 22 * 60, EndMinute: 24 * 60}}}},
}

var testPeople = []oncall.Person{{Name: "alice", Number: "+27830000001"}, {Name: "bob", Number: "+27830000002"}}

// TestSchedulesInReceivers: receivers name people and on-call lists; who
// they page depends on the time.
func TestSchedulesInReceivers(t *testing.T) {
	t.Parallel()
	r, err := New(&Route{Receiver: "db"},
		[]Receiver{
			{Name: "db", Numbers: []string{"+27830000009"}, Oncall: []string{"primary"}},
			{Name: "all", Numbers: []string{"bob"}, Oncall: []string{"fixed", "primary"}},
		},
		[]Oncall{
			{Name: "primary", Rotation: &oncall.Rotation{Members: []string{"alice", "bob"}, Shift: "1d", Start: "2026-01-01T00:00"}},
			{Name: "fixed", Numbers: []string{"+27 83 000 0001"}},
		},
		Options{Normalize: normalize, MaxSegments: 1, People: testPeople, TimeIntervals: testIntervals})
	if err != nil {
		t.Fatal(err)
	}
	rr, _ := r.Receiver("db")
	all, _ := r.Receiver("all")
	who := func(rr *ResolvedReceiver, at time.Time) string {
		var out []string
		for _, m := range rr.Recipients(at, nil) {
			out = append(out, m.Format(func(s string) string { return s }))
		}
		return strings.Join(out, ", ")
	}
	// Jan 1 is alice's day on the rotation, Jan 2 bob's.
	jan1, jan2 := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC), time.Date(2026, 1, 2, 12, 0, 0, 0, time.UTC)
	if got := who(rr, jan1); got != "+27830000009, alice (+27830000001)" {
		t.Errorf("Jan 1: %s", got)
	}
	if got := who(rr, jan2); got != "+27830000009, bob (+27830000002)" {
		t.Errorf("Jan 2: %s", got)
	}
	// Own numbers first, then each list in order, none twice; the fixed
	// list names alice by her number.
	if got := who(all, jan2); got != "bob (+27830000002), alice (+27830000001)" {
		t.Errorf("all, Jan 2: %s", got)
	}
	if !slices.Equal(all.Numbers, []string{"+27830000002"}) || len(all.Oncall) != 2 {
		t.Errorf("own numbers %v, lists %d", all.Numbers, len(all.Oncall))
	}
	// A run-time override for bob on the rotation.
	bob := oncall.Member{Name: "bob", Number: "+27830000002"}
	ov := func(list string) []oncall.Override {
		if list != "primary" {
			return nil
		}
		return []oncall.Override{{ID: 1, Members: []oncall.Member{bob}, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), End: time.Date(2026, 1, 2, 0, 0, 0, 0, time.UTC)}}
	}
	if got := rr.Recipients(jan1, ov); len(got) != 2 || got[1] != bob {
		t.Errorf("with bob's override: %v", got)
	}
	if s, ok := r.List("primary"); !ok || s.Name != "primary" || len(r.Lists()) != 2 || r.Directory() == nil {
		t.Errorf("lists %v", r.Lists())
	}
}

// TestTimeIntervalErrors: routes name known intervals, never on the root.
func TestTimeIntervalErrors(t *testing.T) {
	t.Parallel()
	ok := []Receiver{{Name: "ops", Numbers: []string{"+27830000001"}}}
	_, err := New(&Route{Receiver: "ops", MuteTimeIntervals: []string{"nights"}, Routes: []*Route{
		{Matchers: []string{`a="1"`}, ActiveTimeIntervals: []string{"business-hours", "weekends"}},
		{Matchers: []string{`a="2"`}, MuteTimeIntervals: []string{"holidays"}},
	}}, ok, nil, Options{Normalize: normalize, MaxSegments: 1, TimeIntervals: testIntervals})
	var paths, lines []string
	for _, e := range err.(interface{ Unwrap() []error }).Unwrap() {
		var re *Error
		if errors.As(e, &re) {
			paths = append(paths, re.Path)
			lines = append(lines, re.Error())
		}
	}
	wantPaths := []string{"route.mute_time_intervals", "route.routes[0].active_time_intervals[1]", "route.routes[1].mute_time_intervals[0]"}
	wantLines := []string{
		"route: the root route must not have mute_time_intervals; put them on a child route",
		`route.routes[0]: unknown time interval "weekends"`,
		`route.routes[1]: unknown time interval "holidays"`,
	}
	if !slices.Equal(paths, wantPaths) || !slices.Equal(lines, wantLines) {
		t.Errorf("errors\n %q\n %q\nwant\n %q\n %q", paths, lines, wantPaths, wantLines)
	}
}

// TestAlertNodes: each alert of a target lists the routes that sent it
// there, and the tree shows the intervals.
func TestAlertNodes(t *testing.T) {
	t.Parallel()
	r, err := New(&Route{Receiver: "ops", Routes: []*Route{
		{Matchers: []string{`team="db"`}, Receiver: "db", Continue: true, MuteTimeIntervals: []string{"nights"}},
		{Matchers: []string{`severity="critical"`}, Receiver: "db", ActiveTimeIntervals: []string{"business-hours"}},
	}}, []Receiver{{Name: "ops", Numbers: []string{"+27830000001"}}, {Name: "db", Numbers: []string{"+27830000002"}}}, nil,
		Options{Normalize: normalize, MaxSegments: 1, TimeIntervals: testIntervals})
	if err != nil {
		t.Fatal(err)
	}
	targets := r.Route([]map[string]string{
		{"team": "db"},
		{"team": "db", "severity": "critical"},
		{"severity": "critical"},
	})
	if len(targets) != 1 || !slices.Equal(targets[0].Alerts, []int{0, 1, 2}) {
		t.Fatalf("targets %+v", targets)
	}
	var got []string
	for _, nodes := range targets[0].AlertNodes {
		var paths []string
		for _, n := range nodes {
			paths = append(paths, n.Path)
		}
		got = append(got, strings.Join(paths, "+"))
	}
	want := []string{"route.routes[0]", "route.routes[0]+route.routes[1]", "route.routes[1]"}
	if !slices.Equal(got, want) {
		t.Errorf("alert routes %q, want %q", got, want)
	}
	var buf bytes.Buffer
	if err := r.WriteTree(&buf); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `{team="db"}  continue: true  mute: nights  receiver: db`) ||
		!strings.Contains(buf.String(), `{severity="critical"}  active: business-hours  receiver: db`) {
		t.Errorf("tree:\n%s", buf.String())
	}
}
