package imapd

import (
	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// Store changes flags (RFC 9051 §6.4.6) and answers with the new flags of
// each message, unless .SILENT. The change comes back as an event, which
// the view skips: this reply is the client's news of it.
//
// With CONDSTORE's UNCHANGEDSINCE (RFC 7162 §3.1.3) a message whose
// modseq is above the client's is left alone, in the same store write
// as the others' change (so no other session's change can fall between
// the test and the store), and the tagged OK lists it in MODIFIED. Once
// CONDSTORE is on, every response carries UID and MODSEQ, and a .SILENT
// STORE still tells each message's new MODSEQ (§3.1.3 example 9).
func (s *session) Store(byUID bool, a *wire.Store) error {
	sel := s.sel
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	if a.HasUnchangedSince {
		s.enableCondStore() // RFC 7162 §3.1: a CONDSTORE enabling command
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
	var updates []mailstore.FlagUpdate
	var modified []mailstore.UID
	if a.HasUnchangedSince {
		updates, modified, err = s.srv.store.StoreFlagsUnchangedSince(s.ctx, sel.mb.ID, uidSetOf(refs), op, a.Flags, a.UnchangedSince, sel.sub.ID())
	} else {
		updates, err = s.srv.store.StoreFlags(s.ctx, sel.mb.ID, uidSetOf(refs), op, a.Flags, sel.sub.ID())
	}
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	w := s.w
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
			if s.condstore {
				w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (UID ").Number(uint64(u.UID))
				s.writeModSeq(u.ModSeq)
				w.Raw(")").CRLF()
			}
			continue
		}
		sel.noteReported(u.UID, u.ModSeq)
		s.announceKeywords(u.Flags)
		w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (")
		if byUID || s.condstore {
			// RFC 9051 §6.4.9: UID STORE replies carry the UID; RFC 7162
			// §3.1: with CONDSTORE on, every reply does.
			w.Raw("UID ").Number(uint64(u.UID)).SP()
		}
		w.Raw("FLAGS ")
		s.writeMessageFlags(u.UID, u.Flags)
		s.writeModSeq(u.ModSeq)
		w.Raw(")").CRLF()
	}
	if len(modified) > 0 {
		// RFC 7162 §3.1.3: "The MODIFIED response code includes the
		// message set (for STORE) or set of UIDs (for UID STORE) of all
		// messages that failed the UNCHANGEDSINCE test."
		nums := make([]uint64, 0, len(modified))
		for _, uid := range modified {
			if byUID {
				nums = append(nums, uint64(uid))
			} else if seq, ok := sel.seqOf(uid); ok {
				nums = append(nums, uint64(seq))
			}
		}
		s.okCode = wire.Code{Name: "MODIFIED", Args: compactSet(nums)}
	}
	return w.Err()
}
