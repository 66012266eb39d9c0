package main

import (
	"bytes"
	"fmt"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"pushmail/internal/pgtest"
	"pushmail/mailstore"
)

// TestStoreMigrate runs "pushmail store migrate" as a separate process:
// refused while the data directory is locked, then a copy whose counts
// it prints and whose result the PostgreSQL store serves, then refused
// again on the now full target.
//
// The migrated store is checked through mailstore.Open: "pushmail serve"
// on a PostgreSQL store (--store URL) is not on this branch yet.
func TestStoreMigrate(t *testing.T) {
	target := pgtest.New(t)
	ctx := t.Context()
	data := t.TempDir()
	for _, u := range []string{"a@localhost", "b@localhost"} {
		if code, _, stderr := runCLI(t, "pw\n", "user", "add", u, "--data", data, "--password-stdin"); code != 0 {
			t.Fatalf("user add %s: %s", u, stderr)
		}
	}
	src, err := mailstore.Open(ctx, filepath.Join(data, dbFile), mailstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	a, err := src.Resolve(ctx, "a@localhost")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if _, err := src.Deliver(ctx, fmt.Appendf(nil, "Subject: m%d\r\n\r\nbody %d\r\n", i, i), []mailstore.Recipient{a}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := src.StoreFlags(ctx, a.Mailbox, mailstore.UIDSetOf(2), mailstore.FlagsAdd, []string{mailstore.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := src.Expunge(ctx, a.Mailbox, mailstore.UIDSetOf(2), 0); err != nil {
		t.Fatal(err)
	}
	wantBodies := map[mailstore.UID][]byte{}
	if err := src.Messages(ctx, a.Mailbox, mailstore.AllUIDs(), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
		wantBodies[m.UID] = bytes.Clone(m.Raw)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	wantStatus, err := src.Status(ctx, a.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	// A server holds the lock: migrate must not copy under it.
	lock, err := lockDataDir(data, "serve")
	if err != nil {
		t.Fatal(err)
	}
	code, out := runBinary(t, "store", "migrate", "--data", data, "--to", target)
	if code != 1 || !strings.Contains(out, "stop it first") {
		t.Errorf("store migrate beside a server = exit %d, %q; want 1 and a refusal", code, out)
	}
	if err := lock.Close(); err != nil {
		t.Fatal(err)
	}

	code, out = runBinary(t, "store", "migrate", "--data", data, "--to", target)
	if code != 0 {
		t.Fatalf("store migrate = exit %d: %s", code, out)
	}
	for _, want := range []string{`(?m)^users +2$`, `(?m)^messages +4$`, `(?m)^vanished +1$`, `(?m)^body_text +4$`, `verified: .* 1 mailboxes`} {
		if !regexp.MustCompile(want).MatchString(out) {
			t.Errorf("store migrate output lacks %s:\n%s", want, out)
		}
	}

	dst, err := mailstore.Open(ctx, target, mailstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer closeStore(dst, t.Output())
	if _, err := dst.Authenticate(ctx, "b@localhost", "pw"); err != nil {
		t.Errorf("Authenticate(b) on the migrated store = %v", err)
	}
	got, err := dst.Status(ctx, a.Mailbox)
	if err != nil || got != wantStatus {
		t.Errorf("Status on the migrated store = %+v, %v; want %+v", got, err, wantStatus)
	}
	gotBodies := map[mailstore.UID][]byte{}
	if err := dst.Messages(ctx, a.Mailbox, mailstore.AllUIDs(), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
		gotBodies[m.UID] = bytes.Clone(m.Raw)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(gotBodies) != len(wantBodies) {
		t.Errorf("messages on the migrated store: %d, want %d", len(gotBodies), len(wantBodies))
	}
	for uid, b := range wantBodies {
		if !bytes.Equal(gotBodies[uid], b) {
			t.Errorf("UID %d on the migrated store = %q, want %q", uid, gotBodies[uid], b)
		}
	}
	uids, err := dst.Deliver(ctx, []byte("Subject: new\r\n\r\nafter\r\n"), []mailstore.Recipient{a})
	if err != nil || !slices.Equal(uids, []mailstore.UID{wantStatus.UIDNext}) {
		t.Errorf("Deliver on the migrated store = %v, %v; want UID %d", uids, err, wantStatus.UIDNext)
	}

	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"target not empty", []string{"--from", "sqlite:" + filepath.Join(data, dbFile), "--to", target}, 1, "not empty"},
		{"no target", []string{"--data", data}, 2, "Usage"},
		{"sqlite target", []string{"--data", data, "--to", filepath.Join(data, "x.db")}, 1, "postgres:// URL"},
		{"missing source", []string{"--from", filepath.Join(data, "none.db"), "--to", target}, 1, "no such file"},
	} {
		code, out := runBinary(t, append([]string{"store", "migrate"}, c.args...)...)
		if code != c.code || !strings.Contains(out, c.want) {
			t.Errorf("%s: store migrate = exit %d, %q; want %d and %q", c.name, code, out, c.code, c.want)
		}
	}
}
