package main

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// proxySource is the address of the test's "proxy": a second loopback
// address, so that a connection from 127.0.0.1 is an untrusted source.
var proxySource = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

// proxyDial connects to addr from 'from' and, if version is not 0, sends
// a PROXY protocol header that names client as the connection's source.
func proxyDial(t *testing.T, from *net.TCPAddr, addr string, version byte, client string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: from, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if version == 0 {
		return c
	}
	src, err := net.ResolveTCPAddr("tcp", client)
	if err != nil {
		t.Fatal(err)
	}
	dst, err := net.ResolveTCPAddr("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := proxyproto.HeaderProxyFromAddrs(version, src, dst).WriteTo(c); err != nil {
		t.Fatal(err)
	}
	return c
}

// proxyLine is one client of a line protocol over a connection.
type proxyLine struct {
	t  *testing.T
	c  net.Conn
	br *bufio.Reader
}

func newProxyLine(t *testing.T, c net.Conn) *proxyLine {
	return &proxyLine{t: t, c: c, br: bufio.NewReader(c)}
}

func (p *proxyLine) read() string {
	p.t.Helper()
	line, err := p.br.ReadString('\n')
	if err != nil {
		p.t.Fatalf("read: %v (after %q)", err, line)
	}
	return strings.TrimRight(line, "\r\n")
}

// imap sends an IMAP command and returns its tagged reply.
func (p *proxyLine) imap(tag, cmd string) string {
	p.t.Helper()
	if _, err := fmt.Fprintf(p.c, "%s %s\r\n", tag, cmd); err != nil {
		p.t.Fatal(err)
	}
	for {
		if line := p.read(); strings.HasPrefix(line, tag+" ") {
			return line
		}
	}
}

// closed asserts that the server closes the connection without a byte.
func (p *proxyLine) closed() {
	p.t.Helper()
	b, err := p.br.ReadByte()
	if err == nil {
		p.t.Fatalf("read %q, want the connection closed", b)
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		p.t.Fatalf("read: %v, want the connection closed", err)
	}
}

