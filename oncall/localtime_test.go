package oncall

import (
	"testing"
	"time"
)

func mustLoc(t testing.TB, name string) *time.Location {
	t.Helper()
	loc, err := time.LoadLocation(name)
	if err != nil {
		t.Fatal(err)
	}
	return loc
}

func wall(s string) time.Time {
	w, err := ParseWall(s)
	if err != nil {
		panic(err)
	}
	return w
}

func utc(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

// TestResolve pins the handoff rules on the 2026 DST changes: a time the
// clocks skip moves to the jump, a time they repeat is its first
// occurrence.
func TestResolve(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		zone, wall string
		want       string // UTC
		count      int    // instants showing the wall time
	}{
		// Europe/Berlin: 2026-03-29 02:00 CET -> 03:00 CEST.
		{"Europe/Berlin", "2026-03-29T01:59", "2026-03-29T00:59:00Z", 1},
		{"Europe/Berlin", "2026-03-29T02:00", "2026-03-29T01:00:00Z", 0},
		{"Europe/Berlin", "2026-03-29T02:30", "2026-03-29T01:00:00Z", 0},
		{"Europe/Berlin", "2026-03-29T02:59:59", "2026-03-29T01:00:00Z", 0},
		{"Europe/Berlin", "2026-03-29T03:00", "2026-03-29T01:00:00Z", 1},
		{"Europe/Berlin", "2026-03-29T09:00", "2026-03-29T07:00:00Z", 1},
		// Europe/Berlin: 2026-10-25 03:00 CEST -> 02:00 CET.
		{"Europe/Berlin", "2026-10-25T01:59", "2026-10-24T23:59:00Z", 1},
		{"Europe/Berlin", "2026-10-25T02:00", "2026-10-25T00:00:00Z", 2},
		{"Europe/Berlin", "2026-10-25T02:30", "2026-10-25T00:30:00Z", 2},
		{"Europe/Berlin", "2026-10-25T02:59", "2026-10-25T00:59:00Z", 2},
		{"Europe/Berlin", "2026-10-25T03:00", "2026-10-25T02:00:00Z", 1},
		// America/New_York: 2026-03-08 02:00 EST -> 03:00 EDT.
		{"America/New_York", "2026-03-08T01:59", "2026-03-08T06:59:00Z", 1},
		{"America/New_York", "2026-03-08T02:00", "2026-03-08T07:00:00Z", 0},
		{"America/New_York", "2026-03-08T02:30", "2026-03-08T07:00:00Z", 0},
		{"America/New_York", "2026-03-08T03:00", "2026-03-08T07:00:00Z", 1},
		// America/New_York: 2026-11-01 02:00 EDT -> 01:00 EST.
		{"America/New_York", "2026-11-01T00:59", "2026-11-01T04:59:00Z", 1},
		{"America/New_York", "2026-11-01T01:00", "2026-11-01T05:00:00Z", 2},
		{"America/New_York", "2026-11-01T01:30", "2026-11-01T05:30:00Z", 2},
		{"America/New_York", "2026-11-01T02:00", "2026-11-01T07:00:00Z", 1},
		// Australia/Lord_Howe moves by half an hour: 2026-10-04 02:00 -> 02:30.
		{"Australia/Lord_Howe", "2026-10-04T02:15", "2026-10-03T15:30:00Z", 0},
		{"Australia/Lord_Howe", "2026-10-04T02:30", "2026-10-03T15:30:00Z", 1},
		// America/Havana jumps at midnight: 2026-03-08 00:00 -> 01:00.
		{"America/Havana", "2026-03-08T00:00", "2026-03-08T05:00:00Z", 0},
		{"America/Havana", "2026-03-08T00:30", "2026-03-08T05:00:00Z", 0},
		{"America/Havana", "2026-03-08T01:00", "2026-03-08T05:00:00Z", 1},
		// No DST at all.
		{"UTC", "2026-03-29T02:30", "2026-03-29T02:30:00Z", 1},
		{"Africa/Johannesburg", "2026-03-29T02:30", "2026-03-29T00:30:00Z", 1},
	} {
		t.Run(tc.zone+" "+tc.wall, func(t *testing.T) {
			t.Parallel()
			loc := mustLoc(t, tc.zone)
			got := resolve(wall(tc.wall), loc)
			if !got.Equal(utc(tc.want)) {
				t.Errorf("resolve = %s (%s), want %s", got.UTC().Format(time.RFC3339), got.Format(time.RFC3339), tc.want)
			}
			if n := len(instants(wall(tc.wall), loc)); n != tc.count {
				t.Errorf("%d instants show %s, want %d", n, tc.wall, tc.count)
			}
			for _, in := range instants(wall(tc.wall), loc) {
				if !wallOf(in, loc).Equal(wall(tc.wall)) {
					t.Errorf("instant %s shows %s, not %s", in, wallOf(in, loc), tc.wall)
				}
			}
		})
	}
}

func TestParseTime(t *testing.T) {
	t.Parallel()
	berlin := mustLoc(t, "Europe/Berlin")
	for _, tc := range []struct {
		in, want, err string
	}{
		{in: "2026-12-24T00:00", want: "2026-12-23T23:00:00Z"},
		{in: "2026-12-24 00:00:30", want: "2026-12-23T23:00:30Z"},
		{in: "2026-12-24", want: "2026-12-23T23:00:00Z"},
		{in: "2026-12-24T00:00:00Z", want: "2026-12-24T00:00:00Z"},
		{in: "2026-12-24T00:00+05:00", want: "2026-12-23T19:00:00Z"},
		{in: "2026-03-29T02:30", want: "2026-03-29T01:00:00Z"},
		{in: "Christmas", err: `"Christmas" is neither a local time (2026-12-24T09:00) nor a time with an offset (2026-12-24T09:00+01:00)`},
		{in: "2026-13-01T00:00", err: `"2026-13-01T00:00" is neither a local time (2026-12-24T09:00) nor a time with an offset (2026-12-24T09:00+01:00)`},
	} {
		got, err := ParseTime(tc.in, berlin)
		switch {
		case tc.err != "":
			if err == nil || err.Error() != tc.err {
				t.Errorf("ParseTime(%q) error %v, want %q", tc.in, err, tc.err)
			}
		case err != nil:
			t.Errorf("ParseTime(%q): %v", tc.in, err)
		case !got.Equal(utc(tc.want)):
			t.Errorf("ParseTime(%q) = %s, want %s", tc.in, got.UTC().Format(time.RFC3339), tc.want)
		}
	}
	if _, err := ParseWall("2026-01-05T09:00+01:00"); err == nil || err.Error() != `"2026-01-05T09:00+01:00" has a UTC offset or zone; write the local time alone, such as 2026-01-05T09:00` {
		t.Errorf("ParseWall with an offset: %v", err)
	}
}

func TestZoneChanges(t *testing.T) {
	t.Parallel()
	got := zoneChanges(nil, mustLoc(t, "Europe/Berlin"), utc("2026-01-01T00:00:00Z"), utc("2027-01-01T00:00:00Z"))
	want := []time.Time{utc("2026-03-29T01:00:00Z"), utc("2026-10-25T01:00:00Z")}
	if len(got) != 2 || !got[0].Equal(want[0]) || !got[1].Equal(want[1]) {
		t.Errorf("changes %v, want %v", got, want)
	}
	if got := zoneChanges(nil, time.UTC, utc("2026-01-01T00:00:00Z"), utc("2027-01-01T00:00:00Z")); len(got) != 0 {
		t.Errorf("UTC changes %v", got)
	}
}
