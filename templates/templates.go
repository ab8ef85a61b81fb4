// Package templates renders a notification into the text of one SMS: it runs
// Alertmanager's template engine (so every function and data field an
// Alertmanager user knows works), rewrites the result into the GSM 03.38
// alphabet the SMS provider takes, and fits it to a budget of segments.
package templates

import (
	"bytes"
	_ "embed"
	"errors"
	"fmt"
	tmplhtml "html/template"
	"log/slog"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	tmpltext "text/template"
	"time"

	"github.com/prometheus/alertmanager/template"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/smsbridge/smsbridge/alert"
)

// defaultTemplates defines sms.default and sms.webhook and their helpers.
//
//go:embed sms.tmpl
var defaultTemplates []byte

// Names of the default templates.
const (
	DefaultTemplate = "sms.default"
	WebhookTemplate = "sms.webhook"
	// ReplyTemplate is the line Render ends a text with when it has a
	// reply code (Data.Reply): "Reply ACK 12 to silence 1h".
	ReplyTemplate = "sms.reply"
)

// Data is what templates execute against: Alertmanager's template data (so
// .Alerts.Firing, .CommonLabels.SortedPairs and friends work unchanged) plus
// what smsbridge knows about the notification.
type Data struct {
	template.Data

	// Source is "alertmanager" or the name of the generic webhook the
	// notification came through.
	Source string `json:"source"`
	// GroupKey identifies the Alertmanager group (or webhook event).
	GroupKey string `json:"groupKey"`
	// TruncatedAlerts counts alerts the sender left out of the payload
	// (Alertmanager's max_alerts, Grafana's truncatedAlerts).
	TruncatedAlerts int `json:"truncatedAlerts"`
	// ReceivedAt is when smsbridge received the notification.
	ReceivedAt time.Time `json:"receivedAt"`
	// Reply is what the recipient may answer with; its Code is empty
	// when the text carries none (replies off, or not firing).
	Reply Reply `json:"reply"`
}

// Reply is the reply code of a firing SMS when replies are enabled.
type Reply struct {
	// Code is the code the recipient replies with ("ACK 12"). The store
	// chooses it when the text is written; while the text is rendered it
	// is a placeholder as wide as the widest code, which the store
	// replaces, so a template may place it anywhere but should not
	// transform it.
	Code string `json:"code"`
	// Silence is how long an acknowledgement silences the group ("1h"),
	// or empty when it silences nothing (no alertmanager_api, or not an
	// Alertmanager group): then it only acknowledges.
	Silence string `json:"silence"`
}

// NewData is the template data of n: every field of the notification,
// ExternalURL included, reaches the templates through it.
func NewData(n *alert.Notification) *Data {
	return &Data{
		Data:            n.Data,
		Source:          n.Source,
		GroupKey:        n.GroupKey,
		TruncatedAlerts: n.TruncatedAlerts,
		ReceivedAt:      n.ReceivedAt,
	}
}

// FirstAlerts returns up to n alerts to list one by one: firing ones first,
// then resolved ones, then any others, each in payload order.
func (d *Data) FirstAlerts(n int) template.Alerts {
	out := make(template.Alerts, 0, min(max(n, 0), len(d.Alerts)))
	for _, pass := range []func(template.Alert) bool{
		func(a template.Alert) bool { return a.Status == "firing" },
		func(a template.Alert) bool { return a.Status == "resolved" },
		func(a template.Alert) bool { return a.Status != "firing" && a.Status != "resolved" },
	} {
		for _, a := range d.Alerts {
			if len(out) >= n {
				return out
			}
			if pass(a) {
				out = append(out, a)
			}
		}
	}
	return out
}

// MoreAlerts returns how many alerts are not shown when shown of them are
// listed: the rest of the payload plus those the sender truncated.
func (d *Data) MoreAlerts(shown int) int {
	return max(len(d.Alerts)-shown, 0) + max(d.TruncatedAlerts, 0)
}

