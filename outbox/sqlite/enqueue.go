package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/smsbridge/smsbridge/internal/plural"
	"github.com/smsbridge/smsbridge/outbox"
)

// Enqueue records n durably: when it returns nil, the notification and its
// deliveries are committed and synced to disk. Concurrent calls share one
// commit, and RequireFiring is evaluated inside it, in the order the calls
// are written. An error means nothing was recorded, and the caller should
// answer 503 so the sender retries; outbox.ErrInvalid wraps a notification
// that can never be recorded. A ctx that ends before the writer takes the
// call abandons it; once taken, the call waits for its commit.
func (s *Store) Enqueue(ctx context.Context, n outbox.Notification) (outbox.Enqueued, error) {
	if err := s.closed(); err != nil {
		return outbox.Enqueued{}, err
	}
	return s.calls.Submit(ctx, n)
}

// writer is the group-commit loop: it commits each batch of waiting
// calls in one transaction (outbox.GroupCommit).
func (s *Store) writer() {
	defer s.wg.Done()
	s.calls.Run(s.commit)
}

// commit writes batch in one transaction and answers every call in it: all
// with what was recorded, or all with the same error.
func (s *Store) commit(batch []*outbox.Pending) {
	if s.beforeCommit != nil {
		s.beforeCommit(len(batch))
	}
	start := time.Now()
	// No caller's context governs a shared commit; the busy timeout bounds
	// lock waits, and a stuck disk is not something a deadline can undo.
	ctx := context.Background()
	due, err := s.write(ctx, batch)
	s.metrics.ObserveCommit(len(batch), time.Since(start), err)
	if err != nil {
		s.resetWriter()
		s.noteFull(err)
		err = fmt.Errorf("commit %s: %w", plural.Count(len(batch), "notification", "notifications"), err)
		s.logger.Error("outbox write failed; callers are told to retry", "err", err)
	}
	// Signal before answering: when Enqueue returns, the wake is pending.
	if err == nil && due {
		s.signal()
	}
	outbox.Answer(batch, err)
}

// write inserts the batch and commits; it reports whether any delivery was
// added. The calls are written in order, each guard reading what the
// calls before it wrote.
func (s *Store) write(ctx context.Context, batch []*outbox.Pending) (due bool, err error) {
	// What space is left is kept for sending what was accepted.
	if s.low.Load() {
		return false, fmt.Errorf("%w: new notifications are refused until space is freed; see the log for the free space", ErrLowSpace)
	}
	// Before BeginTx: the transaction holds the only writer connection.
	if s.ins == nil {
		if s.ins, err = prepareInserts(ctx, s.wdb); err != nil {
			return false, err
		}
	}
	if s.twIns == nil {
		if s.twIns, err = prepareTwoWay(ctx, s.wdb); err != nil {
			return false, err
		}
	}
	if s.escIns == nil {
		if s.escIns, err = prepareEscalation(ctx, s.wdb); err != nil {
			return false, err
		}
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback() // the write already failed; that error is the one to report
		}
	}()
	// The statements stay prepared on the one writer connection; the
	// transaction only borrows them.
	w := &txInserts{tw: s.twIns.in(ctx, tx), esc: s.escIns.in(ctx, tx), tx: tx, deliveries: &s.ins.deliveries}
	for _, p := range []struct{ dst, src **sql.Stmt }{
		{&w.lastStatus, &s.ins.lastStatus}, {&w.onceKey, &s.ins.onceKey}, {&w.notification, &s.ins.notification},
		{&w.message, &s.ins.message}, {&w.dedupGet, &s.ins.dedupGet},
		{&w.dedupPut, &s.ins.dedupPut}, {&w.resolvedHas, &s.ins.resolvedHas}, {&w.resolvedPut, &s.ins.resolvedPut},
		{&w.heldFiring, &s.ins.heldFiring}, {&w.cancel, &s.ins.cancel}, {&w.lastSent, &s.ins.lastSent},
		{&w.seenID, &s.ins.seenID}, {&w.deliveryID, &s.ins.deliveryID},
	} {
		*p.dst = tx.StmtContext(ctx, *p.src)
	}

	now := s.clock()
	for _, r := range batch {
		d, err := w.record(ctx, r, now)
		if err != nil {
			return false, err
		}
		due = due || d
	}
	// A store whose directory was removed or replaced would commit to a
	// file nobody will open again: refuse, so the caller hears 503 rather
	// than a 202 that a restart loses.
	if err := s.checkDir(); err != nil {
		return false, err
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return due, nil
}

