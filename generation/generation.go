// Package generation compiles a loaded configuration into one immutable
// Generation: the intake sources, the router, the renderer and the provider
// accounts one running configuration needs. Everything is built before any
// of it is used, so a reload that fails leaves the running generation
// untouched; main publishes a new one with a single atomic swap, and every
// reader (intake, pipeline, dispatcher, status page) reads it once per
// request or step.
//
// Build reads every file the configuration names (API keys, secrets,
// templates) and reports each problem as a *config.Error with the file and
// line of the key it concerns, found from structured positions: a
// routing.Error's path, a mapping.FieldError's field, an auth.ConfigError's
// key, a templates.FileError's index.
package generation

import (
	"cmp"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"

	"golang.org/x/time/rate"

	"github.com/smsbridge/smsbridge/alert"
	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/dispatch"
	"github.com/smsbridge/smsbridge/escalate"
	"github.com/smsbridge/smsbridge/internal/plural"
	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/oncall"
	"github.com/smsbridge/smsbridge/outbox/postgres"
	"github.com/smsbridge/smsbridge/pipeline"
	"github.com/smsbridge/smsbridge/receiver"
	"github.com/smsbridge/smsbridge/receiver/auth"
	"github.com/smsbridge/smsbridge/receiver/mapping"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/sms"
	"github.com/smsbridge/smsbridge/sms/touchbase"
	"github.com/smsbridge/smsbridge/templates"
	"github.com/smsbridge/smsbridge/twoway"
)

// Options tunes Build.
type Options struct {
	// DryRun skips the API keys: a dry run sends to an in-process fake.
	DryRun bool
	// Logger receives the renderer's warnings; nil discards them. The
	// caller names the component.
	Logger *slog.Logger
	// TemplateMetrics counts template failures; nil counts nothing.
	TemplateMetrics *templates.Metrics
	// SMSMetrics receives the provider clients' metrics; nil records
	// nothing.
	SMSMetrics *sms.Metrics
	// DryRunURL is the fake provider every account sends to in a dry run;
	// empty in check-config, which builds no client then.
	DryRunURL string
	// Store is where the pipeline writes; nil for a generation that only
	// plans (check-config, routes test).
	Store pipeline.Store
	// Overrides are the on-call overrides added at run time, which
	// outlive a generation; nil for none.
	Overrides OverrideSource
	// Now is the pipeline's clock; nil means time.Now.
	Now func() time.Time
	// MuteMetrics count what the routes' time intervals hold back; nil
	// counts nothing.
	MuteMetrics *pipeline.MuteMetrics
	// DryRunCallbackToken is the callback token of a dry run, which main
	// gives the in-process fake so that it can post receipts and replies
	// back; the configured token is not read in a dry run.
	DryRunCallbackToken string
	// Escalations hears what the pipeline's commits did to escalations
	// (the escalator, which outlives generations); nil for nobody.
	Escalations pipeline.EscalationObserver
}

// OverrideSource holds the on-call overrides added at run time.
type OverrideSource interface {
	// For returns list's overrides in the order they were added, their
	// members resolved with dir (the generation's people).
	For(list string, dir *oncall.Directory) []oncall.Override
}

// Names of the provider accounts, the values of the account label.
const (
	AccountPrimary  = "primary"
	AccountFallback = "fallback"
)

// Account is one provider account as plain data; the dispatcher builds its
// client from it.
type Account struct {
	// Name is AccountPrimary or AccountFallback.
	Name string
	URL  string
	// APIKey is empty in a dry run unless given inline.
	APIKey    secret.Secret
	Timeout   time.Duration
	RateLimit float64
}

