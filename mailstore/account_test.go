package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// undoAccountLog turns a file back into the schema before
// migrationAccountLog, for the migration tests.
const undoAccountLog = `
DROP TRIGGER account_message_insert; DROP TRIGGER account_message_delete; DROP TRIGGER account_message_flags;
DROP TRIGGER account_mailbox_insert; DROP TRIGGER account_mailbox_rename; DROP TRIGGER account_mailbox_counts;
DROP TRIGGER account_mailbox_delete; DROP TRIGGER account_tombstone_insert; DROP TRIGGER account_tombstone_update;
DROP TRIGGER account_user_delete; DROP TRIGGER bodies_id_hw; DROP INDEX messages_date; DROP TRIGGER account_subscribe; DROP TRIGGER account_message_deleted; DROP TRIGGER account_unsubscribe;
DROP TABLE account_changes;
ALTER TABLE users DROP COLUMN change_seq;
ALTER TABLE users DROP COLUMN change_horizon;
DELETE FROM meta WHERE key IN ('bodies_id_hw', 'account_tombstone_window');
`

// changesOf is ChangesSinceState with the test failing on an error.
func changesOf(t *testing.T, s *Store, u UserID, kind ChangeKind, since uint64) AccountChanges {
	t.Helper()
	c, err := s.ChangesSinceState(context.Background(), u, kind, since, 1000)
	if err != nil {
		t.Fatalf("ChangesSinceState(%d, %d) = %v", kind, since, err)
	}
	return c
}

func ids(list []int64) []int64 {
	slices.Sort(list)
	return list
}

