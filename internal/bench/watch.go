package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// watchGroup is a set of IMAP sessions in IDLE on the same INBOX, and the
// arrival time of each expected "* N EXISTS" at each of them.
type watchGroup struct {
	n     int
	kind  ChangeKind  // what the watchers wait for
	slots []watchSlot // one per delivery (or change), in order
	ws    []watcher
	wg    sync.WaitGroup // the raw watchers' reading goroutines
}

// ChangeKind is the change whose push a watchGroup times.
type ChangeKind string

const (
	// ChangeNew: a delivery over SMTP, pushed as "* N EXISTS".
	ChangeNew ChangeKind = "new"
	// ChangeFlags: another session's STORE +FLAGS (\Seen), pushed as
	// "* N FETCH (FLAGS (\Seen))" (RFC 9051 §7.5.2).
	ChangeFlags ChangeKind = "flags"
	// ChangeExpunge: another session's UID EXPUNGE (RFC 4315 §2.1),
	// pushed as "* N EXPUNGE".
	ChangeExpunge ChangeKind = "expunge"
)

// base returns the watcher's starting count, given the message count its
// SELECT reported: new mail counts up from it; a flag change is numbered
// by the sequence number of its message, the last len(g.slots) messages
// of the mailbox; expunges are counted from 0.
func (g *watchGroup) base(selected uint32) uint32 {
	switch g.kind {
	case ChangeFlags:
		return selected - uint32(len(g.slots))
	case ChangeExpunge:
		return 0
	}
	return selected
}

// watchSlot records one delivery's arrivals.
type watchSlot struct {
	at      []atomic.Int64 // per watcher: arrival, unix nanoseconds; 0 = not yet
	arrived atomic.Int32
	done    chan struct{} // closed when every watcher has it
}

// watcher is one session's state as the group sees it.
type watcher struct {
	// base is the message count SELECT reported; delivery i is expected
	// as EXISTS base+i+1. armed is set once base is known.
	base  atomic.Uint32
	armed atomic.Bool
	// mu guards last: rawIMAP observes from its one reading goroutine, but
	// imapclient runs each unsolicited FETCH handler on a goroutine of its
	// own (imapclient/fetch.go), so observe calls may overlap.
	mu   sync.Mutex
	last uint32 // the highest count seen

	raw    *rawIMAP
	client *imapclient.Client
	idle   *imapclient.IdleCommand
}

func newWatchGroup(n, deliveries int) *watchGroup {
	g := &watchGroup{n: n, kind: ChangeNew, slots: make([]watchSlot, deliveries), ws: make([]watcher, n)}
	for i := range g.slots {
		g.slots[i].at = make([]atomic.Int64, n)
		g.slots[i].done = make(chan struct{})
	}
	return g
}

// observe records that watcher w saw "* count EXISTS" at time at (or the
// FETCH of message count, or its count-th EXPUNGE: see base). A count
// that jumps by several (the session coalesced events) marks each delivery
// in between as arrived at that time.
func (g *watchGroup) observe(w int, count uint32, at int64) {
	ws := &g.ws[w]
	if !ws.armed.Load() {
		return
	}
	ws.mu.Lock()
	defer ws.mu.Unlock()
	if count <= ws.last {
		return
	}
	base := ws.base.Load()
	for k := ws.last + 1; k <= count; k++ {
		i := int(k) - int(base) - 1
		if i < 0 || i >= len(g.slots) {
			continue
		}
		s := &g.slots[i]
		if s.at[w].CompareAndSwap(0, at) && int(s.arrived.Add(1)) == g.n {
			close(s.done)
		}
	}
	ws.last = count
}

// arm sets watcher w's starting count.
func (g *watchGroup) arm(w int, base uint32) {
	g.ws[w].base.Store(base)
	g.ws[w].mu.Lock()
	g.ws[w].last = base
	g.ws[w].mu.Unlock()
	g.ws[w].armed.Store(true)
}

// establish connects every watcher, at most conc at a time: LOGIN,
// SELECT INBOX, IDLE. With a single watcher it uses go-imap's imapclient,
// otherwise rawIMAP. It returns the common message count at SELECT.
func (g *watchGroup) establish(ctx context.Context, b *bench, t *benchTarget, conc int) (uint32, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	sem := make(chan struct{}, conc)
	var setup sync.WaitGroup
	var done atomic.Int64
	step := max(g.n/10, 1000)
	for w := range g.n {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		setup.Go(func() {
			defer func() { <-sem }()
			var err error
			if g.n == 1 {
				err = g.startClient(ctx, w, t)
			} else {
				err = g.startRaw(ctx, w, t)
			}
			if err != nil {
				cancel(fmt.Errorf("watcher %d: %w", w, err))
				return
			}
			if d := done.Add(1); d%int64(step) == 0 {
				b.progress("%d of %d sessions in IDLE", d, g.n)
			}
		})
	}
	setup.Wait()
	if err := context.Cause(ctx); err != nil {
		return 0, err
	}
	base := g.ws[0].base.Load()
	for w := range g.ws {
		if got := g.ws[w].base.Load(); got != base {
			return 0, fmt.Errorf("the mailbox changed while the watchers connected (%d and %d messages): is something else delivering?", base, got)
		}
	}
	return base, nil
}

