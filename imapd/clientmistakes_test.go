package imapd

import (
	"bytes"
	"io"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Tests of issue 14's behaviour fixes that go-imap's imapserver got
// wrong: client mistakes answered as such and logged quietly, commands
// unknown before login, ID, and content with NUL bytes.

// readToClose reads what the server sends until it closes the connection.
func (c *rawConn) readToClose() string {
	c.t.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		c.t.Fatal(err)
	}
	b, err := io.ReadAll(c.r)
	if err != nil && !strings.Contains(err.Error(), "reset") {
		c.t.Fatalf("reading to the close: %v (after %q)", err, b)
	}
	return string(b)
}

// RFC 9051 §7.1.3: a command the server does not know is BAD. Before
// login too, and the connection stays: clients send ID (RFC 2971) or
// vendor commands before LOGIN. imapserver answered BAD and BYE.
func TestUnknownCommandBeforeLogin(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.dialNoLogin(t)
	if _, tagged := c.cmd("XFROBNICATE now"); !strings.HasPrefix(tagged, "BAD ") {
		t.Errorf("XFROBNICATE before login = %q, want BAD", tagged)
	}
	untagged, tagged := c.cmd(`ID ("name" "clientmistakes_test" "version" "1")`)
	if tagged != "OK ID completed" || len(untagged) != 1 || !strings.HasPrefix(untagged[0], `* ID ("name" "pushmail" "version" `) {
		t.Errorf("ID before login = %q %q, want * ID (\"name\" \"pushmail\" \"version\" …) and OK", untagged, tagged)
	}
	c.ok("LOGIN %s %s", testUser, testPassword)
	// RFC 2971 §3.1: ID after login too; NIL is the client's empty list.
	if untagged, _ := c.cmd("ID NIL"); len(untagged) != 1 || !strings.HasPrefix(untagged[0], "* ID (") {
		t.Errorf("ID NIL after login = %q", untagged)
	}
}

// Repeated garbage before login ends the connection after maxBadCommands,
// and a line of another protocol (a browser, an MTA sent here by mistake,
// a cross-protocol attack) ends it at once.
func TestGarbageBeforeLoginCloses(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.dialNoLogin(t)
	for i := 1; i < maxBadCommands; i++ {
		if _, tagged := c.cmd("garbage%d", i); !strings.HasPrefix(tagged, "BAD ") {
			t.Fatalf("garbage %d = %q, want BAD", i, tagged)
		}
	}
	c.send("garbage%d", maxBadCommands)
	if got := c.readToClose(); !strings.Contains(got, "* BYE Too many invalid commands") {
		t.Errorf("command %d of garbage got %q, want BYE and close", maxBadCommands, got)
	}

	for _, line := range []string{"GET / HTTP/1.1", "EHLO client.example"} {
		c := env.dialNoLogin(t)
		if _, err := io.WriteString(c.conn, line+"\r\n"); err != nil {
			t.Fatal(err)
		}
		if got := c.readToClose(); !strings.Contains(got, "* BYE ") {
			t.Errorf("%q got %q, want BYE and close", line, got)
		}
	}
}

// Syntax errors are the client's: BAD (RFC 9051 §7.1.3), not
// NO [SERVERBUG], and not logged as a server problem. Invalid modified
// UTF-7 in a mailbox name is such an error (RFC 3501 §5.1.3).
func TestClientSyntaxErrorsAreBAD(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	env := newTestEnv(t, envOptions{logs: logs})
	env.deliver(t, testMessage(1))
	c := env.raw(t)
	c.ok("SELECT INBOX")
	for _, cmd := range []string{
		"SEARCH FOO",
		"FETCH 1:abc FLAGS",
		"UID FETCH 1 (FLAGS",
		`CREATE "&Jjo"`,
		`LIST "" "&Jjo"`,
		"STORE 1 +FLAGS (\\Seen",
	} {
		if _, tagged := c.cmd("%s", cmd); !strings.HasPrefix(tagged, "BAD ") {
			t.Errorf("%s = %q, want BAD", cmd, tagged)
		}
	}
	// The session goes on with its mailbox selected...
	if untagged := c.ok("FETCH 1 (UID)"); len(untagged) != 1 {
		t.Errorf("FETCH after the mistakes = %q", untagged)
	}
	// ...except after a failed SELECT, which leaves none (RFC 3501
	// §6.3.1), whatever made it fail.
	if _, tagged := c.cmd(`SELECT "&Jjo"`); !strings.HasPrefix(tagged, "BAD ") {
		t.Errorf(`SELECT "&Jjo" = %q, want BAD`, tagged)
	}
	if _, tagged := c.cmd("FETCH 1 (UID)"); !strings.HasPrefix(tagged, "BAD ") {
		t.Errorf("FETCH after a failed SELECT = %q, want BAD (no mailbox selected)", tagged)
	}
	if l := logs.String(); strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
		t.Errorf("client mistakes logged as server problems:\n%s", l)
	}
	// Nothing was created, nothing lost.
	if uids := env.storeUIDs(t, "INBOX"); len(uids) != 1 {
		t.Errorf("INBOX holds %v, want its one message", uids)
	}
}