// txInserts are the group commit's statements inside one transaction.
type txInserts struct {
	// tw are the two-way statements (enqueue_twoway.go), esc the
	// escalation ones (enqueue_escalation.go).
	tw                                           *twoWayInserts
	esc                                          *escInserts
	lastStatus, onceKey, notification, message   *sql.Stmt
	dedupGet, dedupPut, resolvedHas, resolvedPut *sql.Stmt
	heldFiring, cancel, lastSent                 *sql.Stmt
	seenID, deliveryID                           *sql.Stmt
	// tx is the transaction; deliveries the prepared multi-row delivery
	// inserts, bound to tx on first use (txDeliveries).
	tx           *sql.Tx
	deliveries   *[maxDeliveryRows]*sql.Stmt
	txDeliveries [maxDeliveryRows]*sql.Stmt
}

// deliveryRow is one delivery of a message, before it is written.
type deliveryRow struct {
	number, person, state, code, reason string
	unthrottled, critical               bool
}

// insertDeliveries writes rows, the deliveries of message mid, with as
// few statements as it takes: one per maxDeliveryRows rows.
func (w *txInserts) insertDeliveries(ctx context.Context, mid, nowMS int64, rows []deliveryRow) error {
	for len(rows) > 0 {
		k := min(len(rows), maxDeliveryRows)
		st := w.txDeliveries[k-1]
		if st == nil {
			st = w.tx.StmtContext(ctx, w.deliveries[k-1])
			w.txDeliveries[k-1] = st
		}
		args := make([]any, 0, 2+deliveryArgs*k)
		args = append(args, mid, nowMS)
		for _, r := range rows[:k] {
			args = append(args, r.number, r.state, r.unthrottled, r.critical, r.code, r.reason, r.person)
		}
		if _, err := st.ExecContext(ctx, args...); err != nil {
			return fmt.Errorf("insert deliveries: %w", err)
		}
		rows = rows[k:]
	}
	return nil
}

// maxDeliveryRows is the most deliveries one insert statement writes; a
// statement is prepared for each count up to it. deliveryArgs are the
// arguments of each row beyond the message id and the time it shares.
const (
	maxDeliveryRows = 16
	deliveryArgs    = 7
)

// deliveriesInsert returns the statement that inserts rows deliveries of
// one message: ?1 is the message id, ?2 the time (queued, due and
// updated), then deliveryArgs numbered parameters per row.
func deliveriesInsert(rows int) string {
	var b strings.Builder
	b.WriteString(`INSERT INTO deliveries (message_id, queued_at, next_attempt_at, updated_at,
		number, state, unthrottled, critical, error_code, error, person) VALUES `)
	for r := range rows {
		if r > 0 {
			b.WriteString(", ")
		}
		p := 3 + deliveryArgs*r
		fmt.Fprintf(&b, "(?1, ?2, ?2, ?2, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d, ?%d)", p, p+1, p+2, p+3, p+4, p+5, p+6)
	}
	return b.String()
}

