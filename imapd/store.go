package imapd

import (
	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// Store changes flags (RFC 9051 §6.4.6) and answers with the new flags of
// each message, unless .SILENT. The change comes back as an event, which
// the view skips: this reply is the client's news of it.
func (s *session) Store(byUID bool, a *wire.Store) error {
	sel := s.sel
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	if sel.readOnly {
		return errReadOnly
	}
	refs, err := sel.resolve(a.Set, byUID)
	if err != nil || len(refs) == 0 {
		return err
	}
	var op mailstore.FlagOp
	switch a.Op {
	case wire.StoreReplace:
		op = mailstore.FlagsSet
	case wire.StoreAdd:
		op = mailstore.FlagsAdd
	case wire.StoreRemove:
		op = mailstore.FlagsRemove
	}
	updates, err := s.srv.store.StoreFlags(s.ctx, sel.mb.ID, uidSetOf(refs), op, a.Flags, sel.sub.ID())
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	for _, u := range updates {
		seq, ok := sel.seqOf(u.UID)
		if !ok || sel.gone[u.UID] {
			continue
		}
		if a.Silent {
			// The client knows its own change, not the flags as a whole:
			// older updates from others must not follow, unless not sent
			// yet (view.go noteSilent).
			sel.noteSilent(u.UID, u.ModSeq, u.Flags)
			continue
		}
		sel.noteReported(u.UID, u.ModSeq)
		s.announceKeywords(u.Flags)
		w := s.w
		w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (")
		if byUID {
			// RFC 9051 §6.4.9: UID STORE replies carry the UID.
			w.Raw("UID ").Number(uint64(u.UID)).SP()
		}
		w.Raw("FLAGS ")
		s.writeMessageFlags(u.UID, u.Flags)
		w.Raw(")").CRLF()
	}
	return s.w.Err()
}
