package notify

import (
	"sync"
	"sync/atomic"
)

// DefaultQueueLen is the number of events a Subscription buffers before it
// is marked for resynchronisation.
const DefaultQueueLen = 256

// Hub routes events to the subscribers of each mailbox. The zero value is
// not usable; create one with New. A Hub is safe for concurrent use.
type Hub struct {
	queueLen int
	nextID   atomic.Uint64
	resyncs  atomic.Uint64

	mu    sync.RWMutex
	subs  map[int64]map[*Subscription]struct{} // by mailbox
	users map[int64]map[*Subscription]struct{} // by user: SubscribeUser
	all   map[*Subscription]struct{}           // every event: SubscribeAll
}

// New returns a Hub whose subscriptions buffer queueLen events each
// (DefaultQueueLen when queueLen <= 0).
func New(queueLen int) *Hub {
	if queueLen <= 0 {
		queueLen = DefaultQueueLen
	}
	return &Hub{queueLen: queueLen, subs: make(map[int64]map[*Subscription]struct{}),
		users: make(map[int64]map[*Subscription]struct{}), all: make(map[*Subscription]struct{})}
}

// Subscribe starts delivering the events of mailbox to a new Subscription.
// The caller must Close it when done watching.
func (h *Hub) Subscribe(mailbox int64) *Subscription {
	s := h.newSubscription(mailbox)
	h.mu.Lock()
	m := h.subs[mailbox]
	if m == nil {
		m = make(map[*Subscription]struct{})
		h.subs[mailbox] = m
	}
	m[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// SubscribeUser starts delivering every event of user (Event.User) to a
// new Subscription, whichever mailbox it names, and the events that name
// none (SubscriptionChanged, server MetadataChanged): one subscription
// lets a watcher follow all of a user's mailboxes (IMAP NOTIFY, RFC
// 5465) at the cost of one map entry, however many there are. Its
// Mailbox is 0. It buffers queueLen events (the Hub's when queueLen <= 0)
// before it is marked for resynchronisation: a watcher of many mailboxes
// may want more room than one of a single mailbox. The caller must Close
// it when done watching.
func (h *Hub) SubscribeUser(user int64, queueLen int) *Subscription {
	s := h.newSubscription(0)
	s.user = user
	if queueLen > 0 {
		s.max = queueLen
	}
	h.mu.Lock()
	m := h.users[user]
	if m == nil {
		m = make(map[*Subscription]struct{})
		h.users[user] = m
	}
	m[s] = struct{}{}
	h.mu.Unlock()
	return s
}

// WatchesUser reports whether user has watchers of their own
// (SubscribeUser): a publisher uses it to skip work that only they
// would use, such as reading the account's states for Event.States. A
// watcher that subscribes just after may miss that work; it gets the
// events all the same.
func (h *Hub) WatchesUser(user int64) bool {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.users[user]) > 0
}

// SubscribeAll starts delivering every event, of every user and mailbox,
// to a new Subscription: for a server-wide watcher such as the wake-up
// engine (package wakeup), which must hear of every user's mail without
// holding a subscription per user. It buffers queueLen events (the Hub's
// when queueLen <= 0). The caller must Close it when done watching.
func (h *Hub) SubscribeAll(queueLen int) *Subscription {
	s := h.newSubscription(0)
	s.everything = true
	if queueLen > 0 {
		s.max = queueLen
	}
	h.mu.Lock()
	h.all[s] = struct{}{}
	h.mu.Unlock()
	return s
}

func (h *Hub) newSubscription(mailbox int64) *Subscription {
	return &Subscription{
		hub:     h,
		id:      h.nextID.Add(1),
		mailbox: mailbox,
		ready:   make(chan struct{}, 1),
		max:     h.queueLen,
	}
}

// Publish hands ev to every subscriber of ev.Mailbox and wakes them: Enqueue
// and Wake in one. It never blocks: a subscriber whose queue is full drops
// its queue and is marked to resynchronise.
func (h *Hub) Publish(ev Event) {
	var w Wakeups
	h.Enqueue(ev, &w)
	w.Wake()
}

// Enqueue is Publish without the wake-up: it queues ev on every subscriber
// of ev.Mailbox, of ev.User (SubscribeUser) and of every event
// (SubscribeAll), so that their next Take returns it, and adds to w the
// subscribers still to be woken; the caller then calls w.Wake. A publisher
// uses it to make events visible before it releases its own callers while
// leaving the wake-ups, which ready one goroutine per subscriber and are
// the bulk of a large fan-out, until after. Like Publish, it never blocks.
func (h *Hub) Enqueue(ev Event, w *Wakeups) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if ev.Mailbox != 0 {
		for s := range h.subs[ev.Mailbox] {
			if s.enqueue(ev) {
				w.subs = append(w.subs, s)
			}
		}
	}
	if ev.User != 0 {
		for s := range h.users[ev.User] {
			if s.enqueue(ev) {
				w.subs = append(w.subs, s)
			}
		}
	}
	for s := range h.all {
		if s.enqueue(ev) {
			w.subs = append(w.subs, s)
		}
	}
}

