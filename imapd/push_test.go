package imapd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"pushmail/mailstore"
)

// waitExists waits until the client has been told of want messages.
func waitExists(t testing.TB, ev *events, want uint32) {
	t.Helper()
	for {
		if n := wait(t, ev.exists, fmt.Sprintf("* %d EXISTS", want)); n == want {
			return
		} else if n > want {
			t.Fatalf("got * %d EXISTS, want %d", n, want)
		}
	}
}

// startIdle starts IDLE and returns a function that ends it.
func startIdle(t testing.TB, c *imapclient.Client) func() {
	t.Helper()
	idle, err := c.Idle()
	if err != nil {
		t.Fatalf("Idle() = %v", err)
	}
	return func() {
		t.Helper()
		if err := idle.Close(); err != nil {
			t.Fatalf("Idle.Close() = %v", err)
		}
		if err := idle.Wait(); err != nil {
			t.Fatalf("Idle.Wait() = %v", err)
		}
	}
}

func TestIdlePushesDeliveries(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	ev, opts := newEvents()
	a := env.selectInbox(t, opts)
	done := startIdle(t, a)
	for i := 1; i <= 3; i++ {
		env.deliver(t, testMessage(i))
		waitExists(t, ev, uint32(i))
	}
	done()
	if got, want := viewUIDs(t, a), env.storeUIDs(t, "INBOX"); !slices.Equal(got, want) {
		t.Errorf("view UIDs = %v, want %v", got, want)
	}
}

func TestIdlePushesFlagChanges(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, testMessage(2))
	evA, optsA := newEvents()
	a := env.selectInbox(t, optsA)
	evB, optsB := newEvents()
	b := env.selectInbox(t, optsB)

	done := startIdle(t, a)
	msgs, err := b.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagSeen}}, nil).Collect()
	if err != nil {
		t.Fatalf("B: STORE 2 +FLAGS (\\Seen) = %v", err)
	}
	if len(msgs) != 1 || !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("B: STORE reply = %+v, want message 2 with \\Seen", msgs)
	}
	got := wait(t, evA.fetch, "A: * 2 FETCH (FLAGS …)")
	if got.seq != 2 || !slices.Contains(got.flags, imap.FlagSeen) {
		t.Errorf("A got FETCH seq %d flags %v, want seq 2 with \\Seen", got.seq, got.flags)
	}
	if got.uid != 2 {
		t.Errorf("A got FETCH UID %d, want 2", got.uid)
	}
	done()

	// B answered its own STORE directly: the event must not echo.
	if err := b.Noop().Wait(); err != nil {
		t.Fatalf("B: NOOP = %v", err)
	}
	select {
	case f := <-evB.fetch:
		t.Errorf("B got an echo of its own STORE: %+v", f)
	default:
	}
}

func TestIdlePushesExpungesWithOwnSequenceNumbers(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	for i := 1; i <= 4; i++ {
		env.deliver(t, testMessage(i))
	}
	evA, optsA := newEvents()
	a := env.selectInbox(t, optsA)
	b := env.selectInbox(t, nil)

	// B expunges message 1, and A has not heard of it yet when B expunges
	// UID 3, which is B's sequence number 2 but A's 3.
	done := startIdle(t, a)
	for _, uid := range []imap.UID{1, 3} {
		if err := b.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
			t.Fatalf("B: UID STORE %d +FLAGS.SILENT (\\Deleted) = %v", uid, err)
		}
		if err := b.Expunge().Close(); err != nil {
			t.Fatalf("B: EXPUNGE = %v", err)
		}
	}
	if seq := wait(t, evA.expunge, "A: first EXPUNGE"); seq != 1 {
		t.Errorf("A: first EXPUNGE %d, want 1", seq)
	}
	if seq := wait(t, evA.expunge, "A: second EXPUNGE"); seq != 2 {
		t.Errorf("A: second EXPUNGE %d, want 2 (UID 3 after UID 1 went)", seq)
	}
	done()
	if got, want := viewUIDs(t, a), []imap.UID{2, 4}; !slices.Equal(got, want) {
		t.Errorf("A: view UIDs = %v, want %v", got, want)
	}
}

