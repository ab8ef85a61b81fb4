package templates

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/smsbridge/smsbridge/alert"
)

// writeFile writes a template file into dir and returns its path.
func writeFile(t *testing.T, dir, name, text string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// errorCount returns smsbridge_template_errors_total for receiver, summed
// over its reasons, and whether a series of it exists at all.
func errorCount(t *testing.T, reg *prometheus.Registry, receiver string) (float64, bool) {
	t.Helper()
	counts := reasonCounts(t, reg, receiver)
	total := 0.0
	for _, n := range counts {
		total += n
	}
	return total, len(counts) > 0
}

// reasonCounts returns smsbridge_template_errors_total for receiver by
// reason.
func reasonCounts(t *testing.T, reg *prometheus.Registry, receiver string) map[string]float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, f := range families {
		if f.GetName() != "smsbridge_template_errors_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			labels := map[string]string{}
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if labels["receiver"] == receiver {
				out[labels["reason"]] = m.GetCounter().GetValue()
			}
		}
	}
	return out
}

func TestNewFileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		file    string
		wantAll []string
	}{
		{
			name:    "syntax error names file and line",
			file:    "{{ define \"a\" }}\nfine\n{{ if }}x{{ end }}\n{{ end }}\n",
			wantAll: []string{"bad.tmpl", ":3:"},
		},
		{
			name:    "unknown function names file and line",
			file:    "{{ define \"a\" }}\n\n\n\n{{ nosuchfunc . }}{{ end }}\n",
			wantAll: []string{"bad.tmpl", ":5:", "nosuchfunc"},
		},
		{
			name:    "broken redefinition of the default",
			file:    `{{ define "sms.default" }}{{ template "sms.nosuch" . }}{{ end }}`,
			wantAll: []string{"sms.default", "sms.nosuch", "not defined", "bad.tmpl", "good.tmpl"},
		},
		{
			name:    "broken redefinition of the webhook default",
			file:    `{{ define "sms.webhook" }}{{ template "sms.nosuch" . }}{{ end }}`,
			wantAll: []string{"sms.webhook", "sms.nosuch"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := writeFile(t, dir, "bad.tmpl", tt.file)
			good := writeFile(t, t.TempDir(), "good.tmpl", `{{ define "good" }}fine{{ end }}`)
			_, err := New(Options{Files: []string{good, filepath.Join(dir, "*.tmpl")}})
			if err == nil {
				t.Fatal("New succeeded, want an error")
			}
			// A file's own error says which entry of Files matched it.
			var fe *FileError
			if isFile := errors.As(err, &fe); isFile != (tt.wantAll[0] == "bad.tmpl") || (isFile && fe.Index != 1) {
				t.Errorf("error %v: FileError %+v", err, fe)
			}
			if tt.wantAll[0] == "bad.tmpl" && !strings.Contains(err.Error(), path) {
				t.Errorf("error %q does not name the full path %s", err, path)
			}
			for _, want := range tt.wantAll {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("error %q does not contain %q", err, want)
				}
			}
		})
	}
}

