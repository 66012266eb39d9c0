package mailstore

import (
	"context"
	"database/sql"
	"database/sql/driver"
	"errors"
	"fmt"
	"os"
	"time"
)

// User returns the user with the given address.
func (s *Store) User(ctx context.Context, address string) (User, error) {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return User{}, err
	}
	var u User
	var created int64
	err = s.queryRow(ctx, "SELECT id, address, created FROM users WHERE address = ?", addr).Scan(&u.ID, &u.Address, &created)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, fmt.Errorf("%w: %s", ErrNoSuchUser, addr)
	}
	if err != nil {
		return User{}, fmt.Errorf("user %s: %w", addr, err)
	}
	u.Created = time.Unix(created, 0)
	return u, nil
}

// MailboxStatuses returns the status of each of a user's mailboxes, by name.
func (s *Store) MailboxStatuses(ctx context.Context, user UserID) ([]MailboxStatus, error) {
	rows, err := s.query(ctx, "SELECT "+statusColumns+" FROM mailboxes WHERE user_id = ? ORDER BY name", user)
	if err != nil {
		return nil, fmt.Errorf("mailbox statuses: %w", err)
	}
	defer rows.Close()
	var list []MailboxStatus
	for rows.Next() {
		var st MailboxStatus
		if err := scanStatus(rows, &st); err != nil {
			return nil, fmt.Errorf("mailbox statuses: %w", err)
		}
		list = append(list, st)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("mailbox statuses: %w", err)
	}
	rows.Close()
	for i := range list {
		if err := s.freshenRecent(ctx, &list[i]); err != nil {
			return nil, fmt.Errorf("mailbox statuses: %w", err)
		}
	}
	return list, nil
}

// Stats summarises a store.
type Stats struct {
	Users, Aliases, Mailboxes int64
	Messages                  int64 // message entries, counting copies
	Bodies                    int64 // distinct stored bodies
	MessageBytes              int64 // sum of message sizes, counting copies
	FileBytes                 int64 // database file plus WAL on disk; on PostgreSQL, the database's size
	// IndexBytes is the full-text index's payload (fulltext.go): the
	// bytes of its FTS5 segments and per-row records, without SQLite's
	// page overhead.
	IndexBytes    int64
	SchemaVersion int
}

// Stats counts what the store holds.
func (s *Store) Stats(ctx context.Context) (Stats, error) {
	var st Stats
	// The FTS5 index's payload is SQLite's alone; on PostgreSQL,
	// postgresStats measures the index table instead.
	indexBytes := s.pick(`(SELECT COALESCE(SUM(length(block)), 0) FROM body_text_data) +
		(SELECT COALESCE(SUM(length(sz)) + 8 * COUNT(*), 0) FROM body_text_docsize)`, "0")
	err := s.queryRow(ctx, `SELECT
		(SELECT COUNT(*) FROM users), (SELECT COUNT(*) FROM aliases), (SELECT COUNT(*) FROM mailboxes),
		(SELECT COALESCE(SUM(message_count), 0) FROM mailboxes), (SELECT COUNT(*) FROM bodies),
		(SELECT COALESCE(SUM(total_size), 0) FROM mailboxes), `+indexBytes).
		Scan(&st.Users, &st.Aliases, &st.Mailboxes, &st.Messages, &st.Bodies, &st.MessageBytes, &st.IndexBytes)
	if err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	if s.postgres {
		if err := s.postgresStats(ctx, &st); err != nil {
			return Stats{}, fmt.Errorf("stats: %w", err)
		}
		return st, nil
	}
	if err := s.queryRow(ctx, "PRAGMA user_version").Scan(&st.SchemaVersion); err != nil {
		return Stats{}, fmt.Errorf("stats: %w", err)
	}
	for _, p := range []string{s.path, s.path + "-wal"} {
		if fi, err := os.Stat(p); err == nil {
			st.FileBytes += fi.Size()
		}
	}
	return st, nil
}

// Backup writes a consistent copy of the whole store to dest, which must
// not exist yet, while the store keeps serving: VACUUM INTO reads one
// snapshot of the database (a read transaction, which in WAL mode does not
// block writers) and writes a compact copy. The copy is a plain SQLite
// file; put it back with Restore, not by copying it over the store: Restore
// also gives every mailbox a new UIDVALIDITY.
func (s *Store) Backup(ctx context.Context, dest string) error {
	if s.postgres {
		return ErrPostgresBackup
	}
	if _, err := os.Stat(dest); err == nil {
		return fmt.Errorf("backup: %s already exists", dest)
	}
	// A connection of its own: the read pool is query-only, and the
	// writer must not be held up for the length of a copy.
	conn, err := s.rdb.Conn(ctx)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "PRAGMA query_only = 0"); err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	// Restore the pool's promise before the connection goes back to it.
	defer func() {
		if _, err := conn.ExecContext(context.Background(), "PRAGMA query_only = 1"); err != nil {
			s.log.Error("backup: restore query_only", "err", err)
			// ErrBadConn makes database/sql discard the connection rather
			// than return a writable one to the query-only pool.
			if err := conn.Raw(func(any) error { return driver.ErrBadConn }); err != nil {
				s.log.Debug("backup: connection discarded", "err", err)
			}
		}
	}()
	if _, err := conn.ExecContext(ctx, "VACUUM INTO ?", dest); err != nil {
		return fmt.Errorf("backup to %s: %w", dest, err)
	}
	return nil
}
