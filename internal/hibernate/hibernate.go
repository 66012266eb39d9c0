// Package hibernate keeps connections that wait for something to happen
// without a goroutine or a buffer each. A server parks such a connection
// (an IMAP session in IDLE, later an HTTP EventSource stream) in a Loop
// and lets its goroutine end; the Loop calls the connection's wake
// function, once, when the client sends something or hangs up, when its
// owner's event source signals it (Conn.Wake, e.g. from a
// notify.Subscription hook), when its deadline passes, or when the Loop
// closes. The wake function starts a goroutine that carries on with the
// connection.
//
// Invariants:
//   - One goroutine per Loop (started by the first Park, stopped by
//     Close) waits on the readiness of every parked socket, through one
//     epoll instance on Linux; nothing polls.
//   - A parked connection costs a small record, its place in the Loop's
//     deadline heap (one timer for all: the earliest) and its epoll
//     registration: the socket's descriptor is registered as it is (from
//     syscall.RawConn.Control), never duplicated, since descriptors are
//     scarce. Go's own netpoller keeps it too; the two do not interfere.
//   - wake is called exactly once per Park, with every reason known at
//     that moment, never while the Loop's lock is held. After it, the
//     Loop forgets the connection: a readiness event that was already on
//     its way is dropped, a timer already firing does nothing.
//   - The owner never closes a parked connection's socket before it has
//     woken (Conn.Wake from the owner wakes it at once). The registration
//     is one-shot: an event after wake-up is not reported; closing the
//     socket, later, removes the registration (the kernel does it when
//     the last descriptor of the socket is closed, and there is only one).
//   - The Loop reads nothing from the sockets: a wake-up for Readable
//     leaves the bytes (or the end of the stream) for the owner to read.
//   - The owner may write to a parked connection without waking it
//     (Hold, Write, Release: an event pushed from a worker); Write never
//     blocks, and a wake-up that comes while the connection is held is
//     delivered by Release, so that the owner's goroutine never runs
//     alongside that write.
//   - If the readiness loop fails (epoll_wait errs), every parked
//     connection wakes as Readable and Park refuses: nothing stays asleep
//     where no input can wake it.
package hibernate

