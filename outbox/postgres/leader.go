package postgres

import (
	"cmp"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsbridge/smsbridge/outbox"
)

// Leadership tuning.
const (
	// leaderRetry is how often a replica that does not lead tries the
	// dispatch lock. With the server's keepalive settings (sessionParams)
	// a vanished leader's session ends within about ten seconds, so a
	// follower takes over within about eleven.
	leaderRetry = time.Second
	// leaderCheck is how often the leader checks that its lock session is
	// alive and still holds the lock, and records that in the heartbeat
	// row. A check that has not answered leaderLease (handover.go) after
	// the start of the last one that succeeded ends the term, so a leader
	// cut off from the database stops within 6 s, before the server ends
	// its session and frees the lock for another replica (about 10 s). Not
	// shorter: a leader starved of CPU for a moment should not hand over.
	leaderCheck = time.Second
	// leaderCheckTimeout bounds one try of the dispatch lock or lease row
	// by a replica that does not lead.
	leaderCheckTimeout = 5 * time.Second
)

// Lead blocks until this store holds the dispatch lock of its backing (a
// session advisory lock, taken with pg_try_advisory_lock on a connection
// of its own), or until ctx ends or the store closes. Once it holds the
// lock, it returns to the queue every delivery still leased (by earlier
// leaders, which are gone: their sessions ended with the lock) and
// returns the term. While the term lasts, the store checks every second
// that the lock's session is alive and holds the lock, recording a
// heartbeat, and Lease checks it too, in its transaction; when either
// finds it gone, or no check has succeeded for leaderLease, the term is
// lost (Lost is closed) and Lease fails with outbox.ErrNotLeader. The
// term's StartDelay comes from the heartbeat the earlier leader left
// (handoverWait).
func (s *Store) Lead(ctx context.Context) (outbox.Term, error) {
	if !s.listen {
		return s.leadByRow(ctx)
	}
	var conn *pgx.Conn
	defer func() {
		if conn != nil {
			conn.Close(context.Background())
		}
	}()
	warned := false
	for {
		if err := s.closed(); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		var err error
		if conn == nil {
			cctx, cancel := context.WithTimeout(ctx, connectTimeout)
			conn, err = pgx.ConnectConfig(cctx, s.connCfg)
			cancel()
			if err != nil {
				conn = nil
			}
		}
		if conn != nil {
			var got bool
			qctx, cancel := context.WithTimeout(ctx, leaderCheckTimeout)
			err = conn.QueryRow(qctx, `SELECT pg_try_advisory_lock($1, $2)`, lockSpaceLeader, s.key).Scan(&got)
			cancel()
			switch {
			case err != nil:
				conn.Close(context.Background())
				conn = nil
			case got:
				t := s.newTerm(false)
				t.conn, t.pid = conn, conn.PgConn().PID()
				conn = nil
				if err := s.takeOver(ctx, t); err != nil {
					t.Resign()
					if ctx.Err() != nil {
						return nil, ctx.Err()
					}
					s.logger.Warn("took the dispatch lock but could not take over; trying again", "err", err)
					break
				}
				return t, nil
			}
		}
		if err != nil && !warned && ctx.Err() == nil {
			s.logger.Warn("cannot try the dispatch lock; retrying", "err", err)
			warned = true
		}
		if err := s.retryWait(ctx); err != nil {
			return nil, err
		}
	}
}

