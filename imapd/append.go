package imapd

import (
	"errors"
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
)

// Memory for APPEND literals. The literal's size is the client's claim:
// nothing is sized from it but the last step of the buffer's growth.
// The buffer starts at appendBufSize (or the literal's size, if smaller)
// and doubles as bytes arrive, each step counted against Options.Budget
// before it is allocated; so a client that announces {26214400} and goes
// silent holds appendBufSize, not 25 MB.
const appendBufSize = 64 << 10

// errBudgetSpent is what readLiteral returns when Options.Budget cannot
// hold the next step of the buffer.
var errBudgetSpent = errors.New("in-flight message budget spent")

// Append stores a message in a mailbox with the given flags and date
// (RFC 9051 §6.3.12) and reports APPENDUID (RFC 4315 §3). A missing
// mailbox is NO [TRYCREATE]; a message over the limit NO [TOOBIG]
// (RFC 7889 §4), which imapserver checks before reading the literal; a
// spent in-flight budget NO [LIMIT] (see readLiteral).
// An append to the selected mailbox reaches the view as an event.
//
// Whatever Append leaves of the literal unread, imapserver reads and
// drops after it returns (imapserver/append.go handleAppend), so a
// refusal keeps client and server agreed on where the next command
// starts (see literalGuard).
func (s *session) Append(mailbox string, r imap.LiteralReader, options *imap.AppendOptions) (*imap.AppendData, error) {
	s.beginCommand()
	if err := s.checkAccount(); err != nil {
		return nil, err
	}
	name, err := s.mailboxName(mailbox)
	if err != nil {
		return nil, err
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.user.ID, name)
	if err != nil {
		return nil, s.reply(err, roleTarget)
	}
	if r.Size() > int64(s.srv.opts.AppendLimit) {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeTooBig, Text: "Message too big"}
	}
	if r.Size() == 0 {
		return nil, &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeCannot, Text: "Empty message"}
	}
	raw, held, err := s.srv.readLiteral(r)
	defer s.srv.releaseInflight(held)
	if errors.Is(err, errBudgetSpent) {
		s.srv.opts.Metrics.appendRefused()
		s.log.Info("APPEND refused: in-flight budget spent", "size", r.Size(), "budget", s.srv.opts.Budget.Limit())
		return nil, s.reply(err, roleTarget)
	}
	if err != nil {
		return nil, fmt.Errorf("read APPEND literal: %w", err)
	}
	res, err := s.srv.store.Append(s.ctx, mb.ID, raw, storeFlags(options.Flags), options.Time, s.origin())
	if err != nil {
		return nil, s.reply(err, roleTarget)
	}
	return &imap.AppendData{UID: imap.UID(res.UID), UIDValidity: res.UIDValidity}, nil
}

// readLiteral reads the whole of r into a buffer that grows with the
// bytes received, and returns it with the budget it holds (its
// capacity), which the caller releases once nothing refers to the
// bytes, also on error. It returns errBudgetSpent, having read no more,
// when the budget cannot hold the next step.
func (s *Server) readLiteral(r imap.LiteralReader) (raw []byte, held int64, err error) {
	size := r.Size()
	buf := []byte(nil)
	for int64(len(buf)) < size {
		if len(buf) == cap(buf) {
			next := min(max(2*int64(cap(buf)), appendBufSize), size)
			if !s.acquireInflight(next) {
				return nil, held, errBudgetSpent
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			// The old buffer is garbage from here; its budget goes back
			// as the new one's is held.
			s.releaseInflight(held)
			buf, held = grown, next
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if err == io.EOF && int64(len(buf)) < size {
			err = io.ErrUnexpectedEOF
		}
		if err != nil && err != io.EOF {
			return nil, held, err
		}
		if err == io.EOF {
			break
		}
	}
	return buf, held, nil
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
