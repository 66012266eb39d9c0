package imapd

import (
	"bytes"
	"context"
	"crypto/tls"
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// literalGuard is the connection imapserver is given: it sits on the
// client's plaintext (over the socket, over implicit TLS, or over the TLS
// it starts itself for STARTTLS) and makes sure that the data of a
// literal is never parsed as commands.
//
// The bug it closes: RFC 7888 §3 lets a client send a non-synchronizing
// literal's data ({n+}) without waiting for the server. go-imap
// v2.0.0-beta.8's imapserver, when it does not read a literal (APPEND
// over the append limit: NO [TOOBIG]; any other literal over 4096 bytes;
// a command that failed before its literal, such as an unknown command
// or a bad APPEND date), discards only the rest of the first line, and
// then parses the literal's data as commands: "a APPEND INBOX
// {30000000+}" followed by a message holding "c DELETE INBOX" ran the
// DELETE. RFC 9051 §4.3 makes the data part of the command; RFC 7888 §4
// leaves a server that will not take a literal two ways out: read and
// drop the data, or end the connection (BYE). imapserver has no hook for
// either, so the guard does it below imapserver's bufio.Reader.
//
// How it knows what imapserver did: the guard hands imapserver one line
// at a time (see framer.feed), so imapserver asks the guard for more only
// once it has used up the line. After a line that announces a literal,
// the guard watches what imapserver does before its next Read:
//   - it wrote a tagged status response: the command is over and the
//     literal was not read. For a synchronizing literal the client sends
//     nothing more (it waited for "+"). A non-synchronizing literal's
//     data is on its way: if the response said [TOOBIG] (APPEND over the
//     append limit, RFC 7889), the data and the rest of its command line
//     are read and dropped, up to maxDiscard bytes, and the client's next
//     command runs. Otherwise the command failed before its literal (a
//     syntax error, an unknown command), client and server disagree on
//     where commands are, and the guard says "* BYE" and ends the
//     connection; so it does past maxDiscard, or at a synchronizing
//     literal in a line it drops.
//   - it set literalReadTimeout as read deadline: APPEND is reading the
//     message; the data passes.
//   - neither: imapserver is reading on in the same command. For a
//     literal of at most 4096 bytes that is the literal (imapserver's
//     checkBufferedLiteral, a fixed limit); the data passes, one line at
//     a time, and a tagged response written before it has all passed
//     means that imapserver was not reading a literal after all (a quoted
//     string across lines, say): "* BYE". A larger non-synchronizing
//     literal imapserver has refused, and it is reading the next byte of
//     the string it expected (imapwire's ExpectAString, LIST's
//     list-char): the guard gives it "\r\n", which imapserver answers
//     with BAD, and drops the data as after [TOOBIG]. A larger
//     synchronizing literal is left as without the guard: imapserver
//     waits for a byte, the client for "+", until CommandTimeout.
//
// So the rule needs no copy of imapserver's limits, apart from its fixed
// 4096, and covers every way a command can leave its literal unread.
// Not covered: a client that breaks the framing itself (a quoted string
// or a tag with CR or LF in it, a lone CR ending a command) may still
// confuse the guard; it is then the client's own bytes, not a literal's,
// that are at stake, and the guard errs on dropping data or closing.
//
// The guard also runs STARTTLS (RFC 9051 §6.2.1), as imapserver must not:
// its tls.Server would sit above the guard, which would then see
// ciphertext. imapserver runs without a TLSConfig, answers "tag STARTTLS"
// with "NO STARTTLS not supported", and the guard puts "OK Begin TLS
// negotiation now" in its place, starts TLS under itself, and adds
// STARTTLS to the capabilities imapserver lists before login on a
// connection without TLS. A session tells TLS by connIsTLS.
//
// Likewise the guard, not imapserver, says whether a password may be
// sent (imapserver's InsecureAuth is all or nothing, so it always offers
// AUTH=PLAIN): before login, on a connection where authAllowed refuses
// passwords, it takes the AUTH= capabilities out of the greeting and
// CAPABILITY and puts LOGINDISABLED in (RFC 9051 §6.2.3, §7.2.2), so
// that a client does not send a password it would only then hear
// refused. After STARTTLS, imapserver's list passes as it is.
//
// A guard costs an idle session no goroutine and no buffer: it holds
// bytes only between reads that split what the socket gave, in a pooled
// buffer given back as soon as it is empty.
type literalGuard struct {
	srv     *Server
	conn    atomic.Pointer[netConn] // the socket, or TLS over it
	counter *countingConn           // for the session's log line; may be nil
	isTLS   atomic.Bool
	authed  atomic.Pointer[atomic.Bool] // the session's, once it exists

	// Read side: imapserver reads from one goroutine at a time.
	fr      framer
	held    []byte  // read from conn, not yet handed on
	heldBuf *[]byte // held's pooled storage
	rerr    error   // the read error that came with held bytes
	inject  int     // bytes of "\r\n" still to hand on (see decide)
	decide  bool    // an announcement was handed on: decide at the next Read
	byeNext bool    // end the connection at the next Read

	// Seen between handing on an announcement and the next Read (see the
	// type's comment); Write and SetReadDeadline may run on other
	// goroutines (Bye, Idle).
	watching      atomic.Bool
	sawTagged     atomic.Bool
	sawTooBig     atomic.Bool // the tagged response said [TOOBIG]
	sawLiteralDL  atomic.Bool
	starttlsLine  atomic.Bool // a STARTTLS line was handed on; its reply is due
	startTLSAfter atomic.Bool // the reply said OK: start TLS at the next Read
}

// netConn boxes a net.Conn for atomic.Pointer.
type netConn struct{ net.Conn }

var _ net.Conn = (*literalGuard)(nil)

// maxBufferedLiteral is imapserver's limit on a literal it reads into
// memory (checkBufferedLiteral: every literal but APPEND's message).
const maxBufferedLiteral = 4096

// maxDiscard is how much of a literal the server did not read, with the
// rest of its command line, a guard drops before it gives up and closes:
// twice the append limit. Dropping costs what accepting would; a message
// somewhat over the limit is the common honest case, and a client that
// announces more is not worth the bandwidth.
func (s *Server) maxDiscard() int64 { return 2 * int64(s.opts.AppendLimit) }

// heldPool holds the buffers of bytes split off a read.
var heldPool = sync.Pool{New: func() any { b := make([]byte, 0, 4096); return &b }}

// guardListener wraps accepted connections in a literalGuard.
type guardListener struct {
	net.Listener
	srv *Server
}

func (l guardListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return newLiteralGuard(c, l.srv), nil
}

func newLiteralGuard(c net.Conn, srv *Server) *literalGuard {
	g := &literalGuard{srv: srv}
	g.conn.Store(&netConn{c})
	under := c
	if tc, ok := c.(*tls.Conn); ok {
		g.isTLS.Store(true)
		under = tc.NetConn()
	}
	g.counter, _ = under.(*countingConn)
	return g
}

// connIsTLS reports whether nc, as imapserver hands it to a session,
// carries TLS: implicit, or started with STARTTLS.
func connIsTLS(nc net.Conn) bool {
	if g, ok := nc.(*literalGuard); ok {
		return g.isTLS.Load()
	}
	_, ok := nc.(*tls.Conn)
	return ok
}

// setSession gives the guard the session's login state, which decides
// whether STARTTLS is still on offer.
func (g *literalGuard) setSession(s *session) { g.authed.Store(&s.authed) }

func (g *literalGuard) lower() net.Conn { return g.conn.Load().Conn }

// offerStartTLS reports whether STARTTLS may start now: the server has a
// certificate, the connection has no TLS yet, and nobody has logged in
// (RFC 9051 §6.2.1).
func (g *literalGuard) offerStartTLS() bool {
	if g.srv.opts.TLSConfig == nil || g.isTLS.Load() {
		return false
	}
	return !g.loggedIn()
}

// loggedIn reports whether the session has logged in.
func (g *literalGuard) loggedIn() bool {
	a := g.authed.Load()
	return a != nil && a.Load()
}

// loginDisabled reports whether the capabilities must say LOGINDISABLED:
// the client has not logged in, and may not send a password over this
// connection as it is (see authAllowed).
func (g *literalGuard) loginDisabled() bool {
	return !g.loggedIn() && !authAllowed(g, g.srv.opts.AllowInsecureAuth)
}

// Read hands imapserver the client's bytes, one line at a time, minus
// the literal data it must not see (see the type's comment).
func (g *literalGuard) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	for {
		if g.startTLSAfter.Load() && g.startTLSAfter.CompareAndSwap(true, false) {
			if err := g.startTLS(); err != nil {
				return 0, err
			}
		}
		if g.byeNext && g.inject == 0 {
			return 0, g.bye("Literal too large")
		}
		if g.decide {
			g.decide = false
			if err := g.decideLiteral(); err != nil {
				return 0, err
			}
		}
		if g.fr.mode == frameContent && g.fr.cutContent && g.sawTagged.Load() {
			// imapserver finished a command inside what it was thought
			// to read as a literal: the framing is lost.
			return 0, g.bye("Literal framing lost")
		}
		if g.inject > 0 {
			n := copy(p, "\r\n"[2-g.inject:])
			g.inject -= n
			return n, nil
		}
		var in []byte
		if len(g.held) > 0 {
			in = g.held[:min(len(g.held), len(p))]
		} else {
			if g.rerr != nil {
				err := g.rerr
				g.rerr = nil
				return 0, err
			}
			n, err := g.lower().Read(p)
			if n == 0 {
				return 0, err
			}
			g.rerr = err
			in = p[:n]
		}
		consumed, delivered, ev := g.fr.feed(in, p)
		if len(g.held) > 0 {
			g.held = g.held[consumed:]
		} else if consumed < len(in) {
			g.hold(in[consumed:])
		}
		if len(g.held) == 0 {
			g.release()
		}
		if ev != evAnnounce && g.fr.mode != frameContent && g.watching.Load() {
			g.watching.Store(false) // an inferred literal has passed
		}
		if g.fr.discarded > g.srv.maxDiscard() {
			return 0, g.bye("Too much literal data to skip")
		}
		switch ev {
		case evAnnounce:
			g.decide = true
			g.sawTagged.Store(false)
			g.sawTooBig.Store(false)
			g.sawLiteralDL.Store(false)
			g.watching.Store(true)
		case evStartTLS:
			g.starttlsLine.Store(true)
		case evSyncTail:
			// The client waits for a "+" that will not come.
			return 0, g.bye("Literal in a refused command")
		}
		if delivered > 0 {
			if g.rerr != nil && len(g.held) == 0 {
				err := g.rerr
				g.rerr = nil
				return delivered, err
			}
			return delivered, nil
		}
	}
}

