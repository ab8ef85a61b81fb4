package config

import (
	"testing"
	"time"
)

func TestTimeIntervals(t *testing.T) {
	t.Parallel()
	f, err := Load([]byte(`route: {receiver: a}
receivers: [{name: a, numbers: ['+27830000001']}]
time_intervals:
  - name: business-hours
    time_intervals:
      - weekdays: [monday:friday]
        times: [{start_time: "09:00", end_time: "17:00"}]
        location: Europe/Berlin
  - name: christmas
    time_intervals: [{months: [december], days_of_month: ["24:26"]}]
`))
	if err != nil {
		t.Fatal(err)
	}
	iv := f.Config.Intervals()
	bh := iv["business-hours"]
	if len(bh) != 1 || bh[0].Location == nil || bh[0].Location.String() != "Europe/Berlin" || bh[0].Times[0].StartMinute != 540 {
		t.Fatalf("business-hours %+v", bh)
	}
	// Monday 2026-03-30 08:30 UTC is 10:30 in Berlin.
	if !bh[0].ContainsTime(time.Date(2026, 3, 30, 8, 30, 0, 0, time.UTC)) {
		t.Error("business-hours does not contain Monday 10:30 Berlin")
	}
	if len(iv["christmas"]) != 1 {
		t.Errorf("christmas %+v", iv["christmas"])
	}
}

func TestBadTimeIntervals(t *testing.T) {
	t.Parallel()
	base := "route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"
	for _, tc := range []struct{ name, yaml, want string }{
		{"unknown key", "time_intervals:\n  - name: x\n    time_intervals:\n      - weekday: [monday]\n",
			"line 4: field weekday not found in a time interval (it has times, weekdays, days_of_month, months, years, location)"},
		{"unknown time key", "time_intervals:\n  - name: x\n    time_intervals:\n      - times:\n          - {start: '09:00', end_time: '17:00'}\n",
			"line 5: field start not found in a time range (it has start_time, end_time)"},
		{"bad time", "time_intervals:\n  - name: x\n    time_intervals:\n      - times: [{start_time: '25:00', end_time: '26:00'}]\n",
			"line 4: time interval: couldn't parse timestamp 25:00, invalid format"},
		{"bad weekday", "time_intervals:\n  - name: x\n    time_intervals:\n      - weekdays: [moonday]\n",
			"line 4: time interval: moonday is not a valid weekday"},
		{"bad location", "time_intervals:\n  - name: x\n    time_intervals:\n      - location: Mars/Olympus\n",
			"line 4: time interval: unknown time zone Mars/Olympus"},
		{"not a mapping", "time_intervals:\n  - name: x\n    time_intervals: [monday]\n",
			"line 3: a time interval is a mapping of times, weekdays, days_of_month, months, years, location"},
		{"no name", "time_intervals:\n  - time_intervals: []\n", "line 2: time_intervals[0]: name is empty"},
		{"twice", "time_intervals:\n  - name: x\n  - name: x\n", `line 3: time_intervals: name "x" is used twice`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load([]byte(tc.yaml + base))
			if err == nil || err.Error() != tc.want {
				t.Errorf("error\n %v\nwant\n %s", err, tc.want)
			}
		})
	}
}
