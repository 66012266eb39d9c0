package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestLimitsConfig: every limit has a key, an environment variable and a
// flag, and values that would weaken a guarantee are refused.
func TestLimitsConfig(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "limits.toml")
	if err := os.WriteFile(file, []byte(`
[limits]
max_conns = 50
smtp_max_line_length = 1500
smtp_max_preauth_conns = 40
smtp_max_idle_commands = 12
imap_command_timeout = "10s"
imap_idle_timeout = "31m"
pop3_idle_timeout = "12m"
auth_max_failures_per_ip = 7
auth_window = "5m"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"PUSHMAIL_IMAP_LOGIN_TIMEOUT": "45s", "PUSHMAIL_AUTH_MAX_FAILURES_PER_ACCOUNT": "4"}
	c, err := loadConfig(file, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	fs := newFlagSet("serve", "", &bytes.Buffer{})
	_, apply := configFlags(fs)
	if err := parseFlags(fs, []string{"--auth-delay", "100ms", "--imap-idle-timeout", "40m"}); err != nil {
		t.Fatal(err)
	}
	if err := apply(&c); err != nil {
		t.Fatal(err)
	}
	l := c.Limits
	for _, ch := range []struct {
		name      string
		got, want any
	}{
		{"limits.max_conns from the file", l.MaxConns, 50},
		{"limits.smtp_max_line_length from the file", l.SMTPMaxLineLength, 1500},
		{"limits.smtp_max_preauth_conns from the file", l.SMTPMaxPreAuthConns, 40},
		{"limits.smtp_max_idle_commands from the file", l.SMTPMaxIdleCommands, 12},
		{"limits.imap_command_timeout from the file", l.IMAPCommandTimeout, 10 * time.Second},
		{"limits.imap_idle_timeout: flag over file", l.IMAPIdleTimeout, 40 * time.Minute},
		{"limits.imap_login_timeout from the environment", l.IMAPLoginTimeout, 45 * time.Second},
		{"limits.pop3_idle_timeout from the file", l.POP3IdleTimeout, 12 * time.Minute},
		{"limits.auth_max_failures_per_ip from the file", l.AuthMaxFailuresPerIP, 7},
		{"limits.auth_max_failures_per_account from the environment", l.AuthMaxFailuresPerAccount, 4},
		{"limits.auth_window from the file", l.AuthWindow, 5 * time.Minute},
		{"limits.auth_delay from a flag", l.AuthDelay, 100 * time.Millisecond},
	} {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if err := c.validate(); err != nil {
		t.Errorf("validate() = %v", err)
	}

	for _, tc := range []struct{ toml, want string }{
		{`imap_idle_timeout = "29m"`, "limits.imap_idle_timeout: must be at least 30m"},
		{`pop3_idle_timeout = "9m"`, "limits.pop3_idle_timeout: must be at least 10m (RFC 1939 §3)"},
		{`smtp_max_line_length = 999`, "limits.smtp_max_line_length: must be at least 1000"},
		{`max_conns = 0`, "limits.max_conns: must be positive"},
		{`smtp_max_preauth_conns = -1`, "limits.smtp_max_preauth_conns: must not be negative"},
		{`smtp_max_idle_commands = 0`, "limits.smtp_max_idle_commands: must be positive"},
		{`auth_max_failures_per_ip = 0`, "limits.auth_max_failures_per_ip: must be positive"},
		{`auth_max_failures_per_account = -1`, "limits.auth_max_failures_per_account: must be positive"},
		{`auth_window = "0s"`, "limits.auth_window: must be positive"},
		{`auth_delay = "-1s"`, "limits.auth_delay: must be positive"},
		{`imap_command_timeout = "0s"`, "limits.imap_command_timeout: must be positive"},
		{`imap_login_timeout = "0s"`, "limits.imap_login_timeout: must be positive"},
	} {
		c := defaultConfig()
		if err := decodeConfig([]byte("[limits]\n"+tc.toml+"\n"), &c); err != nil {
			t.Fatalf("%s: %v", tc.toml, err)
		}
		if err := c.validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("validate() with %s = %v, want %q", tc.toml, err, tc.want)
		}
	}
}

// conn is a line-oriented client for the end-to-end limit checks.
type lineConn struct {
	t  *testing.T
	nc net.Conn
	r  *bufio.Reader
}

func dialLine(t *testing.T, addr string) *lineConn {
	t.Helper()
	nc, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { nc.Close() })
	if err := nc.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return &lineConn{t: t, nc: nc, r: bufio.NewReader(nc)}
}

func (c *lineConn) send(s string) {
	c.t.Helper()
	if _, err := c.nc.Write([]byte(s)); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// line reads one line, without its CRLF.
func (c *lineConn) line() string {
	c.t.Helper()
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (after %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// reply reads an SMTP reply and returns its last line.
func (c *lineConn) reply() string {
	c.t.Helper()
	for {
		if l := c.line(); len(l) < 4 || l[3] != '-' {
			return l
		}
	}
}

// expect reads lines until one starts with prefix.
func (c *lineConn) expect(prefix string) string {
	c.t.Helper()
	for {
		if l := c.line(); strings.HasPrefix(l, prefix) {
			return l
		}
	}
}

// closed checks that the server closes the connection.
func (c *lineConn) closed() {
	c.t.Helper()
	for {
		if _, err := c.r.ReadString('\n'); err != nil {
			if os.IsTimeout(err) {
				c.t.Fatal("connection still open")
			}
			return
		}
	}
}

// TestLimitsServe drives the real binary with small limits: the config
// keys reach smtpd and imapd, and one failed-login limiter serves both.
func TestLimitsServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	srv := startServer(t, data, "--imaps", "127.0.0.1:0", "--dev-tls",
		"--max-conns", "2", "--auth-max-failures-per-account", "2", "--auth-delay", "1ms",
		"--smtp-max-line-length", "1000", "--imap-login-timeout", "2s")
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")

	t.Run("max_conns per SMTP listener", func(t *testing.T) {
		var open []*lineConn
		for range 2 {
			c := dialLine(t, srv.addr("smtp"))
			if l := c.reply(); !strings.HasPrefix(l, "220 ") {
				t.Fatalf("greeting %q, want 220", l)
			}
			open = append(open, c)
		}
		// A third evicts the quietest: the first.
		third := dialLine(t, srv.addr("smtp"))
		if l := third.reply(); !strings.HasPrefix(l, "220 ") {
			t.Errorf("third SMTP connection: %q, want 220", l)
		}
		if l := open[0].reply(); !strings.HasPrefix(l, "421 4.3.2") {
			t.Errorf("first SMTP connection after a third came: %q, want 421 4.3.2", l)
		}
		open[0].closed()
		open[0] = third
		// Another listener has its own count.
		sub := dialLine(t, srv.addr("submission"))
		if l := sub.reply(); !strings.HasPrefix(l, "220 ") {
			t.Errorf("submission while SMTP is full: %q, want 220", l)
		}
		for _, c := range append(open, sub) {
			c.send("QUIT\r\n")
			c.reply()
			c.closed()
		}
	})

	t.Run("max_conns for imap and imaps together", func(t *testing.T) {
		plain := dialLine(t, srv.addr("imap"))
		plain.expect("* OK")
		tc, err := tls.Dial("tcp", srv.addr("imaps"), &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		implicit := &lineConn{t: t, nc: tc, r: bufio.NewReader(tc)}
		t.Cleanup(func() { tc.Close() })
		implicit.expect("* OK")
		// bob, not alice: a login makes its address known to alice's
		// lockout, which a later subtest tests.
		cli(t, "secret\n", "user", "add", "bob@localhost", "--data", data, "--password-stdin")
		plain.send("a LOGIN bob@localhost secret\r\n")
		plain.expect("a OK")
		// A third evicts the oldest connection not logged in: imaps's.
		third := dialLine(t, srv.addr("imap"))
		third.expect("* OK")
		if l := implicit.line(); !strings.HasPrefix(l, "* BYE [UNAVAILABLE]") {
			t.Errorf("imaps connection not logged in, after a third came: %q, want * BYE [UNAVAILABLE]", l)
		}
		implicit.closed()
		third.send("a LOGIN bob@localhost secret\r\n")
		third.expect("a OK")
		// Both logged in: a fourth is refused.
		over := dialLine(t, srv.addr("imap"))
		if l := over.line(); !strings.HasPrefix(l, "* BYE [LIMIT]") {
			t.Errorf("IMAP connection with max_conns logged in: %q, want * BYE [LIMIT]", l)
		}
		for _, c := range []*lineConn{plain, third} {
			c.send("b LOGOUT\r\n")
			c.closed()
		}
	})

	t.Run("smtp_max_line_length", func(t *testing.T) {
		c := dialLine(t, srv.addr("lmtp"))
		c.reply()
		c.send("NOOP " + strings.Repeat("x", 1100) + "\r\n")
		if l := c.reply(); !strings.HasPrefix(l, "500 5.4.0") {
			t.Errorf("1106-byte command: %q, want 500 5.4.0", l)
		}
		c.closed()
	})

	t.Run("failed IMAP logins lock SMTP AUTH for the account", func(t *testing.T) {
		c := dialLine(t, srv.addr("imap"))
		c.expect("* OK")
		for _, tag := range []string{"a", "b"} {
			c.send(tag + " LOGIN alice@localhost wrong\r\n")
			if l := c.expect(tag + " "); !strings.HasPrefix(l, tag+" NO [AUTHENTICATIONFAILED]") {
				t.Fatalf("LOGIN with a wrong password: %q", l)
			}
		}
		c.send("c LOGOUT\r\n")
		c.closed()
		s := dialLine(t, srv.addr("submission"))
		s.reply()
		s.send("EHLO client.test\r\nAUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00alice@localhost\x00secret")) + "\r\n")
		s.reply()
		if l := s.reply(); !strings.HasPrefix(l, "454 4.7.0") {
			t.Errorf("AUTH with the right password after 2 IMAP failures: %q, want 454 4.7.0", l)
		}
		s.send("QUIT\r\n")
		s.reply()
		s.closed()
	})

	t.Run("imap_login_timeout", func(t *testing.T) {
		c := dialLine(t, srv.addr("imap"))
		c.expect("* OK")
		if l := c.line(); l != "* BYE Login timeout" {
			t.Errorf("after imap_login_timeout: %q, want * BYE Login timeout", l)
		}
		c.closed()
	})
}

// TestTLSVersionsServe: the binary's listeners refuse TLS 1.0 and 1.1
// (RFC 8996) with OpenSSL forced to offer only those (its own security
// level would refuse them client-side), and accept TLS 1.2.
func TestTLSVersionsServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	if _, err := exec.LookPath("openssl"); err != nil {
		t.Skip("openssl not on PATH")
	}
	data := t.TempDir()
	srv := startServer(t, data, "--imaps", "127.0.0.1:0", "--pop3s", "127.0.0.1:0", "--dev-tls")
	for _, l := range []struct{ proto, starttls string }{
		{"imaps", ""},
		{"imap", "imap"},
		{"pop3s", ""},
		{"pop3", "pop3"},
		{"smtp", "smtp"},
		{"submission", "smtp"},
	} {
		for _, tc := range []struct {
			flag string
			ok   bool
		}{
			{"-tls1", false},
			{"-tls1_1", false},
			{"-tls1_2", true},
		} {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			args := []string{"s_client", "-connect", srv.addr(l.proto), tc.flag, "-cipher", "DEFAULT:@SECLEVEL=0"}
			if l.starttls != "" {
				args = append(args, "-starttls", l.starttls)
			}
			cmd := exec.CommandContext(ctx, "openssl", args...)
			cmd.Stdin = strings.NewReader("")
			out, err := cmd.CombinedOutput()
			cancel()
			switch {
			case tc.ok && (err != nil || !bytes.Contains(out, []byte("New, TLSv1.2, Cipher is"))):
				t.Errorf("%s %s: %v, want a TLS 1.2 session:\n%s", l.proto, tc.flag, err, out)
			case !tc.ok && bytes.Contains(out, []byte("no protocols available")):
				t.Skipf("this OpenSSL cannot offer %s:\n%s", tc.flag, out)
			case !tc.ok && (err == nil || !bytes.Contains(out, []byte("alert protocol version"))):
				t.Errorf("%s %s: %v, want the handshake refused with a protocol version alert:\n%s", l.proto, tc.flag, err, out)
			}
		}
	}
}

// TestMaxStoreBytesServe: --max-store-bytes caps the database; past it
// deliveries get a temporary full-store reply, never a 250: 452 4.3.1 at
// MAIL once a message of --max-message-bytes would not fit, or 451 4.3.0
// after DATA for one that the store still refuses.
func TestMaxStoreBytesServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	// The store measures room for a message of 128 KB and trace fields,
	// twice (log and database): MAIL is refused from about 400 KB below
	// the cap.
	srv := startServer(t, data, "--max-store-bytes", "1048576", "--max-message-bytes", "131072")
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")

	body := "Subject: filler\r\n\r\n" + strings.Repeat(strings.Repeat("x", 998)+"\r\n", 100) // ~100 KB
	c := dialLine(t, srv.addr("smtp"))
	c.reply()
	c.send("EHLO client.test\r\n")
	for !strings.HasPrefix(c.reply(), "250 ") {
	}
	accepted, last := 0, ""
	for range 30 {
		c.send("MAIL FROM:<x@example.net>\r\n")
		if last = c.reply(); !strings.HasPrefix(last, "250 ") {
			if !strings.HasPrefix(last, "452 4.3.1") || !strings.Contains(last, "storage") {
				t.Errorf("MAIL past --max-store-bytes: %q, want 452 4.3.1 saying storage is short", last)
			}
			break
		}
		c.send("RCPT TO:<alice@localhost>\r\n")
		c.expect("250")
		c.send("DATA\r\n")
		c.expect("354")
		c.send(body + ".\r\n")
		if last = c.reply(); !strings.HasPrefix(last, "250 ") {
			if !strings.HasPrefix(last, "451 4.3.0") || !strings.Contains(last, "full") {
				t.Errorf("delivery past --max-store-bytes: %q, want 451 4.3.0 saying the mail system is full", last)
			}
			break
		}
		accepted++
	}
	if accepted == 0 || accepted == 30 {
		t.Fatalf("%d of 30 messages of 100 KB accepted into a 1 MiB store, want some but not all", accepted)
	}
	t.Logf("%d messages accepted, then %q", accepted, last)
	if got := storeStats(t, data); got.Messages != int64(accepted) {
		t.Errorf("store holds %d messages, %d got 250", got.Messages, accepted)
	}
	c.send("QUIT\r\n")
	c.reply()
}
