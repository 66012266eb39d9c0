package proxylisten

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	proxyproto "github.com/pires/go-proxyproto"
)

// proxyAddr is the trusted "proxy": a second loopback address, so that a
// dial from 127.0.0.1 is an untrusted source.
var proxyAddr = &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}

// listen starts a Listener on 127.0.0.1 trusting only proxyAddr; refused
// connections' reasons arrive on the returned channel.
func listen(t *testing.T, timeout time.Duration) (*Listener, <-chan string) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	reasons := make(chan string, 16)
	l := New(ln, Options{
		Trusted:       []netip.Prefix{netip.MustParsePrefix("127.0.0.2/32")},
		HeaderTimeout: timeout,
		Rejected:      func(r string) { reasons <- r },
	})
	t.Cleanup(func() {
		if err := l.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	return l, reasons
}

func dial(t *testing.T, l *Listener, from *net.TCPAddr) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: from, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	return c
}

// accept returns the next accepted connection, failing after 10 s.
func accept(t *testing.T, l *Listener) net.Conn {
	t.Helper()
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := l.Accept()
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.err != nil {
			t.Fatalf("Accept() = %v", r.err)
		}
		t.Cleanup(func() { r.c.Close() })
		if err := r.c.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
			t.Fatal(err)
		}
		return r.c
	case <-time.After(10 * time.Second):
		t.Fatal("Accept did not return")
		return nil
	}
}

func TestProxyHeaderGivesClientAddress(t *testing.T) {
	client4 := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40001}
	server4 := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 993}
	client6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::7"), Port: 40002}
	server6 := &net.TCPAddr{IP: net.ParseIP("2001:db8::1"), Port: 143}
	for _, tc := range []struct {
		name            string
		header          *proxyproto.Header
		after           string // client bytes written with the header
		remote, local   string
		fromSocketPeers bool // LOCAL: the connection's own addresses
	}{
		{name: "v1 TCP4", header: proxyproto.HeaderProxyFromAddrs(1, client4, server4), remote: "203.0.113.7:40001", local: "192.0.2.1:993"},
		{name: "v2 TCP6", header: proxyproto.HeaderProxyFromAddrs(2, client6, server6), remote: "[2001:db8::7]:40002", local: "[2001:db8::1]:143"},
		{name: "v1 with client bytes in the same write", header: proxyproto.HeaderProxyFromAddrs(1, client4, server4), after: "a1 CAPABILITY\r\n", remote: "203.0.113.7:40001", local: "192.0.2.1:993"},
		{name: "v2 with client bytes in the same write", header: proxyproto.HeaderProxyFromAddrs(2, client6, server6), after: "EHLO x\r\n", remote: "[2001:db8::7]:40002", local: "[2001:db8::1]:143"},
		{name: "v2 LOCAL (health check)", header: &proxyproto.Header{Version: 2, Command: proxyproto.LOCAL}, fromSocketPeers: true},
		{name: "v1 UNKNOWN", header: &proxyproto.Header{Version: 1, Command: proxyproto.PROXY, TransportProtocol: proxyproto.UNSPEC}, fromSocketPeers: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, reasons := listen(t, 0)
			c := dial(t, l, proxyAddr)
			raw, err := tc.header.Format()
			if err != nil {
				t.Fatal(err)
			}
			if _, err := c.Write(append(raw, tc.after...)); err != nil {
				t.Fatal(err)
			}
			sc := accept(t, l)
			remote, local := tc.remote, tc.local
			if tc.fromSocketPeers {
				remote, local = c.LocalAddr().String(), c.RemoteAddr().String()
			}
			if got := sc.RemoteAddr().String(); got != remote {
				t.Errorf("RemoteAddr() = %s, want %s", got, remote)
			}
			if got := sc.LocalAddr().String(); got != local {
				t.Errorf("LocalAddr() = %s, want %s", got, local)
			}
			// The bytes after the header, then the connection's own.
			if _, err := c.Write([]byte("more\r\n")); err != nil {
				t.Fatal(err)
			}
			want := tc.after + "more\r\n"
			got := make([]byte, len(want))
			if _, err := io.ReadFull(sc, got); err != nil {
				t.Fatalf("read after the header: %v", err)
			}
			if string(got) != want {
				t.Errorf("read after the header = %q, want %q", got, want)
			}
			select {
			case r := <-reasons:
				t.Errorf("refused (%s)", r)
			default:
			}
		})
	}
}

