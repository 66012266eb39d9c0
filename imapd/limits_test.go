package imapd

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
)

func TestDefaultLimits(t *testing.T) {
	t.Parallel()
	store, err := mailstore.Open(context.Background(), filepath.Join(t.TempDir(), "mail.db"), mailstore.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	s := New(store, Options{TLSConfig: &tls.Config{MinVersion: tls.VersionTLS10}})
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"AppendLimit", s.opts.AppendLimit, uint32(25 << 20)},
		{"MaxConnsPerIP", s.opts.MaxConnsPerIP, 64},
		{"MaxConns", s.opts.MaxConns, 1000},
		{"CommandTimeout", s.opts.CommandTimeout, 30 * time.Second},
		{"IdleTimeout", s.opts.IdleTimeout, 35 * time.Minute},
		{"LoginTimeout", s.opts.LoginTimeout, time.Minute},
		{"TLS MinVersion raised to 1.2", s.opts.TLSConfig.MinVersion, uint16(tls.VersionTLS12)},
		{"AuthLimiter defaults", s.opts.AuthLimiter.Config(), authlimit.New(authlimit.Config{}).Config()},
	} {
		if tc.got != tc.want {
			t.Errorf("New(zero Options).%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	// RFC 9051 §5.4: the autologout timer is at least 30 minutes; RFC
	// 2177 §3 has clients re-issue IDLE within 29.
	if s.opts.IdleTimeout < 30*time.Minute {
		t.Errorf("default IdleTimeout %v is under RFC 9051's 30 minutes", s.opts.IdleTimeout)
	}
}

// greeting dials addr and returns the server's first line.
func greeting(t *testing.T, addr string) (net.Conn, string) {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
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

// untilClosed reads from conn until the server closes it and returns what
// it read; it fails the test if the connection is still open after
// waitTimeout.
func untilClosed(t *testing.T, conn net.Conn) string {
	t.Helper()
	if err := conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	var b strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		b.Write(buf[:n])
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("connection still open after %v; read %q", waitTimeout, b.String())
		}
		if err != nil {
			return b.String() // EOF, or reset: closed by the server
		}
	}
}

func TestMaxConns(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{server: Options{MaxConns: 2, MaxConnsPerIP: -1}})
	// Both logged in: a connection that is not would be evicted for the
	// newcomer (connslots_test.go).
	env.login(t, nil)
	second := env.raw(t)
	if _, line := greeting(t, env.addr); !strings.HasPrefix(line, "* BYE [LIMIT]") {
		t.Errorf("third connection greeting = %q, want * BYE [LIMIT]", line)
	}
	second.send("LOGOUT")
	untilClosed(t, second.conn)
	if _, line := greeting(t, env.addr); !strings.HasPrefix(line, "* OK") {
		t.Errorf("connection after a LOGOUT: greeting %q, want * OK", line)
	}
}

// trickle writes data one byte at a time, every interval, until a write
// fails or the test ends: a slow-loris client.
func trickle(t *testing.T, conn net.Conn, data string, interval time.Duration) {
	t.Helper()
	stop := make(chan struct{})
	done := make(chan struct{})
	t.Cleanup(func() {
		close(stop)
		<-done
	})
	go func() {
		defer close(done)
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := 0; ; i = (i + 1) % len(data) {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := io.WriteString(conn, data[i:i+1]); err != nil {
				return
			}
		}
	}()
}

// TestSlowLoris: a command sent a byte at a time is cut off after
// CommandTimeout, before and after login, and the slot is free again.
func TestSlowLoris(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		login bool
	}{
		{"before login", false},
		{"after login", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, envOptions{server: Options{CommandTimeout: 300 * time.Millisecond, MaxConnsPerIP: 1}})
			var conn net.Conn
			if tc.login {
				conn = env.raw(t).conn
			} else {
				conn, _ = greeting(t, env.addr)
			}
			trickle(t, conn, "a1 LIST \"\" \"a-long-pattern-sent-slowly\"\r\n", 20*time.Millisecond)
			// go-imap answers the cut command NO [SERVERBUG], then the
			// connection is closed.
			if got := untilClosed(t, conn); strings.Contains(got, "a1 OK") {
				t.Errorf("the trickled command was carried out: %q", got)
			}
			if _, line := greeting(t, env.addr); !strings.HasPrefix(line, "* OK") {
				t.Errorf("next connection: greeting %q, want * OK", line)
			}
		})
	}
}

