package imapd

import (
	"bufio"
	"bytes"
	"compress/flate"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
)

// deflateClient is the client's side of COMPRESS DEFLATE (RFC 4978) over
// a raw socket, as Python's imaplib and go-imap's client have none: each
// Write is compressed and sync-flushed, so the server can read the whole
// command at once.
type deflateClient struct {
	net.Conn
	zw *flate.Writer
}

func (c *deflateClient) Write(p []byte) (int, error) {
	n, err := c.zw.Write(p)
	if err == nil {
		err = c.zw.Flush()
	}
	return n, err
}

// countConn counts the bytes a client reads from the wire.
type countConn struct {
	net.Conn
	in atomic.Int64
}

func (c *countConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.in.Add(int64(n))
	return n, err
}

// startDeflate turns COMPRESS on for c once the server said OK: from now
// on its writes are compressed and its reads decompressed. Bytes the
// server sent after the OK are in c.r already: they are the start of the
// compressed stream.
func (c *rawConn) startDeflate() {
	c.t.Helper()
	zw, err := flate.NewWriter(c.conn, flate.DefaultCompression)
	if err != nil {
		c.t.Fatal(err)
	}
	c.conn = &deflateClient{Conn: c.conn, zw: zw}
	c.r = bufio.NewReader(flate.NewReader(c.r))
}

// readLiteral reads a literal's n bytes after the line announcing it.
func (c *rawConn) readLiteral(n int) []byte {
	c.t.Helper()
	b := make([]byte, n)
	if _, err := io.ReadFull(c.r, b); err != nil {
		c.t.Fatalf("read literal: %v", err)
	}
	return b
}

