package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/smsbridge/smsbridge/dispatch"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
	"github.com/smsbridge/smsbridge/status"
)

// Inline secrets of every kind the configuration holds; none may ever
// reach the page, the admin API or the log.
const (
	// statusAPIKey is the one newTestBridge's fake accepts.
	statusAPIKey   = testKey
	statusAMPass   = "status-am-pass-S3CRET-77ab"
	statusCIToken  = "status-ci-token-S3CRET-5e2d"
	statusHMACKey  = "status-hmac-key-S3CRET-c0de"
	statusBadToken = "status-bad-line-S3CRET-0000"
)

var statusWiringConfig = `
sms:
  url: SMS_URL
  api_key: "` + statusAPIKey + `"
  timeout: 2s
delivery:
  min_backoff: 20ms
  max_backoff: 200ms
alertmanager:
  auth: {type: basic, username: am, password: "` + statusAMPass + `"}
webhooks:
  - name: ci
    preset: plain
    auth: {type: token, header: X-CI-Token, secret: "` + statusCIToken + `"}
  - name: gh
    preset: github
    auth: {type: hmac-sha256, secret: "` + statusHMACKey + `"}
route:
  receiver: ops
  routes:
    - matchers: ['team="db"']
      receiver: db
receivers:
  - name: ops
    numbers: ["+27830000001", "+27830000002"]
  - name: db
    numbers: ["+27830000003"]
`

// statusFullNumbers are the configured numbers as digits: in any page or
// answer they may appear only masked.
var statusFullNumbers = []string{"27830000001", "27830000002", "27830000003"}

func statusSecrets() []string {
	return []string{statusAPIKey, statusAMPass, statusCIToken, statusHMACKey, statusBadToken}
}

