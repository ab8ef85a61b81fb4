package sqlite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// clock is a settable time source for tests.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

func open(t testing.TB, dir string, opts Options) *Store {
	t.Helper()
	s, err := Open(dir, opts)
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func note(texts ...string) Notification {
	n := Notification{Source: "alertmanager", GroupKey: "{}:{alertname=\"X\"}", Status: "firing"}
	for i, tx := range texts {
		n.Messages = append(n.Messages, Message{
			Receiver: fmt.Sprintf("r%d", i),
			Text:     tx,
			Segments: 1,
			Numbers:  []string{"+27830000001", "+27830000002"},
		})
	}
	return n
}

func enqueue(t testing.TB, s *Store, n Notification) int64 {
	t.Helper()
	id, err := s.Enqueue(context.Background(), n)
	if err != nil {
		t.Fatalf("enqueue: %v", err)
	}
	return id
}

func lease(t testing.TB, s *Store, now time.Time, maxBatches, maxNumbers int) []Batch {
	t.Helper()
	b, err := s.Lease(context.Background(), now, maxBatches, maxNumbers, time.Minute)
	if err != nil {
		t.Fatalf("lease: %v", err)
	}
	return b
}

func records(t testing.TB, s *Store, f Filter) []Record {
	t.Helper()
	r, err := s.Deliveries(context.Background(), f)
	if err != nil {
		t.Fatalf("deliveries: %v", err)
	}
	return r
}

func byNumber(rs []Record) map[string]Record {
	m := map[string]Record{}
	for _, r := range rs {
		m[r.Text+"|"+r.Number] = r
	}
	return m
}

func TestOpenSettings(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	ctx := context.Background()
	for _, tc := range []struct {
		pragma string
		want   string
	}{
		{"journal_mode", "wal"},
		{"synchronous", "2"}, // FULL
		{"foreign_keys", "1"},
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
	dir := t.TempDir()
	file := filepath.Join(dir, "file")
	if err := os.WriteFile(file, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	newer := filepath.Join(dir, "newer")
	s := open(t, newer, Options{})
	if _, err := s.wdb.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	s.Close()

	for _, tc := range []struct {
		name, dir, want string
	}{
		{"dir is a file", file, "not a directory"},
		{"question mark", filepath.Join(dir, "a?b"), "must not contain"},
		{"newer schema", newer, "schema version 99 is newer"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := Open(tc.dir, Options{})
			if err == nil {
				s.Close()
				t.Fatal("open succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("error %q does not contain %q", err, tc.want)
			}
		})
	}
}

func TestEnqueueLeaseDeliver(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now})
	id := enqueue(t, s, note("disk full on db1", "disk full on db1 (short)"))
	if id <= 0 {
		t.Fatalf("id = %d", id)
	}
	select {
	case <-s.Wake():
	default:
		t.Fatal("no wake signal after enqueue with deliveries")
	}
	st, err := s.Stats(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Pending != 4 || st.InFlight != 0 || !st.Oldest.Equal(clk.Now()) {
		t.Errorf("stats = %+v", st)
	}

	batches := lease(t, s, clk.Now(), 10, 100)
	if len(batches) != 2 {
		t.Fatalf("got %d batches, want 2", len(batches))
	}
	for _, b := range batches {
		if got := b.Numbers(); !slices.Equal(got, []string{"+27830000001", "+27830000002"}) {
			t.Errorf("batch %q numbers %v", b.Text, got)
		}
		if b.Segments != 1 || !b.LeaseUntil.Equal(clk.Now().Add(time.Minute)) {
			t.Errorf("batch %+v", b)
		}
		for _, d := range b.Deliveries {
			if d.NotificationID != id || d.Lease == 0 || d.Attempts != 0 {
				t.Errorf("delivery %+v", d)
			}
		}
	}
	if again := lease(t, s, clk.Now(), 10, 100); len(again) != 0 {
		t.Fatalf("leased rows were leased again: %+v", again)
	}
	st, _ = s.Stats(context.Background())
	if st.Pending != 4 || st.InFlight != 4 {
		t.Errorf("stats while leased = %+v", st)
	}

	b := batches[0]
	if err := s.MarkDelivered(context.Background(), b.Deliveries[0], "api-1"); err != nil {
		t.Fatal(err)
	}
	if err := s.MarkFailed(context.Background(), b.Deliveries[1], "E101", "InvalidNumber"); err != nil {
		t.Fatal(err)
	}
	got := byNumber(records(t, s, Filter{NotificationID: id}))
	d0 := got[b.Text+"|"+b.Deliveries[0].Number]
	if d0.State != StateDelivered || d0.APIMessageID != "api-1" || d0.Attempts != 1 || d0.Source != "alertmanager" || d0.Status != "firing" {
		t.Errorf("delivered record %+v", d0)
	}
	d1 := got[b.Text+"|"+b.Deliveries[1].Number]
	if d1.State != StateFailed || d1.ErrorCode != "E101" || d1.Error != "InvalidNumber" {
		t.Errorf("failed record %+v", d1)
	}
	if n := len(records(t, s, Filter{State: StateSending})); n != 2 {
		t.Errorf("%d rows sending, want 2", n)
	}
}

func TestEnqueueValidation(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	for _, tc := range []struct {
		name string
		msg  Message
	}{
		{"empty number", Message{Text: "x", Segments: 1, Numbers: []string{"+27830000001", ""}}},
		{"negative segments", Message{Text: "x", Segments: -1, Numbers: []string{"+27830000001"}}},
		{"numbers without text", Message{Numbers: []string{"+27830000001"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := s.Enqueue(context.Background(), Notification{Source: "x", Messages: []Message{tc.msg}})
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("err = %v, want ErrInvalid", err)
			}
		})
	}
}

func TestEnqueueDuplicatesAndUnrouted(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now})
	// Drain the wake a fresh store never sends, to be sure of the state.
	select {
	case <-s.Wake():
		t.Fatal("wake on an empty store")
	default:
	}
	id := enqueue(t, s, Notification{Source: "ci"})
	select {
	case <-s.Wake():
		t.Fatal("wake after an unrouted notification")
	default:
	}
	var n int
	if err := s.rdb.QueryRow("SELECT count(*) FROM notifications WHERE id = ? AND source = 'ci'", id).Scan(&n); err != nil || n != 1 {
		t.Fatalf("unrouted notification not recorded: n=%d err=%v", n, err)
	}
	enqueue(t, s, Notification{Source: "ci", Messages: []Message{{Receiver: "r", Text: "t", Segments: 1,
		Numbers: []string{"+27830000001", "+27830000001", "+27830000002"}}}})
	if st, _ := s.Stats(context.Background()); st.Pending != 2 {
		t.Errorf("pending = %d, want 2 (duplicate number stored once)", st.Pending)
	}
}

