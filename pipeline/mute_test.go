package pipeline

import (
	"bytes"
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/timeinterval"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"gopkg.in/yaml.v3"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/templates"
)

// timedConfig routes by team, with time intervals on the routes and an
// on-call rotation, in the configuration's own syntax.
const timedConfig = `
time_intervals:
  - name: business-hours
    time_intervals:
      - weekdays: [monday:friday]
        times: [{start_time: "09:00", end_time: "17:00"}]
        location: Europe/Berlin
  - name: nights
    time_intervals:
      - times: [{start_time: "22:00", end_time: "24:00"}, {start_time: "00:00", end_time: "06:00"}]
        location: Europe/Berlin
people:
  - {name: alice, number: "+27830000001"}
  - {name: bob, number: "+27830000002"}
route:
  receiver: ops
  routes:
    - matchers: ['team="db"']
      receiver: db
      active_time_intervals: [business-hours]
    - matchers: ['team="web"']
      receiver: web
      mute_time_intervals: [nights]
      continue: true
    - matchers: ['team=~"web|mixed"']
      receiver: web
    - matchers: ['team="both"']
      receiver: db
      active_time_intervals: [business-hours]
      continue: true
    - matchers: ['team="both"']
      receiver: web
      mute_time_intervals: [nights]
receivers:
  - name: ops
    numbers: ["+27830000009"]
  - name: db
    oncall: [db-primary]
  - name: web
    numbers: [bob]
oncall:
  - name: db-primary
    time_zone: Europe/Berlin
    rotation: {members: [alice, bob], shift: 1w, start: "2026-01-05T09:00"}
`

type timedFile struct {
	TimeIntervals []struct {
		Name          string                      `yaml:"name"`
		TimeIntervals []timeinterval.TimeInterval `yaml:"time_intervals"`
	} `yaml:"time_intervals"`
	People    []oncall.Person    `yaml:"people"`
	Route     *routing.Route     `yaml:"route"`
	Receivers []routing.Receiver `yaml:"receivers"`
	Oncall    []routing.Oncall   `yaml:"oncall"`
}

// clock is a settable pipeline clock.
type clock struct{ t time.Time }

func (c *clock) now() time.Time { return c.t }

func (c *clock) set(s string) {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	c.t = t
}

func timedPipeline(t testing.TB, store Store, c *clock) (*Pipeline, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	return timedPipelineWith(t, store, c, func(mute Stage) []Stage { return []Stage{ResolvedRule{}, mute} })
}

// timedPipelineWith is timedPipeline with the stages stages returns
// around the mute stage.
func timedPipelineWith(t testing.TB, store Store, c *clock, stages func(mute Stage) []Stage) (*Pipeline, *prometheus.Registry, *bytes.Buffer) {
	t.Helper()
	var f timedFile
	dec := yaml.NewDecoder(strings.NewReader(timedConfig))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		t.Fatal(err)
	}
	intervals := map[string][]timeinterval.TimeInterval{}
	for _, ti := range f.TimeIntervals {
		intervals[ti.Name] = ti.TimeIntervals
	}
	router, err := routing.New(f.Route, f.Receivers, f.Oncall, routing.Options{MaxSegments: 1, People: f.People, TimeIntervals: intervals})
	if err != nil {
		t.Fatal(err)
	}
	renderer, err := templates.New(templates.Options{})
	if err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	logs := &bytes.Buffer{}
	m := NewMuteMetrics(reg)
	m.Init("ops", "db", "web")
	p, err := New(Options{Router: router, Renderer: renderer, Store: store, Now: c.now,
		Stages: stages(NewMute(intervals, m, slog.New(slog.NewTextHandler(logs, nil))))})
	if err != nil {
		t.Fatal(err)
	}
	return p, reg, logs
}

