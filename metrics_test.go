package main

import (
	"bufio"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
	dto "github.com/prometheus/client_model/go"

	"github.com/smsbridge/smsbridge/mixin"
	"github.com/smsbridge/smsbridge/receiver"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// metricsConfig has every kind of source (open, authenticated, rate
// limited), a throttle and a budget, so that the registry holds every
// series it can ever have.
const metricsConfig = `
sms:
  url: SMS_URL
  api_key_file: KEY_FILE
alertmanager:
  auth: {type: bearer, secret: am-token-not-a-real-one}
webhooks:
  - name: ci
    preset: plain
    rate_limit: {per_second: 5}
  - name: gh
    preset: github
throttle:
  per_number: [{count: 5, per: 15m}]
budget:
  daily_segments: 500
people:
  - {name: alice, number: "+27830000002"}
oncall:
  - name: dbas
    rotation: {members: [alice], shift: 1w, start: "2026-01-05T09:00"}
    notify_handoff: true
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["+27830000001"]
    oncall: [dbas]
    escalate: [{after: 10m, receiver: managers}]
  - name: managers
    numbers: ["+27830000003"]
`

// family is one metric family of the registry: its type and, for each
// label, the values its series have.
type family struct {
	labels map[string][]string
}

// registryFamilies gathers the bridge's own metrics (smsbridge_*).
func registryFamilies(t *testing.T, tb *testBridge) map[string]family {
	t.Helper()
	mfs, err := tb.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]family{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "smsbridge_") {
			continue
		}
		f := family{labels: map[string][]string{}}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if !slices.Contains(f.labels[l.GetName()], l.GetValue()) {
					f.labels[l.GetName()] = append(f.labels[l.GetName()], l.GetValue())
				}
			}
		}
		out[mf.GetName()] = f
	}
	return out
}

// readmeMetrics reads the metric table of README.md: each backticked
// name{labels} in its first column.
func readmeMetrics(t *testing.T) map[string][]string {
	t.Helper()
	f, err := os.Open("README.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	out := map[string][]string{}
	in := false
	cell := regexp.MustCompile("`([a-z_]+)(?:\\{([a-z_,]*)\\})?`")
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "## "):
			in = line == "## Metrics"
			continue
		case !in || !strings.HasPrefix(line, "| `"):
			continue
		}
		first := strings.Split(line, "|")[1]
		for _, m := range cell.FindAllStringSubmatch(first, -1) {
			var labels []string
			if m[2] != "" {
				labels = strings.Split(m[2], ",")
			}
			slices.Sort(labels)
			out["smsbridge_"+m[1]] = labels
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) < 10 {
		t.Fatalf("only %d metrics in README.md's table: is the section still called \"## Metrics\"?", len(out))
	}
	return out
}

// TestReadmeMetricTable: the README's metric table names every metric the
// bridge exports, with its labels, and nothing it does not.
func TestReadmeMetricTable(t *testing.T) {
	tb := newTestBridge(t, metricsConfig, smsfake.Options{})
	reg := registryFamilies(t, tb)
	doc := readmeMetrics(t)
	for name, f := range reg {
		labels, ok := doc[name]
		if !ok {
			t.Errorf("%s is exported but not in README.md's metric table", name)
			continue
		}
		var got []string
		for l := range f.labels {
			if l != "le" {
				got = append(got, l)
			}
		}
		sort.Strings(got)
		if !slices.Equal(got, labels) {
			t.Errorf("README.md lists %s with labels %v; the bridge exports %v", name, labels, got)
		}
	}
	for name := range doc {
		if _, ok := reg[name]; !ok {
			t.Errorf("README.md lists %s, which the bridge does not export", name)
		}
	}
}

