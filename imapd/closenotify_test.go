package imapd

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"
)

// recordingConn keeps every byte read from the network.
type recordingConn struct {
	net.Conn
	mu   sync.Mutex
	read bytes.Buffer
}

func (c *recordingConn) Read(p []byte) (int, error) {
	n, err := c.Conn.Read(p)
	c.mu.Lock()
	c.read.Write(p[:n])
	c.mu.Unlock()
	return n, err
}

// lastTLSRecordType returns the content type of the last TLS record in
// a stream of TLS 1.2 records (RFC 5246 §6.2.1: type, version, length).
func lastTLSRecordType(t *testing.T, stream []byte) byte {
	t.Helper()
	var last byte
	for len(stream) > 0 {
		if len(stream) < 5 {
			t.Fatalf("truncated TLS record header: % x", stream)
		}
		n := int(stream[3])<<8 | int(stream[4])
		if len(stream) < 5+n {
			t.Fatalf("truncated TLS record: %d bytes of %d", len(stream)-5, n)
		}
		last, stream = stream[0], stream[5+n:]
	}
	return last
}

// After LOGOUT on a connection that went through STARTTLS, the server
// ends TLS with a close_notify alert before closing the socket: RFC 8446
// §6.1 and RFC 5246 §7.2.1 ("the client and the server MUST share
// knowledge that the connection is ending"). Without it, OpenSSL clients
// ("openssl s_client -starttls imap") report "unexpected eof while
// reading" and exit 1, and a client cannot tell the end of the session
// from a truncation attack. Implicit TLS already sent it.
func TestStartTLSLogoutSendsCloseNotify(t *testing.T) {
	t.Parallel()
	pki := newInteropPKI(t)
	env := newTestEnv(t, envOptions{server: Options{TLSConfig: pki.config}})
	tcp, err := net.DialTimeout("tcp", env.addr, waitTimeout)
	if err != nil {
		t.Fatal(err)
	}
	defer tcp.Close()
	if err := tcp.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(tcp)
	line := func(r *bufio.Reader) string {
		t.Helper()
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("read: %v (after %q)", err, l)
		}
		return strings.TrimRight(l, "\r\n")
	}
	line(br) // greeting
	if _, err := io.WriteString(tcp, "a STARTTLS\r\n"); err != nil {
		t.Fatal(err)
	}
	if l := line(br); !strings.HasPrefix(l, "a OK") {
		t.Fatalf("STARTTLS: %s", l)
	}
	pem, err := os.ReadFile(pki.caFile)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	// TLS 1.2, whose record headers show the content type of every
	// record, alerts included (TLS 1.3 hides it inside the encryption).
	rec := &recordingConn{Conn: tcp}
	tc := tls.Client(rec, &tls.Config{RootCAs: roots, ServerName: "localhost", MaxVersion: tls.VersionTLS12})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("handshake: %v", err)
	}
	rec.mu.Lock()
	rec.read.Reset()
	rec.mu.Unlock()
	tr := bufio.NewReader(tc)
	if _, err := io.WriteString(tc, "b LOGIN "+testUser+" "+testPassword+"\r\nc LOGOUT\r\n"); err != nil {
		t.Fatal(err)
	}
	for l := line(tr); !strings.HasPrefix(l, "c "); l = line(tr) {
	}
	if rest, err := io.ReadAll(tr); err != nil || len(rest) > 0 {
		t.Fatalf("after LOGOUT: %q, %v; want the end of the stream", rest, err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	const alert = 21 // RFC 5246 §6.2.1 ContentType alert
	if typ := lastTLSRecordType(t, rec.read.Bytes()); typ != alert {
		t.Errorf("the server's last TLS record after LOGOUT has type %d, want an alert (close_notify, %d)", typ, alert)
	}
}
