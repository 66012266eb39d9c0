package imapd

import (
	"errors"

	"github.com/emersion/go-imap/v2/imapserver"
)

// Poll sends what changed in the selected mailbox since the last command.
// imapserver calls it after each successful command, before the tagged
// reply, with allowExpunge false after FETCH, STORE and SEARCH
// (RFC 9051 §7.5.1).
//
// It also ends the session of a deleted account (checkAccount), unless the
// command has looked already and the client has sent nothing since.
func (s *session) Poll(w *imapserver.UpdateWriter, allowExpunge bool) error {
	if !s.pollTail.Swap(false) {
		s.commands.Add(1) // NOOP, CHECK, CAPABILITY, ENABLE…: see beginCommand
	}
	s.waitIdle()
	if c := s.counter; c == nil || c.in.Load() != s.checkedIn.Load() {
		if err := s.checkAccount(); err != nil {
			return pollError(err)
		}
	}
	return s.update(w, allowExpunge)
}

// pollError is what Poll and Idle return for err: nil once the session
// has said BYE, for imapserver then finds the connection closed and ends
// quietly.
func pollError(err error) error {
	if errors.Is(err, errAccountGone) {
		return nil
	}
	return err
}

// Idle pushes changes until the client sends DONE (RFC 2177, RFC 9051
// §6.3.13). It sleeps on one select: the subscription's wake-up, DONE and
// the session's context (Shutdown); it never polls the store. imapserver
// keeps the connection open for 35 minutes of IDLE, above the 29 that
// RFC 2177 §3 asks a client to re-issue IDLE within.
func (s *session) Idle(w *imapserver.UpdateWriter, stop <-chan struct{}) error {
	s.beginCommand()
	s.idleMu.Lock()
	defer s.idleMu.Unlock()
	// Not checkAccount: a command may run beside a finishing Idle.
	if err := s.accountExists(nil); err != nil {
		return pollError(s.reply(err, roleMailbox))
	}
	if s.sel == nil {
		// Nothing selected: nothing to push, but IDLE is still valid.
		select {
		case <-stop:
		case <-s.ctx.Done():
		}
		return nil
	}
	ready := s.sel.sub.Ready()
	s.srv.opts.Metrics.idleStarted()
	defer s.srv.opts.Metrics.idleEnded()
	for {
		if err := s.update(w, true); err != nil || s.sel.deleted {
			return err
		}
		select {
		case <-ready:
		case <-stop:
			return nil
		case <-s.ctx.Done():
			// Shutdown: it says BYE and closes the connection.
			return nil
		}
	}
}

// update applies pending events to the view and writes them to w.
func (s *session) update(w updater, allowExpunge bool) error {
	if s.sel == nil {
		return nil
	}
	err := s.sel.update(s.ctx, s.srv.store, w, allowExpunge)
	if errors.Is(err, errMailboxGone) {
		return s.mailboxGone()
	}
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	return nil
}
