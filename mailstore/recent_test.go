package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/notify"
)

// undoSchema6 turns a file written at schema 6 back into one of schema 5:
// the \Recent mark goes.
const undoSchema6 = `
ALTER TABLE mailboxes DROP COLUMN recent_uid;
`

func deliverN(t testing.TB, s *Store, r Recipient, n int) {
	t.Helper()
	for i := 0; i < n; i++ {
		if _, err := s.Deliver(context.Background(), testMessage(i), []Recipient{r}); err != nil {
			t.Fatalf("Deliver(%d) = %v", i, err)
		}
	}
}

func status(t testing.TB, s *Store, mb MailboxID) MailboxStatus {
	t.Helper()
	st, err := s.Status(context.Background(), mb)
	if err != nil {
		t.Fatalf("Status(%d) = %v", mb, err)
	}
	return st
}

// checkRecent checks a mailbox's \Recent mark and STATUS RECENT count.
func checkRecent(t testing.TB, s *Store, mb MailboxID, what string, wantMark UID, wantRecent uint32) {
	t.Helper()
	st := status(t, s, mb)
	if st.RecentUID != wantMark || st.Recent != wantRecent {
		t.Errorf("%s: Status(%d) RecentUID, Recent = %d, %d; want %d, %d", what, mb, st.RecentUID, st.Recent, wantMark, wantRecent)
	}
}

// TestClaimRecent: each claim hands out the UIDs above the mark up to
// upTo, once; a claim at or below the mark hands out nothing and reports
// the mark; a claim ahead of UIDNEXT is refused. No claim publishes an
// event or changes HIGHESTMODSEQ.
func TestClaimRecent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hub := notify.New(0)
	s := openTestStore(t, Options{Hub: hub})
	r := addUser(t, s, "u@localhost")
	deliverN(t, s, r, 5)
	checkRecent(t, s, r.Mailbox, "after 5 deliveries", 0, 5)

	sub := hub.Subscribe(int64(r.Mailbox))
	defer sub.Close()
	modseq := status(t, s, r.Mailbox).HighestModSeq

	steps := []struct {
		name       string
		upTo       UID
		wantFrom   UID
		wantErr    bool
		wantMark   UID
		wantRecent uint32
	}{
		{"peek with 0 claims nothing", 0, 0, false, 0, 5},
		{"first claim takes 1:3", 3, 0, false, 3, 2},
		{"same claim again takes nothing", 3, 3, false, 3, 2},
		{"claim below the mark takes nothing", 2, 3, false, 3, 2},
		{"peek reports the mark", 0, 3, false, 3, 2},
		{"claim ahead of UIDNEXT is refused", 6, 0, true, 3, 2},
		{"next claim takes 4:5", 5, 3, false, 5, 0},
		{"nothing left", 5, 5, false, 5, 0},
	}
	for _, st := range steps {
		from, err := s.ClaimRecent(ctx, r.Mailbox, st.upTo)
		if st.wantErr {
			if err == nil {
				t.Errorf("%s: ClaimRecent(%d) = %d, nil; want an error", st.name, st.upTo, from)
			}
		} else if err != nil || from != st.wantFrom {
			t.Errorf("%s: ClaimRecent(%d) = %d, %v; want %d, nil", st.name, st.upTo, from, err, st.wantFrom)
		}
		checkRecent(t, s, r.Mailbox, st.name, st.wantMark, st.wantRecent)
	}

	// Events are queued before a write returns: had a claim published
	// one, it would be here.
	if events, resync := sub.Take(); len(events) != 0 || resync {
		t.Errorf("events after claims = %+v (resync %v), want none", events, resync)
	}
	if got := status(t, s, r.Mailbox).HighestModSeq; got != modseq {
		t.Errorf("HIGHESTMODSEQ after claims = %d, want %d (unchanged)", got, modseq)
	}

	if _, err := s.ClaimRecent(ctx, 999999, 1); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("ClaimRecent(no such mailbox) = %v, want ErrNoSuchMailbox", err)
	}
	if _, err := s.ClaimRecent(ctx, 999999, 0); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("ClaimRecent(no such mailbox, 0) = %v, want ErrNoSuchMailbox", err)
	}
}

