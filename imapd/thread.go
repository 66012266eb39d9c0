package imapd

import (
	"slices"
	"strings"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// Thread answers THREAD and UID THREAD (RFC 5256 §4) with the
// ORDEREDSUBJECT and REFERENCES algorithms (§2.2), over the messages the
// search-criteria select, from the envelopes stored at delivery.
func (s *session) Thread(byUID bool, a *wire.Thread) error {
	sel := s.sel
	if err := s.checkSelected(sel); err != nil {
		return err
	}
	fields := mailstore.SortFields{Sent: true, Subject: true}
	switch a.Algorithm {
	case "ORDEREDSUBJECT":
	case "REFERENCES":
		fields.Threading = true
	default:
		// RFC 5256 §4: BAD for arguments the server does not know.
		return &imap.Error{Type: imap.StatusResponseTypeBad, Text: "Unknown thread algorithm " + a.Algorithm}
	}
	if err := checkSortCharset(a.Charset); err != nil {
		return err
	}
	hits, _, err := s.searchHits(&a.Key)
	if err != nil {
		return err
	}
	msgs, err := s.sortInfo(hits, fields)
	if err != nil {
		return err
	}
	var roots []*threadNode
	if a.Algorithm == "REFERENCES" {
		roots = threadReferences(msgs)
	} else {
		roots = threadOrderedSubject(msgs)
	}
	num := func(r msgRef) uint64 {
		if byUID {
			return uint64(r.uid)
		}
		return uint64(r.seq)
	}
	w := s.w
	w.Raw("* THREAD") // RFC 5256 §5 thread-data
	if len(roots) > 0 {
		w.SP()
	}
	for _, r := range roots {
		w.Raw("(")
		writeThreadMembers(w, r, num)
		w.Raw(")")
	}
	w.CRLF()
	return w.Err()
}

// threadNode is a message in a thread, or a dummy (msg nil) standing for
// a message that is referred to but not among those threaded.
type threadNode struct {
	msg      *sortMsg
	parent   *threadNode
	children []*threadNode
}

// writeThreadMembers writes a node and what hangs below it, inside its
// thread-list's parentheses (RFC 5256 §5): a message with one child goes
// on with the child, one with several lists each in parentheses; a
// dummy has no number of its own.
//
//	thread-members = nz-number *(SP nz-number) [SP thread-nested]
//	thread-nested  = 2*thread-list
func writeThreadMembers(w *wire.Writer, n *threadNode, num func(msgRef) uint64) {
	sep := false
	for {
		if n.msg != nil {
			if sep {
				w.SP()
			}
			w.Number(num(n.msg.ref))
			sep = true
		}
		if len(n.children) != 1 {
			break
		}
		n = n.children[0]
	}
	if len(n.children) == 0 {
		return
	}
	if sep {
		w.SP()
	}
	for _, c := range n.children {
		w.Raw("(")
		writeThreadMembers(w, c, num)
		w.Raw(")")
	}
}

// threadOrderedSubject is ORDEREDSUBJECT (RFC 5256 §2.2): messages sorted
// by base subject, then sent date; each run with one base subject is a
// thread whose first message is the parent of the others; threads in
// the order of their first message's sent date.
func threadOrderedSubject(msgs []sortMsg) []*threadNode {
	slices.SortFunc(msgs, func(a, b sortMsg) int {
		if d := strings.Compare(a.base, b.base); d != 0 {
			return d
		}
		return compareSent(&a, &b)
	})
	var roots []*threadNode
	for i := 0; i < len(msgs); {
		root := &threadNode{msg: &msgs[i]}
		j := i + 1
		for ; j < len(msgs) && msgs[j].base == msgs[i].base; j++ {
			root.children = append(root.children, &threadNode{msg: &msgs[j], parent: root})
		}
		roots = append(roots, root)
		i = j
	}
	slices.SortFunc(roots, func(a, b *threadNode) int { return compareSent(a.msg, b.msg) })
	return roots
}

// compareSent orders by sent date, then sequence number (RFC 5256 §2.2).
func compareSent(a, b *sortMsg) int {
	if d := a.sent.Compare(b.sent); d != 0 {
		return d
	}
	return cmpInt(int64(a.ref.seq), int64(b.ref.seq))
}

// threadReferences is REFERENCES (RFC 5256 §2.2), msgs in sequence
// order. The steps are numbered as the RFC numbers them.
func threadReferences(msgs []sortMsg) []*threadNode {
	ids := make(map[string]*threadNode, len(msgs))
	all := make([]*threadNode, 0, len(msgs)) // every container, in creation order
	// The containers come from shared chunks, not one allocation each:
	// a THREAD over 100,000 messages makes at least as many.
	var chunk []threadNode
	newNode := func() *threadNode {
		if len(chunk) == cap(chunk) {
			chunk = make([]threadNode, 0, min(max(len(msgs), 16), 4096))
		}
		chunk = append(chunk, threadNode{})
		c := &chunk[len(chunk)-1]
		all = append(all, c)
		return c
	}
	container := func(id string) *threadNode {
		c := ids[id]
		if c == nil {
			c = newNode()
			ids[id] = c
		}
		return c
	}
	// (1) Link each message to its references.
	for i := range msgs {
		m := &msgs[i]
		var node *threadNode
		if id := m.info.MessageID; id != "" {
			if c := container(id); c.msg == nil {
				node = c
			}
		}
		if node == nil {
			// No Message-ID, or a duplicate: a unique one of its own.
			node = newNode()
		}
		node.msg = m
		// (1A) Each reference is the parent of the next, unless it has
		// a parent already or the link would make a loop. Without a
		// valid References, the first In-Reply-To counts.
		refs := m.info.References
		if len(refs) == 0 && len(m.info.InReplyTo) > 0 {
			refs = m.info.InReplyTo[:1]
		}
		var prev *threadNode
		for _, id := range refs {
			c := container(id)
			if prev != nil && c.parent == nil && !isAncestor(c, prev) {
				link(prev, c)
			}
			prev = c
		}
		// (1B) The last reference is the message's parent: it replaces
		// a parent found before (from a truncated References field).
		if node.parent != nil {
			unlink(node)
		}
		if prev != nil && !isAncestor(node, prev) {
			link(prev, node)
		}
	}
	// (2) The root set: containers without a parent.
	var roots []*threadNode
	for _, c := range all {
		if c.parent == nil {
			roots = append(roots, c)
		}
	}
	// (3) The id table is no longer needed. (4) Prune dummies.
	roots = pruneDummies(roots, true)
	// (5) Gather roots with the same base subject.
	roots = groupBySubject(roots)
	// (6) Sort siblings, then the roots, by sent date.
	sortThreads(roots)
	return roots
}

// isAncestor reports whether a is p or one of p's ancestors.
func isAncestor(a, p *threadNode) bool {
	for ; p != nil; p = p.parent {
		if p == a {
			return true
		}
	}
	return false
}

func link(parent, child *threadNode) {
	child.parent = parent
	parent.children = append(parent.children, child)
}

func unlink(child *threadNode) {
	p := child.parent
	if i := slices.Index(p.children, child); i >= 0 {
		p.children = slices.Delete(p.children, i, i+1)
	}
	child.parent = nil
}

// pruneDummies is step 4: a dummy without children goes; a dummy with
// children goes too, its children taking its place, except that
// children are not promoted to the root unless there is only one.
func pruneDummies(nodes []*threadNode, atRoot bool) []*threadNode {
	out := nodes[:0:0]
	for _, n := range nodes {
		n.children = pruneDummies(n.children, false)
		if n.msg == nil {
			if len(n.children) == 0 {
				continue
			}
			if !atRoot || len(n.children) == 1 {
				for _, c := range n.children {
					c.parent = n.parent
				}
				out = append(out, n.children...)
				continue
			}
		}
		out = append(out, n)
	}
	return out
}

// rootSubject is the base subject a root is grouped by: its message's,
// or its first child's for a dummy.
func rootSubject(n *threadNode) *sortMsg {
	for n.msg == nil {
		if len(n.children) == 0 {
			return nil
		}
		n = n.children[0]
	}
	return n.msg
}

// groupBySubject is step 5: roots whose base subjects are equal (and not
// empty) are joined under one root.
func groupBySubject(roots []*threadNode) []*threadNode {
	// (5B, 5C) The table: per subject, a dummy over a message, a
	// message without a reply marker over one with.
	table := make(map[string]*threadNode)
	for _, r := range roots {
		m := rootSubject(r)
		if m == nil || m.base == "" {
			continue
		}
		t := table[m.base]
		switch {
		case t == nil:
			table[m.base] = r
		case t.msg != nil && r.msg == nil:
			table[m.base] = r
		case t.msg != nil && t.msg.reply && r.msg != nil && !r.msg.reply:
			table[m.base] = r
		}
	}
	// (5E) Merge each other root into the table's.
	out := slices.Clone(roots)
	pos := make(map[*threadNode]int, len(roots)) // a root's place in out
	for i, r := range roots {
		pos[r] = i
	}
	for _, r := range roots {
		m := rootSubject(r)
		if m == nil || m.base == "" {
			continue
		}
		t := table[m.base]
		if t == r {
			continue
		}
		switch {
		case t.msg == nil && r.msg == nil:
			// Both dummies: r's children join t's.
			for _, c := range r.children {
				c.parent = t
			}
			t.children = append(t.children, r.children...)
		case t.msg == nil:
			link(t, r)
		case !t.msg.reply && r.msg != nil && r.msg.reply:
			link(t, r)
		default:
			// A new dummy over both, in t's place.
			d := &threadNode{}
			i := pos[t]
			link(d, t)
			link(d, r)
			table[m.base], out[i], pos[d] = d, d, i
		}
		out[pos[r]] = nil
	}
	return slices.DeleteFunc(out, func(n *threadNode) bool { return n == nil })
}

// sortThreads is step 6: each set of siblings, then the roots, in order
// of sent date (a dummy's being its first child's after sorting), then
// sequence number.
func sortThreads(nodes []*threadNode) {
	for _, n := range nodes {
		sortThreads(n.children)
	}
	slices.SortFunc(nodes, func(a, b *threadNode) int {
		return compareSent(firstMsg(a), firstMsg(b))
	})
}

// firstMsg is the message that dates a node: its own, or for a dummy
// its first child's.
func firstMsg(n *threadNode) *sortMsg {
	for n.msg == nil {
		n = n.children[0]
	}
	return n.msg
}