// decideLiteral says what becomes of the literal announced by the line
// last handed on, by what imapserver did since (see the type's comment).
func (g *literalGuard) decideLiteral() error {
	tagged, tooBig := g.sawTagged.Load(), g.sawTooBig.Load()
	literalDL := g.sawLiteralDL.Load()
	size, nonSync := g.fr.size, g.fr.nonSync
	switch {
	case tagged:
		g.watching.Store(false)
		switch {
		case !nonSync:
			// RFC 9051 §4.3: the client waited for "+"; it sends no data.
			g.fr.lineStart()
		case !tooBig:
			// The command failed before its literal (a syntax error, an
			// unknown command): client and server no longer agree on
			// where commands are.
			return g.bye("Command refused before its literal")
		case size > g.srv.maxDiscard():
			return g.bye("Literal too large")
		default:
			g.fr.discard()
		}
	case literalDL:
		g.watching.Store(false)
		g.fr.accept(false)
	case size <= maxBufferedLiteral:
		// Inferred, not seen: watch on until the data has passed.
		g.fr.accept(true)
		if g.fr.mode != frameContent {
			g.watching.Store(false)
		}
	case !nonSync:
		// imapserver refused it and waits for the next byte of the
		// string; so does the client, for "+". Neither sends: the
		// command ends at CommandTimeout, as without the guard.
		g.watching.Store(false)
		g.fr.lineStart()
	default:
		g.watching.Store(false)
		g.inject = 2
		if size > g.srv.maxDiscard() {
			g.fr.lineStart()
			g.byeNext = true
			return nil
		}
		g.fr.discard()
	}
	return nil
}

