// Package outboxtest is the conformance suite of the outbox contract: the
// behaviour every driver of outbox.Store must show, pinned once, as
// river's riverdrivertest pins its drivers. A driver's tests run it with a
// Harness that opens its stores:
//
//	func TestConformance(t *testing.T) {
//		outboxtest.Run(t, harness{})
//	}
//
// A driver that does not pass the suite is not done. Tests of what only
// one driver has (SQLite's group commit, pragmas, directory lock and
// migrations) stay beside that driver.
package outboxtest

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/smsbridge/smsbridge/outbox"
)

// Config is what the suite asks of a store it opens. Every field is set.
type Config struct {
	// Clock is the store's clock; the suite moves it.
	Clock func() time.Time
	// Logger receives the store's messages; the suite reads them.
	Logger *slog.Logger
	// Metrics receives the store's metrics. One Metrics serves every
	// store the suite opens on one backing, as main's does across a
	// restart.
	Metrics *outbox.Metrics
}

// Opener opens a store on one backing with cfg. The suite calls it again
// on the same backing to reopen a store after closing it, and, when the
// harness is Concurrent, while another store is still open on it. With an
// error it returns a nil interface, not a typed nil.
type Opener func(cfg Config) (outbox.Store, error)

// Harness opens stores of one driver for the suite.
type Harness interface {
	// Backing creates fresh, empty backing (a directory, a database
	// schema) that t's cleanup removes, and returns the function that
	// opens stores on it. The suite closes every store it opens in
	// cleanups registered after Backing returns, which run first.
	Backing(t testing.TB) Opener
	// Concurrent reports whether several stores may be open on one
	// backing at once (PostgreSQL: replicas). When false, a second Open
	// on a backing in use must fail, and the previous owner's leases are
	// provably dead at Open; the suite then checks that semantics
	// instead of the concurrent one.
	Concurrent() bool
}

// Run runs the conformance suite against h. Each test opens its own
// backing and runs in parallel with the others.
func Run(t *testing.T, h Harness) {
	tests := []suiteTest{
		{"EnqueueLeaseComplete", testEnqueueLeaseComplete},
		{"EnqueueValidation", testEnqueueValidation},
		{"EnqueueUnroutedAndDuplicates", testEnqueueUnroutedAndDuplicates},
		{"RequireFiring", testRequireFiring},
		{"RequireFiringConcurrent", testRequireFiringConcurrent},
		{"LeaseGrouping", testLeaseGrouping},
		{"LeaseOwner", testLeaseOwner},
		{"LeaseTokensUnique", testLeaseTokensUnique},
		{"LeaseLapses", testLeaseLapses},
		{"CompleteStaleToken", testCompleteStaleToken},
		{"CompleteOutcomes", testCompleteOutcomes},
		{"CompleteAtomic", testCompleteAtomic},
		{"RescheduleKeepsLastError", testRescheduleKeepsLastError},
		{"AccountRecorded", testAccountRecorded},
		{"CrashRecovery", testCrashRecovery},
		{"FailExpired", testFailExpired},
		{"Retry", testRetry},
		{"Wake", testWake},
		{"Prune", testPrune},
		{"DeliveriesFilter", testDeliveriesFilter},
		{"DeliveryByProviderID", testDeliveryByProviderID},
		{"Notifications", testNotifications},
		{"Counts", testCounts},
		{"State", testState},
		{"DeliveryID", testDeliveryID},
		{"DeliveryIDGuards", testDeliveryIDGuards},
		{"DeliveryIDConcurrent", testDeliveryIDConcurrent},
		{"DeliveryIDPrune", testDeliveryIDPrune},
		{"DeliveryIDNoise", testDeliveryIDNoise},
		{"Health", testHealth},
		{"Metrics", testMetrics},
		{"MergeByText", testMergeByText},
		{"Dedup", testDedup},
		{"DedupConcurrent", testDedupConcurrent},
		{"Stale", testStale},
		{"CancelHeld", testCancelHeld},
		{"EnqueueGuardValidation", testEnqueueGuardValidation},
		{"AdmitThrottle", testAdmitThrottle},
		{"AdmitConcurrent", testAdmitConcurrent},
		{"Release", testRelease},
		{"ReleaseConcurrent", testReleaseConcurrent},
		{"Budget", testBudget},
		{"PruneNoise", testPruneNoise},
		{"ClosedStore", testClosedStore},
		{"People", testPeople},
		{"OnceKey", testOnceKey},
		{"Overrides", testOverrides},
		{"ReplyCodes", testReplyCodes},
		{"ReplyCodesExhausted", testReplyCodesExhausted},
		{"ReplyCodesConcurrent", testReplyCodesConcurrent},
		{"Receipts", testReceipts},
		{"Acks", testAcks},
		{"AcksConcurrent", testAcksConcurrent},
		{"OptOuts", testOptOuts},
		{"ClaimAllow", testClaimAllow},
		{"PruneTwoWay", testPruneTwoWay},
		{"EscalationSchedule", testEscalationSchedule},
		{"EscalationLease", testEscalationLease},
		{"EscalationSend", testEscalationSend},
		{"EscalationStop", testEscalationStop},
		{"EscalationValidation", testEscalationValidation},
		{"EscalationLeaseConcurrent", testEscalationLeaseConcurrent},
		{"EscalationScheduleConcurrent", testEscalationScheduleConcurrent},
		{"PruneEscalations", testPruneEscalations},
	}
	if h.Concurrent() {
		tests = append(tests,
			suiteTest{"ConcurrentOwners", testConcurrentOwners},
			suiteTest{"ConcurrentShared", testConcurrentShared},
			suiteTest{"ConcurrentOnceKey", testConcurrentOnceKey},
		)
	} else {
		t.Log("the harness is exclusive (one store per backing): checking that a second Open fails, instead of the concurrent-owner tests")
		tests = append(tests, suiteTest{"ExclusiveOpen", testExclusiveOpen})
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.fn(t, h)
		})
	}
}

