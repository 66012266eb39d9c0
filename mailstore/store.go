package mailstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"fmt"
	"log/slog"
	"net/url"
	"path/filepath"
	"sync"
	"time"

	"github.com/mattn/go-sqlite3" // also registers the "sqlite3" driver

	"pushmail/notify"
)

// Options configures a Store. The zero value is usable.
type Options struct {
	// Hub receives one event per changed mailbox after every commit. If
	// nil, Open creates one; Store.Hub returns it either way.
	Hub *notify.Hub
	// Logger receives the store's logs; nil means slog.Default().
	Logger *slog.Logger
	// Domains are served in addition to the domains of users and aliases.
	// The first is the primary domain: a bare "Postmaster" recipient is
	// postmaster@ it (see Resolve).
	Domains []string
	// Postmaster is the address (a user's or an alias) that receives mail
	// for postmaster@ a local domain that has no postmaster user or alias
	// of its own (RFC 5321 §4.5.1); empty means the first user created.
	// See Resolve.
	Postmaster string
	// PasswordCost is the bcrypt cost for new password hashes; 0 means
	// bcrypt.DefaultCost. Tests lower it to keep user creation fast.
	PasswordCost int
	// MaxBatch bounds how many writes one transaction takes (default 256).
	MaxBatch int
	// MaxBatchBytes bounds the message bytes one transaction takes
	// (default 32 MiB). A single larger write still runs, alone.
	MaxBatchBytes int
	// MaxMessageSize rejects larger messages with ErrTooBig (0: no limit).
	MaxMessageSize int64
	// MaxReaders bounds the pool of read connections (default 8).
	MaxReaders int
	// MaxDatabaseBytes caps the store on disk: the database file and its
	// write-ahead log, less the free pages inside the database. A write
	// that adds mail (Deliver, Append, Copy) and would pass it fails with
	// ErrStorageFull; other writes, those that free space among them,
	// still run. The database file alone is also held to it by SQLite's
	// max_page_count, where any write fails, as on a full disk. 0: no cap.
	MaxDatabaseBytes int64
	// MinFreeBytes is the reserve kept free on the file system of the
	// database's directory, counting the free pages inside the database
	// as free: a write that adds mail (Deliver, Append, Copy) and would
	// leave less fails with ErrStorageFull, so that the writes that free
	// space (flags, Expunge, DeleteMailbox, DeleteUser), which SQLite must
	// first append to the write-ahead log, still find room. 0: no reserve.
	// See SpaceCheck.
	MinFreeBytes int64
	// MaxVanished bounds the tombstones (expunged UIDs with their
	// modseq) each mailbox keeps for "vanished since" (RFC 7162 QRESYNC;
	// changelog.go); default 10,000. Past it, the writer drops the oldest,
	// down to three quarters of it, and raises the mailbox's horizon: a
	// client whose modseq is older resynchronises in full.
	MaxVanished int
	// OnCommit, if set, is called by the writer after each committed
	// batch with the number of writes, their message bytes, and how long
	// the transaction took from BEGIN to durable COMMIT. It must be quick:
	// every writer waits for it. Metrics hook here.
	OnCommit func(writes, bytes int, d time.Duration)
}

