package generation

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/sms"
	"github.com/smsbridge/smsbridge/templates"
)

func load(t testing.TB, path string) *config.File {
	t.Helper()
	f, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestBuildGoodConfig(t *testing.T) {
	t.Parallel()
	f := load(t, "testdata/good.yml")
	reg := prometheus.NewRegistry()
	g, err := Build(f, Options{TemplateMetrics: templates.NewMetrics(reg)})
	if err != nil {
		t.Fatal(err)
	}
	if g.File != f {
		t.Error("the generation does not keep its file")
	}
	want := []Account{
		{Name: AccountPrimary, URL: config.DefaultURL, APIKey: "inline-k3y-value", Timeout: config.DefaultTimeout, RateLimit: 5},
		{Name: AccountFallback, URL: "https://backup.example.com/sms/messages", APIKey: "fallb4ck-k3y-value", Timeout: config.DefaultTimeout, RateLimit: 5},
	}
	if fmt.Sprint(g.Accounts) != fmt.Sprint(want) || g.Accounts[0].APIKey != want[0].APIKey || g.Accounts[1].APIKey != want[1].APIKey {
		t.Errorf("accounts %+v, want %+v", g.Accounts, want)
	}
	for _, out := range []string{fmt.Sprintf("%v %+v %#v", g.Accounts, g.Accounts, g.Accounts), g.Summary()} {
		if strings.Contains(out, "k3y-value") {
			t.Errorf("an account key is printed: %s", out)
		}
	}
	ops, _ := g.Router.Receiver("ops")
	if len(ops.Numbers) != 1 || ops.Numbers[0] != "+27831234567" || ops.MaxSegments != 3 {
		t.Errorf("ops: numbers not normalised or segments not resolved: %+v", ops)
	}
	db, _ := g.Router.Receiver("db")
	if len(db.Numbers) != 0 || len(db.Oncall) != 1 || len(db.Recipients(g.LoadedAt, nil)) != 1 || db.Template != `{{ template "custom" . }}` {
		t.Errorf("db: %+v", db)
	}
	// The user's template file was read, relative to the config file.
	if err := g.Renderer.Check(`{{ template "custom" . }}`); err != nil {
		t.Errorf("custom template: %v", err)
	}
	in := g.Sources
	if in.Alertmanager.Verifier == nil || in.Alertmanager.BodyLimit != 512<<10 || in.Alertmanager.Name != "alertmanager" {
		t.Errorf("alertmanager source %+v", in.Alertmanager)
	}
	ci := in.Webhooks["ci"]
	if ci == nil || ci.Verifier == nil || ci.Mapping == nil || ci.Limiter == nil || ci.Limiter.Burst() != 2 || ci.BodyLimit != config.DefaultBodyLimit {
		t.Errorf("ci source %+v", ci)
	}
	if err := in.Validate(); err != nil {
		t.Error(err)
	}
	wantSummary := "receivers: 2\n  ops: 1 number, send_resolved=true\n  db: 0 numbers and oncall dbas, send_resolved=true\n" +
		"oncall lists: 1\n  dbas: 1 number, time zone UTC\n" +
		"routes: 2 (the root included)\nsources: alertmanager, ci\naccounts: primary, fallback\n"
	if s := g.Summary(); s != wantSummary {
		t.Errorf("summary:\n%s\nwant:\n%s", s, wantSummary)
	}
	// The renderer counts failures for every receiver and reason from zero.
	if n, err := reg.Gather(); err != nil || len(n) != 1 || len(n[0].GetMetric()) != 2*len(templates.Reasons) {
		t.Errorf("template error series: %v %v", n, err)
	}
}

func TestKeyFiles(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	cfg := "sms:\n  api_key_file: key.txt\n  fallback: {api_key_file: keys/fallback.txt}\nroute: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"
	path := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f := load(t, path)
	_, err := Build(f, Options{})
	wantErr := fmt.Sprintf("%[1]s:2: sms: read secret file: open %[2]s/key.txt: no such file or directory\n"+
		"%[1]s:3: sms.fallback: read secret file: open %[2]s/keys/fallback.txt: no such file or directory", path, dir)
	if err == nil || err.Error() != wantErr {
		t.Fatalf("missing key files:\n %v\nwant\n %s", err, wantErr)
	}
	if !errors.Is(err, os.ErrNotExist) {
		t.Error("the cause is not kept")
	}
	g, err := Build(f, Options{DryRun: true})
	if err != nil {
		t.Fatalf("a dry run needs no key: %v", err)
	}
	if g.Accounts[0].APIKey != "" || g.Accounts[1].APIKey != "" || len(g.Accounts) != 2 {
		t.Errorf("dry run accounts %+v", g.Accounts)
	}
	if err := os.MkdirAll(filepath.Join(dir, "keys"), 0o700); err != nil {
		t.Fatal(err)
	}
	for name, key := range map[string]string{"key.txt": "file-k3y-value\n", "keys/fallback.txt": "fallback-k3y-value\n"} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(key), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	g, err = Build(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if g.Accounts[0].APIKey != "file-k3y-value" || g.Accounts[1].APIKey != "fallback-k3y-value" {
		t.Errorf("keys from files: %v", g.Accounts)
	}
	// An inline key is used in a dry run too; the caller may replace it.
	f2, err := config.Load([]byte("sms: {api_key: inline}\nroute: {receiver: a}\nreceivers: [{name: a}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	if g, err := Build(f2, Options{DryRun: true}); err != nil || g.Accounts[0].APIKey != secret.Secret("inline") {
		t.Errorf("dry run with an inline key: %v %v", g, err)
	}
}

// TestBadConfigs maps each broken fixture in testdata/bad/ to the exact
// errors Build must produce: every routing error and every file error at
// the line of the key it concerns, several in file order.
func TestBadConfigs(t *testing.T) {
	t.Parallel()
	tests := []struct {
		file string
		want []string // file:line: message, without the directory
	}{
		// Routing, one kind of problem each.
		{"root-no-receiver", []string{`2: route: root route must specify a receiver`}},
		{"root-matchers", []string{`4: route: root route must not have matchers`}},
		{"unknown-root-receiver", []string{`3: route: unknown receiver "nobody"`}},
		{"unknown-receiver", []string{`8: route.routes[0].routes[0]: unknown receiver "db-page"`}},
		{"bad-matcher", []string{`8: route.routes[0]: bad matcher "severity=~\"(\"": error parsing regexp: missing closing ): ` + "`^(?:()$`"}},
		{"empty-matcher", []string{`7: route.routes[1]: bad matcher "{}": no label matcher in it`}},
		{"empty-route", []string{`6: route.routes[1]: empty route`}},
		{"duplicate-receiver", []string{`9: duplicate receiver name "ops"`}},
		{"empty-receiver-name", []string{`7: receivers[1]: empty name`}},
		{"bad-number", []string{`8: receiver "ops": bad number "083 123 4567": invalid number 083****67: must start with + and the country code`}},
		{"empty-number", []string{`6: receiver "ops": empty number`}},
		{"unknown-oncall", []string{`8: receiver "ops": unknown oncall list "secondary"`}},
		{"empty-oncall-ref", []string{`7: receiver "ops": empty oncall list name`}},
		{"no-numbers", []string{`6: receiver "ops" has no numbers`}},
		{"oncall-bad-number", []string{`11: oncall list "primary": bad number "0800 CALL ME": invalid number ****: unexpected character 'C'`}},
		{"oncall-duplicate", []string{`10: duplicate oncall list name "primary"`}},
		{"oncall-schedule", []string{
			`4: person "bob" has the same number as "alice"; one number, one name`,
			`10: route: the root route must not have active_time_intervals; put them on a child route`,
			`14: route.routes[0]: unknown time interval "nights"`,
			`17: receiver "ops": unknown person "alise"; people are alice`,
			`21: oncall list "primary": time_zone "Europe/Berln" is not an IANA time zone such as Europe/Berlin or America/New_York`,
			`23: oncall list "primary": rotation: unknown person "carol"; people are alice`,
			`24: oncall list "primary": rotation.shift "1 week" is not a duration such as 12h, 1d or 1w`,
			`25: oncall list "primary": rotation.start "2026-01-05 9am" is not a local time such as 2026-01-05T09:00`,
			`27: oncall list "primary": unknown time interval "weekends"`,
		}},
		{"oncall-empty-name", []string{`8: oncall[0]: empty name`}},
		{"escalate", []string{
			`9: receiver "db": escalate[1]: after 5m is not after the step before it (10m); steps come in order, each later`,
			`10: receiver "db": escalate[2]: names the receiver itself; a step pages someone else`,
			`11: receiver "db": escalate[3]: unknown receiver "ghost"`,
			`12: receiver "db": escalate[4]: after "ten minutes" is not a duration such as 10m, 30m or 1h`,
			`13: receiver "db": escalate[5]: after 2s is too soon; at least 10s (nobody can answer a page sooner)`,
			`14: receiver "db": escalate[6]: after 3d is too late; at most 1d`,
			`15: receiver "db": escalate[7]: after is missing; say how long after the page the step is due, such as 10m`,
			`16: receiver "db": escalate[8]: receiver is missing; name the receiver the step pages`,
			`17: receiver "db": escalate[9]: receiver "nobody-home" has no numbers and no on-call lists: the step would page nobody`,
		}},
		{"several", []string{
			`5: route.routes[0]: bad matcher "team=~\"[\"": error parsing regexp: missing closing ]: ` + "`[)$`",
			`6: route.routes[0]: unknown receiver "ghost"`,
			`9: receiver "ops": bad number "0800 nope": invalid number ****: unexpected character 'n'`,
			`10: receiver "ops": unknown oncall list "missing"`,
			`13: receiver "db": template: parse: template: :1: unclosed action`,
		}},

		// Files: keys, secrets, templates.
		{"no-key", []string{`1: sms: no API key; set api_key_file (or api_key), or run with --sms.dry-run`}},
		{"missing-key-file", []string{`3: sms: read secret file: open testdata/bad/missing-key: no such file or directory`}},
		{"empty-key-file", []string{`2: sms: secret file testdata/bad/empty-key is empty`}},
		{"missing-fallback-key-file", []string{`5: sms.fallback: read secret file: open testdata/bad/missing-fallback-key: no such file or directory`}},
		{"missing-auth-secret", []string{`5: alertmanager: auth: secret_file: read secret file: open testdata/bad/missing-am-token: no such file or directory`}},
		{"missing-auth-password", []string{`8: webhooks "ci": auth: password_file: read secret file: open testdata/bad/missing-password: no such file or directory`}},
		{"template-pattern", []string{`4: templates: template files "testdata/bad/tmpl-[broken": syntax error in pattern`}},
		{"template-nomatch", []string{`5: templates: template files "testdata/bad/tmpl-broken/none-*.tmpl" match no file`}},
		{"template-file", []string{`4: templates: template file testdata/bad/tmpl-broken/broken.tmpl: template: broken.tmpl:3: missing value for if`}},
		{"receiver-template", []string{`7: receiver "ops": template: execute against sample data: template: :1:12: executing "" at <{{template "nosuch" .}}>: template "nosuch" not defined: ` +
			`no template named "nosuch" is built in or defined in a template file (templates.files names no file)`}},

		// Intake: auth and mappings.
		{"auth-type", []string{`6: webhooks "ci": auth: type "magic" unknown; want one of bearer, basic, token, hmac-sha256, standard-webhooks`}},
		{"auth-missing-header", []string{`5: webhooks "gl": auth: header required for type token`}},
		{"preset", []string{`4: webhooks "jenkins": preset: unknown preset "jenkins" (want one of github, gitlab, grafana, plain)`}},
		{"mapping-label", []string{`7: webhooks "ci": labels.team: template: labels.team:1: unclosed action`}},
	}
	fixtures, err := filepath.Glob("testdata/bad/*.yml")
	if err != nil {
		t.Fatal(err)
	}
	if len(fixtures) != len(tests) {
		t.Errorf("%d fixtures in testdata/bad, %d in the table: each fixture needs its expected errors", len(fixtures), len(tests))
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			t.Parallel()
			path := "testdata/bad/" + tc.file + ".yml"
			f := load(t, path)
			g, err := Build(f, Options{})
			if err == nil {
				t.Fatalf("built %+v, want errors", g)
			}
			want := make([]string, len(tc.want))
			for i, w := range tc.want {
				want[i] = path + ":" + w
			}
			if got := strings.Split(err.Error(), "\n"); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Errorf("errors:\n %s\nwant\n %s", strings.Join(got, "\n "), strings.Join(want, "\n "))
			}
			// Each line is a *config.Error of its own.
			errs := []error{err}
			if j, ok := err.(interface{ Unwrap() []error }); ok {
				errs = j.Unwrap()
			}
			for _, e := range errs {
				var ce *config.Error
				if !errors.As(e, &ce) || ce.File != path || ce.Line == 0 {
					t.Errorf("%v: not a *config.Error with file and line", e)
				}
			}
		})
	}
}

