package mailstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/pgtest"
	"pushmail/notify"
)

// testStoreEnv selects the backend of openTestStore: "postgres" runs the
// suite on a fresh PostgreSQL database per test (pgtest; ./test.sh runs
// the package once more that way), anything else on SQLite.
const testStoreEnv = "PUSHMAIL_TEST_STORE"

// testOnPostgres reports whether openTestStore opens PostgreSQL stores.
func testOnPostgres() bool { return os.Getenv(testStoreEnv) == "postgres" }

// openTestStore opens a fresh store: an SQLite file in a temporary
// directory, or a fresh PostgreSQL database (testStoreEnv).
func openTestStore(t testing.TB, opts Options) *Store {
	t.Helper()
	if testOnPostgres() {
		return openStoreAt(t, pgtest.New(t), opts)
	}
	return openStoreAt(t, filepath.Join(t.TempDir(), "test.db"), opts)
}

// injectFailure makes every write of event ("INSERT", "UPDATE OF col")
// on table fail with "injected failure" while cond (an SQL condition on
// NEW, "TRUE" for always) holds, until the returned function is called:
// a trigger, written for the store's backend.
func injectFailure(t testing.TB, s *Store, name, event, table, cond string) (remove func()) {
	t.Helper()
	ctx := context.Background()
	exec := func(q string) {
		t.Helper()
		if _, err := s.wdb.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if s.postgres {
		exec("CREATE FUNCTION " + name + "() RETURNS trigger LANGUAGE plpgsql AS $f$ BEGIN IF " + cond +
			" THEN RAISE EXCEPTION 'injected failure'; END IF; RETURN NEW; END $f$")
		exec("CREATE TRIGGER " + name + " BEFORE " + event + " ON " + table + " FOR EACH ROW EXECUTE FUNCTION " + name + "()")
		return func() {
			exec("DROP TRIGGER " + name + " ON " + table)
			exec("DROP FUNCTION " + name + "()")
		}
	}
	exec("CREATE TRIGGER " + name + " BEFORE " + event + " ON " + table + " WHEN " + cond +
		" BEGIN SELECT RAISE(ABORT, 'injected failure'); END")
	return func() { exec("DROP TRIGGER " + name) }
}

// sqliteOnly skips a test of what only SQLite has (its file, PRAGMAs,
// disk-space limits) on a PostgreSQL run.
func sqliteOnly(t testing.TB) {
	t.Helper()
	if testOnPostgres() {
		t.Skip("tests SQLite's file or PRAGMAs; this run is on PostgreSQL (" + testStoreEnv + ")")
	}
}

func openStoreAt(t testing.TB, path string, opts Options) *Store {
	t.Helper()
	if opts.PasswordCost == 0 {
		opts.PasswordCost = bcrypt.MinCost
	}
	s, err := Open(context.Background(), path, opts)
	if err != nil {
		t.Fatalf("Open(%s) = %v", RedactURL(path), err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return s
}

func addUser(t testing.TB, s *Store, addr string) Recipient {
	t.Helper()
	ctx := context.Background()
	if _, err := s.AddUser(ctx, addr, "secret"); err != nil {
		t.Fatalf("AddUser(%s) = %v", addr, err)
	}
	r, err := s.Resolve(ctx, addr)
	if err != nil {
		t.Fatalf("Resolve(%s) = %v", addr, err)
	}
	return r
}

func testMessage(n int) []byte {
	return fmt.Appendf(nil, "From: a@example.org\r\nTo: b@localhost\r\nSubject: test %d\r\nMessage-ID: <%d@example.org>\r\n\r\nBody of message %d.\r\n", n, n, n)
}

func storedBodies(t testing.TB, s *Store, mb MailboxID) map[UID][]byte {
	t.Helper()
	got := map[UID][]byte{}
	err := s.Messages(context.Background(), mb, AllUIDs(), FetchOptions{Body: true}, func(m *Message) error {
		got[m.UID] = bytes.Clone(m.Raw)
		return nil
	})
	if err != nil {
		t.Fatalf("Messages() = %v", err)
	}
	return got
}

func TestUIDsStrictlyIncreaseAndAreNeverReused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := Open(ctx, path, Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	r := addUser(t, s, "u@localhost")
	var uids []UID
	for i := 0; i < 3; i++ {
		got, err := s.Deliver(ctx, testMessage(i), []Recipient{r})
		if err != nil {
			t.Fatalf("Deliver() = %v", err)
		}
		uids = append(uids, got[0])
	}
	if !slices.Equal(uids, []UID{1, 2, 3}) {
		t.Fatalf("UIDs = %v, want [1 2 3]", uids)
	}
	// Expunge the highest UID, then restart: UID 3 must not come back.
	if _, err := s.StoreFlags(ctx, r.Mailbox, UIDSetOf(3), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if got, err := s.Expunge(ctx, r.Mailbox, AllUIDs(), 0); err != nil || !slices.Equal(got, []UID{3}) {
		t.Fatalf("Expunge() = %v, %v; want [3]", got, err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, path, Options{})
	got, err := s.Deliver(ctx, testMessage(4), []Recipient{r})
	if err != nil {
		t.Fatal(err)
	}
	if got[0] != 4 {
		t.Errorf("UID after restart = %d, want 4 (3 was expunged, never reused)", got[0])
	}
	st, err := s.Status(ctx, r.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if st.UIDNext != 5 || st.Messages != 3 {
		t.Errorf("Status() = UIDNEXT %d, MESSAGES %d; want 5, 3", st.UIDNext, st.Messages)
	}
}

func TestConcurrentDeliveriesGetDistinctUIDs(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	const n = 200
	uids := make([]UID, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			got, err := s.Deliver(ctx, testMessage(i), []Recipient{r})
			errs[i] = err
			if err == nil {
				uids[i] = got[0]
			}
		}()
	}
	wg.Wait()
	seen := map[UID]int{}
	for i, err := range errs {
		if err != nil {
			t.Fatalf("Deliver(%d) = %v", i, err)
		}
		if j, dup := seen[uids[i]]; dup {
			t.Fatalf("deliveries %d and %d both got UID %d", j, i, uids[i])
		}
		seen[uids[i]] = i
	}
	bodies := storedBodies(t, s, r.Mailbox)
	if len(bodies) != n {
		t.Fatalf("stored %d messages, want %d", len(bodies), n)
	}
	for i := 0; i < n; i++ {
		if !bytes.Equal(bodies[uids[i]], testMessage(i)) {
			t.Errorf("message %d (UID %d) stored as %q", i, uids[i], bodies[uids[i]])
		}
	}
}

func TestMultiRecipientDeliveryIsAtomic(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	a := addUser(t, s, "a@localhost")
	b := addUser(t, s, "b@localhost")
	// b's INBOX vanishes after resolution (as if deleted meanwhile): the
	// delivery to both must fail as a whole.
	gone := b
	gone.Mailbox = 999999
	if _, err := s.Deliver(ctx, testMessage(1), []Recipient{a, gone}); !errors.Is(err, ErrNoSuchMailbox) {
		t.Fatalf("Deliver(a, missing) = %v, want ErrNoSuchMailbox", err)
	}
	for _, r := range []Recipient{a, b} {
		st, err := s.Status(ctx, r.Mailbox)
		if err != nil {
			t.Fatal(err)
		}
		if st.Messages != 0 || st.UIDNext != 1 {
			t.Errorf("%s after failed delivery: MESSAGES %d UIDNEXT %d, want 0 and 1", r.Address, st.Messages, st.UIDNext)
		}
	}
	// The same batch may hold a good delivery: it is unaffected.
	if _, err := s.Deliver(ctx, testMessage(2), []Recipient{a, b}); err != nil {
		t.Fatalf("Deliver(a, b) = %v", err)
	}
	for _, r := range []Recipient{a, b} {
		if uids, _ := s.UIDs(ctx, r.Mailbox); !slices.Equal(uids, []UID{1}) {
			t.Errorf("%s UIDs = %v, want [1]", r.Address, uids)
		}
	}
}

func TestDeliverPrependsPerRecipientHeader(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	a := addUser(t, s, "a@localhost")
	b := addUser(t, s, "b@localhost")
	a.Header = []byte("Delivered-To: a+x@localhost\r\n")
	msg := testMessage(1)
	if _, err := s.Deliver(ctx, msg, []Recipient{a, b}); err != nil {
		t.Fatal(err)
	}
	if got := storedBodies(t, s, a.Mailbox)[1]; !bytes.Equal(got, append(bytes.Clone(a.Header), msg...)) {
		t.Errorf("a's copy = %q", got)
	}
	if got := storedBodies(t, s, b.Mailbox)[1]; !bytes.Equal(got, msg) {
		t.Errorf("b's copy = %q", got)
	}
	// The stored structure's offsets account for the prepended header.
	err := s.Messages(ctx, a.Mailbox, AllUIDs(), FetchOptions{Parsed: true, Body: true}, func(m *Message) error {
		if got := string(m.Raw[m.Parsed.Root.BodyStart:m.Parsed.Root.End]); got != "Body of message 1.\r\n" {
			t.Errorf("body by offsets = %q", got)
		}
		if m.Parsed.Envelope.Subject != "test 1" {
			t.Errorf("envelope subject = %q", m.Parsed.Envelope.Subject)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestEventsArePublishedBeforeDeliverReturns(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hub := notify.New(0)
	s := openTestStore(t, Options{Hub: hub})
	r := addUser(t, s, "u@localhost")
	sub := hub.Subscribe(int64(r.Mailbox))
	defer sub.Close()
	if _, err := s.Deliver(ctx, testMessage(1), []Recipient{r}); err != nil {
		t.Fatal(err)
	}
	events, resync := sub.Take()
	want := notify.Event{Mailbox: int64(r.Mailbox), Kind: notify.Appended, UIDs: []uint32{1}, Messages: 1, ModSeq: 2}
	if resync || len(events) != 1 || !eventEqual(events[0], want) {
		t.Fatalf("events after Deliver = %+v (resync %v), want [%+v]", events, resync, want)
	}

	if _, err := s.StoreFlags(ctx, r.Mailbox, UIDSetOf(1), FlagsAdd, []string{FlagSeen, FlagDeleted, "$Junk"}, 42); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, r.Mailbox, AllUIDs(), 42); err != nil {
		t.Fatal(err)
	}
	events, _ = sub.Take()
	if len(events) != 2 || events[0].Kind != notify.FlagsChanged || events[1].Kind != notify.Expunged {
		t.Fatalf("events = %+v, want FlagsChanged then Expunged", events)
	}
	if f := events[0].Flags; len(f) != 1 || !slices.Equal(f[0].Flags, []string{FlagSeen, FlagDeleted, "$Junk"}) || events[0].Origin != 42 {
		t.Errorf("FlagsChanged = %+v", events[0])
	}
	if !slices.Equal(events[1].UIDs, []uint32{1}) || events[1].Messages != 0 {
		t.Errorf("Expunged = %+v", events[1])
	}
}

func eventEqual(a, b notify.Event) bool {
	return a.Mailbox == b.Mailbox && a.Kind == b.Kind && slices.Equal(a.UIDs, b.UIDs) &&
		a.Messages == b.Messages && a.ModSeq == b.ModSeq && a.Origin == b.Origin
}

func TestFlagsCopyMoveAndSharedBodies(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	for i := 0; i < 3; i++ {
		if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	ups, err := s.StoreFlags(ctx, r.Mailbox, UIDSet{{2, 0}}, FlagsAdd, []string{`\flagged`, "Work"}, 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(ups) != 2 || !slices.Equal(ups[0].Flags, []string{FlagFlagged, "Work"}) {
		t.Fatalf("StoreFlags(2:*) = %+v", ups)
	}
	if _, err := s.StoreFlags(ctx, r.Mailbox, AllUIDs(), FlagsAdd, []string{`\Recent`}, 0); !errors.Is(err, ErrInvalidFlag) {
		t.Errorf(`StoreFlags(\Recent) = %v, want ErrInvalidFlag`, err)
	}
	st, _ := s.Status(ctx, r.Mailbox)
	if st.Unseen != 3 {
		t.Errorf("UNSEEN = %d, want 3", st.Unseen)
	}
	if _, err := s.StoreFlags(ctx, r.Mailbox, UIDSetOf(1), FlagsSet, []string{FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := s.Status(ctx, r.Mailbox); st.Unseen != 2 {
		t.Errorf("UNSEEN after \\Seen on 1 = %d, want 2", st.Unseen)
	}
	if uid, _ := s.FirstUnseen(ctx, r.Mailbox); uid != 2 {
		t.Errorf("FirstUnseen = %d, want 2", uid)
	}

	archive, err := s.Mailbox(ctx, r.User, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	cp, err := s.Copy(ctx, r.Mailbox, UIDSetOf(2, 3), archive.ID, 0)
	if err != nil || !slices.Equal(cp.Source, []UID{2, 3}) || !slices.Equal(cp.Dest, []UID{1, 2}) || cp.UIDValidity != archive.UIDValidity {
		t.Fatalf("Copy() = %+v, %v", cp, err)
	}
	mv, err := s.Move(ctx, r.Mailbox, UIDSetOf(3), archive.ID, 0)
	if err != nil || !slices.Equal(mv.Dest, []UID{3}) {
		t.Fatalf("Move() = %+v, %v", mv, err)
	}
	if uids, _ := s.UIDs(ctx, r.Mailbox); !slices.Equal(uids, []UID{1, 2}) {
		t.Errorf("INBOX after move = %v, want [1 2]", uids)
	}
	var flags []string
	s.Messages(ctx, archive.ID, UIDSetOf(1), FetchOptions{}, func(m *Message) error { flags = m.Flags; return nil })
	if !slices.Equal(flags, []string{FlagFlagged, "Work"}) {
		t.Errorf("copied flags = %v", flags)
	}
	// Three messages in Archive share two bodies with INBOX: 3 bodies in all.
	if n := countRows(t, s, "bodies"); n != 3 {
		t.Errorf("bodies = %d, want 3 (copies share)", n)
	}
	// Deleting the user removes every body.
	if err := s.DeleteUser(ctx, r.Address); err != nil {
		t.Fatal(err)
	}
	if n := countRows(t, s, "bodies"); n != 0 {
		t.Errorf("bodies after DeleteUser = %d, want 0", n)
	}
	if n := countRows(t, s, "messages"); n != 0 {
		t.Errorf("messages after DeleteUser = %d, want 0", n)
	}
}

func countRows(t *testing.T, s *Store, table string) int {
	t.Helper()
	var n int
	if err := s.rdb.QueryRow("SELECT COUNT(*) FROM " + table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

func TestSchemaFromNewerBinaryIsRefused(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "test.db")
	s, err := Open(context.Background(), path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.wdb.Exec(fmt.Sprintf("PRAGMA user_version = %d", schemaVersion+1)); err != nil {
		t.Fatal(err)
	}
	s.Close()
	_, err = Open(context.Background(), path, Options{})
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("Open(newer schema) = %v, want ErrSchemaTooNew", err)
	}
}

func TestUsersAndResolve(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{Domains: []string{"Example.ORG"}})
	if _, err := s.AddUser(ctx, "Alice@Localhost", "pw1"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(ctx, "alice@localhost", "pw2"); !errors.Is(err, ErrUserExists) {
		t.Errorf("AddUser(duplicate) = %v, want ErrUserExists", err)
	}
	if err := s.AddAlias(ctx, "postmaster@example.org", "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "ALICE@localhost", "pw1"); err != nil {
		t.Errorf("Authenticate(right password) = %v", err)
	}
	for _, tc := range []struct{ addr, pw string }{{"alice@localhost", "wrong"}, {"nobody@localhost", "pw1"}, {"bad", "pw1"}} {
		if _, err := s.Authenticate(ctx, tc.addr, tc.pw); !errors.Is(err, ErrAuthFailed) {
			t.Errorf("Authenticate(%s, %s) = %v, want ErrAuthFailed", tc.addr, tc.pw, err)
		}
	}
	if err := s.SetPassword(ctx, "alice@localhost", "pw3"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Authenticate(ctx, "alice@localhost", "pw3"); err != nil {
		t.Errorf("Authenticate(new password) = %v", err)
	}

	for _, tc := range []struct {
		name, addr string
		want       error
	}{
		{"exact", "alice@localhost", nil},
		{"case-insensitive", "ALICE@LocalHost", nil},
		{"plus tag", "alice+lists@localhost", nil},
		{"alias", "postmaster@example.org", nil},
		{"alias with tag", "PostMaster+x@example.org", nil},
		{"configured domain, unknown user", "bob@example.org", ErrNoSuchUser},
		{"user domain, unknown user", "bob@localhost", ErrNoSuchUser},
		{"foreign domain", "alice@elsewhere.net", ErrNotLocal},
		{"percent hack", "alice%elsewhere.net@localhost", ErrInvalidAddress},
		{"quoted local part", `"alice"@localhost`, ErrInvalidAddress},
		{"source route", "@relay.net:alice@localhost", ErrInvalidAddress},
		{"no domain", "alice", ErrInvalidAddress},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, err := s.Resolve(ctx, tc.addr)
			if !errors.Is(err, tc.want) {
				t.Fatalf("Resolve(%q) = %v, want %v", tc.addr, err, tc.want)
			}
			if err == nil && r.Address != "alice@localhost" {
				t.Errorf("Resolve(%q) = %s, want alice@localhost", tc.addr, r.Address)
			}
		})
	}

	u, _ := s.Authenticate(ctx, "alice@localhost", "pw3")
	mbs, err := s.Mailboxes(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, mb := range mbs {
		names = append(names, mb.Name+mb.SpecialUse)
	}
	want := []string{`Archive\Archive`, `Drafts\Drafts`, "INBOX", `Junk\Junk`, `Sent\Sent`, `Trash\Trash`}
	if !slices.Equal(names, want) {
		t.Errorf("default mailboxes = %v, want %v", names, want)
	}
	if users, _ := s.Users(ctx); len(users) != 1 || users[0].Address != "alice@localhost" {
		t.Errorf("Users() = %+v", users)
	}
	if err := s.DeleteUser(ctx, "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Resolve(ctx, "postmaster@example.org"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Resolve(alias of deleted user) = %v, want ErrNoSuchUser", err)
	}
}

func TestMailboxLifecycle(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	u := r.User

	work, err := s.CreateMailbox(ctx, u, "Projects/Work/2026", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Mailbox(ctx, u, "Projects/Work"); err != nil {
		t.Errorf("parent not created: %v", err)
	}
	if _, err := s.CreateMailbox(ctx, u, "Projects/Work/2026", ""); !errors.Is(err, ErrMailboxExists) {
		t.Errorf("CreateMailbox(existing) = %v", err)
	}
	for _, bad := range []string{"", "a//b", "/a", "a/", "nul\x00here", string(make([]byte, MaxMailboxNameLen+1)), "\xff"} {
		if _, err := s.CreateMailbox(ctx, u, bad, ""); !errors.Is(err, ErrInvalidName) {
			t.Errorf("CreateMailbox(%q) = %v, want ErrInvalidName", bad, err)
		}
	}
	if _, err := s.Mailbox(ctx, u, "inbox"); err != nil {
		t.Errorf("Mailbox(inbox) = %v, want INBOX", err)
	}
	if err := s.DeleteMailbox(ctx, u, "Inbox"); !errors.Is(err, ErrProtected) {
		t.Errorf("DeleteMailbox(Inbox) = %v, want ErrProtected", err)
	}

	// Rename moves inferiors along.
	if err := s.RenameMailbox(ctx, u, "Projects", "Old/Projects"); err != nil {
		t.Fatal(err)
	}
	moved, err := s.Mailbox(ctx, u, "Old/Projects/Work/2026")
	if err != nil || moved.ID != work.ID || moved.UIDValidity != work.UIDValidity {
		t.Fatalf("after rename: %+v, %v; want same mailbox %d", moved, err, work.ID)
	}

	// Renaming INBOX moves its messages and leaves it empty.
	if _, err := s.Deliver(ctx, testMessage(1), []Recipient{r}); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, u, "INBOX", "Saved"); err != nil {
		t.Fatal(err)
	}
	saved, _ := s.Mailbox(ctx, u, "Saved")
	if st, _ := s.Status(ctx, saved.ID); st.Messages != 1 {
		t.Errorf("Saved has %d messages, want 1", st.Messages)
	}
	if st, _ := s.Status(ctx, r.Mailbox); st.Messages != 0 || st.UIDNext != 2 {
		t.Errorf("INBOX after rename: %d messages, UIDNEXT %d; want 0, 2", st.Messages, st.UIDNext)
	}

	// A re-created mailbox gets a new UIDVALIDITY (RFC 9051 §2.3.1.1).
	if err := s.DeleteMailbox(ctx, u, "Saved"); err != nil {
		t.Fatal(err)
	}
	again, err := s.CreateMailbox(ctx, u, "Saved", `\Archive`)
	if err != nil {
		t.Fatal(err)
	}
	if again.UIDValidity == saved.UIDValidity {
		t.Errorf("re-created mailbox kept UIDVALIDITY %d", again.UIDValidity)
	}
	if err := s.SetSubscribed(ctx, u, "Saved", true); err != nil {
		t.Fatal(err)
	}
	if mb, _ := s.Mailbox(ctx, u, "Saved"); !mb.Subscribed || mb.SpecialUse != `\Archive` {
		t.Errorf("Saved = %+v", mb)
	}
	if err := s.DeleteMailbox(ctx, u, "Nope"); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("DeleteMailbox(Nope) = %v", err)
	}
}

func TestAppendAndSizeLimit(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{MaxMessageSize: 1000})
	r := addUser(t, s, "u@localhost")
	date := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	res, err := s.Append(ctx, r.Mailbox, testMessage(1), []string{FlagDraft, FlagSeen}, date, 7)
	if err != nil || res.UID != 1 {
		t.Fatalf("Append() = %+v, %v", res, err)
	}
	s.Messages(ctx, r.Mailbox, AllUIDs(), FetchOptions{}, func(m *Message) error {
		if !m.InternalDate.Equal(date) || !slices.Equal(m.Flags, []string{FlagSeen, FlagDraft}) {
			t.Errorf("appended message = %+v", m)
		}
		return nil
	})
	if _, err := s.Append(ctx, r.Mailbox, make([]byte, 1001), nil, time.Time{}, 0); !errors.Is(err, ErrTooBig) {
		t.Errorf("Append(too big) = %v, want ErrTooBig", err)
	}
	if _, err := s.Append(ctx, 4242, testMessage(1), nil, time.Time{}, 0); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("Append(missing mailbox) = %v, want ErrNoSuchMailbox", err)
	}
}

func TestClosedStoreRefusesWrites(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "t.db"), Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	r := addUser(t, s, "u@localhost")
	s.Close()
	if _, err := s.Deliver(ctx, testMessage(1), []Recipient{r}); !errors.Is(err, ErrClosed) {
		t.Errorf("Deliver after Close = %v, want ErrClosed", err)
	}
}

// BenchmarkDeliver measures durable deliveries of 4 KB messages at several
// concurrencies; group commit should make 16 and 64 callers far faster
// than one fsync per message. It reports msgs/s and per-call latency.
func BenchmarkDeliver(b *testing.B) {
	msg := append([]byte("From: a@example.org\r\nTo: u@localhost\r\nSubject: bench\r\n\r\n"),
		bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef\r\n"), 61)...)
	for _, conc := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("conc=%d", conc), func(b *testing.B) {
			s := openTestStore(b, Options{})
			r := addUser(b, s, "u@localhost")
			ctx := context.Background()
			work := make(chan struct{}, b.N)
			for i := 0; i < b.N; i++ {
				work <- struct{}{}
			}
			close(work)
			lats := make([][]time.Duration, conc)
			var wg sync.WaitGroup
			b.SetBytes(int64(len(msg)))
			b.ResetTimer()
			start := time.Now()
			for w := 0; w < conc; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range work {
						t0 := time.Now()
						if _, err := s.Deliver(ctx, msg, []Recipient{r}); err != nil {
							b.Error(err)
							return
						}
						lats[w] = append(lats[w], time.Since(t0))
					}
				}()
			}
			wg.Wait()
			elapsed := time.Since(start)
			b.StopTimer()
			all := slices.Concat(lats...)
			slices.Sort(all)
			b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
			b.ReportMetric(float64(all[len(all)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(all[len(all)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// A database written by an older pushmail (schema 1) is migrated forward
// on open, keeping its mail.
func TestMigrationFromVersion1(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "old.db")
	s, err := Open(ctx, path, Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	r := addUser(t, s, "u@localhost")
	if _, err := s.Deliver(ctx, testMessage(1), []Recipient{r}); err != nil {
		t.Fatal(err)
	}
	// Turn it back into a version-1 file: what migrations 2, 3, 5, 6 and 7 add
	// goes away.
	if _, err := s.wdb.Exec(undoSaveDate + undoSchemaBodyText + undoSortKeys + undoSchemaPush + undoAccountLog + undoSchema9 + undoSchema8 + undoSchema7 + undoSchema6 + undoSchema5 + `DROP INDEX messages_unseen; DROP INDEX messages_deleted; DROP INDEX messages_modseq;
DROP TRIGGER users_id_hw; DROP TRIGGER mailboxes_id_hw; DELETE FROM meta WHERE key LIKE '%_id_hw';
PRAGMA user_version = 1`); err != nil {
		t.Fatal(err)
	}
	s.Close()

	s = openStoreAt(t, path, Options{})
	var version, indexes int
	s.rdb.QueryRow("PRAGMA user_version").Scan(&version)
	s.rdb.QueryRow("SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND name IN ('messages_unseen', 'messages_deleted', 'messages_modseq')").Scan(&indexes)
	if version != schemaVersion || indexes != 3 {
		t.Errorf("after reopening a version-1 file: user_version %d, %d of 3 new indexes; want %d, 3", version, indexes, schemaVersion)
	}
	if uid, err := s.FirstUnseen(ctx, r.Mailbox); err != nil || uid != 1 {
		t.Errorf("FirstUnseen after migration = %d, %v; want 1", uid, err)
	}
	// Migration 3 starts from the ids the file holds.
	if err := s.DeleteUser(ctx, "u@localhost"); err != nil {
		t.Fatal(err)
	}
	if v := addUser(t, s, "v@localhost"); v.User == r.User || v.Mailbox == r.Mailbox {
		t.Errorf("after migration, a new user got the deleted user's ids: user %d, INBOX %d", v.User, v.Mailbox)
	}
}

// A deleted user's or mailbox's id is never given to a new one, even when
// it was the highest: sessions and transactions that still hold it must
// not reach someone else's mail.
func TestIDsAreNeverReused(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	addUser(t, s, "a@localhost")
	b := addUser(t, s, "b@localhost") // the highest ids
	extra, err := s.CreateMailbox(ctx, b.User, "Extra", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, b.User, "Extra"); err != nil {
		t.Fatal(err)
	}
	again, err := s.CreateMailbox(ctx, b.User, "Extra", "")
	if err != nil {
		t.Fatal(err)
	}
	if again.ID == extra.ID {
		t.Errorf("re-created mailbox got the deleted one's id %d", extra.ID)
	}
	if err := s.DeleteUser(ctx, "b@localhost"); err != nil {
		t.Fatal(err)
	}
	c := addUser(t, s, "c@localhost")
	if c.User <= b.User || c.Mailbox <= again.ID {
		t.Errorf("new user got ids user %d, INBOX %d; want above the deleted user's %d and mailbox %d", c.User, c.Mailbox, b.User, again.ID)
	}
}
