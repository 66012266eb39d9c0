package bench

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"pushmail/mailstore"
	"pushmail/smtpd"
)

// TestRawSMTP runs the pipelining client against smtpd: a delivery, a
// refused recipient (an *smtp.SMTPError, and the connection still
// usable), a message whose lines start with dots, and one without a
// final CRLF.
func TestRawSMTP(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	store, err := mailstore.Open(ctx, filepath.Join(t.TempDir(), "mail.db"), mailstore.Options{
		Logger: logger, PasswordCost: bcrypt.MinCost,
	})
	if err != nil {
		t.Fatalf("mailstore.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("store.Close: %v", err)
		}
	})
	const user = "raw@example.org"
	if _, err := store.AddUser(ctx, user, "secret"); err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	inbox, err := store.Resolve(ctx, user)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	srv := smtpd.New(store, smtpd.Options{Hostname: "mx.test", Logger: logger})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- srv.ServeSMTP(ln) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("smtpd Shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("ServeSMTP: %v", err)
		}
	})

	c, err := dialRawSMTP(ctx, ln.Addr().String(), 10*time.Second)
	if err != nil {
		t.Fatalf("dialRawSMTP: %v", err)
	}
	defer c.close()
	if !c.size {
		t.Error("SIZE not seen in the EHLO reply")
	}

	msgs := []string{
		"Subject: one\r\n\r\nhello\r\n",
		"Subject: dots\r\n\r\n.leading dot\r\n..two\r\n.\r\nend\r\n",
		"Subject: no final CRLF\r\n\r\nlast line",
	}
	if err := c.transaction("sender@remote.example", user, []byte(msgs[0])); err != nil {
		t.Fatalf("transaction: %v", err)
	}
	err = c.transaction("sender@remote.example", "nobody@example.org", []byte(msgs[0]))
	var se *smtp.SMTPError
	if !errors.As(err, &se) || se.Code != 550 {
		t.Fatalf("transaction to an unknown user = %v, want a 550 *smtp.SMTPError", err)
	}
	if err := c.reset(); err != nil {
		t.Fatalf("reset: %v", err)
	}
	for _, m := range msgs[1:] {
		if err := c.transaction("sender@remote.example", user, []byte(m)); err != nil {
			t.Fatalf("transaction: %v", err)
		}
	}

	var got []mailstore.Message
	err = store.Messages(ctx, inbox.Mailbox, mailstore.AllUIDs(), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
		c := *m
		c.Raw = bytes.Clone(m.Raw) // m.Raw is reused after fn returns
		got = append(got, c)
		return nil
	})
	if err != nil {
		t.Fatalf("Messages: %v", err)
	}
	want := []string{msgs[0], msgs[1], msgs[2] + "\r\n"}
	if len(got) != len(want) {
		t.Fatalf("%d messages stored, want %d", len(got), len(want))
	}
	for i, m := range got {
		// The stored copy starts with the trace fields smtpd adds.
		_, body, ok := strings.Cut(string(m.Raw), "\r\nSubject: ")
		if !ok || "Subject: "+body != want[i] {
			t.Errorf("message %d stored as %q, want it to end in %q", i+1, m.Raw, want[i])
		}
	}
}

// TestRawSMTPNeedsPipelining checks that the pipelining client refuses a
// server that does not offer PIPELINING (RFC 2920 §3.1).
func TestRawSMTPNeedsPipelining(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		nc.SetDeadline(time.Now().Add(10 * time.Second))
		io.WriteString(nc, "220 old.test ESMTP\r\n")
		if _, err := bufio.NewReader(nc).ReadString('\n'); err != nil {
			return
		}
		io.WriteString(nc, "250-old.test\r\n250-SIZE 1000\r\n250 8BITMIME\r\n")
		io.Copy(io.Discard, nc) // until the client closes
	}()
	c, err := dialRawSMTP(context.Background(), ln.Addr().String(), 10*time.Second)
	if err == nil {
		c.close()
		t.Fatal("dialRawSMTP succeeded without PIPELINING")
	}
	if !strings.Contains(err.Error(), "PIPELINING") {
		t.Errorf("dialRawSMTP error %q does not name PIPELINING", err)
	}
	<-done
}

func TestAppendDotStuffed(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, msg, want string
	}{
		{"empty", "", ".\r\n"},
		{"plain", "a\r\nb\r\n", "a\r\nb\r\n.\r\n"},
		{"leading dot", ".a\r\n", "..a\r\n.\r\n"},
		{"dot lines", "a\r\n.\r\n..b\r\n", "a\r\n..\r\n...b\r\n.\r\n"},
		{"no final CRLF", "a\r\n.b", "a\r\n..b\r\n.\r\n"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := string(appendDotStuffed(nil, []byte(tc.msg))); got != tc.want {
				t.Errorf("appendDotStuffed(%q) = %q, want %q", tc.msg, got, tc.want)
			}
		})
	}
}