// TestImplicitTLSHandshakeTimeout: a client that connects to the
// implicit-TLS port and never starts the handshake is cut off.
func TestImplicitTLSHandshakeTimeout(t *testing.T) {
	t.Parallel()
	cfg := testTLSConfig(t)
	env := newTestEnv(t, envOptions{server: Options{CommandTimeout: 300 * time.Millisecond, MaxConnsPerIP: 1}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
	silent, err := net.DialTimeout("tcp", ln.Addr().String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	untilClosed(t, silent)
	c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatalf("DialTLS after the silent client = %v", err)
	}
	defer c.Close()
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("NOOP = %v", err)
	}
}

// TestImplicitTLSRefusalStalled: a client over MaxConnsPerIP on the
// implicit-TLS port that never starts the handshake is still cut off:
// the refusal's BYE runs the handshake, under the BYE's deadline, not
// under CommandTimeout (an hour here). The server holds one session
// afterwards, the one admitted.
func TestImplicitTLSRefusalStalled(t *testing.T) {
	t.Parallel()
	cfg := testTLSConfig(t)
	env := newTestEnv(t, envOptions{server: Options{CommandTimeout: time.Hour, MaxConnsPerIP: 1}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
	c, err := imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}})
	if err != nil {
		t.Fatalf("DialTLS = %v", err)
	}
	defer c.Close()
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("NOOP = %v", err)
	}
	silent, err := net.DialTimeout("tcp", ln.Addr().String(), waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	untilClosed(t, silent)
	if err := c.Noop().Wait(); err != nil {
		t.Errorf("NOOP on the admitted connection after the refusal = %v", err)
	}
	env.srv.mu.Lock()
	n := len(env.srv.sessions)
	env.srv.mu.Unlock()
	if n != 1 {
		t.Errorf("server holds %d sessions, want 1 (the admitted one)", n)
	}
}

// TestLoginTimeout: a client that keeps busy without logging in is
// disconnected after LoginTimeout; one that logged in is not.
func TestLoginTimeout(t *testing.T) {
	t.Parallel()
	const loginTimeout = 300 * time.Millisecond
	env := newTestEnv(t, envOptions{server: Options{LoginTimeout: loginTimeout}})
	conn, _ := greeting(t, env.addr)
	trickle(t, conn, "a NOOP\r\n", time.Millisecond) // whole commands, quickly
	if got := untilClosed(t, conn); !strings.Contains(got, "* BYE Login timeout") {
		t.Errorf("read %q before the close, want * BYE Login timeout", got)
	}

	c := env.login(t, nil)
	for end := time.Now().Add(3 * loginTimeout); time.Now().Before(end); {
		if err := c.Noop().Wait(); err != nil {
			t.Fatalf("NOOP after login, past LoginTimeout = %v", err)
		}
	}
}

// TestIdleTimeout: a logged-in client silent for IdleTimeout, in IDLE or
// between commands, is disconnected.
func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{server: Options{IdleTimeout: 300 * time.Millisecond}})
	t.Run("in IDLE", func(t *testing.T) {
		c := env.raw(t)
		c.ok("SELECT INBOX")
		c.send("IDLE")
		if line := c.readLine(); !strings.HasPrefix(line, "+ ") {
			t.Fatalf("IDLE: %q, want a continuation", line)
		}
		untilClosed(t, c.conn)
	})
	t.Run("between commands", func(t *testing.T) {
		c := env.raw(t)
		untilClosed(t, c.conn)
	})
}

// TestCommandLimits: go-imap's limits on what a command may carry, with
// the connection left usable where the protocol allows it.
func TestCommandLimits(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{server: Options{AppendLimit: 1000, CommandTimeout: 300 * time.Millisecond}})
	t.Run("APPEND over AppendLimit", func(t *testing.T) {
		c := env.raw(t)
		// RFC 7889 §4: NO [TOOBIG] before the literal is sent.
		tag := c.send("APPEND INBOX {2000}")
		if line := c.readLine(); !strings.HasPrefix(line, tag+" NO [TOOBIG]") {
			t.Errorf("APPEND {2000} = %q, want NO [TOOBIG] without a continuation", line)
		}
		c.ok("NOOP")
		if uids := env.storeUIDs(t, "INBOX"); len(uids) != 0 {
			t.Errorf("INBOX has %v, want nothing", uids)
		}
	})
	t.Run("literal over 4096 bytes outside APPEND", func(t *testing.T) {
		// Refused from its announced size: BAD with no continuation
		// request, so the client sends no data, and the session goes on.
		c := env.raw(t)
		tag := c.send("STATUS {5000}")
		if line := c.readLine(); !strings.HasPrefix(line, tag+" BAD [LIMIT]") {
			t.Errorf("STATUS {5000} = %q, want BAD [LIMIT] without a continuation", line)
		}
		c.ok("NOOP")
	})
	t.Run("command line over 8 KiB", func(t *testing.T) {
		// Read and dropped to its end (within the discard limit): BAD,
		// and the next command runs.
		c := env.raw(t)
		tag := c.send("LIST \"\" \"%s\"", strings.Repeat("x", 60<<10))
		if line := c.readLine(); !strings.HasPrefix(line, tag+" BAD ") {
			t.Errorf("a 60 KiB LIST line = %q, want BAD", line)
		}
		c.ok("NOOP")
	})
	t.Run("command line over the discard limit", func(t *testing.T) {
		// More than the parser will read and drop: BAD, then BYE.
		c := env.raw(t)
		c.send("LIST \"\" \"%s\"", strings.Repeat("x", 200<<10))
		got := untilClosed(t, c.conn)
		if !strings.Contains(got, " BAD ") || !strings.Contains(got, "* BYE ") || strings.Contains(got, " OK ") {
			t.Errorf("a 200 KiB command line got %q, want BAD and BYE", got)
		}
	})
}

