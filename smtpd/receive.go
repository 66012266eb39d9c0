package smtpd

import (
	"errors"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/emersion/go-smtp"
)

// Memory for message data (see doc.go). Every transfer starts with one
// buffer of dataBufSize; it doubles as bytes arrive, up to
// Options.SpoolThreshold, and what comes beyond goes to a spool file. The
// client's SIZE= declaration is never used to size anything. Every buffer
// is counted against Options.Budget before it is allocated.
const (
	// dataBufSize is the first buffer of every transfer, and the copy
	// buffer of a spooled one; most mail fits in it.
	dataBufSize = 64 << 10
	// dataBufPool bounds the idle buffers the server keeps for reuse
	// (1 MiB); buffers that grew beyond dataBufSize are never kept.
	dataBufPool = 16
)

// errTooBig is what incoming.readFrom returns for more than
// MaxMessageBytes.
var errTooBig = errors.New("message over the size limit")

// getDataBuf returns an empty buffer of capacity dataBufSize, idle or
// new. Unlike a sync.Pool, the server keeps at most dataBufPool of them
// whatever the garbage collector does: a burst of large transfers leaves
// nothing behind.
func (s *Server) getDataBuf() []byte {
	select {
	case b := <-s.dataBufs:
		return b[:0]
	default:
		return make([]byte, 0, dataBufSize)
	}
}

// putDataBuf gives back a buffer once nothing refers to its bytes.
func (s *Server) putDataBuf(b []byte) {
	if cap(b) != dataBufSize {
		return
	}
	select {
	case s.dataBufs <- b:
	default:
	}
}

// acquire takes n bytes of the in-flight budget, if free.
func (s *Server) acquire(n int64) bool {
	if !s.budget.TryAcquire(n) {
		return false
	}
	s.opts.Metrics.inflightChanged(n)
	return true
}

// release gives back n bytes taken with acquire.
func (s *Server) release(n int64) {
	s.budget.Release(n)
	s.opts.Metrics.inflightChanged(-n)
}

// budgetSpent reports whether the budget cannot hold even the first
// buffer of one more transfer.
func (s *Server) budgetSpent() bool {
	return s.budget.InUse()+dataBufSize > s.budget.Limit()
}

// incoming is a message being received: in buf while it is small, then
// in a spool file. It is used by one goroutine; close releases it.
type incoming struct {
	srv  *Server
	buf  []byte   // the message so far; once spooled, the copy buffer
	held int64    // budget held for buf: its capacity
	file *os.File // the spool file, nil while in memory
	name string   // the file's name, if it could not be removed at once
	n    int64    // bytes received
}

// newIncoming returns an incoming with its first buffer, or false if the
// budget cannot hold that buffer.
func (s *Server) newIncoming() (*incoming, bool) {
	if !s.acquire(dataBufSize) {
		return nil, false
	}
	return &incoming{srv: s, buf: s.getDataBuf(), held: dataBufSize}, true
}

// readFrom reads r to its end. It returns errTooBig as soon as more than
// limit bytes have come (or r's own limit error), without reading on.
func (in *incoming) readFrom(r io.Reader, limit int64) error {
	for {
		if in.file == nil && len(in.buf) == cap(in.buf) {
			if err := in.grow(); err != nil {
				return err
			}
		}
		var n int
		var err error
		if in.file == nil {
			n, err = r.Read(in.buf[len(in.buf):cap(in.buf)])
			in.buf = in.buf[:len(in.buf)+n]
		} else {
			n, err = r.Read(in.buf[:cap(in.buf)])
			if n > 0 {
				if _, werr := in.file.Write(in.buf[:n]); werr != nil {
					return fmt.Errorf("write spool file: %w", werr)
				}
			}
		}
		in.n += int64(n)
		if in.n > limit {
			return errTooBig
		}
		switch {
		case err == io.EOF:
			return nil
		case errors.Is(err, smtp.ErrDataTooLarge): // go-smtp's limit, the same
			return errTooBig
		case err != nil:
			return err
		}
	}
}

