package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"syscall"
)

// A write that adds mail is admitted only if the store keeps its reserve
// (Options.MinFreeBytes) and stays under its cap (Options.MaxDatabaseBytes)
// afterwards; every other write runs regardless. SQLite appends every
// change, a DELETE included, to the write-ahead log before it reaches the
// database, so on a file system with no room left an EXPUNGE fails like a
// delivery: the reserve is the room kept for the writes that free space.
//
// The check runs in the writer before each batch that holds such a write,
// against the batch's total, so a batch overshoots by nothing it knew of.
// It is a few system calls (statfs, two stats); the free pages inside the
// database are read only when the file system alone does not suffice.

// diskCost is what n message bytes cost on disk until the next checkpoint:
// once in the write-ahead log, once in the database.
func diskCost(n int64) int64 { return 2 * n }

// spaceLimited reports whether the store has a reserve or a cap to keep.
func (s *Store) spaceLimited() bool {
	return s.opts.MinFreeBytes > 0 || s.opts.MaxDatabaseBytes > 0
}

// admit returns nil if need more bytes on disk keep the store within its
// reserve and its cap, and otherwise an error wrapping ErrStorageFull that
// names the limit reached. q reads the database's free page count; the
// writer passes its own connection, everyone else the read pool.
func (s *Store) admit(ctx context.Context, need int64, q rowQuerier) error {
	if !s.spaceLimited() {
		return nil
	}
	var fsFree int64
	if s.opts.MinFreeBytes > 0 {
		var st syscall.Statfs_t
		if err := syscall.Statfs(s.dir, &st); err != nil {
			return fmt.Errorf("free space of %s: %w", s.dir, err)
		}
		fsFree = int64(st.Bavail) * int64(st.Bsize)
	}
	var onDisk int64
	if s.opts.MaxDatabaseBytes > 0 {
		for _, f := range []string{s.path, s.path + "-wal"} {
			n, err := fileSize(f)
			if err != nil {
				return err
			}
			onDisk += n
		}
	}
	fsOK := s.opts.MinFreeBytes <= 0 || fsFree-need >= s.opts.MinFreeBytes
	capOK := s.opts.MaxDatabaseBytes <= 0 || onDisk+need <= s.opts.MaxDatabaseBytes
	if fsOK && capOK {
		return nil
	}
	// SQLite fills the database's free pages before it grows the file:
	// they are room too, and what an EXPUNGE gives back on a file system
	// where the file does not shrink.
	var pages int64
	if err := q.QueryRowContext(ctx, "PRAGMA freelist_count").Scan(&pages); err != nil {
		return fmt.Errorf("read free page count: %w", err)
	}
	inDB := pages * s.pageSize
	if s.opts.MinFreeBytes > 0 && fsFree+inDB-need < s.opts.MinFreeBytes {
		return fmt.Errorf("%w: %s free for the store (%s on the file system of %s, %s in the database), reserve %s",
			ErrStorageFull, formatBytes(fsFree+inDB), formatBytes(fsFree), s.dir, formatBytes(inDB), formatBytes(s.opts.MinFreeBytes))
	}
	if s.opts.MaxDatabaseBytes > 0 && onDisk-inDB+need > s.opts.MaxDatabaseBytes {
		return fmt.Errorf("%w: the store uses %s (database and write-ahead log), cap %s",
			ErrStorageFull, formatBytes(onDisk-inDB), formatBytes(s.opts.MaxDatabaseBytes))
	}
	return nil
}

// walBacklog is the most the database may grow by when the write-ahead
// log is next checkpointed: an autocheckpoint's worth of pages.
func (s *Store) walBacklog() int64 {
	_, pages := walSizes(s.opts.MaxDatabaseBytes, s.pageSize)
	return pages * s.pageSize
}

// SpaceCheck reports whether the store has room for a message of the
// largest size (Options.MaxMessageSize): nil, or an error wrapping
// ErrStorageFull that says which limit is reached, the free-space reserve
// (Options.MinFreeBytes) or the cap (Options.MaxDatabaseBytes), with the
// figures. Other errors mean the space could not be measured. It is what
// a health check calls: while it fails, some or all deliveries are
// refused, and writes that free space still succeed. Safe for concurrent
// use; it only reads.
func (s *Store) SpaceCheck(ctx context.Context) error {
	return s.admit(ctx, diskCost(s.opts.MaxMessageSize), s.rdb)
}

// admitGrowth refuses, before a batch runs, the writes that add mail and
// do not fit: each is admitted with the cost of those admitted before it.
// Refused ops keep op.refused through both passes of runBatch.
func (s *Store) admitGrowth(ops []*writeOp) {
	if !s.spaceLimited() {
		return
	}
	ctx := context.Background() // the batch belongs to no single caller
	var total int64
	grows := false
	for _, op := range ops {
		if op.grows {
			grows = true
			total += diskCost(int64(op.size))
		}
	}
	if !grows {
		return
	}
	// Pages still only in the write-ahead log grow the database when they
	// are checkpointed, up to a checkpoint's worth at once (4 MiB by
	// default): count that much too.
	if s.admit(ctx, total+s.walBacklog(), s.wdb) == nil {
		return
	}
	// Near the limit: checkpoint now, without waiting for readers, so
	// that the measure holds what the log held. Then admit one by one, so
	// that small writes still pass beside a large one that does not fit.
	// (A reader that keeps the checkpoint from finishing leaves part of
	// the log uncounted: the reserve absorbs it.)
	if _, err := s.wdb.ExecContext(ctx, "PRAGMA wal_checkpoint(PASSIVE)"); err != nil {
		s.log.Warn("mailstore: checkpoint before measuring free space", "err", err)
	}
	var admitted int64
	for _, op := range ops {
		if !op.grows {
			continue
		}
		cost := diskCost(int64(op.size))
		if err := s.admit(ctx, admitted+cost, s.wdb); err != nil {
			if errors.Is(err, ErrStorageFull) {
				s.log.Warn("mailstore: write refused for space", "err", err, "bytes", op.size)
			} else {
				s.log.Error("mailstore: measure free space", "err", err)
			}
			op.refused = err
			continue
		}
		admitted += cost
	}
}

// rowQuerier is *sql.DB: the writer's connection or the read pool.
type rowQuerier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// fileSize is the size of the file at path, 0 if there is none.
func fileSize(path string) (int64, error) {
	fi, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	return fi.Size(), nil
}

// formatBytes writes n in the largest binary unit that keeps it at least
// 1, with one decimal: "3.5 MiB".
func formatBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 4; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTP"[exp])
}
