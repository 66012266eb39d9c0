package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/mattn/go-sqlite3"

	"pushmail/notify"
)

// writeFunc is one write: it runs inside the batch transaction and returns
// the events to publish once it is committed. It may run twice (see
// runBatch), so whatever it hands back to its caller through captured
// variables must be assigned by each run, not accumulated across runs.
type writeFunc func(tx *wtx) ([]notify.Event, error)

// wtx is the batch transaction as a write sees it. Its statements are
// prepared once per store and reused by every batch, since preparing costs
// about as much as running the small statements a delivery makes.
type wtx struct {
	ctx context.Context
	tx  *sql.Tx
	w   *stmtCache
	// postgres is Store.postgres: pick chooses by it.
	postgres bool
	// maxVanished is Options.MaxVanished, for pruneVanishedTx.
	maxVanished int
	// bodyText collects the batch's full-text index rows, for the index
	// (fulltextmark.go); runOp drops a failed write's.
	bodyText *[]bodyTextRow
	// fullTextNow is the writer's fullTextState.now (flushFullText).
	fullTextNow *bool
}

// stmtCache holds the writer's prepared statements. Only the writer
// goroutine touches it.
type stmtCache struct {
	stmts   map[string]*sql.Stmt // prepared on the writer's connection
	missing map[string]bool      // used in this batch, to prepare after it
}

func (t *wtx) stmt(query string) (*sql.Stmt, error) {
	if st, ok := t.w.stmts[query]; ok {
		// The transaction runs on the writer's only connection, where st
		// is already prepared: database/sql reuses it, no re-prepare.
		return t.tx.StmtContext(t.ctx, st), nil
	}
	// Preparing on the database would wait for the connection this
	// transaction holds; prepare for this transaction only, and for good
	// once the batch is over (prepareMissing).
	t.w.missing[query] = true
	st, err := t.tx.PrepareContext(t.ctx, query)
	if err != nil {
		return nil, fmt.Errorf("prepare %q: %w", query, err)
	}
	return st, nil
}

// prepareMissing prepares, on the now idle writer connection, the
// statements the last batch had to prepare for itself.
func (s *Store) prepareMissing(ctx context.Context) {
	for q := range s.stmts.missing {
		delete(s.stmts.missing, q)
		st, err := s.wdb.PrepareContext(ctx, q)
		if err != nil {
			s.log.Warn("mailstore: prepare statement", "err", err)
			continue
		}
		s.stmts.stmts[q] = st
	}
}

// pick is Store.pick, in the writer's transaction.
func (t *wtx) pick(sqlite, postgres string) string {
	if t.postgres {
		return postgres
	}
	return sqlite
}

// Exec runs a statement in the transaction.
func (t *wtx) Exec(query string, args ...any) (sql.Result, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.ExecContext(t.ctx, args...)
}

// Query runs a query in the transaction.
func (t *wtx) Query(query string, args ...any) (*sql.Rows, error) {
	st, err := t.stmt(query)
	if err != nil {
		return nil, err
	}
	return st.QueryContext(t.ctx, args...)
}

// QueryRow runs a query expected to return at most one row.
func (t *wtx) QueryRow(query string, args ...any) *sql.Row {
	st, err := t.stmt(query)
	if err != nil {
		// sql.Row carries no error of its own; run the query unprepared so
		// the preparation error surfaces from Scan.
		return t.tx.QueryRowContext(t.ctx, query, args...)
	}
	return st.QueryRowContext(t.ctx, args...)
}

// writeOp is a writeFunc waiting in the writer's queue.
type writeOp struct {
	ctx    context.Context
	fn     writeFunc
	size   int
	err    error
	events []notify.Event
	done   chan struct{}

	// grows marks a write that adds mail, admitted only within the
	// store's reserve and cap (admitGrowth); refused is why it was not.
	grows   bool
	refused error
}

