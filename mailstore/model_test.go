package mailstore

import (
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"pushmail/notify"
)

// An in-memory reference model of the store, for the model tests: what
// every user, mailbox and message must look like after a sequence of
// operations, and which events each operation must publish. It is kept
// plain on purpose (maps and slices, no SQL, none of the store's helpers)
// so that it is obviously right; where the store chooses a value the model
// cannot know (ids, UIDVALIDITY, modseqs), the model observes it once and
// from then on checks the store's promises about it: ids and UIDVALIDITY
// never change, modseqs only grow. The change log (changelog.go) is
// modelled whole: each expunge leaves tombstones at its modseq, the
// oldest are pruned past modelMaxVanished, and the horizon follows, so
// that the model predicts every ChangesSince answer.

type modelFlags struct {
	system   map[string]bool // canonical system flag names
	keywords []string        // sorted; the spelling first stored
}

var modelSystemFlags = []string{FlagSeen, FlagAnswered, FlagFlagged, FlagDeleted, FlagDraft}

// errAny stands for "some error": the store's error for an op on a deleted
// user is not a sentinel.
var errAny = errors.New("any error")

// errNoneOrNoMailbox: StoreFlags and Expunge on a mailbox that does not
// exist may report ErrNoSuchMailbox or nothing, but must change nothing.
var errNoneOrNoMailbox = errors.New("nil or ErrNoSuchMailbox")

func hasFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}

