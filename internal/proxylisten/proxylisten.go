// Package proxylisten accepts connections that a trusted proxy opens with
// a HAProxy PROXY protocol header (version 1 or 2), so that the servers
// above see the real client's address: per-IP limits, login lockouts,
// the loopback test for plaintext passwords and the logs all use
// RemoteAddr.
//
// Trust policy, for a listener the operator marks:
//   - a connection whose peer is not in Options.Trusted is closed at once,
//     with or without a header: nobody else may claim an address;
//   - a connection from a trusted peer must open with a header within
//     Options.HeaderTimeout, or it is closed: a marked listener never
//     takes the proxy's own address for a client's;
//   - a LOCAL header (v2) or "PROXY UNKNOWN" (v1) is the proxy speaking
//     for itself, a health check: the connection keeps the proxy's
//     addresses;
//   - a header for anything but a TCP stream over IPv4 or IPv6 is refused.
//
// Headers are read concurrently, one goroutine per pending connection, so
// a stalled proxy connection never holds up Accept. The Listener owns
// those goroutines and its accept loop; Close stops and waits for them.
//
// Imports nothing of pushmail's: the parsing is github.com/pires/go-proxyproto.
package proxylisten

import (
	"bufio"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// DefaultHeaderTimeout bounds the wait for a header when
// Options.HeaderTimeout is 0. A proxy sends the header as soon as it
// connects, before any client byte (HAProxy proxy-protocol.txt §2.1).
const DefaultHeaderTimeout = 5 * time.Second

// maxPending bounds the connections whose header is being read; past it
// the accept loop waits for one to finish.
const maxPending = 256

// Reasons a connection is refused, as passed to Options.Rejected.
const (
	ReasonUntrusted = "untrusted" // the peer is not in Options.Trusted
	ReasonNoHeader  = "no_header" // no header, or none before the timeout
	ReasonBadHeader = "bad_header"
)

// Options configures a Listener.
type Options struct {
	// Trusted are the networks of the proxies. Connections from anywhere
	// else are refused. Empty: every connection is refused.
	Trusted []netip.Prefix
	// HeaderTimeout bounds the wait for the header; 0 means
	// DefaultHeaderTimeout.
	HeaderTimeout time.Duration
	// Logger receives one line per refused connection; nil: discarded.
	Logger *slog.Logger
	// Rejected, if set, is called with a Reason... constant for every
	// refused connection (for a metric). It must not block.
	Rejected func(reason string)
}

// Listener is a net.Listener whose connections report the client's
// addresses from their PROXY header. Create it with New; it is safe for
// concurrent use.
type Listener struct {
	ln   net.Listener
	opts Options

	ready   chan net.Conn
	errs    chan error
	done    chan struct{} // closed by Close
	pending chan struct{} // semaphore of header reads, maxPending
	wg      sync.WaitGroup

	closeOnce sync.Once
	closeErr  error
	mu        sync.Mutex
	reading   map[net.Conn]struct{} // connections whose header is awaited
}

// New wraps ln and starts accepting on it. The caller must Close the
// Listener, which closes ln.
func New(ln net.Listener, opts Options) *Listener {
	if opts.HeaderTimeout <= 0 {
		opts.HeaderTimeout = DefaultHeaderTimeout
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	l := &Listener{
		ln:      ln,
		opts:    opts,
		ready:   make(chan net.Conn),
		errs:    make(chan error),
		done:    make(chan struct{}),
		pending: make(chan struct{}, maxPending),
		reading: make(map[net.Conn]struct{}),
	}
	l.wg.Add(1)
	go l.acceptLoop()
	return l
}

// Accept returns the next connection whose header was read. Errors of the
// underlying listener are passed on; after Close it returns an error that
// wraps net.ErrClosed.
func (l *Listener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ready:
		return c, nil
	case err := <-l.errs:
		return nil, err
	case <-l.done:
		return nil, &net.OpError{Op: "accept", Net: l.ln.Addr().Network(), Addr: l.ln.Addr(), Err: net.ErrClosed}
	}
}

// Addr returns the underlying listener's address.
func (l *Listener) Addr() net.Addr { return l.ln.Addr() }

// Close closes the underlying listener and the connections still waiting
// for their header, and waits for the Listener's goroutines to end.
// Connections already returned by Accept are the caller's.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.closeErr = l.ln.Close()
		l.mu.Lock()
		for c := range l.reading {
			l.closeConn(c)
		}
		l.mu.Unlock()
		l.wg.Wait()
	})
	return l.closeErr
}

func (l *Listener) acceptLoop() {
	defer l.wg.Done()
	for {
		nc, err := l.ln.Accept()
		if err != nil {
			if !isTemporary(err) {
				// The listener is done: every later Accept says why.
				for {
					select {
					case l.errs <- err:
					case <-l.done:
						return
					}
				}
			}
			select {
			case l.errs <- err:
			case <-l.done:
				return
			}
			continue
		}
		select {
		case l.pending <- struct{}{}:
		case <-l.done:
			l.closeConn(nc)
			return
		}
		if !l.track(nc) {
			<-l.pending
			l.closeConn(nc)
			return
		}
		l.wg.Add(1)
		go l.admit(nc)
	}
}

