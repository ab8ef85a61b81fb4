package main

import (
	"context"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestLogKeysKeptByPromslog runs the binary in both log formats: the
// intake source is logged as intake_source, and no key of ours collides
// with one promslog reserves (source, time, level, msg), which it would
// rename to logged_<key>.
func TestLogKeysKeptByPromslog(t *testing.T) {
	fake := smsfake.NewServer(smsfake.Options{APIKey: "k", Credits: smsfake.Unlimited})
	defer fake.Close()
	tests := []struct {
		format string
		want   []string
	}{
		{"logfmt", []string{`msg="notification accepted"`, "intake_source=alertmanager", `intake_source=alertmanager outcome=invalid status=400`}},
		{"json", []string{`"msg":"notification accepted"`, `"intake_source":"alertmanager"`, `"intake_source":"alertmanager","outcome":"invalid","status":400`}},
	}
	for i, tc := range tests {
		t.Run(tc.format, func(t *testing.T) {
			dir := t.TempDir()
			cfg := writeFile(t, dir, "smsbridge.yml", bridgeConfig(fake.URL, writeFile(t, dir, "key", "k"), []string{"+27830000001"}))
			p := startBridge(t, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"), "--log.format="+tc.format)
			base := "http://" + p.addr + "/api/v1/alertmanager"
			if code, body := post(t, base, amPayload("LogKeys", "keys")); code != http.StatusAccepted {
				t.Fatalf("alert: %d %v", code, body)
			}
			if code, _ := post(t, base, []byte(`{"version":"4",`)); code != http.StatusBadRequest {
				t.Fatalf("malformed: %d", code)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := fake.WaitMessages(ctx, i+1); err != nil {
				t.Fatalf("not sent: %v\n%s", err, p.logs())
			}
			// The refusal is logged as its answer goes out, not before:
			// give the line a moment to be written before the kill.
			for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
				if logs := p.logs(); strings.Contains(logs, tc.want[len(tc.want)-1]) {
					break
				}
			}
			p.kill(t)
			logs := p.logs()
			for _, want := range tc.want {
				if !strings.Contains(logs, want) {
					t.Errorf("log lacks %s:\n%s", want, logs)
				}
			}
			if strings.Contains(logs, "logged_") {
				t.Errorf("a key was renamed by promslog:\n%s", logs)
			}
		})
	}
}
