package mapping

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/alert"
)

// preset is a built-in mapping: template fields a user may override one by
// one, named helper templates those fields (and the user's) may call, and for
// payloads with dynamic keys or several alerts, Go code that builds the alerts.
type preset struct {
	config  Config
	helpers string
	expand  func(body map[string]any) (*expansion, error)
}

// Presets returns the names of the built-in presets.
func Presets() []string {
	return []string{"github", "gitlab", "grafana", "plain"}
}

func presetByName(name string) (preset, bool) {
	switch name {
	case "github":
		return githubPreset(), true
	case "gitlab":
		return gitlabPreset(), true
	case "grafana":
		return preset{expand: expandGrafana}, true
	case "plain":
		return preset{expand: expandPlain}, true
	}
	return preset{}, false
}

// githubPreset maps workflow_run, check_suite and check_run events. The
// X-GitHub-Event header names the event, and each event keeps its object
// under the key of the same name. Only completed runs pass `when`; failure,
// timed_out and startup_failure fire, success resolves, and everything else
// (cancelled, skipped, neutral, stale, action_required, other events) is
// filtered.
func githubPreset() preset {
	return preset{
		helpers: `
{{- define "github.name" -}}
  {{- $ev := header "X-GitHub-Event" -}}
  {{- if eq $ev "workflow_run" }}{{ get "workflow_run.name" . }}
  {{- else if eq $ev "check_run" }}{{ get "check_run.name" . }}
  {{- else if eq $ev "check_suite" }}{{ get "check_suite.app.name" . }}
  {{- end -}}
{{- end -}}
{{- define "github.branch" -}}
  {{- $ev := header "X-GitHub-Event" -}}
  {{- if eq $ev "check_run" }}{{ get "check_run.check_suite.head_branch" . }}
  {{- else }}{{ get (print $ev ".head_branch") . }}
  {{- end -}}
{{- end -}}
{{- define "github.conclusion" }}{{ get (print (header "X-GitHub-Event") ".conclusion") . }}{{ end -}}
{{- define "github.url" -}}
  {{- $ev := header "X-GitHub-Event" -}}
  {{- if eq $ev "check_suite" }}{{ get "repository.html_url" . }}/commit/{{ get "check_suite.head_sha" . }}
  {{- else }}{{ get (print $ev ".html_url") . }}
  {{- end -}}
{{- end -}}`,
		config: Config{
			When: `
{{- $ev := header "X-GitHub-Event" -}}
{{- if and (eq (get "action" .) "completed") (match "^(workflow_run|check_suite|check_run)$" $ev) -}}
  {{- match "^(success|failure|timed_out|startup_failure)$" (get (print $ev ".conclusion") .) -}}
{{- end -}}`,
			Status: `{{ if eq (get (print (header "X-GitHub-Event") ".conclusion") .) "success" }}resolved{{ else }}firing{{ end }}`,
			Labels: map[string]string{
				"alertname": `
{{- $ev := header "X-GitHub-Event" -}}
{{- if eq $ev "workflow_run" }}GitHubWorkflowFailed
{{- else if eq $ev "check_suite" }}GitHubCheckSuiteFailed
{{- else }}GitHubCheckFailed{{ end -}}`,
				"repository": `{{ get "repository.full_name" . }}`,
				"branch":     `{{ template "github.branch" . }}`,
				"workflow":   `{{ if eq (header "X-GitHub-Event") "workflow_run" }}{{ get "workflow_run.name" . }}{{ end }}`,
				"check":      `{{ if ne (header "X-GitHub-Event") "workflow_run" }}{{ template "github.name" . }}{{ end }}`,
			},
			Annotations: map[string]string{
				"summary": `
{{- $c := get (print (header "X-GitHub-Event") ".conclusion") . -}}
CI {{ if eq $c "success" }}passed{{ else }}failed{{ end }}: {{ get "repository.full_name" . }} {{ template "github.name" . }} on {{ template "github.branch" . }}
{{- if ne $c "success" }} ({{ $c }}){{ end }}`,
				"url":        `{{ template "github.url" . }}`,
				"conclusion": `{{ template "github.conclusion" . }}`,
			},
			GeneratorURL: `{{ template "github.url" . }}`,
		},
	}
}

