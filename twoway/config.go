package twoway

import (
	"time"

	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/sms"
)

// Config is the two-way part of one configuration generation, compiled
// by package generation. A nil *Config, or one without a Token or an
// Inbound, turns the callback endpoint off (it answers 404 like any
// unknown path).
type Config struct {
	// Token is the callback URL's secret (sms.callback.token or
	// token_file, or a dry run's own).
	Token secret.Secret
	// BodyLimit is the largest callback body read.
	BodyLimit int64
	// MatchWindow is how long after it was accepted a message can get a
	// receipt.
	MatchWindow time.Duration
	// Inbound parses the provider's callbacks.
	Inbound sms.Inbound

	// Replies turns on reply codes and acting on replies other than STOP
	// and START, which are always honoured.
	Replies bool
	// AckSilence is an acknowledgement's length when the reply names
	// none; MaxSilence the longest one may ask for.
	AckSilence, MaxSilence time.Duration
	// NotifyOthers tells the other recipients of a page who acknowledged
	// it.
	NotifyOthers bool
	// Alertmanager creates the silences; nil when acknowledgements
	// silence nothing.
	Alertmanager *Alertmanager

	// Lookup names a number: the person it belongs to ("" for none), and
	// whether the configuration pages it anywhere (receivers, on-call
	// lists, people). Nil knows no number.
	Lookup func(number string) (name string, known bool)
	// Failover returns the receiver (and who it pages at now) that a text
	// the handset did not get goes to, for the receiver it was sent for;
	// "" for none (no on_undelivered). Nil for none.
	Failover func(receiver string, now time.Time) (string, []oncall.Member)
}

// enabled reports whether the callback endpoint serves.
func (c *Config) enabled() bool { return c != nil && c.Token != "" && c.Inbound != nil }

// lookup is Lookup, safe when it is nil.
func (c *Config) lookup(number string) (string, bool) {
	if c.Lookup == nil {
		return "", false
	}
	return c.Lookup(number)
}

// ackFor returns how long an acknowledgement asking for d lasts: the
// default for none, at most MaxSilence.
func (c *Config) ackFor(d time.Duration) time.Duration {
	if d <= 0 {
		d = c.AckSilence
	}
	return min(d, c.MaxSilence)
}
