package imapd

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os"
	"regexp"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"slices"
	"strconv"
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

// idleMode is how a session spends its IDLE in idleScenario.
type idleMode int

const (
	// awake: no hibernation; the reference.
	idleAwake idleMode = iota
	// idleDirect: hibernating, told of changes by direct push
	// (pushdirect.go) without waking.
	idleDirect
	// idleWoken: hibernating, woken for each change (no direct push).
	idleWoken
	// idleBlocked: hibernating, with direct pushes whose write takes 5
	// bytes at most, as a full socket would: the session wakes to write
	// the rest.
	idleBlocked
	// idleTLS: hibernating over implicit TLS (tlspark.go), woken for
	// each change.
	idleTLS
	// idleStartTLS: hibernating after STARTTLS, woken for each change.
	idleStartTLS
)

func (m idleMode) String() string {
	return [...]string{"awake", "direct push", "woken", "direct push would block", "implicit TLS", "STARTTLS"}[m]
}

// dial connects the scenario's client, logged in, over m's transport.
func (m idleMode) dial(t *testing.T, env *testEnv, cfg *tls.Config) *rawConn {
	switch m {
	case idleTLS:
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("Listen() = %v", err)
		}
		go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
		return dialTLSRaw(t, ln.Addr().String(), false, nil)
	case idleStartTLS:
		return dialTLSRaw(t, env.addr, true, nil)
	}
	return env.raw(t)
}

// wakesPerChange is how many times a hibernating session of srv wakes
// for one change while in IDLE: never with direct push, unless its
// writes would block. (PUSHMAIL_TEST_HIBERNATE hibernates the awake run's
// session too.)
func wakesPerChange(srv *Server) uint64 {
	if srv.push != nil && srv.opts.directWriteMax == 0 {
		return 0
	}
	return 1
}

// idleScenario is a session in IDLE on INBOX through every kind of
// change, DONE in two pieces, DONE pipelined with IDLE, a line other
// than DONE, and the end that end gives it; it returns what the client
// read.
func idleScenario(t *testing.T, mode idleMode, short bool, opts Options, end func(*testing.T, *testEnv, *transcript)) []string {
	opts.Hibernate = mode != idleAwake
	opts.noDirectPush = mode == idleWoken
	if mode == idleBlocked {
		opts.directWriteMax = 5
	}
	if mode == idleTLS || mode == idleStartTLS {
		opts.TLSConfig = testTLSConfig(t)
	}
	env := newTestEnv(t, envOptions{server: opts})
	tr := &transcript{c: mode.dial(t, env, opts.TLSConfig)}
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
	// Each change wakes the session once, or not at all with direct push;
	// it then sleeps until the next (a NOOP's round trip later, it has not
	// woken again for nothing).
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
		want1 := wakesPerChange(env.srv)
		if mode == idleTLS || mode == idleStartTLS {
			want1 = 1 // no direct push over TLS (tlspark.go)
		}
		if n := wakes() - before; env.srv.hib != nil && n != want1 {
			t.Errorf("%s: the session woke %d times, want %d", want[0], n, want1)
		}
	}
	// RFC 3501 §7.3.2: RECENT follows EXISTS for an IMAP4rev1 session.
	pushed(func() { env.deliver(t, testMessage(1)) }, "* 1 EXISTS", "* 1 RECENT")
	pushed(func() { other.ok(`UID STORE 1 +FLAGS (\Seen)`) }, "* 1 FETCH")
	pushed(func() { env.deliver(t, testMessage(2)) }, "* 2 EXISTS", "* 2 RECENT")
	// A keyword the session has not announced: FLAGS (and PERMANENTFLAGS)
	// first (RFC 9051 §7.3.5), then the FETCH.
	pushed(func() { other.ok(`UID STORE 2 +FLAGS (Project-X)`) }, "* FLAGS", "* OK [PERMANENTFLAGS", "* 2 FETCH")
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
			modes := []idleMode{idleAwake, idleDirect, idleWoken, idleBlocked, idleTLS, idleStartTLS}
			runs := make([][]string, len(modes))
			// All runs at once, each on its own test goroutine (they
			// may FailNow); t.Run returns when all have ended.
			t.Run("runs", func(t *testing.T) {
				for i, m := range modes {
					t.Run(m.String(), func(t *testing.T) {
						t.Parallel()
						runs[i] = idleScenario(t, m, tc.short, tc.opts, tc.end)
					})
				}
			})
			if t.Failed() {
				return
			}
			// Each run has its own store, whose UIDVALIDITY is taken from
			// the clock: two may differ by a second.
			uidValidity := regexp.MustCompile(`\[UIDVALIDITY \d+\]`)
			for _, lines := range runs {
				for i, l := range lines {
					lines[i] = uidValidity.ReplaceAllString(l, "[UIDVALIDITY n]")
				}
			}
			off := runs[0]
			for i, on := range runs[1:] {
				if !slices.Equal(on, off) {
					t.Errorf("%v session read\n\t%s\nawake session read\n\t%s", modes[i+1], strings.Join(on, "\n\t"), strings.Join(off, "\n\t"))
				}
			}
			t.Logf("transcript:\n\t%s", strings.Join(off, "\n\t"))
			for _, want := range []string{"* 1 EXISTS", "* 2 EXISTS", `* 1 FETCH (UID 1 FLAGS (\Seen \Recent))`, `* 2 FETCH (UID 2 FLAGS (\Recent Project-X))`, "* 1 EXPUNGE"} {
				if !tc.short && !slices.Contains(off, want) {
					t.Errorf("transcript lacks %q:\n\t%s", want, strings.Join(off, "\n\t"))
				}
			}
			if n := len(off); n < 2 || off[n-1] != "(closed)" || tc.last != "" && off[n-2] != tc.last {
				t.Errorf("transcript ends %q, want %q and the close", off[max(0, n-2):], tc.last)
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
	return dialParkedWith(t, env, n, func() (*idleClient, error) { return tryDialIdle(env.addr) })
}

