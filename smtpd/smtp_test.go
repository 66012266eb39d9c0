package smtpd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestExtensions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxMessageBytes: 1 << 20}})
	c := e.dial(roleMX)
	for _, tc := range []struct {
		ext   string
		param string
	}{
		{"PIPELINING", ""},          // RFC 2920
		{"8BITMIME", ""},            // RFC 6152
		{"SMTPUTF8", ""},            // RFC 6531
		{"SIZE", "1048576"},         // RFC 1870
		{"CHUNKING", ""},            // RFC 3030
		{"ENHANCEDSTATUSCODES", ""}, // RFC 2034
		{"STARTTLS", ""},            // RFC 3207
	} {
		ok, param := c.Extension(tc.ext)
		if !ok || param != tc.param {
			t.Errorf("EHLO: %s = %v %q, want advertised with %q", tc.ext, ok, param, tc.param)
		}
	}
	if ok, _ := c.Extension("AUTH"); ok {
		t.Errorf("EHLO on the MX advertises AUTH, want none")
	}
}

// TestGreeting: the reply to EHLO, LHLO and HELO names this server
// first, then greets the client (RFC 5321 §4.1.1.1); the EHLO reply's
// extension lines follow unchanged.
func TestGreeting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for _, tc := range []struct {
		name  string
		role  role
		cmd   string
		first string // the reply's first line
	}{
		{"EHLO", roleMX, "EHLO client.test", "250-" + testHostname + " greets client.test"},
		{"LHLO", roleLMTP, "LHLO client.test", "250-" + testHostname + " greets client.test"},
		{"HELO", roleMX, "HELO client.test", "250 " + testHostname + " greets client.test"},
		{"submission EHLO", roleSubmission, "EHLO [127.0.0.1]", "250-" + testHostname + " greets [127.0.0.1]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, e.addr[tc.role])
			c.expect(220, testHostname)
			c.send(tc.cmd + "\r\n")
			line, err := c.r.ReadLine()
			if err != nil {
				t.Fatalf("%s: read reply: %v", tc.cmd, err)
			}
			if line != tc.first {
				t.Errorf("%s: first reply line %q, want %q", tc.cmd, line, tc.first)
			}
			if strings.HasPrefix(tc.first, "250-") {
				c.expect(250, "") // the rest of the EHLO reply
			}
			c.send("NOOP\r\n")
			c.expect(250, "2.0.0")
		})
	}
}

// TestDeliver sends one message and reads it back: trace fields, then the
// sent bytes unchanged.
func TestDeliver(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(roleMX)
	msg := testMessage("deliver", 20)
	if err := send(t, c, "sender@remote.example", []string{"Alice@Example.org"}, msg); err != nil {
		t.Fatalf("DATA = %v, want 250", err)
	}
	received, rest := cutTrace(t, e.only("alice@example.org"), "sender@remote.example", "Alice@Example.org")
	if !bytes.Equal(rest, msg) {
		t.Errorf("stored message after trace fields:\n%q\nwant the sent bytes:\n%q", rest, msg)
	}
	for _, want := range []string{
		"Received: from client.test ([127.0.0.1]) by mx.test (pushmail) with ESMTP id ",
		" for <Alice@Example.org>; ",
	} {
		if !strings.Contains(received, want) {
			t.Errorf("Received field %q does not contain %q", received, want)
		}
	}
	if err := c.Quit(); err != nil {
		t.Errorf("QUIT: %v", err)
	}
}

