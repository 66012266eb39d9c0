package imapd

import (
	"crypto/tls"
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
	if _, ok := c.(*tls.Conn); ok {
		// The literalGuard tells TLS by the *tls.Conn type: never hide
		// one. (ServeTLS counts below the TLS layer instead.)
		return c, nil
	}
	return &countingConn{Conn: c}, nil
}

// countingConn counts bytes in each direction, as they cross the socket
// (TLS records included; commands are counted by the session).
// It also applies write deadlines lazily (see SetWriteDeadline).
type countingConn struct {
	net.Conn
	in, out atomic.Int64

	mu       sync.Mutex
	batching bool   // see startBatch
	buf      []byte // the batch
	werr     error  // the batch's first write error

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
// imapserver sets a 30-second write deadline before every response it
// writes and clears it after (imapserver/conn.go newResponseEncoder),
// two runtime timer updates per response: 13 % of the server's CPU per
// IDLE push to 8,000 sessions, and as much per FETCH response. Here the
// socket's deadline changes only when a write needs another one: a write
// times out at most deadlineSlack before its deadline, never after it.
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

// writeConn writes p to the connection under the deadline asked for.
// The caller holds c.mu.
func (c *countingConn) writeConn(p []byte) (int, error) {
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

func (c *countingConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.batching {
		if c.werr != nil {
			return 0, c.werr
		}
		c.buf = append(c.buf, p...)
		if len(c.buf) >= batchSize {
			c.flushLocked()
		}
		return len(p), nil
	}
	return c.writeConn(p)
}

// batchSize is how much a batch holds before it is written anyway.
const batchSize = 64 << 10

// batchWriteTimeout bounds the write of a batch's last part; it is
// go-imap's respWriteTimeout, which bounds every other response write.
const batchWriteTimeout = 30 * time.Second

// startBatch makes writes collect in memory until endBatch. imapserver
// flushes after every FETCH response, one write(2) each; a FETCH of a
// large mailbox then spends most of its time in system calls. Only the
// command's own goroutine writes meanwhile.
func (c *countingConn) startBatch() {
	c.mu.Lock()
	c.batching = true
	c.mu.Unlock()
}

// endBatch writes what was collected and returns to direct writes. It
// returns the first write error of the batch.
func (c *countingConn) endBatch() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	// imapserver has cleared its write deadline after the last response
	// of the batch: the flush gets one of the same length, so that a
	// client that stops reading cannot hold the session for ever.
	c.dmu.Lock()
	if c.wantWD.IsZero() {
		c.wantWD = time.Now().Add(batchWriteTimeout)
		defer func() {
			c.dmu.Lock()
			c.wantWD = time.Time{}
			c.dmu.Unlock()
		}()
	}
	c.dmu.Unlock()
	c.flushLocked()
	c.batching = false
	err := c.werr
	c.werr = nil
	return err
}

func (c *countingConn) flushLocked() {
	if len(c.buf) > 0 && c.werr == nil {
		_, c.werr = c.writeConn(c.buf)
	}
	c.buf = c.buf[:0]
	if cap(c.buf) > batchSize*2 {
		c.buf = nil // do not keep a large buffer on an idle session
	}
}
