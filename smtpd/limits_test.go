package smtpd

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"pushmail/internal/tlspolicy"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
)

func TestDefaultLimits(t *testing.T) {
	t.Parallel()
	store, err := mailstore.Open(context.Background(), filepath.Join(t.TempDir(), "mail.db"), mailstore.Options{
		Logger: testLogger(), PasswordCost: bcrypt.MinCost,
	})
	if err != nil {
		t.Fatalf("mailstore.Open: %v", err)
	}
	defer store.Close()
	s := New(store, Options{Logger: testLogger(), TLSConfig: &tls.Config{MinVersion: tls.VersionTLS10}, MaxLineLength: 100})
	for _, tc := range []struct {
		name      string
		got, want any
	}{
		{"MaxMessageBytes", s.opts.MaxMessageBytes, int64(25 << 20)},
		{"MaxRecipients", s.opts.MaxRecipients, 100},
		{"ReadTimeout", s.opts.ReadTimeout, 5 * time.Minute},
		{"WriteTimeout", s.opts.WriteTimeout, 5 * time.Minute},
		{"MaxConnsPerIP", s.opts.MaxConnsPerIP, 20},
		{"MaxConns", s.opts.MaxConns, 1000},
		{"MaxPreAuthConns is MaxConns", s.opts.MaxPreAuthConns, 1000},
		{"MaxIdleCommands", s.opts.MaxIdleCommands, 20},
		{"MaxLineLength 100 raised to RFC 5321's 1000", s.opts.MaxLineLength, 1000},
		{"TLS MinVersion raised to 1.2", s.opts.TLSConfig.MinVersion, uint16(tls.VersionTLS12)},
		{"AuthLimiter defaults", s.opts.AuthLimiter.Config(), authlimit.New(authlimit.Config{}).Config()},
	} {
		if tc.got != tc.want {
			t.Errorf("New(zero Options).%s = %v, want %v", tc.name, tc.got, tc.want)
		}
	}
	if s.opts.MaxLineLength = 0; New(store, s.opts).opts.MaxLineLength != DefaultMaxLineLength {
		t.Errorf("MaxLineLength 0 is not the default %d", DefaultMaxLineLength)
	}
}

// TestMaxConns: on a full listener a new connection evicts the
// unauthenticated one quiet longest (421 4.3.2), other listeners are
// unaffected, a closed connection frees its slot, and with only
// authenticated connections left the newcomer is refused with 421 4.3.2.
func TestMaxConns(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxConns: 2}})
	first := dialRaw(t, e.addr[roleMX])
	first.expect(220, testHostname)
	second := dialRaw(t, e.addr[roleMX])
	second.expect(220, testHostname)
	first.send("NOOP\r\n") // first is now the more recently active
	first.expect(250, "")

	third := dialRaw(t, e.addr[roleMX])
	second.expect(421, "4.3.2")
	second.expectEOF()
	third.expect(220, testHostname)

	lmtp := dialRaw(t, e.addr[roleLMTP])
	lmtp.expect(220, testHostname)

	first.send("QUIT\r\n")
	first.expect(221, "")
	first.expectEOF() // the slot is released before the close is seen
	again := dialRaw(t, e.addr[roleMX])
	again.expect(220, testHostname)
	third.send("NOOP\r\n")
	third.expect(250, "") // a slot was free: nobody was evicted

	// Submission: authenticated connections are never evicted.
	b64 := base64.StdEncoding.EncodeToString
	for _, u := range testUsers[:2] {
		c := dialRaw(t, e.addr[roleSubmission])
		c.expect(220, testHostname)
		c.send("EHLO client.test\r\nAUTH PLAIN " + b64([]byte("\x00"+u.addr+"\x00"+u.password)) + "\r\n")
		c.expect(250, "")
		c.expect(235, "")
	}
	refused := dialRaw(t, e.addr[roleSubmission])
	refused.expect(421, "4.3.2")
	refused.expectEOF()
}

// TestMaxLineLength: a command line over the limit is refused and the
// connection closed; DATA lines up to the limit pass.
func TestMaxLineLength(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{MaxLineLength: 1200}})
	c := dialRaw(t, e.addr[roleMX])
	c.expect(220, "")
	c.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(250, "")
	c.expect(354, "")
	body := strings.Repeat("b", 1100)
	c.send("Subject: long lines\r\n\r\n" + body + "\r\n.\r\n")
	c.expect(250, "2.0.0")
	c.send("NOOP " + strings.Repeat("x", 1300) + "\r\n")
	c.expect(500, "5.4.0")
	c.expectEOF()
	if _, rest := cutTrace(t, e.only("alice@example.org"), "sender@remote.example", "alice@example.org"); !bytes.Contains(rest, []byte(body)) {
		t.Errorf("the 1100-byte line was not stored")
	}
}

