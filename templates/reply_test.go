package templates

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// placeholder is what the pipeline renders in place of the code (the
// store's outbox.ReplyCodePlaceholder): three GSM septets.
const placeholder = "¤¤¤"

// TestReplyGolden renders fixtures with a reply code and compares them
// with testdata/reply_<name>.golden (-update rewrites them): the default
// templates end with the reply line, and fit the same segments as
// without it.
func TestReplyGolden(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, Options{})
	tests := []struct {
		name        string
		silence     string
		maxSegments int
		want        string
	}{
		{"firing_1", "1h", 1, "\nReply ACK ¤¤¤ to silence 1h"},
		{"firing_3", "1h", 2, "\nReply ACK ¤¤¤ to silence 1h"},
		{"firing_13_max10", "4h", 2, "\nReply ACK ¤¤¤ to silence 4h"},
		{"webhook_1", "", 1, "\nReply ACK ¤¤¤ to acknowledge"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := loadFixture(t, tt.name)
			d.Reply = Reply{Code: placeholder, Silence: tt.silence}
			text, segments, err := r.Render("ops", "", d, tt.maxSegments)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(text, tt.want) {
				t.Errorf("text does not end with %q:\n%s", tt.want, text)
			}
			if segments != Segments(text) || segments > tt.maxSegments {
				t.Errorf("segments %d (text %d), want at most %d", segments, Segments(text), tt.maxSegments)
			}
			golden(t, filepath.Join("testdata", "reply_"+tt.name+".golden"), fmt.Sprintf("# segments=%d septets=%d\n%s\n", segments, Septets(text), text))
		})
	}
}

func golden(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n got %q\nwant %q", path, got, want)
	}
}

// TestReplyLineSurvivesFitting: a text too long for its budget is cut,
// the reply line never.
func TestReplyLineSurvivesFitting(t *testing.T) {
	t.Parallel()
	r := newRenderer(t, Options{})
	for _, maxSeg := range []int{1, 2, 3} {
		t.Run(fmt.Sprint(maxSeg), func(t *testing.T) {
			d := loadFixture(t, "firing_50_truncated")
			d.CommonAnnotations = map[string]string{"summary": strings.Repeat("a very long summary that goes on ", 40)}
			d.Reply = Reply{Code: placeholder, Silence: "1h"}
			text, segments, err := r.Render("ops", "", d, maxSeg)
			if err != nil {
				t.Fatal(err)
			}
			if segments > maxSeg || segments != maxSeg {
				t.Errorf("segments %d, want exactly %d (the text is cut to fill them)", segments, maxSeg)
			}
			if !strings.HasSuffix(text, "...\nReply ACK ¤¤¤ to silence 1h") {
				t.Errorf("want the body cut and the line kept:\n%s", text)
			}
		})
	}
}

func TestReplyTemplates(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty-reply.tmpl")
	if err := os.WriteFile(empty, []byte(`{{ define "sms.reply" }}{{ "" }}{{ end }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	own := filepath.Join(dir, "own-reply.tmpl")
	if err := os.WriteFile(own, []byte(`{{ define "sms.reply" }}ACK {{ .Reply.Code }} = 1h quiet{{ end }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name     string
		files    []string
		template string
		code     string
		want     string
	}{
		{"custom template gets the line", nil, `{{ .CommonLabels.alertname }} on {{ .CommonLabels.instance }}`, placeholder,
			"HighDiskUsage on db1\nReply ACK ¤¤¤ to silence 1h"},
		{"custom template placing the code itself", nil, `{{ .CommonLabels.alertname }} ack={{ .Reply.Code }}`, placeholder,
			"HighDiskUsage ack=¤¤¤"},
		{"replies off: no line", nil, `{{ .CommonLabels.alertname }}{{ with .Reply.Code }} code {{ . }}{{ end }}`, "",
			"HighDiskUsage"},
		{"sms.reply redefined empty", []string{empty}, `{{ .CommonLabels.alertname }}`, placeholder, "HighDiskUsage"},
		{"sms.reply redefined", []string{own}, `{{ .CommonLabels.alertname }}`, placeholder, "HighDiskUsage\nACK ¤¤¤ = 1h quiet"},
		{"failing template: the default text, with the line", nil, `{{ .Nope.Nope }}`, placeholder, "\nReply ACK ¤¤¤ to silence 1h"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := newRenderer(t, Options{Files: tt.files})
			d := loadFixture(t, "firing_1")
			d.CommonLabels = map[string]string{"alertname": "HighDiskUsage", "instance": "db1"}
			d.Reply = Reply{Code: tt.code, Silence: "1h"}
			text, _, err := r.Render("ops", tt.template, d, 1)
			if err != nil {
				t.Fatal(err)
			}
			if !strings.HasSuffix(text, tt.want) {
				t.Errorf("text %q, want it to end with %q", text, tt.want)
			}
			if strings.Count(text, placeholder) > 1 {
				t.Errorf("the code twice: %q", text)
			}
		})
	}
}

func TestReplyTemplateCheckedAtLoad(t *testing.T) {
	t.Parallel()
	f := filepath.Join(t.TempDir(), "bad.tmpl")
	if err := os.WriteFile(f, []byte(`{{ define "sms.reply" }}{{ .Reply.Nope }}{{ end }}`), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := New(Options{Files: []string{f}}); err == nil || !strings.Contains(err.Error(), ReplyTemplate) {
		t.Errorf("a broken sms.reply: %v, want an error naming it", err)
	}
}

func TestFitSuffix(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 100)
	tests := []struct {
		name     string
		s, tail  string
		segments int
		want     string // the whole result, or its end when wantEnd
		wantEnd  bool
	}{
		{"fits", "short", "\nend", 1, "short\nend", false},
		{"cut on a word", long, "\nReply ACK 12", 1, "word...\nReply ACK 12", true},
		{"two segments", long, "\nReply ACK 12", 2, "word...\nReply ACK 12", true},
		{"extension characters in the tail", long, "\n{ACK} [12]", 1, "...\n{ACK} [12]", true},
		{"transliterated", "Überlast — ok", "\n→ ACK", 1, "Überlast - ok\n-> ACK", false},
		{"tail alone too long", "x", strings.Repeat("y", 200), 1, "...", true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := FitSuffix(tt.s, tt.tail, tt.segments)
			if Segments(got) > tt.segments {
				t.Errorf("%d segments, want at most %d: %q", Segments(got), tt.segments, got)
			}
			if tt.wantEnd && !strings.HasSuffix(got, tt.want) || !tt.wantEnd && got != tt.want {
				t.Errorf("FitSuffix = %q, want %q (end: %t)", got, tt.want, tt.wantEnd)
			}
		})
	}
	// Every length around the segment boundaries keeps the tail whole.
	for n := 150; n < 480; n++ {
		s := strings.Repeat("x", n)
		for _, segs := range []int{1, 2, 3} {
			got := FitSuffix(s, "\nReply ACK 123 to silence 1h", segs)
			if Segments(got) > segs || !strings.HasSuffix(got, "\nReply ACK 123 to silence 1h") {
				t.Fatalf("n=%d segs=%d: %d segments, %q", n, segs, Segments(got), got[max(0, len(got)-40):])
			}
		}
	}
}
