package imapd

import (
	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// systemFlags are the flags every mailbox supports (RFC 9051 §2.3.2).
var systemFlags = []imap.Flag{imap.FlagAnswered, imap.FlagFlagged, imap.FlagDeleted, imap.FlagSeen, imap.FlagDraft}

// Select opens a mailbox, read-write (SELECT) or read-only (EXAMINE), and
// starts the session's view of it (RFC 9051 §6.3.2, §6.3.3).
func (s *session) Select(name string, options *imap.SelectOptions) (*imap.SelectData, error) {
	s.beginCommand()
	s.waitIdle()
	s.unselect()
	if err := s.checkAccount(); err != nil {
		return nil, err
	}
	name, err := mailstore.ValidateMailboxName(name)
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	store := s.srv.store
	mb, err := store.Mailbox(s.ctx, s.user.ID, name)
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	// Subscribe before reading the mailbox: a change committed in between
	// is then both in the snapshot and in the queue, and the view applies
	// it once (see selected.apply).
	sub := store.Hub().Subscribe(int64(mb.ID))
	// The modseq is read before the UIDs, so no change can fall between
	// what the view starts from and the events it applies.
	st, err := store.Status(s.ctx, mb.ID)
	if err != nil {
		sub.Close()
		return nil, s.reply(err, roleMailbox)
	}
	uids, err := store.UIDs(s.ctx, mb.ID)
	if err != nil {
		sub.Close()
		return nil, s.reply(err, roleMailbox)
	}
	firstUnseen, err := store.FirstUnseen(s.ctx, mb.ID)
	if err != nil {
		sub.Close()
		return nil, s.reply(err, roleMailbox)
	}
	sel := &selected{
		mb:       mb,
		readOnly: options.ReadOnly,
		sub:      sub,
		uids:     uids,
		gone:     make(map[mailstore.UID]bool),
		modseq:   st.HighestModSeq,
		reported: make(map[mailstore.UID]uint64),
		metrics:  s.srv.opts.Metrics,
	}
	if len(uids) > 0 {
		sel.known = uids[len(uids)-1]
	}
	s.sel = sel
	s.log.Debug("selected", "mailbox", mb.Name, "read_only", sel.readOnly, "messages", len(sel.uids))

	data := &imap.SelectData{
		Flags:       systemFlags,
		NumMessages: uint32(len(sel.uids)),
		UIDNext:     imap.UID(max(st.UIDNext, sel.known+1)),
		UIDValidity: mb.UIDValidity,
	}
	if !sel.readOnly {
		// Keywords are kept too (RFC 9051 §7.1: "\*").
		data.PermanentFlags = append(append([]imap.Flag(nil), systemFlags...), imap.FlagWildcard)
	}
	if seq, ok := sel.seqOf(firstUnseen); ok {
		data.FirstUnseenSeqNum = seq // sent to IMAP4rev1 clients only
	}
	if s.conn.EnabledCaps().Has(imap.CapIMAP4rev2) {
		// RFC 9051 §6.3.2: SELECT returns the mailbox's LIST reply.
		data.List = &imap.ListData{Mailbox: mb.Name, Delim: delim, Attrs: specialUseAttrs(mb)}
	}
	return data, nil
}

// Unselect closes the selected mailbox without expunging (RFC 3691,
// RFC 9051 §6.4.2). CLOSE expunges first through Expunge.
func (s *session) Unselect() error {
	s.beginCommand()
	s.waitIdle()
	s.unselect()
	return nil
}

func (s *session) unselect() {
	if s.sel != nil {
		s.sel.sub.Close()
		s.sel = nil
	}
}
