package smtpd

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

// A full store answers 451 4.3.0 (temporary: the MTA retries), over SMTP
// and per recipient over LMTP; what was acknowledged before stays, and
// the server keeps serving.
func TestStorageFullIsTemporary(t *testing.T) {
	// The cap counts the database and its log: a message costs about
	// twice its size, so 2 MiB takes a few of these ~230 KB ones.
	e := newEnv(t, envConfig{storeMaxBytes: 2 << 20})
	big := testMessage("filler", 2000)
	var accepted int
	var last error
	for i := 0; i < 20; i++ {
		c := e.dial(roleMX)
		last = send(t, c, "x@example.net", []string{"alice@example.org"}, big)
		c.Close()
		if last != nil {
			break
		}
		accepted++
	}
	wantReply(t, "DATA on a full store", last, 451, "4.3.0")
	if se := (*smtp.SMTPError)(nil); errors.As(last, &se) && !strings.Contains(se.Message, "full") {
		t.Errorf("DATA on a full store: %q, want it to say the mail system is full", se.Message)
	}
	if accepted == 0 {
		t.Fatal("the store was full before any delivery")
	}
	if got := len(e.inbox("alice@example.org")); got != accepted {
		t.Errorf("alice has %d messages, %d were acknowledged", got, accepted)
	}

	// LMTP: every recipient gets the temporary failure.
	c := e.dial(roleLMTP)
	defer c.Close()
	if err := c.Mail("x@example.net", nil); err != nil {
		t.Fatal(err)
	}
	for _, r := range []string{"alice@example.org", "bob@example.org"} {
		if err := c.Rcpt(r, nil); err != nil {
			t.Fatal(err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatal(err)
	}
	w.Write(big)
	_, err = w.CloseWithLMTPResponse()
	var perRcpt smtp.LMTPDataError
	if !errors.As(err, &perRcpt) || len(perRcpt) != 2 {
		t.Fatalf("LMTP DATA on a full store = %v, want a 451 for each of 2 recipients", err)
	}
	for rcpt, se := range perRcpt {
		if se.Code != 451 || se.EnhancedCode != (smtp.EnhancedCode{4, 3, 0}) || !strings.Contains(se.Message, "full") {
			t.Errorf("LMTP reply for %s = %d %v, want 451 4.3.0 saying the mail system is full", rcpt, se.Code, se.EnhancedCode)
		}
	}

	// A small message may still fit, and the server still answers.
	c2 := e.dial(roleMX)
	defer c2.Close()
	if err := c2.Noop(); err != nil {
		t.Errorf("NOOP after the store filled: %v", err)
	}
}

// syncBuffer is a bytes.Buffer the server's goroutines may write at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// TestStorageFullRefusedAtMail: below the store's free-space reserve
// (here larger than any disk), MAIL gets 452 4.3.1 on every role, before
// the client sends a byte of the message (RFC 1870 §6.1, RFC 5321 §4.3.2);
// a pipelined RCPT and DATA fail with it, and no 354 invites the data.
// The session stays usable and nothing reaches a mailbox.
func TestStorageFullRefusedAtMail(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{minFreeBytes: 1 << 60})
	for _, r := range []struct {
		role  role
		hello string
	}{{roleMX, "EHLO"}, {roleLMTP, "LHLO"}} {
		c := dialRaw(t, e.addr[r.role])
		c.expect(220, "")
		c.send(r.hello + " client.test\r\n")
		c.expect(250, "")
		c.send("MAIL FROM:<x@example.net>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
		c.expect(452, "4.3.1 ")
		for _, cmd := range []string{"RCPT", "DATA"} {
			if code, text := c.reply(); code < 500 {
				t.Errorf("%s: pipelined %s after the 452 = %d %q, want a 5xx sequence error", r.role, cmd, code, text)
			}
		}
		c.send("NOOP\r\n")
		c.expect(250, "")
		c.send("QUIT\r\n")
		c.expect(221, "")
	}

	// Submission, after AUTH: the same reply, through go-smtp's client.
	c := e.dialStartTLS(roleSubmission)
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-password")); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	se := wantReply(t, "MAIL on submission below the reserve", c.Mail("alice@example.org", nil), 452, "4.3.1")
	if !strings.Contains(se.Message, "storage") {
		t.Errorf("452 text %q does not say that storage is short", se.Message)
	}

	for _, u := range testUsers {
		if n := len(e.inbox(u.addr)); n != 0 {
			t.Errorf("%s's INBOX holds %d messages on a store below its reserve, want 0", u.addr, n)
		}
	}
}
