package imapd

import (
	"bufio"
	"runtime"

	"pushmail/internal/fanout"
	"pushmail/internal/hibernate"
	"pushmail/notify"
)

// Direct push (issue 15): a hibernating session is told of its mailbox's
// changes without waking. The subscription's hook submits the session to
// the Server's fan-out pool (internal/fanout); a worker applies the
// events to the session's view, exactly as idleWait would, writing the
// responses into the worker's buffer, and sends them with one
// non-blocking write to the parked socket (hibernate.Conn.Write). The
// session stays parked: no goroutine, no buffer, no epoll_ctl, no timer.
// Ten thousand watchers of one INBOX cost ten thousand of these small
// jobs on as many workers as there are cores, after the sender's 250
// (the store's waker only submits).
//
// The worker hands the session to a goroutine of its own (wakes it,
// Signaled) whenever the job is more than a write:
//   - a resync is due, or an event is MailboxChanged (a rename, the
//     mailbox's or the account's deletion): store reads and possibly a
//     BYE, as idleAwake does them;
//   - applying the events failed (a \Recent claim): the responses written
//     so far and the error go to the session (pushLeft), which
//     sends the one and answers the other as update would have;
//   - the socket would block: what the socket did not take goes to the
//     session (pushLeft), which writes it, blocking, before anything else.
//
// The view is updated to what the client has been sent, or will be sent
// first by the woken session: a later wake-up (DONE, another event) finds
// it as an awake session would. The worker holds wmu (so nothing else
// writes) and the parked connection (hibernate.Conn.Hold: input, the IDLE
// timeout or Shutdown that come meanwhile wake the session once the worker
// has released it, never during its write).

// pushScratch is a fan-out worker's buffers and the state of the push
// it runs: the session's wire.Writer writes through bw into out, whose
// bytes go to the socket at each Flush of the update (an EXISTS before
// the \Recent claim that reads the store, as an awake session sends it)
// and at the end.
type pushScratch struct {
	out []byte
	bw  *bufio.Writer

	pc      *hibernate.Conn
	sent    int   // out[:sent] is written
	blocked bool  // the socket took less than it was given
	werr    error // the socket's write failed
	max     int   // Options.directWriteMax
}

// maxKeptScratch is the largest output buffer a worker keeps between
// pushes.
const maxKeptScratch = 64 << 10

// send writes what is in out and not sent yet to the parked socket,
// unless it would block or failed already.
func (sc *pushScratch) send() {
	if sc.blocked || sc.werr != nil || sc.sent == len(sc.out) {
		return
	}
	p := sc.out[sc.sent:]
	if sc.max > 0 && sc.sent+len(p) > sc.max {
		p = p[:max(0, sc.max-sc.sent)]
		sc.blocked = true
	}
	n, err := sc.pc.Write(p)
	sc.sent += n
	if err != nil {
		sc.werr = err
	} else if n < len(p) {
		sc.blocked = true
	}
}

// directUpdates is the updater of a direct push: the session's, whose
// Flush sends what is written so far to the parked socket.
type directUpdates struct {
	updates
	sc *pushScratch
}

// Flush sends the responses written so far without blocking; what the
// socket does not take stays in out for the session (pushLocked).
func (u directUpdates) Flush() error {
	if err := u.sc.bw.Flush(); err != nil {
		return err
	}
	u.sc.send()
	return nil
}

// Write collects what bw flushes.
func (sc *pushScratch) Write(p []byte) (int, error) {
	sc.out = append(sc.out, p...)
	return len(p), nil
}

// newPushPool returns the Server's fan-out pool: one worker per core.
func newPushPool() *fanout.Pool[*pushScratch] {
	return fanout.New(runtime.GOMAXPROCS(0), func() *pushScratch {
		sc := &pushScratch{}
		sc.bw = bufio.NewWriterSize(sc, writeBufSize)
		return sc
	})
}

