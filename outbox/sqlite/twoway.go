package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/internal/plural"
	"github.com/smsbridge/smsbridge/outbox"
)

// The two-way part of the contract (outbox.TwoWay). Each method is one
// transaction on the single write connection, or one read.

// RecordReceipt records a handset receipt on the latest outstanding
// delivery to the number.
func (s *Store) RecordReceipt(ctx context.Context, now time.Time, r outbox.Receipt) (outbox.ReceiptMatch, error) {
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
	var m outbox.ReceiptMatch
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var id int64
		err := tx.QueryRowContext(ctx, `SELECT id FROM deliveries
			WHERE number = ? AND state IN ('accepted', 'sending') AND receipt = '' AND updated_at >= ?
			ORDER BY updated_at DESC, id DESC LIMIT 1`, r.Number, ms(now.Add(-r.Window))).Scan(&id)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			return fmt.Errorf("record receipt: no outstanding delivery to the number: %w", outbox.ErrNotFound)
		case err != nil:
			return fmt.Errorf("record receipt: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET receipt = ?, receipt_word = ?, receipt_at = ? WHERE id = ?`,
			r.Status, r.Word, ms(at), id); err != nil {
			return fmt.Errorf("record receipt: %w", err)
		}
		if m.Delivery, err = scanRecord(tx.QueryRowContext(ctx, selectRecords+` WHERE d.id = ?`, id)); err != nil {
			return fmt.Errorf("record receipt: %w", err)
		}
		var labels string
		if err := tx.QueryRowContext(ctx, `SELECT m.template, n.ack_labels FROM deliveries d JOIN messages m ON m.id = d.message_id
			JOIN notifications n ON n.id = m.notification_id WHERE d.id = ?`, id).Scan(&m.Template, &labels); err != nil {
			return fmt.Errorf("record receipt: %w", err)
		}
		if m.Template == "" {
			m.Template = m.Delivery.Text
		}
		m.AckLabels = decodeLabels(labels)
		return nil
	})
	if err != nil {
		return outbox.ReceiptMatch{}, err
	}
	return m, nil
}

// replyTargetQuery selects a reply code's target; callers add the WHERE.
const replyTargetQuery = `SELECT rc.code, rc.issued_at, n.id, n.group_key, n.source, n.status, n.alertname, n.ack_labels,
		COALESCE((SELECT d.person FROM deliveries d JOIN messages m ON m.id = d.message_id
			WHERE m.notification_id = n.id AND d.number = rc.number AND d.person <> '' LIMIT 1), ''),
		COALESCE((SELECT g.status FROM notifications g WHERE g.group_key = n.group_key ORDER BY g.received_at DESC, g.id DESC LIMIT 1), '')
	FROM reply_codes rc JOIN notifications n ON n.id = rc.notification_id`

func scanTarget(sc interface{ Scan(...any) error }) (outbox.ReplyTarget, error) {
	var t outbox.ReplyTarget
	var issued int64
	var labels, last string
	if err := sc.Scan(&t.Code, &issued, &t.NotificationID, &t.GroupKey, &t.Source, &t.Status, &t.AlertName, &labels, &t.Person, &last); err != nil {
		return outbox.ReplyTarget{}, err
	}
	t.IssuedAt, t.AckLabels, t.GroupOpen = fromMS(issued), decodeLabels(labels), last == "firing"
	return t, nil
}

// numbersOf fills in the numbers the target's code was issued to.
func (s *Store) numbersOf(ctx context.Context, t *outbox.ReplyTarget) error {
	rows, err := s.rdb.QueryContext(ctx, `SELECT number FROM reply_codes WHERE notification_id = ? ORDER BY number`, t.NotificationID)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return err
		}
		t.Numbers = append(t.Numbers, n)
	}
	return rows.Err()
}

