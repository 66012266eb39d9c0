package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"time"

	"pushmail/mailstore"
)

// QResyncResult is the outcome of "pushmail bench qresync".
type QResyncResult struct {
	Messages int   `json:"messages"` // in the INBOX when timed
	Changes  int   `json:"changes"`  // made after the client's modseq
	Repeat   int   `json:"repeat"`
	ModSeq   int64 `json:"modseq"` // the client's, in SELECT … (QRESYNC (uidvalidity modseq))
	// Ops: the QRESYNC SELECT, a plain SELECT, and a plain SELECT
	// followed by UID FETCH 1:* (FLAGS), what a client without QRESYNC
	// sends to learn the same.
	Ops []bigboxOp `json:"ops"`
}

// The changes made after the client's modseq: some reflagged, some
// expunged, some delivered (RFC 7162 §3.2.5: the QRESYNC SELECT answers
// VANISHED (EARLIER) for the expunged and a FETCH for each of the others).
const (
	qresyncFlagged   = 60
	qresyncExpunged  = 20
	qresyncDelivered = 20
)

func qresyncFlags(fs *flag.FlagSet) func(context.Context, *bench) (Result, error) {
	messages := fs.Int("messages", 100000, "messages in the mailbox before the changes")
	repeat := fs.Int("repeat", 20, "times each command is timed; the median is reported")
	loaders := fs.Int("loaders", 32, "concurrent writers while loading")
	return func(ctx context.Context, b *bench) (Result, error) {
		if *messages < 2*(qresyncFlagged+qresyncExpunged) || *repeat <= 0 || *loaders <= 0 {
			return nil, fmt.Errorf("--messages must be at least %d, --repeat and --loaders positive", 2*(qresyncFlagged+qresyncExpunged))
		}
		return runQResync(ctx, b, *messages, *repeat, *loaders)
	}
}

// qresyncChange makes the changes after the client's modseq, through
// the store, spread over the mailbox, and returns that modseq and the
// mailbox's UIDVALIDITY.
func qresyncChange(ctx context.Context, store *mailstore.Store, mb mailstore.MailboxID, messages int) (modseq uint64, uidValidity uint32, err error) {
	st, err := store.Status(ctx, mb)
	if err != nil {
		return 0, 0, err
	}
	modseq, uidValidity = st.HighestModSeq, st.UIDValidity
	stride := messages / (qresyncFlagged + qresyncExpunged)
	for i := range qresyncFlagged {
		uid := mailstore.UID(1 + i*stride)
		if _, err := store.StoreFlags(ctx, mb, mailstore.UIDSetOf(uid), mailstore.FlagsAdd, []string{mailstore.FlagFlagged}, 0); err != nil {
			return 0, 0, err
		}
	}
	for i := range qresyncExpunged {
		uid := mailstore.UID(2 + (qresyncFlagged+i)*stride)
		if _, err := store.StoreFlags(ctx, mb, mailstore.UIDSetOf(uid), mailstore.FlagsAdd, []string{mailstore.FlagDeleted}, 0); err != nil {
			return 0, 0, err
		}
		if _, err := store.Expunge(ctx, mb, mailstore.UIDSetOf(uid), 0); err != nil {
			return 0, 0, err
		}
	}
	for i := range qresyncDelivered {
		if _, err := store.Append(ctx, mb, bigboxMessage(messages+i), nil, time.Time{}, 0); err != nil {
			return 0, 0, err
		}
	}
	return modseq, uidValidity, nil
}

