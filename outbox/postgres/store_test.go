//go:build postgres

package postgres

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/common/expfmt"

	"github.com/smsbridge/smsbridge/internal/pgtest"
	"github.com/smsbridge/smsbridge/outbox"
)

// syncBuf is a log sink for several goroutines.
type syncBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuf) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuf) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// openT opens a store on schema with opts, closed at the end of the test.
func openT(t *testing.T, dsn, schema string, opts Options) *Store {
	t.Helper()
	opts.Schema = schema
	if opts.Retention == 0 {
		opts.Retention = time.Hour
	}
	s, err := Open(context.Background(), dsn, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func note(text string, numbers ...string) outbox.Notification {
	return outbox.Notification{Source: "t", GroupKey: "g", Status: "firing",
		Messages: []outbox.Message{{Receiver: "r", Text: text, Segments: 1, Numbers: numbers}}}
}

// TestDSNSecretNeverShown: the DSN's password appears in no error, log line
// or metric, whether the connection fails or works.
func TestDSNSecretNeverShown(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	u, _ := url.Parse(dsn)
	password, _ := u.User.Password()
	if password == "" {
		t.Fatal("the test server's DSN has no password; .ci/pg-cluster.sh sets one")
	}
	wrong := *u
	wrong.User = url.UserPassword(u.User.Username(), "Wr0ng-pa55word-xyz")
	closed := *u
	closed.Host = "127.0.0.1:1"

	var logs syncBuf
	logger := slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	for _, tc := range []struct{ name, dsn, secret string }{
		{"wrong password", wrong.String(), "Wr0ng-pa55word-xyz"},
		{"nobody listening", closed.String(), password},
	} {
		_, err := Open(context.Background(), tc.dsn, Options{Retention: time.Hour, Logger: logger, Schema: pgtest.Schema(t)})
		if err == nil {
			t.Fatalf("%s: opened", tc.name)
		}
		if strings.Contains(err.Error(), tc.secret) {
			t.Errorf("%s: the error shows the password: %v", tc.name, err)
		}
	}

	reg := prometheus.NewRegistry()
	s := openT(t, dsn, pgtest.Schema(t), Options{Logger: logger, Metrics: outbox.NewMetrics(reg)})
	if _, err := s.Enqueue(context.Background(), note("x", "+1")); err != nil {
		t.Fatal(err)
	}
	term, err := s.Lead(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	term.Resign()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var text bytes.Buffer
	for _, mf := range mfs {
		_, _ = expfmt.MetricFamilyToText(&text, mf)
	}
	for what, out := range map[string]string{"log": logs.String(), "metrics": text.String()} {
		if strings.Contains(out, password) || strings.Contains(out, "Wr0ng-pa55word") {
			t.Errorf("the %s shows a DSN's password:\n%s", what, out)
		}
	}
	if !strings.Contains(text.String(), `smsbridge_store_query_duration_seconds_count{op="take_over"} 1`) {
		t.Errorf("the take-over was not timed:\n%s", text.String())
	}
}

// TestMigrations: a new database gets every version recorded; a database
// from a newer release is refused with a clear error.
func TestMigrations(t *testing.T) {
	t.Parallel()
	dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
	s := openT(t, dsn, schema, Options{})
	s.Close()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	table := pgx.Identifier{schema, "schema_migrations"}.Sanitize()
	var versions []int32
	rows, _ := conn.Query(ctx, `SELECT version FROM `+table+` ORDER BY version`)
	if versions, err = pgx.CollectRows(rows, pgx.RowTo[int32]); err != nil {
		t.Fatal(err)
	}
	if len(versions) != schemaVersion || versions[len(versions)-1] != int32(schemaVersion) {
		t.Errorf("recorded versions %v, want 1..%d", versions, schemaVersion)
	}
	// Opening again changes nothing.
	openT(t, dsn, schema, Options{}).Close()
	if _, err := conn.Exec(ctx, `INSERT INTO `+table+` (version) VALUES (99)`); err != nil {
		t.Fatal(err)
	}
	_, err = Open(ctx, dsn, Options{Schema: schema, Retention: time.Hour})
	if err == nil || !strings.Contains(err.Error(), "schema version 99 is newer than this build understands") {
		t.Errorf("open on a newer schema: %v", err)
	}
}

// TestWakeAcrossReplicas: a commit on one replica wakes another, through
// LISTEN/NOTIFY, or by polling with NoListen.
func TestWakeAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
	a := openT(t, dsn, schema, Options{})
	for _, tc := range []struct {
		name string
		opts Options
	}{
		{"listen", Options{}},
		{"poll only", Options{NoListen: true, PollInterval: 100 * time.Millisecond}},
	} {
		b := openT(t, dsn, schema, tc.opts)
		time.Sleep(200 * time.Millisecond) // b's listener connects
		select {
		case <-b.Wake():
		default:
		}
		if _, err := a.Enqueue(context.Background(), note("wake "+tc.name, "+1")); err != nil {
			t.Fatal(err)
		}
		select {
		case <-b.Wake():
		case <-time.After(3 * time.Second):
			t.Errorf("%s: the other replica was not woken within 3s", tc.name)
		}
		// Take the work away, so the next case starts with nothing due.
		if _, err := a.Lease(context.Background(), time.Now(), 10, 10, time.Hour); err != nil {
			t.Fatal(err)
		}
	}
}

// TestRequireFiringAcrossReplicas races firings on one replica with their
// resolutions on another: the group locks order them, so a resolution is
// sent exactly when its firing was recorded first.
func TestRequireFiringAcrossReplicas(t *testing.T) {
	t.Parallel()
	dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
	a, b := openT(t, dsn, schema, Options{}), openT(t, dsn, schema, Options{})
	const groups = 40
	type pair struct{ firing, resolved outbox.Enqueued }
	got := make([]pair, groups)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range groups {
		g := fmt.Sprintf("ci:%d", i)
		wg.Go(func() {
			<-start
			got[i].firing, _ = a.Enqueue(context.Background(), outbox.Notification{Source: "ci", GroupKey: g, Status: "firing"})
		})
		wg.Go(func() {
			<-start
			got[i].resolved, _ = b.Enqueue(context.Background(), outbox.Notification{Source: "ci", GroupKey: g, Status: "resolved", RequireFiring: true,
				Messages: []outbox.Message{{Receiver: "r", Text: "resolved " + g, Segments: 1, Numbers: []string{"+1"}}}})
		})
	}
	close(start)
	wg.Wait()
	for i, p := range got {
		if p.firing.ID == 0 || p.resolved.ID == 0 {
			t.Fatalf("group %d: an enqueue failed: %+v", i, p)
		}
		want := outbox.OutcomeFiltered
		if p.firing.ID < p.resolved.ID {
			want = outbox.OutcomeAccepted
		}
		if p.resolved.Outcome != want {
			t.Errorf("group %d: firing %d, resolution %d recorded %s, want %s", i, p.firing.ID, p.resolved.ID, p.resolved.Outcome, want)
		}
	}
}

// TestLeadership: one store leads at a time; when the leader's lock
// session dies, its Lease fails at once (fenced), its term is lost, and
// another store takes over and returns the dead leader's leases to the
// queue.
func TestLeadership(t *testing.T) {
	t.Parallel()
	dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
	ctx := context.Background()
	var logs syncBuf
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	a := openT(t, dsn, schema, Options{Logger: logger})
	b := openT(t, dsn, schema, Options{Logger: logger})
	other := openT(t, dsn, pgtest.Schema(t), Options{})

	ta, err := a.Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Another backing has a leader of its own.
	if tOther, err := other.Lead(ctx); err != nil {
		t.Fatalf("the leader of another schema: %v", err)
	} else {
		defer tOther.Resign()
	}
	wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	if _, err := b.Lead(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second leader: %v", err)
	}
	cancel()

	if _, err := a.Enqueue(ctx, note("x", "+1", "+2")); err != nil {
		t.Fatal(err)
	}
	leased, err := a.Lease(ctx, time.Now(), 1, 1, time.Hour)
	if err != nil || len(leased) != 1 {
		t.Fatalf("the leader's lease: %v %v", leased, err)
	}

	// The lock's session dies (the server restarts it, a proxy drops it).
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	pid := ta.(*term).pid
	if _, err := conn.Exec(ctx, `SELECT pg_terminate_backend($1)`, int64(pid)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(100 * time.Millisecond) // the backend exits
	if _, err := a.Lease(ctx, time.Now(), 1, 1, time.Hour); !errors.Is(err, outbox.ErrNotLeader) {
		t.Errorf("lease by a leader whose session died: %v, want ErrNotLeader", err)
	}
	select {
	case <-ta.Lost():
	case <-time.After(5 * time.Second):
		t.Fatal("the term was not lost within 5s of its session dying")
	}
	wctx, cancel = context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	tb, err := b.Lead(wctx)
	if err != nil {
		t.Fatalf("the second store did not take over: %v", err)
	}
	defer tb.Resign()
	// The dead leader's lease is back in the queue, and b leases both rows.
	bs, err := b.Lease(ctx, time.Now(), 1, 10, time.Hour)
	if err != nil || len(bs) != 1 || len(bs[0].Deliveries) != 2 {
		t.Fatalf("after the take-over b leased %+v, %v; want both rows", bs, err)
	}
	if !strings.Contains(logs.String(), "returned deliveries leased by an earlier leader") || !strings.Contains(logs.String(), a.Owner()) {
		t.Errorf("the take-over did not log whose leases it recovered:\n%s", logs.String())
	}
	// A late result of the dead leader is ignored.
	if err := a.Complete(ctx, []outbox.Outcome{outbox.Accepted(leased[0].Deliveries[0], "primary", "late")}); err != nil {
		t.Fatal(err)
	}
	if rs, _ := b.Deliveries(ctx, outbox.Filter{State: outbox.StateAccepted}); len(rs) != 0 {
		t.Errorf("the dead leader's late result was recorded: %+v", rs)
	}
	// Resigning frees the lock at once.
	tb.Resign()
	wctx2, cancel2 := context.WithTimeout(ctx, 3*time.Second)
	defer cancel2()
	ta2, err := a.Lead(wctx2)
	if err != nil {
		t.Fatalf("leading again after b resigned: %v", err)
	}
	ta2.Resign()
}

// TestLeadershipByRow: behind a pooler (NoListen) leadership is a lease
// row: one store holds it, a store whose row was taken is fenced at once
// and loses its term, and resigning hands over without waiting for the
// row to expire.
func TestLeadershipByRow(t *testing.T) {
	t.Parallel()
	dsn, schema := pgtest.DSN(t), pgtest.Schema(t)
	ctx := context.Background()
	opts := Options{NoListen: true, PollInterval: 100 * time.Millisecond}
	a, b := openT(t, dsn, schema, opts), openT(t, dsn, schema, opts)
	ta, err := a.Lead(ctx)
	if err != nil {
		t.Fatal(err)
	}
	wctx, cancel := context.WithTimeout(ctx, 1500*time.Millisecond)
	if _, err := b.Lead(wctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second leader: %v", err)
	}
	cancel()
	if _, err := a.Enqueue(ctx, note("x", "+1")); err != nil {
		t.Fatal(err)
	}
	if bs, err := a.Lease(ctx, time.Now(), 1, 10, time.Hour); err != nil || len(bs) != 1 {
		t.Fatalf("the leader's lease: %v %v", bs, err)
	}
	ta.Resign()
	wctx, cancel = context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	tb, err := b.Lead(wctx)
	if err != nil {
		t.Fatalf("no take-over after the leader resigned: %v", err)
	}
	if bs, err := b.Lease(ctx, time.Now(), 1, 10, time.Hour); err != nil || len(bs) != 1 {
		t.Errorf("the new leader did not get the old leader's leased row back: %v %v", bs, err)
	}
	// Someone else's row (b froze past its expiry and another replica
	// claimed it): b's next Lease is refused, and its term ends.
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Exec(ctx, `UPDATE `+pgx.Identifier{schema, "dispatch_leader"}.Sanitize()+` SET owner = 'another-replica'`); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Lease(ctx, time.Now(), 1, 10, time.Hour); !errors.Is(err, outbox.ErrNotLeader) {
		t.Errorf("lease after the row was taken: %v, want ErrNotLeader", err)
	}
	select {
	case <-tb.Lost():
	case <-time.After(3 * time.Second):
		t.Error("the term was not lost")
	}
}

// TestHealthWithoutTheSecret: Health fails while the database refuses the
// store (here: its role may no longer log in and its sessions were ended),
// recovers when it is let in again, and its error, which /-/ready and the
// status page show, never carries the DSN's password.
func TestHealthWithoutTheSecret(t *testing.T) {
	t.Parallel()
	dsn := pgtest.DSN(t)
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	role, password := pgtest.Name("health_"), "Health-pa55-"+pgtest.Name("x")
	ident := pgx.Identifier{role}.Sanitize()
	u, _ := url.Parse(dsn)
	database := pgx.Identifier{strings.TrimPrefix(u.Path, "/")}.Sanitize()
	// Registered before the schema, so it runs after the schema is gone.
	t.Cleanup(func() {
		c, err := pgx.Connect(context.Background(), dsn)
		if err != nil {
			t.Error(err)
			return
		}
		defer c.Close(context.Background())
		_, _ = c.Exec(context.Background(), `REVOKE CREATE ON DATABASE `+database+` FROM `+ident)
		if _, err := c.Exec(context.Background(), `DROP ROLE IF EXISTS `+ident); err != nil {
			t.Errorf("drop role: %v", err)
		}
	})
	for _, q := range []string{
		`CREATE ROLE ` + ident + ` LOGIN PASSWORD '` + password + `'`,
		`GRANT CREATE ON DATABASE ` + database + ` TO ` + ident,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	own := *u
	own.User = url.UserPassword(role, password)
	s := openT(t, own.String(), pgtest.Schema(t), Options{})
	if err := s.Health(ctx); err != nil {
		t.Fatalf("a fresh store: %v", err)
	}
	for _, q := range []string{
		`ALTER ROLE ` + ident + ` NOLOGIN`,
		`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = '` + role + `'`,
	} {
		if _, err := admin.Exec(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	// The pool may still hand out a connection it has not found dead yet;
	// by the second call every one is gone.
	for range 2 {
		err = s.Health(ctx)
	}
	if err == nil {
		t.Fatal("healthy while the database refuses the store")
	}
	if strings.Contains(err.Error(), password) {
		t.Errorf("the health error shows the password: %v", err)
	}
	t.Logf("health while refused: %v", err)
	if _, err := admin.Exec(ctx, `ALTER ROLE `+ident+` LOGIN`); err != nil {
		t.Fatal(err)
	}
	if err := s.Health(ctx); err != nil {
		t.Errorf("not healthy again once let in: %v", err)
	}
}
