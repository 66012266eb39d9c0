package imapd

import (
	"bufio"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// interopPKI is a test CA and a server certificate it signed for
// localhost and 127.0.0.1, so that third-party clients verify the server
// as they would in production instead of being told to skip verification.
type interopPKI struct {
	config   *tls.Config // the server's
	caFile   string      // PEM of the CA certificate
	certFile string      // PEM of the server's certificate alone
}

func newInteropPKI(t *testing.T) *interopPKI {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "pushmail test CA"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		IsCA:                  true,
		BasicConstraintsValid: true,
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
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
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "localhost"},
		DNSNames:              []string{"localhost"},
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	p := &interopPKI{
		config:   &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der, caDER}, PrivateKey: key}}},
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
	}
	writePEM(t, p.caFile, caDER)
	writePEM(t, p.certFile, der)
	return p
}

func writePEM(t *testing.T, path string, der []byte) {
	t.Helper()
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlsEnv is a testEnv whose listener offers STARTTLS, with a second
// listener for implicit TLS (RFC 8314), as "pushmail serve" runs them.
type tlsEnv struct {
	*testEnv
	pki     *interopPKI
	tlsAddr string // implicit TLS
}

func newTLSEnv(t *testing.T) *tlsEnv {
	t.Helper()
	pki := newInteropPKI(t)
	env := newTestEnv(t, envOptions{server: Options{TLSConfig: pki.config}})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("Listen() = %v", err)
	}
	served := make(chan error, 1)
	go func() { served <- env.srv.ServeTLS(ln, pki.config) }()
	// Runs before the env's Shutdown (cleanups run last first).
	t.Cleanup(func() {
		if err := ln.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			t.Errorf("close TLS listener: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("ServeTLS() = %v, want nil once its listener is closed", err)
		}
	})
	return &tlsEnv{testEnv: env, pki: pki, tlsAddr: ln.Addr().String()}
}

// lookTool returns the path of a third-party client or skips the test:
// test.sh installs them on CI.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package %s; test.sh installs it)", name, pkg)
	}
	return path
}

// runSynced runs a client script that stops at checkpoints to let the
// test look at the server: the script prints "SYNC name" and waits for a
// line on its stdin; runSynced runs hooks[name], then answers "ok", or
// "stop" once the test has failed. It fails the test unless the script
// exits 0 with "PASS" as its last line, and returns its output.
func runSynced(t *testing.T, cmd *exec.Cmd, hooks map[string]func()) []string {
	t.Helper()
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	var out []string
	seen := map[string]bool{}
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out = append(out, line)
		name, ok := strings.CutPrefix(line, "SYNC ")
		if !ok {
			continue
		}
		seen[name] = true
		hook, ok := hooks[name]
		if !ok {
			t.Errorf("script stopped at unknown checkpoint %q", name)
		} else {
			hook()
		}
		answer := "ok\n"
		if t.Failed() {
			answer = "stop\n"
		}
		if _, err := io.WriteString(stdin, answer); err != nil {
			t.Errorf("answer checkpoint %s: %v", name, err)
		}
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil || len(out) == 0 || out[len(out)-1] != "PASS" {
		t.Fatalf("%s: %v\nstdout:\n%s\nstderr:\n%s", filepath.Base(cmd.Path), err, strings.Join(out, "\n"), stderr.String())
	}
	for name := range hooks {
		if !seen[name] {
			t.Errorf("script passed without stopping at checkpoint %q", name)
		}
	}
	return out
}

// checkFlags fails the test unless the messages in box have exactly the
// given flags, by UID (order ignored).
func (e *testEnv) checkFlags(t testing.TB, box string, want map[imap.UID][]string) {
	t.Helper()
	got := map[imap.UID][]string{}
	for _, m := range e.storeMessages(t, box) {
		got[m.UID] = m.Flags
	}
	for uid, w := range want {
		g, ok := got[uid]
		if !ok {
			t.Errorf("%s on the server has no UID %d", box, uid)
			continue
		}
		g, w = slices.Sorted(slices.Values(g)), slices.Sorted(slices.Values(w))
		if !slices.Equal(g, w) {
			t.Errorf("%s UID %d on the server has flags %v, want %v", box, uid, g, w)
		}
	}
}

// checkMailboxes fails the test unless the user has exactly the named
// mailboxes.
func (e *testEnv) checkMailboxes(t testing.TB, want ...string) {
	t.Helper()
	mbs, err := e.store.Mailboxes(context.Background(), e.user.ID)
	if err != nil {
		t.Fatalf("Mailboxes() = %v", err)
	}
	var got []string
	for _, mb := range mbs {
		got = append(got, mb.Name)
	}
	slices.Sort(got)
	want = slices.Sorted(slices.Values(want))
	if !slices.Equal(got, want) {
		t.Errorf("the server has mailboxes %q, want %q", got, want)
	}
}

// internalDate returns the stored INTERNALDATE of a message.
func (e *testEnv) internalDate(t testing.TB, box string, uid imap.UID) time.Time {
	t.Helper()
	var date time.Time
	err := e.store.Messages(context.Background(), e.mailbox(t, box).ID, mailstore.UIDSetOf(mailstore.UID(uid)), mailstore.FetchOptions{}, func(m *mailstore.Message) error {
		date = m.InternalDate
		return nil
	})
	if err != nil {
		t.Fatalf("Messages(%s, %d) = %v", box, uid, err)
	}
	if date.IsZero() {
		t.Fatalf("%s has no UID %d", box, uid)
	}
	return date
}