// TestGroupCommit holds the writer inside its first commit until every
// caller not in it is queued, so the second commit must carry all of them: exactly two
// commits for many Enqueue calls, independent of scheduling.
func TestGroupCommit(t *testing.T) {
	const callers = 50
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	s := open(t, t.TempDir(), Options{Metrics: m})
	var once sync.Once
	s.beforeCommit = func(n int) {
		once.Do(func() {
			for n+len(s.reqs) < callers {
				time.Sleep(time.Millisecond)
			}
		})
	}
	ids := make(chan int64, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := s.Enqueue(context.Background(), note(fmt.Sprintf("alert %d", i)))
			if err != nil {
				t.Error(err)
			}
			ids <- id
		}()
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
	h := histogram(t, m.batchSize)
	if h.GetSampleCount() != 2 || h.GetSampleSum() != callers {
		t.Errorf("commits = %d carrying %v notifications; want 2 carrying %d", h.GetSampleCount(), h.GetSampleSum(), callers)
	}
	if c := histogram(t, m.commitDuration).GetSampleCount(); c != 2 {
		t.Errorf("commit duration observations = %d, want 2", c)
	}
	if st, _ := s.Stats(context.Background()); st.Pending != 2*callers {
		t.Errorf("pending = %d, want %d", st.Pending, 2*callers)
	}
}