// record writes one call's notification, evaluating its guards, and sets
// r.Res. It reports whether a delivery due now was written.
func (w *txInserts) record(ctx context.Context, r *outbox.Pending, now time.Time) (bool, error) {
	n := r.N
	nowMS := ms(now)
	// The sender's delivery id first: a repeat of a delivery writes
	// nothing, whatever the other guards would say.
	if n.DeliveryID != "" {
		var first int64
		switch err := w.seenID.QueryRowContext(ctx, n.DeliveryID, nowMS).Scan(&first); {
		case err == nil:
			r.Res = outbox.Enqueued{ID: first, Outcome: outbox.OutcomeDuplicate, Replayed: true}
			return false, nil
		case !errors.Is(err, sql.ErrNoRows):
			return false, fmt.Errorf("read the delivery id: %w", err)
		}
	}
	if n.OnceKey != "" {
		var prior int64
		switch err := w.onceKey.QueryRowContext(ctx, n.OnceKey).Scan(&prior); {
		case err == nil:
			r.Res = outbox.Enqueued{ID: prior, Outcome: outbox.OutcomeDuplicate}
			return false, nil
		case !errors.Is(err, sql.ErrNoRows):
			return false, fmt.Errorf("read the once key: %w", err)
		}
	}
	if n.Escalation.ID != 0 {
		ok, escalatedTo, err := w.escalationGuard(ctx, n.Escalation)
		if err != nil {
			return false, err
		}
		if !ok {
			r.Res = outbox.Enqueued{ID: escalatedTo, Outcome: outbox.OutcomeDuplicate}
			return false, nil
		}
	}
	if n.RequireFiring {
		var last string
		switch err := w.lastStatus.QueryRowContext(ctx, n.GroupKey).Scan(&last); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return false, fmt.Errorf("read the group's last status: %w", err)
		}
		if last != "firing" {
			n.Outcome, n.Messages = outbox.OutcomeFiltered, nil
		}
	}
	var res outbox.Enqueued
	if len(n.Messages) > 0 {
		kept := make([]outbox.Message, 0, len(n.Messages))
		for _, m := range n.Messages {
			reason, err := w.guard(ctx, n, m, now)
			if err != nil {
				return false, err
			}
			if reason != "" {
				res.Suppressed = append(res.Suppressed, outbox.Suppressed{Receiver: m.Receiver, Reason: reason})
				continue
			}
			kept = append(kept, m)
		}
		for _, m := range kept {
			if m.DedupKey != "" && n.DedupWindow > 0 {
				if _, err := w.dedupPut.ExecContext(ctx, m.Receiver, n.GroupKey, m.DedupKey, nowMS); err != nil {
					return false, fmt.Errorf("store the dedup key: %w", err)
				}
			}
		}
		if len(kept) == 0 {
			n.Outcome = outbox.OutcomeStale
			for _, sp := range res.Suppressed {
				if sp.Reason == outbox.ReasonDuplicate {
					n.Outcome = outbox.OutcomeDuplicate
				}
			}
		}
		n.Messages = kept
	}
	// Remembered whatever became of n: a duplicate resolution still says
	// the alerts resolved.
	for _, a := range n.Resolved {
		if _, err := w.resolvedPut.ExecContext(ctx, a.Fingerprint, ms(a.StartsAt), nowMS); err != nil {
			return false, fmt.Errorf("remember a resolved alert: %w", err)
		}
	}
	// So is a resolution's end of its group's escalations.
	if n.Status == "resolved" && n.GroupKey != "" {
		stopped, err := w.resolveEscalations(ctx, n.GroupKey, nowMS)
		if err != nil {
			return false, err
		}
		res.EscalationsStopped = stopped
	}
	id, err := insertID(ctx, w.notification, nowMS, n.Source, n.GroupKey, n.Status, n.Outcome, n.OnceKey, n.AlertName)
	if err != nil {
		return false, fmt.Errorf("insert notification: %w", err)
	}
	res.ID, res.Outcome = id, n.Outcome
	if n.DeliveryID != "" {
		if _, err := w.deliveryID.ExecContext(ctx, n.DeliveryID, id, ms(n.DeliveryIDExpires)); err != nil {
			return false, fmt.Errorf("record the delivery id: %w", err)
		}
	}
	if n.Escalation.ID != 0 {
		if err := w.escalated(ctx, n.Escalation.ID, id, nowMS); err != nil {
			return false, err
		}
	} else if n.Status == "firing" {
		// The texts as given, before their reply code is written in.
		if res.EscalationsScheduled, err = w.scheduleEscalations(ctx, n, id, now); err != nil {
			return false, err
		}
	}
	if res.ReplyCode, err = w.replyCode(ctx, n, id, now); err != nil {
		return false, err
	}
	n.Messages = outbox.FillReplyCode(n.Messages, res.ReplyCode)
	cancelling := n.CancelHeld && n.Status == "resolved"
	// keep caches the CancelHeld decision per number, so every text of n
	// to one number is judged alike.
	keep := map[string]bool{}
	due := false
	var rows []deliveryRow
	for _, m := range outbox.MergeByText(n.Messages) {
		mid, err := insertID(ctx, w.message, id, m.Receiver, m.Text, m.Segments, m.Summary)
		if err != nil {
			return false, fmt.Errorf("insert message: %w", err)
		}
		if err := w.messageTwoWay(ctx, mid, m); err != nil {
			return false, err
		}
		rows = rows[:0]
		for _, num := range m.Numbers {
			state, code, reason := outbox.StatePending, "", ""
			if cancelling {
				k, ok := keep[num.Number]
				if !ok {
					var cancelled int
					if k, cancelled, err = w.cancelHeld(ctx, n.GroupKey, num.Number, nowMS); err != nil {
						return false, err
					}
					keep[num.Number] = k
					res.Cancelled += cancelled
				}
				if !k {
					state, code, reason = outbox.StateCancelled, outbox.CodeResolvedBeforeSent, resolvedBeforeSent
					res.Cancelled++
				}
			}
			rows = append(rows, deliveryRow{number: num.Number, person: num.Person, state: string(state), code: code, reason: reason,
				unthrottled: num.Unthrottled, critical: num.Critical})
			if state == outbox.StatePending {
				res.Recipients++
				due = true
			}
		}
		if err := w.insertDeliveries(ctx, mid, nowMS, rows); err != nil {
			return false, err
		}
		if err := w.failover(ctx, mid, m); err != nil {
			return false, err
		}
	}
	r.Res = res
	return due, nil
}

