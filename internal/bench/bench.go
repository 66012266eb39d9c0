package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"runtime"
	"runtime/pprof"
	"runtime/trace"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Mode is one "pushmail bench" mode. The zero value is not a mode: take
// them from Modes.
type Mode struct {
	Name    string
	Summary string // one line, for the sub-command's usage
	// Server is the default --server (inproc or child), or "" for a mode
	// that starts no server and takes none of Options' server fields.
	Server string
	flags  func(fs *flag.FlagSet) func(ctx context.Context, b *bench) (Result, error)
}

// Result is what a mode reports: JSON through its fields' tags, text
// through WriteText.
type Result interface {
	WriteText(w io.Writer)
}

// Modes returns every mode, in the order the usage lists them.
func Modes() []Mode {
	return []Mode{
		{"latency", "push latency: SMTP 250 (and start of the transaction) to * N EXISTS in IDLE", "inproc", latencyFlags},
		{"ingest", "durable ingest: concurrent SMTP senders, msgs/s, server CPU per message, nothing lost", "child", ingestFlags},
		{"idle", "idle IMAP sessions: server RSS per session, time to connect, fan-out of one delivery", "child", idleFlags},
		{"bigbox", "a large mailbox: SELECT, UID FETCH 1:* (UID FLAGS), SEARCH, one BODY[]", "inproc", bigboxFlags},
		{"jmap", "push over HTTP: SMTP 250 to the StateChange on JMAP event streams (one or many)", "inproc", jmapFlags},
		{"qresync", "a QRESYNC client's reconnect to a large mailbox after 100 changes (RFC 7162 §3.2.5)", "inproc", qresyncFlags},
		{"crossnode", "two nodes on one PostgreSQL store: SMTP 250 on one to * N EXISTS on the other, and ingest split over both", "child", crossnodeFlags},
		{"fsync", "the disk: write+fsync per second in --dir (what bounds a durable commit)", "", fsyncFlags},
	}
}

// ErrUsage is returned by a run given a bad mode flag value; the problem
// has been written to Options.Stderr.
var ErrUsage = errors.New("bench: bad flag value")

// ServeFunc runs a pushmail server in this process, as "pushmail serve"
// does, until ctx is cancelled, then shuts it down and returns. Its data
// directory is dir, which holds a store already (Options.StoreFile);
// SMTP, IMAP and HTTP (/metrics) listen on free loopback ports, with no
// connection limits below MaxConns. It logs to logger "listening" with
// proto and addr attributes for each listener, then "pushmail started",
// both at info: the harness reads the addresses from them.
type ServeFunc func(ctx context.Context, dir string, logger *slog.Logger) error

// MaxConns is the connection limit a started server gets (per server and
// per IP): high enough to be out of the way.
const MaxConns = 1 << 20

// Options are what every mode shares: the server to measure and the run's
// output. cmd/pushmail fills them from the bench sub-command's flags; the
// flag names are in the field comments.
type Options struct {
	Server       string // --server: inproc, child or external (--smtp and --imap given)
	ServerBinary string // --server-binary: the pushmail binary that --server child runs
	Dir          string // --dir: parent of the temporary data directory ("": the system's)
	// An external server (--smtp, --imap, --user, --password, --server-pid):
	// its plaintext addresses, the account that receives and watches, and
	// its process ID for CPU and RSS (0: unknown).
	SMTPAddr, IMAPAddr string
	User, Password     string
	ServerPID          int
	LogLevel           string        // --log-level: a started server's slog level name
	Timeout            time.Duration // --timeout: for one push or one command
	DialConcurrency    int           // --dial-concurrency: IMAP sessions set up at once
	CPUProfile         string        // --cpuprofile: file for a CPU profile of the measured phase
	MemProfile         string        // --memprofile: file for a heap profile at its end
	Trace              string        // --trace: file for an execution trace of the measured phase
	Quiet              bool          // --quiet: no progress lines
	Stderr             io.Writer     // progress lines and mode usage errors

	// Serve runs the server for --server inproc.
	Serve ServeFunc
	// StoreFile is the store's file name in a data directory.
	StoreFile string
	// ShutdownTimeout is how long "pushmail serve" may take to stop after
	// SIGTERM (--server child); ten seconds more and it is killed.
	ShutdownTimeout time.Duration
}