// TestGroupCommitUnderLoad is the same claim without the hook: with many
// concurrent callers, commits are fewer than enqueues.
func TestGroupCommitUnderLoad(t *testing.T) {
	const callers, each = 16, 20
	m := NewMetrics(prometheus.NewRegistry())
	s := open(t, t.TempDir(), Options{Metrics: m})
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
	h := histogram(t, m.batchSize)
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

// gauges gathers reg and returns every unlabelled gauge by name.
func gauges(t testing.TB, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		if mf.GetType() == dto.MetricType_GAUGE && len(mf.GetMetric()) == 1 {
			out[mf.GetName()] = mf.GetMetric()[0].GetGauge().GetValue()
		}
	}
	return out
}

func counterValue(t testing.TB, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func collectCount(c prometheus.Collector) int {
	ch := make(chan prometheus.Metric, 16)
	c.Collect(ch)
	close(ch)
	return len(ch)
}

func histogram(t testing.TB, h prometheus.Histogram) *dto.Histogram {
	t.Helper()
	var m dto.Metric
	if err := h.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetHistogram()
}

func TestEnqueueAbandoned(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	s.beforeCommit = func(int) {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	first := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(context.Background(), note("first"))
		first <- err
	}()
	<-entered
	// The writer is busy: this call waits in the queue, and gives up.
	ctx, cancel := context.WithCancel(context.Background())
	second := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(ctx, note("second"))
		second <- err
	}()
	for len(s.reqs) == 0 {
		time.Sleep(time.Millisecond)
	}
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
	for _, r := range records(t, s, Filter{}) {
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

func TestEnqueueClosed(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if _, err := s.Enqueue(context.Background(), note("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want ErrClosed", err)
	}
}

// TestEnqueueClosedWhileWaiting closes the store while a call waits behind a
// commit: the caller must get an answer, not hang.
func TestEnqueueClosedWhileWaiting(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	release := make(chan struct{})
	entered := make(chan struct{})
	var once sync.Once
	s.beforeCommit = func(int) {
		once.Do(func() {
			close(entered)
			<-release
		})
	}
	first := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(context.Background(), note("first"))
		first <- err
	}()
	<-entered
	second := make(chan error, 1)
	go func() {
		_, err := s.Enqueue(context.Background(), note("second"))
		second <- err
	}()
	for len(s.reqs) == 0 {
		time.Sleep(time.Millisecond)
	}
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	if err := <-second; !errors.Is(err, ErrClosed) {
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
	big := strings.Repeat("x", 64<<10) // needs new pages: it cannot hide in free space
	for _, tc := range []struct {
		name, fault, fix, want string
	}{
		{"read-only", "PRAGMA query_only = 1", "PRAGMA query_only = 0", "readonly"},
		{"disk full", "PRAGMA max_page_count = %d", "PRAGMA max_page_count = 1073741823", "full"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var logs bytes.Buffer
			m := NewMetrics(prometheus.NewRegistry())
			s := open(t, t.TempDir(), Options{Metrics: m, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
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
			if c := counterValue(t, m.commitErrors); c != 1 {
				t.Errorf("commit errors = %v, want 1", c)
			}
			if !strings.Contains(logs.String(), "outbox write failed") {
				t.Errorf("failure not logged: %s", logs.String())
			}
			if _, err := s.wdb.Exec(tc.fix); err != nil {
				t.Fatal(err)
			}
			enqueue(t, s, note(big))
			var n int
			if err := s.rdb.QueryRow("SELECT count(*) FROM notifications").Scan(&n); err != nil || n != 2 {
				t.Errorf("notifications = %d (err %v), want 2: the failed one must not be stored", n, err)
			}
		})
	}
}

func TestLeaseGrouping(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now})
	msg := func(receiver, text string, nums ...string) Message {
		return Message{Receiver: receiver, Text: text, Segments: 1, Numbers: nums}
	}
	// Two receivers got the same text; one number is on both.
	enqueue(t, s, Notification{Source: "am", Messages: []Message{
		msg("ops", "same", "+1", "+2"),
		msg("db", "same", "+2", "+3"),
		msg("db", "other", "+4", "+5", "+6"),
	}})
	enqueue(t, s, Notification{Source: "am", Messages: []Message{msg("ops", "third", "+7")}})

	type want struct {
		text string
		nums []string
	}
	for _, tc := range []struct {
		name                   string
		maxBatches, maxNumbers int
		want                   []want
	}{
		{"duplicate number waits", 1, 100, []want{{"same", []string{"+1", "+2", "+3"}}}},
		{"batches and numbers capped", 2, 2, []want{{"same", []string{"+2"}}, {"other", []string{"+4", "+5"}}}},
		{"rest", 5, 5, []want{{"other", []string{"+6"}}, {"third", []string{"+7"}}}},
		{"nothing left", 5, 5, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			bs := lease(t, s, clk.Now(), tc.maxBatches, tc.maxNumbers)
			var got []want
			for _, b := range bs {
				got = append(got, want{b.Text, b.Numbers()})
			}
			if fmt.Sprint(got) != fmt.Sprint(tc.want) {
				t.Errorf("leased %v, want %v", got, tc.want)
			}
		})
	}
	if bs, err := s.Lease(context.Background(), clk.Now(), 0, 10, time.Minute); err != nil || bs != nil {
		t.Errorf("lease of zero batches = %v, %v", bs, err)
	}
}

