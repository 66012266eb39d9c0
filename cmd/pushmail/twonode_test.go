package main

import (
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"pushmail/internal/pgtest"
)

// idleWatcher is an IMAP client of one node in IDLE on INBOX, whose
// unsolicited EXISTS counts and FETCH flags arrive on channels.
type idleWatcher struct {
	c      *imapclient.Client
	idle   *imapclient.IdleCommand
	exists chan uint32
	flags  chan []imap.Flag
}

func watchInbox(t *testing.T, addr, user, password string) *idleWatcher {
	t.Helper()
	w := &idleWatcher{exists: make(chan uint32, 64), flags: make(chan []imap.Flag, 64)}
	c, err := imapclient.DialInsecure(addr, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					w.exists <- *d.NumMessages
				}
			},
			Fetch: func(m *imapclient.FetchMessageData) {
				for item := m.Next(); item != nil; item = m.Next() {
					if f, ok := item.(imapclient.FetchItemDataFlags); ok {
						w.flags <- f.Flags
					}
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	w.c = c
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if w.idle, err = c.Idle(); err != nil {
		t.Fatal(err)
	}
	return w
}

// startTwoNodes runs two servers, A and B, on one fresh PostgreSQL
// database (skipped without one) holding the user addr (password
// "secret"), and returns the database's URL and the servers.
func startTwoNodes(t *testing.T, addr string) (store string, a, b *server) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	store = pgtest.New(t)
	cli(t, "secret\n", "user", "add", addr, "--store", store, "--password-stdin")
	return store, startServer(t, t.TempDir(), "--store", store), startServer(t, t.TempDir(), "--store", store)
}

// TestTwoNodesOnePostgres runs two pushmail nodes on one PostgreSQL
// database, as the README's "More than one machine" does: a message
// delivered over SMTP to node A is pushed to an IDLE client of node B,
// and flags set through B reach an IDLE client of A, and both nodes'
// stores hold the same state afterwards.
func TestTwoNodesOnePostgres(t *testing.T) {
	store, a, b := startTwoNodes(t, "carol@localhost")

	onB := watchInbox(t, b.addr("imap"), "carol@localhost", "secret")
	onA := watchInbox(t, a.addr("imap"), "carol@localhost", "secret")

	sendSMTP(t, a.addr("smtp"), "carol@localhost", "across nodes")
	for name, w := range map[string]*idleWatcher{"B": onB, "A": onA} {
		select {
		case n := <-w.exists:
			if n != 1 {
				t.Errorf("node %s: IDLE got * %d EXISTS, want 1", name, n)
			}
		case <-time.After(10 * time.Second):
			t.Fatalf("node %s: no * EXISTS in IDLE after SMTP to node A", name)
		}
	}

	// A STORE on node B, from a second client of B, reaches A's IDLE.
	c, err := imapclient.DialInsecure(b.addr("imap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("carol@localhost", "secret").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); err != nil {
		t.Fatalf("STORE on node B: %v", err)
	}
	select {
	case f := <-onA.flags:
		if !slices.Contains(f, imap.FlagFlagged) {
			t.Errorf("node A: IDLE got FLAGS %v, want \\Flagged among them", f)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("node A: no FETCH FLAGS in IDLE after STORE on node B")
	}

	// Both nodes now answer with the same message and flags.
	for name, w := range map[string]*idleWatcher{"A": onA, "B": onB} {
		if err := w.idle.Close(); err != nil {
			t.Fatal(err)
		}
		if err := w.idle.Wait(); err != nil {
			t.Fatal(err)
		}
		msgs, err := w.c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{UID: true, Flags: true, Envelope: true}).Collect()
		if err != nil || len(msgs) != 1 {
			t.Fatalf("node %s: FETCH 1 = %d messages, %v", name, len(msgs), err)
		}
		m := msgs[0]
		if m.UID != 1 || m.Envelope.Subject != "across nodes" || !slices.Contains(m.Flags, imap.FlagFlagged) {
			t.Errorf("node %s: message 1 = UID %d subject %q flags %v", name, m.UID, m.Envelope.Subject, m.Flags)
		}
	}
	if out := cli(t, "", "stats", "--store", store); !strings.Contains(out, "messages") || !strings.Contains(out, " 1\n") {
		t.Errorf("stats of the shared store:\n%s", out)
	}
}

// TestTwoNodesKillOne kills node A with SIGKILL in the middle of a storm
// of deliveries to both nodes: every message either node acknowledged is
// there exactly once afterwards, read over IMAP from node B.
func TestTwoNodesKillOne(t *testing.T) {
	_, a, b := startTwoNodes(t, "erin@localhost")

	killAt := 60 + rand.IntN(140)
	storm := newSMTPStorm("erin@localhost", killAt)
	stopB := make(chan struct{})
	for w := range 8 {
		if w%2 == 0 {
			storm.sender(t, w, a.addr("smtp"), nil)
		} else {
			storm.sender(t, w, b.addr("smtp"), stopB)
		}
	}
	select {
	case <-storm.reached:
	case <-time.After(2 * time.Minute):
		t.Fatalf("fewer than %d deliveries acknowledged:\n%s", killAt, a.logText())
	}
	if err := a.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-a.done
	// B's senders go on a little after A died, then stop.
	time.Sleep(200 * time.Millisecond)
	close(stopB)
	storm.wg.Wait()
	t.Logf("SIGKILL of node A after %d acknowledged deliveries (%d attempted)", len(storm.acked), len(storm.sent))

	c, err := imapclient.DialInsecure(b.addr("imap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("erin@localhost", "secret").Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	var uids []imap.UID
	if sel.NumMessages > 0 {
		all, err := c.Fetch(seqRange(1, sel.NumMessages), &imap.FetchOptions{UID: true, Envelope: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range all {
			found[m.Envelope.Subject]++
			uids = append(uids, m.UID)
		}
	}
	storm.check(t, found)
	for i := 1; i < len(uids); i++ {
		if uids[i] <= uids[i-1] {
			t.Fatalf("UIDs not strictly increasing on node B: %v", uids)
		}
	}
}
