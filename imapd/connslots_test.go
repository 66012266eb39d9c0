package imapd

import (
	"bufio"
	"fmt"
	"net"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

func TestLimitKey(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		addr net.Addr
		want string
	}{
		{"IPv4", &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 1}, "192.0.2.7"},
		{"IPv4-mapped", &net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 1}, "192.0.2.7"},
		{"IPv6 counts its /64", &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa:bbbb:cccc:dddd"), Port: 1}, "2001:db8:1:2::/64"},
		{"IPv6 same /64", &net.TCPAddr{IP: net.ParseIP("2001:db8:1:2::1"), Port: 1}, "2001:db8:1:2::/64"},
		{"IPv6 next /64", &net.TCPAddr{IP: net.ParseIP("2001:db8:1:3::1"), Port: 1}, "2001:db8:1:3::/64"},
		{"loopback IPv6", &net.TCPAddr{IP: net.IPv6loopback, Port: 1}, "::/64"},
		{"unix socket", &net.UnixAddr{Name: "@x", Net: "unix"}, "@x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := limitKey(tt.addr); got != tt.want {
				t.Errorf("limitKey(%v) = %q, want %q", tt.addr, got, tt.want)
			}
		})
	}
}

// silent dials env from localIP ("" for any) and reads the greeting; the
// client then says nothing.
func silent(t *testing.T, addr, localIP string) (net.Conn, string) {
	t.Helper()
	d := net.Dialer{Timeout: waitTimeout}
	if localIP != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(localIP)}
	}
	conn, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial from %q: %v", localIP, err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil {
		t.Fatalf("read greeting: %v", err)
	}
	return conn, line
}

// TestEvictOldestPreAuth: a full server makes room for a newcomer by
// closing the oldest connection that has not logged in, with BYE
// [UNAVAILABLE] (RFC 5530 §3); logged-in sessions keep their place, and
// a server full of them refuses with BYE [LIMIT].
func TestEvictOldestPreAuth(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{server: Options{MaxConns: 3, MaxConnsPerIP: -1}})
	env.login(t, nil)
	first, _ := silent(t, env.addr, "")
	second, _ := silent(t, env.addr, "")
	third := env.dial(t, nil) // evicts first
	if got := untilClosed(t, first); !strings.HasPrefix(got, "* BYE [UNAVAILABLE]") {
		t.Errorf("oldest silent connection got %q, want * BYE [UNAVAILABLE] and close", got)
	}
	if err := third.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatalf("Login() on the newcomer = %v", err)
	}
	fourth := env.dial(t, nil) // evicts second
	if got := untilClosed(t, second); !strings.HasPrefix(got, "* BYE [UNAVAILABLE]") {
		t.Errorf("second silent connection got %q, want * BYE [UNAVAILABLE] and close", got)
	}
	if err := fourth.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatalf("Login() on the second newcomer = %v", err)
	}
	if _, line := greeting(t, env.addr); !strings.HasPrefix(line, "* BYE [LIMIT]") {
		t.Errorf("greeting with every slot logged in = %q, want * BYE [LIMIT]", line)
	}
	if _, err := third.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("logged-in session after a refused newcomer: SELECT = %v", err)
	}
}

// TestMaxPreAuthConns: connections not logged in have a bound of their
// own, below MaxConns; reaching it evicts the oldest of them.
func TestMaxPreAuthConns(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{server: Options{MaxConns: 10, MaxPreAuthConns: 2, MaxConnsPerIP: -1}})
	first, _ := silent(t, env.addr, "")
	silent(t, env.addr, "")
	c := env.dial(t, nil)
	if got := untilClosed(t, first); !strings.HasPrefix(got, "* BYE [UNAVAILABLE]") {
		t.Errorf("oldest silent connection got %q, want * BYE [UNAVAILABLE] and close", got)
	}
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatalf("Login() = %v", err)
	}
}

// raiseOpenFiles raises the soft open-file limit to at least n, up to
// the hard limit, or skips the test.
func raiseOpenFiles(t *testing.T, n uint64) {
	t.Helper()
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("getrlimit: %v", err)
	}
	if lim.Cur >= n {
		return
	}
	if lim.Max < n {
		t.Skipf("open-file limit %d (hard %d), need %d", lim.Cur, lim.Max, n)
	}
	lim.Cur = n
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Skipf("setrlimit: %v", err)
	}
}

// TestSilentConnectionsFromManyAddresses is issue 13's slot exhaustion:
// 4,000 connections from 250 loopback addresses (16 each, within the
// per-address limit of 20) that never say a word filled MaxConns, and
// every new client was greeted "* BYE [LIMIT]" for as long as they held
// (Linux routes all of 127/8 to lo, so each is another client). Now a
// fresh client still logs in and selects INBOX while they hold: the
// timeouts are far out of reach, so only eviction can make its room.
func TestSilentConnectionsFromManyAddresses(t *testing.T) {
	const (
		addrs   = 250
		perAddr = 16
	)
	raiseOpenFiles(t, 2*addrs*perAddr+1000)
	env := newTestEnv(t, envOptions{server: Options{
		MaxConns:       DefaultMaxConns,
		MaxConnsPerIP:  20,
		CommandTimeout: time.Hour,
		LoginTimeout:   time.Hour,
	}})
	var wg sync.WaitGroup
	errs := make(chan error, addrs)
	for a := range addrs {
		wg.Go(func() {
			ip := fmt.Sprintf("127.0.1.%d", a+1)
			d := net.Dialer{Timeout: waitTimeout, LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}
			for range perAddr {
				conn, err := d.Dial("tcp", env.addr)
				if err != nil {
					errs <- fmt.Errorf("dial from %s: %v", ip, err)
					return
				}
				t.Cleanup(func() { conn.Close() })
				// Wait for the greeting, so that the server has counted
				// this one before the next: the connections are then
				// held in the order they were opened.
				if err := conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
					errs <- err
					return
				}
				var b [1]byte
				if _, err := conn.Read(b[:]); err != nil {
					errs <- fmt.Errorf("greeting from %s: %v", ip, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	c, err := imapclient.DialInsecure(env.addr, nil)
	if err != nil {
		t.Fatalf("Dial() with %d silent connections = %v", addrs*perAddr, err)
	}
	defer c.Close()
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatalf("Login() with %d silent connections = %v", addrs*perAddr, err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("Select(INBOX) with %d silent connections = %v", addrs*perAddr, err)
	}
}