// Wakeups holds the subscriptions that Enqueue gave events without waking
// their readers. Each appears once, however many events it was given, and
// until it is woken no other Wakeups lists it. The zero value is empty and
// ready to use. A Wakeups is not safe for concurrent use; hand it over
// whole (a channel send) to the goroutine that wakes.
type Wakeups struct {
	subs []*Subscription
}

// Len returns the number of subscriptions waiting to be woken.
func (w *Wakeups) Len() int { return len(w.subs) }

// Wake wakes the reader of every subscription in w, then empties w.
func (w *Wakeups) Wake() {
	for i, s := range w.subs {
		s.wake(true)
		w.subs[i] = nil
	}
	w.subs = w.subs[:0]
}

// Resync marks for resynchronisation every watcher of mailbox and of user
// (either may be 0), dropping what they have queued, and adds them to w:
// a publisher that cannot say what changed (events lost, or come out of
// order, from another node sharing the store) makes them rebuild their
// state from the store instead. The server's own subscriptions
// (SubscribeAll) are left alone: they act on their node's commits only
// (Event.Remote), which come in order and are never lost this way.
func (h *Hub) Resync(mailbox, user int64, w *Wakeups) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	if mailbox != 0 {
		for s := range h.subs[mailbox] {
			s.markResync(w)
		}
	}
	if user != 0 {
		for s := range h.users[user] {
			s.markResync(w)
		}
	}
}

// ResyncAll is Resync for every watcher of the hub: the publisher may
// have missed any change (its feed of another node's commits was cut).
func (h *Hub) ResyncAll(w *Wakeups) {
	h.mu.RLock()
	defer h.mu.RUnlock()
	for _, m := range h.subs {
		for s := range m {
			s.markResync(w)
		}
	}
	for _, m := range h.users {
		for s := range m {
			s.markResync(w)
		}
	}
}

// Resyncs returns how many times a subscription fell behind and was told
// to resynchronise, since the Hub was made.
func (h *Hub) Resyncs() uint64 { return h.resyncs.Load() }

// Subscriptions returns the number of open subscriptions of clients:
// mailbox and user watchers. The server's own (SubscribeAll) are not
// counted.
func (h *Hub) Subscriptions() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	n := 0
	for _, m := range h.subs {
		n += len(m)
	}
	for _, m := range h.users {
		n += len(m)
	}
	return n
}

func (h *Hub) unsubscribe(s *Subscription) {
	h.mu.Lock()
	if s.everything {
		delete(h.all, s)
		h.mu.Unlock()
		return
	}
	byKey, key := h.subs, s.mailbox
	if s.user != 0 {
		byKey, key = h.users, s.user
	}
	if m := byKey[key]; m != nil {
		delete(m, s)
		if len(m) == 0 {
			delete(byKey, key)
		}
	}
	h.mu.Unlock()
}

// Subscription is one watcher's view of the events of a mailbox. Its
// methods are safe for concurrent use; typically one goroutine (the IMAP
// session) reads it while publishers fill it.
type Subscription struct {
	hub     *Hub
	id      uint64
	mailbox int64 // 0 for a user watcher
	user    int64 // SubscribeUser's; 0 for a mailbox watcher
	// everything: SubscribeAll's, which gets every event
	everything bool
	ready      chan struct{} // one slot: "there is something to Take"
	max        int

	mu     sync.Mutex
	queue  []Event
	resync bool
	closed bool
	listed bool   // in a Wakeups, to be woken; Enqueue need not list it again
	hook   func() // see Hook; nil: wake-ups go to ready
}

