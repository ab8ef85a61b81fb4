// Command smsbridge turns alerts into SMS: it takes Alertmanager and other
// JSON webhooks, routes each notification by its labels to on-call numbers,
// renders a short text and sends it through an SMS provider's HTTP API,
// durably and at least once.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"net/url"
	"os"
	"os/signal"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/alecthomas/kingpin/v2"
	"github.com/labstack/echo/v4"
	"github.com/labstack/echo/v4/middleware"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	versioncollector "github.com/prometheus/client_golang/prometheus/collectors/version"
	"github.com/prometheus/client_golang/prometheus/promauto"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/promslog"
	promslogflag "github.com/prometheus/common/promslog/flag"
	"github.com/prometheus/common/version"
	"github.com/prometheus/exporter-toolkit/web"
	"github.com/prometheus/exporter-toolkit/web/kingpinflag"
	"golang.org/x/net/idna"

	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/dispatch"
	"github.com/smsbridge/smsbridge/escalate"
	"github.com/smsbridge/smsbridge/generation"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/pipeline"
	"github.com/smsbridge/smsbridge/receiver"
	"github.com/smsbridge/smsbridge/roster"
	"github.com/smsbridge/smsbridge/sms"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
	"github.com/smsbridge/smsbridge/status"
	"github.com/smsbridge/smsbridge/templates"
	"github.com/smsbridge/smsbridge/twoway"
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// flags are the daemon's command line.
type flags struct {
	configFile  string
	storagePath string
	dryRun      bool
	pprof       bool
	web         *web.FlagConfig
	log         *promslog.Config
	// lifecycle opens POST /-/reload, adminAPI the admin API's writes.
	lifecycle bool
	adminAPI  bool
	// externalURL and routePrefix are as given; resolveWeb computes what
	// the bridge uses from them.
	externalURL string
	routePrefix string
	// external is the URL the bridge is reached at, and prefix the path
	// every route is served under ("/" for none).
	external *url.URL
	prefix   string
	// allowedHosts are --web.allowed-host: more names browsers may post
	// to the bridge under (see ownHosts).
	allowedHosts []string
}

// webConfigFile is --web.config.file, empty when not given.
func (f *flags) webConfigFile() string {
	if f.web == nil || f.web.WebConfigFile == nil {
		return ""
	}
	return *f.web.WebConfigFile
}

