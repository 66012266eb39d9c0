package imapd

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

	"pushmail/imapd/wire"
	"pushmail/internal/hibernate"
	"pushmail/mailstore"
)

// session is one IMAP connection's state. Its commands run one at a time
// on the connection's goroutine (serveConn), which holds wmu while a
// command runs and writes; other goroutines (Shutdown, an eviction, the
// login timer) only say BYE, under wmu (see bye).
type session struct {
	srv *Server
	id  uint64          // connection id, in every log record
	raw net.Conn        // as accepted (under TLS, if any): deadlines, close
	nc  net.Conn        // what the session reads and writes: raw, or TLS over it
	tin tlsInput        // the reader's input over TLS (tlspark.go)
	ctx context.Context // derived from the Server's; cancelled by cancel
	// cancelCtx cancels ctx; cancel also ends a TLS handshake under way.
	cancelCtx context.CancelFunc
	// handshakeCancel is set while a TLS handshake runs (handshake,
	// tlspark.go) to what ends it.
	handshakeCancel atomic.Pointer[context.CancelFunc]
	ip              string // for the login limiter and logs
	log             *slog.Logger

	br *bufio.Reader
	bw *bufio.Writer
	p  *wire.Parser
	w  *wire.Writer

	// wmu is held while a command runs and writes, and by bye.
	wmu  sync.Mutex
	byed bool // a BYE was sent or the connection closed; wmu
	// idling: an IDLE is running, awake or parked; wmu. NOTIFY's watch
	// goroutine is stopped meanwhile (notify.go). (Beside byed: the
	// session's size stays a size class smaller.)
	idling bool

	// parked is set while the session hibernates in IDLE, without a
	// goroutine, br or bw (hibernate.go); wmu.
	parked *hibernate.Conn
	// pushLeft is what a direct push left for the session to send and
	// answer when it wakes (pushdirect.go), nil if nothing (a pointer:
	// it is rare, and every hibernating session carries the field); wmu.
	pushLeft *pushLeft
	// pushAgain: a fan-out worker found wmu held (Deliver).
	pushAgain atomic.Bool
	// idleUntil is when the running IDLE times out (IdleTimeout).
	idleUntil time.Time

	// Per command, reset by execute.
	tag        string    // the command's tag
	okCode     wire.Code // the tagged OK's response code
	noTagged   bool      // the command wrote its tagged reply (STARTTLS)
	loggingOut bool      // LOGOUT: end after the tagged reply
	held       int64     // in-flight budget of the APPEND message read

	bad int // client mistakes in a row (parseError)

	rev2 bool // ENABLE IMAP4rev2 (RFC 9051 §6.3.1)
	utf8 bool // ENABLE UTF8=ACCEPT (RFC 6855)
	// condstore: a CONDSTORE enabling command has run (RFC 7162 §3.1),
	// so FETCH responses about flag changes carry UID and MODSEQ.
	condstore bool
	// qresync: ENABLE QRESYNC (RFC 7162 §3.2.3), which implies condstore:
	// expunges are announced as VANISHED.
	qresync bool
	// okModSeq (per command): the tagged OK carries HIGHESTMODSEQ, taken
	// after the command's updates went out (EXPUNGE, MOVE; condstore.go).
	okModSeq bool

	limitKey string // for the connection limits (see limitKey)

	user *mailstore.User // nil until Login succeeds
	sel  *selected       // nil unless a mailbox is selected
	// notif is the session's NOTIFY SET (notify.go); nil without, or
	// after NOTIFY NONE or an overflow.
	notif *notifier

	closeOnce sync.Once

	// authed is set by a successful Login; the login timer reads it.
	authed     atomic.Bool
	loginTimer *time.Timer   // see startLoginTimer
	loginDone  chan struct{} // closed when the timer's function returns

	start   time.Time     // for the session's log line
	counter *countingConn // bytes, for the log line; may be nil

	// checkedIn is counter.in when checkAccount last found the account:
	// poll need not look again until the client has sent more.
	checkedIn atomic.Int64

	// commands counts the client's commands, for the session's log line.
	commands atomic.Int64
}

// cancel cancels the session's context, and ends a TLS handshake under
// way (handshake, tlspark.go).
func (s *session) cancel() {
	s.cancelCtx()
	if f := s.handshakeCancel.Load(); f != nil {
		(*f)()
	}
}

// Close ends the session once its goroutine is done with it: the
// connection is closed, the slot and the subscription freed.
func (s *session) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.stopLoginTimer()
		s.wmu.Lock()
		s.byed = true
		s.releaseBuffers() // nothing writes after byed
		// Under wmu: NOTIFY's goroutine may end it too (an overflow).
		s.stopNotify()
		s.wmu.Unlock()
		// The slot is freed before the socket closes: a client that
		// reconnects as soon as it reads EOF must find it free.
		s.srv.releaseSlot(s)
		// nc, not raw: after STARTTLS, closing the TLS layer sends
		// close_notify first (RFC 8446 §6.1: each party MUST send it
		// before closing its write side), as implicit TLS, where raw is
		// the TLS connection, always did. Its write is bounded (5 s, in
		// crypto/tls). nc is only changed on this goroutine (startTLS).
		if err := s.nc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.log.Debug("close", "err", err)
		}
		if sel := s.sel; sel != nil {
			sel.sub.Close()
		}
		// Counted out before the slot is freed: Shutdown returns once
		// every slot is, and the gauge must read 0 by then.
		s.srv.opts.Metrics.sessionClosed()
		s.srv.endSession(s)
		s.logSession()
	})
	return nil
}

