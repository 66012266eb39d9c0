package mailstore

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"pushmail/notify"
)

// TestStoreModelConcurrent runs random message operations from several
// goroutines at once on shared mailboxes of one store, then checks that
// the store behaved as the model says for some sequential order of those
// operations: every operation's result, every mailbox's events in the
// order they were published, and the final state.
//
// Why such an order must exist, and why finding one is a sound check: the
// store has a single writer goroutine that applies the queued writes one
// at a time, in queue order, each in its own savepoint when a batch is
// retried, and publishes each write's events in that order before it
// releases the caller. So the writes take effect in one total order (the
// queue order), each between its call and its return: a linearization
// that respects real time. The test does not see the queue, so it
// searches for such an order (depth first, with memoisation): an order
// in which each operation starts only after every operation that returned
// before it was called has been placed, each goroutine's operations keep
// their program order, each operation's result equals the model's, and
// the events the model predicts for each mailbox are exactly the next
// ones its subscription received. If the store lost a write, applied one
// twice, published an event it should not have, or changed a message no
// operation asked to, no order explains what was observed, and the test
// fails. Operations without events (a STORE that changed nothing, an
// EXPUNGE with nothing \Deleted) are placed wherever their results fit.
func TestStoreModelConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	rounds, goroutines, perGoroutine := 10, 4, 40
	if testing.Short() {
		rounds = 2
	}
	seed := rand.Uint64()
	opts := modelOptions()
	opts.Hub = notify.New(4096) // every event of a round stays queued until it is checked
	s := openTestStore(t, opts)
	for round := range rounds {
		if err := runConcurrentRound(ctx, s, seed+uint64(round), fmt.Sprintf("c%d", round), goroutines, perGoroutine); err != nil {
			t.Fatalf("round seed %d: %v", seed+uint64(round), err)
		}
	}
}

// concOp is one operation of a goroutine, with the logical times of its
// call and return and what it returned.
type concOp struct {
	o         op
	g         int
	inv, resp int64
	got       outcome
}

// concNames are the shared mailboxes of user slot 0; slot 1 has INBOX.
var concNames = []string{"INBOX", "Trash", "a"}

func genConcurrentOps(r *rand.Rand, g, n int) []op {
	kinds := []opKind{opDeliver, opDeliver, opAppend, opStoreFlags, opStoreFlags, opStoreFlags, opStoreIf, opStoreIf, opCopy, opMove, opExpunge, opExpunge}
	var ops []op
	for i := range n {
		o := op{
			kind:    kinds[r.IntN(len(kinds))],
			mailbox: concNames[r.IntN(len(concNames))],
			dst:     concNames[r.IntN(len(concNames))],
			set:     decodeSet(byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())),
			flagOp:  FlagOp(r.IntN(3)),
			flags:   decodeFlagList(byte(r.Uint32()), byte(2+r.IntN(2)*0x10)), // valid flags only
			origin:  uint64(1000*(g+1) + i),
			// StoreFlagsUnchangedSince: liveUnchangedSince's choice.
			sinceSel: byte(r.Uint32()),
		}
		if r.IntN(5) == 0 {
			o.user, o.dstUser, o.mailbox, o.dst = 1, 1, "INBOX", "INBOX"
		}
		if o.kind == opDeliver {
			for range 1 + r.IntN(3) {
				o.rcpts = append(o.rcpts, r.IntN(2))
				o.headers = append(o.headers, r.IntN(2) == 0)
			}
		}
		ops = append(ops, o)
	}
	return ops
}

