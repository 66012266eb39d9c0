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
//   - A parked connection costs a small record, its timer and its epoll
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
package hibernate

import (
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
	// ErrClosed: the Loop is closed; the connection was not parked.
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
	poll   *poller // nil until the first Park
	parked map[uint64]*Conn
	nextID uint64 // 0 is the poller's own wake-up
	done   chan struct{}

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

// Conn is a parked connection: what its owner keeps to wake it.
type Conn struct {
	loop  *Loop
	id    uint64
	wake  func(Reason)
	timer *time.Timer // nil without a deadline
}

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
	if l.closed {
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
	c := &Conn{loop: l, id: l.nextID, wake: wake}
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
	if !deadline.IsZero() {
		c.timer = time.AfterFunc(time.Until(deadline), func() { c.Wake(Expired) })
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
	}
	l.mu.Unlock()
	if !ok {
		return
	}
	l.wakes.Add(1)
	if c.timer != nil {
		c.timer.Stop()
	}
	c.wake(r)
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
	parked := make([]*Conn, 0, len(l.parked))
	for id, c := range l.parked {
		parked = append(parked, c)
		delete(l.parked, id)
	}
	p, done := l.poll, l.done
	l.mu.Unlock()
	for _, c := range parked {
		if c.timer != nil {
			c.timer.Stop()
		}
		c.wake(Stopped)
	}
	if p == nil {
		return nil
	}
	err := p.interrupt()
	<-done
	return errors.Join(err, p.close())
}

// run waits for readiness until Close interrupts it.
func (l *Loop) run(p *poller, done chan<- struct{}) {
	defer close(done)
	for {
		ids, err := p.wait()
		if err != nil {
			// Nothing can wake the parked connections but their timers
			// and owners now: say so loudly.
			l.log.Error("hibernate: readiness loop failed", "err", err)
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
