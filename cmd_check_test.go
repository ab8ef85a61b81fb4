package main

import (
	"path/filepath"
	"strings"
	"testing"
)

func TestCheckConfigCommand(t *testing.T) {
	dir := t.TempDir()
	good := writeFile(t, dir, "good.yml", "sms: {api_key: 'k3y-never-printed'}\nroute: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n")
	noKey := writeFile(t, dir, "nokey.yml", "sms: {api_key_file: missing-key}\nroute: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n")
	badLine := writeFile(t, dir, "bad.yml", "route: {receiver: a}\nreceivers:\n  - name: a\n    numbers: ['0831234567']\n")
	unknownKey := writeFile(t, dir, "unknown.yml", "route: {receiver: a}\nreceiverz: []\n")
	noTemplate := writeFile(t, dir, "notmpl.yml", "route: {receiver: a}\ntemplates:\n  files:\n    - sms/*.tmpl\n"+
		"receivers: [{name: a, numbers: ['+27830000001'], template: '{{ template \"sms.custom\" . }}'}]\n")
	two := writeFile(t, dir, "two.yml", "route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001', '+27830000002']}]\n")
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"good", []string{"check-config", "--config.file=" + good}, 0, []string{good + ": ok\n", "receivers: 1\n", "  a: 1 number,", "routes: 1", "sources: alertmanager"}, ""},
		{"plural", []string{"check-config", "--config.file=" + two, "--sms.dry-run"}, 0, []string{"  a: 2 numbers,"}, ""},
		{"template pattern that matches no file", []string{"check-config", "--config.file=" + noTemplate, "--sms.dry-run"}, 1, nil,
			noTemplate + `:4: templates: template files "` + filepath.Join(dir, "sms/*.tmpl") + `" match no file`},
		{"the example config in a dry run", []string{"check-config", "--config.file=config.example.yaml", "--sms.dry-run"}, 0, []string{"config.example.yaml: ok", "sources: alertmanager, github, gitlab, scripts"}, ""},
		{"missing key file", []string{"check-config", "--config.file=" + noKey}, 1, nil, filepath.Join(dir, "missing-key")},
		{"missing key file is fine in a dry run", []string{"check-config", "--config.file=" + noKey, "--sms.dry-run"}, 0, []string{"ok"}, ""},
		{"bad number with its line", []string{"check-config", "--config.file=" + badLine, "--sms.dry-run"}, 1, nil, badLine + `:4: receiver "a": bad number "0831234567"`},
		{"unknown key with its line", []string{"check-config", "--config.file=" + unknownKey}, 1, nil, unknownKey + ":2: field receiverz not found"},
		{"missing file", []string{"check-config", "--config.file=" + filepath.Join(dir, "nope.yml")}, 1, nil, "nope.yml: cannot read config"},
		{"usage error", []string{"check-config", "--no-such-flag"}, 2, nil, "smsbridge: error: unknown long flag '--no-such-flag', try --help\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, want := range tc.stdout {
				if !strings.Contains(stdout, want) {
					t.Errorf("stdout lacks %q:\n%s", want, stdout)
				}
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr lacks %q:\n%s", tc.stderr, stderr)
			}
			if strings.Contains(stdout+stderr, "k3y-never-printed") {
				t.Error("the API key was printed")
			}
		})
	}
}