// TestAccountLog follows one account through every kind of write, from
// every entry point (Deliver as SMTP, StoreFlags and Copy as IMAP,
// UpdateEmail and DestroyEmail as JMAP), and checks /changes' three
// lists and the states after each.
func TestAccountLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "a@localhost")
	other := addUser(t, s, "b@localhost")
	st0, err := s.AccountState(ctx, r.User)
	if err != nil {
		t.Fatal(err)
	}

	// A delivery creates an email and changes INBOX's counts only.
	if _, err := s.Deliver(ctx, testMessage(1), []Recipient{r, other}); err != nil {
		t.Fatal(err)
	}
	refs, err := s.AccountMessages(ctx, r.User)
	if err != nil || len(refs) != 1 {
		t.Fatalf("AccountMessages = %v, %v; want one", refs, err)
	}
	email := refs[0].Email
	c := changesOf(t, s, r.User, KindEmail, st0.Email)
	if !slices.Equal(c.Created, []int64{int64(email)}) || len(c.Updated)+len(c.Destroyed) != 0 {
		t.Errorf("email changes after delivery = %+v; want created [%d]", c, email)
	}
	m := changesOf(t, s, r.User, KindMailbox, st0.Mailbox)
	if !slices.Equal(m.Updated, []int64{int64(r.Mailbox)}) || !m.CountsOnly {
		t.Errorf("mailbox changes after delivery = %+v; want INBOX updated, counts only", m)
	}
	st1, _ := s.AccountState(ctx, r.User)
	if st1.Email <= st0.Email || st1.Mailbox <= st0.Mailbox || c.NewState != st1.Email {
		t.Errorf("states %+v -> %+v, newState %d: want both higher, newState the new email state", st0, st1, c.NewState)
	}

	// An IMAP STORE updates the email; a JMAP update is seen the same way.
	if _, err := s.StoreFlags(ctx, r.Mailbox, UIDSetOf(refs[0].UID), FlagsAdd, []string{FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	c = changesOf(t, s, r.User, KindEmail, st1.Email)
	if !slices.Equal(c.Updated, []int64{int64(email)}) || len(c.Created)+len(c.Destroyed) != 0 {
		t.Errorf("email changes after STORE = %+v; want updated [%d]", c, email)
	}

	// A new mailbox is created; copying the email there updates it (it
	// is one email in two mailboxes).
	work, err := s.CreateMailbox(ctx, r.User, "Work", "")
	if err != nil {
		t.Fatal(err)
	}
	st2, _ := s.AccountState(ctx, r.User)
	m = changesOf(t, s, r.User, KindMailbox, st1.Mailbox)
	if !slices.Equal(m.Created, []int64{int64(work.ID)}) {
		t.Errorf("mailbox changes after CREATE = %+v; want Work created", m)
	}
	if err := s.UpdateEmail(ctx, r.User, email, EmailUpdate{SetMailboxes: true, Mailboxes: []MailboxID{r.Mailbox, work.ID}}, 0); err != nil {
		t.Fatal(err)
	}
	c = changesOf(t, s, r.User, KindEmail, st2.Email)
	if !slices.Equal(c.Updated, []int64{int64(email)}) || len(c.Created) != 0 {
		t.Errorf("email changes after adding a mailbox = %+v; want updated [%d]", c, email)
	}
	es, err := s.Emails(ctx, r.User, []EmailID{email}, EmailOptions{})
	if err != nil || len(es) != 1 || len(es[0].Mailboxes) != 2 || !slices.Contains(es[0].Flags, FlagSeen) {
		t.Fatalf("Emails = %+v, %v; want one email in two mailboxes, \\Seen", es, err)
	}

	// Subscribing is a non-count change of the mailbox.
	stSub, _ := s.AccountState(ctx, r.User)
	if err := s.SetSubscribed(ctx, r.User, "Work", true); err != nil {
		t.Fatal(err)
	}
	m = changesOf(t, s, r.User, KindMailbox, stSub.Mailbox)
	if !slices.Equal(m.Updated, []int64{int64(work.ID)}) || m.CountsOnly {
		t.Errorf("mailbox changes after SUBSCRIBE = %+v; want Work updated, not counts only", m)
	}

	// Renaming is a non-count change.
	st3, _ := s.AccountState(ctx, r.User)
	if err := s.RenameMailbox(ctx, r.User, "Work", "Jobs"); err != nil {
		t.Fatal(err)
	}
	m = changesOf(t, s, r.User, KindMailbox, st3.Mailbox)
	if !slices.Equal(m.Updated, []int64{int64(work.ID)}) || m.CountsOnly {
		t.Errorf("mailbox changes after RENAME = %+v; want Work updated, not counts only", m)
	}

	// Deleting the mailbox leaves the email (still in INBOX): updated.
	// Destroying it then destroys it; the other user's copy stays.
	st4, _ := s.AccountState(ctx, r.User)
	if err := s.DeleteMailbox(ctx, r.User, "Jobs"); err != nil {
		t.Fatal(err)
	}
	c = changesOf(t, s, r.User, KindEmail, st4.Email)
	m = changesOf(t, s, r.User, KindMailbox, st4.Mailbox)
	if !slices.Equal(c.Updated, []int64{int64(email)}) || !slices.Equal(m.Destroyed, []int64{int64(work.ID)}) {
		t.Errorf("after DELETE: email %+v, mailbox %+v; want email updated, Jobs destroyed", c, m)
	}
	if err := s.DestroyEmail(ctx, r.User, email, 0); err != nil {
		t.Fatal(err)
	}
	c = changesOf(t, s, r.User, KindEmail, st4.Email)
	if !slices.Equal(c.Destroyed, []int64{int64(email)}) || len(c.Updated) != 0 {
		t.Errorf("after destroy: %+v; want destroyed [%d]", c, email)
	}
	// Created and destroyed since st0: in no list.
	c = changesOf(t, s, r.User, KindEmail, st0.Email)
	if len(c.Created)+len(c.Updated)+len(c.Destroyed) != 0 {
		t.Errorf("changes since before the email existed = %+v; want none", c)
	}
	if n, _ := s.Status(ctx, other.Mailbox); n.Messages != 1 {
		t.Errorf("other user's INBOX holds %d messages; want 1 (their copy untouched)", n.Messages)
	}
	if err := s.DestroyEmail(ctx, r.User, email, 0); !errors.Is(err, ErrNoSuchEmail) {
		t.Errorf("DestroyEmail again = %v; want ErrNoSuchEmail", err)
	}
}

// TestAccountLogHorizon: tombstones past the window go, the horizon rises
// to the newest one dropped, and /changes from before it cannot be
// calculated; from after it, it can. maxChanges splits the answer.
func TestAccountLogHorizon(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "a@localhost")
	if _, err := s.wdb.Exec("UPDATE meta SET value = 6 WHERE key = 'account_tombstone_window'"); err != nil {
		t.Fatal(err)
	}
	st0, _ := s.AccountState(ctx, r.User)
	var emails []EmailID
	for i := range 5 {
		id, err := s.ImportEmail(ctx, r.User, testMessage(i), []MailboxID{r.Mailbox}, nil, time.Time{})
		if err != nil {
			t.Fatal(err)
		}
		emails = append(emails, id)
	}
	c, err := s.ChangesSinceState(ctx, r.User, KindEmail, st0.Email, 2)
	if err != nil || len(c.Created) != 2 || !c.HasMore {
		t.Fatalf("ChangesSinceState(max 2) = %+v, %v; want 2 created and more", c, err)
	}
	c2 := changesOf(t, s, r.User, KindEmail, c.NewState)
	if len(c2.Created) != 3 || c2.HasMore {
		t.Errorf("the rest = %+v; want 3 created", c2)
	}
	st1, _ := s.AccountState(ctx, r.User)
	for _, id := range emails {
		if err := s.DestroyEmail(ctx, r.User, id, 0); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.ChangesSinceState(ctx, r.User, KindEmail, st1.Email, 100); !errors.Is(err, ErrCannotCalculateChanges) {
		t.Errorf("changes from before the horizon = %v; want ErrCannotCalculateChanges", err)
	}
	var tombstones int
	s.rdb.QueryRow("SELECT count(*) FROM account_changes WHERE user_id = ? AND destroyed != 0", r.User).Scan(&tombstones)
	if tombstones > 6 {
		t.Errorf("%d tombstones kept; want at most the window, 6", tombstones)
	}
	st2, _ := s.AccountState(ctx, r.User)
	if c := changesOf(t, s, r.User, KindEmail, st2.Email); len(c.Created)+len(c.Updated)+len(c.Destroyed) != 0 || c.NewState != st2.Email {
		t.Errorf("changes from now = %+v; want none", c)
	}
	if _, err := s.ChangesSinceState(ctx, r.User, KindEmail, st2.Email+1000, 10); !errors.Is(err, ErrCannotCalculateChanges) {
		t.Errorf("changes from a future state = %v; want ErrCannotCalculateChanges", err)
	}
}

// TestAccountSubscription: the account-wide subscription hears a
// mailbox created after it started, and events carry their account.
func TestAccountSubscription(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "a@localhost")
	other := addUser(t, s, "b@localhost")
	sub := s.Hub().SubscribeUser(int64(r.User), 0)
	defer sub.Close()
	mb, err := s.CreateMailbox(ctx, r.User, "New", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx, testMessage(1), []Recipient{other}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ImportEmail(ctx, r.User, testMessage(2), []MailboxID{mb.ID}, nil, time.Time{}); err != nil {
		t.Fatal(err)
	}
	<-sub.Ready()
	evs, _ := sub.Take()
	if len(evs) != 2 || evs[0].Mailbox != int64(mb.ID) || evs[1].Mailbox != int64(mb.ID) || evs[1].User != int64(r.User) {
		t.Errorf("account events = %+v; want the creation and the import in New, nothing of b's", evs)
	}
}

// TestImportEmailOtherUsersMailbox: a mailbox of another user is no
// mailbox, and nothing is stored.
func TestImportEmailOtherUsersMailbox(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "a@localhost")
	other := addUser(t, s, "b@localhost")
	if _, err := s.ImportEmail(ctx, r.User, testMessage(1), []MailboxID{r.Mailbox, other.Mailbox}, nil, time.Time{}); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("ImportEmail into b's INBOX = %v; want ErrNoSuchMailbox", err)
	}
	for _, mb := range []MailboxID{r.Mailbox, other.Mailbox} {
		if st, _ := s.Status(ctx, mb); st.Messages != 0 {
			t.Errorf("mailbox %d holds %d messages; want 0", mb, st.Messages)
		}
	}
}

