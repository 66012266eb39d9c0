package imapd

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

var (
	vanishedRe = regexp.MustCompile(`^\* VANISHED \(EARLIER\) ([0-9:,]+)$`)
	flagsRe    = regexp.MustCompile(`^\* ([0-9]+) FETCH \(UID ([0-9]+) FLAGS \(([^)]*)\) MODSEQ \(([0-9]+)\)\)$`)
	codeRe     = regexp.MustCompile(`^\* OK \[(UIDVALIDITY|HIGHESTMODSEQ) ([0-9]+)\]`)
	existsRe   = regexp.MustCompile(`^\* ([0-9]+) EXISTS$`)
)

// parseUIDSet expands a uid-set of a response.
func parseUIDSet(t *testing.T, s string) []mailstore.UID {
	t.Helper()
	var out []mailstore.UID
	for part := range strings.SplitSeq(s, ",") {
		lo, hi, isRange := strings.Cut(part, ":")
		a, err1 := strconv.ParseUint(lo, 10, 32)
		b := a
		var err2 error
		if isRange {
			b, err2 = strconv.ParseUint(hi, 10, 32)
		}
		if err1 != nil || err2 != nil || a > b {
			t.Fatalf("bad uid-set %q", s)
		}
		for u := a; u <= b; u++ {
			out = append(out, mailstore.UID(u))
		}
	}
	return out
}

// cache is what a QRESYNC client keeps of a mailbox between sessions.
type cache struct {
	uidValidity, modseq uint64
	flags               map[mailstore.UID]string // UID: its FLAGS list, sorted, as text
}

// sortedList sorts a flag list for comparison, leaving out \Recent,
// which is session state (the first IMAP4rev1 session sees it).
func sortedList(s string) string {
	f := slices.DeleteFunc(strings.Fields(s), func(f string) bool { return f == flagRecent })
	slices.Sort(f)
	return strings.Join(f, " ")
}

// apply updates the cache from a SELECT or FETCH's lines and returns the
// EXISTS it saw (-1: none). view, when not nil, is the store's UIDs in
// order: every FETCH's sequence number must match it.
func (c *cache) apply(t *testing.T, lines []string, view []mailstore.UID) int {
	t.Helper()
	exists := -1
	for _, l := range lines {
		if m := vanishedRe.FindStringSubmatch(l); m != nil {
			for _, u := range parseUIDSet(t, m[1]) {
				if _, ok := c.flags[u]; !ok {
					t.Errorf("VANISHED (EARLIER) names UID %d, which the client never knew", u)
				}
				delete(c.flags, u)
			}
		} else if m := flagsRe.FindStringSubmatch(l); m != nil {
			seq, _ := strconv.Atoi(m[1])
			uid, _ := strconv.ParseUint(m[2], 10, 32)
			if view != nil && (seq < 1 || seq > len(view) || view[seq-1] != mailstore.UID(uid)) {
				t.Errorf("%q: sequence number %d is not UID %d's in %v", l, seq, uid, view)
			}
			c.flags[mailstore.UID(uid)] = sortedList(m[3])
		} else if m := codeRe.FindStringSubmatch(l); m != nil {
			n, _ := strconv.ParseUint(m[2], 10, 64)
			if m[1] == "UIDVALIDITY" {
				c.uidValidity = n
			} else {
				c.modseq = n
			}
		} else if m := existsRe.FindStringSubmatch(l); m != nil {
			exists, _ = strconv.Atoi(m[1])
		}
	}
	return exists
}

