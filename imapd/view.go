package imapd

import (
	"context"
	"errors"
	"slices"
	"sort"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
	"pushmail/notify"
)

// selected is the state of the selected mailbox: the subscription to its
// events and the session's view of its messages.
type selected struct {
	mb       mailstore.Mailbox // ID, name and UIDVALIDITY at SELECT
	readOnly bool              // EXAMINE (RFC 9051 §6.3.3)
	sub      *notify.Subscription

	// uids is the view: sequence number n is uids[n-1]. Ascending. Every
	// UID in it has been announced to the client. While shared, it is
	// list.UIDs, the store's list that other sessions hold too: read-only
	// (an append copies it, its capacity being clipped; see share).
	uids   []mailstore.UID
	shared bool
	list   mailstore.UIDList
	// gone holds UIDs of the view that the store has expunged but whose
	// EXPUNGE has not been sent yet (RFC 9051 §7.5.1).
	gone map[mailstore.UID]bool
	// known is the highest UID ever added to the view: an Appended UID at
	// or below it was either added already or expunged before the view
	// could see it.
	known mailstore.UID
	// modseq is the highest modseq of the events applied so far (at SELECT:
	// the mailbox's). Every later event has a higher one.
	modseq uint64
	// reported holds, for messages whose flags the session sent in a
	// FETCH response, the modseq of those flags when it is above modseq:
	// queued events up to it are older than what the client knows.
	reported map[mailstore.UID]uint64
	// partial holds, for messages whose flags the session's own STORE
	// .SILENT changed, the flags that STORE left: the client learnt its
	// own change, not the flags as a whole (RFC 9051 §6.4.6). A change by
	// another session older than the STORE and not yet sent is news to
	// the client all the same; see apply.
	partial map[mailstore.UID]partialFlags
	// saved is the result of the last SEARCH RETURN (SAVE) (RFC 5182).
	saved []mailstore.UID
	// recent is the session's \Recent messages (recent.go).
	recent recentState
	// keywords are the keywords the session has announced in FLAGS,
	// by their lower-case form (flags.go announceKeywords).
	keywords map[string]string
	// deleted is set once the mailbox no longer exists.
	deleted bool
	// vanished: the session has enabled QRESYNC, so expunges are
	// announced as VANISHED, by UID, not as EXPUNGE (RFC 7162 §3.2.10).
	vanished bool
	// pendingSince is, while expunges by others are marked gone but not
	// announced, the modseq of the oldest of them: the client has been
	// told of every change below it (reportModSeq).
	pendingSince uint64
	// uidNext is the mailbox's UIDNEXT at SELECT: every UID below it had
	// been given out then, so a client may know it (QRESYNC's VANISHED
	// without tombstones, qresync.go).
	uidNext mailstore.UID
	// metrics, if set, observes push latency.
	metrics *Metrics
}

// partialFlags is what a .SILENT STORE left of a message's flags.
type partialFlags struct {
	since  uint64 // the client had been told of the flags up to this modseq
	modseq uint64 // the STORE's
	flags  []string
}

// msgRef is one message of a command's set.
type msgRef struct {
	seq uint32
	uid mailstore.UID
}

// updater is what the view writes unsolicited responses to; the
// session's updates (commands.go) implements it on the wire writer.
type updater interface {
	WriteExpunge(seqNum uint32) error
	WriteNumMessages(n uint32) error
	// WriteRecent writes "* n RECENT" (RFC 3501 §7.3.2); only sessions
	// that keep \Recent call it (recent.go arrived).
	WriteRecent(n uint32) error
	// WriteVanished writes "* VANISHED uids" (RFC 7162 §3.2.10) for
	// expunged messages of the view, ascending, once QRESYNC is enabled.
	WriteVanished(uids []mailstore.UID) error
	// WriteMessageFlags writes an unsolicited FETCH with the stored
	// flags of a message, as of modseq, and whatever else the session
	// says of them (\Recent, a new keyword's FLAGS first: flags.go;
	// MODSEQ once CONDSTORE is enabled, RFC 7162 §3.1.4.1).
	WriteMessageFlags(seqNum uint32, uid mailstore.UID, flags []string, modseq uint64) error
	// Flush sends what has been written so far: the EXISTS of new mail
	// goes out before a \Recent claim reads the store.
	Flush() error
}

