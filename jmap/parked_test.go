package jmap

import (
	"bufio"
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"testing"
	"time"

	"pushmail/mailstore"
)

// rawEvents opens an event stream over a TCP connection of its own, so
// that the test can hang up on it abruptly.
func (e *testEnv) rawEvents(t *testing.T, query, lastEventID string) (*sseStream, *net.TCPConn) {
	t.Helper()
	c, err := net.Dial("tcp", e.url[len("http://"):])
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	req := "GET /jmap/eventsource?" + query + " HTTP/1.1\r\nHost: localhost\r\nAuthorization: Basic " +
		base64.StdEncoding.EncodeToString([]byte(testUser+":"+testPassword)) + "\r\n"
	if lastEventID != "" {
		req += "Last-Event-ID: " + lastEventID + "\r\n"
	}
	if _, err := io.WriteString(c, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	resp, err := http.ReadResponse(br, nil)
	if err != nil {
		t.Fatal(err)
	}
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("event source: %d %s", resp.StatusCode, resp.Header.Get("Content-Type"))
	}
	if cc := resp.Header.Get("Cache-Control"); cc != "no-cache" {
		t.Errorf("event source: Cache-Control %q; want no-cache", cc)
	}
	s := &sseStream{resp: resp, r: bufio.NewReader(resp.Body)}
	// The opening comment: the stream is set up (and, parked, about to
	// park) once it is read.
	if line, err := s.r.ReadString('\n'); err != nil || line != ": open\n" {
		t.Fatalf("first line %q, %v; want the opening comment", line, err)
	}
	return s, c.(*net.TCPConn)
}

// eventually waits for cond, which the server makes true on its own
// goroutines (a stream parks, a closed socket is let go); the test's
// deadline bounds the wait.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-t.Context().Done():
			t.Fatalf("never: %s", what)
		case <-time.After(time.Millisecond):
		}
	}
}

// openFiles counts the process's open descriptors.
func openFiles(t *testing.T) int {
	t.Helper()
	des, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(des)
}

func (e *testEnv) parked() int { return e.srv.loop.Len() }

// TestEventSourceParkedSameEvents: a parked stream (plain HTTP, the
// default) sends exactly the events a stream kept awake in net/http
// sends, for the same commits: all types, one type, a long poll
// (closeafter=state) and a reconnection with Last-Event-ID.
func TestEventSourceParkedSameEvents(t *testing.T) {
	t.Parallel()
	run := func(t *testing.T, keepAwake bool) [][]sseEvent {
		env := newEnvOptions(t, Options{KeepStreamsAwake: keepAwake})
		acct := env.account()
		all, _ := env.rawEvents(t, "types=*&closeafter=no&ping=0", "")
		mbox, _ := env.rawEvents(t, "types=Mailbox&closeafter=no&ping=0", "")
		poll, _ := env.rawEvents(t, "types=Email&closeafter=state&ping=0", "")
		wantParked := 3
		if keepAwake {
			wantParked = 0
		}
		eventually(t, "the streams park", func() bool { return env.parked() == wantParked })
		got := make([][]sseEvent, 4)
		read := func(i int, s *sseStream) {
			t.Helper()
			_, ev := s.nextState(t, acct)
			got[i] = append(got[i], ev)
		}
		env.deliver(t, "From: a@example.org\nSubject: hi\n\nx\n")
		read(0, all)
		read(1, mbox)
		read(2, poll)
		if ev, err := poll.next(); err != io.EOF {
			t.Errorf("closeafter=state after its event: %v %v; want the end of the stream", ev, err)
		}
		if _, err := env.store.StoreFlags(context.Background(), env.user.Mailbox, mailstore.UIDSetOf(1), mailstore.FlagsAdd, []string{mailstore.FlagFlagged}, 0); err != nil {
			t.Fatal(err)
		}
		read(0, all)
		if _, err := env.store.CreateMailbox(context.Background(), env.user.User, "New", ""); err != nil {
			t.Fatal(err)
		}
		read(0, all)
		read(1, mbox) // the flag change was not for it
		// A reconnection told of the first delivery only hears at once
		// of all that came after.
		again, _ := env.rawEvents(t, "types=*&closeafter=no&ping=0", got[0][0].id)
		read(3, again)
		return got
	}
	awake, parked := run(t, true), run(t, false)
	if fmt.Sprint(awake) != fmt.Sprint(parked) {
		t.Errorf("events kept awake:\n%v\nparked:\n%v", awake, parked)
	}
	for i, want := range []int{3, 2, 1, 1} {
		if len(parked[i]) != want {
			t.Errorf("stream %d: %d events; want %d", i, len(parked[i]), want)
		}
	}
}