func run(args []string, stdout, stderr *os.File) int {
	app := kingpin.New("smsbridge", "Turns alerts into SMS: an Alertmanager webhook receiver and generic JSON webhooks, routed to on-call numbers.")
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Version(version.Print("smsbridge"))
	app.HelpFlag.Short('h')
	// --help and --version end the run with their code, not the process:
	// run's caller exits.
	terminated := -1
	app.Terminate(func(code int) { terminated = code })
	f := &flags{log: &promslog.Config{}}
	// The daemon's flags belong to the application, not to the serve
	// command, so that `smsbridge --help` lists them: serve is what runs
	// when no command is named.
	app.Flag("config.file", "Configuration file.").Default("smsbridge.yml").StringVar(&f.configFile)
	app.Flag("storage.path", "Directory of the durable outbox.").Default("data/").StringVar(&f.storagePath)
	app.Flag("sms.dry-run", "Send through an in-process fake of the SMS API and log each message; no key, no network. "+
		"With check-config: do not require the API key.").BoolVar(&f.dryRun)
	app.Flag("web.external-url", "The URL under which the bridge is reached from outside (for example behind a reverse proxy), "+
		"used for the links of the status page. Default: http://<hostname>:<port>/ of --web.listen-address (its own address when that is a loopback one), "+
		"with --web.route-prefix as its path.").PlaceHolder("URL").StringVar(&f.externalURL)
	app.Flag("web.allowed-host", "A name, besides IP addresses, localhost, this machine's host name and --web.external-url's host, under which browsers "+
		"may use the status page's forms (a defence against DNS rebinding). Repeatable.").PlaceHolder("NAME").StringsVar(&f.allowedHosts)
	app.Flag("web.route-prefix", "Prefix of every HTTP path the bridge serves (the status page, the API, /metrics, /-/ready). "+
		"Default: the path of --web.external-url.").PlaceHolder("PATH").StringVar(&f.routePrefix)
	app.Flag("web.enable-pprof", "Serve Go's profiler at /debug/pprof/ (behind --web.config.file's authentication).").BoolVar(&f.pprof)
	f.web = kingpinflag.AddFlags(app, ":9754")
	app.Flag("web.enable-lifecycle", "Allow POST /-/reload (SIGHUP reloads regardless).").BoolVar(&f.lifecycle)
	app.Flag("web.enable-admin-api", "Allow the admin API's endpoints that change state: retry a delivery, send a test SMS, on-call overrides.").BoolVar(&f.adminAPI)
	promslogflag.AddFlags(app, f.log)

	app.Command("serve", "Run the bridge (the default).").Default()
	checkCmd := app.Command("check-config", "Validate the configuration and print a summary.")
	routesTestCmd, routesFlags := addRoutesCommand(app)
	sendTestCmd, sendTestFlags := addSendTestCommand(app)
	oncallCmds := addOncallCommands(app)

	cmd, err := app.Parse(args)
	switch {
	case terminated >= 0:
		return terminated
	case err != nil:
		fmt.Fprintf(stderr, "smsbridge: error: %v, try --help\n", err)
		return 2
	}
	logger := promslog.New(f.log)
	switch cmd {
	case checkCmd.FullCommand():
		return checkConfig(f, stdout, stderr)
	case routesTestCmd.FullCommand():
		return runRoutesTest(f.configFile, routesFlags, stdout, stderr)
	case sendTestCmd.FullCommand():
		return runSendTest(sendTestFlags, stdout, stderr)
	case oncallCmds.who.FullCommand():
		return runOncallWho(f.configFile, oncallCmds.flags, stdout, stderr)
	case oncallCmds.add.FullCommand(), oncallCmds.list.FullCommand(), oncallCmds.del.FullCommand():
		return runOverrideCommand(cmd, oncallCmds, stdout, stderr)
	default:
		if err := resolveWeb(f); err != nil {
			fmt.Fprintf(stderr, "smsbridge: error: %v\n", err)
			return 2
		}
		if err := serveBridge(f, logger); err != nil {
			logger.Error("smsbridge stopped", "err", err)
			return 1
		}
		return 0
	}
}

func checkConfig(f *flags, stdout, stderr *os.File) int {
	file, err := config.LoadFile(f.configFile)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	g, err := generation.Build(file, generation.Options{DryRun: f.dryRun})
	if err != nil {
		fmt.Fprintln(stderr, err)
		return 1
	}
	for _, w := range g.Warnings {
		fmt.Fprintln(stderr, w)
	}
	fmt.Fprintf(stdout, "%s: ok\n%s", file.Path, g.Summary())
	return 0
}

// reloadMetrics report the last configuration reload and the
// configuration in force.
type reloadMetrics struct {
	success   prometheus.Gauge
	timestamp prometheus.Gauge
	hash      prometheus.Gauge
	info      *prometheus.GaugeVec
}

func newReloadMetrics(reg prometheus.Registerer) *reloadMetrics {
	f := promauto.With(reg)
	return &reloadMetrics{
		success: f.NewGauge(prometheus.GaugeOpts{
			Name: "smsbridge_config_last_reload_successful",
			Help: "Whether the last configuration reload attempt was successful.",
		}),
		timestamp: f.NewGauge(prometheus.GaugeOpts{
			Name: "smsbridge_config_last_reload_success_timestamp_seconds",
			Help: "Timestamp of the last successful configuration reload.",
		}),
		hash: f.NewGauge(prometheus.GaugeOpts{
			Name: "smsbridge_config_hash",
			Help: "Hash of the configuration file in force, as a number: the first 48 bits of its SHA-256 (as alertmanager_config_hash). It changes when a reload applies a changed file.",
		}),
		info: f.NewGaugeVec(prometheus.GaugeOpts{
			Name: "smsbridge_config_info",
			Help: "1 for the configuration in force; hash is the start of its SHA-256, as the status page shows it.",
		}, []string{"hash"}),
	}
}

// configHashValue turns a hex SHA-256 into the value of
// smsbridge_config_hash: its first 48 bits, which a float64 holds exactly.
func configHashValue(hexHash string) float64 {
	if len(hexHash) < 12 {
		return 0
	}
	v, err := strconv.ParseUint(hexHash[:12], 16, 64)
	if err != nil {
		return 0
	}
	return float64(v)
}

