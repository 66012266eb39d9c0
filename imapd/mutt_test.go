//go:build unix

package imapd

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// mutt runs Mutt against a server non-interactively: the keys to press
// are pushed from the muttrc ("push", muttrc(5)), and util-linux's
// script(1) (Debian's bsdutils) gives it the terminal it insists on.
// Over plain IMAP, Mutt talks to the server through a proxy that records
// what it sends.
type mutt struct {
	bin, script string
	dir         string
	proxy       *traceProxy // nil over IMAPS
	folder      string      // the server's URL, imap://host:port/ or imaps://
	tlsSettings string      // muttrc lines for TLS
}

func newMutt(t *testing.T, env *testEnv) *mutt {
	t.Helper()
	m := &mutt{dir: t.TempDir(), proxy: newTraceProxy(t, env.addr)}
	m.lookTools(t)
	m.folder = fmt.Sprintf("imap://%s/", m.proxy.addr)
	m.tlsSettings = "set ssl_starttls=no\nset ssl_force_tls=no"
	return m
}

// newMuttIMAPS is newMutt over implicit TLS (imaps://), the server's
// certificate verified against the test CA. Nothing records the
// commands.
func newMuttIMAPS(t *testing.T, env *tlsEnv) *mutt {
	t.Helper()
	m := &mutt{dir: t.TempDir()}
	m.lookTools(t)
	m.folder = fmt.Sprintf("imaps://%s/", env.tlsAddr)
	// Debian's Mutt uses GnuTLS, which reads the CA from
	// ssl_ca_certificates_file; certificate_file is where Mutt would
	// save certificates accepted by hand: empty, so that an unverified
	// one would stop at a question and fail the test.
	certs := filepath.Join(m.dir, "certificates")
	if err := os.WriteFile(certs, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	m.tlsSettings = fmt.Sprintf("set ssl_force_tls=yes\nset ssl_verify_host=yes\nset ssl_ca_certificates_file=\"%s\"\nset certificate_file=\"%s\"", env.pki.caFile, certs)
	return m
}

func (m *mutt) lookTools(t *testing.T) {
	t.Helper()
	m.bin = lookTool(t, "mutt", "mutt")
	m.script = lookTool(t, "script", "bsdutils")
}

// run opens INBOX over IMAP with the given settings, presses keys and
// waits for Mutt to exit. It returns the commands Mutt sent (nil over
// IMAPS).
func (m *mutt) run(t *testing.T, settings, keys string) []string {
	t.Helper()
	if t.Failed() {
		// Each session builds on the last; in a mailbox not as
		// expected, the keys fail and Mutt waits for the deadline.
		t.FailNow()
	}
	sent := func() string {
		if m.proxy == nil {
			return ""
		}
		return m.proxy.sent.String()
	}
	mark := len(sent())
	folder := m.folder
	// Plaintext LOGIN: the server allows it on loopback. No caches, no
	// record or postponed folders, no questions: $quit=yes quits without
	// asking, $move=no keeps read messages in INBOX.
	rc := fmt.Sprintf(`set imap_user="%s"
set imap_pass="%s"
set imap_authenticators="login"
%s
set folder="%s"
set spoolfile="+INBOX"
set record=""
set postponed=""
set header_cache=""
set message_cachedir=""
set imap_check_subscribed=no
set move=no
set quit=yes
set wait_key=no
set sort=mailbox-order
%s
push "%s"
`, testUser, testPassword, m.tlsSettings, folder, settings, keys)
	path := filepath.Join(m.dir, "muttrc")
	if err := os.WriteFile(path, []byte(rc), 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, m.script, "-q", "-e", "-c",
		fmt.Sprintf("'%s' -n -F '%s' -f '%sINBOX'", m.bin, path, folder), "/dev/null")
	cmd.Env = append(os.Environ(), "HOME="+m.dir, "TERM=xterm", "LINES=24", "COLUMNS=80", "MAIL=")
	// script and Mutt in a process group of their own, killed together
	// at the deadline.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	// A stdin that stays open and never delivers a key: at end of input
	// script(1) sends an end-of-file to the terminal, where Mutt would
	// read it. Wait closes it.
	if _, err := cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	var screen strings.Builder
	cmd.Stdout = &screen
	cmd.Stderr = &screen
	if err := cmd.Run(); err != nil {
		t.Fatalf("mutt: %v\nsent: %q\nscreen: %q", err, sent()[mark:], screen.String())
	}
	if m.proxy == nil {
		return nil
	}
	return commandNames(sent()[mark:])
}

// TestMutt reads a message in Mutt and quits, which sends CLOSE with
// nothing \Deleted (before 0b308a1 that emptied INBOX); leaves with
// <exit> ("x"); then, in one session, flags a message, deletes another
// with "d" and quits with $delete=yes, which expunges exactly that one.
// It does so over plain IMAP and over IMAPS. After each session the store
// must hold every other message, byte for byte, with the flags Mutt set.
func TestMutt(t *testing.T) {
	t.Parallel()
	t.Run("imap", func(t *testing.T) {
		t.Parallel()
		env := newTestEnv(t, envOptions{})
		testMutt(t, env, newMutt(t, env))
	})
	t.Run("imaps", func(t *testing.T) {
		t.Parallel()
		env := newTLSEnv(t)
		testMutt(t, env.testEnv, newMuttIMAPS(t, env))
	})
}

func testMutt(t *testing.T, env *testEnv, m *mutt) {
	want := env.deliverN(t, 3)
	traced := m.proxy != nil

	// "q" after reading message 1: Mutt stores \Seen on it and its
	// keyword Old on the others, seen in the index but unread, then CLOSE.
	cmds := m.run(t, "", "<display-message><exit><quit>")
	if traced && !slices.Contains(cmds, "CLOSE") {
		t.Errorf("quitting Mutt sent %v, want a CLOSE", cmds)
	}
	env.checkStored(t, "INBOX", want)
	env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Seen`}, 2: {"Old"}, 3: {"Old"}})

	// "x": leave without saving changes.
	cmds = m.run(t, "", "<exit>")
	if traced && !slices.Contains(cmds, "CLOSE") {
		t.Errorf("leaving Mutt with <exit> sent %v, want a CLOSE", cmds)
	}
	env.checkStored(t, "INBOX", want)

	// "F" on message 3, "d" on message 2, then "q" with $delete=yes:
	// Mutt stores \Flagged on UID 3 and \Deleted on UID 2, and expunges.
	cmds = m.run(t, "set delete=yes\nset resolve=no", "<last-entry><flag-message><previous-entry><delete-message><quit>")
	if traced && !slices.Contains(cmds, "UID STORE") {
		t.Errorf("flagging and deleting in Mutt sent %v, want a UID STORE", cmds)
	}
	delete(want, 2)
	env.checkStored(t, "INBOX", want)
	env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Seen`}, 3: {`\Flagged`, "Old"}})
}
