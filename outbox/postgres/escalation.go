package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsbridge/smsbridge/outbox"
)

// The escalation part of the contract (outbox.Escalations), besides what
// the group commit does (enqueue_escalation.go). LeaseEscalations skips
// rows another transaction holds, as Lease does, so replicas leasing at
// once take different steps; StopEscalations takes the group's advisory
// lock before its rows, as Enqueue does, so a resolution and a stop never
// wait for each other in a cycle.

// selectSteps is the query behind outbox.EscalationStep, without its
// WHERE.
const selectSteps = `SELECT id, escalation, group_key, source, alertname, receiver, step, after_ms, step_receiver, notification_id,
		started_at, due_at, state, reason, detail, ended_at, COALESCE(escalated_to, 0), text, summary, critical, labels,
		attempts, error, lease, lease_owner FROM escalations`

func scanStep(sc pgx.Row) (outbox.EscalationStep, error) {
	var s outbox.EscalationStep
	var after int64
	var ended *time.Time
	var state string
	var labels []byte
	if err := sc.Scan(&s.ID, &s.Escalation, &s.GroupKey, &s.Source, &s.AlertName, &s.Receiver, &s.Step, &after, &s.StepReceiver,
		&s.NotificationID, &s.StartedAt, &s.DueAt, &state, &s.Reason, &s.Detail, &ended, &s.EscalatedTo, &s.Text, &s.Summary, &s.Critical,
		&labels, &s.Attempts, &s.Error, &s.Lease, &s.LeaseOwner); err != nil {
		return outbox.EscalationStep{}, err
	}
	s.After = time.Duration(after) * time.Millisecond
	s.State, s.Labels = outbox.EscalationState(state), decodeLabels(labels)
	if ended != nil {
		s.EndedAt = *ended
	}
	return s, nil
}

func collectSteps(rows pgx.Rows, err error) ([]outbox.EscalationStep, error) {
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (outbox.EscalationStep, error) { return scanStep(row) })
}

// nextStepQuery finds when the next pending step not leased now (nor in
// $2) is due: its attempt, or the lapse of its holder's lease, whichever
// is later.
const nextStepQuery = `SELECT min(CASE WHEN lease_until IS NOT NULL AND lease_until > $1
		THEN GREATEST(next_attempt_at, lease_until) ELSE next_attempt_at END)
	FROM escalations WHERE state = 'pending' AND NOT (id = ANY($2))`

// LeaseEscalations leases the pending steps due at now, each under a
// token of its own.
func (s *Store) LeaseEscalations(ctx context.Context, now time.Time, max int, leaseFor time.Duration) (_ []outbox.EscalationStep, _ time.Time, err error) {
	if err := s.closed(); err != nil {
		return nil, time.Time{}, err
	}
	ctx, end := s.op(ctx, "lease_escalations")
	defer func() { end(err) }()
	// Most calls find nothing due: answer them from one read, without a
	// transaction.
	var next *time.Time
	if err := s.pool.QueryRow(ctx, nextStepQuery, now, []int64{}).Scan(&next); err != nil {
		return nil, time.Time{}, fmt.Errorf("lease escalation steps: %w", err)
	}
	if next == nil {
		return nil, time.Time{}, nil
	}
	if next.After(now) || max <= 0 {
		return nil, *next, nil
	}
	var out []outbox.EscalationStep
	var after *time.Time
	token := rand.Text()
	err = s.inTx(ctx, nil, func(tx pgx.Tx) error {
		due, err := collectSteps(tx.Query(ctx, selectSteps+` WHERE state = 'pending' AND next_attempt_at <= $1
			AND (lease_until IS NULL OR lease_until <= $1) ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`, now, max))
		if err != nil {
			return err
		}
		ids := make([]int64, len(due))
		for i := range due {
			ids[i] = due[i].ID
			due[i].Lease, due[i].LeaseOwner = leaseOf(token, due[i].ID), s.owner
		}
		if len(ids) > 0 {
			if _, err := tx.Exec(ctx, `UPDATE escalations SET lease = $1 || '.' || id::text, lease_owner = $2, lease_until = $3, updated_at = $4
				WHERE id = ANY($5)`, token, s.owner, now.Add(leaseFor), now, ids); err != nil {
				return err
			}
		}
		out = due
		// Those just leased are the caller's to finish.
		return tx.QueryRow(ctx, nextStepQuery, now, ids).Scan(&after)
	})
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("lease escalation steps: %w", err)
	}
	if after == nil {
		return out, time.Time{}, nil
	}
	return out, *after, nil
}

