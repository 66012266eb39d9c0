package pop3d

import (
	"bytes"
	"context"
	"encoding/base64"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"pushmail/mailstore"
)

// The AUTHORIZATION state (RFC 1939 §4, §7): only USER, PASS, AUTH, CAPA,
// STLS and QUIT; a wrong password returns to USER; QUIT ends the session
// without touching the store.
func TestAuthorizationState(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	e.deliver(t, testMessage(1))
	c := e.dial(t)
	c.send("CAPA")
	c.expect(`^\+OK`)
	capa := c.multi()
	for _, want := range []string{"TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING", "USER", "SASL PLAIN"} {
		if !slices.Contains(capa, want) {
			t.Errorf("CAPA = %q, missing %q", capa, want)
		}
	}
	if slices.Contains(capa, "STLS") {
		t.Errorf("CAPA = %q offers STLS without a certificate", capa)
	}
	for _, cmd := range []string{"STAT", "LIST", "UIDL", "RETR 1", "TOP 1 0", "DELE 1", "RSET", "NOOP"} {
		c.cmd(cmd, `^-ERR Command not valid in this state$`)
	}
	c.cmd("STLS", `^-ERR STLS not available$`)
	c.cmd("APOP alice@localhost 0123456789abcdef0123456789abcdef", `^-ERR Unknown command$`)
	c.cmd("PASS "+testPassword, `^-ERR USER first$`)
	c.cmd("USER", `^-ERR Syntax error$`)
	c.cmd("USER "+testUser, `^\+OK`)
	c.cmd("PASS wrong", `^-ERR \[AUTH\] Authentication failed$`)
	// The failed PASS forgot the name (RFC 1939 §7: back to USER).
	c.cmd("PASS "+testPassword, `^-ERR USER first$`)
	c.cmd("USER nobody@localhost", `^\+OK`)
	c.cmd("PASS "+testPassword, `^-ERR \[AUTH\] Authentication failed$`)
	c.cmd("user "+testUser, `^\+OK`) // keywords are case-insensitive
	c.cmd("pass "+testPassword, `^\+OK Logged in, 1 messages \(\d+ octets\)$`)
	// After login, the AUTHORIZATION commands are refused.
	for _, cmd := range []string{"USER " + testUser, "PASS x", "AUTH PLAIN", "STLS"} {
		c.cmd(cmd, `^-ERR Command not valid in this state$`)
	}
	c.send("CAPA")
	c.expect(`^\+OK`)
	if capa := c.multi(); slices.Contains(capa, "USER") || slices.Contains(capa, "SASL PLAIN") {
		t.Errorf("CAPA after login = %q, still offers login mechanisms", capa)
	}
	c.cmd("QUIT", `^\+OK`)
	c.expectClosed()

	// QUIT in the AUTHORIZATION state.
	c = e.dial(t)
	c.cmd("QUIT", `^\+OK pushmail POP3 server signing off$`)
	c.expectClosed()
	e.shutdown(t)
	e.holds(t, 1)
}

