package imapd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"strings"
	"testing"
	"time"
)

// injectedMailbox is what the commands hidden in the tests' literals
// would create.
const injectedMailbox = "injected"

// literalPayload returns n bytes of literal data that, read as commands,
// would create injectedMailbox: a CREATE line first, then lines of filler
// (which an unguarded server takes for broken commands, and closes on).
func literalPayload(n int) []byte {
	var b bytes.Buffer
	b.Grow(n)
	b.WriteString("c CREATE " + injectedMailbox + "\r\nd CREATE " + injectedMailbox + "2\r\n")
	line := strings.Repeat("x", 998) + "\r\n"
	for b.Len()+len(line) <= n {
		b.WriteString(line)
	}
	b.WriteString(strings.Repeat("y", n-b.Len()))
	return b.Bytes()[:n]
}

// guardTransport dials the server one way and returns a connection past
// the greeting (and past STARTTLS), not logged in.
type guardTransport struct {
	name string
	dial func(t *testing.T, env *testEnv, tlsAddr string) net.Conn
}

var guardTransports = []guardTransport{
	{"plain", func(t *testing.T, env *testEnv, _ string) net.Conn {
		c, err := net.DialTimeout("tcp", env.addr, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}},
	{"implicit TLS", func(t *testing.T, env *testEnv, tlsAddr string) net.Conn {
		c, err := tls.DialWithDialer(&net.Dialer{Timeout: waitTimeout}, "tcp", tlsAddr, &tls.Config{InsecureSkipVerify: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}},
	{"STARTTLS", func(t *testing.T, env *testEnv, _ string) net.Conn {
		c, err := net.DialTimeout("tcp", env.addr, waitTimeout)
		if err != nil {
			t.Fatal(err)
		}
		r := bufio.NewReader(c)
		if err := c.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
			t.Fatal(err)
		}
		greeting, err := r.ReadString('\n')
		if err != nil || !strings.Contains(greeting, "STARTTLS") {
			t.Fatalf("greeting %q, %v; want STARTTLS offered", greeting, err)
		}
		if _, err := io.WriteString(c, "s STARTTLS\r\n"); err != nil {
			t.Fatal(err)
		}
		if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "s OK ") {
			t.Fatalf("STARTTLS = %q, %v", line, err)
		}
		if r.Buffered() > 0 {
			t.Fatalf("%d bytes after the STARTTLS response", r.Buffered())
		}
		tc := tls.Client(c, &tls.Config{InsecureSkipVerify: true})
		if err := tc.Handshake(); err != nil {
			t.Fatalf("handshake after STARTTLS: %v", err)
		}
		// A greeting-like line keeps the conversation code uniform.
		return &prefixedConn{Conn: tc, prefix: []byte("* OK after STARTTLS\r\n")}
	}},
}

// prefixedConn reads prefix before the connection's own bytes.
type prefixedConn struct {
	net.Conn
	prefix []byte
}

func (c *prefixedConn) Read(p []byte) (int, error) {
	if len(c.prefix) > 0 {
		n := copy(p, c.prefix)
		c.prefix = c.prefix[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// TestOversizedLiteralNotExecuted: a literal the server does not read
// (over a limit, or in a command that failed before it) is never taken
// for commands (RFC 9051 §4.3, RFC 7888 §4). The server either skips its
// bytes, and the client's next command runs, or says BYE and closes.
func TestOversizedLiteralNotExecuted(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name        string
		login       bool   // log in first
		selectInbox bool   // and select INBOX
		appendLimit uint32 // Options.AppendLimit; 0: the default
		line        string // the command line, ending in the announcement
		size        int    // the literal's announced size
		sync        bool   // a synchronizing literal: the client sends nothing after
		rest        string // the rest of the command line after the literal
		want        string // the command's status, prefix
		bye         bool   // the server must close instead of going on
	}{
		{name: "APPEND over the limit", login: true, line: "a APPEND INBOX {30000000+}", size: 30000000, rest: "", want: "NO [TOOBIG]"},
		{name: "APPEND UTF8 over the limit", login: true, appendLimit: 64 << 10, line: "a APPEND INBOX UTF8 (~{100000+}", size: 100000, rest: ")", want: "NO [TOOBIG]"},
		{name: "APPEND far over the limit", login: true, appendLimit: 64 << 10, line: "a APPEND INBOX {30000000+}", size: 30000000, want: "NO [TOOBIG]", bye: true},
		{name: "APPEND mailbox name literal", login: true, line: "a APPEND {5000+}", size: 5000, rest: " {5+}\r\nHello", want: "BAD"},
		{name: "APPEND bad date before the literal", login: true, line: `a APPEND INBOX (\Seen) notadate {200+}`, size: 200, want: "BAD"},
		{name: "unknown command", login: true, line: "a FROB {200+}", size: 200, want: "BAD"},
		{name: "SELECT far over the limit", login: true, appendLimit: 64 << 10, line: "a SELECT {30000000+}", size: 30000000, want: "BAD", bye: true},
		{name: "SELECT", login: true, line: "a SELECT {5000+}", size: 5000, want: "BAD"},
		{name: "APPEND synchronizing over the limit", login: true, line: "a APPEND INBOX {30000000}", size: 30000000, sync: true, want: "NO [TOOBIG]"},
		{name: "SEARCH TEXT", login: true, selectInbox: true, line: "a SEARCH TEXT {5000+}", size: 5000, want: "BAD"},
		{name: "LOGIN before authentication", line: "a LOGIN {5000+}", size: 5000, rest: " x", want: "BAD"},
		{name: "LIST pattern", login: true, line: `a LIST "" {5000+}`, size: 5000, want: "BAD"},
	}
	cfg := testTLSConfig(t)
	for _, tr := range guardTransports {
		for _, tc := range cases {
			t.Run(tr.name+"/"+tc.name, func(t *testing.T) {
				t.Parallel()
				env := newTestEnv(t, envOptions{server: Options{TLSConfig: cfg, AppendLimit: tc.appendLimit}})
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					t.Fatal(err)
				}
				go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
				nc := tr.dial(t, env, ln.Addr().String())
				defer nc.Close()
				if err := nc.SetDeadline(time.Now().Add(4 * waitTimeout)); err != nil {
					t.Fatal(err)
				}
				r := bufio.NewReader(nc)
				if line, err := r.ReadString('\n'); err != nil || !strings.HasPrefix(line, "* OK") {
					t.Fatalf("greeting %q, %v", line, err)
				}
				var prelude string
				if tc.login {
					prelude += fmt.Sprintf("l LOGIN %s %s\r\n", testUser, testPassword)
				}
				if tc.selectInbox {
					prelude += "s SELECT INBOX\r\n"
				}
				var script bytes.Buffer
				script.WriteString(prelude + tc.line + "\r\n")
				if !tc.sync {
					script.Write(literalPayload(tc.size))
					script.WriteString(tc.rest + "\r\n")
				}
				script.WriteString("n NOOP\r\n")
				wrote := make(chan error, 1)
				go func() {
					_, err := nc.Write(script.Bytes())
					wrote <- err
				}()

				var transcript []string
				var status string
				bye := false
				for {
					line, err := r.ReadString('\n')
					line = strings.TrimRight(line, "\r\n")
					if err != nil {
						if line != "" {
							transcript = append(transcript, line)
						}
						break
					}
					transcript = append(transcript, line)
					if s, ok := strings.CutPrefix(line, "a "); ok && status == "" {
						status = s
					}
					if strings.HasPrefix(line, "* BYE") {
						bye = true
					}
					if strings.HasPrefix(line, "n ") {
						break
					}
				}
				if tc.bye {
					// Let the writer finish: it fails once the server closes.
					select {
					case <-wrote:
					case <-time.After(4 * waitTimeout):
						t.Error("writer still blocked after the server's BYE")
					}
				}
				all := strings.Join(transcript, "\n")
				for _, l := range transcript {
					if strings.HasPrefix(l, "c ") || strings.HasPrefix(l, "d ") {
						t.Errorf("a command inside the literal ran: %q; transcript:\n%s", l, abbrevString(all))
					}
				}
				if !strings.HasPrefix(status, tc.want) {
					t.Errorf("status = %q, want %s; transcript:\n%s", status, tc.want, abbrevString(all))
				}
				switch {
				case tc.bye && !bye:
					t.Errorf("no BYE; transcript:\n%s", abbrevString(all))
				case !tc.bye && !hasLine(transcript, "n OK NOOP completed"):
					t.Errorf("the next command did not run; transcript:\n%s", abbrevString(all))
				}
				ctx := context.Background()
				mbs, err := env.store.Mailboxes(ctx, env.user.ID)
				if err != nil {
					t.Fatal(err)
				}
				for _, mb := range mbs {
					if strings.HasPrefix(mb.Name, injectedMailbox) {
						t.Errorf("mailbox %q exists: a command inside the literal ran", mb.Name)
					}
				}
			})
		}
	}
}

// abbrevString cuts a transcript for a failure message.
func abbrevString(s string) string {
	if len(s) > 2000 {
		return s[:2000] + "…"
	}
	return s
}
