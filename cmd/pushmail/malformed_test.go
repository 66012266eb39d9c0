package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"pushmail/imapd"
	"pushmail/mailstore"
	"pushmail/smtpd"
)

// malformedDir is the malformed-mail corpus, shared with message's
// FuzzParse. Its README says what each file is.
const malformedDir = "../../testdata/malformed"

const (
	malformedUser   = "alice@example.org"
	malformedSender = "sender@remote.example"
)

// What SMTP does to a message on the way, as TestMalformedMail checks it
// byte for byte (RFC 5321 §4.5.2 dot-stuffing is undone on both paths):
//
//   - go-smtp's client (net/textproto's DotWriter) turns every bare LF into
//     CRLF, a CR CR LF into CR CR CR LF, adds a CRLF to a last line without
//     one, and sends an empty message as one empty line (CRLF). Bare CRs,
//     NUL and 8-bit bytes pass untouched.
//   - smtpd stores what it receives after dot-unstuffing, byte for byte:
//     bare LF, bare CR, NUL and 8-bit bytes stay. The CRLF before the
//     terminating "." belongs to the message (RFC 5321 §4.1.1.4), so a
//     message sent raw must end in CRLF or gets one; an empty message
//     ("DATA", ".") is stored empty.
//   - A line over the server's limit (2000 bytes by default, RFC 5321
//     §4.5.3.1.6 asks for 1000) is refused with a 500 reply and the
//     connection is closed; nothing is stored. IMAP APPEND has no line
//     limit and stores such a message byte for byte.
//   - go-smtp's server starts a new line only after CR LF, so "\n." is
//     not the end of the data and "\n.." is not unstuffed: a bare LF
//     cannot smuggle an end of data. Known flaw of go-smtp v0.25.1 (not
//     worked around here): after CR CR LF it does not see the start of a
//     line either, so a "." line right after one is neither unstuffed nor
//     taken as the end of the data. The corpus avoids that sequence before
//     a dot; TestSMTPCRCRLFDot pins the behaviour.

// TestMalformedMail delivers every message of the malformed corpus over
// SMTP, with go-smtp's client and raw (exact bytes, dot-stuffed by hand),
// and appends it over IMAP; then fetches each back over IMAP. BODY[] must
// be what the transport delivered, byte for byte, after the trace fields
// smtpd prepends; ENVELOPE and BODYSTRUCTURE must be answered.
func TestMalformedMail(t *testing.T) {
	env := newMailEnv(t)
	names, err := filepath.Glob(filepath.Join(malformedDir, "*.eml"))
	if err != nil || len(names) < 12 {
		t.Fatalf("malformed corpus: %d files, %v; want at least 12", len(names), err)
	}
	for _, name := range names {
		raw, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		t.Run(filepath.Base(name), func(t *testing.T) {
			t.Run("go-smtp", func(t *testing.T) {
				uid, rcpt := env.sendClient(t, raw)
				env.checkFetch(t, uid, rcpt, viaClient(raw))
			})
			t.Run("raw-smtp", func(t *testing.T) {
				uid, rcpt := env.sendRaw(t, raw)
				want := raw
				if len(raw) > 0 && !bytes.HasSuffix(raw, []byte("\r\n")) {
					want = append(bytes.Clone(raw), "\r\n"...)
				}
				env.checkFetch(t, uid, rcpt, want)
			})
			t.Run("imap-append", func(t *testing.T) {
				if len(raw) == 0 {
					if _, err := env.append(t, raw); err == nil {
						t.Errorf("APPEND of an empty message succeeded, want NO")
					}
					return
				}
				uid, err := env.append(t, raw)
				if err != nil {
					t.Fatalf("APPEND: %v", err)
				}
				env.checkFetch(t, uid, "", raw)
			})
		})
	}

	// A 1 MB header line, generated rather than committed: SMTP refuses it
	// and stores nothing; IMAP APPEND stores it byte for byte.
	t.Run("huge-header-line", func(t *testing.T) {
		raw := []byte("From: huge@remote.example\r\nTo: " + malformedUser + "\r\nSubject: 1 MB header line\r\nX-Huge: " +
			strings.Repeat("h", 1<<20) + "\r\n\r\nbody\r\n")
		before := env.uids(t)
		err := env.trySendClient(t, raw)
		var se *smtp.SMTPError
		if err == nil || errors.As(err, &se) && se.Code/100 != 5 {
			t.Errorf("DATA with a 1 MB line = %v, want a 5xx reply or a closed connection", err)
		}
		if after := env.uids(t); len(after) != len(before) {
			t.Fatalf("INBOX has %d messages after the refused DATA, had %d", len(after), len(before))
		}
		// The server still serves.
		uid, rcpt := env.sendClient(t, []byte("Subject: after the huge line\r\n\r\nok\r\n"))
		env.checkFetch(t, uid, rcpt, []byte("Subject: after the huge line\r\n\r\nok\r\n"))
		uid, err = env.append(t, raw)
		if err != nil {
			t.Fatalf("APPEND of a 1 MB header line: %v", err)
		}
		env.checkFetch(t, uid, "", raw)
	})
}

