package imapd

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
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

// testEnv is a store and an IMAP server on a loopback port.
type testEnv struct {
	store *mailstore.Store
	srv   *Server
	addr  string
	user  mailstore.User
	inbox mailstore.Recipient
	logs  *errorLog
}

type envOptions struct {
	hubQueue      int // notify queue length; 0: default
	server        Options
	storeMaxBytes int64 // mailstore.Options.MaxDatabaseBytes
	maxVanished   int   // mailstore.Options.MaxVanished; 0: default
	// logs, if set, receives the log records from level Info up as text,
	// as "pushmail serve" writes them (it must be safe for concurrent
	// writes).
	logs io.Writer
}

// errorLog is a slog handler that remembers Error records, so a test can
// fail on a server fault it did not provoke. Set PUSHMAIL_TEST_LOG=1 to
// also print every record.
type errorLog struct {
	mu     sync.Mutex
	errors []string
	print  slog.Handler
	attrs  []slog.Attr
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
func (l *errorLog) WithAttrs(attrs []slog.Attr) slog.Handler {
	if l.print == nil {
		return l
	}
	return &errorLogView{l, l.print.WithAttrs(attrs)}
}
func (l *errorLog) WithGroup(name string) slog.Handler { return l }

// errorLogView shares an errorLog under other attributes.
type errorLogView struct {
	*errorLog
	h slog.Handler
}

func (v *errorLogView) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelError {
		v.mu.Lock()
		v.errors = append(v.errors, r.Message)
		v.mu.Unlock()
	}
	return v.h.Handle(ctx, r)
}
func (v *errorLogView) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &errorLogView{v.errorLog, v.h.WithAttrs(attrs)}
}

func newTestEnv(t testing.TB, eo envOptions) *testEnv {
	t.Helper()
	ctx := context.Background()
	logs := &errorLog{}
	if os.Getenv("PUSHMAIL_TEST_LOG") != "" {
		logs.print = slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})
	} else if eo.logs != nil {
		logs.print = slog.NewTextHandler(eo.logs, &slog.HandlerOptions{Level: slog.LevelInfo})
	}
	logger := slog.New(logs)
	store, err := mailstore.Open(ctx, filepath.Join(t.TempDir(), "mail.db"), mailstore.Options{
		PasswordCost:     bcrypt.MinCost,
		Hub:              notify.New(eo.hubQueue),
		Logger:           logger,
		MaxDatabaseBytes: eo.storeMaxBytes,
		MaxVanished:      eo.maxVanished,
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
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	opts := eo.server
	opts.Logger = logger
	if os.Getenv("PUSHMAIL_TEST_HIBERNATE") != "" {
		// The whole suite with hibernating IDLE sessions: they must
		// behave as the others do.
		opts.Hibernate = true
	}
	if opts.AuthLimiter == nil {
		// Failed logins wait milliseconds, not seconds, in tests.
		opts.AuthLimiter = authlimit.New(authlimit.Config{Delay: time.Millisecond / 8})
	}
	srv := New(store, opts)
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	t.Cleanup(func() {
		sctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown() = %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve() = %v, want nil after Shutdown", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("store.Close() = %v", err)
		}
		logs.mu.Lock()
		defer logs.mu.Unlock()
		if len(logs.errors) > 0 {
			t.Errorf("server logged errors: %q", logs.errors)
		}
	})
	return &testEnv{store: store, srv: srv, addr: ln.Addr().String(), user: user, inbox: inbox, logs: logs}
}

