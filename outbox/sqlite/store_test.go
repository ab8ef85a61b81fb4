package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/smsbridge/smsbridge/outbox"
	"github.com/smsbridge/smsbridge/outbox/outboxtest"
)

// The behaviour every driver shares is pinned by the conformance suite
// (suite_test.go); the tests here cover what is SQLite's own: pragmas,
// group commit, write failures, the directory lock, migrations.

const week = 7 * 24 * time.Hour

func epoch() time.Time { return time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC) }

func mustOpen(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func note(texts ...string) outbox.Notification {
	n := outbox.Notification{Source: "alertmanager", GroupKey: `{}:{alertname="X"}`, Status: "firing"}
	for i, tx := range texts {
		n.Messages = append(n.Messages, outbox.Message{
			Receiver: fmt.Sprintf("r%d", i),
			Text:     tx,
			Segments: 1,
			Numbers:  []string{"+27830000001", "+27830000002"},
		})
	}
	return n
}

func enqueue(t testing.TB, s *Store, n outbox.Notification) outbox.Enqueued {
	t.Helper()
	e, err := s.Enqueue(context.Background(), n)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return e
}

func lease(t testing.TB, s *Store, now time.Time, maxBatches, maxNumbers int) []outbox.Batch {
	t.Helper()
	b, err := s.Lease(context.Background(), now, maxBatches, maxNumbers, time.Minute)
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	return b
}

func records(t testing.TB, s *Store, f outbox.Filter) []outbox.Record {
	t.Helper()
	r, err := s.Deliveries(context.Background(), f)
	if err != nil {
		t.Fatalf("deliveries: %v", err)
	}
	return r
}

// count runs a count query on the read pool.
func count(t testing.TB, s *Store, q string, args ...any) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow(q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

// metric gathers reg and returns the one sample of the metric name.
func metric(t testing.TB, reg *prometheus.Registry, name string) *dto.Metric {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			return mf.GetMetric()[0]
		}
	}
	t.Fatalf("no metric %s", name)
	return nil
}

// syncBuffer is a bytes.Buffer safe for a logger in another goroutine.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func TestOpenSettings(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), Options{Retention: week})
	ctx := context.Background()
	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
		{"busy_timeout", "10000"},
		{"user_version", fmt.Sprint(schemaVersion)},
	} {
		var got string
		if err := s.wdb.QueryRowContext(ctx, "PRAGMA "+tc.pragma).Scan(&got); err != nil {
			t.Fatalf("pragma %s: %v", tc.pragma, err)
		}
		if got != tc.want {
			t.Errorf("pragma %s = %q, want %q", tc.pragma, got, tc.want)
		}
	}
	// The read pool must not be able to write.
	if _, err := s.rdb.ExecContext(ctx, "DELETE FROM notifications"); err == nil {
		t.Error("read pool accepted a write")
	}
}

func TestOpenErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(dir, "newer")
	s := mustOpen(t, newer, Options{Retention: week})
	if _, err := s.wdb.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	for _, tc := range []struct {
		name string
		dir  string
		opts Options
		want string
	}{
		{"dir is a file", file, Options{Retention: week}, "not a directory"},
		{"question mark", filepath.Join(dir, "a?b"), Options{Retention: week}, "must not contain"},
		{"newer schema", newer, Options{Retention: week}, fmt.Sprintf("schema version 99 is newer than this build understands (%d)", schemaVersion)},
		{"no retention", filepath.Join(dir, "x"), Options{}, "retention must be positive"},
		{"negative retention", filepath.Join(dir, "x"), Options{Retention: -time.Hour}, "retention must be positive"},
		{"negative busy timeout", filepath.Join(dir, "x"), Options{Retention: week, BusyTimeout: -time.Second}, "busy timeout must not be negative"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.dir, tc.opts)
			if err == nil {
				s.Close()
				t.Fatal("open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
			// A refused Open leaves no lock behind: trying again meets
			// the same problem, not a directory in use.
			if s, again := Open(tc.dir, tc.opts); again == nil || again.Error() != err.Error() {
				if again == nil {
					s.Close()
				}
				t.Errorf("second attempt: %v, want %v", again, err)
			}
		})
	}
	// Without the background prune, retention is not needed.
	mustOpen(t, t.TempDir(), Options{PruneInterval: -1})
}

