package generation

import (
	"errors"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/outbox"
)

const noiseBase = `
sms: {api_key: k, max_segments: 3}
route: {receiver: ops}
receivers:
  - {name: ops, numbers: ['+27830000001'], max_segments: 1}
  - {name: pager, numbers: ['+27830000002'], throttle: false}
`

func TestNoiseControls(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		yaml     string
		stages   []string
		throttle []outbox.Bucket
		daily    int
		zone     string
	}{
		{"defaults: dedup and the time intervals only", noiseBase, []string{"resolved_rule", "dedup", "mute", "escalation"}, nil, 0, ""},
		{"everything", noiseBase + `
dedup: {window: 2m}
throttle: {per_number: [{count: 5, per: 15m}, {count: 11, per: 1h}]}
budget: {daily_segments: 500, time_zone: Europe/Berlin, critical: ['severity="critical"', 'team=~"db|web"']}
`, []string{"resolved_rule", "dedup", "mute", "throttle", "budget", "escalation"},
			[]outbox.Bucket{{Count: 5, Per: 15 * time.Minute}, {Count: 11, Per: time.Hour}}, 500, "Europe/Berlin"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := config.Load([]byte(tc.yaml))
			if err != nil {
				t.Fatal(err)
			}
			g, err := Build(f, Options{})
			if err != nil {
				t.Fatal(err)
			}
			if got := g.Pipeline.StageNames(); !slices.Equal(got, tc.stages) {
				t.Errorf("stages %v, want %v", got, tc.stages)
			}
			l := g.Dispatch.Limits
			if !slices.Equal(l.Throttle, tc.throttle) || l.DailySegments != tc.daily {
				t.Errorf("limits %+v", l)
			}
			if tc.zone != "" && (l.Location == nil || l.Location.String() != tc.zone) {
				t.Errorf("location %v, want %s", l.Location, tc.zone)
			}
			// The digest renderer is there even without a throttle: held
			// deliveries outlive a configuration that drops it.
			if l.Digest == nil {
				t.Fatal("no digest renderer")
			}
			var held []outbox.Record
			for _, s := range []string{"FIRING DiskFull db1", "RESOLVED NodeDown n3", "FIRING HighLatency api", "FIRING DiskFull db2",
				"FIRING DiskFull db3", "FIRING DiskFull db4", "FIRING DiskFull db5", "FIRING DiskFull db6"} {
				held = append(held, outbox.Record{Receiver: "ops", Summary: s, Status: "firing"})
			}
			m, err := l.Digest(held)
			if err != nil || m.Receiver != "ops" || m.Segments != 1 || !strings.HasPrefix(m.Text, "8 held: FIRING DiskFull db1; RESOLVED NodeDown n3;") ||
				!strings.Contains(m.Text, "more") {
				t.Errorf("digest %+v %v, want 8 items fitted to ops' one segment with +N more", m, err)
			}
		})
	}
}

func TestNoiseConfigErrors(t *testing.T) {
	t.Parallel()
	f, err := config.Load([]byte(noiseBase + "budget:\n  daily_segments: 5\n  critical:\n    - 'severity=\"critical\"'\n    - 'severity=~\"(\"'\n    - '{}'\n"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Build(f, Options{})
	var ce *config.Error
	if err == nil || !errors.As(err, &ce) {
		t.Fatalf("err = %v, want config errors", err)
	}
	for _, want := range []string{`line 11: budget.critical[1]: bad matcher "severity=~\"(\""`, `line 12: budget.critical[2]: bad matcher "{}": no label matcher in it`} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not contain %q", err, want)
		}
	}
}
