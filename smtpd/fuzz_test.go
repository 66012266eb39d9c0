package smtpd

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"net/textproto"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
)

// fuzzDeadline bounds one fuzz input's whole conversation: longer means
// the server hung (it gets EOF after the input, so it has nothing to wait
// for).
const fuzzDeadline = 10 * time.Second

// FuzzSMTPSession feeds arbitrary client bytes to a real Server on a
// loopback connection, for the role chosen by the first argument (0 MX,
// 1 LMTP, 2 submission), then closes the client's side. It asserts:
//   - no panic (go-smtp would recover it into "421 4.0.0" and a log line;
//     both fail the input) and no Error-level log;
//   - no hang: the server closes the connection before fuzzDeadline;
//   - every reply line is an RFC 5321 §4.2 reply, "ddd" then SP or "-";
//   - never an open relay: every stored copy carries a Delivered-To of an
//     address that resolves to the very mailbox it is stored in, so no
//     message for a non-local domain (or for someone else) ever lands;
//   - over SMTP and submission, the transactions answered 250 are exactly
//     those whose copies were stored (RFC 5321 §6.1);
//   - the server still greets a fresh connection afterwards.
//
// The store and server are opened once per fuzz process and shared by the
// inputs, as a t.TempDir per input would dominate the run time.
func FuzzSMTPSession(f *testing.F) {
	for _, s := range smtpSeeds {
		f.Add(uint8(s.role), []byte(s.script))
	}
	fz := newFuzzSMTP(f)
	f.Fuzz(func(t *testing.T, r uint8, script []byte) {
		fz.run(t, role(r%3), script)
	})
}

// plainAuth is an AUTH PLAIN response (RFC 4616) for user and password.
func plainAuth(user, password string) string {
	return base64.StdEncoding.EncodeToString([]byte("\x00" + user + "\x00" + password))
}

