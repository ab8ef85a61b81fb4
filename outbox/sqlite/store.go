package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver

	"github.com/smsbridge/smsbridge/outbox"
)

// FileName is the name of the database file inside the storage directory.
const FileName = "smsbridge.db"

// Internal tuning. These are not settings: no operator has a reason to
// change them, and the tests pin behaviour, not these numbers.
const (
	// maxBatch is the most notifications written in one group commit.
	maxBatch = 256
	// defaultPruneInterval is how often the background prune runs when
	// Options.PruneInterval is zero.
	defaultPruneInterval = time.Hour
	// defaultBusyTimeout bounds lock waits when Options.BusyTimeout is
	// zero.
	defaultBusyTimeout = 10 * time.Second
	// readConns is the size of the read pool.
	readConns = 4
)

// Options configure a Store. Retention is required while the background
// prune runs; every other field may be left zero.
type Options struct {
	// Logger receives the store's own messages; nil discards them. The
	// caller adds the component.
	Logger *slog.Logger
	// Metrics receives the store's metrics; nil records into metrics
	// registered nowhere.
	Metrics *outbox.Metrics
	// Retention is how long finished notifications are kept before the
	// background prune removes them. It must be positive unless
	// PruneInterval is negative.
	Retention time.Duration
	// PruneInterval is how often the store prunes; zero means hourly,
	// negative disables the background prune (Prune can still be called).
	PruneInterval time.Duration
	// Clock returns the current time; nil means time.Now. Tests move it.
	Clock func() time.Time
	// Owner is the id recorded with every lease this store takes; empty
	// means "<hostname>-<pid>-<8 random hex digits>", unique per Open.
	Owner string
	// BusyTimeout bounds how long a statement waits for a lock held by
	// another connection (a checkpoint, a reader during WAL recovery);
	// zero means 10s, negative is refused.
	BusyTimeout time.Duration
	// MinFree is the free space, in bytes, below which Health reports the
	// store unfit for new notifications (storage.min_free), so intake is
	// refused before the disk is full. With it the store also keeps a
	// reserve file of MinFree/2, at most 4 MiB, in the directory, given
	// back when the disk fills so that what was accepted can still be
	// leased and completed. Zero turns both off; negative is refused.
	MinFree int64
}

// Store is the SQLite outbox. Its methods are safe for concurrent use.
type Store struct {
	wdb, rdb  *sql.DB
	lock      *dirLock
	logger    *slog.Logger
	metrics   *outbox.Metrics
	unwatch   func()
	clock     func() time.Time
	owner     string
	retention time.Duration

	// calls are the Enqueue calls waiting for the group commit.
	calls *outbox.GroupCommit
	wake  chan struct{}
	done  chan struct{}
	// ctx ends when Close begins, interrupting background work.
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	closeErr  error
	wg        sync.WaitGroup

	// ins are the group commit's statements, prepared once by the writer
	// goroutine (the only one that uses them) on first use; twIns the
	// two-way ones.
	ins    *inserts
	twIns  *twoWayInserts
	escIns *escInserts

	// dir is the storage directory and dirInfo what it was when the store
	// opened it, to notice it removed or replaced.
	dir     string
	dirInfo os.FileInfo
	// minFree and reserveSize are Options.MinFree and the reserve file's
	// size; reserveMu serialises releasing and restoring the reserve.
	minFree, reserveSize int64
	reserveMu            sync.Mutex
	// low is set while space is low (see setLow): Enqueue refuses.
	low atomic.Bool
	// freeSpace measures the free bytes under dir; tests replace it.
	freeSpace func(dir string) (int64, error)

	// beforeCommit, when set by a test, runs in the writer goroutine before
	// each group commit with the number of notifications in it.
	beforeCommit func(n int)
}

var _ outbox.Store = (*Store)(nil)