// dialParkedWith is dialParked with dial's clients.
func dialParkedWith(t *testing.T, env *testEnv, n int, dial func() (*idleClient, error)) []*idleClient {
	t.Helper()
	clients := make([]*idleClient, n)
	errs := make([]error, n)
	var wg sync.WaitGroup
	next := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range next {
				clients[i], errs[i] = dial()
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	// Failures are reported here, on the test's goroutine.
	for i, err := range errs {
		if err != nil {
			for _, c := range clients {
				if c != nil {
					c.conn.Close()
				}
			}
			t.Fatalf("session %d: %v", i, err)
		}
	}
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

// A hibernating session holds no goroutine; a thousand are told of a
// delivery without waking; and a thousand that go away while asleep,
// some with a reset, leave no descriptor, goroutine or session behind.
// Memory: the first thousand grow the runtime (heap arenas, GC metadata,
// stack spans and the maps it keeps at their largest), so the baseline is
// taken after them; a second thousand that come and go must leave RSS
// where the first left it, within a tolerance.
func TestHibernatedSessionsCostNoGoroutine(t *testing.T) {
	testHibernatedSessionsCost(t, false)
}

// The same over implicit TLS: the sessions keep their tls.Conn while
// they hibernate (tlspark.go) and wake for each delivery.
func TestHibernatedTLSSessionsCostNoGoroutine(t *testing.T) {
	testHibernatedSessionsCost(t, true)
}

func testHibernatedSessionsCost(t *testing.T, overTLS bool) {
	opts := Options{Hibernate: true, MaxConns: -1, MaxConnsPerIP: -1}
	if overTLS {
		opts.TLSConfig = testTLSConfig(t)
	}
	env := newTestEnv(t, envOptions{server: opts})
	dial := func() (*idleClient, error) { return tryDialIdle(env.addr) }
	if overTLS {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("Listen() = %v", err)
		}
		go env.srv.ServeTLS(ln, opts.TLSConfig) // ends with the env's Shutdown
		dial = func() (*idleClient, error) {
			d := &net.Dialer{Timeout: waitTimeout}
			conn, err := tls.DialWithDialer(d, "tcp", ln.Addr().String(), &tls.Config{InsecureSkipVerify: true})
			if err != nil {
				return nil, fmt.Errorf("tls.Dial(%s) = %v", ln.Addr(), err)
			}
			return startIdleOn(conn)
		}
	}
	// One session first, told of a delivery, so that the loop's
	// goroutine and descriptors (epoll, eventfd) and the fan-out's
	// workers are in the baseline.
	warm := dialParkedWith(t, env, 1, dial)
	env.deliver(t, testMessage(1))
	if err := warm[0].conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	warm[0].expect(t, "* 1 EXISTS")
	warm[0].conn.Close()
	untilBaseline(t, "sessions", 0, func() int { return sessionsOpen(env.srv) })
	untilBaseline(t, "hibernating", 0, env.srv.hib.Len)
	baseG, baseFD := runtime.NumGoroutine(), openFiles(t)

	const n = 1000
	// memory reads RSS, or under the race detector (whose shadow memory
	// stays in RSS for good) the Go runtime's resident memory.
	memory, what := residentKB, "RSS"
	if raceEnabled {
		memory, what = func(testing.TB) int { return goResidentKB() }, "the Go runtime's resident memory"
	}
	settled := func() int {
		runtime.GC()
		debug.FreeOSMemory()
		return memory(t)
	}
	var mem [3]int // before each round, and after the last
	for round := range 2 {
		mem[round] = settled()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		clients := dialParkedWith(t, env, n, dial)
		// The clients are sockets without goroutines (TLS or not): every
		// goroutine here is the server's. (The last to park may still be on its way out.)
		untilBaseline(t, fmt.Sprintf("goroutines with %d sessions hibernating", n), baseG, runtime.NumGoroutine)
		if fds := openFiles(t); fds > baseFD+2*n {
			t.Errorf("%d open files with %d sessions, %d before: want at most 2 per session (client and server)", fds, n, baseFD)
		}
		peak := memory(t)
		runtime.GC()
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		t.Logf("round %d: %d hibernating sessions: %d goroutines (%d before), heap in use %+d B per session, %s %d KB (%d KB before) (clients included)",
			round+1, n, runtime.NumGoroutine(), baseG, (int64(after.HeapInuse)-int64(before.HeapInuse))/n, what, peak, mem[round])

		// One delivery reaches all of them by direct push: each client
		// reads its EXISTS, and none of the sessions woke for it. Over
		// TLS, each woke once and sleeps again.
		wakes := env.srv.hib.Wakes()
		uid := env.deliver(t, testMessage(2+round))
		exists := fmt.Sprintf("* %d EXISTS", 2+round)
		for _, c := range clients {
			if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
				t.Fatal(err)
			}
			c.expect(t, exists)
		}
		if overTLS {
			waitParked(t, env, n)
			if w := env.srv.hib.Wakes() - wakes; w != n {
				t.Errorf("%d wake-ups for a delivery to %d TLS sessions, want one each", w, n)
			}
		} else if w := env.srv.hib.Wakes() - wakes; w != 0 {
			t.Errorf("%d sessions woke for a delivery, want none (direct push)", w)
		}
		if got := env.srv.hib.Len(); got != n {
			t.Errorf("%d sessions hibernating after the delivery, want %d", got, n)
		}
		if st, err := env.store.Status(context.Background(), env.inbox.Mailbox); err != nil || st.Messages != uint32(2+round) || st.UIDNext != uid+1 {
			t.Errorf("INBOX after the delivery: %+v, %v; want %d messages, UIDNEXT %d", st, err, 2+round, uid+1)
		}

		for i, c := range clients {
			if i%2 == 0 {
				// A reset, as a client that vanishes on a phone network.
				tcp, ok := c.conn.(*net.TCPConn)
				if tc, isTLS := c.conn.(*tls.Conn); isTLS {
					tcp, ok = tc.NetConn().(*net.TCPConn)
				}
				if !ok {
					t.Fatalf("client connection %T is not TCP", c.conn)
				}
				if err := tcp.SetLinger(0); err != nil {
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
	mem[2] = settled()
	t.Logf("%s: %d KB at the start, %d KB after a thousand sessions came and went, %d KB after a thousand more (%+d KB)",
		what, mem[0], mem[1], mem[2], mem[2]-mem[1])
	// A leak of what a hibernating session holds (5 KB and more, clients
	// included; over TLS 20 KB) would be 5 MB (20 MB); the runtime's own
	// noise is usually a few hundred KB, about 1 MB over TLS, whose heap
	// is four times larger, but it reached 1.8 MB once in plaintext on a
	// loaded machine. Tolerance: 2 KB per session, 4 KB over TLS, still
	// well under a leak.
	tolerance := 2 * n
	if overTLS {
		tolerance = 4 * n
	}
	if grew := mem[2] - mem[1]; grew > tolerance {
		t.Errorf("%s grew by %d KB over a thousand sessions that came and went, want at most %d KB", what, grew, tolerance)
	}
}

// residentKB returns this process's resident set size (VmRSS) in KB.
func residentKB(t testing.TB) int {
	t.Helper()
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Skipf("no /proc/self/status: %v", err)
	}
	for l := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			kb, err := strconv.Atoi(strings.TrimSuffix(strings.TrimSpace(v), " kB"))
			if err != nil {
				t.Fatalf("VmRSS %q: %v", v, err)
			}
			return kb
		}
	}
	t.Fatal("no VmRSS in /proc/self/status")
	return 0
}

// goResidentKB returns the memory the Go runtime has mapped and not given
// back to the system, in KB: RSS without the race detector's shadow.
func goResidentKB() int {
	samples := []metrics.Sample{{Name: "/memory/classes/total:bytes"}, {Name: "/memory/classes/heap/released:bytes"}}
	metrics.Read(samples)
	return int((samples[0].Value.Uint64() - samples[1].Value.Uint64()) >> 10)
}