// TestCompress drives a whole session through COMPRESS DEFLATE, on a plain
// connection and under implicit TLS (RFC 4978 §4 allows both): LOGIN,
// COMPRESS, SELECT, APPEND (synchronizing and not), FETCH, IDLE with a
// pushed delivery, LOGOUT; then checks what the store holds.
func TestCompress(t *testing.T) {
	t.Parallel()
	cfg := testTLSConfig(t)
	env := newTestEnv(t, envOptions{server: Options{TLSConfig: cfg}})
	tlsLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go env.srv.ServeTLS(tlsLn, cfg) // ends with the env's Shutdown

	dials := []struct {
		name string
		dial func(t *testing.T) net.Conn
	}{
		{"plain", func(t *testing.T) net.Conn {
			nc, err := net.Dial("tcp", env.addr)
			if err != nil {
				t.Fatal(err)
			}
			return nc
		}},
		{"TLS", func(t *testing.T) net.Conn {
			nc, err := tls.Dial("tcp", tlsLn.Addr().String(), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				t.Fatal(err)
			}
			return nc
		}},
	}
	var stored [][]byte
	for _, d := range dials {
		t.Run(d.name, func(t *testing.T) {
			nc := d.dial(t)
			t.Cleanup(func() { nc.Close() })
			c := &rawConn{t: t, conn: nc, r: bufio.NewReader(nc)}
			if g := c.readLine(); !strings.HasPrefix(g, "* OK ") {
				t.Fatalf("greeting %q", g)
			}
			// RFC 4978 §3: offered once logged in, not before.
			if caps := c.ok("CAPABILITY"); strings.Contains(caps[0], "COMPRESS=") {
				t.Errorf("CAPABILITY before login = %q, want no COMPRESS", caps[0])
			}
			if _, tagged := c.cmd("COMPRESS DEFLATE"); !strings.HasPrefix(tagged, "BAD") {
				t.Errorf("COMPRESS before login = %q, want BAD", tagged)
			}
			c.ok("LOGIN %s %s", testUser, testPassword)
			if caps := c.ok("CAPABILITY"); !strings.Contains(caps[0], " COMPRESS=DEFLATE") {
				t.Errorf("CAPABILITY = %q, want COMPRESS=DEFLATE", caps[0])
			}
			if _, tagged := c.cmd("COMPRESS LZW"); !strings.HasPrefix(tagged, "BAD") {
				t.Errorf("COMPRESS LZW = %q, want BAD", tagged)
			}
			if _, tagged := c.cmd("COMPRESS DEFLATE"); tagged != "OK DEFLATE active" {
				t.Fatalf("COMPRESS DEFLATE = %q, want OK", tagged)
			}
			c.startDeflate()
			if _, tagged := c.cmd("COMPRESS DEFLATE"); !strings.HasPrefix(tagged, "NO [COMPRESSIONACTIVE]") {
				t.Errorf("second COMPRESS = %q, want NO [COMPRESSIONACTIVE]", tagged)
			}
			c.ok("SELECT INBOX")

			// A synchronizing literal: the "+" comes compressed.
			msg1 := fmt.Appendf(nil, "Subject: %s sync\r\n\r\n%s", d.name, bigMessage(3*appendBufSize))
			tag := c.send("APPEND INBOX {%d}", len(msg1))
			if l := c.readLine(); !strings.HasPrefix(l, "+") {
				t.Fatalf("APPEND: %q, want a continuation request", l)
			}
			if _, err := c.conn.Write(append(msg1, "\r\n"...)); err != nil {
				t.Fatal(err)
			}
			for l := c.readLine(); !strings.HasPrefix(l, tag+" "); l = c.readLine() {
			}
			msg2 := fmt.Appendf(nil, "Subject: %s nonsync\r\n\r\nshort\r\n", d.name)
			c.ok("APPEND INBOX (\\Seen) {%d+}\r\n%s", len(msg2), msg2)
			stored = append(stored, msg1, msg2)

			// FETCH: the literal arrives whole through the decompressor.
			n := len(stored)
			tag = c.send("FETCH %d BODY.PEEK[]", n-1)
			head := c.readLine()
			want := fmt.Sprintf("* %d FETCH (BODY[] {%d}", n-1, len(msg1))
			if head != want {
				t.Fatalf("FETCH = %q, want %q", head, want)
			}
			if got := c.readLiteral(len(msg1)); !bytes.Equal(got, msg1) {
				t.Errorf("FETCH BODY[] differs from the message appended")
			}
			if rest := c.readLine(); rest != ")" {
				t.Errorf("after the literal: %q, want )", rest)
			}
			if l := c.readLine(); !strings.HasPrefix(l, tag+" OK") {
				t.Errorf("FETCH: %q, want OK", l)
			}

			// IDLE: a delivery is pushed, compressed, without a poll.
			tag = c.send("IDLE")
			if l := c.readLine(); !strings.HasPrefix(l, "+") {
				t.Fatalf("IDLE: %q, want +", l)
			}
			pushed := fmt.Appendf(nil, "Subject: %s pushed\r\n\r\nhi\r\n", d.name)
			env.deliver(t, pushed)
			stored = append(stored, pushed)
			if l := c.readLine(); l != fmt.Sprintf("* %d EXISTS", len(stored)) {
				t.Errorf("in IDLE: %q, want * %d EXISTS", l, len(stored))
			}
			if _, err := c.conn.Write([]byte("DONE\r\n")); err != nil {
				t.Fatal(err)
			}
			for l := c.readLine(); !strings.HasPrefix(l, tag+" "); l = c.readLine() {
				if !strings.HasPrefix(l, "* ") {
					t.Errorf("after DONE: %q", l)
				}
			}
			if untagged := c.ok("LOGOUT"); !hasLine(untagged, "* BYE Logging out") {
				t.Errorf("LOGOUT: %q, want BYE", untagged)
			}
			// The server ends its side of the stream by closing.
			if _, err := c.r.ReadByte(); err == nil {
				t.Error("bytes after LOGOUT")
			}
		})
	}
	got := env.storeMessages(t, "INBOX")
	if len(got) != len(stored) {
		t.Fatalf("INBOX holds %d messages, want %d", len(got), len(stored))
	}
	for i, m := range got {
		if !bytes.Equal(m.Raw, stored[i]) {
			t.Errorf("UID %d: the store holds %d bytes, not the %d sent", m.UID, len(m.Raw), len(stored[i]))
		}
	}
}

