package smtpd

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// TestIDN: a domain in U-labels and in A-labels is one domain (RFC 5890
// §2.3.2.1, RFC 6531 §3.2). A user added with one form receives mail sent
// to the other, over SMTP and LMTP; a sender without SMTPUTF8 uses the
// A-label. Invalid IDNA is refused at RCPT as a bad address.
func TestIDN(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	ctx := context.Background()
	for _, u := range []string{"info@bücher.example", "kontakt@xn--mller-kva.example"} {
		if _, err := e.store.AddUser(ctx, u, "secret"); err != nil {
			t.Fatalf("AddUser(%s): %v", u, err)
		}
	}
	for _, tc := range []struct {
		name string
		role role
		mail string // MAIL FROM parameters
		rcpt string // as sent
		user string // as added
	}{
		{"SMTP: A-label to a U-label user", roleMX, "", "info@xn--bcher-kva.example", "info@bücher.example"},
		{"SMTP: U-label to an A-label user", roleMX, " SMTPUTF8", "kontakt@müller.example", "kontakt@xn--mller-kva.example"},
		{"SMTP: A-label in capitals", roleMX, "", "Info@XN--BCHER-KVA.EXAMPLE", "info@bücher.example"},
		{"LMTP: A-label to a U-label user", roleLMTP, "", "info@xn--bcher-kva.example", "info@bücher.example"},
		{"LMTP: U-label to an A-label user", roleLMTP, " SMTPUTF8", "kontakt@müller.example", "kontakt@xn--mller-kva.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := len(e.inbox(tc.user))
			c := dialRaw(t, e.addr[tc.role])
			c.expect(220, "")
			hello := "EHLO"
			if tc.role == roleLMTP {
				hello = "LHLO"
			}
			subject := "idn " + tc.name
			c.send(hello + " client.test\r\nMAIL FROM:<sender@remote.example>" + tc.mail + "\r\nRCPT TO:<" + tc.rcpt + ">\r\nDATA\r\n")
			c.expect(250, "")
			c.expect(250, "")
			c.expect(250, "")
			c.expect(354, "")
			c.send("Subject: " + subject + "\r\n\r\nbody\r\n.\r\n")
			c.expect(250, "2.0.0")
			msgs := e.inbox(tc.user)
			if len(msgs) != before+1 || !bytes.Contains(msgs[len(msgs)-1].Raw, []byte("Subject: "+subject+"\r\n")) {
				t.Fatalf("%s's INBOX has %d messages, want %d, the last one %q", tc.user, len(msgs), before+1, subject)
			}
			// The trace names the address as the client gave it.
			if raw := msgs[len(msgs)-1].Raw; !bytes.Contains(raw, []byte("Delivered-To: "+tc.rcpt+"\r\n")) {
				t.Errorf("stored message lacks Delivered-To: %s:\n%s", tc.rcpt, firstLines(raw, 3))
			}
		})
	}

	t.Run("invalid IDNA", func(t *testing.T) {
		for _, r := range []struct {
			role  role
			hello string
		}{{roleMX, "EHLO"}, {roleLMTP, "LHLO"}} {
			c := dialRaw(t, e.addr[r.role])
			c.expect(220, "")
			c.send(r.hello + " client.test\r\n")
			c.expect(250, "")
			c.send("MAIL FROM:<sender@remote.example> SMTPUTF8\r\n")
			c.expect(250, "")
			for _, rcpt := range []string{"info@xn--zz-.example", "info@b\u2028cher.example", "info@xn--a-ecp.example"} {
				c.send("RCPT TO:<" + rcpt + ">\r\n")
				if text := c.expect(553, "5.1.3 "); !strings.Contains(text, "internationalized domain name") {
					t.Errorf("%s: RCPT TO:<%s>: 553 %q, want it to name the IDNA problem", r.role, rcpt, text)
				}
			}
		}
	})
}
