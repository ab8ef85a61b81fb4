package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	smsfake "github.com/smsbridge/smsbridge/sms/fake"
)

// whoGolden are the golden tests of `smsbridge oncall who`: each file in
// testdata/oncall holds the output of its invocations, each after a line
// "$ smsbridge oncall who ARGS". Rewrite them with -update.
var whoGolden = []struct {
	file string
	args [][]string
}{
	{"dst-berlin.golden", [][]string{
		// Spring: the night of 2026-03-29 loses 02:00-03:00.
		{"--at", "2026-03-28T19:59:00+01:00", "berlin-12h"},
		{"--at", "2026-03-28T20:00:00+01:00", "berlin-12h"},
		{"--at", "2026-03-29T01:59:00+01:00", "berlin-daily-0230", "berlin-12h"},
		// 02:30 does not exist that day: the daily handoff is at 03:00.
		{"--at", "2026-03-29T03:00:00+02:00", "berlin-daily-0230", "berlin-12h"},
		{"--at", "2026-03-29T02:30", "berlin-daily-0230"}, // read by the same rule
		{"--at", "2026-03-30T08:59:00+02:00", "berlin-weekly"},
		{"--at", "2026-03-30T09:00:00+02:00", "berlin-weekly"},
		// Autumn: 02:00-03:00 on 2026-10-25 happens twice; the daily
		// handoff at 02:30 is at its first occurrence.
		{"--at", "2026-10-25T02:29:00+02:00", "berlin-daily-0230"},
		{"--at", "2026-10-25T02:30:00+02:00", "berlin-daily-0230", "berlin-12h"},
		{"--at", "2026-10-25T02:30:00+01:00", "berlin-daily-0230"},
		{"--at", "2026-10-25T07:59:00+01:00", "berlin-12h"},
		{"--at", "2026-10-26T08:59:00+01:00", "berlin-weekly"},
		{"--at", "2026-10-26T09:00:00+01:00", "berlin-weekly", "--show-numbers"},
	}},
	{"dst-newyork.golden", [][]string{
		{"--at", "2026-03-08T01:59:00-05:00", "ny-weekly", "ny-12h", "ny-daily-0130"},
		// 02:30 does not exist on 2026-03-08: the weekly handoff is at 03:00.
		{"--at", "2026-03-08T03:00:00-04:00", "ny-weekly", "ny-12h"},
		{"--at", "2026-03-08T13:30:00-04:00", "ny-12h"},
		// 01:30 happens twice on 2026-11-01: the handoffs are at the first.
		{"--at", "2026-11-01T01:29:00-04:00", "ny-12h", "ny-daily-0130"},
		{"--at", "2026-11-01T01:30:00-04:00", "ny-12h", "ny-daily-0130"},
		{"--at", "2026-11-01T01:30:00-05:00", "ny-12h", "ny-daily-0130"},
		{"--at", "2026-11-01T13:29:00-05:00", "ny-12h"},
		{"--at", "2026-11-01T13:30:00-05:00", "ny-12h"},
		{"--at", "2026-11-01T02:29:00-05:00", "ny-weekly"},
		{"--at", "2026-11-08T02:30", "ny-weekly"}, // local, in the list's zone
	}},
	{"layers-overrides.golden", [][]string{
		// Wednesday: business hours in Berlin, then the rotation, then New
		// York's evening.
		{"--at", "2026-03-25T08:59:00+01:00", "layered"},
		{"--at", "2026-03-25T09:00:00+01:00", "layered"},
		{"--at", "2026-03-25T17:00:00+01:00", "layered"},
		{"--at", "2026-03-25T23:00:00+01:00", "layered"},
		// Between the US change (03-08) and the European one (03-29) New
		// York is five hours behind Berlin, not six.
		{"--at", "2026-03-26T03:00:00+01:00", "layered"},
		// Overlapping overrides: the latest start wins.
		{"--at", "2026-12-23T20:00:00+01:00", "holidays"},
		{"--at", "2026-12-24T00:00:00+01:00", "holidays"},
		{"--at", "2026-12-25T12:00:00+01:00", "holidays"},
		{"--at", "2026-12-26T08:00:00+01:00", "holidays"},
		{"--at", "2026-12-26T10:00:00+01:00", "holidays"},
		{"--at", "2026-12-26T12:00:00+01:00", "holidays"},
		{"--at", "2026-12-27T00:00:00+01:00", "holidays"},
		{"--at", "2026-12-28T10:00:00+01:00", "holidays", "fixed"},
		// All lists at once, in configuration order.
		{"--at", "2026-07-01T12:00:00Z"},
	}},
}