func TestNewGlobs(t *testing.T) {
	t.Parallel()
	_, err := New(Options{Files: []string{"[unclosed"}})
	var fe *FileError
	if !errors.As(err, &fe) || fe.Index != 0 || !strings.Contains(err.Error(), "[unclosed") {
		t.Errorf("bad pattern: err = %v, want a FileError naming the pattern", err)
	}

	// A pattern that matches nothing is a typo or a missing mount.
	empty := filepath.Join(t.TempDir(), "*.tmpl")
	good := writeFile(t, t.TempDir(), "good.tmpl", `{{ define "good" }}fine{{ end }}`)
	_, err = New(Options{Files: []string{good, empty}})
	if !errors.As(err, &fe) || fe.Index != 1 || !strings.Contains(err.Error(), empty) || !strings.Contains(err.Error(), "match no file") {
		t.Errorf("pattern matching nothing: err = %v, want a FileError at index 1 naming %s", err, empty)
	}

	// A file name with glob metacharacters is parsed as that one file.
	dir := t.TempDir()
	writeFile(t, dir, "odd[1].tmpl", `{{ define "odd" }}odd one{{ end }}`)
	r := newRenderer(t, Options{Files: []string{filepath.Join(dir, "*.tmpl")}})
	if err := r.Check(`{{ template "odd" . }}`); err != nil {
		t.Errorf("template from odd[1].tmpl: %v", err)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	writeFile(t, dir, "user.tmpl", `{{ define "user.short" }}{{ .Status | toUpper }} {{ .CommonLabels.alertname }}{{ end }}`)
	r := newRenderer(t, Options{Files: []string{filepath.Join(dir, "*.tmpl")}})
	tests := []struct {
		name    string
		tmpl    string
		wantErr string // "" for none
	}{
		{"empty is the default", "", ""},
		{"plain fields", `{{ .Status }} {{ .CommonLabels.alertname }} {{ .Source }} {{ .GroupKey }} {{ .TruncatedAlerts }}`, ""},
		{"alertmanager functions", `{{ range .Alerts.Firing }}{{ .Labels.SortedPairs }}{{ end }} {{ reReplaceAll "a" "b" .Status }} {{ .CommonLabels.Values.Join "," }}`, ""},
		{"alertmanager default templates", `{{ template "__subject" . }}`, ""},
		{"user named template", `{{ template "user.short" . }}`, ""},
		{"default templates by name", `{{ template "sms.default" . }} {{ template "sms.webhook" . }}`, ""},
		{"data methods", `{{ range .FirstAlerts 2 }}{{ .Status }}{{ end }} {{ .MoreAlerts 1 }}`, ""},
		{"syntax error", `{{ if .Status }}unclosed`, "parse:"},
		{"unknown function", `{{ shout .Status }}`, `function "shout" not defined`},
		{"undefined template", `{{ template "nosuch" . }}`, `execute against sample data`},
		{"unknown field", `{{ .NoSuchField }}`, "execute against sample data"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := r.Check(tt.tmpl)
			switch {
			case tt.wantErr == "" && err != nil:
				t.Errorf("Check: %v", err)
			case tt.wantErr != "" && err == nil:
				t.Errorf("Check succeeded, want error containing %q", tt.wantErr)
			case tt.wantErr != "" && !strings.Contains(err.Error(), tt.wantErr):
				t.Errorf("Check error %q does not contain %q", err, tt.wantErr)
			}
		})
	}
}

func TestRender(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	// This redefinition passes the check at load (the sample group has two
	// alerts) but fails for a single alert, so that the built-in default
	// must take over.
	writeFile(t, dir, "override.tmpl", `{{ define "sms.default" }}second is {{ (index .Alerts 1).Labels.instance }}{{ end }}`)
	var logs bytes.Buffer
	reg := prometheus.NewRegistry()
	r := newRenderer(t, Options{
		Files:     []string{filepath.Join(dir, "*.tmpl")},
		Logger:    slog.New(slog.NewTextHandler(&logs, nil)),
		Metrics:   NewMetrics(reg),
		Receivers: []string{"ops", "db"},
	})
	plain := newRenderer(t, Options{})
	builtinText := func(name string) string {
		text, _, err := plain.Render("x", "", loadFixture(t, name), 0)
		if err != nil {
			t.Fatal(err)
		}
		return text
	}

	tests := []struct {
		name        string
		tmpl        string
		fixture     string
		maxSegments int
		want        string
		wantErrors  float64 // template errors counted for receiver "ops"
	}{
		{name: "custom", tmpl: `{{ .Status | toUpper }}: {{ .CommonLabels.alertname }} on {{ .CommonLabels.instance }}`, fixture: "firing_1",
			want: "FIRING: HighDiskUsage on db-01.example.com:9100"},
		{name: "custom is made GSM", tmpl: `“{{ .CommonLabels.alertname }}” – ok 🔥`, fixture: "firing_1",
			want: `"HighDiskUsage" - ok ?`},
		{name: "custom is trimmed", tmpl: "\n\t  {{ .Source }}  \n\n", fixture: "webhook_1", want: "github"},
		{name: "smsbridge fields", tmpl: `{{ .Source }} {{ .GroupKey }} {{ .TruncatedAlerts }} {{ .MoreAlerts 3 }}`, fixture: "firing_50_truncated",
			want: `alertmanager {}:{alertname="HighDiskUsage"} 12 59`},
		{name: "external url from the payload", tmpl: `{{ .ExternalURL }}`, fixture: "firing_1", want: "http://alertmanager.example.com:9093"},
		{name: "custom cut to budget", tmpl: `{{ range .Alerts }}{{ .Annotations.description }} {{ end }}`, fixture: "firing_50_truncated", maxSegments: 1,
			want: "Filesystem /var/lib/mysql on db-01 has 91% used; at the current rate it fills in about 4 hours. Filesystem /var/lib/mysql on db-02 has 92% used; at the..."},
		{name: "redefined default used", fixture: "firing_3", want: "second is db-02.example.com:9100"},
		{name: "webhook default by source", fixture: "webhook_1", want: builtinText("webhook_1")},
		{name: "execution error falls back", tmpl: `{{ (index .Alerts 7).Status }}`, fixture: "firing_3", want: builtinText("firing_3"), wantErrors: 1},
		{name: "empty text falls back", tmpl: `{{ if eq .Status "nope" }}x{{ end }}`, fixture: "firing_1", want: builtinText("firing_1"), wantErrors: 2},
		{name: "only spaces falls back", tmpl: "\u00a0\u2003", fixture: "firing_1", want: builtinText("firing_1"), wantErrors: 3},
		{name: "broken redefined default falls back to built-in", fixture: "firing_1", want: builtinText("firing_1"), wantErrors: 4},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := loadFixture(t, tt.fixture)
			before := fmt.Sprintf("%+v", *d)
			text, segments, err := r.Render("ops", tt.tmpl, d, tt.maxSegments)
			if err != nil {
				t.Fatalf("Render: %v", err)
			}
			if text != tt.want {
				t.Errorf("text = %q, want %q", text, tt.want)
			}
			if segments != Segments(text) {
				t.Errorf("segments = %d, want %d", segments, Segments(text))
			}
			if after := fmt.Sprintf("%+v", *d); after != before {
				t.Error("Render modified the caller's data")
			}
			if got, _ := errorCount(t, reg, "ops"); got != tt.wantErrors {
				t.Errorf("template errors for ops = %v, want %v", got, tt.wantErrors)
			}
		})
	}
	if got, ok := errorCount(t, reg, "db"); !ok || got != 0 {
		t.Errorf("errors for db = %v (present %v), want a zero series", got, ok)
	}
	if !strings.Contains(logs.String(), "receiver=ops") || !strings.Contains(logs.String(), "level=WARN") {
		t.Errorf("fallback not logged with the receiver; logs:\n%s", logs.String())
	}
}

