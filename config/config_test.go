package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestGoodConfig(t *testing.T) {
	f, err := LoadFile("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	c := f.Config
	if c.SMS.URL != DefaultURL || time.Duration(c.SMS.Timeout) != DefaultTimeout || c.SMS.MaxSegments != 3 ||
		time.Duration(c.Delivery.MaxAge) != time.Hour || time.Duration(c.Storage.Retention) != 48*time.Hour ||
		c.Alertmanager.BodyLimit != 512<<10 || c.Webhooks[0].BodyLimit != DefaultBodyLimit {
		t.Errorf("defaults or values wrong: %+v", c)
	}
	rt, err := Compile(f, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if rt.SMS.APIKey != "inline-k3y-value" {
		t.Error("inline key not used")
	}
	ops, _ := rt.Router.Receiver("ops")
	if len(ops.Numbers) != 1 || ops.Numbers[0] != "+27831234567" {
		t.Errorf("numbers not normalised: %v", ops.Numbers)
	}
	if rt.Intake.Alertmanager.Verifier == nil || rt.Intake.Webhooks["ci"].Limiter == nil {
		t.Error("intake sources incomplete")
	}
	if s := rt.Summary(); !strings.Contains(s, "receivers: 2") || !strings.Contains(s, "routes: 2 (the root included)") || !strings.Contains(s, "ci") {
		t.Errorf("summary: %s", s)
	}
	if len(f.Hash) != 64 {
		t.Errorf("hash %q", f.Hash)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	f, err := LoadFile("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out) + fmt.Sprintf("%v %+v", f.Config, f.Config)
	for _, s := range []string{"inline-k3y-value", "am-t0ken-value", "hm4c-value"} {
		if strings.Contains(text, s) {
			t.Errorf("secret %q printed", s)
		}
	}
	if !strings.Contains(string(out), "<secret>") {
		t.Error("secrets not masked as <secret>")
	}
}

func TestKeyFile(t *testing.T) {
	dir := t.TempDir()
	cfg := "sms: {api_key_file: key.txt}\nroute: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"
	if err := os.WriteFile(filepath.Join(dir, "c.yml"), []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := LoadFile(filepath.Join(dir, "c.yml"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Compile(f, Options{})
	if err == nil || !strings.Contains(err.Error(), "key.txt") {
		t.Fatalf("missing key file: %v", err)
	}
	if _, err := Compile(f, Options{DryRun: true}); err != nil {
		t.Fatalf("dry run needs no key: %v", err)
	}
	if err := os.WriteFile(filepath.Join(dir, "key.txt"), []byte("file-k3y-value\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	rt, err := Compile(f, Options{})
	if err != nil || rt.SMS.APIKey != "file-k3y-value" {
		t.Fatalf("key from file: %v", err)
	}
}

// TestBadConfigs maps each broken config to the error it must produce,
// with its line where the file has one.
func TestBadConfigs(t *testing.T) {
	base := "route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"empty", "", "config is empty"},
		{"unknown key", "sms:\n  urll: x\n" + base, `2: field urll not found`},
		{"wrong type", "sms:\n  rate_limit: fast\n" + base, "line 2: cannot unmarshal"},
		{"bad duration", "delivery:\n  max_age: soon\n" + base, `not a valid duration`},
		{"no route", "receivers: [{name: a, numbers: ['+27830000001']}]\n", "route: missing"},
		{"bad url", "sms: {url: 'ftp://x'}\n" + base, "line 1: sms.url"},
		{"key twice", "sms: {api_key: a, api_key_file: b}\n" + base, "set api_key or api_key_file, not both"},
		{"segments", "sms: {max_segments: 50}\n" + base, "sms.max_segments 50 must be between 1 and 10"},
		{"batch", "sms: {batch_size: -1}\n" + base, "sms.batch_size -1"},
		{"rate", "sms: {rate_limit: -2}\n" + base, "sms.rate_limit -2"},
		{"backoff order", "delivery: {min_backoff: 1m, max_backoff: 1s}\n" + base, "min_backoff 1m is longer than max_backoff 1s"},
		{"workers", "delivery: {workers: 100}\n" + base, "delivery.workers 100"},
		{"body limit", "alertmanager: {body_limit: lots}\n" + base, `size "lots"`},
		{"webhook no name", "webhooks: [{preset: plain}]\n" + base, "webhooks[0]: name is empty"},
		{"webhook bad name", "webhooks: [{name: 'a/b', preset: plain}]\n" + base, `name "a/b" may hold only`},
		{"webhook twice", "webhooks: [{name: a, preset: plain}, {name: a, preset: plain}]\n" + base, `name "a" is used twice`},
		{"webhook reserved", "webhooks: [{name: unknown, preset: plain}]\n" + base, `"unknown" is reserved`},
		{"webhook rate", "webhooks: [{name: a, preset: plain, rate_limit: {per_second: 0}}]\n" + base, "per_second must be above 0"},
		{"am rate", "alertmanager: {rate_limit: {per_second: 1, burst: -1}}\n" + base, "burst must not be negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Load([]byte(tc.yaml))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error is %T, want *config.Error", err)
			}
		})
	}
}

// TestBadCompiles covers errors found when the parts are built.
func TestBadCompiles(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"unknown receiver", "route: {receiver: a, routes: [{receiver: zz}]}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n", `line 1: route.routes[0]: unknown receiver "zz"`},
		{"bad matcher", "route:\n  receiver: a\n  routes:\n    - receiver: a\n      matchers: ['team=~\"(\"']\nreceivers: [{name: a, numbers: ['+27830000001']}]\n", `bad matcher`},
		{"bad number", "route: {receiver: a}\nreceivers:\n  - name: a\n    numbers: ['083 123']\n", `line 4: receiver "a": bad number "083 123"`},
		{"template parse", "route: {receiver: a}\nreceivers:\n  - name: a\n    numbers: ['+27830000001']\n    template: '{{ .Alerts'\n", `line 5: receiver "a": template`},
		{"template unknown", "route: {receiver: a}\nreceivers:\n  - name: a\n    numbers: ['+27830000001']\n    template: '{{ template \"nope\" . }}'\n", `receiver "a": template`},
		{"receiver segments", "route: {receiver: a}\nreceivers:\n  - name: a\n    numbers: ['+27830000001']\n    max_segments: 11\n", `line 5: receiver "a": max_segments 11`},
		{"template files", "templates: {files: ['/nonexistent/dir/[']}\nroute: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n", `templates`},
		{"auth type", "alertmanager: {auth: {type: magic}}\nroute: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n", `line 1: alertmanager: auth: type "magic" unknown`},
		{"auth secret file", "webhooks: [{name: w, preset: plain, auth: {type: bearer, secret_file: /nonexistent/s}}]\nroute: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n", `/nonexistent/s`},
		{"preset", "webhooks: [{name: w, preset: jenkins}]\nroute: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n", `webhooks "w"`},
		{"mapping template", "webhooks: [{name: w, labels: {a: '{{ .x'}}]\nroute: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n", `labels.a`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := Load([]byte(tc.yaml))
			if err != nil {
				t.Fatalf("load: %v", err)
			}
			_, err = Compile(f, Options{DryRun: true})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error = %v, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestErrorFormat(t *testing.T) {
	e := &Error{File: "a.yml", Line: 3, Msg: "bad"}
	if e.Error() != "a.yml:3: bad" {
		t.Error(e.Error())
	}
	e.Line = 0
	if e.Error() != "a.yml: bad" {
		t.Error(e.Error())
	}
	if _, err := LoadFile("testdata/nonexistent.yml"); err == nil || !strings.Contains(err.Error(), "testdata/nonexistent.yml") {
		t.Errorf("missing file: %v", err)
	}
}

func TestByteSize(t *testing.T) {
	tests := []struct {
		in   string
		want ByteSize
		ok   bool
	}{
		{"1048576", 1 << 20, true}, {"1MiB", 1 << 20, true}, {"512KiB", 512 << 10, true},
		{"1MB", 1e6, true}, {"10B", 10, true}, {"0", 0, false}, {"-1", 0, false}, {"1TiB", 0, false}, {"x", 0, false},
	}
	for _, tc := range tests {
		got, err := parseByteSize(tc.in)
		if (err == nil) != tc.ok || got != tc.want {
			t.Errorf("parseByteSize(%q) = %d, %v", tc.in, got, err)
		}
	}
}
