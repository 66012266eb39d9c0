package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math"
	"net/url"
	"os"
	"path/filepath"
	"syscall"
	"time"
)

// ErrNotStore means a file given to Restore is not a usable pushmail
// store: not SQLite, damaged, or missing pushmail's tables.
var ErrNotStore = errors.New("not a pushmail store")

// RestoreOptions configures Restore. The zero value is usable.
type RestoreOptions struct {
	// Force installs the backup even when the store being replaced exists
	// but cannot be read. Its UIDVALIDITY values are then unknown, and the
	// new ones are only guaranteed to be above the backup's and above the
	// current time (the counter's starting point, see migrate).
	Force bool
	// Now is the time used for the kept file's name and as a floor for
	// the new UIDVALIDITY values; the zero value means time.Now().
	Now time.Time
}

// RestoreResult says what Restore did.
type RestoreResult struct {
	// SchemaVersion is the backup's schema version. Open migrates an
	// older one forward.
	SchemaVersion int
	// BackupIssued and ReplacedIssued are the highest UIDVALIDITY values
	// the backup and the replaced store had issued (their counters, or
	// their highest mailbox value if larger); ReplacedIssued is 0 when
	// there was no store to replace or it could not be read.
	BackupIssued, ReplacedIssued uint32
	// Mailboxes is the number of mailboxes given a new UIDVALIDITY, the
	// values FirstUIDValidity to FirstUIDValidity+Mailboxes-1.
	Mailboxes        int
	FirstUIDValidity uint32
	// Kept is where the replaced store was kept ("" if there was none);
	// its write-ahead log, if one could not be checkpointed, is Kept+"-wal".
	Kept string
	// ReplacedErr, set only with RestoreOptions.Force, is why the replaced
	// store could not be read.
	ReplacedErr error
}

