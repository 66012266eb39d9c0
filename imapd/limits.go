package imapd

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"sync/atomic"
	"time"

	"pushmail/mailstore"
)

// limitListener wraps each accepted connection in a timeoutConn and gives
// it a first read deadline, which also bounds an implicit-TLS handshake:
// without one, a client that connects and sends nothing would hold its
// slot, and a goroutine, for ever (the greeting's write waits for the
// handshake, before the session sets any read deadline).
type limitListener struct {
	net.Listener
	srv *Server
}

func (l limitListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(l.srv.opts.CommandTimeout)
	tc := &timeoutConn{Conn: c}
	if err := c.SetReadDeadline(deadline); err != nil {
		l.srv.log.Debug("set first deadline", "err", err)
	}
	return tc, nil
}

// timeoutConn makes a read timeout final.
type timeoutConn struct {
	net.Conn
	timedOut atomic.Bool
}

// Read reads from the connection. Once a read has timed out, every later
// read fails the same way at once, so no code path can go on reading
// under a fresh deadline: a client that sends a byte now and then (slow
// loris) is cut off after one timeout, not fed more time.
func (c *timeoutConn) Read(p []byte) (int, error) {
	if c.timedOut.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Conn.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

// startLoginTimer ends the session if it has not logged in within
// Options.LoginTimeout: before login, go-imap's timeouts bound each
// command but not how many a client sends.
func (s *session) startLoginTimer() {
	s.loginDone = make(chan struct{})
	log := s.log // Login replaces s.log
	s.loginTimer = time.AfterFunc(s.srv.opts.LoginTimeout, func() {
		defer close(s.loginDone)
		if s.authed.Load() {
			return
		}
		log.Info("login timeout")
		s.cancel() // ends a failed login's delay
		s.bye("Login timeout")
	})
}

// releaseLoginTimer stops the login timer once the client has logged in,
// so that an idle session does not keep it (about 250 bytes) until Close.
// Called from Login, on the connection's goroutine, as Close is.
func (s *session) releaseLoginTimer() {
	if s.loginTimer != nil && s.loginTimer.Stop() {
		s.loginTimer, s.loginDone = nil, nil
	}
	// Otherwise the timer has fired: its function sees authed and
	// returns, and Close waits for it.
}

// stopLoginTimer stops the login timer, or waits for its function to
// return if it has fired. Called once, from Close.
func (s *session) stopLoginTimer() {
	if s.loginTimer == nil || s.loginTimer.Stop() {
		return
	}
	<-s.loginDone
}

// newMailboxName validates a name the client wants to create (CREATE, or
// RENAME's new name): mailstore's rules, and names that would be
// ambiguous to IMAP clients are refused as invalid.
func (s *session) newMailboxName(name string) (string, error) {
	n, err := s.mailboxName(name)
	if err != nil {
		return "", err
	}
	if reason := reservedName(n); reason != "" {
		return "", s.reply(fmt.Errorf("%w: %q: %s", mailstore.ErrInvalidName, n, reason), roleMailbox)
	}
	return n, nil
}

// reservedName says why a valid mailbox name may not be created, or "".
func reservedName(name string) string {
	// RFC 9051 §5.1: "#" has a meaning by convention (RFC 2342 namespace
	// prefixes, such as "#shared"); a personal mailbox named so would look
	// like another namespace.
	if strings.HasPrefix(name, "#") {
		return `"#" starts a namespace prefix`
	}
	// RFC 9051 §5.1: "%" and "*" are valid but cannot be listed reliably.
	if strings.ContainsAny(name, "%*") {
		return "list wildcards in a name"
	}
	for _, level := range strings.Split(name, mailstore.Separator) {
		if level == "." || level == ".." {
			return `"." or ".." as a hierarchy level`
		}
	}
	return ""
}