// TestCompressPipelined: a client that sends its first compressed command
// in the same write as COMPRESS (RFC 4978 §3 says it should wait for the
// OK) is understood: those bytes are the start of the stream.
func TestCompressPipelined(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.raw(t)
	var z bytes.Buffer
	zw, err := flate.NewWriter(&z, flate.BestCompression)
	if err != nil {
		t.Fatal(err)
	}
	zw.Write([]byte("p2 NOOP\r\n"))
	zw.Flush()
	if _, err := c.conn.Write(append([]byte("p1 COMPRESS DEFLATE\r\n"), z.Bytes()...)); err != nil {
		t.Fatal(err)
	}
	if l := c.readLine(); l != "p1 OK DEFLATE active" {
		t.Fatalf("COMPRESS: %q", l)
	}
	c.r = bufio.NewReader(flate.NewReader(c.r))
	if l := c.readLine(); l != "p2 OK NOOP completed" {
		t.Fatalf("pipelined NOOP: %q", l)
	}
	// zw goes on, now writing to the socket: Reset drops its dictionary,
	// which the stream allows after a sync flush.
	zw.Reset(c.conn)
	c.conn = &deflateClient{Conn: c.conn, zw: zw}
	c.ok("NOOP")
}

// TestCompressNoHibernate: with Options.Hibernate, a plain session in IDLE
// parks and a compressed one does not (its decompressor may hold input
// the socket no longer shows); both get the push.
func TestCompressNoHibernate(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{server: Options{Hibernate: true}})
	if env.srv.hib == nil {
		t.Skip("hibernation unsupported here")
	}
	z := env.raw(t)
	if _, tagged := z.cmd("COMPRESS DEFLATE"); tagged != "OK DEFLATE active" {
		t.Fatalf("COMPRESS = %q", tagged)
	}
	z.startDeflate()
	p := env.raw(t)
	var tags []string
	for _, c := range []*rawConn{z, p} {
		c.ok("SELECT INBOX")
		tags = append(tags, c.send("IDLE"))
		if l := c.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q", l)
		}
	}
	waitParked(t, env, 1)
	env.srv.mu.Lock()
	sessions := make([]*session, 0, len(env.srv.sessions))
	for s := range env.srv.sessions {
		sessions = append(sessions, s)
	}
	env.srv.mu.Unlock()
	for _, s := range sessions {
		s.wmu.Lock()
		compressed, parked := s.compressed(), s.parked != nil
		s.wmu.Unlock()
		if compressed == parked {
			t.Errorf("session compressed %v, hibernating %v; want only the plain one hibernating", compressed, parked)
		}
	}
	env.deliver(t, testMessage(1))
	for i, c := range []*rawConn{z, p} {
		if l := c.readLine(); l != "* 1 EXISTS" {
			t.Errorf("session %d in IDLE: %q, want * 1 EXISTS", i, l)
		}
		if _, err := c.conn.Write([]byte("DONE\r\n")); err != nil {
			t.Fatal(err)
		}
		for l := c.readLine(); !strings.HasPrefix(l, tags[i]+" "); l = c.readLine() {
		}
	}
	if n := env.srv.hib.Len(); n != 0 {
		t.Errorf("%d sessions hibernating after DONE, want 0", n)
	}
}

// compressOKRE is COMPRESS's tagged OK (compress.go).
var compressOKRE = regexp.MustCompile(`^[^ ]+ OK DEFLATE active$`)

// inflateAfterCompress returns the server's output with what follows
// COMPRESS's tagged OK decompressed, for the fuzz harness to check as
// text. Responses are walked as checkResponses does, literals skipped, so
// a message holding the OK line is not taken for it. The stream has no
// final block (the server closes instead), so it ends in
// io.ErrUnexpectedEOF; any other decompression error fails the input.
func inflateAfterCompress(t *testing.T, script, out []byte) []byte {
	t.Helper()
	rest := out
	for len(rest) > 0 {
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 {
			return out
		}
		line := rest[:i]
		rest = rest[i+2:]
		if m := literalRE.FindSubmatch(line); m != nil {
			n, err := strconv.Atoi(string(m[1]))
			if err != nil || n > len(rest) {
				return out
			}
			rest = rest[n:]
			continue
		}
		if !compressOKRE.Match(line) {
			continue
		}
		plain, err := io.ReadAll(flate.NewReader(bytes.NewReader(rest)))
		if err != nil && err != io.ErrUnexpectedEOF {
			t.Fatalf("input %s: compressed output does not decompress: %v after %q", abbrev(script), err, plain)
		}
		return append(out[:len(out)-len(rest):len(out)-len(rest)], plain...)
	}
	return out
}
