package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"time"
)

// State is the state of one delivery (one text to one number).
type State string

// Delivery states. A delivery starts pending, is sending while leased, and
// ends delivered or failed; Retry moves a failed one back to pending.
const (
	StatePending   State = "pending"
	StateSending   State = "sending"
	StateDelivered State = "delivered"
	StateFailed    State = "failed"
)

// Batch is one request's worth of leased work: one text and the numbers to
// send it to, none of them twice.
type Batch struct {
	Text     string
	Segments int
	// LeaseUntil is when the lease lapses and the rows become due again;
	// a result recorded after that is ignored if the rows were re-leased.
	LeaseUntil time.Time
	Deliveries []Delivery
}

// Numbers returns the batch's numbers in delivery order.
func (b Batch) Numbers() []string {
	nums := make([]string, len(b.Deliveries))
	for i, d := range b.Deliveries {
		nums[i] = d.Number
	}
	return nums
}

// Delivery is one leased row.
type Delivery struct {
	ID             int64
	NotificationID int64
	MessageID      int64
	Receiver       string
	Number         string
	// Attempts counts the requests already made for this row.
	Attempts int
	// QueuedAt is when the row entered the queue (receipt, or a manual
	// Retry); max age counts from it.
	QueuedAt time.Time
	// Lease identifies the lease; only its holder can record a result.
	Lease int64
}

// Outcome is what became of one leased delivery. Build it with Delivered,
// Failed, Rescheduled, Deferred or Released.
type Outcome struct {
	Delivery Delivery
	// State is StateDelivered, StateFailed or StatePending.
	State        State
	APIMessageID string
	ErrorCode    string
	Error        string
	// NextAttempt is when a pending outcome is due again; zero means now.
	NextAttempt time.Time
	// Attempted says a request was made for the row (counted in attempts).
	Attempted bool
}

// Delivered records that the provider accepted the message for d.
func Delivered(d Delivery, apiMessageID string) Outcome {
	return Outcome{Delivery: d, State: StateDelivered, APIMessageID: apiMessageID, Attempted: true}
}

// Failed records that d will never be delivered, with a short code and the
// reason for a person.
func Failed(d Delivery, code, reason string) Outcome {
	return Outcome{Delivery: d, State: StateFailed, ErrorCode: code, Error: reason, Attempted: true}
}

// Rescheduled returns d to the queue after a failed attempt, due at at.
func Rescheduled(d Delivery, at time.Time, code, reason string) Outcome {
	return Outcome{Delivery: d, State: StatePending, NextAttempt: at, ErrorCode: code, Error: reason, Attempted: true}
}

// Deferred returns d to the queue, due at at, without counting an attempt:
// the wait was not the row's fault (a 429 pause).
func Deferred(d Delivery, at time.Time, code, reason string) Outcome {
	return Outcome{Delivery: d, State: StatePending, NextAttempt: at, ErrorCode: code, Error: reason}
}

// Released returns d to the queue, due now, untouched: it was never sent
// (shutdown).
func Released(d Delivery) Outcome {
	return Outcome{Delivery: d, State: StatePending}
}

