package imapd

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"syscall"
)

// libraryLog is imapserver's Logger: it hands the library's messages to
// slog at WARN, except those about a connection that ended under a
// command. A client that hangs up, or one whose connection shutdown or a
// BYE closed while it was in IDLE, is routine: imapserver reports it as
// "handling IDLE command: … use of closed network connection", and at
// shutdown that would be one warning per client in IDLE (thousands).
// Those go to DEBUG.
type libraryLog struct{ log *slog.Logger }

// Printf logs one message of the library's.
func (l libraryLog) Printf(format string, args ...any) {
	level := slog.LevelWarn
	for _, a := range args {
		if err, ok := a.(error); ok && connectionGone(err) {
			level = slog.LevelDebug
		}
	}
	l.log.Log(context.Background(), level, fmt.Sprintf(format, args...))
}

// connectionGone reports whether err says the connection is no longer
// there: closed on our side, or by the peer.
func connectionGone(err error) bool {
	return errors.Is(err, net.ErrClosed) || errors.Is(err, io.EOF) ||
		errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, syscall.EPIPE)
}
