package imapd

import (
	"bufio"
	"errors"
	"net"

	"pushmail/internal/hibernate"
)

// Hibernation (Options.Hibernate, issue 15): a session in IDLE with
// nothing to send gives its buffers back to the Server's pools, parks its
// socket in the Server's readiness loop (internal/hibernate), hooks its
// subscription (notify.Subscription.Hook) and lets its goroutine end. Its
// state stays as it was (the view, the subscription, the IDLE's tag and
// deadline); it costs no goroutine and no buffer.
//
// Whatever wakes it, it wakes on a new goroutine (resume) in the IDLE it
// slept in, holding wmu, with fresh buffers:
//   - an event for its mailbox: the updates are sent as in idleWait, and
//     it sleeps again;
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
// already pending, and Hook(nil) leaves one in Ready for idleWait. The
// session parks only with nothing buffered in br, so the socket holds all
// the input there is. TLS sessions never park: tls.Conn may hold
// decrypted bytes that the socket no longer shows.

// errParked is idle's result when the session hibernated: its goroutine
// must leave it.
var errParked = errors.New("imapd: session hibernated")

// hibernate parks the session if it can: Options.Hibernate, a plain TCP
// connection, nothing buffered, not ending. The caller holds wmu, in IDLE,
// with everything flushed; on true it must return without touching the
// session again once wmu is released.
func (s *session) hibernate() bool {
	if s.srv.hib == nil || s.byed || s.ctx.Err() != nil || s.br.Buffered() > 0 || s.bw.Buffered() > 0 {
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
	if s.sel != nil {
		// Last: an event already pending wakes the session at once, on
		// a goroutine that waits for wmu.
		s.sel.sub.Hook(func() { pc.Wake(hibernate.Signaled) })
	}
	return true
}

// socket returns the TCP connection under a plaintext session, or nil:
// countingConn and timeoutConn hold no bytes of their own; TLS and other
// wrappers (the PROXY protocol's, which may hold bytes read
// with its header) do not hibernate.
func (s *session) socket() *net.TCPConn {
	if s.isTLS() {
		return nil
	}
	c, ok := s.raw.(*countingConn)
	if !ok {
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
func (s *session) resumeIdle(why hibernate.Reason) step {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	s.unparkLocked(why)
	err := s.idleAwake(why)
	if err == errParked {
		return stepParked
	}
	s.srv.opts.Metrics.idleEnded()
	return s.finish("IDLE", false, err)
}

// idleAwake is what idle does after it woke for why. The caller holds
// wmu.
func (s *session) idleAwake(why hibernate.Reason) error {
	if s.byed {
		return nil // bye or Close: the session ends
	}
	if why == hibernate.Signaled && s.ctx.Err() == nil {
		// idleWait's ready case, then back to sleep.
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
	return s.idleWait()
}

// unparkLocked takes a hibernating session out of the loop (woken for
// why, if it had not woken yet) and gives it buffers again; nothing if it
// is not parked. The caller holds wmu.
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
	s.takeBuffers()
}

// takeBuffers gives the session a reader and a writer from the pools.
func (s *session) takeBuffers() {
	s.br = s.srv.readers.Get().(*bufio.Reader)
	s.br.Reset(s.nc)
	s.p.SetReader(s.br)
	s.bw = s.srv.writers.Get().(*bufio.Writer)
	s.bw.Reset(s.nc)
	s.w.SetWriter(s.bw)
}

// releaseBuffers gives the session's reader and writer back to the
// pools; they must hold nothing. The caller holds wmu.
func (s *session) releaseBuffers() {
	if s.br != nil {
		s.br.Reset(nil)
		s.srv.readers.Put(s.br)
		s.br = nil
		s.p.SetReader(nil)
	}
	if s.bw != nil {
		s.bw.Reset(nil)
		s.srv.writers.Put(s.bw)
		s.bw = nil
		s.w.SetWriter(nil)
	}
}
