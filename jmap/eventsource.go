package jmap

import (
	"fmt"
	"io"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"pushmail/mailstore"
	"pushmail/notify"
)

// The types a StateChange can name (RFC 8620 §7.1; RFC 8621 §1.5 adds
// EmailDelivery, which changes only when new mail arrives).
var pushTypes = []string{"Mailbox", "Email", "Thread", "EmailDelivery"}

// streamState is what an event stream last told its client.
type streamState struct {
	email, mailbox, delivery uint64
}

// eventID encodes the states into the SSE event id, so that a client
// reconnecting with Last-Event-ID is told at once of what it missed.
func (st streamState) eventID() string {
	return fmt.Sprintf("%d-%d-%d", st.email, st.mailbox, st.delivery)
}

func parseEventID(s string) (streamState, bool) {
	parts := strings.Split(s, "-")
	if len(parts) != 3 {
		return streamState{}, false
	}
	var v [3]uint64
	for i, p := range parts {
		n, err := strconv.ParseUint(p, 10, 64)
		if err != nil {
			return streamState{}, false
		}
		v[i] = n
	}
	return streamState{v[0], v[1], v[2]}, true
}

// serveEvents answers the event source (RFC 8620 §7.3): a
// text/event-stream of "state" events, each a StateChange for the
// requested types, sent when a commit changes the account (woken by
// the account's notify subscription, never by a timer), "ping" events
// every ping seconds, and with closeafter=state the response ends after
// the first state event (long polling).
//
// Without Last-Event-ID the stream starts from the states at connect
// and reports the next change; with one, a state that differs from it
// is reported at once, so a client that reconnects (or long-polls
// again) misses nothing.
func (s *Server) serveEvents(w http.ResponseWriter, r *http.Request, u *user) {
	q := r.URL.Query()
	var types []string
	switch t := q.Get("types"); t {
	case "*", "":
		types = pushTypes
	default:
		for _, name := range strings.Split(t, ",") {
			if !slices.Contains(pushTypes, name) {
				problem(w, http.StatusBadRequest, "about:blank", "Unknown type "+strconv.Quote(name), nil)
				return
			}
			types = append(types, name)
		}
	}
	closeAfter := false
	switch q.Get("closeafter") {
	case "state":
		closeAfter = true
	case "no", "":
	default:
		problem(w, http.StatusBadRequest, "about:blank", "closeafter must be state or no", nil)
		return
	}
	var ping time.Duration
	if p := q.Get("ping"); p != "" {
		n, err := strconv.ParseUint(p, 10, 32)
		if err != nil {
			problem(w, http.StatusBadRequest, "about:blank", "ping must be a number of seconds", nil)
			return
		}
		if n > 0 {
			// RFC 8620 §7.3: the server MAY raise a too-small interval;
			// the ping event says which one it uses.
			ping = max(time.Duration(n)*time.Second, s.opts.PingMin)
		}
	}
	mask := maskOf(types)
	flusher, ok := w.(http.Flusher)
	if !ok {
		problem(w, http.StatusInternalServerError, "about:blank", "Streaming unsupported", nil)
		return
	}

	f, err := s.acquireFeed(r.Context(), u.ID)
	if err != nil {
		s.log.Error("event source: read state", "user", u.Address, "err", err)
		problem(w, http.StatusInternalServerError, "about:blank", "Server error", nil)
		return
	}
	cur, changedCh, _ := f.current()
	last := cur
	if id := r.Header.Get("Last-Event-ID"); id != "" {
		if prev, ok := parseEventID(id); ok {
			last = prev
		}
	}
	// Plain HTTP/1.x: the stream leaves net/http and parks between
	// events (parked.go), and the feed goes with it.
	if s.parkable(r) && s.serveParked(w, f, mask, last, ping, closeAfter) {
		return
	}
	defer s.releaseFeed(f)

	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-cache")
	w.Header().Set("X-Accel-Buffering", "no") // nginx: do not buffer the stream
	w.WriteHeader(http.StatusOK)
	// A comment line first (ignored by every SSE parser): clients and
	// proxies that hold back headers until body bytes arrive see the
	// stream open now, and a script can wait for it before it acts.
	if _, err := io.WriteString(w, ": open\n\n"); err != nil {
		return
	}
	flusher.Flush()

	var tick <-chan time.Time
	if ping > 0 {
		t := time.NewTicker(ping)
		defer t.Stop()
		tick = t.C
	}
	for {
		if ev := f.event(mask, last, cur); ev != nil {
			if _, err := w.Write(ev); err != nil {
				return // the client went away
			}
			flusher.Flush()
			last = cur
			if closeAfter {
				return
			}
		}
		select {
		case <-changedCh:
			var ok bool
			if cur, changedCh, ok = f.current(); !ok {
				return // the store failed; the feed logged it
			}
		case <-tick:
			if _, err := fmt.Fprintf(w, "event: ping\ndata: {\"interval\":%d}\n\n", int(ping/time.Second)); err != nil {
				return
			}
			flusher.Flush()
		case <-r.Context().Done():
			return
		case <-s.ctx.Done():
			return
		}
	}
}

// delivered reports whether evs add mail (RFC 8621 §1.5: EmailDelivery
// changes "when a new Email is delivered", not for other changes).
func delivered(evs []notify.Event) bool {
	for _, ev := range evs {
		if ev.Kind == notify.Appended {
			return true
		}
	}
	return false
}

// stateChange is the StateChange object (RFC 8620 §7.1) for the types
// that differ between last and cur, nil when none does.
func stateChange(u mailstore.UserID, types typeMask, last, cur streamState) map[string]any {
	changed := map[string]string{}
	for _, t := range pushTypes {
		if !types.has(t) {
			continue
		}
		switch {
		case t == "Email" && cur.email != last.email, t == "Thread" && cur.email != last.email:
			changed[t] = stateString(cur.email)
		case t == "Mailbox" && cur.mailbox != last.mailbox:
			changed[t] = stateString(cur.mailbox)
		case t == "EmailDelivery" && cur.delivery != last.delivery:
			changed[t] = stateString(cur.delivery)
		}
	}
	if len(changed) == 0 {
		return nil
	}
	return map[string]any{"@type": "StateChange", "changed": map[string]any{accountID(u): changed}}
}
