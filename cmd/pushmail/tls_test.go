package main

import (
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// writeCert writes a fresh self-signed certificate for 127.0.0.1 and
// returns its PEM.
func writeCert(t *testing.T, certFile, keyFile string) []byte {
	t.Helper()
	certPEM, keyPEM, err := selfSignedCert([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	// Write beside, then rename: the server never reads a half-written file.
	for _, f := range []struct {
		path string
		data []byte
	}{{keyFile, keyPEM}, {certFile, certPEM}} {
		if err := os.WriteFile(f.path+".new", f.data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(f.path+".new", f.path); err != nil {
			t.Fatal(err)
		}
	}
	return certPEM
}

func trusting(t *testing.T, certPEM []byte) *tls.Config {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(certPEM) {
		t.Fatal("bad PEM")
	}
	return &tls.Config{RootCAs: pool, ServerName: "localhost", MinVersion: tls.VersionTLS12}
}

// TestCertificateReloadOnSIGHUP: after the files change and SIGHUP, a new
// TLS handshake gets the new certificate, and a session opened before
// keeps working.
func TestCertificateReloadOnSIGHUP(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	certFile, keyFile := filepath.Join(data, "cert.pem"), filepath.Join(data, "key.pem")
	oldPEM := writeCert(t, certFile, keyFile)
	srv := startServer(t, data, "--imaps", "127.0.0.1:0", "--tls-cert", certFile, "--tls-key", keyFile)
	cli(t, "pw\n", "user", "add", "tls@localhost", "--data", data, "--password-stdin")

	before, err := imapclient.DialTLS(srv.addr("imaps"), &imapclient.Options{TLSConfig: trusting(t, oldPEM)})
	if err != nil {
		t.Fatalf("TLS with the first certificate: %v", err)
	}
	defer before.Close()
	if err := before.Login("tls@localhost", "pw").Wait(); err != nil {
		t.Fatal(err)
	}

	newPEM := writeCert(t, certFile, keyFile)
	if err := srv.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	srv.waitLog(t, "TLS certificate reloaded")

	after, err := tls.Dial("tcp", srv.addr("imaps"), trusting(t, newPEM))
	if err != nil {
		t.Fatalf("handshake after SIGHUP does not present the new certificate: %v", err)
	}
	after.Close()
	if c, err := tls.Dial("tcp", srv.addr("imaps"), trusting(t, oldPEM)); err == nil {
		c.Close()
		t.Error("handshake after SIGHUP still presents the old certificate")
	}
	if err := before.Noop().Wait(); err != nil {
		t.Errorf("session from before the reload: NOOP = %v", err)
	}

	// A bad file on SIGHUP keeps the working certificate.
	os.WriteFile(certFile, []byte("not a certificate"), 0o600)
	srv.cmd.Process.Signal(syscall.SIGHUP)
	srv.waitLog(t, "reload failed")
	if c, err := tls.Dial("tcp", srv.addr("imaps"), trusting(t, newPEM)); err != nil {
		t.Errorf("after a failed reload the server lost its certificate: %v", err)
	} else {
		c.Close()
	}
}

// TestDevTLS: --dev-tls makes a certificate in the data directory that a
// client can trust with -CAfile, and serves implicit-TLS IMAP with it.
func TestDevTLS(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	srv := startServer(t, data, "--imaps", "127.0.0.1:0", "--dev-tls")
	pem, err := os.ReadFile(filepath.Join(data, "dev-tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	c, err := tls.Dial("tcp", srv.addr("imaps"), trusting(t, pem))
	if err != nil {
		t.Fatalf("TLS with the dev certificate: %v", err)
	}
	c.Close()
}

// TestPerProtocolCertificates: --imap-tls-cert overrides --tls-cert for
// IMAP only; SMTP keeps the global one.
func TestPerProtocolCertificates(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	global, imapOnly := filepath.Join(data, "global"), filepath.Join(data, "imap")
	globalPEM := writeCert(t, global+".pem", global+".key")
	imapPEM := writeCert(t, imapOnly+".pem", imapOnly+".key")
	srv := startServer(t, data, "--imaps", "127.0.0.1:0", "--tls-cert", global+".pem", "--tls-key", global+".key",
		"--imap-tls-cert", imapOnly+".pem", "--imap-tls-key", imapOnly+".key")

	if c, err := tls.Dial("tcp", srv.addr("imaps"), trusting(t, imapPEM)); err != nil {
		t.Errorf("IMAPS does not present the IMAP certificate: %v", err)
	} else {
		c.Close()
	}
	sc, err := smtp.DialStartTLS(srv.addr("smtp"), trusting(t, globalPEM))
	if err != nil {
		t.Fatalf("SMTP STARTTLS does not present the global certificate: %v", err)
	}
	sc.Close()
}
