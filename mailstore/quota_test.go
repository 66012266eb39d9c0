package mailstore

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// undoSchema9 turns a file written at schema 9 back into one of schema 8:
// quotas, usage counters and annotations go.
const undoSchema9 = `
DROP TRIGGER mailboxes_usage;
DROP TRIGGER mailboxes_delete_usage;
DROP TABLE metadata;
ALTER TABLE users DROP COLUMN quota_storage;
ALTER TABLE users DROP COLUMN quota_messages;
ALTER TABLE users DROP COLUMN used_storage;
ALTER TABLE users DROP COLUMN used_messages;
`

func quotaOf(t testing.TB, s *Store, u UserID) Quota {
	t.Helper()
	q, err := s.Quota(context.Background(), u)
	if err != nil {
		t.Fatalf("Quota(%d) = %v", u, err)
	}
	return q
}

// sizedMessage is a message of exactly n bytes (n ≥ 64).
func sizedMessage(n int) []byte {
	head := "From: a@example.org\r\nSubject: q\r\n\r\n"
	return []byte(head + strings.Repeat("x", n-len(head)-2) + "\r\n")
}

// quotaModel is what a user's usage must be: the sizes of their
// messages, by mailbox and UID.
type quotaModel map[MailboxID]map[UID]int64

func (m quotaModel) usage() (bytes, msgs int64) {
	for _, mb := range m {
		for _, n := range mb {
			bytes += n
			msgs++
		}
	}
	return bytes, msgs
}

