package main

import (
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/labstack/echo/v4"
)

// TestOwnHosts: a Host header names this bridge when it is an address, a
// loopback name, this machine's name or the external URL's host.
func TestOwnHosts(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	ext, _ := url.Parse("https://sms.ops.example./bridge")
	own := ownHosts(ext, []string{"Pager.Corp.Example", "bücher.example"})
	for hostport, want := range map[string]bool{
		"127.0.0.1:9754":          true,
		"10.1.2.3":                true,
		"[::1]:9754":              true,
		"localhost:9754":          true,
		"app.localhost":           true,
		host + ":9754":            true,
		strings.ToUpper(host):     true,
		"sms.ops.example":         true,
		"SMS.OPS.EXAMPLE.:443":    true,
		"pager.corp.example":      true,
		"xn--bcher-kva.example":   true,
		"evil.example:9754":       false,
		"corp.example":            false,
		"sms.ops.example.evil.io": false,
		"":                        false,
	} {
		if got := own(hostport); got != want {
			t.Errorf("own(%q) = %v, want %v", hostport, got, want)
		}
	}
}

// TestRebindingRefused: a browser's state-changing request whose Host is
// another name (a page rebound to this address) is refused with 403 and
// logged; the same with this bridge's name, a GET, or a request from no
// browser (Alertmanager, curl) passes.
func TestRebindingRefused(t *testing.T) {
	t.Parallel()
	var logs strings.Builder
	e := echo.New()
	e.Use(refuseCrossOrigin(slog.New(slog.NewTextHandler(&logs, nil)), ownHosts(nil, nil)))
	ok := func(c echo.Context) error { return c.String(http.StatusOK, "done") }
	e.POST("/api/v1/oncall/overrides", ok)
	e.POST("/api/v1/alertmanager", ok)
	e.GET("/", ok)
	for _, tc := range []struct {
		name, method, host, origin, path string
		browser                          bool
		want                             int
		says                             string
	}{
		{"rebound page posts", http.MethodPost, "evil.example:9754", "", "", true, http.StatusForbidden, "--web.allowed-host"},
		{"rebound page posts with its origin", http.MethodPost, "evil.example:9754", "http://evil.example:9754", "", true, http.StatusForbidden, "--web.allowed-host"},
		// The intake refuses every browser, and says so first.
		{"rebound page posts an alert", http.MethodPost, "evil.example:9754", "", "/api/v1/alertmanager", true, http.StatusForbidden, "not from a browser page"},
		{"page at an address posts", http.MethodPost, "127.0.0.1:9754", "", "", true, http.StatusOK, ""},
		{"page at localhost posts", http.MethodPost, "localhost:9754", "", "", true, http.StatusOK, ""},
		// A proxy rewrote Host to its upstream's name; the browser's
		// Origin still names the page the operator opened.
		{"page behind a proxy posts", http.MethodPost, "smsbridge.monitoring.svc:9754", "http://127.0.0.1:8080", "", true, http.StatusOK, ""},
		{"rebound page reads", http.MethodGet, "evil.example:9754", "", "/", true, http.StatusOK, ""},
		{"script posts with any host", http.MethodPost, "evil.example:9754", "", "", false, http.StatusOK, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := tc.path
			if path == "" {
				path = "/api/v1/oncall/overrides"
			}
			req := httptest.NewRequest(tc.method, "http://"+tc.host+path, nil)
			if tc.browser {
				req.Header.Set("Sec-Fetch-Site", "same-origin")
			}
			if tc.origin != "" {
				req.Header.Set("Origin", tc.origin)
			}
			rec := httptest.NewRecorder()
			e.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Errorf("%d %s, want %d", rec.Code, rec.Body, tc.want)
			}
			if !strings.Contains(rec.Body.String(), tc.says) {
				t.Errorf("the answer does not say %q: %s", tc.says, rec.Body)
			}
		})
	}
	if !strings.Contains(logs.String(), "browser request naming another host refused") || !strings.Contains(logs.String(), "host=evil.example:9754") {
		t.Errorf("the refusal was not logged with the host:\n%s", logs.String())
	}
}
