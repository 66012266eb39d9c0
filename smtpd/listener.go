package smtpd

import (
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-smtp"

	"pushmail/internal/netkey"
)

// listener wraps a net.Listener: it counts connections, in total, per
// client network (limitKey) and before authentication, and wraps each
// accepted connection so the Server can track and drain it.
//
// Admission of a new connection (see acquire):
//   - a client network at Options.MaxConnsPerIP is answered "421 4.7.0"
//     and closed: its own connections are its budget;
//   - a listener at Options.MaxConns, or at Options.MaxPreAuthConns
//     unauthenticated connections, makes room by evicting the
//     unauthenticated connection that has been quiet longest and is not
//     transferring a message: it is answered "421 4.3.2" and closed, and
//     its slot goes to the newcomer at once. Only when there is none to
//     evict is the newcomer refused with "421 4.3.2". So silent
//     connections from a few addresses cannot keep a listener full: each
//     new client pushes out the stalest one, and a client that is talking
//     is the last to go.
//
// A connection counts as unauthenticated until AUTH succeeds: on the SMTP
// (MX) and LMTP listeners, for its whole life.
type listener struct {
	net.Listener
	srv  *Server
	role role

	mu      sync.Mutex
	total   int
	perIP   map[string]int     // by limitKey
	preAuth map[*conn]struct{} // not authenticated, not evicted, open
}

// Accept returns the next connection within the limits.
func (l *listener) Accept() (net.Conn, error) {
	for {
		nc, err := l.Listener.Accept()
		if err != nil {
			return nil, err
		}
		c := &conn{Conn: nc, l: l, ip: limitKey(nc.RemoteAddr()), cid: newID(), tlsConfig: l.srv.opts.TLSConfig}
		c.touch()
		victim, rep := l.acquire(c)
		if rep != nil {
			l.reject(nc, c.ip, rep)
			continue
		}
		if victim != nil {
			l.srv.log.Info("connection evicted to make room", "cid", victim.cid, "proto", l.role.String(),
				"remote", victim.RemoteAddr().String(), "quiet", time.Since(time.Unix(0, victim.active.Load())).Round(time.Millisecond),
				"max_conns", l.srv.opts.MaxConns, "max_preauth_conns", l.srv.opts.MaxPreAuthConns)
			l.srv.opts.Metrics.connEvicted(l.role, evictedForRoom)
		}
		l.srv.track(c)
		l.srv.opts.Metrics.connOpened(l.role)
		return c, nil
	}
}

// acquire takes a slot for c, whose key is c.ip ("" for a unix socket:
// counted in the totals only), evicting an idle unauthenticated
// connection if the listener is full; or it returns the reply that
// refuses c.
func (l *listener) acquire(c *conn) (victim *conn, rep *smtp.SMTPError) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c.ip != "" && l.perIP[c.ip] >= l.srv.opts.MaxConnsPerIP {
		l.srv.opts.Metrics.connRefused(l.role, refusedPerIP)
		return nil, replyTooManyConns
	}
	if l.total >= l.srv.opts.MaxConns || len(l.preAuth) >= l.srv.opts.MaxPreAuthConns {
		victim = l.evictLocked()
		if victim == nil {
			l.srv.opts.Metrics.connRefused(l.role, refusedFull)
			return nil, replyTooManyConnsTotal
		}
	}
	l.total++
	if c.ip != "" {
		l.perIP[c.ip]++
	}
	l.preAuth[c] = struct{}{}
	return victim, nil
}

// evictLocked picks the unauthenticated connection quiet longest that is
// not transferring a message, tells it to go (conn.kick) and releases its
// slot; nil if there is none. It scans them all: at most
// MaxPreAuthConns, once per connection accepted on a full listener.
// Lock order: l.mu, then a conn's mu.
func (l *listener) evictLocked() *conn {
	var oldest *conn
	var at int64
	for c := range l.preAuth {
		if t := c.active.Load(); (oldest == nil || t < at) && c.evictable() {
			oldest, at = c, t
		}
	}
	// kick fails only if the connection began a transfer since
	// evictable: the newcomer is then refused, as on a listener full of
	// transfers.
	if oldest == nil || !oldest.kick(replyEvicted) {
		return nil
	}
	l.releaseLocked(oldest)
	return oldest
}

