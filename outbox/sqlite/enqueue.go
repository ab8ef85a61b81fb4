package sqlite

import (
	"context"
	"database/sql"
	"fmt"
	"sync/atomic"
	"time"
)

// Notification is one accepted webhook as rendered for sending: one Message
// per receiver it was routed to.
type Notification struct {
	// Source names where it came from: "alertmanager" or a webhook name.
	Source string
	// GroupKey is Alertmanager's group key, or the webhook's equivalent.
	GroupKey string
	// Status is "firing" or "resolved" (free text for other sources).
	Status string
	// DedupKey, when set, identifies repeats of the same notification
	// (group key, status and alert fingerprints). It is stored and indexed
	// for duplicate suppression; the store does not act on it yet.
	DedupKey string
	// Messages are the rendered texts; none means the notification was
	// not routed anywhere, which is still recorded.
	Messages []Message
}

// Message is one rendered text for one receiver and the numbers to send it
// to.
type Message struct {
	Receiver string
	Text     string
	// Segments is the number of SMS segments Text takes.
	Segments int
	// Numbers are E.164 numbers; duplicates are stored once.
	Numbers []string
}

// enqueueReq is one Enqueue call waiting for the writer.
type enqueueReq struct {
	n Notification
	// claim settles a race: the writer takes a request (0→1) or the caller
	// abandons it (0→2), never both, so a request the writer took is always
	// answered and one the caller gave up on is never written.
	claim atomic.Int32
	id    int64
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
// commit. An error means nothing was recorded, and the caller should answer
// 503 so the sender retries; ErrInvalid wraps a notification that can never
// be recorded. A ctx that ends before the writer takes the call abandons it;
// once taken, the call waits for its commit.
func (s *Store) Enqueue(ctx context.Context, n Notification) (int64, error) {
	n, err := clean(n)
	if err != nil {
		return 0, err
	}
	if err := ctx.Err(); err != nil {
		return 0, fmt.Errorf("enqueue: %w", err)
	}
	r := &enqueueReq{n: n, done: make(chan struct{})}
	select {
	case <-s.done:
		return 0, ErrClosed
	default:
	}
	select {
	case s.reqs <- r:
	case <-ctx.Done():
		return 0, fmt.Errorf("enqueue: %w", ctx.Err())
	case <-s.done:
		return 0, ErrClosed
	}
	select {
	case <-r.done:
		return r.id, r.err
	case <-ctx.Done():
		if r.claim.CompareAndSwap(reqWaiting, reqAbandoned) {
			return 0, fmt.Errorf("enqueue: %w", ctx.Err())
		}
	case <-s.done:
		if r.claim.CompareAndSwap(reqWaiting, reqAbandoned) {
			return 0, ErrClosed
		}
	}
	<-r.done
	return r.id, r.err
}

// clean validates n and drops duplicate numbers within each message.
func clean(n Notification) (Notification, error) {
	msgs := make([]Message, 0, len(n.Messages))
	for i, m := range n.Messages {
		if m.Segments < 0 {
			return n, fmt.Errorf("%w: message %d has %d segments", ErrInvalid, i, m.Segments)
		}
		seen := make(map[string]bool, len(m.Numbers))
		nums := make([]string, 0, len(m.Numbers))
		for _, num := range m.Numbers {
			if num == "" {
				return n, fmt.Errorf("%w: message %d has an empty number", ErrInvalid, i)
			}
			if !seen[num] {
				seen[num] = true
				nums = append(nums, num)
			}
		}
		if m.Text == "" && len(nums) > 0 {
			return n, fmt.Errorf("%w: message %d has numbers but no text", ErrInvalid, i)
		}
		m.Numbers = nums
		msgs = append(msgs, m)
	}
	n.Messages = msgs
	return n, nil
}

// writer is the group-commit loop: it takes the first waiting call, every
// call queued behind it up to the batch size, and commits them together.
func (s *Store) writer() {
	defer s.wg.Done()
	batch := make([]*enqueueReq, 0, s.batchSize)
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
			for len(batch) < s.batchSize {
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
// with their ids, or all with the same error.
func (s *Store) commit(batch []*enqueueReq) {
	if s.beforeCommit != nil {
		s.beforeCommit(len(batch))
	}
	start := time.Now()
	// No caller's context governs a shared commit; the busy timeout bounds
	// lock waits, and a stuck disk is not something a deadline can undo.
	ctx := context.Background()
	due, err := s.write(ctx, batch)
	s.metrics.commitDuration.Observe(time.Since(start).Seconds())
	if err != nil {
		s.metrics.commitErrors.Inc()
		s.resetWriter()
		err = fmt.Errorf("commit %d notifications: %w", len(batch), err)
		s.logger.Error("outbox write failed; callers are told to retry", "err", err)
	} else {
		s.metrics.batchSize.Observe(float64(len(batch)))
	}
	// Signal before answering: when Enqueue returns, the wake is pending.
	if err == nil && due {
		s.signal()
	}
	for _, r := range batch {
		if err != nil {
			r.id, r.err = 0, err
		}
		close(r.done)
	}
}

// write inserts the batch and commits; it reports whether any delivery was
// added.
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
	insN := tx.StmtContext(ctx, s.ins.notification)
	insM := tx.StmtContext(ctx, s.ins.message)
	insD := tx.StmtContext(ctx, s.ins.delivery)

	now := ms(s.clock())
	for _, r := range batch {
		n := r.n
		r.id, err = insertID(ctx, insN, now, n.Source, n.GroupKey, n.Status, n.DedupKey)
		if err != nil {
			return false, fmt.Errorf("insert notification: %w", err)
		}
		for _, m := range n.Messages {
			mid, err := insertID(ctx, insM, r.id, m.Receiver, m.Text, m.Segments)
			if err != nil {
				return false, fmt.Errorf("insert message: %w", err)
			}
			for _, num := range m.Numbers {
				if _, err := insD.ExecContext(ctx, mid, num, now, now, now); err != nil {
					return false, fmt.Errorf("insert delivery: %w", err)
				}
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
	notification, message, delivery *sql.Stmt
}

func prepareInserts(ctx context.Context, db *sql.DB) (*inserts, error) {
	var ins inserts
	for _, p := range []struct {
		st  **sql.Stmt
		sql string
	}{
		{&ins.notification, `INSERT INTO notifications (received_at, source, group_key, status, dedup_key) VALUES (?, ?, ?, ?, ?)`},
		{&ins.message, `INSERT INTO messages (notification_id, receiver, text, segments) VALUES (?, ?, ?, ?)`},
		{&ins.delivery, `INSERT INTO deliveries (message_id, number, state, queued_at, next_attempt_at, updated_at) VALUES (?, ?, 'pending', ?, ?, ?)`},
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
	for _, st := range []*sql.Stmt{ins.notification, ins.message, ins.delivery} {
		if st != nil {
			st.Close()
		}
	}
}