func TestOncallWhoGolden(t *testing.T) {
	cfg := "--config.file=" + filepath.Join("testdata", "oncall", "lists.yml")
	for _, g := range whoGolden {
		t.Run(g.file, func(t *testing.T) {
			var out strings.Builder
			for _, args := range g.args {
				code, stdout, stderr := runCLI(t, append([]string{"oncall", "who", cfg}, args...)...)
				if code != 0 || stderr != "" {
					t.Fatalf("oncall who %q: exit %d, stderr %s", args, code, stderr)
				}
				out.WriteString("$ smsbridge oncall who " + strings.Join(args, " ") + "\n" + stdout + "\n")
			}
			path := filepath.Join("testdata", "oncall", g.file)
			if *update {
				if err := os.WriteFile(path, []byte(out.String()), 0o600); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if out.String() != string(want) {
				t.Errorf("oncall who output differs from %s (run with -update to accept):\n%s", path, out.String())
			}
		})
	}
}

func TestOncallWhoErrors(t *testing.T) {
	cfg := "--config.file=" + filepath.Join("testdata", "oncall", "lists.yml")
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"nope"}, 2, `no on-call list named "nope" in testdata/oncall/lists.yml; the lists are berlin-weekly, berlin-12h,`},
		{[]string{"--at", "soon"}, 2, `--at "soon" is neither a local time`},
		{[]string{"--url", "ftp://x"}, 1, `--url "ftp://x" is not an http or https URL`},
		{[]string{"--url", "http://127.0.0.1:1"}, 1, "no answer from the bridge at http://127.0.0.1:1 (is it running?)"},
	} {
		code, _, stderr := runCLI(t, append([]string{"oncall", "who", cfg}, tc.args...)...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("oncall who %q: exit %d, stderr %q; want %d with %q", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
	code, _, stderr := runCLI(t, "oncall", "who", "--config.file=/nonexistent.yml")
	if code != 1 || !strings.Contains(stderr, "/nonexistent.yml: cannot read config") {
		t.Errorf("missing config: %d %s", code, stderr)
	}
}

// oncallBridgeConfig is a bridge with a weekly rotation, for the CLI
// against a running bridge.
const oncallBridgeConfig = `
sms:
  url: SMS_URL
  api_key_file: KEY_FILE
  timeout: 2s
people:
  - {name: alice, number: "+27830000001"}
  - {name: bob, number: "+27830000002"}
  - {name: erin, number: "+27830000005"}
route:
  receiver: ops
receivers:
  - name: ops
    oncall: [db-primary]
oncall:
  - name: db-primary
    time_zone: Europe/Berlin
    rotation: {members: [alice, bob], shift: 1w, start: "2026-01-05T09:00"}
`

// TestOncallCLIWithBridge: `oncall who --url` applies the running
// bridge's overrides, and `oncall override` adds, lists and deletes them.
func TestOncallCLIWithBridge(t *testing.T) {
	tb := newTestBridge(t, oncallBridgeConfig, smsfake.Options{})
	tb.flags.adminAPI = true
	tb.srv.Config.Handler = tb.handler() // with the admin API
	u := "--url=" + tb.srv.URL
	cfg := "--config.file=" + tb.cfg
	end := time.Now().Add(2 * time.Hour).UTC().Format(time.RFC3339)

	code, stdout, stderr := runCLI(t, "oncall", "override", "add", "db-primary", "--member=erin", "--end="+end, u)
	if code != 0 || !strings.HasPrefix(stdout, "override 1 on db-primary: erin (+2783****005) from ") {
		t.Fatalf("override add: %d %q %q", code, stdout, stderr)
	}
	code, stdout, _ = runCLI(t, "oncall", "who", cfg, u)
	if code != 0 || !strings.HasPrefix(stdout, "db-primary: erin (+2783****005) until ") || !strings.HasSuffix(stdout, " [override 1]\n") {
		t.Errorf("who with the bridge's override: %d %q", code, stdout)
	}
	code, stdout, _ = runCLI(t, "oncall", "who", cfg)
	if code != 0 || strings.Contains(stdout, "erin") {
		t.Errorf("who without --url knows only the file: %q", stdout)
	}
	code, stdout, _ = runCLI(t, "oncall", "override", "list", u)
	if code != 0 || !strings.Contains(stdout, "db-primary\t1\t") || !strings.Contains(stdout, "erin (+2783****005)") {
		t.Errorf("override list: %d %q", code, stdout)
	}
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
	}{
		{[]string{"add", "db-primary", "--member=eve", "--end=" + end}, 1, `the bridge answered 400: bad override: unknown person "eve"; people are alice, bob, erin`},
		{[]string{"add", "nope", "--member=erin", "--end=" + end}, 1, `the bridge answered 404: no on-call list named "nope" is configured`},
		{[]string{"delete", "db-primary", "7"}, 1, "the bridge answered 404: on-call list \"db-primary\" has no override 7 added at run time"},
		{[]string{"list", "nope"}, 1, `the bridge has no on-call list named "nope"`},
		{[]string{"list", "--url=http://user:pw@127.0.0.1:1"}, 2, "put no credentials in --url"},
	} {
		args := append([]string{"oncall", "override"}, tc.args...)
		if !strings.HasPrefix(tc.args[len(tc.args)-1], "--url") {
			args = append(args, u)
		}
		code, _, stderr := runCLI(t, args...)
		if code != tc.code || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("%q: exit %d, stderr %q; want %d with %q", tc.args, code, stderr, tc.code, tc.stderr)
		}
	}
	code, stdout, stderr = runCLI(t, "oncall", "override", "delete", "db-primary", "1", u)
	if code != 0 || stdout != "override 1 on db-primary deleted\n" {
		t.Errorf("override delete: %d %q %q", code, stdout, stderr)
	}
	if got := tb.roster.Stored("db-primary"); len(got) != 0 {
		t.Errorf("still stored: %+v", got)
	}
	code, stdout, _ = runCLI(t, "oncall", "override", "list", "db-primary", u)
	if code != 0 || stdout != "no overrides\n" {
		t.Errorf("override list after delete: %d %q", code, stdout)
	}

	// Without --web.enable-admin-api the bridge refuses, naming the flag.
	tb.flags.adminAPI = false
	tb.srv.Config.Handler = tb.handler()
	code, _, stderr = runCLI(t, "oncall", "override", "add", "db-primary", "--member=erin", "--end="+end, u)
	if code != 1 || !strings.Contains(stderr, "the bridge answered 403: POST /api/v1/oncall/:name/overrides is disabled: start smsbridge with --web.enable-admin-api") {
		t.Errorf("add without the admin API: %d %q", code, stderr)
	}
}

