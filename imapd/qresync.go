package imapd

import (
	"cmp"
	"slices"
	"sort"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// maxSeqMatch bounds the pairs of QRESYNC's sequence match data the
// session looks at: they only narrow VANISHED (EARLIER), so past the
// bound they are ignored.
const maxSeqMatch = 1 << 16

// qresyncSelect writes what changed in the mailbox just selected since
// the client's modseq (RFC 7162 §3.2.5): "* VANISHED (EARLIER)" for the
// UIDs it knows that are gone, then a FETCH (UID FLAGS MODSEQ) for each
// message whose flags changed or that is new, among those it knows of
// when it said which (known-uids). SELECT's HIGHESTMODSEQ, already
// written, is the view's modseq: this reports every change up to it,
// and the events report every change after it, so a change made while
// SELECT runs reaches the client once, as an update after the tagged OK.
func (s *session) qresyncSelect(q *wire.QResync) error {
	sel := s.sel
	known := mailstore.AllUIDs()
	if q.KnownUIDs.Ranges != nil {
		known = storeUIDSet(q.KnownUIDs, 0)
	}
	ch, err := s.srv.store.ChangesSince(s.ctx, sel.mb.ID, known, q.ModSeq)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	if ch.VanishedKnown {
		s.writeVanished(true, mailstore.UIDSetOf(sel.notInView(ch.Vanished)...))
	} else {
		// RFC 7162 §3.2.5.2: below the horizon the tombstones that would
		// answer are gone; every UID the client knows that the mailbox
		// no longer has is reported, less those the sequence match data
		// shows cannot have vanished.
		s.writeVanished(true, sel.missing(known, seqMatchFloor(sel, q.SeqMatch)))
	}
	w := s.w
	for _, c := range ch.Changed {
		seq, ok := sel.seqOf(c.UID)
		if !ok || c.ModSeq > sel.modseq {
			// Added or changed after the view was read: an event brings
			// it, in order with the others.
			continue
		}
		s.announceKeywords(c.Flags)
		w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (UID ").Number(uint64(c.UID)).Raw(" FLAGS ")
		s.writeMessageFlags(c.UID, c.Flags)
		w.Raw(" MODSEQ (").Number(c.ModSeq).Raw("))").CRLF()
	}
	return w.Err()
}

// notInView returns the UIDs of uids, ascending, that the view does not
// hold: VANISHED (EARLIER) names only messages the client is not shown
// (one of the view expunged since comes as VANISHED, when the view
// drops it).
func (sel *selected) notInView(uids []mailstore.UID) []mailstore.UID {
	var out []mailstore.UID
	for _, u := range uids {
		if _, ok := sel.seqOf(u); !ok {
			out = append(out, u)
		}
	}
	return out
}

// missing returns, as ascending ranges, the UIDs of set above floor that
// the view does not hold, up to the highest UID the mailbox had given
// out when it was selected or the view has seen since; a range to "*"
// (Stop 0) ends there. Its cost grows with the ranges of set and the
// view's UIDs in them, never with the width of a range.
func (sel *selected) missing(set mailstore.UIDSet, floor mailstore.UID) mailstore.UIDSet {
	limit := max(sel.known, sel.uidNext-1)
	var out mailstore.UIDSet
	add := func(a, b mailstore.UID) {
		if n := len(out); n > 0 && out[n-1].Stop+1 >= a {
			out[n-1].Stop = max(out[n-1].Stop, b)
			return
		}
		out = append(out, mailstore.UIDRange{Start: a, Stop: b})
	}
	for _, r := range normalize(set) {
		a, b := max(r.Start, floor+1), r.Stop
		if b == 0 || b > limit {
			b = limit
		}
		if a == 0 || a > b {
			continue
		}
		i := sort.Search(len(sel.uids), func(i int) bool { return sel.uids[i] >= a })
		for ; i < len(sel.uids) && sel.uids[i] <= b; i++ {
			if u := sel.uids[i]; u > a {
				add(a, u-1)
			}
			a = sel.uids[i] + 1
		}
		if a <= b {
			add(a, b)
		}
	}
	return out
}

// seqMatchFloor returns the highest UID below which, by QRESYNC's
// sequence match data, no message the client knew has vanished (RFC 7162
// §3.2.5.2): a pair (n, uid) whose uid is still message n of the view
// means that every message below uid is still there, since UIDs below it
// can only have gone, never come. 0 when no pair matches, or without
// data, or with data the session does not use: sets of unequal length
// or over maxSeqMatch.
func seqMatchFloor(sel *selected, m *wire.SeqMatch) mailstore.UID {
	if m == nil {
		return 0
	}
	seqs, ok1 := expand(m.Seqs)
	uids, ok2 := expand(m.UIDs)
	if !ok1 || !ok2 || len(seqs) != len(uids) {
		return 0
	}
	var floor mailstore.UID
	for i, u := range uids {
		if seq, ok := sel.seqOf(mailstore.UID(u)); ok && seq == seqs[i] {
			floor = max(floor, mailstore.UID(u))
		}
	}
	return floor
}

// expand lists the numbers of a set without "*" in the order written,
// up to maxSeqMatch of them.
func expand(set wire.NumSet) ([]uint32, bool) {
	var out []uint32
	for _, r := range set.Ranges {
		a, b := normRange(r)
		if uint64(len(out))+uint64(b-a)+1 > maxSeqMatch {
			return nil, false
		}
		for n := uint64(a); n <= uint64(b); n++ {
			out = append(out, uint32(n))
		}
	}
	return out, true
}

// storeUIDSet converts a client's UID set to the store's, its ranges
// ordered; "*" stands for star (0: to the end).
func storeUIDSet(set wire.NumSet, star mailstore.UID) mailstore.UIDSet {
	out := make(mailstore.UIDSet, 0, len(set.Ranges))
	for _, r := range set.Ranges {
		a, b := normRange(r)
		start, stop := mailstore.UID(a), mailstore.UID(b)
		switch {
		case start == 0: // "*"
			start, stop = star, star
		case stop == 0: // "n:*"
			if star != 0 && star < start {
				start, stop = star, start
			} else {
				stop = star
			}
		}
		if start == 0 {
			continue // "*" of an empty view
		}
		out = append(out, mailstore.UIDRange{Start: start, Stop: stop})
	}
	return out
}

// normalize returns set's ranges ascending and merged, Stop 0 (no upper
// bound) kept.
func normalize(set mailstore.UIDSet) mailstore.UIDSet {
	const end = ^mailstore.UID(0)
	norm := make(mailstore.UIDSet, 0, len(set))
	for _, r := range set {
		if r.Stop == 0 {
			r.Stop = end
		}
		norm = append(norm, r)
	}
	slices.SortFunc(norm, func(a, b mailstore.UIDRange) int { return cmp.Compare(a.Start, b.Start) })
	merged := norm[:0]
	for _, r := range norm {
		if n := len(merged); n > 0 && uint64(r.Start) <= uint64(merged[n-1].Stop)+1 {
			merged[n-1].Stop = max(merged[n-1].Stop, r.Stop)
			continue
		}
		merged = append(merged, r)
	}
	for i := range merged {
		if merged[i].Stop == end {
			merged[i].Stop = 0
		}
	}
	return merged
}
