package postgres

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/smsbridge/smsbridge/outbox"
)

// Internal tuning. These are not settings: no operator has a reason to
// change them, and the tests pin behaviour, not these numbers.
const (
	// maxBatch is the most notifications written in one group commit.
	maxBatch = 256
	// writers is how many group commits run at once. PostgreSQL takes
	// concurrent writers (its own WAL flush is shared), so a second
	// commit need not wait for the first's round trips.
	writers = 4
	// defaultPruneInterval is how often the background prune runs when
	// Options.PruneInterval is zero.
	defaultPruneInterval = time.Hour
	// defaultPollInterval is Options.PollInterval's default.
	defaultPollInterval = time.Second
	// queryTimeout bounds every call, so an unreachable server fails
	// calls (intake answers 503) instead of hanging them.
	queryTimeout = 10 * time.Second
	// connectTimeout bounds one connection attempt.
	connectTimeout = 5 * time.Second
	// defaultMaxConns is the pool's size unless the DSN sets
	// pool_max_conns.
	defaultMaxConns = 8
	// listenRetry is the longest wait between attempts to connect the
	// LISTEN connection again.
	listenRetry = 5 * time.Second
)

// Server-side session settings for every connection the store opens (the
// DSN's own values win). They let the server notice a client whose host
// vanished without closing its sockets within about ten seconds, so a
// dead leader's lock and a dead writer's row locks are released: keepalive
// probes after 4 s idle, every 2 s, 3 unanswered end the session;
// tcp_user_timeout ends it when sent data stays unacknowledged for 10 s.
var sessionParams = map[string]string{
	"tcp_keepalives_idle":     "4",
	"tcp_keepalives_interval": "2",
	"tcp_keepalives_count":    "3",
	"tcp_user_timeout":        "10000",
	"application_name":        "smsbridge",
}

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
	// negative disables the background prune.
	PruneInterval time.Duration
	// Clock returns the current time; nil means time.Now.
	Clock func() time.Time
	// Owner is the id recorded with every lease this store takes; empty
	// means "<hostname>-<pid>-<8 random hex digits>", unique per Open.
	Owner string
	// Schema is the schema the tables live in, created if missing; empty
	// means the connection's default (public). Replicas must agree.
	Schema string
	// PollInterval is how often the store looks for work that other
	// replicas committed when it cannot hear their notifications (LISTEN
	// is off or its connection is down); zero means one second.
	PollInterval time.Duration
	// NoListen is the mode for a connection pooler in transaction mode
	// (PgBouncer), which keeps no server session for a client: the store
	// never LISTENs (it polls for other replicas' work), leads through a
	// lease row renewed every second instead of a session advisory lock,
	// sends no session settings at connect, and uses unnamed statements.
	NoListen bool
}

// Store is the PostgreSQL outbox. Its methods are safe for concurrent use.
type Store struct {
	pool    *pgxpool.Pool
	connCfg *pgx.ConnConfig // for the dedicated connections
	schema  string
	key     int32 // this backing's advisory-lock key
	// channel is the NOTIFY channel of this backing.
	channel string
	logger  *slog.Logger
	metrics *outbox.Metrics
	unwatch func()
	clock   func() time.Time
	owner   string
	// redact removes the DSN's password from an error's text.
	redact    func(error) error
	retention time.Duration
	poll      time.Duration
	listen    bool
	// listening is true while the LISTEN connection is up: polling is
	// then not needed.
	listening atomic.Bool
	// term is this store's leadership while it leads; Lease checks it.
	term atomic.Pointer[term]

	// calls are the Enqueue calls waiting for the group commit.
	calls *outbox.GroupCommit
	wake  chan struct{}
	done  chan struct{}
	// ctx ends when Close begins, interrupting background work.
	ctx       context.Context
	cancel    context.CancelFunc
	closeOnce sync.Once
	wg        sync.WaitGroup
}

var (
	_ outbox.Store         = (*Store)(nil)
	_ outbox.Leadership    = (*Store)(nil)
	_ outbox.HealthChecker = (*Store)(nil)
)

// ErrDSN is wrapped by Open's error for a DSN that cannot be parsed. The
// error never repeats the DSN or any part of it: it may hold a password.
var ErrDSN = errors.New("the storage DSN is not a valid PostgreSQL connection string (its value is not shown)")

