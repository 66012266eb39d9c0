package main

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"pushmail/mailstore"
)

// exitBound is how long the server may take to exit after SIGTERM when
// nothing holds it up: its shutdownTimeout (20 s) bounds a stuck
// transaction; this test's transaction finishes at once.
const exitBound = 25 * time.Second

// TestSIGTERM stops the real binary while clients are connected: an IMAP
// client in IDLE, an idle SMTP connection, and an SMTP transaction in the
// middle of DATA. The listeners stop accepting; the idle SMTP connection
// reads 421; the transaction either completes with 250 and its message is
// kept, or gets a 4xx and is not, never a 250 for a lost message; the IDLE
// client reads * BYE; the process exits 0; and the database is closed
// cleanly: the server starts again on it, "pushmail stats" works and
// SQLite's integrity check passes.
func TestSIGTERM(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")

	// An IMAP client in IDLE on INBOX.
	idle := dialSig(t, srv.addr("imap"))
	idle.expectPrefix(t, "* OK")
	idle.imapOK(t, "a1", "LOGIN alice@localhost secret")
	idle.imapOK(t, "a2", "SELECT INBOX")
	idle.send(t, "a3 IDLE\r\n")
	idle.expectPrefix(t, "+")

	// An SMTP connection between transactions.
	quiet := dialSig(t, srv.addr("smtp"))
	quiet.expectPrefix(t, "220 ")
	quiet.smtp(t, 250, "EHLO quiet.test")

	// An SMTP transaction half way through DATA.
	subject := "in flight " + rand.Text()
	busy := dialSig(t, srv.addr("smtp"))
	busy.expectPrefix(t, "220 ")
	busy.smtp(t, 250, "EHLO busy.test")
	busy.smtp(t, 250, "MAIL FROM:<sender@remote.example>")
	busy.smtp(t, 250, "RCPT TO:<alice@localhost>")
	busy.smtp(t, 354, "DATA")
	busy.send(t, "From: sender@remote.example\r\nSubject: "+subject+"\r\n\r\nfirst half\r\n")

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}

	// RFC 5321 §3.8: the idle connection is told 421 and closed.
	quiet.expectPrefix(t, "421 4.3.2 ")
	quiet.expectEOF(t)
	// smtpd closed its listeners before it drained the connections.
	for _, proto := range []string{"smtp", "submission", "lmtp"} {
		if nc, err := net.DialTimeout("tcp", srv.addr(proto), 5*time.Second); err == nil {
			nc.Close()
			t.Errorf("%s: a new connection was accepted after SIGTERM, want refused", proto)
		}
	}

	// The transaction in progress may finish.
	busy.send(t, "second half\r\n.\r\n")
	code := busy.smtpReply(t)
	switch {
	case code == 250:
	case code/100 == 4:
		t.Logf("DATA during shutdown: %d (temporary), the message must be absent", code)
	default:
		t.Fatalf("DATA during shutdown: %d, want 250 or 4xx", code)
	}
	busy.expectClosedAfter421(t)

	// RFC 9051 §7.1.5: the IDLE client is told BYE, after the push of
	// the message if it was delivered.
	for {
		s, err := idle.line()
		if err != nil {
			t.Fatalf("IDLE client: %v before * BYE", err)
		}
		if strings.HasPrefix(s, "* BYE") {
			break
		}
		if !strings.HasPrefix(s, "* ") {
			t.Fatalf("IDLE client read %q, want untagged data, then * BYE", s)
		}
	}
	if nc, err := net.DialTimeout("tcp", srv.addr("imap"), 5*time.Second); err == nil {
		nc.Close()
		t.Errorf("imap: a new connection was accepted after * BYE, want refused")
	}

	select {
	case err := <-srv.done:
		if err != nil {
			t.Fatalf("pushmail serve after SIGTERM: %v, want exit 0\n%s", err, srv.logText())
		}
	case <-time.After(exitBound):
		t.Fatalf("pushmail serve still running %v after SIGTERM", exitBound)
	}
	log := srv.logText()
	if !strings.Contains(log, "pushmail stopped") || strings.Contains(log, "level=ERROR") {
		t.Errorf("server log after SIGTERM lacks a clean stop or has errors:\n%s", log)
	}

	// The database was closed cleanly.
	db, err := mailstore.Open(context.Background(), filepath.Join(data, dbFile), mailstore.Options{})
	if err != nil {
		t.Fatalf("mailstore.Open after SIGTERM: %v", err)
	}
	if err := db.IntegrityCheck(context.Background()); err != nil {
		t.Errorf("IntegrityCheck after SIGTERM: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Errorf("Close: %v", err)
	}
	want := 0
	if code == 250 {
		want = 1
	}
	if out := cli(t, "", "stats", "--data", data); !regexp.MustCompile(fmt.Sprintf(`(?m)^messages\s+%d$`, want)).MatchString(out) {
		t.Errorf("pushmail stats after SIGTERM, want %d messages:\n%s", want, out)
	}

	// The server starts again, and the message is there if it was
	// acknowledged, and only then.
	srv2 := startServer(t, data)
	c := dialSig(t, srv2.addr("imap"))
	c.expectPrefix(t, "* OK")
	c.imapOK(t, "b1", "LOGIN alice@localhost secret")
	c.imapOK(t, "b2", "SELECT INBOX")
	found := 0
	for _, line := range c.imapOK(t, "b3", `SEARCH HEADER Subject "`+subject+`"`) {
		if nums, ok := strings.CutPrefix(line, "* SEARCH"); ok {
			found = len(strings.Fields(nums))
		}
	}
	if found != want {
		t.Errorf("after restart, %d messages with the in-flight subject, want %d (DATA got %d)", found, want, code)
	}
	c.imapOK(t, "b4", "LOGOUT")
	if err := srv2.stop(t); err != nil {
		t.Errorf("second pushmail serve after SIGTERM: %v, want exit 0", err)
	}
}

