package mailstore

import "math"

// UIDRange is an inclusive range of UIDs. Stop 0 means "no upper bound",
// as "*" does in IMAP sets.
type UIDRange struct{ Start, Stop UID }

// UIDSet is a set of UIDs as ranges. A nil UIDSet means "every message"
// where a method says so.
type UIDSet []UIDRange

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
// query reads one contiguous span and filters it with Contains.
func (set UIDSet) bounds() (lo, hi UID) {
	if set == nil {
		return 1, math.MaxUint32
	}
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

// contains is Contains with nil meaning everything.
func (set UIDSet) contains(uid UID) bool { return set == nil || set.Contains(uid) }

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