func TestCompleteOutcomes(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now})
	now := clk.Now()
	later := now.Add(time.Hour)
	for _, tc := range []struct {
		name         string
		outcome      func(Delivery) Outcome
		state        State
		attempts     int
		code, errMsg string
		dueAt        time.Time // zero: not due again
	}{
		{"delivered", func(d Delivery) Outcome { return Delivered(d, "id") }, StateDelivered, 1, "", "", time.Time{}},
		{"failed", func(d Delivery) Outcome { return Failed(d, "bad_request", "400") }, StateFailed, 1, "bad_request", "400", time.Time{}},
		{"rescheduled", func(d Delivery) Outcome { return Rescheduled(d, later, "transient", "500") }, StatePending, 1, "transient", "500", later},
		{"deferred", func(d Delivery) Outcome { return Deferred(d, later, "rate_limited", "429") }, StatePending, 0, "rate_limited", "429", later},
		{"released", Released, StatePending, 0, "", "", now},
		{"rescheduled in the past is due now", func(d Delivery) Outcome { return Rescheduled(d, now.Add(-time.Hour), "", "") }, StatePending, 1, "", "", now},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id := enqueue(t, s, Notification{Source: "t", Messages: []Message{{Receiver: "r", Text: tc.name, Segments: 1, Numbers: []string{"+1"}}}})
			bs := lease(t, s, now, 1, 1)
			if len(bs) != 1 || bs[0].Text != tc.name {
				t.Fatalf("leased %+v", bs)
			}
			if err := s.Complete(context.Background(), []Outcome{tc.outcome(bs[0].Deliveries[0])}); err != nil {
				t.Fatal(err)
			}
			rs := records(t, s, Filter{NotificationID: id})
			if len(rs) != 1 {
				t.Fatalf("records %+v", rs)
			}
			r := rs[0]
			if r.State != tc.state || r.Attempts != tc.attempts || r.ErrorCode != tc.code || r.Error != tc.errMsg {
				t.Errorf("record %+v", r)
			}
			sc, err := s.Schedule(context.Background(), clk.Now())
			if err != nil {
				t.Fatal(err)
			}
			if !sc.NextDue.Equal(tc.dueAt) {
				t.Errorf("next due %v, want %v", sc.NextDue, tc.dueAt)
			}
			// Clear the row out of the way of the next case.
			if tc.state == StatePending {
				if bs := lease(t, s, later, 1, 1); len(bs) == 1 {
					if err := s.MarkDelivered(context.Background(), bs[0].Deliveries[0], ""); err != nil {
						t.Fatal(err)
					}
				}
			}
		})
	}
	bad := Outcome{State: StateSending}
	if err := s.Complete(context.Background(), []Outcome{bad}); err == nil {
		t.Error("complete with state sending succeeded")
	}
}

func TestRescheduleKeepsLastError(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now})
	enqueue(t, s, note("x"))
	bs := lease(t, s, clk.Now(), 1, 1)
	if err := s.Reschedule(context.Background(), bs[0].Deliveries[0], clk.Now(), "status 500"); err != nil {
		t.Fatal(err)
	}
	bs = lease(t, s, clk.Now(), 1, 1)
	if bs[0].Deliveries[0].Attempts != 1 {
		t.Errorf("attempts = %d, want 1", bs[0].Deliveries[0].Attempts)
	}
	if err := s.Release(context.Background(), bs[0].Deliveries...); err != nil {
		t.Fatal(err)
	}
	var r Record
	for _, rec := range records(t, s, Filter{}) {
		if rec.ID == bs[0].Deliveries[0].ID {
			r = rec
		}
	}
	if r.State != StatePending || r.Error != "status 500" || r.Attempts != 1 {
		t.Errorf("after release: %+v; the last error and attempts must stay", r)
	}
}

