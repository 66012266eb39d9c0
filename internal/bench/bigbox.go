package bench

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"pushmail/mailstore"
)

// BigboxResult is the outcome of "pushmail bench bigbox".
type BigboxResult struct {
	Messages   int     `json:"messages"` // in the INBOX when timed
	Loaded     int     `json:"loaded"`   // added by this run
	LoadSec    float64 `json:"load_seconds"`
	LoadPerSec float64 `json:"load_msgs_per_sec"`
	LoadedBy   string  `json:"loaded_by"` // mailstore Append, or SMTP
	// IndexBytesPerMsg and FileBytesPerMsg are the full-text index's
	// payload and the store file's size, per message, after the load
	// (mailstore.Stats); 0 when the store is another process's.
	IndexBytesPerMsg float64    `json:"index_bytes_per_message,omitempty"`
	FileBytesPerMsg  float64    `json:"file_bytes_per_message,omitempty"`
	Repeat           int        `json:"repeat"`
	Ops              []bigboxOp `json:"ops"`
}

// bigboxOp is one timed command.
type bigboxOp struct {
	Name    string `json:"name"`
	Command string `json:"command"`
	// Median, Min and Max of the repetitions, in milliseconds: from
	// sending the command to reading its tagged OK.
	Median float64 `json:"median_ms"`
	Min    float64 `json:"min_ms"`
	Max    float64 `json:"max_ms"`
	// Result is what the answer held: EXISTS for SELECT, FETCH responses,
	// SEARCH hits, literal bytes for BODY[]. Expect is what a mailbox this
	// run loaded must give (-1: not checked).
	Result int `json:"result"`
	Expect int `json:"expect"`
	// Error is the server's refusal, if it refused (SEARCH not answered).
	Error string `json:"error,omitempty"`
}

// bigboxWords make up the loaded messages' text; bigboxWord is in one
// message of every thousand, for SEARCH TEXT.
var bigboxWords = []string{"apple", "banana", "cherry", "damson", "elder", "fig", "grape", "hazel",
	"invoice", "meeting", "report", "schedule", "budget", "travel", "lunch", "project"}

const bigboxWord = "kumquat"

// bigboxThread is the length of the reply chains the messages form.
const bigboxThread = 10

func bigboxFlags(fs *flag.FlagSet) func(context.Context, *bench) (Result, error) {
	messages := fs.Int("messages", 100000, "messages in the mailbox (1 in 100 unseen, 1 in 1000 with the word \""+bigboxWord+"\")")
	repeat := fs.Int("repeat", 5, "times each command is timed; the median is reported")
	loaders := fs.Int("loaders", 32, "concurrent writers while loading")
	return func(ctx context.Context, b *bench) (Result, error) {
		if *messages <= 0 || *repeat <= 0 || *loaders <= 0 {
			return nil, errors.New("--messages, --repeat and --loaders must be positive")
		}
		return runBigbox(ctx, b, *messages, *repeat, *loaders)
	}
}

// bigboxMessage is message i of the big mailbox: about 1 KB of text.
func bigboxMessage(i int) []byte {
	rng := rand.New(rand.NewPCG(uint64(i), 7))
	var sb strings.Builder
	fmt.Fprintf(&sb, "From: Sender %d <sender%d@example.org>\r\nTo: <%s>\r\nSubject: note %d about the %s\r\nDate: Mon, 04 Mar 2024 09:%02d:00 +0000\r\nMessage-ID: <big%d@example.org>\r\n",
		i%97, i%97, benchUser, i, bigboxWords[i%len(bigboxWords)], i%60, i)
	if i%bigboxThread != 0 {
		// Threads of bigboxThread messages, each replying to the one
		// before, for THREAD=REFERENCES.
		first := i - i%bigboxThread
		fmt.Fprintf(&sb, "In-Reply-To: <big%d@example.org>\r\nReferences: <big%d@example.org>", i-1, first)
		for j := first + 1; j < i; j++ {
			fmt.Fprintf(&sb, "\r\n <big%d@example.org>", j)
		}
		sb.WriteString("\r\n")
	}
	sb.WriteString("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\n")
	for line := range 12 {
		for w := range 10 {
			if w > 0 {
				sb.WriteByte(' ')
			}
			if i%1000 == 0 && line == 6 && w == 3 {
				sb.WriteString(bigboxWord)
				continue
			}
			sb.WriteString(bigboxWords[rng.IntN(len(bigboxWords))])
		}
		sb.WriteString(".\r\n")
	}
	return []byte(sb.String())
}

