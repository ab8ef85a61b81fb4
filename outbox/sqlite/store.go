package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// FileName is the name of the database file inside the storage directory.
const FileName = "smsbridge.db"

// Defaults for Options.
const (
	DefaultRetention     = 7 * 24 * time.Hour
	DefaultBatchSize     = 256
	DefaultPruneInterval = time.Hour
	DefaultBusyTimeout   = 10 * time.Second
)

var (
	// ErrClosed is returned by calls on a closed Store.
	ErrClosed = errors.New("outbox closed")
	// ErrInvalid marks a notification the store refuses to record.
	ErrInvalid = errors.New("invalid notification")
	// ErrNotFailed is returned by Retry for a delivery that is not in the
	// failed state.
	ErrNotFailed = errors.New("the delivery has not failed")
	// ErrNotFound is returned by Retry when no delivery has the id.
	ErrNotFound = errors.New("no delivery with that id")
)

// Options configure a Store. The zero value is usable.
type Options struct {
	// Logger receives the store's own messages; nil discards them.
	Logger *slog.Logger
	// Metrics, when set, receives the store's metrics; nil records into a
	// private registry.
	Metrics *Metrics
	// Retention is how long delivered and failed notifications are kept
	// before the periodic prune removes them. Default 7 days.
	Retention time.Duration
	// PruneInterval is how often the store prunes; negative disables the
	// background prune (Prune can still be called). Default 1h.
	PruneInterval time.Duration
	// BatchSize is the most notifications written in one group commit.
	// Default 256.
	BatchSize int
	// BusyTimeout bounds how long a statement waits for a lock held by
	// another connection (a checkpoint, a reader during WAL recovery).
	// Default 10s.
	BusyTimeout time.Duration
	// Clock returns the current time; default time.Now. Tests move it.
	Clock func() time.Time
}

// Store is the durable outbox. Its methods are safe for concurrent use.
type Store struct {
	wdb, rdb  *sql.DB
	logger    *slog.Logger
	metrics   *Metrics
	clock     func() time.Time
	retention time.Duration
	batchSize int

	reqs chan *enqueueReq
	wake chan struct{}
	done chan struct{}
	// ctx ends when Close begins, interrupting background work.
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup
	leaseSeq  atomic.Int64

	// ins are the group commit's insert statements, prepared once by the
	// writer goroutine (the only one that uses them) on first use.
	ins *inserts

	// beforeCommit, when set by a test, runs in the writer goroutine before
	// each group commit with the number of notifications in it.
	beforeCommit func(n int)
}

