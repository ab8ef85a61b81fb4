package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"slices"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsbridge/smsbridge/outbox"
)

// enqueueReq is one Enqueue call waiting for a writer.
type enqueueReq struct {
	n outbox.Notification
	// claim settles a race: a writer takes a request (0→1) or the caller
	// abandons it (0→2), never both, so a request a writer took is always
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
// deliveries are committed (PostgreSQL has flushed the commit to its WAL).
// Concurrent calls share one commit. RequireFiring is evaluated inside
// it, under a transaction lock on the group key that every replica takes,
// so a resolution and a firing of one group are recorded one after the
// other whichever replicas took them. An error means nothing was
// recorded: answer 503.
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
		return n, fmt.Errorf("%w: outcome %q with %d messages; only an accepted notification is sent", outbox.ErrInvalid, n.Outcome, len(n.Messages))
	}
	msgs := make([]outbox.Message, 0, len(n.Messages))
	for i, m := range n.Messages {
		if m.Segments < 0 {
			return n, fmt.Errorf("%w: message %d has %d segments", outbox.ErrInvalid, i, m.Segments)
		}
		seen := make(map[string]bool, len(m.Numbers))
		nums := make([]string, 0, len(m.Numbers))
		for _, num := range m.Numbers {
			if num == "" {
				return n, fmt.Errorf("%w: message %d has an empty number", outbox.ErrInvalid, i)
			}
			if !seen[num] {
				seen[num] = true
				nums = append(nums, num)
			}
		}
		if m.Text == "" && len(nums) > 0 {
			return n, fmt.Errorf("%w: message %d has numbers but no text", outbox.ErrInvalid, i)
		}
		m.Numbers = nums
		msgs = append(msgs, m)
	}
	n.Messages = msgs
	return n, nil
}

// writer is one group-commit loop: it takes the first waiting call, every
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
	start := time.Now()
	// No caller's context governs a shared commit; queryTimeout bounds it,
	// so an unreachable server answers 503 rather than hanging intake.
	ctx, cancel := context.WithTimeout(context.Background(), queryTimeout)
	due, err := s.write(ctx, batch)
	cancel()
	s.metrics.ObserveCommit(len(batch), time.Since(start), err)
	if err != nil {
		err = fmt.Errorf("commit %d notifications: %w", len(batch), err)
		s.logger.Error("outbox write failed; callers are told to retry", "err", err)
	}
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

// groupLockKey is the advisory-lock key of a group in this backing.
func (s *Store) groupLockKey(group string) int32 {
	h := fnv.New32a()
	h.Write([]byte(s.schema))
	h.Write([]byte{0})
	h.Write([]byte(group))
	return int32(h.Sum32())
}

// write inserts the batch in one transaction of four round trips, however
// many notifications it holds: lock the groups and allocate ids; read the
// groups' last status; insert notifications, messages and deliveries;
// commit. It reports whether any delivery was added.
func (s *Store) write(ctx context.Context, batch []*enqueueReq) (due bool, err error) {
	var (
		groups   []string
		guarded  []string
		messages int
	)
	seen := map[string]bool{}
	for _, r := range batch {
		if g := r.n.GroupKey; g != "" && !seen[g] {
			seen[g] = true
			groups = append(groups, g)
		}
		if r.n.RequireFiring {
			guarded = append(guarded, r.n.GroupKey)
		}
		messages += len(r.n.Messages)
	}
	// Every writer, in every replica, takes the group locks in one order
	// (by key), so two commits never wait on each other in a cycle.
	keys := make([]int32, 0, len(groups))
	for _, g := range groups {
		keys = append(keys, s.groupLockKey(g))
	}
	slices.Sort(keys)
	keys = slices.Compact(keys)

	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return false, fmt.Errorf("begin: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit this is a no-op

	// Locks first, then ids: a notification's id is taken while it holds
	// its group, so within a group ids follow the order of recording.
	b := &pgx.Batch{}
	for _, k := range keys {
		b.Queue(`SELECT pg_advisory_xact_lock($1, $2)`, lockSpaceGroup, k)
	}
	var nids, mids []int64
	b.Queue(`SELECT ARRAY(SELECT nextval('notifications_id_seq') FROM generate_series(1, $1::int)),
		ARRAY(SELECT nextval('messages_id_seq') FROM generate_series(1, $2::int))`, len(batch), messages).
		QueryRow(func(row pgx.Row) error { return row.Scan(&nids, &mids) })
	last := map[string]string{}
	if len(guarded) > 0 {
		b.Queue(`SELECT DISTINCT ON (group_key) group_key, status FROM notifications
			WHERE group_key = ANY($1) ORDER BY group_key, id DESC`, guarded).
			Query(func(rows pgx.Rows) error {
				var g, st string
				_, err := pgx.ForEachRow(rows, []any{&g, &st}, func() error {
					last[g] = st
					return nil
				})
				return err
			})
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, fmt.Errorf("lock groups and allocate ids: %w", err)
	}
	slices.Sort(nids)
	slices.Sort(mids)

	now := s.clock()
	var (
		nSource, nGroup, nStatus, nOutcome []string
		mID, mNote                         []int64
		mReceiver, mText                   []string
		mSegments                          []int32
		dMessage                           []int64
		dNumber                            []string
	)
	mi := 0
	for i, r := range batch {
		n := r.n
		if n.RequireFiring && last[n.GroupKey] != "firing" {
			n.Outcome, n.Messages = outbox.OutcomeFiltered, nil
		}
		if n.GroupKey != "" {
			last[n.GroupKey] = n.Status
		}
		r.res = outbox.Enqueued{ID: nids[i], Outcome: n.Outcome}
		nSource, nGroup, nStatus, nOutcome = append(nSource, n.Source), append(nGroup, n.GroupKey), append(nStatus, n.Status), append(nOutcome, n.Outcome)
		for _, m := range n.Messages {
			mid := mids[mi]
			mi++
			mID, mNote, mReceiver, mText, mSegments = append(mID, mid), append(mNote, nids[i]), append(mReceiver, m.Receiver), append(mText, m.Text), append(mSegments, int32(m.Segments))
			for _, num := range m.Numbers {
				dMessage, dNumber = append(dMessage, mid), append(dNumber, num)
				r.res.Recipients++
				due = true
			}
		}
	}
	b = &pgx.Batch{}
	b.Queue(`INSERT INTO notifications (id, received_at, source, group_key, status, outcome)
		SELECT id, $2, source, group_key, status, outcome
		FROM unnest($1::bigint[], $3::text[], $4::text[], $5::text[], $6::text[]) AS t(id, source, group_key, status, outcome)`,
		nids, now, nSource, nGroup, nStatus, nOutcome)
	if len(mID) > 0 {
		b.Queue(`INSERT INTO messages (id, notification_id, receiver, text, segments)
			SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::text[], $4::text[], $5::int[])`,
			mID, mNote, mReceiver, mText, mSegments)
	}
	if len(dMessage) > 0 {
		b.Queue(`INSERT INTO deliveries (message_id, number, state, queued_at, next_attempt_at, updated_at)
			SELECT message_id, number, 'pending', $3, $3, $3 FROM unnest($1::bigint[], $2::text[]) AS t(message_id, number)`,
			dMessage, dNumber, now)
	}
	if due {
		b.Queue(notify, s.channel, s.owner)
	}
	if err := tx.SendBatch(ctx, b).Close(); err != nil {
		return false, fmt.Errorf("insert: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return false, fmt.Errorf("commit: %w", err)
	}
	return due, nil
}
