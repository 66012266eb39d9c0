package smtpd

import (
	"context"
	"errors"
	"net"
	"testing"
	"time"
)

// TestShutdown: an idle connection is closed at once with 421, a
// transaction in progress finishes and gets its 250, then its connection
// is closed; Shutdown then returns nil.
func TestShutdown(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	idle := dialRaw(t, e.addr[roleMX])
	idle.expect(220, "")
	idle.send("EHLO client.test\r\n")
	idle.expect(250, "")
	busy := dialRaw(t, e.addr[roleMX])
	busy.expect(220, "")
	busy.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\n")
	busy.expect(250, "")
	busy.expect(250, "")
	busy.expect(250, "")

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()

	idle.expect(421, "4.4.2")
	idle.expectEOF()
	if nc, err := net.Dial("tcp", e.addr[roleMX]); err == nil {
		nc.Close()
		t.Errorf("dial after Shutdown closed the listeners: connected, want refused")
	}

	busy.send("DATA\r\n")
	busy.expect(354, "")
	busy.send("Subject: in flight\r\n\r\nfinished during shutdown\r\n.\r\n")
	busy.expect(250, "2.0.0")
	busy.expect(421, "4.4.2")
	busy.expectEOF()

	select {
	case err := <-done:
		if err != nil {
			t.Errorf("Shutdown = %v, want nil", err)
		}
	case <-ctx.Done():
		t.Fatalf("Shutdown did not return")
	}
	e.only("alice@example.org")
}

// TestShutdownExpired: when Shutdown's context ends, a transaction still
// open is cut off, and Shutdown returns the context's error.
func TestShutdownExpired(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	busy := dialRaw(t, e.addr[roleMX])
	busy.expect(220, "")
	busy.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\n")
	busy.expect(250, "")
	busy.expect(250, "")
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := e.srv.Shutdown(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Shutdown(cancelled ctx) = %v, want context.Canceled", err)
	}
	busy.expectEOF()
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