// authenticated moves c out of the unauthenticated connections: it can
// no longer be evicted, and MaxPreAuthConns no longer counts it.
func (l *listener) authenticated(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.preAuth, c)
}

// release frees c's slots, unless an eviction already did.
func (l *listener) release(c *conn) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.releaseLocked(c)
}

func (l *listener) releaseLocked(c *conn) {
	if c.released {
		return
	}
	c.released = true
	l.total--
	delete(l.preAuth, c)
	if c.ip == "" {
		return
	}
	if l.perIP[c.ip]--; l.perIP[c.ip] <= 0 {
		delete(l.perIP, c.ip)
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

// ipKey is the authentication limiter's key for a peer: its address;
// "" for a unix socket.
func ipKey(a net.Addr) string {
	if t, ok := a.(*net.TCPAddr); ok {
		return t.IP.String()
	}
	return ""
}

// limitKey is the connection limits' key for a peer (netkey.Of); ""
// (not limited) for a unix socket.
func limitKey(a net.Addr) string {
	t, ok := a.(*net.TCPAddr)
	if !ok {
		return ""
	}
	return netkey.Of(t.IP)
}

// aLongTimeAgo is a read deadline in the past: the pending read returns.
var aLongTimeAgo = time.Unix(1, 0)

// conn is an accepted connection. Besides the per-IP count it carries the
// connection id and the drain state used by Shutdown (RFC 5321 §3.8: a
// server that must close answers 421 and closes the channel):
//
//   - busy is set while a message is being transferred and delivered:
//     from the session's Data (or LMTPData), at DATA or the first BDAT,
//     until the transaction ends (its reply has been written, go-smtp then
//     calls Session.Reset) or the session ends. A client between commands
//     is idle, also after MAIL and RCPT: its transaction has not begun to
//     carry a message, and it can send it again later;
//   - once draining, a connection that is not busy gets a read deadline in
//     the past, now or as soon as it stops being busy. The read that
//     times out answers "421 4.3.2 Service shutting down" itself and fails
//     with errShutdown, which go-smtp takes for a closed connection: it
//     closes it without a reply of its own. A connection in the middle of
//     a transfer keeps reading until the transfer ends or Shutdown's
//     context does.
//
// go-smtp sets a read deadline before every command; SetReadDeadline
// keeps it in the past for a drained idle connection. conn also carries
// out STARTTLS itself (starttls.go), so go-smtp reads and writes
// plaintext through it before and after: the 421 goes out the same way,
// through TLS once it has begun.
//
// conn also holds back replies until the server is about to read from the
// socket again (see Write), so that the replies to a pipelined group of
// commands leave in one write.
type conn struct {
	net.Conn
	l   *listener
	ip  string // limitKey
	cid string

	released bool         // slots given back (Close, or an eviction); l.mu
	active   atomic.Int64 // when the last command began to be read, Unix ns

	wmu  sync.Mutex
	wbuf []byte // replies written but not yet sent
	werr error  // the error of the last send; later writes fail with it

	mu       sync.Mutex
	busy     bool
	draining bool
	txns     int             // transactions begun, for transaction ids
	inTxn    bool            // between a MAIL and the end of its transaction
	idle     int             // command reads outside a transaction since the last MAIL
	kicked   *smtp.SMTPError // the 421 of an eviction or the idle-command limit

	timedOut atomic.Bool // a read has timed out: see Read
	stopped  atomic.Bool // the shutdown 421 was sent: every read fails

	lingerOnClose atomic.Bool // Close lingers (closeAfterReply)

	// STARTTLS, carried out by conn (starttls.go). tlsConfig is nil where
	// STARTTLS is not offered. in and onTLS belong to the connection's
	// goroutine.
	tlsConfig *tls.Config
	tc        atomic.Pointer[tls.Conn] // after STARTTLS: the TLS layer over the socket
	tlsFailed atomic.Bool              // the handshake failed: every read fails
	awaitHelo atomic.Bool              // TLS began, no EHLO since
	authed    atomic.Bool              // AUTH succeeded
	in        inputFramer
	onTLS     func(*tls.ConnectionState) // the session's, told when TLS begins

	closeOnce sync.Once
	closeErr  error
}

// maxPendingWrite bounds the replies held back by conn.Write: beyond it,
// they are sent at once.
const maxPendingWrite = 16 << 10

// errShutdown fails the reads of a connection drained by Shutdown, once
// it has been told 421. go-smtp ends a connection whose read fails with
// net.ErrClosed quietly, without a reply: the 421 was the last one.
var errShutdown = fmt.Errorf("smtpd: shutting down: %w", net.ErrClosed)

// Write holds p back until the next Read (or Close), which sends
// everything held in one write. go-smtp writes each reply on its own as
// soon as it is computed; a client that pipelines MAIL, RCPT and DATA
// (RFC 2920) would get three packets for one group. RFC 2920 §3.2: the
// server SHOULD store the responses to grouped commands "so they can be
// sent as a unit". go-smtp reads from this conn only when its buffered
// input is used up, that is when the client has no further command
// waiting and may be waiting for these replies: so replies always go
// out before the server waits for input, and no later than before.
//
// Only the connection's goroutine reads, writes and closes, except
// Server.forceClose (see abort); the lock covers that case, and is not
// held while the socket is written.
func (c *conn) Write(p []byte) (int, error) {
	n := len(p)
	switch {
	case bytes.HasPrefix(p, tlsNotSupported) && c.tlsConfig != nil:
		// go-smtp's answer to STARTTLS: see starttls.go.
		if err := c.startTLS(); err != nil {
			return 0, err
		}
		return n, nil
	case bytes.HasPrefix(p, dataGoAhead) && c.framing():
		c.in.startBody()
	}
	p = c.greets(p)
	if bytes.HasPrefix(p, bdatTooBig) && c.inTransaction() {
		// go-smtp refuses a BDAT chunk declared over MaxMessageBytes,
		// then reads and drops the chunk, up to 4 GB. RFC 1870 §6.3
		// (as for DATA, see readMessage): answer and close instead.
		// The same text refuses MAIL's SIZE=, before any transaction:
		// that connection goes on.
		c.closeAfterReply()
	}
	if err := c.hold(p); err != nil {
		return 0, err
	}
	return n, nil
}

// hold appends p to the replies held back, or sends them all with p when
// they would grow past maxPendingWrite.
func (c *conn) hold(p []byte) error {
	c.wmu.Lock()
	if c.werr != nil {
		err := c.werr
		c.wmu.Unlock()
		return err
	}
	if len(c.wbuf)+len(p) <= maxPendingWrite {
		c.wbuf = append(c.wbuf, p...)
		c.wmu.Unlock()
		return nil
	}
	c.wmu.Unlock()
	if err := c.flush(); err != nil {
		return err
	}
	_, err := c.send(p)
	return err
}

// The first line of go-smtp's reply to EHLO and LHLO, and its reply to
// HELO. go-smtp has no setting for this text. bdatTooBig is its reply to
// a BDAT chunk declared over MaxMessageBytes.
var (
	ehloHello  = []byte("250-Hello ")
	heloHello  = []byte("250 2.0.0 Hello ")
	bdatTooBig = []byte("552 5.3.4 Max message size exceeded")
)

// greets rewrites go-smtp's reply to EHLO, LHLO and HELO, "250-Hello
// <client>", into the form RFC 5321 §4.1.1.1 gives it: "250-<our domain>
// greets <client>" (ehlo-ok-rsp: the server's domain comes first, the
// greeting after it). The HELO reply also loses go-smtp's enhanced status
// code, which stood where the domain belongs: RFC 2034 §3 exempts the
// replies to HELO and EHLO from carrying one. Each reply line reaches
// Write in one call (go-smtp's textproto writer flushes after every
// line), and no other reply starts this way; anything else passes
// unchanged.
//
// The EHLO and LHLO replies also gain the extensions conn carries out
// instead of go-smtp (starttls.go): STARTTLS before TLS (RFC 3207 §4), and
// REQUIRETLS after it (RFC 8689 §4.1: only over TLS; go-smtp parses the
// MAIL parameter, the session checks it). Any of these replies ends the
// wait for a new EHLO after STARTTLS.
func (c *conn) greets(p []byte) []byte {
	var client []byte
	var cont byte
	switch {
	case bytes.HasPrefix(p, ehloHello):
		client, cont = p[len(ehloHello):], '-'
	case bytes.HasPrefix(p, heloHello):
		client, cont = p[len(heloHello):], ' '
	default:
		return p
	}
	c.awaitHelo.Store(false)
	out := make([]byte, 0, len(p)+len(c.l.srv.opts.Hostname)+32)
	out = append(out, '2', '5', '0', cont)
	out = append(out, c.l.srv.opts.Hostname...)
	out = append(out, " greets "...)
	out = append(out, client...) // ends in go-smtp's CRLF
	if cont == '-' {
		switch {
		case c.framing():
			out = append(out, "250-STARTTLS\r\n"...)
		case c.tc.Load() != nil:
			out = append(out, "250-REQUIRETLS\r\n"...)
		}
	}
	return out
}

// flush sends the replies held back by Write.
func (c *conn) flush() error {
	c.wmu.Lock()
	buf, err := c.wbuf, c.werr
	if err != nil || len(buf) == 0 {
		c.wmu.Unlock()
		return err
	}
	c.wbuf = nil
	c.wmu.Unlock()
	_, err = c.send(buf)
	c.wmu.Lock()
	if c.wbuf == nil {
		c.wbuf = buf[:0] // reuse it: nothing was held back meanwhile
	}
	c.wmu.Unlock()
	return err
}

// send writes p to the socket, through TLS after STARTTLS; a failure
// fails every later Write.
func (c *conn) send(p []byte) (int, error) {
	n, err := c.sock().Write(p)
	if err != nil {
		c.wmu.Lock()
		if c.werr == nil {
			c.werr = err
		}
		c.wmu.Unlock()
	}
	return n, err
}

// abort drops the replies held back, so that Close does not wait to send
// them.
func (c *conn) abort() {
	c.wmu.Lock()
	c.wbuf = nil
	if c.werr == nil {
		c.werr = net.ErrClosed
	}
	c.wmu.Unlock()
}

// sock is the connection's stream: the socket, or after STARTTLS the TLS
// layer over it.
func (c *conn) sock() net.Conn {
	if tc := c.tc.Load(); tc != nil {
		return tc
	}
	return c.Conn
}

// Read sends the replies held back by Write, then reads from the
// connection; before STARTTLS, when it is offered, it hands over the
// input a command at a time (starttls.go), and sends the replies only
// when it has no input left to hand over, so that the replies to a
// pipelined group still leave together. A failed send fails the read: the
// client can no longer be answered. Once a read has timed out, every later
// read fails the same way at once. go-smtp reads commands with
// bufio.Reader.ReadLine, which hands out the bytes of a line cut by the
// timeout as if the line were complete and drops the error, then reads
// on under a fresh deadline: without this, a client sending a byte now
// and then would never be cut off (slow loris). With it, go-smtp's next
// read fails and it closes the connection with "421 4.4.2".
//
// A read interrupted by Shutdown says goodbye instead (see conn).
func (c *conn) Read(p []byte) (int, error) {
	if c.stopped.Load() {
		return 0, errShutdown
	}
	if c.timedOut.Load() {
		return 0, os.ErrDeadlineExceeded
	}
	if c.tlsFailed.Load() {
		return 0, errTLSFailed
	}
	framing := c.framing()
	if framing && c.in.buffered() {
		return c.in.next(p), nil
	}
	if err := c.flush(); err != nil {
		return 0, err
	}
	var n int
	var err error
	if framing {
		if n, err = c.in.fill(c.Conn.Read); n > 0 {
			n = c.in.next(p)
		}
	} else {
		n, err = c.sock().Read(p)
	}
	if errors.Is(err, os.ErrDeadlineExceeded) {
		if c.shutdownReply() {
			return n, errShutdown
		}
		c.timedOut.Store(true)
	}
	return n, err
}

// shutdownWriteTimeout bounds the write of the shutdown 421: it is a few
// bytes into an idle connection's socket buffer, so only a peer that has
// stopped reading while the buffer filled can make it wait.
const shutdownWriteTimeout = time.Second

// shutdownReply answers a drained, idle connection "421 4.3.2" (RFC 5321
// §3.8), or a kicked one its kick's 421, after the replies still held
// back, and makes every later read and write fail. It reports false,
// doing nothing, if the connection is neither (its own read timeout).
func (c *conn) shutdownReply() bool {
	c.mu.Lock()
	rep := c.kicked
	if c.draining && !c.busy {
		rep = replyShuttingDown
	}
	c.mu.Unlock()
	if rep == nil {
		return false
	}
	c.stopped.Store(true)
	c.wmu.Lock()
	out := append(c.wbuf, replyLine(rep, c.l.srv.opts.Hostname)...)
	c.wbuf = nil
	werr := c.werr
	if c.werr == nil {
		c.werr = errShutdown
	}
	c.wmu.Unlock()
	if werr != nil {
		return true // the client can no longer be answered
	}
	err := c.Conn.SetWriteDeadline(time.Now().Add(shutdownWriteTimeout))
	if err == nil {
		_, err = c.sock().Write(out)
	}
	if err != nil {
		c.l.srv.log.Debug("send shutdown reply", "cid", c.cid, "err", err)
	}
	return true
}

// SetReadDeadline sets the read deadline, unless the connection is being
// drained and idle, or kicked.
//
// go-smtp calls it before it reads each command line (and each line of
// an AUTH exchange), on this conn or, after STARTTLS, through the
// tls.Conn: so it also counts the commands read outside a transaction.
// RFC 5321 §4.5.3.2 bounds how long a server waits for each command, not
// how many it answers; a client that sends NOOP, RSET, VRFY or HELP
// within every timeout would hold its slot for ever. Past
// Options.MaxIdleCommands such reads since the last MAIL (EHLO, STARTTLS
// and AUTH count too), the connection is kicked: "421 4.7.0 Too many
// commands without a transaction" instead of a next command.
func (c *conn) SetReadDeadline(t time.Time) error {
	c.touch()
	c.mu.Lock()
	if !c.inTxn && !c.busy && c.kicked == nil {
		if c.idle++; c.idle > c.l.srv.opts.MaxIdleCommands {
			c.kicked = replyTooManyIdleCommands
			c.l.srv.log.Info("connection closed: too many commands without a transaction", "cid", c.cid,
				"proto", c.l.role.String(), "remote", c.RemoteAddr().String(), "max_idle_commands", c.l.srv.opts.MaxIdleCommands)
			c.l.srv.opts.Metrics.connEvicted(c.l.role, evictedIdleCommands)
		}
	}
	kicked := c.kicked != nil
	if c.draining && !c.busy {
		t = aLongTimeAgo
	}
	c.mu.Unlock()
	if kicked {
		// go-smtp may hold more commands already read (pipelining): fail
		// before it parses the next one.
		c.shutdownReply()
		return errShutdown
	}
	return c.Conn.SetReadDeadline(t)
}

// touch records that the client is active now: a command is about to be
// read. Eviction picks the connection touched longest ago.
func (c *conn) touch() { c.active.Store(time.Now().UnixNano()) }

// evictable reports whether c may be evicted: it is not transferring a
// message and has not been kicked already.
func (c *conn) evictable() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return !c.busy && c.kicked == nil
}

// kick makes c answer rep and close instead of reading its next command,
// or at once if it is waiting for one; it reports false, doing nothing,
// if c is transferring a message or already kicked.
func (c *conn) kick(rep *smtp.SMTPError) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.busy || c.kicked != nil {
		return false
	}
	c.kicked = rep
	c.interruptLocked()
	return true
}

