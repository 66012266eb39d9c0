package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// IngestResult is the outcome of "pushmail bench ingest".
type IngestResult struct {
	Senders    int     `json:"senders"`
	Client     string  `json:"client"` // gosmtp or pipelining
	Messages   int     `json:"messages"`
	Size       int     `json:"size"`
	Acked      int     `json:"acked"`  // answered 250
	Failed     int     `json:"failed"` // answered with an SMTP error
	Seconds    float64 `json:"seconds"`
	MsgsPerSec float64 `json:"msgs_per_sec"`
	MBPerSec   float64 `json:"mb_per_sec"`
	Latency    dist    `json:"latency"` // MAIL FROM to 250, per message
	// ServerCPUPerMsg is the server process's CPU time per acknowledged
	// message, in µs; with --server inproc it includes the clients, which
	// share the process. Absent when unknown.
	ServerCPUPerMsg *float64 `json:"server_cpu_us_per_msg,omitempty"`
	// ClientCPUPerMsg is this process's CPU time per message when the
	// server runs elsewhere.
	ClientCPUPerMsg *float64 `json:"client_cpu_us_per_msg,omitempty"`
	// Batches and AvgBatch describe the group commits, from the
	// server's /metrics (started servers only).
	Batches  int64   `json:"batches,omitempty"`
	AvgBatch float64 `json:"avg_batch,omitempty"`
	// Found counts the acknowledged messages seen over IMAP afterwards;
	// Lost those missing (must be 0); Duplicates those seen twice.
	Found      int     `json:"found"`
	Lost       int     `json:"lost"`
	Duplicates int     `json:"duplicates"`
	VerifySec  float64 `json:"verify_seconds"`
	server     string
}

func ingestFlags(fs *flag.FlagSet) func(context.Context, *bench) (Result, error) {
	senders := fs.Int("senders", 16, "concurrent SMTP senders, one connection each")
	messages := fs.Int("messages", 20000, "messages to deliver in all")
	size := fs.Int("size", 4096, "message size in bytes")
	client := fs.String("client", "pipelining", "each sender's SMTP client: "+
		"pipelining sends MAIL, RCPT and DATA in one write, then the message, as Postfix and Exim do when the server offers PIPELINING (RFC 2920); "+
		"gosmtp is go-smtp's client, one command per round trip (the figures before pipelining). "+
		"pipelining is the default: it is how an MX receives mail, and it costs the cores the senders share with the server half as much")
	return func(ctx context.Context, b *bench) (Result, error) {
		if *senders <= 0 || *messages <= 0 {
			return nil, errors.New("--senders and --messages must be positive")
		}
		if *client != "pipelining" && *client != "gosmtp" {
			fmt.Fprintf(b.stderr, "pushmail bench ingest: --client %q: want pipelining or gosmtp\n", *client)
			return nil, ErrUsage
		}
		return runIngest(ctx, b, *client, *senders, *messages, *size)
	}
}

// ingestClient is one sender's SMTP connection.
type ingestClient interface {
	// send delivers msg to rcpt: nil after the final 250, an
	// *smtp.SMTPError if the server refused it (the connection is usable
	// after reset), another error if the connection failed.
	send(rcpt string, msg []byte) error
	reset() error
	close() error
}

// dialIngestClient connects one sender with the client named by --client.
func dialIngestClient(ctx context.Context, kind, addr string, timeout time.Duration) (ingestClient, error) {
	if kind == "pipelining" {
		c, err := dialRawSMTP(ctx, addr, timeout)
		if err != nil {
			return nil, err
		}
		return pipeliningClient{c}, nil
	}
	c, err := dialSMTP(ctx, addr)
	if err != nil {
		return nil, err
	}
	return goSMTPClient{c}, nil
}

// goSMTPClient is go-smtp's client as an ingestClient.
type goSMTPClient struct{ c *smtp.Client }

func (g goSMTPClient) send(rcpt string, msg []byte) error { return sendMessage(g.c, rcpt, msg) }
func (g goSMTPClient) reset() error                       { return g.c.Reset() }
func (g goSMTPClient) close() error                       { return g.c.Close() }

// pipeliningClient is rawSMTP as an ingestClient.
type pipeliningClient struct{ c *rawSMTP }