// TestCrashRecovery leases rows and closes the store without recording a
// result, as a kill -9 would: the next Open must make them due again.
func TestCrashRecovery(t *testing.T) {
	dir := t.TempDir()
	clk := newClock()
	s, err := Open(dir, Options{Clock: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	enqueue(t, s, note("a", "b"))
	first := lease(t, s, clk.Now(), 10, 10)
	if len(first) != 2 {
		t.Fatalf("leased %d batches", len(first))
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	s = open(t, dir, Options{Clock: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "deliveries=4") {
		t.Errorf("recovery not logged: %s", logs.String())
	}
	select {
	case <-s.Wake():
	default:
		t.Error("no wake after reopening with queued work")
	}
	again := lease(t, s, clk.Now(), 10, 10)
	ids := func(bs []Batch) []int64 {
		var out []int64
		for _, b := range bs {
			for _, d := range b.Deliveries {
				out = append(out, d.ID)
			}
		}
		slices.Sort(out)
		return out
	}
	if !slices.Equal(ids(first), ids(again)) {
		t.Errorf("after restart leased %v, want %v", ids(again), ids(first))
	}
	// The old lease cannot record over the new one.
	if err := s.MarkDelivered(context.Background(), first[0].Deliveries[0], "stale"); err != nil {
		t.Fatal(err)
	}
	if n := len(records(t, s, Filter{State: StateDelivered})); n != 0 {
		t.Errorf("a stale lease recorded %d deliveries", n)
	}
}

func TestLeaseLapses(t *testing.T) {
	clk := newClock()
	var logs bytes.Buffer
	s := open(t, t.TempDir(), Options{Clock: clk.Now, Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	enqueue(t, s, note("x"))
	old, err := s.Lease(context.Background(), clk.Now(), 1, 10, time.Second)
	if err != nil || len(old) != 1 {
		t.Fatalf("lease: %v %v", old, err)
	}
	sc, _ := s.Schedule(context.Background(), clk.Now())
	if !sc.NextDue.Equal(clk.Now().Add(time.Second)) || !sc.OldestQueued.IsZero() {
		t.Errorf("schedule while leased = %+v", sc)
	}
	if bs := lease(t, s, clk.Now().Add(999*time.Millisecond), 1, 10); len(bs) != 0 {
		t.Fatal("lease taken before it lapsed")
	}
	clk.Advance(time.Second)
	// The lapsed lease's row counts as waiting again, for max age.
	if sc, _ := s.Schedule(context.Background(), clk.Now()); !sc.OldestQueued.Equal(old[0].Deliveries[0].QueuedAt) {
		t.Errorf("schedule after the lease lapsed = %+v", sc)
	}
	fresh := lease(t, s, clk.Now(), 1, 10)
	if len(fresh) != 1 || fresh[0].Deliveries[0].Lease == old[0].Deliveries[0].Lease {
		t.Fatalf("lapsed lease not re-leased: %+v", fresh)
	}
	if err := s.MarkDelivered(context.Background(), old[0].Deliveries[0], "old"); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(logs.String(), "no longer leased") {
		t.Errorf("stale result not logged: %s", logs.String())
	}
	if err := s.MarkDelivered(context.Background(), fresh[0].Deliveries[0], "new"); err != nil {
		t.Fatal(err)
	}
	r := records(t, s, Filter{State: StateDelivered})
	if len(r) != 1 || r[0].APIMessageID != "new" {
		t.Errorf("delivered %+v, want the fresh lease's result", r)
	}
}

func TestFailExpired(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now})
	msg := func(text, num string) Message {
		return Message{Receiver: "r", Text: text, Segments: 1, Numbers: []string{num}}
	}
	enqueue(t, s, Notification{Source: "t", Messages: []Message{msg("a", "+1"), msg("b", "+2"), msg("c", "+3")}})
	// +1 failed once and waits in the queue (keeping its error), +2 is in
	// flight with a live lease, +3 in flight with a lease that will lapse.
	leaseOne := func(leaseFor time.Duration) Delivery {
		t.Helper()
		bs, err := s.Lease(context.Background(), clk.Now(), 1, 1, leaseFor)
		if err != nil || len(bs) != 1 {
			t.Fatalf("lease: %v %v", bs, err)
		}
		return bs[0].Deliveries[0]
	}
	if err := s.Reschedule(context.Background(), leaseOne(time.Minute), clk.Now().Add(time.Millisecond), "status 500"); err != nil {
		t.Fatal(err)
	}
	if d := leaseOne(2 * time.Hour); d.Number != "+2" {
		t.Fatalf("leased %s, want +2", d.Number)
	}
	if d := leaseOne(time.Minute); d.Number != "+3" {
		t.Fatalf("leased %s, want +3", d.Number)
	}
	clk.Advance(30 * time.Minute)
	enqueue(t, s, Notification{Source: "t", Messages: []Message{{Receiver: "r", Text: "young", Segments: 1, Numbers: []string{"+4"}}}})

	n, err := s.FailExpired(context.Background(), clk.Now(), time.Hour)
	if err != nil || n != 0 {
		t.Fatalf("before max age: n=%d err=%v", n, err)
	}
	clk.Advance(31 * time.Minute)
	n, err = s.FailExpired(context.Background(), clk.Now(), time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	// +1 waits in the queue, +3's one-minute lease lapsed: both fail. +2
	// holds a live lease and +4 is young.
	if n != 2 {
		t.Errorf("failed %d, want 2", n)
	}
	got := map[string]Record{}
	for _, r := range records(t, s, Filter{}) {
		got[r.Number] = r
	}
	if r := got["+1"]; r.State != StateFailed || r.ErrorCode != "max_age" || r.Error != "not delivered within max age 1h0m0s; last error: status 500" {
		t.Errorf("+1: %+v", r)
	}
	if r := got["+3"]; r.State != StateFailed || r.Error != "not delivered within max age 1h0m0s" {
		t.Errorf("+3: %+v", r)
	}
	if got["+2"].State != StateSending || got["+4"].State != StatePending {
		t.Errorf("+2 %s, +4 %s", got["+2"].State, got["+4"].State)
	}
}

func TestRetry(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now})
	enqueue(t, s, note("x"))
	bs := lease(t, s, clk.Now(), 1, 2)
	failed, delivered := bs[0].Deliveries[0], bs[0].Deliveries[1]
	if err := s.Complete(context.Background(), []Outcome{Failed(failed, "E101", "no"), Delivered(delivered, "a")}); err != nil {
		t.Fatal(err)
	}
	for len(s.Wake()) > 0 {
		<-s.Wake()
	}
	clk.Advance(48 * time.Hour)
	for _, tc := range []struct {
		name string
		id   int64
		want error
	}{
		{"failed", failed.ID, nil},
		{"again: now pending", failed.ID, ErrNotFailed},
		{"delivered", delivered.ID, ErrNotFailed},
		{"unknown", 999999, ErrNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := s.Retry(context.Background(), tc.id)
			if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
		})
	}
	select {
	case <-s.Wake():
	default:
		t.Error("no wake after retry")
	}
	bs = lease(t, s, clk.Now(), 1, 2)
	if len(bs) != 1 || len(bs[0].Deliveries) != 1 || bs[0].Deliveries[0].ID != failed.ID {
		t.Fatalf("after retry leased %+v", bs)
	}
	d := bs[0].Deliveries[0]
	if d.Attempts != 0 || !d.QueuedAt.Equal(clk.Now()) {
		t.Errorf("retried delivery %+v: attempts and age must start afresh", d)
	}
}

func TestPrune(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now, Retention: 24 * time.Hour})
	done := enqueue(t, s, note("done"))
	open := enqueue(t, s, note("open"))
	unrouted := enqueue(t, s, Notification{Source: "x"})
	bs := lease(t, s, clk.Now(), 10, 10)
	var outs []Outcome
	for _, b := range bs {
		if b.Text == "done" {
			outs = append(outs, Delivered(b.Deliveries[0], "a"), Failed(b.Deliveries[1], "E", "e"))
		}
	}
	if err := s.Complete(context.Background(), outs); err != nil {
		t.Fatal(err)
	}
	clk.Advance(23 * time.Hour)
	recent := enqueue(t, s, Notification{Source: "x"})
	if n, err := s.Prune(context.Background(), 24*time.Hour); err != nil || n != 0 {
		t.Fatalf("prune before retention: n=%d err=%v", n, err)
	}
	clk.Advance(2 * time.Hour)
	n, err := s.Prune(context.Background(), 24*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if n != 2 {
		t.Errorf("pruned %d notifications, want 2 (finished and unrouted)", n)
	}
	var ids []int64
	rows, err := s.rdb.Query("SELECT id FROM notifications ORDER BY id")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var id int64
		rows.Scan(&id)
		ids = append(ids, id)
	}
	rows.Close()
	if !slices.Equal(ids, []int64{open, recent}) {
		t.Errorf("kept %v, want %v (pruned %d and %d)", ids, []int64{open, recent}, done, unrouted)
	}
	var msgs, dels int
	s.rdb.QueryRow("SELECT (SELECT count(*) FROM messages), (SELECT count(*) FROM deliveries)").Scan(&msgs, &dels)
	if msgs != 1 || dels != 2 {
		t.Errorf("messages=%d deliveries=%d after prune, want 1 and 2 (cascade)", msgs, dels)
	}
}

