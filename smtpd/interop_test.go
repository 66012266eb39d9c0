package smtpd

import (
	"bytes"
	"context"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Interop tests run third-party clients against the server. They skip
// when the tool is not installed (the project's test script installs it).

// tool returns the path of name, or skips the test.
func tool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed: %v", name, err)
	}
	return path
}

// run runs a command with stdin and returns its combined output; it
// fails the test if the command fails.
func run(t *testing.T, stdin string, name string, args ...string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdin = strings.NewReader(stdin)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("%s %s: %v\n%s", filepath.Base(name), strings.Join(args, " "), err, out.String())
	}
	return out.String()
}

func hostPort(t *testing.T, addr string) (string, string) {
	t.Helper()
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("split %q: %v", addr, err)
	}
	return host, port
}

func TestSwaks(t *testing.T) {
	t.Parallel()
	swaks := tool(t, "swaks")
	e := newEnv(t, envConfig{remote: true}) // submission needs STARTTLS
	for _, tc := range []struct {
		name     string
		role     role
		from, to string
		args     []string
		with     string // the Received protocol
	}{
		{"smtp", roleMX, "sender@remote.example", "alice@example.org", nil, "ESMTP"},
		{"lmtp", roleLMTP, "sender@remote.example", "bob@example.org", []string{"--protocol", "LMTP"}, "LMTP"},
		{"submission with STARTTLS and AUTH PLAIN", roleSubmission, "carol@example.org", "dave@example.org",
			[]string{"-tls", "-a", "PLAIN", "-au", "carol@example.org", "-ap", "carol-password"}, "ESMTPSA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			host, port := hostPort(t, e.addr[tc.role])
			subject := "swaks " + tc.name
			args := append([]string{
				"--server", host, "--port", port, "--helo", "swaks.test", "--timeout", "30",
				"--from", tc.from, "--to", tc.to,
				"--header", "Subject: " + subject, "--body", "Hello from swaks.",
			}, tc.args...)
			run(t, "", swaks, args...)
			stored := string(e.only(tc.to))
			for _, want := range []string{"Delivered-To: " + tc.to + "\r\n", " with " + tc.with + " ", "Subject: " + subject + "\r\n", "Hello from swaks."} {
				if !strings.Contains(stored, want) {
					t.Errorf("stored message does not contain %q:\n%s", want, stored)
				}
			}
		})
	}
}

// TestOpenSSLStartTLS: openssl s_client negotiates STARTTLS and verifies
// the server's certificate against it as the only CA.
func TestOpenSSLStartTLS(t *testing.T) {
	t.Parallel()
	openssl := tool(t, "openssl")
	e := newEnv(t, envConfig{})
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, e.certPEM, 0o600); err != nil {
		t.Fatalf("write CA file: %v", err)
	}
	for _, r := range []role{roleMX, roleSubmission} {
		t.Run(r.String(), func(t *testing.T) {
			out := run(t, "QUIT\r\n", openssl, "s_client", "-starttls", "smtp", "-connect", e.addr[r],
				"-CAfile", caFile, "-verify_return_error", "-servername", "localhost")
			if !strings.Contains(out, "Verify return code: 0 (ok)") {
				t.Errorf("openssl s_client output lacks \"Verify return code: 0 (ok)\":\n%s", out)
			}
		})
	}
}