// Generation is one configuration, compiled. Nothing in it changes after
// Build returns; a reload builds a new one.
type Generation struct {
	// File is the loaded configuration, for settings taken as they are.
	File *config.File
	// LoadedAt is when Build compiled it.
	LoadedAt time.Time
	// Sources are the Alertmanager and webhook intake sources.
	Sources *receiver.Sources
	// Router routes alerts to receivers, each with its numbers and its
	// effective max segments.
	Router *routing.Router
	// Renderer renders texts with the configured templates.
	Renderer *templates.Renderer
	// Accounts are the provider accounts, the primary first.
	Accounts []Account
	// Pipeline plans and enqueues notifications.
	Pipeline *pipeline.Pipeline
	// Dispatch are the dispatcher's settings, with a client per account.
	Dispatch dispatch.Settings
	// TwoWay is the callback endpoint's, replies' and silences'
	// configuration.
	TwoWay *twoway.Config
	// Escalation is what the escalator reads of this configuration: the
	// receivers steps page, and Alertmanager to check with.
	Escalation *escalate.Config
	// Warnings are problems that do not stop the configuration from
	// running, each a *config.Error with file and line: templates the
	// render limits would cut off in a storm. check-config prints them and
	// the daemon logs them at each load.
	Warnings []error

	clients    []*touchbase.Client
	intakeView receiver.Intake
}

// Build compiles f. Every problem found is a *config.Error with file and
// line; several are joined (errors.Join) in file order.
func Build(f *config.File, opts Options) (*Generation, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	opts.Logger = logger
	b := &builder{f: f, c: f.Config, opts: opts}
	g := &Generation{File: f, LoadedAt: time.Now()}
	g.Accounts = b.accounts()
	if _, err := StorageDSN(f); err != nil {
		var ce *config.Error
		if errors.As(err, &ce) {
			b.errs = append(b.errs, ce)
		}
	}
	g.Renderer = b.renderer(logger)
	g.Warnings = b.renderLimits(g.Renderer)
	g.Router = b.router()
	g.Sources = b.intake()
	g.Dispatch, g.clients = b.dispatchSettings(g.Accounts)
	g.Dispatch.Limits = b.limits(g)
	g.TwoWay = b.twoWay(g)
	g.Escalation = b.escalation(g)
	g.Warnings = append(g.Warnings, b.escalationWarnings()...)
	g.Pipeline = b.pipeline(g)
	g.intakeView = g.intake()
	if len(b.errs) > 0 {
		slices.SortStableFunc(b.errs, func(x, y *config.Error) int { return cmp.Compare(x.Line, y.Line) })
		errs := make([]error, len(b.errs))
		for i, e := range b.errs {
			errs[i] = e
		}
		return nil, errors.Join(errs...)
	}
	return g, nil
}

// StorageDSN loads the PostgreSQL DSN of the postgres storage driver from
// storage.dsn or the file storage.dsn_file names, and parses it as the
// driver does; it returns "" for the sqlite driver. Its error is a
// *config.Error that names the file, never its content.
func StorageDSN(f *config.File) (secret.Secret, error) {
	st := f.Config.Storage
	if st.Driver != config.StoragePostgres {
		return "", nil
	}
	dsn, err := secret.Load(st.DSN, f.Resolve(st.DSNFile))
	if err != nil {
		return "", f.Errorf("storage.dsn_file", "storage: %w", err)
	}
	if err := postgres.CheckDSN(string(dsn)); err != nil {
		at := "storage.dsn"
		if st.DSNFile != "" {
			at = "storage.dsn_file"
		}
		return "", f.Errorf(at, "storage: %w", err)
	}
	return dsn, nil
}

// builder collects Build's problems, so that one check-config run shows
// them all.
type builder struct {
	f    *config.File
	c    *config.Config
	opts Options
	errs []*config.Error
}

func (b *builder) errorf(path, format string, args ...any) {
	b.errs = append(b.errs, b.f.Errorf(path, format, args...))
}