// authenticated records a successful AUTH (see listener).
func (c *conn) authenticated() {
	c.authed.Store(true)
	c.l.authenticated(c)
}

// SetDeadline sets both deadlines, with SetReadDeadline's exception.
func (c *conn) SetDeadline(t time.Time) error {
	if err := c.Conn.SetWriteDeadline(t); err != nil {
		return err
	}
	return c.SetReadDeadline(t)
}

// begin starts a transaction (MAIL) and returns its number; ok is false
// once the connection is being drained.
func (c *conn) begin() (n int, ok bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.draining {
		return 0, false
	}
	c.txns++
	c.inTxn, c.idle = true, 0
	return c.txns, true
}

// beginData marks the start of a message transfer: from here the
// connection is busy until end. A drain that came between the DATA (or
// BDAT) command and this call has already put the read deadline in the
// past; the transfer gets a fresh one.
func (c *conn) beginData() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy = true
	if c.draining && c.kicked == nil {
		if err := c.Conn.SetReadDeadline(time.Now().Add(c.l.srv.opts.ReadTimeout)); err != nil {
			c.l.srv.log.Debug("restore read deadline", "cid", c.cid, "err", err)
		}
	}
}

// inTransaction reports whether a MAIL was accepted and its transaction
// has not ended.
func (c *conn) inTransaction() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.inTxn
}

