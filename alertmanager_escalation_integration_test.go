//go:build integration

package main

import (
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestRealAlertmanagerEscalation is escalation against a real
// Alertmanager v0.28.1 (installed by .ci/run): two groups page alice, whose
// receiver escalates to bob after 10 s. One is silenced with amtool before
// its step: at the step the bridge asks Alertmanager (GET /api/v2/alerts
// with the group's labels), sees its alerts silenced, stops the step with
// reason silenced, and bob gets nothing for it. The other is left alone:
// Alertmanager shows it active, and bob gets its escalated page about
// 10 s after alice's.
func TestRealAlertmanagerEscalation(t *testing.T) {
	amBin, amtool := amTools(t)
	const key = "escalation-key"
	fake := smsfake.NewServer(smsfake.Options{APIKey: key, Credits: smsfake.Unlimited})
	defer fake.Close()
	dir := t.TempDir()
	amAddr := freeAddr(t)
	cfg := writeFile(t, dir, "smsbridge.yml", fmt.Sprintf(`sms:
  url: %s
  api_key_file: %s
  timeout: 2s
  rate_limit: 200
  callback: {token_file: %s}
delivery: {min_backoff: 50ms, max_backoff: 500ms}
replies: {enabled: true}
alertmanager_api: {urls: ["http://%s"], timeout: 2s}
people:
  - {name: alice, number: "%s"}
  - {name: bob, number: "%s"}
route: {receiver: db-oncall}
receivers:
  - name: db-oncall
    numbers: [alice]
    escalate: [{after: 10s, receiver: db-secondary}]
  - name: db-secondary
    numbers: [bob]
`, fake.URL, writeFile(t, dir, "key", key), writeFile(t, dir, "token", "esc-it-t0ken-0123456789abcdef-xyz"), amAddr, escAlice, escBob))
	bridge := startBridge(t, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"))

	amCfg := writeFile(t, dir, "alertmanager.yml", fmt.Sprintf(`route:
  receiver: sms
  group_by: [alertname, team]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: sms
    webhook_configs:
      - url: http://%s/api/v1/alertmanager
        send_resolved: true
`, bridge.addr))
	amLog := startAlertmanager(t, amBin, amCfg, dir, "am", amAddr)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Fatalf(format+"\nalertmanager log:\n%s\nbridge log:\n%s", append(args, amLog, bridge.logs())...)
	}
	amtoolRun := func(args ...string) string {
		t.Helper()
		out, err := exec.Command(amtool, append(args, "--alertmanager.url=http://"+amAddr)...).CombinedOutput()
		if err != nil {
			fail("amtool %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	sent := func(number, alertname string) []smsfake.Message {
		var out []smsfake.Message
		for _, m := range fake.Messages() {
			if m.Number == number && strings.Contains(m.Text, alertname) {
				out = append(out, m)
			}
		}
		return out
	}
	until := func(what string, within time.Duration, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(within)
		for !cond() {
			if time.Now().After(deadline) {
				fail("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}

	// Both groups fire; alice is paged for each.
	amtoolRun("alert", "add", "alertname=DiskFull", "team=db", "instance=db1:9100", "--annotation=summary=Disk almost full")
	amtoolRun("alert", "add", "alertname=CPUHigh", "team=db", "instance=db2:9100", "--annotation=summary=CPU at 100%")
	until("alice's pages", 30*time.Second, func() bool { return len(sent(escAlice, "DiskFull")) == 1 && len(sent(escAlice, "CPUHigh")) == 1 })
	disk, cpu := sent(escAlice, "DiskFull")[0], sent(escAlice, "CPUHigh")[0]

	// DiskFull is silenced elsewhere, with amtool, before its step.
	id := amtoolRun("silence", "add", "alertname=DiskFull", "team=db", "--comment=on it", "--author=carol", "--duration=1h")
	if time.Since(disk.At) >= 10*time.Second {
		fail("the silence came %s after the page: too late for the test", time.Since(disk.At))
	}

	var wg sync.WaitGroup
	wg.Go(func() {
		// CPUHigh: Alertmanager shows it active; bob is paged.
		until("bob's escalated CPUHigh", 25*time.Second, func() bool { return len(sent(escBob, "CPUHigh")) == 1 })
		esc := sent(escBob, "CPUHigh")[0]
		if d := esc.At.Sub(cpu.At); d < 9*time.Second || d > 13*time.Second {
			t.Errorf("CPUHigh escalated %s after the page, want about 10s", d)
		}
		if !strings.HasPrefix(esc.Text, "ESCALATED (10s, no ack): FIRING:1 CPUHigh") || !strings.Contains(esc.Text, "to silence 1h") {
			t.Errorf("escalated text %q", esc.Text)
		}
	})
	// DiskFull: stopped as silenced, naming the silence; bob gets nothing.
	until("DiskFull's step stopped", 25*time.Second, func() bool {
		_, body := getBody(t, "http://"+bridge.addr+"/api/v1/escalations?state=all")
		return strings.Contains(body, `"alert_name":"DiskFull"`) && strings.Contains(body, `"reason":"silenced","detail":"Alertmanager: silenced by `+id+`"`)
	})
	time.Sleep(time.Until(disk.At.Add(12 * time.Second)))
	wg.Wait()
	if got := sent(escBob, "DiskFull"); len(got) != 0 {
		fail("bob got the silenced group: %q", got[0].Text)
	}
	_, metrics := getBody(t, "http://"+bridge.addr+"/metrics")
	for _, want := range []string{`smsbridge_escalations_stopped_total{reason="silenced"} 1`, `smsbridge_escalations_total{receiver="db-oncall",step="1"} 1`} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %s", want)
		}
	}
}
