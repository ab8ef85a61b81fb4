package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/smsbridge/smsbridge/outbox"
)

// pingStore is a store whose database answers Ping as told.
type pingStore struct {
	outbox.Store
	err   atomic.Pointer[error]
	pings atomic.Int32
}

func (p *pingStore) Ping(context.Context) error {
	p.pings.Add(1)
	if e := p.err.Load(); e != nil {
		return *e
	}
	return nil
}

func (p *pingStore) fail(err error) { p.err.Store(&err) }

// TestReadiness: a store that can lose its database is pinged, the answer
// kept for a second so probes do not load it, and a change is logged
// once; an embedded store is ready while open.
func TestReadiness(t *testing.T) {
	t.Parallel()
	var logs bytes.Buffer
	st := &pingStore{}
	r := newReadiness(st, slog.New(slog.NewTextHandler(&logs, nil)))
	ctx := context.Background()
	if err := r.check(ctx); err != nil {
		t.Fatalf("ready database: %v", err)
	}
	st.fail(errors.New("connection refused"))
	if err := r.check(ctx); err != nil {
		t.Errorf("within the cache the last answer holds: %v", err)
	}
	if n := st.pings.Load(); n != 1 {
		t.Errorf("%d pings within a second, want 1", n)
	}
	r.mu.Lock()
	r.at = r.at.Add(-2 * readyCache)
	r.mu.Unlock()
	if err := r.check(ctx); err == nil || !strings.Contains(err.Error(), "database unreachable") {
		t.Errorf("unreachable database: %v", err)
	}
	if !strings.Contains(logs.String(), "the database does not answer") {
		t.Errorf("the outage was not logged:\n%s", logs.String())
	}

	if err := newReadiness(nil, slog.New(slog.DiscardHandler)).check(ctx); err != nil {
		t.Errorf("a store without Ping: %v", err)
	}
	var none *readiness
	if err := none.check(ctx); err != nil {
		t.Errorf("no readiness check: %v", err)
	}
}