// dialFrom connects an IMAP client from localIP, another address of the
// loopback network, as a different client would be.
func (e *testEnv) dialFrom(t *testing.T, localIP string) *imapclient.Client {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: waitTimeout}
	conn, err := d.Dial("tcp", e.addr)
	if err != nil {
		t.Skipf("dial from %s: %v", localIP, err)
	}
	c := imapclient.New(conn, nil)
	t.Cleanup(func() { c.Close() })
	return c
}

// TestLoginLimitPerAccount: failures for one account lock it for
// addresses it has not logged in from, but not for its owner's known
// address nor for other accounts; the owner's login does not reset the
// attacker's share of the count (issue 13).
func TestLoginLimitPerAccount(t *testing.T) {
	t.Parallel()
	const (
		owner    = "127.0.0.1"
		attacker = "127.0.0.2"
		other    = "127.0.0.3"
	)
	lim := authlimit.New(authlimit.Config{PerIP: 100, PerAccount: 3, Delay: time.Millisecond / 8})
	env := newTestEnv(t, envOptions{server: Options{AuthLimiter: lim}})
	if _, err := env.store.AddUser(context.Background(), "bob@localhost", "bob-password"); err != nil {
		t.Fatal(err)
	}
	login := func(from, user, password string, want imap.ResponseCode) {
		t.Helper()
		err := env.dialFrom(t, from).Login(user, password).Wait()
		if got := imapCode(err); (err == nil) != (want == "") || got != want {
			t.Errorf("LOGIN %s from %s = %v, want %q", user, from, err, want)
		}
	}
	login(owner, testUser, testPassword, "")
	for range 3 {
		login(attacker, testUser, "guess", imap.ResponseCodeAuthenticationFailed)
	}
	login(attacker, testUser, testPassword, imap.ResponseCodeUnavailable)
	login(other, "ALICE@localhost", testPassword, imap.ResponseCodeUnavailable)
	login(attacker, "bob@localhost", "bob-password", "")
	login(owner, testUser, testPassword, "")
	login(other, testUser, testPassword, imap.ResponseCodeUnavailable)
	login(attacker, testUser, testPassword, imap.ResponseCodeUnavailable)
}

// TestLoginLimitPerIP: an address with too many failures is refused for
// every account; others are not.
func TestLoginLimitPerIP(t *testing.T) {
	t.Parallel()
	lim := authlimit.New(authlimit.Config{PerIP: 3, PerAccount: 100, Delay: time.Millisecond / 8})
	env := newTestEnv(t, envOptions{server: Options{AuthLimiter: lim}})
	for i := range 3 {
		err := env.dialFrom(t, "127.0.0.2").Login(fmt.Sprintf("user%d@localhost", i), "guess").Wait()
		if imapCode(err) != imap.ResponseCodeAuthenticationFailed {
			t.Fatalf("failure %d = %v, want NO [AUTHENTICATIONFAILED]", i+1, err)
		}
	}
	if err := env.dialFrom(t, "127.0.0.2").Login(testUser, testPassword).Wait(); imapCode(err) != imap.ResponseCodeUnavailable {
		t.Errorf("LOGIN from the blocked address = %v, want NO [UNAVAILABLE]", err)
	}
	if err := env.dialFrom(t, "127.0.0.3").Login(testUser, testPassword).Wait(); err != nil {
		t.Errorf("LOGIN from another address = %v, want OK", err)
	}
}

