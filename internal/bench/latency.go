package bench

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// LatencyResult is the outcome of "pushmail bench latency".
type LatencyResult struct {
	Watchers int        `json:"watchers"`
	Messages int        `json:"messages"`
	Size     int        `json:"size"`
	Client   string     `json:"client"` // imapclient (one watcher) or raw
	Change   ChangeKind `json:"change"` // new, flags or expunge
	SetupSec float64    `json:"setup_seconds"`
	// Push times new mail (--change new); it has no samples otherwise.
	Push PushStats `json:"push"`
	// ChangePush times another session's change (--change flags or
	// expunge).
	ChangePush *ChangeStats `json:"change_push,omitempty"`
}

// ChangeStats is the outcome of changes made by another IMAP session and
// watched by a group: PushStats with the command in place of the SMTP
// transaction.
type ChangeStats struct {
	// Command is what the other session sent for each change.
	Command string `json:"command"`
	// FromOK: from that session reading the command's tagged OK to each
	// watcher reading its response; negative when the watcher read first.
	FromOK dist `json:"from_ok"`
	// FromCommand: from just before the command is sent.
	FromCommand dist `json:"from_command"`
	// AllNotified, CommandToAll and Spread: per change, to the last
	// watcher's response, from the OK, from the command, and from the
	// first watcher's response.
	AllNotified  dist `json:"all_notified"`
	CommandToAll dist `json:"command_to_all"`
	Spread       dist `json:"spread"`
	// RoundTrip: the command, sent to tagged OK.
	RoundTrip dist `json:"command_round_trip"`
	// Missed counts (watcher, change) pairs whose response never came.
	Missed int `json:"missed"`
}

func latencyFlags(fs *flag.FlagSet) func(context.Context, *bench) (Result, error) {
	watchers := fs.Int("watchers", 1, "IMAP sessions in IDLE on the INBOX (one: go-imap's client; more: a minimal raw client each)")
	messages := fs.Int("messages", 200, "messages delivered, one at a time (with --change flags or expunge: messages delivered first, then changed one at a time)")
	size := fs.Int("size", 4096, "message size in bytes")
	change := fs.String("change", "new", `the change timed: "new" (a delivery over SMTP -> * N EXISTS), "flags" (another session's UID STORE +FLAGS (\Seen) -> * N FETCH (FLAGS ...)) or "expunge" (another session's UID EXPUNGE -> * N EXPUNGE)`)
	return func(ctx context.Context, b *bench) (Result, error) {
		if *watchers <= 0 || *messages <= 0 {
			return nil, errors.New("--watchers and --messages must be positive")
		}
		kind := ChangeKind(*change)
		switch kind {
		case ChangeNew, ChangeFlags, ChangeExpunge:
		default:
			return nil, fmt.Errorf("--change: want new, flags or expunge, got %q", *change)
		}
		return runLatency(ctx, b, *watchers, *messages, *size, kind)
	}
}

func runLatency(ctx context.Context, b *bench, watchers, messages, size int, kind ChangeKind) (res *LatencyResult, err error) {
	t, err := b.start(ctx, watchers, nil)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.stop()) }()

	g := newWatchGroup(watchers, messages)
	g.kind = kind
	var actor *changer
	if kind != ChangeNew {
		// The messages to change exist before the watchers select.
		b.progress("delivering %d messages to change", messages)
		if actor, err = prepareChanges(ctx, t, kind, messages, size); err != nil {
			return nil, err
		}
		defer func() { err = errors.Join(err, actor.c.logout()) }()
	}
	start := time.Now()
	b.progress("setting up %d watchers", watchers)
	_, err = g.establish(ctx, b, t, b.dialConc)
	defer func() { err = errors.Join(err, g.close()) }()
	if err != nil {
		return nil, err
	}
	setup := time.Since(start)
	b.progress("%d watchers in IDLE after %s; %d changes (%s)", watchers, setup.Round(time.Millisecond), messages, kind)

	stopProfile, err := b.startProfile()
	if err != nil {
		return nil, err
	}
	var ds []delivery
	if kind == ChangeNew {
		ds, err = g.deliverAll(ctx, b, t, size)
	} else {
		ds, err = g.changeAll(ctx, b, actor)
	}
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
	res = &LatencyResult{
		Watchers: watchers, Messages: messages, Size: size, Client: client, Change: kind,
		SetupSec: setup.Seconds(),
	}
	if kind == ChangeNew {
		res.Push = g.stats(ds)
	} else {
		p := g.stats(ds)
		res.ChangePush = &ChangeStats{
			Command: changeCommand[kind], FromOK: p.FromAck, FromCommand: p.FromStart,
			AllNotified: p.AllNotified, CommandToAll: p.StartToAll, Spread: p.Spread,
			RoundTrip: p.SMTP, Missed: p.Missed,
		}
	}
	return res, nil
}

// changeCommand describes the command that makes each kind of change.
var changeCommand = map[ChangeKind]string{
	ChangeFlags:   `UID STORE uid +FLAGS (\Seen)`,
	ChangeExpunge: `UID EXPUNGE uid (of a message marked \Deleted beforehand)`,
}

// changer is the IMAP session that makes the changes the watchers time.
type changer struct {
	c    *rawIMAP
	uids []uint32 // the messages to change, ascending
}

// command returns the command that makes a change to message uid.
func (a *changer) command(kind ChangeKind, uid uint32) string {
	if kind == ChangeFlags {
		return fmt.Sprintf(`UID STORE %d +FLAGS (\Seen)`, uid)
	}
	return fmt.Sprintf("UID EXPUNGE %d", uid)
}

