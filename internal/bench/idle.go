package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime"
	"time"
)

// IdleResult is the outcome of "pushmail bench idle".
type IdleResult struct {
	Sessions   int     `json:"sessions"`
	TLS        bool    `json:"tls,omitempty"` // the sessions use implicit TLS
	Deliveries int     `json:"deliveries"`
	SetupSec   float64 `json:"setup_seconds"`
	PerSecond  float64 `json:"sessions_per_second"`
	// RSS of the server process (with --server inproc: of this process,
	// clients included) before the sessions, after them, and after
	// --settle; PerSession is (settled - before) / sessions.
	RSSBefore  int64   `json:"rss_before_bytes,omitempty"`
	RSSAfter   int64   `json:"rss_after_bytes,omitempty"`
	RSSSettled int64   `json:"rss_settled_bytes,omitempty"`
	PerSession float64 `json:"rss_per_session_bytes,omitempty"`
	// With --server inproc, the Go runtime's own view of the growth per
	// session, clients included: heap in use, goroutine stacks and
	// goroutines.
	HeapPerSession  float64   `json:"heap_per_session_bytes,omitempty"`
	StackPerSession float64   `json:"stack_per_session_bytes,omitempty"`
	GoroutinesPer   float64   `json:"goroutines_per_session,omitempty"`
	Push            PushStats `json:"push"`
	// SettleCPU is the server process's CPU time over --settle, with
	// every session idle (--server child): what idle sessions cost.
	SettleCPU *float64 `json:"settle_cpu_seconds,omitempty"`
	SettleSec float64  `json:"settle_seconds,omitempty"`
	// PushCPUPerNotification is the server process's CPU time over the
	// deliveries (SMTP included) divided by the notifications they made
	// (deliveries × sessions), in µs (--server child).
	PushCPUPerNotification *float64 `json:"push_cpu_us_per_notification,omitempty"`
	server                 string
}

func idleFlags(fs *flag.FlagSet) func(context.Context, *bench) (Result, error) {
	sessions := fs.Int("sessions", 1000, "IMAP sessions in IDLE on the INBOX")
	deliveries := fs.Int("deliveries", 3, "messages delivered to all of them, one at a time, to time the fan-out")
	size := fs.Int("size", 4096, "message size in bytes")
	settle := fs.Duration("settle", 2*time.Second, "pause before reading the RSS again, so the server's runtime returns freed memory")
	useTLS := fs.Bool("tls", false, "the sessions use implicit TLS (IMAPS; --server child only, with a self-signed certificate)")
	return func(ctx context.Context, b *bench) (Result, error) {
		if *sessions <= 0 || *deliveries <= 0 {
			return nil, errors.New("--sessions and --deliveries must be positive")
		}
		if *useTLS && b.server != "child" {
			return nil, errors.New("--tls needs --server child")
		}
		b.imaps = *useTLS
		return runIdle(ctx, b, *sessions, *deliveries, *size, *settle)
	}
}

func runIdle(ctx context.Context, b *bench, sessions, deliveries, size int, settle time.Duration) (res *IdleResult, err error) {
	t, err := b.start(ctx, sessions, nil)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.stop()) }()
	res = &IdleResult{Sessions: sessions, Deliveries: deliveries, TLS: b.imaps, server: t.kind}
	res.RSSBefore, _ = t.rss()
	var before runtime.MemStats
	goroutines := runtime.NumGoroutine()
	if t.kind == "inproc" {
		runtime.GC()
		runtime.ReadMemStats(&before)
	}

	g := newWatchGroup(sessions, deliveries)
	b.progress("setting up %d sessions in IDLE", sessions)
	start := time.Now()
	_, err = g.establish(ctx, b, t, b.dialConc)
	defer func() { err = errors.Join(err, g.close()) }()
	if err != nil {
		return nil, err
	}
	setup := time.Since(start)
	res.SetupSec, res.PerSecond = setup.Seconds(), float64(sessions)/setup.Seconds()
	res.RSSAfter, _ = t.rss()
	b.progress("%d sessions in IDLE after %s", sessions, setup.Round(time.Millisecond))
	cpu0, cpuOK := t.cpuTime()
	if settle > 0 && t.pid != 0 {
		timer := time.NewTimer(settle)
		select {
		case <-timer.C:
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
	}
	if cpu1, ok := t.cpuTime(); cpuOK && ok && settle > 0 && t.kind != "inproc" {
		v := (cpu1 - cpu0).Seconds()
		res.SettleCPU, res.SettleSec = &v, settle.Seconds()
	}
	res.RSSSettled, _ = t.rss()
	if res.RSSBefore > 0 && res.RSSSettled > 0 {
		res.PerSession = float64(res.RSSSettled-res.RSSBefore) / float64(sessions)
	}
	if t.kind == "inproc" {
		var after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&after)
		per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(sessions) }
		res.HeapPerSession = per(after.HeapInuse, before.HeapInuse)
		res.StackPerSession = per(after.StackInuse, before.StackInuse)
		res.GoroutinesPer = float64(runtime.NumGoroutine()-goroutines) / float64(sessions)
	}

	// The profile covers the fan-out; the set-up is mostly bcrypt.
	stopProfile, err := b.startProfile()
	if err != nil {
		return nil, err
	}
	cpu0, cpuOK = t.cpuTime()
	ds, err := g.deliverAll(ctx, b, t, size)
	if cpu1, ok := t.cpuTime(); err == nil && cpuOK && ok && t.kind != "inproc" {
		v := float64((cpu1 - cpu0).Microseconds()) / float64(deliveries*sessions)
		res.PushCPUPerNotification = &v
	}
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	res.Push = g.stats(ds)
	return res, nil
}

func (r *IdleResult) WriteText(w io.Writer) {
	over := ""
	if r.TLS {
		over = " over TLS"
	}
	fmt.Fprintf(w, "%d IMAP sessions%s in IDLE on one INBOX: set up in %.2fs (%.0f/s)\n", r.Sessions, over, r.SetupSec, r.PerSecond)
	if r.RSSBefore > 0 {
		what := "server"
		if r.server == "inproc" {
			what = "process (server + clients)"
		}
		fmt.Fprintf(w, "  %s RSS            %.1f MB before, %.1f MB after, %.1f MB settled: %.0f bytes per session\n",
			what, float64(r.RSSBefore)/1e6, float64(r.RSSAfter)/1e6, float64(r.RSSSettled)/1e6, r.PerSession)
	}
	if r.GoroutinesPer > 0 {
		fmt.Fprintf(w, "  Go runtime, per session   %.0f bytes heap in use, %.0f bytes of stacks, %.1f goroutines (server + client)\n",
			r.HeapPerSession, r.StackPerSession, r.GoroutinesPer)
	}
	if r.SettleCPU != nil {
		fmt.Fprintf(w, "  server CPU while idle     %.3fs over %.0fs\n", *r.SettleCPU, r.SettleSec)
	}
	fmt.Fprintf(w, "%d deliveries to all of them, one at a time:\n", r.Deliveries)
	writePush(w, r.Push)
	if r.PushCPUPerNotification != nil {
		fmt.Fprintf(w, "  server CPU per notification %.2fµs (deliveries included)\n", *r.PushCPUPerNotification)
	}
}
