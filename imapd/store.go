package imapd

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"pushmail/mailstore"
)

// Store changes flags (RFC 9051 §6.4.6) and answers with the new flags of
// each message, unless .SILENT. The change comes back as an event, which
// the view skips: this reply is the client's news of it.
func (s *session) Store(w *imapserver.FetchWriter, numSet imap.NumSet, flags *imap.StoreFlags, options *imap.StoreOptions) error {
	s.beginCommand()
	sel := s.selected()
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	if sel.readOnly {
		return errReadOnly
	}
	refs, err := sel.resolve(numSet)
	if err != nil || len(refs) == 0 {
		return err
	}
	var op mailstore.FlagOp
	switch flags.Op {
	case imap.StoreFlagsSet:
		op = mailstore.FlagsSet
	case imap.StoreFlagsAdd:
		op = mailstore.FlagsAdd
	case imap.StoreFlagsDel:
		op = mailstore.FlagsRemove
	}
	updates, err := s.srv.store.StoreFlags(s.ctx, sel.mb.ID, uidSetOf(refs), op, storeFlags(flags.Flags), sel.sub.ID())
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	_, byUID := numSet.(imap.UIDSet)
	for _, u := range updates {
		seq, ok := sel.seqOf(u.UID)
		if !ok || sel.gone[u.UID] {
			continue
		}
		if flags.Silent {
			// The client knows its own change, not the flags as a whole:
			// older updates from others must not follow, unless not sent
			// yet (view.go noteSilent).
			sel.noteSilent(u.UID, u.ModSeq, u.Flags)
			continue
		}
		sel.noteReported(u.UID, u.ModSeq)
		rw := w.CreateMessage(seq)
		if byUID {
			// RFC 9051 §6.4.9: UID STORE replies carry the UID.
			rw.WriteUID(imap.UID(u.UID))
		}
		rw.WriteFlags(imapFlags(u.Flags))
		if err := rw.Close(); err != nil {
			return err
		}
	}
	return nil
}
