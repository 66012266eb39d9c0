package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"testing"
	"time"
)

// ehlo sends EHLO and returns the lines of the reply, each without its
// "250-" or "250 ".
func (c *rawConn) ehlo(domain string) []string {
	c.t.Helper()
	c.send("EHLO " + domain + "\r\n")
	var lines []string
	for {
		line, err := c.r.ReadLine()
		if err != nil {
			c.t.Fatalf("read EHLO reply: %v", err)
		}
		if len(line) < 4 || !strings.HasPrefix(line, "250") {
			c.t.Fatalf("EHLO reply line %q, want 250", line)
		}
		lines = append(lines, line[4:])
		if line[3] == ' ' {
			return lines
		}
	}
}

// startTLS runs the client side of the handshake after the server's 220
// and switches c to the TLS stream.
func (c *rawConn) startTLS(cfg *tls.Config) {
	c.t.Helper()
	tc := tls.Client(c.nc, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.nc = tc
	c.r = textproto.NewReader(bufio.NewReader(tc))
}

// TestStartTLSGreeting: the EHLO reply names the server first (RFC 5321
// §4.1.1.1) before and after STARTTLS, offers STARTTLS only before it
// (RFC 3207 §4.2) and REQUIRETLS only after it (RFC 8689 §4.1); a second
// STARTTLS is refused.
func TestStartTLSGreeting(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	for _, r := range []role{roleMX, roleSubmission} {
		c := dialRaw(t, e.addr[r])
		c.expect(220, testHostname+" ")
		before := c.ehlo("client.test")
		if want := testHostname + " greets client.test"; before[0] != want {
			t.Errorf("%s: EHLO greeting %q, want %q", r, before[0], want)
		}
		if !slices.Contains(before, "STARTTLS") || slices.Contains(before, "REQUIRETLS") {
			t.Errorf("%s: EHLO before TLS = %q, want STARTTLS and no REQUIRETLS", r, before)
		}
		c.send("STARTTLS\r\n")
		c.expect(220, "2.0.0 ")
		c.startTLS(e.clientTLS)
		after := c.ehlo("client.test")
		if want := testHostname + " greets client.test"; after[0] != want {
			t.Errorf("%s: EHLO greeting after STARTTLS %q, want %q", r, after[0], want)
		}
		if slices.Contains(after, "STARTTLS") || !slices.Contains(after, "REQUIRETLS") {
			t.Errorf("%s: EHLO after TLS = %q, want REQUIRETLS and no STARTTLS", r, after)
		}
		c.send("STARTTLS\r\n")
		c.expect(502, "5.5.1 ")
		c.send("QUIT\r\n")
		c.expect(221, "")
	}
}

// TestStartTLSDiscardsPipelinedInput: commands a client pipelines after
// STARTTLS in plaintext are dropped, not run as if they came under TLS
// (the command injection of CVE-2011-0411): the first reply under TLS is
// to the client's new EHLO, and no transaction was started.
func TestStartTLSDiscardsPipelinedInput(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := dialRaw(t, e.addr[roleMX])
	c.expect(220, "")
	c.ehlo("client.test")
	c.send("STARTTLS\r\nMAIL FROM:<injected@remote.example>\r\nRCPT TO:<alice@example.org>\r\n")
	c.expect(220, "2.0.0 ")
	c.startTLS(e.clientTLS)
	if lines := c.ehlo("client.test"); !strings.Contains(lines[0], "greets") {
		t.Fatalf("first reply under TLS %q, want the EHLO greeting", lines)
	}
	c.send("DATA\r\n")
	c.expect(502, "5.5.1 ") // go-smtp: no MAIL and RCPT were taken from the plaintext
	if n := len(e.inbox("alice@example.org")); n != 0 {
		t.Errorf("alice has %d messages, want 0", n)
	}
}

// TestStartTLSStartsOver: after STARTTLS the server forgets the EHLO and
// the transaction (RFC 3207 §4.2): MAIL, RCPT and AUTH wait for a new
// EHLO, RCPT for a new MAIL, and the message sent after that is stored
// with the TLS and AUTH in its trace field. STARTTLS after AUTH is
// refused, and the authenticated session goes on.
func TestStartTLSStartsOver(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{}) // loopback: AUTH is allowed without TLS
	auth := "AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice@example.org\x00alice-password")) + "\r\n"

	authed := dialRaw(t, e.addr[roleSubmission])
	authed.expect(220, "")
	authed.ehlo("client.test")
	authed.send(auth)
	authed.expect(235, "")
	authed.send("STARTTLS\r\n")
	authed.expect(503, "5.5.1 STARTTLS is not allowed after AUTH")
	authed.send("MAIL FROM:<alice@example.org>\r\n")
	authed.expect(250, "")

	c := dialRaw(t, e.addr[roleSubmission])
	c.expect(220, "")
	c.ehlo("client.test")
	c.send("MAIL FROM:<>\r\n")
	c.expect(530, "5.7.0 ")
	c.send("STARTTLS\r\n")
	c.expect(220, "2.0.0 ")
	c.startTLS(e.clientTLS)
	for _, cmd := range []string{"MAIL FROM:<alice@example.org>", strings.TrimSuffix(auth, "\r\n")} {
		c.send(cmd + "\r\n")
		c.expect(503, "5.5.1 Send EHLO again")
	}
	c.ehlo("client.test")
	c.send("RCPT TO:<bob@example.org>\r\n")
	c.expect(502, "5.5.1 ") // go-smtp: no MAIL
	c.send(auth)
	c.expect(235, "")
	c.send("MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nDATA\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	c.send("Subject: under TLS\r\n\r\nsecret\r\n.\r\n")
	c.expect(250, "2.0.0 ")
	received, _ := cutTrace(t, e.only("bob@example.org"), "alice@example.org", "bob@example.org")
	if !strings.Contains(received, "with ESMTPSA") || !strings.Contains(received, "TLS") {
		t.Errorf("Received field %q, want ESMTPSA and the TLS version", received)
	}
}