// TestRcptReplies checks the reply to RCPT for each kind of address on the
// MX: local ones are accepted, nothing is relayed.
func TestRcptReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(roleMX)
	for _, tc := range []struct {
		name, rcpt string
		code       int
		enh        string
	}{
		{"user", "alice@example.org", 0, ""},
		{"case-insensitive local part and domain", "ALICE@Example.ORG", 0, ""},
		{"plus tag", "alice+lists@example.org", 0, ""},
		{"alias", "info@example.org", 0, ""},
		{"quoted plain local part", `"bob"@example.org`, 0, ""},
		{"source route to a local user is ignored", "@relay.example:alice@example.org", 0, ""},
		{"unknown user", "nobody@example.org", 550, "5.1.1"},
		{"unknown user with plus tag", "nobody+x@example.org", 550, "5.1.1"},
		{"relay", "someone@elsewhere.example", 550, "5.7.1"},
		{"relay to a subdomain", "alice@sub.example.org", 550, "5.7.1"},
		{"relay through a source route", "@example.org:someone@elsewhere.example", 550, "5.7.1"},
		{"percent hack", "someone%elsewhere.example@example.org", 553, "5.1.3"},
		{"bang path", "elsewhere.example!someone@example.org", 553, "5.1.3"},
		{"quoted local part with space", `"a b"@example.org`, 553, "5.1.3"},
		{"quoted local part with @", `"someone@elsewhere.example"@example.org`, 553, "5.1.3"},
		{"address literal", "alice@[127.0.0.1]", 553, "5.1.3"},
		{"non-ASCII without SMTPUTF8", "jörg@example.org", 553, "5.6.7"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := c.Mail("sender@remote.example", nil); err != nil {
				t.Fatalf("MAIL: %v", err)
			}
			defer func() {
				if err := c.Reset(); err != nil {
					t.Fatalf("RSET: %v", err)
				}
			}()
			wantReply(t, "RCPT TO:<"+tc.rcpt+">", c.Rcpt(tc.rcpt, nil), tc.code, tc.enh)
		})
	}
}

func TestMailReplies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := dialRaw(t, e.addr[roleMX])
	c.expect(220, testHostname)
	c.send("EHLO client.test\r\n")
	c.expect(250, "")
	for _, tc := range []struct {
		name, cmd string
		code      int
		prefix    string
	}{
		{"null sender", "MAIL FROM:<>", 250, "2.0.0"},
		{"nested MAIL", "MAIL FROM:<a@remote.example>", 503, "5.5.1"},
		{"reset", "RSET", 250, "2.0.0"},
		{"control character in the sender", "MAIL FROM:<\"a\x01b\"@remote.example>", 553, "5.1.7"},
		{"REQUIRETLS without TLS", "MAIL FROM:<a@remote.example> REQUIRETLS", 530, "5.7.10"},
		{"non-ASCII sender without SMTPUTF8", "MAIL FROM:<jörg@remote.example>", 553, "5.6.7"},
		{"non-ASCII sender with SMTPUTF8", "MAIL FROM:<jörg@remote.example> SMTPUTF8", 250, "2.0.0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c.t = t
			c.send(tc.cmd + "\r\n")
			c.expect(tc.code, tc.prefix)
		})
	}
}

func TestSMTPUTF8(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(roleMX)
	if err := c.Mail("sénder@remote.example", &smtp.MailOptions{UTF8: true}); err != nil {
		t.Fatalf("MAIL FROM with SMTPUTF8: %v", err)
	}
	if err := c.Rcpt("JÖRG@example.org", nil); err != nil {
		t.Fatalf("RCPT TO:<JÖRG@example.org> = %v, want 250", err)
	}
	msg := []byte("From: sénder@remote.example\r\nTo: jörg@example.org\r\nSubject: Grüße\r\n\r\nHallo Jörg, schöne Grüße!\r\n")
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := w.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA = %v, want 250", err)
	}
	received, rest := cutTrace(t, e.only("jörg@example.org"), "sénder@remote.example", "JÖRG@example.org")
	if !bytes.Equal(rest, msg) {
		t.Errorf("stored %q, want %q", rest, msg)
	}
	if !strings.Contains(received, "for <JÖRG@example.org>") {
		t.Errorf("Received %q: want for <JÖRG@example.org>", received)
	}
}

