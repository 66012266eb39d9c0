package pop3d

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"io"
	"log/slog"
	"net"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
	"pushmail/notify"
)

// fuzzDeadline bounds one input's whole conversation: longer means the
// server hung (it gets EOF after the input, so it has nothing to wait
// for).
const fuzzDeadline = 10 * time.Second

// FuzzPOP3Session feeds arbitrary client bytes to a real Server on a
// loopback connection, then closes the client's side. When the first
// argument is true the harness logs in as alice first (USER/PASS), so
// that mutations spend their time in the TRANSACTION state. It asserts:
//   - no Error-level log (the server logs one for each -ERR [SYS/TEMP]
//     a store fault causes; none happens here) and no panic;
//   - no hang: the server closes the connection before fuzzDeadline;
//   - the reply is CRLF lines only, starting with the greeting;
//   - nothing is removed from alice's INBOX unless the input says QUIT
//     (in any case): a session that ends any other way deletes nothing
//     (RFC 1939 §6);
//   - one user never sees or changes another's mail (DESIGN.md §5): bob
//     holds a random secret in a message, which never appears in the
//     output, and his INBOX never changes;
//   - the server still greets a fresh connection afterwards.
//
// The store and server are opened once per fuzz process and shared by
// the inputs; alice's INBOX is refilled to three messages before each.
func FuzzPOP3Session(f *testing.F) {
	for _, s := range pop3Seeds {
		f.Add(true, []byte(s))
		f.Add(false, []byte(s))
	}
	fz := newFuzzPOP3(f)
	f.Fuzz(func(t *testing.T, login bool, script []byte) {
		if login {
			script = append([]byte("USER "+testUser+"\r\nPASS "+testPassword+"\r\n"), script...)
		}
		fz.run(t, script)
	})
}

var pop3Seeds = []string{
	"CAPA\r\nQUIT\r\n",
	"STAT\r\nLIST\r\nUIDL\r\nRETR 1\r\nTOP 2 1\r\nQUIT\r\n",
	"DELE 1\r\nDELE 2\r\nRSET\r\nDELE 3\r\nQUIT\r\n",
	"DELE 1\r\nDELE 2\r\nLIST 1\r\nNOOP\r\n",
	"LIST 0\r\nLIST 99999\r\nRETR -1\r\nTOP 1\r\nUIDL x y\r\nDELE\r\n",
	"AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdABzZWNyZXQ=\r\nSTAT\r\nQUIT\r\n",
	"AUTH PLAIN\r\nAGJvYkBsb2NhbGhvc3QAc2VjcmV0\r\nRETR 1\r\n",
	"AUTH PLAIN\r\n*\r\nAUTH\r\nAUTH LOGIN\r\n",
	"USER bob@localhost\r\nPASS wrong\r\nUSER\r\nPASS\r\n",
	"STLS\r\nAPOP a b\r\nGET / HTTP/1.1\r\n",
	"retr 1\nquit\n",
	"\r\n\r\n \r\nLIST  1\r\n",
}

// fuzzPOP3 is the shared server of one fuzz process.
type fuzzPOP3 struct {
	store  *mailstore.Store
	srv    *Server
	addr   string
	alice  mailstore.Recipient
	bob    mailstore.Recipient
	secret string
	logs   *errorLog
}

func newFuzzPOP3(f *testing.F) *fuzzPOP3 {
	ctx := context.Background()
	logs := &errorLog{}
	store, err := mailstore.Open(ctx, filepath.Join(f.TempDir(), "mail.db"), mailstore.Options{
		PasswordCost: bcrypt.MinCost, Hub: notify.New(0), Logger: slog.New(logs),
	})
	if err != nil {
		f.Fatal(err)
	}
	fz := &fuzzPOP3{store: store, logs: logs, secret: rand.Text()}
	// bob's password is one no input can know.
	for u, pw := range map[string]string{testUser: testPassword, "bob@localhost": rand.Text()} {
		if _, err := store.AddUser(ctx, u, pw); err != nil {
			f.Fatal(err)
		}
	}
	if fz.alice, err = store.Resolve(ctx, testUser); err != nil {
		f.Fatal(err)
	}
	if fz.bob, err = store.Resolve(ctx, "bob@localhost"); err != nil {
		f.Fatal(err)
	}
	if _, err := store.Deliver(ctx, fmt.Appendf(nil, "Subject: %s\r\n\r\n%s\r\n", fz.secret, fz.secret), []mailstore.Recipient{fz.bob}); err != nil {
		f.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	fz.addr = ln.Addr().String()
	fz.srv = New(store, Options{
		Logger: slog.New(logs),
		// Failures are delayed by microseconds and never refused:
		// throttling is tested elsewhere.
		AuthLimiter:    authlimit.New(authlimit.Config{PerIP: 1 << 30, PerAccount: 1 << 30, Delay: time.Microsecond}),
		MaxConnsPerIP:  -1,
		CommandTimeout: 2 * time.Second,
	})
	served := make(chan error, 1)
	go func() { served <- fz.srv.Serve(ln) }()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := fz.srv.Shutdown(ctx); err != nil {
			f.Errorf("Shutdown() = %v", err)
		}
		if err := <-served; err != nil {
			f.Errorf("Serve() = %v", err)
		}
		if err := store.Close(); err != nil {
			f.Errorf("store.Close() = %v", err)
		}
	})
	return fz
}

