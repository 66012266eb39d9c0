package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/mailstore"
)

// The account a started server gets. Its password hash uses bcrypt's
// lowest cost, so that ten thousand LOGINs measure the server, not bcrypt.
const (
	benchUser     = "bench@localhost"
	benchPassword = "bench-password"
	benchSender   = "bench-sender@example.org"
)

// benchTarget is the server a bench talks to.
type benchTarget struct {
	kind     string // inproc, child or external
	smtpAddr string
	imapAddr string
	// imapsAddr is implicit TLS's address, with bench.imaps only.
	imapsAddr string
	user      string
	password  string
	// pid is the process whose CPU time and RSS are the server's: the
	// child, this process (inproc: shared with the clients) or --server-pid
	// (0: unknown).
	pid int
	// httpAddr serves /metrics (started servers only).
	httpAddr string

	stop func() error
}

// prepareFunc fills a fresh store before the server starts (bigbox).
type prepareFunc func(ctx context.Context, store *mailstore.Store, rcpt mailstore.Recipient) error

// start starts (or, with --smtp/--imap, names) the server, for a run that
// opens conns client connections (see needFiles). prepare, if not nil,
// runs on the fresh store first; it is not called for an external server.
// Call the target's stop when done.
func (b *bench) start(ctx context.Context, conns int, prepare prepareFunc) (*benchTarget, error) {
	if err := b.needFiles(conns + 16); err != nil {
		return nil, err
	}
	switch b.server {
	case "external":
		return &benchTarget{kind: "external", smtpAddr: b.smtpAddr, imapAddr: b.imapAddr,
			user: b.user, password: b.password, pid: b.serverPID, stop: func() error { return nil }}, nil
	case "inproc", "child":
	default:
		return nil, fmt.Errorf("unknown server kind %q", b.server)
	}
	dir, err := os.MkdirTemp(b.dir, "pushmail-bench-")
	if err != nil {
		return nil, err
	}
	if err := prepareData(ctx, filepath.Join(dir, b.storeFile), prepare); err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	var t *benchTarget
	if b.server == "inproc" {
		t, err = b.startInproc(ctx, dir)
	} else {
		t, err = b.startChild(ctx, dir)
	}
	if err != nil {
		return nil, errors.Join(err, os.RemoveAll(dir))
	}
	stop := t.stop
	t.stop = func() error { return errors.Join(stop(), os.RemoveAll(dir)) }
	return t, nil
}

// prepareData creates the store at path with the bench account, and lets
// prepare fill it, before any server opens it.
func prepareData(ctx context.Context, path string, prepare prepareFunc) error {
	store, err := mailstore.Open(ctx, path, mailstore.Options{
		PasswordCost: bcrypt.MinCost,
		Logger:       slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		return err
	}
	if _, err := store.AddUser(ctx, benchUser, benchPassword); err != nil {
		return errors.Join(err, store.Close())
	}
	if prepare != nil {
		rcpt, err := store.Resolve(ctx, benchUser)
		if err == nil {
			err = prepare(ctx, store, rcpt)
		}
		if err != nil {
			return errors.Join(err, store.Close())
		}
	}
	return store.Close()
}

// startInproc runs the server in this process (Options.Serve). Its logs
// are formatted as in production, then discarded; the listening addresses
// are read from them.
func (b *bench) startInproc(ctx context.Context, dir string) (*benchTarget, error) {
	if b.serve == nil {
		return nil, errors.New("--server inproc: no in-process server to run")
	}
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(b.logLevel)); err != nil {
		return nil, fmt.Errorf("log level: %w", err)
	}
	addrs := make(chan [2]string, 8)
	started := make(chan struct{})
	logger := slog.New(&captureHandler{
		Handler: slog.NewTextHandler(io.Discard, &slog.HandlerOptions{Level: lv}),
		addrs:   addrs, started: started, once: new(sync.Once),
	})
	sctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- b.serve(sctx, dir, logger) }()
	t := &benchTarget{kind: "inproc", user: benchUser, password: benchPassword, pid: os.Getpid()}
	t.stop = func() error {
		cancel()
		return <-done
	}
	select {
	case <-started:
	case err := <-done:
		cancel()
		return nil, fmt.Errorf("serve stopped before it started: %w", err)
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), t.stop())
	}
	for len(addrs) > 0 {
		a := <-addrs
		switch a[0] {
		case "smtp":
			t.smtpAddr = a[1]
		case "imap":
			t.imapAddr = a[1]
		case "http":
			t.httpAddr = a[1]
		}
	}
	if t.smtpAddr == "" || t.imapAddr == "" {
		return nil, errors.Join(errors.New("serve did not log its SMTP and IMAP addresses"), t.stop())
	}
	return t, nil
}

