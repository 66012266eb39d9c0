package main

import (
	"bufio"
	"context"
	"io"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// The README's fenced code blocks are tested, so that what a new user
// types works. An HTML comment on the line before a block (blank lines
// may separate them) says how a test treats it:
//
//	<!-- setup: … -->       the Quickstart's two commands: build and serve, run the tests
//	<!-- background: … -->  a long-running client: started, left running, ends with the server
//	<!-- not run: why -->   not runnable here (interactive, production paths, minutes of load)
//	<!-- postfix main.cf: … --> the lines TestPostfixVerifiesRecipients gives Postfix
//
// Every sh and python block without a note runs to completion.

// readmeBlock is one fenced code block of README.md.
type readmeBlock struct {
	line int    // of the opening fence, 1-based
	info string // the fence's info string: "sh", "python", ""
	note string // the HTML comment before the block, without "<!--" and "-->"
	text string // the lines between the fences
}

// kind splits the note into its kind ("setup", "not run", …) and reason.
func (b readmeBlock) kind() (kind, reason string) {
	kind, reason, _ = strings.Cut(b.note, ":")
	return strings.TrimSpace(kind), strings.TrimSpace(reason)
}

// runnable reports whether the block is shell or Python, to be run.
func (b readmeBlock) runnable() bool {
	return slices.Contains([]string{"sh", "bash", "python", "python3"}, b.info)
}

// readmeBlocks returns the fenced code blocks of the repository's README.md.
func readmeBlocks(t *testing.T) []readmeBlock {
	t.Helper()
	data, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var (
		blocks []readmeBlock
		cur    *readmeBlock
		note   string
	)
	for i, line := range strings.Split(string(data), "\n") {
		switch {
		case cur != nil && strings.TrimSpace(line) == "```":
			blocks = append(blocks, *cur)
			cur = nil
		case cur != nil:
			cur.text += line + "\n"
		case strings.HasPrefix(line, "```"):
			cur = &readmeBlock{line: i + 1, info: strings.TrimSpace(strings.TrimPrefix(line, "```")), note: note}
			note = ""
		case strings.HasPrefix(line, "<!--") && strings.HasSuffix(line, "-->"):
			note = strings.TrimSpace(strings.TrimSuffix(strings.TrimPrefix(line, "<!--"), "-->"))
		case strings.TrimSpace(line) != "":
			note = ""
		}
	}
	if cur != nil {
		t.Fatalf("README.md:%d: unterminated code block", cur.line)
	}
	return blocks
}

// devPorts maps each dev port (the listeners' defaults) to its protocol
// name, as "pushmail serve" logs it.
func devPorts(t *testing.T) map[string]string {
	t.Helper()
	l := defaultConfig().Listen
	ports := map[string]string{}
	for proto, addr := range map[string]string{"smtp": l.SMTP, "lmtp": l.LMTP, "submission": l.Submission,
		"imap": l.IMAP, "imaps": l.IMAPS, "pop3": l.POP3, "pop3s": l.POP3S, "http": l.HTTP} {
		_, port, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("default %s address %q: %v", proto, addr, err)
		}
		ports[port] = proto
	}
	return ports
}

// toServerPorts rewrites the dev ports in text to the ports srv listens
// on, so that README commands reach a test server, never one a developer
// runs on the dev ports.
func toServerPorts(t *testing.T, text string, srv *server) string {
	t.Helper()
	ports := devPorts(t)
	alts := make([]string, 0, len(ports))
	for p := range ports {
		alts = append(alts, regexp.QuoteMeta(p))
	}
	re := regexp.MustCompile(`\b(` + strings.Join(alts, "|") + `)\b`)
	return re.ReplaceAllStringFunc(text, func(port string) string {
		addr := srv.addr(ports[port])
		_, p, err := net.SplitHostPort(addr)
		if err != nil {
			t.Fatalf("dev port %s: the test server has no %s listener (%q)", port, ports[port], addr)
		}
		return p
	})
}

