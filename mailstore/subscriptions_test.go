package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
)

// undoSchema5 turns a file written at schema 5 back into one of schema 4,
// for the tests that fake an older file by undoing later migrations.
const undoSchema5 = `
ALTER TABLE mailboxes ADD COLUMN subscribed INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET subscribed = EXISTS (SELECT 1 FROM subscriptions
	WHERE subscriptions.user_id = mailboxes.user_id AND subscriptions.name = mailboxes.name);
DROP TABLE subscriptions;
`

func subscriptions(t *testing.T, s *Store, user UserID) []string {
	t.Helper()
	subs, err := s.Subscriptions(context.Background(), user)
	if err != nil {
		t.Fatalf("Subscriptions(%d) = %v", user, err)
	}
	return subs
}

// TestSubscriptionOutlivesDelete: a subscription is to a name, not to a
// mailbox (RFC 9051 §6.3.7: the server "SHOULD NOT unilaterally remove an
// existing mailbox name from the subscription list even if a mailbox by
// that name no longer exists"). DELETE leaves it, and a mailbox created
// again under the name is subscribed; a name with no mailbox can be
// subscribed (§6.3.7: a server "MAY validate", pushmail does not), and
// unsubscribing a name not subscribed succeeds (§6.3.8).
func TestSubscriptionOutlivesDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	u := addUser(t, s, "sub@localhost").User
	if _, err := s.CreateMailbox(ctx, u, "Lists/Go", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, u, "Lists/Go", true); err != nil {
		t.Fatalf("SetSubscribed(Lists/Go) = %v", err)
	}
	if err := s.DeleteMailbox(ctx, u, "Lists/Go"); err != nil {
		t.Fatal(err)
	}
	mb, err := s.CreateMailbox(ctx, u, "Lists/Go", "")
	if err != nil || !mb.Subscribed {
		t.Errorf("CreateMailbox(Lists/Go) after DELETE = %+v, %v; want it subscribed still", mb, err)
	}
	if mb, err := s.Mailbox(ctx, u, "Lists/Go"); err != nil || !mb.Subscribed {
		t.Errorf("Mailbox(Lists/Go) after DELETE and CREATE = %+v, %v; want it subscribed still", mb, err)
	}
	if err := s.SetSubscribed(ctx, u, "Nowhere", true); err != nil {
		t.Errorf("SetSubscribed(Nowhere, true) = %v, want nil: a name need not exist", err)
	}
	if err := s.SetSubscribed(ctx, u, "Never/Subscribed", false); err != nil {
		t.Errorf("SetSubscribed(Never/Subscribed, false) = %v, want nil (RFC 9051 §6.3.8)", err)
	}
	if mb, err := s.CreateMailbox(ctx, u, "Nowhere", ""); err != nil || !mb.Subscribed {
		t.Errorf("CreateMailbox(Nowhere) after SUBSCRIBE = %+v, %v; want it subscribed", mb, err)
	}
}

// TestSubscriptions: the subscribed names, existing or not; RENAME moves
// the subscriptions of the mailbox and its inferiors with them; DeleteUser
// removes them all.
func TestSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	u := addUser(t, s, "subs@localhost").User
	defaults := []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}
	if got := subscriptions(t, s, u); !slices.Equal(got, defaults) {
		t.Fatalf("Subscriptions of a new user = %q, want %q", got, defaults)
	}
	for _, name := range []string{"a/b/c", "x"} {
		if _, err := s.CreateMailbox(ctx, u, name, ""); err != nil {
			t.Fatal(err)
		}
	}
	for _, name := range []string{"a", "a/b/c", "inbox/later", "d/b", "x"} {
		if err := s.SetSubscribed(ctx, u, name, true); err != nil {
			t.Fatalf("SetSubscribed(%s) = %v", name, err)
		}
	}
	// Twice is once.
	if err := s.SetSubscribed(ctx, u, "a", true); err != nil {
		t.Fatalf("SetSubscribed(a) again = %v", err)
	}
	if err := s.DeleteMailbox(ctx, u, "x"); err != nil {
		t.Fatal(err)
	}
	// a -> d: a, a/b, a/b/c become d, d/b, d/b/c. "a" and "a/b/c" were
	// subscribed and move; "d/b" was subscribed without a mailbox and
	// stays so (now with one).
	if err := s.RenameMailbox(ctx, u, "a", "d"); err != nil {
		t.Fatalf("RenameMailbox(a, d) = %v", err)
	}
	want := []string{"Archive", "Drafts", "INBOX", "INBOX/later", "Junk", "Sent", "Trash", "d", "d/b", "d/b/c", "x"}
	if got := subscriptions(t, s, u); !slices.Equal(got, want) {
		t.Errorf("Subscriptions after DELETE x and RENAME a d = %q, want %q", got, want)
	}
	if mb, err := s.Mailbox(ctx, u, "d/b/c"); err != nil || !mb.Subscribed {
		t.Errorf("Mailbox(d/b/c) after RENAME = %+v, %v; want subscribed", mb, err)
	}
	if mb, err := s.Mailbox(ctx, u, "d/b"); err != nil || !mb.Subscribed {
		t.Errorf("Mailbox(d/b) after RENAME = %+v, %v; want subscribed", mb, err)
	}
	// RENAME INBOX moves its messages, not INBOX itself: INBOX stays
	// subscribed, the new mailbox is not.
	if err := s.RenameMailbox(ctx, u, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	if mb, err := s.Mailbox(ctx, u, "Old"); err != nil || mb.Subscribed {
		t.Errorf("Mailbox(Old) after RENAME INBOX = %+v, %v; want unsubscribed", mb, err)
	}
	if got := subscriptions(t, s, u); !slices.Contains(got, "INBOX") {
		t.Errorf("Subscriptions after RENAME INBOX = %q, want INBOX kept", got)
	}
	if err := s.SetSubscribed(ctx, u, "a//b", true); !errors.Is(err, ErrInvalidName) {
		t.Errorf("SetSubscribed(a//b) = %v, want ErrInvalidName", err)
	}

	if err := s.DeleteUser(ctx, "subs@localhost"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.rdb.QueryRow("SELECT COUNT(*) FROM subscriptions WHERE user_id = ?", u).Scan(&n); err != nil || n != 0 {
		t.Errorf("subscriptions rows of a deleted user = %d, %v; want 0", n, err)
	}
	if err := s.SetSubscribed(ctx, u, "INBOX", true); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("SetSubscribed for a deleted user = %v, want ErrNoSuchUser", err)
	}
	u2 := addUser(t, s, "subs@localhost").User
	if got := subscriptions(t, s, u2); !slices.Equal(got, defaults) {
		t.Errorf("Subscriptions of the user added again = %q, want only %q", got, defaults)
	}
}

