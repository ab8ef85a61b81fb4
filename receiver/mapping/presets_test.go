package mapping

import (
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"testing"
	"time"

	amtemplate "github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/alert"
)

var testNow = time.Date(2026, 3, 2, 9, 0, 0, 0, time.UTC)

// compile compiles c for source.
func compile(t testing.TB, c Config, source string) *Mapping {
	t.Helper()
	m, err := c.Compile(source)
	if err != nil {
		t.Fatalf("compile: %v", err)
	}
	return m
}

func fixture(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func hdr(kv ...string) http.Header {
	h := http.Header{}
	for i := 0; i+1 < len(kv); i += 2 {
		h.Set(kv[i], kv[i+1])
	}
	return h
}

type wantAlert struct {
	status       string
	labels       map[string]string
	annotations  map[string]string
	startsAt     time.Time
	endsAt       time.Time
	generatorURL string
}

func TestPresetFixtures(t *testing.T) {
	t.Parallel()
	const (
		wfURL    = "https://github.com/octo-org/octo-repo/actions/runs/10481234567"
		glPipe   = "https://gitlab.example.com/platform/billing-api/-/pipelines/2366"
		glJobURL = "https://gitlab.example.com/platform/billing-api/-/jobs/1977"
	)
	tests := []struct {
		name     string
		preset   string
		file     string
		header   http.Header
		filtered bool
		status   string
		groupKey string
		alerts   []wantAlert
		extra    func(t *testing.T, n *alert.Notification)
	}{
		{
			name: "github workflow_run failure", preset: "github", file: "github/workflow_run_failure.json",
			header:   hdr("X-GitHub-Event", "workflow_run"),
			status:   "firing",
			groupKey: `ci:{alertname="GitHubWorkflowFailed",branch="main",repository="octo-org/octo-repo",source="ci",workflow="CI"}`,
			alerts: []wantAlert{{
				status: "firing",
				labels: map[string]string{"alertname": "GitHubWorkflowFailed", "repository": "octo-org/octo-repo", "branch": "main", "workflow": "CI", "source": "ci"},
				annotations: map[string]string{
					"summary":    "CI failed: octo-org/octo-repo CI on main (failure)",
					"url":        wfURL,
					"conclusion": "failure",
				},
				startsAt: testNow, generatorURL: wfURL,
			}},
		},
		{
			name: "github workflow_run success resolves", preset: "github", file: "github/workflow_run_success.json",
			header:   hdr("X-GitHub-Event", "workflow_run"),
			status:   "resolved",
			groupKey: `ci:{alertname="GitHubWorkflowFailed",branch="main",repository="octo-org/octo-repo",source="ci",workflow="CI"}`,
			alerts: []wantAlert{{
				status: "resolved",
				labels: map[string]string{"alertname": "GitHubWorkflowFailed", "repository": "octo-org/octo-repo", "branch": "main", "workflow": "CI", "source": "ci"},
				annotations: map[string]string{
					"summary":    "CI passed: octo-org/octo-repo CI on main",
					"url":        "https://github.com/octo-org/octo-repo/actions/runs/10481299999",
					"conclusion": "success",
				},
				startsAt: testNow, endsAt: testNow, generatorURL: "https://github.com/octo-org/octo-repo/actions/runs/10481299999",
			}},
		},
		{
			name: "github workflow_run timed out on another branch", preset: "github", file: "github/workflow_run_timed_out_release.json",
			header:   hdr("X-Github-Event", "workflow_run"),
			status:   "firing",
			groupKey: `ci:{alertname="GitHubWorkflowFailed",branch="release-1.4",repository="octo-org/octo-repo",source="ci",workflow="CI"}`,
			alerts: []wantAlert{{
				status: "firing",
				labels: map[string]string{"alertname": "GitHubWorkflowFailed", "repository": "octo-org/octo-repo", "branch": "release-1.4", "workflow": "CI", "source": "ci"},
				annotations: map[string]string{
					"summary":    "CI failed: octo-org/octo-repo CI on release-1.4 (timed_out)",
					"url":        "https://github.com/octo-org/octo-repo/actions/runs/10481255555",
					"conclusion": "timed_out",
				},
				startsAt: testNow, generatorURL: "https://github.com/octo-org/octo-repo/actions/runs/10481255555",
			}},
		},
		{name: "github workflow_run cancelled", preset: "github", file: "github/workflow_run_cancelled.json", header: hdr("X-GitHub-Event", "workflow_run"), filtered: true},
		{name: "github workflow_run requested", preset: "github", file: "github/workflow_run_requested.json", header: hdr("X-GitHub-Event", "workflow_run"), filtered: true},
		{name: "github workflow_run in_progress", preset: "github", file: "github/workflow_run_in_progress.json", header: hdr("X-GitHub-Event", "workflow_run"), filtered: true},
		{name: "github workflow_run without event header", preset: "github", file: "github/workflow_run_failure.json", header: nil, filtered: true},
		{name: "github ping", preset: "github", file: "github/ping.json", header: hdr("X-GitHub-Event", "ping"), filtered: true},
		{name: "github push", preset: "github", file: "github/push.json", header: hdr("X-GitHub-Event", "push"), filtered: true},
		{name: "github check_run created", preset: "github", file: "github/check_run_created.json", header: hdr("X-GitHub-Event", "check_run"), filtered: true},
		{
			name: "github check_suite failure", preset: "github", file: "github/check_suite_failure.json",
			header:   hdr("X-GitHub-Event", "check_suite"),
			status:   "firing",
			groupKey: `ci:{alertname="GitHubCheckSuiteFailed",branch="main",check="GitHub Actions",repository="octo-org/octo-repo",source="ci"}`,
			alerts: []wantAlert{{
				status: "firing",
				labels: map[string]string{"alertname": "GitHubCheckSuiteFailed", "repository": "octo-org/octo-repo", "branch": "main", "check": "GitHub Actions", "source": "ci"},
				annotations: map[string]string{
					"summary":    "CI failed: octo-org/octo-repo GitHub Actions on main (failure)",
					"url":        "https://github.com/octo-org/octo-repo/commit/6dcb09b5b57875f334f61aebed695e2e4193db5e",
					"conclusion": "failure",
				},
				startsAt: testNow, generatorURL: "https://github.com/octo-org/octo-repo/commit/6dcb09b5b57875f334f61aebed695e2e4193db5e",
			}},
		},
		{
			name: "github check_run failure", preset: "github", file: "github/check_run_failure.json",
			header:   hdr("x-github-event", "check_run"),
			status:   "firing",
			groupKey: `ci:{alertname="GitHubCheckFailed",branch="main",check="test (1.26)",repository="octo-org/octo-repo",source="ci"}`,
			alerts: []wantAlert{{
				status: "firing",
				labels: map[string]string{"alertname": "GitHubCheckFailed", "repository": "octo-org/octo-repo", "branch": "main", "check": "test (1.26)", "source": "ci"},
				annotations: map[string]string{
					"summary":    "CI failed: octo-org/octo-repo test (1.26) on main (failure)",
					"url":        "https://github.com/octo-org/octo-repo/actions/runs/10481234567/job/29123456789",
					"conclusion": "failure",
				},
				startsAt: testNow, generatorURL: "https://github.com/octo-org/octo-repo/actions/runs/10481234567/job/29123456789",
			}},
		},
		{
			name: "github check_run success", preset: "github", file: "github/check_run_success.json",
			header:   hdr("X-GitHub-Event", "check_run"),
			status:   "resolved",
			groupKey: `ci:{alertname="GitHubCheckFailed",branch="main",check="test (1.26)",repository="octo-org/octo-repo",source="ci"}`,
			alerts: []wantAlert{{
				status: "resolved",
				labels: map[string]string{"alertname": "GitHubCheckFailed", "repository": "octo-org/octo-repo", "branch": "main", "check": "test (1.26)", "source": "ci"},
				annotations: map[string]string{
					"summary":    "CI passed: octo-org/octo-repo test (1.26) on main",
					"url":        "https://github.com/octo-org/octo-repo/actions/runs/10481234567/job/29123456789",
					"conclusion": "success",
				},
				startsAt: testNow, endsAt: testNow, generatorURL: "https://github.com/octo-org/octo-repo/actions/runs/10481234567/job/29123456789",
			}},
		},
		{
			name: "gitlab pipeline failed", preset: "gitlab", file: "gitlab/pipeline_failed.json",
			header:   hdr("X-Gitlab-Event", "Pipeline Hook"),
			status:   "firing",
			groupKey: `ci:{alertname="GitLabPipelineFailed",branch="main",repository="platform/billing-api",source="ci"}`,
			alerts: []wantAlert{{
				status: "firing",
				labels: map[string]string{"alertname": "GitLabPipelineFailed", "repository": "platform/billing-api", "branch": "main", "source": "ci"},
				annotations: map[string]string{
					"summary":    "CI failed: platform/billing-api pipeline #2366 on main (failed)",
					"url":        glPipe,
					"conclusion": "failed",
				},
				startsAt: testNow, generatorURL: glPipe,
			}},
		},
		{
			name: "gitlab pipeline success", preset: "gitlab", file: "gitlab/pipeline_success.json",
			header:   hdr("X-Gitlab-Event", "Pipeline Hook"),
			status:   "resolved",
			groupKey: `ci:{alertname="GitLabPipelineFailed",branch="main",repository="platform/billing-api",source="ci"}`,
			alerts: []wantAlert{{
				status: "resolved",
				labels: map[string]string{"alertname": "GitLabPipelineFailed", "repository": "platform/billing-api", "branch": "main", "source": "ci"},
				annotations: map[string]string{
					"summary":    "CI passed: platform/billing-api pipeline #2371 on main",
					"url":        "https://gitlab.example.com/platform/billing-api/-/pipelines/2371",
					"conclusion": "success",
				},
				startsAt: testNow, endsAt: testNow, generatorURL: "https://gitlab.example.com/platform/billing-api/-/pipelines/2371",
			}},
		},
		{
			name: "gitlab pipeline failed without url on a release branch", preset: "gitlab", file: "gitlab/pipeline_failed_release_no_url.json",
			status:   "firing",
			groupKey: `ci:{alertname="GitLabPipelineFailed",branch="release/2.3",repository="platform/billing-api",source="ci"}`,
			alerts: []wantAlert{{
				status: "firing",
				labels: map[string]string{"alertname": "GitLabPipelineFailed", "repository": "platform/billing-api", "branch": "release/2.3", "source": "ci"},
				annotations: map[string]string{
					"summary":    "CI failed: platform/billing-api pipeline #2380 on release/2.3 (failed)",
					"url":        "https://gitlab.example.com/platform/billing-api/-/pipelines/2380",
					"conclusion": "failed",
				},
				startsAt: testNow, generatorURL: "https://gitlab.example.com/platform/billing-api/-/pipelines/2380",
			}},
		},
		{name: "gitlab pipeline running", preset: "gitlab", file: "gitlab/pipeline_running.json", header: hdr("X-Gitlab-Event", "Pipeline Hook"), filtered: true},
		{name: "gitlab push", preset: "gitlab", file: "gitlab/push.json", header: hdr("X-Gitlab-Event", "Push Hook"), filtered: true},
		{name: "gitlab job failed but allowed to", preset: "gitlab", file: "gitlab/job_failed_allowed.json", header: hdr("X-Gitlab-Event", "Job Hook"), filtered: true},
		{
			name: "gitlab job failed", preset: "gitlab", file: "gitlab/job_failed.json",
			header:   hdr("X-Gitlab-Event", "Job Hook"),
			status:   "firing",
			groupKey: `ci:{alertname="GitLabJobFailed",branch="main",job="rspec",repository="platform/billing-api",source="ci"}`,
			alerts: []wantAlert{{
				status: "firing",
				labels: map[string]string{"alertname": "GitLabJobFailed", "repository": "platform/billing-api", "branch": "main", "job": "rspec", "source": "ci"},
				annotations: map[string]string{
					"summary":        "CI failed: platform/billing-api job rspec (stage test) on main (failed)",
					"url":            glJobURL,
					"conclusion":     "failed",
					"failure_reason": "script_failure",
				},
				startsAt: testNow, generatorURL: glJobURL,
			}},
		},
		{
			name: "gitlab job success", preset: "gitlab", file: "gitlab/job_success.json",
			header:   hdr("X-Gitlab-Event", "Job Hook"),
			status:   "resolved",
			groupKey: `ci:{alertname="GitLabJobFailed",branch="main",job="rspec",repository="platform/billing-api",source="ci"}`,
			alerts: []wantAlert{{
				status: "resolved",
				labels: map[string]string{"alertname": "GitLabJobFailed", "repository": "platform/billing-api", "branch": "main", "job": "rspec", "source": "ci"},
				annotations: map[string]string{
					"summary":    "CI passed: platform/billing-api job rspec (stage test) on main",
					"url":        glJobURL,
					"conclusion": "success",
				},
				startsAt: testNow, endsAt: testNow, generatorURL: glJobURL,
			}},
		},
		{
			name: "gitlab job failed on an old server without project", preset: "gitlab", file: "gitlab/job_failed_legacy.json",
			header:   hdr("X-Gitlab-Event", "Job Hook"),
			status:   "firing",
			groupKey: `ci:{alertname="GitLabJobFailed",branch="main",job="rspec",repository="Platform / billing-api",source="ci"}`,
			alerts: []wantAlert{{
				status: "firing",
				labels: map[string]string{"alertname": "GitLabJobFailed", "repository": "Platform / billing-api", "branch": "main", "job": "rspec", "source": "ci"},
				annotations: map[string]string{
					"summary":        "CI failed: Platform / billing-api job rspec (stage test) on main (failed)",
					"url":            glJobURL,
					"conclusion":     "failed",
					"failure_reason": "script_failure",
				},
				startsAt: testNow, generatorURL: glJobURL,
			}},
		},
		{
			name: "grafana firing", preset: "grafana", file: "grafana/firing.json",
			status:   "firing",
			groupKey: `ci:{}/{__grafana_autogenerated__="true"}/{__grafana_receiver__="smsbridge"}:{alertname="HighMemoryUsage", grafana_folder="Infrastructure"}`,
			alerts: []wantAlert{
				{
					status: "firing",
					labels: map[string]string{"alertname": "HighMemoryUsage", "grafana_folder": "Infrastructure", "instance": "db-1:9100", "team": "db", "severity": "critical", "source": "ci"},
					annotations: map[string]string{
						"description":   "Memory usage on db-1 is above 90% for 10 minutes.",
						"runbook_url":   "https://runbooks.example.com/memory",
						"summary":       "db-1 memory above 90%",
						"silence_url":   "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DHighMemoryUsage&matcher=instance%3Ddb-1%3A9100&orgId=1",
						"dashboard_url": "https://grafana.example.com/d/rYdddlPWk?orgId=1",
						"panel_url":     "https://grafana.example.com/d/rYdddlPWk?orgId=1&viewPanel=4",
						"values":        "B=93.41208791208791 C=1",
						"value_string":  "[ var='B' labels={instance=db-1:9100} value=93.41208791208791 ], [ var='C' labels={instance=db-1:9100} value=1 ]",
					},
					startsAt:     time.Date(2026, 3, 2, 6, 51, 3, 157076000, time.UTC),
					generatorURL: "https://grafana.example.com/alerting/grafana/cdeqmlhvflz40f/view?orgId=1",
				},
				{
					status: "firing",
					labels: map[string]string{"alertname": "HighMemoryUsage", "grafana_folder": "Infrastructure", "instance": "db-2:9100", "team": "db", "severity": "critical", "source": "ci"},
					annotations: map[string]string{
						"description":  "Memory usage on db-2 is above 90% for 10 minutes.",
						"runbook_url":  "https://runbooks.example.com/memory",
						"summary":      "db-2 memory above 90%",
						"silence_url":  "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DHighMemoryUsage&matcher=instance%3Ddb-2%3A9100&orgId=1",
						"values":       "B=91.0 C=1",
						"value_string": "[ var='B' labels={instance=db-2:9100} value=91 ], [ var='C' labels={instance=db-2:9100} value=1 ]",
					},
					startsAt:     time.Date(2026, 3, 2, 6, 56, 3, 157076000, time.UTC),
					generatorURL: "https://grafana.example.com/alerting/grafana/cdeqmlhvflz40f/view?orgId=1",
				},
			},
			extra: func(t *testing.T, n *alert.Notification) {
				if n.Data.ExternalURL != "https://grafana.example.com/" || n.TruncatedAlerts != 0 {
					t.Errorf("ExternalURL %q TruncatedAlerts %d", n.Data.ExternalURL, n.TruncatedAlerts)
				}
				if n.Data.Alerts[0].Fingerprint == n.Data.Alerts[1].Fingerprint {
					t.Error("alerts with different labels share a fingerprint")
				}
				want := amtemplate.KV{"alertname": "HighMemoryUsage", "grafana_folder": "Infrastructure"}
				if !reflect.DeepEqual(n.Data.GroupLabels, want) {
					t.Errorf("GroupLabels = %v, want Grafana's %v", n.Data.GroupLabels, want)
				}
			},
		},
		{
			name: "grafana resolved", preset: "grafana", file: "grafana/resolved.json",
			status:   "resolved",
			groupKey: `ci:{}/{__grafana_autogenerated__="true"}/{__grafana_receiver__="smsbridge"}:{alertname="HighMemoryUsage", grafana_folder="Infrastructure"}`,
			alerts: []wantAlert{{
				status: "resolved",
				labels: map[string]string{"alertname": "HighMemoryUsage", "grafana_folder": "Infrastructure", "instance": "db-1:9100", "team": "db", "severity": "critical", "source": "ci"},
				annotations: map[string]string{
					"description": "Memory usage on db-1 is above 90% for 10 minutes.",
					"summary":     "db-1 memory above 90%",
					"silence_url": "https://grafana.example.com/alerting/silence/new?alertmanager=grafana&matcher=alertname%3DHighMemoryUsage&orgId=1",
				},
				startsAt:     time.Date(2026, 3, 2, 6, 51, 3, 157076000, time.UTC),
				endsAt:       time.Date(2026, 3, 2, 7, 21, 3, 157076000, time.UTC),
				generatorURL: "https://grafana.example.com/alerting/grafana/cdeqmlhvflz40f/view?orgId=1",
			}},
			extra: func(t *testing.T, n *alert.Notification) {
				if n.TruncatedAlerts != 3 || n.Data.ExternalURL != "https://grafana.example.com/" {
					t.Errorf("TruncatedAlerts = %d, ExternalURL %q; want 3 and Grafana's", n.TruncatedAlerts, n.Data.ExternalURL)
				}
			},
		},
		{
			name: "plain firing", preset: "plain", file: "plain/disk_full.json",
			status:   "firing",
			groupKey: `ci:{alertname="ci",host="nas-1",severity="critical",source="ci",team="storage"}`,
			alerts: []wantAlert{{
				status:      "firing",
				labels:      map[string]string{"alertname": "ci", "host": "nas-1", "severity": "critical", "source": "ci", "team": "storage"},
				annotations: map[string]string{"summary": "backup job on nas-1 failed: disk full", "runbook_url": "https://runbooks.example.com/backup"},
				startsAt:    testNow,
			}},
		},
		{
			name: "plain resolved", preset: "plain", file: "plain/resolved.json",
			status:   "resolved",
			groupKey: `ci:{alertname="ci",host="nas-1",severity="critical",source="ci",team="storage"}`,
			alerts: []wantAlert{{
				status:      "resolved",
				labels:      map[string]string{"alertname": "ci", "host": "nas-1", "severity": "critical", "source": "ci", "team": "storage"},
				annotations: map[string]string{"summary": "backup job on nas-1 ok again"},
				startsAt:    testNow, endsAt: testNow,
			}},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := compile(t, Config{Preset: tc.preset}, "ci")
			n, err := m.Apply(fixture(t, tc.file), tc.header, testNow)
			if filtered := errors.Is(err, ErrFiltered); filtered != tc.filtered {
				t.Fatalf("filtered = %v, want %v (%+v, %v)", filtered, tc.filtered, n, err)
			}
			if tc.filtered {
				if n != nil {
					t.Errorf("filtered body gave a notification: %+v", n)
				}
				return
			}
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			if n.Data.Status != tc.status {
				t.Errorf("Status = %q, want %q", n.Data.Status, tc.status)
			}
			if n.GroupKey != tc.groupKey {
				t.Errorf("GroupKey =\n %s\nwant\n %s", n.GroupKey, tc.groupKey)
			}
			if len(n.Data.Alerts) != len(tc.alerts) {
				t.Fatalf("got %d alerts, want %d", len(n.Data.Alerts), len(tc.alerts))
			}
			for i, w := range tc.alerts {
				a := n.Data.Alerts[i]
				if a.Status != w.status {
					t.Errorf("alert %d: Status = %q, want %q", i, a.Status, w.status)
				}
				if !reflect.DeepEqual(map[string]string(a.Labels), w.labels) {
					t.Errorf("alert %d: Labels =\n %v\nwant\n %v", i, a.Labels, w.labels)
				}
				if !reflect.DeepEqual(map[string]string(a.Annotations), w.annotations) {
					t.Errorf("alert %d: Annotations =\n %v\nwant\n %v", i, a.Annotations, w.annotations)
				}
				if !a.StartsAt.Equal(w.startsAt) || !a.EndsAt.Equal(w.endsAt) {
					t.Errorf("alert %d: StartsAt %v EndsAt %v, want %v %v", i, a.StartsAt, a.EndsAt, w.startsAt, w.endsAt)
				}
				if a.GeneratorURL != w.generatorURL {
					t.Errorf("alert %d: GeneratorURL = %q, want %q", i, a.GeneratorURL, w.generatorURL)
				}
				if a.Fingerprint != alert.Fingerprint(w.labels) || len(a.Fingerprint) != 16 {
					t.Errorf("alert %d: Fingerprint = %q, want %q", i, a.Fingerprint, alert.Fingerprint(w.labels))
				}
			}
			if tc.extra != nil {
				tc.extra(t, n)
			}
		})
	}
}