// trickle writes data one byte at a time, every interval, until a write
// fails or the test ends: a slow-loris client.
func trickle(t *testing.T, nc net.Conn, data string, interval time.Duration) {
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
			if _, err := nc.Write([]byte{data[i]}); err != nil {
				return
			}
		}
	}()
}

// TestSlowLoris: a client that sends a byte now and then, in a command or
// in DATA, is cut off after ReadTimeout and its slot is free again.
func TestSlowLoris(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name   string
		before string // sent at once, after the greeting
		want   []int  // the replies to it
		slow   string // then trickled
		last   string // the reply that ends the connection
	}{
		{"command line", "", nil, "EHLO a-very-slow-client.example\r\n", "421 4.4.2"},
		{"DATA", "EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n",
			[]int{250, 250, 250, 354}, "Subject: slow\r\n\r\nbody\r\n", "421 4.4.2"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{opts: Options{ReadTimeout: 300 * time.Millisecond, MaxConnsPerIP: 1}})
			c := dialRaw(t, e.addr[roleMX])
			c.expect(220, "")
			c.send(tc.before)
			for _, code := range tc.want {
				c.expect(code, "")
			}
			trickle(t, c.nc, tc.slow, 20*time.Millisecond)
			// The bytes that came in time may be answered as a command,
			// once (see conn.Read); then the server says 421 and closes.
			var lines []string
			for {
				line, err := c.r.ReadLine()
				if err != nil {
					if errors.Is(err, os.ErrDeadlineExceeded) {
						t.Fatalf("connection still open after %q", lines)
					}
					break // EOF, or a reset: the server closed it
				}
				lines = append(lines, line)
			}
			if len(lines) == 0 || !strings.HasPrefix(lines[len(lines)-1], tc.last) {
				t.Errorf("replies before the close: %q, want the last to be %s", lines, tc.last)
			}
			if n := len(lines); n > 12 {
				t.Errorf("%d reply lines before the close, want a bounded few: %q", n, lines)
			}
			again := dialRaw(t, e.addr[roleMX])
			again.expect(220, "")
			if n := len(e.inbox("alice@example.org")); n != 0 {
				t.Errorf("INBOX has %d messages, want 0", n)
			}
		})
	}
}

// dialFrom returns a submission client connected from localIP, another
// address of the loopback network, as a different client would be.
func (e *testEnv) dialFrom(localIP string) *smtp.Client {
	e.t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(localIP)}, Timeout: 10 * time.Second}
	nc, err := d.Dial("tcp", e.addr[roleSubmission])
	if err != nil {
		e.t.Skipf("dial from %s: %v", localIP, err)
	}
	c := smtp.NewClient(nc)
	c.CommandTimeout = 30 * time.Second
	e.t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		e.t.Fatalf("EHLO: %v", err)
	}
	return c
}

// TestAuthLimitPerAccount: failures for one account lock it for
// addresses it has not logged in from, not for its owner's known address,
// not for other accounts; the owner's login does not reset the attacker's
// share of the count (issue 13).
func TestAuthLimitPerAccount(t *testing.T) {
	t.Parallel()
	const (
		owner    = "127.0.0.1"
		attacker = "127.0.0.2"
		other    = "127.0.0.3"
	)
	lim := authlimit.New(authlimit.Config{PerIP: 100, PerAccount: 3, Delay: time.Millisecond / 8})
	e := newEnv(t, envConfig{opts: Options{AuthLimiter: lim}})
	auth := func(from, user, password string, code int, enh string) {
		t.Helper()
		err := e.dialFrom(from).Auth(sasl.NewPlainClient("", user, password))
		wantReply(t, "AUTH as "+user+" from "+from, err, code, enh)
	}
	auth(owner, "alice@example.org", "alice-password", 0, "")
	for range 3 {
		auth(attacker, "alice@example.org", "guess", 535, "5.7.8")
	}
	// The account is locked: the right password does not help from
	// addresses it has not been used from.
	auth(attacker, "alice@example.org", "alice-password", 454, "4.7.0")
	auth(other, "Alice@Example.org", "alice-password", 454, "4.7.0")
	// Others are unaffected, even from the attacker's address.
	auth(attacker, "bob@example.org", "bob-password", 0, "")
	auth(other, "carol@example.org", "carol-password", 0, "")
	// The owner's known address still works, and leaves the attacker's
	// failures counted: the account stays locked elsewhere.
	auth(owner, "alice@example.org", "alice-password", 0, "")
	auth(other, "alice@example.org", "alice-password", 454, "4.7.0")
	auth(attacker, "alice@example.org", "alice-password", 454, "4.7.0")
}

