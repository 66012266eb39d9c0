package imapd

import (
	"bytes"
	"context"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// These tests pin down the data loss fixed in 0b308a1: EXPUNGE, CLOSE and
// UID EXPUNGE with nothing \Deleted among their messages erased the whole
// mailbox. Each asserts on what the store still holds afterwards, not on
// what the client was told: the replies were all OK while the mail was
// gone.

// storedMessage is a message as the store holds it.
type storedMessage struct {
	UID   imap.UID
	Flags []string
	Raw   []byte
}

// storeMessages returns every message the store holds in a mailbox,
// ascending by UID, with its flags and raw bytes.
func (e *testEnv) storeMessages(t testing.TB, name string) []storedMessage {
	t.Helper()
	var msgs []storedMessage
	err := e.store.Messages(context.Background(), e.mailbox(t, name).ID, mailstore.AllUIDs(), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
		msgs = append(msgs, storedMessage{UID: imap.UID(m.UID), Flags: slices.Clone(m.Flags), Raw: bytes.Clone(m.Raw)})
		return nil
	})
	if err != nil {
		t.Fatalf("Messages(%s) = %v", name, err)
	}
	return msgs
}

// checkStored fails the test unless the store holds exactly want in the
// mailbox: the same UIDs, each with the same bytes.
func (e *testEnv) checkStored(t testing.TB, name string, want map[imap.UID][]byte) {
	t.Helper()
	got := e.storeMessages(t, name)
	var gotUIDs, wantUIDs []imap.UID
	for _, m := range got {
		gotUIDs = append(gotUIDs, m.UID)
		if w, ok := want[m.UID]; ok && !bytes.Equal(m.Raw, w) {
			t.Errorf("%s UID %d on the server holds %q, want %q", name, m.UID, m.Raw, w)
		}
	}
	for uid := range want {
		wantUIDs = append(wantUIDs, uid)
	}
	slices.Sort(wantUIDs)
	if !slices.Equal(gotUIDs, wantUIDs) {
		t.Errorf("%s on the server holds UIDs %v, want %v", name, gotUIDs, wantUIDs)
	}
}

// deliverN delivers testMessage(1..n) and returns them by UID.
func (e *testEnv) deliverN(t testing.TB, n int) map[imap.UID][]byte {
	t.Helper()
	msgs := map[imap.UID][]byte{}
	for i := 1; i <= n; i++ {
		msg := testMessage(i)
		msgs[imap.UID(e.deliver(t, msg))] = msg
	}
	return msgs
}

// expungeLines returns the "* n EXPUNGE" lines among untagged ones.
func expungeLines(lines []string) []string {
	var out []string
	for _, l := range lines {
		if strings.HasSuffix(l, " EXPUNGE") {
			out = append(out, l)
		}
	}
	return out
}

// CLOSE with nothing \Deleted (mutt's quit, imaplib's close()) removes
// nothing.
func TestDataLossCloseKeepsMessages(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	want := env.deliverN(t, 3)

	// The SELECT's own data, not c.Mailbox(): imapclient may record the
	// selected mailbox only after Wait returns.
	c := env.login(t, nil)
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("Select(INBOX) = %v", err)
	}
	if sel.NumMessages != 3 {
		t.Fatalf("SELECT INBOX: %d messages, want 3", sel.NumMessages)
	}
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Fatalf("CLOSE = %v", err)
	}
	env.checkStored(t, "INBOX", want)

	// And a client selecting again sees them all.
	data, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("Select(INBOX) = %v", err)
	}
	if data.NumMessages != 3 {
		t.Errorf("SELECT INBOX after CLOSE: %d messages, want 3", data.NumMessages)
	}
}

// UID EXPUNGE removes only the messages of its set that are \Deleted
// (RFC 4315 §2.1), and nothing when none is.
func TestDataLossUIDExpunge(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	want := env.deliverN(t, 5)

	c := env.raw(t)
	c.ok("SELECT INBOX")
	for _, set := range []string{"9", "3", "1:*", "2,4"} { // none \Deleted
		if lines := expungeLines(c.ok("UID EXPUNGE %s", set)); len(lines) != 0 {
			t.Errorf("UID EXPUNGE %s with nothing \\Deleted: %q, want no EXPUNGE", set, lines)
		}
		env.checkStored(t, "INBOX", want)
	}

	// Two \Deleted, a set holding one of them and others that are not:
	// exactly that one goes.
	c.ok(`UID STORE 2,4 +FLAGS.SILENT (\Deleted)`)
	lines := c.ok("UID EXPUNGE 1:3")
	if got := expungeLines(lines); !slices.Equal(got, []string{"* 2 EXPUNGE"}) {
		t.Errorf("UID EXPUNGE 1:3 with UIDs 2 and 4 \\Deleted: %q, want [* 2 EXPUNGE]", got)
	}
	delete(want, 2)
	env.checkStored(t, "INBOX", want)
	for _, m := range env.storeMessages(t, "INBOX") {
		if deleted := slices.Contains(m.Flags, `\Deleted`); deleted != (m.UID == 4) {
			t.Errorf("UID %d has flags %v after UID EXPUNGE 1:3, want \\Deleted only on UID 4", m.UID, m.Flags)
		}
	}
}

