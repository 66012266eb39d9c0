package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"pushmail/internal/bench"
)

// This file is the "pushmail bench" sub-command's wiring only: its flags,
// and the in-process server the harness runs. The harness itself (modes,
// clients, watchers, reports) is package internal/bench.

func benchUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: pushmail bench MODE [flags]")
	fmt.Fprintln(w, "\nMeasures a pushmail server over real loopback sockets with real SMTP and IMAP")
	fmt.Fprintln(w, "clients. By default it starts a server on a fresh temporary data directory,")
	fmt.Fprintln(w, "in this process (--server inproc) or as a child \"pushmail serve\" (--server child,")
	fmt.Fprintln(w, "so that its CPU and memory are measured alone); --smtp/--imap/--user/--password")
	fmt.Fprintln(w, "target a running server instead.\n\nModes:")
	for _, m := range bench.Modes() {
		fmt.Fprintf(w, "  %-8s %s\n", m.Name, m.Summary)
	}
	fmt.Fprintln(w, "\nRun \"pushmail bench MODE --help\" for a mode's flags.")
}

// runBench implements "pushmail bench MODE [flags]".
func runBench(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		benchUsage(stderr)
		if len(args) == 0 {
			return errUsage
		}
		return errHelp
	}
	i := slices.IndexFunc(bench.Modes(), func(m bench.Mode) bool { return m.Name == args[0] })
	if i < 0 {
		fmt.Fprintf(stderr, "pushmail bench: unknown mode %q\n\n", args[0])
		benchUsage(stderr)
		return errUsage
	}
	mode := bench.Modes()[i]
	fs := newFlagSet("bench "+mode.Name, "", stderr)
	o := bench.Options{Stderr: stderr, StoreFile: dbFile, ShutdownTimeout: shutdownTimeout}
	jsonOut := fs.Bool("json", false, "print the results as JSON on standard output")
	if mode.Server != "" {
		fs.StringVar(&o.Server, "server", mode.Server, "inproc: serve in this process; child: run \"pushmail serve\" as a child process (its CPU and RSS measured alone); ignored with --smtp/--imap")
		fs.StringVar(&o.ServerBinary, "server-binary", "", "the pushmail binary for --server child (default: this executable)")
		fs.StringVar(&o.SMTPAddr, "smtp", "", "target a running server: its SMTP address (host:port)")
		fs.StringVar(&o.IMAPAddr, "imap", "", "target a running server: its IMAP address (host:port, plaintext)")
		fs.StringVar(&o.User, "user", "", "with --smtp/--imap: the account that receives and watches (its INBOX is used)")
		fs.StringVar(&o.Password, "password", "", "with --smtp/--imap: the account's password")
		fs.IntVar(&o.ServerPID, "server-pid", 0, "with --smtp/--imap: the server's process ID, to read its CPU and RSS from /proc")
		fs.StringVar(&o.LogLevel, "log-level", "info", "the started server's log level; its logs are formatted, then discarded")
		fs.DurationVar(&o.Timeout, "timeout", 10*time.Second, "how long to wait for one push or one command before counting it missed or failing")
		fs.IntVar(&o.DialConcurrency, "dial-concurrency", 64, "IMAP sessions set up at once")
		fs.StringVar(&o.CPUProfile, "cpuprofile", "", "write a CPU profile of the measured phase to FILE (the server is in it only with --server inproc)")
		fs.StringVar(&o.MemProfile, "memprofile", "", "write a heap profile to FILE at the end of the measured phase")
		fs.StringVar(&o.Trace, "trace", "", "write an execution trace of the measured phase to FILE, for go tool trace: where goroutines wait off CPU (the server is in it only with --server inproc)")
	}
	fs.StringVar(&o.Dir, "dir", "", "parent of the temporary data directory (default: the system's temporary directory); it must be on the disk to measure")
	fs.BoolVar(&o.Quiet, "quiet", false, "no progress messages on standard error")
	runMode := mode.Flags(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "pushmail bench %s: unexpected argument %q\n", mode.Name, fs.Arg(0))
		return errUsage
	}
	if mode.Server != "" {
		if err := checkBenchTarget(&o); err != nil {
			fmt.Fprintf(stderr, "pushmail bench %s: %v\n", mode.Name, err)
			return errUsage
		}
	}
	logLevel := o.LogLevel
	o.Serve = func(ctx context.Context, dir string, logger *slog.Logger) error {
		return serve(ctx, benchConfig(dir, logLevel), logger)
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	report, err := runMode(ctx, o)
	if errors.Is(err, bench.ErrUsage) {
		return errUsage
	}
	if err != nil {
		return err
	}
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	report.WriteText(stdout)
	return nil
}

// checkBenchTarget validates the server flags: an external server, or a
// started one of a known kind, and completes the defaults.
func checkBenchTarget(o *bench.Options) error {
	external := o.SMTPAddr != "" || o.IMAPAddr != ""
	if external {
		if o.SMTPAddr == "" || o.IMAPAddr == "" || o.User == "" {
			return errors.New("--smtp, --imap and --user go together")
		}
		o.Server = "external"
		return nil
	}
	if o.User != "" || o.Password != "" || o.ServerPID != 0 {
		return errors.New("--user, --password and --server-pid need --smtp and --imap")
	}
	switch o.Server {
	case "inproc", "child":
	default:
		return fmt.Errorf("--server: want inproc or child, got %q", o.Server)
	}
	if _, err := parseLevel(o.LogLevel); err != nil {
		return err
	}
	if o.Server == "child" && o.ServerBinary == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--server child: %w; set --server-binary", err)
		}
		if strings.HasSuffix(filepath.Base(exe), ".test") {
			return errors.New("--server child from a test binary needs --server-binary")
		}
		o.ServerBinary = exe
	}
	if o.DialConcurrency <= 0 {
		return errors.New("--dial-concurrency must be positive")
	}
	return nil
}

// benchConfig is the configuration of a server the bench starts in this
// process: the defaults, SMTP and IMAP on free loopback ports, nothing
// else listening but HTTP (for /metrics), and connection limits out of
// the way.
func benchConfig(dir, logLevel string) Config {
	cfg := defaultConfig()
	cfg.Data = dir
	cfg.Hostname = "bench.localhost"
	cfg.Domains = []string{"localhost"}
	cfg.Listen = ListenConfig{SMTP: "127.0.0.1:0", IMAP: "127.0.0.1:0", HTTP: "127.0.0.1:0"}
	cfg.Limits.MaxConns = bench.MaxConns
	cfg.Limits.MaxConnsPerIP = bench.MaxConns
	cfg.Log.Level = logLevel
	return cfg
}