// setConfig records the configuration in force.
func (m *reloadMetrics) setConfig(hexHash string) {
	m.hash.Set(configHashValue(hexHash))
	m.info.Reset()
	m.info.WithLabelValues(hexHash[:min(len(hexHash), 12)]).Set(1)
}

// bridge is one running daemon: everything main wires together.
type bridge struct {
	flags  *flags
	logger *slog.Logger
	reg    *prometheus.Registry
	// gen is the configuration generation in force; every reader loads it
	// once per request or step.
	gen        atomic.Pointer[generation.Generation]
	store      outbox.Store
	intake     *receiver.Handler
	dispatcher *dispatch.Dispatcher
	fake       *smsfake.Server
	reloadM    *reloadMetrics
	tmplM      *templates.Metrics
	smsM       *sms.Metrics
	dispatchM  *dispatch.Metrics
	started    time.Time
	reloadMu   sync.Mutex
	readiness  *readiness
	// lastReload is the result of the last (re)load, for the status page.
	lastReload atomic.Pointer[reloadResult]

	// roster keeps the on-call overrides and sends handoff notices; it
	// outlives generations.
	roster  *roster.Roster
	rosterM *roster.Metrics
	muteM   *pipeline.MuteMetrics

	// twoway acts on the provider's callbacks and creates silences; it
	// outlives generations. dryRunToken is a dry run's callback token.
	twoway      *twoway.Processor
	twowayM     *twoway.Metrics
	dryRunToken string

	// escalator sends escalation steps as they come due; it outlives
	// generations.
	escalator *escalate.Escalator
	// leader is the store's Leadership, watched, when replicas share the
	// store; nil otherwise.
	leader    *leaderWatch
	escalateM *escalate.Metrics
}

type reloadResult struct {
	At  time.Time
	Err string
}

func serveBridge(f *flags, logger *slog.Logger) error {
	if os.Getenv("GOGC") == "" {
		// The live heap is a couple of megabytes, so at the default of 100
		// the collector runs constantly; 400 cut CPU per request by a fifth
		// for about 10 MB more memory (docs/performance.md).
		debug.SetGCPercent(400)
	}
	b, err := newBridge(f, logger)
	if err != nil {
		return err
	}
	defer b.close()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	return b.serve(ctx, hup)
}

