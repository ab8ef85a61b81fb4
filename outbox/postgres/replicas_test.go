//go:build postgres

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/smsbridge/smsbridge/internal/pgtest"
	"github.com/smsbridge/smsbridge/outbox"
)

// TestGuardsAcrossReplicas races the guards that must hold for every
// replica at once, each across three stores on one schema: one delivery
// id, one once key and one duplicate key posted many times at once are
// each recorded exactly once, and every other call is its duplicate.
func TestGuardsAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
	stores := []*Store{openT(t, dsn, schema, Options{}), openT(t, dsn, schema, Options{}), openT(t, dsn, schema, Options{})}
	exp := time.Now().Add(time.Hour)
	withID := note("replayed", "+1")
	withID.DeliveryID, withID.DeliveryIDExpires = "am:race", exp
	once := note("notice", "+2")
	once.GroupKey, once.OnceKey = "handoff:db", "handoff/db/race"
	dedup := note("dup", "+3")
	dedup.GroupKey, dedup.DedupWindow, dedup.Messages[0].DedupKey = "am:group", time.Minute, "key"
	for _, tc := range []struct {
		name string
		n    outbox.Notification
	}{{"delivery id", withID}, {"once key", once}, {"dedup key", dedup}} {
		const callers = 24
		got := make([]outbox.Enqueued, callers)
		errs := make([]error, callers)
		start := make(chan struct{})
		var wg sync.WaitGroup
		for i := range callers {
			wg.Go(func() {
				<-start
				got[i], errs[i] = stores[i%len(stores)].Enqueue(context.Background(), tc.n)
			})
		}
		close(start)
		wg.Wait()
		accepted := 0
		for i := range callers {
			switch {
			case errs[i] != nil:
				t.Errorf("%s: caller %d: %v", tc.name, i, errs[i])
			case got[i].Outcome == outbox.OutcomeAccepted:
				accepted++
			case got[i].Outcome != outbox.OutcomeDuplicate:
				t.Errorf("%s: caller %d: %+v", tc.name, i, got[i])
			}
		}
		if accepted != 1 {
			t.Errorf("%s: accepted %d times across three replicas, want once", tc.name, accepted)
		}
	}
	if st, err := stores[0].Stats(context.Background()); err != nil || st.Pending != 3 {
		t.Errorf("pending %+v %v, want one delivery of each", st, err)
	}
}