// TestMigrationAccountLog: a file at the schema before the account log
// opens with every account at state 0 with nothing to report, keeps its
// mail, and logs from then on; a body id is not handed out again.
func TestMigrationAccountLog(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	// The version before the account log, wherever later migrations
	// put it in the list.
	before := slices.Index(migrations, migrationAccountLog)
	if err := migrateTo(ctx, db, slog.New(slog.DiscardHandler), before); err != nil {
		t.Fatalf("migrateTo(%d) = %v", before, err)
	}
	for _, q := range []string{
		"INSERT INTO users(id, address, domain, password, created) VALUES (7, 'old@localhost', 'localhost', 'x', 0)",
		"INSERT INTO mailboxes(id, user_id, name, uidvalidity, uidnext, highest_modseq) VALUES (1, 7, 'INBOX', 1, 3, 3)",
		"INSERT INTO bodies(id, header, raw, parsed) VALUES (1, '', 'a', '{}'), (2, '', 'b', '{}')",
		"INSERT INTO messages(mailbox_id, uid, body_id, internal_date, size, modseq) VALUES (1, 1, 1, 0, 1, 2), (1, 2, 2, 0, 1, 3)",
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s := openStoreAt(t, path, Options{})
	st, err := s.AccountState(ctx, 7)
	if err != nil || st != (AccountState{}) {
		t.Fatalf("AccountState after migration = %+v, %v; want zero", st, err)
	}
	if err := s.DestroyEmail(ctx, 7, 2, 0); err != nil {
		t.Fatal(err)
	}
	c := changesOf(t, s, 7, KindEmail, 0)
	if !slices.Equal(ids(c.Destroyed), []int64{2}) || len(c.Created) != 0 {
		t.Errorf("changes after destroying an old email = %+v; want destroyed [2]", c)
	}
	id, err := s.ImportEmail(ctx, 7, testMessage(1), []MailboxID{1}, nil, time.Time{})
	if err != nil || id <= 2 {
		t.Errorf("ImportEmail = %d, %v; want an id above 2 (ids are not reused)", id, err)
	}
}