// captureHandler passes records on to Handler and picks from them the
// listening addresses and the "pushmail started" that serve logs at info,
// whatever the level.
type captureHandler struct {
	slog.Handler
	addrs   chan<- [2]string
	started chan struct{}
	once    *sync.Once
}

func (h *captureHandler) Enabled(ctx context.Context, lv slog.Level) bool {
	return lv >= slog.LevelInfo || h.Handler.Enabled(ctx, lv)
}

func (h *captureHandler) Handle(ctx context.Context, r slog.Record) error {
	switch r.Message {
	case "listening":
		var proto, addr string
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "proto":
				proto = a.Value.String()
			case "addr":
				addr = a.Value.String()
			}
			return true
		})
		select {
		case h.addrs <- [2]string{proto, addr}:
		default: // more listeners than expected: not ours to read
		}
	case "pushmail started":
		h.once.Do(func() { close(h.started) })
	}
	if !h.Handler.Enabled(ctx, r.Level) {
		return nil
	}
	return h.Handler.Handle(ctx, r)
}

func (h *captureHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithAttrs(attrs)
	return &c
}

func (h *captureHandler) WithGroup(name string) slog.Handler {
	c := *h
	c.Handler = h.Handler.WithGroup(name)
	return &c
}

var benchListeningRE = regexp.MustCompile(`msg=listening proto=(\w+) addr=(\S+)`)

// startChild runs "pushmail serve" on dir as a child process, on free
// loopback ports that it reports in its log. The child's log is read to
// the end and discarded.
func (b *bench) startChild(ctx context.Context, dir string) (*benchTarget, error) {
	// The child logs its listening addresses at info: it logs at least
	// that much.
	level := "info"
	var lv slog.Level
	if lv.UnmarshalText([]byte(b.logLevel)) == nil && lv < slog.LevelInfo {
		level = b.logLevel
	}
	limit := strconv.Itoa(MaxConns)
	cmd := exec.Command(b.serverBin, "serve", "--data", dir, "--domain", "localhost", "--hostname", "bench.localhost",
		"--smtp", "127.0.0.1:0", "--imap", "127.0.0.1:0", "--lmtp", "", "--submission", "", "--pop3", "", "--pop3s", "", "--http", "127.0.0.1:0",
		"--max-conns", limit, "--max-conns-per-ip", limit, "--log-level", level, "--log-format", "text")
	if b.store != "" {
		cmd.Args = append(cmd.Args, "--store", b.store)
	}
	if b.imaps {
		cmd.Args = append(cmd.Args, "--imaps", "127.0.0.1:0", "--dev-tls")
	} else {
		cmd.Args = append(cmd.Args, "--imaps", "")
	}
	// Only our flags configure it: no PUSHMAIL_* from this environment.
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PUSHMAIL_") {
			cmd.Env = append(cmd.Env, kv)
		}
	}
	cmd.Env = append(cmd.Env, "PUSHMAIL_CONFIG=")
	stderr, err := cmd.StderrPipe()
	if err != nil {
		return nil, err
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", b.serverBin, err)
	}
	t := &benchTarget{kind: "child", user: benchUser, password: benchPassword, pid: cmd.Process.Pid}
	var (
		mu    sync.Mutex
		tail  []string // the last lines, for an error report
		addrs = map[string]string{}
	)
	started := make(chan struct{})
	exited := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var once sync.Once
		for sc.Scan() {
			line := sc.Text()
			mu.Lock()
			if tail = append(tail, line); len(tail) > 20 {
				tail = tail[1:]
			}
			if m := benchListeningRE.FindStringSubmatch(line); m != nil {
				addrs[m[1]] = m[2]
			}
			mu.Unlock()
			if strings.Contains(line, "pushmail started") {
				once.Do(func() { close(started) })
			}
		}
		exited <- cmd.Wait()
	}()
	logTail := func() string {
		mu.Lock()
		defer mu.Unlock()
		return strings.Join(tail, "\n")
	}
	var exitErr error
	exitedEarly := false
	t.stop = func() error {
		if !exitedEarly {
			if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
				return err
			}
			select {
			case exitErr = <-exited:
			case <-time.After(b.shutdownTimeout + 10*time.Second):
				cmd.Process.Kill()
				exitErr = errors.Join(errors.New("pushmail serve did not stop after SIGTERM; killed"), <-exited)
			}
		}
		if exitErr != nil {
			return fmt.Errorf("pushmail serve: %w\n%s", exitErr, logTail())
		}
		return nil
	}
	select {
	case <-started:
	case exitErr = <-exited:
		exitedEarly = true
		if exitErr == nil {
			exitErr = errors.New("exited")
		}
		return nil, errors.Join(errors.New("pushmail serve stopped before it started"), t.stop())
	case <-time.After(60 * time.Second):
		return nil, errors.Join(errors.New("pushmail serve did not start within 60s"), t.stop())
	case <-ctx.Done():
		return nil, errors.Join(ctx.Err(), t.stop())
	}
	mu.Lock()
	t.smtpAddr, t.imapAddr, t.httpAddr, t.imapsAddr = addrs["smtp"], addrs["imap"], addrs["http"], addrs["imaps"]
	mu.Unlock()
	if b.imaps && t.imapsAddr == "" {
		return nil, errors.Join(errors.New("pushmail serve did not log its IMAPS address"), t.stop())
	}
	if t.smtpAddr == "" || t.imapAddr == "" {
		return nil, errors.Join(errors.New("pushmail serve did not log its SMTP and IMAP addresses"), t.stop())
	}
	return t, nil
}

