package smtpd

import (
	"bytes"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeNetConn records what conn sends to the socket and reads from a
// fixed input.
type fakeNetConn struct {
	net.Conn // nil: only the methods below are called
	in       io.Reader
	writes   []string
	closed   bool
}

func (f *fakeNetConn) Read(p []byte) (int, error) { return f.in.Read(p) }
func (f *fakeNetConn) Write(p []byte) (int, error) {
	f.writes = append(f.writes, string(p))
	return len(p), nil
}
func (f *fakeNetConn) Close() error                     { f.closed = true; return nil }
func (f *fakeNetConn) SetWriteDeadline(time.Time) error { return nil }
func (f *fakeNetConn) SetReadDeadline(time.Time) error  { return nil }
func (f *fakeNetConn) RemoteAddr() net.Addr {
	return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 25}
}
func (f *fakeNetConn) LocalAddr() net.Addr           { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, 2), Port: 25} }
func (f *fakeNetConn) SetDeadline(t time.Time) error { return nil }
func (f *fakeNetConn) wantWrites(t *testing.T, want ...string) {
	t.Helper()
	if len(f.writes) != len(want) {
		t.Fatalf("socket writes %q, want %q", f.writes, want)
	}
	for i := range want {
		if f.writes[i] != want[i] {
			t.Fatalf("socket writes %q, want %q", f.writes, want)
		}
	}
}

func newFakeConn(t *testing.T, input string) (*conn, *fakeNetConn) {
	srv := New(nil, Options{Logger: testLogger()})
	l := &listener{srv: srv, role: roleMX, perIP: map[string]int{}, total: 1}
	f := &fakeNetConn{in: strings.NewReader(input)}
	c := &conn{Conn: f, l: l, cid: "test"}
	srv.track(c)
	return c, f
}

// TestRepliesSentAsAUnit checks that replies go out together when the
// server next reads (RFC 2920 §3.2), or at Close.
func TestRepliesSentAsAUnit(t *testing.T) {
	t.Parallel()
	c, f := newFakeConn(t, "body\r\n")
	for _, r := range []string{"250 2.0.0 a\r\n", "250 2.0.0 b\r\n", "354 go ahead\r\n"} {
		if n, err := c.Write([]byte(r)); n != len(r) || err != nil {
			t.Fatalf("Write(%q) = %d, %v; want %d, nil", r, n, err, len(r))
		}
	}
	f.wantWrites(t) // nothing sent before the server reads
	buf := make([]byte, 64)
	if n, err := c.Read(buf); err != nil || string(buf[:n]) != "body\r\n" {
		t.Fatalf("Read = %q, %v; want the input", buf[:n], err)
	}
	f.wantWrites(t, "250 2.0.0 a\r\n250 2.0.0 b\r\n354 go ahead\r\n")

	// Past maxPendingWrite, what is held goes first, then the big write.
	big := strings.Repeat("x", maxPendingWrite+1)
	if _, err := c.Write([]byte("250 small\r\n")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte(big)); err != nil {
		t.Fatal(err)
	}
	f.wantWrites(t, "250 2.0.0 a\r\n250 2.0.0 b\r\n354 go ahead\r\n", "250 small\r\n", big)

	// The last reply goes out at Close.
	f.writes = nil
	if _, err := c.Write([]byte("221 bye\r\n")); err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	f.wantWrites(t, "221 bye\r\n")
	if !f.closed {
		t.Error("connection not closed")
	}
	if _, err := c.Write([]byte("250 late\r\n")); err == nil {
		t.Error("Write after Close succeeded")
	}
}

// TestForceCloseDropsReplies checks that a forced close does not wait to
// send replies held back.
func TestForceCloseDropsReplies(t *testing.T) {
	t.Parallel()
	c, f := newFakeConn(t, "")
	if _, err := c.Write([]byte("250 held\r\n")); err != nil {
		t.Fatal(err)
	}
	c.l.srv.forceClose()
	f.wantWrites(t)
	if !f.closed {
		t.Error("connection not closed")
	}
}

// TestRcptListLogsAsStrings checks that the transaction log line's
// recipients read as a []string of them did before.
func TestRcptListLogsAsStrings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		addrs []string
	}{
		{"none", []string{}},
		{"one", []string{"alice@example.org"}},
		{"two", []string{"alice@example.org", "bob+tag@example.org"}},
		{"specials", []string{"a&b<c>@example.org", `"a b"@example.org`, "dörte@exämple.org", `back\slash="q"@x`}},
	}
	noTime := func(_ []string, a slog.Attr) slog.Attr {
		if a.Key == slog.TimeKey {
			return slog.Attr{}
		}
		return a
	}
	handlers := map[string]func(io.Writer) slog.Handler{
		"text": func(w io.Writer) slog.Handler {
			return slog.NewTextHandler(w, &slog.HandlerOptions{ReplaceAttr: noTime})
		},
		"json": func(w io.Writer) slog.Handler {
			return slog.NewJSONHandler(w, &slog.HandlerOptions{ReplaceAttr: noTime})
		},
	}
	for _, tc := range tests {
		for hname, h := range handlers {
			t.Run(tc.name+"/"+hname, func(t *testing.T) {
				var want, got bytes.Buffer
				slog.New(h(&want)).Info("transaction", "rcpts", tc.addrs)
				l := make(rcptList, len(tc.addrs))
				for i, a := range tc.addrs {
					l[i] = accepted{addr: a}
				}
				slog.New(h(&got)).Info("transaction", "rcpts", l)
				if got.String() != want.String() {
					t.Errorf("logged %q, want %q", got.String(), want.String())
				}
			})
		}
	}
}
