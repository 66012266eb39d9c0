package imapd

import (
	"errors"
)

// poll sends what changed in the selected mailbox since the last
// command: execute calls it after each successful command, before the
// tagged reply, with allowExpunge false after FETCH, STORE and SEARCH
// (RFC 9051 §7.5.1). IDLE's pushes are in idle (commands.go).
//
// It also ends the session of a deleted account (checkAccount), unless the
// command has looked already and the client has sent nothing since.
func (s *session) poll(allowExpunge bool) error {
	if c := s.counter; c == nil || c.in.Load() != s.checkedIn.Load() {
		if err := s.checkAccount(); err != nil {
			return pollError(err)
		}
	}
	return s.update(updates{s}, allowExpunge)
}

// pollError is what poll returns for err: nil once the session has said
// BYE, which execute then finds.
func pollError(err error) error {
	if errors.Is(err, errAccountGone) {
		return nil
	}
	return err
}

// update applies pending events to the view and writes them to w.
// Then it writes what NOTIFY has gathered (notify.go).
func (s *session) update(w updater, allowExpunge bool) error {
	if s.sel != nil {
		known := s.sel.known
		err := s.sel.update(s.ctx, s.srv.store, w, allowExpunge)
		if errors.Is(err, errMailboxGone) {
			return s.mailboxGone()
		}
		if err != nil {
			return s.reply(err, roleMailbox)
		}
		if err := s.notifyFetchNew(known); err != nil {
			return err
		}
	}
	return s.notifyUpdate()
}

// updateFailed is what update returns after the view's update ended in
// err: the mailbox's deletion says BYE, other errors become the command's
// reply.
func (s *session) updateFailed(err error) error {
	if errors.Is(err, errMailboxGone) {
		return s.mailboxGone()
	}
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	return nil
}
