// Command loadgen measures smsbridge's intake and delivery on this machine.
//
// It builds the bridge of the module it runs in (or takes -bin), starts it
// on 127.0.0.1 against an in-process sms/fake fake of the provider, and
// runs these phases, each against a fresh bridge and store:
//
//   - max: as many Alertmanager webhooks as -concurrency senders can post in
//     -duration, first to a minimal Echo handler (decode, answer 202, in
//     its own process) and then to the bridge; the bridge's throughput is
//     quoted as a ratio of the minimal handler's, measured in the same run.
//   - rate: -rate webhooks a second for -duration (open loop), to both; the
//     intake latency percentiles.
//   - e2e: -low-rate webhooks a second; the time from the bridge's 202 to
//     the fake receiving the SMS, and provider requests per notification.
//   - heavy: as max, with a three-alert payload routed to three receivers
//     of -heavy-numbers numbers each.
//   - drain: -backlog notifications accepted while the provider answers
//     every request with 500 (an outage), then healthy again; the rate the
//     backlog drains at against the
//     provider's rate limit (-provider-rate, also the bridge's
//     sms.rate_limit unless -bridge-rate sets it), once per provider
//     latency in -drain-latency, and the requests sent inside a 429's
//     pause.
//   - cold: -backlog notifications accepted during an outage, the bridge
//     stopped, the outage ended, the bridge started again: the time from
//     its start to the first SMS the provider accepts.
//
// Peak RSS (VmHWM) and CPU time of the bridge are read from /proc. Every
// phase is bounded in time and count, talks to 127.0.0.1 only, and stops
// its processes when done, or when the tool is interrupted or killed.
//
// With -target the tool posts to a bridge already running (max and rate
// only; -target-pid adds its RSS). With -pprof DIR it builds the bridge
// with a net/http/pprof listener added at build time and saves CPU
// profiles of the max and rate phases and a heap profile into DIR.
//
// Run from the repository root:
//
//	go run ./internal/loadgen
//	go run ./internal/loadgen -phases=max -duration=20s -concurrency=64
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"
)

