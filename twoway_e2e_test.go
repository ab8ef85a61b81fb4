package main

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"

	"github.com/smsbridge/smsbridge/outbox"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
	"github.com/smsbridge/smsbridge/twoway"
)

const twoWayToken = "e2e-c4llback-t0ken-0123456789abcdef"

const twoWayConfig = `
sms:
  url: SMS_URL
  api_key_file: KEY_FILE
  timeout: 2s
  rate_limit: 100
  callback: {token: "` + twoWayToken + `"}
delivery:
  min_backoff: 20ms
  max_backoff: 200ms
replies: {enabled: true}
alertmanager_api:
  urls: [AM_URL]
  http_config:
    basic_auth: {username: smsbridge, password: am-api-pa55w0rd}
people:
  - {name: alice, number: "+27830000001"}
  - {name: bob, number: "+27830000002"}
  - {name: dave, number: "+27830000009"}
route:
  receiver: db
receivers:
  - {name: db, numbers: [alice, bob], on_undelivered: backup}
  - {name: backup, numbers: [dave]}
`

// silenceRecorder is an Alertmanager's POST /api/v2/silences.
type silenceRecorder struct {
	mu       sync.Mutex
	silences []map[string]any
	auth     []string
}

func (s *silenceRecorder) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var body map[string]any
	_ = json.NewDecoder(r.Body).Decode(&body)
	_, pass, _ := r.BasicAuth()
	s.auth = append(s.auth, pass)
	s.silences = append(s.silences, body)
	fmt.Fprintf(w, `{"silenceID":"sil-%d"}`, len(s.silences))
}

func (s *silenceRecorder) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.silences)
}

// newTwoWayBridge is a bridge whose fake provider posts receipts and
// replies to it, with the silencer running against am.
func newTwoWayBridge(t *testing.T, am http.Handler) *testBridge {
	t.Helper()
	amSrv := httptest.NewServer(am)
	t.Cleanup(amSrv.Close)
	tb := newTestBridge(t, strings.ReplaceAll(twoWayConfig, "AM_URL", amSrv.URL), smsfake.Options{})
	tb.fake.SetCallbackURL(tb.srv.URL + twoway.CallbackPath + twoWayToken)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go tb.runSilencer(ctx, done)
	t.Cleanup(func() { cancel(); <-done })
	return tb
}

// textsTo returns what the fake accepted for number, in order.
func textsTo(tb *testBridge, number string) []string {
	var out []string
	for _, m := range tb.fake.Messages() {
		if m.Number == number {
			out = append(out, m.Text)
		}
	}
	return out
}

var ackCode = regexp.MustCompile(`Reply ACK (\d+) to silence 1h$`)

