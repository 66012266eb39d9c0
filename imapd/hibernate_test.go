package imapd

import (
	"context"
	"fmt"
	"net"
	"os"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// waitParked waits until n sessions hibernate in env's server; nothing
// when hibernation is off.
func waitParked(t testing.TB, env *testEnv, n int) {
	t.Helper()
	if env.srv.hib == nil {
		return
	}
	for end := time.Now().Add(waitTimeout); env.srv.hib.Len() != n; {
		if time.Now().After(end) {
			t.Fatalf("%d sessions hibernating after %v, want %d", env.srv.hib.Len(), waitTimeout, n)
		}
		time.Sleep(time.Millisecond) // a state to reach, not a push to wait for
	}
}

// transcript records what a raw client reads.
type transcript struct {
	c     *rawConn
	lines []string
}

func (tr *transcript) line() string {
	l := tr.c.readLine()
	tr.lines = append(tr.lines, l)
	return l
}

// expect reads one line, which must start with prefix.
func (tr *transcript) expect(prefix string) {
	tr.c.t.Helper()
	if l := tr.line(); !strings.HasPrefix(l, prefix) {
		tr.c.t.Fatalf("read %q, want %q…", l, prefix)
	}
}

func (tr *transcript) write(s string) {
	tr.c.t.Helper()
	if _, err := tr.c.conn.Write([]byte(s)); err != nil {
		tr.c.t.Fatalf("write: %v", err)
	}
}

// rest reads to the end of the connection.
func (tr *transcript) rest(t *testing.T) {
	t.Helper()
	for l := range strings.Lines(untilClosed(t, tr.c.conn)) {
		tr.lines = append(tr.lines, strings.TrimRight(l, "\r\n"))
	}
	tr.lines = append(tr.lines, "(closed)")
}

// idleScenario is a session in IDLE on INBOX through every kind of
// change, DONE in two pieces, DONE pipelined with IDLE, a line other
// than DONE, and the end that end gives it; it returns what the client
// read.
func idleScenario(t *testing.T, hibernate, short bool, opts Options, end func(*testing.T, *testEnv, *transcript)) []string {
	opts.Hibernate = hibernate
	env := newTestEnv(t, envOptions{server: opts})
	tr := &transcript{c: env.raw(t)}
	tr.lines = append(tr.lines, tr.c.ok("SELECT INBOX")...)
	idle := func() string {
		tag := tr.c.send("IDLE")
		tr.expect("+ ")
		waitParked(t, env, 1)
		return tag
	}
	if short {
		idle()
		end(t, env, tr)
		return tr.lines
	}
	tag := idle()

	other := env.raw(t)
	// An IMAP4rev2 session claims no \Recent (RFC 9051 dropped it): the
	// IDLE session is the first to see each new message, whichever of
	// the two hears of it first, and its RECENT counts are the same in
	// both runs.
	other.ok("ENABLE IMAP4rev2")
	other.ok("SELECT INBOX")
	// Each change wakes the session once; it then sleeps until the next
	// (a NOOP's round trip later, it has not woken again for nothing).
	wakes := func() uint64 { return 0 }
	if env.srv.hib != nil {
		wakes = env.srv.hib.Wakes
	}
	pushed := func(change func(), want ...string) {
		t.Helper()
		before := wakes()
		change()
		for _, w := range want {
			tr.expect(w)
		}
		waitParked(t, env, 1)
		other.ok("NOOP")
		if n := wakes() - before; env.srv.hib != nil && n != 1 {
			t.Errorf("%s: the session woke %d times, want once", want[0], n)
		}
	}
	// RFC 3501 §7.3.2: RECENT follows EXISTS for an IMAP4rev1 session.
	pushed(func() { env.deliver(t, testMessage(1)) }, "* 1 EXISTS", "* 1 RECENT")
	pushed(func() { other.ok(`UID STORE 1 +FLAGS (\Seen)`) }, "* 1 FETCH")
	pushed(func() { env.deliver(t, testMessage(2)) }, "* 2 EXISTS", "* 2 RECENT")
	pushed(func() { other.ok(`UID STORE 1 +FLAGS (\Deleted)`) }, "* 1 FETCH")
	pushed(func() { other.ok("UID EXPUNGE 1") }, "* 1 EXPUNGE")

	// DONE in two pieces: the first wakes the session, which reads the
	// rest as it comes.
	tr.write("DO")
	waitParked(t, env, 0)
	tr.write("NE\r\n")
	tr.expect(tag + " OK")
	tr.lines = append(tr.lines, tr.c.ok("NOOP")...)

	// DONE sent with IDLE, before the continuation.
	tr.c.n++
	tag = fmt.Sprintf("t%d", tr.c.n)
	tr.write(tag + " IDLE\r\nDONE\r\n")
	tr.expect("+ ")
	tr.expect(tag + " OK")

	// Anything but DONE ends IDLE as it always has.
	tag = idle()
	tr.write("FOO\r\n")
	tr.expect(tag + " BAD")
	tr.lines = append(tr.lines, tr.c.ok("NOOP")...)

	idle()
	end(t, env, tr)
	return tr.lines
}

// A hibernating IDLE session tells its client exactly what an awake one
// does: the same scenario, hibernation on and off, gives the same
// transcript, whatever ends it.
func TestHibernateTranscripts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		opts Options
		end  func(*testing.T, *testEnv, *transcript)
		last string // the transcript's last line before "(closed)"
		// short: SELECT, IDLE and the end only (IdleTimeout is short).
		short bool
	}{
		{"DONE", Options{}, func(t *testing.T, env *testEnv, tr *transcript) {
			tag := fmt.Sprintf("t%d", tr.c.n)
			tr.write("done\r\n") // any case (RFC 2177 §3)
			tr.expect(tag + " OK")
			tr.lines = append(tr.lines, tr.c.ok("LOGOUT")...)
			tr.rest(t)
		}, "* BYE Logging out", false},
		{"account deleted", Options{}, func(t *testing.T, env *testEnv, tr *transcript) {
			if err := env.store.DeleteUser(context.Background(), testUser); err != nil {
				t.Fatalf("DeleteUser() = %v", err)
			}
			tr.rest(t)
		}, "* BYE Account no longer exists", false},
		{"shutdown", Options{}, func(t *testing.T, env *testEnv, tr *transcript) {
			ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
			defer cancel()
			done := make(chan error, 1)
			go func() { done <- env.srv.Shutdown(ctx) }()
			tr.rest(t)
			if err := <-done; err != nil {
				t.Errorf("Shutdown() = %v", err)
			}
		}, "* BYE Server shutting down", false},
		{"IDLE timeout", Options{IdleTimeout: 300 * time.Millisecond}, func(t *testing.T, env *testEnv, tr *transcript) {
			tr.rest(t)
		}, "* BYE Autologout; idle for too long", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var off, on []string
			// Both runs at once, each on its own test goroutine (they
			// may FailNow); t.Run returns when both have ended.
			t.Run("runs", func(t *testing.T) {
				t.Run("awake", func(t *testing.T) {
					t.Parallel()
					off = idleScenario(t, false, tc.short, tc.opts, tc.end)
				})
				t.Run("hibernating", func(t *testing.T) {
					t.Parallel()
					on = idleScenario(t, true, tc.short, tc.opts, tc.end)
				})
			})
			if t.Failed() {
				return
			}
			// Each run has its own store, whose UIDVALIDITY is taken from
			// the clock: the two may differ by a second.
			uidValidity := regexp.MustCompile(`\[UIDVALIDITY \d+\]`)
			for _, lines := range [][]string{on, off} {
				for i, l := range lines {
					lines[i] = uidValidity.ReplaceAllString(l, "[UIDVALIDITY n]")
				}
			}
			if !slices.Equal(on, off) {
				t.Errorf("hibernating session read\n\t%s\nawake session read\n\t%s", strings.Join(on, "\n\t"), strings.Join(off, "\n\t"))
			}
			t.Logf("transcript:\n\t%s", strings.Join(on, "\n\t"))
			for _, want := range []string{"* 1 EXISTS", "* 2 EXISTS", `* 1 FETCH (UID 1 FLAGS (\Seen \Recent))`, "* 1 EXPUNGE"} {
				if !tc.short && !slices.Contains(on, want) {
					t.Errorf("transcript lacks %q:\n\t%s", want, strings.Join(on, "\n\t"))
				}
			}
			if n := len(on); n < 2 || on[n-1] != "(closed)" || tc.last != "" && on[n-2] != tc.last {
				t.Errorf("transcript ends %q, want %q and the close", on[max(0, n-2):], tc.last)
			}
		})
	}
}