// bench is one run: the options and the mode's name, for progress lines.
type bench struct {
	mode            string
	server          string // inproc, child or external
	serverBin       string
	dir             string
	smtpAddr        string
	imapAddr        string
	user            string
	password        string
	serverPID       int
	logLevel        string
	timeout         time.Duration
	dialConc        int
	cpuProfile      string
	memProfile      string
	trace           string
	quiet           bool
	stderr          io.Writer
	serve           ServeFunc
	storeFile       string
	shutdownTimeout time.Duration
	// store, when set, is the --store of the servers startChild runs
	// (crossnode: a PostgreSQL database); "" for their data directory's.
	store string
	// imaps: the watchers of "bench idle --tls" use implicit TLS, which a
	// started child serves with a self-signed certificate (--dev-tls).
	imaps bool

	profiling bool
}

// Report is the whole output of one run.
type Report struct {
	Mode      string    `json:"mode"`
	Server    string    `json:"server,omitempty"` // inproc, child or external
	CPUs      int       `json:"cpus"`
	GoVersion string    `json:"go_version"`
	LoadAvg   []float64 `json:"load_avg"` // 1, 5 and 15 minutes, at the start
	Started   time.Time `json:"started"`
	Seconds   float64   `json:"seconds"` // wall time of the whole run
	Result    Result    `json:"result"`
}

// Run runs a mode once with opts, whose server fields the caller has
// validated. It blocks until the run ends or ctx is cancelled, and stops
// every server and client it started before it returns.
type Run func(ctx context.Context, opts Options) (*Report, error)

// Flags registers the mode's own flags on fs and returns the function
// that runs the mode once fs is parsed.
func (m Mode) Flags(fs *flag.FlagSet) Run {
	run := m.flags(fs)
	return func(ctx context.Context, o Options) (*Report, error) {
		b := &bench{mode: m.Name, server: o.Server, serverBin: o.ServerBinary, dir: o.Dir,
			smtpAddr: o.SMTPAddr, imapAddr: o.IMAPAddr, user: o.User, password: o.Password, serverPID: o.ServerPID,
			logLevel: o.LogLevel, timeout: o.Timeout, dialConc: o.DialConcurrency,
			cpuProfile: o.CPUProfile, memProfile: o.MemProfile, trace: o.Trace, quiet: o.Quiet, stderr: o.Stderr,
			serve: o.Serve, storeFile: o.StoreFile, shutdownTimeout: o.ShutdownTimeout}
		if b.stderr == nil {
			b.stderr = io.Discard
		}
		report := &Report{
			Mode:      m.Name,
			Server:    o.Server,
			CPUs:      runtime.NumCPU(),
			GoVersion: runtime.Version(),
			LoadAvg:   loadAverage(),
			Started:   time.Now(),
		}
		res, err := run(ctx, b)
		if err != nil {
			return nil, err
		}
		report.Result = res
		report.Seconds = time.Since(report.Started).Seconds()
		return report, nil
	}
}

// WriteText writes the report as text: a line about the run, then the
// mode's figures.
func (r *Report) WriteText(w io.Writer) {
	server := ""
	if r.Server != "" {
		server = "server " + r.Server + ", "
	}
	fmt.Fprintf(w, "pushmail bench %s: %s%d CPUs, %s, load average %s at start, %.1fs\n",
		r.Mode, server, r.CPUs, r.GoVersion, formatLoad(r.LoadAvg), r.Seconds)
	r.Result.WriteText(w)
}

// progress prints a progress line on standard error, unless --quiet.
func (b *bench) progress(format string, args ...any) {
	if !b.quiet {
		fmt.Fprintf(b.stderr, "bench %s: %s\n", b.mode, fmt.Sprintf(format, args...))
	}
}

// startProfile starts the CPU profile and the execution trace of the
// measured phase, if asked for; the returned function stops them and
// writes the heap profile. The trace shows what a CPU profile cannot:
// where goroutines wait (a writer inside a cgo call, a session waiting
// for its commit), which is what paces a run on a busy host.
func (b *bench) startProfile() (stop func() error, err error) {
	var f, tf *os.File
	if b.cpuProfile != "" {
		if f, err = os.Create(b.cpuProfile); err != nil {
			return nil, err
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			f.Close()
			return nil, err
		}
	}
	if b.trace != "" {
		if tf, err = os.Create(b.trace); err == nil {
			if err = trace.Start(tf); err != nil {
				tf.Close()
			}
		}
		if err != nil {
			if f != nil {
				pprof.StopCPUProfile()
				f.Close()
			}
			return nil, err
		}
	}
	return func() error {
		var errs []error
		if tf != nil {
			trace.Stop()
			errs = append(errs, tf.Close())
		}
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