func TestBackgroundPrune(t *testing.T) {
	clk := newClock()
	var logs syncBuffer
	s := open(t, t.TempDir(), Options{Clock: clk.Now, Retention: time.Hour, PruneInterval: 5 * time.Millisecond,
		Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	enqueue(t, s, Notification{Source: "x"})
	clk.Advance(2 * time.Hour)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "pruned outbox") {
		if time.Now().After(deadline) {
			t.Fatalf("background prune did not run: %s", logs.String())
		}
		time.Sleep(5 * time.Millisecond)
	}
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

func TestDeliveriesFilter(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now})
	a := enqueue(t, s, note("a"))
	clk.Advance(time.Minute)
	since := clk.Now()
	b := enqueue(t, s, note("b"))
	clk.Advance(time.Minute)
	bs := lease(t, s, clk.Now(), 1, 1)
	if err := s.MarkFailed(context.Background(), bs[0].Deliveries[0], "E", "e"); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want int
	}{
		{"all", Filter{}, 4},
		{"failed", Filter{State: StateFailed}, 1},
		{"pending", Filter{State: StatePending}, 3},
		{"since", Filter{Since: since}, 3},
		{"notification", Filter{NotificationID: b}, 2},
		{"limit", Filter{Limit: 1}, 1},
		{"notification and state", Filter{NotificationID: b, State: StateFailed}, 0},
		{"other notification and state", Filter{NotificationID: a, State: StateFailed}, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := len(records(t, s, tc.f)); got != tc.want {
				t.Errorf("got %d rows, want %d", got, tc.want)
			}
		})
	}
	rs := records(t, s, Filter{Limit: 1})
	if rs[0].State != StateFailed {
		t.Errorf("most recently updated first: got %+v", rs[0])
	}
}