// TestTimeIntervals routes with an injected clock: active intervals send
// only inside them, mute intervals hold back inside them, an alert sent
// by a muted and an unmuted route is sent, and a notification muted for
// every receiver is recorded as muted.
func TestTimeIntervals(t *testing.T) {
	t.Parallel()
	disk := func(team string) map[string]string { return map[string]string{"alertname": "Disk", "team": team} }
	for _, tc := range []struct {
		name    string
		at      string
		alerts  []map[string]string
		outcome string
		sent    []string // receiver: numbers (people)
		skipped []string // receiver: reason
	}{
		{
			// Wednesday 10:00 in Berlin, summer time: inside business hours.
			name: "active inside", at: "2026-04-01T08:00:00Z", alerts: []map[string]string{disk("db")},
			outcome: outbox.OutcomeAccepted, sent: []string{"db: +27830000001 (alice)"},
		},
		{
			name: "active outside", at: "2026-04-01T15:00:00Z", alerts: []map[string]string{disk("db")},
			outcome: OutcomeMuted,
			skipped: []string{"db: muted outside business-hours (active_time_intervals of route.routes[0])"},
		},
		{
			// 08:30 UTC is 09:30 in Berlin in winter, 10:30 in summer; 07:30
			// UTC is 08:30 winter (outside) and 09:30 summer (inside).
			name: "active across the spring change, before", at: "2026-03-27T07:30:00Z", alerts: []map[string]string{disk("db")},
			outcome: OutcomeMuted, skipped: []string{"db: muted outside business-hours (active_time_intervals of route.routes[0])"},
		},
		{
			name: "active across the spring change, after", at: "2026-03-30T07:30:00Z", alerts: []map[string]string{disk("db")},
			outcome: outbox.OutcomeAccepted, sent: []string{"db: +27830000001 (alice)"},
		},
		{
			name: "weekend", at: "2026-04-04T10:00:00Z", alerts: []map[string]string{disk("db")},
			outcome: OutcomeMuted, skipped: []string{"db: muted outside business-hours (active_time_intervals of route.routes[0])"},
		},
		{
			name: "mute outside", at: "2026-04-01T12:00:00Z", alerts: []map[string]string{disk("web")},
			outcome: outbox.OutcomeAccepted, sent: []string{"web: +27830000002 (bob)"},
		},
		{
			// web's first route is muted at night, but it continues and
			// the next route sends the alert to the same receiver: sent.
			name: "muted route and unmuted route to one receiver", at: "2026-04-01T21:00:00Z", alerts: []map[string]string{disk("web")},
			outcome: outbox.OutcomeAccepted, sent: []string{"web: +27830000002 (bob)"},
		},
		{
			// Only the muted routes reach their receivers.
			name: "mute inside", at: "2026-04-01T21:00:00Z", alerts: []map[string]string{disk("both")},
			outcome: OutcomeMuted,
			skipped: []string{
				"db: muted outside business-hours (active_time_intervals of route.routes[3])",
				"web: muted by nights (mute_time_intervals of route.routes[4])",
			},
		},
		{
			// By day neither is muted; the two receivers render the same
			// text, so it goes once to the union of their numbers.
			name: "neither muted", at: "2026-04-01T10:00:00Z", alerts: []map[string]string{disk("both")},
			outcome: outbox.OutcomeAccepted,
			sent:    []string{"db: +27830000001 (alice), +27830000002 (bob)"},
		},
		{
			// 20:00 in Berlin: after business hours, before the night.
			name: "one receiver muted, the other not", at: "2026-04-01T18:00:00Z", alerts: []map[string]string{disk("both")},
			outcome: outbox.OutcomeAccepted,
			sent:    []string{"web: +27830000002 (bob)"},
			skipped: []string{"db: muted outside business-hours (active_time_intervals of route.routes[3])"},
		},
		{
			// Night: the db alert is muted, the ops one (root) is not.
			name: "partly muted notification", at: "2026-04-01T21:00:00Z", alerts: []map[string]string{disk("db"), disk("none")},
			outcome: outbox.OutcomeAccepted,
			sent:    []string{"ops: +27830000009"},
			skipped: []string{"db: muted outside business-hours (active_time_intervals of route.routes[0])"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			store := &recordingStore{}
			c := &clock{}
			c.set(tc.at)
			p, reg, logs := timedPipeline(t, store, c)
			n := notification("alertmanager", "firing", tc.alerts...)
			res, err := p.Accept(context.Background(), n)
			if err != nil {
				t.Fatal(err)
			}
			if res.Outcome != tc.outcome {
				t.Errorf("outcome %s, want %s", res.Outcome, tc.outcome)
			}
			// What the store writes: one message per receiver, equal texts
			// merged, each number with who was on call at it.
			var sent []string
			for _, m := range outbox.MergeByText(store.got[0].Messages) {
				var who []string
				for _, num := range m.Numbers {
					w := num.Number
					if num.Person != "" {
						w += " (" + num.Person + ")"
					}
					who = append(who, w)
				}
				sent = append(sent, m.Receiver+": "+strings.Join(who, ", "))
			}
			if !slices.Equal(sent, tc.sent) {
				t.Errorf("sent %q, want %q", sent, tc.sent)
			}
			// The routes test shows the same, from Preview.
			var skipped []string
			for _, e := range p.Preview(n, c.t).Entries {
				if e.Skipped != "" {
					skipped = append(skipped, e.Receiver.Name+": "+e.Skipped)
				}
			}
			if !slices.Equal(skipped, tc.skipped) {
				t.Errorf("preview skipped %q, want %q", skipped, tc.skipped)
			}
			for _, s := range tc.skipped {
				rcv, _, _ := strings.Cut(s, ":")
				if got := testutil.ToFloat64(mutedCount(reg, rcv)); got != 1 {
					t.Errorf("%s muted counted %v, want 1", rcv, got)
				}
				if !strings.Contains(logs.String(), "receiver="+rcv) {
					t.Errorf("no log line for %s:\n%s", rcv, logs)
				}
			}
		})
	}
}

