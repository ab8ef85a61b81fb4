package status

import (
	"net/http"
	"strings"
	"testing"
)

// TestAPIHeaders: every answer of the JSON API, an error or a refusal
// included, is marked no-store and nosniff, as the page is.
func TestAPIHeaders(t *testing.T) {
	t.Parallel()
	srv, _ := newOncallServer(t, false)
	tests := []struct {
		method, path string
		code         int
	}{
		{"GET", "/api/v1/status", 200},
		{"GET", "/api/v1/deliveries", 200},
		{"GET", "/api/v1/deliveries?limit=x", 400},
		{"GET", "/api/v1/oncall", 200},
		{"GET", "/api/v1/oncall/db-primary/overrides", 200},
		{"POST", "/api/v1/test", 403},
		{"POST", "/api/v1/deliveries/1/retry", 403},
		{"POST", "/api/v1/oncall/db-primary/overrides", 403},
		{"DELETE", "/api/v1/oncall/db-primary/overrides/1", 403},
		{"GET", "/", 200},
	}
	for _, tc := range tests {
		t.Run(tc.method+" "+tc.path, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequest(tc.method, srv.URL+tc.path, strings.NewReader("{}"))
			if err != nil {
				t.Fatal(err)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tc.code {
				t.Errorf("status %d, want %d", resp.StatusCode, tc.code)
			}
			if got := resp.Header.Get("Cache-Control"); got != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", got)
			}
			if got := resp.Header.Get("X-Content-Type-Options"); got != "nosniff" {
				t.Errorf("X-Content-Type-Options %q, want nosniff", got)
			}
		})
	}
}
