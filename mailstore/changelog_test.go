package mailstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pushmail/notify"
)

// undoSchema7 turns a file written at schema 7 back into one of schema 6:
// the change log's tombstones and counters go.
const undoSchema7 = `
DROP TABLE vanished;
ALTER TABLE mailboxes DROP COLUMN vanished_count;
ALTER TABLE mailboxes DROP COLUMN vanished_horizon;
`

// changes calls ChangesSince and fails the test on an error.
func changes(t testing.TB, s *Store, mb MailboxID, set UIDSet, since uint64) Changes {
	t.Helper()
	c, err := s.ChangesSince(context.Background(), mb, set, since)
	if err != nil {
		t.Fatalf("ChangesSince(%d, %s, %d) = %v", mb, fmtSet(set), since, err)
	}
	return c
}

func changedUIDs(c Changes) []UID {
	var l []UID
	for _, u := range c.Changed {
		l = append(l, u.UID)
	}
	return l
}

// checkVanishedCounts checks that every mailbox's vanished_count is the
// number of its tombstones, and that no tombstone is at or below its
// mailbox's horizon (pruning drops whole modseqs).
func checkVanishedCounts(ctx context.Context, s *Store) error {
	var bad int
	err := s.rdb.QueryRowContext(ctx, `SELECT COUNT(*) FROM mailboxes m WHERE vanished_count !=
		(SELECT COUNT(*) FROM vanished v WHERE v.mailbox_id = m.id)
		OR EXISTS (SELECT 1 FROM vanished v WHERE v.mailbox_id = m.id AND v.modseq <= m.vanished_horizon)
		OR vanished_horizon > highest_modseq`).Scan(&bad)
	if err != nil {
		return fmt.Errorf("check tombstone counts: %w", err)
	}
	if bad != 0 {
		return fmt.Errorf("%d mailboxes whose vanished_count is not their number of tombstones, or with tombstones at or below their horizon", bad)
	}
	return nil
}

