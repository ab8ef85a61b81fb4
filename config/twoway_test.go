package config

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

func TestTwoWayConfig(t *testing.T) {
	t.Parallel()
	base := "route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"
	f, err := Load([]byte("sms:\n  callback: {token_file: t}\nalertmanager_api:\n  urls: [http://am-0:9093, http://am-1:9093]\n" +
		"  http_config:\n    basic_auth: {username: sb, password: s3cr3t-am-pw}\nreplies: {enabled: true, notify_others: false}\n" + base))
	if err != nil {
		t.Fatal(err)
	}
	c := f.Config
	if cb := c.SMS.Callback; cb == nil || time.Duration(cb.MatchWindow) != DefaultMatchWindow || cb.BodyLimit != DefaultCallbackBodyLimit || cb.TokenFile != "t" {
		t.Errorf("callback defaults: %+v", cb)
	}
	if r := c.Replies; !r.Enabled || time.Duration(r.AckSilence) != DefaultAckSilence || time.Duration(r.MaxSilence) != DefaultMaxSilence || r.NotifiesOthers() {
		t.Errorf("replies: %+v", r)
	}
	am := c.AlertmanagerAPI
	if am == nil || len(am.URLs) != 2 || time.Duration(am.Timeout) != DefaultAlertmanagerAPITO || am.HTTPConfig == nil ||
		am.HTTPConfig.BasicAuth == nil || am.HTTPConfig.BasicAuth.Username != "sb" || !am.HTTPConfig.FollowRedirects {
		t.Errorf("alertmanager_api: %+v", am)
	}
	out, err := yaml.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if text := string(out) + fmt.Sprintf("%v %+v", c.AlertmanagerAPI, *c.AlertmanagerAPI.HTTPConfig); strings.Contains(text, "s3cr3t-am-pw") {
		t.Error("the Alertmanager password is printed")
	}
	// An inline token is a secret like a key: never printed.
	f, err = Load([]byte("sms:\n  callback: {token: inl1ne-c4llback-t0ken-value}\n" + base))
	if err != nil {
		t.Fatal(err)
	}
	out, err = yaml.Marshal(f.Config)
	if err != nil {
		t.Fatal(err)
	}
	if text := string(out) + fmt.Sprintf("%v %+v %#v", f.Config.SMS, *f.Config.SMS.Callback, f.Config.SMS.Callback); strings.Contains(text, "inl1ne") ||
		!strings.Contains(string(out), "token: <secret>") {
		t.Errorf("the callback token is printed:\n%s", text)
	}
	// Off by default: no callback, no replies, no API.
	f, err = Load([]byte(base))
	if err != nil {
		t.Fatal(err)
	}
	if f.Config.SMS.Callback != nil || f.Config.Replies.Enabled || f.Config.AlertmanagerAPI != nil || !f.Config.Replies.NotifiesOthers() {
		t.Errorf("defaults: %+v %+v %+v", f.Config.SMS.Callback, f.Config.Replies, f.Config.AlertmanagerAPI)
	}
}

func TestBadTwoWayConfigs(t *testing.T) {
	t.Parallel()
	base := "route: {receiver: a}\nreceivers: [{name: a, numbers: ['+27830000001']}]\n"
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"token twice", "sms:\n  callback:\n    token: x\n    token_file: y\n" + base, "line 3: sms.callback: set token or token_file, not both"},
		{"match window", "sms:\n  callback:\n    token_file: y\n    match_window: 30d\n" + base, "line 4: sms.callback.match_window 30d must be at most 1w"},
		{"ack silence", "replies:\n  ack_silence: 10s\n" + base, "line 2: replies.ack_silence 10s must be at least 1m"},
		{"max silence", "replies:\n  max_silence: 30d\n" + base, "line 2: replies.max_silence 30d must be at most 1w"},
		{"ack longer than max", "replies:\n  enabled: true\n  ack_silence: 2h\n  max_silence: 1h\n" + base, "line 3: replies.ack_silence 2h is longer than max_silence 1h"},
		{"no urls", "alertmanager_api:\n  timeout: 5s\n" + base, "line 1: alertmanager_api: urls is empty; list the Alertmanager to create silences in (both of an HA pair)"},
		{"bad url", "alertmanager_api:\n  urls:\n    - http://am:9093\n    - am:9093\n" + base, `line 4: alertmanager_api.urls[1] "am:9093" must be an http:// or https:// URL`},
		{"credentials in the url", "alertmanager_api:\n  urls: ['http://u:pa55@am:9093']\n" + base, "line 2: alertmanager_api.urls[0] must not contain credentials; use http_config.basic_auth"},
		{"timeout", "alertmanager_api:\n  urls: [http://am:9093]\n  timeout: 10m\n" + base, "line 3: alertmanager_api.timeout 10m must be at most 5m"},
		{"unknown http_config key", "alertmanager_api:\n  urls: [http://am:9093]\n  http_config:\n    basic_authx: {}\n" + base,
			`line 4: unknown key "basic_authx" here (check its spelling and its indentation)`},
		{"http_config refused", "alertmanager_api:\n  urls: [http://am:9093]\n  http_config:\n    basic_auth: {username: u, password: pa55, password_file: f}\n" + base,
			"line 3: alertmanager_api.http_config: at most one of basic_auth password, password_file & password_ref must be configured"},
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
				t.Error("error shows a password")
			}
		})
	}
}
