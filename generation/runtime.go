package generation

import (
	"context"
	"errors"
	"time"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/dispatch"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/pipeline"
	"github.com/smsbridge/smsbridge/receiver"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/sms"
	"github.com/smsbridge/smsbridge/sms/touchbase"
)

// Internal tuning of the dispatcher that the configuration does not expose.
const (
	// holdReminder is how often a held account is logged again.
	holdReminder = 15 * time.Minute
	// shutdownGrace is how long requests in flight may finish at shutdown.
	shutdownGrace = 10 * time.Second
)

// DryRunKey is the API key every account uses in a dry run; the fake
// accepts it, and it guards nothing. The client scrubs its key from what
// the provider answers, so it must not be a part of the fake's message
// ids ("dry-run-..."), or they would read "<secret>-...".
const DryRunKey = "dry-run-key-guards-nothing"

// dispatchSettings builds one client per account and the dispatcher's
// settings. In a dry run every account sends to opts.DryRunURL with
// DryRunKey.
func (b *builder) dispatchSettings(accounts []Account) (dispatch.Settings, []*touchbase.Client) {
	c := b.c
	s := dispatch.Settings{
		BatchSize:     c.SMS.BatchSize,
		MaxInFlight:   c.Delivery.Workers,
		MinBackoff:    time.Duration(c.Delivery.MinBackoff),
		MaxBackoff:    time.Duration(c.Delivery.MaxBackoff),
		MaxAge:        time.Duration(c.Delivery.MaxAge),
		HoldRetry:     time.Duration(c.Delivery.HoldRetry),
		HoldReminder:  holdReminder,
		DefaultPause:  time.Duration(c.SMS.DefaultPause),
		FallbackAfter: time.Duration(c.SMS.FallbackAfter),
		ShutdownGrace: shutdownGrace,
	}
	if s.MaxInFlight == 0 {
		s.MaxInFlight = dispatch.AutoInFlight(c.SMS.RateLimit)
	}
	var clients []*touchbase.Client
	for _, a := range accounts {
		path := "sms"
		if a.Name == AccountFallback {
			path = "sms.fallback"
		}
		key := string(a.APIKey)
		if b.opts.DryRun {
			key = DryRunKey
		}
		if key == "" {
			continue // the key did not load; that is reported already
		}
		// The configured account is checked even in a dry run, so that
		// check-config --sms.dry-run finds what the daemon would refuse.
		client, err := touchbase.New(touchbase.Config{URL: a.URL, APIKey: key, Timeout: a.Timeout}, b.opts.SMSMetrics.Account(a.Name))
		if err != nil {
			b.errorf(b.clientErrorPath(path, err), "%s: %w", path, err)
			continue
		}
		if b.opts.DryRun {
			if b.opts.DryRunURL == "" {
				continue // check-config: nothing to send to
			}
			if client, err = touchbase.New(touchbase.Config{URL: b.opts.DryRunURL, APIKey: key, Timeout: a.Timeout}, b.opts.SMSMetrics.Account(a.Name)); err != nil {
				b.errorf(path, "%s: dry run: %w", path, err)
				continue
			}
		}
		clients = append(clients, client)
		s.Accounts = append(s.Accounts, dispatch.Account{Name: a.Name, Provider: client, RateLimit: a.RateLimit})
		// A lease outlives the request's timeout, so a slow request is
		// never leased twice; a crash frees it at the next start.
		s.LeaseFor = max(s.LeaseFor, 2*a.Timeout+10*time.Second)
	}
	return s, clients
}

// clientErrorPath is the key a touchbase.New error for the account at path
// concerns, so the error names its line.
func (b *builder) clientErrorPath(path string, err error) string {
	var ce *touchbase.ConfigError
	if !errors.As(err, &ce) {
		return path
	}
	if ce.Field != touchbase.FieldAPIKey {
		return path + "." + ce.Field
	}
	// The key is given inline or as a file; point at the one used.
	inline := b.c.SMS.APIKey != ""
	if fb := b.c.SMS.Fallback; path == "sms.fallback" && fb != nil {
		inline = fb.APIKey != ""
	}
	if inline {
		return path + ".api_key"
	}
	return path + ".api_key_file"
}

// intake is the generation as the intake reads it.
func (g *Generation) intake() receiver.Intake {
	return receiver.Intake{Sources: g.Sources, Sink: sink{g.Pipeline}}
}

// Intake returns the sources and sink of this generation, for
// receiver.New's accessor.
func (g *Generation) Intake() receiver.Intake {
	if g == nil {
		return receiver.Intake{}
	}
	return g.intakeView
}

// sink adapts the pipeline to the intake.
type sink struct{ p *pipeline.Pipeline }

func (s sink) Accept(ctx context.Context, n *alert.Notification) (receiver.Accepted, error) {
	r, err := s.p.Accept(ctx, n)
	if err != nil {
		return receiver.Accepted{}, err
	}
	return receiver.Accepted{ID: r.ID, Recipients: r.Recipients, Outcome: r.Outcome, Receivers: r.Receivers, AlertName: n.AlertName(), Replayed: r.Replayed}, nil
}

// Close releases what the generation holds that outlives its use (idle
// connections to the provider); call it after a newer one took over.
func (g *Generation) Close() {
	for _, c := range g.clients {
		c.CloseIdleConnections()
	}
	if g.TwoWay != nil && g.TwoWay.Alertmanager != nil {
		g.TwoWay.Alertmanager.CloseIdleConnections()
	}
}

func (b *builder) pipeline(g *Generation) *pipeline.Pipeline {
	if g.Router == nil || g.Renderer == nil {
		return nil
	}
	var overrides routing.OverridesFunc
	if src := b.opts.Overrides; src != nil {
		dir := g.Router.Directory()
		overrides = func(list string) []oncall.Override { return src.For(list, dir) }
	}
	mute := pipeline.NewMute(b.c.Intervals(), b.opts.MuteMetrics, b.opts.Logger)
	p, err := pipeline.New(pipeline.Options{
		Router:   g.Router,
		Renderer: g.Renderer,
		// DESIGN's order: resolved rule, dedup, time intervals,
		// throttle/digest, budget, escalation timers.
		Stages: stages(
			pipeline.ResolvedRule{},
			b.dedup(),
			mute,
			b.throttle(g),
			b.budget(),
			pipeline.Escalation{Observer: b.opts.Escalations},
		),
		Store:     b.opts.Store,
		Logger:    b.opts.Logger,
		Now:       b.opts.Now,
		Overrides: overrides,
		Replies:   b.replies(),
	})
	if err != nil {
		b.errorf("", "%w", err)
		return nil
	}
	return p
}

var _ sms.Provider = (*touchbase.Client)(nil)
