package status

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

func TestParseLabels(t *testing.T) {
	tests := []struct {
		args    []string
		want    string
		wantErr string
	}{
		{args: []string{"team=db", "severity=critical"}, want: `[severity="critical" team="db"]`},
		{args: []string{`alertname="Disk Full"`}, want: `[alertname="Disk Full"]`},
		{args: []string{`msg="say \"hi\""`}, want: `[msg="say \"hi\""]`},
		{args: []string{"team="}, want: `[team=""]`},
		{args: []string{"url=http://x/?a=b"}, want: `[url="http://x/?a=b"]`},
		{args: []string{"team"}, wantErr: `label "team" is not of the form name=value`},
		{args: []string{"=db"}, wantErr: `label name "" is not valid`},
		{args: []string{"1team=db"}, wantErr: `label name "1team" is not valid`},
		{args: []string{"te-am=db"}, wantErr: `label name "te-am" is not valid`},
		{args: []string{`team="db`}, wantErr: `label team: value "db is not a properly quoted string`},
		{args: []string{"team=db", "team=web"}, wantErr: "label team is given twice"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			got, err := ParseLabels(tc.args)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(FormatLabels(got)); s != tc.want {
				t.Errorf("got %s, want %s", s, tc.want)
			}
		})
	}
}

func TestParseLabelString(t *testing.T) {
	tests := []struct {
		in, want, wantErr string
	}{
		{in: "team=db severity=critical", want: `[severity="critical" team="db"]`},
		{in: `{team="db", severity="critical"}`, want: `[severity="critical" team="db"]`},
		{in: `  alertname="Disk Full",team=db  `, want: `[alertname="Disk Full" team="db"]`},
		{in: `note="a, b \" c"`, want: `[note="a, b \" c"]`},
		{in: "", wantErr: "no labels given"},
		{in: "{}", wantErr: "no labels given"},
		{in: `team="db`, wantErr: "a quoted value is not closed"},
		{in: "team db", wantErr: `label "team" is not of the form name=value`},
	}
	for _, tc := range tests {
		t.Run(tc.in, func(t *testing.T) {
			got, err := ParseLabelString(tc.in)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if s := fmt.Sprint(FormatLabels(got)); s != tc.want {
				t.Errorf("got %s, want %s", s, tc.want)
			}
		})
	}
}

func TestWriteRouteTest(t *testing.T) {
	rt := RouteTest{Messages: 1, Recipients: 2, Plans: []Plan{
		{Receiver: "db", Routes: []Route{{Path: "route.routes[0]", Key: `{}/{team="db"}`}}, Alerts: 1,
			Numbers: []string{"+27831110002", "+27831110003"}, Text: "[FIRING:1] DiskFull\ndisk is full", Segments: 1},
		{Receiver: "quiet", Routes: []Route{{Path: "route.routes[1]", Key: `{}/{team=~"db|web"}`}}, Skipped: "resolved alerts, and send_resolved is false"},
	}}
	masked := `receiver: db
  route:    route.routes[0]  {}/{team="db"}
  alerts:   1
  numbers:  +2783****002, +2783****003
  segments: 1
  text:
    | [FIRING:1] DiskFull
    | disk is full

receiver: quiet
  route:    route.routes[1]  {}/{team=~"db|web"}
  nothing sent: resolved alerts, and send_resolved is false

would queue 1 message to 2 numbers
`
	for _, show := range []bool{false, true} {
		var b strings.Builder
		if err := WriteRouteTest(&b, rt, show); err != nil {
			t.Fatal(err)
		}
		want := masked
		if show {
			want = strings.Replace(masked, "+2783****002, +2783****003", "+27831110002, +27831110003", 1)
		}
		if b.String() != want {
			t.Errorf("showNumbers=%t: got\n%s\nwant\n%s", show, b.String(), want)
		}
	}
	var b strings.Builder
	if err := WriteRouteTest(&b, RouteTest{}, false); err != nil || b.String() != "would queue 0 messages to 0 numbers\n" {
		t.Errorf("empty: %q %v", b.String(), err)
	}
}

func TestHumanDuration(t *testing.T) {
	tests := []struct {
		d    time.Duration
		want string
	}{
		{0, "0s"}, {1400 * time.Millisecond, "1s"}, {59 * time.Second, "59s"}, {61 * time.Second, "1m 1s"},
		{2*time.Hour + 5*time.Minute + 9*time.Second, "2h 5m"}, {49 * time.Hour, "2d 1h"},
	}
	for _, tc := range tests {
		if got := humanDuration(tc.d); got != tc.want {
			t.Errorf("humanDuration(%v) = %q, want %q", tc.d, got, tc.want)
		}
	}
}