// quickstartRE is the Quickstart's first command: the build, then the one
// command that runs the server.
var quickstartRE = regexp.MustCompile(`^go build -tags sqlite_fts5 -o pushmail \./cmd/pushmail && \./pushmail serve((?: --[a-z-]+(?:=\S+)?)*)$`)

// quickstart checks the set-up block (exactly one command runs the server,
// one runs the whole test suite) and returns the serve flags.
func quickstart(t *testing.T, b readmeBlock) []string {
	t.Helper()
	var cmds []string
	for _, line := range strings.Split(b.text, "\n") {
		line, _, _ = strings.Cut(line, " #")
		if line = strings.TrimSpace(line); line != "" {
			cmds = append(cmds, line)
		}
	}
	if len(cmds) != 2 || cmds[1] != "./test.sh" {
		t.Fatalf("README.md:%d: the Quickstart should be two commands, a build-and-serve and ./test.sh; got %q", b.line, cmds)
	}
	m := quickstartRE.FindStringSubmatch(cmds[0])
	if m == nil {
		t.Fatalf("README.md:%d: %q does not match %s", b.line, cmds[0], quickstartRE)
	}
	return strings.Fields(m[1])
}

// snippetEnv is the environment README commands run in: the built binary
// first on PATH (as after "install pushmail /usr/local/bin/"), no
// PUSHMAIL_* settings from the caller, and Python's output unbuffered as
// on a terminal.
func snippetEnv(bin string) []string {
	var env []string
	for _, kv := range os.Environ() {
		switch {
		case strings.HasPrefix(kv, "PUSHMAIL_"), strings.HasPrefix(kv, "PYTHONUNBUFFERED="):
		case strings.HasPrefix(kv, "PATH="):
			env = append(env, "PATH="+filepath.Dir(bin)+string(os.PathListSeparator)+strings.TrimPrefix(kv, "PATH="))
		default:
			env = append(env, kv)
		}
	}
	return append(env, "PYTHONUNBUFFERED=1")
}

// snippetCommand runs a block's text: shell blocks with bash, stopping at
// the first failing command, Python blocks with python3.
func snippetCommand(ctx context.Context, b readmeBlock, text, dir string, env []string) *exec.Cmd {
	var cmd *exec.Cmd
	if strings.HasPrefix(b.info, "python") {
		cmd = exec.CommandContext(ctx, "python3", "-")
		cmd.Stdin = strings.NewReader(text)
	} else {
		cmd = exec.CommandContext(ctx, "bash", "-e", "-o", "pipefail", "-c", text)
	}
	cmd.Dir, cmd.Env, cmd.WaitDelay = dir, env, 5*time.Second
	// A block's commands run in their own process group, all killed when
	// ctx ends: bash's children too, which would hold the output open.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	return cmd
}

// background is a long-running README snippet.
type background struct {
	block readmeBlock
	cmd   *exec.Cmd
	mu    sync.Mutex
	out   strings.Builder
	ready chan struct{} // closed at its first line of output
	done  chan error    // its exit
}

func (bg *background) output() string {
	bg.mu.Lock()
	defer bg.mu.Unlock()
	return bg.out.String()
}

// startBackground starts cmd and collects its output (stdout and stderr).
func startBackground(t *testing.T, b readmeBlock, cmd *exec.Cmd) *background {
	t.Helper()
	bg := &background{block: b, cmd: cmd, ready: make(chan struct{}), done: make(chan error, 1)}
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = w, w
	if err := cmd.Start(); err != nil {
		t.Fatalf("README.md:%d: %v", b.line, err)
	}
	w.Close()
	go func() {
		defer r.Close()
		sc := bufio.NewScanner(r)
		first := true
		for sc.Scan() {
			bg.mu.Lock()
			if bg.out.Len() < 1<<20 { // a client stuck in a loop prints forever
				bg.out.WriteString(sc.Text() + "\n")
			}
			bg.mu.Unlock()
			if first {
				close(bg.ready)
				first = false
			}
		}
		bg.done <- cmd.Wait()
	}()
	return bg
}

// readmeCheck is what a run README block must print, beyond exiting 0.
// Each check must match exactly one run block, found by a piece of its
// text, so a block cannot silently stop being run.
type readmeCheck struct {
	block string   // text that picks the block
	want  []string // regexps its output must match
}

