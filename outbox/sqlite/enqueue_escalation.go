package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/smsbridge/smsbridge/outbox"
)

// The group commit's part in escalation: the guard of an escalated page,
// the steps a firing page schedules, and the end a resolution puts to its
// group's. Each runs inside the commit's transaction.

// resolvedDetail is the Detail of a step a resolved notification stopped.
const resolvedDetail = "the group resolved"

// escalationGuard reports whether the leased step ref may send its page
// now: it is pending under ref.Lease. When not, it returns the
// notification the step escalated with (0 for none).
func (w *txInserts) escalationGuard(ctx context.Context, ref outbox.EscalationRef) (bool, int64, error) {
	var state, lease string
	var to int64
	switch err := w.esc.guard.QueryRowContext(ctx, ref.ID).Scan(&state, &lease, &to); {
	case errors.Is(err, sql.ErrNoRows):
		return false, 0, nil
	case err != nil:
		return false, 0, fmt.Errorf("read the escalation step: %w", err)
	}
	return state == string(outbox.EscalationPending) && lease == ref.Lease, to, nil
}

// escalated ends step id: its page is notification nid.
func (w *txInserts) escalated(ctx context.Context, id, nid, nowMS int64) error {
	if _, err := w.esc.escalated.ExecContext(ctx, nid, nowMS, nowMS, id); err != nil {
		return fmt.Errorf("record the escalation step sent: %w", err)
	}
	return nil
}

// scheduleEscalations schedules the steps of each of n's messages (as the
// guards left them, before their reply code is written), as notification
// id, unless the receiver's escalation of the group is already under way
// in this episode. It returns how many escalations it began.
func (w *txInserts) scheduleEscalations(ctx context.Context, n outbox.Notification, id int64, now time.Time) (int, error) {
	began := 0
	var labels string
	nowMS := ms(now)
	for _, m := range n.Messages {
		if len(m.Escalate) == 0 {
			continue
		}
		var one int
		switch err := w.esc.open.QueryRowContext(ctx, n.GroupKey, m.Receiver, ms(now.Add(-outbox.EscalationEpisode))).Scan(&one); {
		case err == nil:
			continue // under way: each step fires once per episode
		case !errors.Is(err, sql.ErrNoRows):
			return 0, fmt.Errorf("read the group's escalation: %w", err)
		}
		if labels == "" {
			var err error
			if labels, err = encodeLabels(n.EscalationLabels); err != nil {
				return 0, err
			}
		}
		var first int64
		for k, st := range m.Escalate {
			due := ms(now.Add(st.After))
			sid, err := insertID(ctx, w.esc.insert, first, n.GroupKey, n.Source, n.AlertName, m.Receiver, k+1, st.After.Milliseconds(),
				st.Receiver, id, nowMS, due, due, m.Text, m.Summary, m.Critical, labels, nowMS)
			if err != nil {
				return 0, fmt.Errorf("schedule an escalation step: %w", err)
			}
			if k == 0 {
				first = sid
				if _, err := w.esc.first.ExecContext(ctx, sid); err != nil {
					return 0, fmt.Errorf("schedule an escalation step: %w", err)
				}
			}
		}
		began++
	}
	return began, nil
}

// resolveEscalations stops the pending steps of group and ends its
// episodes; it returns how many escalations it stopped.
func (w *txInserts) resolveEscalations(ctx context.Context, group string, nowMS int64) (int, error) {
	var n int
	if err := w.esc.pendingIn.QueryRowContext(ctx, group).Scan(&n); err != nil {
		return 0, fmt.Errorf("read the group's escalations: %w", err)
	}
	if n > 0 {
		if _, err := w.esc.resolve.ExecContext(ctx, outbox.StopResolved, resolvedDetail, nowMS, nowMS, group); err != nil {
			return 0, fmt.Errorf("stop the group's escalations: %w", err)
		}
	}
	if _, err := w.esc.closeEp.ExecContext(ctx, group); err != nil {
		return 0, fmt.Errorf("end the group's escalation episode: %w", err)
	}
	return n, nil
}

// escInserts are the group commit's escalation statements, prepared once
// on the writer connection.
type escInserts struct {
	guard, escalated, open, insert, first, pendingIn, resolve, closeEp *sql.Stmt
}

func (e *escInserts) all() []**sql.Stmt {
	return []**sql.Stmt{&e.guard, &e.escalated, &e.open, &e.insert, &e.first, &e.pendingIn, &e.resolve, &e.closeEp}
}

func prepareEscalation(ctx context.Context, db *sql.DB) (*escInserts, error) {
	var e escInserts
	queries := []string{
		`SELECT state, lease, COALESCE(escalated_to, 0) FROM escalations WHERE id = ?`,
		`UPDATE escalations SET state = 'escalated', escalated_to = ?, ended_at = ?, lease = '', lease_until = NULL, updated_at = ?
			WHERE id = ?`,
		// An episode is under way while one of its steps waits, or for a
		// day after it began, until a resolution ends it.
		`SELECT 1 FROM escalations WHERE group_key = ? AND receiver = ? AND episode_open = 1
			AND (state = 'pending' OR started_at > ?) LIMIT 1`,
		`INSERT INTO escalations (escalation, group_key, source, alertname, receiver, step, after_ms, step_receiver, notification_id,
			started_at, due_at, next_attempt_at, state, text, summary, critical, labels, updated_at)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 'pending', ?, ?, ?, ?, ?)`,
		`UPDATE escalations SET escalation = id WHERE id = ?`,
		// Pending steps are always in an open episode; saying so lets
		// the partial index serve the query.
		`SELECT count(DISTINCT escalation) FROM escalations WHERE group_key = ? AND episode_open = 1 AND state = 'pending'`,
		`UPDATE escalations SET state = 'stopped', reason = ?, detail = ?, ended_at = ?, lease = '', lease_until = NULL, updated_at = ?
			WHERE group_key = ? AND episode_open = 1 AND state = 'pending'`,
		`UPDATE escalations SET episode_open = 0 WHERE group_key = ? AND episode_open = 1`,
	}
	for i, st := range e.all() {
		p, err := db.PrepareContext(ctx, queries[i])
		if err != nil {
			e.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		*st = p
	}
	return &e, nil
}

// in returns the statements bound to tx.
func (e *escInserts) in(ctx context.Context, tx *sql.Tx) *escInserts {
	var out escInserts
	dst, src := out.all(), e.all()
	for i := range dst {
		*dst[i] = tx.StmtContext(ctx, *src[i])
	}
	return &out
}

func (e *escInserts) close() {
	for _, st := range e.all() {
		if *st != nil {
			(*st).Close()
		}
	}
}
