package imapd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"pushmail/mailstore"
)

// session is one IMAP connection's state. imapserver calls its methods
// one command at a time from the connection's goroutine, except Idle,
// which runs on a goroutine of its own while the connection goroutine
// waits for DONE (and Close, which can then overlap a finishing Idle: it
// touches only what is safe for concurrent use).
type session struct {
	srv    *Server
	id     uint64 // connection id, in every log record
	conn   *imapserver.Conn
	ctx    context.Context // derived from the Server's; cancelled by Close
	cancel context.CancelFunc
	ip     string // for the login limiter and logs
	log    *slog.Logger

	limitKey string // for the connection limits (see limitKey)
	released bool   // its slot is free (evicted or closed); Server.mu

	user *mailstore.User // nil until Login succeeds
	sel  *selected       // nil unless a mailbox is selected

	// idleMu is held while Idle runs. imapserver does not always wait for
	// Idle to return before reading the next command (a line other than
	// DONE ends IDLE with BAD at once), so every method that touches sel
	// first waits for it (waitIdle).
	idleMu sync.Mutex

	closeOnce sync.Once

	// authed is set by a successful Login; the login timer reads it.
	authed     atomic.Bool
	loginTimer *time.Timer   // see startLoginTimer
	loginDone  chan struct{} // closed when the timer's function returns

	start   time.Time     // for the session's log line
	counter *countingConn // bytes and lines, for the log line; may be nil

	// checkedIn is counter.in when checkAccount last found the account:
	// Poll need not look again until the client has sent more.
	checkedIn atomic.Int64

	// commands counts the client's commands, for the session's log line
	// (see beginCommand); pollTail is set while the Poll imapserver makes
	// after a command's success would belong to that command.
	commands atomic.Int64
	pollTail atomic.Bool
}

// beginCommand counts a command: every session method imapserver calls
// for a command begins with it. imapserver then calls Poll after each
// command that succeeds in the authenticated or selected state; that Poll
// is the same command, while a Poll with no method before it is a command
// of its own (NOOP, CHECK, or one imapserver answers alone, such as
// CAPABILITY). A failed command has no Poll: reply clears pollTail. Not
// counted: commands before login other than LOGIN and AUTHENTICATE, LOGOUT,
// and lines imapserver rejects as syntax errors. The raw line count is no
// substitute: after STARTTLS, connections carry ciphertext.
func (s *session) beginCommand() {
	s.commands.Add(1)
	s.pollTail.Store(true)
}

// waitIdle returns once no Idle is running.
func (s *session) waitIdle() {
	s.idleMu.Lock()
	s.idleMu.Unlock() // nothing to guard: only waiting for Idle to release it
}

// selected waits for a finishing Idle and returns the selected mailbox;
// imapserver calls the selected-state methods only with one.
func (s *session) selected() *selected {
	s.waitIdle()
	return s.sel
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

// Close ends the session: imapserver calls it once the connection is gone.
func (s *session) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.stopLoginTimer()
		// s.sel itself is left alone: an Idle still returning may read it.
		if sel := s.sel; sel != nil {
			sel.sub.Close()
		}
		s.srv.endSession(s)
		s.srv.opts.Metrics.sessionClosed()
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

// AppendLimit is the largest APPEND literal accepted (RFC 7889).
func (s *session) AppendLimit() uint32 { return s.srv.opts.AppendLimit }

// Namespace reports one personal namespace, "" with "/" (RFC 2342).
func (s *session) Namespace() (*imap.NamespaceData, error) {
	s.beginCommand()
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: rune(mailstore.Separator[0])}},
	}, nil
}

// origin is the ID the session's store writes carry as their events'
// Origin: its subscription's, or 0 when nothing is selected.
func (s *session) origin() uint64 {
	if s.selected() == nil {
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
		return nil // imapserver calls no mail command before login
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
	if c := s.counter; c != nil {
		// A FETCH collects its responses: send them before the BYE.
		if err := c.endBatch(); err != nil {
			s.log.Debug("flush before bye", "err", err)
		}
	}
	if err := s.conn.Bye("Account no longer exists"); err != nil {
		s.log.Debug("bye", "err", err)
	}
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
	return s.conn.Bye("Selected mailbox was deleted, have to disconnect")
}