// Every TRANSACTION command over a maildrop with a message stored with
// bare LFs and lines starting with ".", then the UPDATE state: exactly
// the marked messages are removed, the retrieved ones get \Seen, TOP sets
// nothing.
func TestTransactionAndUpdate(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	m1 := e.deliver(t, testMessage(1))
	dotted := []byte("Subject: dots\n\n.leading dot\n..two dots\n.\nlast line without LF")
	m2 := e.appendRaw(t, dotted)
	m3 := e.deliver(t, testMessage(3))
	m4 := e.deliver(t, testMessage(4))
	stored := e.stored(t)
	size := func(u mailstore.UID) int { return len(crlf(stored[u].Raw)) }
	// The last line gets a CRLF that is not the message's own.
	sizes := []int{size(m1), size(m2) - 2, size(m3), size(m4)}
	total := sizes[0] + sizes[1] + sizes[2] + sizes[3]
	mb, err := e.store.Mailbox(context.Background(), e.user.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	uidl := func(u mailstore.UID) string { return fmt.Sprintf("%08X%08X", uint32(u), mb.UIDValidity) }

	c := e.login(t)
	c.cmd("STAT", fmt.Sprintf(`^\+OK 4 %d$`, total))
	c.send("LIST")
	c.expect(fmt.Sprintf(`^\+OK 4 messages \(%d octets\)$`, total))
	want := []string{fmt.Sprintf("1 %d", sizes[0]), fmt.Sprintf("2 %d", sizes[1]), fmt.Sprintf("3 %d", sizes[2]), fmt.Sprintf("4 %d", sizes[3])}
	if got := c.multi(); !slices.Equal(got, want) {
		t.Errorf("LIST = %q, want %q", got, want)
	}
	c.cmd("LIST 2", fmt.Sprintf(`^\+OK 2 %d$`, sizes[1]))
	c.cmd("LIST 5", `^-ERR No such message$`)
	c.cmd("LIST 0", `^-ERR No such message$`)
	c.cmd("LIST x", `^-ERR Syntax error$`)
	c.cmd("LIST 1 2", `^-ERR Syntax error$`)
	c.send("UIDL")
	c.expect(`^\+OK`)
	want = []string{"1 " + uidl(m1), "2 " + uidl(m2), "3 " + uidl(m3), "4 " + uidl(m4)}
	if got := c.multi(); !slices.Equal(got, want) {
		t.Errorf("UIDL = %q, want %q", got, want)
	}
	c.cmd("UIDL 3", `^\+OK 3 `+uidl(m3)+`$`)

	// RETR: CRLF line ends, byte-stuffing, the size LIST announced.
	c.cmd("RETR 2", fmt.Sprintf(`^\+OK %d octets$`, sizes[1]))
	if got, want := c.data(), crlf(dotted); !bytes.Equal(got, want) {
		t.Errorf("RETR 2 = %q, want %q", got, want)
	}
	c.cmd("RETR 1", `^\+OK`)
	if got, want := c.data(), crlf(stored[m1].Raw); !bytes.Equal(got, want) {
		t.Errorf("RETR 1 = %q, want %q", got, want)
	}
	// The wire form of RETR 2, stuffing included.
	c.send("RETR 2")
	c.expect(`^\+OK`)
	var wire []string
	for line := c.readLine(); line != "."; line = c.readLine() {
		wire = append(wire, line)
	}
	if want := []string{"Subject: dots", "", "..leading dot", "...two dots", "..", "last line without LF"}; !slices.Equal(wire, want) {
		t.Errorf("RETR 2 on the wire = %q, want %q", wire, want)
	}

	// TOP: the header, the blank line and n body lines.
	c.cmd("TOP 2 0", `^\+OK`)
	if got := c.multi(); !slices.Equal(got, []string{"Subject: dots", ""}) {
		t.Errorf("TOP 2 0 = %q", got)
	}
	c.cmd("TOP 2 2", `^\+OK`)
	if got := c.multi(); !slices.Equal(got, []string{"Subject: dots", "", ".leading dot", "..two dots"}) {
		t.Errorf("TOP 2 2 = %q", got)
	}
	c.cmd("TOP 4 100", `^\+OK`)
	if got, want := c.data(), crlf(stored[m4].Raw); !bytes.Equal(got, want) {
		t.Errorf("TOP 4 100 = %q, want the whole message %q", got, want)
	}
	c.cmd("TOP 4", `^-ERR Syntax error$`)
	c.cmd("TOP 4 -1", `^-ERR Syntax error$`)
	c.cmd("RETR 9", `^-ERR No such message$`)

	// DELE marks; marked messages are invisible; RSET unmarks.
	c.cmd("DELE 3", `^\+OK Message 3 deleted$`)
	c.cmd("DELE 3", `^-ERR Message already deleted$`)
	for _, cmd := range []string{"RETR 3", "TOP 3 0", "LIST 3", "UIDL 3"} {
		c.cmd(cmd, `^-ERR Message already deleted$`)
	}
	c.cmd("STAT", fmt.Sprintf(`^\+OK 3 %d$`, total-sizes[2]))
	c.send("LIST")
	c.expect(`^\+OK 3 messages`)
	if got := c.multi(); len(got) != 3 || slices.Contains(got, fmt.Sprintf("3 %d", sizes[2])) {
		t.Errorf("LIST after DELE 3 = %q", got)
	}
	c.cmd("RSET", fmt.Sprintf(`^\+OK Maildrop has 4 messages \(%d octets\)$`, total))
	c.cmd("LIST 3", `^\+OK 3 `)
	c.cmd("NOOP", `^\+OK$`)
	c.cmd("NOOP x", `^-ERR Syntax error$`)
	// Nothing is removed before QUIT.
	e.holds(t, m1, m2, m3, m4)

	c.cmd("DELE 1", `^\+OK`)
	c.cmd("DELE 4", `^\+OK`)
	c.cmd("QUIT", `^\+OK pushmail POP3 server signing off$`)
	c.expectClosed()

	e.holds(t, m2, m3)
	after := e.stored(t)
	if !slices.Contains(after[m2].Flags, mailstore.FlagSeen) {
		t.Errorf("retrieved message %d has flags %q, want \\Seen", m2, after[m2].Flags)
	}
	if len(after[m3].Flags) != 0 {
		t.Errorf("message %d, only listed, has flags %q, want none", m3, after[m3].Flags)
	}
}

// A message that TOP read but RETR did not stays unseen.
func TestTopSetsNoFlag(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	u := e.deliver(t, testMessage(1))
	c := e.login(t)
	c.cmd("TOP 1 5", `^\+OK`)
	c.multi()
	c.cmd("QUIT", `^\+OK`)
	c.expectClosed()
	if f := e.stored(t)[u].Flags; len(f) != 0 {
		t.Errorf("flags after TOP and QUIT = %q, want none", f)
	}
}

// The maildrop is INBOX as it was at login: a message delivered later
// waits for the next session; one expunged over IMAP meanwhile answers
// -ERR, and the session goes on.
func TestMaildropIsASnapshot(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	m1 := e.deliver(t, testMessage(1))
	m2 := e.deliver(t, testMessage(2))
	c := e.login(t)
	c.cmd("STAT", `^\+OK 2 `)
	m3 := e.deliver(t, testMessage(3))
	c.cmd("STAT", `^\+OK 2 `)
	c.cmd("LIST 3", `^-ERR No such message$`)
	if _, err := e.store.UpdateMaildrop(context.Background(), e.inbox.Mailbox, nil, []mailstore.UID{m1}, 0); err != nil {
		t.Fatal(err)
	}
	c.cmd("RETR 1", `^-ERR Message no longer exists$`)
	c.cmd("RETR 2", `^\+OK`)
	c.multi()
	// Deleting a message already gone is nothing.
	c.cmd("DELE 1", `^\+OK`)
	c.cmd("QUIT", `^\+OK`)
	c.expectClosed()
	e.holds(t, m2, m3)

	c = e.login(t)
	c.cmd("STAT", `^\+OK 2 `)
}

// UIDL is the same in every session and after a restart of the server
// and the store.
func TestUIDLStable(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	for i := range 3 {
		e.deliver(t, testMessage(i))
	}
	listing := func(srv *testEnv) []string {
		c := srv.login(t)
		c.cmd("UIDL", `^\+OK`)
		l := c.multi()
		c.cmd("QUIT", `^\+OK`)
		return l
	}
	first := listing(e)
	if second := listing(e); !slices.Equal(first, second) {
		t.Errorf("UIDL changed between sessions: %q, then %q", first, second)
	}
	// A restart: a new store on the same file, a new server.
	path := e.store.Path()
	e.shutdown(t)
	store, err := mailstore.Open(context.Background(), path, mailstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	entries, err := store.Maildrop(context.Background(), e.inbox.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	mb, err := store.Mailbox(context.Background(), e.user.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	d := &maildrop{mb: mb, msgs: entries}
	for i := range d.msgs {
		if got := fmt.Sprintf("%d %s", i+1, d.uidl(i)); got != first[i] {
			t.Errorf("after a restart UIDL %d = %q, want %q", i+1, got, first[i])
		}
	}
}

// RFC 2449 §6.6: pipelined commands are all answered, in order, and the
// state they leave is the same as one by one.
func TestPipelining(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	for i := range 3 {
		e.deliver(t, testMessage(i))
	}
	c := e.dial(t)
	batch := "CAPA\r\nUSER " + testUser + "\r\nPASS " + testPassword + "\r\nSTAT\r\nLIST\r\nUIDL 2\r\nRETR 1\r\nTOP 2 0\r\nDELE 1\r\nDELE 3\r\nBOGUS\r\nNOOP\r\nQUIT\r\n"
	if _, err := c.conn.Write([]byte(batch)); err != nil {
		t.Fatal(err)
	}
	c.expect(`^\+OK Capability`)
	c.multi()
	c.expect(`^\+OK`)
	c.expect(`^\+OK Logged in, 3 messages`)
	c.expect(`^\+OK 3 \d+$`)
	c.expect(`^\+OK 3 messages`)
	if got := c.multi(); len(got) != 3 {
		t.Errorf("LIST = %q", got)
	}
	c.expect(`^\+OK 2 [0-9A-F]{16}$`)
	c.expect(`^\+OK \d+ octets$`)
	if got := c.data(); !bytes.Contains(got, []byte("Body of message 0.")) {
		t.Errorf("RETR 1 = %q", got)
	}
	c.expect(`^\+OK Top`)
	c.multi()
	c.expect(`^\+OK Message 1 deleted$`)
	c.expect(`^\+OK Message 3 deleted$`)
	c.expect(`^-ERR Unknown command$`)
	c.expect(`^\+OK$`)
	c.expect(`^\+OK pushmail POP3 server signing off$`)
	c.expectClosed()
	e.holds(t, 2)
}

// A connection that ends without QUIT (dropped, timed out, or the server
// shutting down) deletes nothing (RFC 1939 §6: only QUIT enters UPDATE).
func TestNoQuitDeletesNothing(t *testing.T) {
	t.Parallel()
	t.Run("dropped", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t, envOptions{})
		e.deliver(t, testMessage(1))
		e.deliver(t, testMessage(2))
		c := e.login(t)
		c.cmd("RETR 1", `^\+OK`)
		c.multi()
		c.cmd("DELE 1", `^\+OK`)
		c.cmd("DELE 2", `^\+OK`)
		c.conn.Close()
		// Shutdown waits for the session to end.
		e.shutdown(t)
		e.holds(t, 1, 2)
		for u, m := range e.stored(t) {
			if len(m.Flags) != 0 {
				t.Errorf("message %d has flags %q after a drop, want none", u, m.Flags)
			}
		}
	})
	t.Run("idle timeout", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t, envOptions{server: Options{IdleTimeout: 100 * time.Millisecond}})
		e.deliver(t, testMessage(1))
		c := e.login(t)
		c.cmd("DELE 1", `^\+OK`)
		c.expect(`^-ERR Disconnected for inactivity$`)
		c.expectClosed()
		e.shutdown(t)
		e.holds(t, 1)
	})
	t.Run("shutdown", func(t *testing.T) {
		t.Parallel()
		e := newTestEnv(t, envOptions{})
		e.deliver(t, testMessage(1))
		c := e.login(t)
		c.cmd("DELE 1", `^\+OK`)
		e.shutdown(t)
		c.expect(`^-ERR \[SYS/TEMP\] Server shutting down$`)
		c.expectClosed()
		e.holds(t, 1)
	})
}

