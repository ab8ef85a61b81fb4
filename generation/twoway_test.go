package generation

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/alertmanager/template"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/oncall"
)

// twoWayConfig writes a configuration with the two-way keys extra (YAML
// at the top level, and a callback block under sms) and a token file
// holding tok, and loads it.
func twoWayConfig(t *testing.T, callback, extra, tok string) *config.File {
	t.Helper()
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "token"), []byte(tok+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := "sms:\n  api_key: k3y\n" + callback + extra + `
people: [{name: alice, number: "+27830000001"}, {name: dave, number: "+27830000004"}]
route: {receiver: db}
receivers:
  - {name: db, numbers: [alice, "+27830000002"], on_undelivered: backup}
  - {name: backup, oncall: [rota]}
oncall:
  - name: rota
    rotation: {members: [dave], shift: 1w, start: "2026-01-05T09:00"}
`
	path := filepath.Join(dir, "c.yml")
	if err := os.WriteFile(path, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

const goodToken = "0123456789abcdef0123456789abcdef"

func TestTwoWay(t *testing.T) {
	t.Parallel()
	f := twoWayConfig(t, "  callback: {token_file: token}\n",
		"replies: {enabled: true, ack_silence: 2h}\nalertmanager_api: {urls: ['http://am-0:9093', 'http://am-1:9093']}\n", goodToken)
	g, err := Build(f, Options{DryRunURL: "http://127.0.0.1:1/sms/messages"})
	if err != nil {
		t.Fatal(err)
	}
	tw := g.TwoWay
	if string(tw.Token) != goodToken || !tw.Replies || tw.AckSilence != 2*time.Hour || tw.MaxSilence != config.DefaultMaxSilence ||
		!tw.NotifyOthers || tw.Alertmanager == nil || tw.Alertmanager.URLs() != 2 || tw.Inbound == nil || tw.MatchWindow != config.DefaultMatchWindow {
		t.Errorf("two-way %+v", tw)
	}
	for _, tc := range []struct {
		number string
		name   string
		known  bool
	}{{"+27830000001", "alice", true}, {"+27830000002", "", true}, {"+27830000004", "dave", true}, {"+27830000009", "", false}} {
		if name, known := tw.Lookup(tc.number); name != tc.name || known != tc.known {
			t.Errorf("Lookup(%s) = %q, %t; want %q, %t", tc.number, name, known, tc.name, tc.known)
		}
	}
	target, ms := tw.Failover("db", time.Now())
	if target != "backup" || len(ms) != 1 || ms[0] != (oncall.Member{Name: "dave", Number: "+27830000004"}) {
		t.Errorf("failover of db: %s %+v", target, ms)
	}
	if target, _ := tw.Failover("backup", time.Now()); target != "" {
		t.Errorf("backup has no on_undelivered, got %q", target)
	}
	// The firing text ends with the line, saying what a reply does.
	if line := g.Pipeline.Preview(firing(), time.Now()).Entries[0].Text; !strings.HasSuffix(line, "Reply ACK ### to silence 2h") {
		t.Errorf("preview %q", line)
	}
	sum := g.Summary()
	if !strings.Contains(sum, "two-way: callback endpoint on, receipts matched within 1d, replies on (ack 2h, at most 1d), silences in 2 alertmanager(s)\n") {
		t.Errorf("summary:\n%s", sum)
	}
	if strings.Contains(sum+fmt.Sprintf("%v %+v", tw, *tw), goodToken) {
		t.Error("the token is printed")
	}
}

func TestTwoWayErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, callback, extra, tok string
		want                       []string
	}{
		{"no token", "  callback: {match_window: 1h}\n", "", goodToken,
			[]string{`:3: sms.callback: no token; set token_file to a file holding a long random string (openssl rand -hex 32)`}},
		{"short token", "  callback: {token_file: token}\n", "", "0123456789", []string{`:3: sms.callback: token is 10 characters long; use at least 24`}},
		{"token with a slash", "  callback: {token_file: token}\n", "", goodToken + "/x", []string{`:3: sms.callback: token may hold only letters, digits and - . _ ~`}},
		{"placeholder", "  callback: {token_file: token}\n", "", "REPLACE-WITH-A-TOKEN-0123456789", []string{`:3: sms.callback: secret file`, "placeholder"}},
		{"missing file", "  callback: {token_file: nothere}\n", "", goodToken, []string{`:3: sms.callback: read secret file: open `}},
		{"replies without callback", "", "replies: {enabled: true}\n", goodToken,
			[]string{`:3: replies.enabled needs sms.callback: replies reach the bridge through the provider's callbacks`,
				`:8: receiver "db": on_undelivered needs sms.callback`}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := twoWayConfig(t, tc.callback, tc.extra, tc.tok)
			_, err := Build(f, Options{})
			if err == nil {
				t.Fatal("built")
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
			if strings.Contains(err.Error(), goodToken[:12]) || (tc.tok != goodToken && strings.Contains(err.Error(), tc.tok)) {
				t.Errorf("the token is in the error: %v", err)
			}
			// A dry run makes its own token.
			g, err := Build(f, Options{DryRun: true, DryRunCallbackToken: "dry-" + goodToken})
			if err != nil {
				t.Fatalf("dry run: %v", err)
			}
			if string(g.TwoWay.Token) != "dry-"+goodToken {
				t.Errorf("dry run token %q", g.TwoWay.Token)
			}
		})
	}
}

// firing is one firing Alertmanager alert, DiskFull.
func firing() *alert.Notification {
	labels := template.KV{"alertname": "DiskFull"}
	return &alert.Notification{Source: alert.SourceAlertmanager, GroupKey: "g", Data: template.Data{Status: "firing",
		Alerts:      template.Alerts{{Status: "firing", Labels: labels, Annotations: template.KV{}}},
		GroupLabels: labels, CommonLabels: labels, CommonAnnotations: template.KV{}}}
}
