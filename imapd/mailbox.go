package imapd

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// mailboxName validates a mailbox name from the client. The parser has
// already decoded modified UTF-7 (or taken UTF-8 under UTF8=ACCEPT).
func (s *session) mailboxName(name string) (string, error) {
	n, err := mailstore.ValidateMailboxName(name)
	if err != nil {
		return "", s.reply(err, roleMailbox)
	}
	return n, nil
}

// Create creates a mailbox, and its missing parents (RFC 9051 §6.3.4),
// with at most one special-use attribute (RFC 6154 §3, CREATE-SPECIAL-USE).
func (s *session) Create(a *wire.Create) error {
	name := a.Mailbox
	if err := s.checkAccount(); err != nil {
		return err
	}
	// RFC 9051 §6.3.4: a trailing separator only declares the intent to
	// create children; the name is created without it.
	name = strings.TrimSuffix(name, mailstore.Separator)
	name, err := s.newMailboxName(name)
	if err != nil {
		return err
	}
	var use string
	switch len(a.Use) {
	case 0:
	case 1:
		use = a.Use[0]
	default:
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR", Text: "Only one special-use attribute per mailbox"}
	}
	mb, err := s.srv.store.CreateMailbox(s.ctx, s.user.ID, name, use)
	if err == nil {
		// RFC 8474 §4.1: the tagged OK of CREATE carries MAILBOXID.
		s.okCode = wire.Code{Name: "MAILBOXID", Args: "(" + mailboxObjectID(mb.ID) + ")"}
	}
	if use != "" {
		return s.reply(err, roleCreateUse)
	}
	return s.reply(err, roleMailbox)
}

// Delete deletes a mailbox; INBOX cannot be deleted (RFC 9051 §6.3.5).
// Sessions that have it selected are disconnected when they learn of it.
func (s *session) Delete(name string) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	name, err := s.mailboxName(name)
	if err != nil {
		return err
	}
	return s.reply(s.srv.store.DeleteMailbox(s.ctx, s.user.ID, name), roleMailbox)
}

// Rename renames a mailbox and its children; renaming INBOX moves its
// messages to the new mailbox (RFC 9051 §6.3.6).
func (s *session) Rename(oldName, newName string) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	from, err := s.mailboxName(oldName)
	if err != nil {
		return err
	}
	to, err := s.newMailboxName(newName)
	if err != nil {
		return err
	}
	return s.reply(s.srv.store.RenameMailbox(s.ctx, s.user.ID, from, to), roleMailbox)
}

// setSubscribed answers SUBSCRIBE and UNSUBSCRIBE (RFC 9051 §6.3.7,
// §6.3.8).
func (s *session) setSubscribed(name string, on bool) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	name, err := s.mailboxName(name)
	if err != nil {
		return err
	}
	return s.reply(s.srv.store.SetSubscribed(s.ctx, s.user.ID, name, on), roleMailbox)
}

// Status answers STATUS (RFC 9051 §6.3.11; SIZE: RFC 8438; APPENDLIMIT:
// RFC 7889; RECENT: RFC 3501 §6.3.10; HIGHESTMODSEQ: RFC 7162 §3.1.6).
func (s *session) Status(a *wire.Status) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	name, err := s.mailboxName(a.Mailbox)
	if err != nil {
		return err
	}
	if err := s.checkStatusItems(a.Items); err != nil {
		return err
	}
	if slices.Contains(a.Items, wire.StatusHighestModSeq) {
		s.enableCondStore() // RFC 7162 §3.1: a CONDSTORE enabling command
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.user.ID, name)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	return s.writeStatus(mb, a.Items)
}

// checkStatusItems refuses STATUS RECENT from an IMAP4rev2 session:
// RFC 9051's status-att (§9) has no RECENT, and the session keeps no
// \Recent to count by.
func (s *session) checkStatusItems(items []wire.StatusItem) error {
	if s.rev2 && slices.Contains(items, wire.StatusRecent) {
		return errRecentInRev2
	}
	return nil
}

// writeStatus writes "* STATUS name (items)" with the counters asked for,
// in the order asked (STATUS, and LIST RETURN (STATUS) of RFC 5819).
func (s *session) writeStatus(mb mailstore.Mailbox, items []wire.StatusItem) error {
	st, err := s.srv.store.Status(s.ctx, mb.ID)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	return s.writeStatusOf(st, items)
}

// writeStatusOf is writeStatus with the counters already read.
func (s *session) writeStatusOf(st mailstore.MailboxStatus, items []wire.StatusItem) error {
	var err error
	var deleted uint32
	if slices.Contains(items, wire.StatusDeleted) {
		if deleted, err = s.countDeleted(st.ID); err != nil {
			return s.reply(err, roleMailbox)
		}
	}
	w := s.w
	w.Raw("* STATUS ").Mailbox(st.Name).Raw(" (")
	for i, it := range items {
		if i > 0 {
			w.SP()
		}
		w.Raw(string(it)).SP()
		switch it {
		case wire.StatusMessages:
			w.Number(uint64(st.Messages))
		case wire.StatusRecent:
			// RFC 3501 §6.3.10: the messages no session has claimed
			// (mailstore.ClaimRecent).
			w.Number(uint64(st.Recent))
		case wire.StatusUIDNext:
			w.Number(uint64(st.UIDNext))
		case wire.StatusUIDValidity:
			w.Number(uint64(st.UIDValidity))
		case wire.StatusUnseen:
			w.Number(uint64(st.Unseen))
		case wire.StatusDeleted:
			w.Number(uint64(deleted))
		case wire.StatusSize:
			w.Number(uint64(st.Size))
		case wire.StatusAppendLimit:
			w.Number(uint64(s.srv.opts.AppendLimit))
		case wire.StatusHighestModSeq:
			// RFC 7162 §3.1.6.
			w.Number(st.HighestModSeq)
		case wire.StatusMailboxID:
			// RFC 8474 §4.3: "MAILBOXID (id)"; objectid.go.
			w.Raw("(").Raw(mailboxObjectID(st.ID)).Raw(")")
		}
	}
	w.Raw(")").CRLF()
	return w.Err()
}

// specialUseAttrs returns a mailbox's RFC 6154 attribute, if any.
func specialUseAttrs(mb mailstore.Mailbox) []string {
	if mb.SpecialUse == "" {
		return nil
	}
	return []string{mb.SpecialUse}
}