// TestTwoWayEndToEnd: a page carries a code; receipts reach it; a reply
// acknowledges it in Alertmanager and is confirmed; the others hear who;
// STOP makes a hole that the page shows; an undelivered text goes to
// on_undelivered. No secret appears anywhere.
func TestTwoWayEndToEnd(t *testing.T) {
	am := &silenceRecorder{}
	tb := newTwoWayBridge(t, am)
	const alice, bob, dave = "+27830000001", "+27830000002", "+27830000009"

	if code, body := tb.post(t, "/api/v1/alertmanager", amPayload("DiskFull", "disk full on db1")); code != 202 {
		t.Fatalf("alert: %d %v", code, body)
	}
	waitFor(t, "the page to alice and bob", func() bool { return len(textsTo(tb, alice)) == 1 && len(textsTo(tb, bob)) == 1 })
	page := textsTo(tb, alice)[0]
	m := ackCode.FindStringSubmatch(page)
	if m == nil || textsTo(tb, bob)[0] != page {
		t.Fatalf("page %q (bob: %q): want one text ending with the reply line", page, textsTo(tb, bob)[0])
	}
	code := m[1]
	// The fake reports each accepted message delivered.
	waitFor(t, "two receipts", func() bool {
		return tb.metricValue(t, "smsbridge_receipts_total", map[string]string{"status": "delivered"}) == 2
	})

	if err := tb.fake.Reply(context.Background(), alice, "ack "+code); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the silence", func() bool { return am.count() == 1 })
	waitFor(t, "the confirmation", func() bool { return len(textsTo(tb, alice)) == 2 && len(textsTo(tb, bob)) == 2 })
	if got, want := textsTo(tb, alice)[1], fmt.Sprintf("Silenced DiskFull for 1h (ACK %s)", code); got != want {
		t.Errorf("confirmation %q, want %q", got, want)
	}
	if got := textsTo(tb, bob)[1]; got != "DiskFull acked by alice for 1h" {
		t.Errorf("bob heard %q", got)
	}
	s := am.silences[0]
	if s["createdBy"] != "smsbridge" || !strings.Contains(fmt.Sprint(s["matchers"]), "name:alertname") || am.auth[0] != "am-api-pa55w0rd" {
		t.Errorf("silence %v (auth %q)", s, am.auth[0])
	}

	// bob stops: the page shows it, the metric counts it, the next page
	// skips him.
	if err := tb.fake.Reply(context.Background(), bob, "STOP"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "the opt-out", func() bool { return tb.metricValue(t, "smsbridge_opted_out_numbers", nil) == 1 })
	code2, pageHTML := statusRequest(t, "GET", tb.srv.URL+"/", "")
	if code2 != 200 || !strings.Contains(pageHTML, `id="optout-banner"`) || !strings.Contains(pageHTML, "bob (&#43;2783****002)") {
		t.Errorf("no STOP banner naming bob on the page (%d):\n%s", code2, pageHTML)
	}
	if !strings.Contains(pageHTML, "acked by <b>alice (&#43;2783****001)</b> (ACK "+code+")") || !strings.Contains(pageHTML, `data-receipt="delivered"`) {
		t.Errorf("the page lacks the acknowledgement or the receipts")
	}

	// alice's phone is off: her copy fails at the handset and goes to
	// dave, once; bob (opted out) gets nothing.
	tb.fake.FailDelivery(alice, "Undeliverable")
	if code, body := tb.post(t, "/api/v1/alertmanager", amPayload("NodeDown", "node down")); code != 202 {
		t.Fatalf("alert: %d %v", code, body)
	}
	waitFor(t, "the failover to dave", func() bool { return len(textsTo(tb, dave)) == 1 })
	if got := textsTo(tb, dave)[0]; !strings.HasPrefix(got, "FIRING:1 NodeDown") || !ackCode.MatchString(got) {
		t.Errorf("dave got %q", got)
	}
	waitFor(t, "bob's delivery failed", func() bool {
		for _, r := range storeRows(t, tb) {
			if r.Number == bob && r.AlertName == "NodeDown" {
				return r.State == outbox.StateFailed && r.ErrorCode == outbox.CodeOptedOut
			}
		}
		return false
	})
	if got := textsTo(tb, bob); len(got) != 2 {
		t.Errorf("bob got %d texts after STOP", len(got)-2)
	}
	if n := tb.metricValue(t, "smsbridge_failovers_total", nil); n != 1 {
		t.Errorf("failovers %v", n)
	}

	// No secret: not the token, not Alertmanager's password, nowhere.
	_, metrics := statusRequest(t, "GET", tb.srv.URL+"/metrics", "")
	_, status := statusRequest(t, "GET", tb.srv.URL+"/api/v1/status", "")
	_, deliveries := statusRequest(t, "GET", tb.srv.URL+"/api/v1/deliveries", "")
	for _, secret := range []string{twoWayToken, "am-api-pa55w0rd"} {
		for what, text := range map[string]string{"log": tb.logs.String(), "page": pageHTML, "metrics": metrics, "status": status, "deliveries": deliveries} {
			if strings.Contains(text, secret) {
				t.Errorf("the %s holds %q", what, secret)
			}
		}
	}
	if strings.Contains(tb.logs.String(), "27830000001") {
		t.Error("a full number in the log")
	}
	if !strings.Contains(status, `"opted_out":[{"number":"+2783****002"`) {
		t.Errorf("/api/v1/status lacks the opt-out: %s", status)
	}
}

