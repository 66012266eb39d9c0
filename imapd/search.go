package imapd

import (
	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"pushmail/mailstore"
)

// Search answers SEARCH and UID SEARCH (RFC 9051 §6.4.4), with ESEARCH
// return options (RFC 4731) and SAVE (RFC 5182). The store evaluates the
// criteria; the result is limited to the session's view, since the client
// cannot name messages it has not been told about.
func (s *session) Search(kind imapserver.NumKind, criteria *imap.SearchCriteria, options *imap.SearchOptions) (*imap.SearchData, error) {
	s.beginCommand()
	sel := s.selected()
	if err := s.checkSelected(sel); err != nil {
		return nil, err
	}
	seqToUID := func(set imap.SeqSet) mailstore.UIDSet {
		idx, _ := sel.seqIndexes(set, false) // lenient: a search just finds nothing
		uids := make([]mailstore.UID, len(idx))
		for i, x := range idx {
			uids[i] = sel.uids[x]
		}
		return mailstore.UIDSetOf(uids...)
	}
	c, err := storeCriteriaSaved(criteria, seqToUID, mailstore.UIDSetOf(sel.saved...))
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	found, err := s.srv.store.Search(s.ctx, sel.mb.ID, c)
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	hits := make([]msgRef, 0, len(found))
	for _, uid := range found {
		if seq, ok := sel.seqOf(uid); ok && !sel.gone[uid] {
			hits = append(hits, msgRef{seq: seq, uid: uid})
		}
	}
	if options.ReturnSave {
		sel.saved = savedResult(hits, options)
	}

	data := &imap.SearchData{Count: uint32(len(hits))}
	num := func(r msgRef) uint32 {
		if kind == imapserver.NumKindUID {
			return uint32(r.uid)
		}
		return r.seq
	}
	if len(hits) > 0 {
		data.Min, data.Max = num(hits[0]), num(hits[len(hits)-1])
	}
	if kind == imapserver.NumKindUID {
		all := imap.UIDSet{}
		for _, h := range hits {
			all.AddNum(imap.UID(h.uid))
		}
		data.All = all
	} else {
		all := imap.SeqSet{}
		for _, h := range hits {
			all.AddNum(h.seq)
		}
		data.All = all
	}
	return data, nil
}

// savedResult is what SEARCH RETURN (SAVE) keeps: with MIN or MAX but not
// ALL, only those messages (RFC 5182 §2.4).
func savedResult(hits []msgRef, options *imap.SearchOptions) []mailstore.UID {
	if len(hits) > 0 && (options.ReturnMin || options.ReturnMax) && !options.ReturnAll {
		var uids []mailstore.UID
		if options.ReturnMin {
			uids = append(uids, hits[0].uid)
		}
		if options.ReturnMax && (len(uids) == 0 || hits[len(hits)-1].uid != uids[0]) {
			uids = append(uids, hits[len(hits)-1].uid)
		}
		return uids
	}
	uids := make([]mailstore.UID, len(hits))
	for i, h := range hits {
		uids[i] = h.uid
	}
	return uids
}

// countDeleted counts a mailbox's messages marked \Deleted (STATUS
// DELETED, RFC 9051 §6.3.11).
func (s *session) countDeleted(mb mailstore.MailboxID) (uint32, error) {
	uids, err := s.srv.store.Search(s.ctx, mb, &mailstore.SearchCriteria{Flag: []string{mailstore.FlagDeleted}})
	return uint32(len(uids)), err
}
