package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestGoodConfig(t *testing.T) {
	t.Parallel()
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
	if d := c.Delivery; d.Workers != DefaultWorkers || time.Duration(d.HoldRetry) != DefaultHoldRetry ||
		time.Duration(d.MinBackoff) != DefaultMinBackoff || time.Duration(d.MaxBackoff) != DefaultMaxBackoff {
		t.Errorf("delivery defaults: %+v", d)
	}
	if s := c.SMS; time.Duration(s.DefaultPause) != DefaultPause || time.Duration(s.FallbackAfter) != DefaultFallbackAfter || s.BatchSize != DefaultBatchSize {
		t.Errorf("sms defaults: %+v", s)
	}
	// The fallback takes the primary's rate limit and timeout.
	if fb := c.SMS.Fallback; fb == nil || fb.URL != "https://backup.example.com/sms/messages" || fb.RateLimit != 5 ||
		time.Duration(fb.Timeout) != DefaultTimeout || fb.APIKey != "fallb4ck-k3y-value" {
		t.Errorf("fallback: %+v", c.SMS.Fallback)
	}
	if st := c.Storage; st.Driver != StoragePostgres || time.Duration(st.PollInterval) != DefaultPollInterval || st.Listen == nil || !*st.Listen {
		t.Errorf("storage defaults: %+v", st)
	}
	if rl := c.Webhooks[0].RateLimit; rl == nil || rl.PerSecond != 2 || rl.Burst != 2 {
		t.Errorf("webhook rate limit: %+v", rl)
	}
	if len(f.Hash) != 64 || f.Path != "testdata/good.yml" || f.Dir != "testdata" {
		t.Errorf("hash %q path %q dir %q", f.Hash, f.Path, f.Dir)
	}
}

