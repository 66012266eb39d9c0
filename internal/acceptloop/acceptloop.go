// Package acceptloop is the accept loop that imapd and pop3d share: it
// hands each accepted connection to its server, and rides out Accept
// failures that pass (too many open files) instead of ending the server.
package acceptloop

import (
	"errors"
	"log/slog"
	"net"
	"time"
)

// Backoff bounds: after a temporary Accept failure the loop waits
// minBackoff, doubling each time it fails again, up to maxBackoff.
const (
	minBackoff = 5 * time.Millisecond
	maxBackoff = time.Second
)

// Run accepts connections from ln and calls serve with each, on Run's
// goroutine (serve starts the connection's own). It returns nil once ln
// is closed (net.ErrClosed) or closed reports true, the server's
// shutdown; it waits and goes on after a temporary failure (EMFILE and
// the like: connections must close first), logged at WARN; any other
// failure ends it with that error.
func Run(ln net.Listener, log *slog.Logger, closed func() bool, serve func(net.Conn)) error {
	var backoff time.Duration
	for {
		nc, err := ln.Accept()
		if err != nil {
			if closed() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			if temporary(err) {
				backoff = min(max(2*backoff, minBackoff), maxBackoff)
				log.Warn("accept", "err", err, "retry_in", backoff)
				time.Sleep(backoff)
				continue
			}
			return err
		}
		backoff = 0
		serve(nc)
	}
}

// temporary reports whether an Accept error may pass: a timeout, or one
// that says so (too many open files, a connection reset before it was
// accepted).
func temporary(err error) bool {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return true
	}
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}
