package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestShippedFilesAreValid(t *testing.T) {
	var out strings.Builder
	if n := run("../..", &out); n != 0 {
		t.Fatalf("%d problems:\n%s", n, out.String())
	}
}

// TestCatchesBrokenFiles proves the checks can fail: a PromQL error in a
// rule, in a dashboard query, and an Alertmanager config error.
func TestCatchesBrokenFiles(t *testing.T) {
	root := t.TempDir()
	write := func(rel, content string) {
		t.Helper()
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("mixin/alerts.yml", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: sum by (job (up)\n")
	write("mixin/dashboard.json", `{"panels":[{"title":"p","targets":[{"refId":"A","expr":"rate(up[$__rate_interval]"}]}]}`)
	write("examples/alertmanager/alertmanager.yml", "route:\n  receiver: missing\nreceivers: []\n")
	var out strings.Builder
	n := run(root, &out)
	if n != 3 {
		t.Fatalf("want 3 problems, got %d:\n%s", n, out.String())
	}
	for _, want := range []string{"alerts.yml", "p/A", "alertmanager.yml"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not name %s:\n%s", want, out.String())
		}
	}
}