// errMailboxGone reports that the selected mailbox was deleted.
var errMailboxGone = errors.New("selected mailbox was deleted")

// seqOf returns the sequence number of uid in the view.
func (sel *selected) seqOf(uid mailstore.UID) (uint32, bool) {
	i, ok := slices.BinarySearch(sel.uids, uid)
	return uint32(i + 1), ok
}

// update brings the view up to date with the subscription's events and
// tells the client through w. EXPUNGE responses are written only if
// allowExpunge; otherwise expunged UIDs stay in the view, marked gone.
func (sel *selected) update(ctx context.Context, store *mailstore.Store, w updater, allowExpunge bool) error {
	events, resync := sel.sub.Take()
	return sel.applyTaken(ctx, store, events, resync, w, allowExpunge)
}

// applyTaken is update for events (and resync) already taken from the
// subscription.
func (sel *selected) applyTaken(ctx context.Context, store *mailstore.Store, events []notify.Event, resync bool, w updater, allowExpunge bool) error {
	if resync {
		if err := sel.resync(ctx, store, w); err != nil {
			return err
		}
	}
	for i := range events {
		if err := sel.apply(ctx, store, &events[i], w); err != nil {
			return err
		}
	}
	if sel.deleted {
		return errMailboxGone
	}
	if err := sel.recent.err; err != nil {
		sel.recent.err = nil
		return err
	}
	if allowExpunge {
		if err := sel.flushExpunged(w); err != nil {
			return err
		}
	}
	sel.share(store)
	for uid, m := range sel.reported {
		if m <= sel.modseq {
			delete(sel.reported, uid)
		}
	}
	for uid, p := range sel.partial {
		if p.modseq <= sel.modseq {
			delete(sel.partial, uid)
		}
	}
	return nil
}

// apply applies one event to the view.
func (sel *selected) apply(ctx context.Context, store *mailstore.Store, ev *notify.Event, w updater) error {
	floor := sel.modseq
	sel.modseq = max(sel.modseq, ev.ModSeq)
	switch ev.Kind {
	case notify.Appended:
		n := len(sel.uids)
		var added []mailstore.UID
		for _, u := range ev.UIDs {
			if uid := mailstore.UID(u); uid > sel.known {
				added = append(added, uid)
				sel.known = uid
			}
		}
		sel.appendUIDs(store, added)
		if len(sel.uids) > n {
			if err := w.WriteNumMessages(uint32(len(sel.uids))); err != nil {
				return err
			}
			sel.metrics.pushed("exists", ev.Committed)
			// Claimed here, before any FETCH of the batch's later
			// events shows the new messages' flags.
			if err := sel.arrived(ctx, store, w); err != nil {
				return err
			}
		}
	case notify.Expunged:
		for _, u := range ev.UIDs {
			if _, ok := sel.seqOf(mailstore.UID(u)); ok && !sel.gone[mailstore.UID(u)] {
				sel.markGone(mailstore.UID(u))
				if sel.pendingSince == 0 {
					sel.pendingSince = ev.ModSeq
				}
			}
		}
	case notify.FlagsChanged:
		// The session's own STORE and FETCH already answered with these
		// flags (or were asked not to, with .SILENT); an event at or below
		// floor is reflected in anything the client could have read.
		if ev.Origin == sel.sub.ID() || ev.ModSeq <= floor {
			return nil
		}
		for _, f := range ev.Flags {
			uid := mailstore.UID(f.UID)
			seq, ok := sel.seqOf(uid)
			if !ok || sel.gone[uid] {
				continue
			}
			flags, modseq := f.Flags, ev.ModSeq
			if sel.reported[uid] >= ev.ModSeq {
				// The client knows newer flags, or only its own .SILENT
				// change of them: then this older change is news, sent as
				// the flags the STORE left, which include it (the event's
				// predate the STORE).
				p, ok := sel.partial[uid]
				if !ok || ev.ModSeq <= p.since {
					continue
				}
				delete(sel.partial, uid)
				flags, modseq = p.flags, p.modseq
			}
			if err := w.WriteMessageFlags(seq, uid, flags, modseq); err != nil {
				return err
			}
			sel.metrics.pushed("flags", ev.Committed)
		}
	case notify.MailboxChanged:
		return sel.refreshMailbox(ctx, store)
	}
	return nil
}

