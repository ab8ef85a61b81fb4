package main

import (
	"cmp"
	"context"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

const sendTestConfig = `
sms:
  url: SMS_URL
  api_key_file: KEY_FILE
  timeout: 2s
delivery:
  min_backoff: 20ms
  max_backoff: 200ms
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["+27830000001", "+27830000002"]
  - name: web
    numbers: ["+27830000003", "+27830000004"]
  - name: db
    numbers: ["+27830000005", "+27830000006"]
  - name: dev
    numbers: ["+27830000007", "+27830000008"]
  - name: nobody
`

func TestSendTestCommand(t *testing.T) {
	tb := newTestBridge(t, sendTestConfig, smsfake.Options{})
	// The same bridge behind basic auth, as --web.config.file would put it.
	authed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if u, p, ok := r.BasicAuth(); !ok || u != "admin" || p != "pa55word" {
			w.Header().Set("WWW-Authenticate", `Basic realm="smsbridge"`)
			http.Error(w, "Unauthorized", http.StatusUnauthorized)
			return
		}
		tb.srv.Config.Handler.ServeHTTP(w, r)
	}))
	t.Cleanup(authed.Close)
	dir := t.TempDir()
	pwFile := writeFile(t, dir, "pw", "pa55word\n")
	notBridge := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(notBridge.Close)
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()

	tests := []struct {
		name   string
		args   []string
		code   int
		stdout string
		stderr string
		sent   int
	}{
		{name: "queued", args: []string{"--receiver=ops", "--web.url=" + tb.srv.URL, "--no-wait"}, code: 0,
			stdout: "test SMS queued as notification 1 for receiver ops: 2 numbers (+2783****001, +2783****002)\nfollow it at " + tb.srv.URL +
				"/?status=pending or " + tb.srv.URL + "/api/v1/deliveries?notification=1\n", sent: 2},
		// A receiver each: one test SMS per receiver per 10 s.
		{name: "waits for the outcome", args: []string{"--receiver=web", "--web.url=" + tb.srv.URL}, code: 0,
			stdout: "  +2783****004  accepted (provider id ", sent: 2},
		{name: "trailing slash", args: []string{"--receiver", "dev", "--web.url", tb.srv.URL + "/"}, code: 0, stdout: "for receiver dev", sent: 2},
		{name: "too soon", args: []string{"--receiver=ops", "--web.url=" + tb.srv.URL}, code: 1,
			stderr: `smsbridge send-test: the bridge answered 429: test sms to "ops" refused: at most one per 10s and 20 a day per receiver; retry after`},
		{name: "unknown receiver", args: []string{"--receiver=dba", "--web.url=" + tb.srv.URL}, code: 1,
			stderr: `smsbridge send-test: the bridge answered 404: no receiver named "dba" is configured`},
		{name: "receiver without numbers", args: []string{"--receiver=nobody", "--web.url=" + tb.srv.URL}, code: 1, stderr: "answered 422"},
		{name: "basic auth", args: []string{"--receiver=db", "--web.url=" + authed.URL, "--web.username=admin", "--web.password-file=" + pwFile}, code: 0, stdout: "queued", sent: 2},
		{name: "credentials missing", args: []string{"--receiver=ops", "--web.url=" + authed.URL}, code: 1, stderr: "pass --web.username and --web.password-file"},
		{name: "not a bridge", args: []string{"--receiver=ops", "--web.url=" + notBridge.URL}, code: 1, stderr: "the bridge answered 404 Not Found, not a test result"},
		{name: "nothing listening", args: []string{"--receiver=ops", "--web.url=" + closed.URL}, code: 1, stderr: "no answer from the bridge at " + closed.URL + " (is it running?)"},
		{name: "no receiver", args: []string{"--web.url=" + tb.srv.URL}, code: 2, stderr: "required flag(s) '--receiver' not provided"},
		{name: "bad url", args: []string{"--receiver=ops", "--web.url=127.0.0.1:9754"}, code: 2, stderr: `--web.url "127.0.0.1:9754" is not an http or https URL`},
		{name: "credentials in url", args: []string{"--receiver=ops", "--web.url=http://admin:pa55word@127.0.0.1:9754"}, code: 2, stderr: "put no credentials in --web.url"},
		{name: "username alone", args: []string{"--receiver=ops", "--web.url=" + authed.URL, "--web.username=admin"}, code: 2, stderr: "go together"},
		{name: "password file missing", args: []string{"--receiver=ops", "--web.url=" + authed.URL, "--web.username=admin", "--web.password-file=" + filepath.Join(dir, "nope")}, code: 2, stderr: "read password"},
	}
	sent := 0
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, append([]string{"send-test"}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if !strings.Contains(stdout, tc.stdout) {
				t.Errorf("stdout %q, want it to contain %q", stdout, tc.stdout)
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tc.stderr)
			}
			if strings.Contains(stdout+stderr, "pa55word") {
				t.Error("the password was printed")
			}
			sent += tc.sent
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := tb.fake.WaitMessages(ctx, sent); err != nil {
				t.Fatalf("%d test SMS expected: %v", sent, err)
			}
			if n := tb.fake.Accepted(); n != sent {
				t.Errorf("%d SMS sent, want %d", n, sent)
			}
		})
	}
	for _, m := range tb.fake.Messages() {
		if !strings.HasPrefix(m.Text, "smsbridge test to ") || !strings.HasSuffix(m.Text, "Z: if you read this, paging works.") {
			t.Errorf("test SMS text %q", m.Text)
		}
	}
}

