package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// sendSMTP sends one message with the given subject to rcpt over SMTP.
func sendSMTP(t *testing.T, addr, rcpt, subject string) {
	t.Helper()
	c, err := smtp.Dial(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := fmt.Sprintf("From: s@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\nbody of %s\r\n", rcpt, subject, subject)
	if err := c.SendMail("s@example.org", []string{rcpt}, strings.NewReader(msg)); err != nil {
		t.Fatalf("SMTP to %s: %v", rcpt, err)
	}
	if err := c.Quit(); err != nil {
		t.Errorf("QUIT: %v", err)
	}
}

// inbox logs in over IMAP and selects INBOX. The client is closed at the
// end of the test.
func inbox(t *testing.T, addr, user, password string) (*imapclient.Client, *imap.SelectData) {
	t.Helper()
	c, err := imapclient.DialInsecure(addr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(user, password).Wait(); err != nil {
		t.Fatalf("LOGIN %s: %v", user, err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT INBOX: %v", err)
	}
	return c, sel
}

// subjects returns UID -> Subject of every message in the selected mailbox.
func subjects(t *testing.T, c *imapclient.Client) map[imap.UID]string {
	t.Helper()
	msgs, err := c.Fetch(imap.SeqSet{imap.SeqRange{Start: 1, Stop: 0}}, &imap.FetchOptions{UID: true, Envelope: true}).Collect()
	if err != nil {
		t.Fatalf("FETCH 1:* (UID ENVELOPE): %v", err)
	}
	got := map[imap.UID]string{}
	for _, m := range msgs {
		got[m.UID] = m.Envelope.Subject
	}
	return got
}

// runBinary runs the real binary and returns its exit status and output.
func runBinary(t *testing.T, args ...string) (int, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, pushmailBinary(t), args...)
	cmd.Env = append(os.Environ(), "PUSHMAIL_CONFIG=")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("pushmail %s did not exit: %s", strings.Join(args, " "), out)
	}
	return exitCode(err), string(out)
}

func TestDataDirLock(t *testing.T) {
	dir := t.TempDir()
	l, err := lockDataDir(dir, "serve")
	if err != nil {
		t.Fatalf("lockDataDir() = %v", err)
	}
	// flock locks belong to an open file, so a second lock in the same
	// process is refused too.
	_, err = lockDataDir(dir, "restore")
	want := fmt.Sprintf("(pid %d, pushmail serve)", os.Getpid())
	if !errors.Is(err, errDataLocked) || !strings.Contains(err.Error(), dir) || !strings.Contains(err.Error(), want) {
		t.Errorf("second lockDataDir() = %v, want %v naming %s and %s", err, errDataLocked, dir, want)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, err = lockDataDir(dir, "restore")
	if err != nil {
		t.Fatalf("lockDataDir() after Close = %v", err)
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := lockDataDir(filepath.Join(dir, "missing"), "serve"); err == nil {
		t.Error("lockDataDir() in a missing directory succeeded")
	}
}

// TestServeLocksTheDataDir: a second server, or a restore, on the data
// directory of a running server fails at once and names the holder; admin
// commands still work beside it.
func TestServeLocksTheDataDir(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	srv := startServer(t, data)
	holder := fmt.Sprintf("%s is locked by another pushmail (pid %d, pushmail serve)", data, srv.cmd.Process.Pid)

	code, out := runBinary(t, "serve", "--data", data, "--smtp", "127.0.0.1:0", "--lmtp", "", "--submission", "",
		"--imap", "127.0.0.1:0", "--imaps", "", "--pop3", "", "--pop3s", "", "--http", "")
	if code != 1 || !strings.Contains(out, holder) {
		t.Errorf("second serve on one data directory: exit %d, output %q; want exit 1 and %q", code, out, holder)
	}

	backup := filepath.Join(t.TempDir(), "b.db")
	cli(t, "pw\n", "user", "add", "u@localhost", "--data", data, "--password-stdin")
	cli(t, "", "backup", "--data", data, backup)
	code, out = runBinary(t, "restore", "--data", data, backup)
	if code != 1 || !strings.Contains(out, holder) {
		t.Errorf("restore while serving: exit %d, output %q; want exit 1 and %q", code, out, holder)
	}
	if ents, _ := filepath.Glob(filepath.Join(data, "pushmail.db.*")); len(ents) != 0 {
		t.Errorf("a refused restore left files: %v", ents)
	}
	// The server was not disturbed.
	sendSMTP(t, srv.addr("smtp"), "u@localhost", "still served")
	if err := srv.stop(t); err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
	// The lock went with the server: a new one starts.
	srv = startServer(t, data)
	if err := srv.stop(t); err != nil {
		t.Errorf("second server after SIGTERM: %v", err)
	}
}

// TestRestoreCommand restores an older backup the way an operator would
// and checks what an IMAP client sees: a new UIDVALIDITY (so the UIDs it
// cached are dropped), the backup's messages, and new mail readable.
func TestRestoreCommand(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	backup := filepath.Join(t.TempDir(), "backup.db")
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")
	sendSMTP(t, srv.addr("smtp"), "alice@localhost", "one")
	sendSMTP(t, srv.addr("smtp"), "alice@localhost", "two")
	cli(t, "", "backup", "--data", data, backup)
	sendSMTP(t, srv.addr("smtp"), "alice@localhost", "three (after the backup)")

	// What a client has cached before the restore.
	c, sel := inbox(t, srv.addr("imap"), "alice@localhost", "secret")
	oldValidity := sel.UIDValidity
	if got := subjects(t, c); len(got) != 3 || got[3] != "three (after the backup)" {
		t.Fatalf("before restore, INBOX = %v", got)
	}
	c.Close()
	if err := srv.stop(t); err != nil {
		t.Fatalf("serve after SIGTERM: %v", err)
	}

	code, out := runBinary(t, "restore", backup, "--data", data)
	if code != 0 {
		t.Fatalf("restore: exit %d\n%s", code, out)
	}
	for _, re := range []string{
		`(?m)^restored \S+pushmail\.db from \S+backup\.db: 1 users, 0 aliases, \d+ mailboxes, 2 messages$`,
		`(?m)^renumbered \d+ mailboxes: UIDVALIDITY (\d+) to \d+ `,
		`(?m)^previous store kept as (\S+pushmail\.db\.before-restore-\d{8}T\d{6}Z) `,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("restore output lacks %s:\n%s", re, out)
		}
	}
	if m := regexp.MustCompile(`UIDVALIDITY (\d+) to`).FindStringSubmatch(out); m != nil {
		if first, _ := strconv.ParseUint(m[1], 10, 32); uint32(first) <= oldValidity {
			t.Errorf("first new UIDVALIDITY %d, want above the old %d", first, oldValidity)
		}
	}
	if m := regexp.MustCompile(`kept as (\S+)`).FindStringSubmatch(out); m != nil {
		if _, err := os.Stat(m[1]); err != nil {
			t.Errorf("kept store: %v", err)
		}
	}

	srv = startServer(t, data)
	c, sel = inbox(t, srv.addr("imap"), "alice@localhost", "secret")
	if sel.UIDValidity <= oldValidity {
		t.Errorf("UIDVALIDITY after restore = %d, want above %d (RFC 9051 §2.3.1.1)", sel.UIDValidity, oldValidity)
	}
	if got := subjects(t, c); len(got) != 2 || got[1] != "one" || got[2] != "two" {
		t.Errorf("after restore, INBOX = %v; want the backup's two messages", got)
	}
	// UID 3 again, but under the new UIDVALIDITY: a client that had
	// "three" as UID 3 has dropped it.
	sendSMTP(t, srv.addr("smtp"), "alice@localhost", "four (after the restore)")
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	if got := subjects(t, c); got[3] != "four (after the restore)" {
		t.Errorf("after a delivery, INBOX = %v; want UID 3 = four", got)
	}
	c.Close()
	if err := srv.stop(t); err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}

	// Refusals: not a store, and a missing argument.
	junk := filepath.Join(t.TempDir(), "junk.db")
	if err := os.WriteFile(junk, []byte(strings.Repeat("junk\n", 1000)), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := runBinary(t, "restore", "--data", data, junk); code != 1 || !strings.Contains(out, "not a pushmail store") {
		t.Errorf("restore of a non-store: exit %d, output %q", code, out)
	}
	if code, out := runBinary(t, "restore", "--data", data); code != 2 || !strings.Contains(out, "Usage: pushmail restore") {
		t.Errorf("restore without FILE: exit %d, output %q", code, out)
	}
}

// TestRestoreCommandInProcess covers what the binary tests do not: the
// first restore into an empty directory, and the help text.
func TestRestoreCommandInProcess(t *testing.T) {
	src := t.TempDir()
	if code, _, stderr := runCLI(t, "pw\n", "user", "add", "u@localhost", "--data", src, "--password-stdin"); code != 0 {
		t.Fatalf("user add: %s", stderr)
	}
	backup := filepath.Join(t.TempDir(), "b.db")
	if code, _, stderr := runCLI(t, "", "backup", "--data", src, backup); code != 0 {
		t.Fatalf("backup: %s", stderr)
	}
	fresh := filepath.Join(t.TempDir(), "new-data")
	code, stdout, stderr := runCLI(t, "", "restore", "--data", fresh, backup)
	if code != 0 || !strings.Contains(stdout, "there was no previous store") || !strings.Contains(stdout, "1 users") {
		t.Errorf("restore into a new directory: exit %d, stdout %q, stderr %q", code, stdout, stderr)
	}
	if code, stdout, _ := runCLI(t, "", "user", "list", "--data", fresh); code != 0 || stdout != "u@localhost\n" {
		t.Errorf("user list after restore: exit %d, %q", code, stdout)
	}
	// The lock is released when restore returns.
	if _, err := os.Stat(filepath.Join(fresh, lockFile)); err != nil {
		t.Errorf("lock file: %v", err)
	}
	l, err := lockDataDir(fresh, "test")
	if err != nil {
		t.Errorf("lock after restore: %v", err)
	} else {
		l.Close()
	}

	// Run as root for a server that runs as its own user, restore leaves
	// files that user can write.
	if os.Geteuid() == 0 {
		const nobody = 65534
		owned := filepath.Join(t.TempDir(), "owned")
		if err := os.Mkdir(owned, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(owned, nobody, nobody); err != nil {
			t.Fatal(err)
		}
		if code, _, stderr := runCLI(t, "", "restore", "--data", owned, backup); code != 0 {
			t.Fatalf("restore into a directory owned by nobody: %s", stderr)
		}
		for _, name := range []string{dbFile, lockFile} {
			fi, err := os.Stat(filepath.Join(owned, name))
			if err != nil {
				t.Fatal(err)
			}
			if st := fi.Sys().(*syscall.Stat_t); st.Uid != nobody || st.Gid != nobody {
				t.Errorf("%s owned by %d:%d after a restore as root, want the directory's owner %d:%d", name, st.Uid, st.Gid, nobody, nobody)
			}
		}
	}

	if code, _, stderr := runCLI(t, "", "backup", "--help"); code != 0 || !strings.Contains(stderr, "pushmail restore") {
		t.Errorf("backup --help does not point at pushmail restore: %q", stderr)
	}
	if code, _, stderr := runCLI(t, "", "restore", "--help"); code != 0 || !strings.Contains(stderr, "UIDVALIDITY") {
		t.Errorf("restore --help = %d, %q", code, stderr)
	}
}
