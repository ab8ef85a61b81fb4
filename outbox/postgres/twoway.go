package postgres

import (
	"context"
	"crypto/rand"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsbridge/smsbridge/internal/plural"
	"github.com/smsbridge/smsbridge/outbox"
)

// The two-way part of the contract (outbox.TwoWay). Intake calls these on
// every replica (receipts, replies, opt-outs, claims), so each decision
// that reads shared state and writes what it decided runs in one
// transaction under an advisory lock every replica takes for the same
// thing: the number for a receipt and an opt-out, the group for an
// acknowledgement, the key for Allow. Claim is one INSERT ... ON CONFLICT.
// LeaseSilences skips rows another transaction holds, as Lease does.

// inTx runs fn in one transaction, after taking locks, and commits it.
func (s *Store) inTx(ctx context.Context, locks []xactLock, fn func(tx pgx.Tx) error) error {
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit this is a no-op
	if len(locks) > 0 {
		b := &pgx.Batch{}
		queueLocks(b, locks)
		if err := tx.SendBatch(ctx, b).Close(); err != nil {
			return fmt.Errorf("lock: %w", err)
		}
	}
	if err := fn(tx); err != nil {
		return err
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// RecordReceipt records a handset receipt on the latest outstanding
// delivery to the number, under the number's receipt lock, so two
// receipts for one number never both take one delivery.
func (s *Store) RecordReceipt(ctx context.Context, now time.Time, r outbox.Receipt) (_ outbox.ReceiptMatch, err error) {
	if err := s.closed(); err != nil {
		return outbox.ReceiptMatch{}, err
	}
	switch r.Status {
	case "", outbox.ReceiptDelivered, outbox.ReceiptFailed:
	default:
		return outbox.ReceiptMatch{}, fmt.Errorf("record receipt: %w: status %q", outbox.ErrInvalid, r.Status)
	}
	at := r.At
	if at.IsZero() {
		at = now
	}
	ctx, end := s.op(ctx, "record_receipt")
	defer func() { end(err) }()
	var m outbox.ReceiptMatch
	err = s.inTx(ctx, []xactLock{s.lockOf(lockSpaceReceipt, r.Number)}, func(tx pgx.Tx) error {
		var id int64
		err := tx.QueryRow(ctx, `UPDATE deliveries SET receipt = $1, receipt_word = $2, receipt_at = $3
			WHERE id = (SELECT id FROM deliveries WHERE number = $4 AND state IN ('accepted', 'sending') AND receipt = '' AND updated_at >= $5
				ORDER BY updated_at DESC, id DESC LIMIT 1)
			RETURNING id`, r.Status, r.Word, at, r.Number, now.Add(-r.Window)).Scan(&id)
		switch {
		case isNoRows(err):
			return fmt.Errorf("no outstanding delivery to the number: %w", outbox.ErrNotFound)
		case err != nil:
			return err
		}
		if m.Delivery, err = scanRecord(tx.QueryRow(ctx, selectRecords+` WHERE d.id = $1`, id)); err != nil {
			return err
		}
		var labels []byte
		if err := tx.QueryRow(ctx, `SELECT m.template, n.ack_labels FROM deliveries d JOIN messages m ON m.id = d.message_id
			JOIN notifications n ON n.id = m.notification_id WHERE d.id = $1`, id).Scan(&m.Template, &labels); err != nil {
			return err
		}
		if m.Template == "" {
			m.Template = m.Delivery.Text
		}
		m.AckLabels = decodeLabels(labels)
		return nil
	})
	if err != nil {
		return outbox.ReceiptMatch{}, fmt.Errorf("record receipt: %w", err)
	}
	return m, nil
}

// replyTargetQuery selects a reply code's target; callers add the WHERE.
// A group's newest notification is its highest id (ids follow the order
// of recording within a group).
const replyTargetQuery = `SELECT rc.code, rc.issued_at, n.id, n.group_key, n.source, n.status, n.alertname, n.ack_labels,
		COALESCE((SELECT d.person FROM deliveries d JOIN messages m ON m.id = d.message_id
			WHERE m.notification_id = n.id AND d.number = rc.number AND d.person <> '' ORDER BY d.id LIMIT 1), ''),
		COALESCE((SELECT g.status FROM notifications g WHERE g.group_key = n.group_key ORDER BY g.id DESC LIMIT 1), ''),
		ARRAY(SELECT o.number FROM reply_codes o WHERE o.notification_id = n.id ORDER BY o.number)
	FROM reply_codes rc JOIN notifications n ON n.id = rc.notification_id`

func scanTarget(sc pgx.Row) (outbox.ReplyTarget, error) {
	var t outbox.ReplyTarget
	var labels []byte
	var last string
	if err := sc.Scan(&t.Code, &t.IssuedAt, &t.NotificationID, &t.GroupKey, &t.Source, &t.Status, &t.AlertName, &labels, &t.Person,
		&last, &t.Numbers); err != nil {
		return outbox.ReplyTarget{}, err
	}
	t.AckLabels, t.GroupOpen = decodeLabels(labels), last == "firing"
	return t, nil
}

// ReplyCode resolves a code number replied.
func (s *Store) ReplyCode(ctx context.Context, number string, code int, now time.Time) (_ outbox.ReplyTarget, err error) {
	if err := s.closed(); err != nil {
		return outbox.ReplyTarget{}, err
	}
	ctx, end := s.op(ctx, "reply_code")
	defer func() { end(err) }()
	t, err := scanTarget(s.pool.QueryRow(ctx, replyTargetQuery+` WHERE rc.number = $1 AND rc.code = $2 AND rc.issued_at > $3`,
		number, code, now.Add(-outbox.ReplyCodeLifetime)))
	switch {
	case isNoRows(err):
		return outbox.ReplyTarget{}, fmt.Errorf("reply code %d: not issued to the number within %s: %w", code, outbox.ReplyCodeLifetime, outbox.ErrNotFound)
	case err != nil:
		return outbox.ReplyTarget{}, fmt.Errorf("reply code %d: %w", code, err)
	}
	return t, nil
}

// ReplyTargets returns the newest code's target of every group a code
// was issued to number for since since.
func (s *Store) ReplyTargets(ctx context.Context, number string, since time.Time) (_ []outbox.ReplyTarget, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	ctx, end := s.op(ctx, "reply_targets")
	defer func() { end(err) }()
	rows, err := s.pool.Query(ctx, replyTargetQuery+` WHERE rc.number = $1 AND rc.issued_at >= $2 ORDER BY rc.issued_at DESC, n.id DESC`,
		number, since)
	if err != nil {
		return nil, fmt.Errorf("reply targets: %w", err)
	}
	defer rows.Close()
	var out []outbox.ReplyTarget
	seen := map[string]bool{}
	for rows.Next() {
		t, err := scanTarget(rows)
		if err != nil {
			return nil, fmt.Errorf("reply targets: %w", err)
		}
		if seen[t.GroupKey] {
			continue
		}
		seen[t.GroupKey] = true
		out = append(out, t)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reply targets: %w", err)
	}
	return out, nil
}

// selectAcks is the query behind outbox.Ack, without its WHERE.
const selectAcks = `SELECT id, group_key, notification_id, source, alertname, number, person, code, at, until, labels,
		silence, silence_id, attempts, next_attempt_at, error, lease FROM acks`

func scanAck(sc pgx.Row) (outbox.Ack, error) {
	var a outbox.Ack
	var next time.Time
	var labels []byte
	var silence string
	if err := sc.Scan(&a.ID, &a.GroupKey, &a.NotificationID, &a.Source, &a.AlertName, &a.Number, &a.Person, &a.Code, &a.At, &a.Until,
		&labels, &silence, &a.SilenceID, &a.Attempts, &next, &a.Error, &a.Lease); err != nil {
		return outbox.Ack{}, err
	}
	a.Labels, a.Silence = decodeLabels(labels), outbox.SilenceState(silence)
	if a.Silence == outbox.SilencePending {
		a.NextAttempt = next
	}
	return a, nil
}

func collectAcks(rows pgx.Rows, err error) ([]outbox.Ack, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (outbox.Ack, error) { return scanAck(row) })
}

// Acknowledge records a unless an acknowledgement of its group is in
// force at a.At, under the group's acknowledgement lock: of two replicas
// acknowledging one group at once, one records it.
func (s *Store) Acknowledge(ctx context.Context, a outbox.Ack) (_ outbox.Ack, _ bool, err error) {
	if err := s.closed(); err != nil {
		return outbox.Ack{}, false, err
	}
	switch {
	case a.GroupKey == "":
		return outbox.Ack{}, false, fmt.Errorf("acknowledge: %w: no group key", outbox.ErrInvalid)
	case a.Silence != outbox.SilencePending && a.Silence != outbox.SilenceNone:
		return outbox.Ack{}, false, fmt.Errorf("acknowledge: %w: silence %q", outbox.ErrInvalid, a.Silence)
	case !a.Until.After(a.At):
		return outbox.Ack{}, false, fmt.Errorf("acknowledge: %w: it ends before it starts", outbox.ErrInvalid)
	}
	ctx, end := s.op(ctx, "acknowledge")
	defer func() { end(err) }()
	var out outbox.Ack
	created := false
	err = s.inTx(ctx, []xactLock{s.lockOf(lockSpaceAck, a.GroupKey)}, func(tx pgx.Tx) error {
		prior, err := scanAck(tx.QueryRow(ctx, selectAcks+` WHERE group_key = $1 AND until > $2 ORDER BY at DESC, id DESC LIMIT 1`,
			a.GroupKey, a.At))
		switch {
		case err == nil:
			out = prior
			return nil
		case !isNoRows(err):
			return err
		}
		var id int64
		if err := tx.QueryRow(ctx, `INSERT INTO acks (group_key, notification_id, source, alertname, number, person, code, at, until,
			labels, silence, next_attempt_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, NULLIF($10, '')::jsonb, $11, $8, $8)
			RETURNING id`,
			a.GroupKey, a.NotificationID, a.Source, a.AlertName, a.Number, a.Person, a.Code, a.At, a.Until,
			labelsJSON(a.Labels), string(a.Silence)).Scan(&id); err != nil {
			return err
		}
		out, created = a.Stored(id), true
		return nil
	})
	if err != nil {
		return outbox.Ack{}, false, fmt.Errorf("acknowledge: %w", err)
	}
	return out, created, nil
}

// Acknowledged returns the latest acknowledgement of a group since since.
func (s *Store) Acknowledged(ctx context.Context, groupKey string, since time.Time) (_ outbox.Ack, _ bool, err error) {
	if err := s.closed(); err != nil {
		return outbox.Ack{}, false, err
	}
	ctx, end := s.op(ctx, "acknowledged")
	defer func() { end(err) }()
	a, err := scanAck(s.pool.QueryRow(ctx, selectAcks+` WHERE group_key = $1 AND at >= $2 ORDER BY at DESC, id DESC LIMIT 1`,
		groupKey, since))
	switch {
	case isNoRows(err):
		return outbox.Ack{}, false, nil
	case err != nil:
		return outbox.Ack{}, false, fmt.Errorf("read acknowledgements: %w", err)
	}
	return a, true, nil
}

// Acks returns the acknowledgements since since, newest first.
func (s *Store) Acks(ctx context.Context, since time.Time, limit int) (_ []outbox.Ack, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	ctx, end := s.op(ctx, "acks")
	defer func() { end(err) }()
	out, err := collectAcks(s.pool.Query(ctx, selectAcks+` WHERE at >= $1 ORDER BY at DESC, id DESC LIMIT $2`, since, limit))
	if err != nil {
		return nil, fmt.Errorf("read acknowledgements: %w", err)
	}
	return out, nil
}

// nextSilenceQuery finds when the next pending silence not leased now is
// due: its attempt, or the lapse of its holder's lease, whichever is
// later.
const nextSilenceQuery = `SELECT min(CASE WHEN lease_until IS NOT NULL AND lease_until > $1
		THEN GREATEST(next_attempt_at, lease_until) ELSE next_attempt_at END)
	FROM acks WHERE silence = 'pending' AND NOT (id = ANY($2))`

// LeaseSilences leases the pending silences due at now. Rows another
// transaction holds are skipped, so replicas leasing at once take
// different ones. Each gets a token of its own.
func (s *Store) LeaseSilences(ctx context.Context, now time.Time, max int, leaseFor time.Duration) (_ []outbox.Ack, _ time.Time, err error) {
	if err := s.closed(); err != nil {
		return nil, time.Time{}, err
	}
	ctx, end := s.op(ctx, "lease_silences")
	defer func() { end(err) }()
	var out []outbox.Ack
	var next *time.Time
	token := rand.Text()
	err = s.inTx(ctx, nil, func(tx pgx.Tx) error {
		if max > 0 {
			due, err := collectAcks(tx.Query(ctx, selectAcks+` WHERE silence = 'pending' AND next_attempt_at <= $1
				AND (lease_until IS NULL OR lease_until <= $1) ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`, now, max))
			if err != nil {
				return err
			}
			ids := make([]int64, len(due))
			for i := range due {
				ids[i] = due[i].ID
				due[i].Lease = leaseOf(token, due[i].ID)
			}
			if len(ids) > 0 {
				if _, err := tx.Exec(ctx, `UPDATE acks SET lease = $1 || '.' || id::text, lease_until = $2 WHERE id = ANY($3)`,
					token, now.Add(leaseFor), ids); err != nil {
					return err
				}
			}
			out = due
		}
		ids := make([]int64, len(out))
		for i, a := range out {
			ids[i] = a.ID
		}
		return tx.QueryRow(ctx, nextSilenceQuery, now, ids).Scan(&next)
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("lease silences: %w", err)
	}
	if next == nil {
		return out, time.Time{}, nil
	}
	return out, *next, nil
}

// leaseOf is the token of one leased row: the call's token and the row's
// id, as the UPDATE writes it.
func leaseOf(token string, id int64) string { return fmt.Sprintf("%s.%d", token, id) }

// CompleteSilence records one attempt at a leased silence.
func (s *Store) CompleteSilence(ctx context.Context, id int64, lease string, o outbox.SilenceOutcome) (err error) {
	if err := s.closed(); err != nil {
		return err
	}
	next, err := o.Next(lease)
	if err != nil {
		return fmt.Errorf("complete silence %d: %w", id, err)
	}
	ctx, end := s.op(ctx, "complete_silence")
	defer func() { end(err) }()
	tag, err := s.pool.Exec(ctx, `UPDATE acks SET silence = $1, silence_id = $2, error = $3, next_attempt_at = $4, attempts = attempts + 1,
		lease = '', lease_until = NULL, updated_at = $5 WHERE id = $6 AND lease = $7 AND silence = 'pending'`,
		string(o.State), o.SilenceID, o.Error, next, o.At, id, lease)
	if err != nil {
		return fmt.Errorf("complete silence %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("complete silence %d: the lease lapsed: %w", id, outbox.ErrNotFound)
	}
	return nil
}

// optedOutError is the error text of a delivery failed by an opt-out.
const optedOutError = "the number opted out of SMS (it replied STOP); it gets nothing until it replies START"

// SetOptOut records an opt-out (and fails the number's waiting
// deliveries) or an opt-in, under the number's lock, which Admit, Release
// and CancelHeld take too: none of them is deciding about the number's
// deliveries meanwhile.
func (s *Store) SetOptOut(ctx context.Context, number string, out bool, at time.Time) (_ bool, _ int, err error) {
	if err := s.closed(); err != nil {
		return false, 0, err
	}
	if number == "" {
		return false, 0, fmt.Errorf("opt out: %w: no number", outbox.ErrInvalid)
	}
	ctx, end := s.op(ctx, "set_opt_out")
	defer func() { end(err) }()
	changed, failed := false, 0
	err = s.inTx(ctx, []xactLock{s.lockOf(lockSpaceNumber, number)}, func(tx pgx.Tx) error {
		if !out {
			tag, err := tx.Exec(ctx, `DELETE FROM opt_outs WHERE number = $1`, number)
			changed = tag.RowsAffected() > 0
			return err
		}
		tag, err := tx.Exec(ctx, `INSERT INTO opt_outs (number, at) VALUES ($1, $2) ON CONFLICT (number) DO NOTHING`, number, at)
		if err != nil {
			return err
		}
		changed = tag.RowsAffected() > 0
		tag, err = tx.Exec(ctx, `UPDATE deliveries SET state = 'failed', error_code = $1, error = $2, updated_at = $3
			WHERE id IN (SELECT id FROM deliveries WHERE number = $4 AND state IN ('pending', 'held') ORDER BY id FOR UPDATE)
			AND state IN ('pending', 'held')`, outbox.CodeOptedOut, optedOutError, at, number)
		failed = int(tag.RowsAffected())
		return err
	})
	if err != nil {
		return false, 0, fmt.Errorf("record an opt-out: %w", err)
	}
	return changed, failed, nil
}

// OptOuts returns every opted-out number, the earliest first.
func (s *Store) OptOuts(ctx context.Context) (_ []outbox.OptOut, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	ctx, end := s.op(ctx, "opt_outs")
	defer func() { end(err) }()
	rows, err := s.pool.Query(ctx, `SELECT number, at FROM opt_outs ORDER BY at, number`)
	if err != nil {
		return nil, fmt.Errorf("read opt-outs: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outbox.OptOut, error) {
		var o outbox.OptOut
		err := row.Scan(&o.Number, &o.At)
		return o, err
	})
	if err != nil {
		return nil, fmt.Errorf("read opt-outs: %w", err)
	}
	return out, nil
}

// OptedOut returns those of numbers that are opted out, in order.
func (s *Store) OptedOut(ctx context.Context, numbers []string) (_ []string, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	if len(numbers) == 0 {
		return nil, nil
	}
	ctx, end := s.op(ctx, "opted_out")
	defer func() { end(err) }()
	rows, err := s.pool.Query(ctx, `SELECT number FROM opt_outs WHERE number = ANY($1)`, numbers)
	if err != nil {
		return nil, fmt.Errorf("read opt-outs of %s: %w", plural.Count(len(numbers), "number", "numbers"), err)
	}
	got, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("read opt-outs: %w", err)
	}
	set := map[string]bool{}
	for _, n := range got {
		set[n] = true
	}
	var out []string
	for _, n := range numbers {
		if set[n] {
			out = append(out, n)
			delete(set, n)
		}
	}
	return out, nil
}

// Claim takes key until now+ttl unless someone holds it: one INSERT ...
// ON CONFLICT, so of two replicas claiming one key at once, one wins.
func (s *Store) Claim(ctx context.Context, key string, now time.Time, ttl time.Duration) (_ bool, err error) {
	if err := s.closed(); err != nil {
		return false, err
	}
	if key == "" || ttl <= 0 {
		return false, fmt.Errorf("claim: %w: empty key or ttl", outbox.ErrInvalid)
	}
	ctx, end := s.op(ctx, "claim")
	defer func() { end(err) }()
	tag, err := s.pool.Exec(ctx, `INSERT INTO claims (key, expires_at) VALUES ($1, $2)
		ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE claims.expires_at <= $3`, key, now.Add(ttl), now)
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	return tag.RowsAffected() > 0, nil
}

// Claimed reports whether key is held at now.
func (s *Store) Claimed(ctx context.Context, key string, now time.Time) (_ bool, err error) {
	if err := s.closed(); err != nil {
		return false, err
	}
	ctx, end := s.op(ctx, "claimed")
	defer func() { end(err) }()
	var held bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM claims WHERE key = $1 AND expires_at > $2)`,
		key, now).Scan(&held); err != nil {
		return false, fmt.Errorf("claimed: %w", err)
	}
	return held, nil
}

// Unclaim gives key back.
func (s *Store) Unclaim(ctx context.Context, key string) (err error) {
	if err := s.closed(); err != nil {
		return err
	}
	ctx, end := s.op(ctx, "unclaim")
	defer func() { end(err) }()
	if _, err := s.pool.Exec(ctx, `DELETE FROM claims WHERE key = $1`, key); err != nil {
		return fmt.Errorf("unclaim: %w", err)
	}
	return nil
}

// Allow counts one event under key unless limit were counted within per,
// under the key's lock.
func (s *Store) Allow(ctx context.Context, key string, now time.Time, limit int, per time.Duration) (_ bool, err error) {
	if err := s.closed(); err != nil {
		return false, err
	}
	if key == "" || limit < 0 || per <= 0 {
		return false, fmt.Errorf("allow: %w: empty key, negative limit or no window", outbox.ErrInvalid)
	}
	ctx, end := s.op(ctx, "allow")
	defer func() { end(err) }()
	allowed := false
	err = s.inTx(ctx, []xactLock{s.lockOf(lockSpaceRate, key)}, func(tx pgx.Tx) error {
		var n int
		if err := tx.QueryRow(ctx, `SELECT count(*) FROM rate_events WHERE key = $1 AND at > $2`, key, now.Add(-per)).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return nil
		}
		allowed = true
		_, err := tx.Exec(ctx, `INSERT INTO rate_events (key, at) VALUES ($1, $2)`, key, now)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("allow: %w", err)
	}
	return allowed, nil
}
