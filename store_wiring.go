package main

import (
	"context"
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
			MinFree:   int64(st.MinFree),
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
