package imapd

import (
	"sort"
	"strings"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// systemFlagList lists the flags every mailbox supports (RFC 9051
// §2.3.2), in the order FLAGS lists them.
const systemFlagList = `\Answered \Flagged \Deleted \Seen \Draft`

// flagRecent is the session flag of RFC 3501 §2.3.2; the store never
// holds it (mailstore refuses it as ErrInvalidFlag, a BAD in errors.go).
const flagRecent = `\Recent`

// isKeyword reports whether a stored flag is a keyword: system flags
// start with a backslash, keywords cannot (RFC 9051 §9 flag-keyword).
func isKeyword(f string) bool { return !strings.HasPrefix(f, `\`) }

// writeMessageFlags writes the flag list of a FETCH response for
// message uid: its stored flags, with \Recent among the system flags if
// the message is recent to the session (RFC 3501 §2.3.2; never in
// IMAP4rev2, whose sessions have no recent messages).
func (s *session) writeMessageFlags(uid mailstore.UID, flags []string) {
	w := s.w
	recent := s.sel != nil && s.sel.recent.has(uid)
	w.Raw("(")
	n := 0
	put := func(f string) {
		if n > 0 {
			w.SP()
		}
		n++
		w.Raw(f)
	}
	for _, f := range flags {
		if recent && isKeyword(f) {
			put(flagRecent) // system flags first, as the store lists them
			recent = false
		}
		put(f)
	}
	if recent {
		put(flagRecent)
	}
	w.Raw(")")
}

// announceKeywords writes FLAGS, and in a read-write mailbox
// PERMANENTFLAGS, if flags hold a keyword the session has not announced
// yet. Every FETCH response with FLAGS calls it before the response
// starts: RFC 3501 §7.2.6, "The update from the FLAGS response MUST be
// recorded by the client", and RFC 9051 §7.3.5 has FLAGS list the
// mailbox's flags, so the client learns of a keyword before a message
// shows it, whoever stored it (the session's own STORE or APPEND,
// another session, another process).
func (s *session) announceKeywords(flags []string) {
	sel := s.sel
	added := false
	for _, f := range flags {
		if !isKeyword(f) {
			continue
		}
		// RFC 9051 §2.3.2: flags are case-insensitive.
		if k := strings.ToLower(f); sel.keywords[k] == "" {
			if sel.keywords == nil {
				sel.keywords = make(map[string]string)
			}
			sel.keywords[k] = f
			added = true
		}
	}
	if added {
		s.writeMailboxFlags(false)
	}
}

// writeMailboxFlags writes FLAGS with the system flags and the keywords
// the session has announced (RFC 9051 §7.3.5), and PERMANENTFLAGS: the
// same plus \*, since any keyword can be stored (RFC 9051 §7.1), in a
// read-write mailbox; none in a read-only one, which only SELECT's
// answer says (atSelect), as the list never changes.
func (s *session) writeMailboxFlags(atSelect bool) {
	sel := s.sel
	kws := make([]string, 0, len(sel.keywords))
	for _, k := range sel.keywords {
		kws = append(kws, k)
	}
	sort.Strings(kws)
	list := systemFlagList
	if len(kws) > 0 {
		list += " " + strings.Join(kws, " ")
	}
	w := s.w
	w.Raw("* FLAGS (").Raw(list).Raw(")").CRLF()
	switch {
	case !sel.readOnly:
		w.Untagged(wire.OK, wire.Code{Name: "PERMANENTFLAGS", Args: "(" + list + ` \*)`}, "Permanent flags")
	case atSelect:
		w.Untagged(wire.OK, wire.Code{Name: "PERMANENTFLAGS", Args: "()"}, "Permanent flags")
	}
}
