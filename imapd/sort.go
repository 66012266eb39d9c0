package imapd

import (
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// Sort answers SORT and UID SORT (RFC 5256 §3), with ESORT's RETURN
// (RFC 5267 §3.2) and PARTIAL (RFC 9394 §3.1). The search-criteria select messages as SEARCH does;
// the sort keys come from the envelope stored at delivery
// (mailstore.SortInfo), never from the bodies.
func (s *session) Sort(byUID bool, a *wire.Sort) error {
	sel := s.sel
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	if err := checkSortCharset(a.Charset); err != nil {
		return err
	}
	hits, modseqKey, err := s.searchHits(&a.Key)
	if err != nil {
		return err
	}
	infos, err := s.sortInfo(hits, sortFieldsFor(a.Criteria))
	if err != nil {
		return err
	}
	sorted := sortMessages(infos, a.Criteria)

	ret := a.Return
	if ret != nil && ret.Save {
		// RFC 5182 §2.4 keeps a set: the order of SORT is not saved.
		saved := savedResult(sorted, ret)
		slices.Sort(saved)
		sel.saved = saved
	}
	num := func(r msgRef) uint64 {
		if byUID {
			return uint64(r.uid)
		}
		return uint64(r.seq)
	}
	// RFC 7162 §3.1.5: with MODSEQ in the criteria, SORT reports the
	// highest modseq of the messages it returns.
	var highest uint64
	if returned := returnedRefs(sorted, ret); modseqKey && len(returned) > 0 {
		if highest, err = s.highestModSeq(returned); err != nil {
			return err
		}
	}
	w := s.w
	if ret == nil {
		// RFC 5256 §4 sort-data: "SORT" *(SP nz-number).
		w.Raw("* SORT")
		for _, r := range sorted {
			w.SP().Number(num(r))
		}
		if highest > 0 {
			w.Raw(" (MODSEQ ").Number(highest).Raw(")")
		}
		w.CRLF()
		return w.Err()
	}
	if ret.Save && !(ret.All || ret.Min || ret.Max || ret.Count || ret.Partial != nil) {
		return nil // RFC 5182 §2.2: SAVE alone sends no ESEARCH
	}
	// RFC 5267 §3.2: an ESEARCH response whose MIN and MAX are the first
	// and last in sort order and whose ALL keeps the sort order.
	all := ret.All || !(ret.Min || ret.Max || ret.Count || ret.Partial != nil)
	w.Raw(`* ESEARCH (TAG `).String(s.tag).Raw(")")
	if byUID {
		w.Raw(" UID")
	}
	if len(sorted) > 0 {
		if ret.Min {
			w.Raw(" MIN ").Number(num(sorted[0]))
		}
		if ret.Max {
			w.Raw(" MAX ").Number(num(sorted[len(sorted)-1]))
		}
		if all {
			nums := make([]uint64, len(sorted))
			for i, r := range sorted {
				nums[i] = num(r)
			}
			w.Raw(" ALL ").Raw(orderedSet(nums))
		}
	}
	if ret.Partial != nil {
		// RFC 9394 §3.1 (updating RFC 5267): for SORT the positions
		// are positions in the sorted result, written in that order.
		writePartial(w, ret.Partial, sorted, num, orderedSet)
	}
	if ret.Count {
		w.Raw(" COUNT ").Number(uint64(len(sorted)))
	}
	if highest > 0 {
		w.Raw(" MODSEQ ").Number(highest)
	}
	w.CRLF()
	return w.Err()
}

// checkSortCharset answers a charset SORT and THREAD do not know: NO
// [BADCHARSET] with the ones they do (RFC 5256 §3, RFC 9051 §7.1).
func checkSortCharset(cs string) error {
	switch strings.ToUpper(cs) {
	case "US-ASCII", "UTF-8":
		return nil
	}
	return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "BADCHARSET (US-ASCII UTF-8)", Text: "Unsupported charset"}
}

// orderedSet writes numbers as a sequence-set in their order: only runs
// that ascend by one become ranges, so the set reads back in the order
// given (RFC 5267 §3.2: ALL is in sort order).
func orderedSet(nums []uint64) string {
	var b strings.Builder
	for i := 0; i < len(nums); {
		j := i
		for j+1 < len(nums) && nums[j+1] == nums[j]+1 {
			j++
		}
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(strconv.FormatUint(nums[i], 10))
		if j > i {
			b.WriteByte(':')
			b.WriteString(strconv.FormatUint(nums[j], 10))
		}
		i = j + 1
	}
	return b.String()
}

