package sqlite

import (
	"testing"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/outbox/outboxtest"
)

// harness opens SQLite stores for the conformance suite: each backing is a
// fresh directory, and one store at a time may hold it.
type harness struct{}

func (harness) Backing(t testing.TB) outboxtest.Opener {
	dir := t.TempDir()
	return func(cfg outboxtest.Config) (outbox.Store, error) {
		s, err := Open(dir, Options{
			Logger:        cfg.Logger,
			Metrics:       cfg.Metrics,
			Clock:         cfg.Clock,
			PruneInterval: -1, // the suite prunes by hand, on its clock
		})
		if err != nil {
			return nil, err // not a typed nil inside the interface
		}
		return s, nil
	}
}

func (harness) Concurrent() bool { return false }

func TestConformance(t *testing.T) {
	t.Parallel()
	outboxtest.Run(t, harness{})
}