func (p pipeliningClient) send(rcpt string, msg []byte) error {
	return p.c.transaction(benchSender, rcpt, msg)
}
func (p pipeliningClient) reset() error { return p.c.reset() }
func (p pipeliningClient) close() error { return p.c.close() }

func runIngest(ctx context.Context, b *bench, client string, senders, messages, size int) (res *IngestResult, err error) {
	t, err := b.start(ctx, senders, nil)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.stop()) }()
	return ingest(ctx, b, []*benchTarget{t}, client, senders, messages, size)
}

// ingest delivers messages with senders concurrent SMTP connections, sender
// s to targets[s % len(targets)] (the nodes of one store), then checks
// over IMAP on the first target that every acknowledged message is there
// once. CPU time and commit counts are summed over the targets.
func ingest(ctx context.Context, b *bench, targets []*benchTarget, client string, senders, messages, size int) (res *IngestResult, err error) {
	t := targets[0]
	clients := make([]ingestClient, senders)
	defer func() {
		for _, c := range clients {
			if c != nil {
				c.close()
			}
		}
	}()
	for i := range clients {
		if clients[i], err = dialIngestClient(ctx, client, targets[i%len(targets)].smtpAddr, b.timeout); err != nil {
			return nil, err
		}
	}
	run := benchRunID()
	acked := make([]bool, messages) // index i written only by the sender that sent it
	lats := make([][]time.Duration, senders)
	var next, failed atomic.Int64
	b.progress("%d senders delivering %d messages of %d bytes", senders, messages, size)

	stopProfile, err := b.startProfile()
	if err != nil {
		return nil, err
	}
	serverCPU0, serverOK := targetsCPU(targets)
	selfCPU0 := selfCPU()
	batches0, writes0, _ := targetsCommits(ctx, targets)
	start := time.Now()
	errc := make(chan error, senders)
	var wg sync.WaitGroup
	for s, c := range clients {
		wg.Go(func() {
			for i := next.Add(1) - 1; i < int64(messages); i = next.Add(1) - 1 {
				msg := benchMessage(run+"-"+strconv.FormatInt(i, 10), t.user, size)
				t0 := time.Now()
				err := c.send(t.user, msg)
				var smtpErr *smtp.SMTPError
				switch {
				case err == nil:
					lats[s] = append(lats[s], time.Since(t0))
					acked[i] = true
				case errors.As(err, &smtpErr):
					// A refusal (451 when the store is overloaded, say)
					// is counted, not fatal.
					failed.Add(1)
					if err := c.reset(); err != nil {
						errc <- fmt.Errorf("sender %d: RSET: %w", s, err)
						return
					}
				default:
					errc <- fmt.Errorf("sender %d: %w", s, err)
					return
				}
				if ctx.Err() != nil {
					errc <- ctx.Err()
					return
				}
			}
		})
	}
	wg.Wait()
	elapsed := time.Since(start)
	serverCPU1, _ := targetsCPU(targets)
	selfCPU1 := selfCPU()
	if err := stopProfile(); err != nil {
		return nil, err
	}
	close(errc)
	if err := <-errc; err != nil {
		return nil, err
	}

	res = &IngestResult{Senders: senders, Client: client, Messages: messages, Size: size, Failed: int(failed.Load()),
		Seconds: elapsed.Seconds(), server: t.kind}
	var all []time.Duration
	for _, l := range lats {
		all = append(all, l...)
	}
	res.Acked = len(all)
	res.Latency = newDist(all)
	res.MsgsPerSec = float64(res.Acked) / elapsed.Seconds()
	res.MBPerSec = float64(res.Acked) * float64(size) / 1e6 / elapsed.Seconds()
	if res.Acked > 0 {
		if serverOK {
			v := float64((serverCPU1 - serverCPU0).Microseconds()) / float64(res.Acked)
			res.ServerCPUPerMsg = &v
		}
		if t.kind != "inproc" {
			v := float64((selfCPU1 - selfCPU0).Microseconds()) / float64(res.Acked)
			res.ClientCPUPerMsg = &v
		}
	}
	if batches1, writes1, ok := targetsCommits(ctx, targets); ok && batches1 > batches0 {
		res.Batches, res.AvgBatch = int64(batches1-batches0), (writes1-writes0)/(batches1-batches0)
	}

	b.progress("%d acknowledged in %s; checking over IMAP that every one is stored", res.Acked, elapsed.Round(time.Millisecond))
	vstart := time.Now()
	seen, err := fetchBenchIDs(t, run, messages)
	if err != nil {
		return nil, fmt.Errorf("verify over IMAP: %w", err)
	}
	res.VerifySec = time.Since(vstart).Seconds()
	for i, ok := range acked {
		switch {
		case ok && seen[i] == 0:
			res.Lost++
		case seen[i] > 0:
			res.Found++
			if seen[i] > 1 {
				res.Duplicates++
			}
		}
	}
	return res, nil
}

