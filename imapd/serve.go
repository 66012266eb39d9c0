package imapd

import (
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

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/internal/acceptloop"
	"pushmail/internal/hibernate"
	"pushmail/internal/tlspolicy"
)

// The connection's life: Serve accepts, serveConn admits the connection
// (see admit), greets it and runs its commands one at a time on the
// connection's goroutine until LOGOUT, a BYE or the client's close.
// Responses go through one bufio.Writer, flushed once per command (a
// large FETCH also writes through as the buffer fills) or once per batch
// of pushed updates.

// Sizes of a connection's buffers. The reader's must hold the longest
// token the parser peeks at; both are small, for an idle session keeps
// them.
const (
	readBufSize  = 4 << 10
	writeBufSize = 4 << 10
)

// Timeouts of the server's own that the Options do not set.
const (
	// literalTimeout bounds the read of an APPEND message once the
	// client has been told to send it (go-imap's was the same).
	literalTimeout = 5 * time.Minute
	// writeTimeout bounds every write to a client: one that stops reading
	// cannot hold its session (and a goroutine) for ever.
	writeTimeout = 30 * time.Second
	// byeWriteTimeout bounds the BYE that Shutdown, an eviction or the
	// login timer write while the session may be writing itself.
	byeWriteTimeout = 5 * time.Second
	// maxBadCommands is how many client mistakes in a row end a session
	// that has not logged in: a client speaking another protocol, or
	// garbage (RFC 9051 §7.1.5 allows BYE for it). After login a session
	// is its user's own; it gets maxBadCommands*10.
	maxBadCommands = 10
)

// Serve accepts IMAP connections on ln until Shutdown, then returns nil.
// It may run on several listeners at once: a plain one (offering STARTTLS
// when Options.TLSConfig is set) and a tls.NewListener for implicit TLS.
func (s *Server) Serve(ln net.Listener) error { return s.serve(ln, nil) }

// serve accepts on ln; with tlsConfig, each connection starts TLS on top
// of the server's counting and timeouts (see countingListener).
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
	wrapped := countingListener{limitListener{ln, s}}
	err := acceptloop.Run(wrapped, s.log, s.isClosed, func(nc net.Conn) {
		if tlsConfig != nil {
			nc = newTLSServer(nc, tlsConfig) // tlspark.go
		}
		s.mu.Lock()
		defer s.mu.Unlock()
		if s.closed {
			// Accepted as Shutdown began, which may be waiting on
			// conns already: no new goroutine may join it.
			_ = nc.Close() // nothing was said on it yet
			return
		}
		s.conns.Go(func() { s.serveConn(nc) })
	})
	if err != nil {
		return fmt.Errorf("imap serve: %w", err)
	}
	return nil
}

// isClosed reports whether Shutdown has begun.
func (s *Server) isClosed() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closed
}

// ServeTLS is Serve for implicit TLS (RFC 8314 §3.3): it accepts on ln
// and runs the TLS handshake with config (at least TLS 1.2, whatever
// config says) before IMAP begins, under the first read deadline.
func (s *Server) ServeTLS(ln net.Listener, config *tls.Config) error {
	return s.serve(ln, tlspolicy.Enforce(config))
}

// newSession makes the session of an accepted connection.
func (s *Server) newSession(nc net.Conn) *session {
	ip := remoteIP(nc.RemoteAddr())
	ctx, cancel := context.WithCancel(s.baseCtx)
	id := s.nextID.Add(1)
	sess := &session{
		srv:       s,
		id:        id,
		raw:       nc,
		nc:        nc,
		ctx:       ctx,
		cancelCtx: cancel,
		ip:        ip,
		limitKey:  limitKey(nc.RemoteAddr()),
		log:       newSessionLogger(s.log, id, nc.RemoteAddr().String()), // sessionlog.go
		start:     time.Now(),
		counter:   connCounter(nc),
	}
	sess.w = wire.NewWriter(nil)
	sess.takeReader()
	sess.takeWriter()
	return sess
}

