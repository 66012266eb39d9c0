package imapd

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

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

// pythonCloseClient is the imaplib session that emptied INBOXes before
// 0b308a1: select, read, close() with nothing \Deleted, then UID EXPUNGE
// of a message that is not \Deleted. It prints the STATUS MESSAGES counts
// it sees; the Go side checks the store.
const pythonCloseClient = `
import imaplib, sys

host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]

def check(cond, what):
    if not cond:
        print("FAIL:", what, flush=True)
        sys.exit(1)

def bodies():
    typ, data = M.uid("FETCH", "1:*", "(BODY.PEEK[])")
    check(typ == "OK", "uid fetch: %r" % data)
    return [part[1] for part in data if isinstance(part, tuple)]

M = imaplib.IMAP4(host, port, timeout=10)
check(M.login(user, password)[0] == "OK", "login")
typ, data = M.select("INBOX")
check(typ == "OK" and data[0] == b"5", "select: %r" % data)
before = bodies()
check(len(before) == 5, "5 bodies before close: %r" % before)
typ, data = M.fetch("1:2", "(RFC822)")
check(typ == "OK" and b"Body of message 5." in data[0][1], "fetch: %r" % data)
typ, data = M.close()
check(typ == "OK", "close: %r %r" % (typ, data))
typ, data = M.status("INBOX", "(MESSAGES)")
check(typ == "OK", "status: %r" % data)
print("after close:", data[0].decode(), flush=True)
check(data[0].endswith(b"(MESSAGES 5)"), "STATUS after close(): %r" % data)

typ, data = M.select("INBOX")
check(typ == "OK" and data[0] == b"5", "select again: %r" % data)
check(bodies() == before, "messages changed by close()")
typ, data = M.uid("EXPUNGE", "9")
check(typ == "OK", "uid expunge 9: %r" % data)
check(M.response("EXPUNGE")[1] == [None], "uid expunge 9 expunged something")
typ, data = M.status("INBOX", "(MESSAGES)")
print("after uid expunge 9:", data[0].decode(), flush=True)
check(data[0].endswith(b"(MESSAGES 5)"), "STATUS after UID EXPUNGE 9: %r" % data)
check(bodies() == before, "messages changed by UID EXPUNGE 9")

# One \Deleted message in a UID EXPUNGE set of two: only it goes.
typ, data = M.uid("STORE", "7", "+FLAGS", "(\\Deleted)")
check(typ == "OK", "uid store: %r" % data)
typ, data = M.uid("EXPUNGE", "6:7")
check(typ == "OK", "uid expunge 6:7: %r" % data)
expunged = M.response("EXPUNGE")[1]
check(expunged == [b"3"], "uid expunge 6:7 expunged %r, want seq 3 (UID 7) only" % expunged)
typ, data = M.status("INBOX", "(MESSAGES)")
print("after uid expunge 6:7:", data[0].decode(), flush=True)
check(data[0].endswith(b"(MESSAGES 4)"), "STATUS after UID EXPUNGE 6:7: %r" % data)
M.logout()
print("PASS", flush=True)
`

// TestPythonImaplibCloseKeepsMessages runs pythonCloseClient on a mailbox
// of five messages with UIDs 5 to 9 (1 to 4 expunged before), as in the
// report, and checks what the server still holds: STATUS over imaplib
// and, independently, the store, message by message.
func TestPythonImaplibCloseKeepsMessages(t *testing.T) {
	t.Parallel()
	python, err := exec.LookPath("python3")
	if err != nil {
		t.Skip("python3 not installed")
	}
	env := newTestEnv(t, envOptions{})
	want := env.deliverN(t, 9)
	ctx := context.Background()
	inbox := env.mailbox(t, "INBOX")
	if _, err := env.store.StoreFlags(ctx, inbox.ID, mailstore.UIDSetOf(1, 2, 3, 4), mailstore.FlagsAdd, []string{mailstore.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.Expunge(ctx, inbox.ID, mailstore.AllUIDs(), 0); err != nil {
		t.Fatal(err)
	}
	for uid := imap.UID(1); uid <= 4; uid++ {
		delete(want, uid)
	}
	env.checkStored(t, "INBOX", want)

	script := filepath.Join(t.TempDir(), "close.py")
	if err := os.WriteFile(script, []byte(pythonCloseClient), 0o600); err != nil {
		t.Fatal(err)
	}
	host, port, _ := net.SplitHostPort(env.addr)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(pctx, python, script, host, port, testUser, testPassword).CombinedOutput()
	if err != nil || !bytes.HasSuffix(out, []byte("PASS\n")) {
		t.Errorf("python imaplib client: %v\n%s", err, out)
	}
	// close() and UID EXPUNGE 9 removed nothing; UID EXPUNGE 6:7 only 7.
	delete(want, 7)
	env.checkStored(t, "INBOX", want)
}

// TestMbsync syncs the account with a local Maildir using isync's mbsync,
// both ways with Expunge Both, over plain TCP and over implicit TLS (the
// certificate verified against a test CA), and after every run checks
// both sides: the server's store and the Maildir must hold the same
// messages, byte for byte, with the same flags, and none may be lost.
// Each way it carries new messages, flag changes and deletions. Before
// 0b308a1 the first run emptied the server's INBOX (mbsync expunges with
// nothing \Deleted) and the next one then emptied the Maildir, while
// every run exited 0.
func TestMbsync(t *testing.T) {
	t.Parallel()
	mbsync := lookTool(t, "mbsync", "isync")
	for _, mode := range []string{"plain", "imaps"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testMbsync(t, mbsync, mode)
		})
	}
}