// TestEventSourceParkedPing: a parked stream's pings come on time
// (the Loop's deadline) while it stays parked between them, and a
// commit between two pings is pushed to it as well.
func TestEventSourceParkedPing(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	s, _ := env.rawEvents(t, "types=Email&closeafter=no&ping=1", "")
	eventually(t, "the stream parks", func() bool { return env.parked() == 1 })
	nextPing := func() {
		t.Helper()
		ev, err := s.next()
		if err != nil || ev.name != "ping" || ev.data != `{"interval":1}` {
			t.Fatalf("next event %v, %v; want a ping with interval 1", ev, err)
		}
	}
	nextPing()
	eventually(t, "the stream parks again after its ping", func() bool { return env.parked() == 1 })
	env.deliver(t, "From: a@example.org\nSubject: hi\n\nx\n")
	changed, _ := s.nextState(t, env.account())
	if changed["Email"] == "" {
		t.Errorf("state event %v; want the Email state", changed)
	}
	nextPing()
}

// TestEventSourceParkedDisconnect: streams whose clients vanish while
// they are parked (a TCP reset, no goodbye) are let go in full: their
// sockets closed, their feed stopped, the process's open files back to
// what they were before. Not parallel: it counts the process's files.
func TestEventSourceParkedDisconnect(t *testing.T) {
	if runtime.GOOS != "linux" {
		t.Skip("counts /proc/self/fd")
	}
	env := newEnv(t, Limits{})
	// One stream first, so that the store's connections that serving a
	// stream opens are open in the baseline.
	_, c := env.rawEvents(t, "types=*&closeafter=no&ping=0", "")
	eventually(t, "the first stream parks", func() bool { return env.parked() == 1 })
	c.Close()
	eventually(t, "the first stream ends", func() bool { return env.parked() == 0 && env.feedCount() == 0 })
	base := openFiles(t)

	const n = 50
	conns := make([]*net.TCPConn, n)
	for i := range conns {
		_, conns[i] = env.rawEvents(t, "types=*&closeafter=no&ping=1", "")
	}
	eventually(t, "every stream parks", func() bool { return env.parked() == n })
	if got := openFiles(t); got < base+2*n {
		t.Errorf("%d open files with %d streams, %d before; want both ends of each", got, n, base)
	}
	for _, c := range conns {
		c.SetLinger(0) // close sends a reset
		c.Close()
	}
	eventually(t, "every stream is let go", func() bool {
		return env.parked() == 0 && env.feedCount() == 0 && openFiles(t) == base
	})
	// The server still serves streams: a new one hears of a delivery.
	s, _ := env.rawEvents(t, "types=Email&closeafter=no&ping=0", "")
	env.deliver(t, "From: a@example.org\nSubject: hi\n\nx\n")
	if changed, _ := s.nextState(t, env.account()); changed["Email"] == "" {
		t.Errorf("state event %v; want the Email state", changed)
	}
	if got, err := env.store.AccountState(context.Background(), env.user.User); err != nil || got.Email == 0 {
		t.Errorf("AccountState = %v, %v; want the delivery's", got, err)
	}
}

