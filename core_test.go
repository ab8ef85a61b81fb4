package main

import (
	"context"
	"net/http"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestSecondProcessRefused: two bridges must not share one storage
// directory; the second refuses to start within a second, naming the
// directory and the pid that holds it.
func TestSecondProcessRefused(t *testing.T) {
	fake := smsfake.NewServer(smsfake.Options{APIKey: "k", Credits: smsfake.Unlimited})
	defer fake.Close()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "smsbridge.yml", bridgeConfig(fake.URL, writeFile(t, dir, "key", "k"), []string{"+27830000001"}))
	store := filepath.Join(dir, "data")
	first := startBridge(t, "--config.file="+cfg, "--storage.path="+store)

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	second := exec.CommandContext(ctx, binary(t), "--config.file="+cfg, "--storage.path="+store, "--web.listen-address="+freeAddr(t))
	start := time.Now()
	out, err := second.CombinedOutput()
	took := time.Since(start)
	if err == nil {
		t.Fatalf("the second bridge ran on the same storage path:\n%s", out)
	}
	if code := second.ProcessState.ExitCode(); code != 1 {
		t.Errorf("exit code %d, want 1", code)
	}
	// The process starts in well under a second; allow for a loaded
	// machine, since the binary's own start is part of the measure.
	if took > 3*time.Second {
		t.Errorf("the second bridge took %s to refuse", took)
	}
	pid := strconv.Itoa(first.cmd.Process.Pid)
	for _, want := range []string{store, "pid " + pid, "in use"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the refusal does not say %q:\n%s", want, out)
		}
	}
	// The first keeps serving.
	if code, _ := post(t, "http://"+first.addr+"/api/v1/alertmanager", amPayload("StillMine", "s")); code != 202 {
		t.Errorf("the first bridge answered %d after the second tried", code)
	}
}

// TestPauseSurvivesRestart: a bridge restarted inside a 429 pause sends
// nothing until the pause ends.
func TestPauseSurvivesRestart(t *testing.T) {
	const pause = 6 * time.Second
	fake := smsfake.NewServer(smsfake.Options{APIKey: "k", Credits: smsfake.Unlimited})
	defer fake.Close()
	fake.FailNext(1, smsfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: int(pause / time.Second)})
	dir := t.TempDir()
	cfg := writeFile(t, dir, "smsbridge.yml", bridgeConfig(fake.URL, writeFile(t, dir, "key", "k"), []string{"+27830000001"}))
	args := []string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data")}

	p := startBridge(t, args...)
	if code, _ := post(t, "http://"+p.addr+"/api/v1/alertmanager", amPayload("BeforeRestart", "s")); code != 202 {
		t.Fatalf("post: %d", code)
	}
	waitFor(t, "the 429", func() bool { return fake.Requests() == 1 })
	pausedAt := time.Now()
	// The pause is written to the store before the delivery is returned
	// to the queue with the 429's code: once the API shows the code, a
	// kill cannot lose the pause (a kill before it could, and then the
	// provider's next 429 would be the only guard).
	waitFor(t, "the 429 recorded", func() bool {
		_, body, _ := get(t, "GET", "http://"+p.addr+"/api/v1/deliveries")
		return strings.Contains(body, `"error_code":"`)
	})
	p.kill(t)

	p = startBridge(t, args...)
	if code, _ := post(t, "http://"+p.addr+"/api/v1/alertmanager", amPayload("AfterRestart", "s")); code != 202 {
		t.Fatalf("post: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := fake.WaitMessages(ctx, 2); err != nil {
		t.Fatalf("not delivered after the pause: %v\n%s", err, p.logs())
	}
	if n := fake.EarlyRequests(); n != 0 {
		t.Errorf("%d requests reached the provider inside its 429 pause after the restart", n)
	}
	if first := fake.Messages()[0].At; first.Before(pausedAt.Add(pause - time.Second)) {
		t.Errorf("sent %s after the 429, inside the %s pause", first.Sub(pausedAt), pause)
	}
	if !strings.Contains(p.logs(), "pause from before the restart") {
		t.Errorf("the restored pause is not logged:\n%s", p.logs())
	}
}

const fallbackConfig = `
sms:
  url: SMS_URL
  api_key_file: KEY_FILE
  timeout: 2s
  rate_limit: 50
  fallback_after: 1s
  fallback:
    url: FALLBACK_URL
    api_key: fallback-key
delivery:
  min_backoff: 20ms
  max_backoff: 200ms
  hold_retry: 1s
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["+27830000001"]
`

// TestFallbackAccount: while the primary account is held (here, out of
// credits), the fallback sends; once the primary answers a probe again,
// it carries the traffic. Each delivery records its account.
func TestFallbackAccount(t *testing.T) {
	fb := smsfake.NewServer(smsfake.Options{APIKey: "fallback-key", Credits: smsfake.Unlimited})
	defer fb.Close()
	tb := newTestBridge(t, strings.Replace(fallbackConfig, "FALLBACK_URL", fb.URL, 1), smsfake.Options{})
	tb.fake.SetCredits(0)

	if code, _ := tb.post(t, "/api/v1/alertmanager", amPayload("DuringHold", "s")); code != 202 {
		t.Fatalf("post: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fb.WaitMessages(ctx, 1); err != nil {
		t.Fatalf("the fallback did not take over: %v\n%s", err, tb.logs)
	}
	waitFor(t, "the accepted delivery recorded", func() bool {
		rs, err := tb.store.Deliveries(context.Background(), outbox.Filter{State: outbox.StateAccepted})
		return err == nil && len(rs) == 1 && rs[0].Account == "fallback"
	})
	if v := tb.metricValue(t, "smsbridge_dispatch_active_account", map[string]string{"account": "fallback"}); v != 1 {
		t.Errorf("active_account{fallback} = %v", v)
	}

	// The primary has credits again: the next page probes it and it takes
	// over.
	tb.fake.SetCredits(smsfake.Unlimited)
	time.Sleep(1100 * time.Millisecond) // one hold_retry, so the next request probes the primary
	if code, _ := tb.post(t, "/api/v1/alertmanager", amPayload("AfterHold", "s")); code != 202 {
		t.Fatalf("post: %d", code)
	}
	if err := tb.fake.WaitMessages(ctx, 1); err != nil {
		t.Fatalf("the primary did not take over again: %v\n%s", err, tb.logs)
	}
	var rs []outbox.Record
	waitFor(t, "both deliveries recorded", func() bool {
		var err error
		rs, err = tb.store.Deliveries(context.Background(), outbox.Filter{State: outbox.StateAccepted})
		return err == nil && len(rs) == 2
	})
	accounts := map[string]string{}
	for _, r := range rs {
		accounts[r.Text[:strings.IndexByte(r.Text+"\n", '\n')]] = r.Account
	}
	if len(rs) != 2 || rs[0].Account != "primary" || rs[1].Account != "fallback" {
		t.Errorf("accounts by text %v", accounts)
	}
	if v := tb.metricValue(t, "smsbridge_sms_sent_total", map[string]string{"receiver": "ops", "account": "fallback"}); v != 1 {
		t.Errorf("sms_sent_total{ops,fallback} = %v", v)
	}
	for _, want := range []string{"sending through the fallback account", "sending through the primary sms account again"} {
		if !strings.Contains(tb.logs.String(), want) {
			t.Errorf("the log lacks %q", want)
		}
	}
}
