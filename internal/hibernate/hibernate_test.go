//go:build linux

package hibernate

import (
	"net"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

const waitTimeout = 10 * time.Second

// pair returns the server and client ends of a loopback TCP connection.
func pair(t *testing.T) (server *net.TCPConn, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	s, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close(); client.Close() })
	return s.(*net.TCPConn), client
}

// park parks c and returns the channel its wake-up arrives on.
func park(t *testing.T, l *Loop, c *net.TCPConn, deadline time.Time) (*Conn, <-chan Reason) {
	t.Helper()
	woke := make(chan Reason, 2) // 2: a second call would be seen
	pc, err := l.Park(c, deadline, func(r Reason) { woke <- r })
	if err != nil {
		t.Fatalf("Park() = %v", err)
	}
	return pc, woke
}

func await(t *testing.T, woke <-chan Reason, want Reason) {
	t.Helper()
	select {
	case r := <-woke:
		if r != want {
			t.Fatalf("woke for %v, want %v", r, want)
		}
	case <-time.After(waitTimeout):
		t.Fatalf("no wake-up, want %v", want)
	}
	select {
	case r := <-woke:
		t.Fatalf("woke a second time, for %v", r)
	case <-time.After(20 * time.Millisecond):
	}
}

// waitQueued returns once c has input queued in the kernel.
func waitQueued(t *testing.T, c *net.TCPConn) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for end := time.Now().Add(waitTimeout); time.Now().Before(end); runtime.Gosched() {
		n := 0
		if err := rc.Control(func(fd uintptr) { n, err = unix.IoctlGetInt(int(fd), unix.SIOCINQ) }); err != nil {
			t.Fatal(err)
		}
		if n > 0 {
			return
		}
	}
	t.Fatal("no input queued")
}

func TestWakeUps(t *testing.T) {
	t.Parallel()
	l := New(nil)
	defer l.Close()

	t.Run("input", func(t *testing.T) {
		s, c := pair(t)
		_, woke := park(t, l, s, time.Time{})
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		await(t, woke, Readable)
		// The byte is left for the owner.
		buf := make([]byte, 1)
		if _, err := s.Read(buf); err != nil || buf[0] != 'x' {
			t.Errorf("Read after wake-up = %q, %v; want x", buf, err)
		}
	})
	t.Run("input waiting before Park", func(t *testing.T) {
		s, c := pair(t)
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		waitQueued(t, s)
		_, woke := park(t, l, s, time.Time{})
		await(t, woke, Readable)
	})
	t.Run("hang-up", func(t *testing.T) {
		s, c := pair(t)
		_, woke := park(t, l, s, time.Time{})
		c.Close()
		await(t, woke, Readable)
	})
	t.Run("owner", func(t *testing.T) {
		s, _ := pair(t)
		pc, woke := park(t, l, s, time.Time{})
		pc.Wake(Signaled)
		await(t, woke, Signaled)
		pc.Wake(Signaled) // no second call
	})
	t.Run("deadline", func(t *testing.T) {
		s, _ := pair(t)
		_, woke := park(t, l, s, time.Now().Add(50*time.Millisecond))
		await(t, woke, Expired)
	})
	t.Run("parked again after a wake-up", func(t *testing.T) {
		s, c := pair(t)
		pc, woke := park(t, l, s, time.Time{})
		pc.Wake(Signaled)
		await(t, woke, Signaled)
		_, woke = park(t, l, s, time.Time{})
		if _, err := c.Write([]byte("x")); err != nil {
			t.Fatal(err)
		}
		await(t, woke, Readable)
	})
	if n := l.Len(); n != 0 {
		t.Errorf("Len() = %d after every connection woke, want 0", n)
	}
}

// Close wakes what is parked, refuses new Parks, and leaves no goroutine.
func TestCloseWakesEverything(t *testing.T) {
	base := runtime.NumGoroutine()
	l := New(nil)
	const n = 50
	var woken []<-chan Reason
	for range n {
		s, _ := pair(t)
		_, woke := park(t, l, s, time.Now().Add(time.Hour))
		woken = append(woken, woke)
	}
	if got := l.Len(); got != n {
		t.Fatalf("Len() = %d, want %d", got, n)
	}
	// Parked connections hold no goroutine: the Loop has one.
	if got := runtime.NumGoroutine(); got > base+1 {
		t.Errorf("%d goroutines with %d connections parked, want at most %d", got, n, base+1)
	}
	if err := l.Close(); err != nil {
		t.Fatalf("Close() = %v", err)
	}
	for _, w := range woken {
		await(t, w, Stopped)
	}
	s, _ := pair(t)
	if _, err := l.Park(s, time.Time{}, func(Reason) { t.Error("woken after a failed Park") }); err != ErrClosed {
		t.Errorf("Park after Close = %v, want ErrClosed", err)
	}
	if got := runtime.NumGoroutine(); got > base {
		t.Errorf("%d goroutines after Close, want %d", got, base)
	}
}
