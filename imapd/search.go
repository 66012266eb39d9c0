package imapd

import (
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// Search answers SEARCH and UID SEARCH (RFC 9051 §6.4.4), with ESEARCH
// return options (RFC 4731), SAVE (RFC 5182) and PARTIAL (RFC 9394 §3.1).
// The store evaluates the
// criteria; the result is limited to the session's view, since the client
// cannot name messages it has not been told about.
func (s *session) Search(byUID bool, a *wire.Search) error {
	sel := s.sel
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	switch strings.ToUpper(a.Charset) {
	case "", "US-ASCII", "UTF-8":
	default:
		// RFC 9051 §6.4.4: NO [BADCHARSET] lists the charsets supported.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "BADCHARSET (US-ASCII UTF-8)", Text: "Unsupported charset"}
	}
	hits, modseqKey, err := s.searchHits(&a.Key)
	if err != nil {
		return err
	}
	ret := a.Return
	if ret != nil && ret.Save {
		sel.saved = savedResult(hits, ret)
	}
	num := func(r msgRef) uint64 {
		if byUID {
			return uint64(r.uid)
		}
		return uint64(r.seq)
	}
	// RFC 7162 §3.1.5: a search with MODSEQ reports the highest modseq
	// of the messages it returns (none when it returns none).
	var highest uint64
	if returned := returnedRefs(hits, ret); modseqKey && len(returned) > 0 {
		if highest, err = s.highestModSeq(returned); err != nil {
			return err
		}
	}
	w := s.w
	if ret == nil {
		// RFC 3501 §7.2.5 SEARCH response.
		w.Raw("* SEARCH")
		for _, h := range hits {
			w.SP().Number(num(h))
		}
		if highest > 0 {
			w.Raw(" (MODSEQ ").Number(highest).Raw(")") // RFC 7162 §3.1.5
		}
		w.CRLF()
		return w.Err()
	}
	if ret.Save && !(ret.All || ret.Min || ret.Max || ret.Count || ret.Partial != nil) {
		// RFC 5182 §2.2 and RFC 9051 §6.4.4 (their examples): with SAVE
		// the only result option, the result is kept for "$" and no
		// ESEARCH response is sent.
		return nil
	}
	// RFC 4731 §3.1: RETURN () means ALL.
	all := ret.All || !(ret.Min || ret.Max || ret.Count || ret.Partial != nil)
	w.Raw(`* ESEARCH (TAG `).String(s.tag).Raw(")")
	if byUID {
		w.Raw(" UID")
	}
	if len(hits) > 0 {
		if ret.Min {
			w.Raw(" MIN ").Number(num(hits[0]))
		}
		if ret.Max {
			w.Raw(" MAX ").Number(num(hits[len(hits)-1]))
		}
		if all {
			w.Raw(" ALL ")
			nums := make([]uint64, len(hits))
			for i, h := range hits {
				nums[i] = num(h)
			}
			w.Raw(compactSet(nums))
		}
	}
	if ret.Partial != nil {
		// RFC 9394 §3.1: the positions are in mailbox order, the order
		// of hits.
		writePartial(w, ret.Partial, hits, num, compactSet)
	}
	if ret.Count {
		w.Raw(" COUNT ").Number(uint64(len(hits)))
	}
	if highest > 0 {
		w.Raw(" MODSEQ ").Number(highest) // RFC 7162 §3.1.5, §7 search-return-data
	}
	w.CRLF()
	return w.Err()
}

// searchHits evaluates a search key (SEARCH, and SORT and THREAD's
// search-criteria, RFC 5256 §3) in the selected mailbox: the matching
// messages of the session's view, ascending, and whether the key uses
// MODSEQ. The caller has checked that a mailbox is selected.
func (s *session) searchHits(key *wire.SearchKey) ([]msgRef, bool, error) {
	sel := s.sel
	seqToUID := func(set imap.SeqSet) mailstore.UIDSet {
		idx, _ := sel.seqIndexes(wireSet(set), false) // lenient: a search just finds nothing
		uids := make([]mailstore.UID, len(idx))
		for i, x := range idx {
			uids[i] = sel.uids[x]
		}
		return mailstore.UIDSetOf(uids...)
	}
	if s.rev2 && usesRecent(key) {
		return nil, false, errRecentInRev2
	}
	modseqKey := usesModSeq(key)
	if modseqKey {
		s.enableCondStore() // RFC 7162 §3.1: a CONDSTORE enabling command
	}
	if isSearchAll(key) {
		if hits, ok := s.allHits(); ok {
			return hits, false, nil
		}
	}
	cv := &criteriaConverter{seqToUID: seqToUID, saved: mailstore.UIDSetOf(sel.saved...), loc: time.Local}
	c, err := keyCriteria(key, sel.recent.uidSet(), cv, time.Now())
	if err != nil {
		return nil, false, s.reply(err, roleMailbox)
	}
	found, err := s.srv.store.Search(s.ctx, sel.mb.ID, c)
	if err != nil {
		return nil, false, s.reply(err, roleMailbox)
	}
	hits := make([]msgRef, 0, len(found))
	for _, uid := range found {
		if seq, ok := sel.seqOf(uid); ok && !sel.gone[uid] {
			hits = append(hits, msgRef{seq: seq, uid: uid})
		}
	}
	return hits, modseqKey, nil
}

// isSearchAll reports whether a search key is ALL alone (or several
// ALLs): it matches every message, and allHits answers it.
func isSearchAll(k *wire.SearchKey) bool {
	switch k.Op {
	case wire.SearchAll:
		return true
	case wire.SearchAnd:
		for i := range k.Keys {
			if !isSearchAll(&k.Keys[i]) {
				return false
			}
		}
		return len(k.Keys) > 0
	}
	return false
}

// allHits answers the search key ALL without a store search: the view's
// messages that the store still holds, which is what the store's search
// would find of them. The store's shared list of the mailbox's UIDs
// (mailstore.UIDList), kept current by the writer before it publishes
// each change, says which it holds; a message expunged by another
// session is left out as the search would leave it out, whether or not
// the view has marked it gone yet, and a message delivered since the
// view's last update is not in the view (RFC 9051 §7.5.1: the client
// must hear of it before it is reported). ok is false when the store
// does not hold the list at the moment; the caller searches then.
func (s *session) allHits() ([]msgRef, bool) {
	sel := s.sel
	cur, ok := s.srv.store.CachedUIDList(sel.mb.ID)
	if !ok {
		return nil, false
	}
	hits := make([]msgRef, 0, len(sel.uids))
	j := 0
	for i, uid := range sel.uids {
		for j < len(cur.UIDs) && cur.UIDs[j] < uid {
			j++
		}
		if j == len(cur.UIDs) {
			break
		}
		if cur.UIDs[j] == uid && (len(sel.gone) == 0 || !sel.gone[uid]) {
			hits = append(hits, msgRef{seq: uint32(i + 1), uid: uid})
		}
	}
	return hits, true
}

// usesModSeq reports whether a search key has MODSEQ in it.
func usesModSeq(k *wire.SearchKey) bool {
	if k.Op == wire.SearchModSeq {
		return true
	}
	for i := range k.Keys {
		if usesModSeq(&k.Keys[i]) {
			return true
		}
	}
	return false
}

// highestModSeq returns the highest modseq of the messages of refs.
func (s *session) highestModSeq(refs []msgRef) (uint64, error) {
	var highest uint64
	err := s.srv.store.Messages(s.ctx, s.sel.mb.ID, uidSetOf(refs), mailstore.FetchOptions{}, func(m *mailstore.Message) error {
		highest = max(highest, m.ModSeq)
		return nil
	})
	if err != nil {
		return 0, s.reply(err, roleMailbox)
	}
	return highest, nil
}

// compactSet writes ascending numbers as a sequence-set with ranges.
func compactSet(nums []uint64) string {
	uids := make([]mailstore.UID, len(nums))
	for i, n := range nums {
		uids[i] = mailstore.UID(n)
	}
	return uidList(uids)
}

// returnedRefs returns the messages a search reports, for RFC 7162
// §3.1.5's MODSEQ ("the highest mod-sequence for all messages being
// returned"): all of hits without RETURN or with ALL or COUNT; else the
// first and last with MIN or MAX, and PARTIAL's page (RFC 9394 §3.1),
// possibly none.
func returnedRefs(hits []msgRef, ret *wire.SearchReturn) []msgRef {
	if ret == nil || ret.All || ret.Count || len(hits) == 0 {
		return hits
	}
	var out []msgRef
	if ret.Min || ret.Max {
		out = append(out, hits[0], hits[len(hits)-1])
	}
	if ret.Partial != nil {
		lo, hi := ret.Partial.Indexes(len(hits))
		out = append(out, hits[lo:hi]...)
	}
	return out
}

// writePartial writes PARTIAL's return data, " PARTIAL (range set)" (RFC
// 9394 §3.1, §5 search-return-data): the range as the client wrote it,
// then the messages at those positions of refs, or NIL when there are
// none. set renders their numbers: compactSet for SEARCH's mailbox order,
// orderedSet for SORT's order.
func writePartial(w *wire.Writer, r *wire.PartialRange, refs []msgRef, num func(msgRef) uint64, set func([]uint64) string) {
	w.Raw(" PARTIAL (").Raw(r.String()).SP()
	lo, hi := r.Indexes(len(refs))
	if lo == hi {
		// RFC 9394 §3.1: "If the whole range references results that do
		// not exist, a special value "NIL" is returned".
		w.Raw("NIL)")
		return
	}
	nums := make([]uint64, 0, hi-lo)
	for _, r := range refs[lo:hi] {
		nums = append(nums, num(r))
	}
	w.Raw(set(nums)).Raw(")")
}

// savedResult is what SEARCH RETURN (SAVE) keeps (RFC 5182 §2.4): with
// MIN or MAX but neither ALL nor COUNT, only those messages; in every
// other combination the whole result. PARTIAL, which RFC 5182 predates,
// is such another combination: the saved result is the whole result, not
// the page, so that "$" means the same with or without paging.
func savedResult(hits []msgRef, ret *wire.SearchReturn) []mailstore.UID {
	if len(hits) > 0 && (ret.Min || ret.Max) && !ret.All && !ret.Count {
		var uids []mailstore.UID
		if ret.Min {
			uids = append(uids, hits[0].uid)
		}
		if ret.Max && (len(uids) == 0 || hits[len(hits)-1].uid != uids[0]) {
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

// wireSet converts a go-imap sequence set back to the wire's.
func wireSet(set imap.SeqSet) wire.NumSet {
	out := wire.NumSet{Ranges: make([]wire.NumRange, len(set))}
	for i, r := range set {
		out.Ranges[i] = wire.NumRange{Start: r.Start, Stop: r.Stop}
	}
	return out
}

// numSets converts a parsed set to go-imap's, for the criteria converter:
// "$" is imap.SearchRes.
func seqSetOf(set wire.NumSet) imap.SeqSet {
	out := make(imap.SeqSet, 0, len(set.Ranges))
	for _, r := range set.Ranges {
		a, b := normRange(r)
		out = append(out, imap.SeqRange{Start: a, Stop: b})
	}
	return out
}

func uidSetOfWire(set wire.NumSet) imap.UIDSet {
	if set.Saved {
		return imap.SearchRes()
	}
	out := make(imap.UIDSet, 0, len(set.Ranges))
	for _, r := range set.Ranges {
		a, b := normRange(r)
		out = append(out, imap.UIDRange{Start: imap.UID(a), Stop: imap.UID(b)})
	}
	return out
}

// usesRecent reports whether a search key has RECENT, NEW or OLD in it,
// which RFC 9051's search-key (§9) no longer has.
func usesRecent(k *wire.SearchKey) bool {
	switch k.Op {
	case wire.SearchRecent, wire.SearchNew, wire.SearchOld:
		return true
	}
	for i := range k.Keys {
		if usesRecent(&k.Keys[i]) {
			return true
		}
	}
	return false
}

// searchCriteria converts a parsed search key to go-imap's criteria, which
// storeCriteria turns into the store's (see its comment for the rules).
// recent holds the messages recent to the session, for RECENT, NEW and
// OLD.
func searchCriteria(k *wire.SearchKey, recent imap.UIDSet) *imap.SearchCriteria {
	c := &imap.SearchCriteria{}
	flag := func(f imap.Flag, not bool) {
		if not {
			c.NotFlag = append(c.NotFlag, f)
		} else {
			c.Flag = append(c.Flag, f)
		}
	}
	header := func(key string) {
		c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: key, Value: k.Str})
	}
	day := 24 * time.Hour
	switch k.Op {
	case wire.SearchAnd:
		for i := range k.Keys {
			sub := searchCriteria(&k.Keys[i], recent)
			c.And(sub)
			// And leaves ModSeq out; both bounds hold when the higher does.
			if sub.ModSeq != nil && (c.ModSeq == nil || sub.ModSeq.ModSeq > c.ModSeq.ModSeq) {
				c.ModSeq = sub.ModSeq
			}
		}
	case wire.SearchNot:
		c.Not = append(c.Not, *searchCriteria(&k.Keys[0], recent))
	case wire.SearchOr:
		c.Or = append(c.Or, [2]imap.SearchCriteria{*searchCriteria(&k.Keys[0], recent), *searchCriteria(&k.Keys[1], recent)})
	case wire.SearchSeq:
		if k.Set.Saved {
			c.UID = append(c.UID, imap.SearchRes())
		} else {
			c.SeqNum = append(c.SeqNum, seqSetOf(k.Set))
		}
	case wire.SearchUID:
		c.UID = append(c.UID, uidSetOfWire(k.Set))
	case wire.SearchAll:
	case wire.SearchAnswered, wire.SearchUnanswered:
		flag(imap.FlagAnswered, k.Op == wire.SearchUnanswered)
	case wire.SearchDeleted, wire.SearchUndeleted:
		flag(imap.FlagDeleted, k.Op == wire.SearchUndeleted)
	case wire.SearchDraft, wire.SearchUndraft:
		flag(imap.FlagDraft, k.Op == wire.SearchUndraft)
	case wire.SearchFlagged, wire.SearchUnflagged:
		flag(imap.FlagFlagged, k.Op == wire.SearchUnflagged)
	case wire.SearchSeen, wire.SearchUnseen:
		flag(imap.FlagSeen, k.Op == wire.SearchUnseen)
	case wire.SearchKeyword, wire.SearchUnkeyword:
		flag(imap.Flag(k.Str), k.Op == wire.SearchUnkeyword)
	case wire.SearchRecent:
		// RFC 3501 §6.4.4: \Recent is the session's, not the store's:
		// the UIDs recent to it (an empty set matches none).
		c.UID = append(c.UID, recent)
	case wire.SearchNew:
		// RFC 3501 §6.4.4: "equivalent to (RECENT UNSEEN)".
		c.UID = append(c.UID, recent)
		flag(imap.FlagSeen, true)
	case wire.SearchOld:
		// RFC 3501 §6.4.4: "equivalent to (NOT RECENT)".
		c.Not = append(c.Not, imap.SearchCriteria{UID: []imap.UIDSet{recent}})
	case wire.SearchBcc:
		header("Bcc")
	case wire.SearchCc:
		header("Cc")
	case wire.SearchFrom:
		header("From")
	case wire.SearchTo:
		header("To")
	case wire.SearchSubject:
		header("Subject")
	case wire.SearchHeader:
		c.Header = append(c.Header, imap.SearchCriteriaHeaderField{Key: k.Str, Value: k.Value})
	case wire.SearchBody:
		c.Body = append(c.Body, k.Str)
	case wire.SearchText:
		c.Text = append(c.Text, k.Str)
	case wire.SearchBefore:
		c.Before = k.Date
	case wire.SearchOn:
		c.Since, c.Before = k.Date, k.Date.Add(day)
	case wire.SearchSince:
		c.Since = k.Date
	case wire.SearchSentBefore:
		c.SentBefore = k.Date
	case wire.SearchSentOn:
		c.SentSince, c.SentBefore = k.Date, k.Date.Add(day)
	case wire.SearchSentSince:
		c.SentSince = k.Date
	case wire.SearchLarger:
		c.Larger = int64(min(k.Num, 1<<62))
	case wire.SearchSmaller:
		c.Smaller = int64(min(k.Num, 1<<62))
	case wire.SearchModSeq:
		// RFC 7162 §3.1.5: messages whose modseq is at least Num; the
		// store keeps one modseq per message, so the entry does not
		// matter (storeCriteria).
		c.ModSeq = &imap.SearchCriteriaModSeq{ModSeq: k.Num, MetadataName: k.Str, MetadataType: imap.SearchCriteriaMetadataType(k.Value)}
	}
	return c
}
