package templates

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
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
