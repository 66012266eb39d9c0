package smtpd

import (
	"bytes"
	"errors"
	"strings"
	"sync"
	"testing"

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