// hold keeps b, the part of a read not yet handed on.
func (g *literalGuard) hold(b []byte) {
	if g.heldBuf == nil {
		g.heldBuf = heldPool.Get().(*[]byte)
	}
	g.held = append((*g.heldBuf)[:0], b...)
}

// release gives held's buffer back once it is empty.
func (g *literalGuard) release() {
	if g.heldBuf == nil {
		return
	}
	if cap(g.held) <= 64<<10 {
		*g.heldBuf = g.held[:0]
		heldPool.Put(g.heldBuf)
	}
	g.heldBuf, g.held = nil, nil
}

// bye tells the client the connection ends, and returns io.EOF for
// imapserver, which then closes it as after a client's hang-up.
func (g *literalGuard) bye(text string) error {
	g.srv.log.Debug("closing on an unread literal", "remote", g.RemoteAddr().String(), "why", text)
	c := g.lower()
	if err := c.SetWriteDeadline(time.Now().Add(batchWriteTimeout)); err != nil {
		g.srv.log.Debug("set write deadline", "err", err)
	}
	if _, err := io.WriteString(c, "* BYE "+text+"\r\n"); err != nil {
		g.srv.log.Debug("bye", "err", err)
	}
	return io.EOF
}

// startTLS runs the server's TLS handshake under the guard, after the
// STARTTLS reply. Bytes the client sent after its STARTTLS line, before
// the handshake, go to the handshake, where they fail it (as they do in
// imapserver's own STARTTLS): never to the commands.
func (g *literalGuard) startTLS() error {
	c := g.lower()
	var under net.Conn = c
	if len(g.held) > 0 {
		under = &prefixConn{Conn: c, prefix: bytes.Clone(g.held)}
		g.held = g.held[:0]
		g.release()
	}
	if g.rerr != nil {
		return g.rerr
	}
	tc := tls.Server(under, g.srv.opts.TLSConfig)
	if err := c.SetWriteDeadline(time.Now().Add(g.srv.opts.CommandTimeout)); err != nil {
		return err
	}
	// The read deadline imapserver set for the next command bounds the
	// handshake's reads.
	if err := tc.HandshakeContext(context.WithoutCancel(g.srv.baseCtx)); err != nil {
		g.srv.log.Debug("STARTTLS handshake failed", "remote", g.RemoteAddr().String(), "err", err)
		return io.EOF
	}
	if err := c.SetWriteDeadline(time.Time{}); err != nil {
		return err
	}
	g.conn.Store(&netConn{tc})
	g.isTLS.Store(true)
	g.fr = framer{}
	return nil
}

