package mapping

import (
	"errors"
	"os"
	"path/filepath"
	"testing"

	"github.com/smsbridge/smsbridge/alert"
)

// FuzzApply feeds arbitrary bodies to the plain preset (and, for coverage of
// the template path, to the github and grafana presets): Apply must never
// panic, and must return either an error of the documented kinds or a
// well-formed result.
func FuzzApply(f *testing.F) {
	for _, dir := range []string{"plain", "github", "grafana", "gitlab"} {
		files, err := filepath.Glob(filepath.Join("testdata", dir, "*.json"))
		if err != nil {
			f.Fatal(err)
		}
		for _, file := range files {
			b, err := os.ReadFile(file)
			if err != nil {
				f.Fatal(err)
			}
			f.Add(b)
		}
	}
	for _, s := range []string{``, `{}`, `null`, `[]`, `{"text": ""}`, `{"text": "x", "labels": {"": "v"}}`, `{"text":"x","status":"RESOLVED"}`} {
		f.Add([]byte(s))
	}

	var mappings []*Mapping
	for _, c := range []Config{{Preset: "plain"}, {Preset: "github"}, {Preset: "grafana"}, {Preset: "gitlab"}} {
		m, err := c.Compile("fuzz")
		if err != nil {
			f.Fatal(err)
		}
		mappings = append(mappings, m)
	}
	h := hdr("X-GitHub-Event", "workflow_run")

	f.Fuzz(func(t *testing.T, body []byte) {
		for _, m := range mappings {
			n, err := m.Apply(body, h, testNow)
			if err != nil {
				var be *BodyError
				var fe *FieldError
				if !errors.Is(err, ErrFiltered) && !errors.As(err, &be) && !errors.As(err, &fe) {
					t.Fatalf("error of unexpected type %T: %v", err, err)
				}
				continue
			}
			if len(n.Data.Alerts) == 0 {
				t.Fatal("notification without alerts")
			}
			if n.Data.Status != alert.StatusFiring && n.Data.Status != alert.StatusResolved {
				t.Fatalf("status %q", n.Data.Status)
			}
			if n.GroupKey == "" || n.Source != "fuzz" {
				t.Fatalf("group key %q source %q", n.GroupKey, n.Source)
			}
			for _, a := range n.Data.Alerts {
				if a.Labels["source"] == "" || a.Labels["alertname"] == "" || a.Fingerprint == "" {
					t.Fatalf("alert missing defaults: %+v", a)
				}
			}
		}
	})
}