func (b *builder) accounts() []Account {
	s := b.c.SMS
	primary := Account{Name: AccountPrimary, URL: s.URL, APIKey: s.APIKey, Timeout: time.Duration(s.Timeout), RateLimit: s.RateLimit}
	if !b.opts.DryRun {
		if s.APIKey == "" && s.APIKeyFile == "" {
			b.errorf("sms", "sms: no API key; set api_key_file (or api_key), or run with --sms.dry-run")
		} else if key, err := secret.Load(s.APIKey, b.f.Resolve(s.APIKeyFile)); err != nil {
			b.errorf("sms.api_key_file", "sms: %w", err)
		} else {
			primary.APIKey = key
		}
	}
	accounts := []Account{primary}
	if fb := s.Fallback; fb != nil {
		// config checked that exactly one of api_key and api_key_file is set.
		a := Account{Name: AccountFallback, URL: fb.URL, APIKey: fb.APIKey, Timeout: time.Duration(fb.Timeout), RateLimit: fb.RateLimit}
		if !b.opts.DryRun {
			if key, err := secret.Load(fb.APIKey, b.f.Resolve(fb.APIKeyFile)); err != nil {
				b.errorf("sms.fallback.api_key_file", "sms.fallback: %w", err)
			} else {
				a.APIKey = key
			}
		}
		accounts = append(accounts, a)
	}
	return accounts
}

func (b *builder) renderer(logger *slog.Logger) *templates.Renderer {
	files := make([]string, len(b.c.Templates.Files))
	for i, g := range b.c.Templates.Files {
		files[i] = b.f.Resolve(g)
	}
	names := make([]string, 0, len(b.c.Receivers))
	for _, rc := range b.c.Receivers {
		names = append(names, rc.Name)
	}
	r, err := templates.New(templates.Options{Files: files, Logger: logger, Metrics: b.opts.TemplateMetrics, Receivers: names})
	if err != nil {
		path := "templates.files"
		var fe *templates.FileError
		if errors.As(err, &fe) {
			path = fmt.Sprintf("templates.files[%d]", fe.Index)
		}
		b.errorf(path, "templates: %w", err)
		return nil
	}
	for i, rc := range b.c.Receivers {
		if rc.Template == "" {
			continue
		}
		if err := r.Check(rc.Template); err != nil {
			b.errorf(fmt.Sprintf("receivers[%d].template", i), "receiver %q: template: %w", rc.Name, err)
		}
	}
	return r
}

// renderLimits renders the default templates and each receiver's own
// against a storm-sized group (templates.CheckLimits) and returns a warning
// for each the render limits would cut off.
func (b *builder) renderLimits(r *templates.Renderer) []error {
	if r == nil {
		return nil
	}
	var warns []error
	if err := r.CheckLimits(""); err != nil {
		warns = append(warns, b.f.Errorf("templates.files", "warning: the default template (as redefined in templates.files): %w", err))
	}
	for i, rc := range b.c.Receivers {
		if rc.Template == "" {
			continue
		}
		if err := r.CheckLimits(rc.Template); err != nil {
			warns = append(warns, b.f.Errorf(fmt.Sprintf("receivers[%d].template", i), "warning: receiver %q: template: %w", rc.Name, err))
		}
	}
	return warns
}

