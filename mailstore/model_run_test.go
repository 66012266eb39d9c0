package mailstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"pushmail/notify"
)

// TestStoreModel applies random sequences of operations to a real store
// and to the reference model (model_test.go), and checks after every
// operation that the store holds what the model says, that the operation
// returned what the model says, and that it published exactly the events
// the model says: no more (a STORE that changed nothing, an EXPUNGE with
// nothing \Deleted), no fewer. A failure prints the sequence and the seed
// that replays it alone: PUSHMAIL_MODEL_SEED=<seed>.
func TestStoreModel(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	if env := os.Getenv("PUSHMAIL_MODEL_SEED"); env != "" {
		seed, err := strconv.ParseUint(env, 10, 64)
		if err != nil {
			t.Fatalf("PUSHMAIL_MODEL_SEED=%q: %v", env, err)
		}
		if err := runModelSeed(ctx, openTestStore(t, modelOptions()), seed, "replay"); err != nil {
			t.Fatal(err)
		}
		return
	}
	// Each worker has a store of its own and runs its sequences one after
	// the other in it, with fresh users each: opening a store per sequence
	// would cost more than the sequence. Workers overlap their commits'
	// fsyncs.
	sequences, workers := modelSequences, 4
	if testing.Short() {
		sequences /= 10
	}
	base := rand.Uint64()
	var (
		stop     atomic.Bool
		mu       sync.Mutex
		failures []error
		wg       sync.WaitGroup
	)
	for w := range workers {
		s := openTestStore(t, modelOptions())
		wg.Go(func() {
			for i := w; i < sequences && !stop.Load(); i += workers {
				if err := runModelSeed(ctx, s, base+uint64(i), fmt.Sprintf("s%d", i)); err != nil {
					stop.Store(true)
					mu.Lock()
					failures = append(failures, err)
					mu.Unlock()
					return
				}
			}
			if err := s.IntegrityCheck(ctx); err != nil {
				mu.Lock()
				failures = append(failures, err)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	for _, err := range failures {
		t.Error(err)
	}
}

// modelSequences is TestStoreModel's budget: sequences of 20 to 40 ops,
// about 9,000 checked ops. Every op that writes waits for a durable
// commit (an fsync), and every op is followed by a few reads, so the
// budget is set by time: about 18 s with -race on two shared cores, 50 s
// when the machine is loaded five times over.
const modelSequences = 300

// runModelSeed runs the sequence that seed generates, on fresh users
// whose addresses start with prefix.
func runModelSeed(ctx context.Context, s *Store, seed uint64, prefix string) error {
	r := rand.New(rand.NewPCG(seed, 0x6d6f64656c))
	b := genOpBytes(r, 20+r.IntN(21))
	ops := modelSequence(b)
	if at, err := runModelSequence(ctx, s, prefix, ops); err != nil {
		return fmt.Errorf("sequence seed %d (replay: PUSHMAIL_MODEL_SEED=%d go test -tags sqlite_fts5 -race -run '^TestStoreModel$' ./mailstore)\n"+
			"step %d: %v\nops:\n%s", seed, seed, at, err, fmtOps(ops[:at+1], b))
	}
	return nil
}

// FuzzStoreModel is TestStoreModel with the fuzzer's bytes as the
// sequence (opsFromBytes).
func FuzzStoreModel(f *testing.F) {
	const (
		inbox, a, b, c  = 0, 4, 7, 12 // modelNames
		shapeNil, empty = 0, 1        // decodeSet shapes
		all, one, rng   = 2, 3, 4
		fine            = 2 // b[9]: valid flags, usual spelling
		deleted, seen   = 0x02, 0x01
	)
	deliver := encodeOp(opDeliver)
	f.Add(slices.Concat( // EXPUNGE with nothing \Deleted keeps every message
		deliver, deliver, deliver,
		encodeOp(opExpunge, 0, inbox, 0, all),
		encodeOp(opExpunge, 0, inbox, 0, shapeNil),
		encodeOp(opExpunge, 0, inbox, 0, empty),
		encodeOp(opExpunge, 0, inbox, 0, one, 1),
		encodeOp(opExpunge, 0, inbox, 0, one, 40),
	))
	f.Add(slices.Concat( // \Deleted on one; STORE of a flag already set publishes nothing
		deliver, encodeOp(opDeliver, 1<<5), // the second delivers twice to INBOX
		encodeOp(opStoreFlags, 0, inbox, 0, one, 1, 0, byte(FlagsAdd), deleted, fine),
		encodeOp(opStoreFlags, 0, inbox, 0, one, 1, 0, byte(FlagsAdd), deleted, fine),
		encodeOp(opStoreFlags, 0, inbox, 0, all, 0, 0, byte(FlagsRemove), seen, fine),
		encodeOp(opExpunge, 0, inbox, 0, rng, 2, 15),
		encodeOp(opExpunge, 0, inbox, 0, all),
	))
	f.Add(slices.Concat( // RENAME INBOX moves its messages; DELETE INBOX fails
		deliver, deliver,
		encodeOp(opRename, 0, inbox, a),
		encodeOp(opRename, 0, inbox, a),
		encodeOp(opDelete, 0, inbox),
		deliver,
		encodeOp(opMove, 0, a, inbox, all),
	))
	f.Add(slices.Concat( // hierarchies: parents made, renamed with the parent, kept on delete
		encodeOp(opCreate, 0, 6), // a/b/c
		encodeOp(opAppend, 0, 6, 0, 0, 0, 0, 0, deleted|seen, fine),
		encodeOp(opRename, 0, a, b),
		encodeOp(opRename, 0, b, c),
		encodeOp(opDelete, 0, c),
		encodeOp(opCreate, 0, c),
		encodeOp(opSubscribe, 0, c, 0, 0, 0, 0, 0x10),
	))
	f.Add(slices.Concat( // several users; a recipient deleted after RCPT fails the delivery
		encodeOp(opAddUser, 1),
		encodeOp(opDeliver, 2<<5, 0b00_01_00), // u0, u1, u0
		encodeOp(opCopy, 0x80|1<<4, inbox, inbox, all),
		encodeOp(opDeleteUser, 1),
		encodeOp(opDeliver, 1<<5, 0b01_00),
		encodeOp(opAddUser, 1),
		encodeOp(opDeliver, 1<<5, 0b01_00),
	))
	const highest, msgModSeq, below = 1, 2, 3 // pickUnchangedSince selectors

	f.Add(slices.Concat( // STORE UNCHANGEDSINCE; expunges past modelMaxVanished move the horizon
		deliver, deliver, encodeOp(opDeliver, 2<<5), // 5 messages
		encodeOp(opStoreFlags, 0, inbox, 0, one, 2, 0, byte(FlagsAdd), seen, fine),
		encodeOp(opStoreIf, 0, inbox, 0<<3|msgModSeq, all, 0, 0, byte(FlagsAdd), deleted, fine),
		encodeOp(opStoreIf, 0, inbox, below, all, 0, 0, byte(FlagsAdd), deleted, fine),
		encodeOp(opStoreIf, 0, inbox, highest, all, 0, 0, byte(FlagsAdd), deleted, fine),
		encodeOp(opStoreIf, 0, inbox, 0, all, 0, 0, byte(FlagsRemove), deleted, fine),
		encodeOp(opExpunge, 0, inbox, 0, one, 1),
		encodeOp(opExpunge, 0, inbox, 0, one, 2),
		encodeOp(opMove, 0, inbox, a, one, 3),
		deliver, deliver, deliver, deliver,
		encodeOp(opStoreFlags, 0, inbox, 0, all, 0, 0, byte(FlagsAdd), deleted, fine),
		encodeOp(opExpunge, 0, inbox, 0, rng, 4, 6),
		encodeOp(opExpunge, 0, inbox, 0, all),
		deliver,
		encodeOp(opRename, 0, inbox, b),
	))
	s := openTestStore(f, modelOptions())
	var n atomic.Uint64
	f.Fuzz(func(t *testing.T, b []byte) {
		ops := modelSequence(b)
		if at, err := runModelSequence(t.Context(), s, fmt.Sprintf("f%d", n.Add(1)), ops); err != nil {
			t.Fatalf("step %d: %v\nops:\n%s", at, err, fmtOps(ops[:at+1], b))
		}
	})
}

// modelSequence is the ops of b after the AddUser of user slot 0 that
// every sequence starts with.
func modelSequence(b []byte) []op {
	return append([]op{{kind: opAddUser, user: 0}}, opsFromBytes(b)...)
}

// modelRun applies one sequence of ops to a store and to a model.
type modelRun struct {
	ctx  context.Context
	s    *Store
	m    *model
	subs map[MailboxID]*notify.Subscription // one per live mailbox
	// owners is the user of each mailbox subscribed to: every event
	// must name it (Event.User, which routes to user watchers).
	owners map[MailboxID]UserID
}

// runModelSequence runs ops and checks the store against the model after
// each; it returns the index of the op after which they disagreed.
func runModelSequence(ctx context.Context, s *Store, prefix string, ops []op) (int, error) {
	r := &modelRun{ctx: ctx, s: s, m: newModel(prefix), subs: map[MailboxID]*notify.Subscription{}}
	defer func() {
		for _, sub := range r.subs {
			sub.Close()
		}
	}()
	for i, o := range ops {
		if err := r.step(o); err != nil {
			return i, err
		}
	}
	if _, err := r.check(nil, true); err != nil {
		return len(ops) - 1, fmt.Errorf("at the end: %w", err)
	}
	if err := checkVanishedCounts(ctx, s); err != nil {
		return len(ops) - 1, fmt.Errorf("at the end: %w", err)
	}
	return 0, nil
}

// step applies o to both and compares state, result and events.
func (r *modelRun) step(o op) error {
	e := r.m.apply(o)
	got, err := r.exec(o, &e.call)
	if err != nil {
		return err
	}
	if err := matchErr(got.err, e.want.err); err != nil {
		return fmt.Errorf("%v = %v", o, err)
	}
	// Every mailbox's counters and modseq are compared after every op,
	// the messages of those the op named or that changed too, and all
	// messages at the end of the sequence: an op that must fail and
	// changes something shows in its mailboxes' messages or in some
	// mailbox's counters or modseq.
	mods, err := r.check(&o, false)
	if err != nil {
		return fmt.Errorf("after %v: %w", o, err)
	}
	if got.err == nil {
		if err := r.compareOutcome(o, e, got, mods); err != nil {
			return err
		}
	}
	if err := r.checkEvents(o, e, mods); err != nil {
		return err
	}
	return nil
}

func matchErr(got, want error) error {
	ok := false
	switch want {
	case nil:
		ok = got == nil
	case errAny:
		ok = got != nil
	case errNoneOrNoMailbox:
		ok = got == nil || errors.Is(got, ErrNoSuchMailbox)
	default:
		ok = errors.Is(got, want)
	}
	if !ok {
		return fmt.Errorf("error %v, want %v", got, want)
	}
	return nil
}

// exec calls the store as e's call says.
func (r *modelRun) exec(o op, c *call) (outcome, error) {
	ctx, s := r.ctx, r.s
	var g outcome
	switch o.kind {
	case opDeliver:
		for i, slot := range o.rcpts {
			addr := r.m.addrs[slot]
			got, err := s.Resolve(ctx, addr)
			want := c.resolve[i]
			if want == nil {
				if !errors.Is(err, ErrNoSuchUser) {
					return g, fmt.Errorf("Resolve(%s) = %+v, %v; want ErrNoSuchUser", addr, got, err)
				}
				continue
			}
			if err != nil || got.User != want.User || got.Address != want.Address || got.Mailbox != want.Mailbox || got.Header != nil {
				return g, fmt.Errorf("Resolve(%s) = %+v, %v; want %+v", addr, got, err, *want)
			}
		}
		if len(c.rcpts) == 0 {
			return g, nil
		}
		g.uids, g.err = s.Deliver(ctx, c.raw, c.rcpts)
	case opAppend:
		g.appended, g.err = s.Append(ctx, c.mailbox, c.raw, o.flags, c.date, o.origin)
	case opStoreFlags:
		g.updates, g.err = s.StoreFlags(ctx, c.mailbox, o.set, o.flagOp, o.flags, o.origin)
	case opStoreIf:
		g.updates, g.modified, g.err = s.StoreFlagsUnchangedSince(ctx, c.mailbox, o.set, o.flagOp, o.flags, c.unchangedSince, o.origin)
	case opExpunge:
		g.expunged, g.err = s.Expunge(ctx, c.mailbox, o.set, o.origin)
	case opCopy:
		g.copied, g.err = s.Copy(ctx, c.mailbox, o.set, c.dst, o.origin)
	case opMove:
		g.copied, g.err = s.Move(ctx, c.mailbox, o.set, c.dst, o.origin)
	case opCreate:
		g.created, g.err = s.CreateMailbox(ctx, c.user, o.mailbox, "")
	case opRename:
		g.err = s.RenameMailbox(ctx, c.user, o.mailbox, o.dst)
	case opDelete:
		g.err = s.DeleteMailbox(ctx, c.user, o.mailbox)
	case opSubscribe:
		g.err = s.SetSubscribed(ctx, c.user, o.mailbox, o.subscribe)
	case opDeleteUser:
		g.err = s.DeleteUser(ctx, r.m.addrs[o.user])
	case opAddUser:
		g.user, g.err = s.AddUser(ctx, r.m.addrs[o.user], "secret")
	}
	return g, nil
}

// modseqs is a mailbox's highest modseq before and after a step.
type modseqs struct{ before, after uint64 }

// check compares the store with the model: users, every mailbox's name,
// id, UIDVALIDITY, UIDNEXT, subscription and counters, and the messages
// (UIDs, flags, modseqs, bodies) of the mailboxes that o named or that
// changed, or of all with full. It adopts what the store chose (new ids,
// UIDVALIDITY, modseqs) after checking it, and returns every live
// mailbox's highest modseq before and after.
func (r *modelRun) check(o *op, full bool) (map[MailboxID]modseqs, error) {
	ctx, s, m := r.ctx, r.s, r.m
	mods := map[MailboxID]modseqs{}
	userOp := o != nil && (o.kind == opAddUser || o.kind == opDeleteUser)
	for slot, u := range m.users {
		if full || userOp {
			su, err := s.User(ctx, m.addrs[slot])
			switch {
			case u == nil && !errors.Is(err, ErrNoSuchUser):
				return nil, fmt.Errorf("User(%s) = %+v, %v; want ErrNoSuchUser", m.addrs[slot], su, err)
			case u == nil:
			case err != nil:
				return nil, fmt.Errorf("User(%s) = %v", m.addrs[slot], err)
			case u.id == 0:
				if m.seenUser[su.ID] {
					return nil, fmt.Errorf("new user %s has id %d, which an earlier user had", m.addrs[slot], su.ID)
				}
				u.id = su.ID
				m.seenUser[su.ID] = true
			case su.ID != u.id:
				return nil, fmt.Errorf("User(%s).ID = %d, want %d", m.addrs[slot], su.ID, u.id)
			}
		}
		if u == nil {
			continue
		}
		sts, err := s.MailboxStatuses(ctx, u.id)
		if err != nil {
			return nil, err
		}
		var gotNames, wantNames []string
		for _, st := range sts {
			gotNames = append(gotNames, st.Name)
		}
		for name := range u.mailboxes {
			wantNames = append(wantNames, name)
		}
		sort.Strings(wantNames)
		if !slices.Equal(gotNames, wantNames) {
			return nil, fmt.Errorf("u%d's mailboxes = %q, want %q", slot, gotNames, wantNames)
		}
		subs, err := s.Subscriptions(ctx, u.id)
		if err != nil {
			return nil, err
		}
		if want := slices.Sorted(maps.Keys(u.subs)); !slices.Equal(subs, want) {
			return nil, fmt.Errorf("Subscriptions(u%d) = %q, want %q", slot, subs, want)
		}
		for _, st := range sts {
			mb := u.mailboxes[st.Name]
			set := AllUIDs()
			if o != nil {
				set = o.set
			}
			mm, err := r.checkMailbox(slot, u, mb, st, set, full)
			if err != nil {
				return nil, fmt.Errorf("u%d %q: %w", slot, mb.name, err)
			}
			mods[mb.id] = mm
		}
		// RFC 9208 usage, kept by triggers (quota.go): always the sum
		// of the user's mailboxes, whatever the step was.
		q, err := s.Quota(ctx, u.id)
		if err != nil {
			return nil, err
		}
		var bytes, msgs int64
		for _, mb := range u.mailboxes {
			bytes += mb.size()
			msgs += int64(len(mb.msgs))
		}
		if q.StorageUsed != bytes || q.MessagesUsed != msgs {
			return nil, fmt.Errorf("Quota(u%d) usage = %d bytes, %d messages; want %d, %d", slot, q.StorageUsed, q.MessagesUsed, bytes, msgs)
		}
	}
	return mods, nil
}

func (r *modelRun) checkMailbox(slot int, u *modelUser, mb *modelMailbox, st MailboxStatus, set UIDSet, full bool) (modseqs, error) {
	m := r.m
	if mb.id == 0 {
		if m.seenMailbox[st.ID] {
			return modseqs{}, fmt.Errorf("new mailbox has id %d, which an earlier mailbox had", st.ID)
		}
		mb.id = st.ID
		m.seenMailbox[st.ID] = true
	} else if st.ID != mb.id {
		return modseqs{}, fmt.Errorf("id = %d, want %d", st.ID, mb.id)
	}
	// RFC 9051 §2.3.1.1: UIDVALIDITY stays while the mailbox does, and a
	// mailbox made anew under an old name gets a greater one.
	key := slotKey(slot, mb.name)
	if mb.uidValidity == 0 {
		if prev := m.validity[key]; st.UIDValidity <= prev {
			return modseqs{}, fmt.Errorf("new mailbox's UIDVALIDITY = %d, want > %d, its name's earlier one", st.UIDValidity, prev)
		}
		mb.uidValidity = st.UIDValidity
	} else if st.UIDValidity != mb.uidValidity {
		return modseqs{}, fmt.Errorf("UIDVALIDITY = %d, want %d: it changed", st.UIDValidity, mb.uidValidity)
	}
	m.validity[key] = max(m.validity[key], mb.uidValidity)
	if st.UIDNext != mb.uidNext {
		return modseqs{}, fmt.Errorf("UIDNEXT = %d, want %d", st.UIDNext, mb.uidNext)
	}
	if st.User != u.id || st.Subscribed != u.subs[mb.name] || st.SpecialUse != mb.specialUse {
		return modseqs{}, fmt.Errorf("Status() = user %d, subscribed %v, special use %q; want %d, %v, %q",
			st.User, st.Subscribed, st.SpecialUse, u.id, u.subs[mb.name], mb.specialUse)
	}
	if st.Messages != uint32(len(mb.msgs)) || st.Unseen != mb.unseen() || st.Size != mb.size() {
		return modseqs{}, fmt.Errorf("Status() = %d messages, %d unseen, %d bytes; want %d, %d, %d",
			st.Messages, st.Unseen, st.Size, len(mb.msgs), mb.unseen(), mb.size())
	}
	// The model claims no \Recent flags (ClaimRecent): every mailbox keeps
	// a new mailbox's mark, 0, and whatever reached it, by any op, is
	// recent (RFC 3501 §2.3.2, §6.4.7).
	if st.RecentUID != 0 || st.Recent != uint32(len(mb.msgs)) {
		return modseqs{}, fmt.Errorf("Status() = RecentUID %d, %d recent; want 0, %d", st.RecentUID, st.Recent, len(mb.msgs))
	}
	// The highest modseq never goes down, and goes up exactly when a
	// message was added, removed or reflagged.
	mm := modseqs{before: mb.modseq, after: st.HighestModSeq}
	switch {
	case mb.modseq == 0 && st.HighestModSeq == 0:
		return mm, fmt.Errorf("new mailbox's HIGHESTMODSEQ = 0, want > 0")
	case mb.modseq == 0:
	case mb.changed && st.HighestModSeq <= mb.modseq:
		return mm, fmt.Errorf("HIGHESTMODSEQ = %d after a change, want > %d", st.HighestModSeq, mb.modseq)
	case !mb.changed && st.HighestModSeq != mb.modseq:
		return mm, fmt.Errorf("HIGHESTMODSEQ = %d, want %d: nothing changed", st.HighestModSeq, mb.modseq)
	}
	list := full || mb.touched || mb.changed || mb.modseq == 0
	bodies := full || mb.touched
	mb.modseq, mb.changed, mb.touched = st.HighestModSeq, false, false
	// A step expunges from a mailbox at most once, and nothing after it:
	// the expunge's modseq is the mailbox's new highest.
	mb.settle(st.HighestModSeq, r.m.maxVanished)
	if !list {
		return mm, nil
	}
	if err := r.checkMessages(mb, mm, bodies); err != nil {
		return mm, err
	}
	return mm, r.checkChanges(mb, st.HighestModSeq, set, full)
}

// checkChanges compares ChangesSince with the model's prediction for a
// few modseqs: 0, the horizon and one below, the modseqs of a message and
// of a tombstone and one below each, the highest, and a random one; all
// of them with full, else three, and one more within set (the op's).
// The model must know every modseq: call it after checkMessages.
func (r *modelRun) checkChanges(mb *modelMailbox, highest uint64, set UIDSet, full bool) error {
	rnd := rand.New(rand.NewPCG(uint64(mb.id), highest))
	sinces := []uint64{0, mb.horizon, highest, rnd.Uint64N(highest + 2)}
	if mb.horizon > 0 {
		sinces = append(sinces, mb.horizon-1)
	}
	if len(mb.msgs) > 0 {
		m := mb.msgs[rnd.IntN(len(mb.msgs))].modseq
		sinces = append(sinces, m, m-1)
	}
	if len(mb.tombs) > 0 {
		t := mb.tombs[rnd.IntN(len(mb.tombs))].modseq
		sinces = append(sinces, t, t-1)
	}
	if !full {
		rnd.Shuffle(len(sinces), func(i, j int) { sinces[i], sinces[j] = sinces[j], sinces[i] })
		sinces = sinces[:3]
	}
	sets := make([]UIDSet, len(sinces), len(sinces)+1)
	for i := range sinces {
		sets[i] = AllUIDs()
	}
	sinces, sets = append(sinces, sinces[0]), append(sets, set)
	for i, since := range sinces {
		got, err := r.s.ChangesSince(r.ctx, mb.id, sets[i], since)
		if err != nil {
			return fmt.Errorf("ChangesSince(%s, %d) = %v", fmtSet(sets[i]), since, err)
		}
		want := mb.changesSince(sets[i], since, highest)
		for j := range got.Changed {
			got.Changed[j].Flags = sorted(got.Changed[j].Flags)
		}
		for j := range want.Changed {
			want.Changed[j].Flags = sorted(want.Changed[j].Flags)
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			return fmt.Errorf("ChangesSince(%s, %d) =\n%+v\nwant\n%+v", fmtSet(sets[i]), since, got, want)
		}
	}
	return nil
}

// checkMessages compares a mailbox's UIDs and messages with the model.
func (r *modelRun) checkMessages(mb *modelMailbox, mm modseqs, bodies bool) error {
	uids, err := r.s.UIDs(r.ctx, mb.id)
	if err != nil {
		return err
	}
	want := mb.uids()
	if !slices.Equal(uids, want) {
		return fmt.Errorf("UIDs() = %v, want %v", uids, want)
	}
	// The shared list (uidlist.go): read once, then kept by the writer
	// from every later commit's events, so each later check tests what
	// the writer made of the ops since.
	list, err := r.s.UIDList(r.ctx, mb.id)
	if err != nil {
		return err
	}
	if !slices.Equal(list.UIDs, want) || list.Since > list.ModSeq || cap(list.UIDs) != len(list.UIDs) {
		return fmt.Errorf("UIDList() = %v (since %d, modseq %d, cap %d), want %v", list.UIDs, list.Since, list.ModSeq, cap(list.UIDs), want)
	}
	var got []Message
	err = r.s.Messages(r.ctx, mb.id, AllUIDs(), FetchOptions{Body: bodies}, func(msg *Message) error {
		c := *msg
		c.Raw = bytes.Clone(msg.Raw)
		got = append(got, c)
		return nil
	})
	if err != nil {
		return err
	}
	if len(got) != len(mb.msgs) {
		return fmt.Errorf("Messages() gave %d messages, want %d", len(got), len(mb.msgs))
	}
	for i, g := range got {
		w := mb.msgs[i]
		if g.UID != w.uid || !slices.Equal(sorted(g.Flags), sorted(w.flags.list())) {
			return fmt.Errorf("Messages()[%d] = UID %d %q, want UID %d %q", i, g.UID, g.Flags, w.uid, w.flags.list())
		}
		// A new or reflagged message has a modseq of this step; the
		// others keep theirs.
		if w.modseq == 0 {
			if g.ModSeq <= mm.before || g.ModSeq > mm.after {
				return fmt.Errorf("UID %d: MODSEQ = %d, want in (%d, %d]: new or changed", g.UID, g.ModSeq, mm.before, mm.after)
			}
			w.modseq = g.ModSeq
		} else if g.ModSeq != w.modseq {
			return fmt.Errorf("UID %d: MODSEQ = %d, want %d: unchanged", g.UID, g.ModSeq, w.modseq)
		}
		if g.Size != int64(len(w.body)) {
			return fmt.Errorf("UID %d: size %d, want %d", g.UID, g.Size, len(w.body))
		}
		if bodies && !bytes.Equal(g.Raw, w.body) {
			return fmt.Errorf("UID %d: body %q, want %q", g.UID, g.Raw, w.body)
		}
		if !w.date.IsZero() && !g.InternalDate.Equal(w.date) {
			return fmt.Errorf("UID %d: internal date %v, want %v", g.UID, g.InternalDate, w.date)
		}
	}
	if bodies {
		return r.checkSearchText(mb, mm.after)
	}
	return nil
}

// checkSearchText compares SEARCH TEXT (the full-text index, then the
// check) with the model for a few needles: a message's own body line and
// subject (unique to the op that made it, shared by its copies), a header
// only some deliveries carry, one no message holds, and one too short for
// the index. The model's messages are plain ASCII, where the decoded text
// TEXT searches contains a needle exactly when the raw message does.
func (r *modelRun) checkSearchText(mb *modelMailbox, highest uint64) error {
	needles := []string{"KUMQUAT", "x-model-rcpt: 1", "op"}
	if len(mb.msgs) > 0 {
		m := mb.msgs[rand.New(rand.NewPCG(uint64(mb.id), highest)).IntN(len(mb.msgs))]
		if i := bytes.Index(m.body, []byte("Body ")); i >= 0 {
			needles = append(needles, string(bytes.TrimRight(m.body[i:], "\r\n")))
		}
		if i := bytes.Index(m.body, []byte("Subject: ")); i >= 0 {
			line, _, _ := bytes.Cut(m.body[i+len("Subject: "):], []byte("\r\n"))
			needles = append(needles, strings.ToUpper(string(line)))
		}
	}
	for _, n := range needles {
		got, err := r.s.Search(r.ctx, mb.id, &SearchCriteria{Text: []string{n}})
		if err != nil {
			return fmt.Errorf("Search(TEXT %q) = %v", n, err)
		}
		var want []UID
		for _, m := range mb.msgs {
			if bytes.Contains(bytes.ToLower(m.body), []byte(strings.ToLower(n))) {
				want = append(want, m.uid)
			}
		}
		if !slices.Equal(got, want) {
			return fmt.Errorf("Search(TEXT %q) = %v, want %v", n, got, want)
		}
	}
	return nil
}

func sorted(l []string) []string {
	l = slices.Clone(l)
	sort.Strings(l)
	return l
}

// compareOutcome compares what a successful op returned with the model's
// prediction.
func (r *modelRun) compareOutcome(o op, e *expectation, got outcome, mods map[MailboxID]modseqs) error {
	want := e.want
	switch o.kind {
	case opDeliver:
		if !slices.Equal(got.uids, want.uids) {
			return fmt.Errorf("%v = %v, want %v", o, got.uids, want.uids)
		}
	case opAppend:
		if got.appended != want.appended {
			return fmt.Errorf("%v = %+v, want %+v", o, got.appended, want.appended)
		}
	case opStoreFlags, opStoreIf:
		if !slices.Equal(got.modified, want.modified) {
			return fmt.Errorf("%v: modified %v, want %v", o, got.modified, want.modified)
		}
		ok := len(got.updates) == len(want.updates)
		for i := 0; ok && i < len(want.updates); i++ {
			g, w := got.updates[i], want.updates[i]
			if w.ModSeq == 0 {
				w.ModSeq = mods[e.call.mailbox].after // changed by this op
			}
			ok = g.UID == w.UID && g.ModSeq == w.ModSeq && slices.Equal(sorted(g.Flags), sorted(w.Flags))
		}
		if !ok {
			return fmt.Errorf("%v = %+v, want %+v (a MODSEQ of 0: the new highest)", o, got.updates, want.updates)
		}
	case opExpunge:
		if !slices.Equal(got.expunged, want.expunged) {
			return fmt.Errorf("%v = %v, want %v", o, got.expunged, want.expunged)
		}
	case opCopy, opMove:
		g, w := got.copied, want.copied
		if g.UIDValidity != w.UIDValidity || !slices.Equal(g.Source, w.Source) || !slices.Equal(g.Dest, w.Dest) {
			return fmt.Errorf("%v = %+v, want %+v", o, g, w)
		}
	case opCreate:
		mb := r.m.mailbox(o.user, o.mailbox)
		w := Mailbox{ID: mb.id, User: want.created.User, Name: want.created.Name, UIDValidity: mb.uidValidity, UIDNext: 1,
			Subscribed: want.created.Subscribed}
		if got.created != w {
			return fmt.Errorf("%v = %+v, want %+v", o, got.created, w)
		}
	case opAddUser:
		if u := r.m.users[o.user]; got.user.ID != u.id || got.user.Address != want.user.Address {
			return fmt.Errorf("%v = %+v, want id %d, address %s", o, got.user, u.id, want.user.Address)
		}
	}
	return nil
}

// checkEvents takes every subscription's events and compares them with the
// model's: exactly the predicted ones, in order, with modseqs that grow
// within the step and end at the mailbox's new highest modseq. It then
// closes the subscriptions of deleted mailboxes and subscribes to new ones.
func (r *modelRun) checkEvents(o op, e *expectation, mods map[MailboxID]modseqs) error {
	for id, sub := range r.subs {
		evs, resync := sub.Take()
		if resync {
			return fmt.Errorf("after %v: mailbox %d's subscription lost events", o, id)
		}
		mm := mods[id]
		last := mm.before
		got := make([]notify.Event, len(evs))
		for i, ev := range evs {
			if ev.Kind != notify.MailboxChanged {
				if ev.ModSeq <= last {
					return fmt.Errorf("after %v: mailbox %d event %+v: ModSeq %d, want > %d", o, id, ev, ev.ModSeq, last)
				}
				last = ev.ModSeq
				if i == len(evs)-1 && ev.ModSeq != mm.after {
					return fmt.Errorf("after %v: mailbox %d event %+v: ModSeq %d, want %d, the mailbox's", o, id, ev, ev.ModSeq, mm.after)
				}
				ev.ModSeq = 0
			}
			if want := int64(r.owners[id]); ev.User != want {
				return fmt.Errorf("after %v: mailbox %d event %+v: User %d, want %d, the mailbox's owner", o, id, ev, ev.User, want)
			}
			// The model predicts what changed, not the names the event
			// carries for NOTIFY (TestEventsCarryTheirUser checks those).
			ev.User, ev.Name, ev.OldName = 0, "", ""
			ev.Committed = time.Time{}
			if ev.Flags != nil {
				fl := make([]notify.FlagUpdate, len(ev.Flags))
				for j, f := range ev.Flags {
					fl[j] = notify.FlagUpdate{UID: f.UID, Flags: sorted(f.Flags)}
				}
				ev.Flags = fl
			}
			got[i] = ev
		}
		want := e.events[id]
		for i := range want {
			for j := range want[i].Flags {
				want[i].Flags[j].Flags = sorted(want[i].Flags[j].Flags)
			}
		}
		if fmt.Sprintf("%+v", got) != fmt.Sprintf("%+v", want) {
			return fmt.Errorf("after %v: mailbox %d events = %+v, want %+v", o, id, got, want)
		}
	}
	live := map[MailboxID]bool{}
	for _, u := range r.m.users {
		if u == nil {
			continue
		}
		for _, mb := range u.mailboxes {
			live[mb.id] = true
			if r.subs[mb.id] == nil {
				r.subs[mb.id] = r.s.Hub().Subscribe(int64(mb.id))
				if r.owners == nil {
					r.owners = map[MailboxID]UserID{}
				}
				r.owners[mb.id] = u.id
			}
		}
	}
	for id, sub := range r.subs {
		if !live[id] {
			sub.Close()
			delete(r.subs, id)
		}
	}
	return nil
}

// modelOptions are the options of a model test's store: model.test is
// served whether or not a user of it exists, so that Resolve of a
// deleted user says ErrNoSuchUser in every sequence; few tombstones are
// kept, so that sequences move horizons.
func modelOptions() Options {
	return Options{Domains: []string{"model.test"}, MaxVanished: modelMaxVanished}
}