func TestOwner(t *testing.T) {
	t.Parallel()
	host, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	want := regexp.MustCompile("^" + regexp.QuoteMeta(fmt.Sprintf("%s-%d-", host, os.Getpid())) + "[0-9a-f]{8}$")
	a := mustOpen(t, t.TempDir(), Options{Retention: week})
	b := mustOpen(t, t.TempDir(), Options{Retention: week})
	for _, s := range []*Store{a, b} {
		if !want.MatchString(s.Owner()) {
			t.Errorf("owner %q does not match %s", s.Owner(), want)
		}
	}
	if a.Owner() == b.Owner() {
		t.Errorf("two stores in one process share the owner %q", a.Owner())
	}
	c := mustOpen(t, t.TempDir(), Options{Retention: week, Owner: "replica-1"})
	if c.Owner() != "replica-1" {
		t.Errorf("owner %q, want the one configured", c.Owner())
	}
}

// TestRecoverAtOpen: rows left sending by an earlier process go back to
// the queue at Open, and the log names how many and whose.
func TestRecoverAtOpen(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	clk := outboxtest.NewClock(epoch())
	s, err := Open(dir, Options{Retention: week, Clock: clk.Now, Owner: "gone-1"})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, note("a", "b"))
	if bs := lease(t, s, clk.Now(), 10, 10); len(bs) != 2 {
		t.Fatalf("leased %d batches", len(bs))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	s = mustOpen(t, dir, Options{Retention: week, Clock: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "deliveries=4") || !strings.Contains(logs.String(), "owners=gone-1") {
		t.Errorf("recovery not logged with count and owner: %s", logs.String())
	}
	if n := count(t, s, "SELECT count(*) FROM deliveries WHERE state = 'pending' AND lease = '' AND lease_until IS NULL"); n != 4 {
		t.Errorf("%d rows pending after recovery, want 4", n)
	}
	// The rows keep who held them last, for the record.
	if n := count(t, s, "SELECT count(*) FROM deliveries WHERE lease_owner = 'gone-1'"); n != 4 {
		t.Errorf("%d rows still name their last holder, want 4", n)
	}
	// A clean reopen recovers nothing and says nothing about it.
	logs.Reset()
	s.Close()
	s = mustOpen(t, dir, Options{Retention: week, Clock: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if strings.Contains(logs.String(), "gone") {
		t.Errorf("recovery logged with nothing to recover: %s", logs.String())
	}
}

// TestGroupCommit holds the writer inside a first commit until every
// other caller is queued, so the second commit must carry all of them:
// exactly two commits for many Enqueue calls, independent of scheduling.
func TestGroupCommit(t *testing.T) {
	t.Parallel()
	const callers = 50
	reg := prometheus.NewRegistry()
	s := mustOpen(t, t.TempDir(), Options{Retention: week, Metrics: outbox.NewMetrics(reg)})
	held, release := holdWriter(s)
	first := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(context.Background(), note("first"))
		first <- err
	}()
	<-held
	ids := make(chan int64, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e, err := s.Enqueue(context.Background(), note(fmt.Sprintf("alert %d", i)))
			if err != nil {
				t.Error(err)
			}
			ids <- e.ID
		}()
	}
	waitQueued(t, s, callers)
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(ids)
	seen := map[int64]bool{}
	for id := range ids {
		if seen[id] {
			t.Errorf("id %d returned twice", id)
		}
		seen[id] = true
	}
	h := metric(t, reg, "smsbridge_outbox_commit_batch_size").GetHistogram()
	if h.GetSampleCount() != 2 || h.GetSampleSum() != callers+1 {
		t.Errorf("commits = %d carrying %v notifications; want 2 carrying %d", h.GetSampleCount(), h.GetSampleSum(), callers+1)
	}
	if c := metric(t, reg, "smsbridge_outbox_commit_duration_seconds").GetHistogram().GetSampleCount(); c != 2 {
		t.Errorf("commit duration observations = %d, want 2", c)
	}
	if st, _ := s.Stats(context.Background()); st.Pending != 2*(callers+1) {
		t.Errorf("pending = %d, want %d", st.Pending, 2*(callers+1))
	}
}

// TestGroupCommitUnderLoad is the same claim without the hook: with many
// concurrent callers, commits are fewer than enqueues.
func TestGroupCommitUnderLoad(t *testing.T) {
	t.Parallel()
	const callers, each = 16, 20
	reg := prometheus.NewRegistry()
	s := mustOpen(t, t.TempDir(), Options{Retention: week, Metrics: outbox.NewMetrics(reg)})
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range each {
				if _, err := s.Enqueue(context.Background(), note(fmt.Sprintf("a %d %d", i, j))); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	h := metric(t, reg, "smsbridge_outbox_commit_batch_size").GetHistogram()
	if h.GetSampleSum() != callers*each {
		t.Fatalf("notifications committed = %v, want %d", h.GetSampleSum(), callers*each)
	}
	// With 16 callers each waiting for its commit, one commit's fsync is
	// ample time for others to queue; a commit per call would mean the
	// batching does not work at all.
	if h.GetSampleCount() >= callers*each {
		t.Errorf("commits = %d for %d enqueues; group commit did not batch", h.GetSampleCount(), callers*each)
	}
	t.Logf("%d enqueues in %d commits", callers*each, h.GetSampleCount())
}

// holdWriter makes the writer's next commit wait until release is closed,
// and returns a channel closed once the writer is held.
func holdWriter(s *Store) (held <-chan struct{}, release chan struct{}) {
	entered := make(chan struct{})
	release = make(chan struct{})
	var once sync.Once
	s.beforeCommit = func(int) {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	return entered, release
}

// waitQueued polls until n calls wait for the writer.
func waitQueued(t *testing.T, s *Store, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for s.calls.Queued() < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d calls queued after 10s, want %d", s.calls.Queued(), n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestRequireFiringOneCommit puts a firing and then its resolution into
// one group commit: the resolution reads the firing written just before
// it in the same transaction, and is sent.
func TestRequireFiringOneCommit(t *testing.T) {
	t.Parallel()
	reg := prometheus.NewRegistry()
	s := mustOpen(t, t.TempDir(), Options{Retention: week, Metrics: outbox.NewMetrics(reg)})
	held, release := holdWriter(s)
	first := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(context.Background(), outbox.Notification{Source: "other"})
		first <- err
	}()
	<-held
	type result struct {
		e   outbox.Enqueued
		err error
	}
	results := make([]chan result, 0, 4)
	// In queue order: a resolution of a group that never fired, a firing,
	// its resolution, and a second resolution.
	for _, n := range []outbox.Notification{
		{Source: "ci", GroupKey: "ci:b", Status: "resolved", RequireFiring: true, Messages: []outbox.Message{{Receiver: "r", Text: "b", Segments: 1, Numbers: []string{"+2"}}}},
		{Source: "ci", GroupKey: "ci:a", Status: "firing", Messages: []outbox.Message{{Receiver: "r", Text: "fire", Segments: 1, Numbers: []string{"+1"}}}},
		{Source: "ci", GroupKey: "ci:a", Status: "resolved", RequireFiring: true, Messages: []outbox.Message{{Receiver: "r", Text: "ok", Segments: 1, Numbers: []string{"+1"}}}},
		{Source: "ci", GroupKey: "ci:a", Status: "resolved", RequireFiring: true, Messages: []outbox.Message{{Receiver: "r", Text: "ok again", Segments: 1, Numbers: []string{"+1"}}}},
	} {
		ch := make(chan result, 1)
		results = append(results, ch)
		go func() {
			e, err := s.Enqueue(context.Background(), n)
			ch <- result{e, err}
		}()
		waitQueued(t, s, len(results))
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	want := []struct {
		outcome    string
		recipients int
	}{{outbox.OutcomeFiltered, 0}, {outbox.OutcomeAccepted, 1}, {outbox.OutcomeAccepted, 1}, {outbox.OutcomeFiltered, 0}}
	var prev int64
	for i, ch := range results {
		r := <-ch
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.e.Outcome != want[i].outcome || r.e.Recipients != want[i].recipients || r.e.ID <= prev {
			t.Errorf("notification %d: %+v, want %s with %d recipients and an id above %d", i, r.e, want[i].outcome, want[i].recipients, prev)
		}
		prev = r.e.ID
	}
	h := metric(t, reg, "smsbridge_outbox_commit_batch_size").GetHistogram()
	if h.GetSampleCount() != 2 || h.GetSampleSum() != 5 {
		t.Errorf("commits = %d carrying %v; want 2 carrying 5 (the four in one)", h.GetSampleCount(), h.GetSampleSum())
	}
	if n := count(t, s, "SELECT count(*) FROM notifications WHERE outcome = 'filtered'"); n != 2 {
		t.Errorf("%d notifications recorded as filtered, want 2", n)
	}
	if n := count(t, s, "SELECT count(*) FROM messages m JOIN notifications n ON n.id = m.notification_id WHERE n.outcome = 'filtered'"); n != 0 {
		t.Errorf("filtered notifications kept %d messages", n)
	}
}

func TestEnqueueAbandoned(t *testing.T) {
	t.Parallel()
	s := mustOpen(t, t.TempDir(), Options{Retention: week})
	held, release := holdWriter(s)
	first := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(context.Background(), note("first"))
		first <- err
	}()
	<-held
	// The writer is busy: this call waits in the queue, and gives up.
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(ctx, note("second"))
		second <- err
	}()
	waitQueued(t, s, 1)
	cancel()
	if err := <-second; !errors.Is(err, context.Canceled) {
		t.Fatalf("abandoned enqueue: err = %v", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	// A later call proves the writer went past the abandoned request.
	enqueue(t, s, note("third"))
	texts := map[string]bool{}
	for _, r := range records(t, s, outbox.Filter{}) {
		texts[r.Text] = true
	}
	if texts["second"] || !texts["first"] || !texts["third"] {
		t.Errorf("stored texts %v; the abandoned one must not be written", texts)
	}
	// A cancelled context before queueing fails at once.
	if _, err := s.Enqueue(ctx, note("fourth")); !errors.Is(err, context.Canceled) {
		t.Errorf("enqueue with cancelled ctx: %v", err)
	}
}

// TestEnqueueClosedWhileWaiting closes the store while a call waits behind a
// commit: the caller must get an answer, not hang.
func TestEnqueueClosedWhileWaiting(t *testing.T) {
	t.Parallel()
	s, err := Open(t.TempDir(), Options{Retention: week})
	if err != nil {
		t.Fatal(err)
	}
	held, release := holdWriter(s)
	first := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(context.Background(), note("first"))
		first <- err
	}()
	<-held
	second := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(context.Background(), note("second"))
		second <- err
	}()
	waitQueued(t, s, 1)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := <-second; !errors.Is(err, outbox.ErrClosed) {
		t.Errorf("waiting enqueue: err = %v, want ErrClosed", err)
	}
	close(release)
	if err := <-first; err != nil {
		t.Errorf("enqueue taken before close: %v", err)
	}
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
}

// TestWriteFailures makes the real write path fail and recover. Tests run as
// root, and chmod does not stop root from writing, so the failure is made
// inside SQLite instead: PRAGMA query_only on the writer connection is the
// read-only database (SQLITE_READONLY), and PRAGMA max_page_count at the
// current size is a full disk (SQLITE_FULL). Both surface through the same
// driver calls and the same commit path a real read-only mount or full disk
// would; the test proves Enqueue reports them, stores nothing, counts them,
// and succeeds again once the fault is gone.
func TestWriteFailures(t *testing.T) {
	t.Parallel()
	big := strings.Repeat("x", 64<<10) // needs new pages: it cannot hide in free space
	for _, tc := range []struct {
		name, fault, fix, want string
	}{
		{"read-only", "PRAGMA query_only = 1", "PRAGMA query_only = 0", "readonly"},
		{"disk full", "PRAGMA max_page_count = %d", "PRAGMA max_page_count = 1073741823", "full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var logs syncBuffer
			reg := prometheus.NewRegistry()
			s := mustOpen(t, t.TempDir(), Options{Retention: week, Metrics: outbox.NewMetrics(reg), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
			enqueue(t, s, note("before"))
			fault := tc.fault
			if strings.Contains(fault, "%d") {
				var pages int
				if err := s.wdb.QueryRow("PRAGMA page_count").Scan(&pages); err != nil {
					t.Fatal(err)
				}
				fault = fmt.Sprintf(fault, pages)
			}
			if _, err := s.wdb.Exec(fault); err != nil {
				t.Fatal(err)
			}
			_, err := s.Enqueue(context.Background(), note(big))
			if err == nil || !strings.Contains(strings.ToLower(err.Error()), tc.want) {
				t.Fatalf("enqueue during fault: err = %v, want one mentioning %q", err, tc.want)
			}
			if c := metric(t, reg, "smsbridge_outbox_commit_errors_total").GetCounter().GetValue(); c != 1 {
				t.Errorf("commit errors = %v, want 1", c)
			}
			if !strings.Contains(logs.String(), "outbox write failed") {
				t.Errorf("failure not logged: %s", logs.String())
			}
			if _, err := s.wdb.Exec(tc.fix); err != nil {
				t.Fatal(err)
			}
			enqueue(t, s, note(big))
			if n := count(t, s, "SELECT count(*) FROM notifications"); n != 2 {
				t.Errorf("notifications = %d, want 2: the failed one must not be stored", n)
			}
		})
	}
}

// TestReadOnlyWrites makes every write method meet a read-only database
// (PRAGMA query_only, as in TestWriteFailures): each must return an error,
// none may pretend, and each works again once writes are possible.
func TestReadOnlyWrites(t *testing.T) {
	t.Parallel()
	clk := outboxtest.NewClock(epoch())
	s := mustOpen(t, t.TempDir(), Options{Retention: week, Clock: clk.Now})
	enqueue(t, s, note("x"))
	bs := lease(t, s, clk.Now(), 1, 1)
	d := bs[0].Deliveries[0]
	if err := s.Complete(context.Background(), []outbox.Outcome{outbox.Failed(d, "primary", "E", "e")}); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
	}{
		{"lease", func() error { _, err := s.Lease(ctx, clk.Now(), 1, 10, time.Minute); return err }},
		{"complete", func() error { return s.Complete(ctx, []outbox.Outcome{outbox.Released(d)}) }},
		{"fail expired", func() error { _, err := s.FailExpired(ctx, clk.Now(), time.Hour); return err }},
		{"retry", func() error { return s.Retry(ctx, d.ID) }},
		{"prune", func() error { _, err := s.Prune(ctx, time.Hour); return err }},
		{"put state", func() error { return s.PutState(ctx, "k", []byte("v")) }},
	}
	if _, err := s.wdb.Exec("PRAGMA query_only = 1"); err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		if err := c.call(); err == nil || !strings.Contains(err.Error(), "readonly") {
			t.Errorf("%s on a read-only database: err = %v", c.name, err)
		}
	}
	if _, err := s.wdb.Exec("PRAGMA query_only = 0"); err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		if err := c.call(); err != nil {
			t.Errorf("%s after recovery: %v", c.name, err)
		}
	}
}

