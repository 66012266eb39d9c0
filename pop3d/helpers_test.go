package pop3d

import (
	"bufio"
	"context"
	"crypto/tls"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	_ "github.com/mattn/go-sqlite3" // execRaw's own connection
	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
	"pushmail/notify"
)

const (
	testUser     = "alice@localhost"
	testPassword = "secret"
	waitTimeout  = 10 * time.Second
)

// testEnv is a store and a POP3 server on a loopback port.
type testEnv struct {
	store *mailstore.Store
	hub   *notify.Hub
	srv   *Server
	addr  string
	user  mailstore.User
	inbox mailstore.Recipient
	logs  *errorLog

	shutdownOnce sync.Once
	served       chan error
}

type envOptions struct {
	server Options
	// listener, if set, wraps the test listener (to fake client
	// addresses).
	listener func(net.Listener) net.Listener
}

// errorLog is a slog handler that remembers Error records, so that a
// test fails on a server fault it did not provoke. PUSHMAIL_TEST_LOG=1
// also prints every record.
type errorLog struct {
	mu     sync.Mutex
	errors []string
	print  slog.Handler
}

func (l *errorLog) Enabled(ctx context.Context, level slog.Level) bool {
	return level >= slog.LevelError || l.print != nil && l.print.Enabled(ctx, level)
}

func (l *errorLog) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		l.mu.Lock()
		l.errors = append(l.errors, r.Message)
		l.mu.Unlock()
	}
	if l.print != nil {
		return l.print.Handle(ctx, r)
	}
	return nil
}

func (l *errorLog) WithAttrs([]slog.Attr) slog.Handler { return l }
func (l *errorLog) WithGroup(string) slog.Handler      { return l }

// takeErrors returns the Error records logged so far and forgets them.
func (l *errorLog) takeErrors() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	errs := l.errors
	l.errors = nil
	return errs
}

func newTestEnv(t testing.TB, eo envOptions) *testEnv {
	t.Helper()
	ctx := context.Background()
	logs := &errorLog{}
	if os.Getenv("PUSHMAIL_TEST_LOG") != "" {
		logs.print = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	}
	logger := slog.New(logs)
	hub := notify.New(0)
	store, err := mailstore.Open(ctx, filepath.Join(t.TempDir(), "mail.db"), mailstore.Options{
		PasswordCost: bcrypt.MinCost,
		Hub:          hub,
		Logger:       logger,
	})
	if err != nil {
		t.Fatalf("mailstore.Open() = %v", err)
	}
	user, err := store.AddUser(ctx, testUser, testPassword)
	if err != nil {
		t.Fatalf("AddUser() = %v", err)
	}
	inbox, err := store.Resolve(ctx, testUser)
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	var ln net.Listener
	ln, err = net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	addr := ln.Addr().String()
	if eo.listener != nil {
		ln = eo.listener(ln)
	}
	opts := eo.server
	opts.Logger = logger
	if opts.AuthLimiter == nil {
		// Failed logins wait microseconds, not seconds, in tests.
		opts.AuthLimiter = authlimit.New(authlimit.Config{Delay: time.Millisecond / 8})
	}
	e := &testEnv{store: store, hub: hub, srv: New(store, opts), addr: addr, user: user, inbox: inbox, logs: logs, served: make(chan error, 1)}
	go func() { e.served <- e.srv.Serve(ln) }()
	t.Cleanup(func() {
		e.shutdown(t)
		if err := store.Close(); err != nil {
			t.Errorf("store.Close() = %v", err)
		}
		if errs := logs.takeErrors(); len(errs) > 0 {
			t.Errorf("server logged errors: %q", errs)
		}
	})
	return e
}

// shutdown stops the server and waits for every session to end: what
// the store holds afterwards is final.
func (e *testEnv) shutdown(t testing.TB) {
	t.Helper()
	e.shutdownOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := e.srv.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown() = %v", err)
		}
		if err := <-e.served; err != nil {
			t.Errorf("Serve() = %v, want nil after Shutdown", err)
		}
	})
}

// deliver stores msg in the test user's INBOX as smtpd would.
func (e *testEnv) deliver(t testing.TB, msg []byte) mailstore.UID {
	t.Helper()
	uids, err := e.store.Deliver(context.Background(), msg, []mailstore.Recipient{e.inbox})
	if err != nil {
		t.Fatalf("Deliver() = %v", err)
	}
	return uids[0]
}

// appendRaw stores msg in INBOX byte for byte (IMAP APPEND's path: no
// trace field is prepended).
func (e *testEnv) appendRaw(t testing.TB, msg []byte) mailstore.UID {
	t.Helper()
	res, err := e.store.Append(context.Background(), e.inbox.Mailbox, msg, nil, time.Now(), 0)
	if err != nil {
		t.Fatalf("Append() = %v", err)
	}
	return res.UID
}

// uids returns the UIDs INBOX holds.
func (e *testEnv) uids(t testing.TB) []mailstore.UID {
	t.Helper()
	uids, err := e.store.UIDs(context.Background(), e.inbox.Mailbox)
	if err != nil {
		t.Fatalf("UIDs() = %v", err)
	}
	return uids
}

// holds fails the test unless INBOX holds exactly want.
func (e *testEnv) holds(t testing.TB, want ...mailstore.UID) {
	t.Helper()
	if got := e.uids(t); !slices.Equal(got, want) {
		t.Fatalf("INBOX holds %v, want %v", got, want)
	}
}