// resolvedBeforeSent is the error text of a delivery CancelHeld ended.
const resolvedBeforeSent = "resolved before sent: the group resolved while its firing was held for this number"

// guard evaluates a message's dedup and stale guards and returns why it
// is dropped, or "".
func (w *txInserts) guard(ctx context.Context, n outbox.Notification, m outbox.Message, now time.Time) (string, error) {
	if m.DedupKey != "" && n.DedupWindow > 0 {
		var key string
		var at int64
		switch err := w.dedupGet.QueryRowContext(ctx, m.Receiver, n.GroupKey).Scan(&key, &at); {
		case errors.Is(err, sql.ErrNoRows):
		case err != nil:
			return "", fmt.Errorf("read the dedup key: %w", err)
		case key == m.DedupKey && at > ms(now.Add(-n.DedupWindow)):
			return outbox.ReasonDuplicate, nil
		}
	}
	if n.Status == "firing" && len(m.Alerts) > 0 {
		for _, a := range m.Alerts {
			var one int
			switch err := w.resolvedHas.QueryRowContext(ctx, a.Fingerprint, ms(a.StartsAt)).Scan(&one); {
			case errors.Is(err, sql.ErrNoRows):
				return "", nil
			case err != nil:
				return "", fmt.Errorf("read resolved alerts: %w", err)
			}
		}
		return outbox.ReasonStale, nil
	}
	return "", nil
}