// TestRoutesTestAt: `routes test --at` resolves the on-call list then and
// shows what the time intervals mute.
func TestRoutesTestAt(t *testing.T) {
	cfg := writeFile(t, t.TempDir(), "smsbridge.yml", `
sms:
  url: http://127.0.0.1:1/sms/messages
  api_key_file: /nonexistent/key
time_intervals:
  - name: business-hours
    time_intervals:
      - weekdays: [monday:friday]
        times: [{start_time: "09:00", end_time: "17:00"}]
        location: Europe/Berlin
people:
  - {name: alice, number: "+27830000001"}
  - {name: bob, number: "+27830000002"}
route:
  receiver: ops
  routes:
    - matchers: ['team="db"']
      receiver: db
      active_time_intervals: [business-hours]
receivers:
  - name: ops
    numbers: ["+27830000009"]
  - name: db
    oncall: [db-primary]
oncall:
  - name: db-primary
    time_zone: Europe/Berlin
    rotation: {members: [alice, bob], shift: 1w, start: "2026-01-05T09:00"}
`)
	for _, tc := range []struct {
		at   string
		want string
	}{
		{"2026-03-30T09:00:00+02:00", "  numbers:  alice (+2783****001)\n"},
		{"2026-03-27T10:00:00+01:00", "  numbers:  bob (+2783****002)\n"},
		{"2026-03-30T08:59:00+02:00", "  nothing sent: muted outside business-hours (active_time_intervals of route.routes[0])\n"},
	} {
		code, stdout, stderr := runCLI(t, "routes", "test", "--config.file="+cfg, "--at", tc.at, "alertname=Disk", "team=db")
		if code != 0 || !strings.Contains(stdout, tc.want) || !strings.Contains(stdout, " at "+tc.at) {
			t.Errorf("--at %s: %d\n%s%s\nwant %q", tc.at, code, stdout, stderr, tc.want)
		}
	}
	if code, _, stderr := runCLI(t, "routes", "test", "--config.file="+cfg, "--at", "monday", "team=db"); code != 2 || !strings.Contains(stderr, "is not an RFC 3339 time") {
		t.Errorf("bad --at: %d %s", code, stderr)
	}
}