func TestMetricsCollector(t *testing.T) {
	clk := newClock()
	reg := prometheus.NewRegistry()
	m := NewMetrics(reg)
	// Before a store is open the gauges are absent, not zero.
	if n := collectCount(m.stats); n != 0 {
		t.Errorf("collected %d metrics without a store", n)
	}
	s := open(t, t.TempDir(), Options{Clock: clk.Now, Metrics: m})
	enqueue(t, s, note("x"))
	clk.Advance(90 * time.Second)
	got := gauges(t, reg)
	if got["smsbridge_outbox_pending"] != 2 || got["smsbridge_outbox_oldest_pending_age_seconds"] != 90 {
		t.Errorf("gauges = %v, want pending 2 and oldest age 90", got)
	}
	bs := lease(t, s, clk.Now(), 1, 10)
	if err := s.Complete(context.Background(), []Outcome{Delivered(bs[0].Deliveries[0], ""), Delivered(bs[0].Deliveries[1], "")}); err != nil {
		t.Fatal(err)
	}
	got = gauges(t, reg)
	if got["smsbridge_outbox_pending"] != 0 || got["smsbridge_outbox_oldest_pending_age_seconds"] != 0 {
		t.Errorf("gauges after delivery = %v, want zeros", got)
	}
	s.Close()
	if n := collectCount(m.stats); n != 0 {
		t.Errorf("collected %d metrics after close", n)
	}
}

