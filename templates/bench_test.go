package templates

import (
	"strings"
	"testing"
)

func BenchmarkRender(b *testing.B) {
	r := newRenderer(b, Options{})
	for _, bm := range []struct {
		name, fixture, tmpl string
	}{
		{"default/firing_1", "firing_1", ""},
		{"default/firing_50", "firing_50_truncated", ""},
		{"custom/firing_1", "firing_1", `{{ .Status | toUpper }} {{ .CommonLabels.alertname }} {{ .CommonAnnotations.summary }}`},
		{"fallback/firing_1", "firing_1", `{{ template "nosuch" . }}`},
	} {
		d := loadFixture(b, bm.fixture)
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, _, err := r.Render("ops", bm.tmpl, d, 0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkFit(b *testing.B) {
	for _, bm := range []struct {
		name, in string
	}{
		{"ascii/fits", strings.Repeat("disk full ", 15)},
		{"ascii/cut", strings.Repeat("disk full ", 100)},
		{"unicode/cut", strings.Repeat("Überlast – „Kasse“ hängt… 🔥 ", 40)},
	} {
		b.Run(bm.name, func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(bm.in)))
			for b.Loop() {
				Fit(bm.in, 3)
			}
		})
	}
}
