package main

import (
	"bytes"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestReadmeTryingIt does what the README's "Trying it" section says, with
// the binary on a fresh storage directory, and checks that the answer it
// prints is the real one, and that send-test against that bridge (no
// --web.enable-admin-api) is refused as the section on operator tools says.
func TestReadmeTryingIt(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, after, ok := strings.Cut(string(readme), "http://localhost:9754/api/v1/alertmanager\n")
	if !ok {
		t.Fatal("the README has no curl to the Alertmanager endpoint")
	}
	want, _, _ := strings.Cut(strings.TrimPrefix(after, "    "), "\n")
	p := startBridge(t, "--config.file=config.example.yaml", "--sms.dry-run", "--storage.path="+filepath.Join(t.TempDir(), "data"))
	// The README's reader posts seconds after the start: by then the
	// handoff notice is queued.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.logs(), `msg="handoff notice queued"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	body, err := os.ReadFile("receiver/testdata/am-firing.json")
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.Post("http://"+p.addr+"/api/v1/alertmanager", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if strings.TrimSpace(string(got)) != want {
		t.Errorf("the bridge answered %s, the README says %s; log:\n%s", got, want, p.logs())
	}
	for !strings.Contains(p.logs(), `msg="notification accepted"`) && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if !strings.Contains(p.logs(), "intake_source=alertmanager") {
		t.Errorf("the log has no intake_source, which the README names:\n%s", p.logs())
	}
	code, _, stderr := runCLI(t, "send-test", "--receiver=db-oncall", "--web.url=http://"+p.addr, "--no-wait")
	if code != 1 || !strings.Contains(stderr, "403") || !strings.Contains(stderr, "--web.enable-admin-api") {
		t.Errorf("send-test without --web.enable-admin-api: exit %d, %s", code, stderr)
	}
	if !strings.Contains(string(readme), "the bridge must run with `--web.enable-admin-api`") {
		t.Error("the README's send-test section does not say it needs --web.enable-admin-api")
	}
}