// gitlabPreset maps pipeline events (object_kind "pipeline") and job events
// (object_kind "build"); the body says which, so X-Gitlab-Event is not needed.
// failed fires and success resolves; every other status (running, canceled,
// skipped, manual, ...) is filtered, and so is a failed job that is allowed to
// fail.
func gitlabPreset() preset {
	return preset{
		helpers: `
{{- define "gitlab.status" -}}
  {{- if eq (get "object_kind" .) "build" }}{{ get "build_status" . }}{{ else }}{{ get "object_attributes.status" . }}{{ end -}}
{{- end -}}
{{- define "gitlab.project" -}}
  {{- get "project.path_with_namespace" . | default (get "project_name" .) -}}
{{- end -}}
{{- define "gitlab.ref" -}}
  {{- if eq (get "object_kind" .) "build" }}{{ get "ref" . }}{{ else }}{{ get "object_attributes.ref" . }}{{ end -}}
{{- end -}}
{{- define "gitlab.url" -}}
  {{- if eq (get "object_kind" .) "build" -}}
    {{ get "project.web_url" . | default (get "repository.homepage" .) }}/-/jobs/{{ get "build_id" . }}
  {{- else -}}
    {{ get "object_attributes.url" . | default (print (get "project.web_url" .) "/-/pipelines/" (get "object_attributes.id" .)) }}
  {{- end -}}
{{- end -}}`,
		config: Config{
			When: `
{{- $k := get "object_kind" . -}}
{{- if eq $k "pipeline" -}}
  {{- match "^(failed|success)$" (get "object_attributes.status" .) -}}
{{- else if eq $k "build" -}}
  {{- $s := get "build_status" . -}}
  {{- or (eq $s "success") (and (eq $s "failed") (ne (get "build_allow_failure" .) "true")) -}}
{{- end -}}`,
			Status: `
{{- $s := get "object_attributes.status" . }}{{ if eq (get "object_kind" .) "build" }}{{ $s = get "build_status" . }}{{ end -}}
{{- if eq $s "success" }}resolved{{ else }}firing{{ end -}}`,
			Labels: map[string]string{
				"alertname":  `{{ if eq (get "object_kind" .) "build" }}GitLabJobFailed{{ else }}GitLabPipelineFailed{{ end }}`,
				"repository": `{{ template "gitlab.project" . }}`,
				"branch":     `{{ template "gitlab.ref" . }}`,
				"job":        `{{ if eq (get "object_kind" .) "build" }}{{ get "build_name" . }}{{ end }}`,
			},
			Annotations: map[string]string{
				"summary": `
{{- $k := get "object_kind" . -}}
{{- $s := get "object_attributes.status" . }}{{ if eq $k "build" }}{{ $s = get "build_status" . }}{{ end -}}
CI {{ if eq $s "success" }}passed{{ else }}failed{{ end }}: {{ template "gitlab.project" . }}
{{- if eq $k "build" }} job {{ get "build_name" . }} (stage {{ get "build_stage" . }}){{ else }} pipeline #{{ get "object_attributes.id" . }}{{ end }} on {{ template "gitlab.ref" . }}
{{- if ne $s "success" }} ({{ $s }}){{ end }}`,
				"url":            `{{ template "gitlab.url" . }}`,
				"conclusion":     `{{ template "gitlab.status" . }}`,
				"failure_reason": `{{ if eq (get "build_status" .) "failed" }}{{ get "build_failure_reason" . }}{{ end }}`,
			},
			GeneratorURL: `{{ template "gitlab.url" . }}`,
		},
	}
}

// expandGrafana maps Grafana alerting's webhook contact point payload, which
// is Alertmanager's webhook payload plus extra keys, to one alert per entry
// of "alerts".
func expandGrafana(body map[string]any) (*expansion, error) {
	raw, ok := body["alerts"].([]any)
	if !ok {
		return nil, &FieldError{Field: "alerts", Err: errors.New("missing or not an array")}
	}
	if len(raw) == 0 {
		return nil, &FieldError{Field: "alerts", Err: errors.New("no alerts in payload")}
	}
	status := ""
	if s := text(body["status"]); s != "" {
		var err error
		if status, err = parseStatus(s); err != nil {
			return nil, &FieldError{Field: "status", Err: err}
		}
	}

	exp := &expansion{
		groupKey:    text(body["groupKey"]),
		externalURL: text(body["externalURL"]),
	}
	if g, ok := body["groupLabels"]; ok {
		exp.groupLabels = withoutInternal(stringMap(g))
	}
	if n := text(body["truncatedAlerts"]); n != "" {
		t, err := strconv.Atoi(n)
		if err != nil || t < 0 {
			return nil, &FieldError{Field: "truncatedAlerts", Err: errors.New("not a non-negative integer")}
		}
		exp.truncated = t
	}

	anyFiring := false
	for i, r := range raw {
		field := fmt.Sprintf("alerts[%d]", i)
		obj, ok := r.(map[string]any)
		if !ok {
			return nil, &FieldError{Field: field, Err: errors.New("not an object")}
		}
		a := amtemplate.Alert{
			Labels:       stringMap(obj["labels"]),
			Annotations:  stringMap(obj["annotations"]),
			GeneratorURL: text(obj["generatorURL"]),
		}
		a.Labels = withoutInternal(a.Labels)
		for key, name := range map[string]string{
			"silenceURL":   "silence_url",
			"dashboardURL": "dashboard_url",
			"panelURL":     "panel_url",
			"valueString":  "value_string",
		} {
			if v := text(obj[key]); v != "" {
				a.Annotations[name] = v
			}
		}
		if v := formatValues(obj["values"]); v != "" {
			a.Annotations["values"] = v
		}

		a.Status = status
		if s := text(obj["status"]); s != "" {
			var err error
			if a.Status, err = parseStatus(s); err != nil {
				return nil, &FieldError{Field: field + ".status", Err: err}
			}
		}
		if a.Status == "" {
			a.Status = alert.StatusFiring
		}
		anyFiring = anyFiring || a.Status == alert.StatusFiring

		var err error
		if a.StartsAt, err = parseTime(obj["startsAt"]); err != nil {
			return nil, &FieldError{Field: field + ".startsAt", Err: err}
		}
		if a.EndsAt, err = parseTime(obj["endsAt"]); err != nil {
			return nil, &FieldError{Field: field + ".endsAt", Err: err}
		}
		// Alertmanager sets endsAt in the future on firing alerts; only a
		// resolved alert has really ended.
		if a.Status == alert.StatusFiring {
			a.EndsAt = time.Time{}
		}
		exp.alerts = append(exp.alerts, a)
	}
	exp.status = status
	if exp.status == "" {
		exp.status = alert.StatusResolved
		if anyFiring {
			exp.status = alert.StatusFiring
		}
	}
	return exp, nil
}

