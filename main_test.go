package main

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// testBridge is a whole bridge in-process: real config, outbox,
// dispatcher and SMS client, against the fake provider.
type testBridge struct {
	*bridge
	srv  *httptest.Server
	fake *smsfake.Server
	cfg  string
	logs *syncBuffer
	stop func()
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const testKey = "test-key-5ecr3t"

// newTestBridge starts a bridge whose config is cfg with SMS_URL and
// KEY_FILE replaced by the fake's, with --web.enable-lifecycle and
// --web.enable-admin-api unless mods change the flags.
func newTestBridge(t *testing.T, cfg string, opts smsfake.Options, mods ...func(*flags)) *testBridge {
	t.Helper()
	opts.APIKey = testKey
	if opts.Credits == 0 {
		opts.Credits = -1
	}
	fake := smsfake.NewServer(opts)
	t.Cleanup(fake.Close)
	dir := t.TempDir()
	keyFile := writeFile(t, dir, "key", testKey+"\n")
	cfg = strings.NewReplacer("SMS_URL", fake.URL, "KEY_FILE", keyFile).Replace(cfg)
	path := writeFile(t, dir, "smsbridge.yml", cfg)
	logs := &syncBuffer{}
	logger := slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	f := &flags{configFile: path, storagePath: filepath.Join(dir, "data"), lifecycle: true, adminAPI: true}
	for _, m := range mods {
		m(f)
	}
	b, err := newBridge(f, logger)
	if err != nil {
		t.Fatalf("newBridge: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { _ = b.dispatcher.Run(ctx); close(done) }()
	b.readiness.setServing(true)
	tb := &testBridge{bridge: b, srv: httptest.NewServer(b.handler()), fake: fake, cfg: path, logs: logs}
	tb.stop = func() { tb.srv.Close(); cancel(); <-done; b.close() }
	t.Cleanup(tb.stop)
	return tb
}

func (tb *testBridge) post(t *testing.T, path string, body []byte) (int, map[string]any) {
	t.Helper()
	return post(t, tb.srv.URL+path, body)
}

// waitFor polls cond until it holds or a generous deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

const routedConfig = `
sms:
  url: SMS_URL
  api_key_file: KEY_FILE
  timeout: 2s
  rate_limit: 100
delivery:
  min_backoff: 20ms
  max_backoff: 200ms
route:
  receiver: ops
  routes:
    - matchers: ['team="db"']
      receiver: db
      continue: true
      routes:
        - matchers: ['severity="critical"']
          receiver: db-critical
    - matchers: ['team=~"db|web"']
      receiver: web
    - matchers: ['team="quiet"']
      receiver: quiet
receivers:
  - name: ops
    numbers: ["+27 83 000 0001"]
  - name: db
    numbers: ["+27830000002"]
    oncall: [dbas]
  - name: db-critical
    numbers: ["+27830000004"]
    template: 'CRIT {{ .CommonLabels.alertname }} {{ len .Alerts }}'
  - name: web
    numbers: ["+27830000005"]
  - name: quiet
    numbers: ["+27830000006"]
    send_resolved: false
oncall:
  - name: dbas
    numbers: ["+27830000002", "+27830000003"]
`

func TestEndToEndRouting(t *testing.T) {
	tests := []struct {
		name   string
		labels string
		status string
		// want maps each number that must get an SMS to a word its text holds.
		want map[string]string
	}{
		{"root catches all", `"team":"other"`, "firing", map[string]string{"+27830000001": "E2E"}},
		{"continue and on-call union", `"team":"db","severity":"warning"`, "firing", map[string]string{
			"+27830000002": "E2E", "+27830000003": "E2E", "+27830000005": "E2E"}},
		{"nested route wins inside its parent", `"team":"db","severity":"critical"`, "firing", map[string]string{
			"+27830000004": "CRIT E2E 1", "+27830000005": "E2E"}},
		{"regex matcher", `"team":"web"`, "firing", map[string]string{"+27830000005": "E2E"}},
		{"resolved is sent", `"team":"web"`, "resolved", map[string]string{"+27830000005": "RESOLVED"}},
		{"send_resolved false", `"team":"quiet"`, "resolved", map[string]string{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTestBridge(t, routedConfig, smsfake.Options{})
			body := fmt.Appendf(nil, `{"version":"4","status":%q,"receiver":"sms","groupKey":"k","commonLabels":{},
"alerts":[{"status":%q,"labels":{"alertname":"E2E",%s},"annotations":{"summary":"end to end"},"startsAt":"2026-11-26T03:00:00Z"}]}`,
				tc.status, tc.status, tc.labels)
			code, res := tb.post(t, "/api/v1/alertmanager", body)
			if code != 202 || res["recipients"] != float64(len(tc.want)) {
				t.Fatalf("answer %d %v, want 202 with %d recipients", code, res, len(tc.want))
			}
			if len(tc.want) == 0 {
				if v := tb.metricValue(t, "smsbridge_notifications_received_total", map[string]string{"source": "alertmanager", "outcome": "unrouted"}); v != 1 {
					t.Errorf("unrouted counted %v", v)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := tb.fake.WaitMessages(ctx, len(tc.want)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, "outbox drained", func() bool { return tb.pending(t) == 0 })
			got := map[string]string{}
			for _, m := range tb.fake.Messages() {
				if _, dup := got[m.Number]; dup {
					t.Errorf("%s got two messages", m.Number)
				}
				got[m.Number] = m.Text
			}
			if len(got) != len(tc.want) {
				t.Errorf("sent to %v, want exactly %v", keys(got), keys(tc.want))
			}
			for n, word := range tc.want {
				if !strings.Contains(got[n], word) {
					t.Errorf("SMS to %s = %q, want it to contain %q", n, got[n], word)
				}
			}
		})
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

func TestEndToEndRateLimitPause(t *testing.T) {
	tb := newTestBridge(t, routedConfig, smsfake.Options{})
	tb.fake.FailNext(1, smsfake.Fault{Status: 429, RetryAfter: 1})
	for i := range 3 {
		code, _ := tb.post(t, "/api/v1/alertmanager", amPayload(fmt.Sprintf("Pause%d", i), "s"))
		if code != 202 {
			t.Fatalf("post: %d", code)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tb.fake.WaitMessages(ctx, 3); err != nil {
		t.Fatal(err)
	}
	if n := tb.fake.EarlyRequests(); n != 0 {
		t.Errorf("%d requests arrived inside the announced 429 pause", n)
	}
}

func TestReloadKeepsOldConfigOnFailure(t *testing.T) {
	tb := newTestBridge(t, routedConfig, smsfake.Options{})
	before := tb.gen.Load()
	writeFile(t, filepath.Dir(tb.cfg), "smsbridge.yml", "route: {receiver: nobody}\nreceivers: []\n")
	resp, err := http.Post(tb.srv.URL+"/-/reload", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusInternalServerError {
		t.Errorf("reload of a broken config answered %d", resp.StatusCode)
	}
	if tb.gen.Load() != before {
		t.Error("a failed reload replaced the running config")
	}
	if v := testutil.ToFloat64(tb.reloadM.success); v != 0 {
		t.Errorf("config_last_reload_successful = %v, want 0", v)
	}
	// The old config still serves.
	if code, _ := tb.post(t, "/api/v1/alertmanager", amPayload("StillServing", "s")); code != 202 {
		t.Errorf("after a failed reload: %d", code)
	}
	if strings.Contains(tb.logs.String(), testKey) {
		t.Error("the API key reached the log")
	}
}

// metricValue reads one series of the bridge's registry; labels must
// match exactly the series' labels given.
func (tb *testBridge) metricValue(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	mfs, err := tb.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
	series:
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if want, ok := labels[l.GetName()]; ok && want != l.GetValue() {
					continue series
				}
			}
			switch {
			case m.GetCounter() != nil:
				return m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				return m.GetGauge().GetValue()
			}
		}
	}
	t.Fatalf("no series %s%v", name, labels)
	return 0
}

func (tb *testBridge) pending(t *testing.T) int {
	t.Helper()
	st, err := tb.store.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return st.Pending
}

func TestReloadAppliesDeliverySettings(t *testing.T) {
	tb := newTestBridge(t, routedConfig, smsfake.Options{})
	cfg := strings.Replace(routedConfig, "rate_limit: 100", "rate_limit: 7", 1)
	cfg = strings.NewReplacer("SMS_URL", tb.fake.URL, "KEY_FILE", filepath.Join(filepath.Dir(tb.cfg), "key")).Replace(cfg)
	writeFile(t, filepath.Dir(tb.cfg), "smsbridge.yml", cfg)
	if err := tb.reload(); err != nil {
		t.Fatal(err)
	}
	if got := tb.gen.Load().File.Config.SMS.RateLimit; got != 7 {
		t.Fatalf("config rate limit %v after reload", got)
	}
	if v := tb.metricValue(t, "smsbridge_config_last_reload_successful", nil); v != 1 {
		t.Errorf("reload success gauge %v", v)
	}
	if got := tb.gen.Load().Dispatch.Accounts[0].RateLimit; got != 7 {
		t.Errorf("dispatcher rate limit %v after reload, want 7", got)
	}
	// A notification still goes out.
	if code, _ := tb.post(t, "/api/v1/alertmanager", amPayload("AfterReload", "s")); code != 202 {
		t.Fatalf("post after reload: %d", code)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := tb.fake.WaitMessages(ctx, 1); err != nil {
		t.Fatal(err)
	}
}
