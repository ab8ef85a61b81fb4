package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
)

// fakeHealth is a store health check that answers what it is told, or
// hangs until its context ends.
type fakeHealth struct {
	mu   sync.Mutex
	err  error
	hang bool
}

func (f *fakeHealth) Health(ctx context.Context) error {
	f.mu.Lock()
	err, hang := f.err, f.hang
	f.mu.Unlock()
	if hang {
		<-ctx.Done()
		return ctx.Err()
	}
	return err
}

func (f *fakeHealth) set(err error, hang bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.err, f.hang = err, hang
}

// TestReadiness: ready means a configuration is loaded, the server serves
// and the store's last health check passed; the reason says which is
// missing, the gauge follows, and a change of the store's state is logged
// once.
func TestReadiness(t *testing.T) {
	t.Parallel()
	store := &fakeHealth{}
	var logs bytes.Buffer
	r := newReadiness(store, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	steps := []struct {
		name string
		act  func()
		why  string
	}{
		{"fresh", func() { r.check(ctx) }, "no configuration loaded"},
		{"loaded", r.setLoaded, "not serving (starting or shutting down)"},
		{"serving", func() { r.setServing(true) }, ""},
		{"store gone", func() { store.set(errors.New("storage directory removed or replaced: /data"), false); r.check(ctx) },
			"the store cannot write: storage directory removed or replaced: /data"},
		{"still gone", func() { r.check(ctx) }, "the store cannot write: storage directory removed or replaced: /data"},
		{"back", func() { store.set(nil, false); r.check(ctx) }, ""},
		{"shutting down", func() { r.setServing(false) }, "not serving (starting or shutting down)"},
	}
	for _, st := range steps {
		st.act()
		if got := r.reason(); got != st.why {
			t.Errorf("%s: reason %q, want %q", st.name, got, st.why)
		}
		want := 0.0
		if st.why == "" {
			want = 1
		}
		if got := testutil.ToFloat64(r.ready); got != want {
			t.Errorf("%s: smsbridge_ready %v, want %v", st.name, got, want)
		}
	}
	if n := strings.Count(logs.String(), "not ready: new notifications are answered 503"); n != 1 {
		t.Errorf("the failure was logged %d times, want once:\n%s", n, logs.String())
	}
	if n := strings.Count(logs.String(), "ready again"); n != 1 {
		t.Errorf("the recovery was logged %d times, want once:\n%s", n, logs.String())
	}
}

// TestReadinessHungStore: a health check that does not answer counts as a
// failure after healthTimeout, with a reason that says so.
func TestReadinessHungStore(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		store := &fakeHealth{}
		store.set(nil, true)
		r := newReadiness(store, prometheus.NewRegistry(), slog.New(slog.DiscardHandler))
		start := time.Now()
		r.check(context.Background())
		if took := time.Since(start); took != healthTimeout {
			t.Errorf("check took %s, want %s", took, healthTimeout)
		}
		if err := r.storeHealth(); err == nil || !strings.Contains(err.Error(), "did not answer within 3s") {
			t.Errorf("store health %v", err)
		}
	})
}

// detailedErr is a health error with more to say in the log.
type detailedErr struct{ public, detail string }

func (e detailedErr) Error() string  { return e.public }
func (e detailedErr) Detail() string { return e.detail }

// TestReadinessDetailOnlyLogged: what a store's health error has beyond
// its public text (the database's user, name and address) goes to the
// log, never to the reason /-/ready and the intake show.
func TestReadinessDetailOnlyLogged(t *testing.T) {
	t.Parallel()
	store := &fakeHealth{}
	var logs bytes.Buffer
	r := newReadiness(store, prometheus.NewRegistry(), slog.New(slog.NewTextHandler(&logs, nil)))
	r.setLoaded()
	r.setServing(true)
	store.set(detailedErr{"cannot connect to the database: connection refused",
		"failed to connect to `user=pager database=oncalldb`: 10.0.0.5:5432: connection refused"}, false)
	r.check(context.Background())
	if got, want := r.reason(), "the store cannot write: cannot connect to the database: connection refused"; got != want {
		t.Errorf("reason %q, want %q", got, want)
	}
	if !strings.Contains(logs.String(), "user=pager database=oncalldb") || !strings.Contains(logs.String(), "reason=\"cannot connect") {
		t.Errorf("the log lacks the reason or the detail:\n%s", logs.String())
	}
	// The same again is no news; a new cause behind the same reason is,
	// once per detailEvery.
	r.check(context.Background())
	next := func(port int) {
		store.set(detailedErr{"cannot connect to the database: connection refused",
			fmt.Sprintf("failed to connect to `user=pager database=oncalldb`: 10.0.0.6:%d: connection refused", port)}, false)
		r.check(context.Background())
	}
	next(5433)
	next(5434)
	if n := strings.Count(logs.String(), "not ready:"); n != 1 {
		t.Errorf("logged %d times within a minute, want once:\n%s", n, logs.String())
	}
	r.loggedAt.Store(time.Now().Add(-detailEvery).UnixNano())
	next(5435)
	if n := strings.Count(logs.String(), "not ready:"); n != 2 || !strings.Contains(logs.String(), "10.0.0.6:5435") {
		t.Errorf("the new detail was not logged after a minute (%d lines):\n%s", n, logs.String())
	}
	// Another reason is news at once.
	store.set(errors.New("storage directory removed or replaced: /data"), false)
	r.check(context.Background())
	if n := strings.Count(logs.String(), "not ready:"); n != 3 {
		t.Errorf("a new reason was not logged at once (%d lines):\n%s", n, logs.String())
	}
}
