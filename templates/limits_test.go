package templates

import (
	"bytes"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	tmpltext "text/template"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// explosive is the template: three nested ranges over the alerts,
// 64 million lines for a group of 400. Unbounded it took 19 s and 2.5 GB.
const explosive = `{{ range .Alerts }}{{ range $.Alerts }}{{ range $.Alerts }}{{ .Labels.instance }} {{ end }}{{ end }}{{ end }}`

// spinning gives r's templates a function "spin" that returns only when
// the test ends: a loop that writes nothing, which only the time limit
// stops the caller waiting for, without burning a core meanwhile.
func spinning(t *testing.T, r *Renderer) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	r.all.set.Funcs(tmpltext.FuncMap{"spin": func() string { <-release; return "" }})
}

// TestRenderLimits: a template over the output cap or the time limit
// yields the default text, within the limit, counted by reason and
// logged; a template within them is untouched.
func TestRenderLimits(t *testing.T) {
	t.Parallel()
	storm, _ := bigSampleData(400)
	tests := []struct {
		name    string
		tmpl    string
		data    *Data
		limits  Limits
		reason  string
		within  time.Duration
		wantLog string
	}{
		{"explosive output", explosive, storm, Limits{}, ReasonTooLarge, 2 * time.Second, "render limit"},
		{"small cap", `{{ range .Alerts }}{{ .Labels.instance }} {{ end }}`, storm, Limits{Output: 1024}, ReasonTooLarge, time.Second, "1024 bytes"},
		{"silent loop", `{{ range .Alerts }}{{ spin }}{{ end }}`, storm, Limits{Time: 10 * time.Millisecond}, ReasonTimeout, time.Second, "time limit of 10ms"},
		{"within the limits", `{{ len .Alerts }} alerts firing`, storm, Limits{}, "", time.Second, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			var logs bytes.Buffer
			r := newRenderer(t, Options{Metrics: NewMetrics(reg), Receivers: []string{"ops"},
				Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			// Set after New, whose checks of the default templates must not
			// race a tight limit on a loaded machine.
			r.limits = tc.limits.withDefaults()
			spinning(t, r)
			start := time.Now()
			text, segs, err := r.Render("ops", tc.tmpl, tc.data, 3)
			took := time.Since(start)
			if err != nil {
				t.Fatal(err)
			}
			if took > tc.within {
				t.Errorf("render took %s, want under %s", took, tc.within)
			}
			counts := reasonCounts(t, reg, "ops")
			if tc.reason == "" {
				if text != "400 alerts firing" || counts[ReasonTooLarge]+counts[ReasonTimeout]+counts[ReasonError] != 0 {
					t.Errorf("text %q, errors %v", text, counts)
				}
				return
			}
			if !strings.HasPrefix(text, fmt.Sprintf("FIRING:%d ", len(tc.data.Alerts))) || segs < 1 || segs > 3 {
				t.Errorf("text %q (%d segments), want the default text for 400 alerts", text, segs)
			}
			for _, reason := range Reasons {
				want := 0.0
				if reason == tc.reason {
					want = 1
				}
				if counts[reason] != want {
					t.Errorf("errors{reason=%q} = %v, want %v", reason, counts[reason], want)
				}
			}
			if !strings.Contains(logs.String(), "reason="+tc.reason) || !strings.Contains(logs.String(), tc.wantLog) {
				t.Errorf("log lacks reason %s and %q:\n%s", tc.reason, tc.wantLog, logs.String())
			}
		})
	}
}

// TestRenderRunaway: text/template cannot be stopped, so executions
// abandoned at the time limit that still run are counted; at the cap, user
// templates are not started at all (the default text goes out at once)
// until they end, so a template cannot pile up goroutines burning CPU.
func TestRenderRunaway(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	r := newRenderer(t, Options{Metrics: NewMetrics(reg), Receivers: []string{"ops"}})
	r.limits = Limits{Time: 10 * time.Millisecond}.withDefaults()
	// A function only this test has stands for a loop that writes nothing:
	// it runs until the test lets it end.
	release := make(chan struct{})
	r.all.set.Funcs(tmpltext.FuncMap{"spin": func() string { <-release; return "" }})
	d, _ := bigSampleData(100)
	for range maxRunaway {
		if _, _, err := r.Render("ops", `{{ spin }}x`, d, 3); err != nil {
			t.Fatal(err)
		}
	}
	if n := r.runaway.Load(); n != maxRunaway {
		t.Fatalf("runaway = %d, want %d", n, maxRunaway)
	}
	text, _, err := r.Render("ops", `{{ len .Alerts }} alerts`, d, 3)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(text, "FIRING:100 ") {
		t.Errorf("text %q, want the default text: no user template runs while %d runaways do", text, maxRunaway)
	}
	if got := reasonCounts(t, reg, "ops")[ReasonTimeout]; got != maxRunaway+1 {
		t.Errorf("timeouts = %v, want %d", got, maxRunaway+1)
	}
	close(release)
	deadline := time.Now().Add(10 * time.Second)
	for r.runaway.Load() > 0 {
		if time.Now().After(deadline) {
			t.Fatal("the abandoned executions never ended")
		}
		time.Sleep(time.Millisecond)
	}
	r.limits = Limits{}.withDefaults() // a loaded machine may take 10ms to schedule it
	if text, _, _ := r.Render("ops", `{{ len .Alerts }} alerts`, d, 3); text != "100 alerts" {
		t.Errorf("after the runaways ended: %q, want the user template again", text)
	}
}

// TestCheckLimits: what check-config and a reload report about a
// template for a storm.
func TestCheckLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tmpl   string
		limits Limits
		want   string
	}{
		{"default templates", "", Limits{}, ""},
		{"a short custom template", `{{ .Status }} {{ .CommonLabels.alertname }} ({{ len .Alerts }})`, Limits{}, ""},
		{"one line per alert fits", `{{ range .Alerts }}{{ .Labels.instance }} {{ end }}`, Limits{}, ""},
		{"explosive", explosive, Limits{}, "for a group of 400 alerts it writes more than 64 KiB, the render limit"},
		{"slow", `{{ range .Alerts }}{{ spin }}{{ end }}`,
			Limits{Time: 10 * time.Millisecond}, "for a group of 400 alerts it runs longer than 10ms, the render limit"},
		{"a failing template is Check's business", `{{ index .Alerts 1000 }}`, Limits{}, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRenderer(t, Options{})
			// Set after New, whose own checks are not under test here.
			r.limits = tc.limits.withDefaults()
			spinning(t, r)
			err := r.CheckLimits(tc.tmpl)
			switch {
			case tc.want == "" && err != nil:
				t.Errorf("CheckLimits: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Errorf("CheckLimits: %v, want %q", err, tc.want)
			}
		})
	}
}

