package smtpd

import (
	"bytes"
	"context"
	"testing"
)

// TestPostmaster: RFC 5321 §4.5.1. postmaster at each local domain, and
// "Postmaster" without a domain, is accepted without setup, over SMTP and
// LMTP, in any case, and lands in the mailbox the rule in
// mailstore.Resolve picks: the domain's postmaster alias, else the
// configured account, else the first user (alice, created first by
// newEnv).
func TestPostmaster(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name       string
		postmaster string // mailstore.Options.Postmaster
		alias      bool   // postmaster@example.org -> bob@example.org
		rcpt, want string
	}{
		{"no setup: the first user", "", false, "postmaster@example.org", "alice@example.org"},
		{"case-insensitive", "", false, "PostMaster@EXAMPLE.org", "alice@example.org"},
		{"a user's IDN domain, as A-label", "", false, "postmaster@xn--bcher-kva.example", "alice@example.org"},
		// RFC 5321 §4.1.1.3: "Postmaster" without a domain, in any case,
		// is postmaster@ the primary domain (the first configured).
		{"no domain", "", false, "Postmaster", "alice@example.org"},
		{"no domain, lower case, the primary domain's alias", "", true, "postmaster", "bob@example.org"},
		{"no domain, configured account", "dave@example.org", false, "POSTMASTER", "dave@example.org"},
		{"configured account", "dave@example.org", false, "postmaster@example.org", "dave@example.org"},
		{"configured account gone", "gone@example.org", false, "postmaster@example.org", "alice@example.org"},
		{"the domain's alias first", "dave@example.org", true, "postmaster@example.org", "bob@example.org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{postmaster: tc.postmaster})
			ctx := context.Background()
			if _, err := e.store.AddUser(ctx, "info@bücher.example", "secret"); err != nil {
				t.Fatal(err)
			}
			if tc.alias {
				if err := e.store.AddAlias(ctx, "postmaster@example.org", "bob@example.org"); err != nil {
					t.Fatal(err)
				}
			}
			for _, r := range []struct {
				role  role
				hello string
			}{{roleMX, "EHLO"}, {roleLMTP, "LHLO"}} {
				subject := "to postmaster over " + r.role.String()
				c := dialRaw(t, e.addr[r.role])
				c.expect(220, "")
				c.send(r.hello + " client.test\r\nMAIL FROM:<>\r\nRCPT TO:<" + tc.rcpt + ">\r\nDATA\r\n")
				c.expect(250, "")
				c.expect(250, "")
				c.expect(250, "")
				c.expect(354, "")
				// The body quotes a command; it is stored as sent.
				const body = "bounce report\r\nRCPT TO:<" + "postmaster>\r\n"
				c.send("Subject: " + subject + "\r\n\r\n" + body + ".\r\n")
				c.expect(250, "2.0.0")
				found := false
				for _, m := range e.inbox(tc.want) {
					found = found || bytes.HasSuffix(m.Raw, []byte("Subject: "+subject+"\r\n\r\n"+body))
				}
				if !found {
					t.Errorf("RCPT TO:<%s> over %s: no message in %s's INBOX", tc.rcpt, r.role, tc.want)
				}
			}
			// Nobody else got a copy.
			for _, u := range testUsers {
				if u.addr != tc.want && len(e.inbox(u.addr)) != 0 {
					t.Errorf("%s's INBOX has mail for postmaster, want only %s's", u.addr, tc.want)
				}
			}
		})
	}
}