func TestProxyRefused(t *testing.T) {
	client := &net.TCPAddr{IP: net.ParseIP("203.0.113.7"), Port: 40001}
	server := &net.TCPAddr{IP: net.ParseIP("192.0.2.1"), Port: 25}
	v2 := func(tp proxyproto.AddressFamilyAndProtocol) []byte {
		h := proxyproto.HeaderProxyFromAddrs(2, client, server)
		h.TransportProtocol = tp
		if tp == proxyproto.UDPv4 {
			h.SourceAddr = &net.UDPAddr{IP: client.IP, Port: client.Port}
			h.DestinationAddr = &net.UDPAddr{IP: server.IP, Port: server.Port}
		}
		b, err := h.Format()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	valid, err := proxyproto.HeaderProxyFromAddrs(1, client, server).Format()
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name   string
		from   *net.TCPAddr
		send   []byte
		reason string
	}{
		{"untrusted source with a valid header", nil, valid, ReasonUntrusted},
		{"untrusted source without a header", nil, []byte("EHLO x\r\n"), ReasonUntrusted},
		{"trusted source without a header", proxyAddr, []byte("EHLO mail.example.org\r\n"), ReasonNoHeader},
		{"trusted source, silent past the timeout", proxyAddr, nil, ReasonNoHeader},
		// HAProxy proxy-protocol.txt §2.1: the header comes in one
		// piece; a receiver may drop a partial one.
		{"trusted source, header cut short", proxyAddr, []byte("PROXY TCP4 203.0.113.7"), ReasonBadHeader},
		{"malformed v1", proxyAddr, []byte("PROXY TCP4 203.0.113.7 nonsense\r\n"), ReasonBadHeader},
		{"v2 UDP", proxyAddr, v2(proxyproto.UDPv4), ReasonBadHeader},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l, reasons := listen(t, 200*time.Millisecond)
			c := dial(t, l, tc.from)
			if len(tc.send) > 0 {
				if _, err := c.Write(tc.send); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case r := <-reasons:
				if r != tc.reason {
					t.Errorf("refused for %q, want %q", r, tc.reason)
				}
			case <-time.After(10 * time.Second):
				t.Fatal("connection not refused")
			}
			// Closed without a byte.
			var buf [1]byte
			if n, err := c.Read(buf[:]); n != 0 || err == nil || isTimeout(err) {
				t.Errorf("client read = %d, %v; want the connection closed", n, err)
			}
			// Accept still works for a proxied client.
			good := dial(t, l, proxyAddr)
			if _, err := good.Write(valid); err != nil {
				t.Fatal(err)
			}
			if got := accept(t, l).RemoteAddr().String(); got != client.String() {
				t.Errorf("next RemoteAddr() = %s, want %s", got, client)
			}
		})
	}
}

// TestProxyCloseWithPending: Close ends a header read in progress and
// Accept then reports net.ErrClosed.
func TestProxyCloseWithPending(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	l := New(ln, Options{Trusted: []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8")}, HeaderTimeout: time.Hour})
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("PROXY ")); err != nil { // and then nothing
		t.Fatal(err)
	}
	if err := c.SetReadDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	closed := make(chan error, 1)
	go func() { closed <- l.Close() }()
	// The pending connection is closed by Close.
	var buf [1]byte
	if n, err := c.Read(buf[:]); n != 0 || err == nil || isTimeout(err) {
		t.Errorf("client read = %d, %v; want the connection closed", n, err)
	}
	select {
	case err := <-closed:
		if err != nil {
			t.Errorf("Close() = %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not return")
	}
	if _, err := l.Accept(); !errors.Is(err, net.ErrClosed) {
		t.Errorf("Accept() after Close = %v, want net.ErrClosed", err)
	}
}