// TestMigrationSubscriptions: a file written at schema 4, with the
// subscription a column of mailboxes, opens at the current schema with
// the same names subscribed, and the column gone.
func TestMigrationSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v4.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(ctx, db, slog.New(slog.DiscardHandler), 4); err != nil {
		t.Fatalf("migrateTo(4) = %v", err)
	}
	for _, q := range []string{
		"INSERT INTO users(id, address, domain, password, created) VALUES (7, 'old@localhost', 'localhost', 'x', 0)",
		"INSERT INTO users(id, address, domain, password, created) VALUES (8, 'other@localhost', 'localhost', 'x', 0)",
		`INSERT INTO mailboxes(id, user_id, name, uidvalidity, subscribed) VALUES
			(1, 7, 'INBOX', 1, 1), (2, 7, 'Lists', 2, 0), (3, 7, 'Lists/Go', 3, 1), (4, 8, 'INBOX', 4, 0)`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStoreAt(t, path, Options{})
	var version, column int
	if err := s.rdb.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != schemaVersion {
		t.Errorf("user_version after opening = %d, %v; want %d", version, err, schemaVersion)
	}
	if err := s.rdb.QueryRow("SELECT COUNT(*) FROM pragma_table_info('mailboxes') WHERE name = 'subscribed'").Scan(&column); err != nil || column != 0 {
		t.Errorf("mailboxes.subscribed columns after migration = %d, %v; want 0", column, err)
	}
	if got, want := subscriptions(t, s, 7), []string{"INBOX", "Lists/Go"}; !slices.Equal(got, want) {
		t.Errorf("Subscriptions(7) after migration = %q, want %q", got, want)
	}
	if got := subscriptions(t, s, 8); len(got) != 0 {
		t.Errorf("Subscriptions(8) after migration = %q, want none", got)
	}
	// And they now outlive DELETE.
	if err := s.DeleteMailbox(ctx, 7, "Lists/Go"); err != nil {
		t.Fatal(err)
	}
	if got, want := subscriptions(t, s, 7), []string{"INBOX", "Lists/Go"}; !slices.Equal(got, want) {
		t.Errorf("Subscriptions(7) after DELETE Lists/Go = %q, want %q", got, want)
	}
}

// RENAME moves a mailbox's inferiors and no other: mailbox names are
// case-sensitive (RFC 9051 §5.1), and "work/2026" is not an inferior of
// "Work". The store's names afterwards are checked, on both backends.
func TestRenameMovesOnlyItsOwnInferiors(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	for _, name := range []string{"Work", "Work/a", "work", "work/2026", "Work_x", "Work/a/b"} {
		if _, err := s.CreateMailbox(ctx, r.User, name, ""); err != nil {
			t.Fatalf("CreateMailbox(%s) = %v", name, err)
		}
	}
	if err := s.RenameMailbox(ctx, r.User, "Work", "Job"); err != nil {
		t.Fatal(err)
	}
	// "job/x" exists only in another case: renaming to "Job" again is
	// refused for "Job" itself, and "work" may become "Job2" though
	// "job2/…" might exist in another case.
	if _, err := s.CreateMailbox(ctx, r.User, "job2/x", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, r.User, "work", "Job2"); err != nil {
		t.Errorf("RENAME work Job2 with only job2/x in another case = %v, want it done", err)
	}
	mbs, err := s.Mailboxes(ctx, r.User)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mb := range mbs {
		names = append(names, mb.Name)
	}
	slices.Sort(names)
	want := []string{"Archive", "Drafts", "INBOX", "Job", "Job/a", "Job/a/b", "Job2", "Job2/2026", "Junk", "Sent", "Trash", "Work_x", "job2", "job2/x"}
	if !slices.Equal(names, want) {
		t.Errorf("mailboxes after the renames = %v\nwant %v", names, want)
	}
}
