package imapd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"pushmail/mailstore"
)

// pythonClient exercises the server with Python's imaplib: login, select,
// search, fetch of a UTF-8 subject and an 8-bit body, store, and IDLE
// (sent by hand: imaplib has no idle() before 3.14), during which the Go
// side delivers a message that must arrive as "* 3 EXISTS".
const pythonClient = `
import imaplib, sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def check(cond, what):
    if not cond:
        print("FAIL:", what, flush=True)
        sys.exit(1)

M = imaplib.IMAP4(host, port, timeout=10)
typ, _ = M.login(user, password)
check(typ == "OK", "login")
typ, data = M.select("INBOX")
check(typ == "OK" and data[0] == b"2", "select: %r" % data)
typ, data = M.search(None, "ALL")
check(data[0] == b"1 2", "search all: %r" % data)
typ, data = M.uid("SEARCH", None, "UNSEEN")
check(data[0] == b"1 2", "uid search unseen: %r" % data)
typ, data = M.fetch("2", "(BODY.PEEK[HEADER.FIELDS (SUBJECT)] BODY.PEEK[TEXT] RFC822.SIZE)")
check(typ == "OK", "fetch")
blob = b"".join(part[1] for part in data if isinstance(part, tuple))
check("Grüße".encode() in blob or b"=?UTF-8?" in blob.upper(), "subject in %r" % blob)
check(b"Caf\xc3\xa9 cr\xc3\xa8me" in blob, "8-bit body in %r" % blob)
typ, data = M.fetch("1", "(RFC822)")
check(typ == "OK" and b"Body of message 1." in data[0][1], "fetch rfc822: %r" % data)
typ, data = M.fetch("1", "(FLAGS)")
check(b"\\Seen" in data[0], "RFC822 fetch sets \\Seen: %r" % data)
typ, data = M.store("2", "+FLAGS", "(\\Flagged)")
check(typ == "OK" and b"\\Flagged" in data[0], "store: %r" % data)

tag = M._new_tag().decode()
M.send(("%s IDLE\r\n" % tag).encode())
line = M.readline()
check(line.startswith(b"+"), "idle continuation: %r" % line)
print("IDLING", flush=True)
line = M.readline()
check(line == b"* 3 EXISTS\r\n", "pushed EXISTS: %r" % line)
M.send(b"DONE\r\n")
while True:
    line = M.readline()
    check(line != b"", "connection closed in IDLE")
    if line.startswith(tag.encode() + b" "):
        check(b" OK " in line, "IDLE completion: %r" % line)
        break
typ, data = M.fetch("3", "(UID ENVELOPE)")
check(typ == "OK" and b"pushed" in data[0], "fetch pushed message: %r" % data)
M.logout()
print("PASS", flush=True)
`

func TestPythonImaplib(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, []byte("From: a@example.org\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCafé crème\r\n"))
	script := filepath.Join(t.TempDir(), "client.py")
	if err := os.WriteFile(script, []byte(pythonClient), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(env.addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, script, host, port, testUser, testPassword)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("start python3: %v", err)
	}
	var out []string
	sc := bufio.NewScanner(stdout)
	for sc.Scan() {
		line := sc.Text()
		out = append(out, line)
		if line == "IDLING" {
			env.deliver(t, []byte("From: b@example.org\r\nSubject: pushed\r\n\r\nhello\r\n"))
		}
	}
	if err := cmd.Wait(); err != nil {
		t.Fatalf("python imaplib client: %v\nstdout: %s\nstderr: %s", err, strings.Join(out, "\n"), stderr.String())
	}
	if len(out) == 0 || out[len(out)-1] != "PASS" {
		t.Errorf("python imaplib client output: %q", out)
	}
}

// TestMbsync syncs the account to a local Maildir with isync's mbsync and
// back: every mailbox and message arrives, and a message dropped into the
// Maildir is uploaded with APPEND.
func TestMbsync(t *testing.T) {
	t.Parallel()
	mbsync, err := exec.LookPath("mbsync")
	if err != nil {
		t.Skip("mbsync (isync) not installed")
	}
	env := newTestEnv(t, envOptions{})
	for i := 1; i <= 3; i++ {
		env.deliver(t, testMessage(i))
	}
	env.deliver(t, []byte("From: a@example.org\r\nSubject: =?UTF-8?Q?K=C3=B6ln?=\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nKöln\r\n"))
	c := env.login(t, nil)
	if err := c.Create("Work/Project", nil).Wait(); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(env.addr)
	maildir := filepath.Join(dir, "mail")
	if err := os.Mkdir(maildir, 0o700); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(dir, "mbsyncrc")
	config := fmt.Sprintf(`IMAPAccount test
Host %s
Port %s
User %s
Pass %s
SSLType None
AuthMechs LOGIN

IMAPStore remote
Account test

MaildirStore local
Path %s/
Inbox %s/INBOX
SubFolders Verbatim

Channel test
Far :remote:
Near :local:
Patterns *
Create Both
Sync All
SyncState *
`, host, port, testUser, testPassword, maildir, maildir)
	if err := os.WriteFile(rc, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	run := func() {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, mbsync, "-c", rc, "-a")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("mbsync -a: %v\n%s", err, out)
		}
	}
	run()

	count := func(box string) int {
		t.Helper()
		n := 0
		for _, sub := range []string{"cur", "new"} {
			entries, err := os.ReadDir(filepath.Join(maildir, box, sub))
			if err != nil {
				t.Fatalf("read Maildir %s/%s: %v", box, sub, err)
			}
			n += len(entries)
		}
		return n
	}
	if n := count("INBOX"); n != 4 {
		t.Errorf("Maildir INBOX has %d messages, want 4", n)
	}
	for _, box := range []string{"Sent", "Trash", "Work/Project"} {
		if n := count(box); n != 0 {
			t.Errorf("Maildir %s has %d messages, want 0", box, n)
		}
	}

	// Upload: a new message in the Maildir goes to the server.
	upload := []byte("From: me@localhost\r\nTo: you@example.org\r\nSubject: from maildir\r\nMessage-ID: <up@localhost>\r\n\r\nWritten offline.\r\n")
	if err := os.WriteFile(filepath.Join(maildir, "Work/Project/new", "1700000000.1.host"), upload, 0o600); err != nil {
		t.Fatal(err)
	}
	run()
	if uids := env.storeUIDs(t, "Work/Project"); len(uids) != 1 {
		t.Fatalf("Work/Project on the server has %v, want one uploaded message", uids)
	}
	mb := env.mailbox(t, "Work/Project")
	found := false
	err = env.store.Messages(context.Background(), mb.ID, mailstore.AllUIDs(), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
		found = bytes.Contains(m.Raw, []byte("Written offline."))
		return nil
	})
	if err != nil || !found {
		t.Errorf("uploaded message not found on the server (err %v)", err)
	}
	if uids := env.storeUIDs(t, "INBOX"); len(uids) != 4 {
		t.Errorf("INBOX on the server has %v after sync, want 4 messages", uids)
	}
}
