package imapd

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// testTLSConfig returns a server config with a fresh self-signed
// certificate.
func testTLSConfig(t *testing.T) *tls.Config {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		DNSNames:     []string{"localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key}}}
}

func TestTLS(t *testing.T) {
	t.Parallel()
	ip := nonLoopbackIP(t)
	cfg := testTLSConfig(t)
	env := newTestEnv(t, envOptions{server: Options{TLSConfig: cfg}})
	clientTLS := &imapclient.Options{TLSConfig: &tls.Config{InsecureSkipVerify: true}}

	// A remote peer: cleartext refused, STARTTLS then LOGIN accepted.
	plain, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Skipf("Listen(%s) = %v", ip, err)
	}
	go env.srv.Serve(plain) // ends with the env's Shutdown
	c, err := imapclient.DialInsecure(plain.Addr().String(), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	caps, err := c.Capability().Wait()
	if err != nil || !caps.Has(imap.CapStartTLS) {
		t.Errorf("CAPABILITY before STARTTLS = %v, %v, want STARTTLS", caps, err)
	}
	if err := c.Login(testUser, testPassword).Wait(); imapCode(err) != imap.ResponseCodePrivacyRequired {
		t.Errorf("cleartext Login = %v, want NO [PRIVACYREQUIRED]", err)
	}
	st, err := imapclient.DialStartTLS(plain.Addr().String(), clientTLS)
	if err != nil {
		t.Fatalf("DialStartTLS = %v", err)
	}
	defer st.Close()
	if err := st.Login(testUser, testPassword).Wait(); err != nil {
		t.Errorf("Login after STARTTLS = %v", err)
	}

	// Implicit TLS (RFC 8314) with ServeTLS, as the binary serves it.
	ln, err := net.Listen("tcp", net.JoinHostPort(ip.String(), "0"))
	if err != nil {
		t.Fatal(err)
	}
	go env.srv.ServeTLS(ln, cfg) // ends with the env's Shutdown
	it, err := imapclient.DialTLS(ln.Addr().String(), clientTLS)
	if err != nil {
		t.Fatalf("DialTLS = %v", err)
	}
	defer it.Close()
	if err := it.Login(testUser, testPassword).Wait(); err != nil {
		t.Errorf("Login over implicit TLS = %v", err)
	}
	if _, err := it.Select("INBOX", nil).Wait(); err != nil {
		t.Errorf("SELECT over implicit TLS = %v", err)
	}
}
