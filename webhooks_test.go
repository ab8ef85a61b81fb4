package main

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/ from the current output")

// Every secret the webhook config below holds; none may leak.
const (
	ghSecret    = "gh-hmac-s3cret-6a1f"
	glToken     = "gl-t0ken-77c2"
	grafToken   = "graf-bearer-91be"
	plainPass   = "plain-pa55-0d4e"
	swKeyBase64 = "c3RhbmRhcmQtd2ViaG9va3Mta2V5LTEyMzQ1Ng==" // "standard-webhooks-key-123456"
)

var webhookConfig = `
sms:
  url: SMS_URL
  api_key_file: KEY_FILE
  rate_limit: 100
delivery: {min_backoff: 20ms, max_backoff: 200ms}
alertmanager:
  auth: {type: basic, username: am, password: "` + plainPass + `"}
webhooks:
  - name: github
    preset: github
    auth: {type: hmac-sha256, header: X-Hub-Signature-256, prefix: "sha256=", secret: "` + ghSecret + `"}
  - name: gitlab
    preset: gitlab
    auth: {type: token, header: X-Gitlab-Token, secret: "` + glToken + `"}
  - name: grafana
    preset: grafana
    auth: {type: bearer, secret: "` + grafToken + `"}
  - name: scripts
    preset: plain
    auth: {type: standard-webhooks, secret: "whsec_` + swKeyBase64 + `"}
route:
  receiver: ops
receivers:
  - name: ops
    numbers: ["+27830000001"]
`

type signer func(h http.Header, body []byte)

