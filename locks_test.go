package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// The repros of "locked doors and honest health", through the binary as an
// attacker on the network or an operator would meet them.

// request sends method to the bridge with headers and returns the status,
// a header of the answer and the body.
func request(t *testing.T, method, url, body string, hdr ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(raw)
}

// waitUntil polls cond every 20ms until it holds or within passes.
func waitUntil(t *testing.T, within time.Duration, what string, cond func() (bool, string)) time.Duration {
	t.Helper()
	start := time.Now()
	for {
		ok, last := cond()
		if ok {
			return time.Since(start)
		}
		if time.Since(start) > within {
			t.Fatalf("%s: not within %s; last: %s", what, within, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

const lockedConfig = `sms:
  url: %s
  api_key_file: %s
  timeout: 2s
  rate_limit: 200
delivery: {min_backoff: 50ms, max_backoff: 500ms}
alertmanager:
  auth: {type: bearer, secret: am-t0ken-never-shown}
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["+27830000001", "+27830000002", "+27830000003"]
%s`

// TestLockedDoors is finding 1 and 3 of the issue: without the flags, an
// unauthenticated caller can neither make the bridge send (20 test sends,
// a retry) nor reload it, while SIGHUP still reloads; with the flags they
// work, test sends are limited, and a cross-site reload is refused. The
// warnings about what the port exposes are logged at start.
func TestLockedDoors(t *testing.T) {
	fake := smsfake.NewServer(smsfake.Options{APIKey: "k", Credits: smsfake.Unlimited})
	defer fake.Close()
	dir := t.TempDir()
	key := writeFile(t, dir, "key", "k")
	cfgPath := writeFile(t, dir, "smsbridge.yml", fmt.Sprintf(lockedConfig, fake.URL, key, ""))

	t.Run("closed by default", func(t *testing.T) {
		p := startBridge(t, "--config.file="+cfgPath, "--storage.path="+filepath.Join(dir, "closed"))
		base := "http://" + p.addr
		for i := range 20 {
			code, _, body := request(t, "POST", base+"/api/v1/test", `{"receiver":"ops"}`)
			if code != http.StatusForbidden || !strings.Contains(body, "--web.enable-admin-api") {
				t.Fatalf("test send %d: %d %s, want 403 naming --web.enable-admin-api", i, code, body)
			}
		}
		if code, _, body := request(t, "POST", base+"/api/v1/deliveries/1/retry", ""); code != http.StatusForbidden || !strings.Contains(body, "--web.enable-admin-api") {
			t.Errorf("retry: %d %s", code, body)
		}
		if code, _, body := request(t, "POST", base+"/-/reload", ""); code != http.StatusForbidden || !strings.Contains(body, "--web.enable-lifecycle") {
			t.Errorf("reload: %d %s, want 403 naming --web.enable-lifecycle", code, body)
		}
		if code, _, body := request(t, "POST", base+"/api/v1/alertmanager", "{}"); code != http.StatusUnauthorized {
			t.Errorf("intake without its token: %d %s", code, body)
		}
		if n := fake.Requests(); n != 0 {
			t.Errorf("the provider got %d requests from unauthenticated callers", n)
		}
		// Reading stays open, with numbers masked.
		code, _, body := request(t, "GET", base+"/api/v1/status", "")
		if code != http.StatusOK || strings.Contains(body, "27830000001") {
			t.Errorf("status: %d %s", code, body)
		}
		var before struct{ Config struct{ Hash string } }
		_ = json.Unmarshal([]byte(body), &before)

		// SIGHUP still reloads.
		writeFile(t, dir, "smsbridge.yml", fmt.Sprintf(lockedConfig, fake.URL, key, "  - name: web\n    numbers: [\"+27830000009\"]\n"))
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		waitUntil(t, 10*time.Second, "SIGHUP reloads", func() (bool, string) {
			_, _, body := request(t, "GET", base+"/api/v1/status", "")
			var after struct{ Config struct{ Hash string } }
			_ = json.Unmarshal([]byte(body), &after)
			return after.Config.Hash != "" && after.Config.Hash != before.Config.Hash, body
		})
		for _, want := range []string{
			"the intake requires credentials but --web.config.file is not set",
			"request to a disabled endpoint refused",
			"remote_addr=127.0.0.1:",
		} {
			if !strings.Contains(p.logs(), want) {
				t.Errorf("log lacks %q", want)
			}
		}
		if strings.Contains(p.logs(), "am-t0ken-never-shown") {
			t.Error("the intake token is in the log")
		}
	})

	t.Run("opened by the flags", func(t *testing.T) {
		writeFile(t, dir, "smsbridge.yml", fmt.Sprintf(lockedConfig, fake.URL, key, ""))
		p := startBridge(t, "--config.file="+cfgPath, "--storage.path="+filepath.Join(dir, "open"),
			"--web.enable-lifecycle", "--web.enable-admin-api")
		base := "http://" + p.addr
		if code, _, body := request(t, "POST", base+"/-/reload", "", "Origin", "https://evil.example"); code != http.StatusForbidden {
			t.Errorf("cross-site reload: %d %s", code, body)
		}
		if code, _, body := request(t, "POST", base+"/-/reload", ""); code != http.StatusOK {
			t.Errorf("reload: %d %s", code, body)
		}
		if code, _, body := request(t, "POST", base+"/api/v1/test", `{"receiver":"ops"}`); code != http.StatusAccepted {
			t.Fatalf("test send: %d %s", code, body)
		}
		code, hdr, body := request(t, "POST", base+"/api/v1/test", `{"receiver":"ops"}`)
		if code != http.StatusTooManyRequests || hdr.Get("Retry-After") == "" {
			t.Errorf("second test send at once: %d Retry-After %q %s", code, hdr.Get("Retry-After"), body)
		}
		// The intake refuses a browser's post, cross-site or not: a page
		// whose name was rebound to this address (DNS rebinding) is
		// same-origin to the browser.
		for _, tc := range []struct{ path, header, value string }{
			{"/api/v1/alertmanager", "Sec-Fetch-Site", "cross-site"},
			{"/api/v1/alertmanager", "Sec-Fetch-Site", "same-origin"},
			{"/api/v1/alertmanager", "Origin", "http://" + p.addr},
			{"/api/v1/webhooks/ci", "Sec-Fetch-Site", "same-origin"},
		} {
			code, _, body := request(t, "POST", base+tc.path, "{}", tc.header, tc.value)
			if code != http.StatusForbidden || !strings.Contains(body, "not from a browser page") {
				t.Errorf("%s with %s: %s: %d %s", tc.path, tc.header, tc.value, code, body)
			}
		}
		// The page's own same-origin posts still work.
		if code, _, body := request(t, "POST", base+"/-/reload", "", "Sec-Fetch-Site", "same-origin"); code != http.StatusOK {
			t.Errorf("same-origin reload: %d %s", code, body)
		}
		for _, want := range []string{
			"--web.enable-admin-api without --web.config.file",
			"--web.enable-lifecycle without --web.config.file",
			"test sms queued", "test sms refused: over the limit",
		} {
			if !strings.Contains(p.logs(), want) {
				t.Errorf("log lacks %q", want)
			}
		}
	})
}

// TestReplayedGitHubDelivery is finding 2: the same signed GitHub delivery
// posted again (5 times, then after a SIGHUP, then after a restart) is
// answered duplicate and sends once.
func TestReplayedGitHubDelivery(t *testing.T) {
	fake := smsfake.NewServer(smsfake.Options{APIKey: "k", Credits: smsfake.Unlimited})
	defer fake.Close()
	dir := t.TempDir()
	key := writeFile(t, dir, "key", "k")
	cfg := writeFile(t, dir, "smsbridge.yml", fmt.Sprintf(`sms:
  url: %s
  api_key_file: %s
  timeout: 2s
  rate_limit: 200
delivery: {min_backoff: 50ms, max_backoff: 500ms}
webhooks:
  - name: github
    preset: github
    auth: {type: hmac-sha256, secret: %s}
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["+27830000001"]
`, fake.URL, key, ghSecret))
	args := []string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data")}
	body := mappingFixture(t, "github/workflow_run_failure.json")
	deliver := func(p *proc) string {
		t.Helper()
		code, _, raw := request(t, "POST", "http://"+p.addr+"/api/v1/webhooks/github", string(body),
			"X-GitHub-Event", "workflow_run", "X-GitHub-Delivery", "72d3162e-cc78-11e3-81ab-4c9367dc0958",
			"X-Hub-Signature-256", "sha256="+hmacHex(ghSecret, body))
		if code != http.StatusAccepted {
			t.Fatalf("delivery: %d %s", code, raw)
		}
		var r struct{ Status string }
		_ = json.Unmarshal([]byte(raw), &r)
		return r.Status
	}
	p := startBridge(t, args...)
	var got []string
	for range 5 {
		got = append(got, deliver(p))
	}
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 10*time.Second, "reloaded", func() (bool, string) {
		return strings.Count(p.logs(), "configuration loaded") == 2, ""
	})
	got = append(got, deliver(p))
	p.kill(t)
	p = startBridge(t, args...)
	got = append(got, deliver(p))
	want := "accepted duplicate duplicate duplicate duplicate duplicate duplicate"
	if strings.Join(got, " ") != want {
		t.Errorf("answers %v, want %s", got, want)
	}
	waitUntil(t, 10*time.Second, "the one SMS", func() (bool, string) { return fake.Accepted() == 1, "" })
	time.Sleep(300 * time.Millisecond) // time enough for a duplicate to have gone out
	if n := fake.Accepted(); n != 1 {
		t.Errorf("%d SMS sent for one delivery, want 1", n)
	}
	if !strings.Contains(metricsText(t, p), `smsbridge_notifications_received_total{outcome="duplicate",source="github"} 1`) {
		t.Error("the duplicate after the restart is not counted")
	}
}

func metricsText(t *testing.T, p *proc) string {
	t.Helper()
	_, _, body := request(t, "GET", "http://"+p.addr+"/metrics", "")
	return body
}

// TestStorageRemoved is finding 4: with the storage directory deleted
// under the running bridge, readiness and the intake turn to 503 within 5
// seconds, say why, and no notification is answered 202 from then on.
func TestStorageRemoved(t *testing.T) {
	fake := smsfake.NewServer(smsfake.Options{APIKey: "k", Credits: smsfake.Unlimited})
	defer fake.Close()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "smsbridge.yml", bridgeConfig(fake.URL, writeFile(t, dir, "key", "k"), []string{"+27830000001"}))
	storage := filepath.Join(dir, "data")
	p := startBridge(t, "--config.file="+cfg, "--storage.path="+storage)
	base := "http://" + p.addr
	if code, _ := post(t, base+"/api/v1/alertmanager", amPayload("Before", "stored")); code != http.StatusAccepted {
		t.Fatalf("before: %d", code)
	}
	if err := os.RemoveAll(storage); err != nil {
		t.Fatal(err)
	}
	accepted := 0
	took := waitUntil(t, 5*time.Second, "ready turns 503", func() (bool, string) {
		// Every post in the meantime must be refused.
		if code, _ := post(t, base+"/api/v1/alertmanager", amPayload("After", "lost?")); code == http.StatusAccepted {
			accepted++
		}
		code, _, body := request(t, "GET", base+"/-/ready", "")
		return code == http.StatusServiceUnavailable, fmt.Sprintf("%d %s", code, body)
	})
	t.Logf("unready %s after the directory was removed", took.Round(time.Millisecond))
	if accepted > 0 {
		t.Errorf("%d notifications answered 202 after the storage directory was removed", accepted)
	}
	code, _, body := request(t, "GET", base+"/-/ready", "")
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "smsbridge is not ready: the store cannot write: storage directory removed or replaced: "+storage) {
		t.Errorf("ready: %d %s", code, body)
	}
	if code, _, _ := request(t, "HEAD", base+"/-/ready", ""); code != http.StatusServiceUnavailable {
		t.Errorf("HEAD ready: %d", code)
	}
	code, _, body = request(t, "POST", base+"/api/v1/alertmanager", string(amPayload("Later", "lost?")))
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "not ready: storage directory removed or replaced") {
		t.Errorf("intake: %d %s", code, body)
	}
	if _, _, page := request(t, "GET", base+"/", ""); !strings.Contains(page, "storage directory removed or replaced") {
		t.Error("the status page does not say why it is not ready")
	}
	if m := metricsText(t, p); !strings.Contains(m, "smsbridge_ready 0") {
		t.Error("smsbridge_ready is not 0")
	}
	if !strings.Contains(p.logs(), "not ready: new notifications are answered 503") {
		t.Errorf("not logged:\n%s", p.logs())
	}
}