var readmeChecks = []readmeCheck{
	{block: "user add alice@localhost", want: []string{`(?mi)^added alice@localhost$`}},
	// The IDLE client: pushed the delivery, then ended with the server.
	{block: " IDLE", want: []string{`(?m)\A\+ idling`, `(?m)^\* 1 EXISTS$`, `(?m)^\* BYE `}},
	{block: "swaks --server", want: []string{`(?m)^<-  250 2\.0\.0 Delivered \(id \S+\)$`}},
	{block: "config check pushmail.sample.toml", want: []string{`(?m)^\[listen\]$`}},
	// POP3 lists and retrieves swaks's message, and leaves it there.
	{block: "pop3://", want: []string{`(?m)^1 \d+\r?$`, `(?m)^Subject: hello\r?$`}},
	{block: "openssl s_client -connect", want: []string{`Verify return code: 0 \(ok\)`}},
	{block: "/healthz", want: []string{`(?m)^ok$`, `(?m)^pushmail_smtp_messages_total\{proto="smtp",reply="250"\} 1$`}},
}

// TestReadmeSnippets follows the README as a new user would: the
// Quickstart's server (the binary built as it says, with its serve flags,
// on free ports instead of the dev ports, which a developer's own server
// may hold), then every shell and Python block in order, in a directory
// laid out like the checkout after the build. Each block must exit 0
// within a minute; the IDLE client runs in the background until the
// server stops, and must have seen the swaks delivery.
func TestReadmeSnippets(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary and third-party clients")
	}
	var missing []string
	for _, tool := range []string{"bash", "python3", "swaks", "openssl", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Skipf("README commands need %s (test.sh installs them)", strings.Join(missing, ", "))
	}

	var setup *readmeBlock
	var runs []readmeBlock
	for _, b := range readmeBlocks(t) {
		if !b.runnable() {
			continue
		}
		switch kind, reason := b.kind(); kind {
		case "not run":
			if reason == "" {
				t.Errorf("README.md:%d: <!-- not run: --> needs a reason", b.line)
			}
		case "setup":
			if setup != nil {
				t.Errorf("README.md:%d: a second setup block (the first is at line %d)", b.line, setup.line)
			}
			setup = &b
		case "", "background":
			runs = append(runs, b)
		default:
			t.Errorf("README.md:%d: unknown note %q", b.line, b.note)
		}
	}
	if setup == nil {
		t.Fatal("README.md has no <!-- setup: --> block (the Quickstart)")
	}
	flags := quickstart(t, *setup)

	// The checkout, as the Quickstart leaves it.
	work := t.TempDir()
	bin := pushmailBinary(t)
	if err := os.Symlink(bin, filepath.Join(work, "pushmail")); err != nil {
		t.Fatal(err)
	}
	sample, err := os.ReadFile("../../pushmail.sample.toml")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(work, "pushmail.sample.toml"), sample, 0o644); err != nil {
		t.Fatal(err)
	}
	// serve's default data directory is ./pushmail-data.
	srv := startServer(t, filepath.Join(work, "pushmail-data"), append(flags,
		"--smtp", "127.0.0.1:0", "--lmtp", "127.0.0.1:0", "--submission", "127.0.0.1:0",
		"--imap", "127.0.0.1:0", "--imaps", "127.0.0.1:0", "--pop3", "127.0.0.1:0", "--pop3s", "127.0.0.1:0",
		"--http", "127.0.0.1:0")...)

	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Minute)
	defer cancel()
	env := snippetEnv(bin)
	outputs := map[int]string{} // block line -> output
	var bgs []*background
	t.Cleanup(func() { // after a failure: end the clients still running
		cancel()
		for _, bg := range bgs {
			<-bg.done
		}
	})
	for _, b := range runs {
		text := toServerPorts(t, b.text, srv)
		if kind, _ := b.kind(); kind == "background" {
			bg := startBackground(t, b, snippetCommand(ctx, b, text, work, env))
			bgs = append(bgs, bg)
			select {
			case <-bg.ready:
			case err := <-bg.done:
				bg.done <- err
				t.Fatalf("README.md:%d: exited before printing anything: %v\n%s", b.line, err, bg.output())
			case <-time.After(30 * time.Second):
				t.Fatalf("README.md:%d: printed nothing within 30s", b.line)
			}
			continue
		}
		bctx, bcancel := context.WithTimeout(ctx, time.Minute)
		out, err := snippetCommand(bctx, b, text, work, env).CombinedOutput()
		bcancel()
		outputs[b.line] = string(out)
		if err != nil {
			t.Errorf("README.md:%d: %v\n%s\noutput:\n%s", b.line, err, text, out)
		}
	}

	// What the server holds: the message swaks sent.
	c, _ := inbox(t, srv.addr("imap"), "alice@localhost", "secret")
	if got := subjects(t, c); len(got) != 1 || !slices.Contains(slices.Collect(maps.Values(got)), "hello") {
		t.Errorf("alice's INBOX after the README = %v, want the one message with Subject: hello", got)
	}
	c.Close()

	if err := srv.stop(t); err != nil {
		t.Errorf("pushmail serve after SIGTERM: %v", err)
	}
	for _, bg := range bgs {
		select {
		case err := <-bg.done:
			bg.done <- err // for the cleanup
			outputs[bg.block.line] = bg.output()
			if err != nil {
				t.Errorf("README.md:%d: %v after the server stopped\noutput:\n%s", bg.block.line, err, bg.output())
			}
		case <-time.After(30 * time.Second):
			outputs[bg.block.line] = bg.output()
			t.Errorf("README.md:%d: still running 30s after the server stopped\noutput (end):\n%s", bg.block.line, lastBytes(bg.output(), 2000))
		}
	}

	for _, check := range readmeChecks {
		var matched []readmeBlock
		for _, b := range runs {
			if strings.Contains(b.text, check.block) {
				matched = append(matched, b)
			}
		}
		if len(matched) != 1 {
			t.Errorf("%d run README blocks contain %q, want 1", len(matched), check.block)
			continue
		}
		out := outputs[matched[0].line]
		for _, want := range check.want {
			if !regexp.MustCompile(want).MatchString(out) {
				t.Errorf("README.md:%d: output does not match %s:\n%s", matched[0].line, want, lastBytes(out, 4000))
			}
		}
	}
}

