package smtpd

import (
	"encoding/base64"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"

	"pushmail/internal/authlimit"
)

func TestSubmissionRequiresAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	c := e.dial(roleSubmission)
	// RFC 4954 §6: 530 5.7.0 before AUTH.
	wantReply(t, "MAIL before AUTH", c.Mail("alice@example.org", nil), 530, "5.7.0")
}

// TestSubmissionStartTLS authenticates after STARTTLS from a client that
// counts as remote, and sends to a local user; a remote recipient is
// refused since nothing is relayed out.
func TestSubmissionStartTLS(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{remote: true})
	if ok, _ := e.dial(roleSubmission).Extension("AUTH"); ok {
		t.Errorf("AUTH advertised before STARTTLS to a remote client")
	}
	c := e.dialStartTLS(roleSubmission)
	if ok, mechs := c.Extension("AUTH"); !ok || mechs != "PLAIN LOGIN" {
		t.Errorf("AUTH after STARTTLS = %v %q, want PLAIN LOGIN", ok, mechs)
	}
	if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-password")); err != nil {
		t.Fatalf("AUTH PLAIN: %v", err)
	}
	if err := c.Mail("alice@example.org", nil); err != nil {
		t.Fatalf("MAIL: %v", err)
	}
	wantReply(t, "RCPT local", c.Rcpt("bob@example.org", nil), 0, "")
	se := wantReply(t, "RCPT remote", c.Rcpt("friend@elsewhere.example", nil), 550, "5.7.1")
	if !strings.Contains(se.Message, "Outbound relaying is not supported") {
		t.Errorf("550 text %q does not say that outbound relaying is not supported", se.Message)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	msg := testMessage("submitted", 3)
	if _, err := w.Write(msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("DATA = %v, want 250", err)
	}
	received, rest := cutTrace(t, e.only("bob@example.org"), "alice@example.org", "bob@example.org")
	if string(rest) != string(msg) {
		t.Errorf("stored %q, want %q", rest, msg)
	}
	if !strings.Contains(received, " with ESMTPSA (TLS") {
		t.Errorf("Received %q, want with ESMTPSA and the TLS version", received)
	}
}

// TestSubmissionInsecureAuth: a remote client without TLS is not offered
// AUTH and is refused if it tries, unless the operator allows it.
func TestSubmissionInsecureAuth(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		allow bool
		code  int
		enh   string
	}{
		{"refused", false, 538, "5.7.11"},
		{"allowed by AllowInsecureAuth", true, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envConfig{remote: true, opts: Options{AllowInsecureAuth: tc.allow}})
			c := e.dial(roleSubmission)
			if ok, _ := c.Extension("AUTH"); ok != tc.allow {
				t.Errorf("AUTH advertised = %v, want %v", ok, tc.allow)
			}
			err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-password"))
			wantReply(t, "AUTH PLAIN without TLS", err, tc.code, tc.enh)
		})
	}
}

// TestSubmissionAuth covers the mechanisms, bad credentials and the
// sender check, on loopback, where no TLS is needed.
func TestSubmissionAuth(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{})
	t.Run("LOGIN and an alias as sender", func(t *testing.T) {
		c := e.dial(roleSubmission)
		if err := c.Auth(sasl.NewLoginClient("carol@example.org", "carol-password")); err != nil {
			t.Fatalf("AUTH LOGIN: %v", err)
		}
		msg := testMessage("from-alias", 2)
		if err := send(t, c, "info@example.org", []string{"dave@example.org"}, msg); err != nil {
			t.Fatalf("DATA = %v, want 250", err)
		}
		_, rest := cutTrace(t, e.only("dave@example.org"), "info@example.org", "dave@example.org")
		if string(rest) != string(msg) {
			t.Errorf("stored %q, want %q", rest, msg)
		}
	})
	t.Run("LOGIN without initial response", func(t *testing.T) {
		c := dialRaw(t, e.addr[roleSubmission])
		c.expect(220, "")
		c.send("EHLO client.test\r\n")
		c.expect(250, "")
		b64 := base64.StdEncoding.EncodeToString
		c.send("AUTH LOGIN\r\n")
		if got := c.expect(334, ""); got != b64([]byte("Username:")) {
			t.Errorf("first challenge %q, want Username:", got)
		}
		c.send(b64([]byte("bob@example.org")) + "\r\n")
		c.expect(334, b64([]byte("Password:")))
		c.send(b64([]byte("bob-password")) + "\r\n")
		c.expect(235, "2.0.0")
	})
	t.Run("bad credentials", func(t *testing.T) {
		c := e.dial(roleSubmission)
		err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "wrong"))
		wantReply(t, "AUTH with a wrong password", err, 535, "5.7.8")
		c = e.dial(roleSubmission)
		err = c.Auth(sasl.NewPlainClient("", "nobody@example.org", "x"))
		wantReply(t, "AUTH as an unknown user", err, 535, "5.7.8")
		c = e.dial(roleSubmission)
		err = c.Auth(sasl.NewPlainClient("bob@example.org", "alice@example.org", "alice-password"))
		wantReply(t, "AUTH for another identity", err, 535, "5.7.8")
		c = e.dial(roleSubmission)
		if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-password")); err != nil {
			t.Fatalf("AUTH after failures: %v", err)
		}
	})
	t.Run("malformed PLAIN", func(t *testing.T) {
		c := dialRaw(t, e.addr[roleSubmission])
		c.expect(220, "")
		c.send("EHLO client.test\r\n")
		c.expect(250, "")
		c.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("no-separators")) + "\r\n")
		c.expect(501, "5.5.2")
	})
	t.Run("sender not owned", func(t *testing.T) {
		c := e.dial(roleSubmission)
		if err := c.Auth(sasl.NewPlainClient("", "alice@example.org", "alice-password")); err != nil {
			t.Fatalf("AUTH: %v", err)
		}
		for _, from := range []string{"bob@example.org", "info@example.org", "alice@elsewhere.example"} {
			wantReply(t, "MAIL FROM:<"+from+">", c.Mail(from, nil), 553, "5.7.1")
		}
		for _, from := range []string{"Alice@example.org", "alice+sent@example.org", ""} {
			wantReply(t, "MAIL FROM:<"+from+">", c.Mail(from, nil), 0, "")
			if err := c.Reset(); err != nil {
				t.Fatalf("RSET: %v", err)
			}
		}
	})
}

// TestSubmissionAuthLimit: after the per-IP limit of failures, even the
// right password is refused for a while. The per-account limit and the
// TLS versions are in limits_test.go.
func TestSubmissionAuthLimit(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envConfig{opts: Options{AuthLimiter: authlimit.New(authlimit.Config{PerIP: 3, Delay: time.Millisecond / 8})}})
	for i, user := range []string{"alice@example.org", "bob@example.org", "nobody@example.org"} {
		c := e.dial(roleSubmission)
		err := c.Auth(sasl.NewPlainClient("", user, "wrong"))
		wantReply(t, "failed AUTH "+string(rune('1'+i)), err, 535, "5.7.8")
	}
	c := e.dial(roleSubmission)
	err := c.Auth(sasl.NewPlainClient("", "carol@example.org", "carol-password"))
	wantReply(t, "AUTH after too many failures from the address", err, 454, "4.7.0")
}
