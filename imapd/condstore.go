package imapd

import (
	"strconv"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// CONDSTORE and QRESYNC (RFC 7162) beside the commands they change:
// what the session has enabled and the responses they add. The commands
// themselves keep their files (select.go, fetch.go, store.go, search.go);
// SELECT's QRESYNC parameter is in qresync.go.

// enableCondStore turns CONDSTORE on for the rest of the connection: by
// ENABLE CONDSTORE or QRESYNC, or by any command that uses it (RFC 7162
// §3.1, "CONDSTORE enabling command": SELECT/EXAMINE (CONDSTORE), STATUS
// (HIGHESTMODSEQ), FETCH MODSEQ or CHANGEDSINCE, SEARCH MODSEQ, STORE
// UNCHANGEDSINCE). When that first command runs with a mailbox selected,
// the client has not had its HIGHESTMODSEQ (SELECT sends it only once
// CONDSTORE is on), so it gets it now (RFC 7162 §3.1.2.1).
func (s *session) enableCondStore() {
	if s.condstore {
		return
	}
	s.condstore = true
	if s.sel != nil {
		s.w.Untagged(wire.OK, highestModSeqCode(s.sel.reportModSeq()), "Highest")
	}
}

// enableQResync turns QRESYNC on for the rest of the connection (RFC 7162
// §3.2.3), and with it CONDSTORE: from now on expunges are announced as
// VANISHED (§3.2.10).
func (s *session) enableQResync() {
	s.qresync = true
	s.enableCondStore()
	if s.sel != nil {
		s.sel.vanished = true
	}
}

// highestModSeqCode is the HIGHESTMODSEQ response code (RFC 7162 §3.1.2.1).
func highestModSeqCode(modseq uint64) wire.Code {
	return wire.Code{Name: "HIGHESTMODSEQ", Args: strconv.FormatUint(modseq, 10)}
}

// writeModSeq writes " MODSEQ (n)" into a FETCH response of flags, once
// CONDSTORE is enabled (RFC 7162 §3.1: "the server MUST automatically
// include both UID and mod-sequence data in all subsequent untagged FETCH
// responses … whether they were caused by a regular STORE/UID STORE …
// or an external agent").
func (s *session) writeModSeq(modseq uint64) {
	if s.condstore {
		s.w.Raw(" MODSEQ (").Number(modseq).Raw(")")
	}
}

// maxVanishedLine bounds one VANISHED response line; a longer set is
// split over several (RFC 7162 §3.2.10 allows as many as needed; RFC 7162
// §4 recommends that lines stay within 8192 octets).
const maxVanishedLine = 4000

// writeVanished writes "* VANISHED [(EARLIER) ]uid-set" for the UIDs of
// set, ascending ranges (RFC 7162 §3.2.10), over as many lines as
// maxVanishedLine needs. It writes nothing for an empty set.
func (s *session) writeVanished(earlier bool, set mailstore.UIDSet) {
	w := s.w
	n := 0 // bytes of the current line's set; 0: no line open
	for _, r := range set {
		item := strconv.FormatUint(uint64(r.Start), 10)
		if r.Stop != r.Start {
			item += ":" + strconv.FormatUint(uint64(r.Stop), 10)
		}
		if n > 0 && n+len(item) > maxVanishedLine {
			w.CRLF()
			n = 0
		}
		if n == 0 {
			w.Raw("* VANISHED ")
			if earlier {
				w.Raw("(EARLIER) ")
			}
		} else {
			w.Raw(",")
		}
		w.Raw(item)
		n += len(item) + 1
	}
	if n > 0 {
		w.CRLF()
	}
}

// WriteVanished writes the VANISHED of expunges after ENABLE QRESYNC
// (RFC 7162 §3.2.10): without EARLIER, every UID is one the client has
// in its view, and counts down its EXISTS.
func (u updates) WriteVanished(uids []mailstore.UID) error {
	u.s.writeVanished(false, mailstore.UIDSetOf(uids...))
	return u.s.w.Err()
}