// openFiles counts this process's open descriptors other than files:
// sockets, epoll and the like. (The store's pool opens and closes
// database files as it likes.)
func openFiles(t testing.TB) int {
	t.Helper()
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	n := 0
	for _, fd := range fds {
		if target, err := os.Readlink("/proc/self/fd/" + fd.Name()); err == nil && !strings.HasPrefix(target, "/") {
			n++
		}
	}
	return n
}

// sessionsOpen is the number of sessions the server has not closed.
func sessionsOpen(s *Server) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.sessions)
}

// dialParked opens n sessions in IDLE on INBOX, a few at a time, and
// waits until all of them hibernate.
func dialParked(t *testing.T, env *testEnv, n int) []*idleClient {
	t.Helper()
	clients := make([]*idleClient, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				clients[i] = dialIdle(t, env.addr)
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	waitParked(t, env, n)
	return clients
}

// untilBaseline waits until f() is at most base.
func untilBaseline(t *testing.T, what string, base int, f func() int) {
	t.Helper()
	for end := time.Now().Add(waitTimeout); f() > base; {
		if time.Now().After(end) {
			t.Fatalf("%s: %d, want back to %d", what, f(), base)
		}
		time.Sleep(5 * time.Millisecond) // cleanup to finish, not a push
	}
}

// A hibernating session holds no goroutine, and a thousand that go away
// while asleep, some with a reset, leave no descriptor, goroutine or
// session behind.
func TestHibernatedSessionsCostNoGoroutine(t *testing.T) {
	env := newTestEnv(t, envOptions{server: Options{Hibernate: true, MaxConns: -1, MaxConnsPerIP: -1}})
	// One session first, so that the loop's goroutine and descriptors
	// (epoll, eventfd) are in the baseline.
	warm := dialParked(t, env, 1)
	warm[0].conn.Close()
	untilBaseline(t, "sessions", 0, func() int { return sessionsOpen(env.srv) })
	untilBaseline(t, "hibernating", 0, env.srv.hib.Len)
	runtime.GC()
	baseG, baseFD := runtime.NumGoroutine(), openFiles(t)
	var before runtime.MemStats
	runtime.ReadMemStats(&before)

	const n = 1000
	clients := dialParked(t, env, n)
	// The clients are plain sockets: every goroutine here is the
	// server's. (The last to park may still be on its way out.)
	untilBaseline(t, fmt.Sprintf("goroutines with %d sessions hibernating", n), baseG, runtime.NumGoroutine)
	g, fds := runtime.NumGoroutine(), openFiles(t)
	if fds > baseFD+2*n {
		t.Errorf("%d open files with %d sessions, %d before: want at most 2 per session (client and server)", fds, n, baseFD)
	}
	runtime.GC()
	var after runtime.MemStats
	runtime.ReadMemStats(&after)
	t.Logf("%d hibernating sessions: %d goroutines (%d before), heap in use %+d B per session (clients included)",
		n, g, baseG, (int64(after.HeapInuse)-int64(before.HeapInuse))/n)

	for i, c := range clients {
		if i%2 == 0 {
			// A reset, as a client that vanishes on a phone network.
			if err := c.conn.(*net.TCPConn).SetLinger(0); err != nil {
				t.Fatal(err)
			}
		}
		c.conn.Close()
	}
	untilBaseline(t, "sessions", 0, func() int { return sessionsOpen(env.srv) })
	untilBaseline(t, "hibernating", 0, env.srv.hib.Len)
	untilBaseline(t, "goroutines", baseG, runtime.NumGoroutine)
	untilBaseline(t, "open files", baseFD, func() int { return openFiles(t) })
}