// serveConn runs one connection from its greeting to its close.
func (s *Server) serveConn(nc net.Conn) {
	sess := s.newSession(nc)
	victim, refusal := s.admit(sess)
	if refusal != nil {
		sess.cancel()
		sess.log.Debug("connection refused", "why", refusal.Text)
		// Both directions: on implicit TLS the BYE's write runs the
		// handshake first, which reads, and a client that stalls there
		// must not hold this goroutine (nor Shutdown) past the deadline.
		_ = nc.SetDeadline(time.Now().Add(byeWriteTimeout))
		sess.w.Untagged(wire.BYE, wireCode(refusal.Code), refusal.Text)
		if err := sess.w.Flush(); err != nil {
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
	// A session that hibernates lives on without this goroutine: whoever
	// wakes it closes it (see hibernate.go).
	hibernated := false
	defer func() {
		if !hibernated {
			sess.Close()
		}
	}()
	sess.startLoginTimer()
	sess.log.Debug("connected")
	if tc, ok := nc.(*tls.Conn); ok {
		if err := sess.handshake(tc); err != nil { // tlspark.go
			sess.log.Debug("TLS handshake failed", "err", err)
			return
		}
	}
	sess.wmu.Lock()
	// RFC 9051 §7.1.1: the greeting may carry the capabilities, which
	// spares clients a round trip.
	sess.w.Untagged(wire.OK, wire.Code{Name: "CAPABILITY", Args: strings.Join(sess.capabilities(), " ")}, "IMAP server ready")
	err := sess.flush()
	sess.wmu.Unlock()
	if err != nil {
		return
	}
	hibernated = sess.run()
}

// run reads and executes commands until the session ends (false) or
// hibernates (true): the goroutine must then leave the session alone,
// for it may already be awake on another.
func (s *session) run() (hibernated bool) {
	for {
		if err := s.awaitCommand(); err != nil {
			s.readFailed(err)
			return false
		}
		cmd, err := s.p.ReadCommand()
		if err != nil {
			var pe *wire.Error
			if !errors.As(err, &pe) {
				s.readFailed(err)
				return false
			}
			if !s.parseError(pe) {
				return false
			}
			continue
		}
		s.commands.Add(1)
		switch s.execute(cmd) {
		case stepEnd:
			return false
		case stepParked:
			return true
		}
	}
}

// awaitCommand waits for the first byte of the next command: as long as
// IdleTimeout once logged in, CommandTimeout before. The rest of the
// command then has CommandTimeout (literals more, see onLiteral).
func (s *session) awaitCommand() error {
	wait := s.srv.opts.CommandTimeout
	if s.user != nil {
		wait = s.srv.opts.IdleTimeout
	}
	if err := s.nc.SetReadDeadline(time.Now().Add(wait)); err != nil {
		return err
	}
	if _, err := s.br.Peek(1); err != nil {
		return err
	}
	return s.nc.SetReadDeadline(time.Now().Add(s.srv.opts.CommandTimeout))
}

// readFailed ends a session whose connection failed to read: a close by
// the client (quietly), or a timeout (with a BYE, RFC 9051 §5.4).
func (s *session) readFailed(err error) {
	switch {
	case errors.Is(err, os.ErrDeadlineExceeded):
		s.log.Debug("read timeout")
		s.byeIfOpen("Autologout; idle for too long")
	case errors.Is(err, io.EOF), errors.Is(err, net.ErrClosed), connectionGone(err):
		s.log.Debug("connection closed", "err", err)
	default:
		s.log.Debug("read", "err", err)
	}
}

// parseError answers a command the parser refused; false ends the
// session.
func (s *session) parseError(pe *wire.Error) bool {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.log.Debug("command refused by the parser", "tag", pe.Tag, "command", pe.Command, "err", pe)
	s.commands.Add(1)
	s.releaseMessage() // what Grow granted a message the parser dropped
	if pe.Command == "SELECT" || pe.Command == "EXAMINE" {
		// RFC 3501 §6.3.1: a failed SELECT leaves no mailbox selected.
		s.unselect()
	}
	if pe.Fatal {
		// Client and server no longer agree where a command starts: the
		// command gets its answer, then the connection closes.
		if pe.Tag != "" {
			status, code, text := parseErrorReply(pe)
			s.w.Tagged(pe.Tag, status, code, text)
		}
		s.byeLocked("Protocol error: " + pe.Msg)
		return false
	}
	if s.user == nil && looksLikeOtherProtocol(pe) {
		// A browser or a mail transfer agent sent here by mistake, or a
		// cross-protocol attack (HTML form to port 143): nothing it sends
		// next is IMAP.
		s.byeLocked("This is an IMAP server")
		return false
	}
	s.bad++
	limit := maxBadCommands
	if s.user != nil {
		limit *= 10
	}
	if s.bad >= limit {
		s.byeLocked("Too many invalid commands")
		return false
	}
	status, code, text := parseErrorReply(pe)
	if pe.Tag == "" {
		s.w.Untagged(status, code, text)
	} else {
		s.w.Tagged(pe.Tag, status, code, text)
	}
	return s.flush() == nil
}

// parseErrorReply maps a parser refusal to its status response: BAD for
// the client's syntax, NO where the command was well formed but refused.
func parseErrorReply(pe *wire.Error) (wire.StatusType, wire.Code, string) {
	status, code, text := wire.BAD, wire.Code{Name: string(imap.ResponseCodeClientBug)}, pe.Msg
	switch pe.Code {
	case wire.ErrUnknownCommand:
		code, text = wire.Code{}, "Unknown command"
	case wire.ErrMessageTooBig:
		// RFC 7889 §4: an APPEND over the limit is NO [TOOBIG].
		status, code, text = wire.NO, wire.Code{Name: string(imap.ResponseCodeTooBig)}, "Message too big"
	case wire.ErrLiteralTooBig, wire.ErrTooComplex:
		code = wire.Code{Name: string(imap.ResponseCodeLimit)}
		if pe.Code == wire.ErrLiteralTooBig && pe.Command == "SETMETADATA" {
			// RFC 5464 §4.3: a value over the limit is NO [METADATA
			// MAXSIZE n] (metadata.go).
			status, code, text = wire.NO, metadataMaxSize, "Metadata value too big"
		}
	case wire.ErrLiteralRefused:
		status, code, text = wire.NO, wire.Code{Name: string(imap.ResponseCodeLimit)}, "Literal refused"
		var ie *imap.Error
		if errors.As(pe.Err, &ie) {
			status, code, text = wire.StatusType(ie.Type), wireCode(ie.Code), ie.Text
		}
	case wire.ErrMailboxName:
		// RFC 3501 §5.1.3: a name that is not modified UTF-7 is the
		// client's mistake.
		text = "Invalid mailbox name: " + pe.Msg
	}
	return status, code, text
}

// looksLikeOtherProtocol reports whether a refused command is the first
// line of HTTP or SMTP.
func looksLikeOtherProtocol(pe *wire.Error) bool {
	switch strings.ToUpper(pe.Tag) {
	case "GET", "POST", "HEAD", "PUT", "OPTIONS", "CONNECT", "HELO", "EHLO", "MAIL", "RCPT":
		return pe.Code == wire.ErrUnknownCommand || pe.Code == wire.ErrSyntax
	}
	return false
}

// limits are the parser's bounds for this server.
func (s *session) limits() wire.Limits {
	return wire.Limits{
		MaxLiteral: maxLiteral,
		MaxMessage: int64(s.srv.opts.AppendLimit),
		MaxDiscard: s.srv.maxDiscard(),
	}
}

// maxLiteral bounds a literal anywhere but APPEND's message: names,
// passwords and search strings are short.
const maxLiteral = 4096

// maxDiscard bounds the bytes read and dropped after a refused command
// before the connection is closed instead: twice the APPEND limit, so a
// client that misjudged the limit gets NO [TOOBIG] and can go on, plus
// room for the command lines around it.
func (s *Server) maxDiscard() int64 { return 2*int64(s.opts.AppendLimit) + 64<<10 }

// onLiteral is the parser's hook for every literal within its limits
// (wire.Options.OnLiteral): it checks what the session can check before
// the data comes, and asks a synchronizing literal's client for it.
func (s *session) onLiteral(li wire.LiteralInfo) error {
	if li.Message {
		if s.user == nil {
			return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Not logged in"}
		}
		if li.Size == 0 {
			return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Empty message"}
		}
		if err := s.nc.SetReadDeadline(time.Now().Add(max(literalTimeout, s.srv.opts.CommandTimeout))); err != nil {
			return err
		}
	}
	if !li.Sync {
		return nil
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.w.Continue("Ready for literal data")
	return s.flush()
}

// growMessage is the parser's Grow: an APPEND message's buffer may grow
// to total bytes if the in-flight budget (Options.Budget) holds the
// growth. A client that announces {26214400} and goes silent holds 4 KiB,
// not 25 MB. What was granted is given back after the command (see
// releaseMessage).
func (s *session) growMessage(total int64) bool {
	if !s.srv.acquireInflight(total - s.held) {
		s.srv.opts.Metrics.appendRefused()
		s.log.Info("APPEND refused: in-flight budget spent", "held", s.held, "budget", s.srv.opts.Budget.Limit())
		return false
	}
	s.held = total
	return true
}

// releaseMessage gives back the budget of the last command's message.
func (s *session) releaseMessage() {
	s.srv.releaseInflight(s.held)
	s.held = 0
}

// flush sends what the writer holds under a fresh write deadline. The
// caller holds wmu.
func (s *session) flush() error {
	if err := s.raw.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
		return err
	}
	return s.w.Flush()
}

// byeLocked says BYE and closes the connection; the caller holds wmu.
func (s *session) byeLocked(text string) { s.byeCodeLocked(wire.Code{}, text) }

func (s *session) byeCodeLocked(code wire.Code, text string) {
	if s.byed {
		return
	}
	s.byed = true
	s.srv.releaseSlot(s)
	s.w.Untagged(wire.BYE, code, text)
	if err := s.flush(); err != nil {
		s.log.Debug("bye", "err", err)
	}
	if err := s.nc.Close(); err != nil {
		s.log.Debug("close", "err", err)
	}
}

// bye is byeLocked for other goroutines (Shutdown, an eviction, the login
// timer): it cuts short a write under way to a client that does not
// read, then waits for the session's command to finish writing.
func (s *session) bye(text string) { s.byeCode(wire.Code{}, text) }

// byeCode is bye with a response code.
func (s *session) byeCode(code wire.Code, text string) {
	if err := s.raw.SetWriteDeadline(time.Now().Add(byeWriteTimeout)); err != nil {
		s.log.Debug("bye deadline", "err", err)
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	// A hibernating session is taken out of the loop before its socket
	// closes, and a goroutine woken to end it.
	s.unparkLocked(hibernate.Stopped)
	s.byeCodeLocked(code, text)
}

// byeIfOpen is bye from the session's own goroutine between commands.
func (s *session) byeIfOpen(text string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.byeLocked(text)
}

// wireCode converts a go-imap response code.
func wireCode(c imap.ResponseCode) wire.Code { return wire.Code{Name: string(c)} }

// connectionGone reports whether err says the connection is no longer
// there: closed on our side, or by the peer.
func connectionGone(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}
