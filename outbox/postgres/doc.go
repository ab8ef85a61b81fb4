// Package postgres is the PostgreSQL driver of the outbox: several
// smsbridge processes (replicas) share one database, so any of them can
// die without losing a page or stopping intake. It implements
// outbox.Store and passes outbox/outboxtest with Concurrent true, and it
// implements outbox.Leadership.
//
// # Intake: every replica, durable before 202
//
// Each replica runs a few group-commit writers: concurrent Enqueue calls
// share one transaction of four round trips however many notifications it
// holds (lock the groups and allocate ids; read the guarded groups' last
// status; insert notifications, messages and deliveries with unnest; commit).
// A commit returns once PostgreSQL has flushed it to its WAL, with
// synchronous_commit as the server has it (Open warns when it is off).
// RequireFiring reads and writes under a transaction-level advisory lock
// on the group key, taken by every replica in key order: a firing and its
// resolution are recorded one after the other whichever replicas took
// them, and a notification's id is allocated while it holds its group, so
// ids follow the order of recording. An unreachable server fails the
// commit within ten seconds (503, the sender retries).
//
// # Dispatch: one replica at a time
//
// The provider's rate limit is per account, so exactly one replica
// dispatches: the leader, which holds a session advisory lock
// (pg_try_advisory_lock) on a connection of its own. The others try the
// lock every second. The guard against stale leaders has three parts:
//   - the leader asks its lock session every second whether it still
//     holds the lock (a query on that very connection, five-second
//     timeout), and ends its term at the first failure;
//   - every Lease of a leader checks, in its own transaction, that the
//     lock session's backend still holds the lock in pg_locks, so a
//     leader whose session ended cannot lease after another took over;
//   - the dispatcher waits one second after taking over before its first
//     request, so two leaders' requests never share a provider second.
//
// When a leader's process dies, its kernel closes its sockets and the
// server ends the session at once: a follower takes over within about a
// second. When its host vanishes without closing them, the server notices
// through the session settings this driver sends on every connection
// (tcp_keepalives_idle 4 s, tcp_keepalives_interval 2 s,
// tcp_keepalives_count 3, tcp_user_timeout 10 s): the session ends, and
// the lock is free, within about ten seconds, so a follower takes over
// within about eleven. The old leader, if it is alive but cut off, has
// stopped before: its own check fails within six seconds. Pooled
// connections also get idle_in_transaction_session_timeout 15 s, so a
// frozen client cannot hold row locks. A DSN that sets any of these keeps
// its own value.
//
// Taking over, the new leader returns every delivery still leased to the
// queue: only leaders lease, and the previous one's session is gone. A
// batch the old leader had on the wire may so go out twice
// (at-least-once); its late result is ignored (the lease token changed).
// The dispatcher reads the 429 pause and the hold from the store at the
// start of each term, so a pause recorded by the previous leader holds.
//
// # Wake-ups
//
// A commit that adds work due now sends NOTIFY on the backing's channel
// (inside its transaction, so it is delivered at commit). Each replica
// LISTENs on a connection of its own and wakes its dispatcher for other
// replicas' commits; while that connection is down, and always with
// NoListen, it polls every PollInterval instead. A connection pooler in
// transaction mode (PgBouncer) carries neither LISTEN nor a session
// advisory lock: use NoListen for the pool's DSN only if the pooler
// passes sessions through, or connect the bridge to the server directly
// (it needs few connections: the pool, at most 8 by default, plus two).
//
// # Schema
//
// The tables live in the DSN's database (Options.Schema names another
// schema; the tests use one per backing). Migrations are versioned: each
// step is recorded in schema_migrations, applied in one transaction under
// an advisory lock so replicas starting together migrate once, and a
// database newer than the build is refused.
//
// # Secrets
//
// The DSN holds the database password. No error, log line or metric
// carries it: a DSN that does not parse is reported without any of its
// text (ErrDSN), and connection errors are stripped of the password
// should a server ever echo it.
package postgres