// TestChangesSince follows one mailbox through every kind of change and
// asks what changed since each point: new and reflagged messages with
// their flags and modseqs, expunged and moved-out UIDs, within a UID set
// or not, and Messages with FetchOptions.ChangedSince agreeing.
func TestChangesSince(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	inbox := r.Mailbox
	deliverN(t, s, r, 5) // UIDs 1-5
	m0 := status(t, s, inbox).HighestModSeq
	if _, err := s.StoreFlags(ctx, inbox, UIDSetOf(2), FlagsAdd, []string{FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	m1 := status(t, s, inbox).HighestModSeq
	if _, err := s.StoreFlags(ctx, inbox, UIDSetOf(3, 4), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	m2 := status(t, s, inbox).HighestModSeq
	if _, err := s.Expunge(ctx, inbox, AllUIDs(), 0); err != nil {
		t.Fatal(err)
	}
	m3 := status(t, s, inbox).HighestModSeq
	if _, err := s.Append(ctx, inbox, testMessage(6), []string{"$Work"}, time.Time{}, 0); err != nil { // UID 6
		t.Fatal(err)
	}
	m4 := status(t, s, inbox).HighestModSeq
	other, err := s.CreateMailbox(ctx, r.User, "Other", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx, inbox, UIDSetOf(1), other.ID, 0); err != nil {
		t.Fatal(err)
	}
	m5 := status(t, s, inbox).HighestModSeq
	if !(m0 < m1 && m1 < m2 && m2 < m3 && m3 < m4 && m4 < m5) {
		t.Fatalf("highest modseqs %d %d %d %d %d %d: want each change to raise it", m0, m1, m2, m3, m4, m5)
	}

	for _, tc := range []struct {
		name         string
		set          UIDSet
		since        uint64
		changed      []UID
		changedSeqs  []uint64
		vanished     []UID
		wantNoChange bool
	}{
		{name: "since 0: every message, every expunge", set: AllUIDs(), since: 0,
			changed: []UID{2, 5, 6}, changedSeqs: []uint64{m1, m0, m4}, vanished: []UID{1, 3, 4}},
		{name: "after the deliveries", set: AllUIDs(), since: m0,
			changed: []UID{2, 6}, changedSeqs: []uint64{m1, m4}, vanished: []UID{1, 3, 4}},
		{name: "after the \\Deleted store", set: AllUIDs(), since: m2,
			changed: []UID{6}, changedSeqs: []uint64{m4}, vanished: []UID{1, 3, 4}},
		{name: "after the expunge", set: AllUIDs(), since: m3,
			changed: []UID{6}, changedSeqs: []uint64{m4}, vanished: []UID{1}},
		{name: "after the append", set: AllUIDs(), since: m4, vanished: []UID{1}},
		{name: "at the highest", set: AllUIDs(), since: m5},
		{name: "beyond the highest", set: AllUIDs(), since: m5 + 100},
		{name: "a UID set", set: UIDSet{{4, 6}}, since: 0,
			changed: []UID{5, 6}, changedSeqs: []uint64{m0, m4}, vanished: []UID{4}},
		{name: "sparse set", set: UIDSetOf(1, 6), since: m0,
			changed: []UID{6}, changedSeqs: []uint64{m4}, vanished: []UID{1}},
		{name: "empty set: nothing", set: UIDSet{}, since: 0},
		{name: "nil set: nothing", set: nil, since: 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := changes(t, s, inbox, tc.set, tc.since)
			if c.HighestModSeq != m5 || c.Horizon != 0 || !c.VanishedKnown {
				t.Errorf("HighestModSeq, Horizon, VanishedKnown = %d, %d, %v; want %d, 0, true", c.HighestModSeq, c.Horizon, c.VanishedKnown, m5)
			}
			if got := changedUIDs(c); !slices.Equal(got, tc.changed) {
				t.Errorf("Changed UIDs = %v, want %v", got, tc.changed)
			}
			for i, u := range c.Changed {
				if i < len(tc.changedSeqs) && u.ModSeq != tc.changedSeqs[i] {
					t.Errorf("UID %d: MODSEQ %d, want %d", u.UID, u.ModSeq, tc.changedSeqs[i])
				}
			}
			if !slices.Equal(c.Vanished, tc.vanished) {
				t.Errorf("Vanished = %v, want %v", c.Vanished, tc.vanished)
			}
			// FETCH … (CHANGEDSINCE) through Messages finds the same.
			var fetched []UID
			err := s.Messages(ctx, inbox, tc.set, FetchOptions{ChangedSince: tc.since, Body: true}, func(m *Message) error {
				fetched = append(fetched, m.UID)
				if len(m.Raw) == 0 {
					return fmt.Errorf("UID %d: no body", m.UID)
				}
				return nil
			})
			if err != nil || !slices.Equal(fetched, tc.changed) {
				t.Errorf("Messages(ChangedSince %d) = %v, %v; want %v", tc.since, fetched, err, tc.changed)
			}
		})
	}
	c := changes(t, s, inbox, AllUIDs(), m0)
	if want := []string{FlagSeen}; !slices.Equal(c.Changed[0].Flags, want) {
		t.Errorf("UID 2's flags = %q, want %q", c.Changed[0].Flags, want)
	}
	if want := []string{"$Work"}; !slices.Equal(c.Changed[1].Flags, want) {
		t.Errorf("UID 6's flags = %q, want %q", c.Changed[1].Flags, want)
	}
	// The moved message arrived in Other as a new message there.
	if c := changes(t, s, other.ID, AllUIDs(), 0); len(c.Changed) != 1 || c.Changed[0].UID != 1 || len(c.Vanished) != 0 {
		t.Errorf("Other: ChangesSince(0) = %+v; want UID 1 changed, nothing vanished", c)
	}
	if _, err := s.ChangesSince(ctx, bogusMailbox, AllUIDs(), 0); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("ChangesSince(no such mailbox) = %v, want ErrNoSuchMailbox", err)
	}
	if err := checkVanishedCounts(ctx, s); err != nil {
		t.Error(err)
	}
}

// TestMailboxLevelChanges: creating, renaming and deleting mailboxes and
// claiming \Recent take no modseq (doc.go); a renamed mailbox keeps its
// change log; a deleted one's tombstones go with it.
func TestMailboxLevelChanges(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	mb, err := s.CreateMailbox(ctx, r.User, "A", "")
	if err != nil {
		t.Fatal(err)
	}
	deliverN(t, s, r, 3)
	if _, err := s.Move(ctx, r.Mailbox, AllUIDs(), mb.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, mb.ID, UIDSetOf(2), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, mb.ID, AllUIDs(), 0); err != nil {
		t.Fatal(err)
	}
	before := changes(t, s, mb.ID, AllUIDs(), 0)
	if _, err := s.ClaimRecent(ctx, mb.ID, 3); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, r.User, "A", true); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, r.User, "A", "B"); err != nil {
		t.Fatal(err)
	}
	after := changes(t, s, mb.ID, AllUIDs(), 0)
	if fmt.Sprint(after) != fmt.Sprint(before) {
		t.Errorf("after ClaimRecent, SUBSCRIBE and RENAME: %+v; want unchanged %+v", after, before)
	}
	if !slices.Equal(after.Vanished, []UID{2}) {
		t.Errorf("Vanished = %v, want [2]", after.Vanished)
	}
	// INBOX's messages moved out: its log says so.
	if c := changes(t, s, r.Mailbox, AllUIDs(), 0); !slices.Equal(c.Vanished, []UID{1, 2, 3}) {
		t.Errorf("INBOX Vanished = %v, want [1 2 3]", c.Vanished)
	}
	if err := s.DeleteMailbox(ctx, r.User, "B"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := s.rdb.QueryRow("SELECT COUNT(*) FROM vanished WHERE mailbox_id = ?", mb.ID).Scan(&n); err != nil || n != 0 {
		t.Errorf("tombstones of a deleted mailbox: %d, %v; want 0", n, err)
	}
	if _, err := s.ChangesSince(ctx, mb.ID, AllUIDs(), 0); !errors.Is(err, ErrNoSuchMailbox) {
		t.Errorf("ChangesSince(deleted mailbox) = %v, want ErrNoSuchMailbox", err)
	}
	// RENAME INBOX moves the messages out: expunges, with tombstones.
	deliverN(t, s, r, 2) // UIDs 4, 5
	if err := s.RenameMailbox(ctx, r.User, "INBOX", "Old"); err != nil {
		t.Fatal(err)
	}
	if c := changes(t, s, r.Mailbox, AllUIDs(), 0); !slices.Equal(c.Vanished, []UID{1, 2, 3, 4, 5}) || len(c.Changed) != 0 {
		t.Errorf("INBOX after RENAME INBOX: %+v; want 1:5 vanished, nothing left", c)
	}
	if err := checkVanishedCounts(ctx, s); err != nil {
		t.Error(err)
	}
}

