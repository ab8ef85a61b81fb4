package mixin

import (
	"bufio"
	"bytes"
	"fmt"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"text/template"

	"github.com/prometheus/common/model"
)

// metricLabels is every metric the bridge exports (the agreed contract),
// with the labels it carries besides job and instance. A metric renamed in
// the code must be renamed here and in the rules and dashboard together;
// a rule left on the old name would never fire.
var metricLabels = map[string][]string{
	"smsbridge_notifications_received_total":                 {"source", "outcome"},
	"smsbridge_intake_duration_seconds":                      {"source", "le"},
	"smsbridge_sms_failed_total":                             {"receiver"},
	"smsbridge_config_hash":                                  nil,
	"smsbridge_config_info":                                  {"hash"},
	"smsbridge_sms_api_requests_total":                       {"class"},
	"smsbridge_sms_api_request_duration_seconds":             {"le"},
	"smsbridge_sms_numbers_accepted_total":                   nil,
	"smsbridge_sms_numbers_rejected_total":                   {"code"},
	"smsbridge_sms_rate_limited_total":                       nil,
	"smsbridge_sms_rate_limit_pause_seconds_total":           nil,
	"smsbridge_sms_sent_total":                               {"receiver"},
	"smsbridge_sms_segments_sent_total":                      nil,
	"smsbridge_outbox_pending":                               nil,
	"smsbridge_outbox_oldest_pending_age_seconds":            nil,
	"smsbridge_deliveries_failed_total":                      {"reason"},
	"smsbridge_dispatch_held":                                nil,
	"smsbridge_dispatch_held_reason":                         {"kind"},
	"smsbridge_dispatch_paused_until_timestamp_seconds":      nil,
	"smsbridge_template_errors_total":                        {"receiver", "reason"},
	"smsbridge_config_last_reload_successful":                nil,
	"smsbridge_ready":                                        nil,
	"smsbridge_config_last_reload_success_timestamp_seconds": nil,
	"smsbridge_build_info":                                   {"version", "revision", "goversion"},
	"smsbridge_webhook_auth_failures_total":                  {"source", "reason"},
	"smsbridge_dispatch_leader":                              nil,
	"smsbridge_leader_changes_total":                         nil,
	"smsbridge_throttled_total":                              {"receiver"},
	"smsbridge_digests_sent_total":                           nil,
	"smsbridge_budget_segments_used":                         nil,
	"smsbridge_budget_segments_remaining":                    nil,
	"smsbridge_opted_out_numbers":                            nil,
	"smsbridge_receipts_total":                               {"status"},
	"smsbridge_receipts_unmatched_total":                     nil,
	"smsbridge_failovers_total":                              nil,
	"smsbridge_replies_total":                                {"result"},
	"smsbridge_silences_created_total":                       nil,
	"smsbridge_silence_errors_total":                         {"reason"},
	"smsbridge_escalations_total":                            {"receiver", "step"},
	"smsbridge_escalations_stopped_total":                    {"reason"},
	"smsbridge_escalation_steps_failed_total":                nil,
	"smsbridge_escalation_check_errors_total":                {"reason"},
	"up": nil,
}

// histograms may be referenced by their _bucket, _sum and _count series.
var histograms = []string{"smsbridge_sms_api_request_duration_seconds", "smsbridge_intake_duration_seconds"}

// labelValues are the bounded label values of the contract; a matcher on
// a value outside them selects nothing, so an alert on it never fires.
var labelValues = map[string]map[string][]string{
	"smsbridge_notifications_received_total": {"outcome": {"accepted", "unrouted", "filtered", "duplicate", "stale", "muted", "invalid", "unauthorized",
		"rate_limited", "too_large", "unsupported_media_type", "unknown_source", "store_error"}},
	"smsbridge_sms_api_requests_total":  {"class": {"2xx", "4xx", "5xx", "error"}},
	"smsbridge_deliveries_failed_total": {"reason": {"rejected", "max_age", "bad_request", "permanent", "budget_exhausted"}},
	"smsbridge_dispatch_held_reason":    {"kind": {"unauthorized", "suspended", "no_credits"}},
}

