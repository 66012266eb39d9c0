package jmap

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sync"

	"pushmail/mailstore"
	"pushmail/notify"
)

// feed is the one watcher of an account that all its event streams
// share: one notify subscription, whose hook takes the account's states
// from the events (or has the feed's goroutine read them from the
// store) once per commit and hands them to every stream (acquireFeed).
// Without it, each of N streams would follow the account on its own:
// N reads per delivery.
type feed struct {
	user mailstore.UserID
	refs int // streams using it; under Server.mu

	mu      sync.Mutex
	state   streamState
	changed chan struct{} // closed when state changes, then replaced
	failed  bool          // the store could not be read: streams end
	// parked holds the account's parked streams (parked.go), awake or
	// asleep: at each change each is submitted to the fan-out pool.
	parked map[*parkedStream]struct{}

	// events caches the encoded state events for the current state,
	// by the stream's types and what it was told last: the streams that
	// were told the same share one encoding per commit. Reset when the
	// state changes; under evMu.
	evMu    sync.Mutex
	evState streamState
	events  map[eventKey][]byte

	stop context.CancelFunc
	done chan struct{}
}

// current returns the feed's state and the channel that is closed when
// it changes.
func (f *feed) current() (streamState, <-chan struct{}, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.state, f.changed, !f.failed
}

// eventKey picks a stream's state event for the feed's current state.
type eventKey struct {
	mask typeMask
	last streamState
}

// event returns the state event (RFC 8620 §7.3: "state", its id and the
// StateChange as data) that tells a stream of types mask, last told
// last, of cur; nil when none of its types changed. The bytes are
// shared: nobody may modify them.
func (f *feed) event(mask typeMask, last, cur streamState) []byte {
	if !mask.differs(last, cur) {
		return nil
	}
	f.evMu.Lock()
	defer f.evMu.Unlock()
	if f.events == nil || f.evState != cur {
		f.events, f.evState = map[eventKey][]byte{}, cur
	}
	k := eventKey{mask, last}
	if ev, ok := f.events[k]; ok {
		return ev
	}
	js, err := json.Marshal(stateChange(f.user, mask, last, cur))
	if err != nil {
		// A map of strings always encodes.
		panic("jmap: encode a StateChange: " + err.Error())
	}
	ev := fmt.Appendf(nil, "event: state\nid: %s\ndata: %s\n\n", cur.eventID(), js)
	f.events[k] = ev
	return ev
}

// attach adds a parked stream to those told of every change.
func (f *feed) attach(p *parkedStream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.parked == nil {
		f.parked = map[*parkedStream]struct{}{}
	}
	f.parked[p] = struct{}{}
}

// detach removes a parked stream that ends.
func (f *feed) detach(p *parkedStream) {
	f.mu.Lock()
	defer f.mu.Unlock()
	delete(f.parked, p)
}

// inlineStreams is how many parked streams an account may have for a
// change to be written to them by whoever advanced the feed (the hook,
// on the publisher's goroutine, or the feed's goroutine) rather than
// by the fan-out pool: for a user's few devices, one non-blocking write
// each costs less than readying a worker, and the hop to the pool was
// a good part of the time from commit to the client. Beyond it, the
// pool's workers spread the writes over the cores.
const inlineStreams = 4

// advance moves the feed to next (each state the larger of next's and
// the feed's: the states only grow, and two advances may run at once,
// the hook's and the goroutine's, in either order) and tells the
// streams if it changed: awake ones through the changed channel,
// parked ones by a write, inline or through the pool. A failed feed
// stays failed.
func (s *Server) advance(f *feed, next streamState) {
	f.mu.Lock()
	if f.failed {
		f.mu.Unlock()
		return
	}
	next = streamState{email: max(next.email, f.state.email), mailbox: max(next.mailbox, f.state.mailbox),
		delivery: max(next.delivery, f.state.delivery)}
	if next == f.state {
		f.mu.Unlock()
		return
	}
	f.state = next
	close(f.changed)
	f.changed = make(chan struct{})
	if len(f.parked) > inlineStreams {
		s.notifyParkedLocked(f)
		f.mu.Unlock()
		return
	}
	var few [inlineStreams]*parkedStream
	n := 0
	for p := range f.parked {
		few[n] = p
		n++
	}
	f.mu.Unlock()
	// Outside f.mu: Deliver takes the stream's lock, under which the
	// stream's goroutine takes f.mu.
	for _, p := range few[:n] {
		p.Deliver(struct{}{})
	}
}