// smtpSeeds are real client transcripts, some correct, some not.
var smtpSeeds = []struct {
	role   role
	script string
}{
	{roleMX, "EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n" +
		"From: sender@remote.example\r\nSubject: seed\r\n\r\n..stuffed dot\r\n.\r\nQUIT\r\n"},
	{roleMX, "HELO client.test\r\nMAIL FROM:<>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<info@example.org>\r\n" +
		"RCPT TO:<alice+tag@EXAMPLE.org>\r\nDATA\r\nSubject: null sender\r\n\r\nbody\r\n.\r\nRSET\r\nNOOP\r\nQUIT\r\n"},
	// Relay attempts and odd recipients: all must be refused or land locally.
	{roleMX, "EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<victim@remote.example>\r\n" +
		"RCPT TO:<@example.org:victim@remote.example>\r\nRCPT TO:<victim%remote.example@example.org>\r\n" +
		"RCPT TO:<victim@remote.example@example.org>\r\nRCPT TO:<\"victim@remote.example\"@example.org>\r\n" +
		"RCPT TO:<alice@[127.0.0.1]>\r\nRCPT TO:<nobody@example.org>\r\nRCPT TO:alice@example.org\r\n" +
		"RCPT TO:<>\r\nRCPT TO:<postmaster>\r\nRCPT TO:<alice@example.org.>\r\nRCPT TO:<a!b@example.org>\r\n" +
		"DATA\r\nSubject: relay?\r\n\r\nx\r\n.\r\n"},
	{roleMX, "EHLO client.test\r\nMAIL FROM:<sender@remote.example> SIZE=100 BODY=8BITMIME SMTPUTF8 AUTH=<>\r\n" +
		"RCPT TO:<jörg@example.org>\r\nDATA\r\nSubject: ü\r\n\r\nü\r\n.\r\n" +
		"MAIL FROM:<a@b> SIZE=999999999999\r\nMAIL FROM:<a@b> REQUIRETLS\r\nMAIL FROM:<a@b> BOGUS=1\r\n" +
		"MAIL FROM:<jörg@example.org>\r\nMAIL FROM:<a\x01b@c>\r\nMAIL FROM:<a@b> RET=HDRS ENVID=x\r\n" +
		"MAIL FROM:<a@b> BODY=BINARYMIME\r\nRSET\r\nMAIL FROM:<a@b> SIZE=x\r\nMAIL FROM:<a@b> SMTPUTF8=yes\r\n" +
		"RSET\r\nMAIL FROM:<a@b>\r\nRCPT TO:<alice@example.org> NOTIFY=NEVER ORCPT=rfc822;alice@example.org\r\n"},
	{roleMX, "EHLO client.test\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<carol@example.org>\r\nBDAT 12\r\nSubject: b\r\n\r\nBDAT 6 LAST\r\nchunk\n" +
		"MAIL FROM:<s@remote.example>\r\nRCPT TO:<carol@example.org>\r\nBDAT 0 LAST\r\nBDAT -1\r\nBDAT x LAST\r\nBDAT 5 MORE\r\n"},
	{roleMX, "EHLO client.test\r\nSTARTTLS\r\n\x16\x03\x01\x00\x05hello"},
	{roleMX, "EHLO client.test\r\nVRFY alice\r\nEXPN list\r\nHELP\r\nDATA\r\nRCPT TO:<alice@example.org>\r\nAUTH PLAIN\r\n" +
		"MAIL FROM:<s@remote.example>\r\nMAIL FROM:<s@remote.example>\r\n\r\n \r\nLHLO x\r\n" + strings.Repeat("x", 2100) + "\r\n"},
	{roleMX, "\x00\xff\xfe garbage\r\nEHLO\r\nEHLO " + strings.Repeat("h", 300) + "\r\nMAIL FROM:<\r\nMAIL FROM:s@r\r\nQUIT extra\r\n"},
	// DATA that never ends, cut off by the client's EOF.
	{roleMX, "EHLO client.test\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\nSubject: cut\r\n\r\nno end"},
	// Bare LF and a lone dot after it: not the end of the data.
	{roleMX, "EHLO client.test\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<dave@example.org>\r\nDATA\r\nSubject: lf\n\n.\nstill data\r\n.\r\n"},
	{roleLMTP, "LHLO client.test\r\nMAIL FROM:<s@remote.example>\r\nRCPT TO:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\n" +
		"RCPT TO:<out@remote.example>\r\nRCPT TO:<nobody@example.org>\r\nDATA\r\nSubject: lmtp\r\n\r\nbody\r\n.\r\n" +
		"MAIL FROM:<s@remote.example>\r\nRCPT TO:<carol@example.org>\r\nBDAT 4 LAST\r\nx\r\n\r\nQUIT\r\n"},
	{roleLMTP, "EHLO client.test\r\nHELO client.test\r\nLHLO client.test\r\nMAIL FROM:<>\r\nDATA\r\n"},
	{roleSubmission, "EHLO client.test\r\nAUTH PLAIN " + plainAuth("alice@example.org", "alice-password") + "\r\n" +
		"MAIL FROM:<alice@example.org>\r\nRCPT TO:<bob@example.org>\r\nRCPT TO:<friend@remote.example>\r\n" +
		"DATA\r\nSubject: submitted\r\n\r\nhi\r\n.\r\nMAIL FROM:<bob@example.org>\r\nMAIL FROM:<alice+x@example.org>\r\nQUIT\r\n"},
	{roleSubmission, "EHLO client.test\r\nMAIL FROM:<alice@example.org>\r\nAUTH PLAIN " + plainAuth("alice@example.org", "wrong") + "\r\n" +
		"AUTH PLAIN\r\n" + plainAuth("bob@example.org", "bob-password") + "\r\nAUTH PLAIN =\r\nAUTH PLAIN *\r\n" +
		"AUTH PLAIN !!notbase64\r\nAUTH LOGIN\r\n" + base64.StdEncoding.EncodeToString([]byte("carol@example.org")) + "\r\n" +
		base64.StdEncoding.EncodeToString([]byte("carol-password")) + "\r\nAUTH CRAM-MD5\r\n*\r\n" +
		"AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("other\x00alice@example.org\x00alice-password")) + "\r\n"},
	{roleSubmission, "EHLO client.test\r\nAUTH LOGIN " + base64.StdEncoding.EncodeToString([]byte("dave@example.org")) + "\r\n" +
		base64.StdEncoding.EncodeToString([]byte("dave-password")) + "\r\nMAIL FROM:<dave@example.org>\r\nRCPT TO:<dave@example.org>\r\n" +
		"BDAT 8 LAST\r\nSubject:\r\nAUTH PLAIN " + plainAuth("dave@example.org", "dave-password") + "\r\nSTARTTLS\r\n"},
}

// fuzzSMTP is the server and store shared by one fuzz process's inputs.
type fuzzSMTP struct {
	store *mailstore.Store
	addr  [3]string // by role
	logs  *fuzzLog

	// checked is the highest UID already checked, per mailbox; only the
	// fuzz goroutine touches it.
	checked map[mailstore.MailboxID]mailstore.UID
}

func newFuzzSMTP(f *testing.F) *fuzzSMTP {
	f.Helper()
	ctx := context.Background()
	logs := &fuzzLog{}
	logger := slog.New(logs)
	store, err := mailstore.Open(ctx, filepath.Join(f.TempDir(), "mail.db"), mailstore.Options{
		Logger: logger, Domains: []string{"example.org"}, PasswordCost: bcrypt.MinCost,
	})
	if err != nil {
		f.Fatalf("mailstore.Open: %v", err)
	}
	for _, u := range testUsers {
		if _, err := store.AddUser(ctx, u.addr, u.password); err != nil {
			f.Fatalf("AddUser(%s): %v", u.addr, err)
		}
	}
	for _, a := range testAliases {
		if err := store.AddAlias(ctx, a[0], a[1]); err != nil {
			f.Fatalf("AddAlias(%s): %v", a[0], err)
		}
	}
	cert, _ := testCertificate(f)
	srv := New(store, Options{
		Hostname:  testHostname,
		Logger:    logger,
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		// Inputs run one after another, but the server may still be
		// closing the last connection when the next one arrives.
		MaxConnsPerIP: 1000,
		// Failed logins cost microseconds and are never refused: refusals
		// are tested elsewhere, and here they would hide the rest of
		// the input.
		AuthLimiter: authlimit.New(authlimit.Config{PerIP: 1 << 30, PerAccount: 1 << 30, Delay: time.Microsecond}),
	})
	fz := &fuzzSMTP{store: store, logs: logs, checked: make(map[mailstore.MailboxID]mailstore.UID)}
	errc := make(chan error, 3)
	for r, serve := range []func(net.Listener) error{srv.ServeSMTP, srv.ServeLMTP, srv.ServeSubmission} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			f.Fatalf("listen: %v", err)
		}
		fz.addr[r] = ln.Addr().String()
		go func() { errc <- serve(ln) }()
	}
	f.Cleanup(func() {
		sctx, cancel := context.WithTimeout(ctx, fuzzDeadline)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			f.Errorf("Shutdown = %v", err)
		}
		for range 3 {
			if err := <-errc; err != nil {
				f.Errorf("Serve = %v, want nil after Shutdown", err)
			}
		}
		if err := store.Close(); err != nil {
			f.Errorf("store.Close: %v", err)
		}
		if bad := logs.take(); len(bad) > 0 {
			f.Errorf("server logged errors: %q", bad)
		}
	})
	return fz
}

