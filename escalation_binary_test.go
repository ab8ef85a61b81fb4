package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
	"github.com/smsbridge/smsbridge/twoway"
)

// The escalation step of these tests: the shortest the configuration
// allows, so that the tests are as fast as the feature lets them be.
const escalationStep = 10 * time.Second

// escalationBridge is the built binary paging alice (db-oncall), whose
// page escalates to bob (db-secondary) after 10s, with replies on and the
// fake provider posting back to it.
type escalationBridge struct {
	p    *proc
	fake *smsfake.Server
	args []string
	tok  string
}

func startEscalationBridge(t *testing.T, extra string) *escalationBridge {
	t.Helper()
	const key, tok = "escalation-key", "esc-c4llback-t0ken-0123456789abcdef"
	fake := smsfake.NewServer(smsfake.Options{APIKey: key, Credits: smsfake.Unlimited})
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	cfg := writeFile(t, dir, "smsbridge.yml", fmt.Sprintf(`sms:
  url: %s
  api_key_file: %s
  timeout: 2s
  rate_limit: 200
  callback: {token_file: %s}
delivery: {min_backoff: 50ms, max_backoff: 500ms}
replies: {enabled: true}
people:
  - {name: alice, number: "%s"}
  - {name: bob, number: "%s"}
route: {receiver: db-oncall}
receivers:
  - name: db-oncall
    numbers: [alice]
    escalate: [{after: %s, receiver: db-secondary}]
  - name: db-secondary
    numbers: [bob]
%s`, fake.URL, writeFile(t, dir, "key", key), writeFile(t, dir, "token", tok), escAlice, escBob, escalationStep, extra))
	b := &escalationBridge{fake: fake, tok: tok,
		args: []string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data"), "--web.enable-admin-api"}}
	b.start(t)
	return b
}

const (
	escAlice = "+27831120001"
	escBob   = "+27831120002"
)

func (b *escalationBridge) start(t *testing.T) {
	t.Helper()
	b.p = startBridge(t, b.args...)
	b.fake.SetCallbackURL("http://" + b.p.addr + twoway.CallbackPath + b.tok)
}

func (b *escalationBridge) url(path string) string { return "http://" + b.p.addr + path }

// sentTo returns the messages the provider took for number.
func (b *escalationBridge) sentTo(number string) []smsfake.Message {
	var out []smsfake.Message
	for _, m := range b.fake.Messages() {
		if m.Number == number {
			out = append(out, m)
		}
	}
	return out
}

// page posts a firing notification of DiskFull and waits for alice's SMS.
func (b *escalationBridge) page(t *testing.T) smsfake.Message {
	t.Helper()
	if code, body := post(t, b.url("/api/v1/alertmanager"), amPayload("DiskFull", "disk full on db1")); code != http.StatusAccepted {
		t.Fatalf("page: %d %v", code, body)
	}
	waitFor(t, "alice's page", func() bool { return len(b.sentTo(escAlice)) == 1 })
	return b.sentTo(escAlice)[0]
}

// steps returns the steps of every escalation the API lists.
func (b *escalationBridge) steps(t *testing.T) []escalationStepJSON {
	t.Helper()
	code, body := getBody(t, b.url("/api/v1/escalations?state=all"))
	if code != http.StatusOK {
		t.Fatalf("GET /api/v1/escalations: %d %s", code, body)
	}
	var out struct {
		Escalations []struct {
			Steps []escalationStepJSON `json:"steps"`
		} `json:"escalations"`
	}
	if err := json.Unmarshal([]byte(body), &out); err != nil {
		t.Fatal(err)
	}
	var steps []escalationStepJSON
	for _, e := range out.Escalations {
		steps = append(steps, e.Steps...)
	}
	return steps
}

type escalationStepJSON struct {
	State, Reason, Detail string
}

// metric reads one series of the bridge's /metrics.
func (b *escalationBridge) metric(t *testing.T, series string) string {
	t.Helper()
	_, body := getBody(t, b.url("/metrics"))
	m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` (\S+)$`).FindStringSubmatch(body)
	if m == nil {
		return "absent"
	}
	return m[1]
}

// quietUntil checks that bob gets nothing until at, a little past the
// step.
func (b *escalationBridge) quietUntil(t *testing.T, at time.Time) {
	t.Helper()
	time.Sleep(time.Until(at))
	if got := b.sentTo(escBob); len(got) != 0 {
		t.Errorf("bob got %q", got[0].Text)
	}
}