// TestGroupKeyStability checks that repeats of one event, and the success that
// resolves a failure, share a group key and fingerprint, while another branch
// does not.
func TestGroupKeyStability(t *testing.T) {
	t.Parallel()
	tests := []struct {
		preset            string
		header            http.Header
		fail, again, pass string
		otherBranch       string
	}{
		{"github", hdr("X-GitHub-Event", "workflow_run"), "github/workflow_run_failure.json", "github/workflow_run_failure.json", "github/workflow_run_success.json", "github/workflow_run_timed_out_release.json"},
		{"gitlab", hdr("X-Gitlab-Event", "Pipeline Hook"), "gitlab/pipeline_failed.json", "gitlab/pipeline_failed.json", "gitlab/pipeline_success.json", "gitlab/pipeline_failed_release_no_url.json"},
	}
	for _, tc := range tests {
		t.Run(tc.preset, func(t *testing.T) {
			m := compile(t, Config{Preset: tc.preset}, "ci")
			apply := func(file string) *alert.Notification {
				n, err := m.Apply(fixture(t, file), tc.header, testNow)
				if err != nil {
					t.Fatalf("%s: %v", file, err)
				}
				return n
			}
			fp := func(n *alert.Notification) string { return n.Data.Alerts[0].Fingerprint }
			fail, again, pass, other := apply(tc.fail), apply(tc.again), apply(tc.pass), apply(tc.otherBranch)
			if fail.GroupKey != again.GroupKey || fp(fail) != fp(again) {
				t.Errorf("same event twice: %q vs %q", fail.GroupKey, again.GroupKey)
			}
			if fail.GroupKey != pass.GroupKey || fp(fail) != fp(pass) {
				t.Errorf("failure and its resolution differ: %q vs %q", fail.GroupKey, pass.GroupKey)
			}
			if fail.GroupKey == other.GroupKey || fp(fail) == fp(other) {
				t.Errorf("another branch shares the key %q", other.GroupKey)
			}
		})
	}
}