// FiringTotal counts the group's firing alerts, those the sender
// truncated included: the payload does not say what they were, so they
// count as firing while the group fires. A count that errs is better high
// than low, and the header then agrees with "+N more".
func (d *Data) FiringTotal() int {
	n := len(d.Alerts.Firing())
	if d.Status == "firing" {
		n += max(d.TruncatedAlerts, 0)
	}
	return n
}

// ResolvedTotal counts the group's resolved alerts, those the sender
// truncated included when the whole group is resolved.
func (d *Data) ResolvedTotal() int {
	n := len(d.Alerts.Resolved())
	if d.Status == "resolved" {
		n += max(d.TruncatedAlerts, 0)
	}
	return n
}

// Metrics counts template failures.
type Metrics struct {
	errors *prometheus.CounterVec
}

// Reasons a render fell back to the default text: the values of the
// reason label of smsbridge_template_errors_total.
const (
	// ReasonError: the template failed to execute, or rendered nothing.
	ReasonError = "error"
	// ReasonTimeout: it ran longer than the time limit (or was not run
	// because too many overrunning renders are still running).
	ReasonTimeout = "timeout"
	// ReasonTooLarge: it wrote more than the output cap.
	ReasonTooLarge = "too_large"
)

// Reasons lists the reason label's values.
var Reasons = []string{ReasonError, ReasonTimeout, ReasonTooLarge}

// NewMetrics registers the package's metrics with reg.
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return &Metrics{
		errors: promauto.With(reg).NewCounterVec(prometheus.CounterOpts{
			Name: "smsbridge_template_errors_total",
			Help: "Renders whose template failed or exceeded the render limits (time, output size), so that the default template's text was sent instead, by receiver and reason.",
		}, []string{"receiver", "reason"}),
	}
}

// Render limits, applied to every execution of a template. A template
// over either is abandoned and the built-in default text is sent instead:
// an alert storm must not turn a template into minutes of CPU and
// gigabytes of memory in the request path.
const (
	// MaxRenderTime bounds one execution.
	MaxRenderTime = time.Second
	// MaxRenderOutput bounds what one execution writes, in bytes, before
	// the text is fitted to its segments (three segments are under 500).
	MaxRenderOutput = 64 << 10
	// CheckAlerts is the size of the synthetic group CheckLimits renders.
	CheckAlerts = 400
	// maxRunaway is how many executions that overran their time may still
	// be running (text/template cannot be stopped from outside; one that
	// writes is stopped at its next write, one that only loops runs on)
	// before user templates are no longer started at all.
	maxRunaway = 2
)

// Limits bound one template execution; zero fields take the defaults.
type Limits struct {
	// Time is MaxRenderTime by default.
	Time time.Duration
	// Output is MaxRenderOutput by default.
	Output int
}

func (l Limits) withDefaults() Limits {
	if l.Time <= 0 {
		l.Time = MaxRenderTime
	}
	if l.Output <= 0 {
		l.Output = MaxRenderOutput
	}
	return l
}

// Options configures a Renderer.
type Options struct {
	// Files are globs of user template files, parsed after the default
	// templates, so that they may redefine sms.default and sms.webhook. A
	// glob that matches nothing is an error: it is a typo or a missing
	// mount, and the receivers using its templates would fail.
	Files []string
	// Logger receives a warning for each failed template; nil discards.
	Logger *slog.Logger
	// Metrics counts failed templates; nil counts nothing.
	Metrics *Metrics
	// Receivers are the configured receiver names, whose error counters
	// are created at zero.
	Receivers []string
	// Limits bound every execution; zero takes MaxRenderTime and
	// MaxRenderOutput.
	Limits Limits
}

// FileError is New's error for one entry of Options.Files: a bad pattern,
// or a file it matches that does not parse. Index is the entry's position,
// so that a configuration error can point at its line.
type FileError struct {
	Index int
	Err   error
}

func (e *FileError) Error() string { return e.Err.Error() }

func (e *FileError) Unwrap() error { return e.Err }