// ReplyCode resolves a code number replied.
func (s *Store) ReplyCode(ctx context.Context, number string, code int, now time.Time) (outbox.ReplyTarget, error) {
	if err := s.closed(); err != nil {
		return outbox.ReplyTarget{}, err
	}
	t, err := scanTarget(s.rdb.QueryRowContext(ctx, replyTargetQuery+` WHERE rc.number = ? AND rc.code = ? AND rc.issued_at > ?`,
		number, code, ms(now.Add(-outbox.ReplyCodeLifetime))))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return outbox.ReplyTarget{}, fmt.Errorf("reply code %d: not issued to the number within %s: %w", code, outbox.ReplyCodeLifetime, outbox.ErrNotFound)
	case err != nil:
		return outbox.ReplyTarget{}, fmt.Errorf("reply code %d: %w", code, err)
	}
	if err := s.numbersOf(ctx, &t); err != nil {
		return outbox.ReplyTarget{}, fmt.Errorf("reply code %d: %w", code, err)
	}
	return t, nil
}

// ReplyTargets returns the newest code's target of every group a code
// was issued to number for since since.
func (s *Store) ReplyTargets(ctx context.Context, number string, since time.Time) ([]outbox.ReplyTarget, error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, replyTargetQuery+` WHERE rc.number = ? AND rc.issued_at >= ? ORDER BY rc.issued_at DESC, n.id DESC`,
		number, ms(since))
	if err != nil {
		return nil, fmt.Errorf("reply targets: %w", err)
	}
	var out []outbox.ReplyTarget
	seen := map[string]bool{}
	for rows.Next() {
		t, err := scanTarget(rows)
		if err != nil {
			rows.Close()
			return nil, fmt.Errorf("reply targets: %w", err)
		}
		if seen[t.GroupKey] {
			continue
		}
		seen[t.GroupKey] = true
		out = append(out, t)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("reply targets: %w", err)
	}
	for i := range out {
		if err := s.numbersOf(ctx, &out[i]); err != nil {
			return nil, fmt.Errorf("reply targets: %w", err)
		}
	}
	return out, nil
}

// selectAcks is the query behind outbox.Ack, without its WHERE.
const selectAcks = `SELECT id, group_key, notification_id, source, alertname, number, person, code, at, until, labels,
		silence, silence_id, attempts, next_attempt_at, error, lease FROM acks`

func scanAck(sc interface{ Scan(...any) error }) (outbox.Ack, error) {
	var a outbox.Ack
	var at, until, next int64
	var labels, silence string
	if err := sc.Scan(&a.ID, &a.GroupKey, &a.NotificationID, &a.Source, &a.AlertName, &a.Number, &a.Person, &a.Code, &at, &until,
		&labels, &silence, &a.SilenceID, &a.Attempts, &next, &a.Error, &a.Lease); err != nil {
		return outbox.Ack{}, err
	}
	a.At, a.Until, a.Labels, a.Silence = fromMS(at), fromMS(until), decodeLabels(labels), outbox.SilenceState(silence)
	if a.Silence == outbox.SilencePending {
		a.NextAttempt = fromMS(next)
	}
	return a, nil
}