// TestClaimRecentConcurrent: sessions claiming while mail arrives are
// each handed distinct UIDs, and every message is handed to exactly one.
func TestClaimRecentConcurrent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	const messages, sessions = 60, 8

	var mu sync.Mutex
	claimed := make([]int, messages+1) // claimed[uid]: how many sessions got uid
	claim := func(upTo UID) error {
		from, err := s.ClaimRecent(ctx, r.Mailbox, upTo)
		if err != nil {
			return err
		}
		mu.Lock()
		for u := from + 1; u <= upTo; u++ {
			claimed[u]++
		}
		mu.Unlock()
		return nil
	}

	done := make(chan struct{})
	var wg sync.WaitGroup
	errs := make(chan error, sessions+1)
	wg.Add(1)
	go func() {
		defer wg.Done()
		defer close(done)
		for i := 0; i < messages; i++ {
			if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
				errs <- err
				return
			}
		}
	}()
	for g := 0; g < sessions; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				st, err := s.Status(ctx, r.Mailbox)
				if err != nil {
					errs <- err
					return
				}
				// Any UID handed out so far: sessions see the mailbox at
				// different moments, and claim behind one another.
				if last := st.UIDNext - 1; last > 0 {
					if err := claim(UID(rand.IntN(int(last))) + 1); err != nil {
						errs <- err
						return
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if err := claim(messages); err != nil {
		t.Fatal(err)
	}
	for u := 1; u <= messages; u++ {
		if claimed[u] != 1 {
			t.Errorf("UID %d was claimed by %d sessions, want 1", u, claimed[u])
		}
	}
	checkRecent(t, s, r.Mailbox, "after all claims", messages, 0)
}

// TestRecentCopyMoveRenameRecreate: whatever a mailbox gains gets a UID
// above its mark, so it is recent (RFC 3501 §6.4.7: "the Recent flag
// SHOULD be set, in the copy"); a re-created mailbox starts a fresh mark.
func TestRecentCopyMoveRenameRecreate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	inbox := r.Mailbox
	deliverN(t, s, r, 3)
	if from, err := s.ClaimRecent(ctx, inbox, 3); err != nil || from != 0 {
		t.Fatalf("ClaimRecent(INBOX, 3) = %d, %v; want 0, nil", from, err)
	}

	archive, err := s.CreateMailbox(ctx, r.User, "Archive2", "")
	if err != nil {
		t.Fatal(err)
	}
	checkRecent(t, s, archive.ID, "new mailbox", 0, 0)
	if _, err := s.Append(ctx, archive.ID, testMessage(10), nil, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	if from, err := s.ClaimRecent(ctx, archive.ID, 1); err != nil || from != 0 {
		t.Fatalf("ClaimRecent(Archive2, 1) = %d, %v; want 0, nil", from, err)
	}
	cp, err := s.Copy(ctx, inbox, UIDSetOf(1, 2), archive.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkRecent(t, s, archive.ID, "after COPY of 2", 1, 2)
	checkRecent(t, s, inbox, "COPY source", 3, 0)
	mv, err := s.Move(ctx, inbox, UIDSetOf(3), archive.ID, 0)
	if err != nil {
		t.Fatal(err)
	}
	checkRecent(t, s, archive.ID, "after MOVE of 1", 1, 3)
	last := mv.Dest[0]
	if from, err := s.ClaimRecent(ctx, archive.ID, last); err != nil || from != 1 || cp.Dest[0] <= from {
		t.Errorf("ClaimRecent(Archive2, %d) = %d, %v; want 1, nil, below the copies %v", last, from, err, cp.Dest)
	}

	// RENAME INBOX moves its messages into a new mailbox: all recent
	// there. INBOX keeps its mark, so the next delivery is recent.
	if err := s.RenameMailbox(ctx, r.User, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	old, err := s.Mailbox(ctx, r.User, "Old")
	if err != nil {
		t.Fatal(err)
	}
	checkRecent(t, s, old.ID, "RENAME INBOX target", 0, 2)
	checkRecent(t, s, inbox, "INBOX after RENAME", 3, 0)
	deliverN(t, s, r, 1)
	checkRecent(t, s, inbox, "INBOX after RENAME and a delivery", 3, 1)

	// Deleted and re-created: a new mailbox, a new mark.
	if err := s.DeleteMailbox(ctx, r.User, "Archive2"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimRecent(ctx, archive.ID, 0); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("ClaimRecent(deleted mailbox) = %v, want ErrNoSuchMailbox", err)
	}
	again, err := s.CreateMailbox(ctx, r.User, "Archive2", "")
	if err != nil {
		t.Fatal(err)
	}
	checkRecent(t, s, again.ID, "re-created mailbox", 0, 0)
	if _, err := s.Copy(ctx, old.ID, AllUIDs(), again.ID, 0); err != nil {
		t.Fatal(err)
	}
	checkRecent(t, s, again.ID, "re-created mailbox after COPY", 0, 2)

	// MailboxStatuses counts as Status does.
	list, err := s.MailboxStatuses(ctx, r.User)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if one := status(t, s, st.ID); st.Recent != one.Recent || st.RecentUID != one.RecentUID {
			t.Errorf("MailboxStatuses %s: Recent, RecentUID = %d, %d; Status says %d, %d", st.Name, st.Recent, st.RecentUID, one.Recent, one.RecentUID)
		}
	}
}

// TestRecentSurvivesReopen: a claim is committed: after a restart, what
// was claimed stays claimed.
func TestRecentSurvivesReopen(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "recent.db")
	s, err := Open(ctx, path, Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	r := addUser(t, s, "u@localhost")
	deliverN(t, s, r, 4)
	if from, err := s.ClaimRecent(ctx, r.Mailbox, 2); err != nil || from != 0 {
		t.Fatalf("ClaimRecent(2) = %d, %v; want 0, nil", from, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStoreAt(t, path, Options{})
	checkRecent(t, s, r.Mailbox, "after reopening", 2, 2)
	if from, err := s.ClaimRecent(ctx, r.Mailbox, 4); err != nil || from != 2 {
		t.Errorf("ClaimRecent(4) after reopening = %d, %v; want 2, nil", from, err)
	}
}

// TestMigrationRecent: a file written at schema 5 opens with each
// mailbox's mark at its last UID, so the mail already there is not
// announced as recent after the upgrade, and what arrives next is.
func TestMigrationRecent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v5.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(ctx, db, slog.New(slog.DiscardHandler), 5); err != nil {
		t.Fatalf("migrateTo(5) = %v", err)
	}
	for _, q := range []string{
		"INSERT INTO users(id, address, domain, password, created) VALUES (7, 'old@localhost', 'localhost', 'x', 0)",
		// INBOX handed out UIDs 1 to 4 and still holds 1, 2 and 4;
		// Empty handed out none.
		"INSERT INTO mailboxes(id, user_id, name, uidvalidity, uidnext, highest_modseq) VALUES (1, 7, 'INBOX', 1, 5, 5), (2, 7, 'Empty', 2, 1, 1)",
		"INSERT INTO bodies(id, header, raw, parsed) VALUES (1, '', '', '{}')",
		"INSERT INTO messages(mailbox_id, uid, body_id, internal_date, size, modseq) VALUES (1, 1, 1, 0, 0, 2), (1, 2, 1, 0, 0, 3), (1, 4, 1, 0, 0, 5)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStoreAt(t, path, Options{})
	var version int
	if err := s.rdb.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != schemaVersion {
		t.Errorf("user_version after opening = %d, %v; want %d", version, err, schemaVersion)
	}
	checkRecent(t, s, 1, "INBOX after migration", 4, 0)
	checkRecent(t, s, 2, "Empty after migration", 0, 0)
	r := Recipient{User: 7, Address: "old@localhost", Mailbox: 1}
	uids, err := s.Deliver(ctx, testMessage(5), []Recipient{r})
	if err != nil || len(uids) != 1 || uids[0] != 5 {
		t.Fatalf("Deliver after migration = %v, %v; want [5]", uids, err)
	}
	checkRecent(t, s, 1, "INBOX after a delivery", 4, 1)
	if from, err := s.ClaimRecent(ctx, 1, 5); err != nil || from != 4 {
		t.Errorf("ClaimRecent(INBOX, 5) after migration = %d, %v; want 4, nil", from, err)
	}
}

// TestRecentCountUsesPrimaryKey: STATUS RECENT counts by a range of the
// messages primary key, not by scanning the mailbox.
func TestRecentCountUsesPrimaryKey(t *testing.T) {
	sqliteOnly(t)
	t.Parallel()
	s := openTestStore(t, Options{})
	rows, err := s.rdb.Query("EXPLAIN QUERY PLAN SELECT " + statusColumns + " FROM mailboxes WHERE id = 1")
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var plan []string
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(plan, func(d string) bool {
		return strings.HasPrefix(d, "SEARCH messages USING PRIMARY KEY (mailbox_id=? AND uid>?)")
	}) {
		t.Errorf("status query plan = %q, want a primary key range search of messages", plan)
	}
}

// TestRecentClaimRidesNextCommit: a claim costs no commit of its own
// (it is on IMAP's push path); it is written with the writer's next
// transaction, and Status reflects it at once.
func TestRecentClaimRidesNextCommit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "recent.db")
	s := openStoreAt(t, path, Options{})
	r := addUser(t, s, "u@localhost")
	deliverN(t, s, r, 3)
	onDisk := func() UID {
		t.Helper()
		db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		var mark UID
		if err := db.QueryRow("SELECT recent_uid FROM mailboxes WHERE id = ?", r.Mailbox).Scan(&mark); err != nil {
			t.Fatal(err)
		}
		return mark
	}
	if from, err := s.ClaimRecent(ctx, r.Mailbox, 2); err != nil || from != 0 {
		t.Fatalf("ClaimRecent(2) = %d, %v; want 0, nil", from, err)
	}
	if got := onDisk(); got != 0 {
		t.Errorf("mark on disk right after the claim = %d, want 0 (no commit of its own)", got)
	}
	checkRecent(t, s, r.Mailbox, "after the claim", 2, 1)
	// A second claim of the same range gets nothing.
	if from, err := s.ClaimRecent(ctx, r.Mailbox, 2); err != nil || from != 2 {
		t.Errorf("ClaimRecent(2) again = %d, %v; want 2, nil", from, err)
	}
	deliverN(t, s, r, 1) // the next commit
	if got := onDisk(); got != 2 {
		t.Errorf("mark on disk after the next commit = %d, want 2", got)
	}
	if _, err := s.ClaimRecent(ctx, r.Mailbox, 4); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if got := onDisk(); got != 4 {
		t.Errorf("mark on disk after Close = %d, want 4", got)
	}
}