// sortMsg is one message being sorted or threaded.
type sortMsg struct {
	ref  msgRef
	info *mailstore.SortInfo
	// sent is the sent date, or the internal date without one (RFC 5256
	// §3 DATE, §2.2 "sent date").
	sent time.Time
	// base is the base subject under i;ascii-casemap (RFC 5256 §2.1,
	// §3); reply is whether extracting it removed a reply or forward
	// marker.
	base  string
	reply bool
	// keys are the casemapped string keys of the sort criteria, by
	// criterion index.
	keys []string
}

// sortFieldsFor says what the criteria need from the store.
func sortFieldsFor(crit []wire.SortCriterion) mailstore.SortFields {
	var f mailstore.SortFields
	for _, c := range crit {
		switch c.Key {
		case wire.SortDate:
			f.Sent = true
		case wire.SortSubject:
			f.Subject = true
		case wire.SortFrom:
			f.From = true
		case wire.SortTo:
			f.To = true
		case wire.SortCc:
			f.Cc = true
		case wire.SortDisplayFrom:
			f.DisplayFrom = true
		case wire.SortDisplayTo:
			f.DisplayTo = true
		}
	}
	return f
}

// sortInfo reads what the store has for hits, in hits' order, with the
// sent date and base subject worked out.
func (s *session) sortInfo(hits []msgRef, f mailstore.SortFields) ([]sortMsg, error) {
	uids := make([]mailstore.UID, len(hits))
	for i, h := range hits {
		uids[i] = h.uid
	}
	infos, err := s.srv.store.SortInfo(s.ctx, s.sel.mb.ID, uids, f)
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	out := make([]sortMsg, 0, len(infos))
	j := 0
	for i := range infos {
		in := &infos[i]
		for j < len(hits) && hits[j].uid < in.UID {
			j++
		}
		if j == len(hits) {
			break
		}
		if hits[j].uid != in.UID {
			continue
		}
		m := sortMsg{ref: hits[j], info: in, sent: in.Sent}
		if m.sent.IsZero() {
			m.sent = in.InternalDate
		}
		if f.Subject {
			base, reply := baseSubject(in.Subject)
			m.base, m.reply = asciiUpper(base), reply
		}
		out = append(out, m)
	}
	// hits is ascending by UID and so by sequence number: out is in
	// sequence order, the final tie-breaker.
	return out, nil
}