// The reported case: a mailbox of five whose UIDs run up to 9, and
// UID EXPUNGE 9 with UID 9 not \Deleted.
func TestDataLossUIDExpungeLastNotDeleted(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	want := env.deliverN(t, 9)

	c := env.raw(t)
	c.ok("SELECT INBOX")
	c.ok(`UID STORE 1:4 +FLAGS.SILENT (\Deleted)`)
	lines := c.ok("EXPUNGE")
	if got := expungeLines(lines); len(got) != 4 {
		t.Fatalf("EXPUNGE with UIDs 1:4 \\Deleted: %q, want 4 EXPUNGE", got)
	}
	for uid := imap.UID(1); uid <= 4; uid++ {
		delete(want, uid)
	}
	env.checkStored(t, "INBOX", want)

	if lines := expungeLines(c.ok("UID EXPUNGE 9")); len(lines) != 0 {
		t.Errorf("UID EXPUNGE 9, not \\Deleted: %q, want no EXPUNGE", lines)
	}
	env.checkStored(t, "INBOX", want)
}

// EXPUNGE with nothing \Deleted removes nothing and says nothing.
func TestDataLossExpungeNothingDeleted(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	want := env.deliverN(t, 3)

	c := env.selectInbox(t, nil)
	seqs, err := c.Expunge().Collect()
	if err != nil {
		t.Fatalf("EXPUNGE = %v", err)
	}
	if len(seqs) != 0 {
		t.Errorf("EXPUNGE with nothing \\Deleted expunged sequence numbers %v, want none", seqs)
	}
	env.checkStored(t, "INBOX", want)
	if uids := viewUIDs(t, c); !slices.Equal(uids, []imap.UID{1, 2, 3}) {
		t.Errorf("client's view after EXPUNGE: %v, want [1 2 3]", uids)
	}

	// The exact transcript: a bare tagged OK.
	r := env.raw(t)
	r.ok("SELECT INBOX")
	if untagged := r.ok("EXPUNGE"); len(untagged) != 0 {
		t.Errorf("EXPUNGE with nothing \\Deleted: untagged %q, want none", untagged)
	}
	env.checkStored(t, "INBOX", want)
}

// traceProxy forwards loopback connections to the server and records
// what clients send, so a test can check which commands a third-party
// client issued (the server logs no commands).
type traceProxy struct {
	addr string
	sent syncBuffer

	ln    net.Listener
	wg    sync.WaitGroup
	mu    sync.Mutex
	conns []net.Conn
}

// newTraceProxy starts a proxy to target; the test's cleanup stops it
// and waits for its goroutines.
func newTraceProxy(t testing.TB, target string) *traceProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	p := &traceProxy{addr: ln.Addr().String(), ln: ln}
	p.wg.Add(1)
	go p.accept(target)
	t.Cleanup(func() {
		p.ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *traceProxy) accept(target string) {
	defer p.wg.Done()
	for {
		client, err := p.ln.Accept()
		if err != nil {
			return // closed by the cleanup
		}
		server, err := net.Dial("tcp", target)
		if err != nil {
			client.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, client, server)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(server, io.TeeReader(client, &p.sent), client)
		go p.pipe(client, server, server)
	}
}

// pipe copies src to dst until either side closes, then closes both.
// Its error is not checked: a client that quits ends the copy with one,
// and what it sent is already recorded.
func (p *traceProxy) pipe(dst net.Conn, src io.Reader, srcConn net.Conn) {
	defer p.wg.Done()
	io.Copy(dst, src)
	dst.Close()
	srcConn.Close()
}

// commandNames returns the names of the commands in a client's side of
// an IMAP transcript ("UID FETCH", "CLOSE"), in order. Literals are not
// skipped, only their lines ignored when they read like no command:
// enough to tell whether a command was sent.
func commandNames(sent string) []string {
	var out []string
	for _, line := range strings.Split(sent, "\r\n") {
		f := strings.Fields(line)
		if len(f) < 2 {
			continue
		}
		name := strings.ToUpper(f[1])
		if name == "UID" && len(f) > 2 {
			name += " " + strings.ToUpper(f[2])
		}
		out = append(out, name)
	}
	return out
}