func hmacHex(key string, body []byte) string {
	m := hmac.New(sha256.New, []byte(key))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

func standardWebhook(id string, at time.Time) signer {
	return func(h http.Header, body []byte) {
		key, _ := base64.StdEncoding.DecodeString(swKeyBase64)
		ts := strconv.FormatInt(at.Unix(), 10)
		m := hmac.New(sha256.New, key)
		fmt.Fprintf(m, "%s.%s.%s", id, ts, body)
		h.Set("webhook-id", id)
		h.Set("webhook-timestamp", ts)
		h.Set("webhook-signature", "v1,"+base64.StdEncoding.EncodeToString(m.Sum(nil)))
	}
}

func mappingFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("receiver/mapping/testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// TestWebhookPresetsEndToEnd posts real-shaped payloads of each preset,
// signed as each sender signs them, and checks the SMS that goes out
// against golden files; wrong, missing and expired credentials get 401
// and send nothing, a replay within the tolerance is a duplicate (202) and
// sends nothing; no secret reaches a log line, a metric or an answer.
func TestWebhookPresetsEndToEnd(t *testing.T) {
	tb := newTestBridge(t, webhookConfig, smsfake.Options{})
	now := time.Now()
	gh := func(event string) signer {
		return func(h http.Header, body []byte) {
			h.Set("X-GitHub-Event", event)
			h.Set("X-Hub-Signature-256", "sha256="+hmacHex(ghSecret, body))
		}
	}
	tests := []struct {
		name    string
		path    string
		fixture string
		sign    signer
		code    int
		golden  string // expected SMS text file, "" when nothing is sent
	}{
		{"github workflow failed", "github", "github/workflow_run_failure.json", gh("workflow_run"), 202, "github-workflow-failure.txt"},
		{"github check suite failed", "github", "github/check_suite_failure.json", gh("check_suite"), 202, "github-check-suite-failure.txt"},
		{"github success after the failure resolves it", "github", "github/workflow_run_success.json", gh("workflow_run"), 202, "github-workflow-success.txt"},
		{"github success of a check that never failed sends nothing", "github", "github/check_run_success.json", gh("check_run"), 202, ""},
		{"github in progress is filtered", "github", "github/workflow_run_in_progress.json", gh("workflow_run"), 202, ""},
		{"github wrong signature", "github", "github/workflow_run_failure.json", func(h http.Header, b []byte) {
			h.Set("X-GitHub-Event", "workflow_run")
			h.Set("X-Hub-Signature-256", "sha256="+hmacHex("not-the-secret", b))
		}, 401, ""},
		{"github missing signature", "github", "github/workflow_run_failure.json", func(h http.Header, _ []byte) { h.Set("X-GitHub-Event", "workflow_run") }, 401, ""},
		{"gitlab pipeline success that never failed sends nothing", "gitlab", "gitlab/pipeline_success.json", func(h http.Header, _ []byte) {
			h.Set("X-Gitlab-Event", "Pipeline Hook")
			h.Set("X-Gitlab-Token", glToken)
		}, 202, ""},
		{"gitlab pipeline failed", "gitlab", "gitlab/pipeline_failed.json", func(h http.Header, _ []byte) {
			h.Set("X-Gitlab-Event", "Pipeline Hook")
			h.Set("X-Gitlab-Token", glToken)
		}, 202, "gitlab-pipeline-failed.txt"},
		{"gitlab job failed", "gitlab", "gitlab/job_failed.json", func(h http.Header, _ []byte) {
			h.Set("X-Gitlab-Event", "Job Hook")
			h.Set("X-Gitlab-Token", glToken)
		}, 202, "gitlab-job-failed.txt"},
		{"gitlab wrong token", "gitlab", "gitlab/pipeline_failed.json", func(h http.Header, _ []byte) { h.Set("X-Gitlab-Token", "nope") }, 401, ""},
		{"grafana firing", "grafana", "grafana/firing.json", func(h http.Header, _ []byte) { h.Set("Authorization", "Bearer "+grafToken) }, 202, "grafana-firing.txt"},
		{"grafana missing token", "grafana", "grafana/firing.json", func(http.Header, []byte) {}, 401, ""},
		{"plain standard webhooks", "scripts", "plain/disk_full.json", standardWebhook("msg_1", now), 202, "plain-disk-full.txt"},
		{"plain replayed", "scripts", "plain/disk_full.json", standardWebhook("msg_1", now), 202, ""},
		{"plain expired", "scripts", "plain/disk_full.json", standardWebhook("msg_2", now.Add(-10*time.Minute)), 401, ""},
	}
	answers := &bytes.Buffer{}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			before := len(tb.fake.Messages())
			body := mappingFixture(t, tc.fixture)
			req, _ := http.NewRequest(http.MethodPost, tb.srv.URL+"/api/v1/webhooks/"+tc.path, bytes.NewReader(body))
			req.Header.Set("Content-Type", "application/json")
			tc.sign(req.Header, body)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			answers.Write(raw)
			if resp.StatusCode != tc.code {
				t.Fatalf("answer %d %s, want %d", resp.StatusCode, raw, tc.code)
			}
			if tc.golden == "" {
				waitFor(t, "outbox drained", func() bool { return tb.pending(t) == 0 })
				if n := len(tb.fake.Messages()); n != before {
					t.Fatalf("%d SMS sent, want none", n-before)
				}
				return
			}
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := tb.fake.WaitMessages(ctx, before+1); err != nil {
				t.Fatal(err)
			}
			got := tb.fake.Messages()[before].Text
			golden := filepath.Join("testdata/webhooks", tc.golden)
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("SMS text:\n%s\nwant (%s):\n%s", got, golden, want)
			}
		})
	}

	resp, err := http.Get(tb.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`smsbridge_webhook_auth_failures_total{reason="mismatch",source="github"} 1`,
		`smsbridge_webhook_auth_failures_total{reason="missing",source="github"} 1`,
		`smsbridge_notifications_received_total{outcome="duplicate",source="scripts"} 1`,
		`smsbridge_webhook_auth_failures_total{reason="expired",source="scripts"} 1`,
		`smsbridge_notifications_received_total{outcome="filtered",source="github"} 2`,
		`smsbridge_notifications_received_total{outcome="filtered",source="gitlab"} 1`,
		`smsbridge_notifications_received_total{outcome="unauthorized",source="gitlab"} 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("metrics lack %s", want)
		}
	}
	all := tb.logs.String() + string(metrics) + answers.String()
	for _, s := range []string{ghSecret, glToken, grafToken, plainPass, swKeyBase64, testKey} {
		if strings.Contains(all, s) {
			t.Errorf("secret %q reached a log line, a metric or an answer", s)
		}
	}
}