// modelParseFlags parses flags as RFC 9051 §2.3.2 says: system flags in any
// case, keywords as atoms, compared case-insensitively.
func modelParseFlags(flags []string) (modelFlags, error) {
	f := modelFlags{system: map[string]bool{}}
	for _, s := range flags {
		i := slices.IndexFunc(modelSystemFlags, func(sys string) bool { return strings.EqualFold(sys, s) })
		if i >= 0 {
			f.system[modelSystemFlags[i]] = true
			continue
		}
		if strings.HasPrefix(s, `\`) || strings.ContainsAny(s, `(){%*"\] `) {
			return modelFlags{}, ErrInvalidFlag
		}
		if !hasFold(f.keywords, s) {
			f.keywords = append(f.keywords, s)
		}
	}
	sort.Strings(f.keywords)
	return f, nil
}

func (f modelFlags) apply(op FlagOp, arg modelFlags) modelFlags {
	out := modelFlags{system: map[string]bool{}}
	switch op {
	case FlagsSet:
		for k := range arg.system {
			out.system[k] = true
		}
		out.keywords = slices.Clone(arg.keywords)
	case FlagsAdd:
		for k := range f.system {
			out.system[k] = true
		}
		for k := range arg.system {
			out.system[k] = true
		}
		out.keywords = slices.Clone(f.keywords)
		for _, k := range arg.keywords {
			if !hasFold(out.keywords, k) {
				out.keywords = append(out.keywords, k)
			}
		}
		sort.Strings(out.keywords)
	case FlagsRemove:
		for k := range f.system {
			if !arg.system[k] {
				out.system[k] = true
			}
		}
		for _, k := range f.keywords {
			if !hasFold(arg.keywords, k) {
				out.keywords = append(out.keywords, k)
			}
		}
	}
	return out
}

func (f modelFlags) equal(g modelFlags) bool {
	return slices.Equal(f.list(), g.list())
}

// list returns the flags sorted, system flags first.
func (f modelFlags) list() []string {
	var l []string
	for _, s := range modelSystemFlags {
		if f.system[s] {
			l = append(l, s)
		}
	}
	return append(l, f.keywords...)
}

type modelMessage struct {
	uid    UID
	flags  modelFlags
	modseq uint64 // 0: new or changed by this step, not yet observed
	body   []byte
	date   time.Time // zero: not checked (Deliver's "now")
}

// modelTomb is an expunged message the change log must report.
type modelTomb struct {
	uid    UID
	modseq uint64 // the expunge's; 0: expunged by this step, not yet observed
}

// modelMaxVanished is the model stores' Options.MaxVanished: small, so
// that sequences prune tombstones and move horizons.
const modelMaxVanished = 6

type modelMailbox struct {
	id          MailboxID // 0 until observed
	name        string
	specialUse  string
	uidValidity uint32 // 0 until observed
	uidNext     UID
	modseq      uint64 // the highest modseq last observed; 0 until observed
	changed     bool   // messages added, removed or reflagged by this step
	touched     bool   // this step's op named it: list its messages
	msgs        []*modelMessage
	tombs       []modelTomb // oldest first
	horizon     uint64      // the lowest modseq "vanished since" answers for
}

func (mb *modelMailbox) unseen() uint32 {
	n := uint32(0)
	for _, m := range mb.msgs {
		if !m.flags.system[FlagSeen] {
			n++
		}
	}
	return n
}

func (mb *modelMailbox) size() int64 {
	n := int64(0)
	for _, m := range mb.msgs {
		n += int64(len(m.body))
	}
	return n
}

func (mb *modelMailbox) uids() []UID {
	var l []UID
	for _, m := range mb.msgs {
		l = append(l, m.uid)
	}
	return l
}

// add stores a new message under the next UID.
func (mb *modelMailbox) add(flags modelFlags, body []byte, date time.Time) UID {
	uid := mb.uidNext
	mb.uidNext++
	mb.msgs = append(mb.msgs, &modelMessage{uid: uid, flags: flags, body: body, date: date})
	mb.changed = true
	return uid
}

// remove expunges the messages of uids, leaving their tombstones.
func (mb *modelMailbox) remove(uids []UID) {
	mb.msgs = slices.DeleteFunc(mb.msgs, func(m *modelMessage) bool { return slices.Contains(uids, m.uid) })
	for _, u := range uids {
		mb.tombs = append(mb.tombs, modelTomb{uid: u})
	}
	if len(uids) > 0 {
		mb.changed = true
	}
}

// settle gives the tombstones of an expunge not yet observed its modseq,
// then prunes as Options.MaxVanished says: past maxVanished, the oldest
// go, whole modseqs at a time, until at most three quarters of it are
// left, and the horizon rises to the newest modseq dropped.
func (mb *modelMailbox) settle(modseq uint64, maxVanished int) {
	n := 0
	for i := range mb.tombs {
		if mb.tombs[i].modseq == 0 {
			mb.tombs[i].modseq = modseq
			n++
		}
	}
	if n == 0 || len(mb.tombs) <= maxVanished {
		return
	}
	keep := maxVanished - maxVanished/4
	cutoff := mb.tombs[len(mb.tombs)-keep-1].modseq
	mb.tombs = slices.DeleteFunc(mb.tombs, func(t modelTomb) bool { return t.modseq <= cutoff })
	mb.horizon = max(mb.horizon, cutoff)
}

// changesSince is what ChangesSince must answer, from messages and
// tombstones whose modseqs are all observed.
func (mb *modelMailbox) changesSince(set UIDSet, since, highest uint64) Changes {
	c := Changes{HighestModSeq: highest, Horizon: mb.horizon, VanishedKnown: since >= mb.horizon}
	for _, m := range mb.msgs {
		if m.modseq > since && modelContains(set, m.uid) {
			c.Changed = append(c.Changed, FlagUpdate{UID: m.uid, Flags: m.flags.list(), ModSeq: m.modseq})
		}
	}
	if c.VanishedKnown {
		for _, t := range mb.tombs {
			if t.modseq > since && modelContains(set, t.uid) {
				c.Vanished = append(c.Vanished, t.uid)
			}
		}
		slices.Sort(c.Vanished)
	}
	return c
}

type modelUser struct {
	id        UserID
	mailboxes map[string]*modelMailbox
	// subs is the subscribed names (RFC 9051 §6.3.7): names, not
	// mailboxes; DELETE leaves them, RENAME moves them with the mailboxes.
	subs map[string]bool
}

// model is the expected state of one sequence's users.
type model struct {
	addrs [modelUsers]string
	users [modelUsers]*modelUser // nil: no such user
	// What deleted users and mailboxes left: ops aimed at them use their
	// old ids, as a session that outlived them would.
	maxVanished  int // the store's Options.MaxVanished
	staleUser    [modelUsers]UserID
	staleMailbox map[string]MailboxID // slot/name
	validity     map[string]uint32    // slot/name: the last UIDVALIDITY seen
	seenMailbox  map[MailboxID]bool   // every mailbox id ever observed
	seenUser     map[UserID]bool
}

// bogus ids that no store hands out in a test.
const (
	bogusUser    = UserID(1 << 40)
	bogusMailbox = MailboxID(1 << 40)
)

func newModel(prefix string) *model {
	m := &model{maxVanished: modelMaxVanished, staleMailbox: map[string]MailboxID{}, validity: map[string]uint32{},
		seenMailbox: map[MailboxID]bool{}, seenUser: map[UserID]bool{}}
	for i := range m.addrs {
		m.addrs[i] = fmt.Sprintf("%s.u%d@model.test", prefix, i)
	}
	return m
}

func slotKey(slot int, name string) string { return fmt.Sprintf("%d/%s", slot, name) }

// modelCanon is the model's view of a valid mailbox name: no empty
// hierarchy level, INBOX in any case is INBOX (RFC 9051 §5.1).
func modelCanon(name string) (string, bool) {
	parts := strings.Split(name, "/")
	for _, p := range parts {
		if p == "" {
			return "", false
		}
	}
	if strings.EqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX"
	}
	return strings.Join(parts, "/"), true
}

