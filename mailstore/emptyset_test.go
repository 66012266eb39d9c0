package mailstore

import (
	"context"
	"errors"
	"slices"
	"testing"
)

// An expunge that finds nothing \Deleted must remove nothing. It once
// removed the whole mailbox: the empty query result reached a helper for
// which an empty list meant "all", and mbsync, mutt's CLOSE and imaplib's
// close() emptied INBOXes. Each case checks what the store still holds.
func TestExpungeWithNothingDeletedKeepsEverything(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	for i := range 5 {
		if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	all := []UID{1, 2, 3, 4, 5}
	keeps := func(what string) {
		t.Helper()
		uids, err := s.UIDs(ctx, r.Mailbox)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(uids, all) {
			t.Fatalf("after %s the mailbox holds %v, want %v", what, uids, all)
		}
		if st, err := s.Status(ctx, r.Mailbox); err != nil || st.Messages != uint32(len(all)) {
			t.Fatalf("after %s Status() = %+v, %v; want %d messages", what, st, err, len(all))
		}
	}
	cases := []struct {
		name string
		set  UIDSet
	}{
		{"EXPUNGE (AllUIDs)", AllUIDs()},
		{"UID EXPUNGE 3 (not \\Deleted)", UIDSetOf(3)},
		{"UID EXPUNGE 9 (beyond the last UID)", UIDSetOf(9)},
		{"UID EXPUNGE 2:4", UIDSet{{2, 4}}},
		{"an empty set", UIDSet{}},
		{"a nil set", nil},
	}
	for _, c := range cases {
		got, err := s.Expunge(ctx, r.Mailbox, c.set, 0)
		if err != nil || len(got) != 0 {
			t.Fatalf("Expunge(%s) = %v, %v; want nothing expunged", c.name, got, err)
		}
		keeps(c.name)
	}

	// With one \Deleted message, a UID EXPUNGE of a set without it, or an
	// empty set, removes nothing; EXPUNGE removes exactly that one.
	if _, err := s.StoreFlags(ctx, r.Mailbox, UIDSetOf(4), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	for _, set := range []UIDSet{UIDSetOf(1, 2, 3, 5), UIDSetOf(9), {}, nil} {
		if got, err := s.Expunge(ctx, r.Mailbox, set, 0); err != nil || len(got) != 0 {
			t.Fatalf("Expunge(%v) with only 4 \\Deleted = %v, %v; want nothing", set, got, err)
		}
		keeps("a UID EXPUNGE that misses the \\Deleted message")
	}
	if got, err := s.Expunge(ctx, r.Mailbox, AllUIDs(), 0); err != nil || !slices.Equal(got, []UID{4}) {
		t.Fatalf("Expunge(AllUIDs) = %v, %v; want [4]", got, err)
	}
	all = []UID{1, 2, 3, 5}
	keeps("EXPUNGE of the one \\Deleted message")
}

// Every store API that takes a UIDSet touches nothing when the set is
// empty: there is no "nil means everything" left.
func TestEmptySetsTouchNothing(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	for i := range 3 {
		if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	user, err := s.User(ctx, "u@localhost")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.CreateMailbox(ctx, user.ID, "Other", "")
	if err != nil {
		t.Fatal(err)
	}
	before, err := s.Status(ctx, r.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	for _, set := range []UIDSet{nil, {}} {
		if up, err := s.StoreFlags(ctx, r.Mailbox, set, FlagsSet, []string{FlagDeleted}, 0); err != nil || len(up) != 0 {
			t.Errorf("StoreFlags(%v) = %v, %v; want no update", set, up, err)
		}
		if res, err := s.Copy(ctx, r.Mailbox, set, other.ID, 0); err != nil || len(res.Source) != 0 {
			t.Errorf("Copy(%v) = %+v, %v; want nothing copied", set, res, err)
		}
		if res, err := s.Move(ctx, r.Mailbox, set, other.ID, 0); err != nil || len(res.Source) != 0 {
			t.Errorf("Move(%v) = %+v, %v; want nothing moved", set, res, err)
		}
		n := 0
		if err := s.Messages(ctx, r.Mailbox, set, FetchOptions{}, func(*Message) error { n++; return nil }); err != nil || n != 0 {
			t.Errorf("Messages(%v) visited %d, %v; want none", set, n, err)
		}
		if got, err := s.Search(ctx, r.Mailbox, &SearchCriteria{UIDs: []UIDSet{set}}); err != nil || len(got) != 0 {
			t.Errorf("Search(UID %v) = %v, %v; want none", set, got, err)
		}
	}
	after, err := s.Status(ctx, r.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if after.Messages != before.Messages || after.HighestModSeq != before.HighestModSeq || after.Unseen != before.Unseen {
		t.Errorf("Status after empty-set calls = %+v, want %+v", after, before)
	}
	if st, err := s.Status(ctx, other.ID); err != nil || st.Messages != 0 {
		t.Errorf("Other after empty-set copies = %+v, %v; want empty", st, err)
	}
	if got, err := s.Search(ctx, r.Mailbox, &SearchCriteria{Flag: []string{FlagDeleted}}); err != nil || len(got) != 0 {
		t.Errorf("\\Deleted after empty-set StoreFlags = %v, %v; want none", got, err)
	}
}

// Renaming INBOX moves exactly its messages, and an empty INBOX renames
// to an empty mailbox (RFC 9051 §6.3.6).
func TestRenameInboxMovesExactlyItsMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	user, err := s.User(ctx, "u@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, user.ID, "INBOX", "Empty"); err != nil {
		t.Fatalf("rename an empty INBOX: %v", err)
	}
	for i := range 3 {
		if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RenameMailbox(ctx, user.ID, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]uint32{"INBOX": 0, "Empty": 0, "Old": 3} {
		mb, err := s.Mailbox(ctx, user.ID, name)
		if err != nil {
			t.Fatal(err)
		}
		if st, err := s.Status(ctx, mb.ID); err != nil || st.Messages != want {
			t.Errorf("%s holds %d messages (%v), want %d", name, st.Messages, err, want)
		}
	}
}

// Renaming INBOX into a hierarchy creates the missing parents, as RENAME
// of any other mailbox and CREATE do (RFC 9051 §6.3.6); creating a
// mailbox for a user deleted meanwhile is ErrNoSuchUser, not a raw
// constraint error.
func TestRenameInboxCreatesParentsAndCreateForDeletedUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	addUser(t, s, "u@localhost")
	user, err := s.User(ctx, "u@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, user.ID, "INBOX", "Old/2026"); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"INBOX", "Old", "Old/2026"} {
		if _, err := s.Mailbox(ctx, user.ID, name); err != nil {
			t.Errorf("after RENAME INBOX Old/2026: Mailbox(%s) = %v", name, err)
		}
	}
	if err := s.DeleteUser(ctx, "u@localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMailbox(ctx, user.ID, "New", ""); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("CreateMailbox for a deleted user = %v, want ErrNoSuchUser", err)
	}
}