// replyLineRE is an RFC 5321 §4.2 reply line: a three-digit code whose
// first digit is 2 to 5, then SP or "-" and text, or nothing.
var replyLineRE = regexp.MustCompile(`^[2-5][0-9][0-9]([ -]|$)`)

func (fz *fuzzSMTP) run(t *testing.T, r role, script []byte) {
	out, readErr := converse(t, fz.addr[r], script)
	queued, complete := fz.checkReplies(t, r, script, out, readErr)
	if bad := fz.logs.take(); len(bad) > 0 {
		t.Fatalf("%s: server logged errors for input %s: %q", r, abbrev(script), bad)
	}
	txns := fz.checkStore(t)
	// RFC 5321 §6.1: 250 only once the message is stored, and a stored
	// message was answered 250. (LMTP answers per recipient.)
	if r != roleLMTP && complete && txns != queued {
		t.Fatalf("%s: input %s: %d transactions answered 250 to DATA or BDAT LAST, %d stored; replies:\n%s",
			r, abbrev(script), queued, txns, abbrev(out))
	}
	fz.checkAlive(t, r)
}

// converse writes script on a new connection to addr, closes the write
// side, and returns everything the server sent until it closed the
// connection. readErr is nil for a clean close, else the error that ended
// the read (a reset, after the server closed on unread input).
func converse(t *testing.T, addr string, script []byte) (out []byte, readErr error) {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(fuzzDeadline)); err != nil {
		t.Fatal(err)
	}
	wrote := make(chan struct{})
	go func() {
		defer close(wrote)
		// Write errors are expected: the server may close first (after a
		// too long line, a 421, or STARTTLS garbage).
		if _, err := nc.Write(script); err == nil {
			_ = nc.(*net.TCPConn).CloseWrite() // an error here means the server is gone; the read sees it
		}
	}()
	out, readErr = io.ReadAll(nc)
	var ne net.Error
	if errors.As(readErr, &ne) && ne.Timeout() {
		t.Fatalf("server still holds the connection after %v (hang) on input %s; it sent %s", fuzzDeadline, abbrev(script), abbrev(out))
	}
	<-wrote
	return out, readErr
}

