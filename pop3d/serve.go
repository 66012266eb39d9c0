package pop3d

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"syscall"
	"time"

	"pushmail/internal/acceptloop"
	"pushmail/internal/tlspolicy"
)

// The connection's life: Serve accepts, serveConn admits the connection
// (see admit), greets it and runs its commands one at a time on the
// connection's goroutine until QUIT, an error or the client's close.
// Replies go through one bufio.Writer, flushed when no further complete
// command is waiting in the input (RFC 2449 §6.6 PIPELINING: a batch of
// pipelined commands is answered in one write).

const (
	// maxLineLength bounds a command line, CRLF included. RFC 2449 §4
	// sets 255 octets; more room is left for long passwords and AUTH
	// PLAIN's initial response (RFC 5034 §4), fewer than 1 KiB still.
	maxLineLength = 1024
	// writeBufSize is the size of a connection's reply buffer.
	writeBufSize = 4 << 10
	// maxBadCommands is how many invalid commands in a row end a session
	// that has not logged in (a client speaking another protocol, or
	// garbage); after login the limit is ten times as many.
	maxBadCommands = 10
)

// Serve accepts POP3 connections on ln until Shutdown, then returns nil.
// It may run on several listeners at once: a plain one (offering STLS
// when Options.TLSConfig is set) and one for implicit TLS (ServeTLS).
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, nil) }

// ServeTLS is Serve for implicit TLS (RFC 8314 §3.3; POP3S on port 995):
// it runs the TLS handshake with config (at least TLS 1.2, whatever
// config says) before the greeting, under the first command deadline.
func (s *Server) ServeTLS(ln net.Listener, config *tls.Config) error {
	return s.serve(ln, tlspolicy.Enforce(config))
}

func (s *Server) serve(ln net.Listener, tlsConfig *tls.Config) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		if err := ln.Close(); err != nil {
			s.log.Debug("close listener after shutdown", "err", err)
		}
		return nil
	}
	s.listeners[ln] = struct{}{}
	s.mu.Unlock()
	defer func() {
		s.mu.Lock()
		delete(s.listeners, ln)
		s.mu.Unlock()
	}()
	err := acceptloop.Run(ln, s.log, s.isClosed, func(nc net.Conn) {
		c := &conn{Conn: nc}
		// The first deadline also bounds an implicit-TLS handshake: a
		// client that connects and says nothing holds its slot no longer.
		if err := nc.SetReadDeadline(time.Now().Add(s.opts.CommandTimeout)); err != nil {
			s.log.Debug("set first deadline", "err", err)
		}
		var sc net.Conn = c
		if tlsConfig != nil {
			sc = tls.Server(c, tlsConfig)
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			// Accepted as Shutdown began, which may be waiting on
			// conns already: no new goroutine may join it.
			_ = c.Close() // nothing was said on it yet
			return
		}
		s.conns.Go(func() { s.serveConn(c, sc) })
	})
	if err != nil {
		return fmt.Errorf("pop3 serve: %w", err)
	}
	return nil
}

// isClosed reports whether Shutdown has begun.
func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// serveConn runs one connection from its greeting to its close. c is
// the accepted connection, nc what the session speaks over: c, or TLS
// over it.
func (s *Server) serveConn(c *conn, nc net.Conn) {
	sess := s.newSession(c, nc)
	victim, refusal := s.admit(sess)
	if refusal != "" {
		sess.cancel()
		sess.log.Debug("connection refused", "why", refusal)
		c.cut(byeWriteTimeout)
		// RFC 2449 §8.1.3 (RFC 3206 §4): SYS/TEMP, try again later.
		fmt.Fprintf(sess.bw, "-ERR [%s] %s\r\n", codeSysTemp, refusal)
		if err := sess.bw.Flush(); err != nil {
			sess.log.Debug("refusal", "err", err)
		}
		if err := nc.Close(); err != nil {
			sess.log.Debug("close", "err", err)
		}
		return
	}
	if victim != nil {
		s.evict(victim)
	}
	defer sess.Close()
	sess.startLoginTimer()
	sess.log.Debug("connected")
	if tc, ok := nc.(*tls.Conn); ok {
		if err := tc.HandshakeContext(sess.ctx); err != nil {
			sess.log.Debug("TLS handshake failed", "err", err)
			return
		}
	}
	sess.wmu.Lock()
	// RFC 1939 §4: the greeting is a positive response. No APOP
	// timestamp: APOP is not offered (its MD5 needs the cleartext
	// password on the server).
	sess.ok("pushmail POP3 server ready")
	err := sess.bw.Flush()
	sess.wmu.Unlock()
	if err != nil {
		return
	}
	sess.run()
}

