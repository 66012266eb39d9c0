package bench

import (
	"bufio"
	"context"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"
)

// JMAPResult is the outcome of "pushmail bench jmap": SMTP 250 to the
// StateChange on JMAP event streams (RFC 8620 §7.3).
type JMAPResult struct {
	Streams  int     `json:"streams"`
	Messages int     `json:"messages"`
	Size     int     `json:"size"`
	SetupSec float64 `json:"setup_seconds"`
	// FromAck: from the sender reading 250 to each stream reading the
	// state event; negative when the stream read first.
	FromAck dist `json:"from_ack"`
	// AllNotified: per message, from 250 to the last stream's event.
	AllNotified dist `json:"all_notified"`
	// RSSPerStream is the server's RSS growth from opening the streams,
	// divided by their number (0: not measured; --server child only).
	RSSPerStream int64 `json:"rss_per_stream_bytes,omitempty"`
	Missed       int   `json:"missed"`
}

func jmapFlags(fs *flag.FlagSet) func(context.Context, *bench) (Result, error) {
	streams := fs.Int("streams", 1, "event streams open on the account (types=Email)")
	messages := fs.Int("messages", 200, "messages delivered over SMTP, one at a time")
	size := fs.Int("size", 4096, "message size in bytes")
	return func(ctx context.Context, b *bench) (Result, error) {
		if *streams <= 0 || *messages <= 0 {
			return nil, errors.New("--streams and --messages must be positive")
		}
		return runJMAP(ctx, b, *streams, *messages, *size)
	}
}

// sseReader reads one stream's state events and reports when each was
// read.
func sseReader(body io.Reader, arrivals chan<- time.Time) {
	r := bufio.NewReaderSize(body, 512)
	name := ""
	for {
		line, err := r.ReadString('\n')
		if err != nil {
			return
		}
		switch line = strings.TrimRight(line, "\r\n"); {
		case line == "":
			if name == "state" {
				arrivals <- time.Now()
			}
			name = ""
		case strings.HasPrefix(line, "event:"):
			name = strings.TrimSpace(line[len("event:"):])
		}
	}
}

// openStream sends request on c and reads the response head: the body
// (chunked, or until the connection closes) through a small buffer.
func openStream(c net.Conn, request string, timeout time.Duration) (io.Reader, error) {
	if err := c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return nil, err
	}
	if _, err := io.WriteString(c, request); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(bufio.NewReaderSize(c, 512), nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode != http.StatusOK {
		resp.Body.Close()
		return nil, errors.New(resp.Status)
	}
	if err := c.SetDeadline(time.Time{}); err != nil {
		return nil, err
	}
	return resp.Body, nil
}

func runJMAP(ctx context.Context, b *bench, streams, messages, size int) (res *JMAPResult, err error) {
	if b.server == "external" {
		return nil, errors.New("bench jmap starts its own server (--server inproc or child)")
	}
	t, err := b.start(ctx, streams+4, nil)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.stop()) }()
	if t.httpAddr == "" {
		return nil, errors.New("the server logged no HTTP address")
	}
	res = &JMAPResult{Streams: streams, Messages: messages, Size: size}

	rss0, rssOK := t.rss()
	sctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	defer func() {
		cancel()
		wg.Wait()
	}()
	// Each stream is a TCP connection of its own with a hand-written
	// request and a small reader, read on one goroutine: no
	// http.Transport, whose two goroutines and two 4 KiB buffers per
	// connection would make the client, on the same cores as the
	// server, the larger part of what 10,000 streams cost.
	auth := base64.StdEncoding.EncodeToString([]byte(t.user + ":" + t.password))
	request := "GET /jmap/eventsource?types=Email&closeafter=no&ping=0 HTTP/1.1\r\nHost: " + t.httpAddr +
		"\r\nAuthorization: Basic " + auth + "\r\nAccept: text/event-stream\r\n\r\n"
	dialer := &net.Dialer{Timeout: b.timeout}
	arrivals := make(chan time.Time, streams)
	start := time.Now()
	b.progress("opening %d event streams", streams)
	for i := 0; i < streams; i++ {
		c, err := dialer.DialContext(sctx, "tcp", t.httpAddr)
		if err != nil {
			return nil, fmt.Errorf("stream %d: %w", i, err)
		}
		stop := context.AfterFunc(sctx, func() { c.Close() })
		body, err := openStream(c, request, b.timeout)
		if err != nil {
			stop()
			c.Close()
			return nil, fmt.Errorf("stream %d: %w", i, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			sseReader(body, arrivals)
		}()
	}
	res.SetupSec = time.Since(start).Seconds()
	if rss1, ok := t.rss(); ok && rssOK && t.kind == "child" {
		res.RSSPerStream = (rss1 - rss0) / int64(streams)
	}

	smtpc, err := dialRawSMTP(ctx, t.smtpAddr, b.timeout)
	if err != nil {
		return nil, err
	}
	defer smtpc.close()
	var fromAck, all []time.Duration
	b.progress("delivering %d messages", messages)
	stopProfile, err := b.startProfile()
	if err != nil {
		return nil, err
	}
	defer func() {
		if perr := stopProfile(); err == nil {
			err = perr
		}
	}()
	for i := 0; i < messages; i++ {
		msg := benchMessage(fmt.Sprintf("jmap-%d", i), t.user, size)
		if err := smtpc.transaction(benchSender, t.user, msg); err != nil {
			return nil, fmt.Errorf("message %d: %w", i, err)
		}
		acked := time.Now()
		timer := time.NewTimer(b.timeout)
		last := time.Duration(-1 << 63) // the latest arrival: it may precede the 250
		got := 0
	wait:
		for got < streams {
			select {
			case at := <-arrivals:
				d := at.Sub(acked)
				fromAck = append(fromAck, d)
				last = max(last, d)
				got++
			case <-timer.C:
				res.Missed += streams - got
				break wait
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			}
		}
		timer.Stop()
		if got == streams {
			all = append(all, last)
		}
	}
	res.FromAck = newDist(fromAck)
	res.AllNotified = newDist(all)
	return res, nil
}

// WriteText writes the result as text.
func (r *JMAPResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%d JMAP event stream(s) (types=Email) on one account, opened in %.2fs; %d messages of %d bytes over SMTP, one at a time\n",
		r.Streams, r.SetupSec, r.Messages, r.Size)
	fmt.Fprintf(w, "  250 -> StateChange        %s\n", r.FromAck)
	fmt.Fprintf(w, "  250 -> all streams        %s\n", r.AllNotified)
	if r.RSSPerStream != 0 {
		fmt.Fprintf(w, "  server RSS per stream     %d bytes\n", r.RSSPerStream)
	}
	fmt.Fprintf(w, "  missed                    %d\n", r.Missed)
}