// TestAuthLimitSharedAcrossListeners: failures counted by one Server's
// limiter are what another consumer of it sees (smtpd and imapd share
// one in pushmail serve).
func TestAuthLimitShared(t *testing.T) {
	t.Parallel()
	lim := authlimit.New(authlimit.Config{PerAccount: 2, Delay: time.Millisecond / 8})
	lim.Failed("192.0.2.1", "alice@example.org", time.Now())
	lim.Failed("192.0.2.1", "alice@example.org", time.Now())
	e := newEnv(t, envConfig{opts: Options{AuthLimiter: lim}})
	err := e.dial(roleSubmission).Auth(sasl.NewPlainClient("", "alice@example.org", "alice-password"))
	wantReply(t, "AUTH for an account locked elsewhere", err, 454, "4.7.0")
}

// TestTLSVersions: STARTTLS negotiates TLS 1.2 and 1.3, never 1.0 or 1.1
// (RFC 8996), even when the configuration given to New allows them.
func TestTLSVersions(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{setup: func(s *Server) {
		// Undo the test env's MinVersion: New's own floor must hold.
		s.opts.TLSConfig = tlspolicy.Enforce(&tls.Config{Certificates: s.opts.TLSConfig.Certificates})
	}})
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
		t.Run(tc.name, func(t *testing.T) {
			c := dialRaw(t, e.addr[roleSubmission])
			c.expect(220, "")
			c.send("EHLO client.test\r\nSTARTTLS\r\n")
			c.expect(250, "")
			c.expect(220, "")
			cfg := e.clientTLS.Clone()
			cfg.MinVersion, cfg.MaxVersion = tc.version, tc.version
			tc2 := tls.Client(c.nc, cfg)
			err := tc2.Handshake()
			if tc.ok {
				if err != nil {
					t.Fatalf("STARTTLS handshake with %s = %v, want success", tc.name, err)
				}
				if v := tc2.ConnectionState().Version; v != tc.version {
					t.Errorf("negotiated %s, want %s", tls.VersionName(v), tc.name)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), "protocol version not supported") {
				t.Fatalf("STARTTLS handshake with %s = %v, want the server's protocol_version alert", tc.name, err)
			}
		})
	}
}

// TestTLSVersionsOpenSSL checks the same with another TLS stack: OpenSSL
// forced to offer TLS 1.0 or 1.1 only (its own default security level
// would refuse them client-side) fails the handshake; 1.2 succeeds.
func TestTLSVersionsOpenSSL(t *testing.T) {
	t.Parallel()
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not on PATH")
	}
	e := newEnv(t, envConfig{})
	for _, proto := range []string{"smtp", "submission"} {
		addr := e.addr[roleMX]
		if proto == "submission" {
			addr = e.addr[roleSubmission]
		}
		for _, tc := range []struct {
			flag string
			ok   bool
		}{
			{"-tls1", false},
			{"-tls1_1", false},
			{"-tls1_2", true},
		} {
			t.Run(proto+tc.flag, func(t *testing.T) {
				t.Parallel()
				out, err := openSSLClient(t, addr, "smtp", tc.flag)
				checkOpenSSL(t, out, err, tc.flag, tc.ok)
			})
		}
	}
}

// openSSLClient runs openssl s_client against addr with one protocol
// version flag and returns its combined output.
func openSSLClient(t *testing.T, addr, starttls, flag string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	args := []string{"s_client", "-connect", addr, flag, "-cipher", "DEFAULT:@SECLEVEL=0"}
	if starttls != "" {
		args = append(args, "-starttls", starttls)
	}
	cmd := exec.CommandContext(ctx, "openssl", args...)
	cmd.Stdin = strings.NewReader("")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// checkOpenSSL asserts an s_client outcome. A refusal must be the
// server's (a protocol version alert): a client that could not even offer
// the version proves nothing, and the test is skipped.
func checkOpenSSL(t *testing.T, out string, err error, flag string, ok bool) {
	t.Helper()
	if ok {
		if err != nil || !strings.Contains(out, "New, TLSv1.2, Cipher is") {
			t.Fatalf("openssl s_client %s: %v, want a TLS 1.2 session:\n%s", flag, err, out)
		}
		return
	}
	if strings.Contains(out, "no protocols available") {
		t.Skipf("this OpenSSL cannot offer %s:\n%s", flag, out)
	}
	if err == nil || strings.Contains(out, "Cipher is") && !strings.Contains(out, "Cipher is (NONE)") {
		t.Fatalf("openssl s_client %s: handshake succeeded, want refused:\n%s", flag, out)
	}
	if !strings.Contains(out, "alert protocol version") {
		t.Errorf("openssl s_client %s failed without a protocol version alert:\n%s", flag, out)
	}
}