// bigboxLoad appends messages 0..n-1 to the INBOX through the store, with
// conc writers so that group commit batches them.
func bigboxLoad(ctx context.Context, store *mailstore.Store, mb mailstore.MailboxID, n, conc int, b *bench) error {
	var next atomic.Int64
	var wg sync.WaitGroup
	errc := make(chan error, conc)
	step := max(n/10, 10000)
	for range conc {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				var flags []string
				if i%100 != 0 {
					flags = []string{mailstore.FlagSeen}
				}
				if _, err := store.Append(ctx, mb, bigboxMessage(i), flags, time.Time{}, 0); err != nil {
					errc <- err
					return
				}
				if (i+1)%step == 0 {
					b.progress("loaded %d of %d", i+1, n)
				}
			}
		})
	}
	wg.Wait()
	close(errc)
	return <-errc
}

// bigboxLoadSMTP delivers messages over SMTP to an external server, conc
// at a time.
func bigboxLoadSMTP(ctx context.Context, t *benchTarget, from, n, conc int) error {
	var next atomic.Int64
	next.Store(int64(from))
	var wg sync.WaitGroup
	errc := make(chan error, conc)
	for range conc {
		wg.Go(func() {
			c, err := dialSMTP(ctx, t.smtpAddr)
			if err != nil {
				errc <- err
				return
			}
			defer c.Close()
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				if err := sendMessage(c, t.user, bigboxMessage(i)); err != nil {
					errc <- err
					return
				}
			}
			errc <- c.Quit()
		})
	}
	wg.Wait()
	close(errc)
	var errs []error
	for err := range errc {
		errs = append(errs, err)
	}
	return errors.Join(errs...)
}

