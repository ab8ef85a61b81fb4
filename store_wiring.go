package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/smsbridge/smsbridge/config"
	"github.com/smsbridge/smsbridge/generation"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/outbox/postgres"
	"github.com/smsbridge/smsbridge/outbox/sqlite"
)

// openStore opens the outbox the configuration names: SQLite under
// --storage.path (the default), or a PostgreSQL database that replicas
// share.
func (b *bridge) openStore(file *config.File) (outbox.Store, error) {
	st := file.Config.Storage
	logger := b.logger.With("component", "outbox")
	metrics := outbox.NewMetrics(b.reg)
	if st.Driver != config.StoragePostgres {
		s, err := sqlite.Open(b.flags.storagePath, sqlite.Options{
			Logger:    logger,
			Metrics:   metrics,
			Retention: time.Duration(st.Retention),
		})
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return s, nil
	}
	dsn, err := generation.StorageDSN(file)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	s, err := postgres.Open(ctx, string(dsn), postgres.Options{
		Logger:       logger,
		Metrics:      metrics,
		Retention:    time.Duration(st.Retention),
		PollInterval: time.Duration(st.PollInterval),
		NoListen:     !*st.Listen,
	})
	if err != nil {
		return nil, err
	}
	return s, nil
}

// readiness answers whether the store can take writes, for /-/ready. A
// store that can lose its backend (PostgreSQL) is pinged with a short
// timeout, and the answer kept for a moment, so a probe storm costs the
// database one query a second; an embedded store is ready while open.
type readiness struct {
	store  interface{ Ping(context.Context) error }
	logger *slog.Logger

	mu   sync.Mutex
	at   time.Time
	last error
}

// Readiness tuning.
const (
	readyTimeout = time.Second
	readyCache   = time.Second
)

func newReadiness(store outbox.Store, logger *slog.Logger) *readiness {
	r := &readiness{logger: logger}
	if p, ok := store.(interface{ Ping(context.Context) error }); ok {
		r.store = p
	}
	return r
}

// check returns nil when the store answers.
func (r *readiness) check(ctx context.Context) error {
	if r == nil || r.store == nil {
		return nil
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.at.IsZero() && time.Since(r.at) < readyCache {
		return r.last
	}
	ctx, cancel := context.WithTimeout(ctx, readyTimeout)
	defer cancel()
	err := r.store.Ping(ctx)
	if (err == nil) != (r.last == nil) || r.at.IsZero() {
		if err != nil {
			r.logger.Error("the database does not answer; not ready (intake answers 503 until it does)", "err", err)
		} else if !r.at.IsZero() {
			r.logger.Info("the database answers again; ready")
		}
	}
	r.at, r.last = time.Now(), err
	if err != nil {
		return fmt.Errorf("database unreachable: %w", err)
	}
	return nil
}
