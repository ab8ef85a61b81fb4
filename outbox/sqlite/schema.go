package sqlite

import (
	"context"
	"database/sql"
	"fmt"
)

// schemaVersion is stored in PRAGMA user_version. Each entry of migrations
// moves the schema one version up, so a later release (dedup, throttles,
// escalation, delivery receipts) adds a step instead of rewriting one.
const schemaVersion = 9

// migrations[i] upgrades a database from user_version i to i+1. A step
// that has shipped is never edited: databases in the field were made by it.
var migrations = []string{
	// Version 1. Times are unix milliseconds. The columns beyond what
	// delivery needs today are the seams for what DESIGN.md plans next:
	//   - notifications.dedup_key (group key + status + alert fingerprints)
	//     and its index: suppressing an HA pair's duplicate notification;
	//   - notifications(group_key, received_at): escalation finds a group's
	//     earlier notifications;
	//   - deliveries(number, updated_at): per-number throttles count what a
	//     number received recently;
	//   - deliveries.api_message_id and its index: the provider's
	//     delivery-status callbacks are keyed by it.
	// The partial indexes cover only the rows the dispatcher works on, so
	// they stay small however much history retention keeps.
	`
CREATE TABLE notifications (
	id          INTEGER PRIMARY KEY,
	received_at INTEGER NOT NULL,
	source      TEXT    NOT NULL,
	group_key   TEXT    NOT NULL DEFAULT '',
	status      TEXT    NOT NULL DEFAULT '',
	dedup_key   TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX notifications_group ON notifications(group_key, received_at);
CREATE INDEX notifications_dedup ON notifications(dedup_key, received_at) WHERE dedup_key <> '';
CREATE INDEX notifications_received ON notifications(received_at);

CREATE TABLE messages (
	id              INTEGER PRIMARY KEY,
	notification_id INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
	receiver        TEXT    NOT NULL,
	text            TEXT    NOT NULL,
	segments        INTEGER NOT NULL
);
CREATE INDEX messages_notification ON messages(notification_id);

CREATE TABLE deliveries (
	id              INTEGER PRIMARY KEY,
	message_id      INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
	number          TEXT    NOT NULL,
	state           TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'delivered', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	queued_at       INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL,
	lease           INTEGER NOT NULL DEFAULT 0,
	lease_until     INTEGER,
	api_message_id  TEXT,
	error_code      TEXT    NOT NULL DEFAULT '',
	error           TEXT    NOT NULL DEFAULT '',
	updated_at      INTEGER NOT NULL,
	UNIQUE (message_id, number)
);
CREATE INDEX deliveries_due     ON deliveries(next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_age     ON deliveries(queued_at)           WHERE state = 'pending';
CREATE INDEX deliveries_leased  ON deliveries(lease_until)         WHERE state = 'sending';
CREATE INDEX deliveries_updated ON deliveries(updated_at);
CREATE INDEX deliveries_number  ON deliveries(number, updated_at);
CREATE INDEX deliveries_api_id  ON deliveries(api_message_id)      WHERE api_message_id IS NOT NULL;
`,

	// Version 2: several owners and provider accounts.
	//   - the state "delivered" becomes "accepted" (the provider took the
	//     request); "delivered" is kept for handset receipts, which will be
	//     columns beside the state;
	//   - deliveries.lease is a random token instead of a counter, and
	//     deliveries.lease_owner names the store that leased the row;
	//   - deliveries.account is the provider account of the last request;
	//   - notifications.outcome is what became of a notification (accepted,
	//     unrouted, filtered...); rows from version 1 were all recorded
	//     as accepted;
	//   - state is the small key-value map the dispatcher keeps its pause
	//     and hold in.
	// SQLite cannot change a CHECK constraint or a column's type in place,
	// so deliveries is rebuilt: a new table, every row copied with its id,
	// the old table dropped and the new one renamed, its indexes made
	// again. Nothing references deliveries, so the rebuild breaks no
	// foreign key; it runs in the migration's one transaction, so a crash
	// leaves version 1 intact.
	`
CREATE TABLE deliveries_v2 (
	id              INTEGER PRIMARY KEY,
	message_id      INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
	number          TEXT    NOT NULL,
	state           TEXT    NOT NULL CHECK (state IN ('pending', 'sending', 'accepted', 'failed')),
	attempts        INTEGER NOT NULL DEFAULT 0,
	queued_at       INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL,
	lease           TEXT    NOT NULL DEFAULT '',
	lease_owner     TEXT    NOT NULL DEFAULT '',
	lease_until     INTEGER,
	account         TEXT    NOT NULL DEFAULT '',
	api_message_id  TEXT,
	error_code      TEXT    NOT NULL DEFAULT '',
	error           TEXT    NOT NULL DEFAULT '',
	updated_at      INTEGER NOT NULL,
	UNIQUE (message_id, number)
);
INSERT INTO deliveries_v2 (id, message_id, number, state, attempts, queued_at, next_attempt_at,
		lease, lease_until, api_message_id, error_code, error, updated_at)
	SELECT id, message_id, number, CASE state WHEN 'delivered' THEN 'accepted' ELSE state END, attempts, queued_at, next_attempt_at,
		CASE state WHEN 'sending' THEN CAST(lease AS TEXT) ELSE '' END, lease_until, api_message_id, error_code, error, updated_at
	FROM deliveries;
DROP TABLE deliveries;
ALTER TABLE deliveries_v2 RENAME TO deliveries;
CREATE INDEX deliveries_due     ON deliveries(next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX deliveries_age     ON deliveries(queued_at)           WHERE state = 'pending';
CREATE INDEX deliveries_leased  ON deliveries(lease_until)         WHERE state = 'sending';
CREATE INDEX deliveries_updated ON deliveries(updated_at);
CREATE INDEX deliveries_number  ON deliveries(number, updated_at);
CREATE INDEX deliveries_api_id  ON deliveries(api_message_id)      WHERE api_message_id IS NOT NULL;

ALTER TABLE notifications ADD COLUMN outcome TEXT NOT NULL DEFAULT 'accepted';

CREATE TABLE state (
	key        TEXT    PRIMARY KEY,
	value      BLOB    NOT NULL,
	updated_at INTEGER NOT NULL
);
`,

	// Version 3: on-call schedules.
	//   - deliveries.person is who was on call at the number when the
	//     notification was routed;
	//   - notifications.once_key makes a notification happen once (a
	//     handoff notice): unique among the rows that have one, so the
	//     check holds in the write transaction whoever writes;
	//   - oncall_overrides are the overrides added at run time; members
	//     is a JSON array of names or numbers, as the operator wrote them.
	`
ALTER TABLE deliveries ADD COLUMN person TEXT NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN once_key TEXT NOT NULL DEFAULT '';
CREATE UNIQUE INDEX notifications_once ON notifications(once_key) WHERE once_key <> '';

CREATE TABLE oncall_overrides (
	id         INTEGER PRIMARY KEY AUTOINCREMENT,
	list       TEXT    NOT NULL,
	members    TEXT    NOT NULL,
	starts_at  INTEGER NOT NULL,
	ends_at    INTEGER NOT NULL,
	created_at INTEGER NOT NULL
);
CREATE INDEX oncall_overrides_end ON oncall_overrides(ends_at);
`,
	// Version 4: notifications.alertname, what a notification is about,
	// for the status page's view grouped by notification. Rows from
	// earlier versions have none.
	`
ALTER TABLE notifications ADD COLUMN alertname TEXT NOT NULL DEFAULT '';
`,
	// Version 5: noise controls (duplicate suppression, per-number
	// throttles and digests, the daily segment budget).
	//   - deliveries get the states held (throttled, waiting for its
	//     number), bundled (sent inside a digest, bundled_into its
	//     delivery) and cancelled (a resolution made it moot);
	//   - deliveries.unthrottled and .critical are the message's marks,
	//     .digest marks a digest's own delivery; .admitted_at is when Admit
	//     let the row go (the throttle counts it), .charged and
	//     .charged_day the segments it took from which day's budget, given
	//     back when the row was not sent after all;
	//   - messages.summary is the message's line in a digest;
	//   - dedup is the latest duplicate key per (receiver, group);
	//     resolved_alerts the alert instances seen resolved; budget the
	//     segments counted per day.
	// The columns are added first: ALTER TABLE ADD COLUMN rewrites the
	// table's stored SQL by offset, so the CHECK is widened last, in place
	// through writable_schema (SQLite's documented way to change a CHECK
	// constraint without rebuilding the table; every stored row satisfies
	// the wider one). migrate bumps the schema cookie afterwards so every
	// connection reloads the schema. The old seams notifications.dedup_key
	// and its index stay unused: the key is per receiver, not per
	// notification.
	`
ALTER TABLE messages ADD COLUMN summary TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN unthrottled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN critical INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN digest INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN admitted_at INTEGER;
ALTER TABLE deliveries ADD COLUMN charged INTEGER NOT NULL DEFAULT 0;
ALTER TABLE deliveries ADD COLUMN charged_day TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN bundled_into INTEGER;
CREATE INDEX deliveries_admitted ON deliveries(number, admitted_at) WHERE admitted_at IS NOT NULL;
CREATE INDEX deliveries_held     ON deliveries(number, next_attempt_at) WHERE state = 'held';
CREATE INDEX deliveries_digest   ON deliveries(number) WHERE digest = 1 AND state IN ('pending', 'sending');

CREATE TABLE dedup (
	receiver  TEXT    NOT NULL,
	group_key TEXT    NOT NULL,
	key       TEXT    NOT NULL,
	at        INTEGER NOT NULL,
	PRIMARY KEY (receiver, group_key)
) WITHOUT ROWID;
CREATE INDEX dedup_at ON dedup(at);

CREATE TABLE resolved_alerts (
	fingerprint TEXT    NOT NULL,
	starts_at   INTEGER NOT NULL,
	seen_at     INTEGER NOT NULL,
	PRIMARY KEY (fingerprint, starts_at)
) WITHOUT ROWID;
CREATE INDEX resolved_alerts_seen ON resolved_alerts(seen_at);

CREATE TABLE budget (
	day        TEXT    PRIMARY KEY,
	used       INTEGER NOT NULL,
	updated_at INTEGER NOT NULL
) WITHOUT ROWID;

PRAGMA writable_schema = ON;
UPDATE sqlite_schema
	SET sql = replace(sql, 'CHECK (state IN (''pending'', ''sending'', ''accepted'', ''failed''))',
		'CHECK (state IN (''pending'', ''held'', ''sending'', ''accepted'', ''bundled'', ''cancelled'', ''failed''))')
	WHERE type = 'table' AND name = 'deliveries';
PRAGMA writable_schema = OFF;
`,

	// Version 6: the delivery ids senders put on their requests
	// (Notification.DeliveryID), kept until they expire so that a replay
	// or a retry of something already accepted, after a reload or a
	// restart, sends nothing. notification_id is the notification first
	// recorded with the id; it is no foreign key, since the id may outlive
	// the notification's retention. The expiry index serves the prune.
	`
CREATE TABLE delivery_ids (
	id              TEXT    PRIMARY KEY,
	notification_id INTEGER NOT NULL,
	expires_at      INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX delivery_ids_expiry ON delivery_ids(expires_at);
`,

	// Version 7: two-way SMS (handset receipts, replies, acknowledgements).
	//   - deliveries.receipt ('' until a final one: 'delivered' or
	//     'failed'), .receipt_word (the provider's latest word) and
	//     .receipt_at are the handset receipt beside the state;
	//     .failover_of is the delivery a failover was sent for, indexed
	//     to find the failover of a delivery;
	//   - messages.template is the text before its reply code was written
	//     (empty without one), .reply_code the code;
	//   - notifications.ack_labels are the labels an acknowledgement
	//     silences, a JSON object;
	//   - reply_codes are the codes issued per number (one row per number
	//     and code: a code issued again after its lifetime replaces it);
	//   - acks are the acknowledgements, each with the silence it asked
	//     for, retried while pending under a lease like a delivery's;
	//   - opt_outs are the numbers that replied STOP;
	//   - claims are keys taken until they expire (a callback body's
	//     hash); rate_events the events a per-key limit counts.
	`
ALTER TABLE deliveries ADD COLUMN receipt TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN receipt_word TEXT NOT NULL DEFAULT '';
ALTER TABLE deliveries ADD COLUMN receipt_at INTEGER;
ALTER TABLE deliveries ADD COLUMN failover_of INTEGER;
CREATE INDEX deliveries_failover ON deliveries(failover_of) WHERE failover_of IS NOT NULL;
CREATE INDEX deliveries_outstanding ON deliveries(number, updated_at) WHERE state IN ('accepted', 'sending') AND receipt = '';
ALTER TABLE messages ADD COLUMN template TEXT NOT NULL DEFAULT '';
ALTER TABLE messages ADD COLUMN reply_code TEXT NOT NULL DEFAULT '';
ALTER TABLE notifications ADD COLUMN ack_labels TEXT NOT NULL DEFAULT '';

CREATE TABLE reply_codes (
	number          TEXT    NOT NULL,
	code            INTEGER NOT NULL,
	notification_id INTEGER NOT NULL REFERENCES notifications(id) ON DELETE CASCADE,
	issued_at       INTEGER NOT NULL,
	PRIMARY KEY (number, code)
) WITHOUT ROWID;
CREATE INDEX reply_codes_notification ON reply_codes(notification_id);
CREATE INDEX reply_codes_issued ON reply_codes(number, issued_at);

CREATE TABLE acks (
	id              INTEGER PRIMARY KEY,
	group_key       TEXT    NOT NULL,
	notification_id INTEGER NOT NULL,
	source          TEXT    NOT NULL,
	alertname       TEXT    NOT NULL,
	number          TEXT    NOT NULL,
	person          TEXT    NOT NULL,
	code            INTEGER NOT NULL,
	at              INTEGER NOT NULL,
	until           INTEGER NOT NULL,
	labels          TEXT    NOT NULL,
	silence         TEXT    NOT NULL CHECK (silence IN ('none', 'pending', 'created', 'failed')),
	silence_id      TEXT    NOT NULL DEFAULT '',
	attempts        INTEGER NOT NULL DEFAULT 0,
	next_attempt_at INTEGER NOT NULL,
	lease           TEXT    NOT NULL DEFAULT '',
	lease_until     INTEGER,
	error           TEXT    NOT NULL DEFAULT '',
	updated_at      INTEGER NOT NULL
);
CREATE INDEX acks_group   ON acks(group_key, at);
CREATE INDEX acks_at      ON acks(at);
CREATE INDEX acks_pending ON acks(next_attempt_at) WHERE silence = 'pending';

CREATE TABLE opt_outs (
	number TEXT    PRIMARY KEY,
	at     INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TABLE claims (
	key        TEXT    PRIMARY KEY,
	expires_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX claims_expiry ON claims(expires_at);

CREATE TABLE rate_events (
	id  INTEGER PRIMARY KEY,
	key TEXT    NOT NULL,
	at  INTEGER NOT NULL
);
CREATE INDEX rate_events_key ON rate_events(key, at);
CREATE INDEX rate_events_at  ON rate_events(at);
`,

	// Version 8: escalation. One row per scheduled step of a receiver's
	// escalate list:
	//   - escalation is the id of the escalation's first step (a
	//     receiver's steps in one firing episode of a group); receiver
	//     the receiver whose list it is, step its position (from 1),
	//     after_ms its delay and step_receiver whom it pages;
	//   - notification_id is the page that began the episode, started_at
	//     when; due_at when the step is due, next_attempt_at when it is
	//     tried next (later than due_at after a check that failed);
	//   - state is pending, escalated (escalated_to the notification of
	//     its page), stopped (reason: acked, resolved, silenced,
	//     cancelled) or failed; detail says more, for people;
	//   - episode_open is 1 until a resolution of the group ends the
	//     episode: a firing page to the receiver then begins a new one;
	//   - text is the page as its receiver got it, with the reply code's
	//     placeholder; summary, critical and labels (a JSON object, the
	//     group's labels) are what the escalated page and the check in
	//     Alertmanager need;
	//   - lease, lease_owner and lease_until as for deliveries.
	// The partial indexes cover the pending steps (the queue) and the
	// open episodes (the guard at every firing page of a group).
	`
CREATE TABLE escalations (
	id              INTEGER PRIMARY KEY,
	escalation      INTEGER NOT NULL,
	group_key       TEXT    NOT NULL,
	source          TEXT    NOT NULL,
	alertname       TEXT    NOT NULL,
	receiver        TEXT    NOT NULL,
	step            INTEGER NOT NULL,
	after_ms        INTEGER NOT NULL,
	step_receiver   TEXT    NOT NULL,
	notification_id INTEGER NOT NULL,
	started_at      INTEGER NOT NULL,
	due_at          INTEGER NOT NULL,
	next_attempt_at INTEGER NOT NULL,
	state           TEXT    NOT NULL CHECK (state IN ('pending', 'escalated', 'stopped', 'failed')),
	reason          TEXT    NOT NULL DEFAULT '',
	detail          TEXT    NOT NULL DEFAULT '',
	episode_open    INTEGER NOT NULL DEFAULT 1,
	text            TEXT    NOT NULL,
	summary         TEXT    NOT NULL DEFAULT '',
	critical        INTEGER NOT NULL DEFAULT 0,
	labels          TEXT    NOT NULL DEFAULT '',
	attempts        INTEGER NOT NULL DEFAULT 0,
	error           TEXT    NOT NULL DEFAULT '',
	lease           TEXT    NOT NULL DEFAULT '',
	lease_owner     TEXT    NOT NULL DEFAULT '',
	lease_until     INTEGER,
	escalated_to    INTEGER,
	ended_at        INTEGER,
	updated_at      INTEGER NOT NULL
);
CREATE INDEX escalations_due        ON escalations(next_attempt_at, id) WHERE state = 'pending';
CREATE INDEX escalations_open       ON escalations(group_key, receiver) WHERE episode_open = 1;
CREATE INDEX escalations_escalation ON escalations(escalation, step);
CREATE INDEX escalations_started    ON escalations(started_at);
`,

	// Version 9: two indexes every intake insert wrote and no query needs.
	//   - deliveries_number (number, updated_at) was the seam for
	//     per-number throttles, which came with their own partial indexes
	//     (deliveries_admitted, _held, _digest; receipts use
	//     _outstanding). The number's rows of a group are found through
	//     the group's notifications instead (notifications_group, then
	//     the (message_id, number) unique index), and an opt-out fails
	//     the number's pending rows by scanning the pending rows'
	//     partial index (deliveries_age): the queue, which is small
	//     unless the provider is down, for an event as rare as a STOP. Its entries went in the middle of the tree,
	//     one run per number, and cost the group commit the most pages.
	//   - dedup_at (at) served only the hourly prune, which now scans the
	//     dedup table: one row per receiver and group seen within the
	//     retention.
	// TestQueryPlans pins the plans of the queries these served.
	`
DROP INDEX deliveries_number;
DROP INDEX dedup_at;
`,
}

// migrate brings the schema to schemaVersion in one transaction.
func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin migration: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if v > schemaVersion {
		return fmt.Errorf("schema version %d is newer than this build understands (%d): run the smsbridge release that wrote it, or a later one", v, schemaVersion)
	}
	if v == schemaVersion {
		return nil
	}
	for ; v < schemaVersion; v++ {
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			return fmt.Errorf("migrate schema to version %d: %w", v+1, err)
		}
		// A step may edit the stored schema through writable_schema;
		// bumping the schema cookie makes every connection reload it
		// (SQLite's documented procedure), the next step's included,
		// which would otherwise alter the table by its stale parse.
		// After ordinary steps it costs nothing.
		var cookie int
		if err := tx.QueryRowContext(ctx, "PRAGMA schema_version").Scan(&cookie); err != nil {
			return fmt.Errorf("read schema cookie: %w", err)
		}
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA schema_version = %d", cookie+1)); err != nil {
			return fmt.Errorf("write schema cookie: %w", err)
		}
	}
	// PRAGMA takes no bound parameters; v is our own integer.
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", schemaVersion)); err != nil {
		return fmt.Errorf("write schema version: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("commit migration: %w", err)
	}
	return nil
}