// prepareChanges delivers n messages over SMTP and logs a session in
// that selects INBOX and finds their UIDs: the last n messages. For
// expunge, it marks them \Deleted (not timed: before the watchers
// select), so that each UID EXPUNGE removes one (RFC 4315 §2.1).
func prepareChanges(ctx context.Context, t *benchTarget, kind ChangeKind, n, size int) (*changer, error) {
	sc, err := dialSMTP(ctx, t.smtpAddr)
	if err != nil {
		return nil, err
	}
	run := benchRunID()
	for i := range n {
		if err := sendMessage(sc, t.user, benchMessage(fmt.Sprintf("%s-c%d", run, i), t.user, size)); err != nil {
			sc.Close()
			return nil, fmt.Errorf("delivery %d: %w", i+1, err)
		}
	}
	if err := sc.Quit(); err != nil {
		return nil, err
	}
	c, err := dialRawIMAP(ctx, benchDialer(0, t.imapAddr), t.imapAddr, 4096)
	if err != nil {
		return nil, err
	}
	a := &changer{c: c}
	fail := func(err error) (*changer, error) {
		c.conn.Close()
		return nil, err
	}
	if err := c.conn.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		return fail(err)
	}
	if err := c.login(t.user, t.password); err != nil {
		return fail(fmt.Errorf("LOGIN: %w", err))
	}
	count, err := c.selectInbox()
	if err != nil {
		return fail(err)
	}
	if int(count) < n {
		return fail(fmt.Errorf("INBOX has %d messages after %d deliveries", count, n))
	}
	err = c.command(fmt.Sprintf("UID SEARCH %d:%d", int(count)-n+1, count), func(line []byte) {
		if rest, ok := strings.CutPrefix(strings.TrimRight(string(line), "\r\n"), "* SEARCH"); ok {
			for _, f := range strings.Fields(rest) {
				if u, err := strconv.ParseUint(f, 10, 32); err == nil {
					a.uids = append(a.uids, uint32(u))
				}
			}
		}
	})
	if err != nil {
		return fail(fmt.Errorf("UID SEARCH: %w", err))
	}
	if len(a.uids) != n {
		return fail(fmt.Errorf("UID SEARCH found %d of the %d messages", len(a.uids), n))
	}
	if kind == ChangeExpunge {
		set := fmt.Sprintf("%d:%d", a.uids[0], a.uids[n-1])
		if err := c.command(`UID STORE `+set+` +FLAGS.SILENT (\Deleted)`, nil); err != nil {
			return fail(fmt.Errorf("UID STORE \\Deleted: %w", err))
		}
	}
	if err := c.conn.SetDeadline(time.Time{}); err != nil {
		return fail(err)
	}
	return a, nil
}

// changeAll makes the group's changes one at a time through a and waits,
// after each, until every watcher has its response or the timeout passes.
func (g *watchGroup) changeAll(ctx context.Context, b *bench, a *changer) ([]delivery, error) {
	out := make([]delivery, len(g.slots))
	timer := time.NewTimer(b.timeout)
	defer timer.Stop()
	for i := range g.slots {
		cmd := a.command(g.kind, a.uids[i])
		if err := a.c.conn.SetDeadline(time.Now().Add(b.timeout)); err != nil {
			return nil, err
		}
		out[i].start = time.Now()
		if err := a.c.command(cmd, nil); err != nil {
			return nil, fmt.Errorf("change %d: %s: %w", i+1, cmd, err)
		}
		out[i].ack = time.Now()
		timer.Reset(b.timeout)
		select {
		case <-g.slots[i].done:
		case <-timer.C:
			b.progress("change %d: %d of %d watchers got it within %s", i+1, g.slots[i].arrived.Load(), g.n, b.timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, nil
}

func (r *LatencyResult) WriteText(w io.Writer) {
	if r.ChangePush == nil {
		fmt.Fprintf(w, "%d watcher(s) (%s client) in IDLE on one INBOX, set up in %.2fs; %d messages of %d bytes, one at a time\n",
			r.Watchers, r.Client, r.SetupSec, r.Messages, r.Size)
		writePush(w, r.Push)
		return
	}
	p := r.ChangePush
	what := "FETCH"
	if r.Change == ChangeExpunge {
		what = "EXPUNGE"
	}
	fmt.Fprintf(w, "%d watcher(s) (%s client) in IDLE on one INBOX, set up in %.2fs; %d changes by another session, one at a time: %s\n",
		r.Watchers, r.Client, r.SetupSec, r.Messages, p.Command)
	fmt.Fprintf(w, "  OK -> %-19s %s\n", what, p.FromOK)
	fmt.Fprintf(w, "  command -> %-14s %s\n", what, p.FromCommand)
	fmt.Fprintf(w, "  OK -> all watchers        %s\n", p.AllNotified)
	fmt.Fprintf(w, "  command -> all            %s\n", p.CommandToAll)
	fmt.Fprintf(w, "  first -> last %-11s %s\n", what, p.Spread)
	fmt.Fprintf(w, "  command -> OK             %s\n", p.RoundTrip)
	fmt.Fprintf(w, "  missed                    %d\n", p.Missed)
}

func writePush(w io.Writer, p PushStats) {
	fmt.Fprintf(w, "  250 -> EXISTS             %s\n", p.FromAck)
	fmt.Fprintf(w, "  MAIL FROM -> EXISTS       %s\n", p.FromStart)
	fmt.Fprintf(w, "  250 -> all watchers       %s\n", p.AllNotified)
	fmt.Fprintf(w, "  MAIL FROM -> all          %s\n", p.StartToAll)
	fmt.Fprintf(w, "  first -> last EXISTS      %s\n", p.Spread)
	fmt.Fprintf(w, "  SMTP MAIL FROM -> 250     %s\n", p.SMTP)
	fmt.Fprintf(w, "  missed                    %d\n", p.Missed)
}
