package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsbridge/smsbridge/outbox"
)

// Stats counts the rows not yet accepted or failed and finds the oldest.
func (s *Store) Stats(ctx context.Context) (_ outbox.Stats, err error) {
	if err := s.closed(); err != nil {
		return outbox.Stats{}, err
	}
	ctx, end := s.op(ctx, "stats")
	defer func() { end(err) }()
	var st outbox.Stats
	var oldP, oldS *time.Time
	var queued int
	err = s.pool.QueryRow(ctx, `SELECT
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
func scanRecord(sc pgx.Row) (outbox.Record, error) {
	var r outbox.Record
	var next time.Time
	var receiptAt *time.Time
	var state string
	if err := sc.Scan(&r.ID, &r.NotificationID, &r.ReceivedAt, &r.UpdatedAt, &r.Source, &r.GroupKey, &r.Status, &r.AlertName, &r.Receiver, &r.Number,
		&r.Text, &r.Segments, &state, &r.Attempts, &r.Account, &r.APIMessageID, &r.ErrorCode, &r.Error,
		&next, &r.LeaseOwner, &r.BundledInto, &r.Summary, &r.Critical, &r.Person,
		&r.Receipt, &r.ReceiptWord, &receiptAt, &r.ReplyCode, &r.FailoverOf, &r.FailedOverTo); err != nil {
		return outbox.Record{}, err
	}
	if receiptAt != nil {
		r.ReceiptAt = *receiptAt
	}
	r.State = outbox.State(state)
	if r.State == outbox.StatePending || r.State == outbox.StateHeld {
		r.NextAttemptAt = next
	}
	return r, nil
}

// Deliveries returns the rows f selects, most recently updated first.
func (s *Store) Deliveries(ctx context.Context, f outbox.Filter) (_ []outbox.Record, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	ctx, end := s.op(ctx, "deliveries")
	defer func() { end(err) }()
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.State != "" {
		where = append(where, "d.state = "+arg(string(f.State)))
	}
	if !f.Since.IsZero() {
		where = append(where, "d.updated_at >= "+arg(f.Since))
	}
	if f.NotificationID != 0 {
		where = append(where, "n.id = "+arg(f.NotificationID))
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
	q += " ORDER BY d.updated_at DESC, d.id DESC LIMIT " + arg(limit)
	rows, err := s.pool.Query(ctx, q, args...)
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

// DeliveryByProviderID returns the delivery the provider knows by id.
func (s *Store) DeliveryByProviderID(ctx context.Context, id string) (_ outbox.Record, err error) {
	if err := s.closed(); err != nil {
		return outbox.Record{}, err
	}
	if id == "" {
		return outbox.Record{}, fmt.Errorf("delivery by provider id: empty id: %w", outbox.ErrNotFound)
	}
	ctx, end := s.op(ctx, "delivery_by_provider_id")
	defer func() { end(err) }()
	r, err := scanRecord(s.pool.QueryRow(ctx, selectRecords+` WHERE d.api_message_id = $1 ORDER BY d.updated_at DESC, d.id DESC LIMIT 1`, id))
	switch {
	case isNoRows(err):
		return outbox.Record{}, fmt.Errorf("delivery by provider id %q: %w", id, outbox.ErrNotFound)
	case err != nil:
		return outbox.Record{}, fmt.Errorf("delivery by provider id %q: %w", id, err)
	}
	return r, nil
}

// Retry puts a failed delivery back in the queue, due now, with its
// attempts and max age counted afresh, and tells the other replicas.
func (s *Store) Retry(ctx context.Context, id int64) (err error) {
	if err := s.closed(); err != nil {
		return err
	}
	ctx, end := s.op(ctx, "retry")
	defer func() { end(err) }()
	now := s.clock()
	tag, err := s.pool.Exec(ctx, `UPDATE deliveries SET state = 'pending', attempts = 0, queued_at = $1, next_attempt_at = $1, updated_at = $1
		WHERE id = $2 AND state = 'failed' AND NOT EXISTS (SELECT 1 FROM opt_outs o WHERE o.number = deliveries.number)`, now, id)
	if err != nil {
		return fmt.Errorf("retry delivery %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		var exists bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries WHERE id = $1)`, id).Scan(&exists); err != nil {
			return fmt.Errorf("retry delivery %d: %w", id, err)
		}
		if !exists {
			return fmt.Errorf("retry delivery %d: %w", id, outbox.ErrNotFound)
		}
		var optedOut bool
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM deliveries d JOIN opt_outs o ON o.number = d.number
			WHERE d.id = $1 AND d.state = 'failed')`, id).Scan(&optedOut); err != nil {
			return fmt.Errorf("retry delivery %d: %w", id, err)
		}
		if optedOut {
			return fmt.Errorf("retry delivery %d: %w", id, outbox.ErrOptedOut)
		}
		return fmt.Errorf("retry delivery %d: %w", id, outbox.ErrNotFailed)
	}
	// The leader may be another replica; a lost notification costs at
	// most a poll interval, so its error does not fail the retry.
	if _, err := s.pool.Exec(ctx, notify, s.channel, s.owner); err != nil {
		s.logger.Warn("could not tell other replicas about a retried delivery", "err", err)
	}
	s.signal()
	return nil
}

// pruneChunk is the most rows one prune statement deletes, so no delete
// holds its locks for long.
const pruneChunk = 500

// Prune deletes notifications received more than retention ago whose
// deliveries are all finished (accepted, failed, bundled or cancelled) and
// were last updated more than retention ago, with their messages and
// deliveries, and returns how many notifications it deleted. Unfinished
// work (pending, sending, held) is never pruned. Duplicate keys, resolved
// alerts and budget days older than retention go too, and so do the
// overrides that ended before it and the delivery ids whose expiry has
// passed. Rows another transaction holds are skipped (the next prune takes
// them): a prune never waits for intake or the dispatcher, nor they for it.
func (s *Store) Prune(ctx context.Context, retention time.Duration) (total int, err error) {
	if err := s.closed(); err != nil {
		return 0, err
	}
	now := s.clock()
	cutoff := now.Add(-retention)
	chunks := func(what, q string, args ...any) (int, error) {
		n := 0
		for {
			cctx, end := s.op(ctx, "prune")
			tag, err := s.pool.Exec(cctx, q, append(args, pruneChunk)...)
			end(err)
			if err != nil {
				return n, fmt.Errorf("prune %s: %w", what, err)
			}
			n += int(tag.RowsAffected())
			if tag.RowsAffected() < pruneChunk {
				return n, nil
			}
		}
	}
	total, err = chunks("outbox", `DELETE FROM notifications WHERE id IN (
		SELECT n.id FROM notifications n
		WHERE n.received_at < $1
		AND NOT EXISTS (
			SELECT 1 FROM messages m JOIN deliveries d ON d.message_id = m.id
			WHERE m.notification_id = n.id
			AND (d.state IN ('pending', 'sending', 'held') OR d.updated_at >= $1)
		)
		LIMIT $2
		FOR UPDATE SKIP LOCKED)`, cutoff)
	if err != nil {
		return total, err
	}
	// The noise controls' memory, the overrides long over and the expired
	// delivery ids: none of them counted.
	for _, q := range []struct{ what, sql string }{
		{"duplicate keys", `DELETE FROM dedup WHERE (receiver, group_key) IN (
			SELECT receiver, group_key FROM dedup WHERE at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`},
		{"resolved alerts", `DELETE FROM resolved_alerts WHERE (fingerprint, starts_at) IN (
			SELECT fingerprint, starts_at FROM resolved_alerts WHERE seen_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`},
		{"budget days", `DELETE FROM budget WHERE day IN (
			SELECT day FROM budget WHERE updated_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`},
		{"on-call overrides", `DELETE FROM oncall_overrides WHERE id IN (
			SELECT id FROM oncall_overrides WHERE ends_at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`},
	} {
		if _, err := chunks(q.what, q.sql, cutoff); err != nil {
			return total, err
		}
	}
	if _, err := chunks("delivery ids", `DELETE FROM delivery_ids WHERE id IN (
		SELECT id FROM delivery_ids WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now); err != nil {
		return total, err
	}
	// Two-way state: acknowledgements whose silence is settled, expired
	// claims, and counted events older than retention and a day. Reply
	// codes go with their notifications.
	for _, q := range []struct {
		what, sql string
		arg       time.Time
	}{
		{"acknowledgements", `DELETE FROM acks WHERE id IN (
			SELECT id FROM acks WHERE at < $1 AND silence <> 'pending' LIMIT $2 FOR UPDATE SKIP LOCKED)`, cutoff},
		{"claims", `DELETE FROM claims WHERE key IN (
			SELECT key FROM claims WHERE expires_at <= $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, now},
		{"counted events", `DELETE FROM rate_events WHERE id IN (
			SELECT id FROM rate_events WHERE at < $1 LIMIT $2 FOR UPDATE SKIP LOCKED)`, minTime(cutoff, now.Add(-24*time.Hour))},
	} {
		if _, err := chunks(q.what, q.sql, q.arg); err != nil {
			return total, err
		}
	}
	// Escalations whose steps all ended before the cutoff and that began
	// more than an episode ago (an episode still running needs its steps
	// to know it is). Their rows are locked by nobody: only pending steps
	// and those of recent episodes are ever written.
	if _, err := chunks("escalations", `DELETE FROM escalations WHERE escalation IN (
		SELECT escalation FROM escalations GROUP BY escalation
		HAVING bool_and(state <> 'pending') AND max(COALESCE(ended_at, '-infinity')) < $1 AND max(started_at) < $2
		LIMIT $3)`, cutoff, now.Add(-outbox.EscalationEpisode)); err != nil {
		return total, err
	}
	return total, nil
}

// minTime returns the earlier of a and b.
func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// Notifications returns the notifications f selects, newest first, each
// with all of its deliveries in the order they were recorded.
func (s *Store) Notifications(ctx context.Context, f outbox.NotificationFilter) (_ []outbox.NotificationRecord, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	ctx, end := s.op(ctx, "notifications")
	defer func() { end(err) }()
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.State != "" {
		where = append(where, `EXISTS (SELECT 1 FROM messages m JOIN deliveries d ON d.message_id = m.id
			WHERE m.notification_id = n.id AND d.state = `+arg(string(f.State))+`)`)
	}
	if !f.Since.IsZero() {
		where = append(where, "n.received_at >= "+arg(f.Since))
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
	q += " ORDER BY n.id DESC LIMIT " + arg(limit)
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("query notifications: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (outbox.NotificationRecord, error) {
		var n outbox.NotificationRecord
		err := row.Scan(&n.ID, &n.ReceivedAt, &n.Source, &n.GroupKey, &n.Status, &n.AlertName, &n.Outcome)
		return n, err
	})
	if err != nil {
		return nil, fmt.Errorf("query notifications: %w", err)
	}
	if len(out) == 0 {
		return out, nil
	}
	ids := make([]int64, len(out))
	index := map[int64]int{}
	for i, n := range out {
		ids[i] = n.ID
		index[n.ID] = i
	}
	rows, err = s.pool.Query(ctx, selectRecords+` WHERE n.id = ANY($1) ORDER BY m.id, d.id`, ids)
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
func (s *Store) Counts(ctx context.Context, since time.Time) (_ outbox.Counts, err error) {
	if err := s.closed(); err != nil {
		return outbox.Counts{}, err
	}
	ctx, end := s.op(ctx, "counts")
	defer func() { end(err) }()
	var c outbox.Counts
	err = s.pool.QueryRow(ctx, `SELECT
		(SELECT count(*) FROM notifications WHERE received_at >= $1),
		(SELECT count(*) FROM deliveries WHERE updated_at >= $1 AND state = 'accepted'),
		(SELECT count(*) FROM deliveries WHERE updated_at >= $1 AND state = 'failed')`, since).Scan(&c.Notifications, &c.Accepted, &c.Failed)
	if err != nil {
		return outbox.Counts{}, fmt.Errorf("count the outbox since %s: %w", since.UTC().Format(time.RFC3339), err)
	}
	return c, nil
}

// GetState returns the value last put under key; ok is false for a key
// never put.
func (s *Store) GetState(ctx context.Context, key string) (value []byte, ok bool, err error) {
	if err := s.closed(); err != nil {
		return nil, false, err
	}
	if key == "" {
		return nil, false, errors.New("get state: empty key")
	}
	ctx, end := s.op(ctx, "get_state")
	defer func() { end(err) }()
	err = s.pool.QueryRow(ctx, `SELECT value FROM state WHERE key = $1`, key).Scan(&value)
	switch {
	case isNoRows(err):
		return nil, false, nil
	case err != nil:
		return nil, false, fmt.Errorf("get state %q: %w", key, err)
	}
	if value == nil {
		value = []byte{}
	}
	return value, true, nil
}

// PutState stores value under key, replacing what was there, durably.
func (s *Store) PutState(ctx context.Context, key string, value []byte) (err error) {
	if err := s.closed(); err != nil {
		return err
	}
	if key == "" {
		return errors.New("put state: empty key")
	}
	if value == nil {
		value = []byte{}
	}
	ctx, end := s.op(ctx, "put_state")
	defer func() { end(err) }()
	if _, err := s.pool.Exec(ctx, `INSERT INTO state (key, value, updated_at) VALUES ($1, $2, $3)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`,
		key, value, s.clock()); err != nil {
		return fmt.Errorf("put state %q: %w", key, err)
	}
	return nil
}
