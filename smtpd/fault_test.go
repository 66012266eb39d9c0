package smtpd

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

// A full store answers 451 4.3.0 (temporary: the MTA retries), over SMTP
// and per recipient over LMTP; what was acknowledged before stays, and
// the server keeps serving.
func TestStorageFullIsTemporary(t *testing.T) {
	e := newEnv(t, envConfig{storeMaxBytes: 512 << 10})
	big := testMessage("filler", 2000) // ~100 KB
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

// A recipient deleted between RCPT and the end of DATA gets a temporary
// 451 4.3.0 (the sender's retry then learns at RCPT that the user is
// gone: 550 5.1.1), and nothing is stored.
func TestRecipientDeletedDuringTransaction(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx := context.Background()
	c := e.dial(roleMX)
	defer c.Close()
	if err := c.Mail("sender@remote.example", nil); err != nil {
		t.Fatal(err)
	}
	if err := c.Rcpt("alice@example.org", nil); err != nil {
		t.Fatal(err)
	}
	if err := e.store.DeleteUser(ctx, "alice@example.org"); err != nil {
		t.Fatal(err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	w.Write(testMessage("late", 1))
	wantReply(t, "end of DATA after the recipient was deleted", w.Close(), 451, "4.3.0")

	c2 := e.dial(roleMX)
	defer c2.Close()
	if err := c2.Mail("sender@remote.example", nil); err != nil {
		t.Fatal(err)
	}
	wantReply(t, "RCPT on the retry", c2.Rcpt("alice@example.org", nil), 550, "5.1.1")
}
