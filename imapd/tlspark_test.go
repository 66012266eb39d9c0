package imapd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
	"time"
)

// dialTLSRaw connects a raw client over TLS to addr, implicit or after
// STARTTLS (tagged "s", so that the scenario's tags are a plain
// session's), and logs in. With hold, the client's TLS records go
// through it.
func dialTLSRaw(t *testing.T, addr string, starttls bool, hold *holdConn) *rawConn {
	t.Helper()
	return dialTLSRawWith(t, addr, starttls, hold, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
}

// dialTLSRawWith is dialTLSRaw with the client's TLS configuration.
func dialTLSRawWith(t *testing.T, addr string, starttls bool, hold *holdConn, config *tls.Config) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatalf("Dial(%s) = %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	if starttls {
		plain := &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
		if g := plain.readLine(); !strings.HasPrefix(g, "* OK ") {
			t.Fatalf("greeting %q", g)
		}
		if _, err := io.WriteString(conn, "s STARTTLS\r\n"); err != nil {
			t.Fatalf("write: %v", err)
		}
		if l := plain.readLine(); !strings.HasPrefix(l, "s OK") {
			t.Fatalf("STARTTLS: %q", l)
		}
	}
	var under net.Conn = conn
	if hold != nil {
		hold.Conn = conn
		under = hold
	}
	tc := tls.Client(under, config)
	c := &rawConn{t: t, conn: tc, r: bufio.NewReader(tc)}
	if !starttls {
		if g := c.readLine(); !strings.HasPrefix(g, "* OK ") {
			t.Fatalf("greeting %q", g)
		}
	}
	c.ok("LOGIN %s %s", testUser, testPassword)
	return c
}

// holdConn is a client's connection whose writes it keeps while held,
// and sends in one write at release: several TLS records in one segment.
type holdConn struct {
	net.Conn
	mu   sync.Mutex
	held bool
	buf  bytes.Buffer
}

func (h *holdConn) Write(p []byte) (int, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.held {
		return h.buf.Write(p)
	}
	return h.Conn.Write(p)
}

func (h *holdConn) hold() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = true
}

func (h *holdConn) release() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.held = false
	_, err := h.Conn.Write(h.buf.Bytes())
	h.buf.Reset()
	return err
}

// Records that arrive together: the session must not park with DONE's
// record read from the socket and not yet processed by tls.Conn (it
// would sleep on a socket that shows nothing until the IDLE timeout),
// nor with a command pipelined after DONE. Each then wakes and is
// answered.
func TestHibernateTLSRecordsTogether(t *testing.T) {
	t.Parallel()
	for _, starttls := range []bool{false, true} {
		t.Run(fmt.Sprintf("starttls=%v", starttls), func(t *testing.T) {
			t.Parallel()
			cfg := testTLSConfig(t)
			env := newTestEnv(t, envOptions{server: Options{Hibernate: true, TLSConfig: cfg}})
			addr := env.addr
			if !starttls {
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatalf("Listen() = %v", err)
				}
				go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
				addr = ln.Addr().String()
			}
			hold := &holdConn{}
			c := dialTLSRaw(t, addr, starttls, hold)
			c.ok("SELECT INBOX")

			// A plain IDLE parks over TLS.
			tag := c.send("IDLE")
			if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
				t.Fatalf("IDLE: %q", l)
			}
			waitParked(t, env, 1)
			if _, err := io.WriteString(c.conn, "DONE\r\n"); err != nil {
				t.Fatal(err)
			}
			if l := c.readLine(); !strings.HasPrefix(l, tag+" OK") {
				t.Fatalf("DONE: %q", l)
			}

			// IDLE, DONE and NOOP in three records of one segment.
			hold.hold()
			c.n++
			idle := fmt.Sprintf("t%d", c.n)
			c.n++
			noop := fmt.Sprintf("t%d", c.n)
			for _, line := range []string{idle + " IDLE\r\n", "DONE\r\n", noop + " NOOP\r\n"} {
				if _, err := io.WriteString(c.conn, line); err != nil {
					t.Fatal(err)
				}
			}
			if err := hold.release(); err != nil {
				t.Fatal(err)
			}
			for _, want := range []string{"+ ", idle + " OK", noop + " OK"} {
				if l := c.readLine(); !strings.HasPrefix(l, want) {
					t.Fatalf("read %q, want %q…", l, want)
				}
			}
			// The session ends its IDLE as usual, and hibernates in the
			// next.
			c.send("IDLE")
			if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
				t.Fatalf("IDLE: %q", l)
			}
			waitParked(t, env, 1)
			env.deliver(t, testMessage(1))
			if l := c.readLine(); l != "* 1 EXISTS" {
				t.Fatalf("read %q, want * 1 EXISTS", l)
			}
			waitParked(t, env, 1)
		})
	}
}