// Shutdown does not wait for a client that was asked for an AUTH
// response and sends none (the read holds the session's lock).
func TestShutdownDuringAuthResponse(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{server: Options{CommandTimeout: time.Minute}})
	c := e.dial(t)
	c.cmd("AUTH PLAIN", `^\+ $`)
	// CommandTimeout is a minute: a Shutdown that waited for the client
	// would fail e.shutdown's own deadline first.
	e.shutdown(t)
	c.expect(`^-ERR `)
	c.expectClosed()
}

// Two sessions of one user: each removes what it marked; a message both
// marked is removed once, and the second QUIT still succeeds.
func TestConcurrentSessions(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	for i := range 3 {
		e.deliver(t, testMessage(i))
	}
	a, b := e.login(t), e.login(t)
	a.cmd("DELE 1", `^\+OK`)
	a.cmd("DELE 2", `^\+OK`)
	b.cmd("DELE 2", `^\+OK`)
	a.cmd("QUIT", `^\+OK`)
	e.holds(t, 3)
	b.cmd("QUIT", `^\+OK`)
	e.holds(t, 3)
}

// AUTH PLAIN (RFC 5034, RFC 4616): initial response on the line, or
// after "+ "; "=" for an empty one; "*" cancels.
func TestAuthPlain(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	e.deliver(t, testMessage(1))
	plain := func(authz, user, pass string) string {
		return base64.StdEncoding.EncodeToString([]byte(authz + "\x00" + user + "\x00" + pass))
	}
	c := e.dial(t)
	c.send("AUTH")
	c.expect(`^\+OK`)
	if got := c.multi(); !slices.Equal(got, []string{"PLAIN"}) {
		t.Errorf("AUTH = %q, want [PLAIN]", got)
	}
	c.cmd("AUTH LOGIN", `^-ERR Unsupported SASL mechanism$`)
	c.cmd("AUTH PLAIN "+plain("", testUser, "wrong"), `^-ERR \[AUTH\] Authentication failed$`)
	c.cmd("AUTH PLAIN "+plain("bob@localhost", testUser, testPassword), `^-ERR \[AUTH\] SASL authorization identity not supported$`)
	c.cmd("AUTH PLAIN not-base64!", `^-ERR Malformed SASL response$`)
	c.cmd("AUTH PLAIN =", `^-ERR Malformed SASL response$`)
	c.cmd("AUTH PLAIN", `^\+ $`)
	c.cmd("*", `^-ERR Authentication cancelled$`)
	c.cmd("AUTH PLAIN", `^\+ $`)
	c.cmd(plain("", testUser, "wrong"), `^-ERR \[AUTH\] Authentication failed$`)
	c.cmd("AUTH plain", `^\+ $`)
	c.cmd(plain(testUser, testUser, testPassword), `^\+OK Logged in, 1 messages`)
	c.cmd("STAT", `^\+OK 1 `)

	c = e.dial(t)
	c.cmd("AUTH PLAIN "+plain("", testUser, testPassword), `^\+OK Logged in`)
	c.cmd("QUIT", `^\+OK`)
}

