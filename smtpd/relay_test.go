package smtpd

import (
	"encoding/base64"
	"strings"
	"testing"
)

// relayTricks are recipient paths that try to make a server pass mail on
// to another host. Every one must be refused with a 5xx on every listener:
// pushmail delivers to local mailboxes and relays nothing (RFC 5321
// §3.6.2, §7.1; DESIGN.md §5).
var relayTricks = []struct{ name, path string }{
	{"foreign domain", "someone@elsewhere.example"},
	{"foreign domain in upper case", "SOMEONE@ELSEWHERE.EXAMPLE"},
	{"local user name at a foreign domain", "alice@elsewhere.example"},
	{"subdomain of a local domain", "alice@sub.example.org"},
	{"local domain under a foreign one", "alice@example.org.elsewhere.example"},
	{"foreign domain with a trailing dot", "someone@elsewhere.example."},
	{"local domain with a trailing dot", "alice@example.org."},
	{"source route to a foreign domain", "@relay.example:someone@elsewhere.example"},
	{"source route through the local domain", "@example.org:someone@elsewhere.example"},
	{"source route with two hops", "@a.example,@b.example:someone@elsewhere.example"},
	{"source route through an address literal", "@[192.0.2.1]:someone@elsewhere.example"},
	{"percent hack", "someone%elsewhere.example@example.org"},
	{"percent hack with a local user", "alice%elsewhere.example@example.org"},
	{"percent hack, two hops", "someone%elsewhere.example%example.org@example.org"},
	{"bang path", "elsewhere.example!someone@example.org"},
	{"bang path without a domain", "elsewhere.example!someone"},
	{"quoted local part with @", `"someone@elsewhere.example"@example.org`},
	{"quoted local part with %", `"someone%elsewhere.example"@example.org`},
	{"quoted local part with !", `"elsewhere.example!someone"@example.org`},
	{"IPv4 address literal", "someone@[192.0.2.1]"},
	{"IPv4 address literal of this host", "alice@[127.0.0.1]"},
	{"IPv6 address literal", "alice@[IPv6:::1]"},
	{"IP address without brackets", "alice@127.0.0.1"},
	{"two @", "alice@example.org@elsewhere.example"},
	{"no domain", "alice"},
	{"null path", ""},
}

// TestNeverARelay tries every trick on every listener: inbound SMTP,
// LMTP, and submission both unauthenticated and authenticated. Each
// RCPT gets a 5xx, DATA finds no recipient, and nothing is stored.
func TestNeverARelay(t *testing.T) {
	t.Parallel()
	// Each trick is a MAIL, refused on submission without AUTH: more
	// commands without a transaction than MaxIdleCommands allows.
	e := newEnv(t, envConfig{opts: Options{MaxIdleCommands: 1000}})
	b64 := base64.StdEncoding.EncodeToString
	for _, l := range []struct {
		name  string
		role  role
		login bool // AUTH PLAIN as alice before MAIL
		from  string
		// mailCode is the reply to MAIL; localOK whether a local
		// recipient is accepted (the control).
		mailCode int
		localOK  bool
	}{
		{"smtp", roleMX, false, "sender@remote.example", 250, true},
		{"lmtp", roleLMTP, false, "sender@remote.example", 250, true},
		{"submission without AUTH", roleSubmission, false, "alice@example.org", 530, false},
		{"submission with AUTH", roleSubmission, true, "alice@example.org", 250, true},
	} {
		t.Run(l.name, func(t *testing.T) {
			t.Parallel()
			c := dialRaw(t, e.addr[l.role])
			c.expect(220, "")
			if l.role == roleLMTP {
				c.send("LHLO client.test\r\n")
			} else {
				c.send("EHLO client.test\r\n")
			}
			c.expect(250, "")
			if l.login {
				c.send("AUTH PLAIN " + b64([]byte("\x00alice@example.org\x00alice-password")) + "\r\n")
				c.expect(235, "")
			}
			// The control: a local recipient, accepted where mail may be
			// sent at all.
			c.send("MAIL FROM:<" + l.from + ">\r\nRCPT TO:<bob@example.org>\r\nRSET\r\n")
			c.expect(l.mailCode, "")
			if code, text := c.reply(); (code == 250) != l.localOK {
				t.Errorf("RCPT TO:<bob@example.org> = %d %s, want accepted = %v", code, text, l.localOK)
			}
			c.expect(250, "")
			for _, tc := range relayTricks {
				c.t = t
				c.send("MAIL FROM:<" + l.from + ">\r\n")
				c.expect(l.mailCode, "")
				c.send("RCPT TO:<" + tc.path + ">\r\n")
				if code, text := c.reply(); code < 500 || code > 599 {
					t.Errorf("%s: RCPT TO:<%s> = %d %s, want 5xx", tc.name, tc.path, code, text)
				}
				c.send("DATA\r\n")
				if code, text := c.reply(); code < 500 || code > 599 {
					t.Fatalf("%s: DATA after RCPT TO:<%s> = %d %s, want 5xx (no recipient)", tc.name, tc.path, code, text)
				}
				c.send("RSET\r\n")
				c.expect(250, "")
			}
		})
	}
	t.Cleanup(func() {
		// Runs after the parallel subtests: nothing reached any mailbox.
		for _, u := range testUsers {
			if n := len(e.inbox(u.addr)); n != 0 {
				t.Errorf("INBOX of %s has %d messages after relay attempts, want 0", u.addr, n)
			}
		}
	})
}

// TestTrailingDotRefused: RFC 5321 §4.1.2 has no trailing dot in a
// Domain; even a local one is refused as malformed, 553 5.1.3.
func TestTrailingDotRefused(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(roleMX)
	if err := c.Mail("sender@remote.example", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	se := wantReply(t, "RCPT TO:<alice@example.org.>", c.Rcpt("alice@example.org.", nil), 553, "5.1.3")
	if !strings.Contains(se.Message, "local@domain") {
		t.Errorf("553 text %q, want the syntax hint", se.Message)
	}
}
