// Package mixin holds what monitors smsbridge itself: the Prometheus
// alerting rules in alerts.yml and the Grafana dashboard in dashboard.json.
//
// The two files are the product; README.md says how to load them. This
// package embeds them so that their tests, and any test that builds the
// daemon's metrics registry, can check that every metric they reference is
// one the bridge exports: a renamed metric then breaks a test instead of
// silently turning an alert into one that never fires.
package mixin

import (
	"bytes"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"

	"gopkg.in/yaml.v3"
)

// files is read-only content compiled into the binary, not mutable state.
//
//go:embed alerts.yml dashboard.json
var files embed.FS

// Alerts returns the alerting rules file as shipped.
func Alerts() []byte { return mustRead("alerts.yml") }

// Dashboard returns the Grafana dashboard JSON as shipped.
func Dashboard() []byte { return mustRead("dashboard.json") }

func mustRead(name string) []byte {
	b, err := files.ReadFile(name)
	if err != nil {
		// The go:embed directive guarantees the file; reaching this is a
		// build defect, not a runtime condition.
		panic(fmt.Sprintf("mixin: embedded %s missing: %v", name, err))
	}
	return b
}

// RuleFile is the Prometheus rule file format (the subset smsbridge uses;
// unknown keys are errors so a typo cannot hide a rule setting).
type RuleFile struct {
	Groups []RuleGroup `yaml:"groups"`
}

// RuleGroup is one group of rules.
type RuleGroup struct {
	Name     string `yaml:"name"`
	Interval string `yaml:"interval,omitempty"`
	Rules    []Rule `yaml:"rules"`
}

// Rule is one alerting or recording rule.
type Rule struct {
	Alert         string            `yaml:"alert,omitempty"`
	Record        string            `yaml:"record,omitempty"`
	Expr          string            `yaml:"expr"`
	For           string            `yaml:"for,omitempty"`
	KeepFiringFor string            `yaml:"keep_firing_for,omitempty"`
	Labels        map[string]string `yaml:"labels,omitempty"`
	Annotations   map[string]string `yaml:"annotations,omitempty"`
}

// ParseRules strictly decodes a rule file: unknown keys and a second YAML
// document are errors.
func ParseRules(data []byte) (*RuleFile, error) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	var rf RuleFile
	if err := dec.Decode(&rf); err != nil {
		return nil, fmt.Errorf("decode rules: %w", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		// Prometheus reads only the first document and ignores the rest.
		return nil, errors.New("decode rules: more than one YAML document; Prometheus would ignore all but the first")
	}
	return &rf, nil
}

// DashboardJSON is the part of a Grafana dashboard the checks read.
type DashboardJSON struct {
	UID           string  `json:"uid"`
	Title         string  `json:"title"`
	SchemaVersion int     `json:"schemaVersion"`
	Panels        []Panel `json:"panels"`
	Templating    struct {
		List []Variable `json:"list"`
	} `json:"templating"`
}

// Panel is one dashboard panel; rows may nest panels when collapsed.
type Panel struct {
	ID         int         `json:"id"`
	Type       string      `json:"type"`
	Title      string      `json:"title"`
	Datasource *Datasource `json:"datasource"`
	GridPos    struct {
		H, W, X, Y int
	} `json:"gridPos"`
	Targets []Target `json:"targets"`
	Panels  []Panel  `json:"panels"`
}

// Target is one query of a panel.
type Target struct {
	RefID      string      `json:"refId"`
	Expr       string      `json:"expr"`
	Datasource *Datasource `json:"datasource"`
}

// Datasource is a panel's or target's data source reference.
type Datasource struct {
	Type string `json:"type"`
	UID  string `json:"uid"`
}

// Variable is one templating variable.
type Variable struct {
	Name       string      `json:"name"`
	Type       string      `json:"type"`
	Query      any         `json:"query"`
	Datasource *Datasource `json:"datasource"`
}

// ParseDashboard decodes a dashboard; unknown keys are allowed because
// Grafana's model has hundreds of them.
func ParseDashboard(data []byte) (*DashboardJSON, error) {
	var d DashboardJSON
	if err := json.Unmarshal(data, &d); err != nil {
		return nil, fmt.Errorf("decode dashboard: %w", err)
	}
	return &d, nil
}

// AllPanels returns the panels, with those nested in collapsed rows.
func (d *DashboardJSON) AllPanels() []Panel {
	var out []Panel
	for _, p := range d.Panels {
		out = append(out, p)
		out = append(out, p.Panels...)
	}
	return out
}

// Expression is one PromQL expression and where it comes from.
type Expression struct {
	// Where names the rule ("alerts.yml: SmsbridgeDown") or the panel
	// ("dashboard.json: API latency/B").
	Where string
	Expr  string
}

// Expressions returns every PromQL expression in the rules and the
// dashboard.
func Expressions() ([]Expression, error) {
	rf, err := ParseRules(Alerts())
	if err != nil {
		return nil, err
	}
	d, err := ParseDashboard(Dashboard())
	if err != nil {
		return nil, err
	}
	var out []Expression
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			out = append(out, Expression{Where: "alerts.yml: " + r.Alert + r.Record, Expr: r.Expr})
		}
	}
	for _, p := range d.AllPanels() {
		for _, t := range p.Targets {
			out = append(out, Expression{Where: "dashboard.json: " + p.Title + "/" + t.RefID, Expr: t.Expr})
		}
	}
	return out, nil
}