// logSession writes the session's one line: who, how long, how much.
// Never passwords or message contents.
func (s *session) logSession() {
	// The user, once logged in, is already on s.log.
	args := []any{"duration", time.Since(s.start).Round(time.Millisecond)}
	if c := s.counter; c != nil {
		args = append(args, "commands", s.commands.Load(), "bytes_in", c.in.Load(), "bytes_out", c.out.Load())
	} else {
		args = append(args, "commands", s.commands.Load())
	}
	s.log.Info("imap session", args...)
}

// origin is the ID the session's store writes carry as their events'
// Origin: its subscription's, or 0 when nothing is selected.
func (s *session) origin() uint64 {
	if s.sel == nil {
		return 0
	}
	return s.sel.sub.ID()
}

// checkAccount returns nil while the logged-in account exists. Once it
// has been deleted (by another session, or by "pushmail user del" in
// another process, which this one hears nothing of), it ends the session
// and returns errAccountGone. Every command that reads or writes the
// user's mail calls it (or checkSelected) first, so a deleted account's
// session ends at its next command instead of failing oddly (CREATE's
// insert breaking a foreign key) or, once SQLite gives the user's id to a
// new account, showing that account's mail. Poll calls it for the
// commands that have no method here (NOOP, CHECK, CAPABILITY, ENABLE).
func (s *session) checkAccount() error {
	return s.check(nil)
}

// checkSelected is checkAccount for a command on the selected mailbox
// sel: it also ends the session if sel has been deleted, even if the
// event saying so is still queued (its id may already name another
// user's new mailbox).
func (s *session) checkSelected(sel *selected) error {
	return s.check(sel)
}

func (s *session) check(sel *selected) error {
	err := s.accountExists(sel)
	if sel != nil && errors.Is(err, mailstore.ErrNoSuchMailbox) {
		if berr := s.mailboxGone(); berr != nil {
			s.log.Debug("bye", "err", berr)
		}
		return errMailboxGoneReply
	}
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	if c := s.counter; c != nil {
		s.checkedIn.Store(c.in.Load())
	}
	return nil
}

// accountExists looks the logged-in account up in the store, and sel's
// mailbox if sel is not nil: nil if they are still there, an error
// wrapping mailstore.ErrNoSuchUser or ErrNoSuchMailbox if not.
func (s *session) accountExists(sel *selected) error {
	if s.user == nil {
		return nil // no mail command runs before login (checkState)
	}
	var mbID mailstore.MailboxID
	if sel != nil {
		mbID = sel.mb.ID
	}
	// Two rows by primary key: not worth cancelling, and a context that
	// cannot be cancelled spares the sqlite3 driver a goroutine per query
	// (to watch it), which cost more than the query itself.
	u, mb, err := s.srv.store.UserAndMailbox(context.WithoutCancel(s.ctx), s.user.ID, mbID)
	if err != nil {
		return err
	}
	if u.Address != s.user.Address || !u.Created.Equal(s.user.Created) {
		// The id went to an account added since (see UserAndMailbox).
		return fmt.Errorf("%w: id %d was reused", mailstore.ErrNoSuchUser, s.user.ID)
	}
	if sel != nil && (mb.User != sel.mb.User || mb.UIDValidity != sel.mb.UIDValidity) {
		return fmt.Errorf("%w: id %d was reused", mailstore.ErrNoSuchMailbox, mbID)
	}
	return nil
}

// accountDeleted reports whether the logged-in account is gone. reply
// asks when a store error is one nobody expected, or says a mailbox is
// missing: the account may have been deleted since the command's
// checkAccount, and the session then ends instead of answering.
func (s *session) accountDeleted() bool {
	return errors.Is(s.accountExists(nil), mailstore.ErrNoSuchUser)
}

// accountGone ends the session of a deleted account: "* BYE" (RFC 9051
// §7.1.5), then the connection is closed.
func (s *session) accountGone(err error) error {
	s.log.Info("account deleted: ending the session", "err", err)
	s.byeLocked("Account no longer exists")
	return errAccountGone
}

// mailboxGone ends the session whose selected mailbox was deleted, or its
// whole account; it returns the error of the BYE.
func (s *session) mailboxGone() error {
	if gone := s.accountExists(nil); errors.Is(gone, mailstore.ErrNoSuchUser) {
		// DeleteUser's events: the whole account went.
		_ = s.accountGone(gone) // always errAccountGone, for a command's reply
		return nil
	}
	// Dovecot does the same: the view cannot go on without a mailbox.
	s.log.Info("selected mailbox was deleted")
	s.byeLocked("Selected mailbox was deleted, have to disconnect")
	return nil
}
