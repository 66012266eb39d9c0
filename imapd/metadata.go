package imapd

import (
	"strconv"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// METADATA (RFC 5464): server entries (mailbox "") and mailbox entries,
// all of them the logged-in user's own (mailstore/metadata.go). /shared
// entries are stored per user too: no mailbox is shared with anyone, so
// the owner is the only user a shared entry could be shown to. Values
// are strings (nstring); a literal8 value is refused by the parser.
// Limits: mailstore.MaxMetadataValue bytes per value ([METADATA MAXSIZE
// n], §4.3) and mailstore.MaxMetadataEntries entries per user ([METADATA
// TOOMANY]). No unsolicited METADATA is sent (§4.4: a server MAY).

// metadataMaxSize is the code of a value over the limit (RFC 5464 §4.3).
// A value is as large as one literal may be: the parser refuses a larger
// literal before its data, and serve.go gives that refusal this code.
var metadataMaxSize = wire.Code{Name: "METADATA", Args: "MAXSIZE " + strconv.Itoa(min(mailstore.MaxMetadataValue, maxLiteral))}

var errInvalidEntry = &imap.Error{
	Type: imap.StatusResponseTypeBad,
	Code: imap.ResponseCodeClientBug,
	Text: "Invalid entry name: /private/… or /shared/…, no \"*\", \"%\" or empty component (RFC 5464 §3.2)",
}

// metadataMailbox resolves a METADATA command's mailbox: 0 for "", the
// server.
func (s *session) metadataMailbox(name string) (mailstore.MailboxID, error) {
	if name == "" {
		return 0, nil
	}
	n, err := s.mailboxName(name)
	if err != nil {
		return 0, err
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.user.ID, n)
	if err != nil {
		return 0, s.reply(err, roleMailbox)
	}
	return mb.ID, nil
}

// getMetadata answers GETMETADATA (RFC 5464 §4.2): one METADATA
// response with the entries found, NIL for a requested entry that does
// not exist (without DEPTH), and none over MAXSIZE: those are counted in the tagged OK's
// [METADATA LONGENTRIES n], n being the largest size left out (§4.2.1).
func (s *session) getMetadata(a *wire.GetMetadata) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	mb, err := s.metadataMailbox(a.Mailbox)
	if err != nil {
		return err
	}
	names := make([]string, len(a.Entries))
	for i, e := range a.Entries {
		if names[i], err = mailstore.NormalizeEntryName(e, true); err != nil {
			return errInvalidEntry
		}
	}
	depth := mailstore.DepthZero
	switch a.Depth {
	case 1:
		depth = mailstore.DepthOne
	case wire.DepthInfinity:
		depth = mailstore.DepthInfinity
	}
	entries, err := s.srv.store.Metadata(s.ctx, s.user.ID, mb, names, depth)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	found := map[string]bool{}
	for _, e := range entries {
		found[e.Name] = true
	}
	w := s.w
	wrote := false
	open := func() {
		if !wrote {
			w.Raw("* METADATA ").Mailbox(a.Mailbox).Raw(" (")
			wrote = true
		} else {
			w.SP()
		}
	}
	longest := -1
	for _, e := range entries {
		if a.MaxSize >= 0 && int64(len(e.Value)) > a.MaxSize {
			longest = max(longest, len(e.Value))
			continue
		}
		open()
		w.AString(e.Name).SP().String(string(e.Value))
	}
	for _, n := range names {
		// As the RFC's DEPTH example (§4.2.2) shows, an entry asked
		// for with its descendants gets no NIL of its own.
		if !found[n] && depth == mailstore.DepthZero && n != "/private" && n != "/shared" {
			open()
			w.AString(n).Raw(" NIL")
		}
	}
	if wrote {
		w.Raw(")").CRLF()
	}
	if longest >= 0 {
		s.okCode = wire.Code{Name: "METADATA", Args: "LONGENTRIES " + strconv.Itoa(longest)}
	}
	return w.Err()
}

// setMetadata answers SETMETADATA (RFC 5464 §4.3): every entry set or
// deleted (NIL), or none.
func (s *session) setMetadata(a *wire.SetMetadata) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	mb, err := s.metadataMailbox(a.Mailbox)
	if err != nil {
		return err
	}
	entries := make([]mailstore.MetadataEntry, len(a.Entries))
	for i, e := range a.Entries {
		n, err := mailstore.NormalizeEntryName(e.Name, false)
		if err != nil {
			return errInvalidEntry
		}
		entries[i] = mailstore.MetadataEntry{Name: n, Value: e.Value, Delete: e.Nil}
	}
	return s.reply(s.srv.store.SetMetadata(s.ctx, s.user.ID, mb, entries), roleMailbox)
}
