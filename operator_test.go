package main

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// dryRunConfig names a key file that does not exist: a dry run never
// reads it.
const dryRunConfig = `
sms:
  api_key_file: /nonexistent/api-key
delivery:
  min_backoff: 20ms
  max_backoff: 200ms
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["+27830000001", "+27830000002"]
`

// newDryRunBridge starts a bridge with --sms.dry-run, serving through the
// same handler as the daemon, under prefix.
func newDryRunBridge(t *testing.T, prefix string) (*bridge, *httptest.Server, *syncBuffer) {
	t.Helper()
	return newDryRunBridgeAt(t, prefix, "http://bridge.example"+prefix)
}

// newDryRunBridgeAt is newDryRunBridge with --web.external-url external
// ("" for none).
func newDryRunBridgeAt(t *testing.T, prefix, external string) (*bridge, *httptest.Server, *syncBuffer) {
	t.Helper()
	dir := t.TempDir()
	path := writeFile(t, dir, "smsbridge.yml", dryRunConfig)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := &flags{configFile: path, storagePath: filepath.Join(dir, "data"), dryRun: true, routePrefix: prefix,
		externalURL: external, adminAPI: true}
	if err := resolveWeb(f); err != nil {
		t.Fatal(err)
	}
	b, err := newBridge(f, logger)
	if err != nil {
		t.Fatalf("newBridge: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.dispatcher.Run(ctx); close(done) }()
	b.readiness.setServing(true)
	srv := httptest.NewServer(underPrefix(f.prefix, b.handler()))
	t.Cleanup(func() { srv.Close(); cancel(); <-done; b.close() })
	return b, srv, logs
}

func get(t *testing.T, method, url string) (int, string, http.Header) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b), resp.Header
}

// TestDryRunIsVisible: a dry run cannot be taken for production: the page
// has a banner, the API says so, and every delivery the fake took says it
// was not sent.
func TestDryRunIsVisible(t *testing.T) {
	_, srv, logs := newDryRunBridge(t, "")
	if code, _ := post(t, srv.URL+"/api/v1/alertmanager", amPayload("DryRunAlert", "nothing is sent")); code != 202 {
		t.Fatalf("post: %d", code)
	}
	waitFor(t, "two accepted", func() bool {
		_, body, _ := get(t, "GET", srv.URL+"/api/v1/deliveries?status=accepted")
		return strings.Count(body, `"status":"accepted"`) == 2
	})
	_, deliveries, _ := get(t, "GET", srv.URL+"/api/v1/deliveries?status=accepted")
	if n := len(regexp.MustCompile(`"provider_message_id":"dry-run-[0-9a-f]{32}","dry_run":true`).FindAllString(deliveries, -1)); n != 2 {
		t.Errorf("%d deliveries marked as the dry run's, want 2: %s", n, deliveries)
	}
	_, status, _ := get(t, "GET", srv.URL+"/api/v1/status")
	if !strings.Contains(status, `"dry_run":true`) {
		t.Errorf("status does not say dry run: %s", status)
	}
	_, page, _ := get(t, "GET", srv.URL+"/")
	for _, w := range []string{`id="dry-run-banner"`, "Dry run: nothing is sent.", `<i class="dry">dry run, not sent</i>`,
		`<div class="alertname">DryRunAlert</div>`} {
		if !strings.Contains(page, w) {
			t.Errorf("page lacks %q", w)
		}
	}
	if !strings.Contains(logs.String(), "dry run: messages go to an in-process fake") {
		t.Errorf("the log does not say dry run:\n%s", logs)
	}
}

// TestRoutePrefix: with --web.route-prefix every route is served under
// the prefix, "/" redirects there, nothing is served outside it, and the
// page's links, forms and assets work as the browser follows them.
func TestRoutePrefix(t *testing.T) {
	_, srv, _ := newDryRunBridge(t, "/sms")
	base := srv.URL + "/sms"
	for _, tc := range []struct {
		method, path string
		code         int
		want         string
	}{
		{"GET", "/-/healthy", 200, "healthy"},
		{"GET", "/-/ready", 200, "ready"},
		{"HEAD", "/-/ready", 200, ""},
		{"GET", "/metrics", 200, "smsbridge_build_info"},
		{"GET", "/", 200, `id="dry-run-banner"`},
		{"GET", "/routes-test?labels=team%3Ddb", 200, `data-receiver="ops"`},
		{"GET", "/static/status.css", 200, ".chip"},
		{"GET", "/api/v1/status", 200, `"dry_run":true`},
		{"GET", "/api/v1/deliveries", 200, `"deliveries"`},
	} {
		code, body, _ := get(t, tc.method, base+tc.path)
		if code != tc.code || !strings.Contains(body, tc.want) {
			t.Errorf("%s %s: %d %.200s, want %d with %q", tc.method, tc.path, code, body, tc.code, tc.want)
		}
	}
	if code, _ := post(t, base+"/api/v1/alertmanager", amPayload("Prefixed", "under a prefix")); code != 202 {
		t.Errorf("intake under the prefix: %d", code)
	}
	for _, p := range []string{"/", "/sms"} {
		code, _, h := get(t, "GET", srv.URL+p)
		if code != http.StatusFound || h.Get("Location") != "/sms/" {
			t.Errorf("GET %s: %d to %q, want a redirect to /sms/", p, code, h.Get("Location"))
		}
	}
	for _, p := range []string{"/metrics", "/-/ready", "/api/v1/status", "/smsx/metrics"} {
		if code, body, _ := get(t, "GET", srv.URL+p); code != http.StatusNotFound || !strings.Contains(body, "route prefix /sms/") {
			t.Errorf("GET %s outside the prefix: %d %s", p, code, body)
		}
	}
	// Every link, form and asset of the page resolves under the prefix.
	_, page, _ := get(t, "GET", base+"/")
	links := regexp.MustCompile(`(?:href|action|src)="([^"#]*)"`).FindAllStringSubmatch(page, -1)
	if len(links) < 5 {
		t.Fatalf("only %d links on the page", len(links))
	}
	for _, m := range links {
		u := strings.ReplaceAll(m[1], "&amp;", "&")
		if !strings.HasPrefix(u, "/sms/") {
			t.Errorf("link %s is outside the prefix", u)
			continue
		}
		if strings.Contains(u, "/retry") {
			continue // a form that changes state; checked in the status package
		}
		if code, _, _ := get(t, "GET", srv.URL+u); code != http.StatusOK {
			t.Errorf("link %s answers %d", u, code)
		}
	}
}

// TestReadyHead: GET and HEAD /-/ready share one handler: the same status
// either way, and a GET says why it is not ready.
func TestReadyHead(t *testing.T) {
	tb := newTestBridge(t, routedConfig, smsfake.Options{})
	for _, ready := range []bool{true, false} {
		tb.readiness.setServing(ready)
		want, body := http.StatusOK, "smsbridge is ready."
		if !ready {
			want, body = http.StatusServiceUnavailable, "smsbridge is not ready: not serving"
		}
		for _, m := range []string{"GET", "HEAD"} {
			code, got, _ := get(t, m, tb.srv.URL+"/-/ready")
			if code != want || (m == "GET" && !strings.Contains(got, body)) || (m == "HEAD" && got != "") {
				t.Errorf("%s /-/ready while ready=%v: %d %q, want %d", m, ready, code, got, want)
			}
		}
	}
}
