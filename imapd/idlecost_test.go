package imapd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"

	"pushmail/mailstore"
)

// idleClient is a hand-driven session in IDLE on INBOX. It has no
// goroutine of its own, so that what a benchmark counts per session is the
// server's.
type idleClient struct {
	conn net.Conn
	r    *bufio.Reader
}

// dialIdle connects, logs in, selects INBOX and enters IDLE.
func dialIdle(tb testing.TB, addr string) *idleClient {
	tb.Helper()
	c, err := tryDialIdle(addr)
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

// tryDialIdle is dialIdle for a goroutine other than the test's: it
// returns its error.
func tryDialIdle(addr string) (*idleClient, error) {
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		return nil, fmt.Errorf("Dial(%s) = %v", addr, err)
	}
	return startIdleOn(conn)
}

// startIdleOn logs in on conn, selects INBOX and enters IDLE.
func startIdleOn(conn net.Conn) (*idleClient, error) {
	c := &idleClient{conn: conn, r: bufio.NewReaderSize(conn, 256)}
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		conn.Close()
		return nil, err
	}
	for _, step := range []struct{ send, want string }{
		{"", "* OK"},
		{fmt.Sprintf("a LOGIN %s %s\r\n", testUser, testPassword), "a OK"},
		{"b SELECT INBOX\r\n", "b OK"},
		{"c IDLE\r\n", "+ "},
	} {
		if step.send != "" {
			if _, err := io.WriteString(conn, step.send); err != nil {
				conn.Close()
				return nil, err
			}
		}
		if _, err := c.await(step.want); err != nil {
			conn.Close()
			return nil, err
		}
	}
	if err := conn.SetDeadline(time.Time{}); err != nil {
		conn.Close()
		return nil, err
	}
	return c, nil
}

// expect reads lines up to one that starts with prefix.
func (c *idleClient) expect(tb testing.TB, prefix string) string {
	tb.Helper()
	line, err := c.await(prefix)
	if err != nil {
		tb.Fatal(err)
	}
	return line
}

// await reads lines up to one that starts with prefix; a NO or BAD, or
// the connection's end, is an error.
func (c *idleClient) await(prefix string) (string, error) {
	for {
		line, err := c.r.ReadString('\n')
		if err != nil {
			return "", fmt.Errorf("waiting for %q: %v", prefix, err)
		}
		if strings.HasPrefix(line, prefix) {
			return line, nil
		}
		if strings.Contains(line, " NO ") || strings.Contains(line, " BAD ") {
			return "", fmt.Errorf("waiting for %q: %q", prefix, line)
		}
	}
}

// newCostEnv is a store and a Server that logs as "pushmail serve" does
// by default: text, at level Info (into io.Discard).
func newCostEnv(tb testing.TB) (*mailstore.Store, mailstore.Recipient, string) {
	tb.Helper()
	e := newTestEnv(tb, envOptions{server: Options{MaxConns: -1, MaxConnsPerIP: -1}, logs: io.Discard})
	return e.store, e.inbox, e.addr
}

// BenchmarkIdleSession measures what one session in IDLE holds in the
// server: heap in use, goroutine stacks and goroutines, each divided by
// the b.N sessions open at the end (after a delivery pushed to all of
// them, so that the push path's stack growth counts). The clients are
// plain connections without goroutines. Run with -benchtime 2000x or so;
// each session needs two descriptors.
func BenchmarkIdleSession(b *testing.B) {
	store, inbox, addr := newCostEnv(b)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	goroutines := runtime.NumGoroutine()
	clients := make([]*idleClient, 0, b.N)
	b.Cleanup(func() {
		for _, c := range clients {
			c.conn.Close()
		}
	})
	for b.Loop() {
		clients = append(clients, dialIdle(b, addr))
	}
	b.StopTimer()
	var idle runtime.MemStats
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&idle)
	if _, err := store.Deliver(context.Background(), testMessage(1), []mailstore.Recipient{inbox}); err != nil {
		b.Fatalf("Deliver() = %v", err)
	}
	for _, c := range clients {
		if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
			b.Fatal(err)
		}
		c.expect(b, "* 1 EXISTS")
	}
	runtime.GC()
	runtime.GC() // a second cycle shrinks the stacks the first found oversized
	runtime.ReadMemStats(&after)
	n := float64(len(clients))
	b.ReportMetric((float64(after.HeapInuse)-float64(before.HeapInuse))/n, "heap-B/session")
	b.ReportMetric((float64(idle.StackInuse)-float64(before.StackInuse))/n, "stack-B/session-before-push")
	b.ReportMetric((float64(idle.StackInuse)-float64(before.StackInuse))/n, "stack-B/session-before-push")
	b.ReportMetric((float64(after.StackInuse)-float64(before.StackInuse))/n, "stack-B/session")
	b.ReportMetric(float64(runtime.NumGoroutine()-goroutines)/n, "goroutines/session")
}

// BenchmarkIdlePush measures the server's cost of one push to one of many
// sessions in IDLE: each iteration delivers one message to the INBOX that
// all the sessions watch and reads every session's EXISTS. ns/op divided
// by the sessions is the cost per notification, clients' reads included.
func BenchmarkIdlePush(b *testing.B) {
	const sessions = 500
	store, inbox, addr := newCostEnv(b)
	clients := make([]*idleClient, sessions)
	for i := range clients {
		clients[i] = dialIdle(b, addr)
		defer clients[i].conn.Close()
	}
	msg := testMessage(1)
	var n int
	for b.Loop() {
		n++
		if _, err := store.Deliver(context.Background(), msg, []mailstore.Recipient{inbox}); err != nil {
			b.Fatalf("Deliver() = %v", err)
		}
		want := fmt.Sprintf("* %d EXISTS", n)
		for _, c := range clients {
			if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
				b.Fatal(err)
			}
			c.expect(b, want)
		}
	}
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*sessions), "ns/notification")
}
