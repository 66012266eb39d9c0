package imapd

import (
	"bufio"
	"compress/flate"
	"context"
	"fmt"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"pushmail/mailstore"
)

// deflateOnce is a client's compressor that keeps no state between
// writes: each Write starts a fresh stream segment with Reset and ends in
// a sync flush, which a DEFLATE stream allows. One serves every client
// of a benchmark, so the clients hold no compressor (1 MB each).
type deflateOnce struct {
	net.Conn
	zw *flate.Writer
}

func (c deflateOnce) Write(p []byte) (int, error) {
	c.zw.Reset(c.Conn)
	n, err := c.zw.Write(p)
	if err == nil {
		err = c.zw.Flush()
	}
	return n, err
}

// dialIdleDeflate is dialIdle with COMPRESS DEFLATE after LOGIN. The
// client keeps no decompressor once in IDLE: the server's next write
// starts afresh (compress.go), so a new one reads it.
func dialIdleDeflate(tb testing.TB, addr string, zw *flate.Writer) *idleClient {
	tb.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		tb.Fatalf("Dial(%s) = %v", addr, err)
	}
	c := &idleClient{conn: conn, r: bufio.NewReaderSize(conn, 256)}
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		tb.Fatal(err)
	}
	c.expect(tb, "* OK")
	fmt.Fprintf(conn, "a LOGIN %s %s\r\n", testUser, testPassword)
	c.expect(tb, "a OK")
	fmt.Fprintf(conn, "z COMPRESS DEFLATE\r\n")
	c.expect(tb, "z OK")
	raw := c.r
	c.r = bufio.NewReaderSize(flate.NewReader(raw), 256)
	w := deflateOnce{Conn: conn, zw: zw}
	fmt.Fprintf(w, "b SELECT INBOX\r\n")
	c.expect(tb, "b OK")
	fmt.Fprintf(w, "c IDLE\r\n")
	c.expect(tb, "+ ")
	c.r = raw
	if err := conn.SetDeadline(time.Time{}); err != nil {
		tb.Fatal(err)
	}
	return c
}

// BenchmarkCompressSession measures what one session in IDLE holds in the
// server, heap and goroutine stacks, without and with COMPRESS DEFLATE,
// divided by the b.N sessions open (measured before a delivery is pushed
// to all of them, which then checks they work). The clients hold no
// compressor or decompressor while idle. Run with -benchtime 500x or so.
func BenchmarkCompressSession(b *testing.B) {
	for _, deflate := range []bool{false, true} {
		name := "plain"
		if deflate {
			name = "deflate"
		}
		b.Run(name, func(b *testing.B) {
			store, inbox, addr := newCostEnv(b)
			zw, err := flate.NewWriter(nil, flate.BestSpeed)
			if err != nil {
				b.Fatal(err)
			}
			var before, idle runtime.MemStats
			runtime.GC()
			runtime.ReadMemStats(&before)
			clients := make([]*idleClient, 0, b.N)
			b.Cleanup(func() {
				for _, c := range clients {
					c.conn.Close()
				}
			})
			for b.Loop() {
				if deflate {
					clients = append(clients, dialIdleDeflate(b, addr, zw))
				} else {
					clients = append(clients, dialIdle(b, addr))
				}
			}
			b.StopTimer()
			runtime.GC()
			runtime.GC()
			runtime.ReadMemStats(&idle)
			n := float64(len(clients))
			b.ReportMetric((float64(idle.HeapInuse)-float64(before.HeapInuse))/n, "heap-B/session")
			b.ReportMetric((float64(idle.StackInuse)-float64(before.StackInuse))/n, "stack-B/session")
			if _, err := store.Deliver(context.Background(), testMessage(1), []mailstore.Recipient{inbox}); err != nil {
				b.Fatalf("Deliver() = %v", err)
			}
			for _, c := range clients {
				if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
					b.Fatal(err)
				}
				r := c.r
				if deflate {
					r = bufio.NewReaderSize(flate.NewReader(c.r), 256)
				}
				line, err := r.ReadString('\n')
				if err != nil || !strings.HasPrefix(line, "* 1 EXISTS") {
					b.Fatalf("pushed: %q, %v; want * 1 EXISTS", line, err)
				}
			}
		})
	}
}