// The selectors every expression must carry, so that renaming the job
// (a documented edit of alerts.yml) cannot miss a rule, and every
// dashboard query follows the job and instance variables.
const (
	ruleSelector = `job=~"smsbridge"`
	runbookBase  = "https://github.com/smsbridge/smsbridge/blob/main/mixin/README.md#"
)

var dashboardSelectors = []string{`job=~"$job"`, `instance=~"$instance"`}

// knownSeries reports whether a series name is an exported metric, and
// the family whose labels apply.
func knownSeries(name string) (string, bool) {
	if _, ok := metricLabels[name]; ok {
		return name, true
	}
	if f := Family(name); f != name && slices.Contains(histograms, f) {
		return f, true
	}
	return "", false
}

// matcherRE splits a selector's matcher list into label, operator, value.
var matcherRE = regexp.MustCompile(`^\s*([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*"((?:[^"\\]|\\.)*)"\s*$`)

// checkExpr checks one expression: balanced, only known metrics, each
// with the required matchers, known labels and known bounded values.
func checkExpr(expr string, required []string) []error {
	var errs []error
	if strings.TrimSpace(expr) == "" {
		return []error{fmt.Errorf("empty expression")}
	}
	if err := checkBalanced(expr); err != nil {
		errs = append(errs, err)
	}
	refs := metricRefs(expr)
	if len(refs) == 0 {
		errs = append(errs, fmt.Errorf("references no smsbridge metric"))
	}
	for _, ref := range refs {
		family, ok := knownSeries(ref.name)
		if !ok {
			errs = append(errs, fmt.Errorf("unknown metric %s", ref.name))
			continue
		}
		if !ref.braces {
			errs = append(errs, fmt.Errorf("%s has no label matchers; it needs %s", ref.name, strings.Join(required, ", ")))
			continue
		}
		for _, req := range required {
			if !strings.Contains(ref.matchers, req) {
				errs = append(errs, fmt.Errorf("%s{%s} lacks the matcher %s", ref.name, ref.matchers, req))
			}
		}
		for m := range strings.SplitSeq(ref.matchers, ",") {
			if strings.TrimSpace(m) == "" {
				continue
			}
			parts := matcherRE.FindStringSubmatch(m)
			if parts == nil {
				errs = append(errs, fmt.Errorf("%s: cannot read matcher %q", ref.name, m))
				continue
			}
			label, op, value := parts[1], parts[2], parts[3]
			if label != "job" && label != "instance" && !slices.Contains(metricLabels[family], label) {
				errs = append(errs, fmt.Errorf("%s has no label %q", ref.name, label))
				continue
			}
			allowed := labelValues[family][label]
			if allowed == nil {
				continue
			}
			values := []string{value}
			if op == "=~" || op == "!~" {
				if !regexp.MustCompile(`^[a-z0-9_|]+$`).MatchString(value) {
					continue // a real regular expression; nothing to enumerate
				}
				values = strings.Split(value, "|")
			}
			for _, v := range values {
				if !slices.Contains(allowed, v) {
					errs = append(errs, fmt.Errorf("%s{%s}: %q is not a value of %s (%s)", ref.name, ref.matchers, v, label, strings.Join(allowed, "|")))
				}
			}
		}
	}
	return errs
}