// Restore installs the backup at backupPath as the store at dbPath, in
// place of any store there, and gives every mailbox a new UIDVALIDITY.
//
// Nothing may have dbPath open while Restore runs: the caller stops the
// server and holds whatever lock keeps it stopped. Restore does not take
// one; it works on files.
//
// The backup is checked first, read-only: PRAGMA integrity_check must say
// ok, it must hold pushmail's tables, and its schema must not be newer than
// this binary's (ErrSchemaTooNew). A backup with a non-empty write-ahead
// log beside it is refused, since copying the file alone would lose the
// log's transactions.
//
// Why new UIDVALIDITY values: after the backup was taken, the replaced
// store went on assigning UIDs, which clients have cached. The restored
// mailboxes would assign the same UIDs again to other messages under the
// same UIDVALIDITY, which RFC 9051 §2.3.1.1 forbids ("unique identifiers
// MUST NOT be reused" while UIDVALIDITY is unchanged). A new UIDVALIDITY
// makes clients discard what they cached and resynchronise. The values
// come from the same counter as a new mailbox's (meta 'uidvalidity'),
// first raised above everything the backup and the replaced store issued
// and above the current time, so no client can have seen them.
//
// The replaced store is first checkpointed (its WAL folded into the file),
// then kept as dbPath+".before-restore-<UTC time>", hard-linked so that
// dbPath always names a complete store. The backup is copied into a
// temporary file beside dbPath, renumbered and synced there, and renamed
// over dbPath; stale -wal and -shm files of the replaced store are moved
// or removed first, and the directory is synced last. On error before
// that rename, dbPath is unchanged.
func Restore(ctx context.Context, backupPath, dbPath string, opts RestoreOptions) (RestoreResult, error) {
	now := opts.Now
	if now.IsZero() {
		now = time.Now()
	}
	var res RestoreResult
	if err := checkNoWAL(backupPath); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	var err error
	res.SchemaVersion, res.BackupIssued, err = checkBackup(ctx, backupPath)
	if err != nil {
		return res, fmt.Errorf("restore: backup %s: %w", backupPath, err)
	}

	replaced := true
	if _, err := os.Stat(dbPath); errors.Is(err, fs.ErrNotExist) {
		replaced = false
	} else if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	if replaced {
		res.ReplacedIssued, err = readReplaced(ctx, dbPath)
		if err != nil {
			if !opts.Force {
				return res, fmt.Errorf("restore: cannot read the store being replaced, %s, to find the UIDVALIDITY values its clients have seen (Force installs anyway): %w", dbPath, err)
			}
			res.ReplacedIssued, res.ReplacedErr = 0, err
		}
	}

	floor := max(res.BackupIssued, res.ReplacedIssued)
	if now.Unix() > int64(floor) && now.Unix() <= math.MaxUint32 {
		floor = uint32(now.Unix())
	}

	dir := filepath.Dir(dbPath)
	tmp, err := copyToTemp(ctx, backupPath, dir)
	if err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	installed := false
	defer func() {
		if !installed {
			for _, f := range []string{tmp, tmp + "-journal", tmp + "-wal", tmp + "-shm"} {
				removeQuietly(f)
			}
		}
	}()
	// The server must be able to write the new file: give it the owner
	// and mode of the one it replaces, or of the directory if none (a
	// restore run as root for a server that runs as its own user).
	ref := dbPath
	if !replaced {
		ref = dir
	}
	if err := matchOwner(tmp, ref, replaced); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}
	res.Mailboxes, res.FirstUIDValidity, err = renumber(ctx, tmp, floor)
	if err != nil {
		return res, fmt.Errorf("restore: new UIDVALIDITY values: %w", err)
	}
	if err := syncFile(tmp); err != nil {
		return res, fmt.Errorf("restore: %w", err)
	}

	if replaced {
		if res.Kept, err = keepReplaced(dbPath, now); err != nil {
			return res, fmt.Errorf("restore: keep the replaced store: %w", err)
		}
	}
	// A stale WAL beside the new file would be replayed into it. The
	// checkpoint in readReplaced normally leaves none; one that remains
	// holds the replaced store's last transactions, so it goes with Kept.
	if fi, err := os.Stat(dbPath + "-wal"); err == nil && fi.Size() > 0 && res.Kept != "" {
		if err := os.Rename(dbPath+"-wal", res.Kept+"-wal"); err != nil {
			return res, fmt.Errorf("restore: keep the replaced store's WAL: %w", err)
		}
	}
	for _, stale := range []string{dbPath + "-wal", dbPath + "-shm", dbPath + "-journal"} {
		if err := os.Remove(stale); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return res, fmt.Errorf("restore: remove stale %s: %w", stale, err)
		}
	}
	if err := os.Rename(tmp, dbPath); err != nil {
		return res, fmt.Errorf("restore: install %s: %w", dbPath, err)
	}
	installed = true
	if err := syncDir(dir); err != nil {
		return res, fmt.Errorf("restore: installed, but syncing %s failed: %w", dir, err)
	}
	return res, nil
}

// checkNoWAL refuses a database with a non-empty write-ahead log beside it.
func checkNoWAL(path string) error {
	if fi, err := os.Stat(path + "-wal"); err == nil && fi.Size() > 0 {
		return fmt.Errorf("%s has a write-ahead log beside it (%s-wal) that a copy of the file alone would lose; make backups with pushmail backup, or open it once with sqlite3 to fold the log in", path, path)
	}
	return nil
}

// dsn returns a SQLite DSN for path with the given query parameters.
func dsn(path, query string) string {
	return "file:" + (&url.URL{Path: path}).EscapedPath() + "?" + query
}

