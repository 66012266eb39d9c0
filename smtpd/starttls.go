package smtpd

import (
	"bytes"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// STARTTLS (RFC 3207) is carried out here, under go-smtp, not by go-smtp.
//
// go-smtp would run the handshake itself and then write through its own
// tls.Conn, under which this package's conn sees only ciphertext: the
// replies it rewrites (the EHLO greeting, RFC 5321 §4.1.1.1) and the ones
// it writes itself (the shutdown and eviction 421s, RFC 5321 §3.8) would
// keep go-smtp's text after STARTTLS, and go-smtp has no setting for
// either. So go-smtp is given no TLS configuration. It then answers
// STARTTLS "502 5.5.1 TLS not supported"; conn.Write takes that reply for
// the command it answers, writes "220 2.0.0 Ready to start TLS" instead,
// runs the handshake on the socket, and from then on reads and writes the
// socket through its own tls.Conn, so that go-smtp reads and writes
// plaintext through conn as before.
//
// RFC 3207 §4.2 asks two things of a server after the handshake:
//
//   - It "MUST discard any knowledge obtained from the client ... which
//     was not obtained from the TLS negotiation itself": the session ends
//     its transaction and forgets an AUTH (session.startedTLS), and
//     refuses MAIL, RCPT, DATA and AUTH until the client has sent EHLO
//     again (go-smtp still holds the old EHLO).
//   - Commands a client pipelined after STARTTLS in plaintext must not be
//     taken for commands sent under TLS (the injection of CVE-2011-0411).
//     Until TLS begins, conn therefore hands go-smtp its input one command
//     line at a time (inputFramer), so go-smtp never holds more than the
//     line it is answering; whatever followed STARTTLS in the plaintext is
//     still in conn's own buffer when STARTTLS is answered, and is dropped.
//     A message body is handed over whole, up to its end-of-data line,
//     found with go-smtp's own rules.

// Replies go-smtp writes that conn acts on: its answer to STARTTLS
// without a TLS configuration, and its answer to DATA.
var (
	tlsNotSupported = []byte("502 5.5.1 TLS not supported")
	dataGoAhead     = []byte("354 ")
)

// Replies of the STARTTLS exchange (RFC 3207 §4).
var (
	replyTLSReady      = []byte("220 2.0.0 Ready to start TLS\r\n")
	replyTLSActive     = []byte("502 5.5.1 Already running in TLS\r\n")
	replyTLSInTransfer = []byte("503 5.5.1 STARTTLS is not allowed during a message transfer\r\n")
	replyTLSAfterAuth  = []byte("503 5.5.1 STARTTLS is not allowed after AUTH\r\n")
)

// errTLSFailed ends a connection whose TLS handshake failed: the stream
// can carry neither plaintext nor TLS any more. go-smtp closes a
// connection whose read fails with net.ErrClosed without a reply.
var errTLSFailed = fmt.Errorf("smtpd: TLS handshake failed: %w", net.ErrClosed)

// tlsHandshakeTimeout bounds a STARTTLS handshake, as the read timeout
// bounds a command: a client that stalls in it holds a slot.
const tlsHandshakeTimeout = 30 * time.Second

// framing reports whether conn must hand go-smtp its input a command at a
// time: STARTTLS is offered and has not happened.
func (c *conn) framing() bool {
	return c.tlsConfig != nil && c.tc.Load() == nil
}

// tlsState returns the connection's TLS state, nil before STARTTLS.
func (c *conn) tlsState() *tls.ConnectionState {
	tc := c.tc.Load()
	if tc == nil {
		return nil
	}
	st := tc.ConnectionState()
	return &st
}

// awaitingHelo reports whether TLS began and the client has not yet sent
// EHLO (or HELO) again.
func (c *conn) awaitingHelo() bool { return c.awaitHelo.Load() }

// startTLS answers go-smtp's "TLS not supported" for the STARTTLS command
// it just read (see the top of this file) and reports go-smtp's Write
// result: the reply go-smtp wrote is consumed either way.
func (c *conn) startTLS() error {
	if c.tc.Load() != nil {
		return c.hold(replyTLSActive)
	}
	c.mu.Lock()
	busy := c.busy
	c.mu.Unlock()
	if busy {
		// Between BDAT chunks: the message is part sent in plaintext.
		return c.hold(replyTLSInTransfer)
	}
	if c.authed.Load() {
		// RFC 3207 §4.2 would have the server forget the AUTH, but
		// go-smtp would still refuse a second one ("Already
		// authenticated"). A client that sent its password in plaintext
		// (loopback, or Options.AllowInsecureAuth) has nothing left for
		// TLS to protect; it goes on without.
		return c.hold(replyTLSAfterAuth)
	}
	if n := c.in.discard(); n > 0 {
		c.l.srv.log.Info("input pipelined after STARTTLS discarded", "cid", c.cid,
			"proto", c.l.role.String(), "remote", c.RemoteAddr().String(), "bytes", n)
	}
	if err := c.hold(replyTLSReady); err != nil {
		return err
	}
	if err := c.flush(); err != nil {
		return err
	}
	tc := tls.Server(c.Conn, c.tlsConfig)
	err := c.Conn.SetDeadline(time.Now().Add(tlsHandshakeTimeout))
	if err == nil {
		err = tc.Handshake()
	}
	if err != nil {
		c.l.srv.log.Info("TLS handshake failed", "cid", c.cid, "proto", c.l.role.String(),
			"remote", c.RemoteAddr().String(), "err", err)
		c.tlsFailed.Store(true)
		c.abort()
		return errTLSFailed
	}
	// go-smtp sets the deadlines it wants before each read and write.
	if err := c.Conn.SetDeadline(time.Time{}); err != nil {
		c.l.srv.log.Debug("clear handshake deadline", "cid", c.cid, "err", err)
	}
	c.tc.Store(tc)
	c.awaitHelo.Store(true)
	st := tc.ConnectionState()
	c.l.srv.log.Debug("TLS started", "cid", c.cid, "proto", c.l.role.String(),
		"version", tls.VersionName(st.Version), "cipher", tls.CipherSuiteName(st.CipherSuite))
	if c.onTLS != nil {
		c.onTLS(&st)
	}
	return nil
}

// inputFramer holds what conn has read from the socket before STARTTLS
// and hands it to go-smtp in pieces that never run past the command line
// go-smtp is about to read, or past the end of the message body it is
// reading (see the top of this file).
type inputFramer struct {
	buf  []byte // backing array, allocated at the first fill
	pend []byte // read from the socket, not yet handed over
	body bool   // go-smtp is reading a DATA body
	dot  dotState
}

// inputFramerSize is the framer's buffer: one read from the socket.
const inputFramerSize = 4096

// fill reads from the socket into the empty buffer.
func (f *inputFramer) fill(read func([]byte) (int, error)) (int, error) {
	if f.buf == nil {
		f.buf = make([]byte, inputFramerSize)
	}
	n, err := read(f.buf)
	f.pend = f.buf[:n]
	return n, err
}

// buffered reports whether input is waiting to be handed over.
func (f *inputFramer) buffered() bool { return len(f.pend) > 0 }

// next copies the next piece of input into p and returns its length: in a
// body, up to the end of its end-of-data line; else up to the end of the
// first line, or all there is when no line ends in it.
func (f *inputFramer) next(p []byte) int {
	avail := f.pend[:min(len(p), len(f.pend))]
	n := len(avail)
	if f.body {
		for i, b := range avail {
			if f.dot = f.dot.next(b); f.dot == dotEOF {
				n, f.body = i+1, false
				break
			}
		}
	} else if i := bytes.IndexByte(avail, '\n'); i >= 0 {
		n = i + 1
	}
	copy(p, f.pend[:n])
	f.pend = f.pend[n:]
	return n
}

// startBody makes next hand over a message body: go-smtp answered DATA
// with 354 and reads the body next.
func (f *inputFramer) startBody() { f.body, f.dot = true, dotBeginLine }

// discard drops the input not yet handed over and returns its length.
func (f *inputFramer) discard() int {
	n := len(f.pend)
	f.pend = nil
	return n
}

// dotState follows a DATA body with the state machine go-smtp's data
// reader uses (net/textproto's dot reader, which keeps CRLF), so that the
// framer ends the body exactly where go-smtp does: at CRLF "." CRLF, but
// not after a CR that does not end a line ("\r\r\n.\r\n" goes on).
type dotState uint8

const (
	dotBeginLine dotState = iota // at the beginning of a line
	dotDot                       // "." at the beginning of a line
	dotDotCR                     // ".\r" at the beginning of a line
	dotCR                        // "\r", possibly ending a line
	dotData                      // within a line
	dotEOF                       // the end-of-data line has been read
)

// next returns the state after byte b.
func (s dotState) next(b byte) dotState {
	switch s {
	case dotBeginLine:
		switch b {
		case '.':
			return dotDot
		case '\r':
			return dotCR
		}
	case dotDot:
		if b == '\r' {
			return dotDotCR
		}
	case dotDotCR:
		if b == '\n' {
			return dotEOF
		}
	case dotCR:
		if b == '\n' {
			return dotBeginLine
		}
	case dotData:
		if b == '\r' {
			return dotCR
		}
	case dotEOF:
		return dotEOF
	}
	return dotData
}
