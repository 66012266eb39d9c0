package smtpd

import (
	"errors"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"
)

// listener wraps a net.Listener: it counts connections, in total and per
// remote IP, turns away those over Options.MaxConns or
// Options.MaxConnsPerIP with a 421, and wraps each accepted connection so
// the Server can track and drain it.
type listener struct {
	net.Listener
	srv  *Server
	role role

	mu    sync.Mutex
	total int
	perIP map[string]int
}

// Accept returns the next connection within the limits.
func (l *listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		ip := ipKey(nc.RemoteAddr())
		if rep := l.acquire(ip); rep != nil {
			l.reject(nc, ip, rep)
			continue
		}
		c := &conn{Conn: nc, l: l, ip: ip, cid: newID()}
		l.srv.track(c)
		l.srv.opts.Metrics.connOpened(l.role)
		return c, nil
	}
}

// acquire takes a slot for a connection from ip ("" for a unix socket:
// counted in the total only), or returns the reply that refuses it.
func (l *listener) acquire(ip string) *smtp.SMTPError {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.total >= l.srv.opts.MaxConns {
		return replyTooManyConnsTotal
	}
	if ip != "" && l.perIP[ip] >= l.srv.opts.MaxConnsPerIP {
		return replyTooManyConns
	}
	l.total++
	if ip != "" {
		l.perIP[ip]++
	}
	return nil
}

func (l *listener) release(ip string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.total--
	if ip == "" {
		return
	}
	if l.perIP[ip]--; l.perIP[ip] <= 0 {
		delete(l.perIP, ip)
	}
}

// reject answers a connection over a limit and closes it. The reply is a
// few bytes into an empty socket buffer, so the write does not block the
// accept loop; the deadline covers a peer that is already gone.
func (l *listener) reject(nc net.Conn, ip string, rep *smtp.SMTPError) {
	l.srv.log.Info("connection refused", "proto", l.role.String(), "remote", nc.RemoteAddr().String(),
		"reason", rep.Message, "max_conns", l.srv.opts.MaxConns, "max_conns_per_ip", l.srv.opts.MaxConnsPerIP)
	if err := nc.SetWriteDeadline(time.Now().Add(time.Second)); err == nil {
		if _, err := nc.Write([]byte(replyLine(rep, l.srv.opts.Hostname))); err != nil {
			l.srv.log.Debug("write 421", "remote", ip, "err", err)
		}
	}
	if err := nc.Close(); err != nil {
		l.srv.log.Debug("close refused connection", "remote", ip, "err", err)
	}
}

// ipKey is the per-IP limit's key for a peer; "" (not limited) for a
// unix socket.
func ipKey(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	return ""
}

// aLongTimeAgo is a read deadline in the past: the pending read returns.
var aLongTimeAgo = time.Unix(1, 0)

// conn is an accepted connection. Besides the per-IP count it carries the
// connection id and the drain state used by Shutdown:
//
//   - busy is set from MAIL until the transaction ends (its reply has been
//     written, go-smtp then calls Session.Reset) or the session ends;
//   - once draining, a connection that is not busy gets a read deadline in
//     the past, now or as soon as it stops being busy, so go-smtp's next
//     read times out, it replies "421 4.4.2" and closes the connection.
//
// go-smtp sets a read deadline before every command; SetReadDeadline
// keeps it in the past for a drained idle connection. After STARTTLS the
// tls.Conn sets deadlines through this conn, so that holds there too.
type conn struct {
	net.Conn
	l   *listener
	ip  string
	cid string

	mu       sync.Mutex
	busy     bool
	draining bool
	txns     int // transactions begun, for transaction ids

	timedOut atomic.Bool // a read has timed out: see Read

	closeOnce sync.Once
	closeErr  error
}

// Read reads from the connection. Once a read has timed out, every later
// read fails the same way at once. go-smtp reads commands with
// bufio.Reader.ReadLine, which hands out the bytes of a line cut by the
// timeout as if the line were complete and drops the error, then reads
// on under a fresh deadline: without this, a client sending a byte now
// and then would never be cut off (slow loris). With it, go-smtp's next
// read fails and it closes the connection with "421 4.4.2".
func (c *conn) Read(p []byte) (int, error) {
	if c.timedOut.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Conn.Read(p)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

// SetReadDeadline sets the read deadline, unless the connection is being
// drained and idle.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.mu.Lock()
	if c.draining && !c.busy {
		t = aLongTimeAgo
	}
	c.mu.Unlock()
	return c.Conn.SetReadDeadline(t)
}

// SetDeadline sets both deadlines, with SetReadDeadline's exception.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// begin marks the start of a transaction and returns its number; ok is
// false once the connection is being drained.
func (c *conn) begin() (n int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return 0, false
	}
	c.busy = true
	c.txns++
	return c.txns, true
}

// end marks the end of a transaction, if any.
func (c *conn) end() {
	c.mu.Lock()
	c.busy = false
	draining := c.draining
	c.mu.Unlock()
	if draining {
		c.interrupt()
	}
}

// drain stops new transactions and interrupts the connection if idle.
func (c *conn) drain() {
	c.mu.Lock()
	c.draining = true
	idle := !c.busy
	c.mu.Unlock()
	if idle {
		c.interrupt()
	}
}

func (c *conn) interrupt() {
	if err := c.Conn.SetReadDeadline(aLongTimeAgo); err != nil {
		c.l.srv.log.Debug("interrupt connection", "cid", c.cid, "err", err)
	}
}

// Close releases the connection's slots and closes it. The slot is
// free before the peer can see the close.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.l.release(c.ip)
		c.l.srv.untrack(c)
		c.l.srv.opts.Metrics.connClosed(c.l.role)
		c.closeErr = c.Conn.Close()
	})
	return c.closeErr
}