// refreshMailbox re-reads the selected mailbox after it was renamed or
// deleted. A mailbox of another user or UIDVALIDITY under the same id is
// a new one: mailboxes.id is a plain INTEGER PRIMARY KEY, which SQLite
// gives again once the highest is deleted.
func (sel *selected) refreshMailbox(ctx context.Context, store *mailstore.Store) error {
	st, err := store.Status(ctx, sel.mb.ID)
	if errors.Is(err, mailstore.ErrNoSuchMailbox) ||
		err == nil && (st.User != sel.mb.User || st.UIDValidity != sel.mb.UIDValidity) {
		sel.deleted = true
		return nil
	}
	if err != nil {
		return err
	}
	sel.mb.Name = st.Name
	return nil
}

// flushExpunged sends the pending EXPUNGE responses and drops their UIDs
// from the view. Each EXPUNGE's number accounts for those sent before it
// (RFC 9051 §7.5.1). After ENABLE QRESYNC they go as one VANISHED, by UID
// (RFC 7162 §3.2.10), in the same places.
func (sel *selected) flushExpunged(w updater) error {
	sel.pendingSince = 0
	if len(sel.gone) == 0 {
		return nil
	}
	var werr error
	var vanished []mailstore.UID
	own := !sel.shared
	kept := sel.uids[:0]
	if !own {
		// Never write to the shared list (share).
		kept = make([]mailstore.UID, 0, len(sel.uids)-len(sel.gone))
		sel.shared = false
	}
	for _, uid := range sel.uids {
		if !sel.gone[uid] {
			kept = append(kept, uid)
			continue
		}
		delete(sel.reported, uid)
		delete(sel.partial, uid)
		if sel.vanished {
			vanished = append(vanished, uid)
		} else if werr == nil {
			werr = w.WriteExpunge(uint32(len(kept) + 1))
		}
	}
	if own {
		clear(sel.uids[len(kept):])
	}
	sel.uids = kept
	clear(sel.gone)
	if werr == nil && len(vanished) > 0 {
		werr = w.WriteVanished(vanished)
	}
	return werr
}

// reportModSeq is the highest modseq the session can tell a client it
// is up to date with (HIGHESTMODSEQ, RFC 7162 §3.1.2.1): that of the
// last event applied, or just below the first expunge it has not
// announced yet.
func (sel *selected) reportModSeq() uint64 {
	if sel.pendingSince > 0 {
		return sel.pendingSince - 1
	}
	return sel.modseq
}