// stored returns the messages of INBOX: raw bytes and flags by UID.
func (e *testEnv) stored(t testing.TB) map[mailstore.UID]*mailstore.Message {
	t.Helper()
	out := map[mailstore.UID]*mailstore.Message{}
	err := e.store.Messages(context.Background(), e.inbox.Mailbox, mailstore.AllUIDs(), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
		c := *m
		c.Raw = slices.Clone(m.Raw)
		out[m.UID] = &c
		return nil
	})
	if err != nil {
		t.Fatalf("Messages() = %v", err)
	}
	return out
}

func testMessage(n int) []byte {
	return fmt.Appendf(nil, "From: Bob <bob@example.org>\r\nTo: alice@localhost\r\nSubject: test %d\r\nMessage-ID: <%d@example.org>\r\n\r\nBody of message %d.\r\n", n, n, n)
}

// client is a raw POP3 client: it sends lines and reads replies.
type client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
}

// dial connects and reads the greeting.
func (e *testEnv) dial(t testing.TB) *client {
	t.Helper()
	conn, err := net.Dial("tcp", e.addr)
	if err != nil {
		t.Fatalf("Dial(%s) = %v", e.addr, err)
	}
	c := newClient(t, conn)
	c.expect(`^\+OK pushmail POP3 server ready$`)
	return c
}

func newClient(t testing.TB, conn net.Conn) *client {
	t.Cleanup(func() { conn.Close() })
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	return &client{t: t, conn: conn, r: bufio.NewReader(conn)}
}

// login dials and logs in with USER and PASS.
func (e *testEnv) login(t testing.TB) *client {
	t.Helper()
	c := e.dial(t)
	c.cmd("USER "+testUser, `^\+OK`)
	c.cmd("PASS "+testPassword, `^\+OK Logged in`)
	return c
}

// send writes one command line.
func (c *client) send(line string) {
	c.t.Helper()
	if _, err := c.conn.Write([]byte(line + "\r\n")); err != nil {
		c.t.Fatalf("send %q: %v", line, err)
	}
}

// readLine reads one reply line without its CRLF, and fails on a line
// that does not end with CRLF.
func (c *client) readLine() string {
	c.t.Helper()
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (so far %q)", err, line)
	}
	if !strings.HasSuffix(line, "\r\n") {
		c.t.Fatalf("reply line %q does not end with CRLF", line)
	}
	return strings.TrimSuffix(line, "\r\n")
}

// expect reads one line and matches it against the regexp re.
func (c *client) expect(re string) string {
	c.t.Helper()
	line := c.readLine()
	if !regexp.MustCompile(re).MatchString(line) {
		c.t.Fatalf("reply %q, want a match for %s", line, re)
	}
	return line
}

// cmd sends line and matches the one-line reply against re.
func (c *client) cmd(line, re string) string {
	c.t.Helper()
	c.send(line)
	return c.expect(re)
}

// multi reads a multi-line response's lines after its first, up to the
// terminating ".", undoing the byte-stuffing.
func (c *client) multi() []string {
	c.t.Helper()
	var lines []string
	for {
		line := c.readLine()
		if line == "." {
			return lines
		}
		if strings.HasPrefix(line, ".") {
			line = line[1:]
		}
		lines = append(lines, line)
	}
}

// data reads a multi-line response's data as the bytes it stands for:
// its lines joined with CRLF.
func (c *client) data() []byte {
	c.t.Helper()
	var b []byte
	for _, l := range c.multi() {
		b = append(b, l...)
		b = append(b, "\r\n"...)
	}
	return b
}

// expectClosed reads to EOF: the server closed the connection. A read
// that times out means it did not.
func (c *client) expectClosed() {
	c.t.Helper()
	line, err := c.r.ReadString('\n')
	if err == nil {
		c.t.Fatalf("read %q, want the connection closed", line)
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		c.t.Fatalf("connection still open after the read deadline (read %q)", line)
	}
}

// remoteListener makes every accepted connection look as if it came from
// addr: for the rules that depend on the client's address.
type remoteListener struct {
	net.Listener
	addr net.Addr
}

func (l remoteListener) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return remoteConn{c, l.addr}, nil
}

type remoteConn struct {
	net.Conn
	remote net.Addr
}

func (c remoteConn) RemoteAddr() net.Addr { return c.remote }

// fromRemote is an envOptions.listener that makes clients come from
// 192.0.2.7 (TEST-NET-1), not loopback.
func fromRemote(ln net.Listener) net.Listener {
	return remoteListener{ln, &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 4000}}
}

// crlf returns raw as POP3 sends it: every line ended by CRLF.
func crlf(raw []byte) []byte {
	s := strings.ReplaceAll(string(raw), "\r\n", "\n")
	s = strings.ReplaceAll(s, "\n", "\r\n")
	if !strings.HasSuffix(s, "\r\n") && s != "" {
		s += "\r\n"
	}
	return []byte(s)
}

// tlsClient starts TLS on conn, verifying nothing: these tests check
// the protocol, tls_test the certificates.
func tlsClient(conn net.Conn) *tls.Conn {
	return tls.Client(conn, &tls.Config{InsecureSkipVerify: true, ServerName: "localhost"})
}

// execRaw runs SQL on the store's file through a connection of the
// test's own: for faults no client could cause.
func execRaw(t testing.TB, e *testEnv, query string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+e.store.Path()+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.ExecContext(context.Background(), query); err != nil {
		t.Fatalf("exec %q: %v", query, err)
	}
}
