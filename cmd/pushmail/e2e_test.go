package main

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"

	"pushmail/mailstore"
)

// binary is the pushmail binary built once for the end-to-end tests.
var binary struct {
	once sync.Once
	path string
	err  error
}

func pushmailBinary(t *testing.T) string {
	t.Helper()
	binary.once.Do(func() {
		dir, err := os.MkdirTemp("", "pushmail-e2e")
		if err != nil {
			binary.err = err
			return
		}
		binary.path = filepath.Join(dir, "pushmail")
		out, err := exec.Command("go", "build", "-tags", "sqlite_fts5", "-o", binary.path, ".").CombinedOutput()
		if err != nil {
			binary.err = &exitError{1, err}
			t.Logf("go build: %s", out)
		}
	})
	if binary.err != nil {
		t.Fatalf("build pushmail: %v", binary.err)
	}
	return binary.path
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binary.path != "" {
		os.RemoveAll(filepath.Dir(binary.path))
	}
	os.Exit(code)
}

// server is a running "pushmail serve" child process.
type server struct {
	cmd        *exec.Cmd
	data       string
	addrs      map[string]string // proto -> listening address
	done       chan error
	logMu      sync.Mutex
	log        strings.Builder
	logChanged chan struct{} // closed and replaced on every new log line
}

var listeningRE = regexp.MustCompile(`msg=listening proto=(\w+) addr=(\S+)`)

// startServer runs the real binary on free loopback ports and waits until
// it logs that it started.
func startServer(t *testing.T, data string, extra ...string) *server {
	t.Helper()
	args := append([]string{"serve", "--data", data, "--smtp", "127.0.0.1:0", "--lmtp", "127.0.0.1:0",
		"--submission", "127.0.0.1:0", "--imap", "127.0.0.1:0", "--imaps", "", "--pop3", "127.0.0.1:0", "--pop3s", "",
		"--http", "127.0.0.1:0"}, extra...)
	s := &server{cmd: exec.Command(pushmailBinary(t), args...), data: data, addrs: map[string]string{},
		done: make(chan error, 1), logChanged: make(chan struct{})}
	s.cmd.Env = append(os.Environ(), "PUSHMAIL_CONFIG=")
	stderr, err := s.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	started := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			s.logMu.Lock()
			s.log.WriteString(line + "\n")
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				s.addrs[m[1]] = m[2]
			}
			close(s.logChanged)
			s.logChanged = make(chan struct{})
			s.logMu.Unlock()
			if strings.Contains(line, "pushmail started") {
				once.Do(func() { close(started) })
			}
		}
		s.done <- s.cmd.Wait()
	}()
	t.Cleanup(func() {
		if s.cmd.ProcessState == nil {
			s.cmd.Process.Kill()
			<-s.done
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logText())
		}
	})
	select {
	case <-started:
	case err := <-s.done:
		t.Fatalf("pushmail serve exited before starting: %v\n%s", err, s.logText())
	case <-time.After(30 * time.Second):
		t.Fatalf("pushmail serve did not start:\n%s", s.logText())
	}
	return s
}

func (s *server) logText() string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.log.String()
}

// waitLog waits until the server has logged a line containing text.
func (s *server) waitLog(t *testing.T, text string) {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		s.logMu.Lock()
		found, changed := strings.Contains(s.log.String(), text), s.logChanged
		s.logMu.Unlock()
		if found {
			return
		}
		select {
		case <-changed:
		case <-timeout:
			t.Fatalf("server never logged %q:\n%s", text, s.logText())
		}
	}
}

func (s *server) addr(proto string) string {
	s.logMu.Lock()
	defer s.logMu.Unlock()
	return s.addrs[proto]
}

// stop sends SIGTERM and returns the exit error.
func (s *server) stop(t *testing.T) error {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-s.done:
		return err
	case <-time.After(shutdownTimeout + 10*time.Second):
		t.Fatal("pushmail serve did not exit after SIGTERM")
		return nil
	}
}

