// Package sqlite is the embedded outbox driver: an outbox.Store in one
// SQLite file, <dir>/smsbridge.db, for a single smsbridge process. It
// passes the conformance suite in outbox/outboxtest; the contract's
// semantics are described in package outbox, and this documentation says
// how the driver keeps them.
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL. In WAL mode
// synchronous=NORMAL syncs the WAL only at checkpoints, so a power loss or
// kernel crash can roll back the last transactions although their COMMIT
// returned; that would silently lose notifications the bridge already
// answered 202 for. FULL syncs the WAL on every commit, so a commit that
// returned survives power loss. EXTRA adds a directory sync that only
// matters for rollback journals, not WAL.
//
// An fsync per webhook would make the disk the bottleneck, so Enqueue does
// not commit by itself: one writer goroutine takes every Enqueue call that
// is waiting, writes them in one transaction and pays one fsync for all of
// them (group commit). Under load a batch forms while the previous commit
// syncs; an idle store commits a lone call at once, without waiting for
// company. The resolved rule (RequireFiring) is evaluated inside that
// transaction, call by call in queue order, so a firing and its
// resolution in one batch are judged as if committed one after the other.
//
// # One process per directory
//
// Open takes an exclusive flock on <dir>/lock (LOCK_EX|LOCK_NB) before it
// touches the database, writes its pid there, and holds the lock until
// Close. A second store on the same directory, in this process or another,
// fails within a quarter of a second (it does not wait for the holder)
// with an error naming the directory and that pid (it wraps ErrInUse): two bridges on one outbox would both dispatch, and between
// them break the provider's rate limits and pauses. The kernel drops the
// lock when its holder exits, cleanly or not, so a stale lock file never
// blocks a restart. Replicas need a shared backend (outbox/postgres), not
// a shared directory. The lock needs a Unix system (flock).
//
// # Leases and recovery
//
// Each Store has an owner id (Options.Owner, by default
// "<hostname>-<pid>-<8 random hex digits>"), and each Lease call a random
// token, stored on its rows with the owner and the deadline; Complete
// updates a row only while it still carries the outcome's token. Because
// the lock proves that whoever leased a row still marked sending is gone,
// Open returns every such row to the queue at once, and logs how many and
// whose, instead of waiting for their deadlines. A crash between the
// provider accepting a request and the store recording it therefore sends
// that one batch again; nothing else repeats, and nothing accepted is lost.
// Lease also reclaims rows whose deadline passed, for a holder that is
// alive but stuck.
//
// # Concurrency
//
// All writes go through a single connection, so writers queue in Go
// rather than meeting SQLITE_BUSY, and the group commit's inserts stay
// prepared on it; reads use a separate read-only pool, which WAL lets run
// beside the writer. Wake-ups come from this process's own commits, which
// are the only ones there are.
//
// # Schema
//
// PRAGMA user_version holds the schema version, and a list of migrations
// moves a database up one version at a time, each in one transaction, at
// Open; a database newer than the build is refused rather than guessed
// at. Version 2 renamed the state delivered to accepted (rebuilding the
// deliveries table, since SQLite cannot alter a CHECK constraint), made
// leases tokens with owners, recorded the provider account and the
// notification's outcome, and added the state table behind GetState and
// PutState. Version 3 added the noise controls: the states held, bundled
// and cancelled (widening the CHECK constraint in place), the delivery's
// marks, admission and budget charge, and the tables dedup,
// resolved_alerts and budget. Times are stored as unix milliseconds.
//
// # Noise controls
//
// The dedup and stale guards, the merge of equal texts and CancelHeld run
// inside the group commit, call by call, like the resolved rule. Admit and
// Release are transactions on the single writer connection, so every
// admission sees the ones before it: a number's throttle windows are
// counted from deliveries.admitted_at (rows sending or accepted), the
// day's budget from the budget table, and neither can be taken twice.
package sqlite
