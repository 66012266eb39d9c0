package imapd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"testing"
)

// dialTLSRaw connects a raw client over TLS to addr, implicit or after
// STARTTLS (tagged "s", so that the scenario's tags are a plain
// session's), and logs in. With hold, the client's TLS records go
// through it.
func dialTLSRaw(t *testing.T, addr string, starttls bool, hold *holdConn) *rawConn {
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
	tc := tls.Client(under, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
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