// TestSMTPCRCRLFDot pins a flaw of go-smtp v0.25.1's DATA reader: after
// CR CR LF it does not see the start of a line, so the "." that follows is
// not unstuffed, and a lone "." line is not the end of the data (RFC 5321
// §4.5.2 would say both). The message goes on to the next CRLF "." CRLF.
// When this test fails, go-smtp has been fixed: update it and the note on
// TestMalformedMail.
func TestSMTPCRCRLFDot(t *testing.T) {
	env := newMailEnv(t)
	c := env.dialRaw(t)
	c.cmd(t, 250, "MAIL FROM:<%s>", malformedSender)
	c.cmd(t, 250, "RCPT TO:<%s>", malformedUser)
	c.cmd(t, 354, "DATA")
	c.write(t, "Subject: cr cr lf\r\n\r\nline\r\r\n..stuffed\r\nlast\r\r\n.\r\n")
	c.write(t, "\r\n.\r\n") // go-smtp ends the data only here
	c.reply(t, 250)
	got := env.storedBody(t, env.uids(t)[0])
	want := "Subject: cr cr lf\r\n\r\nline\r\r\n..stuffed\r\nlast\r\r\n.\r\n\r\n"
	if !bytes.HasSuffix(got, []byte(want)) {
		t.Errorf("stored %q, want it to end %q (go-smtp's reading of CR CR LF)", got, want)
	}
}

// TestGoSMTPClientTransforms spells out what viaClient models, the
// changes go-smtp's client makes to a message (see the note above).
func TestGoSMTPClientTransforms(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"bare LF", "a\nb\n", "a\r\nb\r\n"},
		{"CR CR LF", "a\r\r\nb\r\n", "a\r\r\r\nb\r\n"},
		{"bare CR", "a\rb\r\n", "a\rb\r\n"},
		{"no final line end", "a\r\nb", "a\r\nb\r\n"},
		{"empty", "", "\r\n"},
		{"NUL and 8-bit", "\x00\xff\xfe\r\n", "\x00\xff\xfe\r\n"},
		{"dots", ".\r\n..\r\n.x\n.\n", ".\r\n..\r\n.x\r\n.\r\n"},
	}
	for _, tt := range tests {
		if got := viaClient([]byte(tt.in)); string(got) != tt.want {
			t.Errorf("%s: viaClient(%q) = %q, want %q", tt.name, tt.in, got, tt.want)
		}
	}
}

// viaClient returns what smtpd receives when go-smtp's client sends raw:
// net/textproto's dot-encoding, then the server's dot-unstuffing.
func viaClient(raw []byte) []byte {
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := textproto.NewWriter(bw).DotWriter()
	if _, err := w.Write(raw); err != nil {
		panic(err) // writes to a bytes.Buffer do not fail
	}
	if err := w.Close(); err != nil {
		panic(err)
	}
	return unstuff(buf.Bytes())
}

// unstuff undoes RFC 5321 §4.5.2 dot-stuffing of data that ends in
// CRLF "." CRLF and whose lines end in CRLF: a line starting with "." loses
// that dot.
func unstuff(data []byte) []byte {
	data = bytes.TrimSuffix(data, []byte(".\r\n"))
	var out []byte
	for len(data) > 0 {
		line, rest, found := bytes.Cut(data, []byte("\r\n"))
		if found {
			line = data[:len(line)+2]
		}
		out = append(out, bytes.TrimPrefix(line, []byte("."))...)
		data = rest
	}
	return out
}

