package pop3d

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

// testPKI is a test CA and a server certificate it signed for localhost
// and 127.0.0.1, so that clients verify the server as in production.
type testPKI struct {
	config *tls.Config // the server's
	caFile string      // PEM of the CA certificate
	pool   *x509.CertPool
}

func newTestPKI(t testing.TB) *testPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pushmail pop3d test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(2),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	p := &testPKI{
		config: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, caDER}, PrivateKey: key}}},
		caFile: filepath.Join(t.TempDir(), "ca.pem"),
		pool:   x509.NewCertPool(),
	}
	p.pool.AddCert(caCert)
	if err := os.WriteFile(p.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// serveTLS starts an implicit-TLS listener on e's server and returns its
// address.
func (e *testEnv) serveTLS(t testing.TB, config *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- e.srv.ServeTLS(ln, config) }()
	t.Cleanup(func() {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("close TLS listener: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("ServeTLS() = %v", err)
		}
	})
	return ln.Addr().String()
}

// From a non-loopback address without TLS, no password may be sent
// (RFC 2595 §2): USER, PASS and AUTH answer -ERR [AUTH] and CAPA offers
// neither USER nor SASL, but STLS. After STLS (RFC 2595 §4) the same
// connection logs in; CAPA offers USER and SASL PLAIN and no STLS.
func TestPlaintextPasswordsNeedTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	e := newTestEnv(t, envOptions{server: Options{TLSConfig: pki.config}, listener: fromRemote})
	e.deliver(t, testMessage(1))
	c := e.dial(t)
	c.send("CAPA")
	c.expect(`^\+OK`)
	capa := c.multi()
	if slices.Contains(capa, "USER") || slices.Contains(capa, "SASL PLAIN") || !slices.Contains(capa, "STLS") {
		t.Errorf("CAPA on a remote plaintext connection = %q, want STLS and no USER or SASL", capa)
	}
	c.cmd("USER "+testUser, `^-ERR \[AUTH\] Plaintext authentication disallowed`)
	c.cmd("PASS "+testPassword, `^-ERR USER first$`)
	c.cmd("AUTH PLAIN AGFsaWNlQGxvY2FsaG9zdABzZWNyZXQ=", `^-ERR \[AUTH\] Plaintext authentication disallowed`)
	c.send("AUTH")
	c.expect(`^\+OK`)
	if got := c.multi(); len(got) != 0 {
		t.Errorf("AUTH lists %q on a plaintext connection, want nothing", got)
	}

	c.cmd("STLS", `^\+OK Begin TLS negotiation$`)
	tc := tls.Client(c.conn, &tls.Config{RootCAs: pki.pool, ServerName: "localhost"})
	if err := tc.Handshake(); err != nil {
		t.Fatalf("TLS handshake after STLS: %v", err)
	}
	c = newClient(t, tc)
	c.send("CAPA")
	c.expect(`^\+OK`)
	capa = c.multi()
	if !slices.Contains(capa, "USER") || !slices.Contains(capa, "SASL PLAIN") || slices.Contains(capa, "STLS") {
		t.Errorf("CAPA after STLS = %q, want USER and SASL PLAIN, no STLS", capa)
	}
	c.cmd("STLS", `^-ERR Command not permitted when TLS active$`)
	c.cmd("USER "+testUser, `^\+OK`)
	c.cmd("PASS "+testPassword, `^\+OK Logged in, 1 messages`)
	c.cmd("QUIT", `^\+OK`)

	// With AllowInsecureAuth, the operator's choice, a remote plaintext
	// login works.
	e2 := newTestEnv(t, envOptions{server: Options{AllowInsecureAuth: true}, listener: fromRemote})
	c = e2.dial(t)
	c.cmd("USER "+testUser, `^\+OK`)
	c.cmd("PASS "+testPassword, `^\+OK Logged in`)
}

// Commands pipelined after STLS would be read as if they had come over
// TLS (CVE-2011-0411): the session ends instead.
func TestSTLSInjection(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	e := newTestEnv(t, envOptions{server: Options{TLSConfig: pki.config}})
	c := e.dial(t)
	if _, err := c.conn.Write([]byte("STLS\r\nUSER " + testUser + "\r\n")); err != nil {
		t.Fatal(err)
	}
	c.expect(`^-ERR No data may follow STLS$`)
	c.expectClosed()
}

// Implicit TLS (POP3S, RFC 8314): the certificate verifies against the
// CA, TLS 1.1 is refused whatever the config says, and the session works.
func TestImplicitTLS(t *testing.T) {
	t.Parallel()
	pki := newTestPKI(t)
	e := newTestEnv(t, envOptions{})
	e.deliver(t, testMessage(1))
	addr := e.serveTLS(t, pki.config)
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.pool, ServerName: "localhost"})
	if err != nil {
		t.Fatalf("tls.Dial() = %v", err)
	}
	c := newClient(t, conn)
	c.expect(`^\+OK pushmail POP3 server ready$`)
	c.send("CAPA")
	c.expect(`^\+OK`)
	if capa := c.multi(); slices.Contains(capa, "STLS") || !slices.Contains(capa, "USER") {
		t.Errorf("CAPA over implicit TLS = %q", capa)
	}
	c.cmd("USER "+testUser, `^\+OK`)
	c.cmd("PASS "+testPassword, `^\+OK Logged in, 1 messages`)
	c.cmd("RETR 1", `^\+OK`)
	c.multi()
	c.cmd("QUIT", `^\+OK`)

	if _, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pki.pool, ServerName: "localhost", MaxVersion: tls.VersionTLS11}); err == nil {
		t.Error("a TLS 1.1 handshake succeeded, want it refused (RFC 8996)")
	}
}