// checkReplies checks that out is a sequence of reply lines that starts
// with the greeting, and counts the 250 replies that end a transaction.
// After a 220 that starts TLS, the rest is TLS records and is not read.
// complete is false if some replies may be missing: cut off by a reset,
// or sent over TLS.
func (fz *fuzzSMTP) checkReplies(t *testing.T, r role, script, out []byte, readErr error) (queued int, complete bool) {
	t.Helper()
	if len(out) == 0 {
		if readErr == nil {
			t.Fatalf("%s: server closed without a greeting", r)
		}
		return 0, false // reset before anything arrived
	}
	lines := strings.SplitAfter(string(out), "\r\n")
	if last := lines[len(lines)-1]; last == "" {
		lines = lines[:len(lines)-1]
	} else if readErr == nil {
		t.Fatalf("%s: input %s: reply %q does not end in CRLF", r, abbrev(script), last)
	} else {
		lines = lines[:len(lines)-1] // cut off by a reset
	}
	for i, line := range lines {
		line = strings.TrimSuffix(line, "\r\n")
		// A bare CR may be in the text: go-smtp echoes the client's own
		// unrecognised command and EHLO argument back to it as sent.
		if !replyLineRE.MatchString(line) || strings.Contains(line, "\n") {
			t.Fatalf("%s: input %s: reply line %d %q is not an SMTP reply; all:\n%s", r, abbrev(script), i, line, abbrev(out))
		}
		if i == 0 && !strings.HasPrefix(line, "220 ") {
			t.Fatalf("%s: greeting %q, want 220", r, line)
		}
		if strings.HasPrefix(line, "421 4.0.0") {
			t.Fatalf("%s: input %s: %q: a panic was recovered", r, abbrev(script), line)
		}
		if i > 0 && strings.HasPrefix(line, "220 ") {
			return queued, false // STARTTLS: TLS records follow
		}
		if strings.HasPrefix(line, "250 2.0.0 Delivered (id ") { // replyDelivered, for DATA and BDAT LAST
			queued++
		}
	}
	return queued, readErr == nil
}

// receivedIDRE finds the transaction id in smtpd's Received field.
var receivedIDRE = regexp.MustCompile(`\(pushmail\) with [^\r]* id ([a-z2-7]+\.[0-9]+)[;\r]`)