// A password with spaces is the rest of PASS's line (RFC 1939 §7).
func TestPasswordWithSpaces(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	if err := e.store.SetPassword(context.Background(), testUser, " two  words "); err != nil {
		t.Fatal(err)
	}
	c := e.dial(t)
	c.cmd("USER "+testUser, `^\+OK`)
	c.cmd("PASS  two  words ", `^\+OK Logged in`)
}

// The store's -ERR mapping: a fault of the QUIT write is -ERR
// [SYS/TEMP], logged as an error, and changes nothing (one write: no
// \Seen without the removal); the next session finds the maildrop whole.
func TestQuitStoreFault(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	u1 := e.deliver(t, testMessage(1))
	u2 := e.deliver(t, testMessage(2))
	injectFault(t, e, "BEFORE DELETE ON messages")
	c := e.login(t)
	c.cmd("RETR 2", `^\+OK`)
	c.multi()
	c.cmd("DELE 1", `^\+OK`)
	c.cmd("QUIT", `^-ERR \[SYS/TEMP\] Internal server error, try again later$`)
	c.expectClosed()
	if errs := e.logs.takeErrors(); !slices.Contains(errs, "store failure") {
		t.Errorf("logged errors %q, want the store failure", errs)
	}
	e.holds(t, u1, u2)
	if f := e.stored(t)[u2].Flags; len(f) != 0 {
		t.Errorf("flags of the retrieved message after the failed QUIT = %q, want none", f)
	}
}

