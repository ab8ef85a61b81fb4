package templates

import "testing"

// newRenderer builds a Renderer or fails the test.
func newRenderer(t testing.TB, opts Options) *Renderer {
	t.Helper()
	r, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return r
}