func statusRequest(t *testing.T, method, u, body string, hdr ...string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, u, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	client := &http.Client{Timeout: 20 * time.Second, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

func statusAlert(t *testing.T, tb *testBridge, alertname, team string) {
	t.Helper()
	body := fmt.Sprintf(`{"version":"4","status":"firing","receiver":"sms","groupKey":"g-%s","commonLabels":{},
"alerts":[{"status":"firing","labels":{"alertname":%q,"team":%q},"annotations":{"summary":"status test"},"startsAt":"2026-11-26T03:00:00Z"}]}`,
		alertname, alertname, team)
	req, _ := http.NewRequest("POST", tb.srv.URL+"/api/v1/alertmanager", strings.NewReader(body))
	req.SetBasicAuth("am", statusAMPass)
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("alert %s: %d %s", alertname, resp.StatusCode, b)
	}
}

type statusDeliveries struct {
	Deliveries []struct {
		ID                int64
		Status            string
		Receiver          string
		Number            string
		Text              string
		ProviderMessageID string `json:"provider_message_id"`
		Error             string
	}
}

func statusList(t *testing.T, tb *testBridge, query string) statusDeliveries {
	t.Helper()
	code, body := statusRequest(t, "GET", tb.srv.URL+"/api/v1/deliveries"+query, "")
	if code != 200 {
		t.Fatalf("deliveries%s: %d %s", query, code, body)
	}
	var d statusDeliveries
	if err := json.Unmarshal([]byte(body), &d); err != nil {
		t.Fatal(err)
	}
	return d
}

func TestStatusWiring(t *testing.T) {
	tb := newTestBridge(t, statusWiringConfig, smsfake.Options{})
	statusAlert(t, tb, "Delivered", "ops")
	waitFor(t, "two delivered", func() bool { return len(statusList(t, tb, "?status=accepted").Deliveries) == 2 })
	// A 400 fails the whole request for good.
	tb.fake.FailNext(1, smsfake.Fault{Status: http.StatusBadRequest})
	statusAlert(t, tb, "Refused", "db")
	waitFor(t, "one failed", func() bool { return len(statusList(t, tb, "?status=failed").Deliveries) == 1 })

	failed := statusList(t, tb, "?status=failed").Deliveries[0]
	if failed.Receiver != "db" || failed.Number != "+2783****003" || !strings.Contains(failed.Text, "Refused") {
		t.Errorf("failed delivery %+v", failed)
	}
	for _, d := range statusList(t, tb, "?status=accepted").Deliveries {
		if d.ProviderMessageID == "" || d.Receiver != "ops" {
			t.Errorf("delivered %+v", d)
		}
	}

	rt := tb.gen.Load()
	code, page := statusRequest(t, "GET", tb.srv.URL+"/", "")
	if code != 200 {
		t.Fatalf("page: %d", code)
	}
	for _, want := range []string{
		rt.File.Path, ">" + rt.File.Hash[:12] + "<", `<span class="badge ok">success</span>`,
		`data-status="accepted"`, `data-status="failed"`, "&#43;2783****003",
		"default-route  receiver: ops\n└── {team=&#34;db&#34;}  receiver: db", "alertmanager, ci, gh",
	} {
		if !strings.Contains(page, want) {
			t.Errorf("page lacks %q", want)
		}
	}

	code, body := statusRequest(t, "GET", tb.srv.URL+"/routes-test?labels="+url.QueryEscape(`alertname=Disk team="db"`), "")
	if code != 200 || !strings.Contains(body, `data-receiver="db"`) || !strings.Contains(body, "would queue 1 message to 1 number") {
		t.Errorf("routes test page: %d\n%s", code, body)
	}

	// Retry the failed delivery: it goes out and is delivered.
	code, body = statusRequest(t, "POST", fmt.Sprintf("%s/api/v1/deliveries/%d/retry", tb.srv.URL, failed.ID), "")
	if code != http.StatusAccepted {
		t.Fatalf("retry: %d %s", code, body)
	}
	waitFor(t, "retried delivery delivered", func() bool { return len(statusList(t, tb, "?status=accepted").Deliveries) == 3 })
	code, body = statusRequest(t, "POST", fmt.Sprintf("%s/api/v1/deliveries/%d/retry", tb.srv.URL, failed.ID), "")
	if code != http.StatusConflict || !strings.Contains(body, "has not failed") {
		t.Errorf("retry of a delivered row: %d %s", code, body)
	}
	// The outbox does not tell an unknown id from one that has not failed.
	if code, _ := statusRequest(t, "POST", tb.srv.URL+"/api/v1/deliveries/4242/retry", ""); code != http.StatusNotFound && code != http.StatusConflict {
		t.Errorf("retry of an unknown id: %d", code)
	}

	// A reload that fails shows on the page, without the secret on the
	// broken line.
	broken := strings.Replace(statusWiringConfig, "timeout: 2s", "timeout: 2s\n  api_kee: \""+statusBadToken+"\"", 1)
	broken = strings.Replace(broken, "SMS_URL", tb.fake.URL, 1)
	writeFile(t, filepath.Dir(tb.cfg), "smsbridge.yml", broken)
	if code, _ := statusRequest(t, "POST", tb.srv.URL+"/-/reload", ""); code != http.StatusInternalServerError {
		t.Errorf("broken reload answered %d", code)
	}
	_, page = statusRequest(t, "GET", tb.srv.URL+"/", "")
	if !strings.Contains(page, `<span class="badge bad">failed</span>`) || !strings.Contains(page, "api_kee") {
		t.Error("the page does not show the failed reload")
	}

	// Everything the page and the admin API answer, with secrets of every
	// kind configured: no secret, no full number.
	var all strings.Builder
	for _, r := range []struct{ method, path, body string }{
		{"GET", "/", ""}, {"GET", "/?status=failed", ""}, {"GET", "/?status=accepted", ""}, {"GET", "/?status=bogus", ""},
		{"GET", "/routes-test?labels=team%3Ddb", ""}, {"GET", "/routes-test?labels=team", ""},
		{"GET", "/api/v1/status", ""}, {"GET", "/api/v1/deliveries", ""}, {"GET", "/api/v1/deliveries?since=bogus", ""},
		{"POST", "/api/v1/test", `{"receiver":"ops"}`}, {"POST", "/api/v1/test", `{"receiver":"nope"}`},
		{"POST", "/api/v1/deliveries/1/retry", ""}, {"GET", "/static/status.css", ""},
	} {
		_, body := statusRequest(t, r.method, tb.srv.URL+r.path, r.body, "Content-Type", "application/json")
		all.WriteString(body)
		for _, n := range statusFullNumbers {
			if strings.Contains(body, n) {
				t.Errorf("%s %s shows the full number %s", r.method, r.path, n)
			}
		}
	}
	for _, s := range statusSecrets() {
		if strings.Contains(all.String(), s) {
			t.Errorf("a page or answer holds the secret %q", s)
		}
		if strings.Contains(tb.logs.String(), s) {
			t.Errorf("the log holds the secret %q", s)
		}
	}
}

// TestRoutesTestMatchesWhatIsSent checks that the routes test prints the
// text the bridge then really sends for the same alert.
func TestRoutesTestMatchesWhatIsSent(t *testing.T) {
	tb := newTestBridge(t, statusWiringConfig, smsfake.Options{})
	res := status.FromPlan(tb.gen.Load().Pipeline.Plan(labelNotification(map[string]string{"alertname": "Twin", "team": "db"},
		map[string]string{"summary": "status test"}, time.Now())))
	if len(res.Plans) != 1 || res.Plans[0].Receiver != "db" {
		t.Fatalf("plans %+v", res.Plans)
	}
	statusAlert(t, tb, "Twin", "db")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tb.fake.WaitMessages(ctx, 1); err != nil {
		t.Fatal(err)
	}
	m := tb.fake.Messages()[0]
	if m.Text != res.Plans[0].Text || m.Number != "+27830000003" || m.Segments != res.Plans[0].Segments {
		t.Errorf("sent %q (%d segments) to %s; routes test said %q (%d segments)", m.Text, m.Segments, m.Number, res.Plans[0].Text, res.Plans[0].Segments)
	}
}

func TestStatusSendTestEndpoint(t *testing.T) {
	tb := newTestBridge(t, statusWiringConfig, smsfake.Options{})
	code, body := statusRequest(t, "POST", tb.srv.URL+"/api/v1/test", `{"receiver":"db"}`, "Content-Type", "application/json")
	if code != http.StatusAccepted || !strings.Contains(body, `"recipients":1`) || !strings.Contains(body, `"numbers":["+2783****003"]`) {
		t.Fatalf("send test: %d %s", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tb.fake.WaitMessages(ctx, 1); err != nil {
		t.Fatal(err)
	}
	if m := tb.fake.Messages()[0]; m.Number != "+27830000003" || !strings.HasPrefix(m.Text, "smsbridge test to db at ") {
		t.Errorf("sent %+v", m)
	}
	d := statusList(t, tb, "?since=1h")
	if len(d.Deliveries) != 1 || d.Deliveries[0].Receiver != "db" {
		t.Errorf("deliveries %+v", d)
	}
	code, _ = statusRequest(t, "POST", tb.srv.URL+"/api/v1/test", `{"receiver":"db"}`, "Content-Type", "application/json", "Sec-Fetch-Site", "cross-site")
	if code != http.StatusForbidden {
		t.Errorf("cross-site send test answered %d", code)
	}
}

func TestStatusProviderState(t *testing.T) {
	tests := []struct {
		name  string
		fault smsfake.Fault
		want  []string
		page  string
	}{
		{"held for no credits", smsfake.Fault{Status: http.StatusMethodNotAllowed},
			[]string{`"state":"held"`, `"reason":"no_credits"`, `"status_code":405`, `"message":"You don't have enough credits on your account!"`},
			`<p class="held-reason">the account has no credits (HTTP 405), since `},
		{"held for a bad key", smsfake.Fault{Status: http.StatusUnauthorized},
			[]string{`"state":"held"`, `"reason":"unauthorized"`, `"status_code":401`, `"message":"API key is invalid."`},
			`<p class="held-reason">the API key is invalid (HTTP 401), since `},
		{"paused by a 429", smsfake.Fault{Status: http.StatusTooManyRequests, RetryAfter: 600},
			[]string{`"state":"paused"`, `"until":"`, `"status_code":429`},
			`<span class="badge mode-paused">paused</span> by the provider&#39;s rate limit (429)`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestBridge(t, statusWiringConfig, smsfake.Options{})
			tb.fake.FailNext(1, tc.fault)
			statusAlert(t, tb, "Provider", "db")
			var body string
			waitFor(t, "the provider state", func() bool {
				_, body = statusRequest(t, "GET", tb.srv.URL+"/api/v1/status", "")
				return strings.Contains(body, tc.want[0])
			})
			for _, w := range tc.want {
				if !strings.Contains(body, w) {
					t.Errorf("status lacks %s: %s", w, body)
				}
			}
			if _, page := statusRequest(t, "GET", tb.srv.URL+"/", ""); !strings.Contains(page, tc.page) {
				t.Errorf("page lacks %q", tc.page)
			}
		})
	}
}

func TestStatusProviderStateMapping(t *testing.T) {
	at := time.Date(2026, 11, 26, 3, 0, 0, 0, time.UTC)
	hold := &dispatch.Hold{Kind: "suspended", Status: 403, Message: "Your account has been suspended!", Since: at}
	heldAccount := status.Account{Name: "primary", Mode: "held", HeldSince: at, HeldReason: "suspended", HeldStatus: 403,
		HeldMessage: "Your account has been suspended!", NextProbe: at.Add(time.Minute), LastError: "403: suspended", LastErrorAt: at,
		Requests: 4, Errors: 1}
	tests := []struct {
		name string
		in   dispatch.State
		want status.Provider
	}{
		{"ok", dispatch.State{InFlight: 2, Accounts: []dispatch.AccountState{{Name: "primary", Mode: dispatch.ModeOK, Active: true, Requests: 9, InFlight: 2}}},
			status.Provider{State: status.ProviderOK, InFlight: 2, Accounts: []status.Account{{Name: "primary", Mode: "ok", Active: true, Requests: 9, InFlight: 2}}}},
		{"paused", dispatch.State{Accounts: []dispatch.AccountState{{Name: "primary", Mode: dispatch.ModePaused, PausedUntil: at, Active: true}}},
			status.Provider{State: status.ProviderPaused, Until: at, StatusCode: 429, Accounts: []status.Account{{Name: "primary", Mode: "paused", Active: true, PausedUntil: at}}}},
		{"held", dispatch.State{Accounts: []dispatch.AccountState{{Name: "primary", Mode: dispatch.ModeHeld, Hold: hold, Active: true,
			NextProbe: at.Add(time.Minute), LastError: "403: suspended", LastErrorAt: at, Requests: 4, Errors: 1}}},
			status.Provider{State: status.ProviderHeld, Reason: "suspended", StatusCode: 403, Message: "Your account has been suspended!", Since: at,
				Accounts: []status.Account{func() status.Account { a := heldAccount; a.Active = true; return a }()}}},
		// The summary is the account that carries traffic: a held primary
		// with a working fallback is not a held bridge; the cards show both.
		{"failed over", dispatch.State{Accounts: []dispatch.AccountState{
			{Name: "primary", Mode: dispatch.ModeHeld, Hold: hold, NextProbe: at.Add(time.Minute), LastError: "403: suspended", LastErrorAt: at, Requests: 4, Errors: 1},
			{Name: "fallback", Mode: dispatch.ModeOK, Active: true}}},
			status.Provider{State: status.ProviderOK, Accounts: []status.Account{heldAccount, {Name: "fallback", Mode: "ok", Active: true}}}},
		{"failing", dispatch.State{Accounts: []dispatch.AccountState{{Name: "primary", Mode: dispatch.ModeFailing, Active: true, FailingSince: at,
			LastError: "502 Bad Gateway", LastErrorAt: at, Requests: 10, Errors: 10}}},
			status.Provider{State: status.ProviderOK, Accounts: []status.Account{{Name: "primary", Mode: "failing", Active: true, FailingSince: at,
				LastError: "502 Bad Gateway", LastErrorAt: at, Requests: 10, Errors: 10}}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := providerState(tc.in); !reflect.DeepEqual(got, tc.want) {
				t.Errorf("providerState(%+v)\n= %+v\nwant %+v", tc.in, got, tc.want)
			}
		})
	}
}