// stuff dot-stuffs raw for DATA the way go-smtp's server reads it: a "."
// at the start of the data or right after CRLF is doubled, nothing else
// changes; then it adds the end of the data, after a CRLF if raw does not
// end in one.
func stuff(raw []byte) []byte {
	var out []byte
	start := true
	for i, c := range raw {
		if start && c == '.' {
			out = append(out, '.')
		}
		out = append(out, c)
		start = c == '\n' && i > 0 && raw[i-1] == '\r'
	}
	if len(raw) > 0 && !bytes.HasSuffix(raw, []byte("\r\n")) {
		out = append(out, "\r\n"...)
	}
	return append(out, ".\r\n"...)
}

// mailEnv is a store with one user, smtpd and imapd in this process on
// loopback ports, and an IMAP client that has INBOX selected.
type mailEnv struct {
	store    *mailstore.Store
	smtpAddr string
	imap     *imapclient.Client
	inbox    mailstore.MailboxID
	n        int // deliveries, for distinct +tags
}

func newMailEnv(t *testing.T) *mailEnv {
	t.Helper()
	ctx := context.Background()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if testing.Verbose() {
		logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
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
	if _, err := store.AddUser(ctx, malformedUser, "secret"); err != nil {
		t.Fatalf("AddUser: %v", err)
	}
	r, err := store.Resolve(ctx, malformedUser)
	if err != nil {
		t.Fatalf("Resolve: %v", err)
	}
	env := &mailEnv{store: store, inbox: r.Mailbox}

	var imapAddr string
	env.smtpAddr, imapAddr = serveMail(t, store, logger)

	c, err := imapclient.DialInsecure(imapAddr, nil)
	if err != nil {
		t.Fatalf("IMAP dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(malformedUser, "secret").Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	env.imap = c
	return env
}

// rcpt returns a new recipient address: the user with a distinct +tag,
// which its copy's Delivered-To field carries.
func (env *mailEnv) rcpt() string {
	env.n++
	return fmt.Sprintf("alice+m%d@example.org", env.n)
}

// uids returns the UIDs in INBOX.
func (env *mailEnv) uids(t *testing.T) []mailstore.UID {
	t.Helper()
	uids, err := env.store.UIDs(context.Background(), env.inbox)
	if err != nil {
		t.Fatalf("UIDs: %v", err)
	}
	return uids
}

// newUID returns the one UID that is in INBOX now and was not in before.
func (env *mailEnv) newUID(t *testing.T, before []mailstore.UID) mailstore.UID {
	t.Helper()
	after := env.uids(t)
	if len(after) != len(before)+1 {
		t.Fatalf("INBOX has %d messages after one delivery, had %d", len(after), len(before))
	}
	return after[len(after)-1]
}

// trySendClient sends raw with go-smtp's client and returns the error of
// the transaction.
func (env *mailEnv) trySendClient(t *testing.T, raw []byte) error {
	t.Helper()
	c, err := smtp.Dial(env.smtpAddr)
	if err != nil {
		t.Fatalf("SMTP dial: %v", err)
	}
	defer c.Close()
	c.CommandTimeout = 10 * time.Second
	c.SubmissionTimeout = 10 * time.Second
	if err := c.Hello("client.test"); err != nil {
		t.Fatalf("EHLO: %v", err)
	}
	if err := c.Mail(malformedSender, nil); err != nil {
		t.Fatalf("MAIL FROM: %v", err)
	}
	if err := c.Rcpt(env.rcpt(), nil); err != nil {
		t.Fatalf("RCPT TO: %v", err)
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	_, werr := w.Write(raw)
	cerr := w.Close()
	if werr != nil {
		return werr
	}
	return cerr
}

// sendClient delivers raw with go-smtp's client; it returns the new UID
// and the recipient address.
func (env *mailEnv) sendClient(t *testing.T, raw []byte) (mailstore.UID, string) {
	t.Helper()
	before := env.uids(t)
	if err := env.trySendClient(t, raw); err != nil {
		t.Fatalf("DATA with go-smtp's client = %v, want 250", err)
	}
	return env.newUID(t, before), fmt.Sprintf("alice+m%d@example.org", env.n)
}

// sendRaw delivers raw as is, dot-stuffed by stuff, over a hand-driven
// SMTP connection; it returns the new UID and the recipient address.
func (env *mailEnv) sendRaw(t *testing.T, raw []byte) (mailstore.UID, string) {
	t.Helper()
	before := env.uids(t)
	rcpt := env.rcpt()
	c := env.dialRaw(t)
	c.cmd(t, 250, "MAIL FROM:<%s>", malformedSender)
	c.cmd(t, 250, "RCPT TO:<%s>", rcpt)
	c.cmd(t, 354, "DATA")
	c.write(t, string(stuff(raw)))
	c.reply(t, 250)
	c.cmd(t, 221, "QUIT")
	return env.newUID(t, before), rcpt
}

// append stores raw in INBOX with IMAP APPEND and returns its UID.
func (env *mailEnv) append(t *testing.T, raw []byte) (mailstore.UID, error) {
	t.Helper()
	cmd := env.imap.Append("INBOX", int64(len(raw)), nil)
	if _, err := cmd.Write(raw); err != nil {
		return 0, err
	}
	if err := cmd.Close(); err != nil {
		return 0, err
	}
	data, err := cmd.Wait()
	if err != nil {
		return 0, err
	}
	return mailstore.UID(data.UID), nil
}

// storedBody returns the raw message the store holds under uid.
func (env *mailEnv) storedBody(t *testing.T, uid mailstore.UID) []byte {
	t.Helper()
	var raw []byte
	err := env.store.Messages(context.Background(), env.inbox, mailstore.UIDSetOf(uid), mailstore.FetchOptions{Body: true},
		func(m *mailstore.Message) error {
			raw = bytes.Clone(m.Raw)
			return nil
		})
	if err != nil || raw == nil {
		t.Fatalf("Messages(UID %d) = %v, found %v", uid, err, raw != nil)
	}
	return raw
}

// checkFetch fetches uid over IMAP with BODY.PEEK[], ENVELOPE,
// BODYSTRUCTURE and RFC822.SIZE. BODY[] must equal the store's copy; past
// the trace fields (if rcpt is set: the message came by SMTP) it must be
// want, byte for byte.
func (env *mailEnv) checkFetch(t *testing.T, uid mailstore.UID, rcpt string, want []byte) {
	t.Helper()
	// The session learns of messages delivered by SMTP at its next
	// command (RFC 9051 §7: EXISTS is sent then).
	if err := env.imap.Noop().Wait(); err != nil {
		t.Fatalf("NOOP: %v", err)
	}
	section := &imap.FetchItemBodySection{Peek: true}
	msgs, err := env.imap.Fetch(imap.UIDSetNum(imap.UID(uid)), &imap.FetchOptions{
		UID:           true,
		Envelope:      true,
		BodyStructure: &imap.FetchItemBodyStructure{Extended: true},
		RFC822Size:    true,
		BodySection:   []*imap.FetchItemBodySection{section},
	}).Collect()
	if err != nil {
		t.Fatalf("UID FETCH %d (BODY.PEEK[] ENVELOPE BODYSTRUCTURE RFC822.SIZE) = %v", uid, err)
	}
	if len(msgs) != 1 {
		t.Fatalf("UID FETCH %d returned %d messages, want 1", uid, len(msgs))
	}
	m := msgs[0]
	if m.Envelope == nil {
		t.Errorf("UID FETCH %d: no ENVELOPE", uid)
	}
	if m.BodyStructure == nil {
		t.Errorf("UID FETCH %d: no BODYSTRUCTURE", uid)
	}
	// BODY[] is a literal, which cannot carry NUL (RFC 9051 §4.3): imapd
	// sends each NUL as 0x80 (imapd/fetch.go noNUL); BINARY[] sends the
	// bytes as stored. Everything else is byte for byte.
	body := m.FindBodySection(section)
	if rcpt == "" {
		// APPEND: the store holds the bytes sent, NUL and all.
		if stored := env.storedBody(t, uid); !bytes.Equal(stored, want) {
			t.Errorf("APPENDed UID %d: the store holds %q, want %q", uid, abbrevBytes(stored), abbrevBytes(want))
		}
	}
	want = nulAs80(want)
	if stored := nulAs80(env.storedBody(t, uid)); !bytes.Equal(body, stored) {
		t.Fatalf("BODY[] of UID %d differs from the stored message:\n got %q\nwant %q", uid, abbrevBytes(body), abbrevBytes(stored))
	}
	if m.RFC822Size != int64(len(body)) {
		t.Errorf("RFC822.SIZE = %d, BODY[] has %d bytes", m.RFC822Size, len(body))
	}
	rest := body
	if rcpt != "" {
		rest = cutTrace(t, body, rcpt)
	}
	if !bytes.Equal(rest, want) {
		i := 0
		for i < len(rest) && i < len(want) && rest[i] == want[i] {
			i++
		}
		t.Errorf("BODY[] after the trace fields differs from what was sent, from byte %d:\n got %q\nwant %q",
			i, abbrevBytes(rest[i:]), abbrevBytes(want[i:]))
	}
}

// cutTrace checks that body starts with smtpd's trace fields for rcpt
// (Return-Path, Delivered-To, a folded Received field) and returns the rest.
func cutTrace(t *testing.T, body []byte, rcpt string) []byte {
	t.Helper()
	head := "Return-Path: <" + malformedSender + ">\r\nDelivered-To: " + rcpt + "\r\nReceived: "
	rest, ok := bytes.CutPrefix(body, []byte(head))
	if !ok {
		t.Fatalf("message starts %q, want %q", abbrevBytes(body), head)
	}
	for {
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("unterminated Received field")
		}
		rest = rest[i+2:]
		if len(rest) == 0 || rest[0] != '\t' {
			return rest
		}
	}
}

func abbrevBytes(b []byte) []byte {
	if len(b) > 300 {
		return append(b[:300:300], "…"...)
	}
	return b
}

// smtpConn is a hand-driven SMTP connection.
type smtpConn struct {
	nc net.Conn
	tp *textproto.Conn
}

// dialRaw connects to smtpd and sends EHLO.
func (env *mailEnv) dialRaw(t *testing.T) *smtpConn {
	t.Helper()
	nc, err := net.Dial("tcp", env.smtpAddr)
	if err != nil {
		t.Fatalf("SMTP dial: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	if err := nc.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	c := &smtpConn{nc: nc, tp: textproto.NewConn(nc)}
	c.reply(t, 220)
	c.cmd(t, 250, "EHLO client.test")
	return c
}

func (c *smtpConn) write(t *testing.T, s string) {
	t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		t.Fatalf("write: %v", err)
	}
}

func (c *smtpConn) reply(t *testing.T, code int) string {
	t.Helper()
	_, msg, err := c.tp.ReadResponse(code)
	if err != nil {
		t.Fatalf("reply = %v, want %d", err, code)
	}
	return msg
}

func (c *smtpConn) cmd(t *testing.T, code int, format string, args ...any) string {
	t.Helper()
	if err := c.tp.PrintfLine(format, args...); err != nil {
		t.Fatalf("write: %v", err)
	}
	return c.reply(t, code)
}

// serveMail serves SMTP and IMAP over store on free loopback ports until
// the test ends, and returns their addresses.
func serveMail(t *testing.T, store *mailstore.Store, logger *slog.Logger) (smtpAddr, imapAddr string) {
	t.Helper()
	ctx := context.Background()
	smtpSrv := smtpd.New(store, smtpd.Options{Hostname: "mx.test", Logger: logger})
	imapSrv := imapd.New(store, imapd.Options{Logger: logger})
	smtpLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	imapLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 2)
	go func() { served <- smtpSrv.ServeSMTP(smtpLn) }()
	go func() { served <- imapSrv.Serve(imapLn) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := smtpSrv.Shutdown(sctx); err != nil {
			t.Errorf("smtpd Shutdown: %v", err)
		}
		if err := imapSrv.Shutdown(sctx); err != nil {
			t.Errorf("imapd Shutdown: %v", err)
		}
		for range 2 {
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
		}
	})
	return smtpLn.Addr().String(), imapLn.Addr().String()
}

// nulAs80 is b with every NUL as 0x80, as IMAP's BODY[] shows it.
func nulAs80(b []byte) []byte {
	return bytes.ReplaceAll(b, []byte{0}, []byte{0x80})
}