// RFC 9051 §7.5.1: no EXPUNGE while answering FETCH, STORE or SEARCH; the
// message keeps its sequence number until a command that allows it.
func TestExpungeWaitsOutFetchStoreSearch(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	for i := 1; i <= 3; i++ {
		env.deliver(t, testMessage(i))
	}
	evA, optsA := newEvents()
	a := env.selectInbox(t, optsA)
	inbox := env.mailbox(t, "INBOX")
	ctx := context.Background()
	if _, err := env.store.StoreFlags(ctx, inbox.ID, mailstore.UIDSetOf(1), mailstore.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.Expunge(ctx, inbox.ID, mailstore.AllUIDs(), 0); err != nil {
		t.Fatal(err)
	}

	msgs, err := a.Fetch(imap.SeqSetNum(2, 3), &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatalf("FETCH 2:3 UID = %v", err)
	}
	if len(msgs) != 2 || msgs[0].SeqNum != 2 || msgs[0].UID != 2 || msgs[1].SeqNum != 3 || msgs[1].UID != 3 {
		t.Errorf("FETCH 2:3 = %+v, want seq 2 = UID 2, seq 3 = UID 3", msgs)
	}
	if _, err := a.Store(imap.SeqSetNum(3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
		t.Fatalf("STORE 3 +FLAGS = %v", err)
	}
	data, err := a.Search(&imap.SearchCriteria{Flag: []imap.Flag{imap.FlagFlagged}}, nil).Wait()
	if err != nil {
		t.Fatalf("SEARCH FLAGGED = %v", err)
	}
	if got := data.AllSeqNums(); !slices.Equal(got, []uint32{3}) {
		t.Errorf("SEARCH FLAGGED = %v, want [3] (UID 3 keeps sequence number 3)", got)
	}
	select {
	case seq := <-evA.expunge:
		t.Fatalf("EXPUNGE %d sent during FETCH/STORE/SEARCH", seq)
	default:
	}
	if err := a.Noop().Wait(); err != nil {
		t.Fatalf("NOOP = %v", err)
	}
	if seq := wait(t, evA.expunge, "EXPUNGE after NOOP"); seq != 1 {
		t.Errorf("EXPUNGE %d, want 1", seq)
	}
	if got, want := viewUIDs(t, a), []imap.UID{2, 3}; !slices.Equal(got, want) {
		t.Errorf("view UIDs = %v, want %v", got, want)
	}
}

// A session's own APPEND, COPY, STORE, EXPUNGE and MOVE come back as
// events: the client must see each change exactly once.
func TestOwnChangesAnnouncedOnce(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	ev, opts := newEvents()
	a := env.selectInbox(t, opts)
	noop := func() {
		t.Helper()
		if err := a.Noop().Wait(); err != nil {
			t.Fatalf("NOOP = %v", err)
		}
	}
	expectQuiet := func(what string) {
		t.Helper()
		noop()
		select {
		case n := <-ev.exists:
			t.Errorf("after %s: extra * %d EXISTS", what, n)
		case s := <-ev.expunge:
			t.Errorf("after %s: extra * %d EXPUNGE", what, s)
		default:
		}
	}

	msg := testMessage(1)
	appendCmd := a.Append("INBOX", int64(len(msg)), nil)
	if _, err := appendCmd.Write(msg); err != nil {
		t.Fatalf("APPEND write = %v", err)
	}
	if err := appendCmd.Close(); err != nil {
		t.Fatalf("APPEND close = %v", err)
	}
	if _, err := appendCmd.Wait(); err != nil {
		t.Fatalf("APPEND = %v", err)
	}
	waitExists(t, ev, 1)
	expectQuiet("APPEND")

	if _, err := a.Copy(imap.SeqSetNum(1), "INBOX").Wait(); err != nil {
		t.Fatalf("COPY 1 INBOX = %v", err)
	}
	waitExists(t, ev, 2)
	expectQuiet("COPY")

	if _, err := a.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatalf("STORE = %v", err)
	}
	noop()
	select {
	case f := <-ev.fetch:
		t.Errorf("after STORE: echo %+v", f)
	default:
	}
	seqs, err := a.Expunge().Collect()
	if err != nil || !slices.Equal(seqs, []uint32{1}) {
		t.Fatalf("EXPUNGE = %v, %v, want [1]", seqs, err)
	}
	expectQuiet("EXPUNGE")

	if _, err := a.Move(imap.SeqSetNum(1), "Archive").Wait(); err != nil {
		t.Fatalf("MOVE 1 Archive = %v", err)
	}
	if seq := wait(t, ev.expunge, "EXPUNGE from MOVE"); seq != 1 {
		t.Errorf("MOVE: EXPUNGE %d, want 1", seq)
	}
	expectQuiet("MOVE")
	if got := viewUIDs(t, a); len(got) != 0 {
		t.Errorf("view UIDs = %v, want none", got)
	}
	if got := env.storeUIDs(t, "INBOX"); len(got) != 0 {
		t.Errorf("store UIDs = %v, want none", got)
	}
}

// Three sessions change the same mailbox in turns while deliveries
// arrive; each ends with the store's view.
func TestSessionsConverge(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	var clients []*imapclient.Client
	for range 3 {
		clients = append(clients, env.selectInbox(t, nil))
	}
	for round := range 6 {
		env.deliver(t, testMessage(round*10+1))
		env.deliver(t, testMessage(round*10+2))
		c := clients[round%3]
		n := c.Mailbox().NumMessages
		if n > 0 {
			// Delete this client's first and last message.
			if _, err := c.Store(imap.SeqSetNum(1, n), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
				t.Fatalf("round %d: STORE = %v", round, err)
			}
			if _, err := c.Expunge().Collect(); err != nil {
				t.Fatalf("round %d: EXPUNGE = %v", round, err)
			}
		}
		msg := testMessage(round*10 + 3)
		appendCmd := clients[(round+1)%3].Append("INBOX", int64(len(msg)), nil)
		if _, err := appendCmd.Write(msg); err != nil {
			t.Fatal(err)
		}
		if err := appendCmd.Close(); err != nil {
			t.Fatal(err)
		}
		if _, err := appendCmd.Wait(); err != nil {
			t.Fatalf("round %d: APPEND = %v", round, err)
		}
		if c := clients[(round+2)%3]; round%2 == 1 {
			if err := c.Noop().Wait(); err != nil {
				t.Fatalf("round %d: NOOP = %v", round, err)
			}
			if _, err := c.Move(imap.SeqSetNum(1), "Archive").Wait(); err != nil {
				t.Fatalf("round %d: MOVE = %v", round, err)
			}
		}
	}
	want := env.storeUIDs(t, "INBOX")
	for i, c := range clients {
		if got := viewUIDs(t, c); !slices.Equal(got, want) {
			t.Errorf("client %d: view UIDs = %v, want %v", i, got, want)
		}
		data, err := c.UIDSearch(&imap.SearchCriteria{}, nil).Wait()
		if err != nil {
			t.Fatalf("client %d: UID SEARCH ALL = %v", i, err)
		}
		if got := data.AllUIDs(); !slices.Equal(got, want) {
			t.Errorf("client %d: UID SEARCH ALL = %v, want %v", i, got, want)
		}
	}
}

// A session that falls behind loses its queued events and must rebuild its
// view from the store: expunges, new messages and flag changes included.
func TestResyncAfterOverflow(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{hubQueue: 4})
	for i := 1; i <= 5; i++ {
		env.deliver(t, testMessage(i))
	}
	evA, optsA := newEvents()
	a := env.selectInbox(t, optsA) // busy: sends no command while B works
	b := env.selectInbox(t, nil)

	for i := 6; i <= 15; i++ {
		env.deliver(t, testMessage(i))
	}
	if _, err := b.Store(imap.UIDSetNum(2, 7), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Collect(); err != nil {
		t.Fatalf("B: STORE = %v", err)
	}
	if _, err := b.Expunge().Collect(); err != nil {
		t.Fatalf("B: EXPUNGE = %v", err)
	}
	for _, uid := range []imap.UID{1, 3, 12} {
		if _, err := b.Store(imap.UIDSetNum(uid), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Collect(); err != nil {
			t.Fatalf("B: STORE = %v", err)
		}
	}

	done := startIdle(t, a)
	waitExists(t, evA, 15)
	// UIDs 1 and 3 were in A's view: their new flags are pushed. UID 12
	// is new to A, which fetches its flags itself.
	flagged := map[imap.UID]bool{}
	for len(flagged) < 2 {
		f := wait(t, evA.fetch, "A: FETCH FLAGS after resync")
		if !slices.Contains(f.flags, imap.FlagFlagged) {
			t.Fatalf("A: FETCH %+v without \\Flagged", f)
		}
		flagged[f.uid] = true
	}
	done()
	for _, uid := range []imap.UID{1, 3} {
		if !flagged[uid] {
			t.Errorf("A: no FETCH FLAGS for UID %d", uid)
		}
	}
	want := env.storeUIDs(t, "INBOX")
	if got := viewUIDs(t, a); !slices.Equal(got, want) {
		t.Errorf("A: view UIDs = %v, want %v", got, want)
	}
	// Of the expunged UIDs 2 and 7, only 2 was in A's view.
	if len(evA.expunge) != 1 {
		t.Errorf("A: got %d EXPUNGE responses, want 1", len(evA.expunge))
	}
	msgs, err := a.Fetch(imap.UIDSetNum(12), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 || !slices.Contains(msgs[0].Flags, imap.FlagFlagged) {
		t.Errorf("A: UID FETCH 12 FLAGS = %+v, %v, want \\Flagged", msgs, err)
	}
}

func TestShutdownEndsIdle(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	a := env.selectInbox(t, nil)
	if _, err := a.Idle(); err != nil {
		t.Fatalf("Idle() = %v", err)
	}
	b := env.login(t, nil)
	raw := env.raw(t)
	raw.ok("SELECT INBOX")
	raw.send("IDLE")
	if line := raw.readLine(); !strings.HasPrefix(line, "+ ") {
		t.Fatalf("IDLE: %q", line)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	start := time.Now()
	if err := env.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
	for i, c := range []*imapclient.Client{a, b} {
		select {
		case <-c.Closed():
		case <-time.After(waitTimeout):
			t.Fatalf("client %d still connected after Shutdown", i)
		}
	}
	if line := raw.readLine(); line != "* BYE Server shutting down" {
		t.Errorf("IDLE client got %q at shutdown, want * BYE", line)
	}
	t.Logf("Shutdown took %v", time.Since(start))
}

func TestSelectedMailboxDeleted(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	a := env.login(t, nil)
	if err := a.Create("Work", nil).Wait(); err != nil {
		t.Fatalf("CREATE Work = %v", err)
	}
	if _, err := a.Select("Work", nil).Wait(); err != nil {
		t.Fatalf("SELECT Work = %v", err)
	}
	if _, err := a.Idle(); err != nil {
		t.Fatalf("Idle() = %v", err)
	}
	b := env.login(t, nil)
	if err := b.Delete("Work").Wait(); err != nil {
		t.Fatalf("DELETE Work = %v", err)
	}
	select {
	case <-a.Closed():
	case <-time.After(waitTimeout):
		t.Fatal("A still connected after its selected mailbox was deleted")
	}
}

// imapserver answers a line other than DONE during IDLE with BAD without
// waiting for Idle to return; the session must still not run two things
// at once (go test -race checks).
func TestIdleEndedByGarbage(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.raw(t)
	c.ok("SELECT INBOX")
	for i := range 20 {
		tag := c.send("IDLE")
		if line := c.readLine(); !strings.HasPrefix(line, "+ ") {
			t.Fatalf("IDLE: %q", line)
		}
		env.deliver(t, testMessage(i))
		if _, err := c.conn.Write([]byte("NOT DONE\r\n")); err != nil {
			t.Fatal(err)
		}
		for {
			line := c.readLine()
			if strings.HasPrefix(line, tag+" ") {
				if !strings.HasPrefix(line, tag+" BAD") {
					t.Fatalf("IDLE ended by garbage: %q, want BAD", line)
				}
				break
			}
		}
		c.ok("NOOP")
	}
	untagged := c.ok("UID SEARCH ALL")
	want := "* SEARCH"
	for _, uid := range env.storeUIDs(t, "INBOX") {
		want += fmt.Sprintf(" %d", uid)
	}
	if !slices.Equal(untagged, []string{want}) {
		t.Errorf("UID SEARCH ALL = %q, want %q", untagged, want)
	}
}