// expandPlain maps {"text": ..., "labels": {...}, "annotations": {...},
// "status": ...}, the shape for curl and scripts, to one alert.
func expandPlain(body map[string]any) (*expansion, error) {
	a := amtemplate.Alert{Labels: amtemplate.KV{}, Annotations: amtemplate.KV{}}
	for _, f := range []struct {
		key      string
		dst      map[string]string
		isLabels bool
	}{
		{"labels", a.Labels, true},
		{"annotations", a.Annotations, false},
	} {
		v, ok := body[f.key]
		if !ok || v == "" {
			continue
		}
		obj, ok := v.(map[string]any)
		if !ok {
			return nil, &FieldError{Field: f.key, Err: errors.New("not an object")}
		}
		for _, k := range slices.Sorted(maps.Keys(obj)) {
			var s string
			switch c := obj[k].(type) {
			case map[string]any, []any:
				return nil, &FieldError{Field: f.key + "." + k, Err: errors.New("not a string, number or boolean")}
			default:
				s = strings.TrimSpace(text(c))
			}
			if f.isLabels && !labelNameRE.MatchString(k) {
				return nil, &FieldError{Field: f.key, Err: fmt.Errorf("invalid label name %q", truncate(64, k))}
			}
			if s != "" {
				f.dst[k] = s
			}
		}
	}

	switch t := body["text"].(type) {
	case nil:
	case string:
		if t = strings.TrimSpace(t); t != "" {
			a.Annotations["summary"] = t
		}
	default:
		return nil, &FieldError{Field: "text", Err: errors.New("not a string")}
	}
	if a.Annotations["summary"] == "" {
		return nil, &FieldError{Field: "text", Err: errors.New(`missing: a plain notification needs "text" or annotations.summary`)}
	}

	status := alert.StatusFiring
	if v, ok := body["status"]; ok && v != "" {
		s, isString := v.(string)
		if !isString {
			return nil, &FieldError{Field: "status", Err: errors.New("not a string")}
		}
		var err error
		if status, err = parseStatus(s); err != nil {
			return nil, &FieldError{Field: "status", Err: err}
		}
	}
	a.Status = status
	return &expansion{status: status, alerts: []amtemplate.Alert{a}}, nil
}

// stringMap turns a JSON object of scalars into labels or annotations,
// dropping empty values; anything but an object gives an empty map.
func stringMap(v any) map[string]string {
	out := map[string]string{}
	obj, ok := v.(map[string]any)
	if !ok {
		return out
	}
	for k, e := range obj {
		if s := text(e); k != "" && s != "" {
			out[k] = s
		}
	}
	return out
}

// withoutInternal drops the labels Grafana marks as internal the way
// Prometheus does ("__" first); they only make routing and fingerprints
// noisy.
func withoutInternal(labels map[string]string) map[string]string {
	maps.DeleteFunc(labels, func(k, _ string) bool { return strings.HasPrefix(k, "__") })
	return labels
}

// formatValues renders Grafana's "values" object as "B=44.2 C=1", sorted.
func formatValues(v any) string {
	obj, ok := v.(map[string]any)
	if !ok {
		return ""
	}
	parts := make([]string, 0, len(obj))
	for _, k := range slices.Sorted(maps.Keys(obj)) {
		parts = append(parts, k+"="+text(obj[k]))
	}
	return strings.Join(parts, " ")
}

func parseTime(v any) (time.Time, error) {
	s := text(v)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return time.Time{}, errors.New("not an RFC 3339 time")
	}
	if t.IsZero() {
		return time.Time{}, nil
	}
	return t, nil
}