// TestPipelining sends a whole transaction in one write (RFC 2920) to two
// users, an alias, a plus tag, a second address of the same user and an
// unknown user: one copy per mailbox, one transaction.
func TestPipelining(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := dialRaw(t, e.addr[roleMX])
	c.expect(220, "")
	c.send("EHLO client.test\r\n")
	c.expect(250, "")
	c.send("MAIL FROM:<sender@remote.example>\r\n" +
		"RCPT TO:<alice@example.org>\r\n" +
		"RCPT TO:<bob@example.org>\r\n" +
		"RCPT TO:<info@example.org>\r\n" +
		"RCPT TO:<dave+lists@example.org>\r\n" +
		"RCPT TO:<ALICE+again@example.org>\r\n" +
		"RCPT TO:<nobody@example.org>\r\n" +
		"DATA\r\n")
	for range 6 {
		c.expect(250, "2.0.0")
	}
	c.expect(550, "5.1.1")
	c.expect(354, "")
	// On the wire, a line starting with "." is doubled (RFC 5321 §4.5.2).
	c.send("Subject: pipelined\r\n\r\n..a line that starts with a dot\r\nend\r\n.\r\n")
	c.expect(250, "2.0.0")
	c.send("QUIT\r\n")
	c.expect(221, "")

	want := []byte("Subject: pipelined\r\n\r\n.a line that starts with a dot\r\nend\r\n")
	var receiveds []string
	for _, rc := range []struct{ user, deliveredTo string }{
		{"alice@example.org", "alice@example.org"},
		{"bob@example.org", "bob@example.org"},
		{"carol@example.org", "info@example.org"},
		{"dave@example.org", "dave+lists@example.org"},
	} {
		received, rest := cutTrace(t, e.only(rc.user), "sender@remote.example", rc.deliveredTo)
		if !bytes.Equal(rest, want) {
			t.Errorf("%s: stored %q, want %q", rc.user, rest, want)
		}
		if strings.Contains(received, " for <") {
			t.Errorf("%s: Received %q names a recipient of a multi-recipient transaction", rc.user, received)
		}
		receiveds = append(receiveds, received)
	}
	for _, r := range receiveds[1:] {
		if r != receiveds[0] {
			t.Errorf("Received fields differ between copies of one transaction: %q and %q", r, receiveds[0])
		}
	}
}

func TestOversize(t *testing.T) {
	t.Parallel()
	const limit = 10000
	e := newEnv(t, envConfig{opts: Options{MaxMessageBytes: limit}})
	c := e.dial(roleMX)

	// RFC 1870 §6.1: a declared SIZE over the limit is refused at MAIL.
	wantReply(t, "MAIL FROM SIZE=20000", c.Mail("sender@remote.example", &smtp.MailOptions{Size: 2 * limit}), 552, "5.3.4")

	big := testMessage("big", 300)
	if len(big) <= limit {
		t.Fatalf("test message is %d bytes, want over %d", len(big), limit)
	}
	wantReply(t, "DATA over the limit", send(t, c, "sender@remote.example", []string{"alice@example.org"}, big), 552, "5.3.4")
	// RFC 1870 §6.3: the server closes the connection after that 552
	// (TestOversizeClosesEarly checks that it stops reading).
	var se *smtp.SMTPError
	if err := c.Noop(); err == nil || errors.As(err, &se) {
		t.Fatalf("NOOP after the 552 = %v, want the connection closed", err)
	}

	// A small message goes through on a new connection.
	c = e.dial(roleMX)
	small := testMessage("small", 10)
	if err := send(t, c, "sender@remote.example", []string{"alice@example.org"}, small); err != nil {
		t.Fatalf("small message after the big one: %v", err)
	}
	if msgs := e.inbox("alice@example.org"); len(msgs) != 1 {
		t.Errorf("INBOX has %d messages, want only the small one", len(msgs))
	}

	// BDAT: a chunk that would pass the limit is refused.
	r := dialRaw(t, e.addr[roleMX])
	r.expect(220, "")
	r.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\n")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(250, "")
	r.send("BDAT 20000 LAST\r\n" + strings.Repeat(strings.Repeat("x", 98)+"\r\n", 200))
	r.expect(552, "5.3.4")
}