// TestPruneCascades: pruning a notification removes its messages and
// deliveries with it (the foreign keys cascade).
func TestPruneCascades(t *testing.T) {
	t.Parallel()
	clk := outboxtest.NewClock(epoch())
	s := mustOpen(t, t.TempDir(), Options{Retention: week, Clock: clk.Now})
	enqueue(t, s, note("done"))
	enqueue(t, s, note("open"))
	var outs []outbox.Outcome
	for _, b := range lease(t, s, clk.Now(), 10, 10) {
		if b.Text == "done" {
			for _, d := range b.Deliveries {
				outs = append(outs, outbox.Accepted(d, "primary", ""))
			}
		}
	}
	if err := s.Complete(context.Background(), outs); err != nil {
		t.Fatal(err)
	}
	clk.Advance(25 * time.Hour)
	if n, err := s.Prune(context.Background(), 24*time.Hour); err != nil || n != 1 {
		t.Fatalf("prune: n=%d err=%v", n, err)
	}
	if n := count(t, s, "SELECT count(*) FROM notifications"); n != 1 {
		t.Errorf("notifications = %d, want 1", n)
	}
	if msgs, dels := count(t, s, "SELECT count(*) FROM messages"), count(t, s, "SELECT count(*) FROM deliveries"); msgs != 1 || dels != 2 {
		t.Errorf("messages=%d deliveries=%d after prune, want 1 and 2 (cascade)", msgs, dels)
	}
}