// TestSIGTERMIdleSMTP: SMTP and LMTP clients that wait between commands,
// after EHLO or in the middle of a transaction, in plaintext or under
// STARTTLS, do not hold the shutdown:
// each reads "421 4.3.2 … Service shutting down" (RFC 5321 §3.8) and is
// closed, the server exits 0 and logs no error. Had the server waited for
// them until its shutdownTimeout, the bounded reads and the bounded wait
// for the exit below would fail.
func TestSIGTERMIdleSMTP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	srv := startServer(t, data, "--dev-tls")
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")

	// A submission client idle under STARTTLS reads the same 421, through
	// TLS.
	underTLS := dialSig(t, srv.addr("submission"))
	underTLS.expectPrefix(t, "220 ")
	underTLS.smtp(t, 250, "EHLO quiet.test")
	underTLS.smtp(t, 220, "STARTTLS")
	tc := tls.Client(underTLS.nc, &tls.Config{InsecureSkipVerify: true}) // --dev-tls: self-signed
	if err := tc.Handshake(); err != nil {
		t.Fatalf("STARTTLS handshake: %v", err)
	}
	underTLS = &sigConn{nc: tc, r: bufio.NewReader(tc)}
	underTLS.smtp(t, 250, "EHLO quiet.test")
	afterEHLO := dialSig(t, srv.addr("smtp"))
	afterEHLO.expectPrefix(t, "220 ")
	afterEHLO.smtp(t, 250, "EHLO quiet.test")
	midTxn := dialSig(t, srv.addr("smtp"))
	midTxn.expectPrefix(t, "220 ")
	midTxn.smtp(t, 250, "EHLO quiet.test")
	midTxn.smtp(t, 250, "MAIL FROM:<sender@remote.example>")
	midTxn.smtp(t, 250, "RCPT TO:<alice@localhost>")
	lmtp := dialSig(t, srv.addr("lmtp"))
	lmtp.expectPrefix(t, "220 ")
	lmtp.smtp(t, 250, "LHLO quiet.test")
	lmtp.smtp(t, 250, "MAIL FROM:<sender@remote.example>")

	if err := srv.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	// Well short of shutdownTimeout: a server that waited for these
	// clients would not answer within it.
	bound := shutdownTimeout / 2
	for name, c := range map[string]*sigConn{"after EHLO": afterEHLO, "mid-transaction": midTxn, "LMTP": lmtp, "under STARTTLS": underTLS} {
		if err := c.nc.SetReadDeadline(time.Now().Add(bound)); err != nil {
			t.Fatal(err)
		}
		s, err := c.r.ReadString('\n')
		if err != nil || !strings.HasPrefix(s, "421 4.3.2 ") || !strings.Contains(s, "Service shutting down") {
			t.Fatalf("%s: read %q, %v after SIGTERM; want 421 4.3.2 … Service shutting down", name, s, err)
		}
		if s, err := c.r.ReadString('\n'); !errors.Is(err, io.EOF) {
			t.Fatalf("%s: read %q, %v after the 421; want the connection closed", name, s, err)
		}
	}
	select {
	case err := <-srv.done:
		if err != nil {
			t.Fatalf("pushmail serve after SIGTERM: %v, want exit 0\n%s", err, srv.logText())
		}
	case <-time.After(bound):
		t.Fatalf("pushmail serve still running %v after SIGTERM with only idle clients", bound)
	}
	for _, line := range strings.Split(srv.logText(), "\n") {
		if strings.Contains(line, "using a self-signed development certificate") {
			continue // --dev-tls's own warning, at start
		}
		if strings.Contains(line, "level=ERROR") || strings.Contains(line, "level=WARN") {
			t.Errorf("server log after SIGTERM with idle clients has a warning or error: %s", line)
		}
	}
}