// TestQuotaRandomized runs random deliveries, appends, copies, moves,
// expunges, mailbox deletions and limit changes for one user against a
// model of their usage: every write that adds mail must succeed exactly
// when the model says it fits, store nothing when it does not, and the
// store's usage must equal the model's after every step.
func TestQuotaRandomized(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{})
	bob := addUser(t, s, "bob@localhost")
	alice := addUser(t, s, "alice@localhost")
	r := rand.New(rand.NewPCG(9208, 1))

	names := []string{"INBOX", "A", "B"}
	ids := map[string]MailboxID{"INBOX": alice.Mailbox}
	model := quotaModel{alice.Mailbox: {}}
	ensure := func(name string) MailboxID {
		if id, ok := ids[name]; ok {
			return id
		}
		mb, err := s.CreateMailbox(ctx, alice.User, name, "")
		if err != nil {
			t.Fatalf("CreateMailbox(%s) = %v", name, err)
		}
		ids[name] = mb.ID
		model[mb.ID] = map[UID]int64{}
		return mb.ID
	}
	var limitBytes, limitMsgs int64
	fits := func(addBytes, addMsgs int64) bool {
		b, n := model.usage()
		return (limitBytes == 0 || b+addBytes <= limitBytes) && (limitMsgs == 0 || n+addMsgs <= limitMsgs)
	}
	pick := func(mb MailboxID) (UIDSet, []UID) {
		var uids []UID
		for _, u := range slices.Sorted(maps.Keys(model[mb])) {
			if r.IntN(2) == 0 {
				uids = append(uids, u)
			}
		}
		return UIDSetOf(uids...), uids
	}
	wantOutcome := func(step int, what string, err error, fit bool) bool {
		t.Helper()
		switch {
		case fit && err != nil:
			t.Fatalf("step %d: %s = %v; want success (usage %v, limits %d bytes %d messages)", step, what, err, quotaOf(t, s, alice.User), limitBytes, limitMsgs)
		case !fit && !errors.Is(err, ErrOverQuota):
			t.Fatalf("step %d: %s = %v; want ErrOverQuota", step, what, err)
		}
		return fit
	}
	refused := 0
	for step := range 400 {
		k := r.IntN(10)
		if os.Getenv("QUOTA_DEBUG") != "" {
			t.Logf("step %d: op %d", step, k)
		}
		switch {
		case k < 3: // deliver to alice (and bob, all or none)
			raw := sizedMessage(100 + r.IntN(900))
			rcpts := []Recipient{alice}
			if r.IntN(3) == 0 {
				rcpts = append(rcpts, bob)
			}
			fit := fits(int64(len(raw)), 1)
			uids, err := s.Deliver(ctx, raw, rcpts)
			if wantOutcome(step, "Deliver", err, fit) {
				model[alice.Mailbox][uids[0]] = int64(len(raw))
			} else {
				refused++
			}
		case k < 5: // append to a mailbox
			mb := ensure(names[r.IntN(len(names))])
			raw := sizedMessage(100 + r.IntN(900))
			fit := fits(int64(len(raw)), 1)
			res, err := s.Append(ctx, mb, raw, nil, time.Time{}, 0)
			if wantOutcome(step, "Append", err, fit) {
				model[mb][res.UID] = int64(len(raw))
			} else {
				refused++
			}
		case k < 6, k < 7: // copy or move between mailboxes
			src, dst := ensure(names[r.IntN(len(names))]), ensure(names[r.IntN(len(names))])
			set, uids := pick(src)
			if len(uids) == 0 {
				continue
			}
			var add int64
			for _, u := range uids {
				add += model[src][u]
			}
			move := k == 6
			var res CopyResult
			var err error
			fit := true
			if move {
				res, err = s.Move(ctx, src, set, dst, 0)
			} else {
				fit = fits(add, int64(len(uids)))
				res, err = s.Copy(ctx, src, set, dst, 0)
			}
			if !wantOutcome(step, "Copy/Move", err, fit) {
				refused++
				continue
			}
			for i, u := range res.Source {
				model[dst][res.Dest[i]] = model[src][u]
			}
			if move {
				for _, u := range res.Source {
					delete(model[src], u)
				}
			}
		case k < 8: // expunge some
			mb := ensure(names[r.IntN(len(names))])
			set, uids := pick(mb)
			if len(uids) == 0 {
				continue
			}
			if _, err := s.StoreFlags(ctx, mb, set, FlagsAdd, []string{FlagDeleted}, 0); err != nil {
				t.Fatalf("step %d: StoreFlags = %v", step, err)
			}
			if _, err := s.Expunge(ctx, mb, set, 0); err != nil {
				t.Fatalf("step %d: Expunge = %v", step, err)
			}
			for _, u := range uids {
				delete(model[mb], u)
			}
		case k < 9: // delete a mailbox (deletes are never refused)
			name := names[1+r.IntN(2)]
			if id, ok := ids[name]; ok {
				if err := s.DeleteMailbox(ctx, alice.User, name); err != nil {
					t.Fatalf("step %d: DeleteMailbox = %v", step, err)
				}
				delete(ids, name)
				delete(model, id)
			}
		default: // change the limits, sometimes below the usage
			limitBytes = int64(r.IntN(4)) * 2000
			limitMsgs = int64(r.IntN(3)) * 4
			if err := s.SetQuota(ctx, "alice@localhost", limitBytes, limitMsgs); err != nil {
				t.Fatal(err)
			}
		}
		q := quotaOf(t, s, alice.User)
		b, n := model.usage()
		if q.StorageUsed != b || q.MessagesUsed != n || q.StorageLimit != limitBytes || q.MessageLimit != limitMsgs {
			t.Fatalf("step %d: Quota = %+v; want usage %d bytes %d messages, limits %d %d", step, q, b, n, limitBytes, limitMsgs)
		}
		if bq := quotaOf(t, s, bob.User); bq.MessagesUsed != int64(len(storedBodies(t, s, bob.Mailbox))) {
			t.Fatalf("step %d: bob's usage %+v does not match his INBOX", step, bq)
		}
	}
	if refused == 0 {
		t.Error("no write was refused: the limits were never reached")
	}
}

