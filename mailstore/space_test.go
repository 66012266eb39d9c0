package mailstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mountTmpfs mounts a tmpfs of the given size (mount(8) syntax, "16m") on
// a fresh directory and unmounts it when the test ends, failed or not. It
// skips the test where mounting is not allowed (not root, no
// CAP_SYS_ADMIN): TestReserveFromStatfs covers the same code on any disk.
func mountTmpfs(t *testing.T, size string) string {
	t.Helper()
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size="+size); err != nil {
		t.Skipf("cannot mount a %s tmpfs on %s: %v", size, dir, err)
	}
	// Registered after TempDir's removal, so it runs before it; stores
	// opened later close before it.
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount tmpfs %s: %v", dir, err)
		}
	})
	return dir
}

// fsFree is what statfs(2) says is available on dir's file system.
func fsFree(t *testing.T, dir string) int64 {
	t.Helper()
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil {
		t.Fatal(err)
	}
	return int64(st.Bavail) * int64(st.Bsize)
}

// fillUntilRefused adds messages with add until it fails, which must be
// with ErrStorageFull, and returns what was acknowledged, by UID.
func fillUntilRefused(t *testing.T, what string, add func(msg []byte) (UID, error)) map[UID][]byte {
	t.Helper()
	big := bytes.Repeat([]byte("0123456789abcdef"), 4<<10) // 64 KiB of body
	acked := map[UID][]byte{}
	for i := 0; ; i++ {
		if i > 10000 {
			t.Fatalf("%s: never refused", what)
		}
		msg := fmt.Appendf(nil, "Subject: %s %d\r\n\r\n%s\r\n", what, i, big)
		uid, err := add(msg)
		if err != nil {
			if !errors.Is(err, ErrStorageFull) {
				t.Fatalf("%s: add #%d = %v, want ErrStorageFull", what, i, err)
			}
			if i == 0 {
				t.Fatalf("%s: the first message was refused: %v", what, err)
			}
			return acked
		}
		acked[uid] = msg
	}
}

// checkHolds fails unless mailbox mb holds exactly the acknowledged
// messages: nothing lost, nothing half-stored from a refused write.
func checkHolds(t *testing.T, s *Store, mb MailboxID, acked map[UID][]byte) {
	t.Helper()
	stored := storedBodies(t, s, mb)
	for uid, msg := range acked {
		if !bytes.Equal(stored[uid], msg) {
			t.Errorf("acknowledged UID %d lost or changed", uid)
		}
	}
	if len(stored) != len(acked) {
		t.Errorf("%d messages stored, %d acknowledged: a refused write was kept", len(stored), len(acked))
	}
}