// mailbox returns slot's live mailbox called name, or nil.
func (m *model) mailbox(slot int, name string) *modelMailbox {
	u := m.users[slot]
	if u == nil {
		return nil
	}
	if c, ok := modelCanon(name); ok {
		return u.mailboxes[c]
	}
	return nil
}

// mailboxID returns the id an op on slot's name passes: the live
// mailbox's, else a deleted one's, else one that never existed.
func (m *model) mailboxID(slot int, name string) MailboxID {
	if mb := m.mailbox(slot, name); mb != nil {
		return mb.id
	}
	if c, ok := modelCanon(name); ok {
		if id, ok := m.staleMailbox[slotKey(slot, c)]; ok {
			return id
		}
	}
	return bogusMailbox
}

func (m *model) userID(slot int) UserID {
	if u := m.users[slot]; u != nil {
		return u.id
	}
	if m.staleUser[slot] != 0 {
		return m.staleUser[slot]
	}
	return bogusUser
}

// call is what an op passes to the store, worked out from the model's
// state before the op.
type call struct {
	user         UserID
	mailbox, dst MailboxID
	rcpts        []Recipient
	resolve      []*Recipient // per op.rcpts: what Resolve must return; nil: ErrNoSuchUser
	raw          []byte
	date         time.Time
	// unchangedSince is StoreFlagsUnchangedSince's modseq.
	unchangedSince uint64
}

// outcome is an op's result: the model's prediction or the store's answer.
type outcome struct {
	err      error
	uids     []UID        // Deliver
	appended AppendResult // Append
	updates  []FlagUpdate // StoreFlags; a ModSeq of 0 stands for the mailbox's new highest modseq
	modified []UID        // StoreFlagsUnchangedSince: the UIDs that failed the test
	expunged []UID        // Expunge
	copied   CopyResult   // Copy, Move
	user     User         // AddUser
	created  Mailbox      // CreateMailbox
}

// expectation is what the model predicts for one op.
type expectation struct {
	call   call
	want   outcome
	events map[MailboxID][]notify.Event // on mailboxes that existed before the op
}

func (e *expectation) event(mb *modelMailbox, ev notify.Event) {
	if mb.id == 0 {
		return // created by this op: nobody subscribed yet
	}
	ev.Mailbox = int64(mb.id)
	e.events[mb.id] = append(e.events[mb.id], ev)
}

func messageBody(o op) []byte {
	return fmt.Appendf(nil, "From: m@example.org\r\nTo: u@model.test\r\nSubject: op %d\r\nMessage-ID: <%d@model.test>\r\n\r\nBody %d.\r\n", o.origin, o.origin, o.origin)
}

