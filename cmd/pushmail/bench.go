package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// benchMode is one "pushmail bench" mode. flags registers the mode's own
// flags and returns the function that runs it once they are parsed.
type benchMode struct {
	name    string
	summary string
	server  string // the default --server
	flags   func(fs *flag.FlagSet) func(ctx context.Context, b *bench) (benchResult, error)
}

// benchResult is what a mode reports: JSON through its fields' tags, text
// through writeText.
type benchResult interface {
	writeText(w io.Writer)
}

func benchModes() []benchMode {
	return []benchMode{
		{"latency", "push latency: SMTP 250 (and start of the transaction) to * N EXISTS in IDLE", "inproc", latencyFlags},
		{"ingest", "durable ingest: concurrent SMTP senders, msgs/s, server CPU per message, nothing lost", "child", ingestFlags},
		{"idle", "idle IMAP sessions: server RSS per session, time to connect, fan-out of one delivery", "child", idleFlags},
		{"bigbox", "a large mailbox: SELECT, UID FETCH 1:* (UID FLAGS), SEARCH, one BODY[]", "inproc", bigboxFlags},
		{"fsync", "the disk: write+fsync per second in --dir (what bounds a durable commit)", "", fsyncFlags},
	}
}

// bench holds the options every mode shares and the run's progress output.
type bench struct {
	mode       string
	server     string // inproc, child or external
	serverBin  string
	dir        string
	smtpAddr   string
	imapAddr   string
	user       string
	password   string
	serverPID  int
	logLevel   string
	timeout    time.Duration
	dialConc   int
	cpuProfile string
	memProfile string
	quiet      bool
	stderr     io.Writer

	profiling bool
}

// benchReport is the whole output of one run.
type benchReport struct {
	Mode      string      `json:"mode"`
	Server    string      `json:"server,omitempty"` // inproc, child or external
	CPUs      int         `json:"cpus"`
	GoVersion string      `json:"go_version"`
	LoadAvg   []float64   `json:"load_avg"` // 1, 5 and 15 minutes, at the start
	Started   time.Time   `json:"started"`
	Seconds   float64     `json:"seconds"` // wall time of the whole run
	Result    benchResult `json:"result"`
}

