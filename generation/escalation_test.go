package generation

import (
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/config"
)

const escalationBase = `
sms: {api_key: k}
people:
  - {name: alice, number: "+27830000001"}
  - {name: bob, number: "+27830000002"}
route: {receiver: db}
receivers:
  - name: db
    numbers: [alice]
    escalate: [{after: 10m, receiver: db2}]
  - name: db2
    oncall: [secondary]
    throttle: false
    max_segments: 1
oncall:
  - name: secondary
    rotation: {members: [alice, bob], shift: 1d, start: "2026-03-01T00:00"}
`

// TestEscalationConfig: a step's receiver is found with whoever is on
// call at the step's time; alertmanager_api is what checks the group;
// escalate lists nothing but a resolution can stop are warned about.
func TestEscalationConfig(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name    string
		extra   string
		checker bool
		warning string
	}{
		{"alone", "", false, `receiver "db": escalate without replies.enabled or alertmanager_api: only a resolution stops its steps`},
		{"with alertmanager_api", "alertmanager_api: {urls: [http://am:9093]}\n", true, `receiver "db": escalate without replies.enabled: nobody can stop its steps by replying ACK`},
		{"with replies and alertmanager_api", "alertmanager_api: {urls: [http://am:9093]}\nreplies: {enabled: true}\n", true, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			// A dry run: replies need no callback token there.
			f, err := config.Load([]byte(escalationBase + tc.extra))
			if err != nil {
				t.Fatal(err)
			}
			g, err := Build(f, Options{DryRun: true})
			if err != nil {
				t.Fatal(err)
			}
			cfg := g.Escalation
			if (cfg.Alertmanager != nil) != tc.checker {
				t.Errorf("checker %v, want %t", cfg.Alertmanager, tc.checker)
			}
			day1 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
			for _, c := range []struct {
				at   time.Time
				want string
			}{{day1, "+27830000001"}, {day1.Add(24 * time.Hour), "+27830000002"}} {
				tg, ok := cfg.Target("db2", c.at)
				if !ok || len(tg.Members) != 1 || tg.Members[0].Number != c.want || !tg.Unthrottled || tg.MaxSegments != 1 {
					t.Errorf("db2 at %v: %+v %t, want %s on call, unthrottled, 1 segment", c.at, tg, ok, c.want)
				}
			}
			if sum := g.Summary(); !strings.Contains(sum, "  db: 1 number, send_resolved=true, escalates to db2 after 10m\n") {
				t.Errorf("summary:\n%s", sum)
			}
			if _, ok := cfg.Target("gone", day1); ok {
				t.Error("an unknown receiver was found")
			}
			var warns []string
			for _, w := range g.Warnings {
				if strings.Contains(w.Error(), "escalate") {
					warns = append(warns, w.Error())
				}
			}
			switch {
			case tc.warning == "" && len(warns) != 0:
				t.Errorf("warnings %q, want none", warns)
			case tc.warning != "" && (len(warns) != 1 || !strings.Contains(warns[0], tc.warning) || !strings.HasPrefix(warns[0], "line 10: warning: ")):
				t.Errorf("warnings %q, want one at line 10 saying %q", warns, tc.warning)
			}
		})
	}
}