// ID identifies the subscription; writers pass it as Event.Origin.
func (s *Subscription) ID() uint64 { return s.id }

// Mailbox returns the watched mailbox: 0 for SubscribeUser's.
func (s *Subscription) Mailbox() int64 { return s.mailbox }

// Ready returns a channel that receives a value when events (or a resync
// request) are waiting. One value may stand for many events: after a
// receive, call Take until it returns nothing.
func (s *Subscription) Ready() <-chan struct{} { return s.ready }

// Take returns the queued events in publish order and empties the queue.
// If resync is true, events were lost because the subscriber fell behind:
// the caller must rebuild its state from the store; the returned events
// are then those published after the loss.
func (s *Subscription) Take() (events []Event, resync bool) {
	s.mu.Lock()
	events, resync = s.queue, s.resync
	s.queue, s.resync = nil, false
	s.mu.Unlock()
	return events, resync
}

// TakeIf is Take for a watcher that can apply some events only: if no
// resync is due and ok accepts every queued event, it returns them and
// empties the queue, as Take does; otherwise it takes nothing and reports
// false, leaving them for Take. ok runs under the subscription's lock:
// it must only look at the event.
func (s *Subscription) TakeIf(ok func(*Event) bool) (events []Event, taken bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resync {
		return nil, false
	}
	for i := range s.queue {
		if !ok(&s.queue[i]) {
			return nil, false
		}
	}
	events, s.queue = s.queue, nil
	return events, true
}

// Hook makes s call f instead of signalling Ready, until Hook(nil): a
// watcher that has no goroutine to receive from Ready (a connection put
// to sleep in a readiness loop) learns of events without one. f runs on
// the publisher's goroutine, at most once per wake-up and never under
// the Hub's locks: it must not block, and should hand the work to
// another goroutine. A wake-up pending in Ready when Hook(f) is called
// is passed to f at once, before Hook returns.
//
// Hook(nil) returns to Ready, and leaves a value in it: f may have been
// called for events the watcher has not taken, and must not lose them.
func (s *Subscription) Hook(f func()) {
	s.mu.Lock()
	s.hook = f
	pending := false
	if f != nil {
		select {
		case <-s.ready:
			pending = true
		default:
		}
	} else {
		s.signalLocked()
	}
	s.mu.Unlock()
	if pending {
		f()
	}
}

// Close stops delivery to s. It is safe to call more than once.
func (s *Subscription) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	s.queue = nil
	s.hook = nil
	s.mu.Unlock()
	s.hub.unsubscribe(s)
}

// enqueue adds ev to the queue and reports whether the caller must add s
// to its Wakeups: s had no wake-up pending in one.
func (s *Subscription) enqueue(ev Event) (mustList bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	if len(s.queue) >= s.max {
		// Fell behind: drop what is queued rather than grow without bound.
		s.queue = nil
		if !s.resync {
			s.resync = true
			s.hub.resyncs.Add(1)
		}
	} else {
		s.queue = append(s.queue, ev)
	}
	if !s.listed {
		s.listed = true
		return true
	}
	return false
}

// markResync drops s's queue, marks it to resynchronise and lists it in w
// unless a wake-up is pending already.
func (s *Subscription) markResync(w *Wakeups) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.queue = nil
	if !s.resync {
		s.resync = true
		s.hub.resyncs.Add(1)
	}
	if !s.listed {
		s.listed = true
		w.subs = append(w.subs, s)
	}
}

// wake signals the reader without blocking, through its hook if it has
// one; a pending wake-up already covers it. listed: s was in a Wakeups,
// and may be listed again.
func (s *Subscription) wake(listed bool) {
	s.mu.Lock()
	if listed {
		s.listed = false
	}
	f := s.hook
	if f == nil {
		// Under mu, so that Hook sees either this value in ready or
		// nothing sent: a wake-up is never left in ready for a watcher
		// that now waits on its hook.
		s.signalLocked()
	}
	s.mu.Unlock()
	if f != nil {
		f()
	}
}

// signalLocked leaves a value in ready, unless one is there already.
func (s *Subscription) signalLocked() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}
