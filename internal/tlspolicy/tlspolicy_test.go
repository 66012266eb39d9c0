package tlspolicy

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestEnforce(t *testing.T) {
	if Enforce(nil) != nil {
		t.Error("Enforce(nil) != nil")
	}
	for _, tc := range []struct {
		name      string
		min, want uint16
	}{
		{"unset", 0, tls.VersionTLS12},
		{"TLS 1.0", tls.VersionTLS10, tls.VersionTLS12},
		{"TLS 1.1", tls.VersionTLS11, tls.VersionTLS12},
		{"TLS 1.2 kept", tls.VersionTLS12, tls.VersionTLS12},
		{"TLS 1.3 kept", tls.VersionTLS13, tls.VersionTLS13},
	} {
		in := &tls.Config{MinVersion: tc.min}
		got := Enforce(in)
		if got.MinVersion != tc.want {
			t.Errorf("%s: MinVersion = %x, want %x", tc.name, got.MinVersion, tc.want)
		}
		if in.MinVersion != tc.min {
			t.Errorf("%s: Enforce changed the caller's config", tc.name)
		}
	}
}

func TestEnforceCipherSuites(t *testing.T) {
	cbc := tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA
	gcm := tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384
	chacha := tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256
	for _, tc := range []struct {
		name     string
		in, want []uint16
	}{
		{"unset: the AEAD list, not Go's defaults", nil, CipherSuites()},
		{"CBC only: the AEAD list", []uint16{cbc}, CipherSuites()},
		{"mixed: CBC dropped, order kept", []uint16{chacha, cbc, gcm}, []uint16{chacha, gcm}},
		{"AEAD subset kept", []uint16{gcm}, []uint16{gcm}},
	} {
		in := &tls.Config{MinVersion: tls.VersionTLS12, CipherSuites: slices.Clone(tc.in)}
		got := Enforce(in)
		if !slices.Equal(got.CipherSuites, tc.want) {
			t.Errorf("%s: CipherSuites = %v, want %v", tc.name, names(got.CipherSuites), names(tc.want))
		}
		if !slices.Equal(in.CipherSuites, tc.in) {
			t.Errorf("%s: Enforce changed the caller's config", tc.name)
		}
	}
	for _, s := range CipherSuites() {
		if name := tls.CipherSuiteName(s); !isECDHEAEAD(name) {
			t.Errorf("CipherSuites() holds %s, which is not ECDHE with an AEAD", name)
		}
	}
}

func isECDHEAEAD(name string) bool {
	return strings.HasPrefix(name, "TLS_ECDHE_") &&
		(strings.Contains(name, "_GCM_") || strings.HasSuffix(name, "_CHACHA20_POLY1305_SHA256"))
}

func names(ids []uint16) []string {
	var out []string
	for _, id := range ids {
		out = append(out, tls.CipherSuiteName(id))
	}
	return out
}

// TestHandshake: a server configured through Enforce refuses a TLS 1.2
// client that offers only a CBC-SHA1 suite, accepts one offering an AEAD
// suite, and TLS 1.3 is unaffected.
func TestHandshake(t *testing.T) {
	t.Parallel()
	cert := selfSigned(t)
	// The server config starts from Go's defaults, CBC suites included.
	server := Enforce(&tls.Config{Certificates: []tls.Certificate{cert}})
	for _, tc := range []struct {
		name    string
		client  *tls.Config
		wantErr bool
		suite   uint16
	}{
		{"TLS 1.2, CBC-SHA1 only", &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, true, 0},
		{"TLS 1.2, CBC-SHA256 only", &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256}}, true, 0},
		{"TLS 1.2, AES-GCM", &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256}}, false, tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256},
		{"TLS 1.2, ChaCha20-Poly1305", &tls.Config{MaxVersion: tls.VersionTLS12,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256}}, false, tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256},
		{"TLS 1.3, CBC-only 1.2 list ignored", &tls.Config{MinVersion: tls.VersionTLS13,
			CipherSuites: []uint16{tls.TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA}}, false, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.client.InsecureSkipVerify = true // the test's own self-signed certificate
			state, err := handshake(t, server, tc.client)
			if tc.wantErr {
				if err == nil {
					t.Fatalf("handshake succeeded with %s, want failure", tls.CipherSuiteName(state.CipherSuite))
				}
				return
			}
			if err != nil {
				t.Fatalf("handshake: %v, want success", err)
			}
			if tc.suite != 0 && state.CipherSuite != tc.suite {
				t.Errorf("suite = %s, want %s", tls.CipherSuiteName(state.CipherSuite), tls.CipherSuiteName(tc.suite))
			}
			if tc.client.MinVersion == tls.VersionTLS13 && state.Version != tls.VersionTLS13 {
				t.Errorf("version = %x, want TLS 1.3", state.Version)
			}
		})
	}
}

// handshake runs one TLS handshake over loopback TCP and returns the
// client's view of it.
func handshake(t *testing.T, server, client *tls.Config) (tls.ConnectionState, error) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	done := make(chan struct{})
	go func() {
		defer close(done)
		c, err := ln.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(10 * time.Second))
		tls.Server(c, server).Handshake() // the client reports the outcome
	}()
	defer func() { <-done }()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(10 * time.Second))
	tc := tls.Client(c, client)
	err = tc.Handshake()
	return tc.ConnectionState(), err
}

func selfSigned(t *testing.T) tls.Certificate {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "localhost"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		DNSNames:     []string{"localhost"},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}
