package main

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// routesCLIConfig needs no API key: routes test never reads it.
const routesCLIConfig = `
sms:
  url: http://127.0.0.1:1/sms/messages
  api_key_file: /nonexistent/key
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
    - matchers: ['team="nobody"']
      receiver: empty
receivers:
  - name: ops
    numbers: ["+27 83 000 0001"]
  - name: db
    numbers: ["+27830000002"]
    oncall: [dbas]
  - name: db-critical
    numbers: ["+27830000004"]
    template: 'CRIT {{ .CommonLabels.alertname }} {{ len .Alerts }} {{ .CommonAnnotations.summary }}'
  - name: web
    numbers: ["+27830000005"]
  - name: quiet
    numbers: ["+27830000006"]
    send_resolved: false
  - name: empty
oncall:
  - name: dbas
    numbers: ["+27830000002", "+27830000003"]
`

// runCLI runs the command line with args and returns its exit code and
// what it wrote to stdout and stderr.
func runCLI(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	dir := t.TempDir()
	stdout, err := os.Create(filepath.Join(dir, "stdout"))
	if err != nil {
		t.Fatal(err)
	}
	stderr, err := os.Create(filepath.Join(dir, "stderr"))
	if err != nil {
		t.Fatal(err)
	}
	code := run(args, stdout, stderr)
	read := func(f *os.File) string {
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(f)
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		return string(b)
	}
	return code, read(stdout), read(stderr)
}