// write queues fn for the writer and waits until its transaction has been
// committed (or failed). size is the number of message bytes fn writes,
// used to bound batches. The error is fn's own, or the commit's.
//
// Once queued, write always waits for the outcome, even if ctx is
// cancelled: the writer skips an op whose ctx is done before it starts, but
// one that already ran may still be committed, and its caller must learn
// which.
func (s *Store) write(ctx context.Context, size int, fn writeFunc) error {
	return s.wait(s.enqueue(ctx, size, false, fn))
}

// writeMail is write for a write that adds mail (Deliver, Append, Copy):
// it fails with ErrStorageFull, without running, when the store is at its
// reserve or its cap (Options.MinFreeBytes, Options.MaxDatabaseBytes).
func (s *Store) writeMail(ctx context.Context, size int, fn writeFunc) error {
	return s.wait(s.enqueue(ctx, size, true, fn))
}

func (s *Store) wait(op *writeOp, err error) error {
	if err != nil {
		return err
	}
	<-op.done
	return op.err
}

// enqueue hands fn to the writer; the caller then waits on op.done. grows
// marks a write that adds mail.
func (s *Store) enqueue(ctx context.Context, size int, grows bool, fn writeFunc) (*writeOp, error) {
	op := &writeOp{ctx: ctx, fn: fn, size: size, grows: grows, done: make(chan struct{})}
	s.closeMu.RLock()
	defer s.closeMu.RUnlock()
	if s.closed {
		return nil, ErrClosed
	}
	select {
	case s.queue <- op:
		return op, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// wakeQueueLen bounds the committed batches whose subscribers are still to
// be woken. When the waker is that far behind, the writer waits for it:
// readying goroutines is then the bottleneck, and queueing more wake-ups
// would not make them faster.
const wakeQueueLen = 64

// runWriter is the single writer goroutine: it takes a batch of queued ops,
// runs them in one transaction, commits once, publishes, then releases the
// callers and hands the subscribers' wake-ups to the waker. It stops after
// Close, once the queue is empty.
func (s *Store) runWriter() {
	defer s.wg.Done()
	defer close(s.wakeq) // the waker wakes what is left, then stops
	batch := make([]*writeOp, 0, s.opts.MaxBatch)
	// idle fires once no write has come for fullTextDelay while bodies
	// wait for the full-text index (fulltextmark.go).
	idle := time.NewTimer(fullTextDelay)
	idle.Stop()
	defer idle.Stop()
	for {
		var first *writeOp
		var idleC <-chan time.Time
		if s.fullTextWaiting() {
			idle.Reset(fullTextDelay)
			idleC = idle.C
		}
		select {
		case first = <-s.queue:
		case <-idleC:
			s.indexIdle()
			s.prepareMissing(context.Background())
			continue
		case <-s.closing:
			// Close holds closeMu while closing, so no op can be
			// enqueued after this point: drain what is left.
			for {
				select {
				case op := <-s.queue:
					s.wake(s.runBatch([]*writeOp{op}))
				default:
					return
				}
			}
		}
		batch = append(batch[:0], first)
		bytes := first.size
	fill:
		for len(batch) < s.opts.MaxBatch && bytes < s.opts.MaxBatchBytes {
			select {
			case op := <-s.queue:
				batch = append(batch, op)
				bytes += op.size
			default:
				break fill
			}
		}
		s.wake(s.runBatch(batch))
	}
}

// wake hands a committed batch's wake-ups to the waker.
func (s *Store) wake(w *notify.Wakeups) {
	if w != nil && w.Len() > 0 {
		s.wakeq <- w
	}
}

// runWaker is the goroutine that wakes subscribers after the writer has
// published a batch and released its callers. Waking readies one goroutine
// per subscriber (about a microsecond each); done on the writer, 10,000
// IMAP sessions watching one INBOX would hold the sender's "250" and the
// next batch for 10 ms. The events themselves are queued on every
// subscription before the callers are released, so a session's next
// command sees them whether or not it has been woken yet.
func (s *Store) runWaker() {
	defer s.wg.Done()
	for w := range s.wakeq {
		w.Wake()
	}
}

// runBatch applies ops in one transaction, commits once, and publishes
// their events. A failing op must be undone alone, without its batch mates:
// that is what a savepoint per op gives, but two extra statements per op
// cost the serial writer about 15 % of a delivery. Ops rarely fail, so the
// batch first runs without savepoints; if an op fails, the transaction is
// rolled back and the batch runs again with one savepoint per op. If the
// commit fails, or SQLite abandoned the transaction under an op (as it may
// on SQLITE_FULL or an I/O error), every op of the batch fails and none is
// published. The committed events are queued on their subscriptions before
// the callers are released; the subscribers still to be woken are returned,
// for runWaker.
func (s *Store) runBatch(ops []*writeOp) (wakeups *notify.Wakeups) {
	defer func() {
		for _, op := range ops {
			close(op.done)
		}
		s.prepareMissing(context.Background())
	}()
	s.admitGrowth(ops)
	savepoints := false
	for conflicts := 0; ; {
		wakeups, outcome := s.tryBatch(ops, savepoints)
		switch {
		case outcome == batchConflict && conflicts < maxConflictRetries:
			// PostgreSQL refused the batch for a conflict (a deadlock
			// or serialization failure; the write lock leaves none
			// expected): nothing of it was committed, and running it
			// again reads what the other side wrote.
			conflicts++
			s.log.Debug("mailstore write batch conflicted with another node's; running it again", "attempt", conflicts)
			time.Sleep(time.Duration(conflicts) * 200 * time.Microsecond)
		case outcome == batchConflict:
			s.log.Error("mailstore write batch failed: it conflicted with other nodes' writes every time it ran",
				"attempts", conflicts+1, "writes", len(ops), "err", ops[0].err)
			return wakeups
		case outcome == batchFailedOp && !savepoints && len(ops) > 1:
			// A batch of one needs no second pass: its only op failing
			// fails it.
			savepoints = true
		default:
			return wakeups
		}
		for _, op := range ops {
			op.err, op.events = nil, nil
		}
	}
}

// maxConflictRetries bounds how many times runBatch runs a batch again
// after PostgreSQL refused it for a conflict; past it, its writes fail
// with the conflict. Under the write lock none is expected: the retry is
// what PostgreSQL's manual asks of every client (§13.2.3), kept for a
// deadlock with something outside pushmail's writers.
const maxConflictRetries = 20

// batchOutcome is how tryBatch ended.
type batchOutcome int

const (
	batchDone     batchOutcome = iota // committed, or failed for good
	batchFailedOp                     // an op failed without savepoints: all rolled back
	batchConflict                     // a serialization failure (PostgreSQL): all rolled back
)

// tryBatch runs ops in one transaction, each within its own savepoint when
// savepoints is set. Without savepoints, the first op to fail rolls the
// whole transaction back and tryBatch returns batchFailedOp; ops' results
// are then meaningless, except for the failed op's error. A serialization
// failure anywhere rolls everything back and returns batchConflict, with
// every op failed by it in case runBatch gives up.
func (s *Store) tryBatch(ops []*writeOp, savepoints bool) (wakeups *notify.Wakeups, outcome batchOutcome) {
	ctx := context.Background() // the batch belongs to no single caller
	start := time.Now()
	failAll := func(err error) {
		if !isRetryable(err) {
			// A conflict is run again (runBatch), and logged there if it
			// is given up.
			s.log.Error("mailstore write batch failed", "err", err, "writes", len(ops))
		}
		for _, op := range ops {
			if op.err == nil {
				op.err = err
			}
			op.events = nil
		}
	}
	tx, err := s.wdb.BeginTx(ctx, nil)
	if err != nil {
		failAll(classify(fmt.Errorf("begin transaction: %w", err)))
		return nil, batchDone
	}
	if s.postgres {
		// The other nodes' writers wait from here to our COMMIT.
		if _, err := tx.ExecContext(ctx, writeLockSQL); err != nil {
			rollback(tx)
			failAll(classify(fmt.Errorf("take the write lock: %w", err)))
			return nil, batchDone
		}
	}
	ran := 0
	var bodyText []bodyTextRow
	for _, op := range ops {
		if err := op.ctx.Err(); err != nil {
			op.err = err
			continue
		}
		if op.refused != nil {
			op.err = op.refused
			continue
		}
		var broken error
		op.events, op.err, broken = s.runOp(&wtx{ctx: ctx, tx: tx, w: &s.stmts, postgres: s.postgres, maxVanished: s.opts.MaxVanished, bodyText: &bodyText, fullTextNow: &s.fullText.now}, op.fn, savepoints)
		if broken != nil {
			// The transaction is gone, and with it the ops before this
			// one: what follows would run outside any transaction.
			rollback(tx)
			failAll(classify(fmt.Errorf("transaction aborted: %w", broken)))
			return nil, batchDone
		}
		if op.err != nil && isRetryable(op.err) {
			rollback(tx)
			failAll(op.err)
			return nil, batchConflict
		}
		if op.err != nil && !savepoints {
			// Its partial writes are in the transaction with everyone
			// else's: undo them all, and let the caller decide.
			rollback(tx)
			return nil, batchFailedOp
		}
		if op.err == nil {
			ran++
		}
	}
	if ran == 0 {
		rollback(tx)
		return nil, batchDone
	}
	// After the ops' writes (the \Recent marks and the full-text rows
	// change no account state), and before notifyBatchTx copies the
	// events: the states the commit makes.
	if err := s.stampAccountStatesTx(&wtx{ctx: ctx, tx: tx, w: &s.stmts, postgres: s.postgres}, ops); err != nil {
		rollback(tx)
		failAll(classify(err))
		if isRetryable(err) {
			return nil, batchConflict
		}
		return nil, batchDone
	}
	// \Recent claims made since the last commit ride along (recent.go).
	// A failure leaves them for the next commit: \Recent is session
	// state, never a reason to fail a delivery.
	claims, err := s.writeRecentMarks(tx)
	if err != nil {
		s.log.Warn("\\Recent marks not written; kept for the next commit", "err", err)
	}
	// The full-text index, when enough bodies wait for it
	// (fulltextmark.go); last before the commit, so that no other
	// statement makes FTS5 write its pending rows out early (fulltext.go).
	var indexMark int64
	if s.fullTextDue(bodyText) {
		if indexMark, err = s.indexBodyTextTx(ctx, tx, bodyText); err != nil {
			rollback(tx)
			s.restoreRecentMarks(claims)
			failAll(classify(fmt.Errorf("full-text index: %w", err)))
			if isRetryable(err) {
				return nil, batchConflict
			}
			return nil, batchDone
		}
	}
	var batch uint64 // the batch's number for the other nodes; 0: none
	if s.listener != nil {
		if batch, err = s.listener.notifyBatchTx(ctx, tx, ops); err != nil {
			rollback(tx)
			s.restoreRecentMarks(claims)
			failAll(err)
			if isRetryable(err) {
				return nil, batchConflict
			}
			return nil, batchDone
		}
	}
	if err := tx.Commit(); err != nil {
		if s.listener != nil {
			s.listener.forgetOwn(batch)
		}
		s.restoreRecentMarks(claims)
		failAll(classify(fmt.Errorf("commit: %w", err)))
		if isRetryable(err) {
			return nil, batchConflict
		}
		return nil, batchDone
	}
	committed := time.Now()
	s.fullTextCommitted(bodyText, indexMark)
	// RFC 5321 §6.1 and DESIGN.md: publish in commit order, before any
	// caller learns of success, so that every session's next look at its
	// subscription already holds the message a client was told "250"
	// about. Only the wake-ups wait until the callers are released.
	bytes := 0
	wakeups = new(notify.Wakeups)
	for _, op := range ops {
		bytes += op.size
	}
	if s.listener != nil {
		// Published in commit order with the other nodes' events, by
		// the listener (crossnode.go).
		s.listener.publishOwn(batch)
	} else {
		for _, op := range ops {
			for _, ev := range op.events {
				ev.Committed = committed
				// The shared UID lists first: a session that hears of
				// the change finds its list past it (uidlist.go).
				s.uidLists.applyEvent(&ev)
				s.hub.Enqueue(ev, wakeups)
			}
		}
	}
	if s.opts.OnCommit != nil {
		s.opts.OnCommit(len(ops), bytes, committed.Sub(start))
	}
	return wakeups, batchDone
}

// runOp runs fn, inside a savepoint when savepoint is set, turning a panic
// into an error so that one broken write cannot stop the writer for
// everyone. With a savepoint, a failed fn is rolled back alone, and broken
// is set when that is impossible: SQLite has rolled back the whole
// transaction itself. Without one, the caller undoes a failed fn.
func (s *Store) runOp(tx *wtx, fn writeFunc, savepoint bool) (events []notify.Event, err, broken error) {
	if savepoint {
		if _, err := tx.Exec("SAVEPOINT op"); err != nil {
			return nil, nil, fmt.Errorf("savepoint: %w", err)
		}
	}
	indexed := len(*tx.bodyText)
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("mailstore: write panicked: %v", r)
			s.log.Error("mailstore write panicked", "panic", r)
		}
		if err != nil {
			err = classify(err)
			events = nil
			*tx.bodyText = (*tx.bodyText)[:indexed] // its bodies are not stored
		}
		if !savepoint {
			return
		}
		if err != nil {
			if _, rerr := tx.Exec("ROLLBACK TO op"); rerr != nil {
				broken = errors.Join(err, fmt.Errorf("rollback to savepoint: %w", rerr))
			} else if _, rerr := tx.Exec("RELEASE op"); rerr != nil {
				broken = errors.Join(err, fmt.Errorf("release savepoint: %w", rerr))
			}
			return
		}
		if _, rerr := tx.Exec("RELEASE op"); rerr != nil {
			broken = fmt.Errorf("release savepoint: %w", rerr)
			events = nil
		}
	}()
	events, err = fn(tx)
	if err == nil {
		err = fillUsersTx(tx, events)
	}
	return events, err, nil
}