// prefixConn reads prefix before the connection.
type prefixConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// Write passes imapserver's responses on. It notes tagged status
// responses (see the type's comment), answers STARTTLS (see startTLSReply)
// and adds STARTTLS to the capabilities while it is on offer.
func (g *literalGuard) Write(p []byte) (int, error) {
	watching, starttls := g.watching.Load(), g.starttlsLine.Load()
	if (watching || starttls) && isTaggedStatus(p) {
		if watching {
			g.sawTooBig.Store(bytes.Contains(p, []byte(" [TOOBIG] ")))
			g.sawTagged.Store(true)
		}
		if starttls && g.starttlsLine.CompareAndSwap(true, false) {
			return g.startTLSReply(p)
		}
	} else if len(p) > 0 && p[0] == '*' && !g.loggedIn() {
		if q := rewriteCaps(p, g.offerStartTLS(), g.loginDisabled()); q != nil {
			if _, err := g.lower().Write(q); err != nil {
				return 0, err
			}
			return len(p), nil
		}
	}
	return g.lower().Write(p)
}

// startTLSReply puts the guard's answer to STARTTLS in the place of
// imapserver's p ("tag NO STARTTLS not supported": it has no TLSConfig).
func (g *literalGuard) startTLSReply(p []byte) (int, error) {
	tag, _, _ := bytes.Cut(p, []byte(" "))
	var text string
	switch {
	case g.srv.opts.TLSConfig == nil || !bytes.Contains(p, []byte(" NO STARTTLS not supported")):
		return g.lower().Write(p)
	case !g.offerStartTLS():
		text = " BAD STARTTLS not available\r\n"
	default:
		text = " OK Begin TLS negotiation now\r\n"
		g.startTLSAfter.Store(true)
	}
	if _, err := g.lower().Write(append(bytes.Clone(tag), text...)); err != nil {
		return 0, err
	}
	return len(p), nil
}