func TestRoutesTestCommand(t *testing.T) {
	dir := t.TempDir()
	cfg := writeFile(t, dir, "smsbridge.yml", routesCLIConfig)
	broken := writeFile(t, dir, "broken.yml", "route:\n  receiver: ops\nreceivers:\n  - name: ops\n    numbrs: []\n")
	resolved := writeFile(t, dir, "resolved.json", `{"version":"4","status":"resolved","receiver":"sms","groupKey":"{}:{team=\"quiet\"}",
"commonLabels":{"team":"quiet"},"alerts":[{"status":"resolved","labels":{"alertname":"Calm","team":"quiet"},"startsAt":"2026-11-26T03:00:00Z"}]}`)
	twoAlerts := writeFile(t, dir, "two.json", `{"version":"4","status":"firing","receiver":"sms","groupKey":"g",
"commonLabels":{"alertname":"Disk"},"alerts":[
 {"status":"firing","labels":{"alertname":"Disk","team":"db","severity":"critical"},"annotations":{"summary":"full"}},
 {"status":"firing","labels":{"alertname":"Disk","team":"web"}}]}`)
	oldVersion := writeFile(t, dir, "v3.json", `{"version":"3","status":"firing","alerts":[{"status":"firing","labels":{"a":"b"}}]}`)
	notJSON := writeFile(t, dir, "bad.json", `{"version":`)
	noAlerts := writeFile(t, dir, "empty.json", `{"version":"4","status":"firing","alerts":[]}`)
	badStatus := writeFile(t, dir, "status.json", `{"version":"4","status":"firing","alerts":[{"status":"pending","labels":{"a":"b"}}]}`)
	noLabels := writeFile(t, dir, "nolabels.json", `{"version":"4","status":"firing","alerts":[{"status":"firing","labels":{}}]}`)
	c := "--config.file=" + cfg

	tests := []struct {
		name       string
		args       []string
		code       int
		stdout     []string
		notStdout  []string
		stderr     string
		exactStart string
	}{
		{
			name: "root catches all", args: []string{"routes", "test", c, "alertname=Foo", "team=other"}, code: 0,
			exactStart: `alert {alertname="Foo", team="other"}` + "\nconfig " + cfg + " (",
			stdout: []string{"receiver: ops\n  route:    route  {}\n  alerts:   1\n  numbers:  +2783****001\n  segments: 1\n  text:\n    | FIRING:1 Foo\n",
				"would queue 1 message to 1 number\n"},
			notStdout: []string{"27830000001"},
		},
		{
			name: "continue and on-call union, same text merged", args: []string{"routes", "test", c, "alertname=Disk", "team=db", `severity="warning"`}, code: 0,
			stdout: []string{"receiver: db\n  route:    route.routes[0]  {}/{team=\"db\"}\n", "numbers:  +2783****002, +2783****003\n",
				"receiver: web\n  route:    route.routes[1]  {}/{team=~\"db|web\"}\n", "numbers:  +2783****005\n",
				"would queue 1 message to 3 numbers\n"},
		},
		{
			name: "nested route with its own template", args: []string{"routes", "test", c, "--annotation", "summary=disk full", "alertname=Disk", "team=db", "severity=critical"}, code: 0,
			stdout: []string{"receiver: db-critical\n  route:    route.routes[0].routes[0]  {}/{team=\"db\"}/{severity=\"critical\"}\n",
				"    | CRIT Disk 1 disk full\n", "would queue 2 messages to 2 numbers\n"},
			notStdout: []string{"receiver: db\n"},
		},
		{
			name: "show numbers", args: []string{"routes", "test", c, "--show-numbers", "team=web"}, code: 0,
			stdout: []string{"numbers:  +27830000005\n"},
		},
		{
			name: "receiver without numbers", args: []string{"routes", "test", c, "team=nobody"}, code: 0,
			stdout: []string{"receiver: empty\n  route:    route.routes[3]  {}/{team=\"nobody\"}\n  nothing sent: the receiver has no numbers\n",
				"would queue 0 messages to 0 numbers\n"},
		},
		{
			name: "resolved payload, send_resolved false", args: []string{"routes", "test", c, "--payload", resolved}, code: 0,
			exactStart: "payload " + resolved + ": resolved, 1 alert\n",
			stdout:     []string{"receiver: quiet\n", "nothing sent: its alerts are resolved and the receiver has send_resolved: false\n"},
		},
		{
			name: "payload routes each alert", args: []string{"routes", "test", c, "--payload=" + twoAlerts}, code: 0,
			stdout: []string{"receiver: db-critical\n", "    | CRIT Disk 1", "receiver: web\n  route:    route.routes[1]",
				"  alerts:   2\n", "would queue 2 messages to 2 numbers\n"},
		},
		{
			name: "dry-run flag is accepted", args: []string{"routes", "test", c, "--sms.dry-run", "team=web"}, code: 0,
			stdout: []string{"receiver: web\n"},
		},
		{name: "no labels", args: []string{"routes", "test", c}, code: 2, stderr: "smsbridge routes test: no labels: give the labels of an alert"},
		{name: "bad label", args: []string{"routes", "test", c, "team"}, code: 2, stderr: `label "team" is not of the form name=value`},
		{name: "bad label name", args: []string{"routes", "test", c, "my-team=db"}, code: 2, stderr: `label name "my-team" is not valid`},
		{name: "bad annotation", args: []string{"routes", "test", c, "--annotation=x", "team=db"}, code: 2, stderr: `annotation: label "x" is not of the form`},
		{name: "labels and payload", args: []string{"routes", "test", c, "--payload", resolved, "team=db"}, code: 2, stderr: "give labels or --payload, not both"},
		{name: "payload version", args: []string{"routes", "test", c, "--payload", oldVersion}, code: 2, stderr: `version "3" is not supported; smsbridge takes Alertmanager's webhook payload, version "4"`},
		{name: "payload without alerts", args: []string{"routes", "test", c, "--payload", noAlerts}, code: 2, stderr: `no alerts: "alerts" is missing or empty`},
		{name: "payload alert status", args: []string{"routes", "test", c, "--payload", badStatus}, code: 2, stderr: `alerts[0].status "pending" is neither "firing" nor "resolved"`},
		{name: "payload alert without labels", args: []string{"routes", "test", c, "--payload", noLabels}, code: 2, stderr: "alerts[0] has no labels"},
		{name: "payload with annotation", args: []string{"routes", "test", c, "--payload", resolved, "--annotation", "a=b"}, code: 2, stderr: "--annotation goes with labels"},
		{name: "payload not JSON", args: []string{"routes", "test", c, "--payload", notJSON}, code: 2, stderr: "body is not valid JSON"},
		{name: "payload missing", args: []string{"routes", "test", c, "--payload", filepath.Join(dir, "nope.json")}, code: 2, stderr: "read payload:"},
		{name: "unknown flag", args: []string{"routes", "test", c, "--shownumbers", "team=db"}, code: 2, stderr: "unknown long flag '--shownumbers'"},
		{name: "config missing", args: []string{"routes", "test", "--config.file=" + filepath.Join(dir, "missing.yml"), "team=db"}, code: 1, stderr: "missing.yml"},
		{name: "config error with line", args: []string{"routes", "test", "--config.file=" + broken, "team=db"}, code: 1, stderr: broken + ":5: "},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Errorf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			if !strings.HasPrefix(stdout, tc.exactStart) {
				t.Errorf("stdout starts %q, want %q", stdout[:min(len(stdout), len(tc.exactStart))], tc.exactStart)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			for _, w := range tc.notStdout {
				if strings.Contains(stdout, w) {
					t.Errorf("stdout has %q:\n%s", w, stdout)
				}
			}
			if tc.stderr != "" && !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tc.stderr)
			}
			if tc.code != 0 && stdout != "" {
				t.Errorf("a failed run wrote to stdout: %s", stdout)
			}
		})
	}
}