// cancelHeld cancels the held firing deliveries of group to number and
// reports whether the resolution to it must still be sent (the number was
// sent a firing of the group since its last resolution), and how many it
// cancelled.
func (w *txInserts) cancelHeld(ctx context.Context, group, number string, nowMS int64) (keep bool, cancelled int, err error) {
	rows, err := w.heldFiring.QueryContext(ctx, number, group)
	if err != nil {
		return false, 0, fmt.Errorf("find held deliveries: %w", err)
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return false, 0, fmt.Errorf("find held deliveries: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return false, 0, fmt.Errorf("find held deliveries: %w", err)
	}
	rows.Close()
	if len(ids) == 0 {
		return true, 0, nil
	}
	for _, id := range ids {
		if _, err := w.cancel.ExecContext(ctx, outbox.CodeResolvedBeforeSent, resolvedBeforeSent, nowMS, id); err != nil {
			return false, 0, fmt.Errorf("cancel a held delivery: %w", err)
		}
	}
	var last string
	switch err := w.lastSent.QueryRowContext(ctx, number, group).Scan(&last); {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return false, 0, fmt.Errorf("read what the number was sent: %w", err)
	}
	return last == "firing", len(ids), nil
}

func insertID(ctx context.Context, st *sql.Stmt, args ...any) (int64, error) {
	res, err := st.ExecContext(ctx, args...)
	if err != nil {
		return 0, err
	}
	return res.LastInsertId()
}

// inserts are the statements of a group commit.
type inserts struct {
	lastStatus, onceKey, notification, message   *sql.Stmt
	dedupGet, dedupPut, resolvedHas, resolvedPut *sql.Stmt
	heldFiring, cancel, lastSent                 *sql.Stmt
	seenID, deliveryID                           *sql.Stmt
	// deliveries[k] inserts k+1 deliveries of one message.
	deliveries [maxDeliveryRows]*sql.Stmt
}

func (ins *inserts) all() []**sql.Stmt {
	all := []**sql.Stmt{&ins.lastStatus, &ins.onceKey, &ins.notification, &ins.message, &ins.dedupGet,
		&ins.dedupPut, &ins.resolvedHas, &ins.resolvedPut, &ins.heldFiring, &ins.cancel, &ins.lastSent,
		&ins.seenID, &ins.deliveryID}
	for i := range ins.deliveries {
		all = append(all, &ins.deliveries[i])
	}
	return all
}

func prepareInserts(ctx context.Context, db *sql.DB) (*inserts, error) {
	var ins inserts
	queries := []string{
		// The newest notification of the group, whatever its outcome: a
		// filtered resolution keeps the next one quiet too. Rows of one
		// commit share received_at, so the id breaks the tie in the order
		// they were written.
		`SELECT status FROM notifications WHERE group_key = ? ORDER BY received_at DESC, id DESC LIMIT 1`,
		`SELECT id FROM notifications WHERE once_key = ?`,
		`INSERT INTO notifications (received_at, source, group_key, status, outcome, once_key, alertname) VALUES (?, ?, ?, ?, ?, ?, ?)`,
		`INSERT INTO messages (notification_id, receiver, text, segments, summary) VALUES (?, ?, ?, ?, ?)`,
		`SELECT key, at FROM dedup WHERE receiver = ? AND group_key = ?`,
		`INSERT INTO dedup (receiver, group_key, key, at) VALUES (?, ?, ?, ?)
			ON CONFLICT (receiver, group_key) DO UPDATE SET key = excluded.key, at = excluded.at`,
		`SELECT 1 FROM resolved_alerts WHERE fingerprint = ? AND starts_at = ?`,
		`INSERT INTO resolved_alerts (fingerprint, starts_at, seen_at) VALUES (?, ?, ?)
			ON CONFLICT (fingerprint, starts_at) DO UPDATE SET seen_at = excluded.seen_at`,
		`SELECT d.id FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN notifications n ON n.id = m.notification_id
			WHERE d.state = 'held' AND d.number = ? AND n.group_key = ? AND n.status = 'firing' ORDER BY d.id`,
		`UPDATE deliveries SET state = 'cancelled', error_code = ?, error = ?, updated_at = ? WHERE id = ? AND state = 'held'`,
		// What the number was last sent of the group, held and cancelled
		// rows aside; the newest notification first.
		`SELECT n.status FROM deliveries d JOIN messages m ON m.id = d.message_id JOIN notifications n ON n.id = m.notification_id
			WHERE d.number = ? AND n.group_key = ? AND d.state IN ('pending', 'sending', 'accepted', 'bundled')
			ORDER BY n.id DESC LIMIT 1`,
		`SELECT notification_id FROM delivery_ids WHERE id = ? AND expires_at > ?`,
		// An expired record of the id is replaced: the sender may reuse it.
		`INSERT INTO delivery_ids (id, notification_id, expires_at) VALUES (?, ?, ?)
			ON CONFLICT (id) DO UPDATE SET notification_id = excluded.notification_id, expires_at = excluded.expires_at`,
	}
	for k := range ins.deliveries {
		queries = append(queries, deliveriesInsert(k+1))
	}
	for i, st := range ins.all() {
		p, err := db.PrepareContext(ctx, queries[i])
		if err != nil {
			ins.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		*st = p
	}
	return &ins, nil
}

func (ins *inserts) close() {
	for _, st := range ins.all() {
		if *st != nil {
			(*st).Close()
		}
	}
}