func newBridge(f *flags, logger *slog.Logger) (*bridge, error) {
	b := &bridge{flags: f, logger: logger, reg: prometheus.NewRegistry(), started: time.Now()}
	b.reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		versioncollector.NewCollector("smsbridge"),
	)
	b.reloadM = newReloadMetrics(b.reg)
	b.tmplM = templates.NewMetrics(b.reg)
	b.smsM = sms.NewMetrics(b.reg)
	b.dispatchM = dispatch.NewMetrics(b.reg)
	b.muteM = pipeline.NewMuteMetrics(b.reg)
	b.rosterM = roster.NewMetrics(b.reg)
	b.twowayM = twoway.NewMetrics(b.reg)
	b.escalateM = escalate.NewMetrics(b.reg)
	logger.Info("starting smsbridge", "version", version.Info(), "build_context", version.BuildContext())

	file, err := config.LoadFile(f.configFile)
	if err != nil {
		b.reloadM.success.Set(0)
		return nil, err
	}
	if f.dryRun {
		b.dryRunToken = dryRunToken()
		b.fake = smsfake.NewServer(smsfake.Options{
			APIKey: generation.DryRunKey, Credits: smsfake.Unlimited, Logger: logger.With("component", "dry-run"),
			// A long dry run must not grow without bound: the log is the record.
			MaxMessages: 1000,
			// The ids it gives say, in the store and on the page, that
			// nothing was sent.
			IDPrefix: status.DryRunIDPrefix,
			// It plays the provider's webhooks too: a receipt for each
			// message, and replies (POST /api/v1/sms/dry-run/reply), to
			// the bridge's own callback endpoint.
			CallbackURL:   dryRunCallbackURL(f, b.dryRunToken),
			CallbackDelay: time.Second,
		})
		logger.Warn("dry run: messages go to an in-process fake of the SMS API and are only logged", "fake_url", b.fake.URL)
	}
	store, err := b.openStore(file)
	if err != nil {
		b.closeFake()
		return nil, err
	}
	b.store = store
	hc, _ := store.(outbox.HealthChecker) // nil: no check, write errors still answer 503
	b.readiness = newReadiness(hc, b.reg, logger.With("component", "readiness"))
	b.readiness.check(context.Background())
	b.newEscalator()
	b.newTwoWay()
	b.roster = roster.New(roster.Options{
		Store:   store,
		View:    b.rosterView,
		Logger:  logger.With("component", "oncall"),
		Metrics: b.rosterM,
		// A notice is its own guard only while the store keeps it.
		MaxLate: time.Duration(file.Config.Storage.Retention),
	})
	if err := b.roster.Load(context.Background()); err != nil {
		b.close()
		return nil, err
	}
	b.reg.MustRegister(b.roster.Collector())
	g, err := b.build(file)
	if err != nil {
		b.reloadM.success.Set(0)
		b.close()
		return nil, err
	}
	b.intake = receiver.New(func() receiver.Intake {
		in := b.gen.Load().Intake()
		in.Health = b.readiness.storeHealth
		return in
	}, logger.With("component", "receiver"), receiver.NewMetrics(b.reg))
	b.apply(g)
	dopts := dispatch.Options{
		Store:    store,
		Settings: func() dispatch.Settings { return b.gen.Load().Dispatch },
		Logger:   logger.With("component", "dispatch"),
		Metrics:  b.dispatchM,
	}
	if b.leader != nil {
		dopts.Leadership = b.leader // one replica dispatches (and escalates) at a time
	}
	b.dispatcher, err = dispatch.New(dopts)
	if err != nil {
		b.close()
		return nil, err
	}
	return b, nil
}

// build compiles a loaded configuration into a generation against the
// running store.
func (b *bridge) build(file *config.File) (*generation.Generation, error) {
	opts := generation.Options{
		DryRun:          b.flags.dryRun,
		Logger:          b.logger.With("component", "pipeline"),
		TemplateMetrics: b.tmplM,
		SMSMetrics:      b.smsM,
		Store:           b.store,
		Overrides:       b.roster,
		MuteMetrics:     b.muteM,
		Escalations:     b.escalator,
	}
	if b.fake != nil {
		opts.DryRunURL = b.fake.URL
		opts.DryRunCallbackToken = b.dryRunToken
	}
	return generation.Build(file, opts)
}

// apply makes g the running generation.
func (b *bridge) apply(g *generation.Generation) *generation.Generation {
	b.intake.Precreate(g.Sources)
	b.dispatchM.InitReceivers(twoway.ReceiverReplies)
	for _, a := range g.Dispatch.Accounts {
		b.dispatchM.InitAccounts(a.Name)
	}
	for _, r := range g.Router.Receivers() {
		b.dispatchM.InitReceivers(r.Name)
		b.muteM.Init(r.Name)
		b.escalateM.Init(r.Name, len(r.Escalate))
	}
	for _, s := range g.Router.Lists() {
		if s.NotifyHandoff {
			b.dispatchM.InitReceivers(roster.NoticeReceiver(s.Name))
			b.rosterM.Init(s.Name)
		}
	}
	prev := b.gen.Swap(g)
	b.readiness.setLoaded()
	b.reloadM.success.Set(1)
	b.reloadM.setConfig(g.File.Hash)
	b.reloadM.timestamp.SetToCurrentTime()
	b.lastReload.Store(&reloadResult{At: time.Now()})
	b.logger.Info("configuration loaded", "file", g.File.Path, "hash", g.File.Hash[:12])
	for _, w := range g.Warnings {
		b.logger.Warn("configuration warning", "warning", w.Error())
	}
	b.warnExposure(g)
	return prev
}