func TestRenderErrors(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	r := newRenderer(t, Options{Metrics: NewMetrics(reg)})
	if _, _, err := r.Render("ops", "", nil, 0); err == nil {
		t.Error("Render(nil data) succeeded")
	}
	// Nothing at all to say: no source, status, alerts or labels. Even the
	// default renders empty, so the caller must learn of it.
	empty := &Data{}
	text, segments, err := r.Render("ops", `{{ .Status }}`, empty, 0)
	if err == nil {
		t.Fatalf("Render of empty data = %q, %d, want an error", text, segments)
	}
	if !strings.Contains(err.Error(), "empty") || !strings.Contains(err.Error(), `"ops"`) {
		t.Errorf("error %q does not explain itself", err)
	}
	if got, _ := errorCount(t, reg, "ops"); got != 1 {
		t.Errorf("template errors = %v, want 1", got)
	}
}

func TestRenderWithoutLoggerOrMetrics(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, Options{})
	text, _, err := r.Render("ops", `{{ template "nosuch" . }}`, loadFixture(t, "firing_1"), 1)
	if err != nil || !strings.HasPrefix(text, "FIRING:1 HighDiskUsage") {
		t.Errorf("Render = %q, %v; want the default text", text, err)
	}
}

func TestRenderConcurrent(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, Options{Metrics: NewMetrics(prometheus.NewRegistry())})
	d := loadFixture(t, "mixed")
	want, _, err := r.Render("ops", "", d, 0)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 64)
	for g := range 8 {
		wg.Go(func() {
			for i := range 20 {
				tmpl := ""
				if (g+i)%3 == 0 {
					tmpl = `{{ template "nosuch" . }}` // falls back to the same text
				}
				got, _, err := r.Render("ops", tmpl, d, 0)
				if err != nil || got != want {
					errs <- fmt.Sprintf("%q, %v", got, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for e := range errs {
		t.Errorf("concurrent Render = %s, want %q", e, want)
	}
}

func TestFirstAndMoreAlerts(t *testing.T) {
	t.Parallel()
	alerts := template.Alerts{
		{Status: "resolved", Fingerprint: "r1"},
		{Status: "firing", Fingerprint: "f1"},
		{Status: "", Fingerprint: "u1"},
		{Status: "firing", Fingerprint: "f2"},
		{Status: "resolved", Fingerprint: "r2"},
	}
	d := &Data{Data: template.Data{Alerts: alerts}, TruncatedAlerts: 4}
	tests := []struct {
		n    int
		want string
		more int
	}{
		{-1, "", 9},
		{0, "", 9},
		{1, "f1", 8},
		{3, "f1 f2 r1", 6},
		{5, "f1 f2 r1 r2 u1", 4},
		{9, "f1 f2 r1 r2 u1", 4},
	}
	for _, tt := range tests {
		var got []string
		for _, a := range d.FirstAlerts(tt.n) {
			got = append(got, a.Fingerprint)
		}
		if strings.Join(got, " ") != tt.want {
			t.Errorf("FirstAlerts(%d) = %v, want %s", tt.n, got, tt.want)
		}
		if more := d.MoreAlerts(len(got)); more != tt.more {
			t.Errorf("MoreAlerts(%d) = %d, want %d", len(got), more, tt.more)
		}
	}
}

// TestNewData: every field of a notification reaches the templates.
func TestNewData(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 3, 2, 9, 30, 0, 0, time.UTC)
	n := &alert.Notification{
		Source:          "grafana",
		GroupKey:        "grafana:{}:{alertname=\"HighMemoryUsage\"}",
		TruncatedAlerts: 3,
		ReceivedAt:      at,
		Data: template.Data{
			Receiver: "grafana",
			Status:   "firing",
			Alerts: template.Alerts{{
				Status: "firing", Labels: template.KV{"alertname": "HighMemoryUsage"},
				Annotations: template.KV{"summary": "db-1 memory above 90%"}, StartsAt: at,
			}},
			GroupLabels:       template.KV{"alertname": "HighMemoryUsage"},
			CommonLabels:      template.KV{"alertname": "HighMemoryUsage"},
			CommonAnnotations: template.KV{"summary": "db-1 memory above 90%"},
			ExternalURL:       "https://grafana.example.com/",
		},
	}
	d := NewData(n)
	r := newRenderer(t, Options{})
	const tmpl = `{{ .Source }}|{{ .GroupKey }}|{{ .TruncatedAlerts }}|{{ .MoreAlerts 1 }}|{{ .ExternalURL }}|{{ .Receiver }}|` +
		`{{ .Status }}|{{ .GroupLabels.alertname }}|{{ .CommonAnnotations.summary }}|{{ .ReceivedAt.UTC.Format "15:04" }}`
	text, _, err := r.Render("ops", tmpl, d, 3)
	if err != nil {
		t.Fatal(err)
	}
	want := `grafana|grafana:{}:{alertname="HighMemoryUsage"}|3|3|https://grafana.example.com/|grafana|firing|HighMemoryUsage|db-1 memory above 90%|09:30`
	if text != want {
		t.Errorf("rendered\n %s\nwant\n %s", text, want)
	}
	d.Alerts = nil
	if len(n.Data.Alerts) != 1 {
		t.Error("NewData shares its Data with the notification")
	}
}

func TestPlain(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, Options{})
	long := strings.Repeat("word ", 100)
	tests := []struct {
		name        string
		text        string
		maxSegments int
		want        string
		segments    int
	}{
		{"ascii", "smsbridge test to ops", 1, "smsbridge test to ops", 1},
		{"made GSM", "“test” – ok 🔥", 1, `"test" - ok ?`, 1},
		{"cut to one segment", long, 1, Fit(long, 1), 1},
		{"cut to two", long, 2, Fit(long, 2), 2},
		{"empty", "", 1, "", 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			text, segments := r.Plain(tc.text, tc.maxSegments)
			if text != tc.want || segments != tc.segments {
				t.Errorf("Plain = %q, %d; want %q, %d", text, segments, tc.want, tc.segments)
			}
			if !IsGSM(text) || Segments(text) != segments {
				t.Errorf("Plain = %q is not GSM or miscounted", text)
			}
		})
	}
}

// TestCheckNamesWhereItLooked: a receiver's template that calls one never
// defined says which files were read, or that there were none.
func TestCheckNamesWhereItLooked(t *testing.T) {
	t.Parallel()
	good := writeFile(t, t.TempDir(), "custom.tmpl", `{{ define "sms.kustom" }}fine{{ end }}`)
	tests := []struct {
		name  string
		files []string
		want  []string
	}{
		{"no files", nil, []string{`template "sms.custom" not defined`, `no template named "sms.custom"`, "templates.files names no file"}},
		{"a file without it", []string{good}, []string{`no template named "sms.custom"`, "the template files read are " + good}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			r := newRenderer(t, Options{Files: tc.files})
			err := r.Check(`{{ template "sms.custom" . }}`)
			if err == nil {
				t.Fatal("Check succeeded")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	// Other errors are left as they are.
	r := newRenderer(t, Options{})
	if err := r.Check(`{{ nosuchfunc }}`); err == nil || strings.Contains(err.Error(), "template files") {
		t.Errorf("Check of an unknown function: %v", err)
	}
}