// Open connects to the database dsn names (a postgres:// URL or
// key=value pairs, as libpq takes them), brings the schema up to date and
// starts the group commit. Several stores, in several processes, may be
// open on one database at once: each is a replica. No error or log line
// carries the DSN's password.
func Open(ctx context.Context, dsn string, opts Options) (*Store, error) {
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
	if opts.PollInterval == 0 {
		opts.PollInterval = defaultPollInterval
	}
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		// pgx's message quotes the string (best-effort redacted) and a
		// URL parser's cause quotes it whole: say only that it failed.
		return nil, fmt.Errorf("open outbox: %w", ErrDSN)
	}
	redact := redactor(cfg.ConnConfig.Password)
	if _, ok := dsnParams(dsn)["pool_max_conns"]; !ok {
		cfg.MaxConns = defaultMaxConns
	}
	cc := cfg.ConnConfig
	if cc.ConnectTimeout == 0 {
		cc.ConnectTimeout = connectTimeout
	}
	if opts.NoListen {
		// A pooler refuses startup parameters it does not know, and a
		// statement prepared on one server connection is not on the next.
		if !dsnParams(dsn)["default_query_exec_mode"] {
			cc.DefaultQueryExecMode = pgx.QueryExecModeExec
		}
	} else {
		for k, v := range sessionParams {
			if _, ok := cc.RuntimeParams[k]; !ok {
				cc.RuntimeParams[k] = v
			}
		}
		// Pooled connections hold row locks only inside a transaction:
		// one left idle in it (a client that froze) is ended by the
		// server.
		if _, ok := cc.RuntimeParams["idle_in_transaction_session_timeout"]; !ok {
			cc.RuntimeParams["idle_in_transaction_session_timeout"] = "15000"
		}
	}
	if opts.Schema != "" {
		cc.RuntimeParams["search_path"] = pgx.Identifier{opts.Schema}.Sanitize()
	}
	// Client side too: the kernel probes an idle connection, so a query
	// on a connection to a vanished server fails instead of waiting.
	dialer := &net.Dialer{KeepAliveConfig: net.KeepAliveConfig{Enable: true, Idle: 5 * time.Second, Interval: 2 * time.Second, Count: 3}}
	cc.DialFunc = dialer.DialContext
	s := &Store{
		connCfg:   cc.Copy(),
		schema:    opts.Schema,
		key:       backingKey(cc.Database, opts.Schema),
		logger:    opts.Logger,
		metrics:   opts.Metrics,
		clock:     opts.Clock,
		owner:     opts.Owner,
		redact:    redact,
		retention: opts.Retention,
		poll:      opts.PollInterval,
		listen:    !opts.NoListen,
		wake:      make(chan struct{}, 1),
		done:      make(chan struct{}),
	}
	s.calls = outbox.NewGroupCommit(maxBatch, s.done)
	// The dedicated connections never sit in a transaction.
	delete(s.connCfg.RuntimeParams, "idle_in_transaction_session_timeout")
	s.channel = fmt.Sprintf("smsbridge_wake_%08x", uint32(s.key))

	octx, cancel := context.WithTimeout(ctx, time.Minute)
	defer cancel()
	if err := s.prepare(octx); err != nil {
		return nil, fmt.Errorf("open outbox: %w", redact(err))
	}
	s.pool, err = pgxpool.NewWithConfig(octx, cfg)
	if err != nil {
		return nil, fmt.Errorf("open outbox: %w", redact(err))
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	if sc, err := s.Schedule(octx, s.clock()); err != nil {
		s.cancel()
		s.pool.Close()
		return nil, fmt.Errorf("open outbox: %w", redact(err))
	} else if !sc.NextDue.IsZero() && !sc.NextDue.After(s.clock()) {
		s.signal()
	}

	s.unwatch = s.metrics.Watch(s, s.clock, s.logger)
	for range writers {
		s.wg.Add(1)
		go s.writer()
	}
	if opts.PruneInterval > 0 {
		s.wg.Add(1)
		go s.pruner(opts.PruneInterval)
	}
	if s.listen {
		s.wg.Add(1)
		go s.listener()
	}
	s.wg.Add(1)
	go s.poller()
	s.logger.Info("outbox open", "driver", "postgres", "host", cc.Host, "database", cc.Database,
		"schema", opts.Schema, "owner", s.owner, "listen", s.listen, "poll_interval", s.poll)
	return s, nil
}

// prepare creates the schema if asked, migrates and checks durability on
// one short-lived connection.
func (s *Store) prepare(ctx context.Context) error {
	cfg := s.connCfg.Copy()
	if s.schema != "" {
		// The schema may not exist yet, and search_path names it.
		delete(cfg.RuntimeParams, "search_path")
	}
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if s.schema != "" {
		if _, err := conn.Exec(ctx, `CREATE SCHEMA IF NOT EXISTS `+pgx.Identifier{s.schema}.Sanitize()); err != nil {
			return fmt.Errorf("create schema: %w", err)
		}
		if _, err := conn.Exec(ctx, `SELECT set_config('search_path', $1, false)`, pgx.Identifier{s.schema}.Sanitize()); err != nil {
			return fmt.Errorf("set search_path: %w", err)
		}
	}
	if err := migrate(ctx, conn, s.key); err != nil {
		return err
	}
	var sync string
	if err := conn.QueryRow(ctx, `SHOW synchronous_commit`).Scan(&sync); err != nil {
		return fmt.Errorf("read synchronous_commit: %w", err)
	}
	if sync == "off" {
		s.logger.Warn("synchronous_commit is off for this database or role: a server crash can lose notifications already answered 202; set it to on",
			"synchronous_commit", sync)
	}
	return nil
}

