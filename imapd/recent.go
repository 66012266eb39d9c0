package imapd

import (
	"context"
	"errors"
	"sort"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// recentMode says how a selected mailbox's session keeps \Recent
// (RFC 3501 §2.3.2).
type recentMode int

const (
	// recentOff: an IMAP4rev2 session, which has no \Recent (RFC 9051
	// Appendix E removed the flag, the RECENT response and the STATUS and
	// SEARCH items). It shows none and claims none, so that an IMAP4rev1
	// session still gets the messages as \Recent. The zero value.
	recentOff recentMode = iota
	// recentClaim: a read-write session (SELECT) claims the messages it
	// is the first to hear of (mailstore.ClaimRecent).
	recentClaim
	// recentPeek: a read-only session (EXAMINE) shows the messages no
	// session has claimed as \Recent, and claims none: RFC 3501 §6.3.2,
	// "EXAMINE MUST NOT cause messages to lose the \Recent flag".
	recentPeek
)

// recentState is a session's \Recent messages. A message is recent to
// the session, or not, for good once the session has heard of it: a
// later claim by another session takes nothing back (RFC 3501 §2.3.2: the
// flag says this session was the first to be notified).
type recentState struct {
	mode recentMode
	// ranges hold the UIDs recent to the session, ascending and
	// disjoint; expunged ones may stay in them.
	ranges []mailstore.UIDRange
	// settled is the highest UID whose \Recent is decided for the
	// session: every UID above it is still to be claimed (or peeked).
	settled mailstore.UID
	// err is a failed claim's error, which update returns once it has
	// applied all the events it took (see arrived).
	err error
}

// add records that the UIDs in (from, upTo] are recent to the session,
// except those already settled, and that all up to upTo are settled.
func (r *recentState) add(from, upTo mailstore.UID) {
	start := max(from, r.settled) + 1
	r.settled = max(r.settled, upTo)
	if start > upTo {
		return
	}
	if n := len(r.ranges); n > 0 && r.ranges[n-1].Stop+1 == start {
		r.ranges[n-1].Stop = upTo
		return
	}
	r.ranges = append(r.ranges, mailstore.UIDRange{Start: start, Stop: upTo})
}

// has reports whether uid is recent to the session.
func (r *recentState) has(uid mailstore.UID) bool {
	i := sort.Search(len(r.ranges), func(i int) bool { return r.ranges[i].Stop >= uid })
	return i < len(r.ranges) && r.ranges[i].Start <= uid
}

// count returns how many of uids (ascending) are recent to the session:
// RECENT's number (RFC 3501 §7.3.2).
func (r *recentState) count(uids []mailstore.UID) uint32 {
	var n int
	for _, rg := range r.ranges {
		lo := sort.Search(len(uids), func(i int) bool { return uids[i] >= rg.Start })
		hi := sort.Search(len(uids), func(i int) bool { return uids[i] > rg.Stop })
		n += hi - lo
	}
	return uint32(n)
}

// uidSet returns the session's recent UIDs as a search set: SEARCH
// RECENT (RFC 3501 §6.4.4). With none it is empty, which matches nothing.
func (r *recentState) uidSet() imap.UIDSet {
	set := imap.UIDSet{}
	for _, rg := range r.ranges {
		set = append(set, imap.UIDRange{Start: imap.UID(rg.Start), Stop: imap.UID(rg.Stop)})
	}
	return set
}

// settleRecent decides the \Recent of the view's messages above the
// settled mark: a read-write session claims them up to the last UID it
// has announced, never beyond (mailstore.ClaimRecent: a UID not yet
// announced would be lost to every other session); a read-only one reads
// the store's mark and takes what lies above it without claiming.
func (sel *selected) settleRecent(ctx context.Context, store *mailstore.Store) error {
	r := &sel.recent
	if r.mode == recentOff || sel.known <= r.settled {
		return nil
	}
	var upTo mailstore.UID // 0 reads the mark
	if r.mode == recentClaim {
		upTo = sel.known
	}
	from, err := store.ClaimRecent(ctx, sel.mb.ID, upTo)
	if err != nil {
		return err
	}
	r.add(from, sel.known)
	return nil
}

// arrived follows the EXISTS that announced new messages: it settles
// their \Recent and writes RECENT with the session's count (RFC 3501
// §7.3.2: RECENT accompanies a change of the mailbox's size). A claim
// that fails leaves them unsettled (the next arrival claims them again)
// and its error for update to return, so the events already taken are
// still applied and the view stays whole.
func (sel *selected) arrived(ctx context.Context, store *mailstore.Store, w updater) error {
	if sel.recent.mode == recentOff {
		return nil
	}
	if sel.recent.mode == recentClaim && !store.RecentClaimed(sel.mb.ID, sel.known) {
		// The claim reads the store: the client hears of the new mail
		// first, and of its \Recent a moment later.
		if err := w.Flush(); err != nil {
			return err
		}
	}
	if err := sel.settleRecent(ctx, store); err != nil {
		if errors.Is(err, mailstore.ErrNoSuchMailbox) {
			sel.deleted = true // update says so
			return nil
		}
		if sel.recent.err == nil {
			sel.recent.err = err
		}
	}
	return w.WriteRecent(sel.recent.count(sel.uids))
}
