package mapping

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"sync"
	"testing"
)

func TestCompileErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		cfg    Config
		source string
		want   string // exact message, or prefix when it ends in "..."
	}{
		{name: "empty source", cfg: Config{}, source: "", want: "source name is empty"},
		{name: "unknown preset", cfg: Config{Preset: "jenkins"}, want: `preset: unknown preset "jenkins" (want one of github, gitlab, grafana, plain)`},
		{name: "unknown function in a label", cfg: Config{Labels: map[string]string{"team": "{{ nope .x }}"}},
			want: `labels.team: template: labels.team:1: function "nope" not defined`},
		{name: "unclosed action in an annotation", cfg: Config{Annotations: map[string]string{"summary": "{{ .x "}},
			want: `annotations.summary: template: annotations.summary:1: unclosed action`},
		{name: "bad status template", cfg: Config{Status: "{{ if }}"}, want: "status: template: status:1: missing value for if"},
		{name: "bad when template", cfg: Config{When: "{{ end }}"}, want: "when: template: when:1: unexpected {{end}}"},
		{name: "bad group key template", cfg: Config{GroupKey: "{{ .a | nope }}"}, want: `group_key: template: group_key:1: function "nope" not defined`},
		{name: "bad generator url template", cfg: Config{GeneratorURL: "{{"}, want: "generator_url: template: generator_url:1: unclosed action"},
		{name: "invalid label name", cfg: Config{Labels: map[string]string{"team-name": "x"}}, want: "labels.team-name: invalid label name (want [a-zA-Z_][a-zA-Z0-9_]*)"},
		{name: "empty annotation name", cfg: Config{Annotations: map[string]string{"": "x"}}, want: "annotations: empty annotation name"},
		{name: "literal status", cfg: Config{Status: "critical"}, want: `status: rendered "critical", want firing or resolved`},
		{name: "override of a preset field checked too", cfg: Config{Preset: "github", Labels: map[string]string{"branch": "{{ .a"}},
			want: "labels.branch: template: labels.branch:1: unclosed action"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			source := tc.source
			if source == "" && tc.want != "source name is empty" {
				source = "ci"
			}
			m, err := tc.cfg.Compile(source)
			if err == nil {
				t.Fatalf("compiled, want error %q", tc.want)
			}
			if m != nil {
				t.Error("mapping returned with an error")
			}
			if err.Error() != tc.want {
				t.Errorf("error =\n %s\nwant\n %s", err, tc.want)
			}
			// Every error about a field names it, so a config error can
			// point at the field's line.
			var fe *FieldError
			field, _, _ := strings.Cut(tc.want, ": ")
			if tc.source == "" && tc.want == "source name is empty" {
				if errors.As(err, &fe) {
					t.Errorf("error %v names a field", err)
				}
			} else if !errors.As(err, &fe) || fe.Field != field {
				t.Errorf("error %v: want a *FieldError for %q", err, field)
			}
		})
	}
}

func TestCompileAcceptsLiteralStatus(t *testing.T) {
	t.Parallel()
	for _, s := range []string{"firing", "Resolved", " firing\n"} {
		if _, err := (Config{Status: s}).Compile("ci"); err != nil {
			t.Errorf("status %q: %v", s, err)
		}
	}
}

func TestApplyBodyErrors(t *testing.T) {
	t.Parallel()
	m := compile(t, Config{}, "ci")
	tests := []struct {
		name, body, want string
	}{
		{"empty", "", "payload is not a JSON object: body is empty"},
		{"white space", " \n", "payload is not a JSON object: body is empty"},
		{"syntax", `{"a": }`, "payload is not a JSON object: invalid character '}' looking for beginning of value"},
		{"truncated", `{"a": "b"`, "payload is not a JSON object: unexpected EOF"},
		{"array", `[1, 2]`, "payload is not a JSON object: got a JSON array"},
		{"string", `"hi"`, "payload is not a JSON object: got a JSON string"},
		{"number", `42`, "payload is not a JSON object: got a JSON number"},
		{"boolean", `true`, "payload is not a JSON object: got a JSON boolean"},
		{"null", `null`, "payload is not a JSON object: got a JSON null"},
		{"two objects", `{} {}`, "payload is not a JSON object: unexpected data after the JSON value"},
		{"trailing garbage", `{"a": 1} x`, "payload is not a JSON object: unexpected data after the JSON value"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r, err := m.Apply([]byte(tc.body), nil, testNow)
			var be *BodyError
			if !errors.As(err, &be) {
				t.Fatalf("got %+v, %v; want a *BodyError", r, err)
			}
			if err.Error() != tc.want {
				t.Errorf("error = %q, want %q", err, tc.want)
			}
			if errors.Unwrap(err) == nil {
				t.Error("BodyError does not unwrap")
			}
		})
	}
}

