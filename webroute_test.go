package main

import (
	"net/http"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/prometheus/exporter-toolkit/web"
)

// TestResolveWeb: the external URL and the route prefix follow
// Prometheus: the prefix defaults to the external URL's path, and the
// external URL to this host at the listen port.
func TestResolveWeb(t *testing.T) {
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, external, prefix, listen string
		wantURL, wantPrefix, wantLinks string
		wantErr                        string
	}{
		{name: "defaults", listen: ":9754", wantURL: "http://" + host + ":9754", wantPrefix: "/", wantLinks: ""},
		{name: "other port", listen: "0.0.0.0:19000", wantURL: "http://" + host + ":19000", wantPrefix: "/"},
		// Bound to a loopback address, the host name would not reach it.
		{name: "loopback", listen: "127.0.0.1:19000", wantURL: "http://127.0.0.1:19000", wantPrefix: "/"},
		{name: "loopback v6", listen: "[::1]:19000", wantURL: "http://[::1]:19000", wantPrefix: "/"},
		{name: "localhost", listen: "localhost:19000", wantURL: "http://localhost:19000", wantPrefix: "/"},
		{name: "proxy keeps the path", external: "https://ops.example/sms/", listen: ":9754",
			wantURL: "https://ops.example/sms", wantPrefix: "/sms", wantLinks: "/sms"},
		{name: "proxy strips the path", external: "https://ops.example/sms", prefix: "/", listen: ":9754",
			wantURL: "https://ops.example/sms", wantPrefix: "/", wantLinks: "/sms"},
		{name: "prefix without slashes", prefix: "alerts/sms", listen: ":9754", wantURL: "http://" + host + ":9754/alerts/sms", wantPrefix: "/alerts/sms", wantLinks: "/alerts/sms"},
		// Without an external URL, its path is the route prefix: the
		// page's links work.
		{name: "prefix only", prefix: "/sms/", listen: ":9754", wantURL: "http://" + host + ":9754/sms", wantPrefix: "/sms", wantLinks: "/sms"},
		{name: "root prefix only", prefix: "/", listen: ":9754", wantURL: "http://" + host + ":9754", wantPrefix: "/", wantLinks: ""},
		{name: "quoted", external: `"https://ops.example/"`, wantErr: "is quoted"},
		{name: "not http", external: "ftp://ops.example/", wantErr: "not an absolute http or https URL"},
		{name: "relative", external: "/sms/", wantErr: "not an absolute http or https URL"},
		{name: "credentials", external: "https://u:p@ops.example/", wantErr: "must not hold credentials"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			addrs := []string{tc.listen}
			f := &flags{externalURL: tc.external, routePrefix: tc.prefix, web: &web.FlagConfig{WebListenAddresses: &addrs}}
			err := resolveWeb(f)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				if strings.Contains(err.Error(), "u:p") {
					t.Errorf("the error shows the credentials: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.wantURL != "" && f.external.String() != tc.wantURL {
				t.Errorf("external URL %s, want %s", f.external, tc.wantURL)
			}
			if f.prefix != tc.wantPrefix {
				t.Errorf("route prefix %q, want %q", f.prefix, tc.wantPrefix)
			}
			if f.linkPrefix() != tc.wantLinks {
				t.Errorf("link prefix %q, want %q", f.linkPrefix(), tc.wantLinks)
			}
		})
	}
}

// TestRoutePrefixAlone: --web.route-prefix without --web.external-url;
// every link, form and asset of the pages starts with the prefix and
// answers.
func TestRoutePrefixAlone(t *testing.T) {
	_, srv, _ := newDryRunBridgeAt(t, "/sms", "")
	for _, page := range []string{"/sms/", "/sms/routes-test?labels=team%3Ddb"} {
		code, body, _ := get(t, "GET", srv.URL+page)
		if code != http.StatusOK {
			t.Fatalf("GET %s: %d", page, code)
		}
		links := regexp.MustCompile(`(?:href|action|src)="([^"#]*)"`).FindAllStringSubmatch(body, -1)
		if len(links) < 3 {
			t.Fatalf("%s: only %d links", page, len(links))
		}
		for _, m := range links {
			u := strings.ReplaceAll(m[1], "&amp;", "&")
			if !strings.HasPrefix(u, "/sms/") {
				t.Errorf("%s: link %s is outside the prefix", page, u)
				continue
			}
			if strings.Contains(u, "/retry") {
				continue
			}
			if code, _, _ := get(t, "GET", srv.URL+u); code != http.StatusOK {
				t.Errorf("%s: link %s answers %d", page, u, code)
			}
		}
	}
}
