package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Stats is a snapshot of the queue.
type Stats struct {
	// Pending counts deliveries not yet delivered or failed: waiting in
	// the queue or in flight.
	Pending int
	// InFlight counts the leased (sending) part of Pending.
	InFlight int
	// Oldest is the earliest QueuedAt among Pending; zero when none.
	Oldest time.Time
}

// Stats counts the undelivered rows and finds the oldest.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	var oldP, oldS sql.NullInt64
	var queued int
	err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT count(*) FROM deliveries WHERE state = 'pending'),
		(SELECT count(*) FROM deliveries WHERE state = 'sending'),
		(SELECT min(queued_at) FROM deliveries WHERE state = 'pending'),
		(SELECT min(queued_at) FROM deliveries WHERE state = 'sending')`).Scan(&queued, &st.InFlight, &oldP, &oldS)
	if err != nil {
		return Stats{}, fmt.Errorf("read outbox stats: %w", err)
	}
	st.Pending = queued + st.InFlight
	for _, v := range []sql.NullInt64{oldP, oldS} {
		if v.Valid && (st.Oldest.IsZero() || fromMS(v.Int64).Before(st.Oldest)) {
			st.Oldest = fromMS(v.Int64)
		}
	}
	return st, nil
}

// Filter selects deliveries for Deliveries.
type Filter struct {
	// State selects one state; empty selects all.
	State State
	// Since selects rows updated at or after it; zero selects all.
	Since time.Time
	// NotificationID selects one notification's rows; zero selects all.
	NotificationID int64
	// Limit caps the rows returned; default 100, at most 1000.
	Limit int
}

// Record is one delivery as the status page shows it. Number is the full
// number: mask it before showing it anywhere.
type Record struct {
	ID             int64
	NotificationID int64
	ReceivedAt     time.Time
	UpdatedAt      time.Time
	Source         string
	GroupKey       string
	Status         string
	Receiver       string
	Number         string
	Text           string
	Segments       int
	State          State
	Attempts       int
	APIMessageID   string
	ErrorCode      string
	Error          string
}

// Deliveries returns the rows f selects, most recently updated first.
func (s *Store) Deliveries(ctx context.Context, f Filter) ([]Record, error) {
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
	q := `SELECT d.id, n.id, n.received_at, d.updated_at, n.source, n.group_key, n.status, m.receiver, d.number,
			m.text, m.segments, d.state, d.attempts, COALESCE(d.api_message_id, ''), d.error_code, d.error
		FROM deliveries d
		JOIN messages m ON m.id = d.message_id
		JOIN notifications n ON n.id = m.notification_id`
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
	var out []Record
	for rows.Next() {
		var r Record
		var received, updated int64
		var state string
		if err := rows.Scan(&r.ID, &r.NotificationID, &received, &updated, &r.Source, &r.GroupKey, &r.Status, &r.Receiver, &r.Number,
			&r.Text, &r.Segments, &state, &r.Attempts, &r.APIMessageID, &r.ErrorCode, &r.Error); err != nil {
			return nil, fmt.Errorf("query deliveries: %w", err)
		}
		r.ReceivedAt, r.UpdatedAt, r.State = fromMS(received), fromMS(updated), State(state)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query deliveries: %w", err)
	}
	return out, nil
}

// Retry puts a failed delivery back in the queue, due now, with its
// attempts and max age counted afresh. It returns an error wrapping
// ErrNotFailed when id names no failed delivery.
func (s *Store) Retry(ctx context.Context, id int64) error {
	now := ms(s.clock())
	res, err := s.wdb.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', attempts = 0, queued_at = ?, next_attempt_at = ?,
		updated_at = ? WHERE id = ? AND state = 'failed'`, now, now, now, id)
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
			return fmt.Errorf("retry delivery %d: %w", id, ErrNotFound)
		}
		return fmt.Errorf("retry delivery %d: %w", id, ErrNotFailed)
	}
	s.signal()
	return nil
}

// pruneChunk is the most notifications one prune transaction deletes:
// enqueues share the write connection, and a chunk keeps each wait short.
const pruneChunk = 500

// Prune deletes notifications received more than retention ago whose
// deliveries are all finished (delivered or failed) and were last updated
// more than retention ago, with their messages and deliveries. It returns
// the number of notifications deleted. Unfinished work is never pruned.
func (s *Store) Prune(ctx context.Context, retention time.Duration) (int, error) {
	cutoff := ms(s.clock().Add(-retention))
	total := 0
	for {
		res, err := s.wdb.ExecContext(ctx, `DELETE FROM notifications WHERE id IN (
			SELECT n.id FROM notifications n
			WHERE n.received_at < ?
			AND NOT EXISTS (
				SELECT 1 FROM messages m JOIN deliveries d ON d.message_id = m.id
				WHERE m.notification_id = n.id
				AND (d.state IN ('pending', 'sending') OR d.updated_at >= ?)
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
			return total, nil
		}
	}
}

// LastStatus returns the status of the newest notification stored with
// groupKey ("" and false when there is none), so a sender's "resolved"
// can be told apart from a resolution of something that never fired.
func (s *Store) LastStatus(ctx context.Context, groupKey string) (string, bool, error) {
	var status string
	err := s.rdb.QueryRowContext(ctx, `SELECT status FROM notifications WHERE group_key = ?
		ORDER BY received_at DESC, id DESC LIMIT 1`, groupKey).Scan(&status)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		return "", false, nil
	case err != nil:
		return "", false, fmt.Errorf("last status of group: %w", err)
	}
	return status, true, nil
}
