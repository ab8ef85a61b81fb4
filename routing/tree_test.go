package routing

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"strings"
	"testing"
)

var update = flag.Bool("update", false, "rewrite testdata/*.golden from the current output")

func TestWriteTree(t *testing.T) {
	t.Parallel()
	r := loadRouter(t, "testdata/routes.yaml")
	var buf bytes.Buffer
	if err := r.WriteTree(&buf); err != nil {
		t.Fatal(err)
	}
	const golden = "testdata/tree.golden"
	if *update {
		if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(golden)
	if err != nil {
		t.Fatal(err)
	}
	if got := buf.String(); got != string(want) {
		t.Errorf("WriteTree:\n%s\nwant (%s, -update to rewrite):\n%s", got, golden, want)
	}
}

type failingWriter struct{}

var errDiskFull = errors.New("disk full")

func (failingWriter) Write([]byte) (int, error) { return 0, errDiskFull }

func TestWriteTreeError(t *testing.T) {
	t.Parallel()
	r := loadRouter(t, "testdata/routes.yaml")
	err := r.WriteTree(failingWriter{})
	if !errors.Is(err, errDiskFull) || !strings.HasPrefix(err.Error(), "write routing tree: ") {
		t.Errorf("WriteTree to a failing writer = %v, want it wrapped", err)
	}
}

func TestMatcherOrder(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		matchers []string
		want     []string
	}{
		{
			name:     "by name",
			matchers: []string{`b="1"`, `a="1"`},
			want:     []string{`a="1"`, `b="1"`},
		},
		{
			name:     "then by value",
			matchers: []string{`a="2", a="1"`},
			want:     []string{`a="1"`, `a="2"`},
		},
		{
			name:     "then by type",
			matchers: []string{`a!~"1"`, `a=~"1"`, `a!="1"`, `a="1"`},
			want:     []string{`a="1"`, `a!="1"`, `a=~"1"`, `a!~"1"`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r, err := New(&Route{Receiver: "ops", Routes: []*Route{{Matchers: tt.matchers}}},
				[]Receiver{{Name: "ops", Numbers: []string{"+27830000001"}}}, nil, opts)
			if err != nil {
				t.Fatal(err)
			}
			got := r.Tree().Children[0].Matchers
			if strings.Join(got, ",") != strings.Join(tt.want, ",") {
				t.Errorf("Matchers = %q, want %q", got, tt.want)
			}
		})
	}
}