// A store fault at login (the snapshot) is -ERR [SYS/TEMP]; the session
// stays in the AUTHORIZATION state.
func TestLoginStoreFault(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	e.deliver(t, testMessage(1))
	breakSizes(t, e)
	c := e.dial(t)
	c.cmd("USER "+testUser, `^\+OK`)
	c.cmd("PASS "+testPassword, `^-ERR \[SYS/TEMP\] Internal server error, try again later$`)
	c.cmd("STAT", `^-ERR Command not valid in this state$`)
	if errs := e.logs.takeErrors(); !slices.Contains(errs, "store failure") {
		t.Errorf("logged errors %q, want the store failure", errs)
	}
}

// A deleted account's login is -ERR [AUTH]; one deleted while its session
// runs answers RETR with -ERR, and QUIT removes nothing of anyone's.
func TestDeletedAccount(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	e.deliver(t, testMessage(1))
	c := e.login(t)
	if err := e.store.DeleteUser(context.Background(), testUser); err != nil {
		t.Fatal(err)
	}
	c.cmd("RETR 1", `^-ERR Message no longer exists$`)
	c.cmd("DELE 1", `^\+OK`)
	c.cmd("QUIT", `^\+OK`)
	c = e.dial(t)
	c.cmd("USER "+testUser, `^\+OK`)
	c.cmd("PASS "+testPassword, `^-ERR \[AUTH\] Authentication failed$`)
}