// TestStoreFlagsUnchangedSince: RFC 7162 §3.1.3. A message changed after
// the client's modseq is left alone and reported; the others are stored
// as StoreFlags would; UNCHANGEDSINCE 0 fails every message; a store
// that changes nothing takes no modseq.
func TestStoreFlagsUnchangedSince(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	deliverN(t, s, r, 4)
	sub := s.Hub().Subscribe(int64(r.Mailbox))
	defer sub.Close()
	seen := status(t, s, r.Mailbox).HighestModSeq // the client's view
	if _, err := s.StoreFlags(ctx, r.Mailbox, UIDSetOf(2), FlagsAdd, []string{FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	sub.Take()

	updates, modified, err := s.StoreFlagsUnchangedSince(ctx, r.Mailbox, AllUIDs(), FlagsAdd, []string{FlagFlagged}, seen, 7)
	if err != nil {
		t.Fatal(err)
	}
	high := status(t, s, r.Mailbox).HighestModSeq
	if !slices.Equal(modified, []UID{2}) {
		t.Errorf("modified = %v, want [2]", modified)
	}
	var got []UID
	for _, u := range updates {
		got = append(got, u.UID)
		if u.ModSeq != high || !slices.Equal(u.Flags, []string{FlagFlagged}) {
			t.Errorf("update %+v; want flags [\\Flagged], MODSEQ %d", u, high)
		}
	}
	if !slices.Equal(got, []UID{1, 3, 4}) {
		t.Errorf("updated UIDs = %v, want [1 3 4]", got)
	}
	evs, _ := sub.Take()
	if len(evs) != 1 || evs[0].Kind != notify.FlagsChanged || len(evs[0].Flags) != 3 || evs[0].Origin != 7 || evs[0].ModSeq != high {
		t.Errorf("events = %+v; want one FlagsChanged of 3 messages at %d, origin 7", evs, high)
	}
	var two []string
	s.Messages(ctx, r.Mailbox, UIDSetOf(2), FetchOptions{}, func(m *Message) error { two = m.Flags; return nil })
	if !slices.Equal(two, []string{FlagSeen}) {
		t.Errorf("UID 2's flags = %q: the failed message was changed", two)
	}

	// 0 fails every message (§3.1.3), and changes nothing.
	updates, modified, err = s.StoreFlagsUnchangedSince(ctx, r.Mailbox, AllUIDs(), FlagsSet, nil, 0, 0)
	if err != nil || len(updates) != 0 || !slices.Equal(modified, []UID{1, 2, 3, 4}) {
		t.Errorf("UNCHANGEDSINCE 0 = %+v, %v, %v; want none updated, all modified", updates, modified, err)
	}
	// Passing, but changing nothing: no new modseq, no event.
	updates, modified, err = s.StoreFlagsUnchangedSince(ctx, r.Mailbox, UIDSetOf(1, 3), FlagsAdd, []string{FlagFlagged}, high, 0)
	if err != nil || len(modified) != 0 || len(updates) != 2 || updates[0].ModSeq != high {
		t.Errorf("no-op conditional store = %+v, %v, %v; want 2 unchanged updates at %d", updates, modified, err, high)
	}
	if h := status(t, s, r.Mailbox).HighestModSeq; h != high {
		t.Errorf("HIGHESTMODSEQ = %d after stores that changed nothing, want %d", h, high)
	}
	if evs, _ := sub.Take(); len(evs) != 0 {
		t.Errorf("events after stores that changed nothing: %+v", evs)
	}
	// An empty set and a mailbox that does not exist change nothing.
	if u, m, err := s.StoreFlagsUnchangedSince(ctx, r.Mailbox, UIDSet{}, FlagsSet, nil, high, 0); err != nil || len(u)+len(m) != 0 {
		t.Errorf("empty set = %v, %v, %v", u, m, err)
	}
	if _, _, err := s.StoreFlagsUnchangedSince(ctx, r.Mailbox, AllUIDs(), FlagsAdd, []string{`\Recent`}, high, 0); !errors.Is(err, ErrInvalidFlag) {
		t.Errorf("\\Recent: %v, want ErrInvalidFlag", err)
	}
}

// TestStoreFlagsUnchangedSinceRace: two sessions that saw the same
// modseq store different flags on the same message with UNCHANGEDSINCE
// at once; exactly one succeeds, and the other is told MODIFIED (RFC
// 7162 §3.1.3, the reason the modifier exists).
func TestStoreFlagsUnchangedSinceRace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	deliverN(t, s, r, 1)
	for round := range 50 {
		seen := status(t, s, r.Mailbox).HighestModSeq
		var wg sync.WaitGroup
		var won, lost atomic.Int32
		for i := range 2 {
			wg.Go(func() {
				kw := fmt.Sprintf("$r%d-s%d", round, i)
				updates, modified, err := s.StoreFlagsUnchangedSince(ctx, r.Mailbox, UIDSetOf(1), FlagsAdd, []string{kw}, seen, 0)
				switch {
				case err != nil:
					t.Errorf("session %d: %v", i, err)
				case len(updates) == 1 && len(modified) == 0:
					won.Add(1)
				case len(updates) == 0 && slices.Equal(modified, []UID{1}):
					lost.Add(1)
				default:
					t.Errorf("session %d: updates %+v, modified %v", i, updates, modified)
				}
			})
		}
		wg.Wait()
		if won.Load() != 1 || lost.Load() != 1 {
			t.Fatalf("round %d: %d won, %d lost; want 1 and 1", round, won.Load(), lost.Load())
		}
	}
}

// TestVanishedHorizon: tombstones are bounded by MaxVanished. The expunge
// that passes the bound drops the oldest down to three quarters of it,
// whole modseqs at a time, and the horizon rises to the newest dropped:
// ChangesSince below it says the vanished list is not known, at or above
// it answers in full.
func TestVanishedHorizon(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s := openTestStore(t, Options{MaxVanished: 8}) // keeps 6 after a prune
	r := addUser(t, s, "u@localhost")
	deliverN(t, s, r, 20)
	if _, err := s.StoreFlags(ctx, r.Mailbox, AllUIDs(), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	expunge := func(set UIDSet) uint64 {
		t.Helper()
		if _, err := s.Expunge(ctx, r.Mailbox, set, 0); err != nil {
			t.Fatal(err)
		}
		if err := checkVanishedCounts(ctx, s); err != nil {
			t.Fatal(err)
		}
		return status(t, s, r.Mailbox).HighestModSeq
	}
	var at [21]uint64 // at[u]: the modseq UID u was expunged at
	for u := UID(1); u <= 8; u++ {
		at[u] = expunge(UIDSetOf(u))
	}
	if c := changes(t, s, r.Mailbox, AllUIDs(), 0); !c.VanishedKnown || c.Horizon != 0 || len(c.Vanished) != 8 {
		t.Fatalf("at the bound: %+v; want 8 vanished, horizon 0", c)
	}
	at[9] = expunge(UIDSetOf(9)) // 9 > 8: drop 3, keep 6
	c := changes(t, s, r.Mailbox, AllUIDs(), 0)
	if c.VanishedKnown || len(c.Vanished) != 0 || c.Horizon != at[3] {
		t.Errorf("below the horizon: %+v; want VanishedKnown false, no UIDs, horizon %d", c, at[3])
	}
	if c := changes(t, s, r.Mailbox, AllUIDs(), at[3]-1); c.VanishedKnown {
		t.Errorf("ChangesSince(horizon-1) = %+v; want VanishedKnown false", c)
	}
	if c := changes(t, s, r.Mailbox, AllUIDs(), at[3]); !c.VanishedKnown || !slices.Equal(c.Vanished, []UID{4, 5, 6, 7, 8, 9}) {
		t.Errorf("ChangesSince(horizon) = %+v; want 4:9 vanished", c)
	}
	// Changed answers at any modseq: it needs no tombstone.
	if c := changes(t, s, r.Mailbox, AllUIDs(), 0); len(c.Changed) != 11 {
		t.Errorf("Changed below the horizon: %d messages, want 11", len(c.Changed))
	}
	// One expunge of 11 at one modseq: the 6 kept and the 11 new are 17;
	// dropping 11 reaches into the new expunge's modseq, so all go.
	last := expunge(UIDSet{{10, 20}})
	c = changes(t, s, r.Mailbox, AllUIDs(), last)
	if !c.VanishedKnown || c.Horizon != last || len(c.Vanished) != 0 {
		t.Errorf("after a large expunge: %+v; want horizon %d, known, none", c, last)
	}
	if c := changes(t, s, r.Mailbox, AllUIDs(), last-1); c.VanishedKnown {
		t.Errorf("ChangesSince(%d) = %+v; want not known", last-1, c)
	}
	// A mailbox's horizon is its own.
	other, err := s.CreateMailbox(ctx, r.User, "Other", "")
	if err != nil {
		t.Fatal(err)
	}
	if c := changes(t, s, other.ID, AllUIDs(), 0); !c.VanishedKnown || c.Horizon != 0 {
		t.Errorf("a new mailbox: %+v; want horizon 0", c)
	}
}

// TestMigrationChangeLog opens testdata/v6store/v6.db, a store written by
// schema version 6's code (see gen.go there), and checks that migration 7
// keeps every message of every mailbox, with its UID, flags, modseq,
// size, date and body (as v6.json lists them), and sets the horizons: a
// mailbox that lost messages before the change log existed cannot say
// which since any earlier modseq, one that never lost any can. Expunges
// after the migration are answered.
func TestMigrationChangeLog(t *testing.T) {
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
	type snapMessage struct {
		UID    UID      `json:"uid"`
		Flags  []string `json:"flags"`
		ModSeq uint64   `json:"modseq"`
		Size   int64    `json:"size"`
		Date   int64    `json:"date"`
		SHA256 string   `json:"sha256"`
	}
	var want struct {
		Users []struct {
			Address   string `json:"address"`
			Mailboxes []struct {
				Name          string        `json:"name"`
				UIDValidity   uint32        `json:"uidvalidity"`
				UIDNext       UID           `json:"uidnext"`
				HighestModSeq uint64        `json:"highestmodseq"`
				Messages      []snapMessage `json:"messages"`
			} `json:"mailboxes"`
		} `json:"users"`
	}
	if err := json.Unmarshal(js, &want); err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite3", "file:"+path+"?mode=ro")
	if err != nil {
		t.Fatal(err)
	}
	var version int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != 6 {
		t.Fatalf("fixture user_version = %d, %v; want 6", version, err)
	}
	db.Close()

	s := openStoreAt(t, path, Options{})
	if err := s.rdb.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != schemaVersion {
		t.Errorf("user_version after opening = %d, %v; want %d", version, err, schemaVersion)
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Error(err)
	}
	total := 0
	horizons := map[string]uint64{}
	for _, wu := range want.Users {
		u, err := s.User(ctx, wu.Address)
		if err != nil {
			t.Fatalf("User(%s) = %v", wu.Address, err)
		}
		sts, err := s.MailboxStatuses(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(sts) != len(wu.Mailboxes) {
			t.Fatalf("%s: %d mailboxes, want %d", wu.Address, len(sts), len(wu.Mailboxes))
		}
		for i, wm := range wu.Mailboxes {
			st := sts[i]
			if st.Name != wm.Name || st.UIDValidity != wm.UIDValidity || st.UIDNext != wm.UIDNext || st.HighestModSeq != wm.HighestModSeq {
				t.Errorf("%s %s: name, UIDVALIDITY, UIDNEXT, HIGHESTMODSEQ = %s %d %d %d; want %s %d %d %d", wu.Address, wm.Name,
					st.Name, st.UIDValidity, st.UIDNext, st.HighestModSeq, wm.Name, wm.UIDValidity, wm.UIDNext, wm.HighestModSeq)
			}
			var got []snapMessage
			err := s.Messages(ctx, st.ID, AllUIDs(), FetchOptions{Body: true}, func(m *Message) error {
				sum := sha256.Sum256(m.Raw)
				got = append(got, snapMessage{UID: m.UID, Flags: m.Flags, ModSeq: m.ModSeq, Size: m.Size,
					Date: m.InternalDate.UnixNano(), SHA256: hex.EncodeToString(sum[:])})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if fmt.Sprint(got) != fmt.Sprint(wm.Messages) {
				t.Errorf("%s %s: messages after migration\n%v\nwant\n%v", wu.Address, wm.Name, got, wm.Messages)
			}
			total += len(got)
			c := changes(t, s, st.ID, AllUIDs(), 0)
			horizons[wu.Address+" "+wm.Name] = c.Horizon
			if len(c.Changed) != len(wm.Messages) {
				t.Errorf("%s %s: ChangesSince(0) has %d messages, want %d", wu.Address, wm.Name, len(c.Changed), len(wm.Messages))
			}
		}
	}
	if total != 103 {
		t.Errorf("%d messages in the migrated store, want the fixture's 103", total)
	}
	// alice's INBOX lost messages (expunge, move), Projects/2024 and
	// bob's INBOX never did.
	for name, want := range map[string]uint64{
		"alice@old.test INBOX":         66,
		"alice@old.test Trash":         0,
		"alice@old.test Projects/2024": 0,
		"bob@old.test INBOX":           0,
	} {
		if got := horizons[name]; got != want {
			t.Errorf("%s: horizon %d, want %d", name, got, want)
		}
	}
	alice, err := s.Resolve(ctx, "alice@old.test")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.StoreFlags(ctx, alice.Mailbox, UIDSetOf(13, 14), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, alice.Mailbox, UIDSetOf(13, 14, 15), 0); err != nil {
		t.Fatal(err)
	}
	if c := changes(t, s, alice.Mailbox, AllUIDs(), 66); !c.VanishedKnown || !slices.Equal(c.Vanished, []UID{13, 14}) || len(c.Changed) != 0 {
		t.Errorf("after the migration: ChangesSince(66) = %+v; want 13, 14 vanished, nothing changed", c)
	}
	if c := changes(t, s, alice.Mailbox, AllUIDs(), 65); c.VanishedKnown {
		t.Errorf("ChangesSince(65) = %+v; want not known: older expunges left no tombstone", c)
	}
	if err := checkVanishedCounts(ctx, s); err != nil {
		t.Error(err)
	}
}

// TestChangeLogQueryPlans: the change log's reads search indexes by
// modseq; none scans a mailbox.
func TestChangeLogQueryPlans(t *testing.T) {
	sqliteOnly(t)
	t.Parallel()
	s := openTestStore(t, Options{})
	for _, tc := range []struct {
		query string
		want  string
	}{
		{"SELECT uid, flags, keywords, modseq FROM messages INDEXED BY messages_modseq WHERE mailbox_id = 1 AND modseq > 5 AND uid BETWEEN 1 AND 9 ORDER BY uid",
			"SEARCH messages USING INDEX messages_modseq (mailbox_id=? AND modseq>?)"},
		{"SELECT uid FROM vanished WHERE mailbox_id = 1 AND modseq > 5 AND uid BETWEEN 1 AND 9 ORDER BY uid",
			"SEARCH vanished USING PRIMARY KEY (mailbox_id=? AND modseq>?)"},
		{"SELECT m.uid FROM messages m INDEXED BY messages_modseq JOIN bodies b ON b.id = m.body_id WHERE m.mailbox_id = 1 AND m.uid BETWEEN 1 AND 9 AND m.modseq > 5 ORDER BY m.uid",
			"SEARCH m USING INDEX messages_modseq (mailbox_id=? AND modseq>?)"},
		{"SELECT modseq FROM vanished WHERE mailbox_id = 1 ORDER BY modseq LIMIT 1 OFFSET 5",
			"SEARCH vanished USING PRIMARY KEY (mailbox_id=?)"},
		{"DELETE FROM vanished WHERE mailbox_id = 1 AND modseq <= 5",
			"SEARCH vanished USING PRIMARY KEY (mailbox_id=? AND modseq<?)"},
		// SEARCH MODSEQ (RFC 7162 §3.1.5), as Search spells it.
		{"SELECT m.uid FROM messages m WHERE m.mailbox_id = 1 AND m.modseq >= 5 ORDER BY m.uid",
			"SEARCH m USING COVERING INDEX messages_modseq (mailbox_id=? AND modseq>?)"},
	} {
		plan := queryPlan(t, s, tc.query)
		if !slices.Contains(plan, tc.want) || slices.ContainsFunc(plan, func(d string) bool { return strings.HasPrefix(d, "SCAN") }) {
			t.Errorf("plan of %s:\n%q\nwant %q and no SCAN", tc.query, plan, tc.want)
		}
	}
}

func queryPlan(t *testing.T, s *Store, query string) []string {
	t.Helper()
	rows, err := s.rdb.Query("EXPLAIN QUERY PLAN " + query)
	if err != nil {
		t.Fatalf("EXPLAIN %s: %v", query, err)
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
	return plan
}
