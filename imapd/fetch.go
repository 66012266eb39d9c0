package imapd

import (
	"bytes"
	"slices"
	"strconv"
	"strings"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// fetchChunk is how many messages one store read covers: a FETCH of a
// large mailbox streams in chunks, so no read transaction stays open for
// the whole reply to a slow client.
const fetchChunk = 128

// Fetch answers FETCH and UID FETCH (RFC 9051 §6.4.5) from the stored
// metadata: flags, dates and sizes from the message rows; ENVELOPE and
// BODYSTRUCTURE from the parse stored at delivery; sections by slicing the
// raw message at the stored offsets. Bodies are read only when a section
// is asked for. One FETCH response is written per message, as it is read;
// the writer's buffer sends them in large writes.
//
// CONDSTORE (RFC 7162 §3.1.4): MODSEQ is an item, CHANGEDSINCE limits
// the messages to those changed after it, and with QRESYNC's VANISHED
// (§3.2.6) a UID FETCH first reports the UIDs of its set expunged since.
// PARTIAL (RFC 9394 §3.2) narrows a UID FETCH to some positions of its
// set.
func (s *session) Fetch(byUID bool, a *wire.Fetch) error {
	sel := s.sel
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	if a.Vanished && !(byUID && a.HasChangedSince && s.qresync) {
		return errVanishedMisused
	}
	if a.Partial != nil && !byUID {
		return errPartialNeedsUID
	}
	hasModSeq := slices.ContainsFunc(a.Attrs, func(at wire.FetchAttr) bool { return at.Kind == wire.FetchModSeq })
	if hasModSeq || a.HasChangedSince {
		s.enableCondStore() // RFC 7162 §3.1: a CONDSTORE enabling command
	}
	if a.Vanished {
		if err := s.fetchVanished(a); err != nil {
			return err
		}
	}
	refs, err := sel.resolve(a.Set, byUID)
	if err != nil || len(refs) == 0 {
		return err
	}
	if a.HasChangedSince {
		// RFC 7162 §3.1.4.1: only the messages changed since; found
		// through the store's modseq index, before anything (\Seen)
		// changes them.
		if refs, err = s.changedSince(refs, a.ChangedSince); err != nil || len(refs) == 0 {
			return err
		}
	}
	if a.Partial != nil {
		// RFC 9394 §3.2: only the messages at those positions of the
		// set, in UID order (refs ascends), negative ones counted from
		// the highest UID. The positions are taken after CHANGEDSINCE,
		// so that a client can page through what changed; nothing at
		// those positions is an empty, successful FETCH.
		lo, hi := a.Partial.Indexes(len(refs))
		if refs = refs[lo:hi]; len(refs) == 0 {
			return nil
		}
	}
	attrs := a.Attrs
	// RFC 7162 §3.1.4.1: with CHANGEDSINCE the server includes MODSEQ
	// "as if" asked; §3.2.4: after ENABLE QRESYNC every UID FETCH
	// response has it; §3.1: once CONDSTORE is on, a FETCH that sets
	// \Seen reports the change with UID and MODSEQ, as every other
	// response about changed flags.
	wantModSeq := hasModSeq || a.HasChangedSince || s.qresync && byUID ||
		s.condstore && !sel.readOnly && setsSeen(attrs)
	if wantModSeq && !hasModSeq {
		attrs = append(slices.Clip(attrs), wire.FetchAttr{Kind: wire.FetchModSeq})
	}
	if (byUID || wantModSeq && s.condstore) && !slices.ContainsFunc(attrs, func(at wire.FetchAttr) bool { return at.Kind == wire.FetchUID }) {
		// RFC 9051 §6.4.9: UID FETCH responses carry the UID; RFC 7162
		// §3.1: so does every response with MODSEQ ("both UID and
		// mod-sequence data").
		attrs = append([]wire.FetchAttr{{Kind: wire.FetchUID}}, attrs...)
	}
	var sections, parsed, headerOnly = false, false, true
	for _, at := range attrs {
		switch at.Kind {
		case wire.FetchEnvelope, wire.FetchBody, wire.FetchBodyStructure:
			parsed = true
		case wire.FetchRFC822Header:
			sections = true
		case wire.FetchBodySection:
			sections = true
			if len(at.Section.Part) > 0 || !strings.HasPrefix(at.Section.Specifier, "HEADER") {
				headerOnly = false
			}
		case wire.FetchRFC822, wire.FetchRFC822Text, wire.FetchBinary, wire.FetchBinarySize:
			sections, headerOnly = true, false
		}
	}
	// Header sections alone (message lists fetch just those, for every
	// message) are served from the stored header block without bodies.
	fo := mailstore.FetchOptions{
		Parsed: sections || parsed,
		Body:   sections && !headerOnly,
		Header: sections && headerOnly,
	}
	if a.HasChangedSince {
		// Through the modseq index: refs may be few and far apart.
		fo.ChangedSince = a.ChangedSince
	}
	// RFC 9051 §6.4.5: BODY[…], BINARY[…], RFC822 and RFC822.TEXT without
	// .PEEK set \Seen, except in a read-only mailbox (§6.3.3).
	var seen map[mailstore.UID]bool
	if !sel.readOnly && setsSeen(attrs) {
		if seen, err = s.markSeen(refs); err != nil {
			return err
		}
	}
	for len(refs) > 0 {
		chunk := refs[:min(fetchChunk, len(refs))]
		refs = refs[len(chunk):]
		var werr error // the client's (a write or UNKNOWN-CTE), not the store's
		err := s.srv.store.Messages(s.ctx, sel.mb.ID, uidSetOf(chunk), fo, func(m *mailstore.Message) error {
			seq, ok := sel.seqOf(m.UID)
			if !ok {
				return nil
			}
			werr = s.writeFetch(seq, m, attrs, seen[m.UID])
			return werr
		})
		if werr != nil {
			return werr
		}
		if err != nil {
			return s.reply(err, roleMailbox)
		}
	}
	return nil
}

// changedSince returns the messages of refs whose modseq is above since
// (RFC 7162 §3.1.4.1), in one indexed read.
func (s *session) changedSince(refs []msgRef, since uint64) ([]msgRef, error) {
	sel := s.sel
	var out []msgRef
	err := s.srv.store.Messages(s.ctx, sel.mb.ID, uidSetOf(refs), mailstore.FetchOptions{ChangedSince: since}, func(m *mailstore.Message) error {
		if seq, ok := sel.seqOf(m.UID); ok {
			out = append(out, msgRef{seq: seq, uid: m.UID})
		}
		return nil
	})
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	return out, nil
}

// fetchVanished writes UID FETCH's "* VANISHED (EARLIER)" (RFC 7162
// §3.2.6): the UIDs of its set expunged after CHANGEDSINCE that the view
// does not hold (one it holds goes out as VANISHED when the view drops
// it). Below the store's horizon, where no tombstone answers, every UID
// of the set up to the highest given out that the mailbox no longer has
// is reported, which §3.2.6 allows.
func (s *session) fetchVanished(a *wire.Fetch) error {
	sel := s.sel
	var set mailstore.UIDSet
	if a.Set.Saved {
		set = mailstore.UIDSetOf(sel.saved...)
	} else {
		set = storeUIDSet(a.Set, max(sel.known, sel.uidNext-1))
	}
	if len(set) == 0 {
		return nil
	}
	ch, err := s.srv.store.ChangesSince(s.ctx, sel.mb.ID, set, a.ChangedSince)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	if ch.VanishedKnown {
		s.writeVanished(true, mailstore.UIDSetOf(sel.notInView(ch.Vanished)...))
	} else {
		s.writeVanished(true, sel.missing(set, 0))
	}
	return s.w.Err()
}

// setsSeen reports whether attrs fetch message content without .PEEK.
func setsSeen(attrs []wire.FetchAttr) bool {
	for _, at := range attrs {
		switch at.Kind {
		case wire.FetchRFC822, wire.FetchRFC822Text:
			return true
		case wire.FetchBodySection, wire.FetchBinary:
			if !at.Peek {
				return true
			}
		}
	}
	return false
}

// markSeen sets \Seen on the messages of refs that lack it and returns
// their UIDs: their FETCH responses include the new FLAGS (RFC 9051
// §6.4.5). The store is written before the messages are read, so the
// flags read are the new ones; the change's event is the session's own
// and is skipped.
func (s *session) markSeen(refs []msgRef) (map[mailstore.UID]bool, error) {
	sel := s.sel
	var unseen []msgRef
	err := s.srv.store.Messages(s.ctx, sel.mb.ID, uidSetOf(refs), mailstore.FetchOptions{}, func(m *mailstore.Message) error {
		if !slices.Contains(m.Flags, mailstore.FlagSeen) {
			unseen = append(unseen, msgRef{uid: m.UID})
		}
		return nil
	})
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	seen := make(map[mailstore.UID]bool, len(unseen))
	if len(unseen) == 0 {
		return seen, nil
	}
	if _, err := s.srv.store.StoreFlags(s.ctx, sel.mb.ID, uidSetOf(unseen), mailstore.FlagsAdd,
		[]string{mailstore.FlagSeen}, sel.sub.ID()); err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	for _, r := range unseen {
		seen[r.uid] = true
	}
	return seen, nil
}

// writeFetch writes one message's FETCH response, its items in the order
// asked. Everything that can fail (BINARY's decoding) is computed before
// the response starts.
func (s *session) writeFetch(seq uint32, m *mailstore.Message, attrs []wire.FetchAttr, seenNow bool) error {
	var binaries [][]byte
	for _, at := range attrs {
		if at.Kind != wire.FetchBinary && at.Kind != wire.FetchBinarySize {
			continue
		}
		var b []byte
		if m.Parsed != nil {
			var err error
			if b, err = binarySection(m.Raw, m.Parsed, partPath(at.Section.Part)); err != nil {
				return err
			}
		}
		binaries = append(binaries, b)
	}

	if seenNow || slices.ContainsFunc(attrs, func(at wire.FetchAttr) bool { return at.Kind == wire.FetchFlags }) {
		s.announceKeywords(m.Flags)
	}
	w := s.w
	w.Raw("* ").Number(uint64(seq)).Raw(" FETCH (")
	first := true
	item := func(name string) {
		if !first {
			w.SP()
		}
		first = false
		w.Raw(name)
	}
	flagsDone := false
	bi := 0
	for _, at := range attrs {
		switch at.Kind {
		case wire.FetchUID:
			item("UID ")
			w.Number(uint64(m.UID))
		case wire.FetchFlags:
			if flagsDone {
				continue
			}
			flagsDone = true
			item("FLAGS ")
			s.writeMessageFlags(m.UID, m.Flags)
			s.sel.noteReported(m.UID, m.ModSeq)
		case wire.FetchInternalDate:
			item("INTERNALDATE ")
			w.Raw(`"`).Raw(m.InternalDate.Format(internalDateLayout)).Raw(`"`)
		case wire.FetchRFC822Size:
			item("RFC822.SIZE ")
			w.Number(uint64(m.Size))
		case wire.FetchEnvelope:
			if m.Parsed == nil {
				continue
			}
			item("ENVELOPE ")
			writeEnvelope(w, &m.Parsed.Envelope, w.UTF8)
		case wire.FetchBody, wire.FetchBodyStructure:
			if m.Parsed == nil {
				continue
			}
			ext := at.Kind == wire.FetchBodyStructure
			if ext {
				item("BODYSTRUCTURE ")
			} else {
				item("BODY ")
			}
			writeBodyStructure(w, &m.Parsed.Root, ext, w.UTF8)
		case wire.FetchRFC822, wire.FetchRFC822Header, wire.FetchRFC822Text:
			sec := imap.FetchItemBodySection{}
			name := "RFC822 "
			switch at.Kind {
			case wire.FetchRFC822Header:
				sec.Specifier, name = imap.PartSpecifierHeader, "RFC822.HEADER "
			case wire.FetchRFC822Text:
				sec.Specifier, name = imap.PartSpecifierText, "RFC822.TEXT "
			}
			item(name)
			var b []byte
			if m.Parsed != nil {
				b = bodySection(m.Raw, m.Parsed, &sec)
			}
			w.Literal(noNUL(b))
		case wire.FetchBodySection:
			item("BODY[")
			writeSection(w, &at.Section)
			w.Raw("]")
			var b []byte
			if m.Parsed != nil {
				sec := bodySectionOf(&at.Section)
				b = bodySection(m.Raw, m.Parsed, &sec)
			}
			b = writeOrigin(w, b, at.Partial)
			w.SP().Literal(noNUL(b))
		case wire.FetchBinary:
			item("BINARY[")
			writeParts(w, at.Section.Part)
			w.Raw("]")
			b := writeOrigin(w, binaries[bi], at.Partial)
			bi++
			// RFC 3516 §4.2: literal8 when the data holds NUL.
			w.SP().Literal8(b)
		case wire.FetchModSeq:
			// RFC 7162 §3.1.4.2: "MODSEQ (n)".
			item("MODSEQ (")
			w.Number(m.ModSeq).Raw(")")
		case wire.FetchEmailID:
			// RFC 8474 §5.1: "EMAILID (id)"; objectid.go.
			item("EMAILID (")
			w.Raw(emailObjectID(m.Email)).Raw(")")
		case wire.FetchThreadID:
			// RFC 8474 §5.2: "THREADID (id)", every email its own thread.
			item("THREADID (")
			w.Raw(threadObjectID(m.Email)).Raw(")")
		case wire.FetchSaveDate:
			// RFC 8514 §4.2: "SAVEDATE" SP (date-time / nil), NIL
			// where the store has no save date (mailstore/savedate.go).
			item("SAVEDATE ")
			if m.SaveDate.IsZero() {
				w.Raw("NIL")
			} else {
				w.Raw(`"`).Raw(m.SaveDate.Format(internalDateLayout)).Raw(`"`)
			}
		case wire.FetchBinarySize:
			item("BINARY.SIZE[")
			writeParts(w, at.Section.Part)
			w.Raw("] ").Number(uint64(len(binaries[bi])))
			bi++
		}
	}
	if seenNow && !flagsDone {
		// RFC 9051 §6.4.5: a FETCH that sets \Seen reports the new flags.
		item("FLAGS ")
		s.writeMessageFlags(m.UID, m.Flags)
		s.sel.noteReported(m.UID, m.ModSeq)
	}
	w.Raw(")").CRLF()
	return w.Err()
}

// internalDateLayout is date-time (RFC 9051 §9).
const internalDateLayout = "02-Jan-2006 15:04:05 -0700"

// writeOrigin writes a partial fetch's "<origin>" and returns its slice
// of b (RFC 9051 §7.5.2: "BODY[]<0>"; past the end is empty).
func writeOrigin(w *wire.Writer, b []byte, p *wire.Partial) []byte {
	if p == nil {
		return b
	}
	w.Raw("<").Number(p.Offset).Raw(">")
	if p.Offset >= uint64(len(b)) {
		return nil
	}
	b = b[p.Offset:]
	if p.Count < uint64(len(b)) {
		b = b[:p.Count]
	}
	return b
}

// noNUL returns b with every NUL octet replaced by 0x80. A BODY[…] or
// RFC822 response is a literal, which cannot carry NUL (RFC 9051 §4.3
// CHAR8); BINARY[…] returns the same content exactly, as literal8
// (RFC 3516). Dovecot makes the same replacement. b itself is not
// changed: it may be the stored message.
func noNUL(b []byte) []byte {
	if bytes.IndexByte(b, 0) < 0 {
		return b
	}
	out := bytes.Clone(b)
	for i, c := range out {
		if c == 0 {
			out[i] = 0x80
		}
	}
	return out
}

// writeSection writes a section-spec as the client gave it (RFC 9051 §9).
func writeSection(w *wire.Writer, sec *wire.Section) {
	writeParts(w, sec.Part)
	if sec.Specifier == "" {
		return
	}
	if len(sec.Part) > 0 {
		w.Raw(".")
	}
	w.Raw(sec.Specifier)
	if strings.HasPrefix(sec.Specifier, "HEADER.FIELDS") {
		w.Raw(" (")
		for i, f := range sec.Fields {
			if i > 0 {
				w.SP()
			}
			w.AString(f)
		}
		w.Raw(")")
	}
}

func writeParts(w *wire.Writer, part []uint32) {
	for i, n := range part {
		if i > 0 {
			w.Raw(".")
		}
		w.Raw(strconv.FormatUint(uint64(n), 10))
	}
}

// partPath converts section part numbers to findPart's.
func partPath(part []uint32) []int {
	out := make([]int, len(part))
	for i, n := range part {
		out[i] = int(n)
	}
	return out
}

// bodySectionOf converts a parsed section to the form bodySection takes.
func bodySectionOf(sec *wire.Section) imap.FetchItemBodySection {
	bs := imap.FetchItemBodySection{Part: partPath(sec.Part)}
	switch sec.Specifier {
	case "HEADER":
		bs.Specifier = imap.PartSpecifierHeader
	case "HEADER.FIELDS":
		bs.Specifier, bs.HeaderFields = imap.PartSpecifierHeader, sec.Fields
	case "HEADER.FIELDS.NOT":
		bs.Specifier, bs.HeaderFieldsNot = imap.PartSpecifierHeader, sec.Fields
	case "TEXT":
		bs.Specifier = imap.PartSpecifierText
	case "MIME":
		bs.Specifier = imap.PartSpecifierMIME
	}
	return bs
}