// warnExposure warns about what anyone who reaches the port can do:
// without --web.config.file the status page, the admin API, the metrics
// and (with the flags) reloads and test sends are open, whatever the
// intake's own auth.
func (b *bridge) warnExposure(g *generation.Generation) {
	if b.flags.webConfigFile() != "" {
		return
	}
	if g.Sources.Authenticated() {
		b.logger.Warn("the intake requires credentials but --web.config.file is not set: the status page, the deliveries API (alert texts, masked numbers) and /metrics are open to anyone who can reach the port; see docs/security.md")
	}
	if b.flags.adminAPI {
		b.logger.Warn("--web.enable-admin-api without --web.config.file: anyone who can reach the port can send test SMS, resend deliveries, change who is on call with overrides and cancel escalations (and, in a dry run, play replies); see docs/security.md")
	}
	if b.flags.lifecycle {
		b.logger.Warn("--web.enable-lifecycle without --web.config.file: anyone who can reach the port can reload the configuration; see docs/security.md")
	}
}

// reload builds everything of the new configuration first and swaps only
// when all of it succeeded; on failure the old configuration keeps serving.
// State that outlives a generation (the provider's pause and hold, the
// store) is not part of it.
func (b *bridge) reload() error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	file, err := config.LoadFile(b.flags.configFile)
	var g *generation.Generation
	if err == nil {
		g, err = b.build(file)
	}
	if err != nil {
		b.reloadM.success.Set(0)
		b.lastReload.Store(&reloadResult{At: time.Now(), Err: err.Error()})
		b.logger.Error("configuration reload failed; the previous configuration keeps serving", "err", err)
		return err
	}
	prev := b.apply(g)
	if prev != nil {
		for _, key := range notLive(prev.File.Config, file.Config) {
			b.logger.Warn("a changed setting cannot be applied while running; it takes effect at the next start", "key", key)
		}
		prev.Close()
	}
	return nil
}

// notLive lists the keys that differ between two configurations and that
// a reload cannot apply: the store is opened once.
func notLive(old, cur *config.Config) []string {
	var keys []string
	if old.Storage.Retention != cur.Storage.Retention {
		keys = append(keys, "storage.retention")
	}
	if old.Storage.MinFree != cur.Storage.MinFree {
		keys = append(keys, "storage.min_free")
	}
	if old.Storage.Driver != cur.Storage.Driver || old.Storage.DSN != cur.Storage.DSN || old.Storage.DSNFile != cur.Storage.DSNFile {
		keys = append(keys, "storage.driver/dsn")
	}
	if old.Storage.PollInterval != cur.Storage.PollInterval || *old.Storage.Listen != *cur.Storage.Listen {
		keys = append(keys, "storage.poll_interval/listen")
	}
	return keys
}

func (b *bridge) handler() http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = receiver.ErrorHandler(b.logger)
	e.Use(middleware.Recover())
	e.Use(refuseCrossOrigin(b.logger, ownHosts(b.flags.external, b.flags.allowedHosts)))
	b.intake.Register(e)
	b.registerTwoWay(e)
	b.registerStatus(e)
	e.GET("/metrics", echo.WrapHandler(promhttp.HandlerFor(b.reg, promhttp.HandlerOpts{Registry: b.reg})))
	if b.flags.pprof {
		e.GET("/debug/pprof/*", echo.WrapHandler(http.HandlerFunc(pprof.Index)))
		e.GET("/debug/pprof/cmdline", echo.WrapHandler(http.HandlerFunc(pprof.Cmdline)))
		e.GET("/debug/pprof/profile", echo.WrapHandler(http.HandlerFunc(pprof.Profile)))
		e.GET("/debug/pprof/symbol", echo.WrapHandler(http.HandlerFunc(pprof.Symbol)))
		e.GET("/debug/pprof/trace", echo.WrapHandler(http.HandlerFunc(pprof.Trace)))
	}
	e.GET("/-/healthy", func(c echo.Context) error { return c.String(http.StatusOK, "smsbridge is healthy.\n") })
	e.HEAD("/-/healthy", func(c echo.Context) error { return c.NoContent(http.StatusOK) })
	// One handler for GET and HEAD: a probe by either gets the same
	// answer, and a GET's body says why not.
	e.GET("/-/ready", b.ready)
	e.HEAD("/-/ready", b.ready)
	e.POST("/-/reload", func(c echo.Context) error {
		if err := b.reload(); err != nil {
			return echo.NewHTTPError(http.StatusInternalServerError, "reload failed: "+err.Error())
		}
		return c.String(http.StatusOK, "configuration reloaded\n")
	}, status.NewGate(status.FlagLifecycle, b.flags.lifecycle, b.logger.With("component", "web")).Middleware)
	return e
}