func TestTooManyRecipients(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxRecipients: 2}})
	c := e.dial(roleMX)
	if err := c.Mail("sender@remote.example", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	wantReply(t, "RCPT 1", c.Rcpt("alice@example.org", nil), 0, "")
	wantReply(t, "RCPT 2", c.Rcpt("bob@example.org", nil), 0, "")
	// RFC 5321 §4.5.3.1.10: 452 for recipients over the limit.
	wantReply(t, "RCPT 3", c.Rcpt("carol@example.org", nil), 452, "4.5.3")
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	msg := testMessage("limited", 3)
	if _, err := w.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA = %v, want 250", err)
	}
	e.only("alice@example.org")
	e.only("bob@example.org")
	if n := len(e.inbox("carol@example.org")); n != 0 {
		t.Errorf("carol's INBOX has %d messages, want 0", n)
	}
}

// TestBDAT sends a message in two chunks (RFC 3030): the bytes are stored
// as sent, with no dot-unstuffing and no line-end changes.
func TestBDAT(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := dialRaw(t, e.addr[roleMX])
	c.expect(220, "")
	c.send("EHLO client.test\r\n")
	c.expect(250, "")
	chunk1 := "Subject: chunked\r\n\r\n.a dot line stays\r\n"
	chunk2 := "a bare LF\nand a NUL \x00 and 8-bit \xe9\r\n"
	c.send("MAIL FROM:<sender@remote.example> BODY=8BITMIME\r\nRCPT TO:<bob@example.org>\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.send("BDAT " + strconv.Itoa(len(chunk1)) + "\r\n" + chunk1)
	c.expect(250, "2.0.0")
	c.send("BDAT " + strconv.Itoa(len(chunk2)) + " LAST\r\n" + chunk2)
	c.expect(250, "2.0.0")
	_, rest := cutTrace(t, e.only("bob@example.org"), "sender@remote.example", "bob@example.org")
	if want := chunk1 + chunk2; string(rest) != want {
		t.Errorf("stored %q, want %q", rest, want)
	}
}

// TestUnparseable stores a message that is not valid MIME byte for byte.
func TestUnparseable(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(roleMX)
	msg := []byte("Content-Type: multipart/mixed; boundary=\"never\"\r\n" +
		"Subject: =?utf-8?B?broken\r\n" +
		"no colon in this header line\r\n" +
		"\r\n" +
		"--nope\r\nContent-Type: text/plain; charset=\"\r\n\r\n\xff\xfe binary \x01\x02\r\n")
	if err := send(t, c, "sender@remote.example", []string{"alice@example.org"}, msg); err != nil {
		t.Fatalf("DATA = %v, want 250", err)
	}
	if _, rest := cutTrace(t, e.only("alice@example.org"), "sender@remote.example", "alice@example.org"); !bytes.Equal(rest, msg) {
		t.Errorf("stored %q, want %q", rest, msg)
	}
}

// TestLineTooLong: a DATA line longer than RFC 5321's 1000 octets but
// within MaxLineLength is accepted and stored as sent; one past the limit
// is refused, and nothing is stored.
func TestLineTooLong(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	data := func(line string) *rawConn {
		c := dialRaw(t, e.addr[roleMX])
		c.expect(220, "")
		c.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
		c.expect(250, "")
		c.expect(250, "")
		c.expect(250, "")
		c.expect(354, "")
		c.send("Subject: long\r\n\r\n" + line + "\r\n.\r\n")
		return c
	}

	long := strings.Repeat("y", 5000) // HTML mail without line breaks
	data(long).expect(250, "2.0.0")
	stored := e.inbox("alice@example.org")
	if len(stored) != 1 || !bytes.HasSuffix(stored[0].Raw, []byte("\r\n\r\n"+long+"\r\n")) {
		t.Fatalf("after a 5,000-byte line: %d messages, want it stored as sent", len(stored))
	}

	data(strings.Repeat("y", DefaultMaxLineLength+10)).expect(500, "5.5.2")
	if n := len(e.inbox("alice@example.org")); n != 1 {
		t.Errorf("INBOX has %d messages after a refused one, want 1", n)
	}
}

// TestStoreFailure checks that a store that fails gives 451, never 250.
func TestStoreFailure(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	// Not a fault: temporary, so the sender's retry learns at RCPT that
	// the user is gone, and logged at INFO, not as an unexplained ERROR.
	t.Run("user deleted between RCPT and DATA", func(t *testing.T) {
		t.Parallel()
		var logs syncBuffer
		e := newEnv(t, envConfig{opts: Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))}})
		c := e.dial(roleMX)
		if err := c.Mail("sender@remote.example", nil); err != nil {
			t.Fatalf("MAIL: %v", err)
		}
		wantReply(t, "RCPT", c.Rcpt("bob@example.org", nil), 0, "")
		if err := e.store.DeleteUser(ctx, "bob@example.org"); err != nil {
			t.Fatalf("DeleteUser: %v", err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatalf("DATA: %v", err)
		}
		if _, err := w.Write(testMessage("vanished", 2)); err != nil {
			t.Fatalf("write: %v", err)
		}
		se := wantReply(t, "DATA", w.Close(), 451, "4.3.0")
		if !strings.Contains(se.Message, "(id ") {
			t.Errorf("451 text %q carries no id", se.Message)
		}
		retry := e.dial(roleMX)
		if err := retry.Mail("sender@remote.example", nil); err != nil {
			t.Fatalf("MAIL: %v", err)
		}
		wantReply(t, "RCPT on the retry", retry.Rcpt("bob@example.org", nil), 550, "5.1.1")
		if l := logs.String(); strings.Contains(l, "level=ERROR") || !strings.Contains(l, `level=INFO msg="recipient deleted during the transaction"`) {
			t.Errorf("log = %s\nwant the deleted recipient at INFO and no ERROR", l)
		}
	})
	t.Run("store closed before DATA", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		c := e.dial(roleMX)
		if err := c.Mail("sender@remote.example", nil); err != nil {
			t.Fatalf("MAIL: %v", err)
		}
		wantReply(t, "RCPT", c.Rcpt("alice@example.org", nil), 0, "")
		if err := e.store.Close(); err != nil {
			t.Fatalf("store.Close: %v", err)
		}
		w, err := c.Data()
		if err != nil {
			t.Fatalf("DATA: %v", err)
		}
		if _, err := w.Write(testMessage("closed", 2)); err != nil {
			t.Fatalf("write: %v", err)
		}
		wantReply(t, "DATA with the store closed", w.Close(), 451, "4.3.0")
	})
	t.Run("store closed before RCPT", func(t *testing.T) {
		t.Parallel()
		e := newEnv(t, envConfig{})
		c := e.dial(roleMX)
		if err := e.store.Close(); err != nil {
			t.Fatalf("store.Close: %v", err)
		}
		if err := c.Mail("sender@remote.example", nil); err != nil {
			t.Fatalf("MAIL: %v", err)
		}
		wantReply(t, "RCPT with the store closed", c.Rcpt("alice@example.org", nil), 451, "4.3.0")
	})
}

// The 250 after DATA says the message was delivered (not "queued": it is
// in the mailbox, on disk) and carries the transaction id that the log
// line has, over SMTP and per recipient over LMTP.
func TestDeliveredReplyCarriesTheID(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for _, r := range []role{roleMX, roleLMTP} {
		c := dialRaw(t, e.addr[r])
		c.expect(220, "")
		hello := "EHLO"
		if r == roleLMTP {
			hello = "LHLO"
		}
		c.send(hello + " client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
		c.expect(250, "")
		c.expect(250, "")
		c.expect(250, "")
		c.expect(354, "")
		c.send("Subject: id\r\n\r\nbody\r\n.\r\n")
		text := c.expect(250, "2.0.0")
		if !regexp.MustCompile(`Delivered \(id [a-z0-9]+\.1\)$`).MatchString(text) {
			t.Errorf("%v: 250 text %q, want \"Delivered (id CID.1)\"", r, text)
		}
	}
}
