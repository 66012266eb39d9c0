package mailstore

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/pgtest"
)

// storeSnapshot is what a client of each protocol sees of a store,
// through the public API: compared before and after CopyStore.
type storeSnapshot struct {
	Users     []User
	Aliases   []Alias
	Mailboxes map[string][]MailboxStatus
	Messages  map[string][]snapMessage // by "user/mailbox"
	Subs      map[string][]string
	Quota     map[string]Quota
	State     map[string]AccountState
	Changes   map[string][2]AccountChanges // email, mailbox since 0
	Vanished  map[string]Changes
	Metadata  map[string][]MetadataEntry
	PushSubs  map[string][]PushSubscription
	Pending   []PendingPush
}

type snapMessage struct {
	UID      UID
	Flags    []string
	ModSeq   uint64
	Email    EmailID
	Size     int64
	Date     time.Time
	SaveDate time.Time
	Raw      string
}

func snapshot(t *testing.T, s *Store) storeSnapshot {
	t.Helper()
	ctx := t.Context()
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	sn := storeSnapshot{
		Mailboxes: map[string][]MailboxStatus{}, Messages: map[string][]snapMessage{},
		Subs: map[string][]string{}, Quota: map[string]Quota{}, State: map[string]AccountState{},
		Changes: map[string][2]AccountChanges{}, Vanished: map[string]Changes{},
		Metadata: map[string][]MetadataEntry{}, PushSubs: map[string][]PushSubscription{},
	}
	var err error
	sn.Users, err = s.Users(ctx)
	must(err)
	for i := range sn.Users {
		sn.Users[i].Created = sn.Users[i].Created.UTC()
	}
	sn.Aliases, err = s.Aliases(ctx)
	must(err)
	for _, u := range sn.Users {
		sts, err := s.MailboxStatuses(ctx, u.ID)
		must(err)
		sn.Mailboxes[u.Address] = sts
		for _, st := range sts {
			key := u.Address + "/" + st.Name
			var msgs []snapMessage
			must(s.Messages(ctx, st.ID, AllUIDs(), FetchOptions{Body: true}, func(m *Message) error {
				msgs = append(msgs, snapMessage{m.UID, m.Flags, m.ModSeq, m.Email, m.Size, m.InternalDate.UTC(), m.SaveDate.UTC(), string(m.Raw)})
				return nil
			}))
			sn.Messages[key] = msgs
			ch, err := s.ChangesSince(ctx, st.ID, AllUIDs(), 1)
			must(err)
			sn.Vanished[key] = ch
			md, err := s.Metadata(ctx, u.ID, st.ID, []string{"/private"}, DepthInfinity)
			must(err)
			if len(md) > 0 {
				sn.Metadata[key] = md
			}
		}
		sn.Subs[u.Address], err = s.Subscriptions(ctx, u.ID)
		must(err)
		sn.Quota[u.Address], err = s.Quota(ctx, u.ID)
		must(err)
		sn.State[u.Address], err = s.AccountState(ctx, u.ID)
		must(err)
		e, err := s.ChangesSinceState(ctx, u.ID, KindEmail, 0, 1000)
		must(err)
		m, err := s.ChangesSinceState(ctx, u.ID, KindMailbox, 0, 1000)
		must(err)
		sn.Changes[u.Address] = [2]AccountChanges{e, m}
		md, err := s.Metadata(ctx, u.ID, 0, []string{"/private"}, DepthInfinity)
		must(err)
		sn.Metadata[u.Address] = md
		ps, err := s.PushSubscriptions(ctx, u.ID)
		must(err)
		for i := range ps {
			ps[i].Expires = ps[i].Expires.UTC()
		}
		sn.PushSubs[u.Address] = ps
	}
	sn.Pending, err = s.PendingPushes(ctx)
	must(err)
	return sn
}