// isTemporary reports a transient accept error (such as EMFILE), after
// which the server goes on accepting, as net/http does.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return !errors.Is(err, net.ErrClosed) && errors.As(err, &t) && t.Temporary()
}

// track records nc as awaiting its header, unless the Listener is closed.
func (l *Listener) track(nc net.Conn) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	select {
	case <-l.done:
		return false
	default:
	}
	l.reading[nc] = struct{}{}
	return true
}

func (l *Listener) untrack(nc net.Conn) {
	l.mu.Lock()
	delete(l.reading, nc)
	l.mu.Unlock()
}

// admit reads nc's header and hands the connection to Accept, or refuses it.
func (l *Listener) admit(nc net.Conn) {
	defer l.wg.Done()
	defer func() { <-l.pending }()
	c, reason, err := l.readHeader(nc)
	l.untrack(nc)
	if reason != "" {
		l.reject(nc, reason, err)
		return
	}
	select {
	case l.ready <- c:
	case <-l.done:
		l.closeConn(nc)
	}
}

// readHeader checks nc's peer and reads its header; a non-empty reason
// refuses the connection.
func (l *Listener) readHeader(nc net.Conn) (net.Conn, string, error) {
	if !l.trusted(nc.RemoteAddr()) {
		return nil, ReasonUntrusted, nil
	}
	if err := nc.SetReadDeadline(time.Now().Add(l.opts.HeaderTimeout)); err != nil {
		return nil, ReasonNoHeader, err
	}
	// The reader may take client bytes that follow the header (a TLS
	// ClientHello in the same segment): they are kept in conn.rest.
	br := bufio.NewReader(nc)
	h, err := proxyproto.Read(br)
	if err != nil {
		if errors.Is(err, proxyproto.ErrNoProxyProtocol) || isTimeout(err) {
			return nil, ReasonNoHeader, err
		}
		return nil, ReasonBadHeader, err
	}
	if err := nc.SetReadDeadline(time.Time{}); err != nil {
		return nil, ReasonNoHeader, err
	}
	c := &conn{Conn: nc, remote: nc.RemoteAddr(), local: nc.LocalAddr()}
	if n := br.Buffered(); n > 0 {
		rest, err := br.Peek(n)
		if err != nil {
			return nil, ReasonBadHeader, err
		}
		c.rest = append([]byte(nil), rest...)
	}
	if h.Command.IsLocal() {
		// HAProxy proxy-protocol.txt §2.2: LOCAL connections are the
		// proxy's own (health checks); "the receiver must use the real
		// connection endpoints". v1 UNKNOWN parses as LOCAL.
		return c, "", nil
	}
	src, dst, ok := h.TCPAddrs()
	if !ok || !h.TransportProtocol.IsIPv4() && !h.TransportProtocol.IsIPv6() {
		return nil, ReasonBadHeader, fmt.Errorf("unsupported address family %#x", byte(h.TransportProtocol))
	}
	c.remote, c.local = src, dst
	return c, "", nil
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// trusted reports whether the peer a may send a header.
func (l *Listener) trusted(a net.Addr) bool {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return false
	}
	ip, ok := netip.AddrFromSlice(tcp.IP)
	if !ok {
		return false
	}
	ip = ip.Unmap()
	for _, p := range l.opts.Trusted {
		if p.Contains(ip) {
			return true
		}
	}
	return false
}

func (l *Listener) reject(nc net.Conn, reason string, err error) {
	args := []any{"remote", nc.RemoteAddr().String(), "local", nc.LocalAddr().String(), "reason", reason}
	if err != nil {
		args = append(args, "err", err)
	}
	l.opts.Logger.Warn("PROXY protocol: connection refused", args...)
	if l.opts.Rejected != nil {
		l.opts.Rejected(reason)
	}
	l.closeConn(nc)
}

func (l *Listener) closeConn(nc net.Conn) {
	if err := nc.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		l.opts.Logger.Debug("PROXY protocol: close connection", "err", err)
	}
}

// conn is an accepted connection with the addresses of its header. Reads
// return first the bytes read past the header, then the connection's.
type conn struct {
	net.Conn
	remote, local net.Addr
	rest          []byte // client bytes read with the header; one reader
}

func (c *conn) Read(b []byte) (int, error) {
	if len(c.rest) > 0 {
		n := copy(b, c.rest)
		c.rest = c.rest[n:]
		if len(c.rest) == 0 {
			c.rest = nil
		}
		return n, nil
	}
	return c.Conn.Read(b)
}

// RemoteAddr is the client's address from the header.
func (c *conn) RemoteAddr() net.Addr { return c.remote }

// LocalAddr is the address the client connected to, from the header.
func (c *conn) LocalAddr() net.Addr { return c.local }