// TestRoutingErrorsKeepTheirCause: the config error wraps routing's, which
// wraps the normaliser's.
func TestRoutingErrorsKeepTheirCause(t *testing.T) {
	t.Parallel()
	_, err := Build(load(t, "testdata/bad/bad-number.yml"), Options{})
	var re *routing.Error
	if !errors.As(err, &re) || re.Path != "receivers[0].numbers[1]" || !errors.Is(err, sms.ErrInvalidNumber) {
		t.Errorf("error %v: routing error %+v", err, re)
	}
}

// TestSecretsNotInErrors: no key, token or password read while building
// reaches an error, whatever fails.
func TestSecretsNotInErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	const key, token = "pr1mary-k3y-never-shown", "t0ken-never-shown"
	for name, data := range map[string]string{"key": key, "token": token} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	cfg := `sms: {api_key_file: key, fallback: {api_key: "f4llback-never-shown", url: "https://b.example.com/"}}
alertmanager: {auth: {type: bearer, secret_file: token}}
webhooks:
  - {name: a, preset: plain, auth: {type: basic, username: u, password: "passw0rd-never-shown", secret: "s3cret-never-shown"}}
route: {receiver: ops, routes: [{receiver: ghost}]}
receivers: [{name: ops, numbers: ["bad"]}]
`
	path := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	_, err := Build(load(t, path), Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if err == nil {
		t.Fatal("built a broken config")
	}
	for _, s := range []string{key, token, "f4llback", "passw0rd", "s3cret"} {
		if strings.Contains(err.Error()+logs.String(), s) {
			t.Errorf("%q in the error or logs:\n%v", s, err)
		}
	}
}

func TestSummaryWithoutFallback(t *testing.T) {
	t.Parallel()
	f, err := config.Load([]byte("route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\nwebhooks: [{name: z, preset: plain}, {name: b, preset: plain}]\n"))
	if err != nil {
		t.Fatal(err)
	}
	g, err := Build(f, Options{DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if s := g.Summary(); !strings.HasSuffix(s, "sources: alertmanager, b, z\naccounts: primary\n") {
		t.Errorf("summary:\n%s", s)
	}
	if a := g.Accounts[0]; a.URL != config.DefaultURL || a.Timeout != 10*time.Second || a.RateLimit != config.DefaultRateLimit {
		t.Errorf("primary %+v", a)
	}
}