// uids returns the UIDs of a user's INBOX.
func (fz *fuzzPOP3) uids(t *testing.T, r mailstore.Recipient) []mailstore.UID {
	t.Helper()
	uids, err := fz.store.UIDs(context.Background(), r.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	return uids
}

func (fz *fuzzPOP3) run(t *testing.T, script []byte) {
	ctx := context.Background()
	for i := len(fz.uids(t, fz.alice)); i < 3; i++ {
		msg := fmt.Appendf(nil, "Subject: m%d\r\n\r\n.dot\r\nline\r\n", i)
		if _, err := fz.store.Deliver(ctx, msg, []mailstore.Recipient{fz.alice}); err != nil {
			t.Fatal(err)
		}
	}
	before, bobBefore := fz.uids(t, fz.alice), fz.uids(t, fz.bob)

	conn, err := net.Dial("tcp", fz.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(fuzzDeadline)); err != nil {
		t.Fatal(err)
	}
	// Write while reading: a large reply must not block the server while
	// the input is still being sent.
	written := make(chan error, 1)
	go func() {
		_, err := conn.Write(script)
		if err == nil {
			err = conn.(*net.TCPConn).CloseWrite()
		}
		written <- err
	}()
	out, err := io.ReadAll(conn)
	<-written // a write error is the server closing early: allowed
	if err != nil {
		t.Fatalf("the server did not close the connection within %v: %v\ninput %q", fuzzDeadline, err, script)
	}

	if !bytes.HasPrefix(out, []byte("+OK pushmail POP3 server ready\r\n")) {
		t.Fatalf("reply does not start with the greeting: %q", out)
	}
	if i := bytes.IndexByte(bytes.ReplaceAll(out, []byte("\r\n"), nil), '\n'); i >= 0 {
		t.Fatalf("reply has a line not ended by CRLF: %q", out)
	}
	if bytes.Contains(out, []byte(fz.secret)) {
		t.Fatalf("bob's secret in alice's session: %q\ninput %q", out, script)
	}
	// The session has ended once the server closed the connection (Close
	// frees the slot, then closes): what the store holds now is final.
	after := fz.uids(t, fz.alice)
	if !bytes.Contains(bytes.ToUpper(script), []byte("QUIT")) && !slices.Equal(before, after) {
		t.Fatalf("INBOX went from %v to %v without a QUIT\ninput %q", before, after, script)
	}
	for _, u := range after {
		if !slices.Contains(before, u) {
			t.Fatalf("INBOX gained UID %d during the session\ninput %q", u, script)
		}
	}
	if got := fz.uids(t, fz.bob); !slices.Equal(got, bobBefore) {
		t.Fatalf("bob's INBOX went from %v to %v in alice's session", bobBefore, got)
	}
	if errs := fz.logs.takeErrors(); len(errs) > 0 {
		t.Fatalf("server logged errors %q\ninput %q", errs, script)
	}

	c, err := net.DialTimeout("tcp", fz.addr, fuzzDeadline)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(fuzzDeadline)); err != nil {
		t.Fatal(err)
	}
	greeting := make([]byte, len("+OK"))
	if _, err := io.ReadFull(c, greeting); err != nil || string(greeting) != "+OK" {
		t.Fatalf("no greeting after the input: %q, %v", greeting, err)
	}
}