// TestEventSourceParkedClose: Close ends parked streams, with and
// without a ping deadline, and waits for them.
func TestEventSourceParkedClose(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	a, _ := env.rawEvents(t, "types=*&closeafter=no&ping=0", "")
	b, _ := env.rawEvents(t, "types=*&closeafter=no&ping=60", "")
	eventually(t, "the streams park", func() bool { return env.parked() == 2 })
	env.srv.Close()
	for _, s := range []*sseStream{a, b} {
		if _, err := s.next(); err != io.EOF {
			t.Errorf("stream after Close: %v; want its end", err)
		}
	}
	if n := env.feedCount(); n != 0 {
		t.Errorf("%d feeds after Close; want none", n)
	}
}

func (e *testEnv) feedCount() int {
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	return len(e.srv.feeds)
}

// smallSendBuffers makes the test server's sockets' send buffers small:
// a few dozen events fill them when the client does not read.
func smallSendBuffers(t *testing.T) func(*http.Server) {
	return func(hs *http.Server) {
		hs.ConnContext = func(ctx context.Context, c net.Conn) context.Context {
			if tc, ok := c.(*net.TCPConn); ok {
				if err := tc.SetWriteBuffer(4096); err != nil {
					t.Errorf("SetWriteBuffer = %v", err)
				}
			}
			return ctx
		}
	}
}

// fillStream delivers to a parked stream whose client reads nothing
// until a parked write falls short and the stream wakes to write the
// rest, blocking (ping=0 and no input: nothing else wakes it).
func (e *testEnv) fillStream(t *testing.T) {
	t.Helper()
	for i := 0; e.srv.loop.Wakes() == 0; i++ {
		if i == 2000 {
			t.Fatalf("%d deliveries to a client that reads nothing and the parked stream never woke", i)
		}
		e.deliver(t, fmt.Sprintf("From: a@example.org\nSubject: %d\n\nx\n", i))
	}
}

// blockedStream opens a parked stream whose client reads nothing, with
// small buffers (the env's from smallSendBuffers), and fills it until
// the server's writes would block.
func (e *testEnv) blockedStream(t *testing.T) *sseStream {
	t.Helper()
	s, c := e.rawEvents(t, "types=*&closeafter=no&ping=0", "")
	if err := c.SetReadBuffer(4096); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the stream parks", func() bool { return e.parked() == 1 })
	e.fillStream(t)
	return s
}

// TestEventSourceParkedCloseBlocked: Close ends a stream whose
// goroutine is blocked writing to a client that reads nothing.
func TestEventSourceParkedCloseBlocked(t *testing.T) {
	t.Parallel()
	env := newEnvHTTP(t, Options{}, smallSendBuffers(t))
	s := env.blockedStream(t)
	env.srv.Close()
	if _, err := io.Copy(io.Discard, s.r); err != nil {
		t.Errorf("reading the stream after Close: %v; want its end", err)
	}
	if n := env.feedCount(); n != 0 {
		t.Errorf("%d feeds after Close; want none", n)
	}
}

// TestEventSourceParkedBackpressure: a client that stops reading fills
// its parked stream's socket; what a fan-out worker's non-blocking write
// could not send goes to the stream's own goroutine, which writes it,
// blocking, then catches up with the feed and parks again. The client,
// reading again, gets whole events up to the last state.
func TestEventSourceParkedBackpressure(t *testing.T) {
	t.Parallel()
	env := newEnvHTTP(t, Options{}, smallSendBuffers(t))
	s := env.blockedStream(t)
	env.deliver(t, "From: a@example.org\nSubject: last\n\nx\n")
	want, err := env.store.AccountState(context.Background(), env.user.User)
	if err != nil {
		t.Fatal(err)
	}
	// Every event read whole, up to the last state.
	for {
		changed, _ := s.nextState(t, env.account())
		if changed["Email"] == stateString(want.Email) {
			break
		}
	}
	eventually(t, "the stream parks again", func() bool { return env.parked() == 1 })
}