func testMbsync(t *testing.T, mbsync, mode string) {
	env := newTLSEnv(t)
	want := env.deliverN(t, 3)
	koeln := []byte("From: a@example.org\r\nSubject: =?UTF-8?Q?K=C3=B6ln?=\r\nMessage-ID: <koeln@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nKöln\r\n")
	want[imap.UID(env.deliver(t, koeln))] = koeln
	c := env.login(t, nil)
	if err := c.Create("Work/Project", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	// mbsync talks to the server through a proxy that records its
	// commands, to show which expunges a run issued (over TLS it records
	// ciphertext, and the check is skipped).
	target, tlsSettings := env.addr, "SSLType None"
	if mode == "imaps" {
		target = env.tlsAddr
		tlsSettings = "SSLType IMAPS\nCertificateFile " + env.pki.caFile
	}
	proxy := newTraceProxy(t, target)

	dir := t.TempDir()
	host, port, _ := net.SplitHostPort(proxy.addr)
	if mode == "imaps" {
		host = "localhost" // isync matches the certificate's DNS names only
	}
	maildir := filepath.Join(dir, "mail")
	if err := os.Mkdir(maildir, 0o700); err != nil {
		t.Fatal(err)
	}
	rc := filepath.Join(dir, "mbsyncrc")
	// Sync All: new messages, flags and deletions, both ways. Expunge
	// Both: messages \Deleted or trashed on either side are removed on
	// both, after each run (mbsync(1), "Expunge").
	config := fmt.Sprintf(`IMAPAccount test
Host %s
Port %s
User %s
Pass %s
%s
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
Expunge Both
SyncState *
`, host, port, testUser, testPassword, tlsSettings, maildir, maildir)
	if err := os.WriteFile(rc, []byte(config), 0o600); err != nil {
		t.Fatal(err)
	}
	// run syncs once and returns the commands mbsync sent.
	run := func(step string) []string {
		t.Helper()
		if t.Failed() {
			t.FailNow() // every step builds on the ones before
		}
		mark := len(proxy.sent.String())
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		cmd := exec.CommandContext(ctx, mbsync, "-c", rc, "-a")
		cmd.Env = append(os.Environ(), "HOME="+dir)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("%s: mbsync -a: %v\n%s", step, err, out)
		}
		return commandNames(proxy.sent.String()[mark:])
	}
	// check fails the test unless the server holds exactly want in box,
	// by UID, and the Maildir the same messages.
	check := func(step, box string, want map[imap.UID][]byte) {
		t.Helper()
		var server []string
		var uids, wantUIDs []imap.UID
		for _, m := range env.storeMessages(t, box) {
			uids = append(uids, m.UID)
			server = append(server, mbsyncNormal(m.Raw))
		}
		var wanted []string
		for uid, raw := range want {
			wantUIDs = append(wantUIDs, uid)
			wanted = append(wanted, mbsyncNormal(raw))
		}
		slices.Sort(wantUIDs)
		slices.Sort(server)
		slices.Sort(wanted)
		if !slices.Equal(uids, wantUIDs) {
			t.Errorf("%s: %s on the server holds UIDs %v, want %v", step, box, uids, wantUIDs)
		}
		if !slices.Equal(server, wanted) {
			t.Errorf("%s: %s on the server holds\n%q\nwant\n%q", step, box, server, wanted)
		}
		var local []string
		for _, raw := range maildirMessages(t, filepath.Join(maildir, box)) {
			local = append(local, mbsyncNormal(raw))
		}
		slices.Sort(local)
		if !slices.Equal(local, wanted) {
			t.Errorf("%s: Maildir %s holds\n%q\nwant\n%q", step, box, local, wanted)
		}
	}
	empty := map[imap.UID][]byte{}

	// 1. The first sync pulls everything down and leaves the server as it
	// was.
	cmds := run("first sync")
	check("first sync", "INBOX", want)
	for _, box := range []string{"Sent", "Trash", "Work/Project"} {
		check("first sync", box, empty)
	}
	// mbsync 1.4 closes every mailbox with CLOSE (an expunge) though
	// nothing is \Deleted: the path that lost the mail.
	if mode == "plain" && !slices.Contains(cmds, "CLOSE") && !slices.Contains(cmds, "EXPUNGE") && !slices.Contains(cmds, "UID EXPUNGE") {
		t.Errorf("first sync sent %v, no expunge: the test no longer covers an expunge with nothing \\Deleted", cmds)
	}

	// 2. Upload: a message written into the Maildir (LF line ends, as
	// Maildir files have) is appended to the server.
	upload := []byte("From: me@localhost\nTo: you@example.org\nSubject: from maildir\nMessage-ID: <up@localhost>\n\nWritten offline.\n")
	if err := os.WriteFile(filepath.Join(maildir, "INBOX/new", "1700000000.1.host"), upload, 0o600); err != nil {
		t.Fatal(err)
	}
	project := []byte("From: me@localhost\nSubject: project notes\nMessage-ID: <notes@localhost>\n\nIn a subfolder.\n")
	if err := os.WriteFile(filepath.Join(maildir, "Work/Project/new", "1700000000.2.host"), project, 0o600); err != nil {
		t.Fatal(err)
	}
	run("upload")
	want[5] = upload // the server's next UID
	check("upload", "INBOX", want)
	check("upload", "Work/Project", map[imap.UID][]byte{1: project})

	// 3. Download: a message delivered on the server comes down.
	pushed := []byte("From: b@example.org\r\nSubject: delivered later\r\nMessage-ID: <later@example.org>\r\n\r\nNew on the server.\r\n")
	want[imap.UID(env.deliver(t, pushed))] = pushed
	run("download")
	check("download", "INBOX", want)

	// 4. A sync with nothing new changes nothing on either side: not a
	// message, flag or file name.
	boxes := []string{"INBOX", "Sent", "Trash", "Work/Project"}
	serverState := func() map[string][]storedMessage {
		state := map[string][]storedMessage{}
		for _, box := range boxes {
			state[box] = env.storeMessages(t, box)
		}
		return state
	}
	serverBefore, localBefore := serverState(), maildirFiles(t, maildir)
	run("no-op sync")
	if after := serverState(); !reflect.DeepEqual(after, serverBefore) {
		t.Errorf("no-op sync changed the server's mailboxes:\n%+v\nwas\n%+v", after, serverBefore)
	}
	if after := maildirFiles(t, maildir); !maps.Equal(after, localBefore) {
		t.Errorf("no-op sync changed the Maildir:\n%v\nwas\n%v", slices.Sorted(maps.Keys(after)), slices.Sorted(maps.Keys(localBefore)))
	}
	check("no-op sync", "INBOX", want)

	// 5. Deletions made locally: message 2 marked trashed (the T flag,
	// as mutt's maildir_trash does), message 3's file removed. Expunge
	// Both removes exactly those two from the server, and the trashed
	// file from the Maildir.
	trashMaildirMessage(t, filepath.Join(maildir, "INBOX"), "<2@example.org>")
	removeMaildirMessage(t, filepath.Join(maildir, "INBOX"), "<3@example.org>")
	run("local deletions")
	delete(want, 2)
	delete(want, 3)
	check("local deletions", "INBOX", want)
	check("local deletions", "Work/Project", map[imap.UID][]byte{1: project})

	// 6. Flags changed on the server come down: \Flagged and \Seen on
	// message 1 become F and S in its Maildir file name.
	ctx := context.Background()
	inbox := env.mailbox(t, "INBOX")
	if _, err := env.store.StoreFlags(ctx, inbox.ID, mailstore.UIDSetOf(1), mailstore.FlagsAdd, []string{`\Flagged`, `\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	run("server flags")
	check("server flags", "INBOX", want)
	if got := maildirFlags(t, filepath.Join(maildir, "INBOX"), "<1@example.org>"); got != "FS" {
		t.Errorf("server flags: message 1's Maildir flags are %q, want FS", got)
	}
	env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Flagged`, `\Seen`}, 4: nil})

	// 7. Flags changed locally go up: R and S on Köln become \Answered
	// and \Seen on UID 4; F removed from message 1 clears \Flagged.
	setMaildirFlags(t, filepath.Join(maildir, "INBOX"), "<koeln@example.org>", "RS")
	setMaildirFlags(t, filepath.Join(maildir, "INBOX"), "<1@example.org>", "S")
	run("local flags")
	check("local flags", "INBOX", want)
	env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Seen`}, 4: {`\Answered`, `\Seen`}})

	// 8. Deletions on the server go down: UID 6 expunged by another
	// client, UID 5 only marked \Deleted (Expunge Both then expunges it
	// on both sides).
	if _, err := env.store.StoreFlags(ctx, inbox.ID, mailstore.UIDSetOf(5, 6), mailstore.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := env.store.Expunge(ctx, inbox.ID, mailstore.UIDSetOf(6), 0); err != nil {
		t.Fatal(err)
	}
	run("server deletions")
	delete(want, 5)
	delete(want, 6)
	check("server deletions", "INBOX", want)
	check("server deletions", "Work/Project", map[imap.UID][]byte{1: project})
	env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Seen`}, 4: {`\Answered`, `\Seen`}})

	// 9. And once more with nothing to do.
	run("last sync")
	check("last sync", "INBOX", want)
	if got := maildirFlags(t, filepath.Join(maildir, "INBOX"), "<koeln@example.org>"); got != "RS" {
		t.Errorf("last sync: Köln's Maildir flags are %q, want RS", got)
	}
}