func TestSecretsNeverPrinted(t *testing.T) {
	t.Parallel()
	f, err := LoadFile("testdata/good.yml")
	if err != nil {
		t.Fatal(err)
	}
	out, err := yaml.Marshal(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	text := string(out) + fmt.Sprintf("%v %+v %#v", f.Config, f.Config, f.Config.SMS.Fallback)
	for _, s := range []string{"inline-k3y-value", "fallb4ck-k3y-value", "am-t0ken-value", "hm4c-value", "dsn-pa55word"} {
		if strings.Contains(text, s) {
			t.Errorf("secret %q printed", s)
		}
	}
	if !strings.Contains(string(out), "<secret>") {
		t.Error("secrets not masked as <secret>")
	}
	// The printed config loads again to the same durations.
	if !strings.Contains(string(out), "max_age: 1h") || !strings.Contains(string(out), "retention: 2d") {
		t.Errorf("durations not printed as configured:\n%s", out)
	}
}

func TestWorkers(t *testing.T) {
	t.Parallel()
	base := "route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"
	for _, tc := range []struct {
		yaml string
		want int
	}{
		{base, DefaultWorkers},
		{"delivery: {min_backoff: 2s}\n" + base, DefaultWorkers},
		{"delivery: {workers: 0}\n" + base, 0}, // written out: the dispatcher chooses
		{"delivery: {workers: 4}\n" + base, 4},
	} {
		f, err := Load([]byte(tc.yaml))
		if err != nil {
			t.Fatal(err)
		}
		if got := f.Config.Delivery.Workers; got != tc.want {
			t.Errorf("%q: workers %d, want %d", tc.yaml, got, tc.want)
		}
	}
}

// TestBadConfigs maps each broken config to the exact error it must
// produce, with its line.
func TestBadConfigs(t *testing.T) {
	t.Parallel()
	base := "route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"empty", "", "config is empty"},
		{"not yaml", "sms: [\n", "line 1: did not find expected node content"},
		{"unknown key", "sms:\n  urll: x\n" + base, `line 2: unknown key "urll" here (check its spelling and its indentation)`},
		{"wrong type", "sms:\n  rate_limit: fast\n" + base, `line 2: wrong kind of value: a string "fast" where a number is expected`},
		{"bad duration", "delivery:\n  max_age: soon\n" + base, `line 2: "soon" is not a valid duration; write one such as 500ms, 30s, 5m, 6h or 7d`},
		{"negative timeout", "sms:\n  timeout: -1s\n" + base, `line 2: "-1s" is negative; a duration must be positive, such as 500ms, 30s, 5m, 6h or 7d`},
		{"nanoseconds", "delivery:\n  max_age: 1ns\n" + base, `line 2: "1ns" is finer than a millisecond, the smallest unit; write one such as 500ms, 30s, 5m, 6h or 7d`},
		{"microseconds", "delivery:\n  max_age: 10us\n" + base, `line 2: "10us" is finer than a millisecond, the smallest unit; write one such as 500ms, 30s, 5m, 6h or 7d`},
		{"min free too small", "storage:\n  min_free: 64KiB\n" + base, "line 2: storage.min_free 65536 bytes must be at least 1MiB"},
		{"delivery id header", "webhooks:\n  - name: a\n    preset: plain\n    delivery_id_header: 'X Id'\n" + base, `line 4: webhooks "a": delivery_id_header "X Id" is not a valid header name`},
		{"delivery id ttl", "webhooks:\n  - name: a\n    preset: plain\n    delivery_id_ttl: 60d\n" + base, `line 4: webhooks "a": delivery_id_ttl 60d must be at most 30d`},
		{"am delivery id ttl", "alertmanager:\n  delivery_id_ttl: 1s\n" + base, "line 2: alertmanager: delivery_id_ttl 1s must be at least 1m"},
		{"duration list", "delivery:\n  max_age: [1h]\n" + base, "line 2: a duration such as 30s, 5m or 6h is a single value"},
		{"no route", "receivers: [{name: a, numbers: ['+27830000001']}]\n", "line 1: route: missing; the root route names the receiver that catches every notification"},
		{"bad url", "sms: {url: 'ftp://x'}\n" + base, `line 1: sms.url "ftp://x" must be an http:// or https:// URL`},
		{"url without host", "sms:\n  url: 'https:///sms'\n" + base, `line 2: sms.url "https:///sms" has no host`},
		{"url with credentials", "sms:\n  url: 'https://user:pa55@api.example.com/'\n" + base, "line 2: sms.url must not contain credentials; the API key is sent as a bearer token"},
		{"key twice", "sms: {api_key: a, api_key_file: b}\n" + base, "line 1: sms: set api_key or api_key_file, not both"},
		{"timeout too long", "sms:\n  rate_limit: 2\n  timeout: 6m\n" + base, "line 3: sms.timeout 6m must be at most 5m"},
		{"segments", "sms: {max_segments: 50}\n" + base, "line 1: sms.max_segments 50 must be between 1 and 10"},
		{"batch", "sms: {batch_size: -1}\n" + base, "line 1: sms.batch_size -1 must be between 1 and 1000"},
		{"rate", "sms: {rate_limit: -2}\n" + base, "line 1: sms.rate_limit -2 must be between 0 and 1000 requests per second"},
		{"pause too long", "sms:\n  default_pause: 2h\n" + base, "line 2: sms.default_pause 2h must be at most 1h"},
		{"fallback after too short", "sms:\n  fallback_after: 500ms\n" + base, "line 2: sms.fallback_after 500ms must be at least 1s"},
		{"fallback without key", "sms:\n  fallback:\n    url: https://b.example.com/\n" + base, "line 2: sms.fallback: no API key; set api_key_file (or api_key) for the second account"},
		{"fallback key twice", "sms:\n  fallback:\n    api_key: x\n    api_key_file: y\n" + base, "line 3: sms.fallback: set api_key or api_key_file, not both"},
		{"fallback bad url", "sms:\n  fallback:\n    api_key_file: k2\n    url: 'mailto:x'\n" + base, `line 4: sms.fallback.url "mailto:x" must be an http:// or https:// URL`},
		{"fallback timeout", "sms:\n  fallback:\n    api_key_file: k2\n    timeout: 10m\n" + base, "line 4: sms.fallback.timeout 10m must be at most 5m"},
		{"fallback rate", "sms:\n  fallback:\n    api_key_file: k2\n    rate_limit: 5000\n" + base, "line 4: sms.fallback.rate_limit 5000 must be between 0 and 1000 requests per second"},
		{"fallback is the primary", "sms:\n  api_key_file: keys/k\n  fallback:\n    api_key_file: ./keys/../keys/k\n" + base,
			"line 3: sms.fallback: the same URL and key as the primary account; a fallback must be another account"},
		{"fallback is the primary inline", "sms:\n  api_key: k3y\n  fallback: {api_key: k3y, url: 'https://api.touchbasepro.com/sms/messages'}\n" + base,
			"line 3: sms.fallback: the same URL and key as the primary account; a fallback must be another account"},
		{"backoff order", "delivery: {min_backoff: 1m, max_backoff: 1s}\n" + base, "line 1: delivery.min_backoff 1m is longer than max_backoff 1s"},
		{"max age too short", "delivery:\n  hold_retry: 10s\n  max_age: 30s\n" + base, "line 3: delivery.max_age 30s must be at least 1m"},
		{"hold retry too long", "delivery:\n  hold_retry: 2h\n" + base, "line 2: delivery.hold_retry 2h must be at most 1h"},
		{"workers", "delivery: {workers: 100}\n" + base, "line 1: delivery.workers 100 must be between 1 and 64, or 0 to let the dispatcher choose"},
		{"negative workers", "delivery:\n  workers: -1\n" + base, "line 2: delivery.workers -1 must be between 1 and 64, or 0 to let the dispatcher choose"},
		{"body limit", "alertmanager: {body_limit: lots}\n" + base, `line 1: size "lots" is not a positive size such as 1048576, 512KiB or 1MiB`},
		{"receiver segments", "route: {receiver: a}\nreceivers:\n  - name: a\n    numbers: ['+27830000001']\n    max_segments: 11\n", `line 5: receiver "a": max_segments 11 must be between 1 and 10`},
		{"webhook no name", "webhooks:\n  - preset: plain\n" + base, "line 2: webhooks[0]: name is empty"},
		{"webhook bad name", "webhooks:\n  - preset: plain\n    name: 'a/b'\n" + base, `line 3: webhooks[0]: name "a/b" may hold only letters, digits, '-' and '_' (it is part of the URL)`},
		{"webhook twice", "webhooks:\n  - {name: a, preset: plain}\n  - {name: a, preset: plain}\n" + base, `line 3: webhooks: name "a" is used twice`},
		{"webhook reserved", "webhooks: [{name: unknown, preset: plain}]\n" + base, `line 1: webhooks: name "unknown" is reserved`},
		{"webhook rate", "webhooks:\n  - name: a\n    preset: plain\n    rate_limit: {per_second: 0}\n" + base, `line 4: webhooks "a": rate_limit.per_second must be above 0`},
		{"am rate", "alertmanager:\n  rate_limit: {per_second: 1, burst: -1}\n" + base, "line 2: alertmanager: rate_limit.burst must not be negative"},
		{"storage driver", "storage:\n  driver: mysql\n" + base, `line 2: storage.driver "mysql" is not "sqlite" or "postgres"`},
		{"postgres without dsn", "storage:\n  driver: postgres\n" + base, "line 1: storage: the postgres driver needs dsn_file (or dsn), the database's connection string"},
		{"dsn twice", "storage:\n  driver: postgres\n  dsn: 'postgres://u:pa55@db/x'\n  dsn_file: f\n" + base, "line 3: storage: set dsn or dsn_file, not both"},
		{"dsn with sqlite", "storage:\n  dsn: 'postgres://u:pa55@db/x'\n" + base, "line 1: storage: dsn and dsn_file are for the postgres driver; the sqlite driver keeps its file under --storage.path"},
		{"poll interval", "storage:\n  driver: postgres\n  dsn_file: f\n  poll_interval: 10ms\n" + base, "line 4: storage.poll_interval 10ms must be at least 100ms"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, err := Load([]byte(tc.yaml))
			if err == nil || err.Error() != tc.want {
				t.Fatalf("error =\n %v\nwant\n %s", err, tc.want)
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Errorf("error is %T, want *config.Error", err)
			}
			if strings.Contains(err.Error(), "pa55") {
				t.Error("error shows a URL's or DSN's password")
			}
		})
	}
}