// BenchmarkCompressFetch measures what COMPRESS saves and costs on a
// large response: FETCH 1:* (ENVELOPE BODY.PEEK[]) of 100 text messages
// of about 4 KB, read whole by a raw client. It reports the bytes on the
// wire per FETCH (wire-B/op) against the uncompressed bytes (text-B/op).
func BenchmarkCompressFetch(b *testing.B) {
	for _, deflate := range []bool{false, true} {
		name := "plain"
		if deflate {
			name = "deflate"
		}
		b.Run(name, func(b *testing.B) {
			env := newTestEnv(b, envOptions{logs: nil})
			for i := range 100 {
				env.deliver(b, fetchBenchMessage(i))
			}
			c := env.raw(b)
			counter := &countConn{Conn: c.conn}
			c.conn, c.r = counter, bufio.NewReader(counter)
			if deflate {
				if _, tagged := c.cmd("COMPRESS DEFLATE"); tagged != "OK DEFLATE active" {
					b.Fatalf("COMPRESS = %q", tagged)
				}
				c.startDeflate()
			}
			c.ok("SELECT INBOX")
			var text int
			start := counter.in.Load()
			for b.Loop() {
				for _, l := range c.ok("FETCH 1:* (ENVELOPE BODY.PEEK[])") {
					text += len(l) + 2
				}
			}
			b.ReportMetric(float64(counter.in.Load()-start)/float64(b.N), "wire-B/op")
			b.ReportMetric(float64(text)/float64(b.N), "text-B/op")
		})
	}
}

// fetchBenchMessage is a plain-text message of about 4 KB, as people
// write them: words repeat, lines do not.
func fetchBenchMessage(i int) []byte {
	var sb strings.Builder
	fmt.Fprintf(&sb, "From: Alice Example <alice%d@example.org>\r\nTo: bob@localhost\r\nSubject: Meeting notes, week %d\r\n"+
		"Date: Mon, 2 Jan 2006 15:04:05 +0000\r\nMessage-ID: <%d.notes@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n", i, i, i)
	words := strings.Fields("the project review moved to thursday because the build server needs a new disk and " +
		"we agreed to ship the release after the security fixes land please send your notes before noon")
	for line := 0; sb.Len() < 4000; line++ {
		for w := range 12 {
			sb.WriteString(words[(i*7+line*5+w*3)%len(words)])
			sb.WriteByte(' ')
		}
		fmt.Fprintf(&sb, "(%d.%d)\r\n", i, line)
	}
	return []byte(sb.String())
}

// BenchmarkDeflateWrite measures one write of a compressed session as
// deflateConn does it (Reset, Write, sync Flush) at BestSpeed, the level
// used, and at the default level, for a one-line push and a full 4 KiB
// buffer; and the heap of one flate.Writer at that level (writer-B),
// which is why sessions do not keep one.
func BenchmarkDeflateWrite(b *testing.B) {
	line := []byte("* 17 EXISTS\r\n")
	full := []byte(strings.Repeat("* 1 FETCH (UID 5 FLAGS (\\Seen) ENVELOPE (\"Mon, 2 Jan 2006\" \"subject words here\"))\r\n", 50)[:writeBufSize])
	for _, level := range []int{flate.BestSpeed, flate.DefaultCompression} {
		for _, in := range [][]byte{line, full} {
			b.Run(fmt.Sprintf("level=%d/bytes=%d", level, len(in)), func(b *testing.B) {
				var m0, m1 runtime.MemStats
				runtime.GC()
				runtime.ReadMemStats(&m0)
				zw, err := flate.NewWriter(nil, level)
				if err != nil {
					b.Fatal(err)
				}
				runtime.GC()
				runtime.ReadMemStats(&m1)
				var out strings.Builder
				for b.Loop() {
					out.Reset()
					zw.Reset(&out)
					zw.Write(in)
					zw.Flush()
				}
				b.ReportMetric(float64(out.Len()), "out-B")
				b.ReportMetric(float64(m1.HeapInuse)-float64(m0.HeapInuse), "writer-B")
				runtime.KeepAlive(zw)
			})
		}
	}
}
