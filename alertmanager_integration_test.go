//go:build integration

package main

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httputil"
	"net/url"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestRealAlertmanager runs a real Alertmanager (v0.28.1, installed by
// .ci/run) whose webhook receiver is the bridge, fires alerts with amtool,
// and checks the SMS reach the fake provider. Between Alertmanager and the
// bridge sits a proxy that answers the first requests with the bridge's
// own 503 body, to prove Alertmanager retries a 503 until the bridge takes
// the notification.
func TestRealAlertmanager(t *testing.T) {
	amBin, amtool := amTools(t)

	const key = "integration-key"
	numbers := []string{"+27831110001", "+27831110002"}
	fake := smsfake.NewServer(smsfake.Options{APIKey: key, Credits: -1})
	defer fake.Close()
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "key", key)
	cfg := writeFile(t, dir, "smsbridge.yml", bridgeConfig(fake.URL, keyFile, numbers))
	bridge := startBridge(t, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"))

	// The proxy refuses the first two deliveries as the bridge does when
	// its store cannot write.
	target, _ := url.Parse("http://" + bridge.addr)
	rp := httputil.NewSingleHostReverseProxy(target)
	var seen, refused atomic.Int32
	proxy := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if seen.Add(1) <= 2 {
			refused.Add(1)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			fmt.Fprint(w, `{"status":"error","error":"the notification could not be stored; retry later"}`)
			return
		}
		rp.ServeHTTP(w, r)
	})}
	proxyAddr := freeAddr(t)
	go func() { _ = listenAndServe(proxy, proxyAddr) }()
	defer proxy.Close()

	amAddr := freeAddr(t)
	amCfg := writeFile(t, dir, "alertmanager.yml", fmt.Sprintf(`route:
  receiver: sms
  group_by: [alertname]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sms
    webhook_configs:
      - url: http://%s/api/v1/alertmanager
        send_resolved: true
        max_alerts: 10
`, proxyAddr))
	amLog := startAlertmanager(t, amBin, amCfg, dir, "am", amAddr)

	out, err := exec.Command(amtool, "alert", "add", "alertname=DiskFull", "severity=critical", "instance=db1:9100",
		"--annotation=summary=Disk almost full on db1", "--alertmanager.url=http://"+amAddr).CombinedOutput()
	if err != nil {
		t.Fatalf("amtool alert add: %v\n%s", err, out)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	if err := fake.WaitMessages(ctx, len(numbers)); err != nil {
		t.Fatalf("SMS did not arrive: %v\nalertmanager log:\n%s\nbridge log:\n%s", err, amLog, bridge.logs())
	}
	got := map[string]string{}
	for _, m := range fake.Messages() {
		got[m.Number] = m.Text
	}
	for _, n := range numbers {
		if !strings.Contains(got[n], "DiskFull") || !strings.Contains(got[n], "Disk almost full on db1") {
			t.Errorf("SMS to %s = %q, want the alert's name and summary", n, got[n])
		}
	}
	if refused.Load() != 2 || seen.Load() < 3 {
		t.Errorf("proxy refused %d and saw %d requests: Alertmanager did not retry the 503", refused.Load(), seen.Load())
	}
	if fake.EarlyRequests() != 0 {
		t.Errorf("%d requests inside an announced pause", fake.EarlyRequests())
	}
}

func waitHTTP(t *testing.T, u string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if resp, err := http.Get(u); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("%s not ready", u)
}

func listenAndServe(s *http.Server, addr string) error {
	s.Addr = addr
	return s.ListenAndServe()
}
