package mailstore

import (
	"errors"
	"testing"
)

// A vanished_count above what the table holds (a repaired or partly
// restored file) is counted again at the next prune; the expunge that
// finds it succeeds, and later ones too.
func TestVanishedCountRepaired(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{MaxVanished: 8})
	r := addUser(t, s, "u@localhost")
	deliverN(t, s, r, 4)
	if _, err := s.StoreFlags(ctx, r.Mailbox, AllUIDs(), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, r.Mailbox, UIDSetOf(1), 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.ExecContext(ctx, "UPDATE mailboxes SET vanished_count = 100 WHERE id = ?", r.Mailbox); err != nil {
		t.Fatal(err)
	}
	for u := UID(2); u <= 4; u++ {
		if _, err := s.Expunge(ctx, r.Mailbox, UIDSetOf(u), 0); err != nil {
			t.Fatalf("Expunge(%d) with an overstated count = %v", u, err)
		}
	}
	if got := storedBodies(t, s, r.Mailbox); len(got) != 0 {
		t.Errorf("mailbox holds %d messages, want 0", len(got))
	}
	if err := checkVanishedCounts(ctx, s); err != nil {
		t.Error(err)
	}
}

// A \Recent mark that cannot be written fails no delivery: it stays
// unwritten, in memory, and goes in with a later commit.
func TestRecentMarkWriteFailureFailsNoDelivery(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	deliverN(t, s, r, 2)
	if _, err := s.ClaimRecent(ctx, r.Mailbox, 2); err != nil {
		t.Fatal(err)
	}
	removeFailure := injectFailure(t, s, "no_recent", "UPDATE OF recent_uid", "mailboxes", "TRUE")
	if _, err := s.Deliver(ctx, testMessage(3), []Recipient{r}); err != nil {
		t.Fatalf("Deliver with the mark's write failing = %v, want it delivered", err)
	}
	removeFailure()
	deliverN(t, s, r, 1)
	var mark UID
	if err := s.rdb.QueryRowContext(ctx, "SELECT recent_uid FROM mailboxes WHERE id = ?", r.Mailbox).Scan(&mark); err != nil || mark != 2 {
		t.Errorf("mark on disk = %d, %v; want 2, written with the later commit", mark, err)
	}
	if got := storedBodies(t, s, r.Mailbox); len(got) != 4 {
		t.Errorf("mailbox holds %d messages, want 4", len(got))
	}
}

// SetMetadata takes names only in normal form: another spelling would
// be stored where Metadata never looks.
func TestSetMetadataNormalForm(t *testing.T) {
	t.Parallel()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	err := s.SetMetadata(t.Context(), r.User, 0, []MetadataEntry{{Name: "/Private/Comment", Value: []byte("x")}})
	if !errors.Is(err, ErrInvalidEntry) {
		t.Errorf("SetMetadata(/Private/Comment) = %v, want ErrInvalidEntry", err)
	}
}
