package mailstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
)

func entryNames(l []MetadataEntry) []string {
	var n []string
	for _, e := range l {
		n = append(n, e.Name+"="+string(e.Value))
	}
	return n
}

func getMetadata(t testing.TB, s *Store, u UserID, mb MailboxID, depth Depth, names ...string) []string {
	t.Helper()
	l, err := s.Metadata(context.Background(), u, mb, names, depth)
	if err != nil {
		t.Fatalf("Metadata(%d, %q, %d) = %v", mb, names, depth, err)
	}
	return entryNames(l)
}

func TestNormalizeEntryName(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in, want string
		root     bool
	}{
		{in: "/private/comment", want: "/private/comment"},
		{in: "/Shared/Vendor/Foo", want: "/shared/vendor/foo"},
		{in: "/private", root: true, want: "/private"},
		{in: "/private"},
		{in: "/public/x"},
		{in: "/private/"},
		{in: "/private//x"},
		{in: "/private/a*"},
		{in: "/private/a%"},
		{in: "/private/a b"},
		{in: "private/x"},
		{in: "/private/\x01"},
	} {
		got, err := NormalizeEntryName(tc.in, tc.root)
		if tc.want == "" {
			if !errors.Is(err, ErrInvalidEntry) {
				t.Errorf("NormalizeEntryName(%q, %v) = %q, %v; want ErrInvalidEntry", tc.in, tc.root, got, err)
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("NormalizeEntryName(%q, %v) = %q, %v; want %q", tc.in, tc.root, got, err, tc.want)
		}
	}
}

