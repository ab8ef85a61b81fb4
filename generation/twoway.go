package generation

import (
	"errors"
	"fmt"
	"strings"
	"time"

	commoncfg "github.com/prometheus/common/config"

	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/pipeline"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/twoway"
)

// minTokenLength is the shortest callback token accepted: it is the only
// secret between the internet and acknowledgements that silence alerts.
const minTokenLength = 24

// twoWay compiles sms.callback, replies and alertmanager_api. In a dry
// run the callback token is the one main made for the in-process fake
// (Options.DryRunCallbackToken), and the configured one is not read, like
// the API keys.
func (b *builder) twoWay(g *Generation) *twoway.Config {
	c := b.c
	cfg := &twoway.Config{
		Replies:      c.Replies.Enabled,
		AckSilence:   time.Duration(c.Replies.AckSilence),
		MaxSilence:   time.Duration(c.Replies.MaxSilence),
		NotifyOthers: c.Replies.NotifiesOthers(),
		MatchWindow:  config.DefaultMatchWindow,
		BodyLimit:    config.DefaultCallbackBodyLimit,
	}
	cb := c.SMS.Callback
	if cb != nil {
		cfg.MatchWindow, cfg.BodyLimit = time.Duration(cb.MatchWindow), int64(cb.BodyLimit)
	}
	switch {
	case b.opts.DryRun:
		cfg.Token = secret.Secret(b.opts.DryRunCallbackToken)
	case cb != nil:
		tok, err := secret.Load(cb.Token, b.f.Resolve(cb.TokenFile))
		switch {
		case errors.Is(err, secret.ErrNotSet):
			b.errorf("sms.callback", "sms.callback: no token; set token_file to a file holding a long random string (openssl rand -hex 32): it is the secret part of the URL the provider posts to")
		case err != nil:
			b.errorf("sms.callback.token_file", "sms.callback: %w", err)
		default:
			if err := checkToken(string(tok)); err != nil {
				b.errorf("sms.callback", "sms.callback: token %w", err)
			} else {
				cfg.Token = tok
			}
		}
	}
	if !b.opts.DryRun && cb == nil {
		if c.Replies.Enabled {
			b.errorf("replies.enabled", "replies.enabled needs sms.callback: replies reach the bridge through the provider's callbacks")
		}
		for i, rc := range c.Receivers {
			if rc.OnUndelivered != "" {
				b.errorf(fmt.Sprintf("receivers[%d].on_undelivered", i), "receiver %q: on_undelivered needs sms.callback: undelivered texts are known from the provider's delivery receipts", rc.Name)
			}
		}
	}
	if len(g.clients) > 0 {
		// Every account is the same provider; its parser needs no key.
		cfg.Inbound = g.clients[0]
	}
	if am := c.AlertmanagerAPI; am != nil {
		hc := commoncfg.DefaultHTTPClientConfig
		if am.HTTPConfig != nil {
			hc = am.HTTPConfig.HTTPClientConfig
		}
		hc.SetDirectory(b.f.Dir)
		client, err := twoway.NewAlertmanager(am.URLs, time.Duration(am.Timeout), hc)
		if err != nil {
			b.errorf("alertmanager_api", "alertmanager_api: %w", err)
		} else {
			cfg.Alertmanager = client
		}
	}
	if g.Router != nil {
		cfg.Lookup = b.lookup(g.Router)
		cfg.Failover = b.failover(g.Router)
	}
	return cfg
}

// checkToken refuses a token that is short or that a URL would mangle.
func checkToken(tok string) error {
	if len(tok) < minTokenLength {
		return fmt.Errorf("is %d characters long; use at least %d random ones (openssl rand -hex 32)", len(tok), minTokenLength)
	}
	if i := strings.IndexFunc(tok, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("-._~", r))
	}); i >= 0 {
		return errors.New("may hold only letters, digits and - . _ ~ (it is part of a URL)")
	}
	return nil
}

// lookup names a number from the configuration: the person it belongs
// to, and whether any receiver, on-call list (overrides added at run
// time included) or person pages it.
func (b *builder) lookup(r *routing.Router) func(string) (string, bool) {
	known := map[string]string{}
	add := func(ms []oncall.Member) {
		for _, m := range ms {
			if known[m.Number] == "" {
				known[m.Number] = m.Name
			}
		}
	}
	dir := r.Directory()
	for _, name := range dir.People() {
		if m, err := dir.Lookup(name); err == nil {
			add([]oncall.Member{m})
		}
	}
	for _, rc := range r.Receivers() {
		add(rc.Members)
	}
	lists := r.Lists()
	for _, s := range lists {
		add(s.Fixed())
		if rot, ok := s.Rotation(); ok {
			add(rot.Members)
		}
		for _, ly := range s.Layers() {
			add(ly.Members)
		}
		for _, o := range s.Overrides() {
			add(o.Members)
		}
	}
	src := b.opts.Overrides
	return func(number string) (string, bool) {
		if name, ok := known[number]; ok {
			return name, true
		}
		if src == nil {
			return "", false
		}
		for _, s := range lists {
			for _, o := range src.For(s.Name, dir) {
				for _, m := range o.Members {
					if m.Number == number {
						return m.Name, true
					}
				}
			}
		}
		return "", false
	}
}

// failover finds a receiver's on_undelivered receiver and who it pages.
func (b *builder) failover(r *routing.Router) func(string, time.Time) (string, []oncall.Member) {
	var overrides routing.OverridesFunc
	if src := b.opts.Overrides; src != nil {
		dir := r.Directory()
		overrides = func(list string) []oncall.Override { return src.For(list, dir) }
	}
	return func(receiver string, now time.Time) (string, []oncall.Member) {
		rc, ok := r.Receiver(receiver)
		if !ok || rc.OnUndelivered == "" {
			return "", nil
		}
		target, ok := r.Receiver(rc.OnUndelivered)
		if !ok {
			return "", nil
		}
		return target.Name, target.Recipients(now, overrides)
	}
}

// replies is the pipeline's view of replies: nil when off.
func (b *builder) replies() *pipeline.Replies {
	if !b.c.Replies.Enabled {
		return nil
	}
	r := &pipeline.Replies{}
	if b.c.AlertmanagerAPI != nil {
		r.Silence = b.c.Replies.AckSilence.String()
	}
	return r
}

// twoWaySummary describes two-way SMS for the summary; "" when off.
func (g *Generation) twoWaySummary() string {
	t := g.TwoWay
	if t == nil || (t.Token == "" && !t.Replies) {
		return ""
	}
	var parts []string
	if t.Token != "" {
		parts = append(parts, "callback endpoint on")
	}
	parts = append(parts, fmt.Sprintf("receipts matched within %s", config.Duration(t.MatchWindow)))
	if t.Replies {
		parts = append(parts, fmt.Sprintf("replies on (ack %s, at most %s)", config.Duration(t.AckSilence), config.Duration(t.MaxSilence)))
	}
	if t.Alertmanager != nil {
		parts = append(parts, fmt.Sprintf("silences in %d alertmanager(s)", t.Alertmanager.URLs()))
	}
	return "two-way: " + strings.Join(parts, ", ") + "\n"
}