// options are the tool's flags.
type options struct {
	target       string
	targetPID    int
	bin          string
	phases       string
	duration     time.Duration
	concurrency  int
	rate         int
	lowRate      int
	latency      time.Duration
	drainLat     []time.Duration
	heavyNumbers int
	providerRate int
	bridgeRate   float64
	backlog      int
	numbers      int
	batchSize    int
	workers      int
	pprofDir     string
	timeout      time.Duration
	keep         bool
	drainTrace   bool
	bridgeEnv    string
	store        string
	replicas     int
	pgDSN        string
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o options
	var serve string
	fs.StringVar(&o.target, "target", "", "base URL of a running bridge on 127.0.0.1 to post to (max and rate phases only); default: build and start one")
	fs.IntVar(&o.targetPID, "target-pid", 0, "pid of the -target bridge, to read its peak RSS")
	fs.StringVar(&o.bin, "bin", "", "bridge binary to start; default: go build the module in a temporary directory")
	fs.StringVar(&o.phases, "phases", "max,heavy,rate,e2e,drain,cold", "phases to run, comma-separated: max, heavy, rate, e2e, drain, cold")
	fs.DurationVar(&o.duration, "duration", 10*time.Second, "length of each load run (max, rate, e2e)")
	fs.IntVar(&o.concurrency, "concurrency", 32, "senders in the max phase")
	fs.IntVar(&o.rate, "rate", 1000, "webhooks per second in the rate phase")
	fs.IntVar(&o.lowRate, "low-rate", 10, "webhooks per second in the e2e phase")
	fs.DurationVar(&o.latency, "provider-latency", 20*time.Millisecond, "the fake provider's reply latency")
	fs.IntVar(&o.providerRate, "provider-rate", 50, "the fake provider's rate limit in requests per second (and the bridge's sms.rate_limit unless -bridge-rate sets it)")
	fs.Float64Var(&o.bridgeRate, "bridge-rate", 0, "the bridge's sms.rate_limit in requests per second; default: -provider-rate")
	fs.IntVar(&o.backlog, "backlog", 1000, "notifications in the drain phase's backlog")
	fs.IntVar(&o.numbers, "numbers", 2, "numbers the receiver pages per notification")
	fs.IntVar(&o.batchSize, "batch-size", 100, "the bridge's sms.batch_size")
	fs.IntVar(&o.workers, "workers", 0, "the bridge's delivery.workers; 0 is the shipped default (the dispatcher chooses)")
	fs.IntVar(&o.heavyNumbers, "heavy-numbers", 4, "numbers each of the heavy phase's three receivers pages")
	drainLat := fs.String("drain-latency", "20ms,200ms", "the fake provider's reply latencies the drain phase runs at, comma-separated")
	fs.StringVar(&o.pprofDir, "pprof", "", "save CPU and heap profiles of the bridge into this directory (builds the bridge with a pprof listener)")
	fs.DurationVar(&o.timeout, "timeout", 10*time.Minute, "give up on the whole run after this long")
	fs.StringVar(&o.bridgeEnv, "bridge-env", "", "extra environment of the bridge, comma-separated KEY=VALUE pairs (e.g. GOGC=200)")
	fs.BoolVar(&o.drainTrace, "drain-trace", false, "print every non-202 answer and every gap over 150ms during the drain")
	fs.BoolVar(&o.keep, "keep", false, "keep the temporary directory (configs, stores, bridge logs)")
	fs.StringVar(&o.store, "store", "sqlite", "the bridge's storage.driver: sqlite, or postgres (a fresh database on the -pg-dsn server for each bridge started)")
	fs.IntVar(&o.replicas, "replicas", 1, "bridges started on one store, the load spread over them in turn (postgres only)")
	fs.StringVar(&o.pgDSN, "pg-dsn", os.Getenv("SMSBRIDGE_TEST_PG_DSN"), "postgres:// URL of a PostgreSQL server on this machine, for -store=postgres; default $SMSBRIDGE_TEST_PG_DSN")
	fs.StringVar(&serve, "serve-minimal", "", "internal: serve the minimal handler on this address")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	if serve != "" {
		return serveMinimal(serve)
	}
	for f := range strings.SplitSeq(*drainLat, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(f))
		if err != nil || d < 0 || d > 5*time.Second {
			fmt.Fprintf(stderr, "loadgen: -drain-latency %q: a list of durations between 0 and 5s\n", *drainLat)
			return 2
		}
		o.drainLat = append(o.drainLat, d)
	}
	if err := o.validate(); err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 2
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, o.timeout)
	defer cancel()
	if err := measure(ctx, o, stdout); err != nil {
		fmt.Fprintln(stderr, "loadgen:", err)
		return 1
	}
	return 0
}