// nulMessage has a text part whose body holds NUL bytes (RFC 3516: a
// "binary" part).
const nulMessage = "Subject: nul\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n" +
	"--b\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: binary\r\n\r\n" +
	"ab\x00cd\x00ef\r\n--b--\r\n"

// readFetchLiteral runs a FETCH whose one item is a literal and returns
// the line up to the literal, and the literal's bytes.
func (c *rawConn) readFetchLiteral(format string, args ...any) (head string, data []byte) {
	c.t.Helper()
	tag := c.send(format, args...)
	head = c.readLine()
	open := strings.LastIndexByte(head, '{')
	if open < 0 || !strings.HasSuffix(head, "}") {
		c.t.Fatalf("FETCH answer %q, want a literal", head)
	}
	n, err := strconv.Atoi(head[open+1 : len(head)-1])
	if err != nil {
		c.t.Fatalf("literal size in %q: %v", head, err)
	}
	data = make([]byte, n)
	if _, err := io.ReadFull(c.r, data); err != nil {
		c.t.Fatal(err)
	}
	if rest := c.readLine(); rest != ")" {
		c.t.Errorf("after the literal: %q, want )", rest)
	}
	if done := c.readLine(); !strings.HasPrefix(done, tag+" OK") {
		c.t.Errorf("FETCH: %q", done)
	}
	return head, data
}

// NUL never goes into a plain literal (RFC 9051 §4.3 CHAR8): BINARY
// sends the part as literal8 with its NULs (RFC 3516 §4.2), BODY as a
// literal with each NUL as 0x80. Partial answers carry their origin
// (RFC 9051 §7.5.2: BINARY[1]<2>).
func TestFetchContentWithNUL(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, []byte(nulMessage))
	c := env.raw(t)
	c.ok("SELECT INBOX")

	head, data := c.readFetchLiteral("FETCH 1 (BINARY.PEEK[1])")
	if head != "* 1 FETCH (BINARY[1] ~{8}" || !bytes.Equal(data, []byte("ab\x00cd\x00ef")) {
		t.Errorf("BINARY[1] = %q %q, want literal8 of the bytes with their NULs", head, data)
	}
	head, data = c.readFetchLiteral("FETCH 1 (BINARY.PEEK[1]<2.3>)")
	if head != "* 1 FETCH (BINARY[1]<2> ~{3}" || !bytes.Equal(data, []byte("\x00cd")) {
		t.Errorf("BINARY[1]<2.3> = %q %q, want origin <2> and literal8 \\0cd", head, data)
	}
	head, data = c.readFetchLiteral("FETCH 1 (BODY.PEEK[1])")
	if head != "* 1 FETCH (BODY[1] {8}" || !bytes.Equal(data, []byte("ab\x80cd\x80ef")) {
		t.Errorf("BODY[1] = %q %q, want a literal with 0x80 for each NUL", head, data)
	}
	head, data = c.readFetchLiteral("FETCH 1 (BODY.PEEK[1]<2.3>)")
	if head != "* 1 FETCH (BODY[1]<2> {3}" || !bytes.Equal(data, []byte("\x80cd")) {
		t.Errorf("BODY[1]<2.3> = %q %q, want origin <2>", head, data)
	}
	// The store keeps the bytes as delivered.
	if msgs := env.storeMessages(t, "INBOX"); len(msgs) != 1 || !bytes.Contains(msgs[0].Raw, []byte("ab\x00cd\x00ef")) {
		t.Errorf("the store lost the NUL bytes")
	}
}
