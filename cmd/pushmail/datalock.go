package main

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
)

// lockFile is the data directory's lock, held by "pushmail serve" and
// "pushmail restore" for as long as they run.
//
// Why: the notifier is in-process, so a second server on the same store
// would deliver mail that the first one's IDLE sessions never hear of;
// and a restore must not swap the file under a running server. Admin
// commands (user, alias, backup, stats) do not take the lock: they are
// meant to run beside the server, and go through SQLite's own locking.
const lockFile = "pushmail.lock"

// dataLock is a held data-directory lock. Release it with Close.
type dataLock struct {
	f        *os.File
	writable bool // the note is ours to empty
}

// errDataLocked is returned, wrapped, when another process holds the lock.
var errDataLocked = errors.New("data directory in use")

// lockDataDir takes an exclusive flock(2) on dir/pushmail.lock without
// waiting, and writes "PID WHAT" into the file for whoever is refused
// next. The kernel drops the lock when the process exits, even on a
// crash, so a stale file never blocks a start. dir must exist.
func lockDataDir(dir, what string) (*dataLock, error) {
	path := filepath.Join(dir, lockFile)
	// Readable by all (it holds a PID), so that whoever runs the server
	// can lock it even if root created it: flock(2) works on a read-only
	// descriptor, only the note is lost.
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	writable := err == nil
	if errors.Is(err, fs.ErrPermission) {
		f, err = os.Open(path)
	}
	if err != nil {
		return nil, fmt.Errorf("lock data directory: %w", err)
	}
	if writable {
		giveToDirOwner(f, dir)
	}
	if err := flock(f, syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		holder := readHolder(f)
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("%w: %s is locked by another pushmail%s; stop it first", errDataLocked, dir, holder)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if !writable {
		return &dataLock{f: f}, nil
	}
	// A directory where the note cannot be written will not take the
	// store's writes either: fail now, with the lock file's name.
	if err := f.Truncate(0); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	if _, err := f.WriteAt(fmt.Appendf(nil, "%d %s\n", os.Getpid(), what), 0); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return &dataLock{f: f, writable: true}, nil
}

// giveToDirOwner makes root's lock file belong to the data directory's
// owner, the user the server runs as. Failing that, the file stays
// readable, which is enough to lock it.
func giveToDirOwner(f *os.File, dir string) {
	if os.Geteuid() != 0 {
		return
	}
	dfi, err1 := os.Stat(dir)
	ffi, err2 := f.Stat()
	if err1 != nil || err2 != nil {
		return
	}
	d, ok1 := dfi.Sys().(*syscall.Stat_t)
	h, ok2 := ffi.Sys().(*syscall.Stat_t)
	if ok1 && ok2 && (d.Uid != h.Uid || d.Gid != h.Gid) {
		_ = f.Chown(int(d.Uid), int(d.Gid)) // see above: best effort
	}
}

// flock retries flock(2) when a signal interrupts it.
func flock(f *os.File, how int) error {
	for {
		err := syscall.Flock(int(f.Fd()), how)
		if !errors.Is(err, syscall.EINTR) {
			return err
		}
	}
}

// readHolder returns " (pid N, WHAT)" from the lock file, or "" if it
// holds nothing readable (the holder may not have written it yet).
func readHolder(f *os.File) string {
	b, err := io.ReadAll(io.LimitReader(f, 256))
	if err != nil {
		return ""
	}
	pid, what, ok := strings.Cut(strings.TrimSpace(string(b)), " ")
	if !ok || pid == "" {
		return ""
	}
	return fmt.Sprintf(" (pid %s, pushmail %s)", pid, what)
}

// Close empties the lock file and releases the lock. The file itself
// stays: removing it would let two processes each lock a different inode.
func (l *dataLock) Close() error {
	var terr error
	if l.writable {
		terr = l.f.Truncate(0)
	}
	// Closing the only descriptor releases the flock.
	if err := l.f.Close(); err != nil {
		return fmt.Errorf("release data directory lock: %w", err)
	}
	if terr != nil {
		return fmt.Errorf("release data directory lock: %w", terr)
	}
	return nil
}
