package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"
)

// FsyncResult is the outcome of "pushmail bench fsync".
type FsyncResult struct {
	Dir     string  `json:"dir"`
	Size    int     `json:"size"`
	Syncs   int     `json:"syncs"`
	Seconds float64 `json:"seconds"`
	PerSec  float64 `json:"fsyncs_per_sec"`
	Latency dist    `json:"latency"`
}

func fsyncFlags(fs *flag.FlagSet) func(context.Context, *bench) (Result, error) {
	duration := fs.Duration("duration", 3*time.Second, "how long to write and fsync")
	size := fs.Int("size", 4096, "bytes appended before each fsync")
	return func(ctx context.Context, b *bench) (Result, error) {
		if *duration <= 0 || *size <= 0 {
			return nil, errors.New("--duration and --size must be positive")
		}
		return runFsync(ctx, b, *duration, *size)
	}
}

// runFsync appends size bytes and fsyncs, over and over, as a WAL commit
// does: the rate bounds how many group commits a second the store makes.
func runFsync(ctx context.Context, b *bench, duration time.Duration, size int) (res *FsyncResult, err error) {
	f, err := os.CreateTemp(b.dir, "pushmail-bench-fsync-")
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, f.Close(), os.Remove(f.Name())) }()
	buf := make([]byte, size)
	for i := range buf {
		buf[i] = byte(i)
	}
	var lats []time.Duration
	start := time.Now()
	for time.Since(start) < duration && ctx.Err() == nil {
		t0 := time.Now()
		if _, err := f.Write(buf); err != nil {
			return nil, err
		}
		if err := f.Sync(); err != nil {
			return nil, err
		}
		lats = append(lats, time.Since(t0))
	}
	elapsed := time.Since(start)
	dir := b.dir
	if dir == "" {
		dir = os.TempDir()
	}
	return &FsyncResult{Dir: dir, Size: size, Syncs: len(lats), Seconds: elapsed.Seconds(),
		PerSec: float64(len(lats)) / elapsed.Seconds(), Latency: newDist(lats)}, ctx.Err()
}

func (r *FsyncResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%d appends of %d bytes + fsync in %s: %.0f fsyncs/s\n", r.Syncs, r.Size, r.Dir, r.PerSec)
	fmt.Fprintf(w, "  write + fsync             %s\n", r.Latency)
}
