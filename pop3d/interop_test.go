package pop3d

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"pushmail/mailstore"
)

// lookTool returns the path of a third-party client or skips the test:
// test.sh installs them.
func lookTool(t *testing.T, name, pkg string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		t.Skipf("%s not installed (Debian package %s; test.sh installs it)", name, pkg)
	}
	return path
}

// run runs cmd under a deadline and returns its combined output; a
// failure fails the test.
func run(t *testing.T, name string, args []string, env []string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %q: %v\n%s", name, args, err, out)
	}
	return string(out)
}

// poplibScript logs in (after stls() when POP3_CAFILE is set), lists,
// retrieves every message, deletes the first and quits; it prints what
// it was told, one item per line.
const poplibScript = `
import os, poplib, ssl
p = poplib.POP3(os.environ["POP3_HOST"], int(os.environ["POP3_PORT"]), timeout=30)
if os.environ.get("POP3_CAFILE"):
    ctx = ssl.create_default_context(cafile=os.environ["POP3_CAFILE"])
    print("stls", p.stls(ctx).decode())
print("capa", sorted(p.capa()))
p.user(os.environ["POP3_USER"])
p.pass_(os.environ["POP3_PASS"])
n, size = p.stat()
print("stat", n, size)
resp, listing, _ = p.list()
print("list", [l.decode() for l in listing])
resp, uidls, _ = p.uidl()
print("uidl", [l.decode() for l in uidls])
for i in range(1, n + 1):
    resp, lines, octets = p.retr(i)
    body = b"\r\n".join(lines) + b"\r\n"
    print("retr", i, octets, body.hex())
p.dele(1)
print("quit", p.quit().decode())
`

// Python's poplib over plain TCP and after stls(), with the certificate
// verified against the test CA: it lists, retrieves (bytes as stored,
// byte-stuffing undone), deletes one; the store then lacks exactly that
// one, and the retrieved one that stays is \Seen.
func TestPoplib(t *testing.T) {
	t.Parallel()
	python := lookTool(t, "python3", "python3")
	for _, withTLS := range []bool{false, true} {
		t.Run(map[bool]string{false: "plain", true: "stls"}[withTLS], func(t *testing.T) {
			t.Parallel()
			pki := newTestPKI(t)
			opts := envOptions{}
			if withTLS {
				opts.server.TLSConfig = pki.config
			}
			e := newTestEnv(t, opts)
			u1 := e.deliver(t, testMessage(1))
			u2 := e.appendRaw(t, []byte("Subject: dots\n\n.starts with a dot\nbare LF lines\n"))
			stored := e.stored(t)
			host, port, _ := net.SplitHostPort(e.addr)
			env := []string{"POP3_HOST=" + host, "POP3_PORT=" + port, "POP3_USER=" + testUser, "POP3_PASS=" + testPassword}
			if withTLS {
				env = append(env, "POP3_CAFILE="+pki.caFile)
			}
			out := run(t, python, []string{"-c", poplibScript}, env)
			if withTLS && !strings.Contains(out, "stls +OK Begin TLS negotiation") {
				t.Errorf("poplib did not start TLS:\n%s", out)
			}
			for _, want := range []string{"'USER'", "'UIDL'", "'TOP'", "'PIPELINING'", "stat 2 ", "quit +OK"} {
				if !strings.Contains(out, want) {
					t.Errorf("poplib output lacks %q:\n%s", want, out)
				}
			}
			for i, u := range []mailstore.UID{u1, u2} {
				want := fmt.Sprintf("retr %d %d %x", i+1, len(crlf(stored[u].Raw)), crlf(stored[u].Raw))
				if !strings.Contains(out, want) {
					t.Errorf("poplib's RETR %d is not the stored message %q:\n%s", i+1, crlf(stored[u].Raw), out)
				}
			}
			e.holds(t, u2)
			if f := e.stored(t)[u2].Flags; !slices.Equal(f, []string{mailstore.FlagSeen}) {
				t.Errorf("flags of the retrieved message that stays = %q, want \\Seen", f)
			}
		})
	}
}