func runBigbox(ctx context.Context, b *bench, messages, repeat, loaders int) (res *BigboxResult, err error) {
	res = &BigboxResult{Repeat: repeat}
	var loadTime time.Duration
	prepare := func(ctx context.Context, store *mailstore.Store, rcpt mailstore.Recipient) error {
		b.progress("loading %d messages through the store", messages)
		start := time.Now()
		err := bigboxLoad(ctx, store, rcpt.Mailbox, messages, loaders, b)
		loadTime = time.Since(start)
		res.Loaded, res.LoadedBy = messages, "mailstore Append"
		if err != nil {
			return err
		}
		st, err := store.Stats(ctx)
		if err != nil {
			return err
		}
		if st.Messages > 0 {
			res.IndexBytesPerMsg = float64(st.IndexBytes) / float64(st.Messages)
			res.FileBytesPerMsg = float64(st.FileBytes) / float64(st.Messages)
		}
		return nil
	}
	t, err := b.start(ctx, 1, prepare) // one IMAP client
	if err != nil {
		return nil, err
	}
	defer func() { err = errors.Join(err, t.stop()) }()

	c, err := dialRawIMAP(ctx, benchDialer(0, t.imapAddr), t.imapAddr, 64<<10)
	if err != nil {
		return nil, err
	}
	defer c.conn.Close()
	if err := c.login(t.user, t.password); err != nil {
		return nil, fmt.Errorf("LOGIN: %w", err)
	}
	count, err := c.selectInbox()
	if err != nil {
		return nil, err
	}
	if t.kind == "external" && int(count) < messages {
		b.progress("the INBOX has %d messages; delivering %d more over SMTP", count, messages-int(count))
		start := time.Now()
		if err := bigboxLoadSMTP(ctx, t, int(count), messages, loaders); err != nil {
			return nil, err
		}
		loadTime = time.Since(start)
		res.Loaded, res.LoadedBy = messages-int(count), "SMTP"
		if count, err = c.selectInbox(); err != nil {
			return nil, err
		}
	}
	res.Messages = int(count)
	res.LoadSec = loadTime.Seconds()
	if loadTime > 0 {
		res.LoadPerSec = float64(res.Loaded) / loadTime.Seconds()
	}
	if count == 0 {
		return nil, errors.New("the INBOX is empty")
	}

	// What a mailbox loaded by bigboxLoad must answer.
	checked := t.kind != "external"
	expect := func(n int) int {
		if checked {
			return n
		}
		return -1
	}
	// Concurrent loaders commit in any order: which message is in the
	// middle, and so its size, is not known; it must not be empty.
	mid := count/2 + 1
	countFetch := func(line []byte) int {
		if bytes.HasPrefix(line, []byte("* ")) && bytes.Contains(line, []byte(" FETCH ")) {
			return 1
		}
		return 0
	}
	countSearch := func(line []byte) int {
		rest, ok := bytes.CutPrefix(line, []byte("* SEARCH"))
		if !ok {
			return 0
		}
		return len(bytes.Fields(rest))
	}
	countSort := func(line []byte) int {
		rest, ok := bytes.CutPrefix(line, []byte("* SORT"))
		if !ok {
			return 0
		}
		return len(bytes.Fields(rest))
	}
	countThreads := func(line []byte) int { // top-level thread-lists
		rest, ok := bytes.CutPrefix(line, []byte("* THREAD"))
		if !ok {
			return 0
		}
		n, depth := 0, 0
		for _, c := range rest {
			switch c {
			case '(':
				if depth == 0 {
					n++
				}
				depth++
			case ')':
				depth--
			}
		}
		return n
	}
	ops := []struct {
		op     bigboxOp
		count  func(line []byte) int // summed over the untagged lines
		useLit bool                  // the result is the literal bytes
	}{
		{bigboxOp{Name: "select", Command: "SELECT INBOX", Expect: expect(messages)},
			func(line []byte) int {
				if n, ok := parseExists(line); ok {
					return int(n)
				}
				return 0
			}, false},
		{bigboxOp{Name: "fetch_flags", Command: "UID FETCH 1:* (UID FLAGS)", Expect: expect(messages)}, countFetch, false},
		{bigboxOp{Name: "search_unseen", Command: "UID SEARCH UNSEEN", Expect: expect((messages + 99) / 100)}, countSearch, false},
		{bigboxOp{Name: "search_text", Command: "SEARCH TEXT " + bigboxWord, Expect: expect((messages + 999) / 1000)}, countSearch, false},
		{bigboxOp{Name: "sort_date", Command: "UID SORT (DATE) UTF-8 ALL", Expect: expect(messages)}, countSort, false},
		{bigboxOp{Name: "thread_references", Command: "UID THREAD REFERENCES UTF-8 ALL", Expect: expect((messages + bigboxThread - 1) / bigboxThread)}, countThreads, false},
		{bigboxOp{Name: "fetch_body", Command: fmt.Sprintf("FETCH %d (BODY.PEEK[])", mid), Expect: -1}, nil, true},
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
			if op.op.Error != "" {
				continue
			}
			n := 0
			var fn func([]byte)
			if op.count != nil {
				fn = func(line []byte) { n += op.count(line) }
			}
			if err := c.conn.SetDeadline(time.Now().Add(b.timeout)); err != nil {
				stopProfile()
				return nil, err
			}
			start := time.Now()
			err := c.command(op.op.Command, fn)
			d := time.Since(start)
			var netErr interface{ Timeout() bool }
			if errors.As(err, &netErr) || errors.Is(err, io.EOF) {
				stopProfile()
				return nil, fmt.Errorf("%s: %w", op.op.Command, err)
			}
			if err != nil {
				// A NO or BAD: the server does not answer this (yet).
				op.op.Error = err.Error()
				continue
			}
			if op.useLit {
				n = c.literal
			}
			if r == 0 {
				op.op.Result = n
			} else if n != op.op.Result {
				stopProfile()
				return nil, fmt.Errorf("%s answered %d, then %d", op.op.Command, op.op.Result, n)
			}
			times[i] = append(times[i], d)
		}
	}
	if err := stopProfile(); err != nil {
		return nil, err
	}
	if body := ops[len(ops)-1].op; body.Error == "" && body.Result == 0 {
		return nil, fmt.Errorf("%s returned no literal", body.Command)
	}
	ms := func(d time.Duration) float64 { return float64(d.Nanoseconds()) / 1e6 }
	for i, op := range ops {
		if len(times[i]) > 0 {
			d := newDist(times[i])
			op.op.Median, op.op.Min, op.op.Max = ms(median(times[i])), d.Min/1e3, d.Max/1e3
		}
		res.Ops = append(res.Ops, op.op)
	}
	return res, c.logout()
}

func (r *BigboxResult) WriteText(w io.Writer) {
	fmt.Fprintf(w, "INBOX of %d messages", r.Messages)
	if r.Loaded > 0 {
		fmt.Fprintf(w, " (%d loaded by %s in %.1fs, %.0f msgs/s; not part of the timings)", r.Loaded, r.LoadedBy, r.LoadSec, r.LoadPerSec)
	}
	if r.IndexBytesPerMsg > 0 {
		fmt.Fprintf(w, "\nstore file %.0f bytes per message, of which the full-text index %.0f", r.FileBytesPerMsg, r.IndexBytesPerMsg)
	}
	fmt.Fprintf(w, "\nmedian of %d, from sending the command to its tagged OK:\n", r.Repeat)
	for _, op := range r.Ops {
		if op.Error != "" {
			fmt.Fprintf(w, "  %-28s not answered: %s\n", op.Command, op.Error)
			continue
		}
		check := ""
		if op.Expect >= 0 {
			check = " (expected " + strconv.Itoa(op.Expect) + ")"
			if op.Expect == op.Result {
				check = ""
			}
		}
		fmt.Fprintf(w, "  %-28s %9.2fms  (min %.2f, max %.2f)  result %d%s\n", op.Command, op.Median, op.Min, op.Max, op.Result, check)
	}
}
