package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/smsbridge/smsbridge/internal/plural"
	"github.com/smsbridge/smsbridge/outbox"
)

// enqueueReq is one Enqueue call waiting for the writer.
type enqueueReq struct {
	n outbox.Notification
	// claim settles a race: the writer takes a request (0→1) or the caller
	// abandons it (0→2), never both, so a request the writer took is always
	// answered and one the caller gave up on is never written.
	claim atomic.Int32
	res   outbox.Enqueued
	err   error
	done  chan struct{}
}

const (
	reqWaiting int32 = iota
	reqTaken
	reqAbandoned
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
	n, err := clean(n)
	if err != nil {
		return outbox.Enqueued{}, err
	}
	if err := ctx.Err(); err != nil {
		return outbox.Enqueued{}, fmt.Errorf("enqueue: %w", err)
	}
	r := &enqueueReq{n: n, done: make(chan struct{})}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return outbox.Enqueued{}, fmt.Errorf("enqueue: %w", ctx.Err())
	case <-s.done:
		return outbox.Enqueued{}, outbox.ErrClosed
	}
	select {
	case <-r.done:
		return r.res, r.err
	case <-ctx.Done():
		if r.claim.CompareAndSwap(reqWaiting, reqAbandoned) {
			return outbox.Enqueued{}, fmt.Errorf("enqueue: %w", ctx.Err())
		}
	case <-s.done:
		if r.claim.CompareAndSwap(reqWaiting, reqAbandoned) {
			return outbox.Enqueued{}, outbox.ErrClosed
		}
	}
	<-r.done
	return r.res, r.err
}

// clean validates n, settles its outcome and drops duplicate numbers within
// each message.
func clean(n outbox.Notification) (outbox.Notification, error) {
	if n.RequireFiring && n.GroupKey == "" {
		return n, fmt.Errorf("%w: the resolved rule needs a group key", outbox.ErrInvalid)
	}
	switch {
	case n.Outcome == "" && len(n.Messages) == 0:
		n.Outcome = outbox.OutcomeUnrouted
	case n.Outcome == "":
		n.Outcome = outbox.OutcomeAccepted
	case n.Outcome != outbox.OutcomeAccepted && len(n.Messages) > 0:
		return n, fmt.Errorf("%w: outcome %q with %s; only an accepted notification is sent", outbox.ErrInvalid, n.Outcome, plural.Count(len(n.Messages), "message", "messages"))
	}
	msgs := make([]outbox.Message, 0, len(n.Messages))
	for i, m := range n.Messages {
		if m.Segments < 0 {
			return n, fmt.Errorf("%w: message %d has %d segments", outbox.ErrInvalid, i, m.Segments)
		}
		if len(m.People) > 0 && len(m.People) != len(m.Numbers) {
			return n, fmt.Errorf("%w: message %d has %d people for %d numbers", outbox.ErrInvalid, i, len(m.People), len(m.Numbers))
		}
		seen := make(map[string]bool, len(m.Numbers))
		nums := make([]string, 0, len(m.Numbers))
		people := make([]string, 0, len(m.Numbers))
		for k, num := range m.Numbers {
			if num == "" {
				return n, fmt.Errorf("%w: message %d has an empty number", outbox.ErrInvalid, i)
			}
			if !seen[num] {
				seen[num] = true
				nums = append(nums, num)
				person := ""
				if len(m.People) > 0 {
					person = m.People[k]
				}
				people = append(people, person)
			}
		}
		if m.Text == "" && len(nums) > 0 {
			return n, fmt.Errorf("%w: message %d has numbers but no text", outbox.ErrInvalid, i)
		}
		m.Numbers, m.People = nums, people
		msgs = append(msgs, m)
	}
	n.Messages = msgs
	return n, nil
}

// writer is the group-commit loop: it takes the first waiting call, every
// call queued behind it up to the batch size, and commits them together.
func (s *Store) writer() {
	defer s.wg.Done()
	batch := make([]*enqueueReq, 0, maxBatch)
	for {
		select {
		case <-s.done:
			return
		case r := <-s.reqs:
			batch = batch[:0]
			if r.claim.CompareAndSwap(reqWaiting, reqTaken) {
				batch = append(batch, r)
			}
		drain:
			for len(batch) < maxBatch {
				select {
				case r := <-s.reqs:
					if r.claim.CompareAndSwap(reqWaiting, reqTaken) {
						batch = append(batch, r)
					}
				default:
					break drain
				}
			}
			if len(batch) > 0 {
				s.commit(batch)
			}
		}
	}
}

