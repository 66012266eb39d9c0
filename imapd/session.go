package imapd

import (
	"context"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"

	"pushmail/mailstore"
)

// session is one IMAP connection's state. imapserver calls its methods
// one command at a time from the connection's goroutine, except Idle,
// which runs on a goroutine of its own while the connection goroutine
// waits for DONE (and Close, which can then overlap a finishing Idle: it
// touches only what is safe for concurrent use).
type session struct {
	srv    *Server
	id     uint64 // connection id, in every log record
	conn   *imapserver.Conn
	ctx    context.Context // derived from the Server's; cancelled by Close
	cancel context.CancelFunc
	ip     string
	log    *slog.Logger

	user *mailstore.User // nil until Login succeeds
	sel  *selected       // nil unless a mailbox is selected

	// idleMu is held while Idle runs. imapserver does not always wait for
	// Idle to return before reading the next command (a line other than
	// DONE ends IDLE with BAD at once), so every method that touches sel
	// first waits for it (waitIdle).
	idleMu sync.Mutex

	closeOnce sync.Once

	// authed is set by a successful Login; the login timer reads it.
	authed     atomic.Bool
	loginTimer *time.Timer   // see startLoginTimer
	loginDone  chan struct{} // closed when the timer's function returns

	start   time.Time     // for the session's log line
	counter *countingConn // bytes and lines, for the log line; may be nil
}

// waitIdle returns once no Idle is running.
func (s *session) waitIdle() {
	s.idleMu.Lock()
	s.idleMu.Unlock() // nothing to guard: only waiting for Idle to release it
}

// selected waits for a finishing Idle and returns the selected mailbox;
// imapserver calls the selected-state methods only with one.
func (s *session) selected() *selected {
	s.waitIdle()
	return s.sel
}

var (
	_ imapserver.SessionIMAP4rev2   = (*session)(nil)
	_ imapserver.SessionAppendLimit = (*session)(nil)
)

// Close ends the session: imapserver calls it once the connection is gone.
func (s *session) Close() error {
	s.closeOnce.Do(func() {
		s.cancel()
		s.stopLoginTimer()
		// s.sel itself is left alone: an Idle still returning may read it.
		if sel := s.sel; sel != nil {
			sel.sub.Close()
		}
		s.srv.endSession(s)
		s.srv.opts.Metrics.sessionClosed()
		s.logSession()
	})
	return nil
}

// logSession writes the session's one line: who, how long, how much.
// Never passwords or message contents.
func (s *session) logSession() {
	// The user, once logged in, is already on s.log.
	args := []any{"duration", time.Since(s.start).Round(time.Millisecond)}
	if c := s.counter; c != nil {
		args = append(args, "lines_in", c.lines.Load(), "bytes_in", c.in.Load(), "bytes_out", c.out.Load())
	}
	s.log.Info("imap session", args...)
}

// AppendLimit is the largest APPEND literal accepted (RFC 7889).
func (s *session) AppendLimit() uint32 { return s.srv.opts.AppendLimit }

// Namespace reports one personal namespace, "" with "/" (RFC 2342).
func (s *session) Namespace() (*imap.NamespaceData, error) {
	return &imap.NamespaceData{
		Personal: []imap.NamespaceDescriptor{{Prefix: "", Delim: rune(mailstore.Separator[0])}},
	}, nil
}

// origin is the ID the session's store writes carry as their events'
// Origin: its subscription's, or 0 when nothing is selected.
func (s *session) origin() uint64 {
	if s.selected() == nil {
		return 0
	}
	return s.sel.sub.ID()
}
