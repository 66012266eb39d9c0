package smtpd

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// TestLMTP checks the per-recipient replies of RFC 2033 §4.2 for a mix:
// an unknown user refused at RCPT, a user deleted between RCPT and DATA
// (550 at DATA), and two that get the message.
func TestLMTP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(roleLMTP)
	if err := c.Mail("sender@remote.example", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	wantReply(t, "RCPT alice", c.Rcpt("alice@example.org", nil), 0, "")
	wantReply(t, "RCPT nobody", c.Rcpt("nobody@example.org", nil), 550, "5.1.1")
	wantReply(t, "RCPT bob", c.Rcpt("bob@example.org", nil), 0, "")
	wantReply(t, "RCPT info", c.Rcpt("info@example.org", nil), 0, "")
	wantReply(t, "RCPT relay", c.Rcpt("x@elsewhere.example", nil), 550, "5.7.1")
	if err := e.store.DeleteUser(context.Background(), "bob@example.org"); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	msg := testMessage("lmtp", 5)
	if _, err := w.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	resp, err := w.CloseWithLMTPResponse()
	var lerr smtp.LMTPDataError
	if !errors.As(err, &lerr) {
		t.Fatalf("DATA = %v, want per-recipient errors", err)
	}
	for _, ok := range []string{"alice@example.org", "info@example.org"} {
		if resp[ok] == nil {
			t.Errorf("no 250 for %s; errors: %v", ok, err)
		}
	}
	if len(lerr) != 1 {
		t.Errorf("DATA errors %v, want one for bob", lerr)
	}
	wantReply(t, "DATA reply for bob", lerr["bob@example.org"], 550, "5.1.1")

	received, rest := cutTrace(t, e.only("alice@example.org"), "sender@remote.example", "alice@example.org")
	if string(rest) != string(msg) {
		t.Errorf("stored %q, want %q", rest, msg)
	}
	if !strings.Contains(received, " with LMTP id ") {
		t.Errorf("Received %q, want with LMTP", received)
	}
	cutTrace(t, e.only("carol@example.org"), "sender@remote.example", "info@example.org")
}

// TestLMTPStoreFailure: when the delivery fails, every recipient gets 451.
func TestLMTPStoreFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(roleLMTP)
	if err := c.Mail("sender@remote.example", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	for _, rcpt := range []string{"alice@example.org", "bob@example.org"} {
		wantReply(t, "RCPT "+rcpt, c.Rcpt(rcpt, nil), 0, "")
	}
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
	_, err = w.CloseWithLMTPResponse()
	var lerr smtp.LMTPDataError
	if !errors.As(err, &lerr) || len(lerr) != 2 {
		t.Fatalf("DATA = %v, want an error for each recipient", err)
	}
	for rcpt, se := range lerr {
		wantReply(t, "DATA reply for "+rcpt, se, 451, "4.3.0")
	}
}

// TestLMTPUnix serves LMTP on a unix socket, as an MTA on the same host
// would use it.
func TestLMTPUnix(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	path := filepath.Join(t.TempDir(), "lmtp.sock")
	ln, err := net.Listen("unix", path)
	if err != nil {
		t.Fatalf("listen unix: %v", err)
	}
	e.serve(e.srv.ServeLMTP, ln)
	nc, err := net.DialTimeout("unix", path, 10*time.Second)
	if err != nil {
		t.Fatalf("dial unix: %v", err)
	}
	c := smtp.NewClientLMTP(nc)
	defer c.Close()
	if err := c.Hello("mta.local"); err != nil {
		t.Fatalf("LHLO: %v", err)
	}
	msg := testMessage("unix", 2)
	if err := send(t, c, "sender@remote.example", []string{"dave@example.org"}, msg); err != nil {
		t.Fatalf("DATA = %v, want 250", err)
	}
	received, rest := cutTrace(t, e.only("dave@example.org"), "sender@remote.example", "dave@example.org")
	if string(rest) != string(msg) {
		t.Errorf("stored %q, want %q", rest, msg)
	}
	if !strings.HasPrefix(received, "Received: from mta.local (local) by mx.test") {
		t.Errorf("Received %q, want from mta.local (local)", received)
	}
}