// checkBackup opens path read-only and checks that it is a pushmail
// store this binary can use. It returns its schema version and the highest
// UIDVALIDITY it issued.
func checkBackup(ctx context.Context, path string) (version int, issued uint32, err error) {
	if _, err := os.Stat(path); err != nil {
		return 0, 0, err
	}
	// immutable: read the file alone, creating no -wal or -shm beside it
	// (checkNoWAL made sure there is no log to read).
	db, err := sql.Open("sqlite3", dsn(path, "mode=ro&immutable=1"))
	if err != nil {
		return 0, 0, err
	}
	defer closeQuietly(db)
	db.SetMaxOpenConns(1)
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA integrity_check").Scan(&check); err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrNotStore, err)
	}
	if check != "ok" {
		return 0, 0, fmt.Errorf("%w: integrity check: %s", ErrNotStore, check)
	}
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrNotStore, err)
	}
	if version == 0 {
		return 0, 0, fmt.Errorf("%w: no pushmail schema", ErrNotStore)
	}
	if version > schemaVersion {
		return 0, 0, fmt.Errorf("%w: file has schema version %d, this binary knows up to %d; restore with a newer pushmail",
			ErrSchemaTooNew, version, schemaVersion)
	}
	issued, err = issuedUIDValidity(ctx, db)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", ErrNotStore, err)
	}
	return version, issued, nil
}

// issuedUIDValidity returns the highest UIDVALIDITY a store has issued:
// its counter, or a mailbox's value if one is higher (it never should be).
func issuedUIDValidity(ctx context.Context, db *sql.DB) (uint32, error) {
	var counter, highest int64
	err := db.QueryRowContext(ctx, `SELECT
		(SELECT value FROM meta WHERE key = 'uidvalidity'),
		(SELECT COALESCE(MAX(uidvalidity), 0) FROM mailboxes)`).Scan(&counter, &highest)
	if err != nil {
		return 0, fmt.Errorf("read UIDVALIDITY counter: %w", err)
	}
	v := max(counter, highest)
	if v < 0 || v > math.MaxUint32 {
		return 0, fmt.Errorf("UIDVALIDITY %d out of range", v)
	}
	return uint32(v), nil
}

// readReplaced reads the highest UIDVALIDITY the store at path issued and
// folds its write-ahead log into the file, so that the file is complete
// when it is kept.
func readReplaced(ctx context.Context, path string) (uint32, error) {
	db, err := sql.Open("sqlite3", dsn(path, "_busy_timeout=10000"))
	if err != nil {
		return 0, err
	}
	defer closeQuietly(db)
	db.SetMaxOpenConns(1)
	issued, err := issuedUIDValidity(ctx, db)
	if err != nil {
		return 0, err
	}
	// Harmless on a rollback-journal database: it reports nothing to do.
	var busy, logged, done int
	if err := db.QueryRowContext(ctx, "PRAGMA wal_checkpoint(TRUNCATE)").Scan(&busy, &logged, &done); err != nil {
		return 0, fmt.Errorf("checkpoint: %w", err)
	}
	if busy != 0 {
		return 0, errors.New("checkpoint: the database is busy; is a server still using it?")
	}
	if err := db.Close(); err != nil {
		return 0, err
	}
	return issued, nil
}

// copyToTemp copies src to a new temporary file in dir, synced to disk,
// and returns its name.
func copyToTemp(ctx context.Context, src, dir string) (string, error) {
	in, err := os.Open(src)
	if err != nil {
		return "", err
	}
	defer in.Close()
	out, err := os.CreateTemp(dir, ".pushmail.db.restore-*")
	if err != nil {
		return "", err
	}
	name := out.Name()
	_, err = io.Copy(out, readerCtx{ctx, in})
	if err == nil {
		err = out.Sync()
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		removeQuietly(name)
		return "", fmt.Errorf("copy %s to %s: %w", src, dir, err)
	}
	return name, nil
}

// readerCtx stops a copy when its context ends.
type readerCtx struct {
	ctx context.Context
	r   io.Reader
}

func (r readerCtx) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}