func TestApplyFieldErrors(t *testing.T) {
	t.Parallel()
	// The body carries a secret that must never appear in an error.
	const body = `{"repository": {"name": "octo-repo"}, "token": "s3cr3t-t0ken", "n": 5, "list": [1]}`
	tests := []struct {
		name    string
		cfg     Config
		body    string
		field   string
		contain string
	}{
		{name: "label naming a missing key", cfg: Config{Labels: map[string]string{"team": "{{ .repository.full_name }}"}},
			field: "labels.team", contain: `map has no entry for key "full_name"`},
		{name: "annotation naming a missing top-level key", cfg: Config{Annotations: map[string]string{"summary": "{{ .workflow_run.name }}"}},
			field: "annotations.summary", contain: `map has no entry for key "workflow_run"`},
		{name: "field of a string", cfg: Config{Labels: map[string]string{"x": "{{ .token.value }}"}},
			field: "labels.x", contain: "can't evaluate field value in type interface {}"},
		{name: "function error", cfg: Config{Labels: map[string]string{"x": "{{ join \",\" .token }}"}},
			field: "labels.x", contain: "join expects a slice or array, got string"},
		{name: "status neither firing nor resolved", cfg: Config{Status: "{{ .repository.name }}"},
			field: "status", contain: `rendered "octo-repo", want firing or resolved`},
		{name: "status rendering empty", cfg: Config{Status: "{{ if false }}firing{{ end }}"},
			field: "status", contain: "rendered empty, want firing or resolved"},
		{name: "long bad status is shortened", cfg: Config{Status: `{{ printf "%040d" 1 }}`},
			field: "status", contain: `rendered "00000000000000000000000000000000...", want`},
		{name: "status failing", cfg: Config{Status: "{{ .state }}"},
			field: "status", contain: `map has no entry for key "state"`},
		{name: "when failing", cfg: Config{When: "{{ .action }}"},
			field: "when", contain: `map has no entry for key "action"`},
		{name: "group key failing", cfg: Config{GroupKey: "{{ .id }}"},
			field: "group_key", contain: `map has no entry for key "id"`},
		{name: "group key rendering empty", cfg: Config{GroupKey: "{{ get \"id\" . }}"},
			field: "group_key", contain: "rendered empty"},
		{name: "generator url failing", cfg: Config{GeneratorURL: "{{ .url }}"},
			field: "generator_url", contain: `map has no entry for key "url"`},
		{name: "index out of range", cfg: Config{Labels: map[string]string{"x": "{{ index .list 3 }}"}},
			field: "labels.x", contain: "index out of range: 3"},
		{name: "comparing a number with an int", cfg: Config{When: "{{ eq .n 5 }}"},
			field: "when", contain: "incompatible types for comparison"},
		{name: "panicking function", cfg: Config{Labels: map[string]string{"x": `{{ reReplaceAll "(" "" .token }}`}},
			field: "labels.x", contain: "error calling reReplaceAll"},

		{name: "plain without text", cfg: Config{Preset: "plain"}, body: `{"labels": {"a": "b"}}`,
			field: "text", contain: `missing: a plain notification needs "text" or annotations.summary`},
		{name: "plain text not a string", cfg: Config{Preset: "plain"}, body: `{"text": 5}`, field: "text", contain: "not a string"},
		{name: "plain labels not an object", cfg: Config{Preset: "plain"}, body: `{"text": "x", "labels": ["a"]}`, field: "labels", contain: "not an object"},
		{name: "plain label value an object", cfg: Config{Preset: "plain"}, body: `{"text": "x", "labels": {"a": {"b": 1}}}`,
			field: "labels.a", contain: "not a string, number or boolean"},
		{name: "plain annotation value an array", cfg: Config{Preset: "plain"}, body: `{"text": "x", "annotations": {"a": [1]}}`,
			field: "annotations.a", contain: "not a string, number or boolean"},
		{name: "plain invalid label name", cfg: Config{Preset: "plain"}, body: `{"text": "x", "labels": {"bad name": "v"}}`,
			field: "labels", contain: `invalid label name "bad name"`},
		{name: "plain status not a string", cfg: Config{Preset: "plain"}, body: `{"text": "x", "status": true}`, field: "status", contain: "not a string"},
		{name: "plain status unknown", cfg: Config{Preset: "plain"}, body: `{"text": "x", "status": "ok"}`, field: "status", contain: `rendered "ok", want firing or resolved`},

		{name: "grafana without alerts", cfg: Config{Preset: "grafana"}, body: `{"status": "firing"}`, field: "alerts", contain: "missing or not an array"},
		{name: "grafana empty alerts", cfg: Config{Preset: "grafana"}, body: `{"alerts": []}`, field: "alerts", contain: "no alerts in payload"},
		{name: "grafana alert not an object", cfg: Config{Preset: "grafana"}, body: `{"alerts": [1]}`, field: "alerts[0]", contain: "not an object"},
		{name: "grafana bad status", cfg: Config{Preset: "grafana"}, body: `{"status": "alerting", "alerts": [{}]}`, field: "status", contain: `rendered "alerting"`},
		{name: "grafana bad alert status", cfg: Config{Preset: "grafana"}, body: `{"alerts": [{}, {"status": "pending"}]}`, field: "alerts[1].status", contain: `rendered "pending"`},
		{name: "grafana bad startsAt", cfg: Config{Preset: "grafana"}, body: `{"alerts": [{"startsAt": "yesterday"}]}`, field: "alerts[0].startsAt", contain: "not an RFC 3339 time"},
		{name: "grafana bad endsAt", cfg: Config{Preset: "grafana"}, body: `{"alerts": [{"endsAt": 5}]}`, field: "alerts[0].endsAt", contain: "not an RFC 3339 time"},
		{name: "grafana bad truncatedAlerts", cfg: Config{Preset: "grafana"}, body: `{"alerts": [{}], "truncatedAlerts": -1}`, field: "truncatedAlerts", contain: "not a non-negative integer"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.body
			if b == "" {
				b = body
			}
			m := compile(t, tc.cfg, "ci")
			r, err := m.Apply([]byte(b), nil, testNow)
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("got %+v, %v; want a *FieldError", r, err)
			}
			if fe.Field != tc.field {
				t.Errorf("Field = %q, want %q (%v)", fe.Field, tc.field, err)
			}
			if !strings.HasPrefix(err.Error(), tc.field+": ") || !strings.Contains(err.Error(), tc.contain) {
				t.Errorf("error = %q, want %q: ...%s...", err, tc.field, tc.contain)
			}
			if strings.Contains(err.Error(), "s3cr3t") {
				t.Errorf("error leaks the body: %q", err)
			}
			if errors.Unwrap(err) == nil {
				t.Error("FieldError does not unwrap")
			}
		})
	}
}