// lastBytes returns the end of s, at most n bytes, for error messages.
func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return "…" + s[len(s)-n:]
}

// TestReadmeIMAPCapabilities: the README's list of IMAP capabilities is
// what a running server advertises after LOGIN (RFC 9051 §6.1.1), in
// the same order, so that the list cannot drift from the code.
func TestReadmeIMAPCapabilities(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	var documented []string
	for _, b := range readmeBlocks(t) {
		if _, reason := b.kind(); strings.Contains(reason, "TestReadmeIMAPCapabilities") {
			documented = strings.Fields(b.text)
		}
	}
	if len(documented) == 0 {
		t.Fatal("README.md has no block noted for TestReadmeIMAPCapabilities")
	}
	data := t.TempDir()
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")
	// A raw line, not imapclient, which keeps capabilities in a set:
	// the order is compared too.
	raw, err := net.Dial("tcp", srv.addr("imap"))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	if err := raw.SetDeadline(time.Now().Add(10 * time.Second)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(raw)
	if _, err := r.ReadString('\n'); err != nil {
		t.Fatal(err)
	}
	if _, err := io.WriteString(raw, "a LOGIN alice@localhost secret\r\nb CAPABILITY\r\n"); err != nil {
		t.Fatal(err)
	}
	var advertised []string
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("reading CAPABILITY: %v", err)
		}
		if rest, ok := strings.CutPrefix(line, "* CAPABILITY "); ok {
			advertised = strings.Fields(rest)
		}
		if strings.HasPrefix(line, "b ") {
			break
		}
	}
	if !slices.Equal(advertised, documented) {
		t.Errorf("after LOGIN the server advertises\n  %s\nREADME.md documents\n  %s", strings.Join(advertised, " "), strings.Join(documented, " "))
	}
}
