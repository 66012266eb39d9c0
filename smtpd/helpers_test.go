package smtpd

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/textproto"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
)

const testHostname = "mx.test"

// testUsers are created in every test store, with these passwords.
var testUsers = []struct{ addr, password string }{
	{"alice@example.org", "alice-password"},
	{"bob@example.org", "bob-password"},
	{"carol@example.org", "carol-password"},
	{"dave@example.org", "dave-password"},
	{"jörg@example.org", "jörg-password"},
}

// testAliases are created in every test store: alias -> user.
var testAliases = [][2]string{{"info@example.org", "carol@example.org"}}

// envConfig shapes a test server.
type envConfig struct {
	opts   Options // Hostname, TLSConfig and (if nil) Logger are filled in
	remote bool    // treat 127.0.0.1 as a remote (non-loopback) client
	// setup runs on the Server after New, before it serves.
	setup func(*Server)
	// storeMaxBytes caps the store (mailstore.Options.MaxDatabaseBytes).
	storeMaxBytes int64
	// minFreeBytes is the store's free-space reserve
	// (mailstore.Options.MinFreeBytes).
	minFreeBytes int64
	// postmaster is mailstore.Options.Postmaster.
	postmaster string
}

// testEnv is a store with the test users and a Server listening for each
// role on 127.0.0.1.
type testEnv struct {
	t         testing.TB
	store     *mailstore.Store
	srv       *Server
	addr      [3]string // by role
	certPEM   []byte
	clientTLS *tls.Config
	errc      chan error
	serving   int
}

func newEnv(t testing.TB, cfg envConfig) *testEnv {
	t.Helper()
	ctx := context.Background()
	logger := testLogger()
	store, err := mailstore.Open(ctx, filepath.Join(t.TempDir(), "mail.db"), mailstore.Options{
		Logger: logger, Domains: []string{"example.org"}, PasswordCost: bcrypt.MinCost,
		MaxDatabaseBytes: cfg.storeMaxBytes, MinFreeBytes: cfg.minFreeBytes, Postmaster: cfg.postmaster,
	})
	if err != nil {
		t.Fatalf("mailstore.Open: %v", err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("store.Close: %v", err)
		}
	})
	for _, u := range testUsers {
		if _, err := store.AddUser(ctx, u.addr, u.password); err != nil {
			t.Fatalf("AddUser(%s): %v", u.addr, err)
		}
	}
	for _, a := range testAliases {
		if err := store.AddAlias(ctx, a[0], a[1]); err != nil {
			t.Fatalf("AddAlias(%s): %v", a[0], err)
		}
	}

	cert, certPEM := testCertificate(t)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(certPEM)
	opts := cfg.opts
	opts.Hostname = testHostname
	if opts.Logger == nil {
		opts.Logger = logger
	}
	opts.TLSConfig = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	if opts.AuthLimiter == nil {
		// Failed logins wait milliseconds, not seconds, in tests.
		opts.AuthLimiter = authlimit.New(authlimit.Config{Delay: time.Millisecond / 8})
	}
	e := &testEnv{
		t:         t,
		store:     store,
		srv:       New(store, opts),
		certPEM:   certPEM,
		clientTLS: &tls.Config{RootCAs: pool, ServerName: "localhost"},
		errc:      make(chan error, 3),
	}
	if cfg.remote {
		e.srv.loopback = func(net.Addr) bool { return false }
	}
	if cfg.setup != nil {
		cfg.setup(e.srv)
	}
	for r, serve := range []func(net.Listener) error{e.srv.ServeSMTP, e.srv.ServeLMTP, e.srv.ServeSubmission} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatalf("listen: %v", err)
		}
		e.addr[r] = ln.Addr().String()
		e.serve(serve, ln)
	}
	t.Cleanup(e.shutdown)
	return e
}

// serve runs fn(ln) until shutdown, which checks that it returns nil.
func (e *testEnv) serve(fn func(net.Listener) error, ln net.Listener) {
	e.serving++
	go func() { e.errc <- fn(ln) }()
}

func (e *testEnv) shutdown() {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		e.t.Errorf("Shutdown = %v, want nil", err)
	}
	for ; e.serving > 0; e.serving-- {
		select {
		case err := <-e.errc:
			if err != nil {
				e.t.Errorf("Serve = %v, want nil after Shutdown", err)
			}
		case <-ctx.Done():
			e.t.Errorf("Serve did not return after Shutdown")
			return
		}
	}
}

