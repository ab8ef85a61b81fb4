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
	"net/http"
	"net/http/pprof"
	"os"
	"os/signal"
	"runtime/debug"
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

	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/dispatch"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/receiver"
	"github.com/smsbridge/smsbridge/sms"
	smsfake "github.com/smsbridge/smsbridge/sms/fake"
	"github.com/smsbridge/smsbridge/templates"
)

// dryRunKey is the fake's API key in a dry run; it guards nothing.
const dryRunKey = "dry-run"

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
}

func run(args []string, stdout, stderr *os.File) int {
	app := kingpin.New("smsbridge", "Turns alerts into SMS: an Alertmanager webhook receiver and generic JSON webhooks, routed to on-call numbers.")
	app.UsageWriter(stdout)
	app.ErrorWriter(stderr)
	app.Version(version.Print("smsbridge"))
	app.HelpFlag.Short('h')
	f := &flags{log: &promslog.Config{}}
	app.Flag("config.file", "Configuration file.").Default("smsbridge.yml").StringVar(&f.configFile)

	serve := app.Command("serve", "Run the bridge (the default).").Default()
	serve.Flag("storage.path", "Directory of the durable outbox.").Default("data/").StringVar(&f.storagePath)
	serve.Flag("sms.dry-run", "Send through an in-process fake of the SMS API and log each message; no key, no network.").BoolVar(&f.dryRun)
	serve.Flag("web.enable-pprof", "Serve Go's profiler at /debug/pprof/ (behind --web.config.file's authentication).").BoolVar(&f.pprof)
	f.web = kingpinflag.AddFlags(serve, ":9754")
	promslogflag.AddFlags(app, f.log)

	checkCmd := app.Command("check-config", "Validate the configuration and print a summary.")
	checkCmd.Flag("sms.dry-run", "Do not require the API key.").BoolVar(&f.dryRun)
	routesTestCmd, routesFlags := addRoutesCommand(app)
	sendTestCmd, sendTestFlags := addSendTestCommand(app)

	cmd, err := app.Parse(args)
	if err != nil {
		fmt.Fprintf(stderr, "smsbridge: %v\n", err)
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
	default:
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
	rt, err := config.Compile(file, config.Options{DryRun: f.dryRun})
	if err != nil {
		fmt.Fprintln(stderr, withFile(file.Path, err))
		return 1
	}
	fmt.Fprintf(stdout, "%s: ok\n%s", file.Path, rt.Summary())
	return 0
}

func withFile(path string, err error) error {
	var ce *config.Error
	if errors.As(err, &ce) && ce.File == "" {
		ce.File = path
	}
	return err
}

// reloadMetrics report the last configuration reload.
type reloadMetrics struct {
	success   prometheus.Gauge
	timestamp prometheus.Gauge
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
	}
}

// bridge is one running daemon: everything main wires together.
type bridge struct {
	flags   *flags
	logger  *slog.Logger
	reg     *prometheus.Registry
	runtime atomic.Pointer[config.Runtime]
	intake  *receiver.Handler
	sender  *swapSender
	store   *outbox.Store
	reloadM *reloadMetrics
	tmplM   *templates.Metrics
	smsM    *sms.Metrics
	// dispatchM is kept to start each new receiver's counters at zero.
	dispatchM *dispatch.Metrics
	fake      *smsfake.Server
	started   time.Time
	reloadMu  sync.Mutex
	ready     atomic.Bool
	// lastReload is the result of the last reload, and loadedAt when the
	// running configuration was applied (unix nanoseconds), for the status
	// page.
	lastReload atomic.Pointer[reloadResult]
	loadedAt   atomic.Int64
	dispatcher *dispatch.Dispatcher
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
	logger.Info("starting smsbridge", "version", version.Info(), "build_context", version.BuildContext())

	rt, err := b.compile()
	if err != nil {
		b.reloadM.success.Set(0)
		return nil, err
	}
	if f.dryRun {
		b.fake = smsfake.NewServer(smsfake.Options{
			APIKey: dryRunKey, Credits: smsfake.Unlimited, Logger: logger.With("component", "dry-run"),
			// A long dry run must not grow without bound: the log is the record.
			MaxMessages: 1000,
		})
		logger.Warn("dry run: messages go to an in-process fake of the SMS API and are only logged", "fake_url", b.fake.URL)
	}
	client, err := b.newClient(rt)
	if err != nil {
		b.closeFake()
		return nil, err
	}
	b.sender = &swapSender{}
	b.sender.c.Store(client)

	store, err := outbox.Open(f.storagePath, outbox.Options{
		Logger:    logger.With("component", "outbox"),
		Metrics:   outbox.NewMetrics(b.reg),
		Retention: time.Duration(rt.File.Config.Storage.Retention),
	})
	if err != nil {
		b.closeFake()
		return nil, fmt.Errorf("open outbox in %s: %w", f.storagePath, err)
	}
	b.store = store
	b.intake = receiver.New(&pipeline{runtime: b.runtime.Load, store: store, logger: logger}, logger, receiver.NewMetrics(b.reg))
	b.dispatchM = dispatch.NewMetrics(b.reg)
	b.apply(rt)
	b.dispatcher = dispatch.New(store, b.sender, dispatchConfig(rt.File.Config), logger.With("component", "dispatch"), b.dispatchM)
	return b, nil
}

