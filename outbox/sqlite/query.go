package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// Stats counts the rows not yet accepted or failed and finds the oldest.
func (s *Store) Stats(ctx context.Context) (outbox.Stats, error) {
	if err := s.closed(); err != nil {
		return outbox.Stats{}, err
	}
	var st outbox.Stats
	var oldP, oldS sql.NullInt64
	var queued int
	err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM deliveries WHERE state = 'pending'),
		(SELECT count(*) FROM deliveries WHERE state = 'sending'),
		(SELECT min(queued_at) FROM deliveries WHERE state = 'pending'),
		(SELECT min(queued_at) FROM deliveries WHERE state = 'sending'),
		(SELECT count(*) FROM deliveries WHERE state = 'held')`).Scan(&queued, &st.InFlight, &oldP, &oldS, &st.Held)
	if err != nil {
		return outbox.Stats{}, fmt.Errorf("read outbox stats: %w", err)
	}
	st.Pending = queued + st.InFlight
	earliest(&st.Oldest, oldP, oldS)
	return st, nil
}

// selectRecords is the query behind outbox.Record, without its WHERE.
const selectRecords = `SELECT d.id, n.id, n.received_at, d.updated_at, n.source, n.group_key, n.status, n.alertname, m.receiver, d.number,
		m.text, m.segments, d.state, d.attempts, d.account, COALESCE(d.api_message_id, ''), d.error_code, d.error,
		d.next_attempt_at, d.lease_owner, COALESCE(d.bundled_into, 0), m.summary, d.critical, d.person,
		d.receipt, d.receipt_word, d.receipt_at, m.reply_code, COALESCE(d.failover_of, 0),
		COALESCE((SELECT fm.notification_id FROM deliveries f JOIN messages fm ON fm.id = f.message_id
			WHERE f.failover_of = d.id ORDER BY f.id LIMIT 1), 0)
	FROM deliveries d
	JOIN messages m ON m.id = d.message_id
	JOIN notifications n ON n.id = m.notification_id`

// scanRecord reads one row of selectRecords.
func scanRecord(sc interface{ Scan(...any) error }) (outbox.Record, error) {
	var r outbox.Record
	var received, updated, next int64
	var receiptAt sql.NullInt64
	var state string
	if err := sc.Scan(&r.ID, &r.NotificationID, &received, &updated, &r.Source, &r.GroupKey, &r.Status, &r.AlertName, &r.Receiver, &r.Number,
		&r.Text, &r.Segments, &state, &r.Attempts, &r.Account, &r.APIMessageID, &r.ErrorCode, &r.Error,
		&next, &r.LeaseOwner, &r.BundledInto, &r.Summary, &r.Critical, &r.Person,
		&r.Receipt, &r.ReceiptWord, &receiptAt, &r.ReplyCode, &r.FailoverOf, &r.FailedOverTo); err != nil {
		return outbox.Record{}, err
	}
	r.ReceivedAt, r.UpdatedAt, r.State = fromMS(received), fromMS(updated), outbox.State(state)
	if receiptAt.Valid {
		r.ReceiptAt = fromMS(receiptAt.Int64)
	}
	if r.State == outbox.StatePending || r.State == outbox.StateHeld {
		r.NextAttemptAt = fromMS(next)
	}
	return r, nil
}

// Deliveries returns the rows f selects, most recently updated first.
func (s *Store) Deliveries(ctx context.Context, f outbox.Filter) ([]outbox.Record, error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	if f.State != "" {
		where = append(where, "d.state = ?")
		args = append(args, string(f.State))
	}
	if !f.Since.IsZero() {
		where = append(where, "d.updated_at >= ?")
		args = append(args, ms(f.Since))
	}
	if f.NotificationID != 0 {
		where = append(where, "n.id = ?")
		args = append(args, f.NotificationID)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 100
	}
	limit = min(limit, 1000)
	q := selectRecords
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY d.updated_at DESC, d.id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query deliveries: %w", err)
	}
	defer rows.Close()
	var out []outbox.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("query deliveries: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query deliveries: %w", err)
	}
	return out, nil
}

// DeliveryByProviderID returns the delivery the provider knows by id. A
// repeated send (at-least-once) gets a new id from the provider, so an id
// names one row; should two rows carry it, the one updated last is
// returned.
func (s *Store) DeliveryByProviderID(ctx context.Context, id string) (outbox.Record, error) {
	if err := s.closed(); err != nil {
		return outbox.Record{}, err
	}
	if id == "" {
		return outbox.Record{}, fmt.Errorf("delivery by provider id: empty id: %w", outbox.ErrNotFound)
	}
	r, err := scanRecord(s.rdb.QueryRowContext(ctx, selectRecords+` WHERE d.api_message_id = ? ORDER BY d.updated_at DESC, d.id DESC LIMIT 1`, id))
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return outbox.Record{}, fmt.Errorf("delivery by provider id %q: %w", id, outbox.ErrNotFound)
	case err != nil:
		return outbox.Record{}, fmt.Errorf("delivery by provider id %q: %w", id, err)
	}
	return r, nil
}

// Retry puts a failed delivery back in the queue, due now, with its
// attempts and max age counted afresh. Its error wraps outbox.ErrNotFound
// or outbox.ErrNotFailed when id names no failed delivery.
func (s *Store) Retry(ctx context.Context, id int64) (err error) {
	defer s.noteFullp(&err)
	if err := s.closed(); err != nil {
		return err
	}
	now := ms(s.clock())
	res, err := s.wdb.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', attempts = 0, queued_at = ?, next_attempt_at = ?,
		updated_at = ? WHERE id = ? AND state = 'failed' AND number NOT IN (SELECT number FROM opt_outs)`, now, now, now, id)
	if err != nil {
		return fmt.Errorf("retry delivery %d: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("retry delivery %d: %w", id, err)
	}
	if n == 0 {
		var exists bool
		if err := s.rdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = ?)`, id).Scan(&exists); err != nil {
			return fmt.Errorf("retry delivery %d: %w", id, err)
		}
		if !exists {
			return fmt.Errorf("retry delivery %d: %w", id, outbox.ErrNotFound)
		}
		var optedOut bool
		if err := s.rdb.QueryRowContext(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries d JOIN opt_outs o ON o.number = d.number
			WHERE d.id = ? AND d.state = 'failed')`, id).Scan(&optedOut); err != nil {
			return fmt.Errorf("retry delivery %d: %w", id, err)
		}
		if optedOut {
			return fmt.Errorf("retry delivery %d: %w", id, outbox.ErrOptedOut)
		}
		return fmt.Errorf("retry delivery %d: %w", id, outbox.ErrNotFailed)
	}
	s.signal()
	return nil
}