// Store is an open mailstore. It is safe for concurrent use. Close it when
// done: Close waits for pending writes.
type Store struct {
	path    string
	opts    Options
	log     *slog.Logger
	hub     *notify.Hub
	domains map[string]bool
	// primaryDomain is the first of Options.Domains, normalised ("" if
	// none); postmaster is Options.Postmaster, normalised.
	primaryDomain, postmaster string

	wdb *sql.DB // exactly one connection, used only by the writer goroutine
	rdb *sql.DB // read-only pool

	queue   chan *writeOp
	wakeq   chan *notify.Wakeups // committed batches' wake-ups, writer -> waker
	closing chan struct{}
	closeMu sync.RWMutex // held for reading while enqueueing, for writing by Close
	closed  bool
	wg      sync.WaitGroup
	stmts   stmtCache // the writer goroutine's alone
	reads   sync.Map  // query text -> *sql.Stmt on rdb (readStmt)

	dummyOnce sync.Once
	dummy     []byte
	logins    authCache // passwords Authenticate verified (authcache.go)

	sorts    sortCache // SortInfo already read (sort.go)
	uidLists uidCache  // the mailboxes' shared UID lists (uidlist.go)

	// recentMarks caches each mailbox's \Recent high-water mark as this
	// process last read or raised it (recent.go): only this process
	// writes the store, and the mark only grows, so a cached mark at or
	// above a claim answers it without a query.
	recentMu    sync.Mutex
	recentMarks map[MailboxID]UID
	recentDirty map[MailboxID]bool // claims not yet written

	// fullText is the writer's part of the full-text index
	// (fulltextmark.go).
	fullText fullTextState

	// postgres is set for a store on PostgreSQL (postgres.go), where the
	// writers of all the nodes take turns under one lock, and the few
	// queries that differ in meaning take their PostgreSQL form (pick).
	postgres bool
	// listener is the LISTEN connection that brings other nodes' events
	// (crossnode.go); nil on SQLite.
	listener *crossNode

	// dir is the database's directory, whose file system holds the
	// reserve; pageSize is the database's, for its free page count.
	dir      string
	pageSize int64
}