// recordConn hands out at most one record per Read, whatever the reads
// below it return, and says when it holds bytes.
func TestRecordConnReadsRecords(t *testing.T) {
	rec := func(typ byte, body string) []byte {
		return append([]byte{typ, 3, 3, byte(len(body) >> 8), byte(len(body))}, body...)
	}
	var stream []byte
	stream = append(stream, rec(23, "hello")...)
	stream = append(stream, rec(21, "")...)
	stream = append(stream, rec(23, strings.Repeat("x", 300))...)
	stream = append(stream, rec(22, "ab")...)
	want := [][]byte{rec(23, "hello"), rec(21, ""), rec(23, strings.Repeat("x", 300)), rec(22, "ab")}
	for _, chunk := range []int{1, 3, 7, 64, len(stream)} {
		src, dst := net.Pipe()
		go func() {
			for rest := stream; len(rest) > 0; rest = rest[min(chunk, len(rest)):] {
				if _, err := dst.Write(rest[:min(chunk, len(rest))]); err != nil {
					return
				}
			}
			dst.Close()
		}()
		rc := &recordConn{Conn: src}
		buf := make([]byte, 1024)
		var got []byte
		for i := 0; len(want) > i; {
			n, err := rc.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				t.Fatalf("chunk %d: Read() = %v", chunk, err)
			}
			if !bytes.HasPrefix(want[i], got) && !bytes.Equal(got, want[i]) {
				t.Fatalf("chunk %d: record %d read as %q, want %q (a read crossed its end)", chunk, i, got, want[i])
			}
			if bytes.Equal(got, want[i]) {
				if !rc.holdsNothing() && i == len(want)-1 {
					t.Errorf("chunk %d: recordConn holds bytes after the last record", chunk)
				}
				got, i = nil, i+1
			} else if rc.holdsNothing() {
				t.Errorf("chunk %d: holdsNothing within record %d", chunk, i)
			}
		}
		src.Close()
	}
}

// tlsRecord is a TLS record: a 5-byte header and body.
func tlsRecord(typ byte, body []byte) []byte {
	return append([]byte{typ, 3, 1, byte(len(body) >> 8), byte(len(body))}, body...)
}

// The client's first handshake records, in the clear, reach tls.Conn cut
// into records of at most clearPieceMax bytes, one per Read, with their
// bytes in order and their header's type and version; from the first
// record of another type on (here a TLS 1.2 ChangeCipherSpec, then an
// encrypted Finished, a handshake record again), records pass as they
// come.
func TestRecordConnCutsClearHandshake(t *testing.T) {
	hello := make([]byte, 1500)
	for i := range hello {
		hello[i] = byte(i)
	}
	finished := bytes.Repeat([]byte{0xf1}, 700) // encrypted: must not be cut
	var stream []byte
	stream = append(stream, tlsRecord(22, hello)...)
	stream = append(stream, tlsRecord(22, []byte("kx"))...)
	stream = append(stream, tlsRecord(20, []byte{1})...)
	stream = append(stream, tlsRecord(22, finished)...)
	stream = append(stream, tlsRecord(23, []byte("data"))...)
	want := [][]byte{
		tlsRecord(22, hello[:375]), tlsRecord(22, hello[375:750]), tlsRecord(22, hello[750:1262]), tlsRecord(22, hello[1262:]),
		tlsRecord(22, []byte("kx")), tlsRecord(20, []byte{1}), tlsRecord(22, finished), tlsRecord(23, []byte("data")),
	}
	for _, chunk := range []int{1, 5, 7, 600, len(stream)} {
		for _, readSize := range []int{3, 517, 4096} {
			src, dst := net.Pipe()
			go func() {
				for rest := stream; len(rest) > 0; rest = rest[min(chunk, len(rest)):] {
					if _, err := dst.Write(rest[:min(chunk, len(rest))]); err != nil {
						return
					}
				}
				dst.Close()
			}()
			rc := &recordConn{Conn: src}
			buf := make([]byte, readSize)
			var got []byte
			for i := 0; i < len(want); {
				n, err := rc.Read(buf)
				got = append(got, buf[:n]...)
				if err != nil {
					t.Fatalf("chunk %d, reads of %d: Read() = %v after %d records", chunk, readSize, err, i)
				}
				if !bytes.HasPrefix(want[i], got) {
					t.Fatalf("chunk %d, reads of %d: record %d read as %q…, want %q (cut wrong, or a read crossed its end)", chunk, readSize, i, got[:min(len(got), 16)], want[i][:16])
				}
				if len(got) < len(want[i]) {
					if rc.holdsNothing() {
						t.Errorf("chunk %d, reads of %d: holdsNothing within record %d", chunk, readSize, i)
					}
					continue
				}
				got, i = nil, i+1
				if i == len(want) && !rc.holdsNothing() {
					t.Errorf("chunk %d, reads of %d: recordConn holds bytes after the last record", chunk, readSize)
				}
			}
			src.Close()
		}
	}
}

