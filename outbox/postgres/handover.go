package postgres

import "time"

// Handover timing: how long a new leader waits before its first request.
//
// The provider counts requests per account and second, so a new leader's
// first request must follow the last request an earlier leader could have
// sent by a provider second. What bounds that last request:
//
//   - A clean end: the earlier leader resigned after every request of its
//     term had ended, and recorded when (ended_at, server clock).
//   - Its heartbeat: a leader ends its own term leaderLease after the start
//     of its last successful heartbeat (beat_at, server clock, written
//     after that start), whatever happens to its database connection, and
//     its dispatcher may start a request up to stopMargin after that.
//   - The lock: this store holds it now, so the earlier leader's lock
//     session has ended. Either its process died (and sends nothing
//     more), or it was cut off and stopped within leaderLease, before the
//     server ended its session (about 10 s, sessionParams); or, behind a
//     pooler, its lease row expired (rowTTL) after it stopped, or it gave
//     the row up itself. Its last request was therefore sent before this
//     store's takeover: the server's clock at takeover is a bound too.
//
// Every time is the database server's, read in one query at takeover, so
// the replicas' own clocks play no part; the wait it gives is a duration
// the new leader counts from after that query returned.
const (
	// providerWindow is the provider's counting window.
	providerWindow = time.Second
	// leaderLease is how long a leader goes on dispatching after the start
	// of its last successful heartbeat; the watch ends its term then. It
	// must stay below the time the server takes to end a vanished
	// client's session (sessionParams, about 10 s) and below rowTTL.
	leaderLease = 6 * time.Second
	// stopMargin is how long after its term ends a leader may still start
	// a request: the dispatcher learns of the end through a channel, and
	// a request that passed its last check races it.
	stopMargin = 250 * time.Millisecond
)

// previousLeader is what the heartbeat row said at takeover.
type previousLeader struct {
	// found is false when the backing has no heartbeat row: no leader of
	// this release or an earlier one has sent through it.
	found bool
	// beat is the earlier leader's last heartbeat, zero when unknown (a
	// row made by the migration, for a leader of an earlier release).
	beat time.Time
	// ended is when it resigned cleanly, zero when it did not.
	ended time.Time
}

// handoverWait returns how long a new leader waits before its first
// request, given the heartbeat row p and the server's clock now, both read
// at takeover (after this store took the lock or the lease row).
func handoverWait(p previousLeader, now time.Time) time.Duration {
	if !p.found {
		return 0
	}
	// The lock: the earlier leader sent nothing after this takeover.
	last := now
	switch {
	case !p.ended.IsZero():
		last = earlier(last, p.ended)
	case !p.beat.IsZero():
		last = earlier(last, p.beat.Add(leaderLease+stopMargin))
	}
	return max(0, last.Add(providerWindow).Sub(now))
}

func earlier(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