// mutedCount reads the muted counter of receiver from reg.
func mutedCount(reg *prometheus.Registry, receiver string) prometheus.Collector {
	g := prometheus.NewGauge(prometheus.GaugeOpts{Name: "x"})
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "smsbridge_notifications_muted_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == receiver {
				g.Set(m.GetCounter().GetValue())
			}
		}
	}
	return g
}

// TestMuteNarrows: a receiver reached by a muted route for one alert and
// an unmuted one for another gets a text about the second alert only.
func TestMuteNarrows(t *testing.T) {
	t.Parallel()
	store := &recordingStore{}
	c := &clock{}
	c.set("2026-04-01T21:00:00Z") // night in Berlin
	p, _, _ := timedPipeline(t, store, c)
	n := notification("alertmanager", "firing",
		map[string]string{"alertname": "Slow", "team": "both"},  // to web through a muted route only
		map[string]string{"alertname": "Down", "team": "mixed"}, // to web through an unmuted route
	)
	pl := p.Preview(n, c.t)
	var web *Entry
	for i := range pl.Entries {
		if pl.Entries[i].Receiver.Name == "web" {
			web = &pl.Entries[i]
		}
	}
	if web == nil || web.Skipped != "" || web.Alerts != 1 || !strings.Contains(web.Text, "Down") || strings.Contains(web.Text, "Slow") {
		t.Fatalf("web entry %+v", web)
	}
	res, err := p.Accept(context.Background(), n)
	if err != nil || res.Outcome != outbox.OutcomeAccepted {
		t.Fatalf("accept %+v %v", res, err)
	}
	for _, m := range store.got[0].Messages {
		if m.Receiver == "web" && strings.Contains(m.Text, "Slow") {
			t.Errorf("the muted alert was sent: %q", m.Text)
		}
	}
}

