package mapping

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"text/template"
	"time"

	amtemplate "github.com/prometheus/alertmanager/template"
	"github.com/prometheus/common/model"

	"github.com/smsbridge/smsbridge/alert"
)

// Template names of the scalar fields; they appear in compile and field errors.
const (
	fieldStatus       = "status"
	fieldWhen         = "when"
	fieldGroupKey     = "group_key"
	fieldGeneratorURL = "generator_url"
)

// Config is the mapping part of one `webhooks:` entry. Every value is a Go
// template evaluated over the decoded JSON body; see the package documentation
// for the data, the functions and the rules for missing keys.
type Config struct {
	// Preset names a built-in mapping (github, gitlab, grafana, plain) whose
	// fields the ones below override one by one.
	Preset string `yaml:"preset"`
	// Labels maps a label name to a template giving its value. A label that
	// renders empty is dropped, which also removes a preset's label.
	Labels map[string]string `yaml:"labels"`
	// Annotations maps an annotation name to a template giving its value; like
	// labels, empty ones are dropped.
	Annotations map[string]string `yaml:"annotations"`
	// Status is a template rendering "firing" or "resolved"; default firing.
	Status string `yaml:"status"`
	// When is an optional template; a body for which it renders "", "false",
	// "0" or "no" is filtered: accepted, counted, and sends nothing.
	When string `yaml:"when"`
	// GroupKey is a template for the notification's group key; the source name
	// and a colon are always put in front of it. Default: the source plus the
	// sorted labels the alerts have in common.
	GroupKey string `yaml:"group_key"`
	// GeneratorURL is a template for each alert's link back to its sender.
	GeneratorURL string `yaml:"generator_url"`
}

// Mapping is a compiled Config for one source. It is safe for concurrent use.
type Mapping struct {
	source string
	root   *template.Template

	labels       []string // label names with a template, sorted
	annotations  []string // annotation names with a template, sorted
	status       bool     // which scalar fields have a template
	when         bool
	groupKey     bool
	generatorURL bool

	expand func(body map[string]any) (*expansion, error)
}

// ErrFiltered is returned by Apply for a body the `when` template rejects:
// the request is accepted and counted, and sends nothing.
var ErrFiltered = errors.New("filtered by the mapping's when template")

// BodyError reports a body that is not a single JSON object; the HTTP handler
// answers 400.
type BodyError struct {
	Err error
}

func (e *BodyError) Error() string { return "payload is not a JSON object: " + e.Err.Error() }

func (e *BodyError) Unwrap() error { return e.Err }

// FieldError reports a mapping field that failed. From Apply it is a field
// that failed for this body, for example a template naming a key the body
// lacks, or a status that is neither firing nor resolved; the HTTP handler
// answers 422. Field is then the config field ("labels.team", "status",
// "when", ...) or the payload key a preset needs ("alerts[0].startsAt"). From
// Compile it is a config field that cannot be compiled ("preset",
// "labels.team"), so that a configuration error can point at its line. The
// message never contains the body, though a template function's own error
// may quote the argument it was given.
type FieldError struct {
	Field string
	Err   error
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Err.Error() }

func (e *FieldError) Unwrap() error { return e.Err }

// expansion is what a Go-coded preset (grafana, plain) makes of a body before
// the templates apply.
type expansion struct {
	status      string
	alerts      []amtemplate.Alert
	groupKey    string
	truncated   int
	externalURL string
	// groupLabels are the sender's own group labels; nil means the labels
	// the alerts have in common.
	groupLabels map[string]string
}

// labelNameRE is Prometheus' classic label name syntax; routing matchers and
// templates handle such names without quoting.
var labelNameRE = regexp.MustCompile(`^[a-zA-Z_][a-zA-Z0-9_]*$`)