// ready is /-/ready: 200 when a configuration is loaded and the store can
// write durably, else 503 with the reason.
func (b *bridge) ready(c echo.Context) error {
	if why := b.readiness.reason(); why != "" {
		return c.String(http.StatusServiceUnavailable, "smsbridge is not ready: "+why+"\n")
	}
	return c.String(http.StatusOK, "smsbridge is ready.\n")
}

// refuseCrossOrigin refuses, on every path, a state-changing request a
// browser sends from another site: with basic auth from --web.config.file
// the browser would attach the credentials by itself. Senders that are no
// browser (Alertmanager, CI systems, the provider) send no Sec-Fetch-Site
// or Origin header and pass. A browser's state-changing request must also
// name this bridge in its Host header or its Origin (see ownHosts): a
// page whose name was rebound to this address (DNS rebinding) is
// same-origin to the browser, but both name the page's host.
func refuseCrossOrigin(logger *slog.Logger, ownHost func(string) bool) echo.MiddlewareFunc {
	csrf := http.NewCrossOriginProtection()
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			r := c.Request()
			if machineOnly(c) && fromBrowser(r) {
				// Same-origin to the browser is no proof either: a page
				// whose name was rebound to this address (DNS rebinding)
				// is "same-origin" too. No sender of alerts is a browser.
				logger.Warn("browser request to a machine endpoint refused", append(status.Caller(c), "method", r.Method, "path", twoway.RedactPath(r.URL.Path))...)
				return echo.NewHTTPError(http.StatusForbidden, "this endpoint takes requests from Alertmanager, webhooks and the SMS provider, not from a browser page")
			}
			if fromBrowser(r) && !safeMethod(r.Method) && !ownHost(r.Host) && !ownOrigin(r, ownHost) {
				logger.Warn("browser request naming another host refused", append(status.Caller(c), "method", r.Method,
					"path", twoway.RedactPath(r.URL.Path), "host", r.Host[:min(len(r.Host), 100)])...)
				return echo.NewHTTPError(http.StatusForbidden, "refused: a browser's request for a host name that is not this bridge's; "+
					"reach it at its host name, an IP address or localhost, or list the name with --web.allowed-host")
			}
			if err := csrf.Check(c.Request()); err != nil {
				// The path, never a callback's token.
				logger.Warn("cross-origin request refused", append(status.Caller(c), "method", c.Request().Method, "path", twoway.RedactPath(c.Request().URL.Path))...)
				return echo.NewHTTPError(http.StatusForbidden, "cross-origin request refused")
			}
			return next(c)
		}
	}
}

// machineOnly reports whether c's route is one only machines post to:
// the intake endpoints and the provider's callback.
func machineOnly(c echo.Context) bool {
	switch p := c.Path(); {
	case c.Request().Method != http.MethodPost:
		return false
	case p == "/api/v1/alertmanager", strings.HasPrefix(p, "/api/v1/webhooks/"), strings.HasPrefix(p, twoway.CallbackPath):
		return true
	}
	return false
}

// safeMethod reports whether method changes nothing (RFC 9110 safe
// methods).
func safeMethod(method string) bool {
	return method == http.MethodGet || method == http.MethodHead || method == http.MethodOptions
}

// ownHosts returns whether a request's Host header names this bridge: an
// IP address (a name can be rebound, an address cannot), localhost, this
// machine's host name (in full or its first label), the external URL's
// host or one of allowed (--web.allowed-host).
func ownHosts(external *url.URL, allowed []string) func(string) bool {
	names := map[string]bool{"localhost": true}
	add := func(h string) {
		if h = hostName(h); h != "" {
			names[h] = true
		}
	}
	if external != nil {
		add(external.Hostname())
	}
	if h, err := os.Hostname(); err == nil {
		add(h)
		add(strings.Split(h, ".")[0])
	}
	for _, h := range allowed {
		add(h)
	}
	return func(hostport string) bool {
		h := hostport
		if hh, _, err := net.SplitHostPort(hostport); err == nil {
			h = hh
		}
		h = strings.Trim(h, "[]")
		if net.ParseIP(h) != nil {
			return true
		}
		h = hostName(h)
		return h != "" && (names[h] || strings.HasSuffix(h, ".localhost"))
	}
}

