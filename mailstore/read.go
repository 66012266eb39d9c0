package mailstore

import (
	"context"
	"database/sql"
	"fmt"
)

// readStmt returns the read pool's prepared statement for query,
// preparing it on first use. database/sql prepares it again on each pool
// connection as needed; preparing once per query text saves the parse on
// every protocol command (a RCPT TO costs two lookups).
func (s *Store) readStmt(ctx context.Context, query string) (*sql.Stmt, error) {
	if st, ok := s.reads.Load(query); ok {
		return st.(*sql.Stmt), nil
	}
	st, err := s.rdb.PrepareContext(ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", query, err)
	}
	if prev, loaded := s.reads.LoadOrStore(query, st); loaded {
		st.Close() // another caller won the race; use theirs
		return prev.(*sql.Stmt), nil
	}
	return st, nil
}

// queryRow is QueryRowContext on the read pool with a prepared statement.
func (s *Store) queryRow(ctx context.Context, query string, args ...any) *sql.Row {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		// sql.Row has no error of its own: fall back to an unprepared
		// query, whose Scan then reports the problem.
		return s.rdb.QueryRowContext(ctx, query, args...)
	}
	return st.QueryRowContext(ctx, args...)
}

// query is QueryContext on the read pool with a prepared statement.
func (s *Store) query(ctx context.Context, query string, args ...any) (*sql.Rows, error) {
	st, err := s.readStmt(ctx, query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(ctx, args...)
}