// check refuses options that cannot work, instead of replacing them.
func (o Options) check() error {
	if o.PruneInterval >= 0 && o.Retention <= 0 {
		return fmt.Errorf("retention must be positive while the background prune runs, got %s", o.Retention)
	}
	if o.PollInterval < 0 {
		return fmt.Errorf("poll interval must not be negative, got %s", o.PollInterval)
	}
	return nil
}

// dsnParams returns the keys of a key=value DSN or a URL's query, enough
// to tell whether the operator set a pool option.
func dsnParams(dsn string) map[string]bool {
	out := map[string]bool{}
	if i := strings.IndexByte(dsn, '?'); i >= 0 && strings.Contains(dsn, "://") {
		for _, kv := range strings.Split(dsn[i+1:], "&") {
			k, _, _ := strings.Cut(kv, "=")
			out[k] = true
		}
		return out
	}
	for _, f := range strings.Fields(dsn) {
		k, _, _ := strings.Cut(f, "=")
		out[k] = true
	}
	return out
}

// backingKey names one backing (database and schema) in advisory locks
// and the notification channel.
func backingKey(database, schema string) int32 {
	h := fnv.New32a()
	h.Write([]byte(database))
	h.Write([]byte{0})
	h.Write([]byte(schema))
	return int32(h.Sum32() & 0x7fffffff)
}

// redactor returns a function that removes password from an error's text.
// pgx never puts it there; this is the belt to that pair of braces.
func redactor(password string) func(error) error {
	return func(err error) error {
		if err == nil || password == "" || !strings.Contains(err.Error(), password) {
			return err
		}
		return &redacted{msg: strings.ReplaceAll(err.Error(), password, "<secret>"), err: err}
	}
}

// redacted is an error whose text had a secret removed; errors.Is and
// errors.As still see the cause.
type redacted struct {
	msg string
	err error
}

func (e *redacted) Error() string { return e.msg }
func (e *redacted) Unwrap() error { return e.err }

// Owner returns the id this store records with every lease it takes.
func (s *Store) Owner() string { return s.owner }

// Close stops the writers after their current commits, fails Enqueue
// calls still waiting with ErrClosed, gives up leadership and closes the
// pool. Leases this store holds are left to lapse (or to the next leader,
// which recovers them when it takes over).
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		close(s.done)
		s.cancel()
		if t := s.term.Load(); t != nil {
			// Not a clean end: the dispatcher may still be sending.
			t.resign(false)
		}
		s.wg.Wait()
		s.unwatch()
		s.pool.Close()
	})
	return nil
}

// closed returns outbox.ErrClosed once Close has begun.
func (s *Store) closed() error {
	select {
	case <-s.done:
		return outbox.ErrClosed
	default:
		return nil
	}
}

// healthKey is the state row the write probe updates: one row that every
// replica writes, so the probe adds no rows however often replicas restart.
const healthKey = "smsbridge.health_probe"

// Health reports whether a notification enqueued now would be durable: a
// small write (one row of the state table) commits. The daemon calls it
// about once a second for its readiness and its intake; while it fails,
// both answer 503. Its error names what failed, never the DSN's secret.
func (s *Store) Health(ctx context.Context) (err error) {
	if err := s.closed(); err != nil {
		return err
	}
	ctx, end := s.op(ctx, "health")
	defer func() { end(err) }()
	if _, err := s.pool.Exec(ctx, `INSERT INTO state (key, value, updated_at) VALUES ($1, '', $2)
		ON CONFLICT (key) DO UPDATE SET updated_at = excluded.updated_at`, healthKey, s.clock()); err != nil {
		return probeFailed(s.redact(err))
	}
	return nil
}