// buildCopySource fills an SQLite store with a bit of everything and
// returns its path, closed.
func buildCopySource(t *testing.T) string {
	t.Helper()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "src.db")
	s := openStoreAt(t, path, Options{PasswordCost: bcrypt.MinCost})
	alice := addUser(t, s, "alice@localhost")
	bob := addUser(t, s, "bob@localhost")
	addUser(t, s, "carol@localhost")
	if err := s.AddAlias(ctx, "postmaster@localhost", "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetQuota(ctx, "bob@localhost", 1<<20, 100); err != nil {
		t.Fatal(err)
	}
	for i := range 6 {
		raw := testMessage(i)
		switch i {
		case 2:
			raw = []byte("From: x@example.org\r\nSubject: travel\r\n\r\nMeet me in Zanzibar.\r\n")
		case 3: // 8-bit bytes in no declared charset, a NUL: the text columns must take what the writer made of them
			raw = []byte("From: x@example.org\r\nSubject: caf\xe9\r\nX-\xff: y\r\nContent-Type: text/plain\r\n\r\ncaf\xe9 \xff\xfe \x00 end\r\n")
		}
		if _, err := s.Deliver(ctx, raw, []Recipient{alice, bob}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.StoreFlags(ctx, alice.Mailbox, UIDSetOf(1, 2), FlagsAdd, []string{FlagSeen, "Work"}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, alice.Mailbox, UIDSetOf(4, 5), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, alice.Mailbox, UIDSetOf(4, 5), 0); err != nil {
		t.Fatal(err)
	}
	archive, err := s.Mailbox(ctx, alice.User, "Archive")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, alice.Mailbox, UIDSetOf(1, 2, 3), archive.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx, alice.Mailbox, UIDSetOf(6), archive.ID, 0); err != nil {
		t.Fatal(err)
	}
	proj, err := s.CreateMailbox(ctx, alice.User, "Projects/Old", "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, alice.User, "Projects/Old", true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMetadata(ctx, alice.User, 0, []MetadataEntry{{Name: "/private/comment", Value: []byte("server note")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SetMetadata(ctx, alice.User, archive.ID, []MetadataEntry{{Name: "/private/color", Value: []byte("blue")}}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Copy(ctx, archive.ID, UIDSetOf(1), proj.ID, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, alice.User, "Projects/Old"); err != nil {
		t.Fatal(err)
	}
	exp := time.Unix(time.Now().Add(24*time.Hour).Unix(), 0)
	if _, err := s.CreatePushSubscription(ctx, PushSubscription{User: alice.User, DeviceClientID: "phone", URL: "https://push.example/x",
		P256DH: "key", Auth: "auth", Code: "c0de", Expires: exp, Types: []string{"Email"}}); err != nil {
		t.Fatal(err)
	}
	if err := s.SavePendingPushes(ctx, []PendingPush{{Endpoint: "hook", Key: "k1", User: alice.User, Payload: []byte("p")},
		{Endpoint: "hook", Key: "k2", User: bob.User}}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ClaimRecent(ctx, bob.Mailbox, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestCopyStoreToPostgres(t *testing.T) {
	t.Parallel()
	target := pgtest.New(t)
	ctx := t.Context()
	path := buildCopySource(t)
	src := openStoreAt(t, path, Options{})
	want := snapshot(t, src)
	var maxBody, maxPush int64
	if err := src.rdb.QueryRow("SELECT max(id) FROM bodies").Scan(&maxBody); err != nil {
		t.Fatal(err)
	}
	if err := src.rdb.QueryRow("SELECT max(id) FROM push_subscriptions").Scan(&maxPush); err != nil {
		t.Fatal(err)
	}
	if err := src.Close(); err != nil {
		t.Fatal(err)
	}

	res, err := CopyStore(ctx, path, target, nil)
	if err != nil {
		t.Fatalf("CopyStore() = %v", err)
	}
	if res.Rows("users") != 3 || res.Rows("aliases") != 1 || res.Rows("messages") == 0 || res.Rows("vanished") == 0 ||
		res.Rows("body_text") != res.Rows("bodies") || res.Rows("push_subscriptions") != 1 || res.Rows("push_pending") != 2 ||
		res.Mailboxes == 0 || res.BodyBytes == 0 {
		t.Errorf("CopyStore() = %+v", res)
	}
	t.Logf("copied: %+v", res)

	dst := openStoreAt(t, target, Options{})
	got := snapshot(t, dst)
	if !reflect.DeepEqual(got, want) {
		for _, f := range reflect.VisibleFields(reflect.TypeOf(want)) {
			g, w := reflect.ValueOf(got).FieldByIndex(f.Index).Interface(), reflect.ValueOf(want).FieldByIndex(f.Index).Interface()
			if !reflect.DeepEqual(g, w) {
				t.Errorf("%s after the copy:\n got %+v\nwant %+v", f.Name, g, w)
			}
		}
	}
	if _, err := dst.Authenticate(ctx, "alice@localhost", "secret"); err != nil {
		t.Errorf("Authenticate on the copy = %v", err)
	}

	alice, err := dst.Resolve(ctx, "alice@localhost")
	if err != nil {
		t.Fatal(err)
	}
	// SEARCH BODY goes through the full-text table, which the copy filled.
	var indexed int
	if err := dst.rdb.QueryRow("SELECT count(*) FROM body_text WHERE body LIKE '%zanzibar%'").Scan(&indexed); err != nil || indexed != 1 {
		t.Errorf("body_text rows with zanzibar = %d, %v; want 1 (alice and bob share the body)", indexed, err)
	}
	uids, err := dst.Search(ctx, alice.Mailbox, &SearchCriteria{Body: []string{"Zanzibar"}})
	if err != nil || !slices.Equal(uids, []UID{3}) {
		t.Errorf("Search(BODY Zanzibar) on the copy = %v, %v; want [3]", uids, err)
	}

	// New writes continue the copied counters: the next UID, a body id
	// and a push subscription id above every copied one, and the triggers
	// count again.
	before, err := dst.Status(ctx, alice.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	delivered, err := dst.Deliver(ctx, testMessage(99), []Recipient{alice})
	if err != nil || len(delivered) != 1 || delivered[0] != before.UIDNext {
		t.Fatalf("Deliver on the copy = %v, %v; want UID %d", delivered, err, before.UIDNext)
	}
	after, err := dst.Status(ctx, alice.Mailbox)
	if err != nil || after.Messages != before.Messages+1 || after.HighestModSeq <= before.HighestModSeq || after.UIDNext != before.UIDNext+1 {
		t.Errorf("Status after a delivery = %+v, %v; before %+v", after, err, before)
	}
	var newBody int64
	if err := dst.rdb.QueryRow("SELECT max(id) FROM bodies").Scan(&newBody); err != nil || newBody <= maxBody {
		t.Errorf("new body id = %d, %v; want above %d", newBody, err, maxBody)
	}
	st, err := dst.AccountState(ctx, alice.User)
	if err != nil || st.Email <= want.State["alice@localhost"].Email {
		t.Errorf("AccountState after a delivery = %+v, %v; want Email above %d", st, err, want.State["alice@localhost"].Email)
	}
	id, err := dst.CreatePushSubscription(ctx, PushSubscription{User: alice.User, URL: "https://push.example/y", Expires: time.Now().Add(time.Hour)})
	if err != nil || id <= maxPush {
		t.Errorf("CreatePushSubscription on the copy = %d, %v; want an id above %d", id, err, maxPush)
	}

	if _, err := CopyStore(ctx, path, target, nil); !errors.Is(err, ErrTargetNotEmpty) {
		t.Errorf("second CopyStore() = %v, want ErrTargetNotEmpty", err)
	}
}

func TestCopyStoreFailureLeavesTargetEmpty(t *testing.T) {
	t.Parallel()
	target := pgtest.New(t)
	ctx := t.Context()
	path := buildCopySource(t)
	for _, table := range []string{"messages", "body_text"} {
		injected := errors.New("injected failure")
		_, err := copyStore(ctx, path, target, nil, func(name string, _ func(string) error) error {
			if name == table {
				return injected
			}
			return nil
		})
		if !errors.Is(err, injected) {
			t.Fatalf("copyStore() failing after %s = %v, want the injected failure", table, err)
		}
		dst := openStoreAt(t, target, Options{})
		for _, tb := range []string{"users", "mailboxes", "bodies", "messages", "body_text"} {
			if n := countRows(t, dst, tb); n != 0 {
				t.Errorf("after a copy failed at %s: %s has %d rows, want 0", table, tb, n)
			}
		}
		if err := dst.Close(); err != nil {
			t.Fatal(err)
		}
	}
	// The triggers came back with the rollback: a copy now works, and a
	// delivery counts.
	if _, err := CopyStore(ctx, path, target, nil); err != nil {
		t.Fatalf("CopyStore() after failed copies = %v", err)
	}
	dst := openStoreAt(t, target, Options{})
	r, err := dst.Resolve(ctx, "carol@localhost")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := dst.Deliver(ctx, testMessage(1), []Recipient{r}); err != nil {
		t.Fatal(err)
	}
	if q, err := dst.Quota(ctx, r.User); err != nil || q.MessagesUsed != 1 {
		t.Errorf("Quota after a delivery on the copy = %+v, %v; want 1 message used", q, err)
	}
}

// TestCopyStoreVerifies changes a row in the target after its table is
// copied: the verification finds each change, and nothing is committed.
func TestCopyStoreVerifies(t *testing.T) {
	t.Parallel()
	target := pgtest.New(t)
	ctx := t.Context()
	path := buildCopySource(t)
	for _, c := range []struct{ table, change, want string }{
		{"messages", "UPDATE messages SET flags = flags | 4 WHERE uid = 1", "messages: mailbox"},
		{"messages", "UPDATE messages SET modseq = modseq + 1 WHERE uid = 2", "messages: mailbox"},
		{"bodies", "UPDATE bodies SET raw = raw || '\\x00'::bytea WHERE id = (SELECT min(id) FROM bodies)", "bodies: the rows differ"},
		{"mailboxes", "UPDATE mailboxes SET uidnext = uidnext - 1 WHERE id = (SELECT min(id) FROM mailboxes)", "mailboxes: the rows differ"},
		{"account_changes", "DELETE FROM account_changes WHERE changed = (SELECT max(changed) FROM account_changes)", "account_changes: the target has"},
		{"body_text", "UPDATE body_text SET body = 'x' WHERE id = (SELECT min(id) FROM body_text)", "body_text: the rows differ"},
	} {
		_, err := copyStore(ctx, path, target, nil, func(name string, exec func(string) error) error {
			if name == c.table {
				return exec(c.change)
			}
			return nil
		})
		if !errors.Is(err, ErrCopyMismatch) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("copyStore() with %q = %v, want ErrCopyMismatch naming %q", c.change, err, c.want)
		}
	}
	dst := openStoreAt(t, target, Options{})
	if n := countRows(t, dst, "users"); n != 0 {
		t.Errorf("users after copies that did not verify = %d, want 0", n)
	}
}

func TestCopyStoreRefusesBadLocations(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	missing := filepath.Join(t.TempDir(), "missing.db")
	for _, c := range []struct{ name, from, to string }{
		{"missing source", missing, "postgres://127.0.0.1:1/x"},
		{"postgres source", "postgres://127.0.0.1:1/x", "postgres://127.0.0.1:1/y"},
		{"sqlite target", missing, filepath.Join(t.TempDir(), "t.db")},
	} {
		if _, err := CopyStore(ctx, c.from, c.to, nil); err == nil {
			t.Errorf("%s: CopyStore(%s, %s) succeeded", c.name, c.from, c.to)
		} else {
			t.Logf("%s: %v", c.name, fmt.Sprint(err))
		}
	}
}