// isTaggedStatus reports whether p starts a tagged status response: a tag
// other than "*", then OK, NO, BAD or BYE. imapserver writes each
// response in a Write of its own (it flushes after every one).
func isTaggedStatus(p []byte) bool {
	tag, rest, ok := bytes.Cut(p, []byte(" "))
	if !ok || len(tag) == 0 || bytes.Equal(tag, []byte("*")) {
		return false
	}
	for _, s := range []string{"OK ", "NO ", "BAD ", "BYE "} {
		if bytes.HasPrefix(rest, []byte(s)) {
			return true
		}
	}
	return false
}

// rewriteCaps returns p with its capability list changed, if p is
// imapserver's greeting or CAPABILITY response and a change is asked
// for: STARTTLS added if startTLS; if loginDisabled, every AUTH=
// capability taken out and LOGINDISABLED added. It returns nil if p is
// not such a response or needs no change.
func rewriteCaps(p []byte, startTLS, loginDisabled bool) []byte {
	if !startTLS && !loginDisabled {
		return nil
	}
	var from, to int // the capability list: p[from:to]
	switch {
	case bytes.HasPrefix(p, []byte("* CAPABILITY ")) && bytes.HasSuffix(p, []byte("\r\n")):
		from, to = len("* CAPABILITY "), len(p)-2
	case bytes.HasPrefix(p, []byte("* OK [CAPABILITY ")):
		from = len("* OK [CAPABILITY ")
		to = bytes.IndexByte(p, ']')
		if to < from {
			return nil
		}
	default:
		return nil
	}
	caps := bytes.Fields(p[from:to])
	out := make([][]byte, 0, len(caps)+2)
	changed := false
	for _, c := range caps {
		if loginDisabled && len(c) >= 5 && bytes.EqualFold(c[:5], []byte("AUTH=")) {
			changed = true
			continue
		}
		out = append(out, c)
	}
	has := func(name string) bool {
		return slices.ContainsFunc(out, func(c []byte) bool { return bytes.EqualFold(c, []byte(name)) })
	}
	if startTLS && !has("STARTTLS") {
		out = append(out, []byte("STARTTLS"))
		changed = true
	}
	if loginDisabled && !has("LOGINDISABLED") {
		out = append(out, []byte("LOGINDISABLED"))
		changed = true
	}
	if !changed {
		return nil
	}
	q := make([]byte, 0, len(p)+len(" STARTTLS LOGINDISABLED"))
	q = append(q, p[:from]...)
	q = append(q, bytes.Join(out, []byte(" "))...)
	return append(q, p[to:]...)
}

// SetReadDeadline passes t on; imapserver's literalReadTimeout says it
// reads an APPEND literal (see the type's comment).
func (g *literalGuard) SetReadDeadline(t time.Time) error {
	if !t.IsZero() && g.watching.Load() {
		if d := time.Until(t); d > literalClass && d <= idleClass {
			g.sawLiteralDL.Store(true)
		}
	}
	return g.lower().SetReadDeadline(t)
}

// SetDeadline sets both deadlines, the read one as SetReadDeadline does.
func (g *literalGuard) SetDeadline(t time.Time) error {
	if err := g.lower().SetWriteDeadline(t); err != nil {
		return err
	}
	return g.SetReadDeadline(t)
}

func (g *literalGuard) SetWriteDeadline(t time.Time) error { return g.lower().SetWriteDeadline(t) }
func (g *literalGuard) Close() error                       { return g.lower().Close() }
func (g *literalGuard) LocalAddr() net.Addr                { return g.lower().LocalAddr() }
func (g *literalGuard) RemoteAddr() net.Addr               { return g.lower().RemoteAddr() }
