package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// TestOncallThroughBinary runs the built binary with a weekly rotation
// whose start puts bob on call now (his turn began an hour ago), and
// checks that an alert reaches exactly bob's number; that bob got one
// handoff notice, once even across a restart; and that an override added
// through the admin API (with --web.enable-admin-api) takes over routing.
func TestOncallThroughBinary(t *testing.T) {
	const key = "oncall-key"
	alice, bob, carol, erin := "+27830000001", "+27830000002", "+27830000003", "+27830000005"
	fake := smsfake.NewServer(smsfake.Options{APIKey: key, Credits: -1})
	defer fake.Close()
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "key", key)
	// Turn 0 (alice) began a week and an hour ago; turn 1, bob's, an hour
	// ago, in the list's zone.
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now().In(berlin).Add(-7*24*time.Hour - time.Hour).Format("2006-01-02T15:04")
	cfg := writeFile(t, dir, "smsbridge.yml", fmt.Sprintf(`sms:
  url: %s
  api_key_file: %s
  timeout: 2s
  rate_limit: 200
delivery:
  min_backoff: 50ms
  max_backoff: 500ms
people:
  - {name: alice, number: "%s"}
  - {name: bob, number: "%s"}
  - {name: carol, number: "%s"}
  - {name: erin, number: "%s"}
route:
  receiver: db
receivers:
  - name: db
    oncall: [db-primary]
oncall:
  - name: db-primary
    time_zone: Europe/Berlin
    notify_handoff: true
    rotation: {members: [alice, bob, carol], shift: 1w, start: "%s"}
`, fake.URL, keyFile, alice, bob, carol, erin, start))
	args := []string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data"), "--web.enable-admin-api"}
	p := startBridge(t, args...)
	base := "http://" + p.addr

	// The handoff an hour ago: bob is told, at start.
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := fake.WaitMessages(ctx, 1); err != nil {
		t.Fatalf("no handoff notice: %v\n%s", err, p.logs())
	}
	notice := fake.Messages()[0]
	if notice.Number != bob || !strings.HasPrefix(notice.Text, "You are on call for db-primary until ") {
		t.Errorf("notice %+v, want one to bob", notice)
	}

	code, body := post(t, base+"/api/v1/alertmanager", amPayload("DiskFull", "disk full on db1"))
	if code != http.StatusAccepted || body["recipients"] != float64(1) {
		t.Fatalf("alert: %d %v", code, body)
	}
	if err := fake.WaitMessages(ctx, 2); err != nil {
		t.Fatalf("the alert was not sent: %v\n%s", err, p.logs())
	}
	if got := numbersOf(fake.Messages()[1:]); !slices.Equal(got, []string{bob}) {
		t.Errorf("the alert went to %v, want only bob %s", got, bob)
	}
	// The delivery records who was on call, and the log names him masked.
	if !waitLog(p, `numbers="[bob (+2783****002)]"`) {
		t.Errorf("the log does not name bob with his number masked:\n%s", p.logs())
	}
	// Both recorded as accepted before the restart (a kill between the
	// provider's answer and the record would send a batch again, by
	// design).
	waitFor(t, "two accepted deliveries", func() bool {
		_, page := getBody(t, base+"/api/v1/deliveries?status=accepted")
		return strings.Count(page, `"person":"bob"`) == 2
	})

	// A restart does not repeat the notice.
	p.kill(t)
	p = startBridge(t, args...)
	base = "http://" + p.addr
	time.Sleep(500 * time.Millisecond) // the roster checks at once at start
	if n := len(fake.Messages()); n != 2 {
		t.Errorf("%d messages after the restart, want still 2: %+v", n, fake.Messages())
	}

	// An override for erin, through the admin API, routes the next alert
	// to her, and tells her.
	end := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	req, _ := http.NewRequest(http.MethodPost, base+"/api/v1/oncall/db-primary/overrides",
		bytes.NewReader(fmt.Appendf(nil, `{"members":["erin"],"end":%q}`, end)))
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var ov struct{ ID int64 }
	_ = json.NewDecoder(resp.Body).Decode(&ov)
	resp.Body.Close()
	if resp.StatusCode != http.StatusCreated || ov.ID != 1 {
		t.Fatalf("add override: %d %+v", resp.StatusCode, ov)
	}
	code, body = post(t, base+"/api/v1/alertmanager", amPayload("DiskFuller", "disk fuller on db1"))
	if code != http.StatusAccepted || body["recipients"] != float64(1) {
		t.Fatalf("alert: %d %v", code, body)
	}
	// erin is told at once, and the alert reaches her alone.
	sentTo := func(text string) []string {
		var out []string
		for _, m := range fake.Messages() {
			if strings.Contains(m.Text, text) {
				out = append(out, m.Number)
			}
		}
		return out
	}
	waitFor(t, "the alert and erin's notice", func() bool {
		return len(sentTo("DiskFuller")) > 0 && len(sentTo("You are on call")) == 2
	})
	if got := sentTo("DiskFuller"); !slices.Equal(got, []string{erin}) {
		t.Errorf("the alert under the override went to %v, want only erin %s", got, erin)
	}
	if got := sentTo("You are on call"); !slices.Equal(got, []string{bob, erin}) {
		t.Errorf("notices went to %v, want bob then erin", got)
	}
	code, page := getBody(t, base+"/")
	if code != 200 || !strings.Contains(page, "erin (&#43;2783****005)") || !strings.Contains(page, "override 1") {
		t.Errorf("the status page does not show the override: %d", code)
	}
	// oncall who against the running bridge agrees.
	c, out, stderr := runCLI(t, "oncall", "who", "--config.file="+cfg, "--url="+base)
	if c != 0 || !strings.HasPrefix(out, "db-primary: erin (+2783****005) until ") {
		t.Errorf("oncall who --url: %d %q %q", c, out, stderr)
	}
}

func numbersOf(ms []smsfake.Message) []string {
	var out []string
	for _, m := range ms {
		out = append(out, m.Number)
	}
	return out
}

// waitLog waits a little for the binary to log s.
func waitLog(p *proc, s string) bool {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if strings.Contains(p.logs(), s) {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func getBody(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b bytes.Buffer
	_, _ = b.ReadFrom(resp.Body)
	return resp.StatusCode, b.String()
}
