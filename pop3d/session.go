package pop3d

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"pushmail/mailstore"
)

// state is a session's POP3 state (RFC 1939 §3). The UPDATE state lasts
// only while QUIT writes the store, so it is not one of them.
type state int

const (
	stateAuthorization state = iota
	stateTransaction
)

func (st state) String() string {
	if st == stateTransaction {
		return "TRANSACTION"
	}
	return "AUTHORIZATION"
}

// session is one POP3 connection's state. Its commands run one at a time
// on the connection's goroutine (serveConn), which holds wmu while a
// command runs and writes; other goroutines (Shutdown, an eviction, the
// login timer) only say goodbye, under wmu (see bye).
type session struct {
	srv    *Server
	id     uint64          // connection id, in every log record
	raw    *conn           // as accepted: counts, deadlines, close
	nc     net.Conn        // what the session reads and writes: raw, or TLS over it
	ctx    context.Context // derived from the Server's; cancelled by Close
	cancel context.CancelFunc
	ip     string // for the login limiter and logs
	log    *slog.Logger

	br *bufio.Reader
	bw *bufio.Writer

	// wmu is held while a command runs and writes, and by bye.
	wmu  sync.Mutex
	byed bool // a goodbye was sent or the connection closed; wmu

	state    state
	userArg  string          // USER's argument, until PASS
	user     *mailstore.User // nil until logged in
	drop     *maildrop       // the snapshot, once logged in
	bad      int             // invalid commands in a row
	quitting bool            // QUIT: end after the reply

	limitKey string // for the connection limits (see limitKey)
	start    time.Time

	closeOnce sync.Once

	// authed is set by a successful login; the login timer reads it.
	authed     atomic.Bool
	loginTimer *time.Timer
	loginDone  chan struct{} // closed when the timer's function returns

	commands  atomic.Int64 // for the session's log line
	retrieved int          // RETR answered, for the log line
	removed   int          // messages removed at QUIT, for the log line
}

// Close ends the session once its goroutine is done with it: the
// connection is closed and the slot freed. Nothing marked for deletion is
// deleted: only QUIT does that (RFC 1939 §6).
func (s *session) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.stopLoginTimer()
		s.wmu.Lock()
		s.byed = true
		s.wmu.Unlock()
		// The slot is free before the client sees the close, so that a
		// client that reconnects at once is admitted.
		s.srv.opts.Metrics.sessionClosed()
		s.srv.endSession(s)
		// nc, not raw: after STLS, closing the TLS layer sends
		// close_notify first (RFC 8446 §6.1).
		if err := s.nc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("close", "err", err)
		}
		s.logSession()
	})
	return nil
}

// logSession writes the session's one line: who, how long, how much.
// Never passwords or message contents.
func (s *session) logSession() {
	args := []any{"duration", time.Since(s.start).Round(time.Millisecond),
		"commands", s.commands.Load(), "retrieved", s.retrieved, "removed", s.removed,
		"bytes_in", s.raw.in.Load(), "bytes_out", s.raw.out.Load()}
	if d := s.drop; d != nil && !s.quitting {
		args = append(args, "marked_not_removed", d.ndeleted)
	}
	s.log.Info("pop3 session", args...)
}

// ok writes a positive single-line response (RFC 1939 §3).
func (s *session) ok(text string) {
	s.bw.WriteString("+OK")
	if text != "" {
		s.bw.WriteByte(' ')
		s.bw.WriteString(text)
	}
	s.bw.WriteString("\r\n")
}

// okf is ok with a format.
func (s *session) okf(format string, args ...any) { s.ok(fmt.Sprintf(format, args...)) }

// writeErr writes a negative response with an RFC 2449 §8 code, if any.
func (s *session) writeErr(e *Error) {
	if e.Code != "" {
		fmt.Fprintf(s.bw, "-ERR [%s] %s\r\n", e.Code, e.Text)
		return
	}
	fmt.Fprintf(s.bw, "-ERR %s\r\n", e.Text)
}

// line writes one line of a multi-line response, byte-stuffed (RFC 1939
// §3: a line starting with "." gets another one).
func (s *session) line(text string) {
	if len(text) > 0 && text[0] == '.' {
		s.bw.WriteByte('.')
	}
	s.bw.WriteString(text)
	s.bw.WriteString("\r\n")
}

// end ends a multi-line response (RFC 1939 §3: "." CRLF).
func (s *session) end() { s.bw.WriteString(".\r\n") }

// byeLocked tells the client why it is disconnected and closes the
// connection; the caller holds wmu. code is an RFC 2449 §8 code or "".
// POP3 has no unsolicited responses, but a client reading a reply reads
// this one, and Dovecot does the same.
func (s *session) byeLocked(code, text string) {
	if s.byed {
		return
	}
	s.byed = true
	s.writeErr(&Error{Code: code, Text: text})
	if err := s.bw.Flush(); err != nil {
		s.log.Debug("bye", "err", err)
	}
	if err := s.nc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		s.log.Debug("close", "err", err)
	}
}

// bye is byeLocked with SYS/TEMP for other goroutines (Shutdown, an
// eviction): it cancels the session's context (which ends a failed
// login's delay and the wait for an AUTH response), gives a write under
// way to a client that does not read byeWriteTimeout to finish, then
// waits for the session's command to end. A QUIT's store write is not
// cancelled (see quit).
func (s *session) bye(text string) { s.byeCode(codeSysTemp, text) }

func (s *session) byeCode(code, text string) {
	s.cancel()
	s.raw.cut(byeWriteTimeout)
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.byeLocked(code, text)
}

// byeIfOpen is byeLocked from the session's own goroutine between
// commands.
func (s *session) byeIfOpen(code, text string) {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.byeLocked(code, text)
}

// startLoginTimer ends the session if it has not logged in within
// Options.LoginTimeout: CommandTimeout bounds each command, not how many
// a client sends.
func (s *session) startLoginTimer() {
	s.loginDone = make(chan struct{})
	log := s.log // login replaces s.log
	s.loginTimer = time.AfterFunc(s.srv.opts.LoginTimeout, func() {
		defer close(s.loginDone)
		if s.authed.Load() {
			return
		}
		log.Info("login timeout")
		s.cancel() // ends a failed login's delay
		s.byeCode("", "Login timeout")
	})
}

// releaseLoginTimer stops the login timer once the client has logged in.
// Called on the connection's goroutine, as Close is.
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
