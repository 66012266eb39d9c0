package jmap

import (
	"context"
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
