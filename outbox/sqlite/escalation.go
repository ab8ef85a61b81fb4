package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// The escalation part of the contract (outbox.Escalations), besides what
// the group commit does (enqueue_escalation.go).

// selectSteps is the query behind outbox.EscalationStep, without its
// WHERE.
const selectSteps = `SELECT id, escalation, group_key, source, alertname, receiver, step, after_ms, step_receiver, notification_id,
		started_at, due_at, state, reason, detail, COALESCE(ended_at, 0), COALESCE(escalated_to, 0), text, summary, critical, labels,
		attempts, error, lease, lease_owner FROM escalations`

func scanStep(sc interface{ Scan(...any) error }) (outbox.EscalationStep, error) {
	var s outbox.EscalationStep
	var after, started, due, ended int64
	var state, labels string
	if err := sc.Scan(&s.ID, &s.Escalation, &s.GroupKey, &s.Source, &s.AlertName, &s.Receiver, &s.Step, &after, &s.StepReceiver,
		&s.NotificationID, &started, &due, &state, &s.Reason, &s.Detail, &ended, &s.EscalatedTo, &s.Text, &s.Summary, &s.Critical,
		&labels, &s.Attempts, &s.Error, &s.Lease, &s.LeaseOwner); err != nil {
		return outbox.EscalationStep{}, err
	}
	s.After, s.StartedAt, s.DueAt = time.Duration(after)*time.Millisecond, fromMS(started), fromMS(due)
	s.State, s.Labels = outbox.EscalationState(state), decodeLabels(labels)
	if ended != 0 {
		s.EndedAt = fromMS(ended)
	}
	return s, nil
}

func querySteps(ctx context.Context, q interface {
	QueryContext(context.Context, string, ...any) (*sql.Rows, error)
}, query string, args ...any) ([]outbox.EscalationStep, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []outbox.EscalationStep
	for rows.Next() {
		s, err := scanStep(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, s)
	}
	return out, rows.Err()
}

// nextStepQuery finds when the next pending step not leased now is due:
// its attempt, or the lapse of its holder's lease, whichever is later.
const nextStepQuery = `SELECT min(CASE WHEN lease_until IS NOT NULL AND lease_until > ?
		THEN max(next_attempt_at, lease_until) ELSE next_attempt_at END) FROM escalations WHERE state = 'pending'`

// LeaseEscalations leases the pending steps due at now.
func (s *Store) LeaseEscalations(ctx context.Context, now time.Time, max int, leaseFor time.Duration) ([]outbox.EscalationStep, time.Time, error) {
	if err := s.closed(); err != nil {
		return nil, time.Time{}, err
	}
	nowMS := ms(now)
	// Most calls find nothing due: answer them from a read, without the
	// write lock.
	var next sql.NullInt64
	if err := s.rdb.QueryRowContext(ctx, nextStepQuery, nowMS).Scan(&next); err != nil {
		return nil, time.Time{}, fmt.Errorf("lease escalation steps: %w", err)
	}
	if !next.Valid || next.Int64 > nowMS || max <= 0 {
		if next.Valid {
			return nil, fromMS(next.Int64), nil
		}
		return nil, time.Time{}, nil
	}
	var out []outbox.EscalationStep
	var after time.Time
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		due, err := querySteps(ctx, tx, selectSteps+` WHERE state = 'pending' AND next_attempt_at <= ?
			AND (lease_until IS NULL OR lease_until <= ?) ORDER BY next_attempt_at, id LIMIT ?`, nowMS, nowMS, max)
		if err != nil {
			return err
		}
		for _, st := range due {
			st.Lease, st.LeaseOwner = newLease(), s.owner
			if _, err := tx.ExecContext(ctx, `UPDATE escalations SET lease = ?, lease_owner = ?, lease_until = ?, updated_at = ? WHERE id = ?`,
				st.Lease, st.LeaseOwner, ms(now.Add(leaseFor)), nowMS, st.ID); err != nil {
				return err
			}
			out = append(out, st)
		}
		// Those just leased are the caller's to finish.
		var n sql.NullInt64
		if err := tx.QueryRowContext(ctx, nextStepQuery+` AND id NOT IN (SELECT value FROM json_each(?))`, nowMS, stepIDs(out)).Scan(&n); err != nil {
			return err
		}
		if n.Valid {
			after = fromMS(n.Int64)
		}
		return nil
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("lease escalation steps: %w", err)
	}
	return out, after, nil
}

