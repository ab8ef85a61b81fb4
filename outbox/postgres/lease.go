package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smsbridge/smsbridge/outbox"
)

// Lease takes up to maxBatches batches of due deliveries, each at most
// maxNumbers numbers of one text, oldest due first, and marks them sending,
// owned by this store, until now+leaseFor. Rows are chosen with FOR UPDATE
// SKIP LOCKED, so two replicas leasing at once take different rows
// without waiting on each other. While this store leads (Lead), each
// Lease first checks, in its transaction, that its lock session still
// holds the dispatch lock, and fails with outbox.ErrNotLeader otherwise:
// a leader whose session died cannot lease after another took over.
func (s *Store) Lease(ctx context.Context, now time.Time, maxBatches, maxNumbers int, leaseFor time.Duration) (_ []outbox.Batch, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	if maxBatches <= 0 || maxNumbers <= 0 {
		return nil, nil
	}
	ctx, end := s.op(ctx, "lease")
	defer func() { end(err) }()
	t := s.term.Load()
	if t != nil && t.isLost() {
		return nil, outbox.ErrNotLeader
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("lease: begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit this is a no-op
	if t != nil {
		var held bool
		var err error
		if t.row {
			err = tx.QueryRow(ctx, rowHeld, s.owner).Scan(&held)
		} else {
			err = tx.QueryRow(ctx, lockHeld, lockSpaceLeader, s.key, int64(t.pid)).Scan(&held)
		}
		if err != nil {
			return nil, fmt.Errorf("lease: check the dispatch lock: %w", err)
		}
		if !held {
			t.lose("the dispatch lock (or lease) is no longer this replica's")
			return nil, outbox.ErrNotLeader
		}
	}
	// A lapsed lease was not sent as far as anyone knows: what Admit
	// counted for it goes back. Rows another transaction holds are left
	// for the next Lease.
	rows, err := tx.Query(ctx, `WITH lapsed AS (
			SELECT id, charged, charged_day FROM deliveries WHERE state = 'sending' AND lease_until <= $1
			ORDER BY id FOR UPDATE SKIP LOCKED
		)
		UPDATE deliveries d SET state = 'pending', lease = '', lease_until = NULL, `+unadmit+`, updated_at = $1
		FROM lapsed WHERE d.id = lapsed.id RETURNING lapsed.charged, lapsed.charged_day`, now)
	if err != nil {
		return nil, fmt.Errorf("lease: reclaim lapsed leases: %w", err)
	}
	lapsed, err := pgx.CollectRows(rows, scanReleased)
	if err != nil {
		return nil, fmt.Errorf("lease: reclaim lapsed leases: %w", err)
	}
	if err := giveBack(ctx, tx, sumCharged(lapsed), now); err != nil {
		return nil, fmt.Errorf("lease: reclaim lapsed leases: %w", err)
	}
	scan := min(maxBatches*maxNumbers, 20000)
	rows, err = tx.Query(ctx, `SELECT d.id, d.number, d.attempts, d.queued_at, d.digest, m.id, m.notification_id, m.receiver, m.text, m.segments, d.person
		FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE d.state = 'pending' AND d.next_attempt_at <= $1
		ORDER BY d.next_attempt_at, d.id
		LIMIT $2
		FOR UPDATE OF d SKIP LOCKED`, now, scan)
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
			text     string
			segments int
		)
		if err := rows.Scan(&d.ID, &d.Number, &d.Attempts, &d.QueuedAt, &d.Digest, &d.MessageID, &d.NotificationID, &d.Receiver, &text, &segments, &d.Person); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lease: scan: %w", err)
		}
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
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("lease: read due: %w", err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	if _, err := tx.Exec(ctx, `UPDATE deliveries SET state = 'sending', lease = $1, lease_owner = $2, lease_until = $3, updated_at = $4
		WHERE id = ANY($5)`, token, s.owner, until, now, ids); err != nil {
		return nil, fmt.Errorf("lease: mark sending: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("lease: commit: %w", err)
	}
	batches := make([]outbox.Batch, len(order))
	for i, g := range order {
		batches[i] = g.batch
	}
	return batches, nil
}

// lockHeld reports whether the backend with the given pid holds the
// dispatch lock of a backing.
const lockHeld = `SELECT EXISTS (SELECT 1 FROM pg_locks
	WHERE locktype = 'advisory' AND classid = $1::int::oid AND objid = $2::int::oid AND objsubid = 2
	AND pid = $3 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`

// Complete records outcomes in one transaction. An outcome whose lease
// token the row no longer carries is skipped and logged: the row's current
// holder decides. The rows are locked first, in id order, then the
// budget's days a row not sent gives its segments back to (the global
// lock order).
func (s *Store) Complete(ctx context.Context, outcomes []outbox.Outcome) (err error) {
	if err := s.closed(); err != nil {
		return err
	}
	if len(outcomes) == 0 {
		return nil
	}
	for _, o := range outcomes {
		switch o.State {
		case outbox.StateAccepted, outbox.StateFailed, outbox.StatePending:
		default:
			return fmt.Errorf("complete delivery %d: unknown outcome state %q", o.Delivery.ID, o.State)
		}
	}
	ctx, end := s.op(ctx, "complete")
	defer func() { end(err) }()
	now := s.clock()
	outcomes = slices.Clone(outcomes)
	slices.SortStableFunc(outcomes, func(a, b outbox.Outcome) int { return cmp.Compare(a.Delivery.ID, b.Delivery.ID) })
	ids, tokens := make([]int64, len(outcomes)), make([]string, len(outcomes))
	for i, o := range outcomes {
		ids[i], tokens[i] = o.Delivery.ID, o.Delivery.Lease
	}
	// The account of the last request stays when no request was made.
	const account = `account = CASE WHEN $2 <> '' THEN $2 ELSE account END`
	const held = ` WHERE id = $3 AND state = 'sending' AND lease = $4 AND lease <> ''`
	b := &pgx.Batch{}
	charges := map[int64]released{}
	b.Queue(`SELECT id, charged, charged_day FROM deliveries
		WHERE (id, lease) IN (SELECT * FROM unnest($1::bigint[], $2::text[])) AND state = 'sending' AND lease <> ''
		ORDER BY id FOR UPDATE`, ids, tokens).
		Query(func(rows pgx.Rows) error {
			var id int64
			var r released
			_, err := pgx.ForEachRow(rows, []any{&id, &r.charged, &r.day}, func() error {
				charges[id] = r
				return nil
			})
			return err
		})
	var stale int
	due := false
	var given []released
	for _, o := range outcomes {
		d := o.Delivery
		attempted := 0
		if o.Attempted {
			attempted = 1
		}
		dueNow := false
		var q *pgx.QueuedQuery
		switch o.State {
		case outbox.StateAccepted:
			// The throttle counts an accepted row from now: never earlier
			// than the provider took it.
			q = b.Queue(`UPDATE deliveries SET state = 'accepted', attempts = attempts + $1, `+account+`,
				api_message_id = NULLIF($5, ''), error_code = '', error = '', lease = '', lease_until = NULL, updated_at = $6,
				admitted_at = $6`+held,
				attempted, o.Account, d.ID, d.Lease, o.APIMessageID, now)
		case outbox.StateFailed:
			q = b.Queue(`UPDATE deliveries SET state = 'failed', attempts = attempts + $1, `+account+`,
				error_code = $5, error = $6, lease = '', lease_until = NULL, `+unadmit+`, updated_at = $7`+held,
				attempted, o.Account, d.ID, d.Lease, o.ErrorCode, o.Error, now)
		case outbox.StatePending:
			next := o.NextAttempt
			if next.IsZero() || next.Before(now) {
				next = now
			}
			dueNow = !next.After(now)
			setErr := o.Error != "" || o.ErrorCode != ""
			q = b.Queue(`UPDATE deliveries SET state = 'pending', attempts = attempts + $1, `+account+`,
				next_attempt_at = $5, error_code = CASE WHEN $6 THEN $7 ELSE error_code END,
				error = CASE WHEN $6 THEN $8 ELSE error END, lease = '', lease_until = NULL, `+unadmit+`, updated_at = $9`+held,
				attempted, o.Account, d.ID, d.Lease, next, setErr, o.ErrorCode, o.Error, now)
		}
		q.Exec(func(tag pgconn.CommandTag) error {
			switch {
			case tag.RowsAffected() == 0:
				stale++
				return nil
			case dueNow:
				due = true
			}
			if o.State != outbox.StateAccepted {
				// Not sent after all: its segments go back to the day it
				// took them from.
				given = append(given, charges[d.ID])
			}
			return nil
		})
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("complete: begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit this is a no-op
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	if err := giveBack(ctx, tx, sumCharged(given), now); err != nil {
		return fmt.Errorf("complete: %w", err)
	}
	if due {
		if _, err := tx.Exec(ctx, notify, s.channel, s.owner); err != nil {
			return fmt.Errorf("complete: notify: %w", err)
		}
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("complete: commit: %w", err)
	}
	if stale > 0 {
		s.logger.Warn("ignored results for deliveries no longer leased by their sender; the lease had lapsed or a new leader took the rows over", "deliveries", stale)
	}
	if due {
		s.signal()
	}
	return nil
}

// FailExpired fails every queued delivery that entered the queue maxAge or
// more before now, and returns how many. Rows leased and not yet lapsed are
// left to their sender. Held rows wait for their number, not the
// provider, and do not expire.
func (s *Store) FailExpired(ctx context.Context, now time.Time, maxAge time.Duration) (_ int, err error) {
	if err := s.closed(); err != nil {
		return 0, err
	}
	ctx, end := s.op(ctx, "fail_expired")
	defer func() { end(err) }()
	cutoff := now.Add(-maxAge)
	reason := fmt.Sprintf("not delivered within max age %s", maxAge)
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return 0, fmt.Errorf("fail expired: begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit this is a no-op
	// In id order, as every statement that locks several deliveries.
	rows, err := tx.Query(ctx, `WITH expired AS (
			SELECT id, charged, charged_day FROM deliveries
			WHERE (state = 'pending' AND queued_at <= $3) OR (state = 'sending' AND lease_until <= $2 AND queued_at <= $3)
			ORDER BY id FOR UPDATE
		)
		UPDATE deliveries d SET state = 'failed', error_code = 'max_age',
			error = $1 || CASE WHEN d.error <> '' THEN '; last error: ' || d.error ELSE '' END,
			lease = '', lease_until = NULL, `+unadmit+`, updated_at = $2
		FROM expired WHERE d.id = expired.id RETURNING expired.charged, expired.charged_day`,
		reason, now, cutoff)
	if err != nil {
		return 0, fmt.Errorf("fail expired: %w", err)
	}
	failed, err := pgx.CollectRows(rows, scanReleased)
	if err != nil {
		return 0, fmt.Errorf("fail expired: %w", err)
	}
	if err := giveBack(ctx, tx, sumCharged(failed), now); err != nil {
		return 0, fmt.Errorf("fail expired: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return 0, fmt.Errorf("fail expired: commit: %w", err)
	}
	return len(failed), nil
}

// Schedule reads when the next row is due, when held deliveries are next
// due for release, and how old the oldest waiting row is at now.
func (s *Store) Schedule(ctx context.Context, now time.Time) (_ outbox.Schedule, err error) {
	if err := s.closed(); err != nil {
		return outbox.Schedule{}, err
	}
	ctx, end := s.op(ctx, "schedule")
	defer func() { end(err) }()
	var due, lapse, oldest, oldestLapsed, held *time.Time
	err = s.pool.QueryRow(ctx, `SELECT
		(SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'),
		(SELECT min(lease_until) FROM deliveries WHERE state = 'sending'),
		(SELECT min(queued_at) FROM deliveries WHERE state = 'pending'),
		(SELECT min(queued_at) FROM deliveries WHERE state = 'sending' AND lease_until <= $1),
		(SELECT min(h.next_attempt_at) FROM deliveries h WHERE h.state = 'held' AND NOT `+waitingDigest+`)`,
		now).Scan(&due, &lapse, &oldest, &oldestLapsed, &held)
	if err != nil {
		return outbox.Schedule{}, fmt.Errorf("read schedule: %w", err)
	}
	var sc outbox.Schedule
	earliest(&sc.NextDue, due, lapse)
	earliest(&sc.NextHeld, held)
	earliest(&sc.OldestQueued, oldest, oldestLapsed)
	return sc, nil
}

// earliest sets *dst to the earliest of the non-nil vs, unless *dst is
// already earlier.
func earliest(dst *time.Time, vs ...*time.Time) {
	for _, v := range vs {
		if v != nil && (dst.IsZero() || v.Before(*dst)) {
			*dst = *v
		}
	}
}

// isNoRows reports whether err says a query returned no row.
func isNoRows(err error) bool { return errors.Is(err, pgx.ErrNoRows) }