// notifyParkedLocked submits every parked stream to the fan-out pool,
// after the state changed or the feed failed. The caller holds f.mu;
// Submit only queues. A Pool that refuses is closed: so is the Loop,
// which has woken every parked stream already.
func (s *Server) notifyParkedLocked(f *feed) {
	for p := range f.parked {
		s.pool.Submit(uint64(f.user), p)
	}
}

// statesKnown reports whether ev carries the account's states after its
// commit (Event.States): this node's writes to a user with streams.
func statesKnown(ev *notify.Event) bool { return ev.States.Known }

// fromEvents is the state evs bring the feed to, from the states they
// carry (every one must: statesKnown), or the zero state when evs is
// empty. Events come in commit order, but advance takes the larger
// state anyway.
func fromEvents(evs []notify.Event) streamState {
	var next streamState
	for i := range evs {
		st := evs[i].States
		next.email = max(next.email, st.Email)
		next.mailbox = max(next.mailbox, st.Mailbox)
		if evs[i].Kind == notify.Appended {
			// RFC 8621 §1.5: EmailDelivery changes when mail is
			// delivered; the Email state after that commit.
			next.delivery = max(next.delivery, st.Email)
		}
	}
	return next
}

// acquireFeed returns user's feed, starting it (subscribed, states read)
// for the first stream; release it with releaseFeed.
//
// A commit reaches the feed in one of two ways. When every event the
// subscription holds carries the states after its commit (Event.States:
// this node's writes, stamped by the writer in the commit's
// transaction), the subscription's hook advances the feed from them on
// the publisher's goroutine (the store's waker), with no read of the
// store and no goroutine woken; the few parked streams of most accounts
// are written to right there (advance). Otherwise (a resync, or events
// without states: another node's commits, published by its listener)
// the hook wakes the feed's goroutine, which reads the states from the
// store, as every wake-up did before the events carried them.
func (s *Server) acquireFeed(ctx context.Context, user mailstore.UserID) (*feed, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if f := s.feeds[user]; f != nil {
		f.refs++
		return f, nil
	}
	// Subscribe before reading the states: a commit between the two is
	// then both in the states and in the subscription, never in neither.
	sub := s.store.Hub().SubscribeUser(int64(user), 0)
	st, err := s.store.AccountState(ctx, user)
	if err != nil {
		sub.Close()
		return nil, err
	}
	fctx, cancel := context.WithCancel(s.ctx)
	f := &feed{user: user, refs: 1, changed: make(chan struct{}), stop: cancel, done: make(chan struct{}),
		state: streamState{email: st.Email, mailbox: st.Mailbox, delivery: st.Email}}
	kick := make(chan struct{}, 1)
	s.feeds[user] = f
	go func() {
		defer close(f.done)
		defer sub.Close()
		for {
			select {
			case <-kick:
			case <-fctx.Done():
				return
			}
			evs, resync := sub.Take()
			if !resync && !slices.ContainsFunc(evs, func(ev notify.Event) bool { return !statesKnown(&ev) }) {
				// The hook found a stateless event, but the
				// goroutine came after another hook took it,
				// or nothing is left.
				s.advance(f, fromEvents(evs))
				continue
			}
			st, err := s.store.AccountState(fctx, user)
			if err != nil {
				f.mu.Lock()
				if fctx.Err() == nil {
					s.log.Error("event source: read state", "user", user, "err", err)
				}
				f.failed = true
				close(f.changed)
				s.notifyParkedLocked(f)
				f.mu.Unlock()
				return
			}
			// The events only say whether mail was delivered.
			next := streamState{email: st.Email, mailbox: st.Mailbox}
			if delivered(evs) {
				next.delivery = next.email
			}
			s.advance(f, next)
		}
	}()
	// Events queued since SubscribeUser are passed to the hook at once.
	sub.Hook(func() {
		evs, ok := sub.TakeIf(statesKnown)
		if !ok {
			select {
			case kick <- struct{}{}:
			default: // a wake-up is pending already
			}
			return
		}
		if len(evs) > 0 {
			s.advance(f, fromEvents(evs))
		}
	})
	return f, nil
}

// releaseFeed drops a stream's hold on f; the last one stops it and
// waits for its goroutine.
func (s *Server) releaseFeed(f *feed) {
	s.mu.Lock()
	f.refs--
	last := f.refs == 0
	if last && s.feeds[f.user] == f {
		delete(s.feeds, f.user)
	}
	s.mu.Unlock()
	if last {
		f.stop()
		<-f.done
	}
}
