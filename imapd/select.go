package imapd

import (
	"context"
	"strconv"
	"strings"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// Select opens a mailbox, read-write (SELECT) or read-only (EXAMINE), and
// starts the session's view of it (RFC 9051 §6.3.2, §6.3.3), with
// CONDSTORE's HIGHESTMODSEQ (RFC 7162 §3.1.2.1) once enabled and
// QRESYNC's changes since the client's modseq (§3.2.5, qresync.go).
func (s *session) Select(a *wire.Select, readOnly bool) error {
	name := a.Mailbox
	if a.QResync != nil && !s.qresync {
		// RFC 7162 §3.2.5: "A server MUST respond with a tagged BAD
		// response if the Quick Resynchronization parameter to
		// SELECT/EXAMINE command is specified and the client hasn't
		// issued ENABLE QRESYNC".
		return errQResyncNotEnabled
	}
	if s.sel != nil {
		// RFC 7162 §3.2.11 (and IMAP4rev2): the old mailbox closes first.
		s.unselect()
		s.w.Untagged(wire.OK, wire.Code{Name: "CLOSED"}, "Previous mailbox is now closed")
	}
	if err := s.checkAccount(); err != nil {
		return err
	}
	if a.CondStore {
		s.enableCondStore() // nothing is selected: SELECT says HIGHESTMODSEQ
	}
	name, err := mailstore.ValidateMailboxName(name)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	store := s.srv.store
	// SELECT's reads are short: not worth cancelling; and a query on
	// the session's context leaves on it, for the session's life, the
	// channel and the map of children that the driver's watch of it
	// made (~360 bytes a hibernating session would keep, issue 15).
	ctx := context.WithoutCancel(s.ctx)
	mb, err := store.Mailbox(ctx, s.user.ID, name)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	// Subscribe before reading the mailbox: a change committed in between
	// is then both in the snapshot and in the queue, and the view applies
	// it once (see selected.apply).
	sub := store.Hub().Subscribe(int64(mb.ID))
	// UIDNEXT and the counts; the view's modseq is its UID list's.
	st, err := store.Status(ctx, mb.ID)
	if err != nil {
		sub.Close()
		return s.reply(err, roleMailbox)
	}
	// The store's shared list (mailstore.UIDList), no copy per session:
	// exactly the mailbox's UIDs at list.ModSeq, the modseq the view
	// starts from, so that no change falls between it and the events.
	list, err := store.UIDList(ctx, mb.ID)
	if err != nil {
		sub.Close()
		return s.reply(err, roleMailbox)
	}
	firstUnseen, err := store.FirstUnseen(ctx, mb.ID)
	if err != nil {
		sub.Close()
		return s.reply(err, roleMailbox)
	}
	// RFC 9051 §7.3.5: FLAGS lists the keywords in use; one that comes
	// later is announced before a FETCH shows it (flags.go).
	keywords, err := store.Keywords(ctx, mb.ID)
	if err != nil {
		sub.Close()
		return s.reply(err, roleMailbox)
	}
	sel := &selected{
		mb:       mb,
		readOnly: readOnly,
		sub:      sub,
		uids:     list.UIDs,
		shared:   true,
		list:     list,
		// The list's own modseq, at which it is exact; a change after
		// it comes as an event.
		modseq:   list.ModSeq,
		metrics:  s.srv.opts.Metrics,
		vanished: s.qresync,
		uidNext:  st.UIDNext,
	}
	if n := len(list.UIDs); n > 0 {
		sel.known = list.UIDs[n-1]
	}
	sel.keywords = make(map[string]string, len(keywords))
	for _, k := range keywords {
		sel.keywords[strings.ToLower(k)] = k
	}
	switch {
	case s.rev2:
		// RFC 9051 has no \Recent (recentOff).
	case readOnly:
		sel.recent.mode = recentPeek
	default:
		sel.recent.mode = recentClaim
	}
	// RFC 3501 §6.3.1: the messages of the view are recent to this
	// session if it is the first to hear of them; SELECT claims them, up
	// to the last UID it announces (EXAMINE only looks, §6.3.2).
	if err := sel.settleRecent(ctx, store); err != nil {
		sub.Close()
		return s.reply(err, roleMailbox)
	}
	s.sel = sel
	s.log.Debug("selected", "mailbox", mb.Name, "read_only", sel.readOnly, "messages", len(sel.uids))

	// RFC 9051 §6.3.2 (RFC 3501 §6.3.1 for IMAP4rev1 clients).
	w := s.w
	w.Raw("* ").Number(uint64(len(sel.uids))).Raw(" EXISTS").CRLF()
	if !s.rev2 {
		w.Raw("* ").Number(uint64(sel.recent.count(sel.uids))).Raw(" RECENT").CRLF()
		if seq, ok := sel.seqOf(firstUnseen); ok {
			w.Untagged(wire.OK, wire.Code{Name: "UNSEEN", Args: strconv.FormatUint(uint64(seq), 10)}, "First unseen message")
		}
	}
	w.Untagged(wire.OK, wire.Code{Name: "UIDVALIDITY", Args: strconv.FormatUint(uint64(mb.UIDValidity), 10)}, "UIDs valid")
	uidNext := max(st.UIDNext, sel.known+1)
	w.Untagged(wire.OK, wire.Code{Name: "UIDNEXT", Args: strconv.FormatUint(uint64(uidNext), 10)}, "Predicted next UID")
	s.writeMailboxFlags(true)
	// RFC 8474 §4.2: SELECT and EXAMINE report the mailbox's MAILBOXID.
	w.Untagged(wire.OK, wire.Code{Name: "MAILBOXID", Args: "(" + mailboxObjectID(mb.ID) + ")"}, "Ok")
	if s.condstore {
		// RFC 7162 §3.1.2.1; the view starts from this modseq, so every
		// later change reaches the client as an update.
		w.Untagged(wire.OK, highestModSeqCode(sel.modseq), "Highest")
	}
	if q := a.QResync; q != nil && q.UIDValidity == mb.UIDValidity {
		// RFC 7162 §3.2.5.1: with another UIDVALIDITY the client's
		// modseq means nothing here; it gets a plain SELECT.
		if err := s.qresyncSelect(q); err != nil {
			return err
		}
	}
	if s.rev2 {
		// RFC 9051 §6.3.2: SELECT returns the mailbox's LIST reply.
		s.writeList(&listData{name: mb.Name, attrs: specialUseAttrs(mb)}, false)
	}
	if readOnly {
		s.okCode = wire.Code{Name: "READ-ONLY"}
	} else {
		s.okCode = wire.Code{Name: "READ-WRITE"}
	}
	return w.Err()
}

// unselect closes the selected mailbox without expunging (RFC 3691,
// RFC 9051 §6.4.2).
func (s *session) unselect() {
	if s.sel != nil {
		s.sel.sub.Close()
		s.sel = nil
	}
}