func TestBackgroundPrune(t *testing.T) {
	t.Parallel()
	clk := outboxtest.NewClock(epoch())
	var logs syncBuffer
	s := mustOpen(t, t.TempDir(), Options{Clock: clk.Now, Retention: time.Hour, PruneInterval: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	enqueue(t, s, outbox.Notification{Source: "x"})
	clk.Advance(2 * time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "pruned outbox") {
		if time.Now().After(deadline) {
			t.Fatalf("background prune did not run: %s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
	if n := count(t, s, "SELECT count(*) FROM notifications"); n != 0 {
		t.Errorf("%d notifications left after the background prune", n)
	}
}

// TestStoredValues checks what the schema holds for values the contract
// leaves implicit: an empty provider id is NULL (so it is never looked
// up), and an empty state value is an empty blob, not NULL.
func TestStoredValues(t *testing.T) {
	t.Parallel()
	clk := outboxtest.NewClock(epoch())
	s := mustOpen(t, t.TempDir(), Options{Retention: week, Clock: clk.Now})
	ctx := context.Background()
	enqueue(t, s, note("x"))
	bs := lease(t, s, clk.Now(), 1, 10)
	if err := s.Complete(ctx, []outbox.Outcome{outbox.Accepted(bs[0].Deliveries[0], "primary", "")}); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM deliveries WHERE state = 'accepted' AND api_message_id IS NULL"); n != 1 {
		t.Errorf("%d accepted rows without a provider id stored as NULL, want 1", n)
	}
	if err := s.PutState(ctx, "empty", nil); err != nil {
		t.Fatal(err)
	}
	if n := count(t, s, "SELECT count(*) FROM state WHERE key = 'empty' AND value IS NOT NULL AND length(value) = 0 AND updated_at = ?", clk.Now().UnixMilli()); n != 1 {
		t.Error("an empty state value is not stored as an empty blob with its time")
	}
}

// BenchmarkEnqueue measures durable enqueues per second from many
// concurrent callers, each a webhook with one message to three numbers.
func BenchmarkEnqueue(b *testing.B) {
	reg := prometheus.NewRegistry()
	s := mustOpen(b, b.TempDir(), Options{Retention: week, Metrics: outbox.NewMetrics(reg)})
	b.SetParallelism(16) // webhooks are I/O-bound callers, far more than cores
	n := outbox.Notification{Source: "alertmanager", GroupKey: "k", Status: "firing", Messages: []outbox.Message{{
		Receiver: "ops", Text: "[FIRING:1] DiskFull db1 /var 97%", Segments: 1,
		Numbers: []string{"+27830000001", "+27830000002", "+27830000003"},
	}}}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Enqueue(context.Background(), n); err != nil {
				b.Error(err)
				return
			}
		}
	})
	elapsed := time.Since(start)
	h := metric(b, reg, "smsbridge_outbox_commit_batch_size").GetHistogram()
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "enqueues/s")
	if h.GetSampleCount() > 0 {
		b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount()), "notifications/commit")
	}
}