func TestCheckExprCatchesMistakes(t *testing.T) {
	req := []string{ruleSelector}
	tests := []struct {
		name, expr string
		want       string // substring of the first error; "" = valid
	}{
		{"valid", `rate(smsbridge_sms_rate_limited_total{job=~"smsbridge"}[5m]) > 0`, ""},
		{"histogram bucket", `histogram_quantile(0.9, sum by (le) (rate(smsbridge_sms_api_request_duration_seconds_bucket{job=~"smsbridge"}[5m])))`, ""},
		{"renamed metric", `rate(smsbridge_sms_ratelimited_total{job=~"smsbridge"}[5m])`, "unknown metric smsbridge_sms_ratelimited_total"},
		{"counter with bucket suffix", `smsbridge_outbox_pending_bucket{job=~"smsbridge"}`, "unknown metric"},
		{"no matchers", `smsbridge_outbox_pending > 3`, "has no label matchers"},
		{"missing job selector", `smsbridge_outbox_pending{instance="a"}`, "lacks the matcher"},
		{"unknown label", `smsbridge_outbox_pending{job=~"smsbridge", reason="x"}`, `has no label "reason"`},
		{"typo in a bounded value", `smsbridge_deliveries_failed_total{job=~"smsbridge", reason="maxage"}`, `"maxage" is not a value of reason`},
		{"typo in an alternation", `smsbridge_sms_api_requests_total{job=~"smsbridge", class=~"5xx|eror"}`, `"eror" is not a value of class`},
		{"regex value not enumerated", `smsbridge_sms_api_requests_total{job=~"smsbridge", class=~"5.."}`, ""},
		{"unbalanced", `sum(rate(smsbridge_outbox_pending{job=~"smsbridge"}[5m])`, "unclosed"},
		{"unterminated string", `smsbridge_outbox_pending{job=~"smsbridge}`, "unterminated"},
		{"no metric", `vector(1)`, "references no smsbridge metric"},
		{"quoted brace is not structure", `label_replace(smsbridge_outbox_pending{job=~"smsbridge"}, "x", "}", "", "")`, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			errs := checkExpr(tc.expr, req)
			if tc.want == "" {
				if len(errs) > 0 {
					t.Fatalf("want valid, got %v", errs)
				}
				return
			}
			if len(errs) == 0 || !strings.Contains(errs[0].Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, errs)
			}
		})
	}
}

// promTemplateFuncs stands in for the functions Prometheus offers alert
// templates, so annotations are parsed and executed as Prometheus would.
func promTemplateFuncs() template.FuncMap {
	stub := func(args ...any) any { return fmt.Sprint(args...) }
	fm := template.FuncMap{}
	for _, n := range []string{"query", "first", "label", "value", "strvalue", "args", "reReplaceAll",
		"safeHtml", "match", "title", "toUpper", "toLower", "graphLink", "tableLink", "sortByLabel",
		"stripPort", "stripDomain", "humanize", "humanize1024", "humanizeDuration", "humanizePercentage",
		"humanizeTimestamp", "toTime", "toDuration", "pathPrefix", "externalURL", "parseDuration", "now",
		"urlQueryEscape"} {
		fm[n] = stub
	}
	return fm
}

// expandAnnotation parses and runs an alert template with the variables
// Prometheus defines ($labels, $value, ...).
func expandAnnotation(text string, labels map[string]string) (string, error) {
	const defs = "{{$labels := .Labels}}{{$externalLabels := .ExternalLabels}}{{$externalURL := .ExternalURL}}{{$value := .Value}}"
	tmpl, err := template.New("annotation").Funcs(promTemplateFuncs()).Option("missingkey=zero").Parse(defs + text)
	if err != nil {
		return "", err
	}
	var out bytes.Buffer
	data := struct {
		Labels, ExternalLabels map[string]string
		ExternalURL            string
		Value                  float64
	}{labels, map[string]string{}, "http://prometheus", 42}
	if err := tmpl.Execute(&out, data); err != nil {
		return "", err
	}
	return out.String(), nil
}

// readmeAnchors returns the GitHub anchors of README.md's headings.
func readmeAnchors(t *testing.T) map[string]bool {
	t.Helper()
	f, err := os.Open("README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	anchors := map[string]bool{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "#") {
			continue
		}
		h := strings.ToLower(strings.TrimSpace(strings.TrimLeft(line, "#")))
		var b strings.Builder
		for _, r := range h {
			switch {
			case r >= 'a' && r <= 'z', r >= '0' && r <= '9', r == '_', r == '-':
				b.WriteRune(r)
			case r == ' ':
				b.WriteRune('-')
			}
		}
		anchors[b.String()] = true
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return anchors
}