// dryRunTwoWayConfig has replies on and no key file: a dry run needs
// neither a key nor a callback token.
const dryRunTwoWayConfig = `
sms:
  api_key_file: /nonexistent/api-key
  callback: {token_file: /nonexistent/callback-token}
delivery:
  min_backoff: 20ms
  max_backoff: 200ms
replies: {enabled: true}
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["+27830000001", "+27830000002"]
`

// TestDryRunLoop: the dry run's fake posts receipts to the bridge itself,
// and POST /api/v1/sms/dry-run/reply plays a phone acknowledging.
func TestDryRunLoop(t *testing.T) {
	dir := t.TempDir()
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := &flags{configFile: writeFile(t, dir, "smsbridge.yml", dryRunTwoWayConfig), storagePath: filepath.Join(dir, "data"), dryRun: true,
		adminAPI: true}
	if err := resolveWeb(f); err != nil {
		t.Fatal(err)
	}
	b, err := newBridge(f, logger)
	if err != nil {
		t.Fatalf("newBridge: %v", err)
	}
	if u := dryRunCallbackURL(f, b.dryRunToken); u != "http://127.0.0.1:9754/api/v1/sms/callback/"+b.dryRunToken {
		t.Errorf("the dry run's callback URL %q", u)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.dispatcher.Run(ctx); close(done) }()
	srv := httptest.NewServer(b.handler())
	t.Cleanup(func() { srv.Close(); cancel(); <-done; b.close() })
	// The test serves on its own port, not on the listen address.
	b.fake.SetCallbackURL(srv.URL + twoway.CallbackPath + b.dryRunToken)

	if code, body := post(t, srv.URL+"/api/v1/alertmanager", amPayload("DiskFull", "disk")); code != 202 {
		t.Fatalf("alert: %d %v", code, body)
	}
	var code, number string
	waitFor(t, "the page", func() bool {
		for _, m := range b.fake.Messages() {
			if mm := regexp.MustCompile(`Reply ACK (\d+) to acknowledge$`).FindStringSubmatch(m.Text); mm != nil {
				code, number = mm[1], m.Number
				return true
			}
		}
		return false
	})
	waitFor(t, "the receipts", func() bool {
		n, _ := b.store.Deliveries(context.Background(), outbox.Filter{State: outbox.StateAccepted})
		return len(n) == 2 && n[0].Receipt == outbox.ReceiptDelivered && n[1].Receipt == outbox.ReceiptDelivered
	})
	status, body := statusRequest(t, "POST", srv.URL+"/api/v1/sms/dry-run/reply", fmt.Sprintf(`{"number": %q, "text": "ACK %s"}`, number, code),
		"Content-Type", "application/json")
	if status != 200 {
		t.Fatalf("dry-run reply: %d %s", status, body)
	}
	waitFor(t, "the answer", func() bool {
		for _, m := range b.fake.Messages() {
			if m.Number == number && strings.HasPrefix(m.Text, "Acked DiskFull") && strings.Contains(m.Text, "no silence: alertmanager_api is not configured") {
				return true
			}
		}
		return false
	})
	if strings.Contains(logs.String(), b.dryRunToken) {
		t.Error("the dry run's token is in the log")
	}
	if status, _ := statusRequest(t, "POST", srv.URL+"/api/v1/sms/dry-run/reply", `{"number": "x", "text": "ACK 1"}`, "Content-Type", "application/json"); status != 400 {
		t.Errorf("a bad number: %d, want 400", status)
	}
	// It writes acknowledgements: without --web.enable-admin-api, 403.
	b.flags.adminAPI = false
	closed := httptest.NewServer(b.handler())
	defer closed.Close()
	if status, body := statusRequest(t, "POST", closed.URL+"/api/v1/sms/dry-run/reply", `{"number": "+27830000001", "text": "ACK 1"}`,
		"Content-Type", "application/json"); status != 403 || !strings.Contains(body, "--web.enable-admin-api") {
		t.Errorf("without the flag: %d %s", status, body)
	}
}