// TestExplosiveTemplate is finding 5: a receiver template with three nested
// ranges over a 400-alert payload is answered within 2 s, with the
// bridge's peak RSS under 200 MB, and the default text goes out;
// check-config warns about the template beforehand.
func TestExplosiveTemplate(t *testing.T) {
	fake := smsfake.NewServer(smsfake.Options{APIKey: "k", Credits: smsfake.Unlimited})
	defer fake.Close()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "smsbridge.yml", fmt.Sprintf(`sms:
  url: %s
  api_key_file: %s
  timeout: 2s
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["+27830000001"]
    template: '{{ range .Alerts }}{{ range $.Alerts }}{{ range $.Alerts }}{{ .Labels.instance }} {{ .Annotations.summary }}{{ end }}{{ end }}{{ end }}'
`, fake.URL, writeFile(t, dir, "key", "k")))

	code, stdout, stderr := runCLI(t, "check-config", "--config.file="+cfg)
	if code != 0 || !strings.Contains(stdout, ": ok") ||
		!strings.Contains(stderr, cfg+`:10: warning: receiver "ops": template: for a group of 400 alerts it writes more than 64 KiB, the render limit`) {
		t.Errorf("check-config: exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}

	p := startBridge(t, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"))
	var alerts []string
	for i := range 400 {
		alerts = append(alerts, fmt.Sprintf(`{"status":"firing","labels":{"alertname":"Storm","instance":"host-%03d:9100"},"annotations":{"summary":"disk full on host %d"},"startsAt":"2026-11-26T03:00:00Z"}`, i, i))
	}
	payload := `{"version":"4","status":"firing","receiver":"sms","groupKey":"{}:{alertname=\"Storm\"}","groupLabels":{"alertname":"Storm"},` +
		`"commonLabels":{"alertname":"Storm"},"commonAnnotations":{},"alerts":[` + strings.Join(alerts, ",") + `]}`
	start := time.Now()
	code, _, body := request(t, "POST", "http://"+p.addr+"/api/v1/alertmanager", payload)
	took := time.Since(start)
	if code != http.StatusAccepted {
		t.Fatalf("storm: %d %s", code, body)
	}
	rss := peakRSS(t, p.cmd.Process.Pid)
	t.Logf("answered in %s, peak RSS %d MB", took.Round(time.Millisecond), rss>>20)
	if took > 2*time.Second {
		t.Errorf("answered in %s, want under 2s", took)
	}
	if rss > 200<<20 {
		t.Errorf("peak RSS %d MB, want under 200 MB", rss>>20)
	}
	waitUntil(t, 10*time.Second, "the SMS", func() (bool, string) { return fake.Accepted() == 1, "" })
	if text := fake.Messages()[0].Text; !strings.HasPrefix(text, "FIRING:400 Storm") {
		t.Errorf("SMS %q, want the default text", text)
	}
	if m := metricsText(t, p); !strings.Contains(m, `smsbridge_template_errors_total{reason="too_large",receiver="ops"} 1`) {
		t.Error("the cut-off template is not counted")
	}
	if !strings.Contains(p.logs(), `configuration warning`) || !strings.Contains(p.logs(), "reason=too_large") {
		t.Errorf("not logged:\n%s", p.logs())
	}
}

// peakRSS is the process's VmHWM in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatalf("read peak RSS: %v", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmHWM:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}