// Compile merges the preset (if any) with c, the user's fields overriding the
// preset's one by one, and parses every template. Errors are *FieldError
// naming the field, as in
// `labels.team: template: labels.team:1: function "foo" not defined`.
func (c Config) Compile(source string) (*Mapping, error) {
	if source == "" {
		return nil, errors.New("source name is empty")
	}
	merged := c
	var p preset
	if c.Preset != "" {
		var ok bool
		if p, ok = presetByName(c.Preset); !ok {
			return nil, &FieldError{Field: "preset", Err: fmt.Errorf("unknown preset %q (want one of %s)", c.Preset, strings.Join(Presets(), ", "))}
		}
		merged = merge(p.config, c)
	}

	m := &Mapping{source: source, expand: p.expand}
	m.root = template.New("").Funcs(funcMap(source, nil))
	if p.helpers != "" {
		if _, err := m.root.New("preset." + c.Preset).Parse(p.helpers); err != nil {
			return nil, fmt.Errorf("preset %s: %w", c.Preset, err)
		}
	}
	parse := func(name, text string) error {
		if _, err := m.root.New(name).Parse(text); err != nil {
			return &FieldError{Field: name, Err: err}
		}
		return nil
	}

	for _, k := range slices.Sorted(maps.Keys(merged.Labels)) {
		if !labelNameRE.MatchString(k) {
			return nil, &FieldError{Field: "labels." + k, Err: errors.New("invalid label name (want [a-zA-Z_][a-zA-Z0-9_]*)")}
		}
		if err := parse("labels."+k, merged.Labels[k]); err != nil {
			return nil, err
		}
		m.labels = append(m.labels, k)
	}
	for _, k := range slices.Sorted(maps.Keys(merged.Annotations)) {
		if k == "" {
			return nil, &FieldError{Field: "annotations", Err: errors.New("empty annotation name")}
		}
		if err := parse("annotations."+k, merged.Annotations[k]); err != nil {
			return nil, err
		}
		m.annotations = append(m.annotations, k)
	}
	scalars := []struct {
		name string
		text string
		set  *bool
	}{
		{fieldStatus, merged.Status, &m.status},
		{fieldWhen, merged.When, &m.when},
		{fieldGroupKey, merged.GroupKey, &m.groupKey},
		{fieldGeneratorURL, merged.GeneratorURL, &m.generatorURL},
	}
	for _, s := range scalars {
		if s.text == "" {
			continue
		}
		if err := parse(s.name, s.text); err != nil {
			return nil, err
		}
		*s.set = true
	}
	// A literal status can be checked now instead of failing every request.
	if merged.Status != "" && !strings.Contains(merged.Status, "{{") {
		if _, err := parseStatus(merged.Status); err != nil {
			return nil, &FieldError{Field: fieldStatus, Err: err}
		}
	}
	return m, nil
}

// merge returns the preset's config with the user's fields laid over it.
func merge(base, user Config) Config {
	out := Config{
		Preset:       user.Preset,
		Labels:       maps.Clone(base.Labels),
		Annotations:  maps.Clone(base.Annotations),
		Status:       base.Status,
		When:         base.When,
		GroupKey:     base.GroupKey,
		GeneratorURL: base.GeneratorURL,
	}
	if out.Labels == nil {
		out.Labels = map[string]string{}
	}
	if out.Annotations == nil {
		out.Annotations = map[string]string{}
	}
	maps.Copy(out.Labels, user.Labels)
	maps.Copy(out.Annotations, user.Annotations)
	for _, f := range []struct {
		dst *string
		src string
	}{
		{&out.Status, user.Status},
		{&out.When, user.When},
		{&out.GroupKey, user.GroupKey},
		{&out.GeneratorURL, user.GeneratorURL},
	} {
		if f.src != "" {
			*f.dst = f.src
		}
	}
	return out
}

// Apply maps one webhook body, received at now, to the notification it
// stands for. The error is ErrFiltered when the `when` template rejects the
// body, otherwise a *BodyError or a *FieldError.
func (m *Mapping) Apply(body []byte, header http.Header, now time.Time) (*alert.Notification, error) {
	data, err := decodeBody(body)
	if err != nil {
		return nil, err
	}
	x, err := m.executor(header)
	if err != nil {
		return nil, err
	}

	if m.when {
		out, err := x.run(fieldWhen, data)
		if err != nil {
			return nil, err
		}
		if falsy(out) {
			return nil, ErrFiltered
		}
	}

	var exp *expansion
	if m.expand != nil {
		if exp, err = m.expand(data); err != nil {
			return nil, err
		}
	} else {
		exp = &expansion{status: alert.StatusFiring, alerts: []amtemplate.Alert{{}}}
	}

	status := exp.status
	statusSet := m.expand == nil
	if m.status {
		out, err := x.run(fieldStatus, data)
		if err != nil {
			return nil, err
		}
		if status, err = parseStatus(out); err != nil {
			return nil, &FieldError{Field: fieldStatus, Err: err}
		}
		statusSet = true
	}

	labels, err := x.renderAll("labels.", m.labels, data)
	if err != nil {
		return nil, err
	}
	annotations, err := x.renderAll("annotations.", m.annotations, data)
	if err != nil {
		return nil, err
	}
	var generatorURL string
	if m.generatorURL {
		if generatorURL, err = x.run(fieldGeneratorURL, data); err != nil {
			return nil, err
		}
	}

	alerts := exp.alerts
	allLabels := make([]amtemplate.KV, len(alerts))
	allAnnotations := make([]amtemplate.KV, len(alerts))
	for i := range alerts {
		a := &alerts[i]
		if statusSet {
			a.Status = status
		}
		a.Labels = overlay(a.Labels, m.labels, labels)
		a.Annotations = overlay(a.Annotations, m.annotations, annotations)
		if m.generatorURL {
			a.GeneratorURL = generatorURL
		}
		if a.Labels["source"] == "" {
			a.Labels["source"] = m.source
		}
		if a.Labels[model.AlertNameLabel] == "" {
			a.Labels[model.AlertNameLabel] = m.source
		}
		if a.StartsAt.IsZero() {
			a.StartsAt = now
		}
		if a.Status == alert.StatusResolved && a.EndsAt.IsZero() {
			a.EndsAt = now
		}
		a.Fingerprint = alert.Fingerprint(a.Labels)
		allLabels[i], allAnnotations[i] = a.Labels, a.Annotations
	}

	// The data of a group, built the way Alertmanager builds it, so that
	// templates see a webhook like an Alertmanager notification.
	n := &alert.Notification{
		Source:          m.source,
		TruncatedAlerts: exp.truncated,
		ReceivedAt:      now,
		Data: amtemplate.Data{
			Receiver:          m.source,
			Status:            status,
			Alerts:            alerts,
			CommonLabels:      alert.Common(allLabels),
			CommonAnnotations: alert.Common(allAnnotations),
			ExternalURL:       exp.externalURL,
		},
	}
	n.Data.GroupLabels = amtemplate.KV(maps.Clone(exp.groupLabels))
	if exp.groupLabels == nil {
		n.Data.GroupLabels = maps.Clone(n.Data.CommonLabels)
	}

	switch {
	case m.groupKey:
		out, err := x.run(fieldGroupKey, data)
		if err != nil {
			return nil, err
		}
		if out == "" {
			return nil, &FieldError{Field: fieldGroupKey, Err: errors.New("rendered empty")}
		}
		n.GroupKey = m.source + ":" + out
	case exp.groupKey != "":
		n.GroupKey = m.source + ":" + exp.groupKey
	default:
		n.GroupKey = m.source + ":" + labelString(n.Data.CommonLabels)
	}
	return n, nil
}

