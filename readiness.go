package main

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promauto"

	"github.com/smsbridge/smsbridge/outbox"
)

// Readiness checks, run in the background so that /-/ready and the intake
// read a cached answer instead of touching the disk per request.
const (
	// healthInterval is how often the store's health is checked: a
	// storage directory removed under the bridge turns it unready within
	// about this long (plus healthTimeout when the disk hangs).
	healthInterval = time.Second
	// healthTimeout bounds one check; a check that takes longer fails.
	healthTimeout = 3 * time.Second
	// detailEvery is how often a failing store's changed detail (behind
	// an unchanged reason) is logged at most.
	detailEvery = time.Minute
)

// detailed is an error from a store's health check that has more to say
// in the log than in its public text.
type detailed interface {
	error
	Detail() string
}

// readiness is whether the bridge can take notifications now, and why not.
// It outlives configuration reloads.
type readiness struct {
	store  outbox.HealthChecker // nil: the store has no health check
	logger *slog.Logger
	ready  prometheus.Gauge
	// storeErr is the last health check's answer (nil: healthy).
	storeErr atomic.Pointer[error]
	// serving is set while the HTTP server runs, and loaded while a
	// configuration is in force.
	serving, loaded atomic.Bool
	// reported is the last reason (and detail) logged, to log changes
	// only, and loggedAt when the last "not ready" line was (Unix
	// nanoseconds).
	reported atomic.Pointer[string]
	loggedAt atomic.Int64
}

// newReadiness checks store's health; a nil store is taken as healthy (a
// driver without a health check: its write errors still answer 503).
func newReadiness(store outbox.HealthChecker, reg prometheus.Registerer, logger *slog.Logger) *readiness {
	return &readiness{store: store, logger: logger, ready: promauto.With(reg).NewGauge(prometheus.GaugeOpts{
		Name: "smsbridge_ready",
		Help: "Whether the bridge is ready: a configuration is loaded and the store can write durably (1), or not, and new notifications are answered 503 (0). /-/ready says why.",
	})}
}

// check asks the store once and records the answer.
func (r *readiness) check(ctx context.Context) {
	var err error
	if r.store != nil {
		cctx, cancel := context.WithTimeout(ctx, healthTimeout)
		err = r.store.Health(cctx)
		cancel()
		if err != nil && errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = errors.New("the store's health check did not answer within " + healthTimeout.String() + " (a hung disk, or a database that does not answer?)")
		}
	}
	r.storeErr.Store(&err)
	r.update()
}

// run checks every healthInterval until ctx ends.
func (r *readiness) run(ctx context.Context) {
	t := time.NewTicker(healthInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			r.check(ctx)
		}
	}
}

// storeHealth is the cached answer of the store: what the intake asks
// before storing a notification.
func (r *readiness) storeHealth() error {
	if p := r.storeErr.Load(); p != nil {
		return *p
	}
	return nil
}

// reason says why the bridge is not ready; empty when it is.
func (r *readiness) reason() string {
	switch {
	case !r.loaded.Load():
		return "no configuration loaded"
	case !r.serving.Load():
		return "not serving (starting or shutting down)"
	}
	if err := r.storeHealth(); err != nil {
		return "the store cannot write: " + err.Error()
	}
	return ""
}

// update sets the gauge and logs a change of the store's state.
func (r *readiness) update() {
	why := r.reason()
	if why == "" {
		r.ready.Set(1)
	} else {
		r.ready.Set(0)
	}
	// Starting and stopping are no news; the store's state is, and so is
	// a new cause behind the same public reason.
	var store, detail string
	err := r.storeHealth()
	if err != nil {
		store = err.Error()
		// The reason is what anyone asking /-/ready is told; the store
		// may know more that only the log should say.
		var d detailed
		if errors.As(err, &d) && d.Detail() != store {
			detail = d.Detail()
		}
	}
	key := store + "\x00" + detail
	prev := r.reported.Load()
	switch {
	case prev != nil && *prev == key:
	case prev != nil && store != "" && strings.HasPrefix(*prev, store+"\x00") && time.Since(time.Unix(0, r.loggedAt.Load())) < detailEvery:
		// Only the detail changed (an error text may carry a socket's
		// port): not more than once per detailEvery, so an outage does
		// not log every second.
	case store != "":
		r.reported.Store(&key)
		r.loggedAt.Store(time.Now().UnixNano())
		attrs := []any{"reason", store}
		if detail != "" {
			attrs = append(attrs, "detail", detail)
		}
		r.logger.Error("not ready: new notifications are answered 503 until the store can write again", attrs...)
	case prev != nil:
		r.reported.Store(&key)
		r.logger.Info("ready again: the store can write")
	default:
		r.reported.Store(&key)
	}
}

func (r *readiness) setServing(on bool) {
	r.serving.Store(on)
	r.update()
}

func (r *readiness) setLoaded() {
	r.loaded.Store(true)
	r.update()
}