// probeFailed is Health's error for a write probe that failed with err.
// Its text is what /-/ready, the intake's 503 and the status page show to
// whoever asks: the kind of failure, not the database's user, name or
// address, which pgx's connection errors carry. Detail, for the log, is
// err in full.
func probeFailed(err error) error {
	why := "see the bridge's log for the database's error"
	var pe *pgconn.PgError
	var ce *pgconn.ConnectError
	var errno syscall.Errno
	switch {
	case errors.As(err, &pe):
		// The server's own message names roles, databases and client
		// addresses ("password authentication failed for user ..."):
		// only its SQLSTATE, in words, is public.
		why = "the database answered SQLSTATE " + pe.Code + sqlstateWords(pe.Code)
	case errors.Is(err, context.DeadlineExceeded) || pgconn.Timeout(err):
		why = "the database did not answer in time"
	case errors.As(err, &ce) && errors.As(err, &errno):
		why = "cannot connect to the database: " + errno.Error()
	case errors.As(err, &ce):
		why = "cannot connect to the database"
	}
	return &probeError{msg: "the database did not take a write probe: " + why, err: err}
}

// sqlstateWords says what a SQLSTATE a write probe may meet means, for
// people: " (...)" or "".
func sqlstateWords(code string) string {
	switch {
	case code == "3D000":
		return " (the database does not exist)"
	case code == "53300":
		return " (too many connections)"
	case strings.HasPrefix(code, "28"):
		return " (the database refused the bridge's login)"
	case code == "25006":
		return " (read-only: a standby, or default_transaction_read_only)"
	case strings.HasPrefix(code, "57P"):
		return " (the database is shutting down, starting or restarting)"
	case strings.HasPrefix(code, "53"):
		return " (the database is out of a resource: disk, memory or connections)"
	case strings.HasPrefix(code, "08"):
		return " (the connection failed)"
	}
	return ""
}

// probeError is a failed write probe: Error is the public text, Detail
// the cause in full (its secret already removed).
type probeError struct {
	msg string
	err error
}

func (e *probeError) Error() string  { return e.msg }
func (e *probeError) Detail() string { return e.err.Error() }
func (e *probeError) Unwrap() error  { return e.err }

// op starts one timed call: its context is bounded by queryTimeout, and
// end records its duration under op.
func (s *Store) op(ctx context.Context, op string) (context.Context, func(error)) {
	ctx, cancel := context.WithTimeout(ctx, queryTimeout)
	start := time.Now()
	return ctx, func(err error) {
		cancel()
		s.metrics.ObserveQuery(op, time.Since(start), err)
	}
}

// Wake returns a channel that receives a value after a commit (this
// store's, or another replica's it heard of) adds work that is due now.
func (s *Store) Wake() <-chan struct{} { return s.wake }

func (s *Store) signal() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// notify is the statement that tells other replicas about work due now;
// it is sent inside the transaction, and PostgreSQL delivers it at commit.
const notify = `SELECT pg_notify($1, $2)`

// listener keeps a connection LISTENing for other replicas' commits and
// wakes the dispatcher for each. While it is down, the poller stands in.
func (s *Store) listener() {
	defer s.wg.Done()
	retry := 100 * time.Millisecond
	for first := true; s.ctx.Err() == nil; first = false {
		err := s.listenOnce(first)
		s.listening.Store(false)
		if s.ctx.Err() != nil {
			return
		}
		s.logger.Warn("lost the connection that hears other replicas' commits; polling until it is back", "err", err, "poll_interval", s.poll)
		select {
		case <-s.ctx.Done():
			return
		case <-time.After(retry):
		}
		retry = min(2*retry, listenRetry)
	}
}

// listenOnce listens on one connection until it fails. Open looked for
// due work already; after a reconnect it looks again, since commits made
// while nobody listened were not heard.
func (s *Store) listenOnce(first bool) error {
	ctx, cancel := context.WithTimeout(s.ctx, connectTimeout)
	conn, err := pgx.ConnectConfig(ctx, s.connCfg)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(s.ctx, "LISTEN "+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		return err
	}
	s.listening.Store(true)
	if !first {
		s.pollOnce()
	}
	for {
		n, err := conn.WaitForNotification(s.ctx)
		if err != nil {
			return err
		}
		if n.Payload != s.owner {
			s.signal()
		}
	}
}

// poller looks for due work every poll interval while the listener is not
// connected (or never, with NoListen).
func (s *Store) poller() {
	defer s.wg.Done()
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		select {
		case <-s.done:
			return
		case <-t.C:
			if !s.listening.Load() {
				s.pollOnce()
			}
		}
	}
}

// pollOnce wakes the dispatcher if work is due now.
func (s *Store) pollOnce() {
	now := s.clock()
	sc, err := s.Schedule(s.ctx, now)
	if err == nil && !sc.NextDue.IsZero() && !sc.NextDue.After(now) {
		s.signal()
	}
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
				return
			case err != nil:
				s.logger.Error("prune outbox", "err", err)
			case n > 0:
				s.logger.Info("pruned outbox", "notifications", n, "retention", s.retention)
			}
		}
	}
}
