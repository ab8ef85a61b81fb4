package main

import (
	"fmt"
	"io"
	"runtime"
	"time"
)

// Targets from the issue, for a 2-core machine.
const (
	targetRatio    = 0.5
	targetP99Ratio = 2    // the bridge's intake p99 at most this times the minimal handler's
	targetRate     = 1000 // requests per second at which targetP99Ratio and targetRSS apply
	targetE2EP50   = 25 * time.Millisecond
	targetDrain    = 0.95
	targetRSS      = 60 << 20
	targetCold     = time.Second
)

// intakeResult is one endpoint under one load.
type intakeResult struct {
	run        runResult
	lat        summary
	peakRSS    int64
	cpu        time.Duration
	panics     int
	errorLines int
	// commits are the bridge's group commits during the run; nil for the
	// minimal handler.
	commits *commitStats
}

// commitLine describes the bridge's group commits, e.g. for the doc's
// "where the time goes".
func commitLine(r intakeResult) string {
	c := r.commits
	if c == nil || c.Commits == 0 {
		return ""
	}
	return fmt.Sprintf("bridge store: %.0f group commits, %.1f notifications per commit, %.2f ms per commit (write + fsync)\n", c.Commits, c.MeanBatch, c.MeanDurationMS)
}

type e2eResult struct {
	run                runResult
	intake, e2e        summary
	early              int
	requests           int
	notifications      int
	duplicates         int
	peakRSS            int64
	panics, errorLines int
}

type drainResult struct {
	latency            time.Duration
	backlog, numbers   int
	inPause            int
	requests, accepted int
	tooMany            int
	elapsed            time.Duration
	reqRate, numRate   float64
	peakRSS            int64
	panics, errorLines int
}

type coldResult struct {
	backlog            int
	firstSMS           time.Duration
	peakRSS            int64
	panics, errorLines int
}

// goal is one line of the summary.
type goal struct {
	name, target, measured string
	met                    bool
}

// report gathers every phase's results.
type report struct {
	opts                      options
	started                   time.Time
	loadBefore, loadAfter     string
	maxMinimal, maxBridge     intakeResult
	rateMinimal, rateBridge   intakeResult
	heavyMinimal, heavyBridge intakeResult
	e2e                       *e2eResult
	drains                    []*drainResult
	cold                      *coldResult
	goals                     []goal
}

func (r *report) goal(name, target, measured string, met bool) {
	r.goals = append(r.goals, goal{name, target, measured, met})
}

func verdict(ok bool) string {
	if ok {
		return "met"
	}
	return "MISSED"
}

func mb(b int64) string { return fmt.Sprintf("%.1f", float64(b)/(1<<20)) }

// cpuPerReq is the bridge's CPU time per accepted request, in ms.
func cpuPerReq(r intakeResult) string {
	n := len(r.run.ok())
	if n == 0 || r.cpu == 0 {
		return "-"
	}
	return fmt.Sprintf("%.3f", float64(r.cpu)/float64(time.Millisecond)/float64(n))
}