func TestWhen(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		render   string
		filtered bool
	}{
		{"", true}, {"false", true}, {"FALSE", true}, {"0", true}, {"no", true}, {" No \n", true},
		{"true", false}, {"yes", false}, {"1", false}, {"anything", false},
	} {
		m := compile(t, Config{When: `{{ .w }}`}, "ci")
		n, err := m.Apply(fmt.Appendf(nil, `{"w": %q}`, tc.render), nil, testNow)
		if filtered := errors.Is(err, ErrFiltered); filtered != tc.filtered {
			t.Errorf("when rendering %q: filtered = %v (%v)", tc.render, filtered, err)
		}
		if tc.filtered {
			if n != nil {
				t.Errorf("when rendering %q: a filtered body gave a notification", tc.render)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%q: %v", tc.render, err)
		}
		if len(n.Data.Alerts) != 1 {
			t.Errorf("when rendering %q: %d alerts", tc.render, len(n.Data.Alerts))
		}
	}
}

// TestWhenComesFirst: a filtered body is not rendered further, so the other
// fields may rely on what `when` checked.
func TestWhenComesFirst(t *testing.T) {
	t.Parallel()
	m := compile(t, Config{When: `{{ get "kind" . }}`, Labels: map[string]string{"x": "{{ .needed }}"}}, "ci")
	n, err := m.Apply([]byte(`{}`), nil, testNow)
	if !errors.Is(err, ErrFiltered) || n != nil {
		t.Fatalf("got %+v, %v; want filtered", n, err)
	}
}

