package imapd

import (
	"bufio"
	"crypto/tls"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"pushmail/internal/proxylisten"
)

// capsOf returns the capability list of a greeting or CAPABILITY line.
func capsOf(line string) []string {
	if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
		return strings.Fields(rest)
	}
	if rest, ok := strings.CutPrefix(line, "* OK [CAPABILITY "); ok {
		list, _, _ := strings.Cut(rest, "]")
		return strings.Fields(list)
	}
	return nil
}

// checkCaps fails unless caps offer passwords (AUTH=PLAIN, no
// LOGINDISABLED) as want says, and STARTTLS as startTLS says.
func checkCaps(t *testing.T, what string, caps []string, passwords, startTLS bool) {
	t.Helper()
	var auth, disabled, tlsOffered bool
	for _, c := range caps {
		switch {
		case strings.HasPrefix(strings.ToUpper(c), "AUTH="):
			auth = true
		case strings.EqualFold(c, "LOGINDISABLED"):
			disabled = true
		case strings.EqualFold(c, "STARTTLS"):
			tlsOffered = true
		}
	}
	if auth != passwords || disabled == passwords || tlsOffered != startTLS {
		t.Errorf("%s capabilities %q: AUTH= %v, LOGINDISABLED %v, STARTTLS %v; want %v, %v, %v",
			what, caps, auth, disabled, tlsOffered, passwords, !passwords, startTLS)
	}
}

// lineClient is a client that speaks IMAP line by line.
type lineClient struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	n    int
}

func (c *lineClient) line() string {
	c.t.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		c.t.Fatal(err)
	}
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (after %q)", err, l)
	}
	return strings.TrimRight(l, "\r\n")
}

// cmd sends a command and returns its untagged lines and tagged reply.
func (c *lineClient) cmd(command string) (untagged []string, tagged string) {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	if _, err := fmt.Fprintf(c.conn, "%s %s\r\n", tag, command); err != nil {
		c.t.Fatal(err)
	}
	for {
		l := c.line()
		if rest, ok := strings.CutPrefix(l, tag+" "); ok {
			return untagged, rest
		}
		untagged = append(untagged, l)
	}
}

// capability runs CAPABILITY and returns the list.
func (c *lineClient) capability() []string {
	c.t.Helper()
	untagged, tagged := c.cmd("CAPABILITY")
	if !strings.HasPrefix(tagged, "OK") {
		c.t.Fatalf("CAPABILITY: %q", tagged)
	}
	for _, l := range untagged {
		if caps := capsOf(l); caps != nil {
			return caps
		}
	}
	c.t.Fatalf("CAPABILITY: no list in %q", untagged)
	return nil
}

// TestLoginDisabledOffLoopback: where a password may not be sent (no TLS,
// not loopback, no AllowInsecureAuth), the greeting and CAPABILITY say
// LOGINDISABLED and offer no AUTH= mechanism (RFC 9051 §6.2.3, §7.2.2);
// after STARTTLS, AUTH=PLAIN is back and LOGIN works. The client is made
// remote by the PROXY protocol (internal/proxylisten), as behind a local
// proxy: the server sees 192.0.2.10, not the loopback address the
// header came from.
func TestLoginDisabledOffLoopback(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name          string
		proxied       bool // the client is 192.0.2.10, through a PROXY header
		allowInsecure bool
		passwords     bool // AUTH=PLAIN before STARTTLS
	}{
		{"remote", true, false, false},
		{"remote, insecure auth allowed", true, true, true},
		{"loopback", false, false, true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := newTestEnv(t, envOptions{server: Options{TLSConfig: testTLSConfig(t), AllowInsecureAuth: tt.allowInsecure}})
			addr := env.addr
			if tt.proxied {
				raw, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				ln := proxylisten.New(raw, proxylisten.Options{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}})
				go env.srv.Serve(ln) // ends with the env's Shutdown
				addr = ln.Addr().String()
			}
			conn, err := net.DialTimeout("tcp", addr, waitTimeout)
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			if tt.proxied {
				if _, err := fmt.Fprintf(conn, "PROXY TCP4 192.0.2.10 192.0.2.1 40000 143\r\n"); err != nil {
					t.Fatal(err)
				}
			}
			c := &lineClient{t: t, conn: conn, r: bufio.NewReader(conn)}
			greeting := c.line()
			checkCaps(t, "greeting", capsOf(greeting), tt.passwords, true)
			checkCaps(t, "CAPABILITY", c.capability(), tt.passwords, true)
			if !tt.passwords {
				if _, tagged := c.cmd("LOGIN " + testUser + " " + testPassword); !strings.HasPrefix(tagged, "NO [PRIVACYREQUIRED]") {
					t.Errorf("LOGIN with LOGINDISABLED: %q, want NO [PRIVACYREQUIRED]", tagged)
				}
			}

			if _, tagged := c.cmd("STARTTLS"); !strings.HasPrefix(tagged, "OK") {
				t.Fatalf("STARTTLS: %q", tagged)
			}
			tc := tls.Client(conn, &tls.Config{InsecureSkipVerify: true})
			if err := tc.Handshake(); err != nil {
				t.Fatalf("TLS handshake: %v", err)
			}
			c.conn, c.r = tc, bufio.NewReader(tc)
			checkCaps(t, "CAPABILITY after STARTTLS", c.capability(), true, false)
			if _, tagged := c.cmd("LOGIN " + testUser + " " + testPassword); !strings.HasPrefix(tagged, "OK") {
				t.Errorf("LOGIN after STARTTLS: %q", tagged)
			}
			if _, tagged := c.cmd("SELECT INBOX"); !strings.HasPrefix(tagged, "OK") {
				t.Errorf("SELECT INBOX after STARTTLS: %q", tagged)
			}
		})
	}
}