// resync rebuilds the view from the store after the subscription lost
// events: UIDs no longer stored are marked gone, new ones are added with
// one EXISTS, and messages of the old view whose flags changed since the
// last event applied get a FETCH FLAGS.
func (sel *selected) resync(ctx context.Context, store *mailstore.Store, w updater) error {
	if err := sel.refreshMailbox(ctx, store); err != nil || sel.deleted {
		return err
	}
	type flagged struct {
		uid    mailstore.UID
		flags  []string
		modseq uint64
	}
	var fresh []mailstore.UID
	var changed []flagged
	err := store.Messages(ctx, sel.mb.ID, mailstore.AllUIDs(), mailstore.FetchOptions{}, func(m *mailstore.Message) error {
		fresh = append(fresh, m.UID)
		if m.ModSeq > sel.modseq {
			changed = append(changed, flagged{m.UID, m.Flags, m.ModSeq})
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Both lists ascend: a merge finds what the store no longer has.
	j := 0
	for _, uid := range sel.uids {
		for j < len(fresh) && fresh[j] < uid {
			j++
		}
		if (j == len(fresh) || fresh[j] != uid) && !sel.gone[uid] {
			sel.markGone(uid)
			if sel.pendingSince == 0 {
				// When exactly is not known: below every change since
				// the last event applied.
				sel.pendingSince = sel.modseq + 1
			}
		}
	}
	n, known := len(sel.uids), sel.known
	var added []mailstore.UID
	for _, uid := range fresh {
		if uid > sel.known {
			added = append(added, uid)
			sel.known = uid
		}
	}
	sel.appendUIDs(store, added)
	if len(sel.uids) > n {
		if err := w.WriteNumMessages(uint32(len(sel.uids))); err != nil {
			return err
		}
		if err := sel.arrived(ctx, store, w); err != nil {
			return err
		}
	}
	for _, c := range changed {
		seq, ok := sel.seqOf(c.uid)
		if !ok || sel.gone[c.uid] || c.uid > known {
			// New messages are announced by EXISTS; the client fetches
			// their flags.
			continue
		}
		if err := w.WriteMessageFlags(seq, c.uid, c.flags, c.modseq); err != nil {
			return err
		}
		sel.setReported(c.uid, c.modseq)
		delete(sel.partial, c.uid)
	}
	return nil
}

// appendUIDs adds new UIDs, above every UID of the view, to its end. A
// shared view moves on to the store's list when that is the same list
// with exactly these UIDs appended, as it is when the session keeps up
// with its mailbox; otherwise the session makes the view its own.
func (sel *selected) appendUIDs(store *mailstore.Store, added []mailstore.UID) {
	if len(added) == 0 {
		return
	}
	if sel.shared {
		if cur, ok := store.CachedUIDList(sel.mb.ID); ok {
			if next, ok := sel.list.Extend(cur, added); ok {
				sel.list, sel.uids = next, next.UIDs
				return
			}
		}
		sel.shared = false
	}
	// A shared slice's capacity is its length: this copies it.
	sel.uids = append(sel.uids, added...)
}

// share makes a view of the session's own the store's shared list again
// when the two hold the same UIDs: ten thousand sessions of one mailbox
// then hold one list between them, not one each (mailstore.UIDList).
// They do when the view has announced every expunge it applied (gone is
// empty), so that it holds the mailbox's UIDs as of its modseq, and the
// store's list is the mailbox's at that modseq too.
func (sel *selected) share(store *mailstore.Store) {
	if sel.shared || len(sel.gone) > 0 || store == nil {
		// Without a store (view_test.go) there is nothing to share.
		return
	}
	cur, ok := store.CachedUIDList(sel.mb.ID)
	if !ok || cur.Since > sel.modseq || sel.modseq > cur.ModSeq || len(cur.UIDs) != len(sel.uids) ||
		len(cur.UIDs) > 0 && cur.UIDs[len(cur.UIDs)-1] != sel.uids[len(sel.uids)-1] {
		return
	}
	sel.list, sel.uids, sel.shared = cur, cur.UIDs, true
}

// noteReported records that the client was told the flags of uid as of
// modseq.
func (sel *selected) noteReported(uid mailstore.UID, modseq uint64) {
	if p, ok := sel.partial[uid]; ok && modseq >= p.modseq {
		delete(sel.partial, uid)
	}
	if modseq > sel.modseq && modseq > sel.reported[uid] {
		sel.setReported(uid, modseq)
	}
}

// noteSilent records that the session's STORE .SILENT left the flags of
// uid as flags at modseq. Older updates must not follow, as after
// noteReported, except those the client has not been sent yet: apply
// sends them as these flags.
func (sel *selected) noteSilent(uid mailstore.UID, modseq uint64, flags []string) {
	if modseq <= sel.modseq || modseq <= sel.reported[uid] {
		return
	}
	since := max(sel.modseq, sel.reported[uid])
	if p, ok := sel.partial[uid]; ok {
		since = p.since // an earlier .SILENT STORE: what was unsent then still is
	}
	if sel.partial == nil {
		sel.partial = make(map[mailstore.UID]partialFlags)
	}
	sel.partial[uid] = partialFlags{since: since, modseq: modseq, flags: flags}
	sel.setReported(uid, modseq)
}

// resolve returns the messages of the view that set names, ascending:
// UIDs if byUID, else sequence numbers; "$" is the saved search result
// (RFC 5182 §2.1). A sequence number beyond the view is a client error
// (RFC 9051 §9, seq-number); UIDs not in the view are ignored (RFC 9051
// §6.4.9).
func (sel *selected) resolve(set wire.NumSet, byUID bool) ([]msgRef, error) {
	switch {
	case set.Saved:
		return sel.refs(sel.savedIndexes()), nil
	case byUID:
		return sel.refs(sel.uidIndexes(set)), nil
	}
	idx, err := sel.seqIndexes(set, true)
	if err != nil {
		return nil, err
	}
	return sel.refs(idx), nil
}

// normRange orders a range as the view's lookups want it: Start 0 is
// "*" alone, Stop 0 is "n:*" (RFC 9051 §9: "*:4" is "4:*", "5:2" is 2:5).
func normRange(r wire.NumRange) (start, stop uint32) {
	switch {
	case r.Start == 0 && r.Stop == 0:
		return 0, 0
	case r.Start == 0:
		return r.Stop, 0
	case r.Stop == 0:
		return r.Start, 0
	}
	return min(r.Start, r.Stop), max(r.Start, r.Stop)
}

func (sel *selected) refs(idx []int) []msgRef {
	refs := make([]msgRef, len(idx))
	for i, x := range idx {
		refs[i] = msgRef{seq: uint32(x + 1), uid: sel.uids[x]}
	}
	return refs
}

// seqIndexes returns the view indexes of a sequence set, ascending and
// unique. "*" is the last message; "n:*" with n beyond it is "*:n"
// (RFC 9051 §9, seq-range). With strict, a static number beyond the view
// is an error; otherwise it is ignored.
func (sel *selected) seqIndexes(set wire.NumSet, strict bool) ([]int, error) {
	n := uint32(len(sel.uids))
	var iv []indexRange
	for _, r := range set.Ranges {
		start, stop := normRange(r)
		switch {
		case start == 0: // "*"
			start, stop = n, n
		case stop == 0: // "n:*"
			start, stop = min(start, n), n
		case stop > n:
			if strict {
				return nil, errBadSeqNum
			}
			stop = n
		}
		if q := max(start, 1); q <= stop {
			iv = append(iv, indexRange{int(q - 1), int(stop - 1)})
		}
	}
	return expandRanges(iv), nil
}

// uidIndexes returns the view indexes of a UID set, ascending and unique.
// "*" is the highest UID in the view, and "n:*" always includes it
// (RFC 9051 §6.4.9).
func (sel *selected) uidIndexes(set wire.NumSet) []int {
	if len(sel.uids) == 0 {
		return nil
	}
	last := sel.uids[len(sel.uids)-1]
	var iv []indexRange
	for _, r := range set.Ranges {
		a, b := normRange(r)
		start, stop := mailstore.UID(a), mailstore.UID(b)
		switch {
		case start == 0:
			start, stop = last, last
		case stop == 0:
			start, stop = min(start, last), last
		}
		i := sort.Search(len(sel.uids), func(i int) bool { return sel.uids[i] >= start })
		j := sort.Search(len(sel.uids), func(i int) bool { return sel.uids[i] > stop })
		if i < j {
			iv = append(iv, indexRange{i, j - 1})
		}
	}
	return expandRanges(iv)
}

// indexRange is the view indexes lo through hi.
type indexRange struct{ lo, hi int }

// expandRanges returns the indexes of the ranges, ascending and unique. The
// ranges are merged first: a set of a thousand "1:*" costs one pass over
// the view, not a thousand.
func expandRanges(iv []indexRange) []int {
	slices.SortFunc(iv, func(a, b indexRange) int { return a.lo - b.lo })
	var idx []int
	next := 0 // the first index not yet emitted
	for _, r := range iv {
		for x := max(r.lo, next); x <= r.hi; x++ {
			idx = append(idx, x)
		}
		next = max(next, r.hi+1)
	}
	return idx
}

// savedIndexes returns the view indexes of the saved search result.
func (sel *selected) savedIndexes() []int {
	var idx []int
	for _, uid := range sel.saved {
		if i, ok := slices.BinarySearch(sel.uids, uid); ok {
			idx = append(idx, i)
		}
	}
	return idx
}

// uidSetOf returns the store set of the messages of refs.
func uidSetOf(refs []msgRef) mailstore.UIDSet {
	uids := make([]mailstore.UID, len(refs))
	for i, r := range refs {
		uids[i] = r.uid
	}
	return mailstore.UIDSetOf(uids...)
}

// markGone records uid as expunged but not yet announced. The map is
// made at the first: a hibernating session's view keeps none until
// then (issue 15).
func (sel *selected) markGone(uid mailstore.UID) {
	if sel.gone == nil {
		sel.gone = make(map[mailstore.UID]bool)
	}
	sel.gone[uid] = true
}

// setReported records that uid's flags were sent at modseq, making the
// map at the first, as markGone does.
func (sel *selected) setReported(uid mailstore.UID, modseq uint64) {
	if sel.reported == nil {
		sel.reported = make(map[mailstore.UID]uint64)
	}
	sel.reported[uid] = modseq
}