// curl lists and retrieves over pop3://, and deletes with -X DELE (its
// QUIT then applies it): the store loses exactly that message.
func TestCurl(t *testing.T) {
	t.Parallel()
	curl := lookTool(t, "curl", "curl")
	e := newTestEnv(t, envOptions{})
	u1 := e.deliver(t, testMessage(1))
	u2 := e.deliver(t, testMessage(2))
	stored := e.stored(t)
	base := "pop3://" + e.addr + "/"
	auth := []string{"-sS", "--user", testUser + ":" + testPassword}

	out := run(t, curl, append(auth, base), nil)
	want := fmt.Sprintf("1 %d\r\n2 %d\r\n", len(crlf(stored[u1].Raw)), len(crlf(stored[u2].Raw)))
	if out != want {
		t.Errorf("curl LIST = %q, want %q", out, want)
	}
	if out := run(t, curl, append(auth, base+"2"), nil); out != string(crlf(stored[u2].Raw)) {
		t.Errorf("curl RETR 2 = %q, want %q", out, crlf(stored[u2].Raw))
	}
	run(t, curl, append(auth, "-X", "DELE", "-I", base+"1"), nil)
	e.holds(t, u2)
	if out := run(t, curl, append(auth, base), nil); out != fmt.Sprintf("1 %d\r\n", len(crlf(stored[u2].Raw))) {
		t.Errorf("curl LIST after DELE = %q", out)
	}
}

// fetchmail fetches and deletes 100 messages into an MDA, one file each:
// every message delivered arrives exactly once, byte for byte as stored
// (its line ends aside: fetchmail hands the MDA LF lines), and the
// store is empty afterwards. A second run finds nothing.
func TestFetchmail(t *testing.T) {
	t.Parallel()
	fetchmail := lookTool(t, "fetchmail", "fetchmail")
	e := newTestEnv(t, envOptions{})
	const n = 100
	for i := range n {
		msg := testMessage(i)
		if i%10 == 0 {
			// Lines fetchmail must un-stuff, and a bare-LF message.
			msg = fmt.Appendf(nil, "Subject: dotted %d\n\n.one\n..two\n.\nend\n", i)
			e.appendRaw(t, msg)
			continue
		}
		e.deliver(t, msg)
	}
	want := map[string]int{}
	for _, m := range e.stored(t) {
		want[strings.ReplaceAll(string(m.Raw), "\r\n", "\n")]++
	}

	dir := t.TempDir()
	out := filepath.Join(dir, "out")
	if err := os.Mkdir(out, 0o700); err != nil {
		t.Fatal(err)
	}
	mda := filepath.Join(dir, "mda.sh")
	if err := os.WriteFile(mda, []byte("#!/bin/sh\nexec cat > \""+out+"/msg.$$.$(date +%s%N)\"\n"), 0o700); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(e.addr)
	rc := filepath.Join(dir, "fetchmailrc")
	conf := fmt.Sprintf("set no syslog\nset no bouncemail\nset invisible\npoll %s service %s protocol pop3 auth password timeout 30\n"+
		"  user %q password %q is tester here\n  mda %q\n  options no keep fetchall no rewrite sslproto ''\n",
		host, port, testUser, testPassword, mda)
	if err := os.WriteFile(rc, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	args := []string{"-f", rc, "--pidfile", filepath.Join(dir, "pid"), "-v"}
	env := []string{"HOME=" + dir, "FETCHMAILHOME=" + dir}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, fetchmail, args...)
	cmd.Env = append(os.Environ(), env...)
	log, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("fetchmail: %v\n%s", err, log)
	}

	for _, want := range []string{"POP3> RETR 100", "POP3> DELE 100", "POP3> QUIT"} {
		if !strings.Contains(string(log), want) {
			t.Errorf("fetchmail's log lacks %q:\n%s", want, log)
		}
	}
	files, err := os.ReadDir(out)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != n {
		t.Errorf("fetchmail delivered %d messages, want %d\n%s", len(files), n, log)
	}
	got := map[string]int{}
	for _, f := range files {
		b, err := os.ReadFile(filepath.Join(out, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		got[string(bytes.ReplaceAll(b, []byte("\r\n"), []byte("\n")))]++
	}
	for msg, k := range want {
		if got[msg] != k {
			t.Errorf("message delivered %d times, stored %d times:\n%s", got[msg], k, msg)
		}
	}
	for msg, k := range got {
		if want[msg] == 0 {
			t.Errorf("fetchmail delivered %d times a message the store did not hold:\n%s", k, msg)
		}
	}
	e.holds(t)

	// Nothing left: a second run fetches nothing (exit status 1: no mail).
	cmd = exec.CommandContext(ctx, fetchmail, args...)
	cmd.Env = append(os.Environ(), env...)
	log, err = cmd.CombinedOutput()
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 1 {
		t.Errorf("second fetchmail run: %v, want exit status 1 (no mail)\n%s", err, log)
	}
}