// testLogger logs to stderr with -v, else nowhere.
func testLogger() *slog.Logger {
	if testing.Verbose() {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

var (
	certOnce sync.Once
	certTLS  tls.Certificate
	certPEM  []byte
	certErr  error
)

// testCertificate returns a self-signed certificate for localhost and
// 127.0.0.1, generated once per test binary; it is its own CA, so a
// client can verify it with the PEM as its only root.
func testCertificate(t testing.TB) (tls.Certificate, []byte) {
	t.Helper()
	certOnce.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			certErr = err
			return
		}
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "localhost"},
			DNSNames:              []string{"localhost", testHostname},
			IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
			NotBefore:             time.Now().Add(-time.Hour),
			NotAfter:              time.Now().Add(24 * time.Hour),
			KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
			ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			certErr = err
			return
		}
		certTLS = tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
		certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	})
	if certErr != nil {
		t.Fatalf("generate certificate: %v", certErr)
	}
	return certTLS, certPEM
}

// dial returns a go-smtp client for role that has sent EHLO (LHLO).
func (e *testEnv) dial(r role) *smtp.Client {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.addr[r])
	if err != nil {
		e.t.Fatalf("dial %s: %v", r, err)
	}
	var c *smtp.Client
	if r == roleLMTP {
		c = smtp.NewClientLMTP(nc)
	} else {
		c = smtp.NewClient(nc)
	}
	c.CommandTimeout = 30 * time.Second
	c.SubmissionTimeout = 30 * time.Second
	e.t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		e.t.Fatalf("EHLO: %v", err)
	}
	return c
}

// dialStartTLS returns a go-smtp client for role that has sent STARTTLS,
// verified the server's certificate, and sent EHLO again.
func (e *testEnv) dialStartTLS(r role) *smtp.Client {
	e.t.Helper()
	nc, err := net.Dial("tcp", e.addr[r])
	if err != nil {
		e.t.Fatalf("dial %s: %v", r, err)
	}
	c, err := smtp.NewClientStartTLS(nc, e.clientTLS)
	if err != nil {
		e.t.Fatalf("STARTTLS: %v", err)
	}
	e.t.Cleanup(func() { c.Close() })
	if err := c.Hello("client.test"); err != nil {
		e.t.Fatalf("EHLO after STARTTLS: %v", err)
	}
	return c
}

// inbox returns copies of the messages in the INBOX of addr's user.
func (e *testEnv) inbox(addr string) []mailstore.Message {
	e.t.Helper()
	ctx := context.Background()
	r, err := e.store.Resolve(ctx, addr)
	if err != nil {
		e.t.Fatalf("Resolve(%s): %v", addr, err)
	}
	var msgs []mailstore.Message
	err = e.store.Messages(ctx, r.Mailbox, mailstore.AllUIDs(), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
		c := *m
		c.Raw = bytes.Clone(m.Raw)
		msgs = append(msgs, c)
		return nil
	})
	if err != nil {
		e.t.Fatalf("Messages(%s): %v", addr, err)
	}
	return msgs
}

// only returns the one message in addr's INBOX.
func (e *testEnv) only(addr string) []byte {
	e.t.Helper()
	msgs := e.inbox(addr)
	if len(msgs) != 1 {
		e.t.Fatalf("INBOX of %s has %d messages, want 1", addr, len(msgs))
	}
	return msgs[0].Raw
}

// cutTrace checks that stored starts with the trace fields smtpd adds
// (Return-Path, Delivered-To, Received) and returns the Received field,
// unfolded, and what follows: the message as sent.
func cutTrace(t testing.TB, stored []byte, from, rcpt string) (received string, rest []byte) {
	t.Helper()
	head := "Return-Path: <" + from + ">\r\nDelivered-To: " + rcpt + "\r\n"
	rest, ok := bytes.CutPrefix(stored, []byte(head))
	if !ok {
		t.Fatalf("stored message starts %q, want %q", firstLines(stored, 2), head)
	}
	if !bytes.HasPrefix(rest, []byte("Received: ")) {
		t.Fatalf("after Delivered-To: %q, want a Received field", firstLines(rest, 1))
	}
	var lines []string
	for {
		i := bytes.Index(rest, []byte("\r\n"))
		if i < 0 {
			t.Fatalf("unterminated Received field")
		}
		lines = append(lines, strings.TrimLeft(string(rest[:i]), "\t"))
		rest = rest[i+2:]
		if len(rest) == 0 || rest[0] != '\t' {
			break
		}
	}
	return strings.Join(lines, " "), rest
}