// CompleteEscalation records one attempt at a leased step.
func (s *Store) CompleteEscalation(ctx context.Context, id int64, lease string, o outbox.EscalationOutcome) error {
	if err := s.closed(); err != nil {
		return err
	}
	if lease == "" {
		return fmt.Errorf("complete escalation step %d: %w: no lease", id, outbox.ErrNotFound)
	}
	var res sql.Result
	var err error
	switch o.State {
	case outbox.EscalationPending:
		next := o.Next
		if next.IsZero() {
			next = o.At
		}
		res, err = s.wdb.ExecContext(ctx, `UPDATE escalations SET next_attempt_at = ?, attempts = attempts + 1, error = ?,
			lease = '', lease_until = NULL, updated_at = ? WHERE id = ? AND lease = ? AND state = 'pending'`,
			ms(next), o.Error, ms(o.At), id, lease)
	case outbox.EscalationFailed:
		res, err = s.wdb.ExecContext(ctx, `UPDATE escalations SET state = 'failed', detail = ?, ended_at = ?,
			lease = '', lease_until = NULL, updated_at = ? WHERE id = ? AND lease = ? AND state = 'pending'`,
			o.Error, ms(o.At), ms(o.At), id, lease)
	default:
		return fmt.Errorf("complete escalation step %d: %w: state %q", id, outbox.ErrInvalid, o.State)
	}
	if err != nil {
		return fmt.Errorf("complete escalation step %d: %w", id, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("complete escalation step %d: %w", id, err)
	} else if n == 0 {
		return fmt.Errorf("complete escalation step %d: no longer pending under this lease: %w", id, outbox.ErrNotFound)
	}
	return nil
}

// StopEscalations stops the pending steps st selects.
func (s *Store) StopEscalations(ctx context.Context, st outbox.EscalationStop) ([]outbox.EscalationStep, error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	var where string
	var arg any
	switch {
	case (st.GroupKey == "") == (st.Escalation == 0):
		return nil, fmt.Errorf("stop escalations: %w: select by a group key or an escalation, one of them", outbox.ErrInvalid)
	case st.GroupKey != "":
		where, arg = `group_key = ? AND episode_open = 1`, st.GroupKey
	default:
		where, arg = `escalation = (SELECT escalation FROM escalations WHERE id = ?)`, st.Escalation
	}
	if !validReason(st.Reason) {
		return nil, fmt.Errorf("stop escalations: %w: reason %q", outbox.ErrInvalid, st.Reason)
	}
	var out []outbox.EscalationStep
	at := ms(st.At)
	err := s.inTx(ctx, func(tx *sql.Tx) error {
		steps, err := querySteps(ctx, tx, selectSteps+` WHERE `+where+` AND state = 'pending' ORDER BY escalation, step`, arg)
		if err != nil {
			return err
		}
		for _, step := range steps {
			if _, err := tx.ExecContext(ctx, `UPDATE escalations SET state = 'stopped', reason = ?, detail = ?, ended_at = ?,
				lease = '', lease_until = NULL, updated_at = ? WHERE id = ?`, st.Reason, st.Detail, at, at, step.ID); err != nil {
				return err
			}
			step.State, step.Reason, step.Detail, step.EndedAt, step.Lease = outbox.EscalationStopped, st.Reason, st.Detail, fromMS(at), ""
			out = append(out, step)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stop escalations: %w", err)
	}
	return out, nil
}

// stepIDs is the JSON array of the steps' ids.
func stepIDs(ss []outbox.EscalationStep) string {
	ids := make([]int64, len(ss))
	for i, s := range ss {
		ids[i] = s.ID
	}
	raw, _ := json.Marshal(ids) // ints always encode
	return string(raw)
}

func validReason(r string) bool {
	for _, v := range outbox.StopReasons {
		if r == v {
			return true
		}
	}
	return false
}

// EscalationSteps returns the steps f selects.
func (s *Store) EscalationSteps(ctx context.Context, f outbox.EscalationFilter) ([]outbox.EscalationStep, error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	if f.Open {
		where = append(where, `escalation IN (SELECT escalation FROM escalations WHERE state = 'pending')`)
	} else if !f.Since.IsZero() {
		where = append(where, `started_at >= ?`)
		args = append(args, ms(f.Since))
	}
	if f.Escalation != 0 {
		where = append(where, `escalation = (SELECT escalation FROM escalations WHERE id = ?)`)
		args = append(args, f.Escalation)
	}
	limit := f.Limit
	if limit <= 0 {
		limit = 200
	}
	limit = min(limit, 1000)
	q := selectSteps
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	out, err := querySteps(ctx, s.rdb, q+` ORDER BY started_at DESC, escalation DESC, step LIMIT ?`, append(args, limit)...)
	if err != nil {
		return nil, fmt.Errorf("read escalation steps: %w", err)
	}
	return out, nil
}

// pruneEscalations deletes the escalations whose steps all ended before
// cutoff and that began more than an episode ago (an episode still
// running needs its steps to know it is).
func (s *Store) pruneEscalations(ctx context.Context, cutoff int64) error {
	if _, err := s.wdb.ExecContext(ctx, `DELETE FROM escalations WHERE escalation IN (
		SELECT escalation FROM escalations GROUP BY escalation
		HAVING max(state = 'pending') = 0 AND max(COALESCE(ended_at, 0)) < ? AND max(started_at) < ?)`,
		cutoff, ms(s.clock().Add(-outbox.EscalationEpisode))); err != nil {
		return fmt.Errorf("prune escalations: %w", err)
	}
	return nil
}

// recoverEscalations ends the leases on pending steps: with the
// directory's lock held, their holders are gone, and a step due while the
// bridge was down is sent at once rather than when its lease lapses.
func (s *Store) recoverEscalations(ctx context.Context) error {
	res, err := s.wdb.ExecContext(ctx, `UPDATE escalations SET lease = '', lease_until = NULL WHERE state = 'pending' AND lease <> ''`)
	if err != nil {
		return fmt.Errorf("recover leased escalation steps: %w", err)
	}
	if n, err := res.RowsAffected(); err == nil && n > 0 {
		s.logger.Warn("released escalation steps leased by a process that is gone; they are checked again", "steps", n)
	}
	return nil
}