func (r *report) print(w io.Writer) {
	o := r.opts
	fmt.Fprintf(w, "\n# smsbridge loadgen, %s\n\n", r.started.UTC().Format(time.RFC3339))
	fmt.Fprintf(w, "machine: %s, %d cores (GOMAXPROCS %d), %s %s/%s\n", cpuModel(), runtime.NumCPU(), runtime.GOMAXPROCS(0), goVersion(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(w, "load average (1, 5, 15 min): before %s; after %s\n", r.loadBefore, r.loadAfter)
	fmt.Fprintf(w, "settings: %d numbers per notification, provider latency %s, provider rate limit %d req/s, sms.rate_limit %g, batch_size %d, workers %d\n",
		o.numbers, o.latency, o.providerRate, o.bridgeLimit(), o.batchSize, o.workers)
	if o.store == "postgres" {
		fmt.Fprintf(w, "store: PostgreSQL (%s), %d replica(s) sharing it, the load spread over them in turn; RSS, CPU and commit figures are the first replica's\n", pgServerVersion, o.replicas)
	} else {
		fmt.Fprintln(w, "store: SQLite (WAL, synchronous=FULL) under the bridge's --storage.path")
	}
	peak := int64(0)
	panics, errLines := 0, 0
	note := func(rss int64, p, e int) {
		peak = max(peak, rss)
		panics += p
		errLines += e
	}

	intake := func(title string, mn, br intakeResult, what string) {
		fmt.Fprintf(w, "\n## %s\n\n", title)
		fmt.Fprintln(w, "| endpoint | 202/s | p50 ms | p90 ms | p99 ms | max ms | not 202 | CPU ms/req | peak RSS MB |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---|---:|---:|")
		for _, row := range []struct {
			name string
			r    intakeResult
		}{{"minimal Echo handler", mn}, {"smsbridge (durable)", br}} {
			fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %s | %s | %s |\n", row.name, row.r.run.throughput(),
				ms(row.r.lat.P50), ms(row.r.lat.P90), ms(row.r.lat.P99), ms(row.r.lat.Max), row.r.run.failures(), cpuPerReq(row.r), mb(row.r.peakRSS))
		}
		ratio := 0.0
		if t := mn.run.throughput(); t > 0 {
			ratio = br.run.throughput() / t
		}
		fmt.Fprintf(w, "\nbridge / minimal handler throughput: **%.2f×** (target ≥ %.1f×: %s)\n", ratio, targetRatio, verdict(ratio >= targetRatio))
		fmt.Fprint(w, commitLine(br))
		note(br.peakRSS, br.panics, br.errorLines)
		r.goal("durable intake, "+what, fmt.Sprintf("≥ %.1f× minimal", targetRatio),
			fmt.Sprintf("%.2f× (%.0f / %.0f per s)", ratio, br.run.throughput(), mn.run.throughput()), ratio >= targetRatio)
	}
	if o.has("max") {
		intake(fmt.Sprintf("Intake at maximum concurrency (%d senders, %s)", o.concurrency, o.duration), r.maxMinimal, r.maxBridge, "light payload")
	}
	if o.has("heavy") {
		intake(fmt.Sprintf("Intake at maximum concurrency, heavy payload (3 alerts, 3 receivers × %d numbers; %d senders, %s)", o.heavyNumbers, o.concurrency, o.duration),
			r.heavyMinimal, r.heavyBridge, fmt.Sprintf("heavy payload (3 alerts → 3 receivers × %d numbers)", o.heavyNumbers))
	}

	if o.has("rate") {
		fmt.Fprintf(w, "\n## Intake at a fixed %d req/s (open loop, %s)\n\n", o.rate, o.duration)
		fmt.Fprintln(w, "| endpoint | 202/s | p50 ms | p90 ms | p99 ms | max ms | late starts | not 202 | CPU ms/req | peak RSS MB |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|---:|---|---:|---:|")
		for _, row := range []struct {
			name string
			r    intakeResult
		}{{"minimal Echo handler", r.rateMinimal}, {"smsbridge (durable)", r.rateBridge}} {
			fmt.Fprintf(w, "| %s | %.0f | %s | %s | %s | %s | %d | %s | %s | %s |\n", row.name, row.r.run.throughput(),
				ms(row.r.lat.P50), ms(row.r.lat.P90), ms(row.r.lat.P99), ms(row.r.lat.Max), row.r.run.Late, row.r.run.failures(), cpuPerReq(row.r), mb(row.r.peakRSS))
		}
		p99, minP99 := r.rateBridge.lat.P99, r.rateMinimal.lat.P99
		ratio := 0.0
		if minP99 > 0 {
			ratio = float64(p99) / float64(minP99)
		}
		ok := ratio > 0 && ratio <= targetP99Ratio && len(r.rateBridge.run.ok()) > 0 && r.rateBridge.run.failures() == "none"
		target := fmt.Sprintf("the target (≤ %d× the minimal handler's) is set at %d req/s", targetP99Ratio, targetRate)
		if o.rate == targetRate {
			target = fmt.Sprintf("target ≤ %d×: %s", targetP99Ratio, verdict(ok))
		}
		fmt.Fprintf(w, "\nbridge intake p99 at %d req/s: **%s ms**, minimal handler p99 %s ms: **%.2f×** (%s)\n",
			o.rate, ms(p99), ms(minP99), ratio, target)
		rss := r.rateBridge.peakRSS
		fmt.Fprintf(w, "bridge peak RSS at %d req/s: **%s MB** (target ≤ %s MB at %d req/s: %s)\n", o.rate, mb(rss), mb(targetRSS), targetRate, verdict(rss > 0 && rss <= targetRSS))
		fmt.Fprint(w, commitLine(r.rateBridge))
		note(r.rateBridge.peakRSS, r.rateBridge.panics, r.rateBridge.errorLines)
		r.goal(fmt.Sprintf("intake p99 at %d req/s", o.rate), fmt.Sprintf("≤ %d× minimal", targetP99Ratio),
			fmt.Sprintf("%.2f× (%s / %s ms)", ratio, ms(p99), ms(minP99)), ok)
		r.goal(fmt.Sprintf("peak RSS at %d req/s", o.rate), "≤ "+mb(targetRSS)+" MB", mb(rss)+" MB", rss > 0 && rss <= targetRSS)
	}

	if e := r.e2e; e != nil {
		fmt.Fprintf(w, "\n## End to end at %d req/s (%s)\n\n", o.lowRate, o.duration)
		fmt.Fprintln(w, "| span | n | p50 ms | p90 ms | p99 ms | max ms |")
		fmt.Fprintln(w, "|---|---:|---:|---:|---:|---:|")
		fmt.Fprintf(w, "| webhook sent → 202 | %d | %s | %s | %s | %s |\n", e.intake.N, ms(e.intake.P50), ms(e.intake.P90), ms(e.intake.P99), ms(e.intake.Max))
		fmt.Fprintf(w, "| 202 → provider received | %d | %s | %s | %s | %s |\n", e.e2e.N, ms(e.e2e.P50), ms(e.e2e.P90), ms(e.e2e.P99), ms(e.e2e.Max))
		perN := 0.0
		if e.notifications > 0 {
			perN = float64(e.requests) / float64(e.notifications)
		}
		fmt.Fprintf(w, "\ne2e p50: **%s ms** (target ≤ %s ms: %s); provider requests per notification %.2f; duplicates %d; sent before the client read the 202: %d; not 202: %s\n",
			ms(e.e2e.P50), ms(targetE2EP50), verdict(e.e2e.P50 <= targetE2EP50 && e.e2e.N > 0), perN, e.duplicates, e.early, e.run.failures())
		note(e.peakRSS, e.panics, e.errorLines)
	}

	if len(r.drains) > 0 {
		d0 := r.drains[0]
		fmt.Fprintf(w, "\n## Backlog drain (%d notifications × %d numbers, provider limit %d req/s, sms.rate_limit %g, delivery.workers %s)\n\n",
			d0.backlog, d0.numbers, o.providerRate, o.bridgeLimit(), workersText(o.workers))
		fmt.Fprintln(w, "| provider latency | accepted requests/s | of sms.rate_limit | numbers/s | requests | 429 answers | sent inside a 429 pause | time to drain s |")
		fmt.Fprintln(w, "|---:|---:|---:|---:|---:|---:|---:|---:|")
		for _, d := range r.drains {
			share := d.reqRate / o.bridgeLimit()
			fmt.Fprintf(w, "| %s | %.1f | %.1f%% | %.1f | %d | %d | %d | %.1f |\n", d.latency, d.reqRate, 100*share, d.numRate, d.requests, d.tooMany, d.inPause, d.elapsed.Seconds())
			note(d.peakRSS, d.panics, d.errorLines)
		}
		fmt.Fprintln(w)
		for _, d := range r.drains {
			share := d.reqRate / o.bridgeLimit()
			ok := share >= targetDrain && d.inPause == 0
			r.goal(fmt.Sprintf("drain at provider latency %s", d.latency), fmt.Sprintf("≥ %.0f%% of sms.rate_limit, none inside a 429 pause", 100*targetDrain),
				fmt.Sprintf("%.1f%%, %d 429s, %d inside a pause", 100*share, d.tooMany, d.inPause), ok)
			fmt.Fprintf(w, "drain rate at %s: **%.1f%%** of sms.rate_limit, %d requests inside a 429 pause (target ≥ %.0f%%, none: %s)\n", d.latency, 100*share, d.inPause, 100*targetDrain, verdict(ok))
		}
	}

	if c := r.cold; c != nil {
		fmt.Fprintf(w, "\n## Cold start with a backlog of %d notifications\n\n", c.backlog)
		ok := c.firstSMS > 0 && c.firstSMS <= targetCold
		fmt.Fprintf(w, "process start → first SMS accepted by the provider: **%s ms** (target ≤ %s ms: %s)\n", ms(c.firstSMS), ms(targetCold), verdict(ok))
		note(c.peakRSS, c.panics, c.errorLines)
		r.goal("cold start with a backlog: first SMS", "≤ "+ms(targetCold)+" ms", ms(c.firstSMS)+" ms", ok)
	}

	if o.target == "" || o.targetPID != 0 {
		fmt.Fprintf(w, "\npeak RSS of the bridge over all phases: %s MB\n", mb(peak))
	}
	if o.target == "" {
		fmt.Fprintf(w, "bridge logs: %d lines mentioning panic, %d error lines\n", panics, errLines)
	}
	if len(r.goals) > 0 {
		fmt.Fprintln(w, "\n## Goals (issue 18), this run")
		fmt.Fprintln(w, "\n| goal | target | measured | verdict |")
		fmt.Fprintln(w, "|---|---|---|---|")
		for _, g := range r.goals {
			fmt.Fprintf(w, "| %s | %s | %s | %s |\n", g.name, g.target, g.measured, verdict(g.met))
		}
	}
}

func workersText(n int) string {
	if n == 0 {
		return "0 (the default: the dispatcher chooses)"
	}
	return fmt.Sprint(n)
}