// TestMuteNarrowsMarks: in the design's order (dedup, then time
// intervals, then the throttle), a text narrowed by the mute stage carries
// the duplicate key and stale-check instances of the alerts it is about,
// not of those muted, its digest line is about them too, and the numbers
// keep the names of who is on call.
func TestMuteNarrowsMarks(t *testing.T) {
	t.Parallel()
	store := &recordingStore{}
	c := &clock{}
	c.set("2026-04-01T21:00:00Z") // night in Berlin
	p, _, _ := timedPipelineWith(t, store, c, func(mute Stage) []Stage {
		return []Stage{ResolvedRule{}, Dedup{Window: 5 * time.Minute}, mute, Throttle{Summary: func(_ string, n *alert.Notification) string {
			var names []string
			for _, a := range n.Data.Alerts {
				names = append(names, a.Labels["alertname"])
			}
			return strings.Join(names, ",")
		}}}
	})
	slow := map[string]string{"alertname": "Slow", "team": "both"}  // to web through a muted route only
	down := map[string]string{"alertname": "Down", "team": "mixed"} // to web through an unmuted route
	n := notification("alertmanager", "firing", slow, down)
	if _, err := p.Accept(context.Background(), n); err != nil {
		t.Fatal(err)
	}
	web, ok := byReceiver(store.got[0].Messages)["web"]
	if !ok {
		t.Fatalf("no message to web: %+v", store.got[0].Messages)
	}
	onlyDown := n.Data.Alerts[1:]
	if want := DedupKey("web", n.GroupKey, "firing", onlyDown); web.DedupKey != want {
		t.Errorf("dedup key %s, want the key of Down alone %s", web.DedupKey, want)
	}
	if DedupKey("web", n.GroupKey, "firing", n.Data.Alerts) == web.DedupKey {
		t.Error("the dedup key still covers the muted alert")
	}
	if len(web.Alerts) != 1 || web.Alerts[0].Fingerprint != alert.Fingerprint(down) {
		t.Errorf("stale-check instances %+v, want Down's alone", web.Alerts)
	}
	if web.Summary != "Down" {
		t.Errorf("digest line %q, want it about Down alone", web.Summary)
	}
	if !slices.Equal(web.Numbers, []string{"+27830000002"}) || !slices.Equal(web.People, []string{"bob"}) {
		t.Errorf("numbers %v people %v, want bob's", web.Numbers, web.People)
	}
}

// TestPlanResolvesOnCall: a receiver pages whoever is on call at the
// pipeline's clock, named.
func TestPlanResolvesOnCall(t *testing.T) {
	t.Parallel()
	c := &clock{}
	p, _, _ := timedPipeline(t, &recordingStore{}, c)
	n := notification("alertmanager", "firing", map[string]string{"alertname": "Disk", "team": "db"})
	for _, tc := range []struct{ at, who string }{
		{"2026-03-30T06:59:00Z", "+27830000002 bob"},   // 08:59 in Berlin, the Monday of the handoff: bob's week
		{"2026-03-30T07:00:00Z", "+27830000001 alice"}, // 09:00: alice's
	} {
		c.set(tc.at)
		pl := p.Plan(n)
		e := pl.Entries[0]
		if got := e.Numbers[0] + " " + e.People[0]; len(e.Numbers) != 1 || got != tc.who || !pl.At.Equal(c.t) {
			t.Errorf("at %s: %v %v, want %s", tc.at, e.Numbers, e.People, tc.who)
		}
	}
	// A run-time override wins over the rotation.
	bob := oncall.Member{Name: "bob", Number: "+27830000002"}
	p.overrides = func(list string) []oncall.Override {
		if list != "db-primary" {
			t.Errorf("overrides asked for %q", list)
		}
		return []oncall.Override{{ID: 1, Members: []oncall.Member{bob}, Start: c.t.Add(-time.Hour), End: c.t.Add(time.Hour)}}
	}
	if e := p.Plan(n).Entries[0]; e.People[0] != "bob" {
		t.Errorf("with an override for bob: %v", e.People)
	}
}

// BenchmarkPlanOnCall is Plan and the mute stage's judgement for one
// alert routed to a receiver with an on-call rotation and a route with
// active_time_intervals: the work added to each request.
func BenchmarkPlanOnCall(b *testing.B) {
	c := &clock{}
	c.set("2026-04-01T08:00:00Z")
	p, _, _ := timedPipeline(b, &recordingStore{}, c)
	n := notification("alertmanager", "firing", map[string]string{"alertname": "Disk", "team": "db"})
	b.ReportAllocs()
	for b.Loop() {
		p.Preview(n, c.t)
	}
}