// TestLocksAcrossReplicas runs everything that takes locks at once, on
// three stores sharing one schema, as busy replicas (and a leader handing
// over) would: intake with every guard, resolutions cancelling held
// firings of overlapping groups and numbers, admissions under a throttle
// and a budget, results of every kind, releases, max-age failures and
// prunes. None of it may fail (a deadlock would, after a second), and
// afterwards the budget's count is what the rows were charged, no number
// has more admissions than its bucket, and only rows in flight or
// accepted count.
func TestLocksAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
	stores := []*Store{openT(t, dsn, schema, Options{}), openT(t, dsn, schema, Options{}), openT(t, dsn, schema, Options{})}
	ctx := context.Background()
	numbers := []string{"+27830000001", "+27830000002", "+27830000003", "+27830000004", "+27830000005"}
	const bucket = 2
	limits := outbox.Limits{Throttle: []outbox.Bucket{{Count: bucket, Per: time.Hour}}, Budget: outbox.Budget{Day: "d", Limit: 12}}
	digest := func(held []outbox.Record) (outbox.Message, error) {
		return outbox.Message{Receiver: held[0].Receiver, Text: fmt.Sprintf("%d held", len(held)), Segments: 1}, nil
	}
	var (
		mu   sync.Mutex
		errs []error
	)
	fail := func(what string, err error) {
		if err != nil && !errors.Is(err, outbox.ErrNotLeader) {
			mu.Lock()
			errs = append(errs, fmt.Errorf("%s: %w", what, err))
			mu.Unlock()
		}
	}
	start := make(chan struct{})
	var wg sync.WaitGroup
	for w, s := range stores {
		// Intake: firings and resolutions of four groups to overlapping
		// numbers, with duplicate keys, alerts, delivery ids that repeat
		// across replicas, and CancelHeld.
		wg.Go(func() {
			<-start
			for i := range 120 {
				g := fmt.Sprintf("g%d", (i+w)%4)
				status := "firing"
				if i%3 == 2 {
					status = "resolved"
				}
				ref := outbox.AlertRef{Fingerprint: fmt.Sprintf("fp%d", i%7), StartsAt: time.Unix(1700000000, 0)}
				m := outbox.Message{Receiver: "ops", Text: fmt.Sprintf("%s %s %d", g, status, i%5), Segments: 1 + i%2,
					Numbers: []string{numbers[i%5], numbers[(i+w+1)%5]}, DedupKey: fmt.Sprintf("k%d", i%6),
					Alerts: []outbox.AlertRef{ref}}
				n := outbox.Notification{Source: "am", GroupKey: g, Status: status, DedupWindow: time.Minute,
					CancelHeld: status == "resolved", DeliveryID: fmt.Sprintf("am:%d", i), DeliveryIDExpires: time.Now().Add(time.Hour),
					Messages: []outbox.Message{m}}
				if status == "resolved" {
					n.Resolved = []outbox.AlertRef{ref}
				}
				_, err := s.Enqueue(ctx, n)
				fail("enqueue", err)
			}
		})
		// Dispatching: lease, admit, and every kind of result.
		wg.Go(func() {
			<-start
			for i := range 300 {
				bs, err := s.Lease(ctx, time.Now(), 2, 3, time.Minute)
				fail("lease", err)
				for _, b := range bs {
					adm, err := s.Admit(ctx, time.Now(), b.Deliveries, limits)
					fail("admit", err)
					var outs []outbox.Outcome
					for k, d := range adm.Send {
						switch (i + k) % 4 {
						case 0, 1:
							outs = append(outs, outbox.Accepted(d, "primary", fmt.Sprintf("p%d", d.ID)))
						case 2:
							outs = append(outs, outbox.Failed(d, "primary", "E101", "InvalidNumber"))
						default:
							outs = append(outs, outbox.Rescheduled(d, "primary", time.Now(), "5xx", "server error"))
						}
					}
					fail("complete", s.Complete(ctx, outs))
				}
				if i%10 == w {
					_, err := s.Release(ctx, time.Now().Add(2*time.Hour), digest)
					fail("release", err)
				}
				if i%25 == w {
					_, err := s.FailExpired(ctx, time.Now(), time.Hour)
					fail("fail expired", err)
					_, err = s.Prune(ctx, time.Hour)
					fail("prune", err)
				}
			}
		})
	}
	close(start)
	wg.Wait()
	for _, err := range errs {
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && pgErr.Code == "40P01" {
			t.Errorf("deadlock: %v", err)
			continue
		}
		t.Error(err)
	}

	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `SET search_path = `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	var used, charged int
	if err := conn.QueryRow(ctx, `SELECT (SELECT coalesce(sum(used), 0) FROM budget WHERE day = 'd'),
		(SELECT coalesce(sum(charged), 0) FROM deliveries WHERE charged_day = 'd')`).Scan(&used, &charged); err != nil {
		t.Fatal(err)
	}
	if used != charged || used > limits.Budget.Limit {
		t.Errorf("the budget counts %d segments, the rows were charged %d (limit %d)", used, charged, limits.Budget.Limit)
	}
	rows, err := conn.Query(ctx, `SELECT number, count(*) FROM deliveries WHERE admitted_at IS NOT NULL GROUP BY number HAVING count(*) > $1`, bucket)
	if err != nil {
		t.Fatal(err)
	}
	var over []string
	var num string
	var count int
	if _, err := pgx.ForEachRow(rows, []any{&num, &count}, func() error {
		over = append(over, fmt.Sprintf("%s: %d", num, count))
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(over) > 0 {
		t.Errorf("numbers admitted past their bucket of %d within the hour: %v", bucket, over)
	}
	var stray int
	if err := conn.QueryRow(ctx, `SELECT count(*) FROM deliveries
		WHERE state NOT IN ('sending', 'accepted') AND (admitted_at IS NOT NULL OR charged <> 0 OR charged_day <> '')`).Scan(&stray); err != nil {
		t.Fatal(err)
	}
	if stray != 0 {
		t.Errorf("%d rows neither in flight nor accepted still count in a window or the budget", stray)
	}
	var states []string
	rows, _ = conn.Query(ctx, `SELECT state || ' ' || error_code || ' ' || count(*) FROM deliveries GROUP BY state, error_code ORDER BY 1`)
	if states, err = pgx.CollectRows(rows, pgx.RowTo[string]); err != nil {
		t.Fatal(err)
	}
	t.Logf("deliveries by state: %v", states)
}

// TestMigrateFromVersion2: a database made by the first release of this
// driver (version 2) is brought up to date in place: its rows are kept,
// and the new states and columns work on them.
func TestMigrateFromVersion2(t *testing.T) {
	t.Parallel()
	dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()+`; SET search_path = `+pgx.Identifier{schema}.Sanitize()); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		t.Fatal(err)
	}
	for v := range 2 {
		if _, err := conn.Exec(ctx, migrations[v]); err != nil {
			t.Fatalf("version %d: %v", v+1, err)
		}
		if _, err := conn.Exec(ctx, `INSERT INTO schema_migrations (version) VALUES ($1)`, v+1); err != nil {
			t.Fatal(err)
		}
	}
	now := time.Now()
	for _, q := range []string{
		`INSERT INTO notifications (id, received_at, source, group_key, status) VALUES (1, $1, 'am', 'g', 'firing')`,
		`INSERT INTO messages (id, notification_id, receiver, text, segments) VALUES (1, 1, 'ops', 'old text', 1)`,
		`INSERT INTO deliveries (message_id, number, state, queued_at, next_attempt_at, updated_at) VALUES
			(1, '+27830000001', 'pending', $1, $1, $1), (1, '+27830000002', 'accepted', $1, $1, $1)`,
	} {
		var args []any
		if strings.Contains(q, "$1") {
			args = append(args, now)
		}
		if _, err := conn.Exec(ctx, q, args...); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := conn.Exec(ctx, `SELECT setval('notifications_id_seq', 1), setval('messages_id_seq', 1)`); err != nil {
		t.Fatal(err)
	}

	s := openT(t, dsn, schema, Options{})
	rs, err := s.Deliveries(ctx, outbox.Filter{})
	if err != nil || len(rs) != 2 {
		t.Fatalf("after the migration: %+v %v", rs, err)
	}
	for _, r := range rs {
		if r.Text != "old text" || r.Person != "" || r.AlertName != "" || r.Critical {
			t.Errorf("migrated row %+v", r)
		}
	}
	// The old pending row is throttled like a new one: held, then
	// released.
	limits := outbox.Limits{Throttle: []outbox.Bucket{{Count: 1, Per: time.Hour}}}
	if _, err := s.Enqueue(ctx, note("new", "+27830000001")); err != nil {
		t.Fatal(err)
	}
	bs, err := s.Lease(ctx, time.Now(), 10, 10, time.Minute)
	if err != nil || len(bs) != 2 {
		t.Fatalf("lease: %+v %v", bs, err)
	}
	held := 0
	for _, b := range bs {
		adm, err := s.Admit(ctx, time.Now(), b.Deliveries, limits)
		if err != nil {
			t.Fatal(err)
		}
		held += len(adm.Held)
	}
	if held != 1 {
		t.Errorf("held %d of the number's two, want 1", held)
	}
	if st, err := s.Stats(ctx); err != nil || st.Held != 1 {
		t.Errorf("stats %+v %v", st, err)
	}
}
