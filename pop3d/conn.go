package pop3d

import (
	"crypto/tls"
	"errors"
	"net"
	"os"
	"sync/atomic"
	"time"
)

// Timeouts of the server's own that the Options do not set.
const (
	// writeTimeout bounds each write to a client: one that stops reading
	// cannot hold its session for ever, while a large RETR to a slow but
	// steady client goes on (each write gets a fresh deadline).
	writeTimeout = 30 * time.Second
	// byeWriteTimeout bounds what is left of a session's writes once
	// another goroutine (Shutdown, an eviction, the login timer) ends it.
	byeWriteTimeout = 5 * time.Second
)

// conn is an accepted connection as the session sees it below TLS: it
// counts bytes each way for the session's log line, makes a read timeout
// final (a client that trickles a byte now and then is cut off after one
// timeout, not fed more time), and gives every write a fresh deadline of
// writeTimeout until cut says otherwise.
type conn struct {
	net.Conn
	in, out  atomic.Int64
	timedOut atomic.Bool
	cutOff   atomic.Bool
}

// Read reads from the connection; once a read has timed out, every later
// read fails the same way at once.
func (c *conn) Read(p []byte) (int, error) {
	if c.timedOut.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut.Store(true)
	}
	return n, err
}

// Write writes p under a deadline writeTimeout from now, or under the
// one cut set.
func (c *conn) Write(p []byte) (int, error) {
	if !c.cutOff.Load() {
		if err := c.Conn.SetWriteDeadline(time.Now().Add(writeTimeout)); err != nil {
			return 0, err
		}
	}
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// cut gives the writes still to come, and one under way, d in all.
func (c *conn) cut(d time.Duration) {
	c.cutOff.Store(true)
	// An error here means the connection is closed: the writes fail
	// anyway.
	_ = c.Conn.SetWriteDeadline(time.Now().Add(d))
}

// isTLS reports whether nc is a TLS connection.
func isTLS(nc net.Conn) bool {
	_, ok := nc.(*tls.Conn)
	return ok
}
