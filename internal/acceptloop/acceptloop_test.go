package acceptloop

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
)

// flakyListener fails its first Accepts with EMFILE, as a process out of
// file descriptors does, then accepts two connections, then reports
// itself closed.
type flakyListener struct {
	net.Listener
	fails    int
	accepted int
}

func (l *flakyListener) Accept() (net.Conn, error) {
	if l.fails > 0 {
		l.fails--
		return nil, &net.OpError{Op: "accept", Err: syscall.EMFILE}
	}
	if l.accepted == 2 {
		return nil, net.ErrClosed
	}
	l.accepted++
	c1, c2 := net.Pipe()
	c2.Close()
	return c1, nil
}

// Run rides out EMFILE, serves every connection, and ends with nil when
// the listener is closed.
func TestRunSurvivesEMFILE(t *testing.T) {
	l := &flakyListener{fails: 3}
	var served atomic.Int32
	err := Run(l, slog.New(slog.NewTextHandler(io.Discard, nil)), func() bool { return false }, func(nc net.Conn) {
		served.Add(1)
		nc.Close()
	})
	if err != nil || served.Load() != 2 {
		t.Errorf("Run() = %v after serving %d, want nil after 2", err, served.Load())
	}
}

// A failure that does not pass ends Run with that error, unless the
// server is shutting down.
func TestRunFailure(t *testing.T) {
	boom := errors.New("boom")
	l := failingListener{boom}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	if err := Run(l, logger, func() bool { return false }, func(net.Conn) {}); !errors.Is(err, boom) {
		t.Errorf("Run() = %v, want %v", err, boom)
	}
	if err := Run(l, logger, func() bool { return true }, func(net.Conn) {}); err != nil {
		t.Errorf("Run() while closed = %v, want nil", err)
	}
}

type failingListener struct{ err error }

func (l failingListener) Accept() (net.Conn, error) { return nil, l.err }
func (l failingListener) Close() error              { return nil }
func (l failingListener) Addr() net.Addr            { return &net.TCPAddr{} }
