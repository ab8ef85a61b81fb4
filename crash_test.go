package main

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// amPayload builds an Alertmanager webhook body with one firing alert.
func amPayload(alertname, summary string) []byte {
	return fmt.Appendf(nil, `{"version":"4","status":"firing","receiver":"sms","groupKey":"{}:{alertname=\"%s\"}",
"groupLabels":{"alertname":%q},"commonLabels":{"alertname":%q},"commonAnnotations":{},"externalURL":"http://am",
"alerts":[{"status":"firing","labels":{"alertname":%q,"severity":"critical"},"annotations":{"summary":%q},
"startsAt":"2026-11-26T03:00:00Z","endsAt":"0001-01-01T00:00:00Z","fingerprint":"f%s"}]}`,
		alertname, alertname, alertname, alertname, summary, alertname)
}

// TestCrashMidDelivery posts a batch to the built binary, kills it with
// SIGKILL while deliveries are under way, restarts it on the same store
// and checks that every accepted number was delivered.
func TestCrashMidDelivery(t *testing.T) {
	const key = "crash-key"
	numbers := []string{"+27831230001", "+27831230002", "+27831230003"}
	// A slow provider keeps deliveries in flight when the kill lands.
	fake := smsfake.NewServer(smsfake.Options{APIKey: key, Credits: -1, Latency: 40 * time.Millisecond})
	defer fake.Close()
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "key", key)
	cfg := writeFile(t, dir, "smsbridge.yml", bridgeConfig(fake.URL, keyFile, numbers))
	store := filepath.Join(dir, "data")
	args := []string{"--config.file=" + cfg, "--storage.path=" + store}

	p := startBridge(t, args...)
	const notifications = 40
	want := map[string]bool{}
	for i := range notifications {
		name := fmt.Sprintf("Crash%02d", i)
		code, body := post(t, "http://"+p.addr+"/api/v1/alertmanager", amPayload(name, "summary "+name))
		if code != 202 || body["recipients"] != float64(len(numbers)) {
			t.Fatalf("post %d: %d %v", i, code, body)
		}
		for _, n := range numbers {
			want[name+"|"+n] = true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := fake.WaitMessages(ctx, len(numbers)*3); err != nil {
		t.Fatalf("no delivery started: %v\n%s", err, p.logs())
	}
	p.kill(t)
	before := fake.Accepted()
	if before >= len(want) {
		t.Fatalf("all %d deliveries finished before the kill; the test proves nothing", before)
	}
	t.Logf("killed with %d of %d deliveries done", before, len(want))

	p = startBridge(t, args...)
	deadline := time.Now().Add(60 * time.Second)
	for {
		got := delivered(fake)
		missing := 0
		for k := range want {
			if got[k] == 0 {
				missing++
			}
		}
		if missing == 0 {
			dups := 0
			for _, c := range got {
				dups += c - 1
			}
			t.Logf("all %d delivered after restart; %d duplicates from the batch in flight at the kill", len(want), dups)
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d accepted numbers never delivered\n%s", missing, len(want), p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// delivered counts accepted messages per alertname|number.
func delivered(fake *smsfake.Server) map[string]int {
	got := map[string]int{}
	for _, m := range fake.Messages() {
		for i := range 100 {
			name := fmt.Sprintf("Crash%02d", i)
			if containsWord(m.Text, name) {
				got[name+"|"+m.Number]++
				break
			}
		}
	}
	return got
}

func containsWord(s, w string) bool {
	for i := 0; i+len(w) <= len(s); i++ {
		if s[i:i+len(w)] == w && (i+len(w) == len(s) || s[i+len(w)] < '0' || s[i+len(w)] > '9') {
			return true
		}
	}
	return false
}

// TestGracefulShutdown sends SIGTERM while deliveries are under way: the
// process exits cleanly, and what it had not sent is sent after restart.
func TestGracefulShutdown(t *testing.T) {
	const key = "term-key"
	numbers := []string{"+27831240001", "+27831240002"}
	fake := smsfake.NewServer(smsfake.Options{APIKey: key, Credits: smsfake.Unlimited, Latency: 40 * time.Millisecond})
	defer fake.Close()
	dir := t.TempDir()
	cfg := writeFile(t, dir, "smsbridge.yml", bridgeConfig(fake.URL, writeFile(t, dir, "key", key), numbers))
	args := []string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data")}
	p := startBridge(t, args...)
	const notifications = 20
	for i := range notifications {
		name := fmt.Sprintf("Crash%02d", i)
		if code, _ := post(t, "http://"+p.addr+"/api/v1/alertmanager", amPayload(name, "s")); code != 202 {
			t.Fatalf("post: %d", code)
		}
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- p.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v\n%s", err, p.logs())
		}
	case <-time.After(45 * time.Second):
		t.Fatalf("no exit within 45s of SIGTERM\n%s", p.logs())
	}
	if !strings.Contains(p.logs(), "shutting down") {
		t.Errorf("no shutdown logged:\n%s", p.logs())
	}
	p = startBridge(t, args...)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	for {
		got := delivered(fake)
		if len(got) == notifications*len(numbers) {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("%d of %d delivered after restart\n%s", len(got), notifications*len(numbers), p.logs())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