import (
	"container/heap"
	"errors"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Reason says why a parked connection woke. Several may be set at once.
type Reason uint8

// The reasons for a wake-up.
const (
	// Readable: the socket has input, or the peer closed it, or it
	// failed. The owner reads to find out which.
	Readable Reason = 1 << iota
	// Signaled: the owner's Conn.Wake, e.g. an event for the connection.
	Signaled
	// Expired: the deadline given to Park passed.
	Expired
	// Stopped: the Loop closed (server shutdown); the owner should end
	// the connection.
	Stopped
)

// String lists the reasons, for logs.
func (r Reason) String() string {
	if r == 0 {
		return "none"
	}
	var s string
	for _, n := range []struct {
		r    Reason
		name string
	}{{Readable, "readable"}, {Signaled, "signaled"}, {Expired, "expired"}, {Stopped, "stopped"}} {
		if r&n.r != 0 {
			if s != "" {
				s += "|"
			}
			s += n.name
		}
	}
	return s
}

// Errors of Park.
var (
	// ErrClosed: the Loop is closed, or its readiness loop failed; the
	// connection was not parked.
	ErrClosed = errors.New("hibernate: loop closed")
	// ErrUnsupported: this platform has no readiness loop here, or the
	// connection has no socket descriptor.
	ErrUnsupported = errors.New("hibernate: not supported")
)

// Loop is a readiness loop over parked connections. The zero value is
// not usable; create one with New. It opens its poller and starts its
// goroutine at the first Park; Close wakes every parked connection and
// stops the goroutine. A Loop is safe for concurrent use.
type Loop struct {
	log *slog.Logger

	mu     sync.Mutex
	closed bool
	failed bool    // the readiness loop ended on an error (fail)
	poll   *poller // nil until the first Park
	parked map[uint64]*Conn
	// deadlines holds the parked connections that have one, earliest
	// first; timer fires at the earliest (expire).
	deadlines deadlineHeap
	timer     *time.Timer
	nextID    uint64 // 0 is the poller's own wake-up
	done      chan struct{}

	wakes atomic.Uint64
}

// New returns a Loop that logs its own failures to log (nil:
// slog.Default()).
func New(log *slog.Logger) *Loop {
	if log == nil {
		log = slog.Default()
	}
	return &Loop{log: log, parked: make(map[uint64]*Conn)}
}

// Conn is a parked connection: what its owner keeps to wake it, or to
// write to it without waking it (Hold, Write, Release).
type Conn struct {
	loop *Loop
	id   uint64
	wake func(Reason)
	// deadline (Unix ns) and hidx, its index in the Loop's deadline
	// heap (-1: not in it); under the Loop's mu.
	deadline int64
	hidx     int
	rc       syscall.RawConn // the socket, for Write
	// state is held, woken and the reasons of wake-ups that came while
	// held; see fire, Hold and Release.
	state atomic.Uint32
}

// Conn.state's bits above the reasons.
const (
	held  = 1 << 8 // the owner writes to the connection: wake-ups wait
	woken = 1 << 9 // wake was called, or is about to be
	// reasonMask covers the Reason bits.
	reasonMask = 0xff
)

// Park puts conn to sleep until it is readable, its owner calls Wake,
// deadline passes (a zero deadline never does) or the Loop closes; then
// wake is called, once, on the goroutine that noticed: the Loop's, a
// timer's, the caller of Wake or Close. wake must not block: it should
// start the goroutine that takes the connection back. Input already
// waiting in the socket wakes it at once; input the owner holds in its
// own buffers does not, so the owner parks only with empty ones.
//
// On error (ErrClosed, ErrUnsupported, or the poller's) nothing was
// parked and wake will not be called.
func (l *Loop) Park(conn syscall.Conn, deadline time.Time, wake func(Reason)) (*Conn, error) {
	rc, err := conn.SyscallConn()
	if err != nil {
		return nil, errors.Join(ErrUnsupported, err)
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed || l.failed {
		return nil, ErrClosed
	}
	if l.poll == nil {
		p, err := newPoller()
		if err != nil {
			return nil, err
		}
		l.poll = p
		l.done = make(chan struct{})
		go l.run(p, l.done)
	}
	l.nextID++
	c := &Conn{loop: l, id: l.nextID, wake: wake, rc: rc}
	// Registered under mu, so that Close finds every connection either
	// parked in full or not at all; the syscall costs about a
	// microsecond.
	var perr error
	if err := rc.Control(func(fd uintptr) { perr = l.poll.arm(int(fd), c.id) }); err != nil {
		return nil, err // the socket is closed
	}
	if perr != nil {
		return nil, perr
	}
	l.parked[c.id] = c
	c.hidx = -1
	if !deadline.IsZero() {
		c.deadline = deadline.UnixNano()
		heap.Push(&l.deadlines, c)
		if c.hidx == 0 {
			l.armLocked()
		}
	}
	return c, nil
}

// Wake wakes c for r unless it has woken already: wake is called on the
// caller's goroutine before Wake returns. It never blocks on the
// connection, so it may be called from an event publisher (with
// Signaled) or by the owner that wants its connection back at once.
func (c *Conn) Wake(r Reason) { c.loop.wakeID(c.id, r) }

// wakeID wakes the connection registered as id, if it is still parked.
func (l *Loop) wakeID(id uint64, r Reason) {
	l.mu.Lock()
	c, ok := l.parked[id]
	if ok {
		delete(l.parked, id)
		if c.hidx >= 0 {
			heap.Remove(&l.deadlines, c.hidx)
		}
	}
	l.mu.Unlock()
	if !ok {
		return
	}
	c.fire(r)
}

// fire calls wake for r, unless the owner holds the connection: then
// Release calls it. The connection is out of the Loop already.
func (c *Conn) fire(r Reason) {
	for {
		st := c.state.Load()
		if st&woken != 0 {
			return
		}
		if st&held != 0 {
			if c.state.CompareAndSwap(st, st|uint32(r)) {
				return
			}
			continue
		}
		if c.state.CompareAndSwap(st, st|woken) {
			c.loop.wakes.Add(1)
			c.wake(r)
			return
		}
	}
}

// Hold reserves a parked connection for its owner, who writes to it
// (Write) without waking it, e.g. to push an event from a worker: while
// held, a wake-up (input, deadline, Wake, Close) is recorded, not
// delivered, and Release delivers it. Hold reports false if the
// connection has woken or is held already; then the owner must leave
// it. Hold does not synchronise the owner's own state: the owner that
// may Hold from several goroutines keeps its own lock.
func (c *Conn) Hold() bool {
	for {
		st := c.state.Load()
		if st&(held|woken|reasonMask) != 0 {
			return false
		}
		if c.state.CompareAndSwap(st, st|held) {
			return true
		}
	}
}

// Release ends a Hold. If something woke the connection meanwhile, wake
// is called now, on the caller's goroutine, with every reason recorded.
func (c *Conn) Release() {
	for {
		st := c.state.Load()
		r := Reason(st & reasonMask)
		if r == 0 {
			if c.state.CompareAndSwap(st, st&^held) {
				return
			}
			continue
		}
		if c.state.CompareAndSwap(st, woken) {
			c.loop.wakes.Add(1)
			c.wake(r)
			return
		}
	}
}

// Write writes p to the parked socket without blocking, as much as the
// socket's send buffer takes, and returns how many bytes went: fewer than
// len(p) with a nil error when the buffer is full (the owner then wakes
// the connection to write the rest, as a blocking writer). The caller
// holds the connection (Hold). Nothing else may write to the socket
// meanwhile: Go's own writes are not serialised with it.
func (c *Conn) Write(p []byte) (int, error) {
	var n int
	var werr error
	err := c.rc.Control(func(fd uintptr) { n, werr = writeNonblock(int(fd), p) })
	if err != nil {
		return 0, err
	}
	return n, werr
}

// Wakes returns how many parked connections have woken, for metrics.
func (l *Loop) Wakes() uint64 { return l.wakes.Load() }

// Len returns the number of parked connections.
func (l *Loop) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.parked)
}

