package config

import (
	"errors"
	"testing"
	"time"
)

func TestNoiseConfig(t *testing.T) {
	t.Parallel()
	base := "route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"
	f, err := Load([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Config
	if time.Duration(c.Dedup.Window) != DefaultDedupWindow || len(c.Throttle.PerNumber) != 0 || c.Budget.DailySegments != 0 || c.Budget.TimeZone != "UTC" {
		t.Errorf("defaults: dedup %v throttle %v budget %+v", c.Dedup, c.Throttle, c.Budget)
	}
	f, err = Load([]byte(`dedup: {window: 2m}
throttle:
  per_number: [{count: 5, per: 15m}, {count: 11, per: 1h}]
budget: {daily_segments: 500, time_zone: Europe/Berlin, critical: ['severity="critical"']}
route: {receiver: a}
receivers: [{name: a, numbers: ['+27830000001'], throttle: false}]
`))
	if err != nil {
		t.Fatal(err)
	}
	c = f.Config
	if time.Duration(c.Dedup.Window) != 2*time.Minute || len(c.Throttle.PerNumber) != 2 || c.Throttle.PerNumber[1] != (Bucket{11, Duration(time.Hour)}) {
		t.Errorf("values: %+v %+v", c.Dedup, c.Throttle)
	}
	if loc, err := c.Budget.Location(); err != nil || loc.String() != "Europe/Berlin" || c.Budget.DailySegments != 500 || len(c.Budget.Critical) != 1 {
		t.Errorf("budget %+v %v", c.Budget, err)
	}
	if th := c.Receivers[0].Throttle; th == nil || *th {
		t.Errorf("receiver throttle %v", th)
	}

	for _, tc := range []struct{ name, yaml, want string }{
		{"window too short", "dedup:\n  window: 500ms\n", "line 2: dedup.window 500ms must be at least 1s"},
		{"window too long", "dedup: {window: 2d}\n", "line 1: dedup.window 2d must be at most 1d"},
		{"bucket count", "throttle:\n  per_number:\n    - {count: 0, per: 1m}\n", "line 3: throttle.per_number[0].count 0 must be between 1 and 1000"},
		{"bucket without per", "throttle:\n  per_number:\n    - count: 5\n", "line 3: throttle.per_number[0]: per is missing; write how long the window is, such as per: 15m"},
		{"bucket per too long", "throttle:\n  per_number:\n    - {count: 5, per: 2d}\n", "line 3: throttle.per_number[0].per 2d must be at most 1d"},
		{"same window twice", "throttle:\n  per_number:\n    - {count: 5, per: 15m}\n    - {count: 6, per: 15m}\n",
			"line 4: throttle.per_number[1]: per 15m is the window of throttle.per_number[0] too; give each window once"},
		{"negative budget", "budget:\n  daily_segments: -5\n", "line 2: budget.daily_segments -5 must not be negative (0 turns the budget off)"},
		{"unknown zone", "budget:\n  daily_segments: 5\n  time_zone: Mars/Olympus\n",
			`line 3: budget.time_zone "Mars/Olympus" is not a known time zone; write an IANA name such as Europe/Berlin or UTC`},
		{"unknown key", "throttle:\n  per_numbr: []\n", `line 2: unknown key "per_numbr" here (check its spelling and its indentation)`},
		{"receiver throttle not a bool", "route: {receiver: b}\nreceivers:\n  - {name: b, numbers: ['+27830000001'], throttle: maybe}\n",
			`line 3: wrong kind of value: a string "maybe" where true or false is expected`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			y := tc.yaml
			if tc.name != "receiver throttle not a bool" {
				y += base
			}
			_, err := Load([]byte(y))
			var ce *Error
			if err == nil || err.Error() != tc.want || !errors.As(err, &ce) {
				t.Fatalf("error =\n %v\nwant\n %s", err, tc.want)
			}
		})
	}
}