// grow makes room for more bytes: a buffer twice as large, up to the
// spool threshold, if the budget can hold it; else the spool file.
func (in *incoming) grow() error {
	c := int64(cap(in.buf))
	if c < in.srv.opts.SpoolThreshold {
		next := min(2*c, in.srv.opts.SpoolThreshold)
		if in.srv.acquire(next) {
			b := make([]byte, len(in.buf), next)
			copy(b, in.buf)
			in.srv.putDataBuf(in.buf)
			in.srv.release(in.held)
			in.buf, in.held = b, next
			return nil
		}
		// The budget is spent: the rest waits on disk instead.
	}
	return in.spool()
}

// spool moves the bytes received so far to a new spool file and keeps
// one dataBufSize buffer to copy the rest through. The file is removed
// from the directory at once: it lives as long as it is open, and a
// crash leaves nothing behind.
func (in *incoming) spool() error {
	f, err := os.CreateTemp(in.srv.opts.SpoolDir, "msg-*")
	if err != nil {
		return fmt.Errorf("create spool file: %w", err)
	}
	in.file = f
	if err := os.Remove(f.Name()); err != nil {
		in.name = f.Name() // removed by close instead
	}
	if in.srv.onSpool != nil {
		in.srv.onSpool()
	}
	if _, err := f.Write(in.buf); err != nil {
		return fmt.Errorf("write spool file: %w", err)
	}
	if cap(in.buf) != dataBufSize {
		in.buf = in.srv.getDataBuf()
		in.srv.release(in.held - dataBufSize)
		in.held = dataBufSize
	}
	in.buf = in.buf[:0]
	return nil
}

// message returns a new slice of exactly the trace fields followed by
// the message, read back from the spool file if there is one.
func (in *incoming) message(trace []byte) ([]byte, error) {
	msg := make([]byte, len(trace)+int(in.n))
	body := msg[copy(msg, trace):]
	if in.file == nil {
		copy(body, in.buf)
		return msg, nil
	}
	if _, err := in.file.ReadAt(body, 0); err != nil {
		return nil, fmt.Errorf("read spool file: %w", err)
	}
	return msg, nil
}

// close gives back the buffer and its budget and closes and removes the
// spool file. Errors are logged: the message has been dealt with.
func (in *incoming) close() {
	in.srv.putDataBuf(in.buf)
	in.srv.release(in.held)
	in.buf, in.held = nil, 0
	if in.file == nil {
		return
	}
	if err := in.file.Close(); err != nil {
		in.srv.log.Error("close spool file", "err", err)
	}
	if in.name != "" {
		if err := os.Remove(in.name); err != nil {
			in.srv.log.Error("remove spool file", "file", in.name, "err", err)
		}
	}
	in.file = nil
}

// closeAfterReply ends the connection once the reply being prepared is
// sent: every later read fails at once, so go-smtp stops discarding the
// rest of the message, writes its reply, and closes the connection
// quietly when it reads the next command; Close sends the held-back
// reply first, and lingers (see linger). The shutdown path uses the same
// state (see conn), without the linger.
func (c *conn) closeAfterReply() {
	c.lingerOnClose.Store(true)
	c.stopped.Store(true)
}

// A lingering close reads and drops at most lingerMaxBytes for at most
// lingerTimeout.
const (
	lingerTimeout  = 2 * time.Second
	lingerMaxBytes = 1 << 20
)

// linger half-closes the connection after its last reply, then reads and
// drops what the client still sends, until it closes too or a bound is
// reached. A connection closed after refusing an oversize message (RFC
// 1870 §6.3) still has the rest of the message coming: closing a socket
// with unread input makes the kernel answer with a reset, which can
// destroy the 552 before the client has read it, and the client would
// see a broken connection instead of a refusal. HTTP servers do the same
// ("lingering close", RFC 9112 §9.6).
func (c *conn) linger() {
	cw, ok := c.Conn.(interface{ CloseWrite() error })
	if !ok {
		return
	}
	if tc := c.tc.Load(); tc != nil {
		if err := tc.CloseWrite(); err != nil {
			return
		}
	}
	if err := cw.CloseWrite(); err != nil {
		return
	}
	if err := c.Conn.SetReadDeadline(time.Now().Add(lingerTimeout)); err != nil {
		return
	}
	n, err := io.CopyN(io.Discard, c.Conn, lingerMaxBytes)
	c.l.srv.log.Debug("lingering close", "cid", c.cid, "dropped", n, "err", err)
}
