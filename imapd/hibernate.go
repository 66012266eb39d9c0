package imapd

import (
	"bufio"
	"errors"
	"net"

	"pushmail/imapd/wire"
	"pushmail/internal/hibernate"
)

// Hibernation (Options.Hibernate, issue 15): a session in IDLE with
// nothing to send gives its buffers back to the Server's pools, parks its
// socket in the Server's readiness loop (internal/hibernate), hooks its
// subscriptions (notify.Subscription.Hook: the selected mailbox's and
// NOTIFY's, whose goroutine IDLE has stopped) and lets its goroutine end. Its
// state stays as it was (the view, the subscription, the IDLE's tag and
// deadline); it costs no goroutine and no buffer.
//
// Whatever wakes it, it wakes on a new goroutine (resume) in the IDLE it
// slept in, holding wmu, with fresh buffers:
//   - an event for NOTIFY, or one for its mailbox that direct push
//     (pushdirect.go) hands over, or every event without direct push or
//     with NOTIFY set: the updates are sent as in
//     idleWait (after the bytes a direct push left, pushLeft), and it
//     sleeps again;
//   - input, a hang-up, IdleTimeout or Shutdown: it stays awake in
//     idleWait, which reads DONE (in as many pieces as it comes), or
//     finds the connection closed, the deadline passed (the socket's read
//     deadline, set when IDLE began, is the same as the loop's) or the
//     context done, exactly as a session that never slept;
//   - bye (Shutdown, an eviction, the login timer): it takes the session
//     out of the loop itself under wmu before writing the BYE and closing
//     the socket, so that no socket is closed while parked.
//
// No wake-up is lost in the hand-overs: the loop's registration is level
// triggered (input that came before it counts), Hook passes on a wake-up
// already pending, and Hook(nil) leaves one in Ready for idleWait; a
// NOTIFY watch goroutine stopped by the IDLE after it took a wake-up
// hands it to the parked session (notify.go watch). The
// session parks only with nothing buffered in br, so the socket holds all
// the input there is; a TLS session parks only when its tls.Conn holds no
// input either (tlspark.go), and wakes for every event.

// errParked is idle's result when the session hibernated: its goroutine
// must leave it.
var errParked = errors.New("imapd: session hibernated")

// hibernate parks the session if it can: Options.Hibernate, a TCP
// connection, nothing buffered, not ending. The caller holds wmu, in IDLE,
// with everything flushed; on true it must return without touching the
// session again once wmu is released.
func (s *session) hibernate() bool {
	if s.srv.hib == nil || s.byed || s.ctx.Err() != nil || s.br != nil && s.br.Buffered() > 0 || s.bw.Buffered() > 0 || !s.tlsHoldsNothing() {
		return false
	}
	sock := s.socket()
	if sock == nil {
		return false
	}
	pc, err := s.srv.hib.Park(sock, s.idleUntil, s.wake)
	if err != nil {
		if !errors.Is(err, hibernate.ErrClosed) && !errors.Is(err, hibernate.ErrUnsupported) {
			s.log.Warn("hibernate: cannot park the session", "err", err)
		}
		return false
	}
	s.parked = pc
	s.releaseBuffers()
	// Last: an event already pending wakes the session at once, on a
	// goroutine that waits for wmu.
	if s.sel != nil {
		hook := func() { pc.Wake(hibernate.Signaled) }
		if s.srv.push != nil && s.notif == nil && !s.isTLS() {
			hook = s.pushHook(pc) // pushdirect.go
		}
		s.sel.sub.Hook(hook)
	}
	if s.notif != nil {
		// NOTIFY's events too; its watch goroutine is stopped for the
		// IDLE (notify.go).
		s.notif.sub.Hook(func() { pc.Wake(hibernate.Signaled) })
	}
	return true
}

// socket returns the TCP connection under a session, or nil:
// countingConn and timeoutConn hold no bytes of their own, TLS's
// recordConn says when it does (tlspark.go); COMPRESS (whose
// decompressor may hold input, compress.go) and other wrappers (the
// PROXY protocol's, which may hold bytes read with its header) do not
// hibernate.
func (s *session) socket() *net.TCPConn {
	if s.compressed() {
		return nil
	}
	c := connCounter(s.raw)
	if c == nil {
		return nil
	}
	t, ok := c.Conn.(*timeoutConn) // as limitListener accepts
	if !ok {
		return nil
	}
	tc, _ := t.Conn.(*net.TCPConn)
	return tc
}

// wake is the loop's wake function: it hands the session to a goroutine
// of its own. It never blocks; it runs on the loop's goroutine, a timer's,
// the event publisher's or bye's.
func (s *session) wake(why hibernate.Reason) {
	s.srv.conns.Go(func() { s.resume(why) })
}