// checkStore checks every message stored since the last input: its
// Delivered-To address must resolve to the mailbox that holds it. It
// returns the number of transactions the new messages came from.
func (fz *fuzzSMTP) checkStore(t *testing.T) int {
	t.Helper()
	ctx := context.Background()
	var total int64
	txns := make(map[string]bool)
	for _, u := range testUsers {
		user, err := fz.store.User(ctx, u.addr)
		if err != nil {
			t.Fatalf("User(%s): %v", u.addr, err)
		}
		mbs, err := fz.store.Mailboxes(ctx, user.ID)
		if err != nil {
			t.Fatalf("Mailboxes(%s): %v", u.addr, err)
		}
		for _, mb := range mbs {
			st, err := fz.store.Status(ctx, mb.ID)
			if err != nil {
				t.Fatalf("Status(%s %s): %v", u.addr, mb.Name, err)
			}
			total += int64(st.Messages)
			from := fz.checked[mb.ID] + 1
			var check []mailstore.Message
			err = fz.store.Messages(ctx, mb.ID, mailstore.UIDSet{{Start: from, Stop: math.MaxUint32}},
				mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
					c := *m
					c.Raw = []byte(firstLines(m.Raw, 6))
					check = append(check, c)
					return nil
				})
			if err != nil {
				t.Fatalf("Messages(%s %s): %v", u.addr, mb.Name, err)
			}
			for _, m := range check {
				rcpt, ok := deliveredTo(m.Raw)
				if !ok {
					t.Fatalf("%s %s UID %d starts %q: no Delivered-To", u.addr, mb.Name, m.UID, m.Raw)
				}
				res, err := fz.store.Resolve(ctx, rcpt)
				if err != nil || res.Mailbox != mb.ID {
					t.Fatalf("%s %s UID %d was delivered to %q, which resolves to %+v, %v: relayed or misdelivered",
						u.addr, mb.Name, m.UID, rcpt, res, err)
				}
				id := receivedIDRE.FindSubmatch(m.Raw)
				if id == nil {
					t.Fatalf("%s %s UID %d starts %q: no Received field of ours", u.addr, mb.Name, m.UID, m.Raw)
				}
				txns[string(id[1])] = true
				fz.checked[mb.ID] = m.UID
			}
		}
	}
	st, err := fz.store.Stats(ctx)
	if err != nil {
		t.Fatalf("Stats: %v", err)
	}
	if st.Messages != total {
		t.Fatalf("store holds %d messages, the test users' mailboxes %d", st.Messages, total)
	}
	return len(txns)
}

// deliveredTo returns the Delivered-To address of a stored copy, whose
// second line it is.
func deliveredTo(head []byte) (string, bool) {
	for _, line := range strings.Split(string(head), "\r\n") {
		if v, ok := strings.CutPrefix(line, "Delivered-To: "); ok {
			return v, true
		}
	}
	return "", false
}

// checkAlive checks that the server greets a new connection and says
// goodbye to QUIT.
func (fz *fuzzSMTP) checkAlive(t *testing.T, r role) {
	t.Helper()
	nc, err := net.Dial("tcp", fz.addr[r])
	if err != nil {
		t.Fatalf("%s: server no longer accepts connections: %v", r, err)
	}
	defer nc.Close()
	if err := nc.SetDeadline(time.Now().Add(fuzzDeadline)); err != nil {
		t.Fatal(err)
	}
	tp := textproto.NewConn(nc)
	if _, _, err := tp.ReadResponse(220); err != nil {
		t.Fatalf("%s: greeting after the input: %v", r, err)
	}
	if err := tp.PrintfLine("QUIT"); err != nil {
		t.Fatalf("%s: QUIT: %v", r, err)
	}
	if _, _, err := tp.ReadResponse(221); err != nil {
		t.Fatalf("%s: QUIT after the input: %v", r, err)
	}
}

// fuzzLog is a slog.Handler that keeps the Error records, which a fuzz
// input must never cause: go-smtp logs recovered panics at Error through
// errorLog, and smtpd logs store faults there.
type fuzzLog struct {
	mu  sync.Mutex
	bad []string
}

func (l *fuzzLog) Enabled(_ context.Context, lv slog.Level) bool { return lv >= slog.LevelError }

func (l *fuzzLog) Handle(_ context.Context, r slog.Record) error {
	var b strings.Builder
	b.WriteString(r.Message)
	r.Attrs(func(a slog.Attr) bool {
		fmt.Fprintf(&b, " %s=%v", a.Key, a.Value)
		return true
	})
	l.mu.Lock()
	l.bad = append(l.bad, b.String())
	l.mu.Unlock()
	return nil
}

func (l *fuzzLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *fuzzLog) WithGroup(string) slog.Handler      { return l }

// take returns and forgets the records kept so far.
func (l *fuzzLog) take() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	bad := l.bad
	l.bad = nil
	return bad
}

// abbrev quotes b for a failure message, cut to its first 500 bytes.
func abbrev(b []byte) string {
	if len(b) > 500 {
		return fmt.Sprintf("%q… (%d bytes)", b[:500], len(b))
	}
	return fmt.Sprintf("%q", b)
}
