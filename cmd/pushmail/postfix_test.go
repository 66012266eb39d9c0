package main

import (
	"context"
	"fmt"
	"io/fs"
	"maps"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"
)

// postfix is a private Postfix instance: its own configuration, queue and
// data directories and log file under dir, listening on 127.0.0.1:port.
// The system's Postfix configuration and service are left alone.
type postfix struct {
	bin  string // the postfix command
	dir  string
	port int
}

func (p *postfix) conf() string    { return filepath.Join(p.dir, "conf") }
func (p *postfix) maillog() string { return filepath.Join(p.dir, "maillog") }

func (p *postfix) log() string {
	b, err := os.ReadFile(p.maillog())
	if err != nil {
		return fmt.Sprintf("(no maillog: %v)", err)
	}
	return string(b)
}

// run runs "postfix -c CONF args…" under a timeout.
func (p *postfix) run(args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, p.bin, append([]string{"-c", p.conf()}, args...)...)
	cmd.WaitDelay = 5 * time.Second
	// postfix writes its errors to the maillog (and to stderr on a tty only).
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("postfix %s: %v %s\nmaillog:\n%s", strings.Join(args, " "), err, out, p.log())
	}
	return nil
}

// postfixMasterCF runs only what a virtual-domain MX that delivers over
// LMTP needs, none of it chrooted (a chroot needs copies of /etc files).
const postfixMasterCF = `127.0.0.1:%d inet n - n - - smtpd
cleanup   unix n - n - 0 cleanup
qmgr      unix n - n 300 1 qmgr
rewrite   unix - - n - - trivial-rewrite
bounce    unix - - n - 0 bounce
defer     unix - - n - 0 bounce
trace     unix - - n - 0 bounce
verify    unix - - n - 1 verify
flush     unix n - n 1000? 0 flush
proxymap  unix - - n - - proxymap
smtp      unix - - n - - smtp
relay     unix - - n - - smtp
error     unix - - n - - error
retry     unix - - n - - error
discard   unix - - n - - discard
lmtp      unix - - n - - lmtp
anvil     unix - - n - 1 anvil
scache    unix - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
`

// startPostfix starts a private Postfix with the given main.cf lines added
// to its own settings, and stops it at the end of the test.
func startPostfix(t *testing.T, bin, mainCF string) *postfix {
	t.Helper()
	// Postfix's daemons run as the postfix user and open files below dir
	// by absolute path, so dir cannot be below t.TempDir (mode 0700).
	dir, err := os.MkdirTemp("", "pushmail-postfix-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := os.RemoveAll(dir); err != nil {
			t.Logf("remove %s: %v", dir, err)
		}
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &postfix{bin: bin, dir: dir, port: ln.Addr().(*net.TCPAddr).Port}
	ln.Close()
	for _, d := range []string{dir, p.conf(), filepath.Join(dir, "queue")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	main := fmt.Sprintf(`# A private instance: its own directories, port and log.
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
setgid_group = postdrop
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
myhostname = mx.example.org
mydestination =
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
# The test's client on 127.0.0.1 is a stranger, as an MX's senders are.
mynetworks = 127.0.0.2/32
alias_maps =
alias_database =

# From README.md:
%[2]s`, dir, mainCF)
	if err := os.WriteFile(filepath.Join(p.conf(), "main.cf"), []byte(main), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.conf(), "master.cf"), fmt.Appendf(nil, postfixMasterCF, p.port), 0o644); err != nil {
		t.Fatal(err)
	}
	// "check" creates the queue's subdirectories with their owners.
	if err := p.run("check"); err != nil {
		t.Fatal(err)
	}
	// "start" returns once the master daemon has initialised (master -w).
	t.Cleanup(func() {
		if _, err := os.Stat(filepath.Join(dir, "queue", "pid", "master.pid")); err != nil {
			return // never started
		}
		if err := p.run("stop"); err != nil {
			t.Errorf("stopping Postfix: %v", err)
		}
	})
	if err := p.run("start"); err != nil {
		t.Fatal(err)
	}
	return p
}

// waitMaillog waits until Postfix has logged a line containing text.
// Postfix logs to a file, so this polls it, under a deadline.
func (p *postfix) waitMaillog(t *testing.T, text string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for !strings.Contains(p.log(), text) {
		if time.Now().After(deadline) {
			t.Fatalf("Postfix never logged %q:\n%s", text, p.log())
		}
		<-tick.C
	}
}

