package mailstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"sync"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/stdlib"
)

// pgConnector opens PostgreSQL connections through pgx's database/sql
// driver, wrapped so that every query text is rewritten from SQLite's
// dialect (postgresSQL) and every transaction gets the isolation its pool
// needs:
//
//   - the writer's transactions are READ COMMITTED, and each batch first
//     takes the store's write lock (writeLockSQL), held until its COMMIT
//     is durable: the writers of all the nodes take turns, as SQLite's
//     one writer does, and each statement of a batch sees every batch
//     committed before it. Nothing interleaves, so nothing conflicts:
//     UIDs strictly increase and are never given twice, ids are never
//     reused, and no read-modify-write loses another node's write. Each
//     node still groups its concurrent writes into one batch;
//   - the readers' are REPEATABLE READ, READ ONLY: one snapshot for the
//     whole transaction, as SQLite's WAL gives a read transaction.
//
// SERIALIZABLE writers without the lock were measured first: two nodes
// delivering to one mailbox conflicted on nearly every batch (the
// mailbox row, the id counters), and some deliveries were refused after
// every retry (BENCHMARKS.md, 2026-12-06).
type pgConnector struct {
	base   driver.Connector
	writer bool
	texts  *sync.Map // SQLite query text -> PostgreSQL text
}

func (c *pgConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.base.Connect(ctx)
	if err != nil {
		return nil, err
	}
	return &pgConn{conn: conn, c: c}, nil
}

func (c *pgConnector) Driver() driver.Driver { return c.base.Driver() }

// rewrite returns query in PostgreSQL's dialect, from the cache.
func (c *pgConnector) rewrite(query string) string {
	if q, ok := c.texts.Load(query); ok {
		return q.(string)
	}
	q := postgresSQL(query)
	c.texts.Store(query, q)
	return q
}

// pgConn is one wrapped pgx connection; it passes on the optional
// interfaces that pgx's *stdlib.Conn implements.
type pgConn struct {
	conn driver.Conn
	c    *pgConnector
}

var (
	_ driver.ConnPrepareContext = (*pgConn)(nil)
	_ driver.QueryerContext     = (*pgConn)(nil)
	_ driver.ExecerContext      = (*pgConn)(nil)
	_ driver.ConnBeginTx        = (*pgConn)(nil)
	_ driver.Pinger             = (*pgConn)(nil)
	_ driver.SessionResetter    = (*pgConn)(nil)
	_ driver.Validator          = (*pgConn)(nil)
	_ driver.NamedValueChecker  = (*pgConn)(nil)
)

var errNotPgx = errors.New("mailstore: PostgreSQL connection lacks a pgx interface")

func (p *pgConn) Prepare(query string) (driver.Stmt, error) {
	return p.PrepareContext(context.Background(), query)
}

func (p *pgConn) PrepareContext(ctx context.Context, query string) (driver.Stmt, error) {
	st, err := p.conn.(driver.ConnPrepareContext).PrepareContext(ctx, p.c.rewrite(query))
	if err != nil {
		return nil, err
	}
	return pgStmt{st}, nil
}

// pgStmt is a prepared statement whose rows are boolsAsInts.
type pgStmt struct{ driver.Stmt }

func (s pgStmt) ExecContext(ctx context.Context, args []driver.NamedValue) (driver.Result, error) {
	return s.Stmt.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (s pgStmt) QueryContext(ctx context.Context, args []driver.NamedValue) (driver.Rows, error) {
	rows, err := s.Stmt.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		return nil, err
	}
	return boolsAsInts{rows}, nil
}

func (s pgStmt) CheckNamedValue(v *driver.NamedValue) error {
	if c, ok := s.Stmt.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

func (p *pgConn) Close() error { return p.conn.Close() }

func (p *pgConn) Begin() (driver.Tx, error) {
	return p.BeginTx(context.Background(), driver.TxOptions{})
}

func (p *pgConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	if opts.Isolation == driver.IsolationLevel(sql.LevelDefault) {
		if p.c.writer {
			opts.Isolation = driver.IsolationLevel(sql.LevelReadCommitted)
		} else {
			opts.Isolation = driver.IsolationLevel(sql.LevelRepeatableRead)
			opts.ReadOnly = true
		}
	}
	return p.conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (p *pgConn) QueryContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Rows, error) {
	q, ok := p.conn.(driver.QueryerContext)
	if !ok {
		return nil, errNotPgx
	}
	rows, err := q.QueryContext(ctx, p.c.rewrite(query), args)
	if err != nil {
		return nil, err
	}
	return boolsAsInts{rows}, nil
}

// boolsAsInts returns PostgreSQL's booleans as the integers 1 and 0, as
// SQLite, which has no boolean type, returns a comparison: the queries
// scan "x != 0" or "EXISTS (…)" into integers as often as into bools,
// and database/sql turns 1 and 0 into true and false for a bool.
type boolsAsInts struct{ driver.Rows }

func (r boolsAsInts) Next(dest []driver.Value) error {
	if err := r.Rows.Next(dest); err != nil {
		return err
	}
	for i, v := range dest {
		if b, ok := v.(bool); ok {
			if b {
				dest[i] = int64(1)
			} else {
				dest[i] = int64(0)
			}
		}
	}
	return nil
}

func (p *pgConn) ExecContext(ctx context.Context, query string, args []driver.NamedValue) (driver.Result, error) {
	e, ok := p.conn.(driver.ExecerContext)
	if !ok {
		return nil, errNotPgx
	}
	return e.ExecContext(ctx, p.c.rewrite(query), args)
}

func (p *pgConn) Ping(ctx context.Context) error {
	if c, ok := p.conn.(driver.Pinger); ok {
		return c.Ping(ctx)
	}
	return nil
}

func (p *pgConn) ResetSession(ctx context.Context) error {
	if c, ok := p.conn.(driver.SessionResetter); ok {
		return c.ResetSession(ctx)
	}
	return nil
}

func (p *pgConn) IsValid() bool {
	if c, ok := p.conn.(driver.Validator); ok {
		return c.IsValid()
	}
	return true
}

func (p *pgConn) CheckNamedValue(v *driver.NamedValue) error {
	if c, ok := p.conn.(driver.NamedValueChecker); ok {
		return c.CheckNamedValue(v)
	}
	return driver.ErrSkip
}

// newPgConnector returns the connector of one pool (the writer's when
// writer is set) on the database at url. The writer's synchronous_commit
// is "on" unless the URL asks for "remote_apply", which is stronger: a
// COMMIT then
// returns only once its WAL is flushed to disk (and, on a primary with
// synchronous standbys, confirmed by them), which is what an SMTP 250
// promises. A server configured with a weaker default ("off", "local",
// "remote_write") is overridden for pushmail's sessions.
func newPgConnector(url string, writer bool, texts *sync.Map) (*pgConnector, error) {
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return nil, err
	}
	if cfg.RuntimeParams == nil {
		cfg.RuntimeParams = map[string]string{}
	}
	if v := cfg.RuntimeParams["synchronous_commit"]; !writer {
		// The readers write one thing, \Recent claims (recent.go),
		// which need not wait for the disk.
		cfg.RuntimeParams["synchronous_commit"] = "off"
	} else if v != "remote_apply" {
		cfg.RuntimeParams["synchronous_commit"] = "on"
	}
	if cfg.RuntimeParams["application_name"] == "" {
		cfg.RuntimeParams["application_name"] = "pushmail"
	}
	return &pgConnector{base: stdlib.GetConnector(*cfg), writer: writer, texts: texts}, nil
}