// hostName is h as a Host header carries it: lower case, in ASCII
// (a Unicode name in its punycode form), without a trailing dot; "" when
// it is no valid name.
func hostName(h string) string {
	h, err := idna.Lookup.ToASCII(strings.TrimSuffix(strings.ToLower(strings.TrimSpace(h)), "."))
	if err != nil {
		return ""
	}
	return h
}

// ownOrigin reports whether r's Origin (which a page cannot forge) names
// this bridge: a proxy that rewrote Host to its upstream's name leaves it
// as the browser set it.
func ownOrigin(r *http.Request, ownHost func(string) bool) bool {
	o, err := url.Parse(r.Header.Get("Origin"))
	return err == nil && o.Host != "" && ownHost(o.Host)
}

// fromBrowser reports whether r was sent by a browser: browsers add
// Sec-Fetch-Site (or at least Origin) to every POST; Alertmanager, CI
// systems and the provider send neither.
func fromBrowser(r *http.Request) bool {
	return r.Header.Get("Sec-Fetch-Site") != "" || r.Header.Get("Origin") != ""
}

// serve runs until ctx ends, reloading on each value from hup. It checks
// --web.config.file and binds the listen addresses first: when either
// fails, nothing has started and nothing is queued.
func (b *bridge) serve(ctx context.Context, hup <-chan os.Signal) error {
	if err := web.Validate(b.flags.webConfigFile()); err != nil {
		return fmt.Errorf("--web.config.file %s: %w", b.flags.webConfigFile(), err)
	}
	listeners, err := listen(b.flags.web, b.logger)
	if err != nil {
		return err
	}
	defer closeListeners(listeners)
	dctx, dcancel := context.WithCancel(context.Background())
	ddone := make(chan error, 1)
	go func() { ddone <- b.dispatcher.Run(dctx) }()
	rctx, rcancel := context.WithCancel(context.Background())
	rdone := make(chan struct{})
	go func() { _ = b.roster.Run(rctx); close(rdone) }()
	silCtx, silCancel := context.WithCancel(context.Background())
	silDone := make(chan struct{})
	go b.runSilencer(silCtx, silDone)
	escCtx, escCancel := context.WithCancel(context.Background())
	escDone := make(chan struct{})
	go b.runEscalator(escCtx, escDone)

	srv := &http.Server{
		Handler: underPrefix(b.flags.prefix, b.handler()),
		// Slow or stalled bodies must not hold a connection forever.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- web.ServeMultiple(listeners, srv, b.flags.web, b.logger) }()
	hctx, hcancel := context.WithCancel(context.Background())
	defer hcancel()
	go b.readiness.run(hctx)
	b.readiness.setServing(true)
	b.logReady()

loop:
	for {
		select {
		case <-ctx.Done():
			b.logger.Info("shutting down: finishing in-flight requests")
			break loop
		case <-hup:
			_ = b.reload()
		case err = <-errc:
			if errors.Is(err, http.ErrServerClosed) {
				err = nil
			}
			break loop
		}
	}
	b.readiness.setServing(false)
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		b.logger.Warn("http shutdown", "err", serr)
	}
	// Intake is closed: nothing new is accepted, so the dispatcher can stop;
	// it lets in-flight sends finish or returns their rows to the queue.
	// The roster, the silencer and the escalator stop first: a notice,
	// an answer or an escalated page they queue must still be sent.
	rcancel()
	<-rdone
	silCancel()
	<-silDone
	escCancel()
	<-escDone
	dcancel()
	if derr := <-ddone; derr != nil && !errors.Is(derr, context.Canceled) {
		b.logger.Warn("dispatcher stopped", "err", derr)
	}
	return err
}

func (b *bridge) close() {
	if g := b.gen.Load(); g != nil {
		g.Close()
	}
	if b.store != nil {
		if err := b.store.Close(); err != nil {
			b.logger.Warn("close outbox", "err", err)
		}
	}
	b.closeFake()
}

func (b *bridge) closeFake() {
	if b.fake != nil {
		b.fake.Close()
	}
}