// A cut ClientHello spares tls.Conn's raw input buffer (no piece needs
// more than its first size) and not at the expense of its handshake
// buffer: a bytes.Buffer fed the pieces ends no larger than one fed the
// whole fragment, for ClientHellos up to 2,560 bytes. (Over that, it may
// end larger, by less than the raw input buffer saves.)
func TestCutHandshakeRecordSizes(t *testing.T) {
	for size := 1; size <= maxPlaintext; size += 1 + size/64 {
		frag := make([]byte, size)
		for i := range frag {
			frag[i] = byte(i * 7)
		}
		out := cutHandshakeRecord(tlsRecord(22, frag))
		var whole, cut bytes.Buffer
		whole.Write(frag)
		var joined []byte
		for rest := out; len(rest) > 0; {
			n := int(rest[3])<<8 | int(rest[4])
			if rest[0] != 22 || rest[1] != 3 || rest[2] != 1 || n == 0 || n > clearPieceMax {
				t.Fatalf("size %d: piece header % x", size, rest[:5])
			}
			cut.Write(rest[5 : 5+n])
			joined = append(joined, rest[5:5+n]...)
			rest = rest[5+n:]
		}
		if !bytes.Equal(joined, frag) {
			t.Fatalf("size %d: pieces do not join into the fragment", size)
		}
		if size <= 2560 && cut.Cap() > whole.Cap() {
			t.Errorf("size %d: a buffer fed the pieces holds %d bytes, fed the whole %d", size, cut.Cap(), whole.Cap())
		}
	}
}