// TestProxyProtocolServe runs the binary with the SMTP, IMAP and IMAPS
// listeners behind a PROXY protocol proxy on 127.0.0.2: clients appear
// with their own addresses in the logs, the per-IP limits and lockouts,
// and the plaintext-password rule; nobody else may claim an address.
func TestProxyProtocolServe(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	srv := startServer(t, data, "--log-level", "debug", "--dev-tls", "--imaps", "127.0.0.1:0",
		"--proxy-protocol", "smtp,imap,submission", "--proxy-protocol", "imaps", "--proxy-trusted", "127.0.0.2",
		"--auth-max-failures-per-ip", "2", "--auth-delay", "1ms", "--max-conns-per-ip", "2")
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")
	srv.waitLog(t, `proto=imaps addr=`+srv.addr("imaps")+` proxy_protocol=true`)

	t.Run("plaintext IMAP from a proxied remote client", func(t *testing.T) {
		// The proxy is on loopback; the client is not, and it decides.
		p := newProxyLine(t, proxyDial(t, proxySource, srv.addr("imap"), 1, "203.0.113.7:40001"))
		if g := p.read(); !strings.HasPrefix(g, "* OK") {
			t.Fatalf("greeting %q", g)
		}
		if got := p.imap("a1", "LOGIN alice@localhost secret"); !strings.HasPrefix(got, "a1 NO [PRIVACYREQUIRED]") {
			t.Errorf("LOGIN = %q, want NO [PRIVACYREQUIRED]", got)
		}
		srv.waitLog(t, "remote=203.0.113.7:40001")
	})
	t.Run("plaintext IMAP from a proxied loopback client", func(t *testing.T) {
		p := newProxyLine(t, proxyDial(t, proxySource, srv.addr("imap"), 2, "[::1]:40002"))
		p.read()
		if got := p.imap("a1", "LOGIN alice@localhost secret"); !strings.HasPrefix(got, "a1 OK") {
			t.Errorf("LOGIN = %q, want OK", got)
		}
	})
	t.Run("submission AUTH decided by the proxied client", func(t *testing.T) {
		ehlo := func(client string) (*proxyLine, string) {
			t.Helper()
			p := newProxyLine(t, proxyDial(t, proxySource, srv.addr("submission"), 2, client))
			if g := p.read(); !strings.HasPrefix(g, "220 ") {
				t.Fatalf("greeting %q", g)
			}
			if _, err := io.WriteString(p.c, "EHLO client.example\r\n"); err != nil {
				t.Fatal(err)
			}
			var ext []string
			for {
				line := p.read()
				ext = append(ext, line)
				if !strings.HasPrefix(line, "250-") {
					return p, strings.Join(ext, "\n")
				}
			}
		}
		p, ext := ehlo("203.0.113.8:40003")
		if strings.Contains(ext, "AUTH") {
			t.Errorf("EHLO to a remote client over plaintext offers AUTH:\n%s", ext)
		}
		if _, err := io.WriteString(p.c, "AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdABzZWNyZXQ=\r\n"); err != nil {
			t.Fatal(err)
		}
		if got := p.read(); !strings.HasPrefix(got, "538 5.7.11") {
			t.Errorf("AUTH from a remote client over plaintext = %q, want 538 5.7.11", got)
		}
		if _, ext := ehlo("127.0.0.1:40004"); !strings.Contains(ext, "AUTH PLAIN") {
			t.Errorf("EHLO to a loopback client lacks AUTH PLAIN:\n%s", ext)
		}
	})
	t.Run("lockout per proxied client over IMAPS", func(t *testing.T) {
		login := func(client, pass string, attempts int) []string {
			t.Helper()
			c := proxyDial(t, proxySource, srv.addr("imaps"), 2, client)
			// Implicit TLS begins after the header.
			tc := tls.Client(c, &tls.Config{ServerName: "localhost", InsecureSkipVerify: true})
			p := newProxyLine(t, tc)
			if g := p.read(); !strings.HasPrefix(g, "* OK") {
				t.Fatalf("greeting %q", g)
			}
			var replies []string
			for i := range attempts {
				replies = append(replies, p.imap(fmt.Sprintf("a%d", i), "LOGIN alice@localhost "+pass))
			}
			p.imap("z", "LOGOUT")
			if _, err := io.Copy(io.Discard, p.br); err != nil {
				t.Logf("after LOGOUT: %v", err)
			}
			return replies
		}
		// Two failures lock out client A...
		for i, got := range login("198.51.100.1:50000", "wrong", 3) {
			if !strings.HasPrefix(got, fmt.Sprintf("a%d NO", i)) {
				t.Errorf("LOGIN %d with a wrong password from A = %q, want NO", i, got)
			}
		}
		if got := login("198.51.100.1:50001", "secret", 1)[0]; !strings.HasPrefix(got, "a0 NO [UNAVAILABLE]") {
			t.Errorf("LOGIN from A after its failures = %q, want NO [UNAVAILABLE]", got)
		}
		// ...not client B, behind the same proxy.
		if got := login("198.51.100.2:50000", "secret", 1)[0]; !strings.HasPrefix(got, "a0 OK") {
			t.Errorf("LOGIN from B = %q, want OK: A's failures must not count against B", got)
		}
		srv.waitLog(t, "remote=198.51.100.1:50001")
	})
	t.Run("connections per proxied client over SMTP", func(t *testing.T) {
		greet := func(client string) string {
			t.Helper()
			return newProxyLine(t, proxyDial(t, proxySource, srv.addr("smtp"), 1, client)).read()
		}
		for i := range 2 {
			if g := greet(fmt.Sprintf("192.0.2.10:%d", 41000+i)); !strings.HasPrefix(g, "220 ") {
				t.Fatalf("greeting %d for C = %q, want 220", i, g)
			}
		}
		if g := greet("192.0.2.10:41002"); !strings.HasPrefix(g, "421 4.7.0") {
			t.Errorf("third connection from C: %q, want 421 4.7.0", g)
		}
		if g := greet("192.0.2.11:41000"); !strings.HasPrefix(g, "220 ") {
			t.Errorf("greeting for D = %q, want 220: C's connections must not count against D", g)
		}
		srv.waitLog(t, "remote=192.0.2.10:41002")
	})
	t.Run("header from an untrusted source", func(t *testing.T) {
		p := newProxyLine(t, proxyDial(t, nil, srv.addr("imap"), 2, "203.0.113.9:40009"))
		p.closed()
		srv.waitLog(t, "reason=untrusted")
	})
	t.Run("no header from the proxy", func(t *testing.T) {
		c := proxyDial(t, proxySource, srv.addr("smtp"), 0, "")
		if _, err := io.WriteString(c, "EHLO mail.example.org\r\n"); err != nil {
			t.Fatal(err)
		}
		newProxyLine(t, c).closed()
		srv.waitLog(t, "reason=no_header")
	})
	t.Run("unmarked listener unchanged", func(t *testing.T) {
		p := newProxyLine(t, proxyDial(t, nil, srv.addr("lmtp"), 0, ""))
		if g := p.read(); !strings.HasPrefix(g, "220 ") {
			t.Fatalf("LMTP greeting %q, want 220", g)
		}
		if _, err := io.WriteString(p.c, "LHLO client.example\r\n"); err != nil {
			t.Fatal(err)
		}
		for line := p.read(); strings.HasPrefix(line, "250-"); line = p.read() {
		}
		srv.waitLog(t, "proto=lmtp remote=127.0.0.1:")
	})
	t.Run("metrics", func(t *testing.T) {
		_, body := get(t, "http://"+srv.addr("http")+"/metrics", "")
		for _, want := range []string{
			`pushmail_proxy_refused_total{listener="imap",reason="untrusted"} 1`,
			`pushmail_proxy_refused_total{listener="smtp",reason="no_header"} 1`,
			`pushmail_proxy_refused_total{listener="imaps",reason="bad_header"} 0`,
		} {
			if !strings.Contains(body, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// TestProxyProtocolConfig: the listeners and trusted networks come from
// the file, the environment or flags, and mistakes are refused.
func TestProxyProtocolConfig(t *testing.T) {
	c := defaultConfig()
	c.Listen.ProxyProtocol = []string{"smtp", "imaps"}
	c.Listen.ProxyTrusted = []string{"10.0.0.0/8", "::1", "192.0.2.7", "::ffff:198.51.100.0/120"}
	if err := c.validate(); err != nil {
		t.Fatalf("validate() = %v", err)
	}
	got, err := c.Listen.proxyTrusted()
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(got); s != "[10.0.0.0/8 ::1/128 192.0.2.7/32 198.51.100.0/24]" {
		t.Errorf("proxyTrusted() = %s", s)
	}
	if !c.Listen.proxied("imaps") || c.Listen.proxied("imap") {
		t.Errorf("proxied(imaps), proxied(imap) = %v, %v; want true, false", c.Listen.proxied("imaps"), c.Listen.proxied("imap"))
	}
	for _, tc := range []struct {
		name   string
		edit   func(*Config)
		errSub string
	}{
		{"unknown listener", func(c *Config) { c.Listen.ProxyProtocol = []string{"http"} }, `unknown listener "http"`},
		{"unix socket", func(c *Config) { c.Listen.ProxyProtocol = []string{"lmtp"}; c.Listen.LMTP = "unix:/run/pm.sock" }, "lmtp is a unix socket"},
		{"no trusted networks", func(c *Config) { c.Listen.ProxyTrusted = nil }, "listen.proxy_trusted: name the proxies' networks"},
		{"bad network", func(c *Config) { c.Listen.ProxyTrusted = []string{"10.0.0.0/33"} }, `"10.0.0.0/33" is neither`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := defaultConfig()
			c.Listen.ProxyProtocol = []string{"smtp"}
			c.Listen.ProxyTrusted = []string{"127.0.0.1"}
			tc.edit(&c)
			if err := c.validate(); err == nil || !strings.Contains(err.Error(), tc.errSub) {
				t.Errorf("validate() = %v, want an error with %q", err, tc.errSub)
			}
		})
	}
	// Environment: comma-separated lists.
	env := map[string]string{"PUSHMAIL_PROXY_PROTOCOL": "imap, submission", "PUSHMAIL_PROXY_TRUSTED": "127.0.0.1/32,::1/128"}
	c, err = loadConfig("", func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	if s := fmt.Sprint(c.Listen.ProxyProtocol, c.Listen.ProxyTrusted); s != "[imap submission] [127.0.0.1/32 ::1/128]" {
		t.Errorf("from the environment: %s", s)
	}
}
