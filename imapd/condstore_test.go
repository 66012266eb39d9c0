package imapd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// storeModSeqs returns the store's modseq of each message in a mailbox.
func (e *testEnv) storeModSeqs(t testing.TB, name string) map[mailstore.UID]uint64 {
	t.Helper()
	out := map[mailstore.UID]uint64{}
	err := e.store.Messages(context.Background(), e.mailbox(t, name).ID, mailstore.AllUIDs(), mailstore.FetchOptions{}, func(m *mailstore.Message) error {
		out[m.UID] = m.ModSeq
		return nil
	})
	if err != nil {
		t.Fatalf("Messages(%s) = %v", name, err)
	}
	return out
}

// go-imap's client speaks CONDSTORE: SELECT (CONDSTORE), FETCH MODSEQ
// with CHANGEDSINCE, STORE UNCHANGEDSINCE. It must parse every answer,
// and what it parses must be the store's modseqs.
func TestCondStoreGoIMAPClient(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	for i := range 5 {
		env.deliver(t, testMessage(i))
	}
	c := env.login(t, nil)
	// Asked for, not c.Caps(): the client resets its list after LOGIN's
	// OK on its reader goroutine, so Caps() right after Login may still
	// return the greeting's list, which has no CONDSTORE.
	caps, err := c.Capability().Wait()
	if err != nil || !caps.Has(imap.CapCondStore) {
		t.Fatalf("CAPABILITY after login = %v, %v; want CONDSTORE listed", caps, err)
	}
	data, err := c.Select("INBOX", &imap.SelectOptions{CondStore: true}).Wait()
	if err != nil {
		t.Fatalf("Select(CONDSTORE) = %v", err)
	}
	st, err := env.store.Status(context.Background(), env.mailbox(t, "INBOX").ID)
	if err != nil {
		t.Fatal(err)
	}
	if data.HighestModSeq != st.HighestModSeq || data.HighestModSeq == 0 {
		t.Fatalf("SELECT HIGHESTMODSEQ = %d, store has %d", data.HighestModSeq, st.HighestModSeq)
	}
	since := data.HighestModSeq

	// Two messages change: CHANGEDSINCE returns exactly them, with the
	// store's modseqs.
	var uids imap.UIDSet
	uids.AddNum(2, 4)
	if _, err := c.Store(uids, &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}, Silent: true}, nil).Collect(); err != nil {
		t.Fatalf("Store = %v", err)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(1, 2, 3, 4, 5), &imap.FetchOptions{UID: true, Flags: true, ModSeq: true, ChangedSince: since}).Collect()
	if err != nil {
		t.Fatalf("Fetch(CHANGEDSINCE %d) = %v", since, err)
	}
	want := env.storeModSeqs(t, "INBOX")
	var got []imap.UID
	for _, m := range msgs {
		got = append(got, m.UID)
		if m.ModSeq != want[mailstore.UID(m.UID)] || m.ModSeq <= since {
			t.Errorf("UID %d: MODSEQ %d, store has %d (since %d)", m.UID, m.ModSeq, want[mailstore.UID(m.UID)], since)
		}
		if !slices.Contains(m.Flags, imap.FlagSeen) {
			t.Errorf("UID %d: FLAGS %v, want \\Seen", m.UID, m.Flags)
		}
	}
	if !slices.Equal(got, []imap.UID{2, 4}) {
		t.Fatalf("CHANGEDSINCE %d returned UIDs %v, want [2 4]", since, got)
	}

	// UNCHANGEDSINCE below message 2's modseq leaves it alone; message 1
	// is changed, and its FETCH carries the new MODSEQ.
	res, err := c.Store(imap.UIDSetNum(1, 2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}},
		&imap.StoreOptions{UnchangedSince: since}).Collect()
	if err != nil {
		t.Fatalf("Store(UNCHANGEDSINCE) = %v", err)
	}
	want = env.storeModSeqs(t, "INBOX")
	if len(res) != 1 || res[0].UID != 1 || res[0].ModSeq != want[1] || !slices.Contains(res[0].Flags, imap.FlagFlagged) {
		t.Errorf("Store(UNCHANGEDSINCE %d) = %+v, want UID 1 \\Flagged at MODSEQ %d", since, res, want[1])
	}
	flags := storeFlags(t, env, "INBOX")
	if !slices.Contains(flags[1], imap.FlagFlagged) || slices.Contains(flags[2], imap.FlagFlagged) {
		t.Errorf("store flags after UNCHANGEDSINCE: %v, want 1 \\Flagged and 2 not", flags)
	}
}

// storeFlags returns the store's flags of each message in a mailbox.
func storeFlags(t testing.TB, e *testEnv, name string) map[imap.UID][]imap.Flag {
	t.Helper()
	out := map[imap.UID][]imap.Flag{}
	err := e.store.Messages(context.Background(), e.mailbox(t, name).ID, mailstore.AllUIDs(), mailstore.FetchOptions{}, func(m *mailstore.Message) error {
		for _, f := range m.Flags {
			out[imap.UID(m.UID)] = append(out[imap.UID(m.UID)], imap.Flag(f))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// Two sessions race to change the same message with STORE UNCHANGEDSINCE
// from the same modseq (RFC 7162 §3.1.3): exactly one wins and its flag
// is stored; the other gets [MODIFIED] and its flag is not.
func TestStoreUnchangedSinceRace(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	const n = 20
	for i := range n {
		env.deliver(t, testMessage(i))
	}
	a, b := env.raw(t), env.raw(t)
	for _, c := range []*rawConn{a, b} {
		c.ok("SELECT INBOX")
	}
	before := env.storeModSeqs(t, "INBOX")
	for uid := mailstore.UID(1); uid <= n; uid++ {
		// Both commands are written at once; the answers are read on
		// the test goroutine (only it may FailNow).
		var wg sync.WaitGroup
		var werr [2]error
		var tags [2]string
		for i, c := range []*rawConn{a, b} {
			c.n++
			tags[i] = fmt.Sprintf("t%d", c.n)
			wg.Go(func() {
				_, werr[i] = fmt.Fprintf(c.conn, "%s UID STORE %d (UNCHANGEDSINCE %d) +FLAGS.SILENT (race%d)\r\n", tags[i], uid, before[uid], i)
			})
		}
		wg.Wait()
		tagged := make([]string, 2)
		for i, c := range []*rawConn{a, b} {
			if werr[i] != nil {
				t.Fatal(werr[i])
			}
			for {
				line := c.readLine()
				if rest, ok := strings.CutPrefix(line, tags[i]+" "); ok {
					tagged[i] = rest
					break
				}
			}
		}
		modified := 0
		for _, tg := range tagged {
			switch {
			case strings.HasPrefix(tg, fmt.Sprintf("OK [MODIFIED %d]", uid)):
				modified++
			case !strings.HasPrefix(tg, "OK UID STORE"):
				t.Fatalf("UID %d: tagged %q", uid, tg)
			}
		}
		if modified != 1 {
			t.Fatalf("UID %d: replies %q, want exactly one [MODIFIED]", uid, tagged)
		}
		flags := storeFlags(t, env, "INBOX")[imap.UID(uid)]
		winner := 0
		if strings.HasPrefix(tagged[0], "OK [MODIFIED") {
			winner = 1
		}
		if !slices.Equal(flags, []imap.Flag{imap.Flag(fmt.Sprintf("race%d", winner))}) {
			t.Fatalf("UID %d: store has flags %v, want only the winner's race%d (replies %q)", uid, flags, winner, tagged)
		}
	}
}