// Open opens or creates the outbox in dir, creating dir if needed. It
// takes the directory's lock first, failing within a quarter second if
// another store holds it (the error wraps ErrInUse), and then returns
// every delivery still leased to the queue: with the lock held, no
// process that leased them is alive.
func Open(dir string, opts Options) (*Store, error) {
	if err := opts.check(); err != nil {
		return nil, fmt.Errorf("open outbox: %w", err)
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Metrics == nil {
		opts.Metrics = outbox.NewMetrics(nil)
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	if opts.Owner == "" {
		opts.Owner = outbox.NewOwner()
	}
	if opts.PruneInterval == 0 {
		opts.PruneInterval = defaultPruneInterval
	}
	if opts.BusyTimeout == 0 {
		opts.BusyTimeout = defaultBusyTimeout
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
	lock, err := lockDir(dir)
	if err != nil {
		return nil, err
	}
	s, err := open(path, lock, opts)
	if err != nil {
		lock.release()
		return nil, err
	}
	if s.minFree > 0 {
		// Health restores the reserve once there is room for it; a start on
		// a nearly full disk is reported there.
		if err := s.keepReserve(context.Background()); err != nil {
			s.logger.Warn("outbox opened on a nearly full disk", "err", err)
		}
	}
	return s, nil
}

// check refuses options that cannot work, instead of replacing them.
func (o Options) check() error {
	if o.PruneInterval >= 0 && o.Retention <= 0 {
		return fmt.Errorf("retention must be positive while the background prune runs, got %s", o.Retention)
	}
	if o.BusyTimeout < 0 {
		return fmt.Errorf("busy timeout must not be negative, got %s", o.BusyTimeout)
	}
	if o.MinFree < 0 {
		return fmt.Errorf("min free must not be negative, got %d", o.MinFree)
	}
	return nil
}

// open opens the database at path, with its directory's lock held.
func open(path string, lock *dirLock, opts Options) (*Store, error) {
	dir := filepath.Dir(path)
	dirInfo, err := os.Stat(dir)
	if err != nil {
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
	rdb.SetMaxOpenConns(readConns)
	rdb.SetMaxIdleConns(readConns)

	s := &Store{
		wdb:       wdb,
		rdb:       rdb,
		lock:      lock,
		logger:    opts.Logger,
		metrics:   opts.Metrics,
		clock:     opts.Clock,
		owner:     opts.Owner,
		retention: opts.Retention,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
		dir:       dir,
		dirInfo:   dirInfo,
		minFree:   opts.MinFree,
		// A reserve larger than the margin would itself push free space
		// below it when restored.
		reserveSize: min(opts.MinFree/2, maxReserve),
		freeSpace:   freeBytes,
	}
	s.calls = outbox.NewGroupCommit(maxBatch, s.done)
	s.ctx, s.cancel = context.WithCancel(context.Background())

	if err := s.recoverLeases(ctx); err != nil {
		s.cancel()
		s.closeDBs()
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	if err := s.recoverEscalations(ctx); err != nil {
		s.cancel()
		s.closeDBs()
		return nil, fmt.Errorf("open outbox %s: %w", path, err)
	}
	if sc, err := s.Schedule(ctx, s.clock()); err == nil && !sc.NextDue.IsZero() && !sc.NextDue.After(s.clock()) {
		s.signal()
	}

	s.unwatch = s.metrics.Watch(s, s.clock, s.logger)
	s.wg.Add(1)
	go s.writer()
	if opts.PruneInterval > 0 {
		s.wg.Add(1)
		go s.pruner(opts.PruneInterval)
	}
	s.logger.Info("outbox open", "path", path, "owner", s.owner, "journal_mode", "wal", "synchronous", "full")
	return s, nil
}

// Owner returns the id this store records with every lease it takes.
func (s *Store) Owner() string { return s.owner }

// Close stops the writer after its current commit, fails Enqueue calls
// still waiting with ErrClosed, closes the database and releases the
// directory lock. Stop intake and the dispatcher first, so their last
// writes land.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.cancel()
		s.wg.Wait()
		s.unwatch()
		s.closeErr = errors.Join(s.closeDBs(), s.lock.release())
	})
	return s.closeErr
}

func (s *Store) closeDBs() error {
	if s.ins != nil {
		s.ins.close()
	}
	if s.twIns != nil {
		s.twIns.close()
	}
	if s.escIns != nil {
		s.escIns.close()
	}
	return errors.Join(s.rdb.Close(), s.wdb.Close())
}

// closed returns outbox.ErrClosed once Close has begun. A call that passes
// it and meets the closing database fails with the driver's error instead;
// either way it fails.
func (s *Store) closed() error {
	select {
	case <-s.done:
		return outbox.ErrClosed
	default:
		return nil
	}
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

// recoverLeases returns every row still sending to the queue. The directory
// lock proves that no other process has the database open, and this store
// has leased nothing yet, so every holder of those leases is gone: waiting
// for their deadlines would only delay the pages.
func (s *Store) recoverLeases(ctx context.Context) error {
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // after Commit this is a no-op
	rows, err := tx.QueryContext(ctx, `SELECT lease_owner, count(*) FROM deliveries WHERE state = 'sending' GROUP BY lease_owner`)
	if err != nil {
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	var owners []string
	total := 0
	for rows.Next() {
		var owner string
		var n int
		if err := rows.Scan(&owner, &n); err != nil {
			rows.Close()
			return fmt.Errorf("recover leased deliveries: %w", err)
		}
		owners = append(owners, cmp.Or(owner, "unknown"))
		total += n
	}
	if err := rows.Err(); err != nil {
		rows.Close()
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	rows.Close()
	if total == 0 {
		return nil
	}
	if err := giveBack(ctx, tx, `state = 'sending'`); err != nil {
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `UPDATE deliveries
		SET state = 'pending', lease = '', lease_until = NULL, `+unadmit+`, updated_at = ?
		WHERE state = 'sending'`, ms(s.clock())); err != nil {
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("recover leased deliveries: %w", err)
	}
	slices.Sort(owners)
	s.logger.Warn("returned deliveries leased by a process that is gone to the queue; they will be sent again (at-least-once)",
		"deliveries", total, "owners", strings.Join(owners, ","))
	return nil
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
