package imapd

import (
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// storeCriteria converts an IMAP search to a mailstore one. seqToUID maps a
// sequence set to the UIDs of the session's view.
//
// The conversion keeps the meaning of every field of imap.SearchCriteria:
//   - SeqNum sets go through seqToUID. In UID sets, "*" is the largest UID
//     of the session's view (the UID of sequence number "*", found through
//     seqToUID), not of the store, which may hold messages the session has
//     not yet been told about; "559:*" always includes that last message
//     (RFC 9051 §6.4.9). With an empty view "*" stays 0, which
//     mailstore.Search resolves itself.
//   - A "$" reference (imap.SearchRes, RFC 5182) stands for the empty set:
//     the initial value of a saved result. A session that implements
//     SEARCH RETURN (SAVE) calls storeCriteriaSaved instead.
//   - SINCE, BEFORE and ON compare INTERNALDATE dates in the server's local
//     time zone (time.Local), the zone FETCH INTERNALDATE reports them in,
//     so a client sees the date it compares against. go-imap hands the
//     date as midnight UTC; only its calendar date is used.
//   - SENTSINCE, SENTBEFORE and SENTON compare the calendar date of the
//     Date: header in the header's own zone (see mailstore.SearchCriteria).
//   - FROM, TO, CC, BCC and SUBJECT arrive from go-imap as Header entries.
//   - \Recent (RECENT, NEW, OLD) is session state, not a stored flag:
//     searchCriteria turns it into the session's recent UIDs.
//   - MODSEQ's entry name and type are ignored: the store keeps one modseq
//     per message, which RFC 7162 §3.1.5 says to use in that case.
//
// Unsupported charsets never get here: go-imap's parser answers
// NO [BADCHARSET] for any charset but US-ASCII and UTF-8.
func storeCriteria(c *imap.SearchCriteria, seqToUID func(imap.SeqSet) mailstore.UIDSet) (*mailstore.SearchCriteria, error) {
	return storeCriteriaSaved(c, seqToUID, mailstore.UIDSet{})
}

// storeCriteriaSaved is storeCriteria with saved standing for "$", the
// result of the last SEARCH RETURN (SAVE) (RFC 5182 §2.1; RFC 9051 §6.4.4.1).
// An empty saved set matches nothing.
func storeCriteriaSaved(c *imap.SearchCriteria, seqToUID func(imap.SeqSet) mailstore.UIDSet, saved mailstore.UIDSet) (*mailstore.SearchCriteria, error) {
	cv := &criteriaConverter{seqToUID: seqToUID, saved: saved, loc: time.Local}
	return cv.convert(c)
}

// errNoSeqMapper is returned for a sequence-number search without a mapper;
// it is a programming error of the caller, never a client's.
var errNoSeqMapper = errors.New("imapd: search by sequence number without a sequence map")

// criteriaConverter holds what a conversion needs beyond the criteria.
type criteriaConverter struct {
	seqToUID func(imap.SeqSet) mailstore.UIDSet
	saved    mailstore.UIDSet // what "$" means
	loc      *time.Location   // the zone INTERNALDATE dates are compared in

	last     mailstore.UID // the view's last UID, once lastDone
	lastDone bool
}

func (cv *criteriaConverter) convert(c *imap.SearchCriteria) (*mailstore.SearchCriteria, error) {
	out := &mailstore.SearchCriteria{}
	if c == nil {
		return out, nil
	}
	for _, seqs := range c.SeqNum {
		if cv.seqToUID == nil {
			return nil, errNoSeqMapper
		}
		// An unmapped sequence set is an empty UIDSet, which matches
		// nothing.
		out.UIDs = append(out.UIDs, cv.seqToUID(seqs))
	}
	for _, set := range c.UID {
		out.UIDs = append(out.UIDs, cv.uidSet(set))
	}

	// RFC 9051 §6.4.4: SINCE/BEFORE/ON compare dates "disregarding time
	// and timezone"; the store compares instants, so pass the local-time
	// day boundaries.
	out.Since = cv.dayStart(c.Since)
	out.Before = cv.dayStart(c.Before)
	out.SentSince = civilDate(c.SentSince)
	out.SentBefore = civilDate(c.SentBefore)

	for _, h := range c.Header {
		m := mailstore.HeaderMatch{Key: h.Key, Value: h.Value}
		// RFC 9051 §6.4.4: FROM, TO, CC and BCC match the envelope's
		// addresses as well as the field's text. The search conversion
		// hands FROM and HEADER FROM over alike (go-imap's criteria have
		// no place for the difference), so both match them here.
		if slices.ContainsFunc([]string{"From", "To", "Cc", "Bcc"}, func(k string) bool { return strings.EqualFold(k, h.Key) }) {
			out.Address = append(out.Address, m)
		} else {
			out.Header = append(out.Header, m)
		}
	}
	out.Body = append(out.Body, c.Body...)
	out.Text = append(out.Text, c.Text...)
	for _, f := range c.Flag {
		out.Flag = append(out.Flag, string(f))
	}
	for _, f := range c.NotFlag {
		out.NotFlag = append(out.NotFlag, string(f))
	}
	out.Larger = c.Larger
	out.Smaller = c.Smaller
	if c.ModSeq != nil {
		// RFC 7162 §3.1.5: with one modseq per message the entry name
		// does not matter.
		out.ModSeq = c.ModSeq.ModSeq
	}

	for i := range c.Not {
		not, err := cv.convert(&c.Not[i])
		if err != nil {
			return nil, err
		}
		out.Not = append(out.Not, *not)
	}
	for i := range c.Or {
		a, err := cv.convert(&c.Or[i][0])
		if err != nil {
			return nil, err
		}
		b, err := cv.convert(&c.Or[i][1])
		if err != nil {
			return nil, err
		}
		out.Or = append(out.Or, [2]mailstore.SearchCriteria{*a, *b})
	}
	return out, nil
}

// uidSet converts an IMAP UID set, with "*" (0 in both packages) made the
// view's last UID when there is one.
func (cv *criteriaConverter) uidSet(set imap.UIDSet) mailstore.UIDSet {
	if imap.IsSearchRes(set) {
		return append(mailstore.UIDSet{}, cv.saved...)
	}
	out := make(mailstore.UIDSet, 0, len(set))
	for _, r := range set {
		start, stop := mailstore.UID(r.Start), mailstore.UID(r.Stop)
		if start == 0 || stop == 0 {
			last := cv.lastUID()
			if start == 0 {
				start = last
			}
			if stop == 0 {
				stop = last
			}
		}
		if start > stop && stop != 0 {
			start, stop = stop, start // "559:*" above the last UID
		}
		out = append(out, mailstore.UIDRange{Start: start, Stop: stop})
	}
	return out
}

// lastUID returns the UID of the view's last message, 0 ("*", left to the
// store) if the view is empty or unknown.
func (cv *criteriaConverter) lastUID() mailstore.UID {
	if !cv.lastDone {
		cv.lastDone = true
		if cv.seqToUID != nil {
			if set := cv.seqToUID(imap.SeqSet{{Start: 0, Stop: 0}}); len(set) > 0 {
				cv.last = set[len(set)-1].Stop
			}
		}
	}
	return cv.last
}

// dayStart returns the start of t's calendar date in cv.loc, or the zero
// time for the zero time (criterion unset).
func (cv *criteriaConverter) dayStart(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, cv.loc)
}

// civilDate returns t's calendar date as midnight UTC: the store compares
// only the calendar date of SentSince and SentBefore.
func civilDate(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	y, m, d := t.Date()
	return time.Date(y, m, d, 0, 0, 0, 0, time.UTC)
}