func benchUsage(w io.Writer) {
	fmt.Fprintln(w, "Usage: pushmail bench MODE [flags]")
	fmt.Fprintln(w, "\nMeasures a pushmail server over real loopback sockets with real SMTP and IMAP")
	fmt.Fprintln(w, "clients. By default it starts a server on a fresh temporary data directory,")
	fmt.Fprintln(w, "in this process (--server inproc) or as a child \"pushmail serve\" (--server child,")
	fmt.Fprintln(w, "so that its CPU and memory are measured alone); --smtp/--imap/--user/--password")
	fmt.Fprintln(w, "target a running server instead.\n\nModes:")
	for _, m := range benchModes() {
		fmt.Fprintf(w, "  %-8s %s\n", m.name, m.summary)
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
	i := slices.IndexFunc(benchModes(), func(m benchMode) bool { return m.name == args[0] })
	if i < 0 {
		fmt.Fprintf(stderr, "pushmail bench: unknown mode %q\n\n", args[0])
		benchUsage(stderr)
		return errUsage
	}
	mode := benchModes()[i]
	fs := newFlagSet("bench "+mode.name, "", stderr)
	b := &bench{mode: mode.name, stderr: stderr}
	jsonOut := fs.Bool("json", false, "print the results as JSON on standard output")
	if mode.server != "" {
		fs.StringVar(&b.server, "server", mode.server, "inproc: serve in this process; child: run \"pushmail serve\" as a child process (its CPU and RSS measured alone); ignored with --smtp/--imap")
		fs.StringVar(&b.serverBin, "server-binary", "", "the pushmail binary for --server child (default: this executable)")
		fs.StringVar(&b.smtpAddr, "smtp", "", "target a running server: its SMTP address (host:port)")
		fs.StringVar(&b.imapAddr, "imap", "", "target a running server: its IMAP address (host:port, plaintext)")
		fs.StringVar(&b.user, "user", "", "with --smtp/--imap: the account that receives and watches (its INBOX is used)")
		fs.StringVar(&b.password, "password", "", "with --smtp/--imap: the account's password")
		fs.IntVar(&b.serverPID, "server-pid", 0, "with --smtp/--imap: the server's process ID, to read its CPU and RSS from /proc")
		fs.StringVar(&b.logLevel, "log-level", "info", "the started server's log level; its logs are formatted, then discarded")
		fs.DurationVar(&b.timeout, "timeout", 10*time.Second, "how long to wait for one push or one command before counting it missed or failing")
		fs.IntVar(&b.dialConc, "dial-concurrency", 64, "IMAP sessions set up at once")
		fs.StringVar(&b.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phase to FILE (the server is in it only with --server inproc)")
		fs.StringVar(&b.memProfile, "memprofile", "", "write a heap profile to FILE at the end of the measured phase")
	}
	fs.StringVar(&b.dir, "dir", "", "parent of the temporary data directory (default: the system's temporary directory); it must be on the disk to measure")
	fs.BoolVar(&b.quiet, "quiet", false, "no progress messages on standard error")
	runMode := mode.flags(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "pushmail bench %s: unexpected argument %q\n", mode.name, fs.Arg(0))
		return errUsage
	}
	if mode.server != "" {
		if err := b.checkTarget(); err != nil {
			fmt.Fprintf(stderr, "pushmail bench %s: %v\n", mode.name, err)
			return errUsage
		}
	}

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	report := benchReport{
		Mode:      mode.name,
		Server:    b.server,
		CPUs:      runtime.NumCPU(),
		GoVersion: runtime.Version(),
		LoadAvg:   loadAverage(),
		Started:   time.Now(),
	}
	res, err := runMode(ctx, b)
	if err != nil {
		return err
	}
	report.Result = res
	report.Seconds = time.Since(report.Started).Seconds()
	if *jsonOut {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		return enc.Encode(report)
	}
	server := ""
	if report.Server != "" {
		server = "server " + report.Server + ", "
	}
	fmt.Fprintf(stdout, "pushmail bench %s: %s%d CPUs, %s, load average %s at start, %.1fs\n",
		report.Mode, server, report.CPUs, report.GoVersion, formatLoad(report.LoadAvg), report.Seconds)
	res.writeText(stdout)
	return nil
}

// checkTarget validates the server flags.
func (b *bench) checkTarget() error {
	external := b.smtpAddr != "" || b.imapAddr != ""
	if external {
		if b.smtpAddr == "" || b.imapAddr == "" || b.user == "" {
			return errors.New("--smtp, --imap and --user go together")
		}
		b.server = "external"
		return nil
	}
	if b.user != "" || b.password != "" || b.serverPID != 0 {
		return errors.New("--user, --password and --server-pid need --smtp and --imap")
	}
	switch b.server {
	case "inproc", "child":
	default:
		return fmt.Errorf("--server: want inproc or child, got %q", b.server)
	}
	if _, err := parseLevel(b.logLevel); err != nil {
		return err
	}
	if b.server == "child" && b.serverBin == "" {
		exe, err := os.Executable()
		if err != nil {
			return fmt.Errorf("--server child: %w; set --server-binary", err)
		}
		if strings.HasSuffix(filepath.Base(exe), ".test") {
			return errors.New("--server child from a test binary needs --server-binary")
		}
		b.serverBin = exe
	}
	if b.dialConc <= 0 {
		return errors.New("--dial-concurrency must be positive")
	}
	return nil
}

// progress prints a progress line on standard error, unless --quiet.
func (b *bench) progress(format string, args ...any) {
	if !b.quiet {
		fmt.Fprintf(b.stderr, "bench %s: %s\n", b.mode, fmt.Sprintf(format, args...))
	}
}

// startProfile starts the CPU profile of the measured phase, if asked
// for; the returned function stops it and writes the heap profile.
func (b *bench) startProfile() (stop func() error, err error) {
	var f *os.File
	if b.cpuProfile != "" {
		if f, err = os.Create(b.cpuProfile); err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
	}
	return func() error {
		var errs []error
		if f != nil {
			pprof.StopCPUProfile()
			errs = append(errs, f.Close())
		}
		if b.memProfile != "" {
			mf, err := os.Create(b.memProfile)
			if err != nil {
				return err
			}
			runtime.GC()
			errs = append(errs, pprof.WriteHeapProfile(mf), mf.Close())
		}
		return errors.Join(errs...)
	}, nil
}

// dist summarises a sample of durations, in microseconds. Percentiles are
// nearest-rank.
type dist struct {
	N   int     `json:"n"`
	Min float64 `json:"min_us"`
	P50 float64 `json:"p50_us"`
	P90 float64 `json:"p90_us"`
	P99 float64 `json:"p99_us"`
	Max float64 `json:"max_us"`
}

func newDist(sample []time.Duration) dist {
	if len(sample) == 0 {
		return dist{}
	}
	s := slices.Clone(sample)
	slices.Sort(s)
	us := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e3 }
	rank := func(p float64) time.Duration {
		i := int(math.Ceil(p*float64(len(s)))) - 1
		return s[min(max(i, 0), len(s)-1)]
	}
	return dist{N: len(s), Min: us(s[0]), P50: us(rank(0.50)), P90: us(rank(0.90)), P99: us(rank(0.99)), Max: us(s[len(s)-1])}
}

