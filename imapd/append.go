package imapd

import (
	"fmt"

	"pushmail/imapd/wire"
)

// appendBufSize is the first size of an APPEND message's buffer, which
// then doubles as bytes arrive, each step counted against Options.Budget
// before it is allocated (see session.growMessage); a client that
// announces {26214400} and goes silent holds this, not 25 MB.
const appendBufSize = 4 << 10

// Append stores a message in a mailbox with the given flags and date
// (RFC 9051 §6.3.12) and reports APPENDUID (RFC 4315 §3). A missing
// mailbox is NO [TRYCREATE]; a message over the limit NO [TOOBIG]
// (RFC 7889 §4) and a spent in-flight budget NO [LIMIT], both from the
// parser before the message is read (see parseError).
// An append to the selected mailbox reaches the view as an event.
func (s *session) Append(a *wire.Append) error {
	if len(a.More) > 0 {
		return s.multiAppend(a)
	}
	if err := s.checkAccount(); err != nil {
		return err
	}
	name, err := s.mailboxName(a.Mailbox)
	if err != nil {
		return err
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.user.ID, name)
	if err != nil {
		return s.reply(err, roleTarget)
	}
	res, err := s.srv.store.Append(s.ctx, mb.ID, a.Message, a.Flags, a.Date, s.origin())
	if err != nil {
		return s.reply(err, roleTarget)
	}
	s.okCode = wire.Code{Name: "APPENDUID", Args: fmt.Sprintf("%d %d", res.UIDValidity, res.UID)}
	return nil
}

// acquireInflight takes n bytes of the in-flight budget, if free.
func (s *Server) acquireInflight(n int64) bool {
	if !s.opts.Budget.TryAcquire(n) {
		return false
	}
	s.opts.Metrics.inflightChanged(n)
	return true
}

// releaseInflight gives back n bytes taken with acquireInflight.
func (s *Server) releaseInflight(n int64) {
	if n == 0 {
		return
	}
	s.opts.Budget.Release(n)
	s.opts.Metrics.inflightChanged(-n)
}
