package imapd

import (
	"sort"
	"strings"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// listCommand is a LIST or LSUB command as List takes it.
type listCommand struct {
	ref      string
	patterns []string
	lsub     bool
	opts     imap.ListOptions
	status   []wire.StatusItem // RETURN (STATUS (…)), RFC 5819
}

// listOptions converts a parsed LIST.
func listOptions(a *wire.List) listCommand {
	return listCommand{
		ref:      a.Reference,
		patterns: a.Patterns,
		opts: imap.ListOptions{
			SelectSubscribed:     a.SelectSubscribed,
			SelectRemote:         a.SelectRemote,
			SelectRecursiveMatch: a.SelectRecursiveMatch,
			SelectSpecialUse:     a.SelectSpecialUse,
			ReturnSubscribed:     a.ReturnSubscribed,
			ReturnChildren:       a.ReturnChildren,
			ReturnSpecialUse:     a.ReturnSpecialUse,
		},
		status: a.ReturnStatus,
	}
}

// List answers LIST and LSUB (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258,
// LIST-STATUS RFC 5819, SPECIAL-USE RFC 6154, CHILDREN RFC 3348; LSUB
// RFC 3501 §6.3.9).
func (s *session) List(lc listCommand) error {
	options := &lc.opts
	if len(lc.patterns) == 1 && lc.patterns[0] == "" && !lc.lsub {
		// RFC 9051 §6.3.9: LIST "" "" returns the hierarchy delimiter
		// and the root name.
		s.w.Raw(`* LIST (\Noselect) "/" ""`).CRLF()
		return nil
	}
	if err := s.checkAccount(); err != nil {
		return err
	}
	// RFC 5819 §2: RETURN (STATUS (…)) takes STATUS's items.
	if err := s.checkStatusItems(lc.status); err != nil {
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
	for _, name := range tree.names {
		if !matchAny(name, lc.ref, lc.patterns) {
			continue
		}
		data, mb := tree.listData(name, options, lc.lsub, lc.lsub && tree.lsubParent(name, lc.ref, lc.patterns))
		if data == nil {
			continue
		}
		s.writeList(data, lc.lsub)
		if lc.status != nil && mb != nil {
			// RFC 5819 §2: STATUS for selectable mailboxes only, after
			// their LIST.
			if err := s.writeStatus(*mb, lc.status); err != nil {
				return err
			}
		}
	}
	return s.w.Err()
}

// listData is one LIST or LSUB response (RFC 9051 §7.3.1).
type listData struct {
	name      string
	attrs     []string
	childInfo bool // CHILDINFO ("SUBSCRIBED"), RFC 5258 §3.5
}

// writeList writes "* LIST (attrs) "/" name [extended items]".
func (s *session) writeList(d *listData, lsub bool) {
	w := s.w
	if lsub {
		w.Raw("* LSUB (")
	} else {
		w.Raw("* LIST (")
	}
	w.Raw(strings.Join(d.attrs, " ")).Raw(`) "/" `).Mailbox(d.name)
	if d.childInfo {
		w.Raw(` ("CHILDINFO" ("SUBSCRIBED"))`)
	}
	w.CRLF()
}

// matchAny reports whether name matches ref and one of patterns. INBOX
// matches case-insensitively (RFC 9051 §5.1).
func matchAny(name, ref string, patterns []string) bool {
	inbox := name == "INBOX" || strings.HasPrefix(name, "INBOX"+mailstore.Separator)
	for _, p := range patterns {
		if matchList(name, ref, p) {
			return true
		}
		if inbox && matchList(name, canonInbox(ref), canonInbox(p)) {
			return true
		}
	}
	return false
}

// matchList reports whether name matches reference and pattern (RFC 9051
// §6.3.9): "*" matches anything, "%" anything but the separator. A
// pattern that starts with the separator ignores the reference.
func matchList(name, ref, pattern string) bool {
	if strings.HasPrefix(pattern, mailstore.Separator) {
		ref, pattern = "", pattern[1:]
	}
	if ref != "" {
		if !strings.HasSuffix(ref, mailstore.Separator) {
			ref += mailstore.Separator
		}
		var ok bool
		if name, ok = strings.CutPrefix(name, ref); !ok {
			return false
		}
	}
	return matchWild(name, pattern)
}

// matchWild matches name against a pattern with "*" and "%".
func matchWild(name, pattern string) bool {
	i := strings.IndexAny(pattern, "*%")
	if i < 0 {
		return name == pattern
	}
	chunk, wild, rest := pattern[:i], pattern[i], pattern[i+1:]
	name, ok := strings.CutPrefix(name, chunk)
	if !ok {
		return false
	}
	for j := 0; j <= len(name); j++ {
		if matchWild(name[j:], rest) {
			return true
		}
		if j < len(name) && wild == '%' && name[j] == mailstore.Separator[0] {
			return false
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
func (t *mailboxTree) listData(name string, options *imap.ListOptions, lsub, lsubParent bool) (*listData, *mailstore.Mailbox) {
	mb := t.mbs[name]
	data := &listData{name: name}
	subscribed := t.subs[name]
	if options.SelectSubscribed && !subscribed {
		switch {
		case lsubParent:
			data.attrs = []string{`\Noselect`}
			return data, nil
		case options.SelectRecursiveMatch && t.subDesc[name]:
			// RFC 5258 §3.5: with RECURSIVEMATCH, a parent of a
			// subscribed name is listed with CHILDINFO.
			data.childInfo = true
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
		data.attrs = append(data.attrs, `\Noselect`)
	case mb == nil && lsub:
		// RFC 3501 has no \NonExistent; such a name cannot be selected.
		data.attrs = append(data.attrs, `\Noselect`)
	case mb == nil:
		// RFC 9051 §6.3.9 (LIST (SUBSCRIBED) example: "Fruit/Peach" is
		// "\Subscribed \NonExistent"), §7.3.1: the name refers to no
		// mailbox; \NonExistent implies \Noselect.
		data.attrs = append(data.attrs, `\NonExistent`)
	}
	switch {
	case t.children[name]:
		data.attrs = append(data.attrs, `\HasChildren`)
	case mb != nil:
		data.attrs = append(data.attrs, `\HasNoChildren`)
		// A name with no mailbox and nothing below it gets neither, as
		// in RFC 9051 §6.3.9's example.
	}
	if subscribed && (options.ReturnSubscribed || options.SelectSubscribed) {
		data.attrs = append(data.attrs, `\Subscribed`)
	}
	if mb != nil {
		// RFC 9051 §7.3.1 lists the RFC 6154 attributes among LIST's own;
		// clients look for them without RETURN (SPECIAL-USE).
		data.attrs = append(data.attrs, specialUseAttrs(*mb)...)
	}
	if subscribed && options.SelectRecursiveMatch && t.subDesc[name] {
		data.childInfo = true
	}
	return data, mb
}