// pushHook is the subscription's hook while the session hibernates as
// pc: it submits the session to the fan-out pool, in its mailbox's group
// (the mailboxes take turns), or wakes it to send the updates itself if
// the pool is closed (Shutdown).
func (s *session) pushHook(pc *hibernate.Conn) func() {
	mailbox := uint64(s.sel.mb.ID)
	return func() {
		if !s.srv.push.Submit(mailbox, s) {
			pc.Wake(hibernate.Signaled)
		}
	}
}

// Deliver is the fan-out worker's job for a hibernating session. Two
// workers may run it for the same session at once (an event came while
// the first was at work): the second leaves a note (pushAgain) if it
// cannot have wmu, and whoever holds wmu runs again, or is a session
// goroutine that takes the events itself.
func (s *session) Deliver(sc *pushScratch) {
	s.pushAgain.Store(true)
	for s.pushAgain.Load() {
		if !s.wmu.TryLock() {
			return
		}
		s.pushAgain.Store(false)
		s.pushLocked(sc)
		s.wmu.Unlock()
	}
}

// directEvent reports whether a worker can apply ev to a hibernating
// session's view without more than an in-memory claim of \Recent: the
// message events only. Any other kind (a mailbox's change, and kinds
// added later) wakes the session, which knows what to do with it.
func directEvent(ev *notify.Event) bool {
	switch ev.Kind {
	case notify.Appended, notify.Expunged, notify.FlagsChanged:
		return true
	}
	return false
}

// pushLocked sends the session's pending events from a worker, or hands
// them to the session. The caller holds wmu.
func (s *session) pushLocked(sc *pushScratch) {
	pc := s.parked
	if pc == nil || s.sel == nil || !pc.Hold() {
		return // awake, or waking: it takes the events itself
	}
	defer pc.Release()
	if s.notif != nil {
		// NOTIFY may want more than the view's responses for its
		// selected mailbox (MessageNew's FETCH, RFC 5465 §5.2): the
		// session sends them itself.
		pc.Wake(hibernate.Signaled)
		return
	}
	events, ok := s.sel.sub.TakeIf(directEvent)
	if !ok {
		pc.Wake(hibernate.Signaled)
		return
	}
	if len(events) == 0 {
		return
	}
	sc.out, sc.sent, sc.blocked, sc.werr = sc.out[:0], 0, false, nil
	sc.pc, sc.max = pc, s.srv.opts.directWriteMax
	defer func() {
		sc.pc = nil
		if cap(sc.out) > maxKeptScratch {
			sc.out = nil // a rare large push: not kept by the worker for ever
		}
	}()
	sc.bw.Reset(sc)
	s.w.SetWriter(sc.bw)
	err := s.sel.applyTaken(s.ctx, s.srv.store, events, false, directUpdates{updates{s}, sc}, true)
	if ferr := sc.bw.Flush(); err == nil {
		err = ferr
	}
	s.w.SetWriter(nil)
	if err == nil {
		sc.send()
	}
	switch {
	case sc.werr != nil:
		// The client is gone or the connection broke: the session reads
		// and finds out, as it would in idleWait.
		s.log.Debug("direct push", "err", sc.werr)
		pc.Wake(hibernate.Readable)
	case err != nil:
		s.leave(sc.out[sc.sent:], err)
		pc.Wake(hibernate.Signaled)
	case sc.sent < len(sc.out):
		s.leave(sc.out[sc.sent:], nil)
		pc.Wake(hibernate.Signaled)
	}
}

// pushLeft is what a direct push hands to the woken session.
type pushLeft struct {
	unsent []byte // responses to write before anything else
	err    error  // the error the view's update ended in, for updateFailed
}

// leave hands unsent (copied) and err to the session, for when it wakes.
// The caller holds wmu.
func (s *session) leave(unsent []byte, err error) {
	if s.pushLeft == nil {
		s.pushLeft = &pushLeft{}
	}
	s.pushLeft.unsent = append(s.pushLeft.unsent, unsent...)
	if s.pushLeft.err == nil {
		s.pushLeft.err = err
	}
}