// TestSendTestWaits: send-test waits for the provider's answer and prints
// each number's outcome: accepted, failed with the reason, or still
// pending at the timeout.
func TestSendTestWaits(t *testing.T) {
	// Retries a second apart: at the 1.5s timeout the number waits for its
	// next attempt instead of being on the wire (as it often was with
	// retries every 20ms to 200ms).
	slowRetries := strings.Replace(sendTestConfig, "min_backoff: 20ms\n  max_backoff: 200ms", "min_backoff: 1s\n  max_backoff: 1s", 1)
	if slowRetries == sendTestConfig {
		t.Fatal("sendTestConfig's backoff changed: update slowRetries")
	}
	tests := []struct {
		name   string
		config string
		fault  *smsfake.Fault
		faults int
		args   []string
		code   int
		stdout []string
	}{
		{name: "accepted", code: 0, stdout: []string{
			"test SMS queued as notification 1 for receiver ops: 2 numbers",
			"  +2783****001  accepted (provider id ", "  +2783****002  accepted (provider id ",
			"the provider accepted the test SMS for 2 numbers\n"}},
		{name: "refused by the provider", fault: &smsfake.Fault{Status: 400}, faults: 1, code: 1, stdout: []string{
			"  +2783****001  failed: bad_request: ", "  +2783****002  failed: bad_request: ",
			"the test SMS failed for 2 numbers of 2\n"}},
		{name: "still pending at the timeout", config: slowRetries, fault: &smsfake.Fault{Status: 502}, faults: 1000, args: []string{"--timeout=1500ms"}, code: 1, stdout: []string{
			"  +2783****001  still pending after ", ", next attempt due ", "; last error: ",
			"2 numbers not settled within 1.5s; follow them at "}},
		{name: "held account", fault: &smsfake.Fault{Status: 405}, faults: 1000, args: []string{"--timeout=1500ms"}, code: 1, stdout: []string{
			"  +2783****001  still pending",
			"the provider account is held (no_credits, HTTP 405): You don't have enough credits on your account!\n",
			"2 numbers not settled within 1.5s"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestBridge(t, cmp.Or(tc.config, sendTestConfig), smsfake.Options{})
			if tc.fault != nil {
				tb.fake.FailNext(tc.faults, *tc.fault)
			}
			code, stdout, stderr := runCLI(t, append([]string{"send-test", "--receiver=ops", "--web.url=" + tb.srv.URL}, tc.args...)...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
		})
	}
}

func TestSendTestDryRun(t *testing.T) {
	_, srv, _ := newDryRunBridge(t, "")
	code, stdout, stderr := runCLI(t, "send-test", "--receiver=ops", "--web.url="+srv.URL)
	if code != 0 {
		t.Fatalf("exit %d\nstdout: %s\nstderr: %s", code, stdout, stderr)
	}
	for _, w := range []string{"the bridge runs a dry run (--sms.dry-run)", "  +2783****001  accepted (by the dry run's fake: not sent)"} {
		if !strings.Contains(stdout, w) {
			t.Errorf("stdout lacks %q:\n%s", w, stdout)
		}
	}
}