// TestEscalationThroughBinary: the built binary escalates a page nobody
// acknowledges to the next receiver about 10 s later, exactly once
// across a kill -9 and a restart in between; an acknowledgement by reply
// or a resolution before then stops it, with its reason. The cases run in
// parallel: the whole takes about one step.
func TestEscalationThroughBinary(t *testing.T) {
	t.Parallel()
	t.Run("no acknowledgement", func(t *testing.T) {
		t.Parallel()
		b := startEscalationBridge(t, "")
		first := b.page(t)
		ctx, cancel := context.WithTimeout(context.Background(), escalationStep+10*time.Second)
		defer cancel()
		for len(b.sentTo(escBob)) == 0 {
			if ctx.Err() != nil {
				t.Fatalf("bob got nothing; log:\n%s", b.p.logs())
			}
			time.Sleep(20 * time.Millisecond)
		}
		esc := b.sentTo(escBob)[0]
		if d := esc.At.Sub(first.At); d < escalationStep-time.Second || d > escalationStep+3*time.Second {
			t.Errorf("escalated %s after the page, want about %s", d, escalationStep)
		}
		if !regexp.MustCompile(`^ESCALATED \(10s, no ack\): FIRING:1 DiskFull\ncritical\ndisk full on db1\nReply ACK \d+ to acknowledge$`).MatchString(esc.Text) {
			t.Errorf("escalated text %q", esc.Text)
		}
		if v := b.metric(t, `smsbridge_escalations_total{receiver="db-oncall",step="1"}`); v != "1" {
			t.Errorf("escalations_total %s, want 1", v)
		}
		if st := b.steps(t); len(st) != 1 || st[0].State != "escalated" {
			t.Errorf("steps %+v", st)
		}
		time.Sleep(time.Second)
		if n := len(b.sentTo(escBob)); n != 1 {
			t.Errorf("bob got %d pages, want 1", n)
		}
	})
	t.Run("acknowledged by reply", func(t *testing.T) {
		t.Parallel()
		b := startEscalationBridge(t, "")
		first := b.page(t)
		code := regexp.MustCompile(`Reply ACK (\d+)`).FindStringSubmatch(first.Text)
		if code == nil {
			t.Fatalf("no reply code in %q", first.Text)
		}
		if err := b.fake.Reply(t.Context(), escAlice, "ACK "+code[1]); err != nil {
			t.Fatal(err)
		}
		waitFor(t, "the step stopped", func() bool {
			st := b.steps(t)
			return len(st) == 1 && st[0].State == "stopped"
		})
		if st := b.steps(t)[0]; st.Reason != "acked" || !strings.HasPrefix(st.Detail, "acknowledged by alice") {
			t.Errorf("step %+v", st)
		}
		b.quietUntil(t, first.At.Add(escalationStep+2*time.Second))
		if v := b.metric(t, `smsbridge_escalations_stopped_total{reason="acked"}`); v != "1" {
			t.Errorf("stopped{acked} %s, want 1", v)
		}
	})
	t.Run("resolved", func(t *testing.T) {
		t.Parallel()
		b := startEscalationBridge(t, "")
		first := b.page(t)
		resolved := strings.NewReplacer(`"status":"firing"`, `"status":"resolved"`, `"endsAt":"0001-01-01T00:00:00Z"`, `"endsAt":"2026-11-26T03:05:00Z"`).
			Replace(string(amPayload("DiskFull", "disk full on db1")))
		if code, body := post(t, b.url("/api/v1/alertmanager"), []byte(resolved)); code != http.StatusAccepted {
			t.Fatalf("resolve: %d %v", code, body)
		}
		if st := b.steps(t); len(st) != 1 || st[0].State != "stopped" || st[0].Reason != "resolved" {
			t.Errorf("steps after the resolution %+v", st)
		}
		b.quietUntil(t, first.At.Add(escalationStep+2*time.Second))
		if v := b.metric(t, `smsbridge_escalations_stopped_total{reason="resolved"}`); v != "1" {
			t.Errorf("stopped{resolved} %s, want 1", v)
		}
	})
	t.Run("kill -9 and a restart before the step", func(t *testing.T) {
		t.Parallel()
		b := startEscalationBridge(t, "")
		first := b.page(t)
		// Alice's page recorded accepted first, so the restart has no
		// batch to send again (at-least-once) and the count below is
		// exact.
		waitFor(t, "alice's delivery recorded", func() bool {
			_, page := getBody(t, b.url("/api/v1/deliveries?status=accepted"))
			return strings.Contains(page, `"person":"alice"`)
		})
		b.p.kill(t)
		b.start(t)
		waitFor(t, "bob's escalated page after the restart", func() bool { return len(b.sentTo(escBob)) == 1 })
		if d := b.sentTo(escBob)[0].At.Sub(first.At); d < escalationStep-time.Second || d > escalationStep+3*time.Second {
			t.Errorf("escalated %s after the page, want about %s", d, escalationStep)
		}
		waitFor(t, "the step recorded", func() bool {
			st := b.steps(t)
			return len(st) == 1 && st[0].State == "escalated"
		})
		// Bob's page recorded accepted too, for the same reason: a kill
		// between the provider's answer and its record would send that
		// one batch again (at least once), which is not what this checks.
		waitFor(t, "bob's delivery recorded", func() bool {
			_, page := getBody(t, b.url("/api/v1/deliveries?status=accepted"))
			return strings.Contains(page, `"person":"bob"`)
		})
		// A second kill -9 and restart send nothing more.
		b.p.kill(t)
		b.start(t)
		time.Sleep(time.Second)
		if a, bb := len(b.sentTo(escAlice)), len(b.sentTo(escBob)); a != 1 || bb != 1 {
			t.Errorf("alice got %d, bob %d pages; want one each", a, bb)
		}
	})
}