// Open opens (creating if needed) the store at path, migrates its schema
// and starts the writer. It fails with ErrSchemaTooNew for a database
// written by a newer pushmail.
func Open(ctx context.Context, path string, opts Options) (*Store, error) {
	if opts.MaxBatch <= 0 {
		opts.MaxBatch = 256
	}
	if opts.MaxBatchBytes <= 0 {
		opts.MaxBatchBytes = 32 << 20
	}
	if opts.MaxReaders <= 0 {
		opts.MaxReaders = 8
	}
	if opts.MaxVanished <= 0 {
		opts.MaxVanished = defaultMaxVanished
	}
	s := &Store{
		path:    path,
		dir:     filepath.Dir(path),
		opts:    opts,
		log:     opts.Logger,
		hub:     opts.Hub,
		domains: make(map[string]bool),
		queue:   make(chan *writeOp, 1024),
		closing: make(chan struct{}),
		stmts:   stmtCache{stmts: make(map[string]*sql.Stmt), missing: make(map[string]bool)},
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if s.hub == nil {
		s.hub = notify.New(0)
	}
	for i, d := range opts.Domains {
		d, err := normalizeDomain(d)
		if err != nil {
			return nil, fmt.Errorf("open mailstore: domain %q: %w", d, err)
		}
		s.domains[d] = true
		if i == 0 {
			s.primaryDomain = d
		}
	}
	if opts.Postmaster != "" {
		pm, err := NormalizeAddress(opts.Postmaster)
		if err != nil {
			return nil, fmt.Errorf("open mailstore: postmaster: %w", err)
		}
		s.postmaster = pm
	}

	if IsPostgresURL(path) {
		if err := s.openPostgres(ctx, path); err != nil {
			return nil, fmt.Errorf("open mailstore %s: %w", RedactURL(path), err)
		}
	} else if err := s.openSQLite(ctx, path); err != nil {
		return nil, err
	}

	s.wakeq = make(chan *notify.Wakeups, wakeQueueLen)
	s.wg.Add(2)
	go s.runWriter()
	go s.runWaker()
	return s, nil
}

// openSQLite opens the SQLite database file at path: the writer's one
// connection and the read pool, with the schema migrated.
func (s *Store) openSQLite(ctx context.Context, path string) error {
	opts := s.opts
	// WAL lets readers run beside the writer; synchronous=FULL makes each
	// commit durable before it returns; _txlock=immediate takes the write
	// lock at BEGIN so a transaction never fails half way on SQLITE_BUSY.
	base := "file:" + (&url.URL{Path: path}).EscapedPath() +
		"?_journal_mode=WAL&_synchronous=FULL&_foreign_keys=1&_busy_timeout=10000"
	var err error
	s.wdb = sql.OpenDB(writerConnector{dsn: base + "&_txlock=immediate", maxBytes: opts.MaxDatabaseBytes})
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetConnMaxIdleTime(0)
	if err := s.wdb.PingContext(ctx); err != nil {
		closeQuietly(s.wdb)
		return fmt.Errorf("open mailstore %s: %w", path, err)
	}
	if err := checkFTS5(ctx, s.wdb); err != nil {
		closeQuietly(s.wdb)
		return fmt.Errorf("open mailstore %s: %w", path, err)
	}
	if err := migrate(ctx, s.wdb, s.log); err != nil {
		closeQuietly(s.wdb)
		return fmt.Errorf("open mailstore %s: %w", path, err)
	}

	if err := s.initFullTextMark(ctx); err != nil {
		closeQuietly(s.wdb)
		return fmt.Errorf("open mailstore %s: %w", path, err)
	}

	if err := s.wdb.QueryRowContext(ctx, "PRAGMA page_size").Scan(&s.pageSize); err != nil {
		closeQuietly(s.wdb)
		return fmt.Errorf("open mailstore %s: page size: %w", path, err)
	}

	s.rdb, err = sql.Open("sqlite3", base+"&_query_only=1")
	if err != nil {
		closeQuietly(s.wdb)
		return fmt.Errorf("open mailstore %s: %w", path, err)
	}
	s.rdb.SetMaxOpenConns(opts.MaxReaders)
	s.rdb.SetMaxIdleConns(opts.MaxReaders)

	return nil
}

// Hub returns the notifier the store publishes to.
func (s *Store) Hub() *notify.Hub { return s.hub }

// Path returns the database file's path.
func (s *Store) Path() string { return s.path }

// Close stops accepting writes, waits for the writer to finish what was
// already queued, and closes the database. It is safe to call twice.
func (s *Store) Close() error {
	s.closeMu.Lock()
	if s.closed {
		s.closeMu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.closeMu.Unlock()
	s.wg.Wait()
	if s.listener != nil {
		s.listener.stop()
	}
	// The writer has stopped: the last claims go in on their own.
	ferr := s.flushRecentMarks()
	rerr := s.rdb.Close()
	werr := s.wdb.Close()
	if ferr != nil {
		return fmt.Errorf("close mailstore: %w", ferr)
	}
	if werr != nil {
		return fmt.Errorf("close mailstore: %w", werr)
	}
	if rerr != nil {
		return fmt.Errorf("close mailstore: %w", rerr)
	}
	return nil
}

// Ping checks that the database answers a read and that the writer is
// running: it is what a health check calls.
func (s *Store) Ping(ctx context.Context) error {
	var n int
	if err := s.rdb.QueryRowContext(ctx, "SELECT 1").Scan(&n); err != nil {
		return fmt.Errorf("mailstore read: %w", err)
	}
	// Unlike other writes, Ping may stop waiting when ctx ends: it only
	// reads, so nothing depends on whether it ran. A writer that does not
	// answer in time (a lock held elsewhere, a disk that hangs) is the
	// failure a health check is for.
	op, err := s.enqueue(ctx, 0, false, func(tx *wtx) ([]notify.Event, error) {
		var n int
		return nil, tx.QueryRow("SELECT COUNT(*) FROM meta").Scan(&n)
	})
	if err != nil {
		return fmt.Errorf("mailstore writer: %w", err)
	}
	select {
	case <-op.done:
		if op.err != nil {
			return fmt.Errorf("mailstore writer: %w", op.err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("mailstore writer did not answer: %w", ctx.Err())
	}
}

// writerConnector opens the writer's connection and applies the settings
// SQLite keeps per connection, whenever database/sql (re)connects.
type writerConnector struct {
	dsn      string
	maxBytes int64
}

func (c writerConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Driver().Open(c.dsn)
	if err != nil {
		return nil, err
	}
	if err := c.limitSizes(conn.(*sqlite3.SQLiteConn)); err != nil {
		conn.Close()
		return nil, err
	}
	return conn, nil
}

// walLimit is the size the write-ahead log is cut back to once it has been
// checkpointed (PRAGMA journal_size_limit). SQLite otherwise keeps the
// file at its largest, which a batch of big messages makes tens of
// megabytes, and that space counts against MaxDatabaseBytes and the
// reserve. A checkpoint runs every 1000 pages (4 MiB) by default, so
// small batches never reach it.
const walLimit = 16 << 20

// walSizes returns the write-ahead log's journal_size_limit, in bytes, and
// its wal_autocheckpoint, in pages: SQLite's default of 1000 pages, less
// under a small cap.
func walSizes(maxBytes, pageSize int64) (limit, checkpoint int64) {
	limit = walLimit
	if maxBytes > 0 {
		limit = min(limit, maxBytes/8)
	}
	return limit, max(1, min(1000, limit/pageSize))
}

// writerCacheKiB is the writer connection's page cache (PRAGMA
// cache_size), in KiB. SQLite's default, 2 MiB, is outgrown by the pages
// every delivery updates (the messages table's seven indexes, the account
// log and its index, the mailbox and user rows, the sort keys) once a
// mailbox holds some ten thousand messages: the writer then reads them
// back from the log or the file in every batch. At 32 MiB, 12,000
// deliveries took about 12 % less of the writer's CPU (BENCHMARKS.md,
// 2026-12-06). Readers keep the default: each holds a cache of its own.
const writerCacheKiB = 32 << 10

// limitSizes applies MaxDatabaseBytes (SQLite max_page_count, in pages of
// page_size bytes) and bounds the write-ahead log. Under a small cap the
// WAL is checkpointed and cut back sooner, at an eighth of the cap, so
// that the log alone cannot hold the store over it.
func (c writerConnector) limitSizes(sc *sqlite3.SQLiteConn) error {
	rows, err := sc.Query("PRAGMA page_size", nil)
	if err != nil {
		return fmt.Errorf("read page_size: %w", err)
	}
	dest := []driver.Value{nil}
	err = rows.Next(dest)
	rows.Close()
	if err != nil {
		return fmt.Errorf("read page_size: %w", err)
	}
	pageSize := dest[0].(int64)
	limit, checkpoint := walSizes(c.maxBytes, pageSize)
	pragmas := []string{
		fmt.Sprintf("PRAGMA journal_size_limit = %d", limit),
		fmt.Sprintf("PRAGMA wal_autocheckpoint = %d", checkpoint),
		fmt.Sprintf("PRAGMA cache_size = %d", -writerCacheKiB),
	}
	if c.maxBytes > 0 {
		pragmas = append(pragmas, fmt.Sprintf("PRAGMA max_page_count = %d", max(1, c.maxBytes/pageSize)))
	}
	for _, p := range pragmas {
		if _, err := sc.Exec(p, nil); err != nil {
			return fmt.Errorf("%s: %w", p, err)
		}
	}
	return nil
}

func (writerConnector) Driver() driver.Driver { return &sqlite3.SQLiteDriver{} }

func closeQuietly(db *sql.DB) {
	_ = db.Close() // only on an Open that already failed; that error is reported
}

// IntegrityCheck runs SQLite's PRAGMA integrity_check and returns an error
// unless it reports "ok". On PostgreSQL, which checks its pages itself
// (and pg_amcheck checks them on demand), it checks that the database
// answers.
func (s *Store) IntegrityCheck(ctx context.Context) error {
	if s.postgres {
		var n int
		if err := s.rdb.QueryRowContext(ctx, "SELECT COUNT(*) FROM meta").Scan(&n); err != nil {
			return fmt.Errorf("integrity check: %w", err)
		}
		return nil
	}
	var res string
	if err := s.rdb.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&res); err != nil {
		return fmt.Errorf("integrity check: %w", err)
	}
	if res != "ok" {
		return fmt.Errorf("integrity check: %s", res)
	}
	return nil
}