// BenchmarkEnqueueSerial is the baseline without company: one caller, so
// every enqueue pays a whole commit and fsync.
func BenchmarkEnqueueSerial(b *testing.B) {
	s := mustOpen(b, b.TempDir(), Options{Retention: week})
	n := outbox.Notification{Source: "alertmanager", Messages: []outbox.Message{{
		Receiver: "ops", Text: "[FIRING:1] DiskFull db1 /var 97%", Segments: 1,
		Numbers: []string{"+27830000001", "+27830000002", "+27830000003"},
	}}}
	b.ResetTimer()
	start := time.Now()
	for range b.N {
		if _, err := s.Enqueue(context.Background(), n); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "enqueues/s")
}

// BenchmarkEnqueueReplyCodes compares durable enqueues of firing pages
// with and without a reply code (chosen and issued in the write
// transaction), from many concurrent callers, each page to three of a
// pool of numbers, as on-call rotations spread them.
func BenchmarkEnqueueReplyCodes(b *testing.B) {
	for _, codes := range []bool{false, true} {
		b.Run(fmt.Sprintf("codes=%t", codes), func(b *testing.B) {
			s := mustOpen(b, b.TempDir(), Options{Retention: week})
			b.SetParallelism(16)
			var seq atomic.Int64
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := seq.Add(1)
					n := outbox.Notification{Source: "alertmanager", GroupKey: fmt.Sprint("g", k%50), Status: "firing",
						AckLabels: map[string]string{"alertname": "DiskFull", "team": "db"},
						Messages: []outbox.Message{{Receiver: "ops", Text: "[FIRING:1] DiskFull db1 /var 97%\nReply ACK " + outbox.ReplyCodePlaceholder,
							Segments: 1, ReplyCode: codes, Numbers: []string{
								fmt.Sprintf("+2783%07d", k%300), fmt.Sprintf("+2783%07d", 300+k%300), fmt.Sprintf("+2783%07d", 600+k%300)}}}}
					if _, err := s.Enqueue(context.Background(), n); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "enqueues/s")
		})
	}
}