// startRaw sets up watcher w with the minimal client and starts its
// reading goroutine.
func (g *watchGroup) startRaw(ctx context.Context, w int, t *benchTarget) error {
	var (
		c   *rawIMAP
		err error
	)
	if t.imapsAddr != "" {
		c, err = dialRawIMAPS(ctx, benchDialer(w, t.imapsAddr), t.imapsAddr, 512)
	} else {
		c, err = dialRawIMAP(ctx, benchDialer(w, t.imapAddr), t.imapAddr, 512)
	}
	if err != nil {
		return err
	}
	if err := c.conn.SetDeadline(time.Now().Add(60 * time.Second)); err != nil {
		c.conn.Close()
		return err
	}
	if err := c.login(t.user, t.password); err != nil {
		c.conn.Close()
		return fmt.Errorf("LOGIN: %w", err)
	}
	n, err := c.selectInbox()
	if err != nil {
		c.conn.Close()
		return err
	}
	g.arm(w, g.base(n))
	if err := c.idle(); err != nil {
		c.conn.Close()
		return fmt.Errorf("IDLE: %w", err)
	}
	if err := c.conn.SetDeadline(time.Time{}); err != nil {
		c.conn.Close()
		return err
	}
	g.ws[w].raw = c
	g.wg.Go(func() {
		var expunges uint32
		for {
			line, err := c.readLine()
			if err != nil {
				return // closed by g.close, or by the server
			}
			switch g.kind {
			case ChangeNew:
				if n, ok := parseExists(line); ok {
					g.observe(w, n, time.Now().UnixNano())
				}
			case ChangeFlags:
				if n, ok := parseFetchSeen(line); ok {
					g.observe(w, n, time.Now().UnixNano())
				}
			case ChangeExpunge:
				if _, ok := parseExpunge(line); ok {
					expunges++
					g.observe(w, expunges, time.Now().UnixNano())
				}
			}
		}
	})
	return nil
}