// On a file system that is really filling up, deliveries stop at the
// reserve, and each write that frees space (flags, EXPUNGE, mailbox
// delete, user delete) then succeeds on the disk as it is, at the
// watermark; the space it frees lets mail in again.
func TestReserveOnFullDisk(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := mountTmpfs(t, "16m")
	const reserve = 4 << 20
	s := openStoreAt(t, filepath.Join(dir, "test.db"), Options{MinFreeBytes: reserve, MaxMessageSize: 256 << 10})
	u := addUser(t, s, "u@localhost")
	v := addUser(t, s, "v@localhost")
	archive, err := s.CreateMailbox(ctx, u.User, "Projects", "")
	if err != nil {
		t.Fatal(err)
	}
	deliver := func(r Recipient) func([]byte) (UID, error) {
		return func(msg []byte) (UID, error) {
			uids, err := s.Deliver(ctx, msg, []Recipient{r})
			if err != nil {
				return 0, err
			}
			return uids[0], nil
		}
	}
	atWatermark := func(what string) {
		t.Helper()
		// Refused near the reserve, and the reserve kept: what is in the
		// write-ahead log was counted before it reached the database.
		if free := fsFree(t, dir); free > reserve+(1<<20) || free < reserve-(1<<20) {
			t.Fatalf("%s: refused with %d bytes free, want about the reserve, %d", what, free, reserve)
		}
		if err := s.SpaceCheck(ctx); !errors.Is(err, ErrStorageFull) || !strings.Contains(err.Error(), "reserve") {
			t.Errorf("%s: SpaceCheck() = %v, want ErrStorageFull naming the reserve", what, err)
		}
		// Every write that adds mail is refused, not only deliveries.
		if _, err := s.Append(ctx, u.Mailbox, []byte("Subject: a\r\n\r\n"+strings.Repeat("x", 160<<10)), nil, time.Time{}, 0); !errors.Is(err, ErrStorageFull) {
			t.Errorf("%s: Append = %v, want ErrStorageFull", what, err)
		}
	}
	roomAgain := func(what string) {
		t.Helper()
		if err := s.SpaceCheck(ctx); err != nil {
			t.Errorf("after %s: SpaceCheck() = %v, want nil", what, err)
		}
		if _, err := s.Deliver(ctx, []byte("Subject: after\r\n\r\nroom again\r\n"), []Recipient{u}); err != nil {
			t.Errorf("Deliver after %s = %v", what, err)
		}
	}

	// 1. \Deleted and EXPUNGE.
	acked := fillUntilRefused(t, "inbox", deliver(u))
	atWatermark("inbox")
	checkHolds(t, s, u.Mailbox, acked)
	if _, err := s.StoreFlags(ctx, u.Mailbox, AllUIDs(), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatalf("StoreFlags \\Deleted at the watermark = %v", err)
	}
	if _, err := s.Expunge(ctx, u.Mailbox, AllUIDs(), 0); err != nil {
		t.Fatalf("Expunge at the watermark = %v", err)
	}
	checkHolds(t, s, u.Mailbox, nil)
	roomAgain("EXPUNGE")

	// 2. Deleting a mailbox.
	acked = fillUntilRefused(t, "projects", func(msg []byte) (UID, error) {
		res, err := s.Append(ctx, archive.ID, msg, nil, time.Time{}, 0)
		return res.UID, err
	})
	atWatermark("projects")
	checkHolds(t, s, archive.ID, acked)
	if err := s.DeleteMailbox(ctx, u.User, "Projects"); err != nil {
		t.Fatalf("DeleteMailbox at the watermark = %v", err)
	}
	roomAgain("DELETE")

	// 3. Deleting a user.
	acked = fillUntilRefused(t, "v", deliver(v))
	atWatermark("v")
	checkHolds(t, s, v.Mailbox, acked)
	if err := s.DeleteUser(ctx, "v@localhost"); err != nil {
		t.Fatalf("DeleteUser at the watermark = %v", err)
	}
	roomAgain("user delete")

	st, err := s.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if st.Messages != 3 || st.Users != 1 {
		t.Errorf("Stats() = %d messages, %d users; want 3 (one after each deletion), 1", st.Messages, st.Users)
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
}

// The default measure is statfs(2) of the database's directory, on any
// disk: with a reserve larger than the disk, every write that adds mail
// is refused and every other write works.
func TestReserveFromStatfs(t *testing.T) {
	sqliteOnly(t)
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	other, err := s.CreateMailbox(ctx, r.User, "Other", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx, testMessage(1), []Recipient{r}); err != nil {
		t.Fatal(err)
	}
	if err := s.SpaceCheck(ctx); err != nil {
		t.Fatalf("SpaceCheck() without a reserve = %v", err)
	}
	path := s.Path()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStoreAt(t, path, Options{MinFreeBytes: 1 << 60})
	if _, err := s.Deliver(ctx, testMessage(2), []Recipient{r}); !errors.Is(err, ErrStorageFull) {
		t.Errorf("Deliver below the reserve = %v, want ErrStorageFull", err)
	}
	if _, err := s.Append(ctx, r.Mailbox, testMessage(3), nil, time.Time{}, 0); !errors.Is(err, ErrStorageFull) {
		t.Errorf("Append below the reserve = %v, want ErrStorageFull", err)
	}
	if _, err := s.Copy(ctx, r.Mailbox, AllUIDs(), other.ID, 0); !errors.Is(err, ErrStorageFull) {
		t.Errorf("Copy below the reserve = %v, want ErrStorageFull", err)
	}
	err = s.SpaceCheck(ctx)
	if !errors.Is(err, ErrStorageFull) || !strings.Contains(err.Error(), "reserve 1024.0 PiB") {
		t.Errorf("SpaceCheck() below the reserve = %v, want ErrStorageFull naming the reserve", err)
	}
	checkHolds(t, s, r.Mailbox, map[UID][]byte{1: testMessage(1)})
	checkHolds(t, s, other.ID, nil)

	if _, err := s.Move(ctx, r.Mailbox, AllUIDs(), other.ID, 0); err != nil {
		t.Errorf("Move below the reserve = %v", err)
	}
	if _, err := s.StoreFlags(ctx, other.ID, AllUIDs(), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Errorf("StoreFlags below the reserve = %v", err)
	}
	if _, err := s.Expunge(ctx, other.ID, AllUIDs(), 0); err != nil {
		t.Errorf("Expunge below the reserve = %v", err)
	}
	if err := s.DeleteMailbox(ctx, r.User, "Other"); err != nil {
		t.Errorf("DeleteMailbox below the reserve = %v", err)
	}
	if err := s.DeleteUser(ctx, "u@localhost"); err != nil {
		t.Errorf("DeleteUser below the reserve = %v", err)
	}
	if err := s.Ping(ctx); err != nil {
		t.Errorf("Ping below the reserve = %v", err)
	}
}

// onDisk is the size of the database file and its write-ahead log.
func onDisk(t *testing.T, s *Store) int64 {
	t.Helper()
	var n int64
	for _, f := range []string{s.Path(), s.Path() + "-wal"} {
		fi, err := os.Stat(f)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if err == nil {
			n += fi.Size()
		}
	}
	return n
}