// Open opens or creates the outbox in dir, creating dir if needed, and
// returns every delivery left in flight by an earlier run to the queue.
func Open(dir string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = NewMetrics(prometheus.NewRegistry())
	}
	if opts.Retention <= 0 {
		opts.Retention = DefaultRetention
	}
	if opts.PruneInterval == 0 {
		opts.PruneInterval = DefaultPruneInterval
	}
	if opts.BatchSize <= 0 {
		opts.BatchSize = DefaultBatchSize
	}
	if opts.BusyTimeout <= 0 {
		opts.BusyTimeout = DefaultBusyTimeout
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	path := filepath.Join(dir, FileName)
	// The driver splits its parameters off at the first '?', so a path
	// holding one would open the wrong file.
	if strings.Contains(path, "?") {
		return nil, fmt.Errorf("open outbox: path %q must not contain '?'", path)
	}
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}

	busy := fmt.Sprint(opts.BusyTimeout.Milliseconds())
	wq := url.Values{}
	wq.Add("_pragma", "busy_timeout("+busy+")")
	wq.Add("_pragma", "journal_mode(WAL)")
	// See the package documentation for why FULL and not NORMAL.
	wq.Add("_pragma", "synchronous(FULL)")
	wq.Add("_pragma", "foreign_keys(1)")
	// BEGIN IMMEDIATE takes the write lock up front, so a transaction never
	// fails half-way trying to upgrade a read lock.
	wq.Set("_txlock", "immediate")
	wdb, err := sql.Open("sqlite", path+"?"+wq.Encode())
	if err != nil {
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	// One connection: SQLite has one writer anyway, and queueing for it in
	// database/sql is cheaper and saner than SQLITE_BUSY retries.
	wdb.SetMaxOpenConns(1)
	wdb.SetMaxIdleConns(1)
	wdb.SetConnMaxLifetime(0)
	wdb.SetConnMaxIdleTime(0)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	if err := migrate(ctx, wdb); err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}

	rq := url.Values{}
	rq.Add("_pragma", "busy_timeout("+busy+")")
	rq.Set("_query_only", "1")
	rdb, err := sql.Open("sqlite", path+"?"+rq.Encode())
	if err != nil {
		wdb.Close()
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	rdb.SetMaxOpenConns(4)
	rdb.SetMaxIdleConns(4)

	s := &Store{
		wdb:       wdb,
		rdb:       rdb,
		logger:    opts.Logger,
		metrics:   opts.Metrics,
		clock:     opts.Clock,
		retention: opts.Retention,
		batchSize: opts.BatchSize,
		reqs:      make(chan *enqueueReq, 4*opts.BatchSize),
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	// Lease tokens only need to differ from those of earlier runs' rows,
	// which recover() clears anyway; the clock makes them readable.
	s.leaseSeq.Store(time.Now().UnixNano())

	recovered, err := s.recoverLeases(ctx)
	if err != nil {
		s.cancel()
		s.closeDBs()
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	if recovered > 0 {
		s.logger.Warn("returned deliveries left in flight by the previous run to the queue; they will be sent again (at-least-once)", "deliveries", recovered)
	}
	if st, err := s.Stats(ctx); err == nil && st.Pending > 0 {
		s.signal()
	}

	s.metrics.stats.source.Store(s)
	s.wg.Add(1)
	go s.writer()
	if opts.PruneInterval > 0 {
		s.wg.Add(1)
		go s.pruner(opts.PruneInterval)
	}
	s.logger.Info("outbox open", "path", path, "journal_mode", "wal", "synchronous", "full")
	return s, nil
}

// Close stops the writer after its current commit, fails Enqueue calls
// still waiting with ErrClosed, and closes the database. Stop intake and the
// dispatcher first, so their last writes land.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.cancel()
		s.wg.Wait()
		s.metrics.stats.source.CompareAndSwap(s, nil)
		s.closeErr = s.closeDBs()
	})
	return s.closeErr
}

func (s *Store) closeDBs() error {
	if s.ins != nil {
		s.ins.close()
	}
	return errors.Join(s.rdb.Close(), s.wdb.Close())
}

// Wake returns a channel that receives a value after a commit adds work
// that is due now. It holds at most one value, so a slow reader sees one
// signal for many commits and should then lease until nothing is due.
func (s *Store) Wake() <-chan struct{} { return s.wake }

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// recoverLeases returns every row still sending to pending: the process that
// leased them is gone (one process owns the file).
func (s *Store) recoverLeases(ctx context.Context) (int64, error) {
	res, err := s.wdb.ExecContext(ctx, `UPDATE deliveries
		SET state = 'pending', lease = 0, lease_until = NULL, updated_at = ?
		WHERE state = 'sending'`, ms(s.clock()))
	if err != nil {
		return 0, fmt.Errorf("recover leased deliveries: %w", err)
	}
	return res.RowsAffected()
}

// resetWriter ends a transaction SQLite may have left open on the write
// connection after a failed COMMIT (it keeps the transaction open after
// some errors, and every later BEGIN would then fail).
func (s *Store) resetWriter() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, _ = s.wdb.ExecContext(ctx, "ROLLBACK") // "no transaction is active" is the usual, fine answer
}

func (s *Store) pruner(every time.Duration) {
	defer s.wg.Done()
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			n, err := s.Prune(s.ctx, s.retention)
			switch {
			case s.ctx.Err() != nil:
				return // closing: the prune was cut short, and that is fine
			case err != nil:
				s.logger.Error("prune outbox", "err", err)
			case n > 0:
				s.logger.Info("pruned outbox", "notifications", n, "retention", s.retention)
			}
		}
	}
}

// ms converts t to the unix milliseconds the schema stores.
func ms(t time.Time) int64 { return t.UnixMilli() }

// fromMS converts stored unix milliseconds back to a time.
func fromMS(v int64) time.Time { return time.UnixMilli(v) }
