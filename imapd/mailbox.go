package imapd

import (
	"strings"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// delim is the hierarchy separator as go-imap wants it.
const delim = rune('/')

// mailboxName validates a mailbox name from the client. go-imap has
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
func (s *session) Create(name string, options *imap.CreateOptions) error {
	s.beginCommand()
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
	switch len(options.SpecialUse) {
	case 0:
	case 1:
		use = string(options.SpecialUse[0])
	default:
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: "USEATTR", Text: "Only one special-use attribute per mailbox"}
	}
	_, err = s.srv.store.CreateMailbox(s.ctx, s.user.ID, name, use)
	if use != "" {
		return s.reply(err, roleCreateUse)
	}
	return s.reply(err, roleMailbox)
}

// Delete deletes a mailbox; INBOX cannot be deleted (RFC 9051 §6.3.5).
// Sessions that have it selected are disconnected when they learn of it.
func (s *session) Delete(name string) error {
	s.beginCommand()
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
func (s *session) Rename(oldName, newName string, options *imap.RenameOptions) error {
	s.beginCommand()
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

// Subscribe adds a mailbox to the subscriptions (RFC 9051 §6.3.7).
func (s *session) Subscribe(name string) error {
	s.beginCommand()
	return s.setSubscribed(name, true)
}

// Unsubscribe removes a mailbox from the subscriptions (RFC 9051 §6.3.8).
func (s *session) Unsubscribe(name string) error {
	s.beginCommand()
	return s.setSubscribed(name, false)
}

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

// Status reports a mailbox's counters (RFC 9051 §6.3.11; SIZE: RFC 8438;
// APPENDLIMIT: RFC 7889). RECENT is always 0: nothing is recent here.
func (s *session) Status(name string, options *imap.StatusOptions) (*imap.StatusData, error) {
	s.beginCommand()
	if err := s.checkAccount(); err != nil {
		return nil, err
	}
	name, err := s.mailboxName(name)
	if err != nil {
		return nil, err
	}
	mb, err := s.srv.store.Mailbox(s.ctx, s.user.ID, name)
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	return s.statusData(mb, options)
}

// statusData reads the counters options asks for.
func (s *session) statusData(mb mailstore.Mailbox, options *imap.StatusOptions) (*imap.StatusData, error) {
	if options.DeletedStorage {
		// RFC 9208 QUOTA is not offered.
		return nil, &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "DELETED-STORAGE is not supported"}
	}
	st, err := s.srv.store.Status(s.ctx, mb.ID)
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	data := &imap.StatusData{
		Mailbox:     st.Name,
		UIDNext:     imap.UID(st.UIDNext),
		UIDValidity: st.UIDValidity,
		NumMessages: &st.Messages,
		NumUnseen:   &st.Unseen,
		Size:        &st.Size,
	}
	zero := uint32(0)
	data.NumRecent = &zero
	limit := s.srv.opts.AppendLimit
	data.AppendLimit = &limit
	if options.NumDeleted {
		n, err := s.countDeleted(mb.ID)
		if err != nil {
			return nil, s.reply(err, roleMailbox)
		}
		data.NumDeleted = &n
	}
	return data, nil
}

// specialUseAttrs returns a mailbox's RFC 6154 attribute, if any.
func specialUseAttrs(mb mailstore.Mailbox) []imap.MailboxAttr {
	if mb.SpecialUse == "" {
		return nil
	}
	return []imap.MailboxAttr{imap.MailboxAttr(mb.SpecialUse)}
}
