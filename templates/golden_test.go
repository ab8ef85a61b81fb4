package templates

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/prometheus/alertmanager/template"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// loadFixture reads a notification from testdata/<name>.json, which has the
// shape of an Alertmanager webhook payload plus "source".
func loadFixture(t testing.TB, name string) *Data {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var d Data
	if err := json.Unmarshal(b, &d); err != nil {
		t.Fatalf("decode %s: %v", name, err)
	}
	return &d
}

// TestGolden renders each fixture with the default template and compares
// the text with testdata/<name>.golden. Run with -update to rewrite them.
func TestGolden(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, Options{})
	tests := []struct {
		name string
		// maxSegments is what the text must fit in without being cut:
		// the cost we promise for that kind of notification.
		maxSegments int
	}{
		{"firing_1", 1},
		{"firing_3", 2},
		{"firing_50_truncated", 2},
		// 13 alerts through max_alerts: 10: FIRING:13, three listed,
		// "+10 more".
		{"firing_13_max10", 2},
		{"resolved_all", 2},
		{"mixed", 2},
		{"unicode", 2},
		{"webhook_1", 1},
		{"webhook_nostatus", 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := loadFixture(t, tt.name)
			text, segments, err := r.Render("ops", "", d, 0)
			if err != nil {
				t.Fatal(err)
			}
			if !IsGSM(text) {
				t.Errorf("text is not GSM-7: %q", text)
			}
			if segments != Segments(text) {
				t.Errorf("segments = %d, Segments(text) = %d", segments, Segments(text))
			}
			if segments > tt.maxSegments {
				t.Errorf("segments = %d, want at most %d:\n%s", segments, tt.maxSegments, text)
			}
			if strings.HasSuffix(text, ellipsis) {
				t.Errorf("default template output was cut to fit:\n%s", text)
			}
			got := fmt.Sprintf("# segments=%d septets=%d\n%s\n", segments, Septets(text), text)
			path := filepath.Join("testdata", tt.name+".golden")
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
		})
	}
}

// TestCountsAgree renders groups of every shape with the default template
// and checks the arithmetic a reader does: the header's counts equal the
// alerts listed plus "+N more".
func TestCountsAgree(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, Options{})
	header := regexp.MustCompile(`^(?:FIRING:(\d+))? ?(?:RESOLVED:(\d+))?`)
	more := regexp.MustCompile(`\n\+(\d+) more$`)
	tests := []struct {
		name                        string
		firing, resolved, truncated int
		wantHeader                  string
	}{
		{"one", 1, 0, 0, "FIRING:1"},
		{"one of many truncated", 1, 0, 4, "FIRING:5"},
		{"three", 3, 0, 0, "FIRING:3"},
		{"max_alerts 10 of 13", 10, 0, 3, "FIRING:13"},
		{"fifty and twelve truncated", 50, 0, 12, "FIRING:62"},
		{"mixed", 4, 2, 0, "FIRING:4 RESOLVED:2"},
		{"mixed and truncated", 4, 2, 5, "FIRING:9 RESOLVED:2"},
		{"resolved", 0, 3, 0, "RESOLVED:3"},
		{"resolved and truncated", 0, 10, 3, "RESOLVED:13"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d := &Data{Source: "alertmanager", TruncatedAlerts: tc.truncated}
			d.Status = "resolved"
			if tc.firing > 0 {
				d.Status = "firing"
			}
			d.CommonLabels = template.KV{"alertname": "DiskFull"}
			d.CommonAnnotations = template.KV{}
			d.GroupLabels = template.KV{}
			for i := range tc.firing + tc.resolved {
				st := "firing"
				if i >= tc.firing {
					st = "resolved"
				}
				d.Alerts = append(d.Alerts, template.Alert{Status: st,
					Labels:      template.KV{"alertname": "DiskFull", "instance": fmt.Sprintf("db%d", i)},
					Annotations: template.KV{"summary": "disk full"}})
			}
			text, _, err := r.Render("ops", "", d, 10)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasPrefix(text, tc.wantHeader+" ") {
				t.Fatalf("header of %q, want %q", text, tc.wantHeader)
			}
			m := header.FindStringSubmatch(text)
			total := atoi(m[1]) + atoi(m[2])
			listed := len(regexp.MustCompile(`(?m)^- `).FindAllString(text, -1))
			if tc.firing+tc.resolved == 1 {
				listed = 1 // one alert is the text itself, not a list
			}
			rest := 0
			if mm := more.FindStringSubmatch(text); mm != nil {
				rest = atoi(mm[1])
			}
			if listed+rest != total {
				t.Errorf("header counts %d, but %d listed + %d more:\n%s", total, listed, rest, text)
			}
		})
	}
}

func atoi(s string) int {
	n, _ := strconv.Atoi(s)
	return n
}