// TestQuotaDeleteUserAndMailbox: deleting a mailbox takes its messages
// off the usage at once; a user's quota row goes with the user.
func TestQuotaDeleteUserAndMailbox(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{})
	a := addUser(t, s, "a@localhost")
	mb, err := s.CreateMailbox(ctx, a.User, "Lists", "")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if _, err := s.Append(ctx, mb.ID, sizedMessage(200), nil, time.Time{}, 0); err != nil {
			t.Fatalf("Append %d = %v", i, err)
		}
	}
	if _, err := s.Deliver(ctx, sizedMessage(300), []Recipient{a}); err != nil {
		t.Fatal(err)
	}
	if q := quotaOf(t, s, a.User); q.StorageUsed != 900 || q.MessagesUsed != 4 {
		t.Fatalf("Quota = %+v, want 900 bytes, 4 messages", q)
	}
	if err := s.DeleteMailbox(ctx, a.User, "Lists"); err != nil {
		t.Fatal(err)
	}
	if q := quotaOf(t, s, a.User); q.StorageUsed != 300 || q.MessagesUsed != 1 {
		t.Fatalf("after DeleteMailbox: Quota = %+v, want 300 bytes, 1 message", q)
	}
	if err := s.DeleteUser(ctx, "a@localhost"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Quota(ctx, a.User); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("Quota of a deleted user = %v, want ErrNoSuchUser", err)
	}
	if err := s.SetQuota(ctx, "a@localhost", 1, 1); !errors.Is(err, ErrNoSuchUser) {
		t.Fatalf("SetQuota of a deleted user = %v, want ErrNoSuchUser", err)
	}
}

// TestQuotaMultiRecipient: one recipient over quota fails the whole
// delivery (Deliver is all or none); the quota Resolve reads with each
// recipient tells which one.
func TestQuotaMultiRecipient(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{})
	a, b := addUser(t, s, "a@localhost"), addUser(t, s, "b@localhost")
	if err := s.SetQuota(ctx, "b@localhost", 0, 1); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Deliver(ctx, sizedMessage(100), []Recipient{a, b}); err != nil {
		t.Fatalf("first Deliver = %v", err)
	}
	if _, err := s.Deliver(ctx, sizedMessage(100), []Recipient{a, b}); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("second Deliver = %v, want ErrOverQuota", err)
	}
	if q := quotaOf(t, s, a.User); q.MessagesUsed != 1 {
		t.Fatalf("a's usage after a refused delivery = %+v, want 1 message", q)
	}
	for _, tc := range []struct {
		addr string
		size int64
		want error
	}{{"a@localhost", 100, nil}, {"b@localhost", 0, ErrOverQuota}} {
		r, err := s.Resolve(ctx, tc.addr)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.Quota.Admits(tc.size); !errors.Is(err, tc.want) {
			t.Errorf("Resolve(%s).Quota.Admits(%d) = %v, want %v", tc.addr, tc.size, err, tc.want)
		}
	}
}

// TestMigrationQuotaUsage: a store written before schema 9 gets its
// users' usage summed once, at the upgrade, from their mailboxes.
func TestMigrationQuotaUsage(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	path := filepath.Join(t.TempDir(), "v6.db")
	raw, err := os.ReadFile("testdata/v6store/v6.db")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
	js, err := os.ReadFile("testdata/v6store/v6.json")
	if err != nil {
		t.Fatal(err)
	}
	var want struct {
		Users []struct {
			Address   string `json:"address"`
			Mailboxes []struct {
				Messages []struct {
					Size int64 `json:"size"`
				} `json:"messages"`
			} `json:"mailboxes"`
		} `json:"users"`
	}
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	s := openStoreAt(t, path, Options{})
	checked := 0
	for _, u := range want.Users {
		var bytes, msgs int64
		for _, mb := range u.Mailboxes {
			for _, m := range mb.Messages {
				bytes += m.Size
				msgs++
			}
		}
		su, err := s.User(ctx, u.Address)
		if err != nil {
			t.Fatal(err)
		}
		q := quotaOf(t, s, su.ID)
		if q.StorageUsed != bytes || q.MessagesUsed != msgs || q.StorageLimit != 0 || q.MessageLimit != 0 {
			t.Errorf("%s: Quota after migration = %+v, want %d bytes, %d messages, no limits", u.Address, q, bytes, msgs)
		}
		if msgs > 0 {
			checked++
		}
	}
	if checked == 0 {
		t.Fatal("fixture has no messages")
	}
}