// TestRedefinedDefaultBounded: a user file that redefines the default
// template as an endless recursion is refused at load within the limits,
// instead of hanging the load or reload.
func TestRedefinedDefaultBounded(t *testing.T) {
	t.Parallel()
	// 2^depth calls of an empty template: no output, no data. At 40 it
	// would run for hours, which is what the limit is for; 22 (a few
	// million calls) is plenty over 5ms and ends soon after, so the
	// abandoned execution does not slow the other tests for the rest of
	// the run.
	const depth = 22
	var b strings.Builder
	for i := range depth {
		b.WriteString(fmt.Sprintf(`{{ define "t%d" }}{{ template "t%d" . }}{{ template "t%d" . }}{{ end }}`, i, i+1, i+1))
	}
	b.WriteString(fmt.Sprintf(`{{ define "t%d" }}{{ end }}{{ define "sms.default" }}{{ template "t0" . }}x{{ end }}`, depth))
	path := writeFile(t, t.TempDir(), "bomb.tmpl", b.String())
	start := time.Now()
	_, err := New(Options{Files: []string{path}, Limits: Limits{Time: 5 * time.Millisecond}})
	if err == nil || !strings.Contains(err.Error(), "template sms.default: execute against sample data: template exceeds the render time limit of 5ms") {
		t.Errorf("New: %v, want the time limit error", err)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("New took %s", took)
	}
}

// TestDigestLimits: the digest templates run under the same limits as any
// other: a redefinition that writes too much or runs too long gets the
// built-in digest (or line), counted by reason.
func TestDigestLimits(t *testing.T) {
	t.Parallel()
	items := []DigestItem{{Summary: "FIRING DiskFull db1", Status: "firing"}, {Summary: "FIRING DiskFull db2", Status: "firing"}}
	tests := []struct {
		name   string
		define string
		limits Limits
		reason string
	}{
		{"digest too large", `{{ define "sms.digest" }}{{ .Count }} held: {{ range .Items }}{{ .Summary }}; {{ end }}` + strings.Repeat("padding ", 20) + `{{ end }}`,
			Limits{Output: 150}, ReasonTooLarge},
		{"digest too slow", `{{ define "sms.digest" }}{{ spin }}x{{ end }}`, Limits{Time: 10 * time.Millisecond}, ReasonTimeout},
		{"item too slow", `{{ define "sms.digest.item" }}{{ spin }}x{{ end }}`, Limits{Time: 10 * time.Millisecond}, ReasonTimeout},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			reg := prometheus.NewRegistry()
			r := newRenderer(t, Options{Metrics: NewMetrics(reg), Receivers: []string{"ops"}})
			// Redefined after New, whose checks would refuse it: what a
			// template file does for data the sample lacks.
			spinning(t, r)
			if _, err := r.all.set.New("redefinition").Parse(tc.define); err != nil {
				t.Fatal(err)
			}
			r.all.cache.Range(func(k, _ any) bool { r.all.cache.Delete(k); return true })
			r.limits = tc.limits.withDefaults()
			if tc.name == "item too slow" {
				if got := r.Summary("ops", loadFixture(t, "firing_1")); !strings.HasPrefix(got, "FIRING") {
					t.Errorf("summary %q, want the built-in line", got)
				}
			} else if text, _ := r.Digest("ops", items, 1); !strings.HasPrefix(text, "2 held: FIRING DiskFull db1") {
				t.Errorf("digest %q, want the built-in one", text)
			}
			if got := reasonCounts(t, reg, "ops")[tc.reason]; got != 1 {
				t.Errorf("errors{reason=%q} = %v, want 1", tc.reason, got)
			}
		})
	}
}