// end marks the end of a transaction, if any.
func (c *conn) end() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.busy, c.inTxn = false, false
	if c.draining || c.kicked != nil {
		c.interruptLocked()
	}
}

// drain stops new transactions and interrupts the connection if idle.
func (c *conn) drain() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.draining = true
	if !c.busy {
		c.interruptLocked()
	}
}

// interruptLocked makes the pending read, if any, time out; c.mu is held
// so that it is ordered with beginData. Setting a deadline does not block.
func (c *conn) interruptLocked() {
	if err := c.Conn.SetReadDeadline(aLongTimeAgo); err != nil {
		c.l.srv.log.Debug("interrupt connection", "cid", c.cid, "err", err)
	}
}

// Close sends the replies still held back (go-smtp writes its last
// reply, 221 or 421, just before it closes), releases the connection's
// slots and closes it. The slot is free before the peer can see the
// close. A peer that does not read gets closeFlushTimeout to take the
// replies.
func (c *conn) Close() error {
	c.closeOnce.Do(func() {
		c.wmu.Lock()
		pending := len(c.wbuf) > 0 && c.werr == nil
		c.wmu.Unlock()
		if pending {
			err := c.Conn.SetWriteDeadline(time.Now().Add(closeFlushTimeout))
			if err == nil {
				err = c.flush()
			}
			if err != nil {
				c.l.srv.log.Debug("send last reply", "cid", c.cid, "err", err)
			}
		}
		c.wmu.Lock()
		clean := c.werr == nil // not aborted: the peer may take a TLS close_notify
		c.wmu.Unlock()
		c.abort()
		c.l.release(c)
		c.l.srv.untrack(c)
		c.l.srv.opts.Metrics.connClosed(c.l.role)
		if clean && c.lingerOnClose.Load() {
			c.linger()
		}
		if tc := c.tc.Load(); tc != nil && clean {
			c.closeErr = tc.Close() // close_notify, then the socket
		} else {
			c.closeErr = c.Conn.Close()
		}
	})
	return c.closeErr
}

// closeFlushTimeout bounds the sending of the last replies at Close.
const closeFlushTimeout = 5 * time.Second
