// Package outbox is smsbridge's durable store: the commit point between
// answering a notification with 202 and sending it as SMS.
//
// # Durability
//
// The store is one SQLite file, <dir>/smsbridge.db, in WAL mode with
// synchronous=FULL. In WAL mode synchronous=NORMAL syncs the WAL only at
// checkpoints, so a power loss or kernel crash can roll back the last
// transactions although their COMMIT returned; that would silently lose
// notifications the bridge already answered 202 for. FULL syncs the WAL on
// every commit, so a commit that returned survives power loss. EXTRA adds a
// directory sync that only matters for rollback journals, not WAL.
//
// An fsync per webhook would make the disk the bottleneck, so Enqueue does
// not commit by itself: one writer goroutine takes every Enqueue call that is
// waiting, writes them in one transaction and pays one fsync for all of them
// (group commit). Under load a batch forms while the previous commit syncs;
// an idle store commits a lone call at once, without waiting for company.
//
// # Delivery semantics
//
// Delivery is at-least-once. A delivery row is pending until the dispatcher
// leases it (state sending, with a lease token and a deadline), and leaves
// the lease as delivered, failed, or pending again. A lease whose deadline
// passes returns to the queue, and Open returns every row still sending from
// an earlier run to pending: the process that held those leases is gone. A
// crash between the provider accepting a request and the store recording it
// therefore sends that one batch again; nothing else repeats, and nothing
// accepted is lost.
//
// # Concurrency
//
// One process owns the file. All writes go through a single connection,
// so writers queue in Go rather than meeting SQLITE_BUSY; reads use a
// separate read-only pool, which WAL lets run beside the writer.
package sqlite