func firstLines(b []byte, n int) string {
	parts := bytes.SplitAfterN(b, []byte("\n"), n+1)
	if len(parts) > n {
		parts = parts[:n]
	}
	return string(bytes.Join(parts, nil))
}

// testMessage returns a message with CRLF line ends, ending in CRLF.
func testMessage(subject string, bodyLines int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: Sender <sender@remote.example>\r\nTo: alice@example.org\r\nSubject: %s\r\n", subject)
	b.WriteString("Date: Mon, 02 Jan 2006 15:04:05 +0000\r\nMessage-ID: <" + subject + "@remote.example>\r\n\r\n")
	for i := range bodyLines {
		fmt.Fprintf(&b, "line %d of the body, with some text to make it longer.\r\n", i)
	}
	return b.Bytes()
}

// send delivers msg with c and returns the DATA error.
func send(t testing.TB, c *smtp.Client, from string, to []string, msg []byte) error {
	t.Helper()
	if err := c.Mail(from, nil); err != nil {
		t.Fatalf("MAIL FROM:<%s>: %v", from, err)
	}
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			t.Fatalf("RCPT TO:<%s>: %v", rcpt, err)
		}
	}
	w, err := c.Data()
	if err != nil {
		t.Fatalf("DATA: %v", err)
	}
	if _, err := w.Write(msg); err != nil {
		t.Fatalf("write DATA: %v", err)
	}
	return w.Close()
}

// wantReply checks that err is an SMTP reply with code and enhanced code
// enh ("5.1.1"); code 0 wants nil.
func wantReply(t testing.TB, what string, err error, code int, enh string) *smtp.SMTPError {
	t.Helper()
	if code == 0 {
		if err != nil {
			t.Fatalf("%s = %v, want success", what, err)
		}
		return nil
	}
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		t.Fatalf("%s = %v, want reply %d %s", what, err, code, enh)
	}
	e := se.EnhancedCode
	if got := fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2]); se.Code != code || got != enh {
		t.Fatalf("%s = %d %s %q, want %d %s", what, se.Code, got, se.Message, code, enh)
	}
	return se
}

// rawConn speaks SMTP by hand, for what go-smtp's client does not do:
// pipelining, BDAT, malformed input.
type rawConn struct {
	t  testing.TB
	nc net.Conn
	r  *textproto.Reader
}

func dialRaw(t testing.TB, addr string) *rawConn {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	if err := nc.SetDeadline(time.Now().Add(30 * time.Second)); err != nil {
		t.Fatalf("set deadline: %v", err)
	}
	t.Cleanup(func() { nc.Close() })
	return &rawConn{t: t, nc: nc, r: textproto.NewReader(bufio.NewReader(nc))}
}

func (c *rawConn) send(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.nc, s); err != nil {
		c.t.Fatalf("write %q: %v", s, err)
	}
}

// reply reads one reply, possibly multi-line, and returns its code and
// the text of its last line.
func (c *rawConn) reply() (int, string) {
	c.t.Helper()
	for {
		line, err := c.r.ReadLine()
		if err != nil {
			c.t.Fatalf("read reply: %v", err)
		}
		if len(line) < 4 {
			c.t.Fatalf("short reply line %q", line)
		}
		code, err := strconv.Atoi(line[:3])
		if err != nil {
			c.t.Fatalf("reply line %q: %v", line, err)
		}
		if line[3] == ' ' {
			return code, line[4:]
		}
	}
}

// expect reads one reply and checks its code and the start of its text.
func (c *rawConn) expect(code int, prefix string) string {
	c.t.Helper()
	got, text := c.reply()
	if got != code || !strings.HasPrefix(text, prefix) {
		c.t.Fatalf("reply %d %q, want %d %q…", got, text, code, prefix)
	}
	return text
}

// expectEOF checks that the server closed the connection.
func (c *rawConn) expectEOF() {
	c.t.Helper()
	if line, err := c.r.ReadLine(); err == nil {
		c.t.Fatalf("read %q, want the connection closed", line)
	}
}