// cli runs the binary with args and stdin, failing the test on a non-zero exit.
func cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(pushmailBinary(t), args...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("pushmail %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestServeDeliverPushBackupAndStop drives the real binary the way the
// README does: add a user while the server runs, deliver with the LDA,
// see the push in IDLE, check health, back up while serving, and stop
// with SIGTERM.
func TestServeDeliverPushBackupAndStop(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")

	// An IMAP client in IDLE, told of new messages through a channel.
	exists := make(chan uint32, 16)
	c, err := imapclient.DialInsecure(srv.addr("imap"), &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil {
					exists <- *d.NumMessages
				}
			},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@localhost", "secret").Wait(); err != nil {
		t.Fatalf("LOGIN: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	idle, err := c.Idle()
	if err != nil {
		t.Fatal(err)
	}

	msg := "From: bob@example.org\r\nTo: alice@localhost\r\nSubject: via the LDA\r\n\r\nhello\r\n"
	deliver := exec.Command(pushmailBinary(t), "deliver", "--to", "alice@localhost", "--lmtp", srv.addr("lmtp"))
	deliver.Stdin = strings.NewReader(msg)
	if out, err := deliver.CombinedOutput(); err != nil {
		t.Fatalf("pushmail deliver: %v\n%s", err, out)
	}
	select {
	case n := <-exists:
		if n != 1 {
			t.Errorf("IDLE got * %d EXISTS, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no * EXISTS in IDLE after pushmail deliver")
	}
	if err := idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := idle.Wait(); err != nil {
		t.Fatal(err)
	}

	// An unknown recipient: sysexits 67, nothing stored.
	deliver = exec.Command(pushmailBinary(t), "deliver", "--to", "nobody@localhost", "--lmtp", srv.addr("lmtp"))
	deliver.Stdin = strings.NewReader(msg)
	if err := deliver.Run(); exitCode(err) != exNoUser {
		t.Errorf("deliver to unknown user: exit %d, want %d", exitCode(err), exNoUser)
	}

	resp, err := http.Get("http://" + srv.addr("http") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || strings.TrimSpace(string(body)) != "ok" {
		t.Errorf("/healthz = %d %q", resp.StatusCode, body)
	}

	// The delivery and the push show in /metrics.
	resp, err = http.Get("http://" + srv.addr("http") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		`pushmail_smtp_messages_total{proto="lmtp",reply="250"} 1`,
		`pushmail_smtp_recipients_rejected_total{proto="lmtp",reply="550 5.1.1"} 1`,
		`pushmail_imap_push_seconds_count{kind="exists"} 1`,
		`pushmail_imap_sessions 1`,
		`pushmail_notify_subscriptions 1`,
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if !regexp.MustCompile(`(?m)^pushmail_store_commit_seconds_count [1-9]`).Match(metrics) {
		t.Error("/metrics shows no store commit")
	}

	backup := filepath.Join(t.TempDir(), "backup.db")
	cli(t, "", "backup", "--data", data, backup)
	b, err := mailstore.Open(context.Background(), backup, mailstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if st, err := b.Stats(context.Background()); err != nil || st.Messages != 1 || st.Users != 1 {
		t.Errorf("backup Stats() = %+v, %v; want 1 user, 1 message", st, err)
	}
	b.Close()

	if out := cli(t, "", "mailbox", "list", "alice@localhost", "--data", data); !regexp.MustCompile(`(?m)^INBOX\s+-\s+1\s+1\s`).MatchString(out) {
		t.Errorf("mailbox list:\n%s", out)
	}
	if out := cli(t, "", "stats", "--data", data); !regexp.MustCompile(`(?m)^messages\s+1$`).MatchString(out) {
		t.Errorf("stats:\n%s", out)
	}

	c.Close()
	if err := srv.stop(t); err != nil {
		t.Errorf("pushmail serve after SIGTERM: %v, want exit 0", err)
	}
	logs := srv.logText()
	if !strings.Contains(logs, "pushmail stopped") {
		t.Error("server did not log a clean stop")
	}
	// One line per SMTP/LMTP transaction and per IMAP session, with a
	// connection id; never a password or a message body.
	for _, re := range []string{
		`msg=transaction cid=\S+ proto=lmtp .*from="?"? rcpts=\[alice@localhost\] size=\d+ result=250 duration=`,
		`msg="imap session" .*cid=\d+ .*user=alice@localhost .*commands=\d+ bytes_in=\d+ bytes_out=\d+`,
	} {
		if !regexp.MustCompile(re).MatchString(logs) {
			t.Errorf("log has no line matching %s", re)
		}
	}
	for _, secret := range []string{"secret", "hello\r"} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q", secret)
		}
	}
}

func exitCode(err error) int {
	if err == nil {
		return 0
	}
	if ee, ok := err.(*exec.ExitError); ok {
		return ee.ExitCode()
	}
	return -1
}
