package config

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	commoncfg "github.com/prometheus/common/config"
	"gopkg.in/yaml.v3"

	"github.com/smsbridge/smsbridge/internal/secret"
)

// Callback is the provider's callback endpoint (sms.callback): POST
// /api/v1/sms/callback/{token}, where the provider sends delivery
// receipts and replies.
type Callback struct {
	// Token is the secret part of the URL, inline; TokenFile reads it
	// from a file. One of them is required (except in a dry run, which
	// makes its own).
	Token     secret.Secret `yaml:"token"`
	TokenFile string        `yaml:"token_file"`
	// MatchWindow is how long after it was accepted a message can still
	// get a receipt: a receipt goes to the latest outstanding message to
	// its number sent within it.
	MatchWindow Duration `yaml:"match_window"`
	// BodyLimit is the largest callback body read (413 above it).
	BodyLimit ByteSize `yaml:"body_limit"`
}

// Replies are the answers recipients send back (replies).
type Replies struct {
	// Enabled gives every firing SMS a reply code and acts on replies.
	Enabled bool `yaml:"enabled"`
	// AckSilence is how long an acknowledgement silences its group when
	// the reply names no duration; MaxSilence the longest a reply may ask
	// for ("ACK 12 4h").
	AckSilence Duration `yaml:"ack_silence"`
	MaxSilence Duration `yaml:"max_silence"`
	// NotifyOthers sends the other recipients of an acknowledged page
	// "acked by alice"; nil means true.
	NotifyOthers *bool `yaml:"notify_others"`
}

// NotifiesOthers reports whether the other recipients hear of an
// acknowledgement.
func (r Replies) NotifiesOthers() bool { return r.NotifyOthers == nil || *r.NotifyOthers }

// AlertmanagerAPI is where acknowledgements create silences
// (alertmanager_api): Alertmanager's API v2, tried in order (an HA pair
// gossips a silence to its peer).
type AlertmanagerAPI struct {
	URLs []string `yaml:"urls"`
	// Timeout bounds one request to one Alertmanager.
	Timeout Duration `yaml:"timeout"`
	// HTTPConfig is Alertmanager's own http_config (basic_auth,
	// authorization, tls_config, proxy_url...), as a webhook receiver
	// writes it.
	HTTPConfig *HTTPConfig `yaml:"http_config"`
}

// HTTPConfig is prometheus/common's HTTP client configuration, decoded
// strictly; its secrets print as <secret>.
type HTTPConfig struct {
	commoncfg.HTTPClientConfig
}

// httpConfigError is an http_config the client library refused; load
// gives it the line of the key.
type httpConfigError struct{ err error }

func (e *httpConfigError) Error() string { return e.err.Error() }
func (e *httpConfigError) Unwrap() error { return e.err }

// UnmarshalYAML decodes through the library's own method (its defaults,
// its validation), with the same strict decoder, so an unknown key still
// names its line.
func (h *HTTPConfig) UnmarshalYAML(unmarshal func(any) error) error {
	if err := unmarshal(&h.HTTPClientConfig); err != nil {
		var te *yaml.TypeError
		if errors.As(err, &te) {
			return err
		}
		return &httpConfigError{err: err}
	}
	return nil
}

// Defaults and bounds of two-way SMS.
const (
	DefaultMatchWindow       = 24 * time.Hour
	DefaultCallbackBodyLimit = 1 << 20
	DefaultAckSilence        = time.Hour
	DefaultMaxSilence        = 24 * time.Hour
	DefaultAlertmanagerAPITO = 10 * time.Second
	maxMatchWindow           = 7 * 24 * time.Hour
	maxSilenceCeiling        = 7 * 24 * time.Hour
	minSilence               = time.Minute
)

// setTwoWayDefaults fills the two-way keys the file leaves unset; called
// by setDefaults.
func (c *Config) setTwoWayDefaults() {
	if cb := c.SMS.Callback; cb != nil {
		setDuration(&cb.MatchWindow, DefaultMatchWindow)
		if cb.BodyLimit == 0 {
			cb.BodyLimit = DefaultCallbackBodyLimit
		}
	}
	setDuration(&c.Replies.AckSilence, DefaultAckSilence)
	setDuration(&c.Replies.MaxSilence, DefaultMaxSilence)
	if am := c.AlertmanagerAPI; am != nil {
		setDuration(&am.Timeout, DefaultAlertmanagerAPITO)
	}
}

// validateTwoWay checks sms.callback, replies and alertmanager_api.
// Whether a token is there is for generation to judge (a dry run makes
// its own).
func (f *File) validateTwoWay() error {
	c := f.Config
	if cb := c.SMS.Callback; cb != nil {
		if cb.Token != "" && cb.TokenFile != "" {
			return f.Errorf("sms.callback.token", "sms.callback: set token or token_file, not both")
		}
		if err := inRange(cb.MatchWindow, time.Minute, maxMatchWindow); err != nil {
			return f.Errorf("sms.callback.match_window", "sms.callback.match_window %v", err)
		}
	}
	r := c.Replies
	if err := inRange(r.AckSilence, minSilence, maxSilenceCeiling); err != nil {
		return f.Errorf("replies.ack_silence", "replies.ack_silence %v", err)
	}
	if err := inRange(r.MaxSilence, minSilence, maxSilenceCeiling); err != nil {
		return f.Errorf("replies.max_silence", "replies.max_silence %v", err)
	}
	if r.AckSilence > r.MaxSilence {
		return f.Errorf("replies.ack_silence", "replies.ack_silence %s is longer than max_silence %s", r.AckSilence, r.MaxSilence)
	}
	am := c.AlertmanagerAPI
	if am == nil {
		return nil
	}
	if len(am.URLs) == 0 {
		return f.Errorf("alertmanager_api", "alertmanager_api: urls is empty; list the Alertmanager to create silences in (both of an HA pair)")
	}
	for i, u := range am.URLs {
		if p, err := url.Parse(u); err == nil && p.User != nil {
			return f.Errorf(fmt.Sprintf("alertmanager_api.urls[%d]", i), "alertmanager_api.urls[%d] must not contain credentials; use http_config.basic_auth", i)
		}
		if err := validURL(u); err != nil {
			return f.Errorf(fmt.Sprintf("alertmanager_api.urls[%d]", i), "alertmanager_api.urls[%d] %v", i, err)
		}
	}
	if err := inRange(am.Timeout, 1, maxTimeout); err != nil {
		return f.Errorf("alertmanager_api.timeout", "alertmanager_api.timeout %v", err)
	}
	return nil
}
