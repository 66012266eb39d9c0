package mailstore

import (
	"cmp"
	"math"
	"slices"
)

// UIDRange is an inclusive range of UIDs. Stop 0 means "no upper bound",
// as "*" does in IMAP sets.
type UIDRange struct{ Start, Stop UID }

// UIDSet is a set of UIDs as ranges. An empty set, nil included, holds
// no UID: every method given one touches no message. "Every message" is
// AllUIDs, a value that no empty query result or empty client set can
// turn into by accident (an empty list once meant "all" to Expunge, and
// an EXPUNGE with nothing \Deleted erased whole mailboxes).
type UIDSet []UIDRange

// AllUIDs returns the set of every UID, 1:* in IMAP terms.
func AllUIDs() UIDSet { return UIDSet{{Start: 1, Stop: 0}} }

// Contains reports whether uid is in the set.
func (set UIDSet) Contains(uid UID) bool {
	for _, r := range set {
		if uid >= r.Start && (r.Stop == 0 || uid <= r.Stop) {
			return true
		}
	}
	return false
}

// bounds returns the smallest and largest UIDs the set can contain, so a
// query reads one contiguous span and filters it with Contains. For the
// empty set lo > hi, a span with no UID in it.
func (set UIDSet) bounds() (lo, hi UID) {
	lo, hi = math.MaxUint32, 0
	for _, r := range set {
		stop := r.Stop
		if stop == 0 {
			stop = math.MaxUint32
		}
		start := r.Start
		if start > stop {
			start, stop = stop, start
		}
		lo, hi = min(lo, start), max(hi, stop)
	}
	return lo, hi
}

// matcher returns a membership test for the set; the empty set's says no
// to every UID. It normalises the set once (ranges ascending, merged) and then answers
// by binary search, so a sparse set of many ranges over a large mailbox
// costs O(n log r), not O(n r).
func (set UIDSet) matcher() func(UID) bool {
	norm := make(UIDSet, 0, len(set))
	for _, r := range set {
		if r.Stop == 0 {
			r.Stop = math.MaxUint32
		}
		if r.Start > r.Stop {
			r.Start, r.Stop = r.Stop, r.Start
		}
		norm = append(norm, r)
	}
	slices.SortFunc(norm, func(a, b UIDRange) int { return cmp.Compare(a.Start, b.Start) })
	merged := norm[:0]
	for _, r := range norm {
		if n := len(merged); n > 0 && uint64(r.Start) <= uint64(merged[n-1].Stop)+1 {
			merged[n-1].Stop = max(merged[n-1].Stop, r.Stop)
			continue
		}
		merged = append(merged, r)
	}
	return func(uid UID) bool {
		// The first range that ends at or after uid is the only candidate.
		i, _ := slices.BinarySearchFunc(merged, uid, func(r UIDRange, u UID) int { return cmp.Compare(r.Stop, u) })
		return i < len(merged) && merged[i].Start <= uid
	}
}

// UIDSetOf returns the set of exactly the given UIDs.
func UIDSetOf(uids ...UID) UIDSet {
	set := make(UIDSet, 0, len(uids))
	for _, u := range uids {
		if n := len(set); n > 0 && set[n-1].Stop+1 == u {
			set[n-1].Stop = u
			continue
		}
		set = append(set, UIDRange{u, u})
	}
	return set
}
