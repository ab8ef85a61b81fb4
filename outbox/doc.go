// Package outbox is the contract of smsbridge's durable store: the commit
// point between answering a notification with 202 and sending it as SMS.
// It holds the types the intake, the dispatcher, the status page and the
// CLI share, the Store interface every driver implements (outbox/sqlite,
// the embedded default; outbox/postgres for replicas), and the metrics
// every driver reports. It imports no driver: a consumer depends on this
// package and declares the subset of Store it needs; main wires a driver
// in. Package outbox/outboxtest pins the semantics below with one
// conformance suite that every driver runs; a driver that does not pass it
// is not done.
//
// # Durability before the 202
//
// When Enqueue returns nil, the notification, its messages and one
// delivery row per number are committed and synced to stable storage: a
// power loss afterwards loses none of it. The intake answers 202 only
// then; when Enqueue fails, nothing was recorded and the intake answers
// 503, which Alertmanager and most webhook senders retry. A driver may
// share one commit (and one sync) between concurrent calls; it must not
// answer any call in it before the commit is durable.
//
// Guards that decide whether to send at all are evaluated in the same
// transaction as the write, so two intakes (two requests, or two replicas)
// cannot both act on the same check. RequireFiring is one: a
// generic webhook's "resolved" is sent only if the newest stored
// notification of its group is firing; otherwise it is recorded as
// filtered, without messages, and the next resolution of the group is
// quiet too.
//
// The sender's delivery id (Notification.DeliveryID) is a guard too,
// evaluated before every other: an id the store holds and that has not
// expired makes Enqueue write nothing and answer OutcomeDuplicate with the
// first notification's id, so a replayed or retried webhook sends once,
// whatever reloads and restarts happened in between. The id is recorded in
// the same transaction as the notification, so a failed Enqueue (answered
// 503) records no id and the sender's retry is taken. Prune forgets ids
// once they expire.
//
// The noise controls are guards of the same kind. A message with a
// DedupKey is dropped when its receiver stored the same key for the group
// within the window (an Alertmanager HA pair's second copy); a firing
// message whose every alert instance was already seen resolved is dropped
// as stale; a resolution with CancelHeld cancels its group's firing that
// a number's throttle still holds. Messages that pass are merged by text,
// so a number gets each text once.
//
// # Limits at send time
//
// What a number may receive and what a day may cost is decided when a
// delivery is about to be sent, not when it arrives: Admit, called by the
// dispatcher for each leased batch, counts the deliveries admitted to the
// number within each throttle window (in flight or accepted: what the
// carrier sees) and the segments admitted on the budget's day (what is
// billed), atomically with every other Admit. A delivery that would
// exceed a window is held for its number; one the spent budget cannot pay
// for fails with the reason budget_exhausted, unless it is critical. What
// was admitted and then not sent (rejected, rescheduled, a lapsed lease)
// is given back. Release, when a number may receive again, sends its one
// held delivery as itself or bundles several into one digest.
//
// # At-least-once delivery
//
// A delivery (one text to one number) is pending until a dispatcher
// leases it, sending while leased, and leaves the lease accepted (the
// provider took it), failed, or pending again (rescheduled, deferred or
// released). "Accepted" is the provider's answer to the request, not a
// handset receipt: receipts ("delivered") are recorded beside the state.
// A crash between the provider accepting a request and Complete
// recording it sends that one batch again when the lease is recovered;
// nothing else repeats, and nothing accepted is lost. Rows that stay
// undeliverable for max age are failed by FailExpired, visibly, with the
// last error kept; Retry puts a failed row back.
//
// # Leases: owners, tokens and deadlines
//
// Every open Store has an owner id (Owner), unique per process. Every
// Lease call marks its rows with the owner, a deadline and a token that
// no other Lease call, in any process, before or after a restart, ever
// returns. Complete records an outcome only while the row still carries
// the outcome's token: when a lease lapsed and the row went to another
// holder (or was failed, or recovered), the late result is ignored and
// logged, and the current holder decides. A row whose deadline passed is
// due again for any store, so a holder that hangs or dies delays its rows
// by at most the lease time. A driver that can prove a holder dead may
// recover its leases sooner: the SQLite driver, which holds an exclusive
// lock on its directory, returns every leased row to the queue at Open.
//
// # Wake-ups
//
// The driver supplies wake-ups (Wake): a value after a commit that adds
// work due now, so the dispatcher sleeps until there is work instead of
// polling. For the store's own calls the value is sent before the call
// returns; a driver shared by replicas also wakes for other replicas'
// commits where its backend can tell (PostgreSQL LISTEN/NOTIFY). The
// channel holds one value for any number of commits, so a reader leases
// until nothing is due, and keeps a timer for work that becomes due later
// (Schedule).
//
// # Replicas: one dispatcher
//
// Every store open on a shared backing takes intake, but the provider's
// rate limit is per account, so one of them dispatches at a time. A
// driver whose backing processes share implements Leadership: Lead blocks
// until this store leads and returns a Term, whose Lost channel closes
// when leadership ends; while a term is lost, Lease fails with
// ErrNotLeader, so a leader that was cut off cannot lease after another
// took over. Taking over, a driver may return every leased delivery to
// the queue, since only leaders lease and the previous one is provably
// gone. A Store without Leadership is its backing's only dispatcher (the
// SQLite driver's directory lock admits one process). The 429 pause and
// the hold are kept with GetState/PutState, so each new leader reads
// them when its term starts.
//
// # Two-way SMS
//
// The provider's callbacks come back through the same store (TwoWay). A
// handset receipt is recorded beside a delivery's state, on the latest
// delivery to its number accepted within a window that has no final
// receipt yet: the provider's batch send gives no id to match by. A
// firing message can ask for a reply code: Enqueue chooses one per
// notification, in the write transaction, that none of its numbers was
// issued within a day, and writes it into the text in place of a
// placeholder, so all the numbers still share one text. An
// acknowledgement of a group is recorded atomically with the check that
// none is in force (Acknowledge), with the silence it asks for, which
// stays pending, leased and retried like a delivery, until Alertmanager
// took it. Opt-outs (STOP) fail what waits for their number in the same
// transaction. Claim and Allow are small guards for the callback
// endpoint: a callback body handled once, answers counted per number.
//
// # Escalation
//
// A firing message may carry its receiver's escalation steps: Enqueue
// schedules them in the same transaction as the page, unless the
// receiver's escalation of the group is already under way in this firing
// episode, and a resolved notification stops its group's pending steps and
// ends the episode, in its own transaction, whatever becomes of it. So a
// 202 always comes with its timers and a resolution always stops them. A
// step is leased when due like a delivery (owner, token, deadline); the
// page it sends is written by Enqueue only while the step is still pending
// under that lease, and ends it, so a step stopped meanwhile sends nothing
// and none sends twice.
//
// # Small durable state
//
// GetState and PutState keep the little state that must survive a restart
// and be shared by replicas, such as the provider's pause and hold, in the
// same store as the queue, so one backup and one durability promise cover
// both.
//
// # Health
//
// A driver may implement HealthChecker: Health reports whether an Enqueue
// now would be durable, in words an operator can act on. The daemon asks
// about once a second and caches the answer for /-/ready and the intake,
// which answers 503 while it is an error. The SQLite driver checks that
// its directory is still the one it opened, that Options.MinFree is free
// (keeping a reserve file for sending what was accepted), and that a small
// write commits; the PostgreSQL driver checks that a small write
// commits.
package outbox