// takeOver returns every leased delivery to the queue, reads the earlier
// leader's heartbeat and writes this term's, and starts the term's watch.
// Only the leader leases, and no earlier leader still holds a session, so
// every lease is an earlier leader's: waiting for its deadline would only
// delay the pages. A leader that lost its session but still runs may be
// finishing requests it started; those batches can go out twice
// (at-least-once), and its late results are ignored.
func (s *Store) takeOver(ctx context.Context, t *term) (err error) {
	ctx, end := s.op(ctx, "take_over")
	defer func() { end(err) }()
	now := s.clock()
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	defer tx.Rollback(context.Background()) //nolint:errcheck // after Commit this is a no-op
	// What Admit counted for the rows goes back, as for any lease that
	// returns to the queue unsent.
	rows, err := tx.Query(ctx, `WITH leased AS (
			SELECT id, lease_owner, charged, charged_day FROM deliveries WHERE state = 'sending' ORDER BY id FOR UPDATE
		)
		UPDATE deliveries d SET state = 'pending', lease = '', lease_until = NULL, `+unadmit+`, updated_at = $1
		FROM leased WHERE d.id = leased.id RETURNING leased.lease_owner, leased.charged, leased.charged_day`, now)
	if err != nil {
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	owners := map[string]int{}
	total := 0
	var owner string
	var r released
	var given []released
	if _, err := pgx.ForEachRow(rows, []any{&owner, &r.charged, &r.day}, func() error {
		owners[cmp.Or(owner, "unknown")]++
		total++
		given = append(given, r)
		return nil
	}); err != nil {
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	if err := giveBack(ctx, tx, sumCharged(given), now); err != nil {
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	prev, dbNow, err := t.beatFirst(ctx, tx)
	if err != nil {
		return fmt.Errorf("record the dispatch heartbeat: %w", err)
	}
	if err := tx.Commit(ctx); err != nil {
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	if total > 0 {
		names := make([]string, 0, len(owners))
		for o := range owners {
			names = append(names, o)
		}
		slices.Sort(names)
		s.logger.Warn("returned deliveries leased by an earlier leader to the queue; they will be sent again (at-least-once)",
			"deliveries", total, "owners", strings.Join(names, ","))
	}
	if err := s.releaseEscalations(ctx); err != nil {
		return err
	}
	t.startDelay = handoverWait(prev, dbNow)
	if t.startDelay > 0 {
		s.logger.Info("waiting before the first request of this term, so the provider never counts two leaders' requests in one second",
			"wait", t.startDelay.Round(time.Millisecond), "previous_leader", describePrevious(prev))
	}
	s.term.Store(t)
	go t.watch()
	s.signal()
	return nil
}

// term is one stretch of leadership: the lock's connection (or, behind a
// pooler, the lease row) and its watch.
type term struct {
	s *Store
	// row is true for a term held through the lease row (NoListen).
	row  bool
	pid  uint32
	lost chan struct{}
	stop chan struct{}
	// token names the term in the heartbeat row.
	token string
	// startDelay is the term's StartDelay, set at takeover.
	startDelay time.Duration
	// lastOK is when the latest successful heartbeat started (this
	// process's monotonic clock); the term ends leaderLease after it.
	// Only the watch uses it once the term has begun.
	lastOK time.Time

	mu       sync.Mutex // guards conn against the watch and Resign at once
	conn     *pgx.Conn
	lostMu   sync.Once
	stopMu   sync.Once
	resigned bool // the lease row was given up (guarded by mu)
}

// newTerm starts a term; its first heartbeat is written at takeover.
func (s *Store) newTerm(row bool) *term {
	return &term{s: s, row: row, lost: make(chan struct{}), stop: make(chan struct{}), token: rand.Text(), lastOK: time.Now()}
}

// Lost is closed when the term ended: the lock's session died or stopped
// answering, Lease found the lock gone, or Resign was called.
func (t *term) Lost() <-chan struct{} { return t.lost }

// StartDelay is how long the term waits before its first request
// (handoverWait).
func (t *term) StartDelay() time.Duration { return t.startDelay }

func (t *term) isLost() bool {
	select {
	case <-t.lost:
		return true
	default:
		return false
	}
}

// lose ends the term for why, once.
func (t *term) lose(why string) {
	t.lostMu.Do(func() {
		close(t.lost)
		if why != "" {
			t.s.logger.Error("lost the dispatch lock; this replica stops dispatching", "reason", why)
		}
	})
}

// Resign ends the term and closes the lock's connection, which frees the
// lock at once for another replica. The dispatcher calls it once every
// request of the term has ended: when the term was not lost before, it
// records a clean end in the heartbeat row first, so the next leader need
// not wait long.
func (t *term) Resign() { t.resign(!t.isLost()) }

// resign is Resign; clean says no request of the term starts or is on the
// wire any more, so now is the term's end.
func (t *term) resign(clean bool) {
	t.stopMu.Do(func() { close(t.stop) })
	t.lose("")
	t.mu.Lock()
	if t.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if clean {
			_, _ = t.conn.Exec(ctx, endByLock, lockSpaceLeader, t.s.key, int64(t.pid), t.token)
		}
		t.conn.Close(ctx)
		cancel()
		t.conn = nil
	}
	if t.row && !t.resigned {
		t.resigned = true
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if clean {
			_, _ = t.s.pool.Exec(ctx, endByRow, t.s.owner, t.token)
		} else {
			_, _ = t.s.pool.Exec(ctx, `DELETE FROM dispatch_leader WHERE name = 'dispatch' AND owner = $1`, t.s.owner)
		}
		cancel()
	}
	t.mu.Unlock()
	t.s.term.CompareAndSwap(t, nil)
}

// watch checks the lock every leaderCheck until the term ends.
func (t *term) watch() {
	tick := time.NewTicker(leaderCheck)
	defer tick.Stop()
	for {
		select {
		case <-t.stop:
			return
		case <-t.lost:
			select {
			case <-t.stop:
				// Resign ended the term (it closes stop first): it
				// closes the connection itself, recording a clean end.
				return
			default:
			}
			t.resign(false)
			return
		case <-tick.C:
			if why := t.check(); why != "" {
				t.lose(why)
				t.resign(false)
				return
			}
		}
	}
}

// check asks the lock's own session whether it still holds the lock and
// records a heartbeat if it does (behind a pooler: renews the lease row and
// records a heartbeat), and returns why not ("" when it does). A check is
// bounded by leaderLease after the start of the last that succeeded.
func (t *term) check() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	start := time.Now()
	ctx, cancel := context.WithDeadline(context.Background(), t.lastOK.Add(leaderLease))
	defer cancel()
	if t.row {
		tag, err := t.s.pool.Exec(ctx, renewRow, t.s.owner, rowTTL.Seconds(), t.token)
		t.s.metrics.ObserveQuery("leader_check", time.Since(start), err)
		switch {
		case err != nil:
			return "cannot renew the dispatch lease: " + err.Error()
		case tag.RowsAffected() != 1:
			return "another replica holds the dispatch lease"
		}
		t.lastOK = start
		return ""
	}
	if t.conn == nil {
		return "the lock's connection is closed"
	}
	tag, err := t.conn.Exec(ctx, beatByLock, lockSpaceLeader, t.s.key, int64(t.pid), t.token)
	t.s.metrics.ObserveQuery("leader_check", time.Since(start), err)
	switch {
	case err != nil:
		return "the lock's session does not answer: " + err.Error()
	case tag.RowsAffected() != 1:
		return "the lock's session no longer holds the lock"
	}
	t.lastOK = start
	return ""
}

// beatFirst reads the heartbeat row in the takeover's transaction, with
// the server's clock, and makes it this term's.
func (t *term) beatFirst(ctx context.Context, tx pgx.Tx) (previousLeader, time.Time, error) {
	var (
		p           previousLeader
		beat, ended *time.Time
		dbNow       time.Time
	)
	err := tx.QueryRow(ctx, `SELECT beat_at, ended_at, clock_timestamp() FROM dispatch_heartbeat WHERE name = 'dispatch' FOR UPDATE`).
		Scan(&beat, &ended, &dbNow)
	switch {
	case errors.Is(err, pgx.ErrNoRows):
	case err != nil:
		return p, dbNow, err
	default:
		p.found = true
		if beat != nil {
			p.beat = *beat
		}
		if ended != nil {
			p.ended = *ended
		}
	}
	_, err = tx.Exec(ctx, `INSERT INTO dispatch_heartbeat (name, term, owner, beat_at) VALUES ('dispatch', $1, $2, clock_timestamp())
		ON CONFLICT (name) DO UPDATE SET term = excluded.term, owner = excluded.owner, beat_at = excluded.beat_at, ended_at = NULL`,
		t.token, t.s.owner)
	return p, dbNow, err
}

// describePrevious says what the heartbeat row told, for the log.
func describePrevious(p previousLeader) string {
	switch {
	case !p.found:
		return "none"
	case !p.ended.IsZero():
		return "resigned at " + p.ended.UTC().Format(time.RFC3339Nano)
	case !p.beat.IsZero():
		return "last heartbeat at " + p.beat.UTC().Format(time.RFC3339Nano)
	}
	return "unknown (a release without heartbeats)"
}

// The heartbeat statements. Each writes the server's clock, and only for
// this term while it holds the lock (or the lease row).
const (
	// beatByLock runs on the lock's own session: $1..$3 as lockHeld, $4
	// the term's token.
	beatByLock = `UPDATE dispatch_heartbeat SET beat_at = clock_timestamp()
		WHERE name = 'dispatch' AND term = $4 AND (` + lockHeld + `)`
	// endByLock records a clean end.
	endByLock = `UPDATE dispatch_heartbeat SET beat_at = clock_timestamp(), ended_at = clock_timestamp()
		WHERE name = 'dispatch' AND term = $4 AND (` + lockHeld + `)`
	// renewRow renews the lease row ($1 owner, $2 its time to live in
	// seconds) and records a heartbeat for the term $3 if it did.
	renewRow = `WITH claim AS (` + claimRowSQL + `)
		UPDATE dispatch_heartbeat SET beat_at = clock_timestamp()
		WHERE name = 'dispatch' AND term = $3 AND EXISTS (SELECT 1 FROM claim)`
	// endByRow records a clean end ($1 owner, $2 term) and gives the
	// lease row up.
	endByRow = `WITH ended AS (
			UPDATE dispatch_heartbeat SET beat_at = clock_timestamp(), ended_at = clock_timestamp()
			WHERE name = 'dispatch' AND term = $2
			AND EXISTS (SELECT 1 FROM dispatch_leader WHERE name = 'dispatch' AND owner = $1)
		)
		DELETE FROM dispatch_leader WHERE name = 'dispatch' AND owner = $1`
)

// Leadership through the lease row (NoListen).
const (
	// rowTTL is how long a lease row lasts without renewal. The leader
	// renews it every leaderCheck and stops when a renewal fails, or none
	// succeeded for leaderLease, before the row expires and a follower can
	// take it: takeover within about eleven seconds of a leader's death.
	rowTTL = 10 * time.Second
)

// leadByRow is Lead through the lease row: a follower claims the row once
// it has expired.
func (s *Store) leadByRow(ctx context.Context) (outbox.Term, error) {
	warned := false
	for {
		if err := s.closed(); err != nil {
			return nil, err
		}
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		qctx, cancel := context.WithTimeout(ctx, leaderCheckTimeout)
		got, err := s.claimRow(qctx)
		cancel()
		if got {
			t := s.newTerm(true)
			if err := s.takeOver(ctx, t); err != nil {
				t.Resign()
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				s.logger.Warn("took the dispatch lease but could not take over; trying again", "err", err)
			} else {
				return t, nil
			}
		}
		if err != nil && !warned && ctx.Err() == nil {
			s.logger.Warn("cannot claim the dispatch lease; retrying", "err", err)
			warned = true
		}
		if err := s.retryWait(ctx); err != nil {
			return nil, err
		}
	}
}

// claimRow takes or renews the lease row for this store, and reports
// whether this store holds it now.
func (s *Store) claimRow(ctx context.Context) (bool, error) {
	rows, err := s.pool.Query(ctx, claimRowSQL, s.owner, rowTTL.Seconds())
	if err != nil {
		return false, err
	}
	n := 0
	for rows.Next() {
		n++
	}
	rows.Close()
	return n == 1, rows.Err()
}

// claimRowSQL takes or renews the lease row for $1 for $2 seconds and
// returns its owner if it did.
const claimRowSQL = `INSERT INTO dispatch_leader (name, owner, expires_at)
		VALUES ('dispatch', $1, clock_timestamp() + make_interval(secs => $2))
		ON CONFLICT (name) DO UPDATE SET owner = excluded.owner, expires_at = excluded.expires_at
		WHERE dispatch_leader.owner = excluded.owner OR dispatch_leader.expires_at < clock_timestamp()
		RETURNING owner`

// rowHeld reports whether owner holds an unexpired lease row.
const rowHeld = `SELECT EXISTS (SELECT 1 FROM dispatch_leader WHERE name = 'dispatch' AND owner = $1 AND expires_at > clock_timestamp())`

// retryWait waits leaderRetry before the next try for leadership; its
// error says why not to try again (ctx ended, or the store closed).
func (s *Store) retryWait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return outbox.ErrClosed
	case <-time.After(leaderRetry):
		return nil
	}
}
