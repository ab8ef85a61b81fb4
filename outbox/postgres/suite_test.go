//go:build postgres

package postgres

import (
	"context"
	"testing"

	"github.com/smsbridge/smsbridge/internal/pgtest"
	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/outbox/outboxtest"
)

// harness opens PostgreSQL stores for the conformance suite: each backing
// is a fresh schema on the test server, and any number of stores may be
// open on it at once, as replicas are. noListen opens them in the mode
// for a pooler in transaction mode.
type harness struct{ noListen bool }

func (h harness) Backing(t testing.TB) outboxtest.Opener {
	dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
	return func(cfg outboxtest.Config) (outbox.Store, error) {
		s, err := Open(context.Background(), dsn, Options{
			Logger:        cfg.Logger,
			Metrics:       cfg.Metrics,
			Clock:         cfg.Clock,
			Schema:        schema,
			PruneInterval: -1, // the suite prunes by hand, on its clock
			NoListen:      h.noListen,
		})
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return s, nil
	}
}

func (harness) Concurrent() bool { return true }

func TestConformance(t *testing.T) {
	t.Parallel()
	outboxtest.Run(t, harness{})
}

// TestConformancePollOnly runs the suite in the mode for a connection
// pooler in transaction mode: no LISTEN, no session settings, unnamed
// statements.
func TestConformancePollOnly(t *testing.T) {
	t.Parallel()
	outboxtest.Run(t, harness{noListen: true})
}