func (o *options) validate() error {
	for p := range strings.SplitSeq(o.phases, ",") {
		switch p {
		case "max", "rate", "heavy":
		case "e2e", "drain", "cold":
			if o.target != "" {
				return fmt.Errorf("phase %s needs the fake provider and cannot run against -target", p)
			}
		default:
			return fmt.Errorf("unknown phase %q; phases are max, heavy, rate, e2e, drain, cold", p)
		}
	}
	if o.target != "" && !strings.HasPrefix(o.target, "http://127.0.0.1:") && !strings.HasPrefix(o.target, "http://localhost:") {
		return fmt.Errorf("-target %q: the tool only loads a bridge on this machine (http://127.0.0.1:PORT)", o.target)
	}
	switch {
	case o.duration <= 0 || o.duration > 5*time.Minute:
		return fmt.Errorf("-duration %s must be above 0 and at most 5m", o.duration)
	case o.concurrency < 1 || o.concurrency > 1024:
		return fmt.Errorf("-concurrency %d must be between 1 and 1024", o.concurrency)
	case o.rate < 1 || o.rate > 20000 || o.lowRate < 1 || o.lowRate > 20000:
		return fmt.Errorf("-rate and -low-rate must be between 1 and 20000")
	case o.providerRate < 1 || o.providerRate > 1000:
		return fmt.Errorf("-provider-rate %d must be between 1 and 1000 (the bridge's limit)", o.providerRate)
	case o.bridgeEnv != "" && strings.Contains(o.bridgeEnv, " "):
		return fmt.Errorf("-bridge-env %q: KEY=VALUE pairs separated by commas, no spaces", o.bridgeEnv)
	case o.bridgeRate < 0 || o.bridgeRate > 1000:
		return fmt.Errorf("-bridge-rate %v must be between 0 (the provider's rate) and 1000", o.bridgeRate)
	case o.backlog < 1 || o.backlog > 100000:
		return fmt.Errorf("-backlog %d must be between 1 and 100000", o.backlog)
	case o.numbers < 1 || o.numbers > 1000 || o.heavyNumbers < 1 || o.heavyNumbers > 1000:
		return fmt.Errorf("-numbers and -heavy-numbers must be between 1 and 1000")
	case o.workers < 0 || o.workers > 64:
		return fmt.Errorf("-workers %d must be between 0 (the default) and 64", o.workers)
	case o.store != "sqlite" && o.store != "postgres":
		return fmt.Errorf("-store %q must be sqlite or postgres", o.store)
	case o.replicas < 1 || o.replicas > 5:
		return fmt.Errorf("-replicas %d must be between 1 and 5", o.replicas)
	case o.replicas > 1 && o.store != "postgres":
		return fmt.Errorf("-replicas %d needs -store=postgres: a SQLite store admits one process", o.replicas)
	case o.replicas > 1 && o.target != "":
		return fmt.Errorf("-replicas starts its own bridges and cannot run against -target")
	}
	if o.store == "postgres" {
		return checkPGDSN(o.pgDSN)
	}
	return nil
}

// env is the bridge's extra environment.
func (o *options) env() []string {
	if o.bridgeEnv == "" {
		return nil
	}
	return strings.Split(o.bridgeEnv, ",")
}

// bridgeLimit is the bridge's sms.rate_limit.
func (o *options) bridgeLimit() float64 {
	if o.bridgeRate > 0 {
		return o.bridgeRate
	}
	return float64(o.providerRate)
}

func (o *options) has(phase string) bool {
	for p := range strings.SplitSeq(o.phases, ",") {
		if p == phase {
			return true
		}
	}
	return false
}

// measure runs the phases and prints the report.
func measure(ctx context.Context, o options, out io.Writer) error {
	tmp, err := os.MkdirTemp("", "smsbridge-loadgen")
	if err != nil {
		return err
	}
	if o.keep {
		fmt.Fprintln(out, "keeping", tmp)
	} else {
		defer os.RemoveAll(tmp)
	}
	if o.pprofDir != "" {
		if err := os.MkdirAll(o.pprofDir, 0o750); err != nil {
			return err
		}
	}
	r := &report{opts: o, loadBefore: loadAverage(), started: time.Now()}
	m := &measurer{o: o, tmp: tmp, out: out, r: r}
	defer func() {
		for _, drop := range m.drops {
			drop()
		}
	}()
	if o.target == "" {
		if o.bin == "" {
			fmt.Fprintln(out, "building the bridge...")
			if m.bin, err = buildBridge(ctx, tmp, o.pprofDir != ""); err != nil {
				return err
			}
		} else {
			if o.pprofDir != "" {
				return fmt.Errorf("-pprof builds the bridge itself; leave out -bin")
			}
			m.bin = o.bin
		}
	}
	fmt.Fprintf(out, "load average before: %s\n", r.loadBefore)
	for _, ph := range []struct {
		name string
		fn   func(context.Context) error
	}{
		{"max", m.phaseMax},
		{"heavy", m.phaseHeavy},
		{"rate", m.phaseRate},
		{"e2e", m.phaseE2E},
		{"drain", m.phaseDrain},
		{"cold", m.phaseCold},
	} {
		if !o.has(ph.name) {
			continue
		}
		fmt.Fprintf(out, "phase %s...\n", ph.name)
		if err := ph.fn(ctx); err != nil {
			return fmt.Errorf("phase %s: %w", ph.name, err)
		}
	}
	r.loadAfter = loadAverage()
	r.print(out)
	return nil
}