// renumber gives every mailbox of the store at path a new UIDVALIDITY
// above floor, drawn from the store's counter as createMailboxTx draws
// one, in one transaction. The file is left in rollback-journal mode, with
// nothing beside it; Open turns WAL on again.
func renumber(ctx context.Context, path string, floor uint32) (n int, first uint32, err error) {
	db, err := sql.Open("sqlite3", dsn(path, "_journal_mode=DELETE&_synchronous=FULL&_txlock=immediate"))
	if err != nil {
		return 0, 0, err
	}
	defer closeQuietly(db)
	db.SetMaxOpenConns(1)
	var count int64
	if err := db.QueryRowContext(ctx, "SELECT COUNT(*) FROM mailboxes").Scan(&count); err != nil {
		return 0, 0, err
	}
	if int64(floor)+count > math.MaxUint32 {
		return 0, 0, fmt.Errorf("UIDVALIDITY values exhausted: %d mailboxes above %d", count, floor)
	}
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return 0, 0, err
	}
	defer rollback(tx) // after Commit, a no-op
	if _, err := tx.ExecContext(ctx, "UPDATE meta SET value = ? WHERE key = 'uidvalidity'", floor); err != nil {
		return 0, 0, err
	}
	rows, err := tx.QueryContext(ctx, "SELECT id FROM mailboxes ORDER BY id")
	if err != nil {
		return 0, 0, err
	}
	var ids []int64
	for rows.Next() {
		var id int64
		if err := rows.Scan(&id); err != nil {
			rows.Close()
			return 0, 0, err
		}
		ids = append(ids, id)
	}
	if err := rows.Close(); err != nil {
		return 0, 0, err
	}
	for _, id := range ids {
		var v uint32
		if err := tx.QueryRowContext(ctx, "UPDATE meta SET value = value + 1 WHERE key = 'uidvalidity' RETURNING value").Scan(&v); err != nil {
			return 0, 0, err
		}
		if _, err := tx.ExecContext(ctx, "UPDATE mailboxes SET uidvalidity = ? WHERE id = ?", v, id); err != nil {
			return 0, 0, err
		}
		if first == 0 {
			first = v
		}
	}
	if err := tx.Commit(); err != nil {
		return 0, 0, err
	}
	if err := db.Close(); err != nil {
		return 0, 0, err
	}
	return len(ids), first, nil
}

// keepReplaced hard-links the store at path to a new name beside it,
// path+".before-restore-<time>", and returns that name.
func keepReplaced(path string, now time.Time) (string, error) {
	base := path + ".before-restore-" + now.UTC().Format("20060102T150405Z")
	for i := 0; i < 100; i++ {
		kept := base
		if i > 0 {
			kept = fmt.Sprintf("%s-%d", base, i)
		}
		err := os.Link(path, kept)
		if err == nil {
			return kept, nil
		}
		if !errors.Is(err, fs.ErrExist) {
			return "", err
		}
	}
	return "", fmt.Errorf("%s and 99 more names like it exist", base)
}

// matchOwner gives path the owner and group of ref and, if sameMode, its
// permission bits (else path keeps the 0600 of os.CreateTemp).
func matchOwner(path, ref string, sameMode bool) error {
	want, err := os.Stat(ref)
	if err != nil {
		return err
	}
	have, err := os.Stat(path)
	if err != nil {
		return err
	}
	if sameMode && have.Mode().Perm() != want.Mode().Perm() {
		if err := os.Chmod(path, want.Mode().Perm()); err != nil {
			return err
		}
	}
	w, ok1 := want.Sys().(*syscall.Stat_t)
	h, ok2 := have.Sys().(*syscall.Stat_t)
	if ok1 && ok2 && (w.Uid != h.Uid || w.Gid != h.Gid) {
		if err := os.Chown(path, int(w.Uid), int(w.Gid)); err != nil {
			return fmt.Errorf("give the restored store the owner of %s: %w", ref, err)
		}
	}
	return nil
}

func syncFile(path string) error {
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// syncDir makes a rename in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// removeQuietly removes a temporary file on a path that already failed;
// that failure is the error reported.
func removeQuietly(path string) {
	_ = os.Remove(path) // see above; a leftover temporary file is harmless
}