// BenchmarkEnqueueEscalation compares durable enqueues with and without
// escalation steps on the pages, from many concurrent callers: 200
// groups, every tenth notification a resolution of its group (which
// stops its steps and ends the episode), the others firing pages that
// begin an episode or find one under way.
func BenchmarkEnqueueEscalation(b *testing.B) {
	for _, steps := range []bool{false, true} {
		b.Run(fmt.Sprintf("steps=%t", steps), func(b *testing.B) {
			s := mustOpen(b, b.TempDir(), Options{Retention: week})
			b.SetParallelism(16)
			var seq atomic.Int64
			var plan []outbox.EscalationPlan
			if steps {
				plan = []outbox.EscalationPlan{{After: 10 * time.Minute, Receiver: "db-secondary"}, {After: 30 * time.Minute, Receiver: "managers"}}
			}
			b.ResetTimer()
			start := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					k := seq.Add(1)
					n := outbox.Notification{Source: "alertmanager", GroupKey: fmt.Sprint("g", k%200), Status: "firing",
						EscalationLabels: map[string]string{"alertname": "DiskFull", "team": "db"},
						Messages: []outbox.Message{{Receiver: "ops", Text: "[FIRING:1] DiskFull db1 /var 97%", Segments: 1,
							Numbers: []string{fmt.Sprintf("+2783%07d", k%300)}, Escalate: plan}}}
					if k%10 == 0 {
						n.Status = "resolved"
					}
					if _, err := s.Enqueue(context.Background(), n); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "enqueues/s")
		})
	}
}