func TestPresetOverrides(t *testing.T) {
	t.Parallel()
	wf := fixture(t, "github/workflow_run_failure.json")
	ghHeader := hdr("X-GitHub-Event", "workflow_run")
	tests := []struct {
		name   string
		cfg    Config
		body   []byte
		header http.Header
		check  func(t *testing.T, n *alert.Notification)
	}{
		{
			name: "one label added, one removed, one replaced, others kept",
			cfg: Config{Preset: "github", Labels: map[string]string{
				"team":     "{{ .repository.owner.login }}",
				"workflow": "",
				"branch":   `{{ get "workflow_run.head_branch" . | toUpper }}`,
			}},
			body: wf, header: ghHeader,
			check: func(t *testing.T, n *alert.Notification) {
				want := map[string]string{"alertname": "GitHubWorkflowFailed", "repository": "octo-org/octo-repo", "branch": "MAIN", "team": "octo-org", "source": "ci"}
				if !reflect.DeepEqual(map[string]string(n.Data.Alerts[0].Labels), want) {
					t.Errorf("labels = %v, want %v", n.Data.Alerts[0].Labels, want)
				}
				if n.Data.Alerts[0].Annotations["summary"] != "CI failed: octo-org/octo-repo CI on main (failure)" {
					t.Errorf("preset annotation lost: %v", n.Data.Alerts[0].Annotations)
				}
			},
		},
		{
			name: "when widened to page on cancelled runs too",
			cfg:  Config{Preset: "github", When: `{{ match "^(failure|cancelled)$" .workflow_run.conclusion }}`},
			body: fixture(t, "github/workflow_run_cancelled.json"), header: ghHeader,
			check: func(t *testing.T, n *alert.Notification) {
				if n.Data.Status != "firing" || n.Data.Alerts[0].Annotations["conclusion"] != "cancelled" {
					t.Errorf("got %+v", n)
				}
			},
		},
		{
			name: "status, group key and generator URL overridden",
			cfg:  Config{Preset: "github", Status: "resolved", GroupKey: "{{ .repository.full_name }}", GeneratorURL: "https://ci.example.com/{{ .workflow_run.id }}"},
			body: wf, header: ghHeader,
			check: func(t *testing.T, n *alert.Notification) {
				if n.Data.Status != "resolved" || n.Data.Alerts[0].Status != "resolved" || n.Data.Alerts[0].EndsAt.IsZero() {
					t.Errorf("status not overridden: %+v", n)
				}
				if n.GroupKey != "ci:octo-org/octo-repo" {
					t.Errorf("GroupKey = %q", n.GroupKey)
				}
				if n.Data.Alerts[0].GeneratorURL != "https://ci.example.com/10481234567" {
					t.Errorf("GeneratorURL = %q", n.Data.Alerts[0].GeneratorURL)
				}
			},
		},
		{
			name: "grafana: overrides rendered over the whole body and applied to every alert",
			cfg:  Config{Preset: "grafana", Labels: map[string]string{"org": "{{ .orgId }}", "grafana_folder": ""}, Annotations: map[string]string{"summary": "{{ .title }}"}, Status: "resolved"},
			body: fixture(t, "grafana/firing.json"),
			check: func(t *testing.T, n *alert.Notification) {
				if n.Data.Status != "resolved" {
					t.Errorf("Status = %q", n.Data.Status)
				}
				for i, a := range n.Data.Alerts {
					if a.Labels["org"] != "1" || a.Labels["grafana_folder"] != "" || a.Labels["instance"] == "" {
						t.Errorf("alert %d labels %v", i, a.Labels)
					}
					if a.Annotations["summary"] != "[FIRING:2] HighMemoryUsage Infrastructure (critical db)" || a.Annotations["description"] == "" {
						t.Errorf("alert %d annotations %v", i, a.Annotations)
					}
					if a.Status != "resolved" || !a.EndsAt.Equal(testNow) {
						t.Errorf("alert %d status %q ends %v", i, a.Status, a.EndsAt)
					}
					if a.Fingerprint != alert.Fingerprint(a.Labels) {
						t.Errorf("alert %d fingerprint not recomputed", i)
					}
				}
			},
		},
		{
			name: "plain: the mapping's source and alertname win over the defaults",
			cfg:  Config{Preset: "plain", Labels: map[string]string{"alertname": "BackupFailed", "source": "cron"}},
			body: fixture(t, "plain/disk_full.json"),
			check: func(t *testing.T, n *alert.Notification) {
				if l := n.Data.Alerts[0].Labels; l["alertname"] != "BackupFailed" || l["source"] != "cron" || l["host"] != "nas-1" {
					t.Errorf("labels %v", l)
				}
				if n.GroupKey != `ci:{alertname="BackupFailed",host="nas-1",severity="critical",source="cron",team="storage"}` {
					t.Errorf("GroupKey = %q", n.GroupKey)
				}
			},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			m := compile(t, tc.cfg, "ci")
			n, err := m.Apply(tc.body, tc.header, testNow)
			if err != nil {
				t.Fatalf("apply: %v", err)
			}
			tc.check(t, n)
		})
	}
}