// suiteTest is one conformance test.
type suiteTest struct {
	name string
	fn   func(t *testing.T, h Harness)
}

// Clock is a settable time source: Now returns the time last set, Advance
// moves it. It is safe for concurrent use.
type Clock struct {
	mu sync.Mutex
	t  time.Time
}

// NewClock returns a Clock set to t.
func NewClock(t time.Time) *Clock { return &Clock{t: t} }

// Now returns the clock's time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

// Set sets the clock to t.
func (c *Clock) Set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

// Advance moves the clock by d.
func (c *Clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is one test's backing, clock, logs and metrics.
type env struct {
	t       *testing.T
	open    Opener
	clock   *Clock
	logs    *recorder
	reg     *prometheus.Registry
	metrics *outbox.Metrics
}

func newEnv(t *testing.T, h Harness) *env {
	t.Helper()
	reg := prometheus.NewRegistry()
	return &env{
		t:       t,
		open:    h.Backing(t),
		clock:   NewClock(time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)),
		logs:    &recorder{},
		reg:     reg,
		metrics: outbox.NewMetrics(reg),
	}
}

func (e *env) config() Config {
	return Config{Clock: e.clock.Now, Logger: slog.New(e.logs), Metrics: e.metrics}
}

// Open opens a store on the test's backing, closed when the test ends
// unless the test closes it first.
func (e *env) Open() outbox.Store {
	e.t.Helper()
	s, err := e.open(e.config())
	if err != nil {
		e.t.Fatalf("open: %v", err)
	}
	e.t.Cleanup(func() { s.Close() })
	return s
}

// Reopen closes s and opens the next store on the same backing.
func (e *env) Reopen(s outbox.Store) outbox.Store {
	e.t.Helper()
	if err := s.Close(); err != nil {
		e.t.Fatalf("close: %v", err)
	}
	return e.Open()
}

// recorder is a slog.Handler that keeps every record's level and message,
// so tests can tell that something was logged without depending on a
// driver's wording.
type recorder struct {
	mu      sync.Mutex
	records []slog.Record
}

func (r *recorder) Enabled(context.Context, slog.Level) bool { return true }

func (r *recorder) Handle(_ context.Context, rec slog.Record) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.records = append(r.records, rec.Clone())
	return nil
}

func (r *recorder) WithAttrs([]slog.Attr) slog.Handler { return r }
func (r *recorder) WithGroup(string) slog.Handler      { return r }

// warnings counts the records at warning level or above.
func (r *recorder) warnings() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, rec := range r.records {
		if rec.Level >= slog.LevelWarn {
			n++
		}
	}
	return n
}
