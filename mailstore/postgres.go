package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"sync"

	"github.com/jackc/pgx/v5/pgconn"
)

// A store on PostgreSQL (Open with a postgres:// URL) serves several
// pushmail nodes at once. Each node has its own writer (one connection,
// batches as on SQLite, taking turns with the other nodes' writers under
// one lock: pgdriver.go) and read pool; the
// nodes learn of each other's commits through LISTEN/NOTIFY
// (crossnode.go). What SQLite's file gives for free and PostgreSQL does
// not, or the other way round:
//
//   - space limits (Options.MaxDatabaseBytes, MinFreeBytes) measure
//     SQLite's file and its file system; on PostgreSQL the operator
//     watches the cluster's disk, and Open refuses them;
//   - Backup and Restore copy SQLite files; on PostgreSQL they fail with
//     ErrPostgresBackup: pg_dump and pg_restore do it;
//   - the full-text index is a table with trigram indexes (pg_trgm)
//     instead of FTS5 (fulltext.go).

// ErrPostgresBackup is Backup's and Restore's answer on PostgreSQL.
var ErrPostgresBackup = errors.New("the store is on PostgreSQL: back it up with pg_dump and restore with pg_restore (README, \"More than one machine\")")

// openPostgres connects the writer and the read pool to the database at
// url, migrates its schema and starts listening to the other nodes.
func (s *Store) openPostgres(ctx context.Context, url string) error {
	if s.opts.MaxDatabaseBytes != 0 || s.opts.MinFreeBytes != 0 {
		return errors.New("the space limits (MaxDatabaseBytes, MinFreeBytes) measure an SQLite file; on PostgreSQL, watch the cluster's disk instead")
	}
	s.postgres = true
	texts := new(sync.Map)
	wc, err := newPgConnector(url, true, texts)
	if err != nil {
		return err
	}
	rc, err := newPgConnector(url, false, texts)
	if err != nil {
		return err
	}
	s.wdb = sql.OpenDB(wc)
	s.wdb.SetMaxOpenConns(1)
	s.wdb.SetConnMaxIdleTime(0)
	if err := s.wdb.PingContext(ctx); err != nil {
		closeQuietly(s.wdb)
		return err
	}
	if err := migratePostgres(ctx, s.wdb, s.log); err != nil {
		closeQuietly(s.wdb)
		return err
	}
	if err := s.initFullTextMark(ctx); err != nil {
		closeQuietly(s.wdb)
		return err
	}
	s.rdb = sql.OpenDB(rc)
	s.rdb.SetMaxOpenConns(s.opts.MaxReaders)
	s.rdb.SetMaxIdleConns(s.opts.MaxReaders)
	if err := s.startCrossNode(ctx, url); err != nil {
		closeQuietly(s.rdb)
		closeQuietly(s.wdb)
		return err
	}
	return nil
}

// pick returns the SQLite or the PostgreSQL form of a query fragment that
// differs in meaning between them (what postgresSQL cannot rewrite).
func (s *Store) pick(sqlite, postgres string) string {
	if s.postgres {
		return postgres
	}
	return sqlite
}

// writeLockSQL takes the store's write lock, a transaction-level advisory
// lock that PostgreSQL releases once the COMMIT (or ROLLBACK) is done:
// every node's writer runs it first in each batch (pgdriver.go). The key
// is pushmail's own, in the advisory lock space of this database only.
const writeLockSQL = "SELECT pg_advisory_xact_lock(7075736801)"

// PostgreSQL's error codes (Appendix A of its manual) that the writer and
// classify act on.
const (
	pgSerializationFailure = "40001"
	pgDeadlockDetected     = "40P01"
	pgDiskFull             = "53100"
)

// isRetryable reports whether err is PostgreSQL's refusal of a transaction
// that conflicted with another (another node's writer): the transaction
// did nothing, and running it again is the documented answer (PostgreSQL
// manual §13.2.3).
func isRetryable(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && (pe.Code == pgSerializationFailure || pe.Code == pgDeadlockDetected)
}

// pgDiskFullErr reports whether err is PostgreSQL's "could not extend
// file": the cluster's disk is full.
func pgDiskFullErr(err error) bool {
	var pe *pgconn.PgError
	return errors.As(err, &pe) && pe.Code == pgDiskFull
}

// postgresStats fills what Stats reads differently on PostgreSQL: the
// database's size on disk and the schema version.
func (s *Store) postgresStats(ctx context.Context, st *Stats) error {
	if err := s.queryRow(ctx, "SELECT pg_database_size(current_database())").Scan(&st.FileBytes); err != nil {
		return err
	}
	if err := s.queryRow(ctx, "SELECT COALESCE(pg_total_relation_size('body_text'), 0)").Scan(&st.IndexBytes); err != nil {
		return err
	}
	v, err := postgresSchemaVersion(ctx, s.rdb)
	if err != nil {
		return fmt.Errorf("schema version: %w", err)
	}
	st.SchemaVersion = v
	return nil
}