// maildirFlags returns the flags in the file name of the message with
// Message-ID id ("" when it has none).
func maildirFlags(t *testing.T, folder, id string) string {
	t.Helper()
	_, flags, _ := strings.Cut(filepath.Base(maildirFind(t, folder, id)), ":2,")
	return flags
}

// setMaildirFlags gives a message exactly the Maildir flags given (in
// ASCII order), moving it to cur as a mail reader does.
func setMaildirFlags(t *testing.T, folder, id, flags string) {
	t.Helper()
	path := maildirFind(t, folder, id)
	name, _, _ := strings.Cut(filepath.Base(path), ":2,")
	if err := os.Rename(path, filepath.Join(folder, "cur", name+":2,"+flags)); err != nil {
		t.Fatal(err)
	}
}

// mbsyncNormal is a message as both sides of an mbsync channel hold it:
// Maildir files have LF line ends where IMAP has CRLF, and mbsync 1.4
// inserts an X-TUID header field into every message it copies, either
// way, to find the copy again.
func mbsyncNormal(raw []byte) string {
	msg := strings.ReplaceAll(string(raw), "\r\n", "\n")
	header, body, _ := strings.Cut(msg, "\n\n")
	var kept []string
	for _, line := range strings.Split(header, "\n") {
		if !strings.HasPrefix(line, "X-TUID: ") {
			kept = append(kept, line)
		}
	}
	return strings.Join(kept, "\n") + "\n\n" + body
}