// overlay applies rendered template values to an alert's map: a non-empty
// value sets the key, an empty one removes it.
func overlay(dst map[string]string, names []string, rendered map[string]string) map[string]string {
	if dst == nil {
		dst = make(map[string]string, len(names)+2)
	}
	for _, k := range names {
		if v := rendered[k]; v != "" {
			dst[k] = v
		} else {
			delete(dst, k)
		}
	}
	return dst
}

// executor holds a per-request copy of the template set whose `header`
// function sees this request's headers.
type executor struct {
	t *template.Template
}

func (m *Mapping) executor(h http.Header) (*executor, error) {
	t, err := m.root.Clone()
	if err != nil {
		return nil, fmt.Errorf("clone templates: %w", err)
	}
	t.Funcs(template.FuncMap{"header": headerFunc(h)})
	return &executor{t: t}, nil
}

// run executes one field's template and trims the surrounding white space
// that YAML block scalars and template layout leave behind.
func (x *executor) run(name string, data any) (string, error) {
	t := x.t.Lookup(name)
	if t == nil {
		return "", &FieldError{Field: name, Err: errors.New("no template")}
	}
	// Clone does not carry options over to associated templates, so set it
	// on this request's copy; a missing key must fail, not render "<no value>".
	t.Option("missingkey=error")
	var b bytes.Buffer
	if err := t.Execute(&b, data); err != nil {
		return "", &FieldError{Field: name, Err: err}
	}
	return strings.TrimSpace(b.String()), nil
}

func (x *executor) renderAll(prefix string, names []string, data any) (map[string]string, error) {
	out := make(map[string]string, len(names))
	for _, k := range names {
		v, err := x.run(prefix+k, data)
		if err != nil {
			return nil, err
		}
		out[k] = v
	}
	return out, nil
}

// falsy reports whether a rendered `when` filters the body out.
func falsy(s string) bool {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "false", "0", "no":
		return true
	}
	return false
}

func parseStatus(s string) (string, error) {
	switch v := strings.ToLower(strings.TrimSpace(s)); v {
	case alert.StatusFiring, alert.StatusResolved:
		return v, nil
	case "":
		return "", errors.New("rendered empty, want firing or resolved")
	default:
		if len(v) > 32 {
			v = v[:32] + "..."
		}
		return "", fmt.Errorf("rendered %q, want firing or resolved", v)
	}
}

// decodeBody decodes a body that must be exactly one JSON object. Numbers stay
// json.Number so large IDs keep every digit; JSON null becomes "" so that a
// null field renders empty instead of "<no value>".
func decodeBody(body []byte) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, &BodyError{Err: errors.New("body is empty")}
		}
		return nil, &BodyError{Err: err}
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &BodyError{Err: errors.New("unexpected data after the JSON value")}
	}
	obj, ok := v.(map[string]any)
	if !ok {
		return nil, &BodyError{Err: fmt.Errorf("got a JSON %s", jsonKind(v))}
	}
	nullsToEmpty(obj)
	return obj, nil
}

func jsonKind(v any) string {
	switch v.(type) {
	case []any:
		return "array"
	case string:
		return "string"
	case json.Number:
		return "number"
	case bool:
		return "boolean"
	default:
		return "null"
	}
}

func nullsToEmpty(v any) {
	switch c := v.(type) {
	case map[string]any:
		for k, e := range c {
			if e == nil {
				c[k] = ""
				continue
			}
			nullsToEmpty(e)
		}
	case []any:
		for i, e := range c {
			if e == nil {
				c[i] = ""
				continue
			}
			nullsToEmpty(e)
		}
	}
}

// labelString renders labels sorted by name, as {a="1",b="2"}.
func labelString(labels map[string]string) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(strconv.Quote(labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}
