package sqlite

import (
	"context"
	"crypto/rand"
	"database/sql"
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// Lease takes up to maxBatches batches of due deliveries, each at most
// maxNumbers numbers of one text, oldest due first, and marks them sending,
// owned by this store, until now+leaseFor. Rows with the same text from
// different messages share a batch (one request), but a number appears at
// most once per batch. Rows whose lease lapsed (a stuck holder) are due
// again. Every call has its own random token: no counter or clock can
// repeat it across restarts.
func (s *Store) Lease(ctx context.Context, now time.Time, maxBatches, maxNumbers int, leaseFor time.Duration) (_ []outbox.Batch, err error) {
	defer s.noteFullp(&err)
	if err := s.closed(); err != nil {
		return nil, err
	}
	if maxBatches <= 0 || maxNumbers <= 0 {
		return nil, nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("lease: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	nowMS := ms(now)
	res, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', lease = '', lease_until = NULL, updated_at = ?
		WHERE state = 'sending' AND lease_until <= ?`, nowMS, nowMS)
	if err != nil {
		return nil, fmt.Errorf("lease: reclaim lapsed leases: %w", err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return nil, fmt.Errorf("lease: reclaim lapsed leases: %w", err)
	} else if n > 0 {
		// A lapsed lease was not sent as far as anyone knows: what Admit
		// counted for it goes back. Only a row just reclaimed is pending
		// and still admitted (every other way back to pending clears it);
		// this runs only when a lease lapsed, keeping the hot path short.
		if err := giveBack(ctx, tx, `state = 'pending' AND admitted_at IS NOT NULL`); err != nil {
			return nil, fmt.Errorf("lease: reclaim lapsed leases: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET `+unadmit+` WHERE state = 'pending' AND admitted_at IS NOT NULL`); err != nil {
			return nil, fmt.Errorf("lease: reclaim lapsed leases: %w", err)
		}
	}
	// Scan at most what the batches can hold, and stop at the first new
	// text once every batch is open: this runs on the single writer
	// connection, and each millisecond here is one no webhook can commit.
	// Rows of a full batch, a duplicate number or a text beyond the stop
	// wait for the next Lease.
	scan := min(maxBatches*maxNumbers, 20000)
	rows, err := tx.QueryContext(ctx, `SELECT d.id, d.number, d.attempts, d.queued_at, d.digest, m.id, m.notification_id, m.receiver, m.text, m.segments, d.person
		FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE d.state = 'pending' AND d.next_attempt_at <= ?
		ORDER BY d.next_attempt_at, d.id
		LIMIT ?`, nowMS, scan)
	if err != nil {
		return nil, fmt.Errorf("lease: select due: %w", err)
	}
	type group struct {
		batch   outbox.Batch
		numbers map[string]bool
	}
	var (
		groups = map[string]*group{}
		order  []*group
		full   int
		ids    []int64
	)
	token := rand.Text()
	until := now.Add(leaseFor)
	for rows.Next() {
		var (
			d        outbox.Delivery
			queued   int64
			text     string
			segments int
		)
		if err := rows.Scan(&d.ID, &d.Number, &d.Attempts, &queued, &d.Digest, &d.MessageID, &d.NotificationID, &d.Receiver, &text, &segments, &d.Person); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lease: scan: %w", err)
		}
		d.QueuedAt = fromMS(queued)
		d.Lease = token
		g := groups[text]
		if g == nil {
			if len(order) == maxBatches {
				break
			}
			g = &group{batch: outbox.Batch{Text: text, Segments: segments, LeaseUntil: until}, numbers: map[string]bool{}}
			groups[text] = g
			order = append(order, g)
		}
		if len(g.batch.Deliveries) == maxNumbers || g.numbers[d.Number] {
			continue
		}
		g.numbers[d.Number] = true
		g.batch.Segments = max(g.batch.Segments, segments)
		g.batch.Deliveries = append(g.batch.Deliveries, d)
		ids = append(ids, d.ID)
		if len(g.batch.Deliveries) == maxNumbers {
			if full++; full == maxBatches {
				break
			}
		}
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return nil, fmt.Errorf("lease: read due: %w", err)
	}
	rows.Close()
	if len(ids) == 0 {
		// Rolling back undoes a reclaim of lapsed leases too; that is
		// fine, since their rows were not due (or they would be in ids),
		// and the next Lease reclaims them again.
		return nil, nil
	}
	upd, err := tx.PrepareContext(ctx, `UPDATE deliveries SET state = 'sending', lease = ?, lease_owner = ?, lease_until = ?, updated_at = ? WHERE id = ?`)
	if err != nil {
		return nil, fmt.Errorf("lease: prepare: %w", err)
	}
	defer upd.Close()
	for _, id := range ids {
		if _, err := upd.ExecContext(ctx, token, s.owner, ms(until), nowMS, id); err != nil {
			return nil, fmt.Errorf("lease: mark sending: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("lease: commit: %w", err)
	}
	batches := make([]outbox.Batch, len(order))
	for i, g := range order {
		batches[i] = g.batch
	}
	return batches, nil
}

// Complete records outcomes in one transaction. An outcome whose lease
// token the row no longer carries (the lease lapsed and the row was leased
// again, failed for max age, or recovered at Open) is skipped and logged:
// the row's current holder decides.
func (s *Store) Complete(ctx context.Context, outcomes []outbox.Outcome) (err error) {
	defer s.noteFullp(&err)
	if err := s.closed(); err != nil {
		return err
	}
	if len(outcomes) == 0 {
		return nil
	}
	now := s.clock()
	nowMS := ms(now)
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("complete: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	// The account of the last request stays when no request was made.
	const account = `account = CASE WHEN ? <> '' THEN ? ELSE account END`
	const held = `WHERE id = ? AND state = 'sending' AND lease = ? AND lease <> ''`
	stmts := map[outbox.State]*sql.Stmt{}
	for state, q := range map[outbox.State]string{
		outbox.StateAccepted: `UPDATE deliveries SET state = 'accepted', attempts = attempts + ?, ` + account + `,
			api_message_id = NULLIF(?, ''), error_code = '', error = '', lease = '', lease_until = NULL, updated_at = ?,
			admitted_at = ? ` + held,
		outbox.StateFailed: `UPDATE deliveries SET state = 'failed', attempts = attempts + ?, ` + account + `,
			error_code = ?, error = ?, lease = '', lease_until = NULL, ` + unadmit + `, updated_at = ? ` + held,
		outbox.StatePending: `UPDATE deliveries SET state = 'pending', attempts = attempts + ?, ` + account + `,
			next_attempt_at = ?, error_code = CASE WHEN ? THEN ? ELSE error_code END, error = CASE WHEN ? THEN ? ELSE error END,
			lease = '', lease_until = NULL, ` + unadmit + `, updated_at = ? ` + held,
	} {
		st, err := tx.PrepareContext(ctx, q)
		if err != nil {
			return fmt.Errorf("complete: prepare: %w", err)
		}
		defer st.Close()
		stmts[state] = st
	}
	var stale int
	due := false
	for _, o := range outcomes {
		d := o.Delivery
		attempted := 0
		if o.Attempted {
			attempted = 1
		}
		var args []any
		dueNow := false
		switch o.State {
		case outbox.StateAccepted:
			// The throttle counts an accepted row from now: never earlier
			// than the provider took it.
			args = []any{attempted, o.Account, o.Account, o.APIMessageID, nowMS, nowMS, d.ID, d.Lease}
		case outbox.StateFailed:
			args = []any{attempted, o.Account, o.Account, o.ErrorCode, o.Error, nowMS, d.ID, d.Lease}
		case outbox.StatePending:
			next := o.NextAttempt
			if next.IsZero() || next.Before(now) {
				next = now
			}
			dueNow = !next.After(now)
			setErr := o.Error != "" || o.ErrorCode != ""
			args = []any{attempted, o.Account, o.Account, ms(next), setErr, o.ErrorCode, setErr, o.Error, nowMS, d.ID, d.Lease}
		default:
			return fmt.Errorf("complete delivery %d: unknown outcome state %q", d.ID, o.State)
		}
		if o.State != outbox.StateAccepted {
			// Not sent after all: its segments go back to the day it took
			// them from.
			if _, err := tx.ExecContext(ctx, `UPDATE budget SET used = max(0, used - d.charged), updated_at = ?
				FROM (SELECT charged, charged_day FROM deliveries WHERE id = ? AND state = 'sending' AND lease = ? AND lease <> '' AND charged > 0) AS d
				WHERE budget.day = d.charged_day`, nowMS, d.ID, d.Lease); err != nil {
				return fmt.Errorf("complete delivery %d: give back budget: %w", d.ID, err)
			}
		}
		res, err := stmts[o.State].ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("complete delivery %d: %w", d.ID, err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return fmt.Errorf("complete delivery %d: %w", d.ID, err)
		}
		switch {
		case n == 0:
			stale++
		case dueNow:
			due = true
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("complete: commit: %w", err)
	}
	if stale > 0 {
		s.logger.Warn("ignored results for deliveries no longer leased by their sender; the lease had lapsed (lease longer than the send timeout?)", "deliveries", stale)
	}
	if due {
		s.signal()
	}
	return nil
}

// FailExpired fails every queued delivery that entered the queue maxAge or
// more before now, and returns how many. Rows leased and not yet lapsed are
// left to their sender; they are caught once they return to the queue.
func (s *Store) FailExpired(ctx context.Context, now time.Time, maxAge time.Duration) (_ int, err error) {
	defer s.noteFullp(&err)
	if err := s.closed(); err != nil {
		return 0, err
	}
	cutoff := ms(now.Add(-maxAge))
	reason := fmt.Sprintf("not delivered within max age %s", maxAge)
	set := `SET state = 'failed', error_code = 'max_age',
		error = ? || CASE WHEN error <> '' THEN '; last error: ' || error ELSE '' END,
		lease = '', lease_until = NULL, updated_at = ?`
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("fail expired: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	if err := giveBack(ctx, tx, `state = 'sending' AND lease_until <= ? AND queued_at <= ?`, ms(now), cutoff); err != nil {
		return 0, fmt.Errorf("fail expired: %w", err)
	}
	total := 0
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE deliveries ` + set + ` WHERE state = 'pending' AND queued_at <= ?`, []any{reason, ms(now), cutoff}},
		{`UPDATE deliveries ` + set + `, ` + unadmit + ` WHERE state = 'sending' AND lease_until <= ? AND queued_at <= ?`, []any{reason, ms(now), ms(now), cutoff}},
	} {
		res, err := tx.ExecContext(ctx, q.sql, q.args...)
		if err != nil {
			return 0, fmt.Errorf("fail expired: %w", err)
		}
		n, err := res.RowsAffected()
		if err != nil {
			return 0, fmt.Errorf("fail expired: %w", err)
		}
		total += int(n)
	}
	if err := tx.Commit(); err != nil {
		return 0, fmt.Errorf("fail expired: commit: %w", err)
	}
	return total, nil
}

// Schedule reads when the next row is due and how old the oldest waiting
// row is at now.
func (s *Store) Schedule(ctx context.Context, now time.Time) (outbox.Schedule, error) {
	if err := s.closed(); err != nil {
		return outbox.Schedule{}, err
	}
	var due, lapse, oldest, oldestLapsed, held sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'),
		(SELECT min(lease_until) FROM deliveries WHERE state = 'sending'),
		(SELECT min(queued_at) FROM deliveries WHERE state = 'pending'),
		(SELECT min(queued_at) FROM deliveries WHERE state = 'sending' AND lease_until <= ?),
		(SELECT min(h.next_attempt_at) FROM deliveries h WHERE h.state = 'held' AND NOT `+waitingDigest+`)`,
		ms(now)).Scan(&due, &lapse, &oldest, &oldestLapsed, &held)
	if err != nil {
		return outbox.Schedule{}, fmt.Errorf("read schedule: %w", err)
	}
	var sc outbox.Schedule
	earliest(&sc.NextDue, due, lapse)
	earliest(&sc.NextHeld, held)
	earliest(&sc.OldestQueued, oldest, oldestLapsed)
	return sc, nil
}

// earliest sets *dst to the earliest of the valid vs, unless *dst is
// already earlier.
func earliest(dst *time.Time, vs ...sql.NullInt64) {
	for _, v := range vs {
		if v.Valid && (dst.IsZero() || fromMS(v.Int64).Before(*dst)) {
			*dst = fromMS(v.Int64)
		}
	}
}