// MetricNames returns the smsbridge metric families referenced by the rules
// and the dashboard, sorted and without repeats. Histogram series
// (_bucket, _sum, _count) are reported by their family name, as the
// registry names them.
func MetricNames() ([]string, error) {
	exprs, err := Expressions()
	if err != nil {
		return nil, err
	}
	var names []string
	for _, e := range exprs {
		for _, ref := range metricRefs(e.Expr) {
			if strings.HasPrefix(ref.name, "smsbridge_") {
				names = append(names, Family(ref.name))
			}
		}
	}
	slices.Sort(names)
	return slices.Compact(names), nil
}

// Family maps a series name to its metric family: counters end in _total,
// so a _bucket, _sum or _count suffix can only be a histogram's or
// summary's.
func Family(series string) string {
	for _, s := range []string{"_bucket", "_sum", "_count"} {
		if f, ok := strings.CutSuffix(series, s); ok {
			return f
		}
	}
	return series
}

// metricRef is one metric name in an expression, with the label matchers
// written after it ("" when it has none).
type metricRef struct {
	name     string
	matchers string
	braces   bool
}

// metricName finds smsbridge_ metrics and Prometheus's own "up"; other
// identifiers in an expression are functions, keywords or label names.
var metricName = regexp.MustCompile(`\b(smsbridge_[a-zA-Z0-9_:]+|up)\b`)

// metricRefs lists the metric names of expr with their matchers. String
// literals are blanked first so a label value never reads as a metric.
func metricRefs(expr string) []metricRef {
	blank := blankStrings(expr)
	var out []metricRef
	for _, loc := range metricName.FindAllStringIndex(blank, -1) {
		rest := strings.TrimLeft(blank[loc[1]:], " \t\n")
		ref := metricRef{name: blank[loc[0]:loc[1]]}
		if strings.HasPrefix(rest, "{") {
			start := len(blank) - len(rest)
			end := strings.IndexByte(blank[start:], '}')
			if end >= 0 {
				ref.braces = true
				ref.matchers = expr[start+1 : start+end]
			}
		}
		out = append(out, ref)
	}
	return out
}

// blankStrings replaces the contents of quoted string literals with
// spaces, keeping every offset, so structure can be scanned without
// tripping over quoted braces or names.
func blankStrings(expr string) string {
	b := []byte(expr)
	var quote byte
	for i := 0; i < len(b); i++ {
		c := b[i]
		switch {
		case quote == 0 && (c == '"' || c == '\'' || c == '`'):
			quote = c
		case quote != 0 && c == '\\' && quote != '`' && i+1 < len(b):
			b[i], b[i+1] = ' ', ' '
			i++
		case quote != 0 && c == quote:
			quote = 0
		case quote != 0:
			b[i] = ' '
		}
	}
	return string(b)
}

// checkBalanced reports unterminated strings and unbalanced brackets: the
// PromQL mistakes a hand edit most often makes. It is not a parser; the
// optional promcheck step runs Prometheus's own.
func checkBalanced(expr string) error {
	blank := blankStrings(expr)
	if n := strings.Count(blank, `"`) + strings.Count(blank, `'`) + strings.Count(blank, "`"); n%2 != 0 {
		return errors.New("unterminated string literal")
	}
	pairs := map[byte]byte{')': '(', ']': '[', '}': '{'}
	var stack []byte
	for i := 0; i < len(blank); i++ {
		switch c := blank[i]; c {
		case '(', '[', '{':
			stack = append(stack, c)
		case ')', ']', '}':
			if len(stack) == 0 || stack[len(stack)-1] != pairs[c] {
				return fmt.Errorf("unbalanced %q at offset %d", c, i)
			}
			stack = stack[:len(stack)-1]
		}
	}
	if len(stack) > 0 {
		return fmt.Errorf("unclosed %q", stack[len(stack)-1])
	}
	return nil
}

// Matcher is one label matcher of a selector: label, operator (=, !=, =~,
// !~) and the value as written.
type Matcher struct {
	Label, Op, Value string
}

// Selector is one metric name in an expression with its matchers.
type Selector struct {
	// Metric is the series name as written (a histogram's _bucket
	// included); Family maps it to the metric family.
	Metric   string
	Matchers []Matcher
}

// matcherSplitRE splits one matcher into label, operator and value.
var matcherSplitRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)

// Selectors returns the metric selectors of expr, smsbridge's metrics and
// "up", in order. A matcher it cannot read is returned with an empty
// operator, so that a caller can report it.
func Selectors(expr string) []Selector {
	var out []Selector
	for _, ref := range metricRefs(expr) {
		sel := Selector{Metric: ref.name}
		for m := range strings.SplitSeq(ref.matchers, ",") {
			if strings.TrimSpace(m) == "" {
				continue
			}
			p := matcherSplitRE.FindStringSubmatch(m)
			if p == nil {
				sel.Matchers = append(sel.Matchers, Matcher{Value: m})
				continue
			}
			sel.Matchers = append(sel.Matchers, Matcher{Label: p[1], Op: p[2], Value: p[3]})
		}
		out = append(out, sel)
	}
	return out
}

// groupingRE finds the label lists of by (...) and without (...).
var groupingRE = regexp.MustCompile(`\b(?:by|without|on|ignoring)\s*\(([^)]*)\)`)

// GroupingLabels returns the labels expr aggregates or matches by, in
// by (...), without (...), on (...) and ignoring (...) clauses.
func GroupingLabels(expr string) []string {
	var out []string
	for _, m := range groupingRE.FindAllStringSubmatch(blankStrings(expr), -1) {
		for l := range strings.SplitSeq(m[1], ",") {
			if l = strings.TrimSpace(l); l != "" {
				out = append(out, l)
			}
		}
	}
	return out
}