// sortMessages returns the messages of msgs (in sequence order) sorted
// by crit. RFC 5256 §3: ties go in increasing sequence order; REVERSE
// reverses only the key it precedes; strings compare under
// i;ascii-casemap.
func sortMessages(msgs []sortMsg, crit []wire.SortCriterion) []msgRef {
	// The string keys of all messages in one allocation, and none when
	// no criterion is a string (SORT (DATE) over a large mailbox).
	strKeys := false
	for _, c := range crit {
		switch c.Key {
		case wire.SortFrom, wire.SortTo, wire.SortCc, wire.SortDisplayFrom, wire.SortDisplayTo, wire.SortSubject:
			strKeys = true
		}
	}
	var keys []string
	if strKeys {
		keys = make([]string, len(msgs)*len(crit))
	}
	for i := range msgs {
		if !strKeys {
			break // no string key to work out
		}
		m := &msgs[i]
		m.keys = keys[i*len(crit) : (i+1)*len(crit) : (i+1)*len(crit)]
		for k, c := range crit {
			switch c.Key {
			case wire.SortFrom:
				m.keys[k] = asciiUpper(m.info.FromMailbox)
			case wire.SortTo:
				m.keys[k] = asciiUpper(m.info.ToMailbox)
			case wire.SortCc:
				m.keys[k] = asciiUpper(m.info.CcMailbox)
			case wire.SortDisplayFrom:
				m.keys[k] = asciiUpper(m.info.DisplayFrom)
			case wire.SortDisplayTo:
				m.keys[k] = asciiUpper(m.info.DisplayTo)
			case wire.SortSubject:
				m.keys[k] = m.base
			}
		}
	}
	// Sorted are the messages' indexes, not the messages: a swap moves
	// four bytes, not a sortMsg and its pointers.
	perm := make([]int32, len(msgs))
	for i := range perm {
		perm[i] = int32(i)
	}
	slices.SortFunc(perm, func(i, j int32) int {
		a, b := &msgs[i], &msgs[j]
		for k, c := range crit {
			var d int
			switch c.Key {
			case wire.SortArrival:
				d = a.info.InternalDate.Compare(b.info.InternalDate)
			case wire.SortDate:
				d = a.sent.Compare(b.sent)
			case wire.SortSize:
				d = cmpInt(a.info.Size, b.info.Size)
			default:
				d = strings.Compare(a.keys[k], b.keys[k])
			}
			if c.Reverse {
				d = -d
			}
			if d != 0 {
				return d
			}
		}
		return cmpInt(int64(a.ref.seq), int64(b.ref.seq))
	})
	sorted := make([]msgRef, len(perm))
	for i, x := range perm {
		sorted[i] = msgs[x].ref
	}
	return sorted
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// asciiUpper maps a–z to A–Z and leaves every other byte: the
// i;ascii-casemap collation (RFC 4790 §9.2) as a key that compares with
// strings.Compare.
func asciiUpper(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'a' <= c && c <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'a' <= c && c <= 'z' {
					b[j] = c - 'a' + 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// baseSubject extracts the base subject of a decoded Subject (RFC 5256
// §2.1) and reports whether it removed a reply or forward marker: a
// subj-refwd, a "(fwd)" subj-trailer or a "[fwd: …]" wrapper, which
// THREAD=REFERENCES needs (§2.2 step 5). Comparing is the caller's
// business (asciiUpper).
func baseSubject(subj string) (string, bool) {
	// (1) Tabs and line breaks become spaces; runs of spaces become one.
	s := collapseSpace(subj)
	reply := false
	for {
		// (2) Remove trailing subj-trailer: WSP or "(fwd)".
		for {
			if t, ok := strings.CutSuffix(s, " "); ok {
				s = t
				continue
			}
			if n := len(s) - len("(fwd)"); n >= 0 && strings.EqualFold(s[n:], "(fwd)") {
				s, reply = s[:n], true
				continue
			}
			break
		}
		// (5) Repeat (3) and (4) until neither changes anything.
		for {
			changed := false
			// (3) Remove subj-leader: (*subj-blob subj-refwd) / WSP.
			for {
				n, refwd := subjLeader(s)
				if n == 0 {
					break
				}
				s, changed = s[n:], true
				reply = reply || refwd
			}
			// (4) Remove a leading subj-blob if a subj-base remains.
			if n := subjBlob(s); n > 0 && strings.TrimLeft(s[n:], " ") != "" {
				s, changed = s[n:], true
			}
			if !changed {
				break
			}
		}
		// (6) "[fwd:" … "]" around the whole: remove and go back to (2).
		if len(s) >= len("[fwd:]") && strings.EqualFold(s[:len("[fwd:")], "[fwd:") && strings.HasSuffix(s, "]") {
			s, reply = s[len("[fwd:"):len(s)-1], true
			continue
		}
		return s, reply
	}
}

// collapseSpace turns tabs, CR and LF into spaces and runs of spaces into
// one.
func collapseSpace(s string) string {
	if !strings.ContainsAny(s, "\t\r\n") && !strings.Contains(s, "  ") {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	space := false
	for _, r := range s {
		if r == ' ' || r == '\t' || r == '\r' || r == '\n' {
			if !space {
				b.WriteByte(' ')
			}
			space = true
			continue
		}
		space = false
		b.WriteRune(r)
	}
	return b.String()
}

// subjLeader returns the length of the subj-leader at the start of s, 0
// if there is none, and whether it was a subj-refwd (not a lone WSP):
//
//	subj-leader = (*subj-blob subj-refwd) / WSP
//	subj-refwd  = ("re" / ("fw" ["d"])) *WSP [subj-blob] ":"
func subjLeader(s string) (int, bool) {
	if strings.HasPrefix(s, " ") {
		return 1, false
	}
	i := 0
	for {
		n := subjBlob(s[i:])
		if n == 0 {
			break
		}
		i += n
	}
	rest := s[i:]
	switch {
	case hasPrefixFold(rest, "fwd"):
		i += 3
	case hasPrefixFold(rest, "fw"), hasPrefixFold(rest, "re"):
		i += 2
	default:
		return 0, false
	}
	for i < len(s) && s[i] == ' ' {
		i++
	}
	i += subjBlob(s[i:])
	if i < len(s) && s[i] == ':' {
		return i + 1, true
	}
	return 0, false
}

// subjBlob returns the length of the subj-blob at the start of s, 0 if
// there is none: "[" *BLOBCHAR "]" *WSP, BLOBCHAR being anything but
// "[" and "]".
func subjBlob(s string) int {
	if !strings.HasPrefix(s, "[") {
		return 0
	}
	end := strings.IndexAny(s[1:], "[]")
	if end < 0 || s[1+end] != ']' {
		return 0
	}
	i := end + 2
	for i < len(s) && s[i] == ' ' {
		i++
	}
	return i
}

func hasPrefixFold(s, prefix string) bool {
	return len(s) >= len(prefix) && strings.EqualFold(s[:len(prefix)], prefix)
}
