// Package fanout runs the deliveries of an event to many watchers on a
// few worker goroutines: one event for a mailbox watched by ten thousand
// sleeping connections becomes ten thousand small jobs (build the bytes
// for the watcher's view, write them to its socket without blocking),
// spread over as many workers as there are cores, instead of ten thousand
// goroutine wake-ups. It knows nothing of IMAP: a Target is anything that
// can deliver what it has been told of (an IMAP session parked in IDLE
// today, an HTTP EventSource stream later).
//
// Invariants:
//   - Submit never blocks and never runs a Target: the event publisher
//     (the store's waker) only queues, and goes on to other mailboxes.
//   - A fixed number of workers, started by the first Submit and stopped
//     by Close, which waits for them; nothing is started per event.
//   - Targets are submitted to a group (an IMAP session's: its mailbox).
//     Within a group they are taken in submission order; the groups take
//     turns, a chunk at a time, so that one mailbox watched by ten
//     thousand does not hold back the one watcher of another for the
//     whole of its fan-out. A chunk goes to whichever worker is free; a
//     Target submitted twice may run on two workers at once, so a Target
//     serialises its own deliveries.
//   - Each worker owns a scratch value of type S (its buffers), handed to
//     every Deliver it runs, so that building a response allocates
//     nothing.
package fanout

import (
	"sync"
)

// Target is a watcher that the Pool delivers to.
type Target[S any] interface {
	// Deliver sends the watcher what it has not been told yet, without
	// blocking on its connection: if it cannot, it hands the rest to
	// whatever serves the watcher otherwise (for an IMAP session: wakes
	// it). scratch is the running worker's, for the duration of the call.
	Deliver(scratch S)
}

// chunk is how many Targets a worker takes at once: small enough that two
// workers share a fan-out to a few hundred and that another group waits
// for no more than a chunk per worker, large enough that the queue's lock
// is taken once per 64 deliveries, not per delivery.
const chunk = 64

// Pool is a bounded set of workers that run Targets' deliveries. The zero
// value is not usable; create one with New, and Close it. A Pool is safe
// for concurrent use.
type Pool[S any] struct {
	mu     sync.Mutex
	cond   sync.Cond // a worker waits on it for work or Close
	groups map[uint64]*group[S]
	// turns holds the groups with work in the order they are served:
	// turns[head] next; a group that still has work after its chunk goes
	// to the back.
	turns  []*group[S]
	head   int
	idle   int // workers waiting on cond
	closed bool
	wg     sync.WaitGroup

	workers    int
	newScratch func() S
	started    bool

	delivered uint64 // Targets run, under mu
}

// group is the queue of one group's Targets: queue[head:] still to run.
type group[S any] struct {
	key   uint64
	queue []Target[S]
	head  int
}

// New returns a Pool of workers goroutines (at least one), each with its
// own scratch from newScratch. They start with the first Submit: a Pool
// that is never used costs nothing but itself.
func New[S any](workers int, newScratch func() S) *Pool[S] {
	p := &Pool[S]{workers: max(workers, 1), newScratch: newScratch, groups: make(map[uint64]*group[S])}
	p.cond.L = &p.mu
	return p
}

// Submit queues t for delivery in group key and returns at once; it
// reports false if the Pool is closed, and then the caller must serve t
// itself.
func (p *Pool[S]) Submit(key uint64, t Target[S]) bool {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return false
	}
	if !p.started {
		p.started = true
		for range p.workers {
			scratch := p.newScratch()
			p.wg.Go(func() { p.work(scratch) })
		}
	}
	g := p.groups[key]
	if g == nil {
		g = &group[S]{key: key}
		p.groups[key] = g
		p.turns = append(p.turns, g)
	}
	g.queue = append(g.queue, t)
	if p.idle > 0 {
		p.cond.Signal()
	}
	p.mu.Unlock()
	return true
}

// Delivered returns how many Targets have run, for metrics and tests.
func (p *Pool[S]) Delivered() uint64 {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.delivered
}

// Close stops the workers once they have run what is queued, and waits
// for them. Submit refuses from then on. It is safe to call more than
// once.
func (p *Pool[S]) Close() {
	p.mu.Lock()
	p.closed = true
	p.cond.Broadcast()
	p.mu.Unlock()
	p.wg.Wait()
}

// work is one worker: it takes chunks, a group at a time, until Close.
func (p *Pool[S]) work(scratch S) {
	batch := make([]Target[S], 0, chunk)
	p.mu.Lock()
	for {
		for p.head == len(p.turns) && !p.closed {
			p.idle++
			p.cond.Wait()
			p.idle--
		}
		if p.head == len(p.turns) {
			p.mu.Unlock()
			return // closed, and nothing left
		}
		batch = p.takeLocked(batch[:0])
		if p.head < len(p.turns) && p.idle > 0 {
			p.cond.Signal() // more for another core
		}
		p.mu.Unlock()
		for i, t := range batch {
			t.Deliver(scratch)
			batch[i] = nil
		}
		p.mu.Lock()
		p.delivered += uint64(len(batch))
	}
}

// takeLocked appends to batch a chunk of the group whose turn it is, and
// sends that group to the back of the turns, or forgets it if it has no
// more. The caller holds mu, and there is a group with work.
func (p *Pool[S]) takeLocked(batch []Target[S]) []Target[S] {
	g := p.turns[p.head]
	p.turns[p.head] = nil
	p.head++
	end := min(len(g.queue), g.head+chunk)
	batch = append(batch, g.queue[g.head:end]...)
	clear(g.queue[g.head:end])
	g.head = end
	if g.head == len(g.queue) {
		delete(p.groups, g.key)
	} else {
		if g.head > 4*chunk && 2*g.head > len(g.queue) {
			n := copy(g.queue, g.queue[g.head:])
			clear(g.queue[n:])
			g.queue, g.head = g.queue[:n], 0
		}
		p.turns = append(p.turns, g)
	}
	if p.head == len(p.turns) {
		p.turns, p.head = p.turns[:0], 0
	} else if p.head > 4*chunk && 2*p.head > len(p.turns) {
		// Many groups, never all served at once: move the rest down
		// rather than grow for ever.
		n := copy(p.turns, p.turns[p.head:])
		clear(p.turns[n:])
		p.turns, p.head = p.turns[:n], 0
	}
	return batch
}
