//go:build postgres

package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/smsbridge/smsbridge/internal/pgtest"
	"github.com/smsbridge/smsbridge/outbox"
)

// TestStartDelay: the first term on a new backing starts at once; after a
// clean resignation the next waits out the rest of a provider second;
// after a leader ended without one it waits a full second, unless its last
// heartbeat is older than a cut-off leader could go on sending. Through
// the advisory lock and through the lease row.
func TestStartDelay(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"lock", Options{}},
		{"row", Options{NoListen: true, PollInterval: 100 * time.Millisecond}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
			ctx := context.Background()
			a, b := openT(t, dsn, schema, tc.opts), openT(t, dsn, schema, tc.opts)
			conn, err := pgx.Connect(ctx, dsn)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close(ctx)
			exec := func(sql string, args ...any) {
				t.Helper()
				if _, err := conn.Exec(ctx, sql, args...); err != nil {
					t.Fatal(err)
				}
			}
			heartbeat := pgx.Identifier{schema, "dispatch_heartbeat"}.Sanitize()
			leaderRow := pgx.Identifier{schema, "dispatch_leader"}.Sanitize()
			lead := func(s *Store) outbox.Term {
				t.Helper()
				wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				defer cancel()
				term, err := s.Lead(wctx)
				if err != nil {
					t.Fatalf("lead: %v", err)
				}
				return term
			}
			// cutOff ends term without a clean resignation, as when its
			// process dies or its session is ended, and frees the
			// leadership for another store.
			cutOff := func(tm outbox.Term) {
				t.Helper()
				if tc.opts.NoListen {
					exec(`UPDATE ` + leaderRow + ` SET owner = 'another-replica', expires_at = clock_timestamp() + interval '1 hour'`)
				} else {
					exec(`SELECT pg_terminate_backend($1)`, int64(tm.(*term).pid))
				}
				select {
				case <-tm.Lost():
				case <-time.After(5 * time.Second):
					t.Fatal("the term was not lost")
				}
				if tc.opts.NoListen {
					exec(`UPDATE ` + leaderRow + ` SET expires_at = clock_timestamp() - interval '1 second'`)
				}
			}

			ta := lead(a)
			if d := ta.StartDelay(); d != 0 {
				t.Errorf("first term on a new backing waits %v, want 0", d)
			}

			ta.Resign()
			resigned := time.Now()
			tb := lead(b)
			if d, max := tb.StartDelay(), providerWindow-time.Since(resigned); d <= 0 || d > max+50*time.Millisecond {
				t.Errorf("after a clean resignation the next term waits %v, want the rest of a second (%v)", d, max)
			}

			cutOff(tb)
			ta = lead(a)
			if d := ta.StartDelay(); d != providerWindow {
				t.Errorf("after a leader that did not resign the next term waits %v, want %v", d, providerWindow)
			}

			cutOff(ta)
			exec(`UPDATE ` + heartbeat + ` SET beat_at = clock_timestamp() - interval '10 seconds', ended_at = NULL`)
			tb = lead(b)
			if d := tb.StartDelay(); d != 0 {
				t.Errorf("after a leader whose last heartbeat is 10 s old the next term waits %v, want 0", d)
			}
			tb.Resign()
		})
	}
}

// TestCutOffLeaderStops: a leader whose heartbeat cannot be written (here
// another session holds the heartbeat row) loses its term leaderLease
// after its last heartbeat, whatever the stuck query does.
func TestCutOffLeaderStops(t *testing.T) {
	t.Parallel()
	dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
	ctx := context.Background()
	a := openT(t, dsn, schema, Options{})
	ta, err := a.Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer ta.Resign()
	time.Sleep(1500 * time.Millisecond) // a heartbeat or two
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // the test ends with it
	if _, err := tx.Exec(ctx, `SELECT 1 FROM `+pgx.Identifier{schema, "dispatch_heartbeat"}.Sanitize()+` FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	stuck := time.Now()
	select {
	case <-ta.Lost():
		// The last heartbeat started at most leaderCheck before the row
		// was locked.
		if d := time.Since(stuck); d < leaderLease-leaderCheck-100*time.Millisecond || d > leaderLease+500*time.Millisecond {
			t.Errorf("term lost %v after its heartbeat got stuck, want within (%v, %v]", d, leaderLease-leaderCheck, leaderLease)
		}
	case <-time.After(leaderLease + 3*time.Second):
		t.Fatal("a leader whose heartbeat is stuck kept its term")
	}
}