// resume runs a woken session: the rest of its IDLE, then its commands,
// until it hibernates again or ends.
func (s *session) resume(why hibernate.Reason) {
	switch s.resumeIdle(why) {
	case stepParked:
		return
	case stepNext:
		if s.run() {
			return
		}
	}
	s.Close()
}

// resumeIdle carries on with the IDLE the session slept in.
func (s *session) resumeIdle(why hibernate.Reason) nextStep {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.unparkLocked(why)
	err := s.idleAwake(why)
	if err == errParked {
		return stepParked
	}
	s.srv.opts.Metrics.idleEnded()
	s.takeReader() // for the next command
	return s.finish("IDLE", false, err)
}

// idleAwake is what idle does after it woke for why: only what it writes
// needs a buffer, unless it stays awake. The caller holds wmu.
func (s *session) idleAwake(why hibernate.Reason) error {
	if s.byed {
		return nil // bye or Close: the session ends
	}
	if left := s.pushLeft; left != nil && left.err != nil {
		// A direct push failed half-way (pushdirect.go): what update
		// would have done with the error.
		perr := left.err
		s.pushLeft = nil
		err := s.updateFailed(perr)
		if err == nil {
			err = s.flush()
		}
		if err != nil || s.byed {
			if cerr := s.raw.Close(); cerr != nil && !s.byed {
				s.log.Debug("close", "err", cerr)
			}
			return err
		}
	}
	if why == hibernate.Signaled && s.ctx.Err() == nil {
		// idleWait's ready case, then back to sleep. The wake-up that
		// Hook(nil) left in Ready goes first, before Take: Hook would
		// pass it on, and the session would wake again for nothing, and
		// again; an event after Take leaves a new one, as it should.
		s.drainReady()
		err := s.update(updates{s}, true)
		if err == nil {
			err = s.flush()
		}
		if err != nil || s.byed {
			if cerr := s.raw.Close(); cerr != nil && !s.byed {
				s.log.Debug("close", "err", cerr)
			}
			return err
		}
		if s.hibernate() {
			return errParked
		}
	}
	s.takeReader()
	return s.idleWait()
}

// drainReady empties the subscription's Ready, before a Take that
// covers whatever it stood for.
func (s *session) drainReady() {
	if s.sel != nil {
		select {
		case <-s.sel.sub.Ready():
		default:
		}
	}
	if s.notif != nil {
		select {
		case <-s.notif.sub.Ready():
		default:
		}
	}
}

// unparkLocked takes a hibernating session out of the loop (woken for
// why, if it had not woken yet) and gives it a writer again; nothing if
// it is not parked. It gets a reader only if it stays awake: when ten
// thousand sessions wake for one delivery, they need 4 KiB each, not 8.
// The caller holds wmu.
func (s *session) unparkLocked(why hibernate.Reason) {
	pc := s.parked
	if pc == nil {
		return
	}
	// Starts resume on another goroutine unless a wake-up has already:
	// either way exactly one goroutine runs the session from here on.
	pc.Wake(why)
	s.parked = nil
	if s.sel != nil {
		s.sel.sub.Hook(nil)
	}
	if s.notif != nil {
		s.notif.sub.Hook(nil)
	}
	s.takeWriter()
	if left := s.pushLeft; left != nil {
		// What a direct push could not write goes first
		// (pushdirect.go); the flush that sends it reports its error.
		s.w.Raw(string(left.unsent))
		left.unsent = nil
		if left.err == nil {
			s.pushLeft = nil
		}
	}
}

// takeReader gives the session a reader from the pool, and a parser on
// it, unless it has them.
func (s *session) takeReader() {
	if s.br != nil {
		return
	}
	s.br = s.srv.readers.Get().(*bufio.Reader)
	s.br.Reset(s.input())
	if s.p == nil {
		s.p = wire.NewParser(s.br, wire.Options{
			Limits:    s.limits(),
			OnLiteral: s.onLiteral,
			Grow:      s.growMessage,
			UTF8:      s.rev2 || s.utf8,
		})
		return
	}
	s.p.SetReader(s.br)
}

// takeWriter gives the session a writer from the pool, unless it has one.
func (s *session) takeWriter() {
	if s.bw != nil {
		return
	}
	s.bw = s.srv.writers.Get().(*bufio.Writer)
	s.bw.Reset(s.nc)
	s.w.SetWriter(s.bw)
}

// releaseBuffers gives the session's reader and writer back to the
// pools, and drops its parser; they must hold nothing. The caller holds
// wmu.
func (s *session) releaseBuffers() {
	if s.br != nil {
		s.br.Reset(nil)
		s.srv.readers.Put(s.br)
		s.br = nil
		// Between commands the parser holds nothing but its settings,
		// which takeReader knows: a new one costs less than keeping it.
		s.p = nil
	}
	if s.bw != nil {
		s.bw.Reset(nil)
		s.srv.writers.Put(s.bw)
		s.bw = nil
		s.w.SetWriter(nil)
	}
}
