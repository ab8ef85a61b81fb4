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
// holds (lock and read what the guards need, and allocate ids; evaluate
// every call's guards in memory, in order; insert notifications, messages
// and deliveries with unnest; commit). A commit returns once PostgreSQL
// has flushed it to its WAL, with synchronous_commit as the server has it
// (Open warns when it is off). An unreachable server fails the commit
// within ten seconds (503, the sender retries).
//
// # Guards and limits across replicas
//
// Every decision that reads shared state and writes what it decided is
// made under a transaction-level advisory lock that every replica takes
// for the same thing, so the read sees every earlier decision, committed,
// and no two replicas act on one check (READ COMMITTED is enough: each
// statement after the lock sees what the lock's previous holder
// committed):
//   - the group key: the resolved rule (RequireFiring) and duplicate
//     suppression (one dedup row per receiver and group). A
//     notification's id is allocated while it holds its group, so within
//     a group ids follow the order of recording;
//   - the sender's delivery id and the once key: checked, then written in
//     the same transaction. The delivery id is written with INSERT ... ON
//     CONFLICT DO UPDATE ... WHERE the old record expired, so an
//     unexpired record is never replaced whatever happens; a failed
//     commit writes none (the retry is taken); the once key is unique in
//     an index as well;
//   - the number: Admit (its throttle windows, counted from
//     deliveries.admitted_at, and whether it has held deliveries or a
//     digest waiting), Release (one digest per number: it reads the held
//     deliveries again under the lock and skips a number another replica
//     released) and CancelHeld (the held firings a resolution cancels).
//     The day's budget is one row, locked (SELECT ... FOR UPDATE) after
//     the numbers, so two replicas never both spend its last segments;
//   - two-way SMS and escalation: a page's reply code is chosen under a
//     lock on each number it is issued to; its escalation steps are
//     scheduled, and a resolution's stopped, under the group's lock (as
//     is StopEscalations), and an escalated page's step row is locked
//     (FOR UPDATE) while its guard is evaluated; a receipt is matched
//     under a lock on the number, an acknowledgement under one on the
//     group, an opt-out under the number's lock that Admit takes, Allow
//     under one on its key; Claim is one INSERT ... ON CONFLICT.
//     LeaseSilences and LeaseEscalations skip locked rows, as Lease does.
//
// Resolved alerts are remembered with INSERT ... ON CONFLICT DO UPDATE.
// To rule out deadlocks, every transaction takes its locks in one order:
// advisory locks (by space, then key), then delivery-id and
// resolved-alert rows (sorted), then deliveries rows (by id), then budget
// rows (by day). Complete, FailExpired and a take-over lock the rows they
// return to the queue or fail, in id order, before giving their segments
// back to the budget; Lease and Prune skip rows another transaction holds
// instead of waiting.
//
// # Dispatch: one replica at a time
//
// The provider's rate limit is per account, so exactly one replica
// dispatches: the leader, which holds a session advisory lock
// (pg_try_advisory_lock) on a connection of its own. The others try the
// lock every second. The guard against stale leaders has three parts:
//   - the leader asks its lock session every second whether it still
//     holds the lock, and records a heartbeat (an update on that very
//     connection), and ends its term at the first failure, or six
//     seconds after the start of the last check that succeeded;
//   - every Lease of a leader checks, in its own transaction, that the
//     lock session's backend still holds the lock in pg_locks, so a
//     leader whose session ended cannot lease after another took over;
//   - a new leader waits before its first request until a provider
//     second has passed since the last moment the earlier leader could
//     have sent, so two leaders' requests never share a provider second:
//     a clean resignation records when, a heartbeat bounds it by six
//     seconds and a quarter later, and the takeover itself bounds it
//     (handover.go). A restart after a clean stop sends at once.
//
// When a leader's process dies, its kernel closes its sockets and the
// server ends the session at once: a follower takes over within about a
// second. When its host vanishes without closing them, the server notices
// through the session settings this driver sends on every connection
// (tcp_keepalives_idle 4 s, tcp_keepalives_interval 2 s,
// tcp_keepalives_count 3, tcp_user_timeout 10 s): the session ends, and
// the lock is free, within about ten seconds, so a follower takes over
// within about eleven. The old leader, if it is alive but cut off, has
// stopped before: its term ends within six seconds of its last heartbeat. Pooled
// connections also get idle_in_transaction_session_timeout 15 s, so a
// frozen client cannot hold row locks. A DSN that sets any of these keeps
// its own value.
//
// Taking over, the new leader returns every delivery still leased to the
// queue, giving back what Admit counted for it (its place in the number's
// throttle windows, its segments in the day's budget): only leaders
// lease, and the previous one's session is gone. A
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
// # Health
//
// Health writes one row of the state table (the same row for every
// replica, updated in place) and reports whether the write committed; the
// daemon asks about once a second and answers /-/ready and the intake
// with 503 while it fails.
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