func (d dist) String() string {
	if d.N == 0 {
		return "no samples"
	}
	return fmt.Sprintf("p50 %s  p90 %s  p99 %s  max %s  (min %s, n=%d)",
		formatUS(d.P50), formatUS(d.P90), formatUS(d.P99), formatUS(d.Max), formatUS(d.Min), d.N)
}

// formatUS prints microseconds with a unit that suits the size.
func formatUS(us float64) string {
	switch a := math.Abs(us); {
	case a < 1000:
		return fmt.Sprintf("%.0fµs", us)
	case a < 1e6:
		return fmt.Sprintf("%.2fms", us/1e3)
	default:
		return fmt.Sprintf("%.2fs", us/1e6)
	}
}

// median returns the middle of a sample (the upper one of an even count).
func median(sample []time.Duration) time.Duration {
	if len(sample) == 0 {
		return 0
	}
	s := slices.Clone(sample)
	slices.Sort(s)
	return s[len(s)/2]
}

func loadAverage() []float64 {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return nil
	}
	var out []float64
	for _, f := range strings.Fields(string(data))[:3] {
		v, err := strconv.ParseFloat(f, 64)
		if err != nil {
			return nil
		}
		out = append(out, v)
	}
	return out
}

func formatLoad(l []float64) string {
	if len(l) != 3 {
		return "unknown"
	}
	return fmt.Sprintf("%.2f %.2f %.2f", l[0], l[1], l[2])
}

// raiseNoFile raises the open-file limit so that want descriptors fit: to
// the hard limit, and beyond it up to fs.nr_open when the process may
// (root). Children started later inherit it. It returns the new limit.
func raiseNoFile(want uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("getrlimit: %w", err)
	}
	if lim.Max < want {
		if data, err := os.ReadFile("/proc/sys/fs/nr_open"); err == nil {
			if nrOpen, err := strconv.ParseUint(strings.TrimSpace(string(data)), 10, 64); err == nil {
				up := syscall.Rlimit{Cur: min(max(want, lim.Max), nrOpen), Max: min(max(want, lim.Max), nrOpen)}
				if syscall.Setrlimit(syscall.RLIMIT_NOFILE, &up) == nil {
					return up.Cur, nil
				}
				// Not privileged: the hard limit is as far as we go.
			}
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, fmt.Errorf("setrlimit: %w", err)
	}
	return lim.Cur, nil
}

// needFiles raises the open-file limit for n connections and fails early,
// with the limit in the message, if they cannot fit.
func (b *bench) needFiles(n int) error {
	want := uint64(n) + 256 // listeners, the database, the runtime
	if b.server == "inproc" {
		want += uint64(n) // both ends of every connection are ours
	}
	got, err := raiseNoFile(want)
	if err != nil {
		return err
	}
	if got < want {
		hint := "raise the hard limit (ulimit -Hn, LimitNOFILE=)"
		if b.server == "inproc" {
			hint = "use --server child, where each process holds one end, or " + hint
		}
		return fmt.Errorf("%d connections need about %d open files; the limit is %d: %s", n, want, got, hint)
	}
	return nil
}