// commitStats reads from the server's /metrics how many group commits it
// made and how many writes they held (pushmail_store_batch_writes).
func (t *benchTarget) commitStats(ctx context.Context) (commits, writes float64, ok bool) {
	if t.httpAddr == "" {
		return 0, 0, false
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+t.httpAddr+"/metrics", nil)
	if err != nil {
		return 0, 0, false
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, 0, false
	}
	defer resp.Body.Close()
	var seen int
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, found := strings.Cut(sc.Text(), " ")
		v, err := strconv.ParseFloat(value, 64)
		if !found || err != nil {
			continue
		}
		switch name {
		case "pushmail_store_batch_writes_count":
			commits, seen = v, seen+1
		case "pushmail_store_batch_writes_sum":
			writes, seen = v, seen+1
		}
	}
	return commits, writes, seen == 2 && resp.StatusCode == http.StatusOK
}

// cpuTime returns the CPU time (user + system) the server process has
// used, or ok false when it is unknown.
func (t *benchTarget) cpuTime() (d time.Duration, ok bool) {
	if t.pid == 0 {
		return 0, false
	}
	if t.pid == os.Getpid() {
		return selfCPU(), true
	}
	d, err := procCPU(t.pid)
	return d, err == nil
}

// rss returns the server process's resident set size in bytes.
func (t *benchTarget) rss() (int64, bool) {
	if t.pid == 0 {
		return 0, false
	}
	n, err := procRSS(t.pid)
	return n, err == nil
}

// selfCPU returns this process's CPU time, all threads.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat times: 100 on every
// Linux architecture Go supports.
const clockTicks = 100

// procCPU reads utime + stime of every thread of pid from /proc/PID/stat.
func procCPU(pid int) (time.Duration, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The command name, in parentheses, may hold spaces: fields count
	// from the last ')'. utime and stime are fields 14 and 15 (proc(5)).
	s := string(data)
	f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc/%d/stat: too few fields", pid)
	}
	utime, err1 := strconv.ParseInt(f[11], 10, 64)
	stime, err2 := strconv.ParseInt(f[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return time.Duration(utime+stime) * time.Second / clockTicks, nil
}

// procRSS reads VmRSS from /proc/PID/status, in bytes.
func procRSS(pid int) (int64, error) {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for line := range strings.Lines(string(data)) {
		if v, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/%d/status VmRSS: %w", pid, err)
			}
			return kb << 10, nil
		}
	}
	return 0, fmt.Errorf("/proc/%d/status: no VmRSS", pid)
}
