package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"time"
)

// latencyResult is the outcome of "pushmail bench latency".
type latencyResult struct {
	Watchers int       `json:"watchers"`
	Messages int       `json:"messages"`
	Size     int       `json:"size"`
	Client   string    `json:"client"` // imapclient (one watcher) or raw
	SetupSec float64   `json:"setup_seconds"`
	Push     pushStats `json:"push"`
}

func latencyFlags(fs *flag.FlagSet) func(context.Context, *bench) (benchResult, error) {
	watchers := fs.Int("watchers", 1, "IMAP sessions in IDLE on the INBOX (one: go-imap's client; more: a minimal raw client each)")
	messages := fs.Int("messages", 200, "messages delivered, one at a time")
	size := fs.Int("size", 4096, "message size in bytes")
	return func(ctx context.Context, b *bench) (benchResult, error) {
		if *watchers <= 0 || *messages <= 0 {
			return nil, errors.New("--watchers and --messages must be positive")
		}
		return runLatency(ctx, b, *watchers, *messages, *size)
	}
}

func runLatency(ctx context.Context, b *bench, watchers, messages, size int) (res *latencyResult, err error) {
	if err := b.needFiles(watchers + 16); err != nil {
		return nil, err
	}
	t, err := b.start(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.stop()) }()

	g := newWatchGroup(watchers, messages)
	start := time.Now()
	b.progress("setting up %d watchers", watchers)
	_, err = g.establish(ctx, b, t, b.dialConc)
	defer func() { err = errors.Join(err, g.close()) }()
	if err != nil {
		return nil, err
	}
	setup := time.Since(start)
	b.progress("%d watchers in IDLE after %s; delivering %d messages", watchers, setup.Round(time.Millisecond), messages)

	stopProfile, err := b.startProfile()
	if err != nil {
		return nil, err
	}
	ds, err := g.deliverAll(ctx, b, t, size)
	if perr := stopProfile(); err == nil {
		err = perr
	}
	if err != nil {
		return nil, err
	}
	client := "raw"
	if watchers == 1 {
		client = "imapclient"
	}
	return &latencyResult{
		Watchers: watchers, Messages: messages, Size: size, Client: client,
		SetupSec: setup.Seconds(), Push: g.stats(ds),
	}, nil
}

func (r *latencyResult) writeText(w io.Writer) {
	fmt.Fprintf(w, "%d watcher(s) (%s client) in IDLE on one INBOX, set up in %.2fs; %d messages of %d bytes, one at a time\n",
		r.Watchers, r.Client, r.SetupSec, r.Messages, r.Size)
	writePush(w, r.Push)
}

func writePush(w io.Writer, p pushStats) {
	fmt.Fprintf(w, "  250 -> EXISTS             %s\n", p.FromAck)
	fmt.Fprintf(w, "  MAIL FROM -> EXISTS       %s\n", p.FromStart)
	fmt.Fprintf(w, "  250 -> all watchers       %s\n", p.AllNotified)
	fmt.Fprintf(w, "  MAIL FROM -> all          %s\n", p.StartToAll)
	fmt.Fprintf(w, "  first -> last EXISTS      %s\n", p.Spread)
	fmt.Fprintf(w, "  SMTP MAIL FROM -> 250     %s\n", p.SMTP)
	fmt.Fprintf(w, "  missed                    %d\n", p.Missed)
}