// queued returns the files in the Postfix queue: messages and their
// delivery logs (anything but the master's pid file).
func (p *postfix) queued(t *testing.T) []string {
	t.Helper()
	var files []string
	queue := filepath.Join(p.dir, "queue")
	err := filepath.WalkDir(queue, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && d.Name() == "pid" {
			return filepath.SkipDir
		}
		if d.Type().IsRegular() {
			files = append(files, strings.TrimPrefix(path, queue+"/"))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// swaksTo sends one message through Postfix with swaks and returns its
// transcript and exit status.
func swaksTo(t *testing.T, port int, rcpt, subject string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "swaks", "--server", "127.0.0.1", "--port", fmt.Sprint(port),
		"--helo", "client.example.net", "--from", "bob@example.net", "--to", rcpt,
		"--header", "Subject: "+subject, "--body", "through Postfix", "--timeout", "50")
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		t.Fatalf("swaks to %s did not finish:\n%s", rcpt, out)
	}
	return string(out), err
}

// TestPostfixVerifiesRecipients runs Debian's Postfix as an MX in front of
// pushmail with the main.cf lines of the README: a known user's mail is
// delivered over LMTP into the store, and an unknown user is refused at
// RCPT, before Postfix takes responsibility for the message, so it never
// bounces anything (no backscatter to forged senders).
func TestPostfixVerifiesRecipients(t *testing.T) {
	if testing.Short() {
		t.Skip("runs Postfix and the pushmail binary")
	}
	bin, err := exec.LookPath("postfix")
	if err != nil {
		if bin, err = exec.LookPath("/usr/sbin/postfix"); err != nil {
			t.Skip("postfix is not installed (test.sh installs it)")
		}
	}
	if _, err := exec.LookPath("swaks"); err != nil {
		t.Skip("swaks is not installed (test.sh installs it)")
	}
	if os.Geteuid() != 0 {
		t.Skip("Postfix's master daemon must start as root, to run its daemons as the postfix user")
	}
	if _, err := user.Lookup("postfix"); err != nil {
		t.Skipf("no postfix user (the Debian package creates it): %v", err)
	}
	if _, err := user.LookupGroup("postdrop"); err != nil {
		t.Skipf("no postdrop group (the Debian package creates it): %v", err)
	}

	var mainCF *readmeBlock
	for _, b := range readmeBlocks(t) {
		if kind, _ := b.kind(); kind == "postfix main.cf" {
			if mainCF != nil {
				t.Fatalf("README.md:%d: a second postfix main.cf block", b.line)
			}
			mainCF = &b
		}
	}
	if mainCF == nil {
		t.Fatal("README.md has no <!-- postfix main.cf: --> block")
	}

	data := t.TempDir()
	srv := startServer(t, data, "--domain", "example.org")
	cli(t, "secret\n", "user", "add", "alice@example.org", "--data", data, "--password-stdin")
	pf := startPostfix(t, bin, toServerPorts(t, mainCF.text, srv))

	// A known user: accepted, delivered over LMTP, in the store.
	out, err := swaksTo(t, pf.port, "alice@example.org", "through Postfix")
	if err != nil {
		t.Fatalf("swaks to alice@example.org: %v\n%s\nmaillog:\n%s", err, out, pf.log())
	}
	m := regexp.MustCompile(`(?m)^<-  250 2\.0\.0 Ok: queued as (\w+)$`).FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("Postfix did not queue the message to alice:\n%s", out)
	}
	queueID := m[1]
	pf.waitMaillog(t, queueID+": removed")
	if !regexp.MustCompile(`(?m) ` + queueID + `: to=<alice@example\.org>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:\d+, .*status=sent \(250 2\.0\.0 <alice@example\.org> Delivered `).MatchString(pf.log()) {
		t.Errorf("no LMTP delivery of %s to pushmail in the maillog:\n%s", queueID, pf.log())
	}
	c, _ := inbox(t, srv.addr("imap"), "alice@example.org", "secret")
	if got := subjects(t, c); !slices.Equal(slices.Collect(maps.Values(got)), []string{"through Postfix"}) {
		t.Errorf("alice's INBOX = %v, want the one message through Postfix", got)
	}

	// An unknown user: refused at RCPT. The first lookup probes pushmail
	// and waits for the answer (address_verify_poll_count polls); on a
	// slow machine the answer can come later, and Postfix then says 450
	// "in progress" until it has it.
	var reply string
	for attempt := 1; ; attempt++ {
		out, err = swaksTo(t, pf.port, "nobody@example.org", "to nobody")
		if err == nil {
			t.Fatalf("Postfix accepted mail for nobody@example.org:\n%s", out)
		}
		reply = regexp.MustCompile(`(?m)^<\*\* (.*)$`).FindStringSubmatch(out + "\n<** (none)")[1]
		if !strings.Contains(reply, "Address verification in progress") || attempt == 5 {
			break
		}
	}
	if !regexp.MustCompile(`^550 5\.1\.1 <nobody@example\.org>: Recipient address rejected: undeliverable address: .*550 5\.1\.1 `).MatchString(reply) {
		t.Errorf("RCPT TO:<nobody@example.org> through Postfix = %q, want 550 5.1.1 from pushmail's answer", reply)
	}
	if !strings.Contains(out, "-> RCPT TO:<nobody@example.org>") || strings.Contains(out, "-> DATA") {
		t.Errorf("the refusal did not come at RCPT:\n%s", out)
	}
	// NOQUEUE: Postfix never took the message, so there is nothing to bounce.
	if !regexp.MustCompile(`NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.1\]: 550 5\.1\.1 <nobody@example\.org>`).MatchString(pf.log()) {
		t.Errorf("no NOQUEUE reject for nobody@example.org in the maillog:\n%s", pf.log())
	}
	for _, bounce := range []string{"status=bounced", "sender non-delivery notification"} {
		if strings.Contains(pf.log(), bounce) {
			t.Errorf("Postfix bounced a message (%q):\n%s", bounce, pf.log())
		}
	}
	if q := pf.queued(t); len(q) > 0 {
		t.Errorf("Postfix's queue holds %v, want it empty", q)
	}
	// pushmail saw the probes but stored nothing more.
	if got := subjects(t, c); len(got) != 1 {
		t.Errorf("alice's INBOX holds %d messages after the refused one, want 1: %v", len(got), got)
	}
	if t.Failed() {
		t.Logf("Postfix maillog:\n%s", pf.log())
	}
}