// maildirMessages returns the contents of the messages in a Maildir
// folder (its cur and new).
func maildirMessages(t *testing.T, folder string) [][]byte {
	t.Helper()
	var msgs [][]byte
	for _, path := range maildirPaths(t, folder) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, raw)
	}
	return msgs
}

// maildirPaths returns the paths of the message files in a Maildir
// folder.
func maildirPaths(t *testing.T, folder string) []string {
	t.Helper()
	var paths []string
	for _, sub := range []string{"cur", "new"} {
		entries, err := os.ReadDir(filepath.Join(folder, sub))
		if err != nil {
			t.Fatalf("read Maildir %s/%s: %v", folder, sub, err)
		}
		for _, e := range entries {
			paths = append(paths, filepath.Join(folder, sub, e.Name()))
		}
	}
	return paths
}

// maildirFiles returns every file under root but mbsync's state files
// (dot files), by relative path, with its contents: a Maildir message's
// flags are in its name.
func maildirFiles(t *testing.T, root string) map[string]string {
	t.Helper()
	files := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasPrefix(d.Name(), ".") {
			return err
		}
		raw, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		files[rel] = string(raw)
		return err
	})
	if err != nil {
		t.Fatalf("walk Maildir %s: %v", root, err)
	}
	return files
}

// maildirFind returns the path of the message in a Maildir folder that
// has the Message-ID id.
func maildirFind(t *testing.T, folder, id string) string {
	t.Helper()
	for _, path := range maildirPaths(t, folder) {
		raw, err := os.ReadFile(path)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(raw, []byte("Message-ID: "+id+"\n")) {
			return path
		}
	}
	t.Fatalf("no message %s in Maildir %s", id, folder)
	return ""
}

// trashMaildirMessage sets the T (trashed) flag on a message, moving it
// to cur as a mail reader does (Maildir info "2," and flags in ASCII
// order: T sorts after D, F, P, R and S).
func trashMaildirMessage(t *testing.T, folder, id string) {
	t.Helper()
	path := maildirFind(t, folder, id)
	name := filepath.Base(path)
	if !strings.Contains(name, ":2,") {
		name += ":2,"
	}
	if err := os.Rename(path, filepath.Join(folder, "cur", name+"T")); err != nil {
		t.Fatal(err)
	}
}

// removeMaildirMessage deletes a message's file.
func removeMaildirMessage(t *testing.T, folder, id string) {
	t.Helper()
	if err := os.Remove(maildirFind(t, folder, id)); err != nil {
		t.Fatal(err)
	}
}