// run reads and executes commands until the session ends.
func (s *session) run() {
	for {
		line, err := s.readCommand()
		if err != nil {
			s.readFailed(err)
			return
		}
		s.commands.Add(1)
		if !s.execute(line) {
			return
		}
	}
}

// readCommand waits for the next command line: its first byte as long as
// IdleTimeout once logged in, CommandTimeout before; the rest within
// CommandTimeout. It returns the line without its line end.
func (s *session) readCommand() (string, error) {
	wait := s.srv.opts.CommandTimeout
	if s.state == stateTransaction {
		wait = s.srv.opts.IdleTimeout
	}
	if err := s.nc.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return "", err
	}
	if _, err := s.br.Peek(1); err != nil {
		return "", err
	}
	return s.readLine()
}

// readLine reads one line within CommandTimeout and returns it without
// CRLF (a bare LF is accepted too). A line over maxLineLength is
// errLineTooLong.
func (s *session) readLine() (string, error) {
	if err := s.nc.SetReadDeadline(time.Now().Add(s.srv.opts.CommandTimeout)); err != nil {
		return "", err
	}
	b, err := s.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		return "", errLineTooLong
	}
	if err != nil {
		return "", err
	}
	b = bytes.TrimSuffix(b[:len(b)-1], []byte("\r"))
	return string(b), nil
}

// errLineTooLong is readLine's error for a line over maxLineLength.
var errLineTooLong = errors.New("line too long")

// readFailed ends a session whose connection failed to read: a close by
// the client (quietly), a timeout or an over-long line (with -ERR).
func (s *session) readFailed(err error) {
	switch {
	case errors.Is(err, errLineTooLong):
		s.log.Debug("line too long")
		// RFC 2449 §4: a command line is at most 255 octets; where it
		// ends is lost, so the connection ends.
		s.byeIfOpen("", "Line too long")
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.log.Debug("read timeout")
		// RFC 1939 §3: the autologout timer does not enter the UPDATE
		// state; nothing marked is deleted.
		s.byeIfOpen("", "Disconnected for inactivity")
	case connectionGone(err):
		s.log.Debug("connection closed", "err", err)
	default:
		s.log.Debug("read", "err", err)
	}
}

// pendingCommand reports whether a whole command line is already
// buffered: its replies may then wait for the same write as this one's.
func (s *session) pendingCommand() bool {
	n := s.br.Buffered()
	if n == 0 {
		return false
	}
	b, err := s.br.Peek(n)
	return err == nil && bytes.IndexByte(b, '\n') >= 0
}

// newSession makes the session of an accepted connection.
func (s *Server) newSession(c *conn, nc net.Conn) *session {
	ctx, cancel := context.WithCancel(s.baseCtx)
	id := s.nextID.Add(1)
	sess := &session{
		srv:      s,
		id:       id,
		raw:      c,
		nc:       nc,
		ctx:      ctx,
		cancel:   cancel,
		ip:       remoteIP(c.RemoteAddr()),
		limitKey: limitKey(c.RemoteAddr()),
		log:      s.log.With("cid", id, "remote", c.RemoteAddr().String()),
		start:    time.Now(),
		state:    stateAuthorization,
	}
	sess.br = bufio.NewReaderSize(nc, maxLineLength)
	sess.bw = bufio.NewWriterSize(nc, writeBufSize)
	return sess
}

// connectionGone reports whether err says the connection is no longer
// there: closed on our side, or by the peer.
func connectionGone(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}

// looksLikeOtherProtocol reports whether a first command is HTTP's or
// SMTP's: a browser or an MTA sent here by mistake, or a cross-protocol
// attack (an HTML form posted to port 110). Nothing it sends is POP3.
func looksLikeOtherProtocol(keyword string) bool {
	switch strings.ToUpper(keyword) {
	case "GET", "POST", "HEAD", "PUT", "OPTIONS", "CONNECT", "HELO", "EHLO", "MAIL", "RCPT":
		return true
	}
	return false
}
