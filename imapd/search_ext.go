package imapd

import (
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// Search keys of extensions that go-imap's criteria have no field for
// (WITHIN, RFC 5032; OBJECTID's EMAILID and THREADID, RFC 8474 §6;
// SAVEDATE's keys, RFC 8514 §4.3) do not pass through imap.SearchCriteria:
// keyCriteria walks the parsed key itself and converts only the
// extension-free subtrees the usual way (searchCriteria, then
// storeCriteria). A search without extension keys takes the usual path
// unchanged.

// usesExtKey reports whether a search key has an extension key in it.
func usesExtKey(k *wire.SearchKey) bool {
	switch k.Op {
	case wire.SearchYounger, wire.SearchOlder, wire.SearchEmailID, wire.SearchThreadID,
		wire.SearchSavedBefore, wire.SearchSavedOn, wire.SearchSavedSince, wire.SearchSaveDateSupported:
		return true
	}
	for i := range k.Keys {
		if usesExtKey(&k.Keys[i]) {
			return true
		}
	}
	return false
}

// keyCriteria converts a parsed search key to the store's criteria. now is
// the instant WITHIN's intervals count back from; recent and cv are as
// for searchCriteria and storeCriteriaSaved.
func keyCriteria(k *wire.SearchKey, recent imap.UIDSet, cv *criteriaConverter, now time.Time) (*mailstore.SearchCriteria, error) {
	if !usesExtKey(k) {
		return cv.convert(searchCriteria(k, recent))
	}
	out := &mailstore.SearchCriteria{}
	switch k.Op {
	case wire.SearchAnd:
		for i := range k.Keys {
			sub, err := keyCriteria(&k.Keys[i], recent, cv, now)
			if err != nil {
				return nil, err
			}
			andCriteria(out, sub)
		}
	case wire.SearchNot:
		sub, err := keyCriteria(&k.Keys[0], recent, cv, now)
		if err != nil {
			return nil, err
		}
		out.Not = append(out.Not, *sub)
	case wire.SearchOr:
		a, err := keyCriteria(&k.Keys[0], recent, cv, now)
		if err != nil {
			return nil, err
		}
		b, err := keyCriteria(&k.Keys[1], recent, cv, now)
		if err != nil {
			return nil, err
		}
		out.Or = append(out.Or, [2]mailstore.SearchCriteria{*a, *b})
	case wire.SearchYounger:
		// RFC 5032 §3: "messages whose internal date ... is within the
		// specified interval", counted back from now, in seconds.
		out.Since = now.Add(-time.Duration(k.Num) * time.Second)
	case wire.SearchOlder:
		// RFC 5032 §3: "older than the specified interval": before the
		// instant YOUNGER starts at, so OLDER n is NOT YOUNGER n.
		out.Before = now.Add(-time.Duration(k.Num) * time.Second)
	case wire.SearchSavedBefore:
		// RFC 8514 §4.3: as BEFORE, SINCE and ON on the internal date
		// (storeCriteria: day boundaries in the server's zone).
		out.SavedBefore = cv.dayStart(k.Date)
	case wire.SearchSavedOn:
		out.SavedSince, out.SavedBefore = cv.dayStart(k.Date), cv.dayStart(k.Date.AddDate(0, 0, 1))
	case wire.SearchSavedSince:
		out.SavedSince = cv.dayStart(k.Date)
	case wire.SearchSaveDateSupported:
		// RFC 8514 §4.3: every message of a mailbox that keeps save
		// dates, and every mailbox here does (mailstore/savedate.go).
	case wire.SearchEmailID, wire.SearchThreadID:
		// RFC 8474 §6: the messages with this EMAILID or THREADID. A
		// thread is one email here (objectid.go), so both name an
		// email; an id this server never gave out matches nothing (an
		// empty UID set).
		kind := byte('E')
		if k.Op == wire.SearchThreadID {
			kind = 'T'
		}
		if id, ok := parseObjectID(k.Str, kind); ok {
			out.Email = append(out.Email, id)
		} else {
			out.UIDs = append(out.UIDs, mailstore.UIDSet{})
		}
	}
	return out, nil
}

// andCriteria adds src's conditions to dst's, so that dst matches what
// both matched: lists are joined, bounds take the narrower value.
func andCriteria(dst, src *mailstore.SearchCriteria) {
	later := func(a, b time.Time) time.Time {
		if a.IsZero() || b.After(a) {
			return b
		}
		return a
	}
	earlier := func(a, b time.Time) time.Time {
		if a.IsZero() || !b.IsZero() && b.Before(a) {
			return b
		}
		return a
	}
	dst.UIDs = append(dst.UIDs, src.UIDs...)
	dst.Since = later(dst.Since, src.Since)
	dst.Before = earlier(dst.Before, src.Before)
	dst.SentSince = later(dst.SentSince, src.SentSince)
	dst.SentBefore = earlier(dst.SentBefore, src.SentBefore)
	dst.Header = append(dst.Header, src.Header...)
	dst.Address = append(dst.Address, src.Address...)
	dst.Body = append(dst.Body, src.Body...)
	dst.Text = append(dst.Text, src.Text...)
	dst.Flag = append(dst.Flag, src.Flag...)
	dst.NotFlag = append(dst.NotFlag, src.NotFlag...)
	dst.Larger = max(dst.Larger, src.Larger)
	if dst.Smaller == 0 || src.Smaller != 0 && src.Smaller < dst.Smaller {
		dst.Smaller = src.Smaller
	}
	dst.ModSeq = max(dst.ModSeq, src.ModSeq)
	dst.Email = append(dst.Email, src.Email...)
	dst.SavedSince = later(dst.SavedSince, src.SavedSince)
	dst.SavedBefore = earlier(dst.SavedBefore, src.SavedBefore)
	dst.Not = append(dst.Not, src.Not...)
	dst.Or = append(dst.Or, src.Or...)
}