// commit writes batch in one transaction and answers every call in it: all
// with what was recorded, or all with the same error.
func (s *Store) commit(batch []*enqueueReq) {
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
		err = fmt.Errorf("commit %s: %w", plural.Count(len(batch), "notification", "notifications"), err)
		s.logger.Error("outbox write failed; callers are told to retry", "err", err)
	}
	// Signal before answering: when Enqueue returns, the wake is pending.
	if err == nil && due {
		s.signal()
	}
	for _, r := range batch {
		if err != nil {
			r.res, r.err = outbox.Enqueued{}, err
		}
		close(r.done)
	}
}

// write inserts the batch and commits; it reports whether any delivery was
// added. The calls are written in order, each guard reading what the
// calls before it wrote.
func (s *Store) write(ctx context.Context, batch []*enqueueReq) (due bool, err error) {
	// Before BeginTx: the transaction holds the only writer connection.
	if s.ins == nil {
		if s.ins, err = prepareInserts(ctx, s.wdb); err != nil {
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
	lastStatus := tx.StmtContext(ctx, s.ins.lastStatus)
	onceKey := tx.StmtContext(ctx, s.ins.onceKey)
	insN := tx.StmtContext(ctx, s.ins.notification)
	insM := tx.StmtContext(ctx, s.ins.message)
	insD := tx.StmtContext(ctx, s.ins.delivery)

	now := ms(s.clock())
	for _, r := range batch {
		n := r.n
		if n.OnceKey != "" {
			var prior int64
			switch err := onceKey.QueryRowContext(ctx, n.OnceKey).Scan(&prior); {
			case err == nil:
				r.res = outbox.Enqueued{ID: prior, Outcome: outbox.OutcomeDuplicate}
				continue
			case !errors.Is(err, sql.ErrNoRows):
				return false, fmt.Errorf("read the once key: %w", err)
			}
		}
		if n.RequireFiring {
			var last string
			switch err := lastStatus.QueryRowContext(ctx, n.GroupKey).Scan(&last); {
			case errors.Is(err, sql.ErrNoRows):
			case err != nil:
				return false, fmt.Errorf("read the group's last status: %w", err)
			}
			if last != "firing" {
				n.Outcome, n.Messages = outbox.OutcomeFiltered, nil
			}
		}
		id, err := insertID(ctx, insN, now, n.Source, n.GroupKey, n.Status, n.Outcome, n.OnceKey, n.AlertName)
		if err != nil {
			return false, fmt.Errorf("insert notification: %w", err)
		}
		r.res = outbox.Enqueued{ID: id, Outcome: n.Outcome}
		for _, m := range n.Messages {
			mid, err := insertID(ctx, insM, id, m.Receiver, m.Text, m.Segments)
			if err != nil {
				return false, fmt.Errorf("insert message: %w", err)
			}
			for k, num := range m.Numbers {
				if _, err := insD.ExecContext(ctx, mid, num, now, now, now, m.People[k]); err != nil {
					return false, fmt.Errorf("insert delivery: %w", err)
				}
				r.res.Recipients++
				due = true
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return due, nil
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
	lastStatus, onceKey, notification, message, delivery *sql.Stmt
}

func prepareInserts(ctx context.Context, db *sql.DB) (*inserts, error) {
	var ins inserts
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		// The newest notification of the group, whatever its outcome: a
		// filtered resolution keeps the next one quiet too. Rows of one
		// commit share received_at, so the id breaks the tie in the order
		// they were written.
		{&ins.lastStatus, `SELECT status FROM notifications WHERE group_key = ? ORDER BY received_at DESC, id DESC LIMIT 1`},
		{&ins.onceKey, `SELECT id FROM notifications WHERE once_key = ?`},
		{&ins.notification, `INSERT INTO notifications (received_at, source, group_key, status, outcome, once_key, alertname) VALUES (?, ?, ?, ?, ?, ?, ?)`},
		{&ins.message, `INSERT INTO messages (notification_id, receiver, text, segments) VALUES (?, ?, ?, ?)`},
		{&ins.delivery, `INSERT INTO deliveries (message_id, number, state, queued_at, next_attempt_at, updated_at, person) VALUES (?, ?, 'pending', ?, ?, ?, ?)`},
	} {
		st, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			ins.close()
			return nil, fmt.Errorf("prepare: %w", err)
		}
		*p.st = st
	}
	return &ins, nil
}

func (ins *inserts) close() {
	for _, st := range []*sql.Stmt{ins.lastStatus, ins.onceKey, ins.notification, ins.message, ins.delivery} {
		if st != nil {
			st.Close()
		}
	}
}
