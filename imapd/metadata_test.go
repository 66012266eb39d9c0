package imapd

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/bcrypt"

	"pushmail/mailstore"
	"pushmail/notify"
)

// serveAt opens the store at path and serves IMAP on 127.0.0.1; stop
// shuts the server down and closes the store, as a restart does.
func serveAt(t *testing.T, path string) (addr string, stop func()) {
	t.Helper()
	ctx := context.Background()
	store, err := mailstore.Open(ctx, path, mailstore.Options{PasswordCost: bcrypt.MinCost, Hub: notify.New(0)})
	if err != nil {
		t.Fatalf("mailstore.Open() = %v", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := New(store, Options{})
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		sctx, cancel := context.WithTimeout(ctx, waitTimeout)
		defer cancel()
		if err := srv.Shutdown(sctx); err != nil {
			t.Errorf("Shutdown() = %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("Serve() = %v", err)
		}
		if err := store.Close(); err != nil {
			t.Errorf("store.Close() = %v", err)
		}
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

// rawLogin connects to addr and logs in as the test user.
func rawLogin(t *testing.T, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawConn{t: t, conn: conn, r: bufio.NewReader(conn)}
	if g := c.readLine(); !strings.HasPrefix(g, "* OK ") {
		t.Fatalf("greeting %q", g)
	}
	c.ok("LOGIN %s %s", testUser, testPassword)
	return c
}

// TestMetadataPushTokenSurvivesRestart: a client (Delta Chat does this)
// stores its push token in a /private server entry; after the server and
// its store are stopped and started again, the token is still there.
func TestMetadataPushTokenSurvivesRestart(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "mail.db")
	addr, stop := serveAt(t, path)
	// The user is made through the first server's store file: open it
	// beside the server, as "pushmail user add" does.
	s, err := mailstore.Open(context.Background(), path, mailstore.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.AddUser(context.Background(), testUser, testPassword); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	const token = "fcm:dGVzdC10b2tlbg==/pushmail"
	c := rawLogin(t, addr)
	c.ok(`SETMETADATA "" (/private/devicetoken %q)`, token)
	c.ok(`SETMETADATA INBOX (/private/comment "kept too")`)
	stop()

	addr, _ = serveAt(t, path)
	c = rawLogin(t, addr)
	if got := c.ok(`GETMETADATA "" /private/devicetoken`); !hasLine(got, `* METADATA "" (/private/devicetoken "`+token+`")`) {
		t.Errorf("after restart: GETMETADATA = %q", got)
	}
	if got := c.ok(`GETMETADATA INBOX /private/comment`); !hasLine(got, `* METADATA INBOX (/private/comment "kept too")`) {
		t.Errorf("after restart: GETMETADATA INBOX = %q", got)
	}
}

// TestMetadataLimits: RFC 5464 §4.3's error codes, and nothing of a
// refused SETMETADATA stored.
func TestMetadataLimits(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.raw(t)
	// A literal over the limit is refused before its data is sent; a
	// quoted string over it once read.
	big := strings.Repeat("x", mailstore.MaxMetadataValue+1)
	if _, tagged := c.cmd(`SETMETADATA INBOX (/private/a "1" /private/big {%d}`, len(big)); tagged != "NO [METADATA MAXSIZE 4096] Metadata value too big" {
		t.Errorf("too big as a literal: %q", tagged)
	}
	if _, tagged := c.cmd(`SETMETADATA INBOX (/private/a "1" /private/big "%s")`, big); tagged != "NO [METADATA MAXSIZE 4096] Metadata value too big" {
		t.Errorf("too big quoted: %q", tagged)
	}
	c.ok(`SETMETADATA INBOX (/private/max "%s")`, big[1:])
	c.ok(`SETMETADATA INBOX (/private/max NIL)`)
	var b strings.Builder
	for i := range mailstore.MaxMetadataEntries + 1 {
		fmt.Fprintf(&b, ` /private/n/%d "v"`, i)
	}
	if _, tagged := c.cmd(`SETMETADATA "" (%s)`, b.String()[1:]); tagged != "NO [METADATA TOOMANY] Too many metadata entries" {
		t.Errorf("too many: %q", tagged)
	}
	if got := c.ok(`GETMETADATA (DEPTH infinity) INBOX /private`); len(got) != 0 {
		t.Errorf("refused SETMETADATA left %q", got)
	}
	if got := c.ok(`GETMETADATA (DEPTH infinity) "" /private`); len(got) != 0 {
		t.Errorf("refused SETMETADATA left %q", got)
	}
}
