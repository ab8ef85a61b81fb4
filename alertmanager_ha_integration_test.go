//go:build integration

package main

import (
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestRealAlertmanagerHAPair runs two unclustered Alertmanager v0.28.1
// processes (empty --cluster.listen-address, so no gossip at all: the
// worst case of an HA pair), configured alike but on different ports and
// external URLs, both sending to one bridge, and gives both the same
// alerts through amtool, as Prometheus would (same start). Each number
// must receive exactly one SMS for the firing and one for the resolution,
// and a re-fire after the resolution sends again.
func TestRealAlertmanagerHAPair(t *testing.T) {
	amBin, amtool := amTools(t)
	const key = "ha-key"
	numbers := []string{"+27831110011", "+27831110012"}
	fake := smsfake.NewServer(smsfake.Options{APIKey: key, Credits: smsfake.Unlimited})
	defer fake.Close()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "smsbridge.yml", bridgeConfig(fake.URL, writeFile(t, dir, "key", key), numbers))
	bridge := startBridge(t, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"))

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
`, bridge.addr))
	var ams []string
	logs := map[string]*syncBuffer{}
	for _, name := range []string{"am-a", "am-b"} {
		addr := freeAddr(t)
		logs[name] = startAlertmanager(t, amBin, amCfg, dir, name, addr, "--web.external-url=http://"+name+".example.org:9093/")
		ams = append(ams, addr)
	}
	dump := func() string {
		return fmt.Sprintf("am-a:\n%s\nam-b:\n%s\nbridge:\n%s", logs["am-a"], logs["am-b"], bridge.logs())
	}
	// fire gives both Alertmanagers the same alert, as one Prometheus
	// sends to both peers of a pair.
	fire := func(start time.Time, end time.Time) {
		t.Helper()
		for _, addr := range ams {
			args := []string{"alert", "add", "alertname=DiskFull", "severity=critical", "instance=db1:9100",
				"--annotation=summary=Disk almost full on db1", "--start=" + start.Format(time.RFC3339),
				"--alertmanager.url=http://" + addr}
			if !end.IsZero() {
				args = append(args, "--end="+end.Format(time.RFC3339))
			}
			if out, err := exec.Command(amtool, args...).CombinedOutput(); err != nil {
				t.Fatalf("amtool alert add: %v\n%s", err, out)
			}
		}
	}
	// expect waits for the bridge to have answered both peers for the
	// step (accepted once, duplicate once), then checks each number's
	// texts so far.
	expect := func(step string, accepted, duplicates int, texts ...string) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for {
			a, d := outcome(t, bridge.addr, "accepted"), outcome(t, bridge.addr, "duplicate")
			if a >= accepted && d >= duplicates && len(fake.Messages()) >= len(texts)*len(numbers) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: accepted %d, duplicates %d, %d SMS; want %d, %d, %d\n%s", step, a, d, len(fake.Messages()),
					accepted, duplicates, len(texts)*len(numbers), dump())
			}
			time.Sleep(100 * time.Millisecond)
		}
		// Both peers answered; anything else would be in by now.
		time.Sleep(1500 * time.Millisecond)
		got := map[string][]string{}
		for _, m := range fake.Messages() {
			got[m.Number] = append(got[m.Number], m.Text)
		}
		for _, n := range numbers {
			if len(got[n]) != len(texts) {
				t.Fatalf("%s: %s got %d SMS %q, want %d\n%s", step, n, len(got[n]), got[n], len(texts), dump())
			}
			for i, want := range texts {
				if !strings.HasPrefix(got[n][i], want) {
					t.Errorf("%s: SMS %d to %s = %q, want it to start with %q", step, i, n, got[n][i], want)
				}
			}
		}
	}

	start := time.Now().Add(-time.Minute).Truncate(time.Second)
	fire(start, time.Time{})
	expect("firing", 1, 1, "FIRING:1 DiskFull")

	fire(start, time.Now().Add(-time.Second))
	expect("resolved", 2, 2, "FIRING:1 DiskFull", "RESOLVED:1 DiskFull")

	fire(time.Now().Truncate(time.Second), time.Time{})
	expect("re-fire", 3, 3, "FIRING:1 DiskFull", "RESOLVED:1 DiskFull", "FIRING:1 DiskFull")
}

var outcomeRE = regexp.MustCompile(`(?m)^smsbridge_notifications_received_total\{outcome="([a-z_]+)",source="alertmanager"\} ([0-9.e+]+)$`)

// outcome reads the bridge's count of Alertmanager notifications with
// that outcome from /metrics.
func outcome(t *testing.T, addr, want string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range outcomeRE.FindAllStringSubmatch(string(body), -1) {
		if m[1] == want {
			v, _ := strconv.ParseFloat(m[2], 64)
			return int(v)
		}
	}
	return 0
}