func (b *builder) router() *routing.Router {
	r, err := routing.New(b.c.Route, b.c.Receivers, b.c.Oncall, routing.Options{
		Normalize:     sms.NormalizeNumber,
		MaxSegments:   b.c.SMS.MaxSegments,
		People:        b.c.People,
		TimeIntervals: b.c.Intervals(),
	})
	if err == nil {
		return r
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	for _, e := range errs {
		path := ""
		var re *routing.Error
		if errors.As(e, &re) {
			path = re.Path
		}
		b.errorf(path, "%w", e)
	}
	return nil
}

func (b *builder) intake() *receiver.Sources {
	c := b.c
	s := &receiver.Sources{Webhooks: make(map[string]*receiver.Source, len(c.Webhooks))}
	s.Alertmanager = b.source(alert.SourceAlertmanager, "alertmanager", "alertmanager", c.Alertmanager.Auth, c.Alertmanager.BodyLimit, c.Alertmanager.RateLimit, c.Alertmanager.DeliveryID)
	for i, w := range c.Webhooks {
		at := fmt.Sprintf("webhooks[%d]", i)
		what := fmt.Sprintf("webhooks %q", w.Name)
		src := b.source(w.Name, what, at, w.Auth, w.BodyLimit, w.RateLimit, w.DeliveryID)
		m, err := w.Config.Compile(w.Name)
		if err != nil {
			path := at
			var fe *mapping.FieldError
			if errors.As(err, &fe) {
				path = at + "." + fe.Field
			}
			b.errorf(path, "%s: %w", what, err)
			continue
		}
		src.Mapping = m
		s.Webhooks[w.Name] = src
	}
	if len(b.errs) > 0 {
		return nil
	}
	// config's validation makes this hold; a failure is a bug here.
	if err := s.Validate(); err != nil {
		b.errorf("", "%w", err)
		return nil
	}
	return s
}

// source builds one intake source; what names it in errors and at is its
// config path.
func (b *builder) source(name, what, at string, ac *auth.Config, limit config.ByteSize, rl *config.RateLimit, id config.DeliveryID) *receiver.Source {
	src := &receiver.Source{Name: name, BodyLimit: int64(limit), DeliveryIDHeader: id.Header, DeliveryIDTTL: time.Duration(id.TTL)}
	if ac != nil {
		resolved := *ac
		resolved.SecretFile = b.f.Resolve(ac.SecretFile)
		resolved.PasswordFile = b.f.Resolve(ac.PasswordFile)
		v, err := resolved.Build()
		if err != nil {
			path := at + ".auth"
			var ce *auth.ConfigError
			if errors.As(err, &ce) {
				path += "." + ce.Field
			}
			b.errorf(path, "%s: %w", what, err)
		} else {
			src.Verifier = v
		}
	}
	if rl != nil {
		src.Limiter = rate.NewLimiter(rate.Limit(rl.PerSecond), rl.Burst)
	}
	return src
}

// Summary is a short description of g, for check-config and the status
// page. It names no secret and no number.
func (g *Generation) Summary() string {
	var b strings.Builder
	recv := g.Router.Receivers()
	fmt.Fprintf(&b, "receivers: %d\n", len(recv))
	for _, r := range recv {
		fmt.Fprintf(&b, "  %s: %s", r.Name, plural.Count(len(r.Numbers), "number", "numbers"))
		if len(r.Oncall) > 0 {
			names := make([]string, len(r.Oncall))
			for i, s := range r.Oncall {
				names[i] = s.Name
			}
			fmt.Fprintf(&b, " and oncall %s", strings.Join(names, ", "))
		}
		fmt.Fprintf(&b, ", send_resolved=%t", r.SendResolved)
		for i, st := range r.Escalate {
			sep := ", escalates to "
			if i > 0 {
				sep = ", then "
			}
			fmt.Fprintf(&b, "%s%s after %s", sep, st.Receiver, config.Duration(st.After))
		}
		b.WriteString("\n")
	}
	if lists := g.Router.Lists(); len(lists) > 0 {
		fmt.Fprintf(&b, "oncall lists: %d\n", len(lists))
		for _, s := range lists {
			fmt.Fprintf(&b, "  %s: %s\n", s.Name, describeList(s))
		}
	}
	routes := 0
	g.Router.Tree().Walk(func(*routing.Node, int) { routes++ })
	fmt.Fprintf(&b, "routes: %d (the root included)\n", routes)
	b.WriteString("sources: " + alert.SourceAlertmanager)
	for _, n := range g.Sources.SourceNames() {
		b.WriteString(", " + n)
	}
	b.WriteString("\naccounts: ")
	for i, a := range g.Accounts {
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(a.Name)
	}
	b.WriteString("\n")
	b.WriteString(g.twoWaySummary())
	return b.String()
}

// describeList says what kind of list s is, for the summary.
func describeList(s *oncall.Schedule) string {
	var parts []string
	if r, ok := s.Rotation(); ok {
		parts = append(parts, fmt.Sprintf("rotation of %d, shift %s", len(r.Members), r.Shift))
	} else {
		parts = append(parts, plural.Count(len(s.Fixed()), "number", "numbers"))
	}
	if n := len(s.Layers()); n > 0 {
		parts = append(parts, plural.Count(n, "layer", "layers"))
	}
	if n := len(s.Overrides()); n > 0 {
		parts = append(parts, plural.Count(n, "override", "overrides"))
	}
	parts = append(parts, "time zone "+s.Location.String())
	if s.NotifyHandoff {
		parts = append(parts, "handoff notices")
	}
	return strings.Join(parts, ", ")
}