// Renderer turns notifications into SMS text. It is safe for concurrent use.
type Renderer struct {
	// tmpl holds Alertmanager's default templates, ours and the user's.
	tmpl *template.Template
	// all is the text template set inside tmpl, and base one holding only
	// ours, so that the fallback still works when a user file redefines
	// sms.default badly. Each distinct template string is parsed against
	// them once and cached: Alertmanager's ExecuteTextString clones and
	// parses the whole set on every call, which costs far more than
	// executing it.
	all, base compiled
	logger    *slog.Logger
	metrics   *Metrics
	limits    Limits
	// runaway counts executions abandoned for their time that are still
	// running.
	runaway atomic.Int32
	// workers run the executions that have a time limit.
	workers *workers
	// files are the template files read, for errors.
	files []string
}

// New parses the default templates and the user's template files. A parse
// error is a *FileError that names the file and line; a redefined default
// template that fails against sample data names the template.
func New(opts Options) (*Renderer, error) {
	logger := opts.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	var allText, baseText *tmpltext.Template
	var read []string
	t, err := template.FromGlobs(nil, captureText(&allText))
	if err != nil {
		return nil, fmt.Errorf("load alertmanager default templates: %w", err)
	}
	if err := t.Parse(bytes.NewReader(defaultTemplates)); err != nil {
		return nil, fmt.Errorf("parse default sms templates: %w", err)
	}
	for i, glob := range opts.Files {
		files, err := filepath.Glob(glob)
		if err != nil {
			return nil, &FileError{Index: i, Err: fmt.Errorf("template files %q: %w", glob, err)}
		}
		if len(files) == 0 {
			return nil, &FileError{Index: i, Err: fmt.Errorf("template files %q match no file", glob)}
		}
		read = append(read, files...)
		// One file at a time, so that an error names the whole path and
		// not only the base name text/template reports.
		for _, f := range files {
			if err := t.FromGlob(escapeGlob(f)); err != nil {
				return nil, &FileError{Index: i, Err: fmt.Errorf("template file %s: %w", f, err)}
			}
		}
	}
	// Only the text set inside is kept, as the fallback's.
	builtin, err := template.New(captureText(&baseText))
	if err != nil {
		return nil, fmt.Errorf("create template: %w", err)
	}
	if err := builtin.Parse(bytes.NewReader(defaultTemplates)); err != nil {
		return nil, fmt.Errorf("parse default sms templates: %w", err)
	}
	w := &workers{jobs: make(chan func())}
	r := &Renderer{tmpl: t, logger: logger, metrics: opts.Metrics, limits: opts.Limits.withDefaults(), workers: w,
		all: compiled{set: allText, workers: w}, base: compiled{set: baseText, workers: w}, files: read}
	if r.metrics != nil {
		for _, name := range opts.Receivers {
			for _, reason := range Reasons {
				r.metrics.errors.WithLabelValues(name, reason)
			}
		}
	}
	// A user file may redefine the default templates; a broken one is a
	// config error now rather than a fallback at 3 a.m.
	am, hook := sampleData()
	if err := r.explainUndefined(r.check(invoke(DefaultTemplate), am)); err != nil {
		return nil, fmt.Errorf("template %s: %w", DefaultTemplate, err)
	}
	if err := r.explainUndefined(r.check(invoke(WebhookTemplate), hook)); err != nil {
		return nil, fmt.Errorf("template %s: %w", WebhookTemplate, err)
	}
	if err := r.checkDigest(am); err != nil {
		return nil, err
	}
	withCode := *am
	withCode.Reply = Reply{Code: "12", Silence: "1h"}
	if _, err := r.user(invoke(ReplyTemplate), &withCode); err != nil && !errors.Is(err, errEmptyText) {
		return nil, fmt.Errorf("template %s: %w", ReplyTemplate, err)
	}
	return r, nil
}

