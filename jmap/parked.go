package jmap

import (
	"bytes"
	"errors"
	"net"
	"net/http"
	"strconv"
	"sync"
	"syscall"
	"time"

	"pushmail/internal/hibernate"
)

// Parked event streams. An event stream over plain HTTP/1.x is taken
// from net/http (http.Hijacker) before anything is written, answered by
// hand, and then spends its idle time parked in the Server's readiness
// loop (internal/hibernate): no goroutine, no bufio buffers, no ping
// timer of its own (the Loop's deadline heap holds the next ping). Per
// commit, its account's feed writes the StateChange to each parked
// stream itself when the account has a few (inlineStreams), or submits
// them to the Server's fan-out pool (internal/fanout), whose workers
// write it; either way the bytes are encoded once for all the streams
// that were told the same state before (feed.event), and written with
// one non-blocking write to the socket (hibernate.Conn.Write). The
// stream stays parked.
//
// A stream wakes, on a goroutine of its own, only to do what is more
// than that write: the ping (its deadline), a write the socket did not
// take in full, the end of a closeafter=state stream, the client's
// hang-up (the socket becomes readable: a client sends nothing on an
// event stream, RFC 8620 §7.3, so any input ends it too), and the
// Server's Close (the Loop closes: Stopped). Awake, it writes what its
// client has not been told, then parks again.
//
// TLS streams (and HTTP/2, which only comes over TLS) stay on the plain
// path (serveEvents): the TLS record layer sits in Go's crypto/tls
// buffers, and a non-blocking write to the socket under it is not
// possible.

// streamWriteTimeout bounds a blocking write of an awake parked stream:
// a client that reads nothing for that long loses its stream. The
// Server's Close cuts such a write short.
const streamWriteTimeout = 30 * time.Second

// parkedStream is one event stream served outside net/http.
type parkedStream struct {
	s          *Server
	f          *feed
	conn       net.Conn
	sc         syscall.Conn // conn's socket, nil if it has none (not parkable)
	mask       typeMask
	ping       time.Duration // 0: no pings
	closeAfter bool

	// mu orders the fan-out worker's write (Deliver) with the stream's
	// own goroutine: the goroutine syncs with the feed and parks under
	// mu, so a state the feed publishes is either seen by the goroutine
	// before it parks or delivered to the parked stream after.
	mu   sync.Mutex
	hc   *hibernate.Conn // nil while awake
	last streamState     // what the client has been sent (or will be: pending)
	// pending is the rest of an event the socket did not take in full
	// while parked; the awake goroutine writes it first. It aliases the
	// feed's shared bytes, which nobody modifies.
	pending []byte
}

// parkable reports whether r's stream can be hijacked and parked: plain
// HTTP/1.x, and the Server was not told to keep streams awake.
func (s *Server) parkable(r *http.Request) bool {
	return !s.opts.KeepStreamsAwake && r.TLS == nil && r.ProtoMajor == 1
}

// serveParked takes r's connection from net/http and serves the event
// stream on it from last (what the client has been told, by Last-Event-ID,
// or the states at connect). It reports false if the connection could not
// be taken; then nothing has been written and the caller serves the
// stream itself. f is released when the stream ends.
func (s *Server) serveParked(w http.ResponseWriter, f *feed, mask typeMask, last streamState, ping time.Duration, closeAfter bool) bool {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return false
	}
	s.streams.Add(1)
	s.mu.Unlock()
	// Anything the client sent beyond the request, left in the reader
	// net/http hands over, is ignored: the response says
	// Connection: close. Its buffers go with it: a parked stream keeps
	// none.
	head := w.Header()
	conn, _, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.streams.Done()
		s.log.Debug("event source: cannot take the connection; it stays with net/http", "err", err)
		return false
	}
	// net/http set deadlines for reading the request; the stream has
	// none but its own.
	if err := conn.SetDeadline(time.Time{}); err != nil {
		s.log.Debug("event source: clear deadlines", "err", err)
	}
	p := &parkedStream{s: s, f: f, conn: conn, mask: mask, ping: ping, closeAfter: closeAfter, last: last}
	if sc, ok := conn.(syscall.Conn); ok {
		p.sc = sc
	}
	// The response head by hand, with whatever headers the handlers
	// before this one set: no Content-Length and no chunked coding, so
	// the body is what comes until the connection closes (RFC 9112 §6.3,
	// item 8), which is how the stream ends. A comment line first, as
	// serveEvents sends it.
	h := head.Clone()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	h.Set("Connection", "close")
	h.Set("Date", time.Now().UTC().Format(http.TimeFormat))
	var b bytes.Buffer
	b.WriteString("HTTP/1.1 200 OK\r\n")
	if err := h.Write(&b); err != nil {
		panic("jmap: write a header to memory: " + err.Error()) // bytes.Buffer does not fail
	}
	b.WriteString("\r\n: open\n\n")
	f.attach(p)
	if err := p.write(b.Bytes()); err != nil {
		p.end()
		return true
	}
	p.run()
	return true
}

// write writes b to the awake stream's socket, blocking, within
// streamWriteTimeout.
func (p *parkedStream) write(b []byte) error {
	if err := p.conn.SetWriteDeadline(time.Now().Add(streamWriteTimeout)); err != nil {
		return err
	}
	// After the deadline is set: the Server's Close cancels the context,
	// then cuts the writes under way short (Server.Close).
	if err := p.s.ctx.Err(); err != nil {
		return err
	}
	_, err := p.conn.Write(b)
	return err
}

