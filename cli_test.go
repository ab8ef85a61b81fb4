package main

import (
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
