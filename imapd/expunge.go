package imapd

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"pushmail/mailstore"
)

// Expunge removes the messages marked \Deleted (RFC 9051 §6.4.3), or
// those of them in uids for UID EXPUNGE (RFC 4315 §2.1), and sends an
// EXPUNGE for each, along with any expunge by others still pending.
//
// CLOSE calls Expunge with a zero ExpungeWriter and then Unselect: the
// messages are removed without EXPUNGE responses, and nothing at all is
// removed from a mailbox opened with EXAMINE (RFC 9051 §6.4.1).
func (s *session) Expunge(w *imapserver.ExpungeWriter, uids *imap.UIDSet) error {
	closing := *w == (imapserver.ExpungeWriter{})
	if !closing { // CLOSE is counted by its Unselect
		s.beginCommand()
	}
	sel := s.selected()
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	if sel.readOnly {
		if closing {
			return nil
		}
		return errReadOnly
	}
	// EXPUNGE and CLOSE cover the whole mailbox, messages appended since
	// the view was taken included; the store removes only \Deleted ones.
	set := mailstore.AllUIDs()
	if uids != nil {
		refs, err := sel.resolve(*uids)
		if err != nil {
			return err
		}
		if len(refs) == 0 {
			return nil
		}
		set = uidSetOf(refs)
	}
	expunged, err := s.srv.store.Expunge(s.ctx, sel.mb.ID, set, sel.sub.ID())
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	// Messages not in the view yet (appended meanwhile) are announced
	// and then expunged by the events, in that order.
	for _, uid := range expunged {
		if _, ok := sel.seqOf(uid); ok {
			sel.gone[uid] = true
		}
	}
	if closing {
		return nil
	}
	return sel.flushExpunged(w)
}