// apply works out op's call and result from the model's state, and
// changes the model as the op must change the store when it succeeds.
func (m *model) apply(o op) *expectation {
	e := &expectation{events: map[MailboxID][]notify.Event{}}
	c := &e.call
	c.user = m.userID(o.user)
	c.mailbox = m.mailboxID(o.user, o.mailbox)
	c.dst = m.mailboxID(o.dstUser, o.dst)
	src := m.mailbox(o.user, o.mailbox)
	for _, mb := range []*modelMailbox{src, m.mailbox(o.dstUser, o.dst)} {
		if mb != nil {
			mb.touched = true // its messages are compared after the op
		}
	}
	fail := func(err error) *expectation {
		e.want = outcome{err: err}
		e.events = map[MailboxID][]notify.Event{}
		return e
	}
	switch o.kind {
	case opDeliver:
		c.raw = messageBody(o)
		failed := false
		var boxes []*modelMailbox // per c.rcpts
		for i, slot := range o.rcpts {
			r := Recipient{User: m.userID(slot), Address: m.addrs[slot]}
			if o.headers[i] {
				r.Header = fmt.Appendf(nil, "X-Model-Rcpt: %d\r\n", i)
			}
			if u := m.users[slot]; u != nil {
				inbox := u.mailboxes["INBOX"]
				r.Mailbox = inbox.id
				boxes = append(boxes, inbox)
				want := r
				want.Header = nil
				c.resolve = append(c.resolve, &want)
			} else {
				c.resolve = append(c.resolve, nil)
				if m.staleUser[slot] == 0 {
					continue // never existed: Resolve fails, no delivery
				}
				// Resolved before its user was deleted: the delivery
				// fails, for every recipient (all or none).
				r.Mailbox = m.staleMailbox[slotKey(slot, "INBOX")]
				failed = true
			}
			c.rcpts = append(c.rcpts, r)
		}
		if failed {
			return fail(ErrNoSuchMailbox)
		}
		newUIDs := map[*modelMailbox][]uint32{}
		var order []*modelMailbox
		for i, r := range c.rcpts {
			mb := boxes[i]
			mb.touched = true
			body := append(append([]byte(nil), r.Header...), c.raw...)
			uid := mb.add(modelFlags{system: map[string]bool{}}, body, time.Time{})
			e.want.uids = append(e.want.uids, uid)
			if newUIDs[mb] == nil {
				order = append(order, mb)
			}
			newUIDs[mb] = append(newUIDs[mb], uint32(uid))
		}
		for _, mb := range order {
			e.event(mb, notify.Event{Kind: notify.Appended, UIDs: newUIDs[mb], Messages: uint32(len(mb.msgs))})
		}

	case opAppend:
		c.raw = messageBody(o)
		c.date = time.Unix(1_600_000_000+int64(o.origin), 0)
		fl, err := modelParseFlags(o.flags)
		if err != nil {
			return fail(err)
		}
		if src == nil {
			return fail(ErrNoSuchMailbox)
		}
		uid := src.add(fl, c.raw, c.date)
		e.want.appended = AppendResult{UIDValidity: src.uidValidity, UID: uid}
		e.event(src, notify.Event{Kind: notify.Appended, UIDs: []uint32{uint32(uid)}, Messages: uint32(len(src.msgs)), Origin: o.origin})

	case opStoreFlags, opStoreIf:
		arg, err := modelParseFlags(o.flags)
		if err != nil {
			return fail(err)
		}
		if o.kind == opStoreIf {
			c.unchangedSince = o.unchangedSince
			if !o.sinceFixed {
				c.unchangedSince = pickUnchangedSince(src, o.sinceSel)
			}
		}
		if src == nil {
			return fail(errNoneOrNoMailbox)
		}
		var changed []notify.FlagUpdate
		for _, msg := range src.msgs {
			if !modelContains(o.set, msg.uid) {
				continue
			}
			// RFC 7162 §3.1.3: changed since the client's modseq, left alone.
			if o.kind == opStoreIf && msg.modseq > c.unchangedSince {
				e.want.modified = append(e.want.modified, msg.uid)
				continue
			}
			nf := msg.flags.apply(o.flagOp, arg)
			u := FlagUpdate{UID: msg.uid, Flags: nf.list(), ModSeq: msg.modseq}
			if !nf.equal(msg.flags) {
				msg.flags, msg.modseq, u.ModSeq = nf, 0, 0
				changed = append(changed, notify.FlagUpdate{UID: uint32(msg.uid), Flags: nf.list()})
			}
			e.want.updates = append(e.want.updates, u)
		}
		if len(changed) > 0 {
			src.changed = true
			e.event(src, notify.Event{Kind: notify.FlagsChanged, Flags: changed, Origin: o.origin})
		}

	case opExpunge:
		if src == nil {
			return fail(errNoneOrNoMailbox)
		}
		for _, msg := range src.msgs {
			if modelContains(o.set, msg.uid) && msg.flags.system[FlagDeleted] {
				e.want.expunged = append(e.want.expunged, msg.uid)
			}
		}
		src.remove(e.want.expunged)
		if len(e.want.expunged) > 0 {
			e.event(src, notify.Event{Kind: notify.Expunged, UIDs: uint32s(e.want.expunged), Messages: uint32(len(src.msgs)), Origin: o.origin})
		}

	case opCopy, opMove:
		dst := m.mailbox(o.dstUser, o.dst)
		if src == nil || dst == nil || o.user != o.dstUser {
			return fail(ErrNoSuchMailbox) // another user's mailbox is no mailbox
		}
		res := CopyResult{UIDValidity: dst.uidValidity}
		var list []*modelMessage
		for _, msg := range src.msgs {
			if modelContains(o.set, msg.uid) {
				list = append(list, msg)
			}
		}
		for _, msg := range list {
			res.Source = append(res.Source, msg.uid)
			res.Dest = append(res.Dest, dst.add(msg.flags, msg.body, msg.date))
		}
		e.want.copied = res
		if len(list) > 0 {
			e.event(dst, notify.Event{Kind: notify.Appended, UIDs: uint32s(res.Dest), Messages: uint32(len(dst.msgs)), Origin: o.origin})
			if o.kind == opMove {
				src.remove(res.Source)
				e.event(src, notify.Event{Kind: notify.Expunged, UIDs: uint32s(res.Source), Messages: uint32(len(src.msgs)), Origin: o.origin})
			}
		}

	case opCreate:
		name, ok := modelCanon(o.mailbox)
		if !ok {
			return fail(ErrInvalidName)
		}
		u := m.users[o.user]
		if u == nil {
			return fail(ErrNoSuchUser)
		}
		if u.mailboxes[name] != nil {
			return fail(ErrMailboxExists)
		}
		m.createParents(u, name)
		u.mailboxes[name] = &modelMailbox{name: name, uidNext: 1}
		// A subscription that outlived an earlier mailbox of the name
		// applies to the new one.
		e.want.created = Mailbox{User: u.id, Name: name, UIDNext: 1, Subscribed: u.subs[name]}

	case opRename:
		from, ok1 := modelCanon(o.mailbox)
		to, ok2 := modelCanon(o.dst)
		switch {
		case !ok1 || !ok2:
			return fail(ErrInvalidName)
		case to == "INBOX" || to == from || strings.HasPrefix(to, from+"/"):
			return fail(ErrProtected) // RFC 9051 §6.3.6: not into itself
		case src == nil:
			return fail(ErrNoSuchMailbox)
		}
		u := m.users[o.user]
		for name := range u.mailboxes {
			if name == to || strings.HasPrefix(name, to+"/") {
				return fail(ErrMailboxExists)
			}
		}
		if from == "INBOX" {
			// RFC 9051 §6.3.6: INBOX's messages move to a new mailbox,
			// INBOX stays, empty; its inferiors are not renamed.
			nmb := &modelMailbox{name: to, uidNext: 1}
			u.mailboxes[to] = nmb
			m.createParents(u, to) // as RENAME should (RFC 9051 §6.3.6)
			var uids []UID
			for _, msg := range src.msgs {
				nmb.add(msg.flags, msg.body, msg.date)
				uids = append(uids, msg.uid)
			}
			src.remove(uids)
			if len(uids) > 0 {
				e.event(src, notify.Event{Kind: notify.Expunged, UIDs: uint32s(uids)})
			}
			break
		}
		var names []string
		for name := range u.mailboxes {
			if name == from || strings.HasPrefix(name, from+"/") {
				names = append(names, name)
			}
		}
		moved := map[string]*modelMailbox{}
		for _, name := range names {
			mb := u.mailboxes[name]
			delete(u.mailboxes, name)
			mb.name = to + strings.TrimPrefix(name, from)
			moved[mb.name] = mb
			e.event(mb, notify.Event{Kind: notify.MailboxChanged})
			// The subscription moves with the mailbox; the new name
			// keeps one it had already.
			if u.subs[name] {
				delete(u.subs, name)
				u.subs[mb.name] = true
			}
		}
		for name, mb := range moved {
			u.mailboxes[name] = mb
		}
		m.createParents(u, to)

	case opDelete:
		name, ok := modelCanon(o.mailbox)
		switch {
		case !ok:
			return fail(ErrInvalidName)
		case name == "INBOX":
			return fail(ErrProtected) // RFC 9051 §6.3.5
		case src == nil:
			return fail(ErrNoSuchMailbox)
		}
		e.event(src, notify.Event{Kind: notify.MailboxChanged})
		m.staleMailbox[slotKey(o.user, name)] = src.id
		delete(m.users[o.user].mailboxes, name) // its inferiors stay

	case opSubscribe:
		// RFC 9051 §6.3.7, §6.3.8: any valid name, existing or not;
		// unsubscribing a name not subscribed succeeds.
		name, ok := modelCanon(o.mailbox)
		if !ok {
			return fail(ErrInvalidName)
		}
		u := m.users[o.user]
		if u == nil {
			return fail(ErrNoSuchUser)
		}
		if o.subscribe {
			u.subs[name] = true
		} else {
			delete(u.subs, name)
		}

	case opDeleteUser:
		u := m.users[o.user]
		if u == nil {
			return fail(ErrNoSuchUser)
		}
		for name, mb := range u.mailboxes {
			e.event(mb, notify.Event{Kind: notify.MailboxChanged})
			m.staleMailbox[slotKey(o.user, name)] = mb.id
		}
		m.staleUser[o.user] = u.id
		m.users[o.user] = nil

	case opAddUser:
		if m.users[o.user] != nil {
			return fail(ErrUserExists)
		}
		// A new user has none of a deleted user's subscriptions.
		u := &modelUser{mailboxes: map[string]*modelMailbox{}, subs: map[string]bool{}}
		for _, d := range DefaultMailboxes {
			u.mailboxes[d.Name] = &modelMailbox{name: d.Name, specialUse: d.SpecialUse, uidNext: 1}
			u.subs[d.Name] = true
		}
		m.users[o.user] = u
		e.want.user = User{Address: m.addrs[o.user]}
	}
	return e
}

