package smtpd

import (
	"context"
	"errors"
	"testing"

	"github.com/emersion/go-smtp"
)

// setQuota sets a test user's limits, failing the test on an error.
func (e *testEnv) setQuota(addr string, storage, messages int64) {
	e.t.Helper()
	if err := e.store.SetQuota(context.Background(), addr, storage, messages); err != nil {
		e.t.Fatalf("SetQuota(%s) = %v", addr, err)
	}
}

// TestQuotaSMTP speaks SMTP over a real socket to a server whose users
// have quotas (RFC 9208 in the store): a recipient at their limit is
// refused at RCPT with 452 4.2.2 while the others get the mail, and a
// message that passes the limit only at DATA (its size, or a limit
// lowered since RCPT) is refused whole with 452 4.2.2, nothing stored.
func TestQuotaSMTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	e.setQuota("bob@example.org", 0, 1)
	c := dialRaw(t, e.addr[roleMX])
	c.expect(220, "")
	c.send("EHLO client.test\r\n")
	c.expect(250, "")
	msg := "Subject: quota\r\n\r\nHello.\r\n"
	deliver := func(want int, prefix string) {
		t.Helper()
		c.send("DATA\r\n")
		c.expect(354, "")
		c.send(msg + ".\r\n")
		c.expect(want, prefix)
	}

	c.send("MAIL FROM:<sender@remote.example>\r\n")
	c.expect(250, "")
	c.send("RCPT TO:<alice@example.org>\r\n")
	c.expect(250, "")
	c.send("RCPT TO:<bob@example.org>\r\n")
	c.expect(250, "")
	deliver(250, "2.0.0")

	// bob is at his one message: refused at RCPT, alice still served.
	c.send("MAIL FROM:<sender@remote.example>\r\n")
	c.expect(250, "")
	c.send("RCPT TO:<bob@example.org>\r\n")
	c.expect(452, "4.2.2 ")
	c.send("RCPT TO:<alice@example.org>\r\n")
	c.expect(250, "")
	deliver(250, "2.0.0")
	if n := len(e.inbox("bob@example.org")); n != 1 {
		t.Errorf("bob's INBOX holds %d messages, want 1", n)
	}
	if n := len(e.inbox("alice@example.org")); n != 2 {
		t.Errorf("alice's INBOX holds %d messages, want 2", n)
	}

	// SIZE= above carol's room: refused at RCPT (RFC 1870's estimate).
	e.setQuota("carol@example.org", 100, 0)
	c.send("MAIL FROM:<sender@remote.example> SIZE=500\r\n")
	c.expect(250, "")
	c.send("RCPT TO:<carol@example.org>\r\n")
	c.expect(452, "4.2.2 ")
	c.send("RSET\r\n")
	c.expect(250, "")

	// Without SIZE, carol is accepted at RCPT, but the message with its
	// trace fields passes 100 bytes: 452 4.2.2 at DATA, for every
	// recipient of the transaction (one store transaction).
	c.send("MAIL FROM:<sender@remote.example>\r\n")
	c.expect(250, "")
	c.send("RCPT TO:<carol@example.org>\r\n")
	c.expect(250, "")
	c.send("RCPT TO:<dave@example.org>\r\n")
	c.expect(250, "")
	deliver(452, "4.2.2 ")
	if n := len(e.inbox("carol@example.org")); n != 0 {
		t.Errorf("carol's INBOX holds %d messages, want none", n)
	}
	if n := len(e.inbox("dave@example.org")); n != 0 {
		t.Errorf("dave's INBOX holds %d messages after a refused transaction, want none", n)
	}

	// Room again (the limit raised): the same transaction passes.
	e.setQuota("carol@example.org", 0, 0)
	c.send("MAIL FROM:<sender@remote.example>\r\n")
	c.expect(250, "")
	c.send("RCPT TO:<carol@example.org>\r\n")
	c.expect(250, "")
	deliver(250, "2.0.0")
	if n := len(e.inbox("carol@example.org")); n != 1 {
		t.Errorf("carol's INBOX holds %d messages, want 1", n)
	}
	c.send("QUIT\r\n")
	c.expect(221, "")
}

// TestQuotaLMTP: LMTP answers each recipient (RFC 2033 §4.2): the one
// that went over quota between RCPT and DATA gets 452 4.2.2, the others
// get the message.
func TestQuotaLMTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(roleLMTP)
	if err := c.Mail("sender@remote.example", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	for _, r := range []string{"alice@example.org", "bob@example.org", "carol@example.org"} {
		wantReply(t, "RCPT "+r, c.Rcpt(r, nil), 0, "")
	}
	e.setQuota("bob@example.org", 10, 0)
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := w.Write(testMessage("lmtp quota", 3)); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := w.CloseWithLMTPResponse()
	var lerr smtp.LMTPDataError
	if !errors.As(err, &lerr) {
		t.Fatalf("DATA = %v, want per-recipient errors", err)
	}
	if len(lerr) != 1 {
		t.Errorf("DATA errors %v, want one, for bob", lerr)
	}
	wantReply(t, "DATA reply for bob", lerr["bob@example.org"], 452, "4.2.2")
	for _, ok := range []string{"alice@example.org", "carol@example.org"} {
		if resp[ok] == nil {
			t.Errorf("no 250 for %s", ok)
		}
		if n := len(e.inbox(ok)); n != 1 {
			t.Errorf("%s's INBOX holds %d messages, want 1", ok, n)
		}
	}
	if n := len(e.inbox("bob@example.org")); n != 0 {
		t.Errorf("bob's INBOX holds %d messages, want none", n)
	}
}
