package imapd

import (
	"crypto/tls"
	"net"
	"sync"
	"sync/atomic"
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
		// imapserver tells TLS by the *tls.Conn type: never hide one.
		// (ServeTLS counts below the TLS layer instead.)
		return c, nil
	}
	return &countingConn{Conn: c}, nil
}

// countingConn counts bytes in each direction and lines from the client
// (commands and literal lines: imapserver offers no per-command hook).
type countingConn struct {
	net.Conn
	in, out, lines atomic.Int64

	mu       sync.Mutex
	batching bool   // see startBatch
	buf      []byte // the batch
	werr     error  // the batch's first write error
}

func (c *countingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	var lines int64
	for _, b := range p[:n] {
		if b == '\n' {
			lines++
		}
	}
	c.lines.Add(lines)
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
	n, err := c.Conn.Write(p)
	c.out.Add(int64(n))
	return n, err
}

// batchSize is how much a batch holds before it is written anyway.
const batchSize = 64 << 10

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
	c.flushLocked()
	c.batching = false
	err := c.werr
	c.werr = nil
	return err
}

func (c *countingConn) flushLocked() {
	if len(c.buf) > 0 && c.werr == nil {
		n, err := c.Conn.Write(c.buf)
		c.out.Add(int64(n))
		c.werr = err
	}
	c.buf = c.buf[:0]
	if cap(c.buf) > batchSize*2 {
		c.buf = nil // do not keep a large buffer on an idle session
	}
}
