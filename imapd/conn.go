package imapd

import (
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// countingListener wraps accepted connections in countingConn, for the
// per-session log line's byte and line counts.
type countingListener struct{ net.Listener }

func (l countingListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &countingConn{Conn: c}, nil
}

// countingConn counts bytes in each direction, as they cross the socket
// (TLS records included; commands are counted by the session).
// It also applies write deadlines lazily (see SetWriteDeadline).
type countingConn struct {
	net.Conn
	in, out atomic.Int64

	dmu    sync.Mutex // guards the write deadlines; never held while writing
	wantWD time.Time  // the write deadline last asked for
	setWD  time.Time  // the write deadline the socket has
}

// deadlineSlack is how much earlier than asked a write deadline may fall
// when the one already set on the socket is kept (see SetWriteDeadline).
const deadlineSlack = time.Second

// SetWriteDeadline records t and sets it on the socket when it must act at
// once: t is earlier than the socket's deadline, or the socket has none.
// A later t, or none, waits for the next Write.
//
// The session sets a write deadline before every flush: a runtime timer
// update each, which at one IDLE push to 8,000 sessions was 13 % of the
// server's CPU. Here the socket's deadline changes only when a write
// needs another one: a write times out at most deadlineSlack before its
// deadline, never after it.
func (c *countingConn) SetWriteDeadline(t time.Time) error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	c.wantWD = t
	if !t.IsZero() && (c.setWD.IsZero() || t.Before(c.setWD)) {
		// Shortening acts at once, even on a write under way.
		return c.applyWriteDeadlineLocked(t)
	}
	return nil
}

// SetDeadline sets the read deadline as the wrapped connection does and
// the write deadline as SetWriteDeadline does.
func (c *countingConn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetReadDeadline(t); err != nil {
		return err
	}
	return c.SetWriteDeadline(t)
}

// syncWriteDeadline gives the socket the write deadline asked for before
// a write, unless the one it has is at most deadlineSlack earlier.
func (c *countingConn) syncWriteDeadline() error {
	c.dmu.Lock()
	defer c.dmu.Unlock()
	want := c.wantWD
	switch {
	case want.Equal(c.setWD):
	case want.IsZero():
		return c.applyWriteDeadlineLocked(want)
	case c.setWD.IsZero() || want.Before(c.setWD) || want.Sub(c.setWD) > deadlineSlack:
		return c.applyWriteDeadlineLocked(want)
	}
	return nil
}

func (c *countingConn) applyWriteDeadlineLocked(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	c.setWD = t
	return nil
}

// Write writes p to the connection under the deadline asked for.
func (c *countingConn) Write(p []byte) (int, error) {
	if err := c.syncWriteDeadline(); err != nil {
		return 0, err
	}
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}
