package imapd

import (
	"reflect"
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"pushmail/mailstore"
)

// List answers LIST and LSUB (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258,
// LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154, CHILDREN RFC 3348; LSUB
// RFC 3501 §6.3.9).
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
	var subs []string
	if options.SelectSubscribed || options.ReturnSubscribed {
		if subs, err = s.srv.store.Subscriptions(s.ctx, s.user.ID); err != nil {
			return s.reply(err, roleMailbox)
		}
	}
	tree := newMailboxTree(mbs, subs, options.SelectSubscribed)
	lsub := isLSub(w)
	for _, name := range tree.names {
		if !matchAny(name, ref, patterns) {
			continue
		}
		data, mb := tree.listData(name, options, lsub, lsub && tree.lsubParent(name, ref, patterns))
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

// isLSub reports whether w answers LSUB rather than LIST. imapserver
// calls List for both, LSUB with the very options of LIST (SUBSCRIBED),
// and keeps which in ListWriter's unexported lsub field; RFC 3501 §6.3.9
// gives LSUB a rule of its own (the \Noselect parent that a "%" stops
// at), so the session has to know. Read by reflection until imapd's own
// wire layer (issue 14) passes the command; a go-imap without the field
// makes LSUB answer as LIST (SUBSCRIBED), which TestLSubNoselectParent
// catches.
func isLSub(w *imapserver.ListWriter) bool {
	if w == nil {
		return false
	}
	f := reflect.ValueOf(w).Elem().FieldByName("lsub")
	return f.IsValid() && f.Kind() == reflect.Bool && f.Bool()
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

// mailboxTree is a user's mailboxes with their implied parents, and their
// subscribed names, which need not name a mailbox (RFC 9051 §6.3.7).
type mailboxTree struct {
	names    []string // the names List considers, sorted
	mbs      map[string]*mailstore.Mailbox
	children map[string]bool // has an existing mailbox below it
	subs     map[string]bool // subscribed
	subDesc  map[string]bool // has a subscribed name below it
}

// newMailboxTree builds the tree of list and subs. With selectSubs (LIST
// (SUBSCRIBED), LSUB), the subscribed names and their parents are listed
// too, mailbox or not: RFC 9051 §6.3.9 lists a subscribed name whose
// mailbox is gone with \NonExistent, and RFC 3501 §6.3.9 and RFC 5258
// §3.5 list a parent of a subscribed name in places.
func newMailboxTree(list []mailstore.Mailbox, subs []string, selectSubs bool) *mailboxTree {
	t := &mailboxTree{
		mbs:      make(map[string]*mailstore.Mailbox, len(list)),
		children: make(map[string]bool),
		subs:     make(map[string]bool, len(subs)),
		subDesc:  make(map[string]bool),
	}
	all := make(map[string]bool, len(list))
	for i := range list {
		name := list[i].Name
		t.mbs[name] = &list[i]
		all[name] = true
		// Every ancestor is listed, as an implied parent if it does not
		// exist (RFC 9051 §6.3.9: returned with \Noselect).
		for j := strings.LastIndex(name, mailstore.Separator); j >= 0; j = strings.LastIndex(name, mailstore.Separator) {
			name = name[:j]
			all[name] = true
			t.children[name] = true
		}
	}
	for _, name := range subs {
		t.subs[name] = true
		if selectSubs {
			all[name] = true
		}
		for j := strings.LastIndex(name, mailstore.Separator); j >= 0; j = strings.LastIndex(name, mailstore.Separator) {
			name = name[:j]
			t.subDesc[name] = true
			if selectSubs {
				all[name] = true
			}
		}
	}
	for name := range all {
		t.names = append(t.names, name)
	}
	sort.Strings(t.names)
	return t
}

// lsubParent reports whether LSUB lists name, not itself subscribed, as
// the \Noselect stand-in for a subscribed name below it that the patterns
// do not reach. RFC 3501 §6.3.9: "if "foo/bar" [...] is subscribed but
// "foo" is not. A "%" wildcard to LSUB must return foo, not foo/bar, in
// the LSUB response, and it MUST be flagged with the \Noselect
// attribute." With "*", foo/bar itself matches, and foo is not listed.
func (t *mailboxTree) lsubParent(name, ref string, patterns []string) bool {
	if t.subs[name] || !t.subDesc[name] {
		return false
	}
	prefix := name + mailstore.Separator
	for sub := range t.subs {
		if strings.HasPrefix(sub, prefix) && !matchAny(sub, ref, patterns) {
			return true
		}
	}
	return false
}

// listData builds the LIST or LSUB reply for name, or nil if options
// select it out; mb is nil for a name with no mailbox. lsubParent says
// LSUB lists name as a parent (see lsubParent).
func (t *mailboxTree) listData(name string, options *imap.ListOptions, lsub, lsubParent bool) (*imap.ListData, *mailstore.Mailbox) {
	mb := t.mbs[name]
	data := &imap.ListData{Mailbox: name, Delim: delim}
	subscribed := t.subs[name]
	if options.SelectSubscribed && !subscribed {
		switch {
		case lsubParent:
			data.Attrs = []imap.MailboxAttr{imap.MailboxAttrNoSelect}
			return data, nil
		case options.SelectRecursiveMatch && t.subDesc[name]:
			// RFC 5258 §3.5: with RECURSIVEMATCH, a parent of a
			// subscribed name is listed with CHILDINFO.
			data.ChildInfo = &imap.ListDataChildInfo{Subscribed: true}
		default:
			return nil, nil
		}
	}
	if options.SelectSpecialUse && (mb == nil || mb.SpecialUse == "") {
		return nil, nil
	}
	switch {
	case mb == nil && t.children[name] && !(subscribed && options.SelectSubscribed && !lsub):
		// An implied parent of existing mailboxes.
		data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
	case mb == nil && lsub:
		// RFC 3501 has no \NonExistent; such a name cannot be selected.
		data.Attrs = append(data.Attrs, imap.MailboxAttrNoSelect)
	case mb == nil:
		// RFC 9051 §6.3.9 (LIST (SUBSCRIBED) example: "Fruit/Peach" is
		// "\Subscribed \NonExistent"), §7.3.1: the name refers to no
		// mailbox; \NonExistent implies \Noselect.
		data.Attrs = append(data.Attrs, imap.MailboxAttrNonExistent)
	}
	switch {
	case t.children[name]:
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasChildren)
	case mb != nil:
		data.Attrs = append(data.Attrs, imap.MailboxAttrHasNoChildren)
		// A name with no mailbox and nothing below it gets neither, as
		// in RFC 9051 §6.3.9's example.
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