// fillUsersTx sets Event.User where the write left it 0, from the
// mailbox's row: the hub routes by it to the user's watchers (IMAP
// NOTIFY). One lookup by primary key per mailbox of the write, in its
// transaction; writes that remove the row (DeleteMailbox, DeleteUser)
// set User themselves. Mailbox ids are never given again (nextIDSQL),
// so the owner read here is the event's.
func fillUsersTx(tx *wtx, events []notify.Event) error {
	var last, user int64
	for i := range events {
		ev := &events[i]
		if ev.User != 0 || ev.Mailbox == 0 {
			continue
		}
		if ev.Mailbox != last {
			if err := tx.QueryRow("SELECT user_id FROM mailboxes WHERE id = ?", ev.Mailbox).Scan(&user); err != nil {
				return fmt.Errorf("owner of mailbox %d for its event: %w", ev.Mailbox, err)
			}
			last = ev.Mailbox
		}
		ev.User = user
	}
	return nil
}

// classify marks SQLite's "database or disk is full", and PostgreSQL's
// disk_full, with ErrStorageFull, so protocols can answer "mail system
// full" (RFC 3463 X.3.1) rather than a generic error.
func classify(err error) error {
	var se sqlite3.Error
	full := errors.As(err, &se) && se.Code == sqlite3.ErrFull || pgDiskFullErr(err)
	if full && !errors.Is(err, ErrStorageFull) {
		return fmt.Errorf("%w: %w", ErrStorageFull, err)
	}
	return err
}