// CompleteEscalation records one attempt at a leased step.
func (s *Store) CompleteEscalation(ctx context.Context, id int64, lease string, o outbox.EscalationOutcome) (err error) {
	if err := s.closed(); err != nil {
		return err
	}
	if lease == "" {
		return fmt.Errorf("complete escalation step %d: %w: no lease", id, outbox.ErrNotFound)
	}
	var q string
	var args []any
	switch o.State {
	case outbox.EscalationPending:
		next := o.Next
		if next.IsZero() {
			next = o.At
		}
		q = `UPDATE escalations SET next_attempt_at = $1, attempts = attempts + 1, error = $2,
			lease = '', lease_until = NULL, updated_at = $3 WHERE id = $4 AND lease = $5 AND state = 'pending'`
		args = []any{next, o.Error, o.At, id, lease}
	case outbox.EscalationFailed:
		q = `UPDATE escalations SET state = 'failed', detail = $1, ended_at = $2,
			lease = '', lease_until = NULL, updated_at = $2 WHERE id = $3 AND lease = $4 AND state = 'pending'`
		args = []any{o.Error, o.At, id, lease}
	default:
		return fmt.Errorf("complete escalation step %d: %w: state %q", id, outbox.ErrInvalid, o.State)
	}
	ctx, end := s.op(ctx, "complete_escalation")
	defer func() { end(err) }()
	tag, err := s.pool.Exec(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("complete escalation step %d: %w", id, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("complete escalation step %d: no longer pending under this lease: %w", id, outbox.ErrNotFound)
	}
	return nil
}

// StopEscalations stops the pending steps st selects, under the group's
// lock, the rows locked in order.
func (s *Store) StopEscalations(ctx context.Context, st outbox.EscalationStop) (_ []outbox.EscalationStep, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	if (st.GroupKey == "") == (st.Escalation == 0) {
		return nil, fmt.Errorf("stop escalations: %w: select by a group key or an escalation, one of them", outbox.ErrInvalid)
	}
	if !slices.Contains(outbox.StopReasons, st.Reason) {
		return nil, fmt.Errorf("stop escalations: %w: reason %q", outbox.ErrInvalid, st.Reason)
	}
	ctx, end := s.op(ctx, "stop_escalations")
	defer func() { end(err) }()
	group := st.GroupKey
	if group == "" {
		err := s.pool.QueryRow(ctx, `SELECT group_key FROM escalations WHERE id = $1`, st.Escalation).Scan(&group)
		switch {
		case isNoRows(err):
			return nil, nil
		case err != nil:
			return nil, fmt.Errorf("stop escalations: %w", err)
		}
	}
	var out []outbox.EscalationStep
	err = s.inTx(ctx, []xactLock{s.lockOf(lockSpaceGroup, group)}, func(tx pgx.Tx) error {
		var where string
		var arg any
		if st.GroupKey != "" {
			where, arg = `group_key = $1 AND episode_open`, st.GroupKey
		} else {
			where, arg = `escalation = (SELECT escalation FROM escalations WHERE id = $1)`, st.Escalation
		}
		steps, err := collectSteps(tx.Query(ctx, selectSteps+` WHERE `+where+` AND state = 'pending' ORDER BY id FOR UPDATE`, arg))
		if err != nil {
			return err
		}
		if len(steps) == 0 {
			return nil
		}
		ids := make([]int64, len(steps))
		for i := range steps {
			ids[i] = steps[i].ID
		}
		if _, err := tx.Exec(ctx, `UPDATE escalations SET state = 'stopped', reason = $1, detail = $2, ended_at = $3,
			lease = '', lease_until = NULL, updated_at = $3 WHERE id = ANY($4)`, st.Reason, st.Detail, st.At, ids); err != nil {
			return err
		}
		for _, step := range steps {
			step.State, step.Reason, step.Detail, step.EndedAt, step.Lease = outbox.EscalationStopped, st.Reason, st.Detail, st.At, ""
			out = append(out, step)
		}
		slices.SortStableFunc(out, func(a, b outbox.EscalationStep) int {
			return cmp.Or(cmp.Compare(a.Escalation, b.Escalation), cmp.Compare(a.Step, b.Step))
		})
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("stop escalations: %w", err)
	}
	return out, nil
}

// EscalationSteps returns the steps f selects.
func (s *Store) EscalationSteps(ctx context.Context, f outbox.EscalationFilter) (_ []outbox.EscalationStep, err error) {
	if err := s.closed(); err != nil {
		return nil, err
	}
	var where []string
	var args []any
	arg := func(v any) string {
		args = append(args, v)
		return fmt.Sprintf("$%d", len(args))
	}
	if f.Open {
		where = append(where, `escalation IN (SELECT escalation FROM escalations WHERE state = 'pending')`)
	} else if !f.Since.IsZero() {
		where = append(where, `started_at >= `+arg(f.Since))
	}
	if f.Escalation != 0 {
		where = append(where, `escalation = (SELECT escalation FROM escalations WHERE id = `+arg(f.Escalation)+`)`)
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
	ctx, end := s.op(ctx, "escalation_steps")
	defer func() { end(err) }()
	out, err := collectSteps(s.pool.Query(ctx, q+` ORDER BY started_at DESC, escalation DESC, step LIMIT `+arg(limit), args...))
	if err != nil {
		return nil, fmt.Errorf("read escalation steps: %w", err)
	}
	return out, nil
}

// releaseEscalations ends the leases other owners hold on pending steps,
// when this store takes over as leader: the escalator runs on the leader
// only, so their holders are gone, and a step due meanwhile is checked at
// once rather than when its lease lapses. A holder still finishing sends
// nothing: its page's guard finds the lease changed.
func (s *Store) releaseEscalations(ctx context.Context) error {
	tag, err := s.pool.Exec(ctx, `UPDATE escalations SET lease = '', lease_until = NULL
		WHERE id IN (SELECT id FROM escalations WHERE state = 'pending' AND lease <> '' AND lease_owner <> $1
			ORDER BY id FOR UPDATE SKIP LOCKED)`, s.owner)
	if err != nil {
		return fmt.Errorf("release escalation steps leased by an earlier leader: %w", err)
	}
	if n := tag.RowsAffected(); n > 0 {
		s.logger.Warn("released escalation steps leased by an earlier leader; they are checked again", "steps", n)
	}
	return nil
}
