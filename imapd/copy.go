package imapd

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"pushmail/mailstore"
)

// Copy copies messages to another mailbox, keeping flags and dates
// (RFC 9051 §6.4.7), and reports COPYUID (RFC 4315 §3). A missing target
// is NO [TRYCREATE]. Copies into the selected mailbox reach the view as
// an event, announced by the Poll that follows.
func (s *session) Copy(numSet imap.NumSet, dest string) (*imap.CopyData, error) {
	s.beginCommand()
	s.waitIdle()
	refs, dst, err := s.copyArgs(numSet, dest)
	if err != nil || len(refs) == 0 {
		return nil, err
	}
	res, err := s.srv.store.Copy(s.ctx, s.sel.mb.ID, uidSetOf(refs), dst.ID, s.sel.sub.ID())
	if err != nil {
		return nil, s.reply(err, roleTarget)
	}
	return copyData(res), nil
}

// Move moves messages to another mailbox (RFC 6851): COPYUID first, then
// an EXPUNGE for each source message.
func (s *session) Move(w *imapserver.MoveWriter, numSet imap.NumSet, dest string) error {
	s.beginCommand()
	sel := s.selected()
	if sel.readOnly {
		// RFC 6851 §3.3: MOVE expunges, which EXAMINE does not allow.
		return errReadOnly
	}
	refs, dst, err := s.copyArgs(numSet, dest)
	if err != nil || len(refs) == 0 {
		return err
	}
	// One store call: the MOVE is atomic (RFC 6851 §3.3), all or none.
	res, moveErr := s.srv.store.Move(s.ctx, sel.mb.ID, uidSetOf(refs), dst.ID, sel.sub.ID())
	if data := copyData(res); data != nil {
		if err := w.WriteCopyData(data); err != nil {
			return err
		}
	}
	for _, uid := range res.Source {
		if _, ok := sel.seqOf(uid); ok {
			sel.gone[uid] = true
		}
	}
	if err := sel.flushExpunged(w); err != nil {
		return err
	}
	return s.reply(moveErr, roleTarget)
}

// copyArgs resolves COPY and MOVE's messages and target mailbox.
func (s *session) copyArgs(numSet imap.NumSet, dest string) ([]msgRef, mailstore.Mailbox, error) {
	if err := s.checkSelected(s.sel); err != nil {
		return nil, mailstore.Mailbox{}, err
	}
	refs, err := s.sel.resolve(numSet)
	if err != nil {
		return nil, mailstore.Mailbox{}, err
	}
	name, err := s.mailboxName(dest)
	if err != nil {
		return nil, mailstore.Mailbox{}, err
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.user.ID, name)
	if err != nil {
		return nil, mailstore.Mailbox{}, s.reply(err, roleTarget)
	}
	return refs, mb, nil
}

// copyData converts a store result to COPYUID data, nil if nothing moved.
func copyData(res mailstore.CopyResult) *imap.CopyData {
	if len(res.Source) == 0 {
		return nil
	}
	data := &imap.CopyData{UIDValidity: res.UIDValidity}
	for i := range res.Source {
		data.SourceUIDs.AddNum(imap.UID(res.Source[i]))
		data.DestUIDs.AddNum(imap.UID(res.Dest[i]))
	}
	return data
}
