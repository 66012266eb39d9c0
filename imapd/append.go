package imapd

import (
	"fmt"
	"io"

	"github.com/emersion/go-imap/v2"
)

// Append stores a message in a mailbox with the given flags and date
// (RFC 9051 §6.3.12) and reports APPENDUID (RFC 4315 §3). A missing
// mailbox is NO [TRYCREATE]; a message over the limit NO [TOOBIG]
// (RFC 7889 §4), which imapserver checks before reading the literal.
// An append to the selected mailbox reaches the view as an event.
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
	raw := make([]byte, r.Size())
	if _, err := io.ReadFull(r, raw); err != nil {
		return nil, fmt.Errorf("read APPEND literal: %w", err)
	}
	res, err := s.srv.store.Append(s.ctx, mb.ID, raw, storeFlags(options.Flags), options.Time, s.origin())
	if err != nil {
		return nil, s.reply(err, roleTarget)
	}
	return &imap.AppendData{UID: imap.UID(res.UID), UIDValidity: res.UIDValidity}, nil
}
