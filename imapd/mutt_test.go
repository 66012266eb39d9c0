//go:build unix

package imapd

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// mutt runs Mutt against a server non-interactively: the keys to press
// are pushed from the muttrc ("push", muttrc(5)), and util-linux's
// script(1) gives it the terminal it insists on. Mutt talks to the
// server through a proxy that records what it sends.
type mutt struct {
	bin, script string
	dir         string
	proxy       *traceProxy
}

func newMutt(t *testing.T, env *testEnv) *mutt {
	t.Helper()
	bin, err := exec.LookPath("mutt")
	if err != nil {
		t.Skip("mutt not installed")
	}
	script, err := exec.LookPath("script")
	if err != nil {
		t.Skip("script (util-linux) not installed")
	}
	return &mutt{bin: bin, script: script, dir: t.TempDir(), proxy: newTraceProxy(t, env.addr)}
}

// run opens INBOX over IMAP with the given settings, presses keys and
// waits for Mutt to exit. It returns the commands Mutt sent.
func (m *mutt) run(t *testing.T, settings, keys string) []string {
	t.Helper()
	if t.Failed() {
		// Each session builds on the last; in a mailbox not as
		// expected, the keys fail and Mutt waits for the deadline.
		t.FailNow()
	}
	mark := len(m.proxy.sent.String())
	host, port, _ := net.SplitHostPort(m.proxy.addr)
	folder := fmt.Sprintf("imap://%s:%s/", host, port)
	// Plaintext LOGIN: the server allows it on loopback. No caches, no
	// record or postponed folders, no questions: $quit=yes quits without
	// asking, $move=no keeps read messages in INBOX.
	rc := fmt.Sprintf(`set imap_user="%s"
set imap_pass="%s"
set imap_authenticators="login"
set ssl_starttls=no
set ssl_force_tls=no
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
`, testUser, testPassword, folder, settings, keys)
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
		t.Fatalf("mutt: %v\nsent: %q\nscreen: %q", err, m.proxy.sent.String()[mark:], screen.String())
	}
	return commandNames(m.proxy.sent.String()[mark:])
}

// TestMutt reads a message in Mutt and quits, which sends CLOSE with
// nothing \Deleted (before 0b308a1 that emptied INBOX); leaves with
// <exit> ("x"); then deletes one message with "d" and quits with
// $delete=yes, which expunges exactly that one. After each session the
// store must hold every other message, byte for byte.
func TestMutt(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	m := newMutt(t, env)
	want := env.deliverN(t, 3)

	// "q" after reading message 1: Mutt stores \Seen and Old, then CLOSE.
	cmds := m.run(t, "", "<display-message><exit><quit>")
	if !slices.Contains(cmds, "CLOSE") {
		t.Errorf("quitting Mutt sent %v, want a CLOSE", cmds)
	}
	env.checkStored(t, "INBOX", want)

	// "x": leave without saving changes.
	cmds = m.run(t, "", "<exit>")
	if !slices.Contains(cmds, "CLOSE") {
		t.Errorf("leaving Mutt with <exit> sent %v, want a CLOSE", cmds)
	}
	env.checkStored(t, "INBOX", want)

	// "d" on message 2, then "q" with $delete=yes: Mutt stores \Deleted on
	// UID 2 and expunges.
	cmds = m.run(t, "set delete=yes", "<first-entry><next-entry><delete-message><quit>")
	if !slices.Contains(cmds, "UID STORE") {
		t.Errorf("deleting in Mutt sent %v, want a UID STORE", cmds)
	}
	delete(want, 2)
	env.checkStored(t, "INBOX", want)
	for _, msg := range env.storeMessages(t, "INBOX") {
		if slices.Contains(msg.Flags, `\Deleted`) {
			t.Errorf("UID %d is still \\Deleted after Mutt expunged: %v", msg.UID, msg.Flags)
		}
	}
}