func runQResync(ctx context.Context, b *bench, messages, repeat, loaders int) (res *QResyncResult, err error) {
	if b.server == "external" {
		return nil, errors.New("qresync makes its changes through the store: it needs a started server (--server inproc or child)")
	}
	res = &QResyncResult{Repeat: repeat, Changes: qresyncFlagged + qresyncExpunged + qresyncDelivered}
	var modseq uint64
	var uidValidity uint32
	prepare := func(ctx context.Context, store *mailstore.Store, rcpt mailstore.Recipient) error {
		b.progress("loading %d messages through the store", messages)
		if err := bigboxLoad(ctx, store, rcpt.Mailbox, messages, loaders, b); err != nil {
			return err
		}
		b.progress("making %d changes", res.Changes)
		modseq, uidValidity, err = qresyncChange(ctx, store, rcpt.Mailbox, messages)
		return err
	}
	t, err := b.start(ctx, 1, prepare)
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.stop()) }()
	res.ModSeq = int64(modseq)

	c, err := dialRawIMAP(ctx, benchDialer(0, t.imapAddr), t.imapAddr, 64<<10)
	if err != nil {
		return nil, err
	}
	defer c.conn.Close()
	if err := c.login(t.user, t.password); err != nil {
		return nil, fmt.Errorf("LOGIN: %w", err)
	}
	if err := c.command("ENABLE QRESYNC", nil); err != nil {
		return nil, fmt.Errorf("ENABLE QRESYNC: %w", err)
	}
	count, err := c.selectInbox()
	if err != nil {
		return nil, err
	}
	res.Messages = int(count)

	// The answer to the QRESYNC SELECT: UIDs in VANISHED (EARLIER) plus
	// FETCH responses, each change once.
	countChanges := func(line []byte) int {
		if rest, ok := bytes.CutPrefix(line, []byte("* VANISHED (EARLIER) ")); ok {
			return countUIDSet(rest)
		}
		if bytes.HasPrefix(line, []byte("* ")) && bytes.Contains(line, []byte(" FETCH ")) {
			return 1
		}
		return 0
	}
	countExists := func(line []byte) int {
		if n, ok := parseExists(line); ok {
			return int(n)
		}
		return 0
	}
	ops := []struct {
		op    bigboxOp
		cmds  []string
		count func([]byte) int
	}{
		{bigboxOp{Name: "qresync", Command: fmt.Sprintf("SELECT INBOX (QRESYNC (%d %d))", uidValidity, modseq), Expect: res.Changes},
			nil, countChanges},
		{bigboxOp{Name: "select", Command: "SELECT INBOX", Expect: int(count)}, nil, countExists},
		{bigboxOp{Name: "full", Command: "SELECT INBOX, UID FETCH 1:* (FLAGS)", Expect: 2 * int(count)},
			[]string{"SELECT INBOX", "UID FETCH 1:* (FLAGS)"}, func(line []byte) int { return countExists(line) + countChanges(line) }},
	}
	b.progress("timing %d commands on %d messages, %d times each", len(ops), count, repeat)
	stopProfile, err := b.startProfile()
	if err != nil {
		return nil, err
	}
	times := make([][]time.Duration, len(ops))
	for r := range repeat {
		for i := range ops {
			op := &ops[i]
			cmds := op.cmds
			if cmds == nil {
				cmds = []string{op.op.Command}
			}
			n := 0
			if err := c.conn.SetDeadline(time.Now().Add(b.timeout)); err != nil {
				stopProfile()
				return nil, err
			}
			start := time.Now()
			for _, cmd := range cmds {
				if err := c.command(cmd, func(line []byte) { n += op.count(line) }); err != nil {
					stopProfile()
					return nil, fmt.Errorf("%s: %w", cmd, err)
				}
			}
			times[i] = append(times[i], time.Since(start))
			if r == 0 {
				op.op.Result = n
			} else if n != op.op.Result {
				stopProfile()
				return nil, fmt.Errorf("%s answered %d, then %d", op.op.Command, op.op.Result, n)
			}
		}
	}
	if err := stopProfile(); err != nil {
		return nil, err
	}
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
	for i, op := range ops {
		d := newDist(times[i])
		op.op.Median, op.op.Min, op.op.Max = ms(median(times[i])), d.Min/1e3, d.Max/1e3
		if op.op.Result != op.op.Expect {
			return nil, fmt.Errorf("%s answered %d, want %d", op.op.Command, op.op.Result, op.op.Expect)
		}
		res.Ops = append(res.Ops, op.op)
	}
	return res, c.logout()
}

// countUIDSet counts the UIDs of a sequence set such as "3,7:9".
func countUIDSet(set []byte) int {
	n := 0
	for _, part := range bytes.Split(bytes.TrimSpace(set), []byte(",")) {
		lo, hi, isRange := bytes.Cut(part, []byte(":"))
		a, err1 := strconv.Atoi(string(lo))
		if !isRange {
			if err1 == nil {
				n++
			}
			continue
		}
		b, err2 := strconv.Atoi(string(hi))
		if err1 == nil && err2 == nil {
			n += max(a, b) - min(a, b) + 1
		}
	}
	return n
}

func (r *QResyncResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "INBOX of %d messages, %d changes since modseq %d (%d reflagged, %d expunged, %d delivered)\n",
		r.Messages, r.Changes, r.ModSeq, qresyncFlagged, qresyncExpunged, qresyncDelivered)
	fmt.Fprintf(w, "median of %d, from sending the command to its tagged OK:\n", r.Repeat)
	for _, op := range r.Ops {
		fmt.Fprintf(w, "  %-40s %9.2fms  (min %.2f, max %.2f)  result %d\n", op.Command, op.Median, op.Min, op.Max, op.Result)
	}
}