// measurer holds what the phases share.
type measurer struct {
	o   options
	tmp string
	bin string
	out io.Writer
	r   *report
	n   int // bridges started, for directory names
	// drops remove the databases the run created.
	drops []func()
}

// bridges starts -replicas fresh bridges on one fresh store against prov;
// the first is the one whose process and metrics the report reads.
func (m *measurer) bridges(ctx context.Context, prov *provider, timeout time.Duration) (replicas, error) {
	return m.bridgesWith(ctx, prov, timeout, false)
}

// bridgesWith is bridges, with the heavy phase's routes when heavy.
func (m *measurer) bridgesWith(ctx context.Context, prov *provider, timeout time.Duration, heavy bool) (replicas, error) {
	m.n++
	params := bridgeParams{
		Heavy:       heavy,
		ProviderURL: prov.URL,
		Timeout:     timeout,
		RateLimit:   m.o.bridgeLimit(),
		BatchSize:   m.o.batchSize,
		Workers:     m.o.workers,
		Numbers:     numbers(m.o.numbers),
		Env:         m.o.env(),
	}
	if heavy {
		params.Numbers = numbers(m.o.heavyNumbers)
	}
	var rs replicas
	if m.o.store == "postgres" {
		dsn, drop, err := freshDatabase(ctx, m.o.pgDSN, fmt.Sprintf("loadgen_%d_%d", os.Getpid(), m.n))
		if err != nil {
			return nil, err
		}
		m.drops = append(m.drops, drop)
		params.DSNFile = filepath.Join(m.tmp, fmt.Sprintf("pg-dsn-%d", m.n))
		if err := os.WriteFile(params.DSNFile, []byte(dsn), 0o600); err != nil {
			return nil, err
		}
	}
	for i := range m.o.replicas {
		dir := filepath.Join(m.tmp, fmt.Sprintf("bridge-%d-%d", m.n, i))
		b, err := startBridge(ctx, m.bin, dir, params, m.o.pprofDir != "" && i == 0)
		if err != nil {
			rs.stop()
			return nil, err
		}
		rs = append(rs, b)
	}
	if err := rs.waitLeader(ctx); err != nil {
		rs.stop()
		return nil, err
	}
	return rs, nil
}