// dial connects a client without logging in.
func (e *testEnv) dial(t testing.TB, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(e.addr, opts)
	if err != nil {
		t.Fatalf("Dial(%s) = %v", e.addr, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// login connects and logs in as the test user.
func (e *testEnv) login(t testing.TB, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c := e.dial(t, opts)
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatalf("Login() = %v", err)
	}
	return c
}

// selectInbox logs in and selects INBOX.
func (e *testEnv) selectInbox(t testing.TB, opts *imapclient.Options) *imapclient.Client {
	t.Helper()
	c := e.login(t, opts)
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("Select(INBOX) = %v", err)
	}
	return c
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

// mailbox returns one of the test user's mailboxes.
func (e *testEnv) mailbox(t testing.TB, name string) mailstore.Mailbox {
	t.Helper()
	mb, err := e.store.Mailbox(context.Background(), e.user.ID, name)
	if err != nil {
		t.Fatalf("Mailbox(%s) = %v", name, err)
	}
	return mb
}

// storeUIDs returns the UIDs the store has for a mailbox.
func (e *testEnv) storeUIDs(t testing.TB, name string) []imap.UID {
	t.Helper()
	uids, err := e.store.UIDs(context.Background(), e.mailbox(t, name).ID)
	if err != nil {
		t.Fatalf("UIDs(%s) = %v", name, err)
	}
	out := make([]imap.UID, len(uids))
	for i, u := range uids {
		out[i] = imap.UID(u)
	}
	return out
}

func testMessage(n int) []byte {
	return fmt.Appendf(nil, "From: Bob <bob@example.org>\r\nTo: alice@localhost\r\nSubject: test %d\r\nDate: Mon, 2 Jan 2006 15:04:05 +0000\r\nMessage-ID: <%d@example.org>\r\n\r\nBody of message %d.\r\n", n, n, n)
}

// viewUIDs returns the UIDs a client sees, in sequence order, after a
// NOOP has brought its view up to date.
func viewUIDs(t testing.TB, c *imapclient.Client) []imap.UID {
	t.Helper()
	if err := c.Noop().Wait(); err != nil {
		t.Fatalf("Noop() = %v", err)
	}
	n := c.Mailbox().NumMessages
	if n == 0 {
		return nil
	}
	var seqs imap.SeqSet
	seqs.AddRange(1, n)
	msgs, err := c.Fetch(seqs, &imap.FetchOptions{UID: true}).Collect()
	if err != nil {
		t.Fatalf("Fetch(1:%d UID) = %v", n, err)
	}
	uids := make([]imap.UID, len(msgs))
	for i, m := range msgs {
		if m.SeqNum != uint32(i+1) {
			t.Fatalf("FETCH reply %d has sequence number %d", i+1, m.SeqNum)
		}
		uids[i] = m.UID
	}
	return uids
}

// events collects a client's unilateral data on channels.
type events struct {
	exists  chan uint32
	expunge chan uint32
	fetch   chan flagEvent
}

type flagEvent struct {
	seq   uint32
	uid   imap.UID
	flags []imap.Flag
}

func newEvents() (*events, *imapclient.Options) {
	ev := &events{
		exists:  make(chan uint32, 1024),
		expunge: make(chan uint32, 1024),
		fetch:   make(chan flagEvent, 1024),
	}
	return ev, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
		Expunge: func(seq uint32) { ev.expunge <- seq },
		Mailbox: func(data *imapclient.UnilateralDataMailbox) {
			if data.NumMessages != nil {
				ev.exists <- *data.NumMessages
			}
		},
		Fetch: func(msg *imapclient.FetchMessageData) {
			buf, err := msg.Collect()
			if err != nil {
				return
			}
			ev.fetch <- flagEvent{seq: buf.SeqNum, uid: buf.UID, flags: buf.Flags}
		},
	}}
}

// wait receives one value from ch or fails the test after waitTimeout.
func wait[T any](t testing.TB, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(waitTimeout):
		t.Fatalf("timed out waiting for %s", what)
		panic("unreachable")
	}
}

func sortedFlags(flags []imap.Flag) []imap.Flag {
	out := slices.Clone(flags)
	slices.Sort(out)
	return out
}

// rawConn is a hand-driven IMAP connection for transcripts that a client
// library hides.
type rawConn struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	n    int
}

// raw connects, reads the greeting and logs in.
func (e *testEnv) raw(t testing.TB) *rawConn {
	t.Helper()
	c := e.dialNoLogin(t)
	c.ok("LOGIN %s %s", testUser, testPassword)
	return c
}

// dialNoLogin connects and reads the greeting, without logging in.
func (e *testEnv) dialNoLogin(t testing.TB) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", e.addr, waitTimeout)
	if err != nil {
		t.Fatalf("Dial(%s) = %v", e.addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := c.readLine(); !strings.HasPrefix(g, "* OK ") {
		t.Fatalf("greeting %q", g)
	}
	return c
}

func (c *rawConn) readLine() string {
	c.t.Helper()
	if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		c.t.Fatal(err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (after %q)", err, line)
	}
	return strings.TrimRight(line, "\r\n")
}

// send writes a tagged command and returns its tag.
func (c *rawConn) send(format string, args ...any) string {
	c.t.Helper()
	c.n++
	tag := fmt.Sprintf("t%d", c.n)
	if _, err := fmt.Fprintf(c.conn, tag+" "+format+"\r\n", args...); err != nil {
		c.t.Fatalf("write: %v", err)
	}
	return tag
}

// cmd runs a command and returns the untagged lines and the tagged one.
func (c *rawConn) cmd(format string, args ...any) (untagged []string, tagged string) {
	c.t.Helper()
	tag := c.send(format, args...)
	for {
		line := c.readLine()
		if strings.HasPrefix(line, tag+" ") {
			return untagged, strings.TrimPrefix(line, tag+" ")
		}
		untagged = append(untagged, line)
	}
}

// ok runs a command that must succeed and returns its untagged lines.
func (c *rawConn) ok(format string, args ...any) []string {
	c.t.Helper()
	untagged, tagged := c.cmd(format, args...)
	if !strings.HasPrefix(tagged, "OK") {
		c.t.Fatalf("%s: %s", fmt.Sprintf(format, args...), tagged)
	}
	return untagged
}

// hasLine reports whether lines contain want.
func hasLine(lines []string, want string) bool {
	return slices.Contains(lines, want)
}