func TestCustomMapping(t *testing.T) {
	t.Parallel()
	cfg := Config{
		Labels: map[string]string{
			"alertname": "BuildBroken",
			"team":      "{{ .team | toLower }}",
			"run":       "{{ .id }}",
			"event":     `{{ header "x-event-kind" }}`,
			"optional":  `{{ get "does.not.exist" . }}`,
			"first":     `{{ get "items.0.name" . }}`,
			"fallback":  `{{ get "missing" . | default "none" }}`,
			"nulled":    "{{ .nothing }}",
			"src":       "{{ source }}",
		},
		Annotations: map[string]string{
			"summary": "{{ .message | truncate 10 }}",
			"json":    `{{ get "items" . }}`,
			"flag":    `{{ get "ok" . }}`,
			"padded":  "\n  {{ .team }}  \n",
		},
		Status: `{{ if eq .state "ok" }}resolved{{ else }}firing{{ end }}`,
	}
	m := compile(t, cfg, "builds")
	body := `{"team": "Payments", "id": 9007199254740993, "message": "Build 77 broke on main", "state": "bad",
		"items": [{"name": "unit"}], "nothing": null, "ok": true}`
	n, err := m.Apply([]byte(body), http.Header{"X-Event-Kind": {"build", "second"}}, testNow)
	if err != nil {
		t.Fatal(err)
	}
	a := n.Data.Alerts[0]
	wantLabels := map[string]string{
		"alertname": "BuildBroken", "team": "payments", "run": "9007199254740993", "event": "build",
		"first": "unit", "fallback": "none", "src": "builds", "source": "builds",
	}
	if !reflect.DeepEqual(map[string]string(a.Labels), wantLabels) {
		t.Errorf("labels =\n %v\nwant\n %v", a.Labels, wantLabels)
	}
	wantAnn := map[string]string{"summary": "Build 77 b", "json": `[{"name":"unit"}]`, "flag": "true", "padded": "Payments"}
	if !reflect.DeepEqual(map[string]string(a.Annotations), wantAnn) {
		t.Errorf("annotations =\n %v\nwant\n %v", a.Annotations, wantAnn)
	}
	if n.Data.Status != "firing" || a.Status != "firing" || !a.StartsAt.Equal(testNow) || !a.EndsAt.IsZero() {
		t.Errorf("status %q/%q starts %v ends %v", n.Data.Status, a.Status, a.StartsAt, a.EndsAt)
	}
	if want := `builds:{alertname="BuildBroken",event="build",fallback="none",first="unit",run="9007199254740993",source="builds",src="builds",team="payments"}`; n.GroupKey != want {
		t.Errorf("GroupKey = %q, want %q", n.GroupKey, want)
	}
	if n.Source != "builds" || n.Data.Receiver != "builds" || !n.ReceivedAt.Equal(testNow) {
		t.Errorf("Source %q Receiver %q ReceivedAt %v", n.Source, n.Data.Receiver, n.ReceivedAt)
	}
}