// Line limits, invalid commands and other protocols end the session.
func TestClientMistakes(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	c := e.dial(t)
	c.cmd(strings.Repeat("A", maxLineLength+10), `^-ERR Line too long$`)
	c.expectClosed()

	c = e.dial(t)
	for range maxBadCommands - 1 {
		c.cmd("XYZZY", `^-ERR Unknown command$`)
	}
	c.cmd("XYZZY", `^-ERR Too many invalid commands$`)
	c.expectClosed()

	c = e.dial(t)
	c.cmd("GET / HTTP/1.1", `^-ERR This is a POP3 server$`)
	c.expectClosed()

	// A bare LF ends a command line too.
	c = e.dial(t)
	if _, err := c.conn.Write([]byte("CAPA\n")); err != nil {
		t.Fatal(err)
	}
	c.expect(`^\+OK`)
	c.multi()
}

// injectFault makes the store fail every statement a trigger at when
// ("BEFORE DELETE ON messages") fires for, as a broken disk would. Only
// tests reach under the store like this, through a connection of their
// own.
func injectFault(t *testing.T, e *testEnv, when string) {
	t.Helper()
	execRaw(t, e, fmt.Sprintf("CREATE TRIGGER test_fault %s BEGIN SELECT RAISE(ABORT, 'injected disk fault'); END", when))
}

// breakSizes makes every read of the stored CRLF sizes (the login's
// snapshot, mailstore.Maildrop) fail, as a corrupt database would: the
// table is renamed away.
func breakSizes(t *testing.T, e *testEnv) {
	t.Helper()
	execRaw(t, e, "PRAGMA legacy_alter_table = ON; ALTER TABLE body_crlf_size RENAME TO body_crlf_size_gone")
}
