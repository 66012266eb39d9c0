package imapd

import (
	"slices"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

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
// is asked for. One FETCH response is written per message, as it is read.
func (s *session) Fetch(w *imapserver.FetchWriter, numSet imap.NumSet, options *imap.FetchOptions) error {
	s.beginCommand()
	sel := s.selected()
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	refs, err := sel.resolve(numSet)
	if err != nil || len(refs) == 0 {
		return err
	}
	sections := len(options.BodySection) > 0 || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0
	headerOnly := headerSectionsOnly(options)
	fo := mailstore.FetchOptions{
		Parsed: sections || options.Envelope || options.BodyStructure != nil,
		Body:   sections && !headerOnly,
		Header: headerOnly,
	}
	// RFC 9051 §6.4.5: BODY[…] and BINARY[…] without .PEEK set \Seen,
	// except in a read-only mailbox (§6.3.3).
	var seen map[mailstore.UID]bool
	if !sel.readOnly && setsSeen(options) {
		if seen, err = s.markSeen(refs); err != nil {
			return err
		}
	}
	if c := s.counter; c != nil {
		// One write per batch instead of one per message; flushed before
		// imapserver writes the tagged reply.
		c.startBatch()
		defer func() {
			if err := c.endBatch(); err != nil {
				s.log.Debug("fetch: write", "err", err)
			}
		}()
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
			werr = s.writeFetch(w, seq, m, options, seen[m.UID])
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

// headerSectionsOnly reports whether every section asked for is the
// message's own header (BODY[HEADER], BODY[HEADER.FIELDS (…)],
// RFC822.HEADER): those are served from the stored header block, without
// reading bodies. Message lists fetch just that, for every message.
func headerSectionsOnly(options *imap.FetchOptions) bool {
	if len(options.BodySection) == 0 || len(options.BinarySection) > 0 || len(options.BinarySectionSize) > 0 {
		return false
	}
	for _, bs := range options.BodySection {
		if len(bs.Part) > 0 || bs.Specifier != imap.PartSpecifierHeader {
			return false
		}
	}
	return true
}

// setsSeen reports whether options fetch a body part without .PEEK.
func setsSeen(options *imap.FetchOptions) bool {
	for _, bs := range options.BodySection {
		if !bs.Peek {
			return true
		}
	}
	for _, bs := range options.BinarySection {
		if !bs.Peek {
			return true
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

// writeFetch writes one message's FETCH response. Everything that can
// fail is computed before the response starts.
func (s *session) writeFetch(w *imapserver.FetchWriter, seq uint32, m *mailstore.Message, options *imap.FetchOptions, seenNow bool) error {
	var bodies, binaries [][]byte
	var binarySizes []uint32
	if m.Parsed != nil {
		for _, bs := range options.BodySection {
			bodies = append(bodies, bodySection(m.Raw, m.Parsed, bs))
		}
		for _, bs := range options.BinarySection {
			b, err := binarySection(m.Raw, m.Parsed, bs.Part)
			if err != nil {
				return err
			}
			binaries = append(binaries, partial(b, bs.Partial))
		}
		for _, bs := range options.BinarySectionSize {
			b, err := binarySection(m.Raw, m.Parsed, bs.Part)
			if err != nil {
				return err
			}
			binarySizes = append(binarySizes, uint32(len(b)))
		}
	}

	rw := w.CreateMessage(seq)
	if options.UID {
		rw.WriteUID(imap.UID(m.UID))
	}
	if options.Flags || seenNow {
		rw.WriteFlags(imapFlags(m.Flags))
		s.sel.noteReported(m.UID, m.ModSeq)
	}
	if options.InternalDate {
		rw.WriteInternalDate(m.InternalDate)
	}
	if options.RFC822Size {
		rw.WriteRFC822Size(m.Size)
	}
	if options.Envelope && m.Parsed != nil {
		rw.WriteEnvelope(envelope(&m.Parsed.Envelope))
	}
	if options.BodyStructure != nil && m.Parsed != nil {
		rw.WriteBodyStructure(bodyStructure(&m.Parsed.Root))
	}
	var werr error
	write := func(wc interface {
		Write([]byte) (int, error)
		Close() error
	}, b []byte) {
		_, err := wc.Write(b)
		if cerr := wc.Close(); err == nil {
			err = cerr
		}
		if werr == nil {
			werr = err
		}
	}
	for i, bs := range options.BodySection {
		if i < len(bodies) {
			write(rw.WriteBodySection(bs, int64(len(bodies[i]))), bodies[i])
		}
	}
	for i, bs := range options.BinarySection {
		if i < len(binaries) {
			write(rw.WriteBinarySection(bs, int64(len(binaries[i]))), binaries[i])
		}
	}
	for i, bs := range options.BinarySectionSize {
		if i < len(binarySizes) {
			rw.WriteBinarySectionSize(bs, binarySizes[i])
		}
	}
	if err := rw.Close(); werr == nil {
		werr = err
	}
	return werr
}
