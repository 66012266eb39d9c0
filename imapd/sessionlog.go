package imapd

import (
	"context"
	"log/slog"
	"slices"
	"time"
)

// sessionHandler is a session's log handler: the server's, with the
// session's attributes (cid, remote, and user once logged in) added to
// each record as it is handled. slog's own WithAttrs formats them ahead
// into a copy of the handler's state, several hundred bytes per session
// held for the connection's life (issue 15: a hibernating session should
// cost almost nothing); records a session logs at an enabled level are
// few (its start and end, errors), so formatting then costs little.
type sessionHandler struct {
	parent slog.Handler
	attrs  []slog.Attr
}

// newSessionLogger returns a logger that logs through parent's handler
// with attrs (key, value pairs as slog.Logger.With takes them).
func newSessionLogger(parent *slog.Logger, args ...any) *slog.Logger {
	r := slog.NewRecord(time.Time{}, 0, "", 0)
	r.Add(args...)
	h := &sessionHandler{parent: parent.Handler(), attrs: make([]slog.Attr, 0, r.NumAttrs())}
	r.Attrs(func(a slog.Attr) bool {
		h.attrs = append(h.attrs, a)
		return true
	})
	return slog.New(h)
}

// Enabled reports whether the server's handler handles level.
func (h *sessionHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.parent.Enabled(ctx, level)
}

// Handle handles r with the session's attributes, first as WithAttrs
// would have put them.
func (h *sessionHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.parent.WithAttrs(h.attrs).Handle(ctx, r)
}

// WithAttrs adds attrs to the session's, without formatting them.
func (h *sessionHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return &sessionHandler{parent: h.parent, attrs: append(slices.Clip(h.attrs), attrs...)}
}

// WithGroup puts later attributes in a group: rare, so the session's
// attributes are formatted into the parent first.
func (h *sessionHandler) WithGroup(name string) slog.Handler {
	return h.parent.WithAttrs(h.attrs).WithGroup(name)
}