func TestMetadata(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "m.db")
	s := openStoreAt(t, path, Options{})
	a, b := addUser(t, s, "a@localhost"), addUser(t, s, "b@localhost")
	set := func(u UserID, mb MailboxID, kv ...string) error {
		var l []MetadataEntry
		for i := 0; i < len(kv); i += 2 {
			if kv[i+1] == "NIL" {
				l = append(l, MetadataEntry{Name: kv[i], Delete: true})
			} else {
				l = append(l, MetadataEntry{Name: kv[i], Value: []byte(kv[i+1])})
			}
		}
		return s.SetMetadata(ctx, u, mb, l)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(set(a.User, 0, "/private/vendor/x/a", "1", "/private/vendor/x/a/b", "2", "/private/vendor/x/c/d/e", "3", "/shared/comment", "shared"))
	must(set(a.User, a.Mailbox, "/private/comment", "inbox"))
	for _, tc := range []struct {
		depth Depth
		names []string
		want  []string
	}{
		{DepthZero, []string{"/private/vendor/x/a"}, []string{"/private/vendor/x/a=1"}},
		{DepthOne, []string{"/private/vendor/x/a"}, []string{"/private/vendor/x/a=1", "/private/vendor/x/a/b=2"}},
		{DepthOne, []string{"/private/vendor/x"}, []string{"/private/vendor/x/a=1"}},
		{DepthInfinity, []string{"/private/vendor/x"}, []string{"/private/vendor/x/a=1", "/private/vendor/x/a/b=2", "/private/vendor/x/c/d/e=3"}},
		{DepthInfinity, []string{"/shared", "/shared/comment"}, []string{"/shared/comment=shared"}},
		{DepthZero, []string{"/private/nothing"}, nil},
	} {
		if got := getMetadata(t, s, a.User, 0, tc.depth, tc.names...); !slices.Equal(got, tc.want) {
			t.Errorf("Metadata(server, %q, depth %d) = %q, want %q", tc.names, tc.depth, got, tc.want)
		}
	}
	if got := getMetadata(t, s, a.User, a.Mailbox, DepthZero, "/private/comment"); !slices.Equal(got, []string{"/private/comment=inbox"}) {
		t.Errorf("INBOX comment = %q", got)
	}
	// Another user sees none of it, and cannot reach a's mailbox.
	if got := getMetadata(t, s, b.User, 0, DepthInfinity, "/private", "/shared"); got != nil {
		t.Errorf("b sees %q", got)
	}
	if _, err := s.Metadata(ctx, b.User, a.Mailbox, []string{"/private/comment"}, DepthZero); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("b reading a's INBOX = %v, want ErrNoSuchMailbox", err)
	}
	if err := set(b.User, a.Mailbox, "/private/comment", "x"); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("b writing a's INBOX = %v, want ErrNoSuchMailbox", err)
	}
	// NIL deletes; an empty value is a value.
	must(set(a.User, 0, "/private/vendor/x/a", "NIL", "/private/vendor/x/c/d/e", ""))
	if got := getMetadata(t, s, a.User, 0, DepthInfinity, "/private/vendor/x"); !slices.Equal(got, []string{"/private/vendor/x/a/b=2", "/private/vendor/x/c/d/e="}) {
		t.Errorf("after delete: %q", got)
	}
	// Limits: nothing of a refused SETMETADATA is stored.
	big := make([]byte, MaxMetadataValue+1)
	if err := s.SetMetadata(ctx, a.User, 0, []MetadataEntry{{Name: "/private/ok", Value: []byte("1")}, {Name: "/private/big", Value: big}}); !errors.Is(err, ErrMetadataTooBig) {
		t.Errorf("too big = %v", err)
	}
	var many []MetadataEntry
	for i := range MaxMetadataEntries {
		many = append(many, MetadataEntry{Name: fmt.Sprintf("/private/n/%d", i), Value: []byte("v")})
	}
	if err := s.SetMetadata(ctx, a.User, 0, many); !errors.Is(err, ErrMetadataTooMany) {
		t.Errorf("too many = %v", err)
	}
	if got := getMetadata(t, s, a.User, 0, DepthInfinity, "/private/ok", "/private/n"); got != nil {
		t.Errorf("refused SetMetadata left %q", got)
	}
	// RENAME keeps a mailbox's entries; DELETE drops them, and a new
	// mailbox of the same name starts without.
	mb, err := s.CreateMailbox(ctx, a.User, "Old", "")
	must(err)
	must(set(a.User, mb.ID, "/private/color", "red"))
	must(s.RenameMailbox(ctx, a.User, "Old", "New"))
	renamed, err := s.Mailbox(ctx, a.User, "New")
	must(err)
	if got := getMetadata(t, s, a.User, renamed.ID, DepthZero, "/private/color"); !slices.Equal(got, []string{"/private/color=red"}) {
		t.Errorf("after RENAME: %q", got)
	}
	must(s.DeleteMailbox(ctx, a.User, "New"))
	again, err := s.CreateMailbox(ctx, a.User, "New", "")
	must(err)
	if got := getMetadata(t, s, a.User, again.ID, DepthZero, "/private/color"); got != nil {
		t.Errorf("re-created mailbox has %q", got)
	}
	var rows int
	must(s.rdb.QueryRow("SELECT count(*) FROM metadata WHERE mailbox_id = ?", mb.ID).Scan(&rows))
	if rows != 0 {
		t.Errorf("%d entries of a deleted mailbox left", rows)
	}
	// A user's entries go with the user.
	must(s.DeleteUser(ctx, "a@localhost"))
	must(s.rdb.QueryRow("SELECT count(*) FROM metadata").Scan(&rows))
	if rows != 0 {
		t.Errorf("%d entries left after DeleteUser", rows)
	}
}

// TestMetadataSurvivesRestart: a push token a client stores (Delta Chat
// keeps one in a /private entry) is there after the store is closed and
// opened again.
func TestMetadataSurvivesRestart(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "m.db")
	s, err := Open(ctx, path, Options{PasswordCost: 4})
	if err != nil {
		t.Fatal(err)
	}
	a := addUser(t, s, "a@localhost")
	token := []byte("fcm-token:abc123/xyz")
	if err := s.SetMetadata(ctx, a.User, 0, []MetadataEntry{{Name: "/private/devicetoken", Value: token}}); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s2 := openStoreAt(t, path, Options{})
	if got := getMetadata(t, s2, a.User, 0, DepthZero, "/private/devicetoken"); !slices.Equal(got, []string{"/private/devicetoken=" + string(token)}) {
		t.Errorf("after restart: %q", got)
	}
}
