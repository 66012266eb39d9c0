package imapd

import (
	"context"
	"log/slog"
	"slices"
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
	cid    uint64
	remote string
	user   string      // "" until With("user", …)
	extra  []slog.Attr // any other attributes, after these
}

// newSessionLogger returns a logger that logs through parent's handler
// with the session's cid and remote address.
func newSessionLogger(parent *slog.Logger, cid uint64, remote string) *slog.Logger {
	return slog.New(&sessionHandler{parent: parent.Handler(), cid: cid, remote: remote})
}

// attrs returns the session's attributes, in the order they were added.
func (h *sessionHandler) attrs() []slog.Attr {
	a := make([]slog.Attr, 0, 3+len(h.extra))
	a = append(a, slog.Uint64("cid", h.cid), slog.String("remote", h.remote))
	if h.user != "" {
		a = append(a, slog.String("user", h.user))
	}
	return append(a, h.extra...)
}

// Enabled reports whether the server's handler handles level.
func (h *sessionHandler) Enabled(ctx context.Context, level slog.Level) bool {
	return h.parent.Enabled(ctx, level)
}

// Handle handles r with the session's attributes, first as WithAttrs
// would have put them.
func (h *sessionHandler) Handle(ctx context.Context, r slog.Record) error {
	return h.parent.WithAttrs(h.attrs()).Handle(ctx, r)
}

// WithAttrs adds attrs to the session's, without formatting them.
func (h *sessionHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	c := *h
	for _, a := range attrs {
		if a.Key == "user" && a.Value.Kind() == slog.KindString && c.user == "" && len(c.extra) == 0 {
			c.user = a.Value.String()
			continue
		}
		c.extra = append(slices.Clip(c.extra), a)
	}
	return &c
}

// WithGroup puts later attributes in a group: rare, so the session's
// attributes are formatted into the parent first.
func (h *sessionHandler) WithGroup(name string) slog.Handler {
	return h.parent.WithAttrs(h.attrs()).WithGroup(name)
}
