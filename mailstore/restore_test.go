package mailstore

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// maxUIDValidity returns the highest UIDVALIDITY among a user's mailboxes
// and the values by mailbox name.
func uidValidities(t *testing.T, s *Store, user UserID) (map[string]uint32, uint32) {
	t.Helper()
	list, err := s.MailboxStatuses(context.Background(), user)
	if err != nil {
		t.Fatalf("MailboxStatuses() = %v", err)
	}
	m := map[string]uint32{}
	var hi uint32
	for _, st := range list {
		m[st.Name] = st.UIDValidity
		hi = max(hi, st.UIDValidity)
	}
	return m, hi
}

func TestRestoreGivesEveryMailboxANewUIDValidity(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "pushmail.db")
	backup := filepath.Join(t.TempDir(), "backup.db")

	s, err := Open(ctx, dbPath, Options{PasswordCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	u := addUser(t, s, "u@localhost")
	v := addUser(t, s, "v@localhost")
	for i := range 2 {
		if _, err := s.Deliver(ctx, testMessage(i), []Recipient{u, v}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	_, backupHi := uidValidities(t, s, u.User)
	// After the backup: more mail (UIDs 3..5 that clients will cache) and
	// a new mailbox, which moves the counter past the backup's.
	for i := 2; i < 5; i++ {
		if _, err := s.Deliver(ctx, testMessage(i), []Recipient{u}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreateMailbox(ctx, u.User, "After", ""); err != nil {
		t.Fatal(err)
	}
	before, oldHi := uidValidities(t, s, u.User)
	if oldHi <= backupHi {
		t.Fatalf("test setup: the old store's highest UIDVALIDITY %d is not above the backup's %d", oldHi, backupHi)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	if err := os.Chmod(dbPath, 0o640); err != nil {
		t.Fatal(err)
	}
	// A time in the past: the floor must come from the two stores.
	now := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
	res, err := Restore(ctx, backup, dbPath, RestoreOptions{Now: now})
	if err != nil {
		t.Fatalf("Restore() = %v", err)
	}
	if res.ReplacedIssued < oldHi || res.BackupIssued < backupHi || res.BackupIssued >= oldHi {
		t.Errorf("Restore() issued: backup %d, replaced %d; want >= %d and >= %d (and backup < replaced)",
			res.BackupIssued, res.ReplacedIssued, backupHi, oldHi)
	}
	if want := filepath.Join(dir, "pushmail.db.before-restore-20010203T040506Z"); res.Kept != want {
		t.Errorf("Restore() kept the old store at %q, want %q", res.Kept, want)
	}
	if res.FirstUIDValidity <= max(oldHi, res.ReplacedIssued, res.BackupIssued) {
		t.Errorf("first new UIDVALIDITY %d is not above every issued one (%d, %d)", res.FirstUIDValidity, res.ReplacedIssued, res.BackupIssued)
	}
	for _, stale := range []string{"-wal", "-shm", "-journal"} {
		if _, err := os.Stat(dbPath + stale); err == nil {
			t.Errorf("%s left beside the restored store", dbPath+stale)
		}
	}
	if ents, _ := filepath.Glob(filepath.Join(dir, ".pushmail.db.restore-*")); len(ents) != 0 {
		t.Errorf("temporary files left: %v", ents)
	}
	if fi, err := os.Stat(dbPath); err != nil {
		t.Error(err)
	} else if fi.Mode().Perm() != 0o640 {
		t.Errorf("restored store's mode = %v, want the replaced one's 0640", fi.Mode())
	}

	// The kept store is complete: it has the mail delivered after the backup.
	kept := openStoreAt(t, res.Kept, Options{})
	if st, err := kept.Stats(ctx); err != nil || st.Messages != 7 {
		t.Errorf("kept store Stats() = %+v, %v; want 7 messages", st, err)
	}

	r := openStoreAt(t, dbPath, Options{})
	seen := map[uint32]bool{}
	var total int
	for _, user := range []Recipient{u, v} {
		after, _ := uidValidities(t, r, user.User)
		for name, val := range after {
			total++
			if val <= oldHi || val <= backupHi {
				t.Errorf("%s: UIDVALIDITY after restore %d, want above %d (old store) and %d (backup)", name, val, oldHi, backupHi)
			}
			if user.User == u.User && val == before[name] {
				t.Errorf("%s: UIDVALIDITY unchanged by restore: %d", name, val)
			}
			if val < res.FirstUIDValidity || val >= res.FirstUIDValidity+uint32(res.Mailboxes) {
				t.Errorf("%s: UIDVALIDITY %d outside the reported range %d+%d", name, val, res.FirstUIDValidity, res.Mailboxes)
			}
			if seen[val] {
				t.Errorf("UIDVALIDITY %d given twice", val)
			}
			seen[val] = true
		}
	}
	if total != res.Mailboxes {
		t.Errorf("Restore() renumbered %d mailboxes, the store has %d", res.Mailboxes, total)
	}
	if _, ok := seen[0]; ok {
		t.Error("a mailbox has UIDVALIDITY 0")
	}

	// The restored store works: a new delivery gets the next UID of the
	// backup's mailbox (under the new UIDVALIDITY) and reads back.
	msg := []byte("Subject: after restore\r\n\r\nhello again\r\n")
	uids, err := r.Deliver(ctx, msg, []Recipient{u})
	if err != nil || len(uids) != 1 || uids[0] != 3 {
		t.Fatalf("Deliver() after restore = %v, %v; want UID 3", uids, err)
	}
	if got := storedBodies(t, r, u.Mailbox); len(got) != 3 || !bytes.Equal(got[3], msg) {
		t.Errorf("INBOX after restore = %d messages, UID 3 = %q; want 3, %q", len(got), got[3], msg)
	}
	// New mailboxes continue from the raised counter.
	mb, err := r.CreateMailbox(ctx, u.User, "New", "")
	if err != nil {
		t.Fatal(err)
	}
	if mb.UIDValidity != res.FirstUIDValidity+uint32(res.Mailboxes) {
		t.Errorf("new mailbox UIDVALIDITY = %d, want %d", mb.UIDValidity, res.FirstUIDValidity+uint32(res.Mailboxes))
	}
}

func TestRestoreIntoEmptyDirectoryUsesTheClockAsFloor(t *testing.T) {
	sqliteOnly(t)
	t.Parallel()
	ctx := context.Background()
	src := openTestStore(t, Options{})
	u := addUser(t, src, "u@localhost")
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := src.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	dbPath := filepath.Join(t.TempDir(), "pushmail.db")
	now := time.Now().Add(24 * time.Hour) // later than the backup's counter
	res, err := Restore(ctx, backup, dbPath, RestoreOptions{Now: now})
	if err != nil {
		t.Fatalf("Restore() = %v", err)
	}
	if res.Kept != "" || res.ReplacedIssued != 0 {
		t.Errorf("Restore() with nothing to replace: Kept %q, ReplacedIssued %d", res.Kept, res.ReplacedIssued)
	}
	if res.FirstUIDValidity != uint32(now.Unix())+1 {
		t.Errorf("first UIDVALIDITY = %d, want %d (the clock + 1)", res.FirstUIDValidity, now.Unix()+1)
	}
	r := openStoreAt(t, dbPath, Options{})
	if _, err := r.Deliver(ctx, testMessage(1), []Recipient{u}); err != nil {
		t.Errorf("Deliver() after restore = %v", err)
	}
}

func TestRestoreRefusesBadBackups(t *testing.T) {
	sqliteOnly(t)
	t.Parallel()
	ctx := context.Background()
	src := openTestStore(t, Options{})
	addUser(t, src, "u@localhost")
	good := filepath.Join(t.TempDir(), "good.db")
	if err := src.Backup(ctx, good); err != nil {
		t.Fatal(err)
	}
	goodBytes, err := os.ReadFile(good)
	if err != nil {
		t.Fatal(err)
	}

	// A live store in the target directory, whose file must stay as it is.
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "pushmail.db")
	live, err := Open(ctx, dbPath, Options{PasswordCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	addUser(t, live, "live@localhost")
	if err := live.Close(); err != nil {
		t.Fatal(err)
	}
	liveBytes, err := os.ReadFile(dbPath)
	if err != nil {
		t.Fatal(err)
	}

	withFile := func(name string, data []byte, edit func(path string)) string {
		p := filepath.Join(t.TempDir(), name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if edit != nil {
			edit(p)
		}
		return p
	}
	sqlExec := func(query string) func(string) {
		return func(p string) {
			db, err := sql.Open("sqlite3", dsn(p, ""))
			if err != nil {
				t.Fatal(err)
			}
			defer db.Close()
			if _, err := db.Exec(query); err != nil {
				t.Fatalf("%s: %v", query, err)
			}
		}
	}
	damaged := bytes.Clone(goodBytes)
	for i := 4096; i < len(damaged) && i < 4096*3; i++ {
		damaged[i] = 0xA5
	}
	for _, tc := range []struct {
		name    string
		path    string
		wantErr error
		wantMsg string
	}{
		{"missing", filepath.Join(t.TempDir(), "nope.db"), os.ErrNotExist, ""},
		{"not sqlite", withFile("text.db", []byte(strings.Repeat("not a database\n", 500)), nil), ErrNotStore, ""},
		{"damaged", withFile("damaged.db", damaged, nil), ErrNotStore, ""},
		{"empty sqlite", withFile("empty.db", nil, sqlExec("CREATE TABLE t(x)")), ErrNotStore, "no pushmail schema"},
		{"other schema", withFile("other.db", nil, sqlExec("CREATE TABLE t(x); PRAGMA user_version = 1")), ErrNotStore, ""},
		{"newer schema", withFile("newer.db", goodBytes, sqlExec("PRAGMA user_version = 999")), ErrSchemaTooNew, ""},
		{"with a WAL", withFile("wal.db", goodBytes, func(p string) {
			if err := os.WriteFile(p+"-wal", []byte("frames"), 0o600); err != nil {
				t.Fatal(err)
			}
		}), nil, "write-ahead log"},
	} {
		_, err := Restore(ctx, tc.path, dbPath, RestoreOptions{})
		if err == nil || (tc.wantErr != nil && !errors.Is(err, tc.wantErr)) || !strings.Contains(err.Error(), tc.wantMsg) {
			t.Errorf("%s: Restore() = %v, want %v %q", tc.name, err, tc.wantErr, tc.wantMsg)
		}
		if got, err := os.ReadFile(dbPath); err != nil || !bytes.Equal(got, liveBytes) {
			t.Errorf("%s: the live store changed after a refused restore (%v)", tc.name, err)
		}
		if ents, _ := filepath.Glob(filepath.Join(dir, "*")); len(ents) != 1 {
			t.Errorf("%s: files in the data directory after a refused restore: %v", tc.name, ents)
		}
	}
}

func TestRestoreOverAnUnreadableStoreNeedsForce(t *testing.T) {
	sqliteOnly(t)
	t.Parallel()
	ctx := context.Background()
	src := openTestStore(t, Options{})
	u := addUser(t, src, "u@localhost")
	backup := filepath.Join(t.TempDir(), "backup.db")
	if err := src.Backup(ctx, backup); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	dbPath := filepath.Join(dir, "pushmail.db")
	junk := []byte(strings.Repeat("garbage ", 1000))
	if err := os.WriteFile(dbPath, junk, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Restore(ctx, backup, dbPath, RestoreOptions{}); err == nil || !strings.Contains(err.Error(), "Force") {
		t.Errorf("Restore() over an unreadable store = %v, want a refusal naming Force", err)
	}
	res, err := Restore(ctx, backup, dbPath, RestoreOptions{Force: true})
	if err != nil {
		t.Fatalf("Restore(Force) = %v", err)
	}
	if res.ReplacedErr == nil || res.Kept == "" {
		t.Errorf("Restore(Force) = %+v; want ReplacedErr and Kept set", res)
	}
	if got, err := os.ReadFile(res.Kept); err != nil || !bytes.Equal(got, junk) {
		t.Errorf("kept file differs from the replaced one (%v)", err)
	}
	r := openStoreAt(t, dbPath, Options{})
	if _, err := r.Deliver(ctx, testMessage(1), []Recipient{u}); err != nil {
		t.Errorf("Deliver() after restore = %v", err)
	}
}

func TestAliases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	addUser(t, s, "u@localhost")
	addUser(t, s, "v@localhost")
	for _, a := range [][2]string{{"Zed@Localhost", "u@localhost"}, {"abc@localhost", "v@localhost"}} {
		if err := s.AddAlias(ctx, a[0], a[1]); err != nil {
			t.Fatal(err)
		}
	}
	got, err := s.Aliases(ctx)
	want := []Alias{{"abc@localhost", "v@localhost"}, {"zed@localhost", "u@localhost"}}
	if err != nil || len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("Aliases() = %v, %v; want %v", got, err, want)
	}
}

// A stopped server's own file (WAL mode, log folded in at close) is a
// valid backup too; checking it creates nothing beside it.
func TestRestoreFromAStoppedStoresFile(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	d := t.TempDir()
	backup := filepath.Join(d, "old.db")
	src, err := Open(ctx, backup, Options{PasswordCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	u := addUser(t, src, "u@localhost")
	if _, err := src.Deliver(ctx, testMessage(1), []Recipient{u}); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(backup); err != nil || b[18] != 2 {
		t.Fatalf("test setup: %s is not a WAL-mode file (%v)", backup, err)
	}
	dbPath := filepath.Join(t.TempDir(), "pushmail.db")
	if _, err := Restore(ctx, backup, dbPath, RestoreOptions{}); err != nil {
		t.Fatalf("Restore() = %v", err)
	}
	if ents, _ := os.ReadDir(d); len(ents) != 1 {
		t.Errorf("files beside the backup after Restore: %v", ents)
	}
	r := openStoreAt(t, dbPath, Options{})
	if got := storedBodies(t, r, u.Mailbox); len(got) != 1 {
		t.Errorf("restored INBOX has %d messages, want 1", len(got))
	}
}