// end closes the stream: its connection, its place in the feed, its
// hold on the Server's Close.
func (p *parkedStream) end() {
	if err := p.conn.Close(); err != nil {
		p.s.log.Debug("event source: close", "err", err)
	}
	p.f.detach(p)
	p.s.releaseFeed(p.f)
	p.s.streams.Done()
}

// wake is the stream's hibernate wake function: it must not block, so
// the stream goes on on a goroutine of its own (counted in s.streams
// since the stream began).
func (p *parkedStream) wake(r hibernate.Reason) { go p.resume(r) }

// resume is the stream's goroutine after a wake-up for r.
func (p *parkedStream) resume(r hibernate.Reason) {
	p.mu.Lock()
	p.hc = nil
	p.mu.Unlock()
	// Stopped: the Server closes. Readable: the client hung up or sent
	// what it should not (RFC 8620 §7.3: the client only reads).
	if r&(hibernate.Stopped|hibernate.Readable) != 0 {
		p.end()
		return
	}
	if r&hibernate.Expired != 0 {
		if err := p.write(p.pingEvent()); err != nil {
			p.end()
			return
		}
	}
	p.run()
}

// pingEvent is the ping event (RFC 8620 §7.3: its data is an object
// with the interval in seconds, the one the server uses).
func (p *parkedStream) pingEvent() []byte {
	return []byte("event: ping\ndata: {\"interval\":" + strconv.Itoa(int(p.ping/time.Second)) + "}\n\n")
}

// run is the awake stream: it writes what the client has not been told
// until it is in step with the feed, then parks and returns; or ends
// the stream.
func (p *parkedStream) run() {
	for {
		if p.s.ctx.Err() != nil {
			p.end()
			return
		}
		p.mu.Lock()
		ev, pending := p.pending, p.pending != nil
		p.pending = nil
		cur, changed, ok := p.f.current()
		if !ok {
			p.mu.Unlock()
			p.end() // the store failed; the feed logged it
			return
		}
		if !pending {
			if ev = p.f.event(p.mask, p.last, cur); ev != nil {
				p.last = cur
			}
		}
		if ev == nil {
			err := p.parkLocked()
			p.mu.Unlock()
			if err == nil {
				return
			}
			if !errors.Is(err, hibernate.ErrUnsupported) {
				p.end() // the Loop is closed: the Server closes
				return
			}
			// No readiness loop here: wait awake, as serveEvents does.
			if !p.waitAwake(changed) {
				p.end()
				return
			}
			continue
		}
		p.mu.Unlock()
		if err := p.write(ev); err != nil {
			p.end()
			return
		}
		// RFC 8620 §7.3, closeafter=state: the response ends after the
		// first state event (pending is only ever a state event).
		if p.closeAfter {
			p.end()
			return
		}
	}
}

// parkLocked parks the stream until its next ping, if any. The caller
// holds mu.
func (p *parkedStream) parkLocked() error {
	if p.sc == nil {
		return hibernate.ErrUnsupported
	}
	var deadline time.Time
	if p.ping > 0 {
		deadline = time.Now().Add(p.ping)
	}
	hc, err := p.s.loop.Park(p.sc, deadline, p.wake)
	if err != nil {
		return err
	}
	p.hc = hc
	return nil
}

// waitAwake waits, on the stream's goroutine, for the feed to change
// (changed) or for the next ping, which it writes; false when the
// stream must end.
func (p *parkedStream) waitAwake(changed <-chan struct{}) bool {
	var tick <-chan time.Time
	if p.ping > 0 {
		t := time.NewTimer(p.ping)
		defer t.Stop()
		tick = t.C
	}
	select {
	case <-changed:
		return true
	case <-tick:
		return p.write(p.pingEvent()) == nil
	case <-p.s.ctx.Done():
		return false
	}
}

// Deliver is the fan-out worker's job (fanout.Target): write the
// feed's new state to the parked stream without waking it. Whatever is
// more than one non-blocking write wakes the stream, whose goroutine
// does it.
func (p *parkedStream) Deliver(struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	hc := p.hc
	if hc == nil || !hc.Hold() {
		return // awake, or waking: its goroutine syncs with the feed before it parks
	}
	cur, _, ok := p.f.current()
	if !ok || p.closeAfter {
		// The store failed, or the stream ends after this event: its
		// goroutine does it.
		hc.Release()
		hc.Wake(hibernate.Signaled)
		return
	}
	ev := p.f.event(p.mask, p.last, cur)
	if ev == nil {
		hc.Release()
		return
	}
	n, err := hc.Write(ev)
	p.last = cur
	if err != nil || n < len(ev) {
		// The socket took less (or failed): the goroutine writes the
		// rest, blocking, or finds the failure and ends the stream.
		p.pending = ev[n:]
		hc.Release()
		hc.Wake(hibernate.Signaled)
		return
	}
	hc.Release()
}

// typeMask is a set of pushTypes, bit i for pushTypes[i].
type typeMask uint8

func maskOf(types []string) typeMask {
	var m typeMask
	for i, t := range pushTypes {
		for _, u := range types {
			if u == t {
				m |= 1 << i
			}
		}
	}
	return m
}

// has reports whether m holds the type name.
func (m typeMask) has(name string) bool {
	for i, t := range pushTypes {
		if t == name {
			return m&(1<<i) != 0
		}
	}
	return false
}

// differs reports whether a type of m has a different state in cur than
// in last: whether a stream of types m is to be told of cur.
func (m typeMask) differs(last, cur streamState) bool {
	return (m.has("Email") || m.has("Thread")) && cur.email != last.email ||
		m.has("Mailbox") && cur.mailbox != last.mailbox ||
		m.has("EmailDelivery") && cur.delivery != last.delivery
}