// TestLoadFileNamesTheFile: every error from a file, decoding and
// validation alike, starts with file:line.
func TestLoadFileNamesTheFile(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, tc := range []struct {
		yaml, want string
	}{
		{"sms:\n  urll: x\n", `:2: unknown key "urll" here (check its spelling and its indentation)`},
		{"sms:\n  timeout: 1ns\n", `:2: "1ns" is finer than a millisecond`},
		{"delivery:\n  max_age: 1ms\nroute: {receiver: a}\n", ":2: delivery.max_age 1ms must be at least 1m"},
		{"", ": config is empty"},
	} {
		path := dir + "/c.yml"
		if err := os.WriteFile(path, []byte(tc.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		_, err := LoadFile(path)
		if err == nil || !strings.HasPrefix(err.Error(), path+tc.want) {
			t.Errorf("%q: error %v, want %s%s...", tc.yaml, err, path, tc.want)
		}
	}
}

func TestLine(t *testing.T) {
	t.Parallel()
	const doc = `sms:
  api_key_file: k
receivers:
  - name: a
    numbers:
      - "+27830000001"
      - "+27830000002"
  - &b
    name: b
    oncall: [x, y]
route:
  receiver: a
  routes:
    - receiver: b
      matchers:
        - 'team="db"'
alias: *b
`
	f := &File{}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	f.root = &root
	tests := []struct {
		path string
		line int
	}{
		{"", 1},
		{"sms", 1},
		{"sms.api_key_file", 2},
		{"sms.api_key", 1}, // missing: the parent's line
		{"receivers", 3},
		{"receivers[0]", 4},
		{"receivers[0].numbers[1]", 7},
		{"receivers[0].numbers[5]", 5}, // out of range: the list's key
		{"receivers[1]", 8},            // the anchored mapping starts at its anchor
		{"receivers[1].oncall[1]", 10},
		{"receivers[1].oncall", 10},
		{"route.routes[0].matchers[0]", 16},
		{"route.routes[0].receiver", 14},
		{"route.routes[0].continue", 14},
		{"alias.oncall", 10}, // through the alias
		{"receivers[x].name", 3},
		{"nope.deeper", 1},
	}
	for _, tc := range tests {
		if got := f.Line(tc.path); got != tc.line {
			t.Errorf("Line(%q) = %d, want %d", tc.path, got, tc.line)
		}
	}
	if got := (&File{}).Line("sms"); got != 0 {
		t.Errorf("Line without a document = %d", got)
	}
	e := (&File{Path: "c.yml", root: &root}).Errorf("receivers[1].oncall[0]", "receiver %q: %w", "b", os.ErrNotExist)
	if e.Error() != `c.yml:10: receiver "b": file does not exist` || !errors.Is(e, os.ErrNotExist) {
		t.Errorf("Errorf = %v (cause %v)", e, e.Err)
	}
}

func TestSplitPath(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{
		"":                            "[]",
		"sms":                         "[sms]",
		"receivers[2].oncall[0]":      "[receivers 2 oncall 0]",
		"route.routes[1].routes[0]":   "[route routes 1 routes 0]",
		"webhooks[0].labels.team":     "[webhooks 0 labels team]",
		"a[1][2]":                     "[a 1 2]",
		"a[x].b":                      "[a]",
		"a[1":                         "[a]",
		"route.routes[1].matchers[0]": "[route routes 1 matchers 0]",
	} {
		if got := fmt.Sprint(splitPath(path)); got != want {
			t.Errorf("splitPath(%q) = %s, want %s", path, got, want)
		}
	}
}

func TestResolve(t *testing.T) {
	t.Parallel()
	f := &File{Dir: "/etc/smsbridge"}
	for in, want := range map[string]string{"": "", "k": "/etc/smsbridge/k", "/abs/k": "/abs/k", "../k": "/etc/k"} {
		if got := f.Resolve(in); got != want {
			t.Errorf("Resolve(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestErrorFormat(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		e    Error
		want string
	}{
		{Error{File: "a.yml", Line: 3, Msg: "bad"}, "a.yml:3: bad"},
		{Error{File: "a.yml", Msg: "bad"}, "a.yml: bad"},
		{Error{Line: 3, Msg: "bad"}, "line 3: bad"},
		{Error{Msg: "bad"}, "bad"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("%+v: %q, want %q", tc.e, got, tc.want)
		}
	}
	_, err := LoadFile("testdata/nonexistent.yml")
	if err == nil || !strings.HasPrefix(err.Error(), "testdata/nonexistent.yml: cannot read config") || !errors.Is(err, os.ErrNotExist) {
		t.Errorf("missing file: %v", err)
	}
}

func TestByteSize(t *testing.T) {
	t.Parallel()
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

func TestDuration(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]time.Duration{"500ms": 500 * time.Millisecond, "30s": 30 * time.Second, "1h30m": 90 * time.Minute, "7d": 7 * 24 * time.Hour, "0s": 0} {
		var d Duration
		if err := yaml.Unmarshal([]byte(in), &d); err != nil || time.Duration(d) != want {
			t.Errorf("%q = %v, %v; want %v", in, time.Duration(d), err, want)
		}
		out, err := yaml.Marshal(d)
		var again Duration
		if err != nil || yaml.Unmarshal(out, &again) != nil || again != d {
			t.Errorf("%q does not survive a round trip: %q", in, out)
		}
	}
}
