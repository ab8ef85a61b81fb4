package main

import (
	"os"
	"regexp"
	"strings"
	"testing"
)

// TestHelp: `smsbridge --help` shows the daemon's flags, since running the
// daemon is what a bare `smsbridge` does, and a mistyped flag says how to
// get that help.
func TestHelp(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		code   int
		stdout []string
		stderr string
	}{
		{"help", []string{"--help"}, 0, []string{
			"--config.file=", "--storage.path=", "--[no-]sms.dry-run", "--web.listen-address=", "--web.config.file=",
			"--web.external-url=URL", "--web.route-prefix=PATH", "--log.level=", "--[no-]web.enable-pprof",
			"check-config", "routes test", "send-test", "serve*"}, ""},
		{"short help", []string{"-h"}, 0, []string{"--storage.path="}, ""},
		{"help of a command", []string{"send-test", "--help"}, 0, []string{"--receiver=RECEIVER", "--[no-]wait"}, ""},
		{"unknown flag", []string{"--foo"}, 2, nil, "smsbridge: error: unknown long flag '--foo', try --help\n"},
		{"unknown command", []string{"sned-test"}, 2, nil, "try --help"},
		{"bad route prefix is not a usage error of the parser", []string{"--web.external-url=ftp://x/", "--config.file=/nonexistent"}, 2, nil,
			`smsbridge: error: --web.external-url "ftp://x/" is not an absolute http or https URL`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, stdout, stderr := runCLI(t, tc.args...)
			if code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", code, tc.code, stdout, stderr)
			}
			for _, w := range tc.stdout {
				if !strings.Contains(stdout, w) {
					t.Errorf("stdout lacks %q:\n%s", w, stdout)
				}
			}
			if !strings.Contains(stderr, tc.stderr) {
				t.Errorf("stderr %q, want it to contain %q", stderr, tc.stderr)
			}
		})
	}
}

// TestReadmeFirstCommands: the README's first two commands are the ones
// that work on a fresh machine, and CI runs its test command as written.
func TestReadmeFirstCommands(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := os.ReadFile(".ci/run")
	if err != nil {
		t.Fatal(err)
	}
	var cmds []string
	for _, l := range strings.Split(string(readme), "\n") {
		if c, ok := strings.CutPrefix(l, "    "); ok && strings.HasPrefix(c, "go ") {
			cmds = append(cmds, strings.TrimSpace(c))
			if len(cmds) == 2 {
				break
			}
		}
	}
	if len(cmds) != 2 || cmds[0] != "go run . --config.file=config.example.yaml --sms.dry-run" || !strings.HasPrefix(cmds[1], "go test ") {
		t.Fatalf("the README's first commands are %q", cmds)
	}
	if !regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(cmds[1]) + `$`).Match(ci) {
		t.Errorf(".ci/run does not run the README's test command %q as written", cmds[1])
	}
	// The first command's flags exist and its configuration loads.
	if code, stdout, stderr := runCLI(t, "check-config", "--config.file=config.example.yaml", "--sms.dry-run"); code != 0 {
		t.Errorf("the README's configuration does not load: %s%s", stdout, stderr)
	}
}