func TestParseRulesIsStrict(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"unknown key", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up\n        labels: {severity: x}\n        annotation: {}\n", "field annotation not found"},
		{"second document", "groups: []\n---\ngroups: []\n", "more than one YAML document"},
		{"wrong type", "groups: {name: g}\n", "cannot unmarshal"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseRules([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("want error containing %q, got %v", tc.want, err)
			}
		})
	}
}

func TestAlertRules(t *testing.T) {
	rf, err := ParseRules(Alerts())
	if err != nil {
		t.Fatal(err)
	}
	if len(rf.Groups) == 0 {
		t.Fatal("no rule groups")
	}
	anchors := readmeAnchors(t)
	seen := map[string]Rule{}
	// Every label an alert may group by; executing the annotations with
	// all of them set proves the templates run, not only parse.
	sample := map[string]string{"job": "smsbridge", "instance": "smsbridge:9754", "reason": "max_age",
		"code": "invalid_number", "kind": "no_credits", "receiver": "ops", "source": "alertmanager", "outcome": "unauthorized"}
	for _, g := range rf.Groups {
		if g.Name == "" {
			t.Error("a rule group has no name")
		}
		if len(g.Rules) == 0 {
			t.Errorf("group %q has no rules", g.Name)
		}
		for i, r := range g.Rules {
			where := fmt.Sprintf("group %q rule %d (%s)", g.Name, i, r.Alert)
			if r.Alert == "" || r.Record != "" {
				t.Errorf("%s: want an alerting rule (alert set, record unset)", where)
				continue
			}
			if !regexp.MustCompile(`^Smsbridge[A-Z][A-Za-z]+$`).MatchString(r.Alert) {
				t.Errorf("%s: alert name should be Smsbridge<CamelCase>, the prefix alertmanager.yml routes on", where)
			}
			if _, dup := seen[r.Alert]; dup {
				t.Errorf("%s: duplicate alert name", where)
			}
			seen[r.Alert] = r
			for _, e := range checkExpr(r.Expr, []string{ruleSelector}) {
				t.Errorf("%s: expr: %v", where, e)
			}
			if strings.Contains(r.Expr, "$") {
				t.Errorf("%s: expr contains a Grafana variable", where)
			}
			if r.For != "" {
				if _, err := model.ParseDuration(r.For); err != nil {
					t.Errorf("%s: for: %v", where, err)
				}
			}
			switch r.Labels["severity"] {
			case "critical", "warning":
			default:
				t.Errorf("%s: labels.severity %q, want critical or warning", where, r.Labels["severity"])
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: annotation %s missing", where, a)
				}
			}
			// The description is what an on-call reads at night: it must
			// say what to do, not only what is wrong.
			if !strings.Contains(r.Annotations["description"], "What to do") {
				t.Errorf("%s: description has no \"What to do\" part", where)
			}
			for k, v := range r.Annotations {
				out, err := expandAnnotation(v, sample)
				if err != nil {
					t.Errorf("%s: annotation %s: %v", where, k, err)
				} else if strings.Contains(out, "<no value>") {
					t.Errorf("%s: annotation %s expands to %q", where, k, out)
				}
			}
			anchor, ok := strings.CutPrefix(r.Annotations["runbook_url"], runbookBase)
			if !ok || anchor != strings.ToLower(r.Alert) || !anchors[anchor] {
				t.Errorf("%s: runbook_url %q must be %s%s, a heading of README.md", where, r.Annotations["runbook_url"], runbookBase, strings.ToLower(r.Alert))
			}
		}
	}

	// The alerts the issue asks for, by what they watch. Deleting one, or
	// pointing it at another metric, fails here.
	required := []struct {
		alert, metric, severity, forAtLeast string
	}{
		{"SmsbridgeDown", "up", "critical", "1m"},
		{"SmsbridgeAbsent", "up", "critical", "1m"},
		{"SmsbridgeQueueHeld", "smsbridge_dispatch_held_reason", "critical", "2m"},
		{"SmsbridgeQueueHeld", "smsbridge_dispatch_held", "critical", "2m"},
		{"SmsbridgeOutboxBacklog", "smsbridge_outbox_oldest_pending_age_seconds", "warning", "5m"},
		{"SmsbridgeOutboxBacklogCritical", "smsbridge_outbox_oldest_pending_age_seconds", "critical", "5m"},
		{"SmsbridgeDeliveriesFailed", "smsbridge_deliveries_failed_total", "warning", ""},
		{"SmsbridgeNumbersRejected", "smsbridge_sms_numbers_rejected_total", "warning", ""},
		{"SmsbridgeProviderRateLimiting", "smsbridge_sms_rate_limited_total", "warning", ""},
		{"SmsbridgeConfigReloadFailed", "smsbridge_config_last_reload_successful", "warning", "1m"},
		{"SmsbridgeTemplateErrors", "smsbridge_template_errors_total", "warning", ""},
		{"SmsbridgeAPIErrors", "smsbridge_sms_api_requests_total", "warning", ""},
		{"SmsbridgeIntakeRejected", "smsbridge_notifications_received_total", "warning", ""},
		{"SmsbridgeNotificationsUnrouted", "smsbridge_notifications_received_total", "warning", ""},
		{"SmsbridgeStoreErrors", "smsbridge_notifications_received_total", "critical", ""},
		{"SmsbridgeNotReady", "smsbridge_ready", "critical", "1m"},
		{"SmsbridgeBudgetLow", "smsbridge_budget_segments_used", "warning", "1m"},
		{"SmsbridgeBudgetSpent", "smsbridge_budget_segments_remaining", "critical", "1m"},
		{"SmsbridgeThrottlingSustained", "smsbridge_throttled_total", "warning", "30m"},
		{"SmsbridgeNumberOptedOut", "smsbridge_opted_out_numbers", "critical", "1m"},
		{"SmsbridgeSilencesFailing", "smsbridge_silence_errors_total", "warning", ""},
		{"SmsbridgeEscalationStepFailed", "smsbridge_escalation_steps_failed_total", "critical", ""},
		{"SmsbridgeEscalationChecksFailing", "smsbridge_escalation_check_errors_total", "warning", ""},
	}
	for _, req := range required {
		r, ok := seen[req.alert]
		if !ok {
			t.Errorf("alert %s missing", req.alert)
			continue
		}
		var names []string
		for _, ref := range metricRefs(r.Expr) {
			names = append(names, ref.name)
		}
		if !slices.Contains(names, req.metric) {
			t.Errorf("%s: expr does not use %s: %s", req.alert, req.metric, r.Expr)
		}
		if r.Labels["severity"] != req.severity {
			t.Errorf("%s: severity %q, want %q", req.alert, r.Labels["severity"], req.severity)
		}
		if req.forAtLeast != "" {
			got, _ := model.ParseDuration(r.For)
			want, _ := model.ParseDuration(req.forAtLeast)
			if got < want {
				t.Errorf("%s: for %q, want at least %s so one bad scrape does not page", req.alert, r.For, req.forAtLeast)
			}
		}
	}
}

