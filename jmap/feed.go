package jmap

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"

	"pushmail/mailstore"
)

// feed is the one watcher of an account that all its event streams
// share: one notify subscription and one goroutine, which reads the
// account's states from the store once per wake-up and hands them to
// every stream. Without it, each of N streams would read the store on
// every commit: N reads per delivery.
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

// notifyParkedLocked submits every parked stream to the fan-out pool,
// after the state changed or the feed failed. The caller holds f.mu;
// Submit only queues. A Pool that refuses is closed: so is the Loop,
// which has woken every parked stream already.
func (s *Server) notifyParkedLocked(f *feed) {
	for p := range f.parked {
		s.pool.Submit(uint64(f.user), p)
	}
}

// acquireFeed returns user's feed, starting it (subscribed, states read)
// for the first stream; release it with releaseFeed.
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
	s.feeds[user] = f
	go func() {
		defer close(f.done)
		defer sub.Close()
		for {
			select {
			case <-sub.Ready():
			case <-fctx.Done():
				return
			}
			// Resync or not, the states come from the store; the events
			// only say whether mail was delivered.
			evs, _ := sub.Take()
			st, err := s.store.AccountState(fctx, user)
			f.mu.Lock()
			if err != nil {
				if fctx.Err() == nil {
					s.log.Error("event source: read state", "user", user, "err", err)
				}
				f.failed = true
				close(f.changed)
				s.notifyParkedLocked(f)
				f.mu.Unlock()
				return
			}
			next := streamState{email: st.Email, mailbox: st.Mailbox, delivery: f.state.delivery}
			if delivered(evs) {
				next.delivery = next.email
			}
			if next != f.state {
				f.state = next
				close(f.changed)
				f.changed = make(chan struct{})
				s.notifyParkedLocked(f)
			}
			f.mu.Unlock()
		}
	}()
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
