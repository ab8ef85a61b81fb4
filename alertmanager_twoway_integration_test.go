//go:build integration

package main

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
	"github.com/smsbridge/smsbridge/twoway"
)

// TestRealAlertmanagerAckByReply is the two-way loop against a real
// Alertmanager v0.28.1 (installed by .ci/run): amtool fires an alert;
// the fake provider receives an SMS with "ACK <n>"; a MessageReply
// callback with "ACK <n>" from that number creates a silence in
// Alertmanager with the group's labels, by smsbridge, ending an hour
// later; the sender gets the confirmation; firing the alert again (and a
// new alert of the same group) sends nothing, since Alertmanager silences
// it. Before that, the negative cases: a wrong token is a 404 and does
// nothing, an unknown number gets nothing, a bad code gets the help SMS,
// six junk replies get five answers; and the acknowledging body, posted
// twice, creates one silence.
func TestRealAlertmanagerAckByReply(t *testing.T) {
	amBin, amtool := amTools(t)
	const (
		key     = "twoway-key"
		token   = "it-c4llback-t0ken-0123456789abcdef"
		alice   = "+27831110021"
		bob     = "+27831110022"
		unknown = "+27831119999"
	)
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
route: {receiver: ops}
receivers:
  - {name: ops, numbers: [alice, bob]}
`, fake.URL, writeFile(t, dir, "key", key), writeFile(t, dir, "token", token+"\n"), amAddr, alice, bob))
	bridge := startBridge(t, "--config.file="+cfg, "--storage.path="+filepath.Join(dir, "data"))
	callback := "http://" + bridge.addr + twoway.CallbackPath
	fake.SetCallbackURL(callback + token)

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
	fire := func(labels ...string) {
		t.Helper()
		args := append([]string{"alert", "add"}, labels...)
		args = append(args, "--annotation=summary=Disk almost full", "--alertmanager.url=http://"+amAddr)
		if out, err := exec.Command(amtool, args...).CombinedOutput(); err != nil {
			fail("amtool %v: %v\n%s", args, err, out)
		}
	}
	texts := func(number string) []string {
		var out []string
		for _, m := range fake.Messages() {
			if m.Number == number {
				out = append(out, m.Text)
			}
		}
		return out
	}
	until := func(what string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(60 * time.Second)
		for !cond() {
			if time.Now().After(deadline) {
				fail("timed out waiting for %s", what)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	silences := func() []amSilence {
		t.Helper()
		var out []amSilence
		getJSON(t, "http://"+amAddr+"/api/v2/silences", &out)
		return out
	}
	// reply is the provider's MessageReply callback from number.
	reply := func(number, text string, at time.Time) string {
		return fmt.Sprintf(`{"Timestamp": %q, "Type": "MessageReply", "Events": [{"Number": %q, "Message": %q}]}`,
			at.UTC().Format("2006-01-02T15:04:05.0000000Z"), strings.TrimPrefix(number, "+"), text)
	}
	postCallback := func(tok, body string) int {
		t.Helper()
		resp, err := http.Post(callback+tok, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}

	// 1. amtool fires; 2. the SMS says ACK <n>.
	fire("alertname=DiskFull", "team=db", "instance=db1:9100", "severity=critical")
	until("the page", func() bool { return len(texts(alice)) == 1 && len(texts(bob)) == 1 })
	m := regexp.MustCompile(`\nReply ACK (\d+) to silence 1h$`).FindStringSubmatch(texts(alice)[0])
	if m == nil {
		fail("the page %q has no reply code", texts(alice)[0])
	}
	code := m[1]
	ack := reply(alice, "ACK "+code, time.Now())

	// Negative cases first. A wrong token: 404, and nothing happens.
	for _, tok := range []string{"wrong-" + token, token[:len(token)-1], strings.ToUpper(token)} {
		if status := postCallback(tok, ack); status != http.StatusNotFound {
			fail("wrong token answered %d, want 404", status)
		}
	}
	// An unknown number: nothing at all.
	for _, text := range []string{"ACK " + code, "hello"} {
		if err := fake.Reply(t.Context(), unknown, text); err != nil {
			t.Fatal(err)
		}
	}
	// A bad code: the help SMS.
	if err := fake.Reply(t.Context(), alice, "ACK 987"); err != nil {
		t.Fatal(err)
	}
	until("the help SMS", func() bool { return len(texts(alice)) == 2 })
	if !strings.Contains(texts(alice)[1], "no alert with code 987") {
		fail("answer to a bad code %q", texts(alice)[1])
	}
	// Six junk replies: five answers (the reply-loop guard).
	for i := range 6 {
		if err := fake.Reply(t.Context(), bob, fmt.Sprintf("on it %d", i)); err != nil {
			t.Fatal(err)
		}
	}
	until("five answers to bob", func() bool { return len(texts(bob)) == 1+5 })
	if got := silences(); len(got) != 0 {
		fail("silences before any valid reply: %+v", got)
	}

	// 3. The reply, posted twice (the provider's retry): one silence.
	acked := time.Now()
	for range 2 {
		if status := postCallback(token, ack); status != http.StatusOK {
			fail("the acknowledgement answered %d", status)
		}
	}
	until("the silence", func() bool { return len(silences()) > 0 })
	// 5. The confirmation; bob hears who.
	until("the confirmation", func() bool { return len(texts(alice)) == 3 && len(texts(bob)) == 7 })
	if want := fmt.Sprintf("Silenced DiskFull team=db for 1h (ACK %s)", code); texts(alice)[2] != want {
		fail("confirmation %q, want %q", texts(alice)[2], want)
	}
	if got := texts(bob)[6]; got != "DiskFull team=db acked by alice for 1h" {
		fail("bob heard %q", got)
	}
	// 4. The silence: the group's labels, equal; by smsbridge; an hour.
	ss := silences()
	if len(ss) != 1 {
		fail("%d silences after the body twice, want 1: %+v", len(ss), ss)
	}
	s := ss[0]
	var matchers []string
	for _, mt := range s.Matchers {
		matchers = append(matchers, fmt.Sprintf("%s=%s regex=%t equal=%t", mt.Name, mt.Value, mt.IsRegex, *mt.IsEqual))
	}
	slices.Sort(matchers)
	if want := []string{"alertname=DiskFull regex=false equal=true", "team=db regex=false equal=true"}; !slices.Equal(matchers, want) {
		fail("matchers %v, want %v", matchers, want)
	}
	if s.CreatedBy != "smsbridge" || s.Status.State != "active" || !strings.Contains(s.Comment, "alice") || !strings.Contains(s.Comment, "ACK "+code) {
		fail("silence %+v", s)
	}
	if d := s.EndsAt.Sub(acked); d < time.Hour-time.Minute || d > time.Hour+time.Minute {
		fail("the silence ends %s after the reply, want about an hour", d)
	}

	// 6. Firing again, the same alert and a new one of the group: nothing
	// is sent; Alertmanager says it silences them.
	sent := len(fake.Messages())
	fire("alertname=DiskFull", "team=db", "instance=db1:9100", "severity=critical")
	fire("alertname=DiskFull", "team=db", "instance=db2:9100", "severity=critical")
	until("both alerts silenced", func() bool {
		var alerts []amAlert
		getJSON(t, "http://"+amAddr+"/api/v2/alerts", &alerts)
		n := 0
		for _, a := range alerts {
			if a.Status.State == "suppressed" && slices.Contains(a.Status.SilencedBy, s.ID) {
				n++
			}
		}
		return n == 2
	})
	// Longer than group_wait and group_interval with a margin: a
	// notification would have been sent by now.
	time.Sleep(5 * time.Second)
	if got := fake.Messages(); len(got) != sent {
		fail("%d SMS after firing a silenced group again: %+v", len(got)-sent, got[sent:])
	}
	if len(texts(unknown)) != 0 {
		fail("the unknown number got %q", texts(unknown))
	}
	if strings.Contains(bridge.logs(), token) {
		t.Error("the callback token is in the bridge's log")
	}
}

type amSilence struct {
	ID       string `json:"id"`
	Matchers []struct {
		Name    string `json:"name"`
		Value   string `json:"value"`
		IsRegex bool   `json:"isRegex"`
		IsEqual *bool  `json:"isEqual"`
	} `json:"matchers"`
	StartsAt  time.Time `json:"startsAt"`
	EndsAt    time.Time `json:"endsAt"`
	CreatedBy string    `json:"createdBy"`
	Comment   string    `json:"comment"`
	Status    struct {
		State string `json:"state"`
	} `json:"status"`
}

type amAlert struct {
	Labels map[string]string `json:"labels"`
	Status struct {
		State      string   `json:"state"`
		SilencedBy []string `json:"silencedBy"`
	} `json:"status"`
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}
