package imapd

import (
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"pushmail/mailstore"
)

// List answers LIST and LSUB (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258,
// LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154, CHILDREN RFC 3348).
func (s *session) List(w *imapserver.ListWriter, ref string, patterns []string, options *imap.ListOptions) error {
	s.beginCommand()
	if len(patterns) == 0 {
		// RFC 9051 §6.3.9: LIST "" "" returns the hierarchy delimiter
		// and the root name.
		return w.WriteList(&imap.ListData{Attrs: []imap.MailboxAttr{imap.MailboxAttrNoSelect}, Delim: delim})
	}
	if err := s.checkAccount(); err != nil {
		return err
	}
	mbs, err := s.srv.store.Mailboxes(s.ctx, s.user.ID)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	tree := newMailboxTree(mbs)
	for _, name := range tree.names {
		if !matchAny(name, ref, patterns) {
			continue
		}
		data, mb := tree.listData(name, options)
		if data == nil {
			continue
		}
		if options.ReturnStatus != nil && mb != nil {
			// RFC 5819 §2: STATUS for selectable mailboxes only.
			if data.Status, err = s.statusData(*mb, options.ReturnStatus); err != nil {
				return err
			}
		}
		if err := w.WriteList(data); err != nil {
			return err
		}
	}
	return nil
}

// matchAny reports whether name matches ref and one of patterns. INBOX
// matches case-insensitively (RFC 9051 §5.1).
func matchAny(name, ref string, patterns []string) bool {
	inbox := name == "INBOX" || strings.HasPrefix(name, "INBOX"+mailstore.Separator)
	for _, p := range patterns {
		if imapserver.MatchList(name, delim, ref, p) {
			return true
		}
		if inbox && imapserver.MatchList(name, delim, canonInbox(ref), canonInbox(p)) {
			return true
		}
	}
	return false
}

// canonInbox upper-cases a leading "inbox" that is a whole hierarchy level.
func canonInbox(s string) string {
	if len(s) >= 5 && strings.EqualFold(s[:5], "INBOX") &&
		(len(s) == 5 || strings.ContainsRune(mailstore.Separator+"*%", rune(s[5]))) {
		return "INBOX" + s[5:]
	}
	return s
}

// mailboxTree is a user's mailboxes with their implied parents.
type mailboxTree struct {
	names    []string // existing and implied, sorted
	mbs      map[string]*mailstore.Mailbox
	children map[string]bool // has children
	subDesc  map[string]bool // has a subscribed descendant
}

func newMailboxTree(list []mailstore.Mailbox) *mailboxTree {
	t := &mailboxTree{
		mbs:      make(map[string]*mailstore.Mailbox, len(list)),
		children: make(map[string]bool),
		subDesc:  make(map[string]bool),
	}
	for i := range list {
		t.mbs[list[i].Name] = &list[i]
	}
	all := make(map[string]bool, len(list))
	for i := range list {
		name := list[i].Name
		all[name] = true
		// Every ancestor is listed, as an implied parent if it does not
		// exist (RFC 9051 §6.3.9: returned with \Noselect).
		for j := strings.LastIndex(name, mailstore.Separator); j >= 0; j = strings.LastIndex(name, mailstore.Separator) {
			name = name[:j]
			all[name] = true
			t.children[name] = true
			if list[i].Subscribed {
				t.subDesc[name] = true
			}
		}
	}
	for name := range all {
		t.names = append(t.names, name)
	}
	sort.Strings(t.names)
	return t
}

// listData builds the LIST reply for name, or nil if options select it
// out; mb is nil for an implied parent.
func (t *mailboxTree) listData(name string, options *imap.ListOptions) (*imap.ListData, *mailstore.Mailbox) {
	mb := t.mbs[name]
	data := &imap.ListData{Mailbox: name, Delim: delim}
	subscribed := mb != nil && mb.Subscribed
	if options.SelectSubscribed && !subscribed {
		// RFC 5258 §3.5: with RECURSIVEMATCH, a parent of a subscribed
		// mailbox is listed with CHILDINFO.
		if !options.SelectRecursiveMatch || !t.subDesc[name] {
			return nil, nil
		}
		data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
	}
	if options.SelectSpecialUse && (mb == nil || mb.SpecialUse == "") {
		return nil, nil
	}
	if mb == nil {
		data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
	}
	if t.children[name] {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
	} else {
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
	}
	if subscribed && (options.ReturnSubscribed || options.SelectSubscribed) {
		data.Attrs = append(data.Attrs, imap.MailboxAttrSubscribed)
	}
	if mb != nil {
		// RFC 9051 §7.3.1 lists the RFC 6154 attributes among LIST's own;
		// clients look for them without RETURN (SPECIAL-USE).
		data.Attrs = append(data.Attrs, specialUseAttrs(*mb)...)
	}
	if subscribed && options.SelectRecursiveMatch && t.subDesc[name] {
		data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
	}
	return data, mb
}