// A session whose ClientHello came cut into pieces (recordConn) parks
// with tls.Conn's buffers at their small size, and wakes to do what a
// session does: TLS 1.3 (whose ClientHello is large with the
// X25519MLKEM768 key share) and TLS 1.2 (a ClientHello made large with
// ALPN names, whose encrypted Finished is a handshake record that must
// pass whole), implicit and after STARTTLS. Woken by a delivery, it
// receives the EXISTS; woken by DONE, it takes an APPEND in records of
// the largest size (tls.Conn's raw input buffer grows again as it must),
// whose message the store then has; it parks again, and ends its IDLE
// with DONE split across two records.
func TestHibernateTLSAfterCutHandshake(t *testing.T) {
	t.Parallel()
	var alpn []string
	for i := range 12 {
		alpn = append(alpn, fmt.Sprintf("x-%03d-%s", i, strings.Repeat("p", 180)))
	}
	for _, tc := range []struct {
		name   string
		client *tls.Config
	}{
		{"TLS 1.3", &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", MinVersion: tls.VersionTLS13}},
		{"TLS 1.2", &tls.Config{InsecureSkipVerify: true, ServerName: "localhost", MaxVersion: tls.VersionTLS12, NextProtos: alpn}},
	} {
		for _, starttls := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/starttls=%v", tc.name, starttls), func(t *testing.T) {
				t.Parallel()
				cfg := testTLSConfig(t)
				env := newTestEnv(t, envOptions{server: Options{Hibernate: true, TLSConfig: cfg}})
				addr := env.addr
				if !starttls {
					ln, err := net.Listen("tcp", "127.0.0.1:0")
					if err != nil {
						t.Fatalf("Listen() = %v", err)
					}
					go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
					addr = ln.Addr().String()
				}
				hold := &holdConn{}
				c := dialTLSRawWith(t, addr, starttls, hold, tc.client)
				if v := c.conn.(*tls.Conn).ConnectionState().Version; v != tc.client.MinVersion && v != tc.client.MaxVersion {
					t.Fatalf("TLS version %x", v)
				}
				c.ok("SELECT INBOX")

				tag := c.send("IDLE")
				if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
					t.Fatalf("IDLE: %q", l)
				}
				waitParked(t, env, 1)
				env.deliver(t, testMessage(1))
				if l := c.readLine(); l != "* 1 EXISTS" {
					t.Fatalf("read %q, want * 1 EXISTS", l)
				}
				waitParked(t, env, 1)
				if _, err := io.WriteString(c.conn, "DONE\r\n"); err != nil {
					t.Fatal(err)
				}
				for l := c.readLine(); !strings.HasPrefix(l, tag+" "); l = c.readLine() {
					if !strings.HasPrefix(l, "* ") {
						t.Fatalf("DONE: %q", l)
					}
				}

				// A message of 40,000 bytes: full records of 16 KiB.
				body := strings.Repeat("0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-=\r\n", 600)
				msg := "From: bob@example.org\r\nSubject: big\r\n\r\n" + body
				tag = c.send("APPEND INBOX {%d}", len(msg))
				if l := c.readLine(); !strings.HasPrefix(l, "+") {
					t.Fatalf("APPEND: %q", l)
				}
				if _, err := io.WriteString(c.conn, msg+"\r\n"); err != nil {
					t.Fatal(err)
				}
				for {
					l := c.readLine()
					if strings.HasPrefix(l, tag+" ") {
						if !strings.HasPrefix(l, tag+" OK") {
							t.Fatalf("APPEND: %q", l)
						}
						break
					}
				}
				if uids := env.storeUIDs(t, "INBOX"); len(uids) != 2 {
					t.Fatalf("the store has UIDs %v in INBOX, want 2 messages", uids)
				}
				untagged := c.ok("UID FETCH %d RFC822.SIZE", env.storeUIDs(t, "INBOX")[1])
				if want := fmt.Sprintf("RFC822.SIZE %d", len(msg)); len(untagged) != 1 || !strings.Contains(untagged[0], want) {
					t.Fatalf("FETCH: %q, want %s", untagged, want)
				}

				// Parks again; DONE in two records of one segment.
				tag = c.send("IDLE")
				if l := c.readLine(); !strings.HasPrefix(l, "+ ") {
					t.Fatalf("IDLE: %q", l)
				}
				waitParked(t, env, 1)
				hold.hold()
				for _, part := range []string{"DO", "NE\r\n"} {
					if _, err := io.WriteString(c.conn, part); err != nil {
						t.Fatal(err)
					}
				}
				if err := hold.release(); err != nil {
					t.Fatal(err)
				}
				if l := c.readLine(); !strings.HasPrefix(l, tag+" OK") {
					t.Fatalf("DONE: %q", l)
				}
				c.ok("NOOP")
			})
		}
	}
}

// A session cancelled during its TLS handshake (the login timer here, as
// an eviction does) ends it at once, its connection closed, though the
// handshake runs on a context of its own (handshake); so does Shutdown.
// The client sends half a ClientHello and waits.
func TestTLSHandshakeCancelled(t *testing.T) {
	t.Parallel()
	half := func(t *testing.T, addr string) net.Conn {
		conn, err := net.DialTimeout("tcp", addr, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		hello := tlsRecord(22, make([]byte, 1200))
		if _, err := conn.Write(hello[:600]); err != nil {
			t.Fatal(err)
		}
		return conn
	}
	t.Run("login timeout", func(t *testing.T) {
		t.Parallel()
		cfg := testTLSConfig(t)
		// The command timeout (the handshake's read deadline) is longer
		// than the test waits.
		env := newTestEnv(t, envOptions{server: Options{LoginTimeout: 200 * time.Millisecond, CommandTimeout: time.Hour}})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
		conn := half(t, ln.Addr().String())
		untilClosed(t, conn)
		untilBaseline(t, "sessions", 0, func() int { return sessionsOpen(env.srv) })
	})
	t.Run("shutdown", func(t *testing.T) {
		t.Parallel()
		cfg := testTLSConfig(t)
		env := newTestEnv(t, envOptions{server: Options{CommandTimeout: time.Hour}})
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
		conn := half(t, ln.Addr().String())
		// Admitted, in its handshake (one refused as Shutdown begins
		// would not be).
		for end := time.Now().Add(waitTimeout); sessionsOpen(env.srv) != 1; {
			if time.Now().After(end) {
				t.Fatalf("%d sessions open, want 1", sessionsOpen(env.srv))
			}
			time.Sleep(time.Millisecond) // a state to reach, not a push to wait for
		}
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := env.srv.Shutdown(ctx); err != nil {
			t.Fatalf("Shutdown() with a handshake under way = %v", err)
		}
		untilClosed(t, conn)
	})
}