func queryAcks(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]outbox.Ack, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []outbox.Ack
	for rows.Next() {
		a, err := scanAck(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// Acknowledge records a unless an acknowledgement of its group is in
// force at a.At.
func (s *Store) Acknowledge(ctx context.Context, a outbox.Ack) (outbox.Ack, bool, error) {
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
	labels, err := encodeLabels(a.Labels)
	if err != nil {
		return outbox.Ack{}, false, fmt.Errorf("acknowledge: %w", err)
	}
	var out outbox.Ack
	created := false
	err = s.inTx(ctx, func(tx *sql.Tx) error {
		prior, err := scanAck(tx.QueryRowContext(ctx, selectAcks+` WHERE group_key = ? AND until > ? ORDER BY at DESC, id DESC LIMIT 1`,
			a.GroupKey, ms(a.At)))
		switch {
		case err == nil:
			out = prior
			return nil
		case !errors.Is(err, sql.ErrNoRows):
			return err
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO acks (group_key, notification_id, source, alertname, number, person, code, at, until,
			labels, silence, next_attempt_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			a.GroupKey, a.NotificationID, a.Source, a.AlertName, a.Number, a.Person, a.Code, ms(a.At), ms(a.Until),
			labels, string(a.Silence), ms(a.At), ms(a.At))
		if err != nil {
			return err
		}
		id, err := res.LastInsertId()
		if err != nil {
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
func (s *Store) Acknowledged(ctx context.Context, groupKey string, since time.Time) (outbox.Ack, bool, error) {
	if err := s.closed(); err != nil {
		return outbox.Ack{}, false, err
	}
	a, err := scanAck(s.rdb.QueryRowContext(ctx, selectAcks+` WHERE group_key = ? AND at >= ? ORDER BY at DESC, id DESC LIMIT 1`,
		groupKey, ms(since)))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return outbox.Ack{}, false, nil
	case err != nil:
		return outbox.Ack{}, false, fmt.Errorf("read acknowledgements: %w", err)
	}
	return a, true, nil
}

// Acks returns the acknowledgements since since, newest first.
func (s *Store) Acks(ctx context.Context, since time.Time, limit int) ([]outbox.Ack, error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	out, err := queryAcks(ctx, s.rdb, selectAcks+` WHERE at >= ? ORDER BY at DESC, id DESC LIMIT ?`, ms(since), limit)
	if err != nil {
		return nil, fmt.Errorf("read acknowledgements: %w", err)
	}
	return out, nil
}

// LeaseSilences leases the pending silences due at now.
func (s *Store) LeaseSilences(ctx context.Context, now time.Time, max int, leaseFor time.Duration) ([]outbox.Ack, time.Time, error) {
	if err := s.closed(); err != nil {
		return nil, time.Time{}, err
	}
	var out []outbox.Ack
	var next time.Time
	nowMS := ms(now)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		if max > 0 {
			due, err := queryAcks(ctx, tx, selectAcks+` WHERE silence = 'pending' AND next_attempt_at <= ?
				AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at, id LIMIT ?`, nowMS, nowMS, max)
			if err != nil {
				return err
			}
			for _, a := range due {
				a.Lease = newLease()
				if _, err := tx.ExecContext(ctx, `UPDATE acks SET lease = ?, lease_until = ? WHERE id = ?`,
					a.Lease, ms(now.Add(leaseFor)), a.ID); err != nil {
					return err
				}
				out = append(out, a)
			}
		}
		// The next one due: a pending silence's attempt, or the lapse of
		// another holder's lease, whichever is later.
		var n sql.NullInt64
		if err := tx.QueryRowContext(ctx, `SELECT min(CASE WHEN lease_until IS NOT NULL AND lease_until > ?
				THEN max(next_attempt_at, lease_until) ELSE next_attempt_at END)
			FROM acks WHERE silence = 'pending' AND id NOT IN (SELECT value FROM json_each(?))`, nowMS, leasedIDs(out)).Scan(&n); err != nil {
			return err
		}
		if n.Valid {
			next = fromMS(n.Int64)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("lease silences: %w", err)
	}
	return out, next, nil
}

// leasedIDs is the JSON array of the acknowledgements' ids.
func leasedIDs(as []outbox.Ack) string {
	ids := make([]int64, len(as))
	for i, a := range as {
		ids[i] = a.ID
	}
	raw, _ := json.Marshal(ids) // ints always encode
	return string(raw)
}

// CompleteSilence records one attempt at a leased silence.
func (s *Store) CompleteSilence(ctx context.Context, id int64, lease string, o outbox.SilenceOutcome) error {
	if err := s.closed(); err != nil {
		return err
	}
	next, err := o.Next(lease)
	if err != nil {
		return fmt.Errorf("complete silence %d: %w", id, err)
	}
	res, err := s.wdb.ExecContext(ctx, `UPDATE acks SET silence = ?, silence_id = ?, error = ?, next_attempt_at = ?, attempts = attempts + 1,
		lease = '', lease_until = NULL, updated_at = ? WHERE id = ? AND lease = ? AND silence = 'pending'`,
		string(o.State), o.SilenceID, o.Error, ms(next), ms(o.At), id, lease)
	if err != nil {
		return fmt.Errorf("complete silence %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("complete silence %d: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("complete silence %d: the lease lapsed: %w", id, outbox.ErrNotFound)
	}
	return nil
}

// SetOptOut records an opt-out (and fails the number's waiting
// deliveries) or an opt-in.
func (s *Store) SetOptOut(ctx context.Context, number string, out bool, at time.Time) (bool, int, error) {
	if err := s.closed(); err != nil {
		return false, 0, err
	}
	if number == "" {
		return false, 0, fmt.Errorf("opt out: %w: no number", outbox.ErrInvalid)
	}
	changed, failed := false, 0
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var res sql.Result
		var err error
		if out {
			res, err = tx.ExecContext(ctx, `INSERT INTO opt_outs (number, at) VALUES (?, ?) ON CONFLICT (number) DO NOTHING`, number, ms(at))
		} else {
			res, err = tx.ExecContext(ctx, `DELETE FROM opt_outs WHERE number = ?`, number)
		}
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		if err != nil {
			return err
		}
		changed = n > 0
		if !out {
			return nil
		}
		// One statement per state, each on its partial index.
		for _, q := range []string{optOutPending, optOutHeld} {
			res, err = tx.ExecContext(ctx, q, outbox.CodeOptedOut, optedOutError, ms(at), number)
			if err != nil {
				return err
			}
			k, err := res.RowsAffected()
			if err != nil {
				return err
			}
			failed += int(k)
		}
		return nil
	})
	if err != nil {
		return false, 0, fmt.Errorf("record an opt-out: %w", err)
	}
	return changed, failed, nil
}

// optOutPending and optOutHeld fail an opted-out number's waiting
// deliveries.
const (
	optOutPending = `UPDATE deliveries SET state = 'failed', error_code = ?, error = ?, updated_at = ?
		WHERE state = 'pending' AND number = ?`
	optOutHeld = `UPDATE deliveries SET state = 'failed', error_code = ?, error = ?, updated_at = ?
		WHERE state = 'held' AND number = ?`
)

// optedOutError is the error text of a delivery failed by an opt-out.
const optedOutError = "the number opted out of SMS (it replied STOP); it gets nothing until it replies START"

// OptOuts returns every opted-out number, the earliest first.
func (s *Store) OptOuts(ctx context.Context) ([]outbox.OptOut, error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT number, at FROM opt_outs ORDER BY at, number`)
	if err != nil {
		return nil, fmt.Errorf("read opt-outs: %w", err)
	}
	defer rows.Close()
	var out []outbox.OptOut
	for rows.Next() {
		var o outbox.OptOut
		var at int64
		if err := rows.Scan(&o.Number, &at); err != nil {
			return nil, fmt.Errorf("read opt-outs: %w", err)
		}
		o.At = fromMS(at)
		out = append(out, o)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read opt-outs: %w", err)
	}
	return out, nil
}

// OptedOut returns those of numbers that are opted out, in order.
func (s *Store) OptedOut(ctx context.Context, numbers []string) ([]string, error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	if len(numbers) == 0 {
		return nil, nil
	}
	args := make([]any, len(numbers))
	for i, n := range numbers {
		args[i] = n
	}
	rows, err := s.rdb.QueryContext(ctx, `SELECT number FROM opt_outs WHERE number IN (`+placeholders(len(numbers))+`)`, args...)
	if err != nil {
		return nil, fmt.Errorf("read opt-outs of %s: %w", plural.Count(len(numbers), "number", "numbers"), err)
	}
	defer rows.Close()
	set := map[string]bool{}
	for rows.Next() {
		var n string
		if err := rows.Scan(&n); err != nil {
			return nil, fmt.Errorf("read opt-outs: %w", err)
		}
		set[n] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read opt-outs: %w", err)
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

// Claim takes key until now+ttl unless someone holds it.
func (s *Store) Claim(ctx context.Context, key string, now time.Time, ttl time.Duration) (bool, error) {
	if err := s.closed(); err != nil {
		return false, err
	}
	if key == "" || ttl <= 0 {
		return false, fmt.Errorf("claim: %w: empty key or ttl", outbox.ErrInvalid)
	}
	res, err := s.wdb.ExecContext(ctx, `INSERT INTO claims (key, expires_at) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET expires_at = excluded.expires_at WHERE claims.expires_at <= ?`, key, ms(now.Add(ttl)), ms(now))
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim: %w", err)
	}
	return n > 0, nil
}

// Claimed reports whether key is held at now.
func (s *Store) Claimed(ctx context.Context, key string, now time.Time) (bool, error) {
	if err := s.closed(); err != nil {
		return false, err
	}
	var held bool
	if err := s.rdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM claims WHERE key = ? AND expires_at > ?)`,
		key, ms(now)).Scan(&held); err != nil {
		return false, fmt.Errorf("claimed: %w", err)
	}
	return held, nil
}

// Unclaim gives key back.
func (s *Store) Unclaim(ctx context.Context, key string) error {
	if err := s.closed(); err != nil {
		return err
	}
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM claims WHERE key = ?`, key); err != nil {
		return fmt.Errorf("unclaim: %w", err)
	}
	return nil
}

// Allow counts one event under key unless limit were counted within per.
func (s *Store) Allow(ctx context.Context, key string, now time.Time, limit int, per time.Duration) (bool, error) {
	if err := s.closed(); err != nil {
		return false, err
	}
	if key == "" || limit < 0 || per <= 0 {
		return false, fmt.Errorf("allow: %w: empty key, negative limit or no window", outbox.ErrInvalid)
	}
	allowed := false
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM rate_events WHERE key = ? AND at > ?`, key, ms(now.Add(-per))).Scan(&n); err != nil {
			return err
		}
		if n >= limit {
			return nil
		}
		allowed = true
		_, err := tx.ExecContext(ctx, `INSERT INTO rate_events (key, at) VALUES (?, ?)`, key, ms(now))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("allow: %w", err)
	}
	return allowed, nil
}

// pruneTwoWay forgets what two-way SMS no longer needs: acknowledgements
// older than the cutoff whose silence is not pending, expired claims, and
// counted events older than the cutoff and a day. Reply codes go with
// their notifications.
func (s *Store) pruneTwoWay(ctx context.Context, cutoff int64) error {
	now := s.clock()
	for _, q := range []struct {
		sql string
		arg int64
	}{
		{`DELETE FROM acks WHERE at < ? AND silence <> 'pending'`, cutoff},
		{`DELETE FROM claims WHERE expires_at <= ?`, ms(now)},
		{`DELETE FROM rate_events WHERE at < ?`, min(cutoff, ms(now.Add(-24*time.Hour)))},
	} {
		if _, err := s.wdb.ExecContext(ctx, q.sql, q.arg); err != nil {
			return fmt.Errorf("prune two-way state: %w", err)
		}
	}
	return nil
}

// inTx runs fn in one write transaction and commits it.
func (s *Store) inTx(ctx context.Context, fn func(tx *sql.Tx) error) (err error) {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the error that made us roll back is the one to report
		}
	}()
	if err = fn(tx); err != nil {
		return err
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("commit: %w", err)
	}
	return nil
}

// encodeLabels writes labels as the JSON object stored; "" for none.
func encodeLabels(l map[string]string) (string, error) {
	if len(l) == 0 {
		return "", nil
	}
	raw, err := json.Marshal(l)
	if err != nil {
		return "", fmt.Errorf("encode labels: %w", err)
	}
	return string(raw), nil
}

// decodeLabels reads what encodeLabels wrote; nil for none or garbage.
func decodeLabels(s string) map[string]string {
	if s == "" {
		return nil
	}
	var l map[string]string
	if json.Unmarshal([]byte(s), &l) != nil || len(l) == 0 {
		return nil
	}
	return l
}

// newLease returns a token no other lease ever gets.
func newLease() string { return rand.Text() }