// TestTLSVersions: STARTTLS and implicit TLS negotiate TLS 1.2 or 1.3,
// never 1.0 or 1.1 (RFC 8996), although the test's configuration sets no
// MinVersion: New and ServeTLS raise it.
func TestTLSVersions(t *testing.T) {
	t.Parallel()
	cfg := testTLSConfig(t)
	env := newTestEnv(t, envOptions{server: Options{TLSConfig: cfg}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
	for _, tc := range []struct {
		name    string
		version uint16
		ok      bool
	}{
		{"TLS 1.0", tls.VersionTLS10, false},
		{"TLS 1.1", tls.VersionTLS11, false},
		{"TLS 1.2", tls.VersionTLS12, true},
		{"TLS 1.3", tls.VersionTLS13, true},
	} {
		client := &tls.Config{InsecureSkipVerify: true, MinVersion: tc.version, MaxVersion: tc.version}
		for _, mode := range []string{"STARTTLS", "implicit"} {
			var c *imapclient.Client
			var err error
			if mode == "STARTTLS" {
				c, err = imapclient.DialStartTLS(env.addr, &imapclient.Options{TLSConfig: client})
			} else {
				c, err = imapclient.DialTLS(ln.Addr().String(), &imapclient.Options{TLSConfig: client})
			}
			if err == nil {
				// The handshake may wait for the first exchange.
				err = c.Noop().Wait()
				c.Close()
			}
			if tc.ok && err != nil {
				t.Errorf("%s with %s = %v, want success", mode, tc.name, err)
			}
			if !tc.ok && (err == nil || !strings.Contains(err.Error(), "protocol version not supported")) {
				t.Errorf("%s with %s = %v, want the server's protocol_version alert", mode, tc.name, err)
			}
		}
	}
}

// TestTLSVersionsOpenSSL: OpenSSL forced to offer only TLS 1.0 or 1.1
// (its default security level would refuse them client-side) fails the
// handshake on implicit-TLS IMAP and on STARTTLS; TLS 1.2 succeeds.
func TestTLSVersionsOpenSSL(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not on PATH")
	}
	cfg := testTLSConfig(t)
	env := newTestEnv(t, envOptions{server: Options{TLSConfig: cfg}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
	for _, mode := range []struct{ name, addr, starttls string }{
		{"implicit", ln.Addr().String(), ""},
		{"STARTTLS", env.addr, "imap"},
	} {
		for _, tc := range []struct {
			flag string
			ok   bool
		}{
			{"-tls1", false},
			{"-tls1_1", false},
			{"-tls1_2", true},
		} {
			t.Run(mode.name+tc.flag, func(t *testing.T) {
				t.Parallel()
				ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				defer cancel()
				args := []string{"s_client", "-connect", mode.addr, tc.flag, "-cipher", "DEFAULT:@SECLEVEL=0"}
				if mode.starttls != "" {
					args = append(args, "-starttls", mode.starttls)
				}
				cmd := exec.CommandContext(ctx, "openssl", args...)
				cmd.Stdin = strings.NewReader("")
				out, err := cmd.CombinedOutput()
				if tc.ok {
					if err != nil || !strings.Contains(string(out), "New, TLSv1.2, Cipher is") {
						t.Fatalf("openssl s_client %s: %v, want a TLS 1.2 session:\n%s", tc.flag, err, out)
					}
					return
				}
				if strings.Contains(string(out), "no protocols available") {
					t.Skipf("this OpenSSL cannot offer %s:\n%s", tc.flag, out)
				}
				if err == nil || !strings.Contains(string(out), "alert protocol version") {
					t.Fatalf("openssl s_client %s: %v, want the handshake refused with a protocol version alert:\n%s", tc.flag, err, out)
				}
			})
		}
	}
}

// TestCleartextAuthenticateRefusedOffLoopback: AUTHENTICATE PLAIN, like
// LOGIN (auth_test.go), carries no password over cleartext from a remote
// address (RFC 9051 §11.1).
func TestCleartextAuthenticateRefusedOffLoopback(t *testing.T) {
	t.Parallel()
	ip := nonLoopbackIP(t)
	env := newTestEnv(t, envOptions{})
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Skipf("Listen(%s) = %v", ip, err)
	}
	go env.srv.Serve(ln) // ends with the env's Shutdown
	c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	err = c.Authenticate(sasl.NewPlainClient("", testUser, testPassword))
	if imapCode(err) != imap.ResponseCodePrivacyRequired {
		t.Errorf("AUTHENTICATE PLAIN from %s without TLS = %v, want NO [PRIVACYREQUIRED]", ip, err)
	}
}