// pruneChunk is the most notifications one prune transaction deletes:
// enqueues share the write connection, and a chunk keeps each wait short.
const pruneChunk = 500

// Prune deletes notifications received more than retention ago whose
// deliveries are all finished (accepted, failed, bundled or cancelled) and
// were last updated more than retention ago, with their messages and
// deliveries. It returns the number of notifications deleted. Unfinished
// work (pending, sending, held) is never pruned. Duplicate keys, resolved
// alerts and budget days older than retention go too, and so do delivery
// ids whose expiry has passed.
func (s *Store) Prune(ctx context.Context, retention time.Duration) (_ int, err error) {
	defer s.noteFullp(&err)
	if err := s.closed(); err != nil {
		return 0, err
	}
	cutoff := ms(s.clock().Add(-retention))
	total := 0
	for {
		res, err := s.wdb.ExecContext(ctx, `DELETE FROM notifications WHERE id IN (
			SELECT n.id FROM notifications n
			WHERE n.received_at < ?
			AND NOT EXISTS (
				SELECT 1 FROM messages m JOIN deliveries d ON d.message_id = m.id
				WHERE m.notification_id = n.id
				AND (d.state IN ('pending', 'sending', 'held') OR d.updated_at >= ?)
			)
			LIMIT ?)`, cutoff, cutoff, pruneChunk)
		if err != nil {
			return total, fmt.Errorf("prune outbox: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return total, fmt.Errorf("prune outbox: %w", err)
		}
		total += int(n)
		if n < pruneChunk {
			break
		}
	}
	// The noise controls' memory: small tables, one statement each.
	for _, q := range []string{
		`DELETE FROM dedup WHERE at < ?`,
		`DELETE FROM resolved_alerts WHERE seen_at < ?`,
		`DELETE FROM budget WHERE updated_at < ?`,
	} {
		if _, err := s.wdb.ExecContext(ctx, q, cutoff); err != nil {
			return total, fmt.Errorf("prune outbox: %w", err)
		}
	}
	if err := s.pruneTwoWay(ctx, cutoff); err != nil {
		return total, err
	}
	if err := s.pruneEscalations(ctx, cutoff); err != nil {
		return total, err
	}
	// Overrides are few; the ones long over only clutter the list.
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM oncall_overrides WHERE ends_at < ?`, cutoff); err != nil {
		return total, fmt.Errorf("prune on-call overrides: %w", err)
	}
	now := ms(s.clock())
	for {
		res, err := s.wdb.ExecContext(ctx, `DELETE FROM delivery_ids WHERE id IN (
			SELECT id FROM delivery_ids WHERE expires_at <= ? LIMIT ?)`, now, pruneChunk)
		if err != nil {
			return total, fmt.Errorf("prune delivery ids: %w", err)
		}
		if n, err := res.RowsAffected(); err != nil || n < pruneChunk {
			return total, err
		}
	}
}

// Notifications returns the notifications f selects, newest first, each
// with all of its deliveries in the order they were recorded.
func (s *Store) Notifications(ctx context.Context, f outbox.NotificationFilter) ([]outbox.NotificationRecord, error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	if f.State != "" {
		where = append(where, `EXISTS (SELECT 1 FROM messages m JOIN deliveries d ON d.message_id = m.id
			WHERE m.notification_id = n.id AND d.state = ?)`)
		args = append(args, string(f.State))
	}
	if !f.Since.IsZero() {
		where = append(where, "n.received_at >= ?")
		args = append(args, ms(f.Since))
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 25
	}
	limit = min(limit, 200)
	q := `SELECT n.id, n.received_at, n.source, n.group_key, n.status, n.alertname, n.outcome FROM notifications n`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY n.id DESC LIMIT ?"
	args = append(args, limit)
	rows, err := s.rdb.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query notifications: %w", err)
	}
	var out []outbox.NotificationRecord
	index := map[int64]int{}
	for rows.Next() {
		var n outbox.NotificationRecord
		var received int64
		if err := rows.Scan(&n.ID, &received, &n.Source, &n.GroupKey, &n.Status, &n.AlertName, &n.Outcome); err != nil {
			rows.Close()
			return nil, fmt.Errorf("query notifications: %w", err)
		}
		n.ReceivedAt = fromMS(received)
		index[n.ID] = len(out)
		out = append(out, n)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query notifications: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	ids := make([]any, len(out))
	for i, n := range out {
		ids[i] = n.ID
	}
	placeholders := strings.TrimSuffix(strings.Repeat("?, ", len(ids)), ", ")
	rows, err = s.rdb.QueryContext(ctx, selectRecords+" WHERE n.id IN ("+placeholders+") ORDER BY m.id, d.id", ids...)
	if err != nil {
		return nil, fmt.Errorf("query the deliveries of notifications: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, fmt.Errorf("query the deliveries of notifications: %w", err)
		}
		i := index[r.NotificationID]
		out[i].Deliveries = append(out[i].Deliveries, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query the deliveries of notifications: %w", err)
	}
	return out, nil
}

// Counts counts the notifications received at or after since and the
// deliveries accepted or failed, last updated at or after it.
func (s *Store) Counts(ctx context.Context, since time.Time) (outbox.Counts, error) {
	if err := s.closed(); err != nil {
		return outbox.Counts{}, err
	}
	var c outbox.Counts
	t := ms(since)
	err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM notifications WHERE received_at >= ?),
		(SELECT count(*) FROM deliveries WHERE updated_at >= ? AND state = 'accepted'),
		(SELECT count(*) FROM deliveries WHERE updated_at >= ? AND state = 'failed')`, t, t, t).Scan(&c.Notifications, &c.Accepted, &c.Failed)
	if err != nil {
		return outbox.Counts{}, fmt.Errorf("count the outbox since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return c, nil
}