// TestPresetsDoNotMutateEachOther guards the merge: a user's override must
// not leak into the next Compile of the same preset.
func TestPresetsDoNotMutateEachOther(t *testing.T) {
	t.Parallel()
	compile(t, Config{Preset: "github", Labels: map[string]string{"repository": "x"}}, "a")
	m := compile(t, Config{Preset: "github"}, "b")
	n, err := m.Apply(fixture(t, "github/workflow_run_failure.json"), hdr("X-GitHub-Event", "workflow_run"), testNow)
	if err != nil {
		t.Fatal(err)
	}
	if got := n.Data.Alerts[0].Labels["repository"]; got != "octo-org/octo-repo" {
		t.Errorf("repository = %q", got)
	}
}

func TestPresets(t *testing.T) {
	t.Parallel()
	for _, name := range Presets() {
		if _, err := (Config{Preset: name}).Compile("x"); err != nil {
			t.Errorf("preset %s: %v", name, err)
		}
	}
}

func BenchmarkApplyGitHub(b *testing.B) {
	m := compile(b, Config{Preset: "github"}, "ci")
	body := fixture(b, "github/workflow_run_failure.json")
	h := hdr("X-GitHub-Event", "workflow_run")
	for b.Loop() {
		if _, err := m.Apply(body, h, testNow); err != nil {
			b.Fatal(err)
		}
	}
}
