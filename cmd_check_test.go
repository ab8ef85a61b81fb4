package main

import (
	"log/slog"
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
		{"unknown key with its line", []string{"check-config", "--config.file=" + unknownKey}, 1, nil, unknownKey + `:2: unknown key "receiverz" here`},
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

// TestCheckConfigIsTheDaemonsValidation: check-config refuses exactly what
// the daemon refuses, with the same message and the line of the key, the
// SMS client's own checks included. Before, check-config passed an API key
// with a space, a URL with credentials and a bad URL escape that the daemon
// then refused.
func TestCheckConfigIsTheDaemonsValidation(t *testing.T) {
	t.Parallel()
	const route = "route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"
	tests := []struct {
		name string
		yaml string
		// want is the message after "<file>:"
		want string
	}{
		{"api key with a space", "sms:\n  url: https://api.example.com/sms\n  api_key: 'tb live'\n" + route,
			"3: sms: sms api key contains whitespace or control characters"},
		{"api key file with a space", "sms:\n  api_key_file: KEYFILE\n" + route,
			"2: sms: sms api key contains whitespace or control characters"},
		{"fallback key with a space", "sms:\n  api_key: k1\n  fallback:\n    url: https://b.example.com/sms\n    api_key: 'k 2'\n" + route,
			"5: sms.fallback: sms api key contains whitespace or control characters"},
		{"url with credentials", "sms:\n  api_key: k\n  url: https://user:pa55@api.example.com/sms\n" + route,
			"3: sms.url must not contain credentials; the API key is sent as a bearer token"},
		{"bad url escape", "sms:\n  api_key: k\n  url: https://api.example.com/%zz\n" + route,
			"3: sms.url is not a valid URL"},
		{"the key in the url", "sms:\n  api_key: k3y-in-the-url\n  url: https://api.example.com/sms?key=k3y-in-the-url\n" + route,
			"3: sms: sms url: must not contain the api key, it is sent as a bearer token"},
		{"max age of a nanosecond", "sms: {api_key: k}\ndelivery:\n  max_age: 1ns\n" + route,
			`3: "1ns" is finer than a millisecond, the smallest unit; write one such as 500ms, 30s, 5m, 6h or 7d`},
		{"negative timeout", "sms:\n  api_key: k\n  timeout: -1s\n" + route,
			`3: "-1s" is negative; a duration must be positive, such as 500ms, 30s, 5m, 6h or 7d`},
		{"min free too small", "sms: {api_key: k}\nstorage:\n  min_free: 1KiB\n" + route,
			"3: storage.min_free 1024 bytes must be at least 1MiB"},
		{"bad delivery id header", "sms: {api_key: k}\nwebhooks:\n  - name: ci\n    preset: plain\n    delivery_id_header: 'X:Id'\n" + route,
			`5: webhooks "ci": delivery_id_header "X:Id" is not a valid header name`},
		// PostgreSQL DSNs the driver cannot parse, and the DSN is shown
		// nowhere.
		{"dsn with a bad connect timeout", "sms: {api_key: k}\nstorage:\n  driver: postgres\n  dsn: 'postgres://u:pa55@db.example/sms?connect_timeout=bad'\n" + route,
			"4: storage: the storage DSN is not a valid PostgreSQL connection string (its value is not shown)"},
		{"dsn with a bad port", "sms: {api_key: k}\nstorage:\n  driver: postgres\n  dsn: 'host=db.example password=pa55 port=notaport'\n" + route,
			"4: storage: the storage DSN is not a valid PostgreSQL connection string (its value is not shown)"},
		{"dsn file with a bad pool size", "sms: {api_key: k}\nstorage:\n  driver: postgres\n  dsn_file: DSNFILE\n" + route,
			"4: storage: the storage DSN is not a valid PostgreSQL connection string (its value is not shown)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dir := t.TempDir()
			keyFile := writeFile(t, dir, "key", "tb live\n")
			dsnFile := writeFile(t, dir, "dsn", "postgres://u:pa55@db.example/sms?pool_max_conns=lots\n")
			path := writeFile(t, dir, "smsbridge.yml", strings.NewReplacer("KEYFILE", keyFile, "DSNFILE", dsnFile).Replace(tc.yaml))
			want := path + ":" + tc.want
			code, stdout, stderr := runCLI(t, "check-config", "--config.file="+path)
			if code != 1 || strings.TrimSpace(stderr) != want {
				t.Errorf("check-config: exit %d\nstderr: %s\nwant:   %s\nstdout: %s", code, stderr, want, stdout)
			}
			_, err := newBridge(&flags{configFile: path, storagePath: filepath.Join(dir, "data")}, slog.New(slog.DiscardHandler))
			if err == nil || err.Error() != want {
				t.Errorf("the daemon: %v\nwant:       %s", err, want)
			}
			for _, secret := range []string{"pa55", "k3y-in-the-url", "tb live", "db.example"} {
				if strings.Contains(stderr, secret) || (err != nil && strings.Contains(err.Error(), secret)) {
					t.Errorf("a secret (%q) is in the error", secret)
				}
			}
		})
	}
}
