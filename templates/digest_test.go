package templates

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestDigestGolden renders digest lines and digests and compares them with
// testdata/digest.golden. Run with -update to rewrite it.
func TestDigestGolden(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, Options{})
	var b strings.Builder
	b.WriteString("# sms.digest.item of each fixture\n")
	for _, name := range []string{"firing_1", "firing_3", "firing_50_truncated", "resolved_all", "mixed", "unicode", "webhook_1"} {
		line := r.Summary("ops", loadFixture(t, name))
		if strings.Contains(line, "\n") || !IsGSM(line) {
			t.Errorf("%s: summary %q is not one GSM line", name, line)
		}
		fmt.Fprintf(&b, "%s: %s\n", name, line)
	}
	at := time.Date(2026, 3, 1, 3, 0, 0, 0, time.UTC)
	item := func(i int, status, summary string) DigestItem {
		return DigestItem{Summary: summary, Status: status, Text: strings.ToUpper(status) + ":1 Alert" + fmt.Sprint(i),
			Receiver: "ops", Source: "alertmanager", ReceivedAt: at}
	}
	three := []DigestItem{item(1, "firing", "FIRING DiskFull db1"), item(2, "resolved", "RESOLVED NodeDown n3"), item(3, "firing", "FIRING HighLatency api")}
	var many []DigestItem
	for i := range 40 {
		many = append(many, item(i, "firing", fmt.Sprintf("FIRING DiskFull db%d", i)))
	}
	noSummary := []DigestItem{{Status: "firing", Text: "FIRING:1 Old\nwarning db1", Receiver: "ops"}, item(2, "firing", "FIRING New")}
	for _, tc := range []struct {
		name        string
		items       []DigestItem
		maxSegments int
	}{
		{"three in one segment", three, 1},
		{"three squeezed", three, 0},
		{"forty in one segment", many, 1},
		{"forty in two segments", many, 2},
		{"a row from before summaries", noSummary, 1},
	} {
		text, segs := r.Digest("ops", tc.items, tc.maxSegments)
		max := tc.maxSegments
		if max == 0 {
			max = DefaultMaxSegments
		}
		if segs != Segments(text) || segs > max {
			t.Errorf("%s: %d segments (%d counted), want at most %d", tc.name, segs, Segments(text), max)
		}
		if strings.HasSuffix(text, ellipsis) {
			t.Errorf("%s: cut to fit instead of counting the rest: %q", tc.name, text)
		}
		if !strings.HasPrefix(text, fmt.Sprintf("%d held: ", len(tc.items))) {
			t.Errorf("%s: %q does not start with the count", tc.name, text)
		}
		fmt.Fprintf(&b, "# %s (max %d)\n%s\n", tc.name, tc.maxSegments, text)
	}
	got := b.String()
	path := filepath.Join("testdata", "digest.golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs (run go test -update if the change is intended)\ngot:\n%s\nwant:\n%s", path, got, want)
	}
}

// TestDigestTemplates: a template file may redefine the digest templates;
// one that cannot run is refused at load, and one that fails for some
// data falls back to the built-in one, counted.
func TestDigestTemplates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	custom := writeFile(t, dir, "custom.tmpl", `{{ define "sms.digest" }}{{ .Count }} waiting{{ end }}{{ define "sms.digest.item" }}{{ .Status }}{{ end }}`)
	r := newRenderer(t, Options{Files: []string{custom}})
	if text, _ := r.Digest("ops", []DigestItem{{Summary: "a"}, {Summary: "b"}}, 1); text != "2 waiting" {
		t.Errorf("custom digest %q", text)
	}
	if got := r.Summary("ops", loadFixture(t, "firing_1")); got != "firing" {
		t.Errorf("custom item %q", got)
	}
	for _, bad := range []string{
		`{{ define "sms.digest" }}{{ .Nope.Deeper }}{{ end }}`,
		`{{ define "sms.digest.item" }}{{ template "nosuch" . }}{{ end }}`,
	} {
		if _, err := New(Options{Files: []string{writeFile(t, t.TempDir(), "bad.tmpl", bad)}}); err == nil || !strings.Contains(err.Error(), "sms.digest") {
			t.Errorf("%s: New = %v, want an error naming the template", bad, err)
		}
	}
	// Fails only for some data: an item the sample has, a real one lacks.
	reg := prometheus.NewRegistry()
	fragile := writeFile(t, dir, "fragile.tmpl", `{{ define "sms.digest" }}{{ (index .Items 1).Summary }}{{ end }}`)
	r = newRenderer(t, Options{Files: []string{fragile}, Metrics: NewMetrics(reg)})
	text, _ := r.Digest("ops", []DigestItem{{Summary: "only"}}, 1)
	if text != "1 held: only" {
		t.Errorf("fallback digest %q", text)
	}
	if n, _ := errorCount(t, reg, "ops"); n != 1 {
		t.Errorf("template errors %v, want 1", n)
	}
}