func TestDashboard(t *testing.T) {
	d, err := ParseDashboard(Dashboard())
	if err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("uid %q title %q: both needed for provisioning", d.UID, d.Title)
	}
	if d.SchemaVersion < 36 {
		t.Errorf("schemaVersion %d: want 36 or later (datasource references by uid)", d.SchemaVersion)
	}

	vars := map[string]Variable{}
	for _, v := range d.Templating.List {
		vars[v.Name] = v
	}
	if v, ok := vars["datasource"]; !ok || v.Type != "datasource" || v.Query != "prometheus" {
		t.Errorf("want a datasource variable of type prometheus, got %+v", v)
	}
	for _, name := range []string{"job", "instance"} {
		v, ok := vars[name]
		if !ok || v.Type != "query" || v.Datasource == nil || v.Datasource.UID != "${datasource}" {
			t.Errorf("want a query variable %s on ${datasource}, got %+v", name, v)
		}
	}

	ids := map[int]bool{}
	used := map[string]bool{}
	var laidOut []Panel
	for _, p := range d.AllPanels() {
		where := fmt.Sprintf("panel %d %q", p.ID, p.Title)
		if ids[p.ID] {
			t.Errorf("%s: duplicate id", where)
		}
		ids[p.ID] = true
		g := p.GridPos
		if g.W <= 0 || g.H <= 0 || g.X < 0 || g.X+g.W > 24 {
			t.Errorf("%s: gridPos %+v outside the 24-column grid", where, g)
		}
		for _, q := range laidOut {
			h := q.GridPos
			if g.X < h.X+h.W && h.X < g.X+g.W && g.Y < h.Y+h.H && h.Y < g.Y+g.H {
				t.Errorf("%s overlaps panel %d %q", where, q.ID, q.Title)
			}
		}
		laidOut = append(laidOut, p)
		if p.Type == "row" {
			continue
		}
		if p.Title == "" {
			t.Errorf("%s: no title", where)
		}
		if p.Datasource == nil || p.Datasource.UID != "${datasource}" {
			t.Errorf("%s: datasource %+v, want uid ${datasource}", where, p.Datasource)
		}
		if len(p.Targets) == 0 {
			t.Errorf("%s: no targets", where)
		}
		refs := map[string]bool{}
		for _, tg := range p.Targets {
			if tg.RefID == "" || refs[tg.RefID] {
				t.Errorf("%s: refId %q empty or repeated", where, tg.RefID)
			}
			refs[tg.RefID] = true
			if tg.Datasource == nil || tg.Datasource.UID != "${datasource}" {
				t.Errorf("%s/%s: datasource %+v, want uid ${datasource}", where, tg.RefID, tg.Datasource)
			}
			for _, e := range checkExpr(tg.Expr, dashboardSelectors) {
				t.Errorf("%s/%s: %v", where, tg.RefID, e)
			}
			for _, ref := range metricRefs(tg.Expr) {
				used[ref.name] = true
			}
		}
	}

	// What the issue asks the dashboard to show.
	for _, m := range []string{
		"smsbridge_notifications_received_total",            // intake by source and outcome
		"smsbridge_sms_sent_total",                          // sends per receiver
		"smsbridge_sms_numbers_rejected_total",              // rejections by code
		"smsbridge_sms_rate_limited_total",                  // 429 pauses
		"smsbridge_sms_rate_limit_pause_seconds_total",      // time paused
		"smsbridge_sms_api_request_duration_seconds_bucket", // API latency
		"smsbridge_sms_api_requests_total",                  // API requests by class
		"smsbridge_outbox_pending",                          // queue depth
		"smsbridge_outbox_oldest_pending_age_seconds",       // queue age
		"smsbridge_dispatch_held",                           // held state
		"smsbridge_dispatch_held_reason",                    // and why
		"smsbridge_deliveries_failed_total",                 // failures by reason
		"smsbridge_config_last_reload_successful",           // reload status
		"smsbridge_throttled_total",                         // held by the throttle
		"smsbridge_digests_sent_total",                      // digests
		"smsbridge_budget_segments_used",                    // the day's budget
		"smsbridge_budget_segments_remaining",
		"smsbridge_intake_duration_seconds_bucket", // intake latency
		"smsbridge_sms_failed_total",               // failures per receiver
	} {
		if !used[m] {
			t.Errorf("no dashboard panel shows %s", m)
		}
	}
}

func TestMetricNamesAreKnown(t *testing.T) {
	names, err := MetricNames()
	if err != nil {
		t.Fatal(err)
	}
	if len(names) < 10 {
		t.Fatalf("only %d metric families found: %v", len(names), names)
	}
	for _, n := range names {
		if _, ok := metricLabels[n]; !ok {
			t.Errorf("%s is referenced but not a known smsbridge metric", n)
		}
	}
	if !slices.Contains(names, "smsbridge_sms_api_request_duration_seconds") {
		t.Error("the latency histogram should be reported by its family name")
	}
}