// BenchmarkEnqueue measures durable enqueues per second from many
// concurrent callers, each a webhook with one message to three numbers.
func BenchmarkEnqueue(b *testing.B) {
	m := NewMetrics(prometheus.NewRegistry())
	s := open(b, b.TempDir(), Options{Metrics: m})
	b.SetParallelism(16) // webhooks are I/O-bound callers, far more than cores
	n := Notification{Source: "alertmanager", GroupKey: "k", Status: "firing", Messages: []Message{{
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
	h := histogram(b, m.batchSize)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "enqueues/s")
	if h.GetSampleCount() > 0 {
		b.ReportMetric(h.GetSampleSum()/float64(h.GetSampleCount()), "notifications/commit")
	}
}

// BenchmarkEnqueueSerial is the baseline without company: one caller, so
// every enqueue pays a whole commit and fsync.
func BenchmarkEnqueueSerial(b *testing.B) {
	s := open(b, b.TempDir(), Options{})
	n := Notification{Source: "alertmanager", Messages: []Message{{
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

// TestReadOnlyWrites makes every write method meet a read-only database
// (PRAGMA query_only, as in TestWriteFailures): each must return an error,
// none may pretend, and each works again once writes are possible.
func TestReadOnlyWrites(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now})
	enqueue(t, s, note("x"))
	bs := lease(t, s, clk.Now(), 1, 1)
	d := bs[0].Deliveries[0]
	if err := s.MarkFailed(context.Background(), d, "E", "e"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	calls := []struct {
		name string
		call func() error
	}{
		{"lease", func() error { _, err := s.Lease(ctx, clk.Now(), 1, 10, time.Minute); return err }},
		{"complete", func() error { return s.Release(ctx, d) }},
		{"fail expired", func() error { _, err := s.FailExpired(ctx, clk.Now(), time.Hour); return err }},
		{"retry", func() error { return s.Retry(ctx, d.ID) }},
		{"prune", func() error { _, err := s.Prune(ctx, time.Hour); return err }},
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

// TestClosedStore: every method of a closed store fails rather than
// pretending.
func TestClosedStore(t *testing.T) {
	s, err := Open(t.TempDir(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	ctx := context.Background()
	for name, call := range map[string]func() error{
		"lease":        func() error { _, err := s.Lease(ctx, time.Now(), 1, 1, time.Minute); return err },
		"complete":     func() error { return s.Complete(ctx, []Outcome{Released(Delivery{ID: 1})}) },
		"fail expired": func() error { _, err := s.FailExpired(ctx, time.Now(), time.Hour); return err },
		"schedule":     func() error { _, err := s.Schedule(ctx, time.Now()); return err },
		"stats":        func() error { _, err := s.Stats(ctx); return err },
		"deliveries":   func() error { _, err := s.Deliveries(ctx, Filter{}); return err },
		"retry":        func() error { return s.Retry(ctx, 1) },
		"prune":        func() error { _, err := s.Prune(ctx, time.Hour); return err },
	} {
		if err := call(); err == nil {
			t.Errorf("%s on a closed store succeeded", name)
		}
	}
}

func TestLastStatus(t *testing.T) {
	clk := newClock()
	s := open(t, t.TempDir(), Options{Clock: clk.Now})
	ctx := context.Background()
	if st, ok, err := s.LastStatus(ctx, "g1"); err != nil || ok || st != "" {
		t.Fatalf("empty store: %q %v %v", st, ok, err)
	}
	for _, status := range []string{"firing", "resolved", "firing"} {
		if _, err := s.Enqueue(ctx, Notification{Source: "ci", GroupKey: "g1", Status: status}); err != nil {
			t.Fatal(err)
		}
		clk.Advance(time.Second)
		st, ok, err := s.LastStatus(ctx, "g1")
		if err != nil || !ok || st != status {
			t.Fatalf("after %s: %q %v %v", status, st, ok, err)
		}
	}
	if _, ok, _ := s.LastStatus(ctx, "g2"); ok {
		t.Error("another group's status returned")
	}
}