// startClient sets up watcher w with go-imap's client: what a real mail
// client does.
func (g *watchGroup) startClient(ctx context.Context, w int, t *benchTarget) error {
	nc, err := benchDialer(w, t.imapAddr).DialContext(ctx, "tcp", t.imapAddr)
	if err != nil {
		return err
	}
	var expunges uint32 // the client calls its handlers from one goroutine
	c := imapclient.New(nc, &imapclient.Options{
		UnilateralDataHandler: &imapclient.UnilateralDataHandler{
			Mailbox: func(d *imapclient.UnilateralDataMailbox) {
				if d.NumMessages != nil && g.kind == ChangeNew {
					g.observe(w, *d.NumMessages, time.Now().UnixNano())
				}
			},
			Fetch: func(m *imapclient.FetchMessageData) {
				at := time.Now().UnixNano()
				buf, err := m.Collect()
				if err != nil || g.kind != ChangeFlags || !slices.Contains(buf.Flags, imap.FlagSeen) {
					return
				}
				g.observe(w, buf.SeqNum, at)
			},
			Expunge: func(uint32) {
				if g.kind == ChangeExpunge {
					expunges++
					g.observe(w, expunges, time.Now().UnixNano())
				}
			},
		},
	})
	if err := c.Login(t.user, t.password).Wait(); err != nil {
		c.Close()
		return fmt.Errorf("LOGIN: %w", err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		c.Close()
		return fmt.Errorf("SELECT: %w", err)
	}
	g.arm(w, g.base(sel.NumMessages))
	idle, err := c.Idle()
	if err != nil {
		c.Close()
		return fmt.Errorf("IDLE: %w", err)
	}
	g.ws[w].client, g.ws[w].idle = c, idle
	return nil
}

// close ends every session and waits for the reading goroutines.
func (g *watchGroup) close() error {
	var errs []error
	for i := range g.ws {
		w := &g.ws[i]
		if w.raw != nil {
			w.raw.conn.Close()
		}
		if w.client != nil {
			errs = append(errs, w.idle.Close(), w.idle.Wait(), w.client.Logout().Wait(), w.client.Close())
		}
	}
	g.wg.Wait()
	return errors.Join(errs...)
}

// delivery is one timed SMTP delivery.
type delivery struct {
	start time.Time // before MAIL FROM
	ack   time.Time // after the 250 to the final dot
}

// deliverAll delivers len(g.slots) messages one at a time over one SMTP
// connection and waits, after each, until every watcher has its EXISTS or
// the timeout passes.
func (g *watchGroup) deliverAll(ctx context.Context, b *bench, t *benchTarget, size int) ([]delivery, error) {
	c, err := dialSMTP(ctx, t.smtpAddr)
	if err != nil {
		return nil, err
	}
	defer c.Close()
	run := benchRunID()
	out := make([]delivery, len(g.slots))
	timer := time.NewTimer(b.timeout)
	defer timer.Stop()
	for i := range g.slots {
		msg := benchMessage(fmt.Sprintf("%s-%d", run, i), t.user, size)
		out[i].start = time.Now()
		if err := sendMessage(c, t.user, msg); err != nil {
			return nil, fmt.Errorf("delivery %d: %w", i+1, err)
		}
		out[i].ack = time.Now()
		timer.Reset(b.timeout)
		select {
		case <-g.slots[i].done:
		case <-timer.C:
			b.progress("delivery %d: %d of %d watchers got EXISTS within %s", i+1, g.slots[i].arrived.Load(), g.n, b.timeout)
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	return out, c.Quit()
}

// PushStats is the outcome of deliveries watched by a group.
type PushStats struct {
	// FromAck: from the client reading the 250 to each watcher reading
	// its EXISTS. The server publishes before it answers 250, so an
	// EXISTS can be read first: those samples are negative.
	FromAck dist `json:"from_250"`
	// FromStart: from just before MAIL FROM to each EXISTS.
	FromStart dist `json:"from_mail_from"`
	// AllNotified: per delivery, from the 250 to the last watcher's
	// EXISTS (deliveries that reached every watcher).
	AllNotified dist `json:"all_notified"`
	// StartToAll: per delivery, from MAIL FROM to the last watcher's
	// EXISTS. Spread: from the first watcher's EXISTS to the last one's,
	// the time the fan-out itself takes. The 250 competes for the CPU
	// with the fan-out and may come after most of it, so these two say
	// more than AllNotified when there are many watchers.
	StartToAll dist `json:"mail_from_to_all"`
	Spread     dist `json:"spread"`
	// SMTP: the SMTP transaction, MAIL FROM to 250.
	SMTP dist `json:"smtp_transaction"`
	// Missed counts (watcher, delivery) pairs whose EXISTS never came.
	Missed int `json:"missed"`
}

func (g *watchGroup) stats(ds []delivery) PushStats {
	var fromAck, fromStart, all, startToAll, spread, smtpTx []time.Duration
	missed := 0
	for i, d := range ds {
		s := &g.slots[i]
		smtpTx = append(smtpTx, d.ack.Sub(d.start))
		var first, last int64
		complete := true
		for w := range s.at {
			at := s.at[w].Load()
			if at == 0 {
				missed++
				complete = false
				continue
			}
			if first == 0 || at < first {
				first = at
			}
			last = max(last, at)
			fromAck = append(fromAck, time.Duration(at-d.ack.UnixNano()))
			fromStart = append(fromStart, time.Duration(at-d.start.UnixNano()))
		}
		if complete {
			all = append(all, time.Duration(last-d.ack.UnixNano()))
			startToAll = append(startToAll, time.Duration(last-d.start.UnixNano()))
			spread = append(spread, time.Duration(last-first))
		}
	}
	return PushStats{FromAck: newDist(fromAck), FromStart: newDist(fromStart), AllNotified: newDist(all),
		StartToAll: newDist(startToAll), Spread: newDist(spread), SMTP: newDist(smtpTx), Missed: missed}
}

// dialSMTP connects to an SMTP server and says EHLO.
func dialSMTP(ctx context.Context, addr string) (*smtp.Client, error) {
	nc, err := (&net.Dialer{Timeout: 30 * time.Second}).DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	c := smtp.NewClient(nc)
	if err := c.Hello("bench.localhost"); err != nil {
		c.Close()
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	return c, nil
}

// sendMessage runs one SMTP transaction to rcpt; it returns after the 250
// that follows the data.
func sendMessage(c *smtp.Client, rcpt string, msg []byte) error {
	if err := c.Mail(benchSender, nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		w.Close()
		return err
	}
	return w.Close()
}

// benchMessage builds a message of about size bytes (at least its header)
// carrying id in its Subject, Message-ID and X-Bench-Id.
func benchMessage(id, to string, size int) []byte {
	b := make([]byte, 0, size+512) // one allocation: the client shares the server's cores
	sb := bytes.NewBuffer(b)
	fmt.Fprintf(sb, "From: Bench Sender <%s>\r\nTo: <%s>\r\nSubject: pushmail bench %s\r\nDate: %s\r\nMessage-ID: <%s@bench.example.org>\r\nX-Bench-Id: %s\r\nMIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n",
		benchSender, to, id, time.Now().Format(time.RFC1123Z), id, id)
	const line = "The quick brown fox jumps over the lazy dog; pack my box now.\r\n"
	for sb.Len()+len(line) <= size {
		sb.WriteString(line)
	}
	if rest := size - sb.Len(); rest >= 2 {
		sb.WriteString(line[len(line)-rest:]) // ends in CRLF
	}
	return sb.Bytes()
}

// benchRunID returns a short identifier that tells this run's messages
// from those of other runs against the same mailbox.
func benchRunID() string {
	return fmt.Sprintf("r%x", time.Now().UnixNano()&0xffffffffff)
}
