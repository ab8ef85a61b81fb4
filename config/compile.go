package config

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/time/rate"
	"gopkg.in/yaml.v3"

	"github.com/smsbridge/smsbridge/internal/secret"
	"github.com/smsbridge/smsbridge/receiver"
	"github.com/smsbridge/smsbridge/receiver/auth"
	"github.com/smsbridge/smsbridge/routing"
	"github.com/smsbridge/smsbridge/sms"
	"github.com/smsbridge/smsbridge/templates"
)

// Options tunes Compile.
type Options struct {
	// DryRun skips the API key: a dry run sends to an in-process fake.
	DryRun          bool
	Logger          *slog.Logger
	TemplateMetrics *templates.Metrics
}

// Runtime is one configuration compiled into the parts that serve it.
// Everything in it is built before any of it is used, so a reload that
// fails leaves the running Runtime untouched.
type Runtime struct {
	File     *File
	Router   *routing.Router
	Renderer *templates.Renderer
	Intake   *receiver.State
	SMS      sms.Config
}

// Compile builds the router, renderer, intake sources and SMS client
// config of f, reading every file it names (templates, keys, secrets).
func Compile(f *File, opts Options) (*Runtime, error) {
	c := f.Config
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	rt := &Runtime{File: f}

	key := c.SMS.APIKey
	if !opts.DryRun {
		var err error
		if key == "" && c.SMS.APIKeyFile == "" {
			return nil, f.errorf([]any{"sms"}, "sms: no API key; set api_key_file (or api_key), or run with --sms.dry-run")
		}
		key, err = secret.Load(c.SMS.APIKey, f.path(c.SMS.APIKeyFile))
		if err != nil {
			return nil, f.errorf([]any{"sms", "api_key_file"}, "sms: %v", err)
		}
	}
	rt.SMS = sms.Config{
		URL:          c.SMS.URL,
		APIKey:       string(key),
		Timeout:      time.Duration(c.SMS.Timeout),
		DefaultPause: time.Duration(c.SMS.DefaultPause),
	}

	var files []string
	for _, g := range c.Templates.Files {
		files = append(files, f.path(g))
	}
	names := make([]string, 0, len(c.Receivers))
	for _, rc := range c.Receivers {
		names = append(names, rc.Name)
	}
	r, err := templates.New(templates.Options{Files: files, Logger: logger, Metrics: opts.TemplateMetrics, Receivers: names})
	if err != nil {
		return nil, f.errorf([]any{"templates", "files"}, "templates: %v", err)
	}
	rt.Renderer = r
	for i, rc := range c.Receivers {
		if rc.MaxSegments < 0 || rc.MaxSegments > maxSegmentsCeiling {
			return nil, f.errorf([]any{"receivers", i, "max_segments"}, "receiver %q: max_segments %d must be between 1 and %d", rc.Name, rc.MaxSegments, maxSegmentsCeiling)
		}
		if rc.Template == "" {
			continue
		}
		if err := r.Check(rc.Template); err != nil {
			return nil, f.errorf([]any{"receivers", i, "template"}, "receiver %q: template: %v", rc.Name, err)
		}
	}

	router, err := routing.New(c.Route, c.Receivers, c.Oncall, sms.NormalizeNumber)
	if err != nil {
		return nil, &Error{Line: f.lineOfQuoted(err.Error()), Msg: err.Error()}
	}
	rt.Router = router

	st := &receiver.State{Webhooks: map[string]*receiver.Source{}}
	am, err := f.source(receiver.SourceAlertmanager, c.Alertmanager.Auth, c.Alertmanager.BodyLimit, c.Alertmanager.RateLimit, []any{"alertmanager", "auth"})
	if err != nil {
		return nil, err
	}
	st.Alertmanager = am
	for i, w := range c.Webhooks {
		src, err := f.source(w.Name, w.Auth, w.BodyLimit, w.RateLimit, []any{"webhooks", i, "auth"})
		if err != nil {
			return nil, err
		}
		m, err := w.Config.Compile(w.Name)
		if err != nil {
			return nil, f.errorf([]any{"webhooks", i}, "webhooks %q: %v", w.Name, err)
		}
		src.Mapping = m
		st.Webhooks[w.Name] = src
	}
	rt.Intake = st
	return rt, nil
}

func (f *File) source(name string, ac *auth.Config, limit ByteSize, rl *RateLimit, path []any) (*receiver.Source, error) {
	src := &receiver.Source{Name: name, BodyLimit: int64(limit)}
	if ac != nil {
		resolved := *ac
		resolved.SecretFile = f.path(ac.SecretFile)
		resolved.PasswordFile = f.path(ac.PasswordFile)
		v, err := resolved.Build()
		if err != nil {
			return nil, f.errorf(path, "%s: %v", name, err)
		}
		src.Verifier = v
	}
	if rl != nil {
		burst := rl.Burst
		if burst == 0 {
			burst = max(1, int(rl.PerSecond))
		}
		src.Limiter = rate.NewLimiter(rate.Limit(rl.PerSecond), burst)
	}
	return src, nil
}

// path resolves p against the config file's directory, as Alertmanager
// does for template files.
func (f *File) path(p string) string {
	if p == "" || filepath.IsAbs(p) {
		return p
	}
	return filepath.Join(f.Dir, p)
}

// lineOfQuoted points an error from another package at its place in the
// file: the scalar equal to the most specific (last) quoted word of the
// message that the file holds.
func (f *File) lineOfQuoted(msg string) int {
	if f.root == nil {
		return 0
	}
	var words []string
	for rest := msg; ; {
		i := strings.IndexByte(rest, '"')
		if i < 0 {
			break
		}
		q, err := strconv.QuotedPrefix(rest[i:])
		if err != nil {
			break
		}
		if w, err := strconv.Unquote(q); err == nil && w != "" {
			words = append(words, w)
		}
		rest = rest[i+len(q):]
	}
	var find func(n *yaml.Node, want string) int
	find = func(n *yaml.Node, want string) int {
		if n.Kind == yaml.ScalarNode && (n.Value == want || strings.Contains(n.Value, want)) {
			return n.Line
		}
		for _, c := range n.Content {
			if l := find(c, want); l > 0 {
				return l
			}
		}
		return 0
	}
	for i := len(words) - 1; i >= 0; i-- {
		if l := find(f.root, words[i]); l > 0 {
			return l
		}
	}
	return 0
}

// ErrNoConfig is returned when no configuration has been loaded yet.
var ErrNoConfig = errors.New("no configuration loaded")

// Summary is a short description of a runtime, for check-config and the
// status page.
func (rt *Runtime) Summary() string {
	var b strings.Builder
	recv := rt.Router.Receivers()
	fmt.Fprintf(&b, "receivers: %d\n", len(recv))
	for _, r := range recv {
		fmt.Fprintf(&b, "  %s: %d numbers, send_resolved=%t\n", r.Name, len(r.Numbers), r.SendResolved)
	}
	routes := 0
	rt.Router.Tree().Walk(func(*routing.Node, int) { routes++ })
	fmt.Fprintf(&b, "routes: %d (the root included)\n", routes)
	fmt.Fprintf(&b, "sources: alertmanager")
	for _, n := range rt.Intake.SourceNames() {
		fmt.Fprintf(&b, ", %s", n)
	}
	b.WriteString("\n")
	return b.String()
}

// Exists reports whether a file exists, for flags that name optional files.
func Exists(p string) bool {
	_, err := os.Stat(p)
	return err == nil
}