// waitLeader waits until one replica dispatches, so a phase does not
// measure the first leader's election.
func (rs replicas) waitLeader(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for {
		for _, b := range rs {
			if m, err := scrape(ctx, b.URL); err == nil && m["smsbridge_dispatch_leader"] == 1 {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("no replica became the dispatching leader: %w", ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// replicas are bridges sharing one store.
type replicas []*bridgeProc

func (rs replicas) urls() []string {
	out := make([]string, len(rs))
	for i, b := range rs {
		out[i] = b.URL
	}
	return out
}

func (rs replicas) stop() {
	for _, b := range rs {
		b.stop()
	}
}

// intakeTarget is an endpoint under load: the bridge or the minimal
// handler, with its pid for /proc.
type intakeTarget struct {
	url string
	// urls are every replica's, url's first; nil means url alone.
	urls []string
	pid  int
	stop func()
	// bridge is set when the target is a bridge this tool started.
	bridge *bridgeProc
	prov   *provider
}

func (m *measurer) startTarget(ctx context.Context, heavy bool) (*intakeTarget, error) {
	if m.o.target != "" {
		return &intakeTarget{url: strings.TrimSuffix(m.o.target, "/"), pid: m.o.targetPID, stop: func() {}}, nil
	}
	prov, err := startProvider(m.o.latency, m.o.providerRate, false)
	if err != nil {
		return nil, err
	}
	rs, err := m.bridgesWith(ctx, prov, 10*time.Second, heavy)
	if err != nil {
		prov.close()
		return nil, err
	}
	b := rs[0]
	return &intakeTarget{url: b.URL, urls: rs.urls(), pid: b.pid(), bridge: b, prov: prov, stop: func() {
		rs.stop()
		prov.close()
	}}, nil
}

// intakeRun loads one target with fn and notes its process statistics.
func (m *measurer) intakeRun(ctx context.Context, t *intakeTarget, tag string, fn func(*loader) runResult, profile string, heavy bool) (intakeResult, error) {
	urls := t.urls
	if urls == nil {
		urls = []string{t.url}
	}
	l := newSpreadLoader(urls, tag, max(m.o.concurrency, 64))
	if heavy {
		l.body = heavyPayload
	}
	defer l.close()
	// Warm up: connections, the store's first pages, the Go runtime's
	// heap; none of it is measured.
	_ = l.closedLoop(ctx, 4, 2*time.Second, 200)
	before, _ := readProc(t.pid)
	var mBefore map[string]float64
	if t.bridge != nil {
		mBefore, _ = scrape(ctx, t.url)
	}
	profDone := make(chan error, 1)
	if profile != "" && t.bridge != nil && t.bridge.PprofAddr != "" {
		go func() {
			profDone <- t.bridge.profileCPU(ctx, m.o.duration-time.Second, filepath.Join(m.o.pprofDir, profile))
		}()
	} else {
		profDone <- nil
	}
	res := fn(l)
	if err := <-profDone; err != nil {
		return intakeResult{}, err
	}
	after, err := readProc(t.pid)
	ir := intakeResult{run: res, lat: summarize(latencies(res.ok()))}
	if mBefore != nil {
		if mAfter, serr := scrape(ctx, t.url); serr == nil {
			c := commitDelta(mBefore, mAfter)
			ir.commits = &c
		}
	}
	if err == nil {
		ir.peakRSS = after.PeakRSS
		ir.cpu = after.CPU - before.CPU
	}
	if ctx.Err() != nil {
		return ir, ctx.Err()
	}
	return ir, nil
}

func latencies(shots []shot) []time.Duration {
	out := make([]time.Duration, len(shots))
	for i, s := range shots {
		out[i] = s.Latency
	}
	return out
}

// phaseMax compares throughput at maximum concurrency.
func (m *measurer) phaseMax(ctx context.Context) error {
	load := func(l *loader) runResult { return l.closedLoop(ctx, m.o.concurrency, m.o.duration, 0) }
	return m.compare(ctx, "max", load, "bridge-max-cpu.pprof", false, func(min, br intakeResult) {
		m.r.maxMinimal, m.r.maxBridge = min, br
	})
}

// phaseHeavy compares throughput at maximum concurrency with the heavy
// payload and routes.
func (m *measurer) phaseHeavy(ctx context.Context) error {
	load := func(l *loader) runResult { return l.closedLoop(ctx, m.o.concurrency, m.o.duration, 0) }
	return m.compare(ctx, "heavy", load, "bridge-heavy-cpu.pprof", true, func(min, br intakeResult) {
		m.r.heavyMinimal, m.r.heavyBridge = min, br
	})
}

// phaseRate measures intake latency at a fixed rate.
func (m *measurer) phaseRate(ctx context.Context) error {
	load := func(l *loader) runResult { return l.openLoop(ctx, m.o.rate, m.o.duration, 256) }
	return m.compare(ctx, "rate", load, "bridge-rate-cpu.pprof", false, func(min, br intakeResult) {
		m.r.rateMinimal, m.r.rateBridge = min, br
	})
}

// compare runs load against the minimal handler, then against the bridge.
func (m *measurer) compare(ctx context.Context, tag string, load func(*loader) runResult, profile string, heavy bool, save func(min, br intakeResult)) error {
	mp, err := startMinimal(ctx)
	if err != nil {
		return err
	}
	minRes, err := m.intakeRun(ctx, &intakeTarget{url: mp.URL, pid: mp.pid()}, "min"+tag, load, "", heavy)
	mp.stop()
	if err != nil {
		return err
	}
	t, err := m.startTarget(ctx, heavy)
	if err != nil {
		return err
	}
	brRes, err := m.intakeRun(ctx, t, tag, load, profile, heavy)
	if err == nil && t.bridge != nil {
		brRes.panics, brRes.errorLines = t.bridge.logProblems()
		if m.o.pprofDir != "" && tag == "max" {
			err = t.bridge.profileHeap(ctx, filepath.Join(m.o.pprofDir, "bridge-max-heap.pprof"))
		}
	}
	t.stop()
	if err != nil {
		return err
	}
	save(minRes, brRes)
	return nil
}

// phaseE2E measures the time from 202 to the provider at low load.
func (m *measurer) phaseE2E(ctx context.Context) error {
	prov, err := startProvider(m.o.latency, m.o.providerRate, false)
	if err != nil {
		return err
	}
	defer prov.close()
	rs, err := m.bridges(ctx, prov, 10*time.Second)
	if err != nil {
		return err
	}
	defer rs.stop()
	b := rs[0]
	l := newSpreadLoader(rs.urls(), "e", 16)
	defer l.close()
	res := l.openLoop(ctx, m.o.lowRate, m.o.duration, 16)
	ok := res.ok()
	names := make([]string, len(ok))
	for i, s := range ok {
		names[i] = s.Name
	}
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := prov.waitDelivered(wctx, names); err != nil {
		return fmt.Errorf("accepted notifications not delivered: %w\n%s", err, b.logTail())
	}
	reqs, firstOK, sends := prov.snapshot()
	e2e := make([]time.Duration, 0, len(ok))
	early := 0
	for _, s := range ok {
		d := firstOK[s.Name].Sub(s.Done)
		if d < 0 {
			// The dispatcher sent it before the 202 reached the client.
			early++
			d = 0
		}
		e2e = append(e2e, d)
	}
	dups := 0
	for _, n := range sends {
		dups += n - 1
	}
	st, _ := readProc(b.pid())
	m.r.e2e = &e2eResult{
		run: res, intake: summarize(latencies(ok)), e2e: summarize(e2e), early: early,
		requests: len(reqs), notifications: len(ok), duplicates: dups, peakRSS: st.PeakRSS,
	}
	m.r.e2e.panics, m.r.e2e.errorLines = b.logProblems()
	return nil
}

// phaseDrain builds a backlog while the provider is down (every request
// answered 500), ends the outage, and measures how fast the bridge drains
// the backlog, once per provider latency in -drain-latency.
func (m *measurer) phaseDrain(ctx context.Context) error {
	for _, lat := range m.o.drainLat {
		d, err := m.drainAt(ctx, lat)
		if err != nil {
			return fmt.Errorf("provider latency %s: %w", lat, err)
		}
		m.r.drains = append(m.r.drains, d)
	}
	return nil
}

// backlog starts a provider in an outage and bridges on it, and posts
// -backlog notifications; it returns their names.
func (m *measurer) backlog(ctx context.Context, lat time.Duration) (*provider, replicas, []string, error) {
	prov, err := startProvider(lat, m.o.providerRate, true)
	if err != nil {
		return nil, nil, nil, err
	}
	rs, err := m.bridges(ctx, prov, 10*time.Second)
	if err != nil {
		prov.close()
		return nil, nil, nil, err
	}
	l := newSpreadLoader(rs.urls(), "d", 16)
	defer l.close()
	res := l.closedLoop(ctx, 16, 2*time.Minute, m.o.backlog)
	ok := res.ok()
	if len(ok) != m.o.backlog {
		rs.stop()
		prov.close()
		return nil, nil, nil, fmt.Errorf("backlog: %d of %d notifications accepted (%s)", len(ok), m.o.backlog, res.failures())
	}
	names := make([]string, len(ok))
	for i, s := range ok {
		names[i] = s.Name
	}
	return prov, rs, names, nil
}

func (m *measurer) drainAt(ctx context.Context, lat time.Duration) (*drainResult, error) {
	prov, rs, names, err := m.backlog(ctx, lat)
	if err != nil {
		return nil, err
	}
	defer prov.close()
	defer rs.stop()
	b := rs[0]
	t0 := prov.release()
	// Twice the time the rate limit needs, and some.
	need := time.Duration(float64(len(names)) / float64(m.o.providerRate) * float64(time.Second))
	wctx, cancel := context.WithTimeout(ctx, 2*need+30*time.Second)
	defer cancel()
	if err := prov.waitDelivered(wctx, names); err != nil {
		return nil, fmt.Errorf("backlog not drained: %w\n%s", err, b.logTail())
	}
	reqs, firstOK, _ := prov.snapshot()
	var okTimes, allTimes []time.Time
	var after []providerRequest
	numbersSent, tooMany := 0, 0
	var last time.Time
	for _, r := range reqs {
		if r.At.Before(t0) {
			continue
		}
		after = append(after, r)
		allTimes = append(allTimes, r.At)
		switch r.Status {
		case 202:
			okTimes = append(okTimes, r.At)
			numbersSent += r.Numbers
		case 429:
			tooMany++
		}
	}
	if m.o.drainTrace {
		var prev time.Time
		for _, r := range after {
			if !prev.IsZero() && r.At.Sub(prev) > 150*time.Millisecond || r.Status != 202 {
				fmt.Fprintf(m.out, "drain trace (%s): t=%.3fs after the outage, %.3fs after the previous request, status %d\n", lat, r.At.Sub(t0).Seconds(), r.At.Sub(prev).Seconds(), r.Status)
			}
			prev = r.At
		}
	}
	for _, at := range firstOK {
		if at.After(last) {
			last = at
		}
	}
	st, _ := readProc(b.pid())
	d := &drainResult{
		latency: lat, backlog: len(names), numbers: m.o.numbers, requests: len(allTimes), accepted: len(okTimes),
		tooMany: tooMany, inPause: pauseViolations(after, providerPause), elapsed: last.Sub(t0), reqRate: rate(okTimes), peakRSS: st.PeakRSS,
	}
	if len(okTimes) > 0 {
		d.numRate = d.reqRate * float64(numbersSent) / float64(len(okTimes))
	}
	d.panics, d.errorLines = b.logProblems()
	return d, nil
}

// phaseCold measures a cold start with a backlog: the notifications are
// accepted during an outage, the bridges stopped, the outage ended, and
// the bridges started again on the same store; the figure is the time
// from the first bridge's start to the first SMS the provider accepts.
func (m *measurer) phaseCold(ctx context.Context) error {
	prov, rs, names, err := m.backlog(ctx, m.o.latency)
	if err != nil {
		return err
	}
	defer prov.close()
	rs.stop()
	// Every row retried during the outage is due again within the
	// backoff's ceiling (max_backoff 2s): wait it out, so the backlog is
	// due when the bridge starts, as after a long stop.
	select {
	case <-time.After(2*time.Second + 100*time.Millisecond):
	case <-ctx.Done():
		return ctx.Err()
	}
	prov.release()
	var t0 time.Time
	for i, b := range rs {
		if i == 0 {
			t0 = time.Now()
		}
		if err := b.restart(ctx); err != nil {
			rs[:i].stop()
			return err
		}
	}
	defer rs.stop()
	wctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	for prov.delivered(names) == 0 {
		select {
		case <-wctx.Done():
			return fmt.Errorf("no SMS within 30 s of the restart: %w\n%s", wctx.Err(), rs[0].logTail())
		case <-time.After(2 * time.Millisecond):
		}
	}
	_, firstOK, _ := prov.snapshot()
	var first time.Time
	for _, at := range firstOK {
		if first.IsZero() || at.Before(first) {
			first = at
		}
	}
	st, _ := readProc(rs[0].pid())
	m.r.cold = &coldResult{backlog: len(names), firstSMS: first.Sub(t0), peakRSS: st.PeakRSS}
	m.r.cold.panics, m.r.cold.errorLines = rs[0].logProblems()
	return nil
}

// goVersion is the toolchain that built the tool (and, by default, the
// bridge).
func goVersion() string { return runtime.Version() }