// Lease takes up to maxBatches batches of due deliveries, each at most
// maxNumbers numbers of one text, oldest due first, and marks them sending
// until now+leaseFor. Rows with the same text from different messages share
// a batch (one request), but a number appears at most once per batch. Rows
// whose lease lapsed (a stuck or crashed holder) are due again.
func (s *Store) Lease(ctx context.Context, now time.Time, maxBatches, maxNumbers int, leaseFor time.Duration) ([]Batch, error) {
	if maxBatches <= 0 || maxNumbers <= 0 {
		return nil, nil
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("lease: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	nowMS := ms(now)
	if _, err := tx.ExecContext(ctx, `UPDATE deliveries SET state = 'pending', lease = 0, lease_until = NULL, updated_at = ?
		WHERE state = 'sending' AND lease_until <= ?`, nowMS, nowMS); err != nil {
		return nil, fmt.Errorf("lease: reclaim lapsed leases: %w", err)
	}
	// Scan at most what the batches can hold, and stop at the first new
	// text once every batch is open: this runs on the single writer
	// connection, and each millisecond here is one no webhook can commit.
	// Rows of a full batch, a duplicate number or a text beyond the stop
	// wait for the next Lease.
	scan := min(maxBatches*maxNumbers, 20000)
	rows, err := tx.QueryContext(ctx, `SELECT d.id, d.number, d.attempts, d.queued_at, m.id, m.notification_id, m.receiver, m.text, m.segments
		FROM deliveries d JOIN messages m ON m.id = d.message_id
		WHERE d.state = 'pending' AND d.next_attempt_at <= ?
		ORDER BY d.next_attempt_at, d.id
		LIMIT ?`, nowMS, scan)
	if err != nil {
		return nil, fmt.Errorf("lease: select due: %w", err)
	}
	type group struct {
		batch   Batch
		numbers map[string]bool
	}
	var (
		groups = map[string]*group{}
		order  []*group
		full   int
		ids    []int64
	)
	lease := s.leaseSeq.Add(1)
	until := now.Add(leaseFor)
	for rows.Next() {
		var (
			d        Delivery
			queued   int64
			text     string
			segments int
		)
		if err := rows.Scan(&d.ID, &d.Number, &d.Attempts, &queued, &d.MessageID, &d.NotificationID, &d.Receiver, &text, &segments); err != nil {
			rows.Close()
			return nil, fmt.Errorf("lease: scan: %w", err)
		}
		d.QueuedAt = fromMS(queued)
		d.Lease = lease
		g := groups[text]
		if g == nil {
			if len(order) == maxBatches {
				break
			}
			g = &group{batch: Batch{Text: text, Segments: segments, LeaseUntil: until}, numbers: map[string]bool{}}
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
		return nil, nil
	}
	upd, err := tx.PrepareContext(ctx, `UPDATE deliveries SET state = 'sending', lease = ?, lease_until = ?, updated_at = ? WHERE id = ?`)
	if err != nil {
		return nil, fmt.Errorf("lease: prepare: %w", err)
	}
	defer upd.Close()
	for _, id := range ids {
		if _, err := upd.ExecContext(ctx, lease, ms(until), nowMS, id); err != nil {
			return nil, fmt.Errorf("lease: mark sending: %w", err)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("lease: commit: %w", err)
	}
	batches := make([]Batch, len(order))
	for i, g := range order {
		batches[i] = g.batch
	}
	return batches, nil
}

// Complete records outcomes in one transaction. An outcome whose lease is no
// longer held (it lapsed and the row was leased again, or was failed for
// max age) is skipped and logged: the row's current holder decides.
func (s *Store) Complete(ctx context.Context, outcomes []Outcome) error {
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
	stmts := map[State]*sql.Stmt{}
	for state, q := range map[State]string{
		StateDelivered: `UPDATE deliveries SET state = 'delivered', attempts = attempts + ?, api_message_id = ?,
			error_code = '', error = '', lease = 0, lease_until = NULL, updated_at = ?
			WHERE id = ? AND state = 'sending' AND lease = ?`,
		StateFailed: `UPDATE deliveries SET state = 'failed', attempts = attempts + ?, error_code = ?, error = ?,
			lease = 0, lease_until = NULL, updated_at = ?
			WHERE id = ? AND state = 'sending' AND lease = ?`,
		StatePending: `UPDATE deliveries SET state = 'pending', attempts = attempts + ?, next_attempt_at = ?,
			error_code = CASE WHEN ? THEN ? ELSE error_code END, error = CASE WHEN ? THEN ? ELSE error END,
			lease = 0, lease_until = NULL, updated_at = ?
			WHERE id = ? AND state = 'sending' AND lease = ?`,
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
		switch o.State {
		case StateDelivered:
			args = []any{attempted, o.APIMessageID, nowMS, d.ID, d.Lease}
		case StateFailed:
			args = []any{attempted, o.ErrorCode, o.Error, nowMS, d.ID, d.Lease}
		case StatePending:
			next := o.NextAttempt
			if next.IsZero() || next.Before(now) {
				next = now
			}
			if !next.After(now) {
				due = true
			}
			setErr := o.Error != "" || o.ErrorCode != ""
			args = []any{attempted, ms(next), setErr, o.ErrorCode, setErr, o.Error, nowMS, d.ID, d.Lease}
		default:
			return fmt.Errorf("complete delivery %d: unknown outcome state %q", d.ID, o.State)
		}
		res, err := stmts[o.State].ExecContext(ctx, args...)
		if err != nil {
			return fmt.Errorf("complete delivery %d: %w", d.ID, err)
		}
		if n, err := res.RowsAffected(); err == nil && n == 0 {
			stale++
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

// MarkDelivered records that the provider accepted the message for d.
func (s *Store) MarkDelivered(ctx context.Context, d Delivery, apiMessageID string) error {
	return s.Complete(ctx, []Outcome{Delivered(d, apiMessageID)})
}

// MarkFailed records that d failed for good.
func (s *Store) MarkFailed(ctx context.Context, d Delivery, code, reason string) error {
	return s.Complete(ctx, []Outcome{Failed(d, code, reason)})
}

// Reschedule returns d to the queue after a failed attempt, due at at.
func (s *Store) Reschedule(ctx context.Context, d Delivery, at time.Time, reason string) error {
	return s.Complete(ctx, []Outcome{Rescheduled(d, at, "", reason)})
}

// Release returns leased deliveries that were never sent to the queue.
func (s *Store) Release(ctx context.Context, ds ...Delivery) error {
	outs := make([]Outcome, len(ds))
	for i, d := range ds {
		outs[i] = Released(d)
	}
	return s.Complete(ctx, outs)
}

// FailExpired fails every queued delivery that entered the queue maxAge or
// more before now, and returns how many. Rows leased and not yet lapsed are
// left to their sender; they are caught once they return to the queue.
func (s *Store) FailExpired(ctx context.Context, now time.Time, maxAge time.Duration) (int, error) {
	cutoff := ms(now.Add(-maxAge))
	reason := fmt.Sprintf("not delivered within max age %s", maxAge)
	set := `SET state = 'failed', error_code = 'max_age',
		error = ? || CASE WHEN error <> '' THEN '; last error: ' || error ELSE '' END,
		lease = 0, lease_until = NULL, updated_at = ?`
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return 0, fmt.Errorf("fail expired: begin: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	total := 0
	for _, q := range []struct {
		sql  string
		args []any
	}{
		{`UPDATE deliveries ` + set + ` WHERE state = 'pending' AND queued_at <= ?`, []any{reason, ms(now), cutoff}},
		{`UPDATE deliveries ` + set + ` WHERE state = 'sending' AND lease_until <= ? AND queued_at <= ?`, []any{reason, ms(now), ms(now), cutoff}},
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

// Schedule tells the dispatcher when it next has work.
type Schedule struct {
	// NextDue is the earliest time a queued row is due or a lease lapses;
	// zero when nothing is queued or leased.
	NextDue time.Time
	// OldestQueued is the earliest QueuedAt among rows waiting in the queue
	// or held by a lapsed lease, i.e. the rows FailExpired would fail; zero
	// when there are none. The first of them expires at OldestQueued plus
	// max age.
	OldestQueued time.Time
}

// Schedule reads when the next row is due and how old the oldest waiting
// row is at now.
func (s *Store) Schedule(ctx context.Context, now time.Time) (Schedule, error) {
	var due, lapse, oldest, oldestLapsed sql.NullInt64
	err := s.rdb.QueryRowContext(ctx, `SELECT
		(SELECT min(next_attempt_at) FROM deliveries WHERE state = 'pending'),
		(SELECT min(lease_until) FROM deliveries WHERE state = 'sending'),
		(SELECT min(queued_at) FROM deliveries WHERE state = 'pending'),
		(SELECT min(queued_at) FROM deliveries WHERE state = 'sending' AND lease_until <= ?)`, ms(now)).Scan(&due, &lapse, &oldest, &oldestLapsed)
	if err != nil {
		return Schedule{}, fmt.Errorf("read schedule: %w", err)
	}
	var sc Schedule
	earliest := func(dst *time.Time, vs ...sql.NullInt64) {
		for _, v := range vs {
			if v.Valid && (dst.IsZero() || fromMS(v.Int64).Before(*dst)) {
				*dst = fromMS(v.Int64)
			}
		}
	}
	earliest(&sc.NextDue, due, lapse)
	earliest(&sc.OldestQueued, oldest, oldestLapsed)
	return sc, nil
}