// A QRESYNC client that went away while another session flagged,
// expunged and delivered gets exactly those changes at reconnect, in the
// SELECT (RFC 7162 §3.2.5): its cache, updated from VANISHED (EARLIER)
// and the FETCH responses, then completed with the new messages, equals
// what the store holds. With a tiny tombstone bound the client's modseq
// falls below the horizon and VANISHED comes from comparing the UIDs it
// knows with the mailbox's (§3.2.5.2), narrowed by sequence match data.
func TestQResyncReconnect(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		maxVanished int
		knownUIDs   bool
		seqMatch    bool
	}{
		{"tombstones", 0, false, false},
		{"tombstones with known UIDs", 0, true, false},
		{"below the horizon", 4, false, false},
		{"below the horizon with known UIDs and seq-match", 4, true, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, envOptions{maxVanished: tt.maxVanished})
			const n = 40
			for i := range n {
				env.deliver(t, testMessage(i))
			}
			// The client syncs and goes away.
			a := env.raw(t)
			a.ok("ENABLE QRESYNC")
			c := cache{flags: map[mailstore.UID]string{}}
			c.apply(t, a.ok("SELECT INBOX"), nil)
			c.apply(t, a.ok("UID FETCH 1:* (FLAGS)"), nil)
			old := slices.Sorted(maps.Keys(c.flags))
			if len(old) != n || c.modseq == 0 || c.uidValidity == 0 {
				t.Fatalf("first sync: %d messages, modseq %d, uidvalidity %d", len(old), c.modseq, c.uidValidity)
			}
			a.ok("LOGOUT")

			// Another session flags, expunges (in several expunges, so
			// that a small bound prunes tombstones) and mail arrives.
			rng := rand.New(rand.NewPCG(16, uint64(tt.maxVanished)))
			b := env.raw(t)
			b.ok("SELECT INBOX")
			for _, u := range rng.Perm(n)[:12] {
				b.ok("UID STORE %d +FLAGS.SILENT (\\Flagged $k%d)", u+1, u%3)
			}
			for range 3 {
				for _, u := range rng.Perm(n)[:3] {
					b.ok("UID STORE %d +FLAGS.SILENT (\\Deleted)", u+1)
				}
				b.ok("EXPUNGE")
			}
			for i := range 3 {
				env.deliver(t, testMessage(100+i))
			}
			b.ok("UID STORE %d -FLAGS.SILENT (\\Flagged)", old[len(old)-1])

			mb := env.mailbox(t, "INBOX")
			ch, err := env.store.ChangesSince(context.Background(), mb.ID, mailstore.AllUIDs(), c.modseq)
			if err != nil {
				t.Fatal(err)
			}
			if below := tt.maxVanished > 0; ch.VanishedKnown == below {
				t.Fatalf("ChangesSince(%d).VanishedKnown = %v (horizon %d): the test does not cover its case", c.modseq, ch.VanishedKnown, ch.Horizon)
			}

			// Back: one SELECT brings the changes.
			params := fmt.Sprintf("%d %d", c.uidValidity, c.modseq)
			if tt.knownUIDs {
				params += " " + uidList(old)
			}
			if tt.seqMatch {
				// Messages 1, 10, 20, 30 of the old view, by sequence
				// number and UID.
				seqs := []mailstore.UID{1, 10, 20, 30}
				var uids []mailstore.UID
				for _, s := range seqs {
					uids = append(uids, old[s-1])
				}
				params += " (" + uidList(seqs) + " " + uidList(uids) + ")"
			}
			r := env.raw(t)
			r.ok("ENABLE QRESYNC")
			storeView := env.storeUIDs(t, "INBOX")
			view := make([]mailstore.UID, len(storeView))
			for i, u := range storeView {
				view[i] = mailstore.UID(u)
			}
			lines := r.ok("SELECT INBOX (QRESYNC (%s))", params)
			exists := c.apply(t, lines, view)
			// New messages the SELECT did not report (with known UIDs it
			// reports only those): the client fetches what is above what
			// it knew.
			c.apply(t, r.ok("UID FETCH %d:* (FLAGS)", old[len(old)-1]+1), view)

			st, err := env.store.Status(context.Background(), mb.ID)
			if err != nil {
				t.Fatal(err)
			}
			if c.modseq != st.HighestModSeq {
				t.Errorf("HIGHESTMODSEQ = %d, store has %d", c.modseq, st.HighestModSeq)
			}
			if exists != len(view) {
				t.Errorf("EXISTS %d, store has %d messages", exists, len(view))
			}
			want := map[mailstore.UID]string{}
			err = env.store.Messages(context.Background(), mb.ID, mailstore.AllUIDs(), mailstore.FetchOptions{}, func(m *mailstore.Message) error {
				want[m.UID] = sortedList(strings.Join(m.Flags, " "))
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if !maps.Equal(c.flags, want) {
				t.Errorf("client cache after QRESYNC:\n%v\nstore:\n%v\nSELECT said:\n%s", c.flags, want, strings.Join(lines, "\n"))
			}
		})
	}
}

// missing lists the UIDs a client knows that the view lacks, above the
// sequence match floor, up to the highest UID given out (qresync.go).
func TestQResyncMissing(t *testing.T) {
	t.Parallel()
	sel := &selected{uids: []mailstore.UID{2, 4, 6, 10}, known: 10, uidNext: 13}
	tests := []struct {
		set   mailstore.UIDSet
		floor mailstore.UID
		want  string
	}{
		{mailstore.AllUIDs(), 0, "1,3,5,7:9,11:12"},
		{mailstore.AllUIDs(), 4, "5,7:9,11:12"},
		{mailstore.UIDSet{{Start: 9, Stop: 20}, {Start: 1, Stop: 3}}, 0, "1,3,9,11:12"},
		{mailstore.UIDSet{{Start: 2, Stop: 2}, {Start: 6, Stop: 6}}, 0, ""},
		{mailstore.UIDSet{{Start: 14, Stop: 0}}, 0, ""},
	}
	for _, tt := range tests {
		var got []string
		for _, r := range sel.missing(tt.set, tt.floor) {
			if r.Start == r.Stop {
				got = append(got, strconv.Itoa(int(r.Start)))
			} else {
				got = append(got, fmt.Sprintf("%d:%d", r.Start, r.Stop))
			}
		}
		if g := strings.Join(got, ","); g != tt.want {
			t.Errorf("missing(%v, %d) = %s, want %s", tt.set, tt.floor, g, tt.want)
		}
	}
	// Sequence match data (RFC 7162 §3.2.5.2): a pair whose UID is still
	// at its sequence number raises the floor; a pair that is not does
	// not; sets of unequal length are ignored.
	seqSet := func(n ...uint32) wire.NumSet {
		var s wire.NumSet
		for _, x := range n {
			s.Ranges = append(s.Ranges, wire.NumRange{Start: x, Stop: x})
		}
		return s
	}
	for _, tt := range []struct {
		seqs, uids []uint32
		want       mailstore.UID
	}{
		{[]uint32{1, 2, 3}, []uint32{2, 4, 6}, 6},
		{[]uint32{1, 3}, []uint32{2, 6}, 6},
		{[]uint32{1, 3}, []uint32{2, 5}, 2},
		{[]uint32{2, 4}, []uint32{2, 6}, 0},
		{[]uint32{1, 2}, []uint32{2}, 0},
	} {
		if got := seqMatchFloor(sel, &wire.SeqMatch{Seqs: seqSet(tt.seqs...), UIDs: seqSet(tt.uids...)}); got != tt.want {
			t.Errorf("seqMatchFloor(%v, %v) = %d, want %d", tt.seqs, tt.uids, got, tt.want)
		}
	}
}