func dispatchConfig(c *config.Config) dispatch.Config {
	return dispatch.Config{
		Workers:    c.Delivery.Workers,
		BatchSize:  c.SMS.BatchSize,
		RateLimit:  c.SMS.RateLimit,
		MinBackoff: time.Duration(c.Delivery.MinBackoff),
		MaxBackoff: time.Duration(c.Delivery.MaxBackoff),
		MaxAge:     time.Duration(c.Delivery.MaxAge),
		HoldRetry:  time.Duration(c.Delivery.HoldRetry),
		// A lease outlives the client's timeout so a slow request is never
		// leased twice; a crash frees it at the next start.
		LeaseFor: 2*time.Duration(c.SMS.Timeout) + 10*time.Second,
	}
}

func (b *bridge) compile() (*config.Runtime, error) {
	file, err := config.LoadFile(b.flags.configFile)
	if err != nil {
		return nil, err
	}
	rt, err := config.Compile(file, config.Options{DryRun: b.flags.dryRun, Logger: b.logger.With("component", "templates"), TemplateMetrics: b.tmplM})
	if err != nil {
		return nil, withFile(file.Path, err)
	}
	return rt, nil
}

func (b *bridge) newClient(rt *config.Runtime) (*sms.Client, error) {
	cfg := rt.SMS
	if b.fake != nil {
		cfg.URL = b.fake.URL
		cfg.APIKey = dryRunKey
	}
	c, err := sms.New(cfg, b.smsM)
	if err != nil {
		return nil, fmt.Errorf("sms client: %w", err)
	}
	return c, nil
}

// apply makes rt the running configuration.
func (b *bridge) apply(rt *config.Runtime) {
	b.intake.SetState(rt.Intake)
	for _, r := range rt.Router.Receivers() {
		b.dispatchM.InitReceivers(r.Name)
	}
	b.runtime.Store(rt)
	b.reloadM.success.Set(1)
	b.reloadM.timestamp.SetToCurrentTime()
	now := time.Now()
	b.loadedAt.Store(now.UnixNano())
	b.lastReload.Store(&reloadResult{At: now})
	b.logger.Info("configuration loaded", "file", rt.File.Path, "hash", rt.File.Hash[:12])
}

// reload builds everything of the new configuration first and swaps only
// when all of it succeeded; on failure the old configuration keeps serving.
func (b *bridge) reload() error {
	b.reloadMu.Lock()
	defer b.reloadMu.Unlock()
	rt, err := b.compile()
	if err == nil {
		var c *sms.Client
		if c, err = b.newClient(rt); err == nil {
			// The provider's 429 pause holds for the account, whichever
			// client sends next.
			prev := b.sender.c.Swap(c)
			c.PauseUntil(prev.PausedUntil())
			prev.CloseIdleConnections()
			b.dispatcher.SetConfig(dispatchConfig(rt.File.Config))
			b.apply(rt)
			return nil
		}
	}
	b.reloadM.success.Set(0)
	b.lastReload.Store(&reloadResult{At: time.Now(), Err: err.Error()})
	b.logger.Error("configuration reload failed; the previous configuration keeps serving", "err", err)
	return err
}

func (b *bridge) handler() http.Handler {
	e := echo.New()
	e.HideBanner = true
	e.HidePort = true
	e.HTTPErrorHandler = receiver.ErrorHandler(b.logger)
	e.Use(middleware.Recover())
	b.intake.Register(e)
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
	e.GET("/-/ready", func(c echo.Context) error {
		if !b.ready.Load() {
			return c.String(http.StatusServiceUnavailable, "smsbridge is not ready.\n")
		}
		return c.String(http.StatusOK, "smsbridge is ready.\n")
	})
	e.POST("/-/reload", func(c echo.Context) error {
		if err := b.reload(); err != nil {
			return echo.NewHTTPError(http.StatusInternalServerError, "reload failed: "+err.Error())
		}
		return c.String(http.StatusOK, "configuration reloaded\n")
	})
	return e
}

// serve runs until ctx ends, reloading on each value from hup.
func (b *bridge) serve(ctx context.Context, hup <-chan os.Signal) error {
	dctx, dcancel := context.WithCancel(context.Background())
	ddone := make(chan error, 1)
	go func() { ddone <- b.dispatcher.Run(dctx) }()

	srv := &http.Server{
		Handler: b.handler(),
		// Slow or stalled bodies must not hold a connection forever.
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      60 * time.Second,
		IdleTimeout:       2 * time.Minute,
	}
	errc := make(chan error, 1)
	go func() { errc <- web.ListenAndServe(srv, b.flags.web, b.logger) }()
	b.ready.Store(true)

	var err error
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
	b.ready.Store(false)
	sctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if serr := srv.Shutdown(sctx); serr != nil {
		b.logger.Warn("http shutdown", "err", serr)
	}
	// Intake is closed: nothing new is accepted, so the dispatcher can stop;
	// it lets in-flight sends finish or returns their rows to the queue.
	dcancel()
	if derr := <-ddone; derr != nil && !errors.Is(derr, context.Canceled) {
		b.logger.Warn("dispatcher stopped", "err", derr)
	}
	return err
}

func (b *bridge) close() {
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

// swapSender lets a reload replace the SMS client (a new key, a new URL)
// under a running dispatcher.
type swapSender struct {
	c atomic.Pointer[sms.Client]
}

func (s *swapSender) Send(ctx context.Context, text string, numbers []string) (sms.Result, error) {
	return s.c.Load().Send(ctx, text, numbers)
}