// Close wakes every parked connection with Stopped, refuses later Parks
// and stops the Loop's goroutine, waiting for it. It is safe to call more
// than once.
func (l *Loop) Close() error {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return nil
	}
	l.closed = true
	parked := l.takeAllLocked()
	p, done := l.poll, l.done
	l.mu.Unlock()
	wakeAll(parked, Stopped)
	if p == nil {
		return nil
	}
	err := p.interrupt()
	<-done
	return errors.Join(err, p.close())
}

// wakeAll wakes conns, which are out of the Loop already, for r.
func wakeAll(conns []*Conn, r Reason) {
	for _, c := range conns {
		c.fire(r)
	}
}

// takeAllLocked takes every parked connection out of the Loop, and stops
// its timer. The caller holds mu.
func (l *Loop) takeAllLocked() []*Conn {
	parked := make([]*Conn, 0, len(l.parked))
	for id, c := range l.parked {
		parked = append(parked, c)
		delete(l.parked, id)
		c.hidx = -1
	}
	clear(l.deadlines)
	l.deadlines = l.deadlines[:0]
	if l.timer != nil {
		l.timer.Stop()
	}
	return parked
}

// armLocked sets the Loop's timer for the earliest deadline. The caller
// holds mu, and the heap is not empty.
func (l *Loop) armLocked() {
	d := time.Duration(l.deadlines[0].deadline - time.Now().UnixNano())
	if l.timer == nil {
		l.timer = time.AfterFunc(d, l.expire)
		return
	}
	l.timer.Reset(d)
}

// expire is the Loop's timer: it wakes the connections whose deadline
// has passed, and sets the timer for the next.
func (l *Loop) expire() {
	now := time.Now().UnixNano()
	var due []*Conn
	l.mu.Lock()
	for len(l.deadlines) > 0 && l.deadlines[0].deadline <= now {
		c := heap.Pop(&l.deadlines).(*Conn)
		delete(l.parked, c.id)
		due = append(due, c)
	}
	if len(l.deadlines) > 0 {
		l.armLocked()
	}
	l.mu.Unlock()
	wakeAll(due, Expired)
}

// deadlineHeap orders parked connections by deadline (container/heap).
type deadlineHeap []*Conn

func (h deadlineHeap) Len() int           { return len(h) }
func (h deadlineHeap) Less(i, j int) bool { return h[i].deadline < h[j].deadline }
func (h deadlineHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].hidx, h[j].hidx = i, j
}
func (h *deadlineHeap) Push(x any) {
	c := x.(*Conn)
	c.hidx = len(*h)
	*h = append(*h, c)
}
func (h *deadlineHeap) Pop() any {
	old := *h
	c := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	c.hidx = -1
	return c
}

// fail is the end of a readiness loop that can wait no more: every parked
// connection wakes as Readable, so that its owner reads it (a session in
// IDLE keeps waiting on its own goroutine, as an awake one does), and
// Park refuses from now on with ErrClosed, so that nothing sleeps where
// no input would wake it.
func (l *Loop) fail() {
	l.mu.Lock()
	l.failed = true
	parked := l.takeAllLocked()
	l.mu.Unlock()
	wakeAll(parked, Readable)
}

// run waits for readiness until Close interrupts it.
func (l *Loop) run(p *poller, done chan<- struct{}) {
	defer close(done)
	for {
		ids, err := p.wait()
		if err != nil {
			// No input would wake a parked connection now: they all wake
			// to wait on their own, and none parks again.
			l.log.Error("hibernate: readiness loop failed; every parked connection wakes", "err", err, "parked", l.Len())
			l.fail()
			return
		}
		for _, id := range ids {
			if id == 0 {
				return // interrupt: Close
			}
			l.wakeID(id, Readable)
		}
	}
}