// pickUnchangedSince turns an op's selector into the UNCHANGEDSINCE a
// client might send, from the modseqs the model has observed: 0 (every
// message fails), the mailbox's highest (every one passes), a message's
// modseq (it and older ones pass), one less (it fails), or a little below
// the highest.
func pickUnchangedSince(mb *modelMailbox, sel byte) uint64 {
	if mb == nil {
		return uint64(sel)
	}
	pick := int(sel >> 3)
	switch sel % 5 {
	case 0:
		return 0
	case 1:
		return mb.modseq
	case 2, 3:
		if len(mb.msgs) == 0 {
			return mb.modseq
		}
		ms := mb.msgs[pick%len(mb.msgs)].modseq
		if sel%5 == 3 {
			ms--
		}
		return ms
	default:
		return mb.modseq - min(mb.modseq, uint64(1+pick%4))
	}
}

// createParents creates the missing parents of name, as CREATE does
// (RFC 9051 §6.3.4): unsubscribed, without special use.
func (m *model) createParents(u *modelUser, name string) {
	parts := strings.Split(name, "/")
	for i := 1; i < len(parts); i++ {
		p := strings.Join(parts[:i], "/")
		if u.mailboxes[p] == nil {
			u.mailboxes[p] = &modelMailbox{name: p, uidNext: 1}
		}
	}
}

// modelContains is UIDSet membership as the UIDSet documentation says it:
// inclusive ranges, Stop 0 has no upper bound, a reversed range is the
// same range (IMAP's 4:2 is 2:4), an empty set holds nothing.
func modelContains(set UIDSet, uid UID) bool {
	for _, r := range set {
		lo, hi := uint64(r.Start), uint64(r.Stop)
		if hi == 0 {
			hi = 1 << 32
		}
		if lo > hi {
			lo, hi = hi, lo
		}
		if uint64(uid) >= lo && uint64(uid) <= hi {
			return true
		}
	}
	return false
}

func uint32s(uids []UID) []uint32 {
	l := make([]uint32, len(uids))
	for i, u := range uids {
		l[i] = uint32(u)
	}
	return l
}