// sigConn is a client connection read line by line, each read bounded by
// exitBound: long enough for a shutdown, short of a hung test.
type sigConn struct {
	nc net.Conn
	r  *bufio.Reader
}

func dialSig(t *testing.T, addr string) *sigConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { nc.Close() })
	return &sigConn{nc: nc, r: bufio.NewReader(nc)}
}

func (c *sigConn) send(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		t.Fatalf("write %q: %v", s, err)
	}
}

// line reads one line without its CRLF; io.EOF when the server closed.
func (c *sigConn) line() (string, error) {
	if err := c.nc.SetReadDeadline(time.Now().Add(exitBound)); err != nil {
		return "", err
	}
	s, err := c.r.ReadString('\n')
	if err != nil {
		return s, err
	}
	return strings.TrimRight(s, "\r\n"), nil
}

func (c *sigConn) expectPrefix(t *testing.T, prefix string) string {
	t.Helper()
	s, err := c.line()
	if err != nil || !strings.HasPrefix(s, prefix) {
		t.Fatalf("read %q, %v; want %q…", s, err, prefix)
	}
	return s
}

func (c *sigConn) expectEOF(t *testing.T) {
	t.Helper()
	if s, err := c.line(); !errors.Is(err, io.EOF) {
		t.Fatalf("read %q, %v; want the connection closed", s, err)
	}
}

// smtpReply reads a reply, possibly multi-line, and returns its code.
func (c *sigConn) smtpReply(t *testing.T) int {
	t.Helper()
	for {
		s, err := c.line()
		if err != nil || len(s) < 4 {
			t.Fatalf("read reply %q: %v", s, err)
		}
		if s[3] == ' ' {
			var code int
			if _, err := fmt.Sscanf(s[:3], "%d", &code); err != nil {
				t.Fatalf("reply %q: %v", s, err)
			}
			return code
		}
	}
}

// smtp sends a command and checks the reply's code.
func (c *sigConn) smtp(t *testing.T, code int, cmd string) {
	t.Helper()
	c.send(t, cmd+"\r\n")
	if got := c.smtpReply(t); got != code {
		t.Fatalf("%s: reply %d, want %d", cmd, got, code)
	}
}

// expectClosedAfter421 reads until the server closes, which it may do
// after a 421 (smtpd drains a connection once its transaction ends).
func (c *sigConn) expectClosedAfter421(t *testing.T) {
	t.Helper()
	for {
		s, err := c.line()
		if errors.Is(err, io.EOF) {
			return
		}
		if err != nil {
			t.Fatalf("read after DATA: %v", err)
		}
		if !strings.HasPrefix(s, "421 ") {
			t.Fatalf("read %q after DATA during shutdown, want 421 or the connection closed", s)
		}
	}
}

// imapOK sends a tagged command and returns its untagged responses; the
// tagged one must be OK.
func (c *sigConn) imapOK(t *testing.T, tag, cmd string) []string {
	t.Helper()
	c.send(t, tag+" "+cmd+"\r\n")
	var untagged []string
	for {
		s, err := c.line()
		if err != nil {
			t.Fatalf("%s: %v", cmd, err)
		}
		if rest, ok := strings.CutPrefix(s, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				t.Fatalf("%s: %s", cmd, s)
			}
			return untagged
		}
		untagged = append(untagged, s)
	}
}