func TestEmptyConfigDefaults(t *testing.T) {
	t.Parallel()
	m := compile(t, Config{}, "cron")
	n, err := m.Apply([]byte(`{"anything": 1}`), nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if n.Data.Status != "firing" || len(n.Data.Alerts) != 1 {
		t.Fatalf("got %+v", n)
	}
	if l := n.Data.Alerts[0].Labels; len(l) != 2 || l["alertname"] != "cron" || l["source"] != "cron" {
		t.Errorf("labels %v", l)
	}
	if n.GroupKey != `cron:{alertname="cron",source="cron"}` {
		t.Errorf("GroupKey = %q", n.GroupKey)
	}
	// Without a sender's own, the group labels are the common labels.
	if !reflect.DeepEqual(n.Data.GroupLabels, n.Data.CommonLabels) || n.Data.ExternalURL != "" || n.TruncatedAlerts != 0 {
		t.Errorf("group labels %v common %v external %q truncated %d", n.Data.GroupLabels, n.Data.CommonLabels, n.Data.ExternalURL, n.TruncatedAlerts)
	}
}

func TestFuncs(t *testing.T) {
	t.Parallel()
	h := http.Header{"x-lower-case": {"raw"}}
	h.Set("X-Canonical", "canon")
	hf := headerFunc(h)
	for name, want := range map[string]string{"X-Canonical": "canon", "x-canonical": "canon", "X-LOWER-CASE": "raw", "Missing": ""} {
		if got := hf(name); got != want {
			t.Errorf("header %q = %q, want %q", name, got, want)
		}
	}
	if got := headerFunc(nil)("X"); got != "" {
		t.Errorf("header on nil = %q", got)
	}

	data, err := decodeBody([]byte(`{"a": {"b": [{"c": 1.5}, "x", null]}, "f": false}`))
	if err != nil {
		t.Fatal(err)
	}
	for path, want := range map[string]string{
		"a.b.0.c": "1.5", "a.b.1": "x", "a.b.2": "", "a.b.3": "", "a.b.-1": "", "a.b.x": "",
		"a.b.1.z": "", "a.missing": "", "f": "false", "a.b.0": `{"c":1.5}`,
	} {
		if got := get(path, data); got != want {
			t.Errorf("get %q = %q, want %q", path, got, want)
		}
	}
	if got := get("", "whole"); got != "whole" {
		t.Errorf(`get "" = %q`, got)
	}

	for _, tc := range []struct {
		v    any
		want string
	}{
		{nil, ""}, {2.5, "2.5"}, {7, "7"}, {map[string]any{"k": make(chan int)}, ""},
	} {
		if got := text(tc.v); got != tc.want {
			t.Errorf("text(%v) = %q, want %q", tc.v, got, tc.want)
		}
	}
	if defaultFunc("d", "") != "d" || defaultFunc("d", "v") != "v" {
		t.Error("default")
	}
	for _, tc := range []struct {
		n        int
		in, want string
	}{
		{3, "héllo", "hél"}, {10, "short", "short"}, {0, "x", ""}, {-1, "x", ""}, {2, "ab", "ab"},
	} {
		if got := truncate(tc.n, tc.in); got != tc.want {
			t.Errorf("truncate(%d, %q) = %q, want %q", tc.n, tc.in, got, tc.want)
		}
	}
	if _, ok := funcMap("s", nil)["routeLabels"]; ok {
		t.Error("routeLabels should not be offered")
	}
}

// TestConcurrentApply runs requests with different headers at once; each
// must see its own headers (run with -race).
func TestConcurrentApply(t *testing.T) {
	t.Parallel()
	m := compile(t, Config{Labels: map[string]string{"who": `{{ header "X-Who" }}`}}, "ci")
	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for i := range 64 {
		wg.Go(func() {
			who := fmt.Sprint("caller-", i)
			n, err := m.Apply([]byte(`{}`), http.Header{"X-Who": {who}}, testNow)
			if err != nil {
				errs <- err
				return
			}
			if got := n.Data.Alerts[0].Labels["who"]; got != who {
				errs <- fmt.Errorf("got %q, want %q", got, who)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestGrafanaDefaults(t *testing.T) {
	t.Parallel()
	m := compile(t, Config{Preset: "grafana"}, "graf")
	// No top-level status or group key, one resolved and one firing alert
	// without status (inherits firing), no labels at all.
	n, err := m.Apply([]byte(`{"alerts": [{"status": "resolved", "labels": {"a": "1"}}, {"labels": {"a": "2"}}], "truncatedAlerts": 2}`), nil, testNow)
	if err != nil {
		t.Fatal(err)
	}
	if n.Data.Status != "firing" || n.Data.Alerts[0].Status != "resolved" || n.Data.Alerts[1].Status != "firing" {
		t.Errorf("statuses %q %q %q", n.Data.Status, n.Data.Alerts[0].Status, n.Data.Alerts[1].Status)
	}
	if n.GroupKey != `graf:{alertname="graf",source="graf"}` || n.TruncatedAlerts != 2 {
		t.Errorf("GroupKey %q truncated %d", n.GroupKey, n.TruncatedAlerts)
	}
	n, err = m.Apply([]byte(`{"alerts": [{"status": "resolved"}]}`), nil, testNow)
	if err != nil || n.Data.Status != "resolved" {
		t.Errorf("all resolved: %+v %v", n, err)
	}
}
