package pipeline

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/templates"
)

// threeReceivers is a pipeline whose route sends every alert to three
// receivers of four numbers each: ops and platform share tmpl, db has its
// own template. The renderer logs into log.
func threeReceivers(tb testing.TB, tmpl string, log *bytes.Buffer) *Pipeline {
	tb.Helper()
	root := &routing.Route{Receiver: "ops", Routes: []*routing.Route{
		{Matchers: []string{`severity="critical"`}, Receiver: "ops", Continue: true},
		{Matchers: []string{`env="prod"`}, Receiver: "platform", Continue: true},
		{Matchers: []string{`team=~".+"`}, Receiver: "db"},
	}}
	nums := func(p string) []string {
		return []string{p + "1", p + "2", p + "3", p + "4"}
	}
	receivers := []routing.Receiver{
		{Name: "ops", Numbers: nums("+2783000000"), Template: tmpl},
		{Name: "platform", Numbers: nums("+2783000001"), Template: tmpl},
		{Name: "db", Numbers: nums("+2783000002"), Template: `DB {{ .CommonLabels.alertname }}`},
	}
	router, err := routing.New(root, receivers, nil, routing.Options{MaxSegments: 3})
	if err != nil {
		tb.Fatal(err)
	}
	renderer, err := templates.New(templates.Options{Logger: slog.New(slog.NewTextHandler(log, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	p, err := New(Options{Router: router, Renderer: renderer,
		Now: func() time.Time { return time.Date(2026, 3, 1, 3, 4, 5, 0, time.UTC) }})
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// TestPlanRendersOncePerText: receivers that share a template and alerts
// share one render (a failing template is tried, logged and replaced by
// the default once, not once per receiver); a receiver with its own
// template gets its own text.
func TestPlanRendersOncePerText(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, tmpl string
		failures   int
	}{
		{"a template that works", `{{ .Status }} {{ .CommonLabels.alertname }}`, 0},
		{"a template that fails", `{{ template "nosuch" . }}`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var log bytes.Buffer
			p := threeReceivers(t, tc.tmpl, &log)
			pl := p.Plan(notification("alertmanager", "firing",
				map[string]string{"alertname": "Disk", "severity": "critical", "env": "prod", "team": "db"},
				map[string]string{"alertname": "Disk", "severity": "critical", "env": "prod", "team": "web"}))
			if len(pl.Entries) != 3 {
				t.Fatalf("%d entries, want 3", len(pl.Entries))
			}
			ops, platform, db := pl.Entries[0], pl.Entries[1], pl.Entries[2]
			if ops.Text == "" || ops.Text != platform.Text || ops.Segments != platform.Segments {
				t.Errorf("ops %q (%d) and platform %q (%d) differ", ops.Text, ops.Segments, platform.Text, platform.Segments)
			}
			if db.Text != "DB Disk" {
				t.Errorf("db: %q, want its own template's text", db.Text)
			}
			if got := strings.Count(log.String(), "template failed"); got != tc.failures {
				t.Errorf("%d failed renders logged, want %d:\n%s", got, tc.failures, log.String())
			}
		})
	}
}

// BenchmarkPlan is Plan for one notification of three alerts routed to
// three receivers of four numbers each (two sharing the default
// template): the heavy payload of the load tool's heavy phase.
func BenchmarkPlan(b *testing.B) {
	var log bytes.Buffer
	p := threeReceivers(b, "", &log)
	n := notification("alertmanager", "firing",
		map[string]string{"alertname": "Disk", "severity": "critical", "env": "prod", "team": "db", "instance": "db-1"},
		map[string]string{"alertname": "Disk", "severity": "critical", "env": "prod", "team": "web", "instance": "web-1"},
		map[string]string{"alertname": "Disk", "severity": "critical", "env": "prod", "team": "net", "instance": "net-1"})
	b.ReportAllocs()
	for b.Loop() {
		p.Plan(n)
	}
}