// targetsCPU is the CPU time of every target's process, summed; ok only
// if every one is known.
func targetsCPU(targets []*benchTarget) (d time.Duration, ok bool) {
	ok = true
	for _, t := range targets {
		c, known := t.cpuTime()
		d += c
		ok = ok && known
	}
	return d, ok
}

// targetsCommits is commitStats summed over the targets.
func targetsCommits(ctx context.Context, targets []*benchTarget) (commits, writes float64, ok bool) {
	ok = true
	for _, t := range targets {
		c, w, known := t.commitStats(ctx)
		commits, writes, ok = commits+c, writes+w, ok && known
	}
	return commits, writes, ok
}

// fetchBenchIDs reads the X-Bench-Id of every message in the INBOX over
// IMAP and counts, for each message number of run, how often it is there.
func fetchBenchIDs(t *benchTarget, run string, messages int) ([]int, error) {
	c, err := imapclient.DialInsecure(t.imapAddr, nil)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if err := c.Login(t.user, t.password).Wait(); err != nil {
		return nil, fmt.Errorf("LOGIN: %w", err)
	}
	sel, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		return nil, fmt.Errorf("EXAMINE INBOX: %w", err)
	}
	seen := make([]int, messages)
	if sel.NumMessages == 0 {
		return seen, c.Logout().Wait()
	}
	section := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"X-Bench-Id"}, Peek: true}
	cmd := c.Fetch(imap.SeqSet{{Start: 1, Stop: 0}}, &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{section}})
	prefix := []byte("X-Bench-Id: " + run + "-")
	for msg := cmd.Next(); msg != nil; msg = cmd.Next() {
		for item := msg.Next(); item != nil; item = msg.Next() {
			bs, ok := item.(imapclient.FetchItemDataBodySection)
			if !ok {
				continue
			}
			hdr, err := io.ReadAll(bs.Literal)
			if err != nil {
				return nil, err
			}
			_, rest, ok := bytes.Cut(hdr, prefix)
			if !ok {
				continue // another run's message, or another sender's
			}
			end := bytes.IndexAny(rest, "\r\n")
			if end < 0 {
				end = len(rest)
			}
			if i, err := strconv.Atoi(string(rest[:end])); err == nil && i >= 0 && i < messages {
				seen[i]++
			}
		}
	}
	if err := cmd.Close(); err != nil {
		return nil, fmt.Errorf("FETCH: %w", err)
	}
	return seen, c.Logout().Wait()
}

func (r *IngestResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "%d senders (%s client), %d messages of %d bytes: %d acknowledged (250), %d refused, in %.2fs\n",
		r.Senders, r.Client, r.Messages, r.Size, r.Acked, r.Failed, r.Seconds)
	fmt.Fprintf(w, "  throughput                %.0f msgs/s, %.1f MB/s\n", r.MsgsPerSec, r.MBPerSec)
	fmt.Fprintf(w, "  MAIL FROM -> 250          %s\n", r.Latency)
	if r.ServerCPUPerMsg != nil {
		what := "server"
		if r.server == "inproc" {
			what = "process (server + clients)"
		}
		fmt.Fprintf(w, "  CPU per message           %.0fµs %s\n", *r.ServerCPUPerMsg, what)
	}
	if r.ClientCPUPerMsg != nil {
		fmt.Fprintf(w, "  client CPU per message    %.0fµs\n", *r.ClientCPUPerMsg)
	}
	if r.Batches > 0 {
		fmt.Fprintf(w, "  group commits             %d, %.1f writes each on average\n", r.Batches, r.AvgBatch)
	}
	fmt.Fprintf(w, "  verified over IMAP        %d found, %d lost, %d duplicated (%.2fs)\n", r.Found, r.Lost, r.Duplicates, r.VerifySec)
}
