package imapd

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-sasl"
)

func imapCode(err error) imap.ResponseCode {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Code
	}
	return ""
}

func imapType(err error) imap.StatusResponseType {
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie.Type
	}
	return ""
}

func TestLogin(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	tests := []struct {
		name     string
		user     string
		password string
		wantCode imap.ResponseCode // "" for success
	}{
		{"good", testUser, testPassword, ""},
		{"user case-insensitive", "Alice@LOCALHOST", testPassword, ""},
		{"wrong password", testUser, "wrong", imap.ResponseCodeAuthenticationFailed},
		{"unknown user", "nobody@localhost", testPassword, imap.ResponseCodeAuthenticationFailed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := env.dial(t, nil)
			err := c.Login(tt.user, tt.password).Wait()
			if got := imapCode(err); (err == nil) != (tt.wantCode == "") || got != tt.wantCode {
				t.Errorf("Login(%s) = %v, want code %q", tt.user, err, tt.wantCode)
			}
		})
	}
}

func TestAuthenticatePlain(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.dial(t, nil)
	if err := c.Authenticate(sasl.NewPlainClient("", testUser, testPassword)); err != nil {
		t.Fatalf("AUTHENTICATE PLAIN = %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT INBOX after AUTHENTICATE = %v", err)
	}
	c2 := env.dial(t, nil)
	if err := c2.Authenticate(sasl.NewPlainClient("", testUser, "wrong")); imapCode(err) != imap.ResponseCodeAuthenticationFailed {
		t.Errorf("AUTHENTICATE PLAIN with a wrong password = %v, want NO [AUTHENTICATIONFAILED]", err)
	}
}

func TestCapabilities(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.login(t, nil)
	caps, err := c.Capability().Wait()
	if err != nil {
		t.Fatalf("CAPABILITY = %v", err)
	}
	for _, want := range []imap.Cap{
		imap.CapIMAP4rev1, imap.CapIMAP4rev2, imap.CapIdle, imap.CapNamespace, imap.CapUIDPlus,
		imap.CapMove, imap.CapUnselect, imap.CapESearch, imap.CapListExtended, imap.CapListStatus,
		imap.CapStatusSize, imap.CapSpecialUse, imap.CapCreateSpecialUse, imap.CapLiteralPlus,
		imap.CapBinary, imap.CapChildren, imap.CapSASLIR, imap.CapEnable, imap.CapUTF8Accept,
		"APPENDLIMIT=26214400",
	} {
		if !caps.Has(want) {
			t.Errorf("CAPABILITY lacks %s; has %v", want, caps)
		}
	}
}

// nonLoopbackIP returns an address of this host that is not loopback.
func nonLoopbackIP(t *testing.T) net.IP {
	t.Helper()
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Skipf("InterfaceAddrs() = %v", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok && !ipn.IP.IsLoopback() && ipn.IP.To4() != nil {
			return ipn.IP
		}
	}
	t.Skip("no non-loopback IPv4 address to test cleartext refusal")
	return nil
}

// RFC 9051 §11.1: no password over cleartext from a remote peer, unless
// the operator says so.
func TestCleartextLoginRefusedOffLoopback(t *testing.T) {
	t.Parallel()
	ip := nonLoopbackIP(t)
	for _, allow := range []bool{false, true} {
		env := newTestEnv(t, envOptions{server: Options{AllowInsecureAuth: allow}})
		ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
		if err != nil {
			t.Skipf("Listen(%s) = %v", ip, err)
		}
		go env.srv.Serve(ln) // ends with the env's Shutdown
		c, err := imapclient.DialInsecure(ln.Addr().String(), nil)
		if err != nil {
			t.Fatalf("Dial = %v", err)
		}
		defer c.Close()
		err = c.Login(testUser, testPassword).Wait()
		if allow {
			if err != nil {
				t.Errorf("AllowInsecureAuth: Login from %s = %v, want OK", ip, err)
			}
			continue
		}
		if imapCode(err) != imap.ResponseCodePrivacyRequired {
			t.Errorf("Login from %s without TLS = %v, want NO [PRIVACYREQUIRED]", ip, err)
		}
	}
}

type fakeConn struct {
	net.Conn
	remote net.Addr
}

func (c fakeConn) RemoteAddr() net.Addr { return c.remote }

func TestAuthAllowed(t *testing.T) {
	t.Parallel()
	remote := &net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 4000}
	tests := []struct {
		name  string
		conn  net.Conn
		allow bool
		want  bool
	}{
		{"loopback v4", fakeConn{remote: &net.TCPAddr{IP: net.ParseIP("127.0.0.1")}}, false, true},
		{"loopback v6", fakeConn{remote: &net.TCPAddr{IP: net.IPv6loopback}}, false, true},
		{"remote cleartext", fakeConn{remote: remote}, false, false},
		{"remote cleartext allowed", fakeConn{remote: remote}, true, true},
		{"remote TLS", tls.Server(fakeConn{remote: remote}, &tls.Config{}), false, true},
	}
	for _, tt := range tests {
		if got := authAllowed(tt.conn, tt.allow); got != tt.want {
			t.Errorf("%s: authAllowed() = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestConnectionsPerIPLimited(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{server: Options{MaxConnsPerIP: 2}})
	env.dial(t, nil)
	second := env.raw(t)
	greeting := func() string {
		t.Helper()
		conn, err := net.Dial("tcp", env.addr)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if err := conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
			t.Fatal(err)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil {
			t.Fatalf("read greeting: %v", err)
		}
		return line
	}
	if line := greeting(); !strings.HasPrefix(line, "* BYE [LIMIT]") {
		t.Errorf("third connection greeting = %q, want * BYE [LIMIT]", line)
	}
	// A closed connection frees its slot: the server closes the socket
	// only after the session has ended.
	second.send("LOGOUT")
	if _, err := io.ReadAll(second.r); err != nil {
		t.Fatalf("read to EOF after LOGOUT: %v", err)
	}
	if line := greeting(); !strings.HasPrefix(line, "* OK") {
		t.Errorf("connection after a LOGOUT: greeting %q, want * OK", line)
	}
}