// TestStartTLSAfterBodies: before STARTTLS the server hands go-smtp its
// input a line at a time except in message bodies, which end where
// go-smtp ends them; a body containing a STARTTLS line and a dot line
// after a stray CR is stored whole, and a STARTTLS pipelined right after
// the end of the body is answered as a command.
func TestStartTLSAfterBodies(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := dialRaw(t, e.addr[roleMX])
	c.expect(220, "")
	c.ehlo("client.test")
	c.send("MAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	// go-smtp's data reader (net/textproto's) does not end the body at a
	// dot line after "\r\r\n": the CR before the CRLF is data.
	body := "Subject: framing\r\n\r\nSTARTTLS\r\nstray\r\r\n.\r\nafter\r\n"
	c.send(body + ".\r\nSTARTTLS\r\n")
	c.expect(250, "2.0.0 ")
	c.expect(220, "2.0.0 ")
	c.startTLS(e.clientTLS)
	c.ehlo("client.test")
	c.send("MAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nBDAT 22 LAST\r\nSubject: second\r\n\r\nx\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(250, "2.0.0 ")
	msgs := e.inbox("alice@example.org")
	if len(msgs) != 2 {
		t.Fatalf("alice has %d messages, want 2", len(msgs))
	}
	_, first := cutTrace(t, msgs[0].Raw, "sender@remote.example", "alice@example.org")
	if want := body; string(first) != want {
		t.Errorf("first message %q, want %q", first, want)
	}
	if _, second := cutTrace(t, msgs[1].Raw, "sender@remote.example", "alice@example.org"); string(second) != "Subject: second\r\n\r\nx\r\n" {
		t.Errorf("second message %q", second)
	}
}

// TestStartTLSShutdownAndKick: under TLS, the shutdown 421 (RFC 5321
// §3.8) and the idle-command limit's 421 are the server's own, sent
// through TLS, as on a plaintext connection.
func TestStartTLSShutdownAndKick(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxIdleCommands: 5}})
	kicked := dialRaw(t, e.addr[roleMX])
	kicked.expect(220, "")
	kicked.ehlo("client.test")
	kicked.send("STARTTLS\r\n")
	kicked.expect(220, "")
	kicked.startTLS(e.clientTLS)
	kicked.ehlo("client.test")
	for range 2 {
		kicked.send("NOOP\r\n")
		kicked.expect(250, "")
	}
	kicked.send("NOOP\r\n")
	kicked.expect(421, "4.7.0 "+testHostname+" Too many commands")
	kicked.expectEOF()

	idle := dialRaw(t, e.addr[roleSubmission])
	idle.expect(220, "")
	idle.ehlo("client.test")
	idle.send("STARTTLS\r\n")
	idle.expect(220, "")
	idle.startTLS(e.clientTLS)
	idle.ehlo("client.test")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- e.srv.Shutdown(ctx) }()
	idle.expect(421, "4.3.2 "+testHostname+" Service shutting down")
	idle.expectEOF()
	if err := <-done; err != nil {
		t.Errorf("Shutdown = %v, want nil", err)
	}
}

// TestStartTLSHandshakeFailure: a client that sends plaintext where the
// handshake belongs is disconnected, and the server goes on serving.
func TestStartTLSHandshakeFailure(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := dialRaw(t, e.addr[roleMX])
	c.expect(220, "")
	c.ehlo("client.test")
	c.send("STARTTLS\r\n")
	c.expect(220, "")
	c.send("EHLO not-tls.example\r\n")
	// The server's TLS alert, if any, then the close.
	if err := c.nc.SetReadDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	rest, err := readAll(c.nc)
	if err != nil {
		t.Fatalf("read after a failed handshake: %v, want the connection closed", err)
	}
	if bytes.Contains(rest, []byte("250")) {
		t.Errorf("server answered plaintext after STARTTLS: %q", rest)
	}
	again := dialRaw(t, e.addr[roleMX])
	again.expect(220, "")
	again.ehlo("client.test")
}

// readAll reads until the peer closes; a reset counts as a close.
func readAll(nc net.Conn) ([]byte, error) {
	var out bytes.Buffer
	buf := make([]byte, 512)
	for {
		n, err := nc.Read(buf)
		out.Write(buf[:n])
		if err != nil {
			if ne, ok := err.(net.Error); ok && ne.Timeout() {
				return out.Bytes(), err
			}
			return out.Bytes(), nil
		}
	}
}