// TestMetricsLint runs Prometheus's metric linter on what the bridge
// exports.
func TestMetricsLint(t *testing.T) {
	tb := newTestBridge(t, metricsConfig, smsfake.Options{})
	problems, err := promlint.NewWithMetricFamilies(gatherOwn(t, tb)).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestMixinMatchesTheRegistry: every rule and dashboard query of mixin/
// selects metrics the bridge exports, by labels they have, and every
// label value a matcher names exists: a matcher on anything else selects
// nothing, and the alert never fires.
func TestMixinMatchesTheRegistry(t *testing.T) {
	tb := newTestBridge(t, metricsConfig, smsfake.Options{})
	reg := registryFamilies(t, tb)
	exprs, err := mixin.Expressions()
	if err != nil {
		t.Fatal(err)
	}
	plainValues := regexp.MustCompile(`^[a-zA-Z0-9_|]+$`)
	checked := 0
	for _, e := range exprs {
		sels := mixin.Selectors(e.Expr)
		labelsOf := map[string]bool{"job": true, "instance": true, "le": true}
		for _, s := range sels {
			if s.Metric == "up" {
				continue
			}
			name := s.Metric
			f, ok := reg[name]
			if !ok {
				name = mixin.Family(s.Metric)
				f, ok = reg[name]
			}
			if !ok {
				t.Errorf("%s: %s is not a metric the bridge exports", e.Where, s.Metric)
				continue
			}
			for l := range f.labels {
				labelsOf[l] = true
			}
			for _, m := range s.Matchers {
				if m.Op == "" {
					t.Errorf("%s: %s: cannot read the matcher %q", e.Where, s.Metric, m.Value)
					continue
				}
				if m.Label == "job" || m.Label == "instance" {
					continue
				}
				values, ok := f.labels[m.Label]
				if !ok {
					t.Errorf("%s: %s has no label %q", e.Where, name, m.Label)
					continue
				}
				if m.Op == "=~" || m.Op == "!~" {
					if !plainValues.MatchString(m.Value) {
						continue // a real regular expression: nothing to enumerate
					}
				}
				for _, v := range strings.Split(m.Value, "|") {
					checked++
					if !slices.Contains(values, v) {
						t.Errorf("%s: %s{%s%s%q}: no series has %s=%q (values: %v)", e.Where, name, m.Label, m.Op, m.Value, m.Label, v, values)
					}
				}
			}
		}
		for _, l := range mixin.GroupingLabels(e.Expr) {
			if !labelsOf[l] {
				t.Errorf("%s: groups by %q, a label none of its metrics has", e.Where, l)
			}
		}
	}
	if checked < 10 {
		t.Errorf("only %d label values checked: the test no longer reads the mixin", checked)
	}
}

// TestIntakeRejectedMeansRefused: the alert on refused posts covers
// exactly the outcomes the intake answers with 4xx: not the ones it
// accepts (202: accepted, unrouted, filtered) nor the store's 503.
func TestIntakeRejectedMeansRefused(t *testing.T) {
	rf, err := mixin.ParseRules(mixin.Alerts())
	if err != nil {
		t.Fatal(err)
	}
	var expr string
	for _, g := range rf.Groups {
		for _, r := range g.Rules {
			if r.Alert == "SmsbridgeIntakeRejected" {
				expr = r.Expr
			}
		}
	}
	var got []string
	for _, s := range mixin.Selectors(expr) {
		for _, m := range s.Matchers {
			if m.Label == "outcome" && m.Op == "=~" {
				got = strings.Split(m.Value, "|")
			}
		}
	}
	var want []string
	for _, o := range receiver.Outcomes() {
		if !slices.Contains(receiver.SinkOutcomes(), o) && o != receiver.OutcomeStoreError {
			want = append(want, o)
		}
	}
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("SmsbridgeIntakeRejected matches outcomes %v, want the 4xx ones %v", got, want)
	}
}

// TestConfigHashMetric: smsbridge_config_hash is the configuration's hash
// as a number, as alertmanager_config_hash, and changes with a reload that
// changes the file; smsbridge_config_info carries the hash the status page
// shows, one series at a time.
func TestConfigHashMetric(t *testing.T) {
	tb := newTestBridge(t, routedConfig, smsfake.Options{})
	first := tb.gen.Load().File.Hash
	if v := tb.metricValue(t, "smsbridge_config_hash", nil); v != configHashValue(first) || v == 0 {
		t.Errorf("config hash %v, want %v", v, configHashValue(first))
	}
	if v := tb.metricValue(t, "smsbridge_config_info", map[string]string{"hash": first[:12]}); v != 1 {
		t.Errorf("config info %v", v)
	}
	cfg := strings.NewReplacer("SMS_URL", tb.fake.URL, "KEY_FILE", filepath.Join(filepath.Dir(tb.cfg), "key")).
		Replace(strings.Replace(routedConfig, "rate_limit: 100", "rate_limit: 50", 1))
	writeFile(t, filepath.Dir(tb.cfg), "smsbridge.yml", cfg)
	if err := tb.reload(); err != nil {
		t.Fatal(err)
	}
	second := tb.gen.Load().File.Hash
	if second == first {
		t.Fatal("the reload did not change the hash")
	}
	if v := tb.metricValue(t, "smsbridge_config_hash", nil); v != configHashValue(second) {
		t.Errorf("config hash after the reload %v, want %v", v, configHashValue(second))
	}
	info := registryFamilies(t, tb)["smsbridge_config_info"].labels["hash"]
	if !slices.Equal(info, []string{second[:12]}) {
		t.Errorf("config info series %v, want only %s", info, second[:12])
	}
}

func TestConfigHashValue(t *testing.T) {
	for hash, want := range map[string]float64{
		"000000000001ffff": 1,
		"ffffffffffff0000": 281474976710655, // 2^48-1: exact in a float64
		"0123456789ab":     0x0123456789ab,
		"short":            0,
		"not hex at all!!": 0,
	} {
		if got := configHashValue(hash); got != want {
			t.Errorf("configHashValue(%q) = %v, want %v", hash, got, want)
		}
	}
}

// gatherOwn gathers the bridge's own metric families.
func gatherOwn(t *testing.T, tb *testBridge) []*dto.MetricFamily {
	t.Helper()
	mfs, err := tb.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	return slices.DeleteFunc(mfs, func(mf *dto.MetricFamily) bool { return !strings.HasPrefix(mf.GetName(), "smsbridge_") })
}
