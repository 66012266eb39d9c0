package smtpd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"
)

// TestShutdown: RFC 5321 §3.8. Connections waiting for a command, after
// EHLO or in the middle of a transaction (MAIL and RCPT given), are
// answered "421 4.3.2" at once and closed, over SMTP and LMTP; a message
// already being transferred, with DATA or BDAT, finishes, gets its 250
// and is in the store, then its connection reads the 421; Shutdown then
// returns nil. Every read is bounded by the connection's deadline, so a
// hang fails the test instead of stalling it.
func TestShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	idle := dialRaw(t, e.addr[roleMX])
	idle.expect(220, "")
	idle.send("EHLO client.test\r\n")
	idle.expect(250, "")
	midTxn := dialRaw(t, e.addr[roleMX])
	midTxn.expect(220, "")
	midTxn.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<bob@example.org>\r\n")
	midTxn.expect(250, "")
	midTxn.expect(250, "")
	midTxn.expect(250, "")
	lmtpIdle := dialRaw(t, e.addr[roleLMTP])
	lmtpIdle.expect(220, "")
	lmtpIdle.send("LHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<bob@example.org>\r\n")
	lmtpIdle.expect(250, "")
	lmtpIdle.expect(250, "")
	lmtpIdle.expect(250, "")
	// 354 reaches the client only once the server reads the message:
	// the transfer has begun.
	inData := dialRaw(t, e.addr[roleMX])
	inData.expect(220, "")
	inData.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
	inData.expect(250, "")
	inData.expect(250, "")
	inData.expect(250, "")
	inData.expect(354, "")
	inData.send("Subject: in flight\r\n\r\nfirst half\r\n")
	// A BDAT transfer between two chunks.
	inBDAT := dialRaw(t, e.addr[roleMX])
	inBDAT.expect(220, "")
	inBDAT.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<carol@example.org>\r\n")
	inBDAT.expect(250, "")
	inBDAT.expect(250, "")
	inBDAT.expect(250, "")
	chunk := "Subject: chunked\r\n\r\n"
	inBDAT.send(fmt.Sprintf("BDAT %d\r\n%s", len(chunk), chunk))
	inBDAT.expect(250, "")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()

	for name, c := range map[string]*rawConn{"idle": idle, "mid-transaction": midTxn, "LMTP mid-transaction": lmtpIdle} {
		if text := c.expect(421, "4.3.2 "); !strings.Contains(text, "Service shutting down") {
			t.Errorf("%s: 421 %q, want it to say the service is shutting down", name, text)
		}
		c.expectEOF()
	}
	if nc, err := net.Dial("tcp", e.addr[roleMX]); err == nil {
		nc.Close()
		t.Errorf("dial after Shutdown closed the listeners: connected, want refused")
	}

	inData.send("second half\r\n.\r\n")
	inData.expect(250, "2.0.0")
	inData.expect(421, "4.3.2 ")
	inData.expectEOF()
	chunk = "finished during shutdown\r\n"
	inBDAT.send(fmt.Sprintf("BDAT %d LAST\r\n%s", len(chunk), chunk))
	inBDAT.expect(250, "2.0.0")
	inBDAT.expect(421, "4.3.2 ")
	inBDAT.expectEOF()

	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatalf("Shutdown did not return")
	}
	// Acknowledged means stored; the abandoned transactions left nothing.
	if msg := e.only("alice@example.org"); !bytes.Contains(msg, []byte("second half")) {
		t.Errorf("alice's message lacks its second half:\n%s", msg)
	}
	if msg := e.only("carol@example.org"); !bytes.Contains(msg, []byte("finished during shutdown")) {
		t.Errorf("carol's message lacks its last chunk:\n%s", msg)
	}
	if n := len(e.inbox("bob@example.org")); n != 0 {
		t.Errorf("bob's INBOX has %d messages after abandoned transactions, want 0", n)
	}
}

// TestShutdownExpired: when Shutdown's context ends, a transfer still in
// progress is cut off without a 250 and its message is not stored, and
// Shutdown returns the context's error.
func TestShutdownExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	busy := dialRaw(t, e.addr[roleMX])
	busy.expect(220, "")
	busy.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
	busy.expect(250, "")
	busy.expect(250, "")
	busy.expect(250, "")
	busy.expect(354, "")
	busy.send("Subject: cut off\r\n\r\nhalf a message\r\n")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown(cancelled ctx) = %v, want context.Canceled", err)
	}
	for {
		line, err := busy.r.ReadLine()
		if err != nil {
			break // closed
		}
		if strings.HasPrefix(line, "250") {
			t.Fatalf("read %q after Shutdown cut the transfer, want no 250", line)
		}
	}
	if n := len(e.inbox("alice@example.org")); n != 0 {
		t.Errorf("alice's INBOX has %d messages after the transfer was cut off, want 0", n)
	}
}

// TestMaxConnsPerIP: connections over the limit get 421 and are closed; a
// closed connection frees its slot.
func TestMaxConnsPerIP(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxConnsPerIP: 2}})
	a := dialRaw(t, e.addr[roleMX])
	a.expect(220, testHostname)
	b := dialRaw(t, e.addr[roleMX])
	b.expect(220, testHostname)
	over := dialRaw(t, e.addr[roleMX])
	over.expect(421, "4.7.0")
	over.expectEOF()

	// Each listener counts on its own.
	sub := dialRaw(t, e.addr[roleSubmission])
	sub.expect(220, testHostname)

	a.send("QUIT\r\n")
	a.expect(221, "")
	a.expectEOF()
	again := dialRaw(t, e.addr[roleMX])
	again.expect(220, testHostname)
}