func runConcurrentRound(ctx context.Context, s *Store, seed uint64, prefix string, goroutines, perGoroutine int) error {
	rnd := rand.New(rand.NewPCG(seed, 0x636f6e63))
	// Set up sequentially, checked as in TestStoreModel: two users, a
	// mailbox "a", a few messages, some \Deleted.
	setup := []op{
		{kind: opAddUser, user: 0}, {kind: opAddUser, user: 1},
		{kind: opCreate, user: 0, mailbox: "a"},
	}
	for i := range 4 {
		setup = append(setup, op{kind: opDeliver, rcpts: []int{0, 1}, headers: []bool{false, true}, origin: uint64(1 + i)})
	}
	setup = append(setup,
		op{kind: opAppend, mailbox: "Trash", flags: []string{FlagDeleted, "work"}, origin: 5},
		op{kind: opAppend, mailbox: "a", flags: []string{FlagSeen}, origin: 6},
		op{kind: opStoreFlags, mailbox: "INBOX", set: UIDSet{{2, 3}}, flagOp: FlagsAdd, flags: []string{FlagDeleted}, origin: 7},
	)
	r := &modelRun{ctx: ctx, s: s, m: newModel(prefix), subs: map[MailboxID]*notify.Subscription{}}
	defer func() {
		for _, sub := range r.subs {
			sub.Close()
		}
	}()
	for _, o := range setup {
		if err := r.step(o); err != nil {
			return fmt.Errorf("setup: %w", err)
		}
	}
	start := map[MailboxID]uint64{} // highest modseqs after the setup
	for _, u := range r.m.users[:2] {
		for _, mb := range u.mailboxes {
			start[mb.id] = mb.modseq
		}
	}

	// Run: every goroutine's ops, one after the other, all goroutines at
	// once. The calls are worked out on a copy of the model: with no
	// mailbox created or deleted, they do not depend on the order.
	var clock atomic.Int64
	perG := make([][]*concOp, goroutines)
	for g := range goroutines {
		for _, o := range genConcurrentOps(rnd, g, perGoroutine) {
			perG[g] = append(perG[g], &concOp{o: o, g: g})
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, goroutines)
	for g := range goroutines {
		wg.Go(func() {
			for _, c := range perG[g] {
				call := r.m.clone().apply(c.o).call
				if c.o.kind == opStoreIf {
					since, err := liveUnchangedSince(ctx, s, call.mailbox, c.o.sinceSel, start)
					if err != nil {
						errs[g] = err
						return
					}
					c.o.sinceFixed, c.o.unchangedSince, call.unchangedSince = true, since, since
				}
				c.inv = clock.Add(1)
				got, err := r.exec(c.o, &call)
				c.resp = clock.Add(1)
				if err != nil {
					errs[g] = err
					return
				}
				c.got = got
			}
		})
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}

	// What each mailbox's subscription received, in publish order; the
	// modseqs must grow.
	events := map[MailboxID][]notify.Event{}
	for id, sub := range r.subs {
		evs, resync := sub.Take()
		if resync {
			return fmt.Errorf("mailbox %d's subscription lost events", id)
		}
		last := start[id]
		for _, ev := range evs {
			if ev.ModSeq <= last {
				return fmt.Errorf("mailbox %d: event %+v has ModSeq %d after %d", id, ev, ev.ModSeq, last)
			}
			last = ev.ModSeq
		}
		events[id] = evs
	}

	want, err := storeFingerprint(r)
	if err != nil {
		return err
	}
	ls := &linSearch{ops: perG, events: events, want: want, visited: map[string]bool{}}
	for _, g := range perG {
		ls.total += len(g)
	}
	if !ls.search(r.m, make([]int, goroutines), map[MailboxID]int{}, 0) {
		return fmt.Errorf("no order of the operations explains their results and events (%d search nodes); "+
			"the longest explained prefix has %d ops, then: %s\n%s", ls.nodes, ls.deepest, ls.why, fmtConcOps(perG, events))
	}

	// The final state: that of the order found. Modseqs are checked
	// only for growth: the model does not know them.
	r.m = ls.final
	for _, u := range r.m.users[:2] {
		for _, mb := range u.mailboxes {
			mb.modseq, mb.changed, mb.touched = 0, false, false
			for _, msg := range mb.msgs {
				msg.modseq = 0
			}
		}
	}
	mods, err := r.check(nil, true)
	if err != nil {
		return fmt.Errorf("final state of the order found: %w\n%s", err, fmtConcOps(perG, events))
	}
	for id, evs := range events {
		if n := len(evs); n > 0 && evs[n-1].ModSeq != mods[id].after {
			return fmt.Errorf("mailbox %d: last event's ModSeq %d, but HIGHESTMODSEQ is %d", id, evs[n-1].ModSeq, mods[id].after)
		}
	}
	return nil
}

// liveUnchangedSince is the UNCHANGEDSINCE of a concurrent conditional
// store: a modseq the mailbox had as a whole, as a client that last
// synchronised then would send. Mostly its highest right now, so that
// the writes of the other goroutines race with the store; sometimes its
// highest after the setup, or 0. Each is the ModSeq of some event (or
// the setup's end), which the linearization search can compare exactly
// with a message's last event (linSearch.settle).
func liveUnchangedSince(ctx context.Context, s *Store, mb MailboxID, sel byte, start map[MailboxID]uint64) (uint64, error) {
	switch sel % 4 {
	case 0:
		return 0, nil
	case 1:
		return start[mb], nil
	default:
		st, err := s.Status(ctx, mb)
		return st.HighestModSeq, err
	}
}

// linSearch looks for an order of ops that the model explains.
type linSearch struct {
	ops     [][]*concOp
	events  map[MailboxID][]notify.Event
	total   int
	want    string          // the store's messages at the end, as model.fingerprint prints them
	visited map[string]bool // next indices and model state already explored
	nodes   int
	deepest int
	why     string
	final   *model
}

const maxSearchNodes = 200_000

func (ls *linSearch) search(m *model, next []int, cursor map[MailboxID]int, done int) bool {
	if done == ls.total {
		for id, evs := range ls.events {
			if cursor[id] != len(evs) {
				ls.note(done, fmt.Sprintf("mailbox %d received events no operation explains: %+v", id, evs[cursor[id]:]))
				return false
			}
		}
		if fp := m.fingerprint(); fp != ls.want {
			ls.note(done, fmt.Sprintf("all placed, but the model holds\n%s\nand the store\n%s", fp, ls.want))
			return false
		}
		ls.final = m
		return true
	}
	key := fmt.Sprint(next) + m.fingerprint() + m.modseqPrint()
	if ls.visited[key] || ls.nodes >= maxSearchNodes {
		return false
	}
	ls.visited[key] = true
	ls.nodes++
	// Real time: an op may come next only if no other op still to place
	// returned before it was called. A goroutine's first op still to
	// place is the earliest of its own to return.
	minResp := int64(1 << 62)
	for g, ops := range ls.ops {
		if next[g] < len(ops) {
			minResp = min(minResp, ops[next[g]].resp)
		}
	}
	// Try the candidates in the order they were called: the writer's
	// queue order is close to it, so the first path is nearly always the
	// right one and the search seldom backtracks, however much the
	// operations overlapped on a loaded machine.
	var cands []int
	for g, ops := range ls.ops {
		if next[g] < len(ops) && ops[next[g]].inv <= minResp {
			cands = append(cands, g)
		}
	}
	sort.Slice(cands, func(i, j int) bool {
		return ls.ops[cands[i]][next[cands[i]]].inv < ls.ops[cands[j]][next[cands[j]]].inv
	})
	for _, g := range cands {
		c := ls.ops[g][next[g]]
		mc := m.clone()
		e := mc.apply(c.o)
		nc, err := ls.explain(c, e, cursor)
		if err != nil {
			ls.note(done, fmt.Sprintf("%v (goroutine %d) as op %d: %v", c.o, g, done, err))
			continue
		}
		ls.settle(mc, cursor, nc)
		next[g]++
		if ls.search(mc, next, nc, done+1) {
			return true
		}
		next[g]--
	}
	return false
}

// settle gives the messages and tombstones an op left without a modseq
// the ModSeq of the event it published on their mailbox (the events
// between cursor and nc; one per mailbox and op). A message's modseq is
// then a bound, not its own: above the mailbox's previous event, at most
// this one. That is exact enough for liveUnchangedSince's modseqs, which
// are all the ModSeq of some event: a message passes UNCHANGEDSINCE u
// exactly when its event's ModSeq is at most u. A tombstone's is exact:
// an expunge takes one modseq.
func (ls *linSearch) settle(m *model, cursor, nc map[MailboxID]int) {
	for id, n := range nc {
		if n == cursor[id] {
			continue
		}
		ev := ls.events[id][n-1]
		for _, u := range m.users {
			if u == nil {
				continue
			}
			for _, mb := range u.mailboxes {
				if mb.id != id {
					continue
				}
				for _, msg := range mb.msgs {
					if msg.modseq == 0 {
						msg.modseq = ev.ModSeq
					}
				}
				mb.settle(ev.ModSeq, m.maxVanished)
			}
		}
	}
}

func (ls *linSearch) note(done int, why string) {
	if done >= ls.deepest {
		ls.deepest, ls.why = done, why
	}
}

// explain checks c's result and the events the model predicts against
// what was observed, and returns the event cursors after c.
func (ls *linSearch) explain(c *concOp, e *expectation, cursor map[MailboxID]int) (map[MailboxID]int, error) {
	if err := matchErr(c.got.err, e.want.err); err != nil {
		return nil, err
	}
	g, w := c.got, e.want
	switch c.o.kind {
	case opDeliver:
		if !slices.Equal(g.uids, w.uids) {
			return nil, fmt.Errorf("returned %v, the model %v", g.uids, w.uids)
		}
	case opAppend:
		if g.appended != w.appended {
			return nil, fmt.Errorf("returned %+v, the model %+v", g.appended, w.appended)
		}
	case opStoreFlags, opStoreIf:
		ok := len(g.updates) == len(w.updates) && slices.Equal(g.modified, w.modified)
		for i := 0; ok && i < len(w.updates); i++ {
			ok = g.updates[i].UID == w.updates[i].UID && slices.Equal(sorted(g.updates[i].Flags), sorted(w.updates[i].Flags))
		}
		if !ok {
			return nil, fmt.Errorf("returned %+v modified %v, the model %+v modified %v", g.updates, g.modified, w.updates, w.modified)
		}
	case opExpunge:
		if !slices.Equal(g.expunged, w.expunged) {
			return nil, fmt.Errorf("returned %v, the model %v", g.expunged, w.expunged)
		}
	case opCopy, opMove:
		if g.copied.UIDValidity != w.copied.UIDValidity || !slices.Equal(g.copied.Source, w.copied.Source) || !slices.Equal(g.copied.Dest, w.copied.Dest) {
			return nil, fmt.Errorf("returned %+v, the model %+v", g.copied, w.copied)
		}
	}
	nc := maps.Clone(cursor)
	for id, want := range e.events {
		got := ls.events[id]
		for _, wev := range want {
			i := nc[id]
			if i >= len(got) {
				return nil, fmt.Errorf("mailbox %d: the model publishes %+v, the store published nothing more", id, wev)
			}
			gev := got[i]
			if eventKey(gev) != eventKey(wev) {
				return nil, fmt.Errorf("mailbox %d: the model publishes %s, the store's next event is %s", id, eventKey(wev), eventKey(gev))
			}
			if gev.Kind == notify.FlagsChanged {
				// A reflagged message's MODSEQ is its event's.
				for _, u := range g.updates {
					changed := slices.ContainsFunc(wev.Flags, func(f notify.FlagUpdate) bool { return f.UID == uint32(u.UID) })
					if changed && u.ModSeq != gev.ModSeq {
						return nil, fmt.Errorf("UID %d: MODSEQ %d, its event's %d", u.UID, u.ModSeq, gev.ModSeq)
					}
				}
			}
			nc[id] = i + 1
		}
	}
	return nc, nil
}

// eventKey prints what the model predicts of an event: all but ModSeq
// and Committed, flags sorted.
func eventKey(ev notify.Event) string {
	var fl []string
	for _, f := range ev.Flags {
		fl = append(fl, fmt.Sprintf("%d%q", f.UID, sorted(f.Flags)))
	}
	return fmt.Sprintf("{%v %v uids=%v flags=%v messages=%d origin=%d}", ev.Mailbox, ev.Kind, ev.UIDs, fl, ev.Messages, ev.Origin)
}

// clone copies the users, mailboxes and messages of m; the rest (ids of
// deleted things, UIDVALIDITY history) is shared, and only mailbox and
// user operations change it. Flag sets are shared too: apply replaces a
// message's flags, never changes them in place.
func (m *model) clone() *model {
	c := *m
	for i, u := range m.users {
		if u == nil {
			continue
		}
		nu := &modelUser{id: u.id, mailboxes: map[string]*modelMailbox{}, subs: maps.Clone(u.subs)}
		for name, mb := range u.mailboxes {
			nmb := *mb
			nmb.tombs = slices.Clone(mb.tombs)
			nmb.msgs = make([]*modelMessage, len(mb.msgs))
			for j, msg := range mb.msgs {
				nm := *msg
				nmb.msgs[j] = &nm
			}
			nu.mailboxes[name] = &nmb
		}
		c.users[i] = nu
	}
	return &c
}

// fingerprint is the model's message state as text, for memoisation.
func (m *model) fingerprint() string {
	var b strings.Builder
	for i, u := range m.users {
		if u == nil {
			continue
		}
		names := make([]string, 0, len(u.mailboxes))
		for name := range u.mailboxes {
			names = append(names, name)
		}
		sort.Strings(names)
		for _, name := range names {
			mb := u.mailboxes[name]
			fmt.Fprintf(&b, "|%d/%s %d:", i, name, mb.uidNext)
			for _, msg := range mb.msgs {
				fmt.Fprintf(&b, " %d%v", msg.uid, sorted(msg.flags.list()))
			}
		}
	}
	return b.String()
}

// modseqPrint is what fingerprint leaves out and settle fills in: the
// modseqs of messages and tombstones, and the horizons. Two orders of the
// same operations may leave the same messages with different modseqs,
// which later conditional stores tell apart.
func (m *model) modseqPrint() string {
	var b strings.Builder
	for i, u := range m.users {
		if u == nil {
			continue
		}
		names := slices.Sorted(maps.Keys(u.mailboxes))
		for _, name := range names {
			mb := u.mailboxes[name]
			fmt.Fprintf(&b, "|%d/%s h%d:", i, name, mb.horizon)
			for _, msg := range mb.msgs {
				fmt.Fprintf(&b, " %d", msg.modseq)
			}
			for _, t := range mb.tombs {
				fmt.Fprintf(&b, " t%d@%d", t.uid, t.modseq)
			}
		}
	}
	return b.String()
}

func fmtConcOps(perG [][]*concOp, events map[MailboxID][]notify.Event) string {
	var b strings.Builder
	for g, ops := range perG {
		fmt.Fprintf(&b, "goroutine %d:\n", g)
		for _, c := range ops {
			fmt.Fprintf(&b, "\t[%d,%d] %v -> %s\n", c.inv, c.resp, c.o, fmtOutcome(c.o, c.got))
		}
	}
	for id, evs := range events {
		fmt.Fprintf(&b, "mailbox %d events:\n", id)
		for _, ev := range evs {
			fmt.Fprintf(&b, "\t%s modseq=%d\n", eventKey(ev), ev.ModSeq)
		}
	}
	return b.String()
}

func fmtOutcome(o op, g outcome) string {
	if g.err != nil {
		return g.err.Error()
	}
	switch o.kind {
	case opDeliver:
		return fmt.Sprint(g.uids)
	case opAppend:
		return fmt.Sprint(g.appended.UID)
	case opStoreFlags:
		return fmt.Sprintf("%+v", g.updates)
	case opStoreIf:
		return fmt.Sprintf("%+v modified %v", g.updates, g.modified)
	case opExpunge:
		return fmt.Sprint(g.expunged)
	case opCopy, opMove:
		return fmt.Sprintf("%v -> %v", g.copied.Source, g.copied.Dest)
	}
	return "ok"
}

// storeFingerprint prints the store's messages of r's users as
// model.fingerprint prints the model's.
func storeFingerprint(r *modelRun) (string, error) {
	var b strings.Builder
	for i, u := range r.m.users {
		if u == nil {
			continue
		}
		sts, err := r.s.MailboxStatuses(r.ctx, u.id)
		if err != nil {
			return "", err
		}
		for _, st := range sts { // ordered by name
			fmt.Fprintf(&b, "|%d/%s %d:", i, st.Name, st.UIDNext)
			err := r.s.Messages(r.ctx, st.ID, AllUIDs(), FetchOptions{}, func(msg *Message) error {
				fmt.Fprintf(&b, " %d%v", msg.UID, sorted(msg.Flags))
				return nil
			})
			if err != nil {
				return "", err
			}
		}
	}
	return b.String(), nil
}
