package outbox

import (
	"context"
	"errors"
	"time"
)

// Leadership is implemented by a Store whose backing several processes
// share at once (outbox/postgres). The provider's rate limit is per
// account, so exactly one of them dispatches at a time: the leader. A
// Store that does not implement Leadership is always its backing's only
// dispatcher (outbox/sqlite: its directory lock admits one process).
//
// The dispatcher runs only during a Term: it calls Lead, runs until the
// term's Lost channel closes (or it stops), then calls Resign, and calls
// Lead again to wait for its next turn.
type Leadership interface {
	// Lead blocks until this store is the leader of its backing, or ctx
	// ends (its error is returned) or the store closes (ErrClosed).
	// Taking over, the store may return to the queue every delivery an
	// earlier leader left leased: that leader is provably gone.
	Lead(ctx context.Context) (Term, error)
}

// Term is one stretch of leadership.
type Term interface {
	// Lost is closed when leadership ended: the driver found its hold on
	// the backing gone, or Resign was called. The dispatcher then stops
	// at once; while a term is lost, Lease fails with ErrNotLeader, so a
	// stale leader cannot lease after another took over.
	Lost() <-chan struct{}
	// Resign gives leadership up, so another store can take over without
	// waiting. A second call does nothing. The dispatcher calls it once
	// every request of the term has ended; a driver may record that as a
	// clean end, which lets the next leader start sooner (StartDelay).
	Resign()
	// StartDelay is how long, from when Lead returned, the term waits
	// before its first request: until a provider second has passed since
	// the last moment an earlier leader could have sent, so the provider
	// never counts two leaders' requests in one second. It is 0 when the
	// backing shows no earlier leader, or one that ended long enough ago.
	StartDelay() time.Duration
}

// ErrNotLeader is returned by Lease on a store whose leadership term was
// lost.
var ErrNotLeader = errors.New("this replica is no longer the dispatching leader")