// escapeGlob quotes the glob metacharacters of a file name so that
// FromGlob matches exactly that file.
func escapeGlob(path string) string {
	if runtime.GOOS == "windows" {
		// Backslash separates paths there; such names are rare enough.
		return path
	}
	var b strings.Builder
	for _, c := range path {
		if strings.ContainsRune(`*?[\`, c) {
			b.WriteByte('\\')
		}
		b.WriteRune(c)
	}
	return b.String()
}

// invoke returns template text that executes the named template.
func invoke(name string) string {
	return `{{ template "` + name + `" . }}`
}

// defaultFor returns the default template text for d.
func defaultFor(d *Data) string {
	if d.Source == alert.SourceAlertmanager {
		return invoke(DefaultTemplate)
	}
	return invoke(WebhookTemplate)
}

// Check parses a per-receiver template and executes it against a sample
// Alertmanager group (one alert firing, one resolved), so that syntax errors,
// unknown functions and references to undefined templates are found at
// config load. The empty template (the default) is always valid.
func (r *Renderer) Check(tmpl string) error {
	if tmpl == "" {
		return nil
	}
	am, _ := sampleData()
	return r.explainUndefined(r.check(tmpl, am))
}

// undefinedRE finds the name in text/template's error for a template that
// was never defined.
var undefinedRE = regexp.MustCompile(`template "([^"]*)" not defined`)

// explainUndefined adds to an error about an undefined template where the
// renderer looked for it: the built-in templates and each file it read.
func (r *Renderer) explainUndefined(err error) error {
	if err == nil {
		return nil
	}
	m := undefinedRE.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	where := "templates.files names no file"
	if len(r.files) > 0 {
		where = "the template files read are " + strings.Join(r.files, ", ")
	}
	return fmt.Errorf("%w: no template named %q is built in or defined in a template file (%s)", err, m[1], where)
}

// check executes tmpl against d, within the render limits, and tells
// parse errors from execution ones.
func (r *Renderer) check(tmpl string, d *Data) error {
	if _, err := r.all.lookup(tmpl); err != nil {
		return fmt.Errorf("parse: %w", err)
	}
	if _, err := r.all.execute(tmpl, d, r.limits, &r.runaway); err != nil && !errors.Is(err, errEmptyText) {
		return fmt.Errorf("execute against sample data: %w", err)
	}
	return nil
}

// CheckLimits renders tmpl (when empty: the default templates, as a user
// file may have redefined them) against a synthetic group of CheckAlerts
// alerts, and reports it when the render limits would cut it off: such a
// notification would get the built-in default text instead. Other
// failures are Check's to report.
func (r *Renderer) CheckLimits(tmpl string) error {
	am, hook := bigSampleData(CheckAlerts)
	type run struct {
		tmpl string
		d    *Data
	}
	runs := []run{{tmpl, am}}
	if tmpl == "" {
		runs = []run{{invoke(DefaultTemplate), am}, {invoke(WebhookTemplate), hook}}
	}
	for _, rn := range runs {
		_, err := r.all.execute(rn.tmpl, rn.d, r.limits, &r.runaway)
		switch {
		case errors.Is(err, errTooLarge):
			return fmt.Errorf("for a group of %d alerts it writes more than %d KiB, the render limit: such notifications get the default text instead", CheckAlerts, r.limits.Output>>10)
		case errors.Is(err, errTimeout):
			return fmt.Errorf("for a group of %d alerts it runs longer than %s, the render limit: such notifications get the default text instead", CheckAlerts, r.limits.Time)
		}
	}
	return nil
}

// Render executes tmpl (the default for d.Source when empty) against d and
// returns the text as GSM 03.38, fitted to maxSegments (DefaultMaxSegments
// when 0 or less), and the segments it takes.
//
// A failing template does not lose the notification: the error is counted
// for receiver and logged, and the built-in default template's text is
// returned with a nil error. So is an empty text, which the provider would
// refuse. Only when the built-in default fails as well is the error returned.
func (r *Renderer) Render(receiver, tmpl string, d *Data, maxSegments int) (text string, segments int, err error) {
	if d == nil {
		return "", 0, errors.New("render: no notification data")
	}
	data := *d
	if tmpl == "" {
		tmpl = defaultFor(&data)
	}
	text, err = r.user(tmpl, &data)
	if err != nil {
		reason := reasonOf(err)
		if r.metrics != nil {
			r.metrics.errors.WithLabelValues(receiver, reason).Inc()
		}
		// The error names the template position and the failed action;
		// template data never holds a credential.
		r.logger.Warn("template failed, sending the default text instead",
			"receiver", receiver, "intake_source", data.Source, "group_key", data.GroupKey, "alerts", len(data.Alerts), "reason", reason, "err", err)
		var fallbackErr error
		text, fallbackErr = r.builtin(defaultFor(&data), &data)
		if fallbackErr != nil {
			return "", 0, fmt.Errorf("render for receiver %q: %w; default template: %w", receiver, err, fallbackErr)
		}
	}
	if data.Reply.Code != "" {
		text = r.withReply(receiver, text, &data, maxSegments)
		return text, Segments(text), nil
	}
	text, segments = r.Plain(text, maxSegments)
	return text, segments, nil
}

// user executes tmpl, which a template file may define or redefine,
// against d within the render limits; while too many earlier executions
// that overran are still running, it starts none.
func (r *Renderer) user(tmpl string, d any) (string, error) {
	if n := r.runaway.Load(); n >= maxRunaway {
		return "", fmt.Errorf("%w: %d earlier renders that overran %s are still running", errRunaway, n, r.limits.Time)
	}
	return r.all.execute(tmpl, d, r.limits, &r.runaway)
}

// builtin executes tmpl from the built-in templates against d: ours and
// bounded, it runs without a goroutine of its own, under the output cap.
func (r *Renderer) builtin(tmpl string, d any) (string, error) {
	return r.base.execute(tmpl, d, Limits{Output: r.limits.Output}, nil)
}

// withReply fits text, with the reply line (sms.reply) after it, to
// maxSegments: the text is cut, never the line, so the code always
// reaches the phone. A template that placed the code itself, where it
// survives the fitting, gets no line; one whose sms.reply renders nothing
// gets none either.
func (r *Renderer) withReply(receiver, text string, d *Data, maxSegments int) string {
	if strings.Contains(text, d.Reply.Code) {
		if fitted := Fit(text, maxSegments); strings.Contains(fitted, d.Reply.Code) {
			return fitted
		}
	}
	line, err := r.user(invoke(ReplyTemplate), d)
	if err != nil && !errors.Is(err, errEmptyText) {
		r.failed(receiver, d.Source, d.GroupKey, err)
		line, err = r.builtin(invoke(ReplyTemplate), d)
	}
	if err != nil || line == "" {
		return Fit(text, maxSegments)
	}
	return FitSuffix(text, "\n"+line, maxSegments)
}

// Plain makes a text that no template produced sendable: GSM 03.38, fitted
// to maxSegments (DefaultMaxSegments when 0 or less), and returns it with
// the segments it takes. Render's output goes through it too, so a test
// SMS or a last-resort text is sent exactly as a rendered one would be.
func (r *Renderer) Plain(text string, maxSegments int) (string, int) {
	text = Fit(text, maxSegments)
	return text, Segments(text)
}

// Errors of one execution.
var (
	// errEmptyText marks a template that rendered nothing worth sending.
	errEmptyText = errors.New("template rendered an empty text")
	// errTooLarge is the capped writer's error past the output cap.
	errTooLarge = errors.New("template output exceeds the render limit")
	// errTimeout marks an execution abandoned at the time limit.
	errTimeout = errors.New("template exceeds the render time limit")
	// errRunaway marks a render not started while abandoned ones run.
	errRunaway = errors.New("template not run")
	// errAbandoned stops an abandoned execution at its next write.
	errAbandoned = errors.New("template execution abandoned")
)

// reasonOf is the metric reason for a render error.
func reasonOf(err error) string {
	switch {
	case errors.Is(err, errTooLarge):
		return ReasonTooLarge
	case errors.Is(err, errTimeout), errors.Is(err, errRunaway):
		return ReasonTimeout
	}
	return ReasonError
}

// captureText is an Alertmanager template option that keeps a pointer
// to the text template set it builds, for compiled.
func captureText(p **tmpltext.Template) template.Option {
	return func(text *tmpltext.Template, _ *tmplhtml.Template) { *p = text }
}

// compiled parses each template string once against a template set, as
// Alertmanager's ExecuteTextString would on every call, and keeps it.
type compiled struct {
	set     *tmpltext.Template
	cache   sync.Map // template string -> *tmpltext.Template
	workers *workers
}

// workers run functions on goroutines that outlive one call: a template
// execution grows its goroutine's stack to a few dozen KiB, and growing a
// fresh goroutine's stack on every render cost more than the render. A
// call is handed to an idle worker, or to a new one when none is idle; a
// worker idle for workerIdle ends.
type workers struct {
	jobs chan func()
}

// workerIdle is how long a worker waits for the next call before it ends.
const workerIdle = time.Minute

func (w *workers) run(f func()) {
	select {
	case w.jobs <- f:
	default:
		go w.work(f)
	}
}

func (w *workers) work(f func()) {
	idle := time.NewTimer(workerIdle)
	defer idle.Stop()
	for {
		f()
		idle.Reset(workerIdle)
		select {
		case f = <-w.jobs:
		case <-idle.C:
			return
		}
	}
}

func (c *compiled) lookup(tmpl string) (*tmpltext.Template, error) {
	if t, ok := c.cache.Load(tmpl); ok {
		return t.(*tmpltext.Template), nil
	}
	t, err := c.set.Clone()
	if err != nil {
		return nil, err
	}
	// As in Alertmanager's execText; routeLabels has no route labels to
	// give outside Alertmanager's dispatcher.
	t, err = t.New("").Option("missingkey=zero").
		Funcs(tmpltext.FuncMap{"routeLabels": func(string) (string, error) { return "", nil }}).
		Parse(tmpl)
	if err != nil {
		return nil, err
	}
	actual, _ := c.cache.LoadOrStore(tmpl, t)
	return actual.(*tmpltext.Template), nil
}

// Execution states of one run, for the race between its end and the
// caller's timer.
const (
	runRunning int32 = iota
	runFinished
	runAbandoned
)

// cappedWriter collects an execution's output up to max bytes. Past the
// cap, or once the caller gave up, Write fails, and text/template stops
// executing at once with that error: the only way to stop it from outside.
type cappedWriter struct {
	buf   []byte
	max   int
	state atomic.Int32
}

func (w *cappedWriter) Write(p []byte) (int, error) {
	if w.state.Load() == runAbandoned {
		return 0, errAbandoned
	}
	if len(w.buf)+len(p) > w.max {
		return 0, fmt.Errorf("%w of %d bytes", errTooLarge, w.max)
	}
	w.buf = append(w.buf, p...)
	return len(p), nil
}

// execute runs tmpl against d (a *Data, or a digest's *DigestData) within
// lim and returns trimmed GSM text. With runaway set, the execution runs
// in a goroutine of its own and is abandoned at lim.Time (counted in
// runaway until it ends); without, it runs in the caller's and only the
// output cap applies.
func (c *compiled) execute(tmpl string, d any, lim Limits, runaway *atomic.Int32) (string, error) {
	t, err := c.lookup(tmpl)
	if err != nil {
		return "", err
	}
	lim = lim.withDefaults()
	w := &cappedWriter{max: lim.Output, buf: make([]byte, 0, 512)}
	if runaway == nil {
		err = t.Execute(w, d)
	} else {
		done := make(chan error, 1)
		c.workers.run(func() {
			err := t.Execute(w, d)
			if !w.state.CompareAndSwap(runRunning, runFinished) {
				runaway.Add(-1) // abandoned, and now over
			}
			done <- err
		})
		timer := time.NewTimer(lim.Time)
		select {
		case err = <-done:
			timer.Stop()
		case <-timer.C:
			if w.state.CompareAndSwap(runRunning, runAbandoned) {
				runaway.Add(1)
				return "", fmt.Errorf("%w of %s", errTimeout, lim.Time)
			}
			err = <-done // it finished just as the timer fired
		}
	}
	if err != nil {
		return "", err
	}
	out := string(w.buf)
	out = strings.TrimSpace(ToGSM(strings.TrimSpace(out)))
	if out == "" {
		return "", errEmptyText
	}
	return out, nil
}

// sampleData returns the notifications templates are checked against: a
// typical Alertmanager group (one alert firing, one resolved) and a typical
// generic webhook event.
func sampleData() (am, hook *Data) {
	const externalURL = "http://alertmanager.example.com:9093"
	start := time.Date(2024, 1, 2, 3, 4, 5, 0, time.UTC)
	am = &Data{
		Data: template.Data{
			Receiver: "ops",
			Status:   "firing",
			Alerts: template.Alerts{
				{
					Status:       "firing",
					Labels:       template.KV{"alertname": "HighDiskUsage", "severity": "critical", "instance": "db-01:9100", "job": "node"},
					Annotations:  template.KV{"summary": "Disk /var is 95% full", "description": "Disk /var on db-01 is 95% full."},
					StartsAt:     start,
					GeneratorURL: "http://prometheus.example.com:9090/graph",
					Fingerprint:  "0123456789abcdef",
				},
				{
					Status:       "resolved",
					Labels:       template.KV{"alertname": "HighDiskUsage", "severity": "critical", "instance": "db-02:9100", "job": "node"},
					Annotations:  template.KV{"summary": "Disk /var is 91% full", "description": "Disk /var on db-02 is 91% full."},
					StartsAt:     start,
					EndsAt:       start.Add(10 * time.Minute),
					GeneratorURL: "http://prometheus.example.com:9090/graph",
					Fingerprint:  "fedcba9876543210",
				},
			},
			GroupLabels:       template.KV{"alertname": "HighDiskUsage"},
			CommonLabels:      template.KV{"alertname": "HighDiskUsage", "severity": "critical", "job": "node"},
			CommonAnnotations: template.KV{},
			RouteLabels:       template.KV{},
			ExternalURL:       externalURL,
		},
		Source:     alert.SourceAlertmanager,
		GroupKey:   `{}:{alertname="HighDiskUsage"}`,
		ReceivedAt: start.Add(time.Minute),
	}
	hook = &Data{
		Data: template.Data{
			Receiver: "ops",
			Status:   "firing",
			Alerts: template.Alerts{{
				Status:      "firing",
				Labels:      template.KV{"alertname": "WorkflowFailed", "severity": "warning", "job": "deploy"},
				Annotations: template.KV{"summary": "Deploy of main failed"},
				StartsAt:    start,
			}},
			GroupLabels:       template.KV{},
			CommonLabels:      template.KV{"alertname": "WorkflowFailed", "severity": "warning", "job": "deploy"},
			CommonAnnotations: template.KV{"summary": "Deploy of main failed"},
			RouteLabels:       template.KV{},
			ExternalURL:       externalURL,
		},
		Source:     "ci",
		GroupKey:   "ci:42",
		ReceivedAt: start.Add(time.Minute),
	}
	return am, hook
}

// bigSampleData returns sampleData's groups grown to n alerts each, all
// firing, with distinct instances: the storm CheckLimits renders.
func bigSampleData(n int) (am, hook *Data) {
	am, hook = sampleData()
	for _, d := range []*Data{am, hook} {
		proto := d.Alerts[0]
		alerts := make(template.Alerts, n)
		for i := range alerts {
			a := proto
			a.Labels = template.KV{}
			for k, v := range proto.Labels {
				a.Labels[k] = v
			}
			a.Labels["instance"] = fmt.Sprintf("host-%03d:9100", i)
			a.Fingerprint = fmt.Sprintf("%016x", i)
			alerts[i] = a
		}
		d.Alerts = alerts
	}
	return am, hook
}
