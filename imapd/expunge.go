package imapd

import (
	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// Expunge removes the messages marked \Deleted (RFC 9051 §6.4.3), or
// those of them in set for UID EXPUNGE (RFC 4315 §2.1), and sends an
// EXPUNGE for each, along with any expunge by others still pending.
func (s *session) Expunge(set *wire.NumSet) error {
	sel := s.sel
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	if sel.readOnly {
		return errReadOnly
	}
	// EXPUNGE covers the whole mailbox, messages appended since the view
	// was taken included; the store removes only \Deleted ones.
	uids := mailstore.AllUIDs()
	if set != nil {
		refs, err := sel.resolve(*set, true)
		if err != nil {
			return err
		}
		if len(refs) == 0 {
			return nil
		}
		uids = uidSetOf(refs)
	}
	if _, err := s.expunge(uids); err != nil {
		return err
	}
	// RFC 7162 §3.2.7 (with RFC 9051 §7.1): an expunge raises the
	// mailbox's modseq, which the client sees in no FETCH; the tagged
	// OK tells it, once the command's updates have gone out.
	s.okModSeq = s.condstore
	return sel.flushExpunged(updates{s})
}

// expunge removes the messages of uids marked \Deleted from the selected
// mailbox and marks them gone in the view; CLOSE calls it alone, without
// the EXPUNGE responses (RFC 9051 §6.4.1).
func (s *session) expunge(uids mailstore.UIDSet) ([]mailstore.UID, error) {
	sel := s.sel
	expunged, err := s.srv.store.Expunge(s.ctx, sel.mb.ID, uids, sel.sub.ID())
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	// Messages not in the view yet (appended meanwhile) are announced
	// and then expunged by the events, in that order.
	for _, uid := range expunged {
		if _, ok := sel.seqOf(uid); ok {
			sel.markGone(uid)
		}
	}
	return expunged, nil
}
