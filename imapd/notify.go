package imapd

import (
	"errors"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/imapd/wire"
	"pushmail/internal/hibernate"
	"pushmail/mailstore"
	"pushmail/notify"
)

// NOTIFY (RFC 5465): a session asks for events of mailboxes it has not
// selected, and hears them as unsolicited STATUS, LIST and METADATA
// responses, through one per-user subscription to the hub
// (notify.Hub.SubscribeUser) however many mailboxes it watches. The
// selected mailbox keeps its own subscription and view (view.go), as
// without NOTIFY; its MessageNew fetch attributes add a FETCH after
// EXISTS.
//
// Notifications go out as they happen, "even when no command is in
// progress" (RFC 5465 §1): between commands a goroutine (watch) sleeps on
// the subscription and writes under wmu; in IDLE, which stops it and
// starts a new one when it ends, idleWait sleeps on both subscriptions,
// and a hibernating IDLE (hibernate.go) hooks both, so a parked NOTIFY
// session costs no goroutine either. After every command, poll sends
// what is left. The selected mailbox's own updates go out between
// commands only if a selected filter asks for message events (§3.1:
// without one, the client wants none), and its EXPUNGEs only with
// "selected", not "selected-delayed" (§6.1).
//
// Falling behind: the subscription holds Options.NotifyQueue events; a
// session that lets more pile up (a client that neither sends commands
// nor IDLEs while its mailboxes change) loses them, and is told so with
// "* OK [NOTIFICATIONOVERFLOW]", after which NOTIFY is off, as after
// NOTIFY NONE (RFC 5465 §5.8).

// DefaultNotifyQueue is the default of Options.NotifyQueue.
const DefaultNotifyQueue = 1024

// notifyEvent is a set of the events of RFC 5465 §5 a filter asks for.
type notifyEvent uint16

const (
	evMessageNew notifyEvent = 1 << iota
	evMessageExpunge
	evFlagChange
	evMailboxName
	evSubscriptionChange
	evMailboxMetadataChange
	evServerMetadataChange

	// evMessage are the message events (§5.1-§5.3), the only ones the
	// selected filters take (§6.1).
	evMessage = evMessageNew | evMessageExpunge | evFlagChange
)

// supportedEvents are the events pushmail reports, by the name
// NOTIFY's BADEVENT lists them with (RFC 5465 §3.1). AnnotationChange
// (§5.1) is not: pushmail has no ANNOTATE (RFC 5257).
var supportedEvents = []struct {
	name string
	ev   notifyEvent
}{
	{"MessageNew", evMessageNew},
	{"MessageExpunge", evMessageExpunge},
	{"FlagChange", evFlagChange},
	{"MailboxName", evMailboxName},
	{"SubscriptionChange", evSubscriptionChange},
	{"MailboxMetadataChange", evMailboxMetadataChange},
	{"ServerMetadataChange", evServerMetadataChange},
}

// errBadEvent answers NOTIFY naming an event pushmail does not report:
// NO [BADEVENT (the supported events)] (RFC 5465 §3.1).
var errBadEvent = func() *imap.Error {
	names := make([]string, len(supportedEvents))
	for i, e := range supportedEvents {
		names[i] = e.name
	}
	return &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCode("BADEVENT (" + strings.Join(names, " ") + ")"),
		Text: "Unsupported event",
	}
}()

// notifyFilter is one event group for mailboxes other than the selected
// one.
type notifyFilter struct {
	kind   string   // "inboxes", "personal", "subscribed", "subtree", "mailboxes"
	names  []string // subtree and mailboxes
	events notifyEvent
}

// matches reports whether the mailbox name is one of the filter's.
func (f *notifyFilter) matches(name string, subscribed map[string]bool) bool {
	switch f.kind {
	case "personal":
		// The user's only namespace is personal (NAMESPACE).
		return true
	case "inboxes":
		// RFC 5465 §6.3: mailboxes an MDA delivers to; pushmail's only
		// deliveries go to INBOX (no Sieve).
		return name == "INBOX"
	case "subscribed":
		return subscribed[name]
	case "subtree":
		return slices.ContainsFunc(f.names, func(root string) bool {
			return name == root || strings.HasPrefix(name, root+mailstore.Separator)
		})
	case "mailboxes":
		return slices.Contains(f.names, name)
	}
	return false
}

// notifier is a session's NOTIFY SET.
type notifier struct {
	sub *notify.Subscription // SubscribeUser's, for the session's user
	// filters are the groups for mailboxes not selected, in the
	// command's order: the first that names a mailbox decides its
	// events (RFC 5465 §6 leaves overlaps to the server).
	filters []notifyFilter
	// selected: the events asked for the selected mailbox (the selected
	// or selected-delayed filter), and MessageNew's fetch attributes.
	selected notifyEvent
	fetch    []wire.FetchAttr
	// immediate: the selected filter is "selected", not
	// "selected-delayed": expunges need not wait for a command that
	// allows them (RFC 5465 §6.1).
	immediate bool
	// subscribed holds the subscribed names while a filter is
	// "subscribed", kept up to date from SubscriptionChanged and
	// MailboxChanged events.
	subscribed map[string]bool
	// watchStop, while a watch goroutine runs (between commands), is
	// closed to stop it: IDLE, which watches itself, or the end of the
	// notifier. nil while none runs. wmu.
	watchStop chan struct{}
}

// eventsFor returns the events asked for the mailbox name, not selected.
func (n *notifier) eventsFor(name string) notifyEvent {
	for i := range n.filters {
		if n.filters[i].matches(name, n.subscribed) {
			return n.filters[i].events
		}
	}
	return 0
}

// anyEvents returns the events any non-selected filter asks for: for
// ServerMetadataChange, which names no mailbox.
func (n *notifier) anyEvents() notifyEvent {
	var all notifyEvent
	for _, f := range n.filters {
		all |= f.events
	}
	return all
}

// close stops the notifier's subscription and its watch goroutine.
// The caller holds wmu.
func (n *notifier) close() {
	n.sub.Close()
	n.stopWatch()
}

// stopWatch stops the watch goroutine, if one runs. The caller holds wmu.
func (n *notifier) stopWatch() {
	if n.watchStop != nil {
		close(n.watchStop)
		n.watchStop = nil
	}
}

// startWatch starts a watch goroutine for the session's notifier, unless
// it has none, one runs, or the session is ending. The caller holds wmu.
func (s *session) startWatch() {
	n := s.notif
	if n == nil || n.watchStop != nil || s.byed {
		return
	}
	stop := make(chan struct{})
	n.watchStop = stop
	// Owned by the Server's conns, which Shutdown waits for; it ends
	// with the session's context or when stop is closed.
	s.srv.conns.Go(func() { s.watch(n, stop) })
}

// notifyCommand answers NOTIFY (RFC 5465 §3.1).
func (s *session) notifyCommand(a *wire.Notify) error {
	if err := s.checkAccount(); err != nil {
		return err
	}
	if a.None {
		s.stopNotify()
		return nil
	}
	n, err := parseNotify(a)
	if err != nil {
		return err
	}
	for i := range n.fetch {
		// Fetching a section for a notification must not mark the
		// message \Seen behind the user's back: the client did not
		// read it. (RFC822 and RFC822.TEXT, which have no .PEEK form,
		// are refused by parseNotify.)
		n.fetch[i].Peek = true
	}
	// Subscribed before the subscriptions and the initial STATUS are
	// read from the store: a change in between is applied or announced
	// again, never lost.
	n.sub = s.srv.store.Hub().SubscribeUser(int64(s.user.ID), s.srv.opts.NotifyQueue)
	if n.subscribed != nil {
		subs, err := s.srv.store.Subscriptions(s.ctx, s.user.ID)
		if err != nil {
			n.sub.Close() // the NOTIFY before stays in force
			return s.reply(err, roleMailbox)
		}
		for _, name := range subs {
			n.subscribed[name] = true
		}
	}
	s.stopNotify()
	s.notif = n
	s.startWatch()
	if !a.Status {
		return nil
	}
	// RFC 5465 §3.1: STATUS sends the STATUS of every mailbox the
	// message events are asked for, the selected one excepted.
	mbs, err := s.srv.store.Mailboxes(s.ctx, s.user.ID)
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	for _, mb := range mbs {
		if s.sel != nil && mb.ID == s.sel.mb.ID || n.eventsFor(mb.Name)&evMessage == 0 {
			continue
		}
		st, err := s.srv.store.Status(s.ctx, mb.ID)
		if errors.Is(err, mailstore.ErrNoSuchMailbox) {
			continue // deleted since the list was read
		}
		if err != nil {
			return s.reply(err, roleMailbox)
		}
		if err := s.writeStatusOf(st, s.notifyStatusItems()); err != nil {
			return err
		}
	}
	return nil
}

// parseNotify checks NOTIFY SET's event groups against RFC 5465 §3.1
// and §5-§6 and builds the notifier, without its subscription.
func parseNotify(a *wire.Notify) (*notifier, error) {
	bad := func(text string) error {
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: text}
	}
	n := &notifier{}
	sawSelected := false
	for _, g := range a.Groups {
		var events notifyEvent
		for _, e := range g.Events {
			i := slices.IndexFunc(supportedEvents, func(s struct {
				name string
				ev   notifyEvent
			}) bool {
				return s.name == e.Name
			})
			if i < 0 {
				// RFC 5465 §3.1: an event the server does not support
				// (AnnotationChange without ANNOTATE, an extension's)
				// is NO [BADEVENT].
				return nil, errBadEvent
			}
			events |= supportedEvents[i].ev
			if e.Fetch != nil {
				if g.Filter != "selected" && g.Filter != "selected-delayed" {
					// §5.2: the attributes describe the FETCH that
					// follows EXISTS, which only the selected mailbox
					// has; other mailboxes get STATUS.
					return nil, bad("MessageNew fetch attributes apply to the selected mailbox only")
				}
				for _, at := range e.Fetch {
					if at.Kind == wire.FetchRFC822 || at.Kind == wire.FetchRFC822Text {
						return nil, bad("Use BODY.PEEK in NOTIFY's fetch attributes")
					}
				}
				n.fetch = e.Fetch
			}
		}
		// RFC 5465 §5: "If one of MessageNew or MessageExpunge is
		// specified, then both events MUST be specified", and
		// FlagChange needs both, "Otherwise, the server MUST respond
		// with the tagged BAD response".
		if (events&evMessageNew != 0) != (events&evMessageExpunge != 0) {
			return nil, bad("MessageNew and MessageExpunge must be asked for together")
		}
		if events&evFlagChange != 0 && events&evMessageNew == 0 {
			return nil, bad("FlagChange needs MessageNew and MessageExpunge")
		}
		switch g.Filter {
		case "selected", "selected-delayed":
			// §6.1: at most one of them, and "It is an error to
			// specify other types of events" with them.
			if sawSelected {
				return nil, bad("Only one selected or selected-delayed filter")
			}
			sawSelected = true
			if events&^evMessage != 0 {
				return nil, bad("Only message events for the selected mailbox")
			}
			n.selected = events
			n.immediate = g.Filter == "selected"
		default:
			f := notifyFilter{kind: g.Filter, events: events}
			for _, name := range g.Mailboxes {
				if strings.EqualFold(name, "INBOX") {
					name = "INBOX"
				}
				f.names = append(f.names, strings.TrimSuffix(name, mailstore.Separator))
			}
			if f.kind == "subscribed" && n.subscribed == nil {
				n.subscribed = map[string]bool{}
			}
			n.filters = append(n.filters, f)
		}
	}
	if n.selected&evMessageNew == 0 {
		n.fetch = nil
	}
	return n, nil
}

// stopNotify ends the session's NOTIFY, if set: NOTIFY NONE, a new
// NOTIFY SET, an overflow, the end of the session.
func (s *session) stopNotify() {
	if s.notif == nil {
		return
	}
	s.notif.close()
	s.notif = nil
}

// notifyStatusItems are the items of a NOTIFY STATUS response, one set
// for every event: RFC 5465 §3.1 asks MESSAGES, UIDNEXT and UIDVALIDITY
// of NOTIFY SET STATUS, §5.2 and §5.3 UIDNEXT and MESSAGES for new and
// expunged messages, §5.1 UIDVALIDITY (and HIGHESTMODSEQ) for flag
// changes; UNSEEN is what a client shows; HIGHESTMODSEQ "MUST be
// included" once CONDSTORE is enabled (§5.2, RFC 7162 §3.1.6).
func (s *session) notifyStatusItems() []wire.StatusItem {
	items := []wire.StatusItem{wire.StatusMessages, wire.StatusUIDNext, wire.StatusUIDValidity, wire.StatusUnseen}
	if s.condstore {
		items = append(items, wire.StatusHighestModSeq)
	}
	return items
}

// notifyUpdate writes what the NOTIFY subscription has gathered since
// the last call: one STATUS per changed mailbox (however many events it
// had: the client wants the newest state), LIST for names and
// subscriptions, METADATA for entries. The caller holds wmu.
func (s *session) notifyUpdate() error {
	n := s.notif
	if n == nil {
		return nil
	}
	events, resync := n.sub.Take()
	if resync {
		// RFC 5465 §5.8: events were lost; say so, and stop as if
		// NOTIFY NONE: the client decides how to catch up.
		s.stopNotify()
		s.w.Untagged(wire.OK, wire.Code{Name: "NOTIFICATIONOVERFLOW"}, "Too many notifications pending; NOTIFY is off")
		return s.w.Err()
	}
	// The mailboxes whose STATUS to send, in event order, with the
	// kinds of their events and the commit time of the first.
	type change struct {
		id        int64
		kinds     notifyEvent
		committed time.Time
	}
	var changed []change
	for i := range events {
		ev := &events[i]
		switch ev.Kind {
		case notify.Appended, notify.Expunged, notify.FlagsChanged:
			if s.sel != nil && ev.Mailbox == int64(s.sel.mb.ID) {
				continue // the view's (view.go)
			}
			if ev.Origin != 0 && ev.Origin == s.origin() {
				// RFC 5465 §5: "The server SHOULD omit notifying the
				// client if the event is caused by this client" (its
				// COPY or MOVE into another mailbox, here).
				continue
			}
			j := slices.IndexFunc(changed, func(c change) bool { return c.id == ev.Mailbox })
			if j < 0 {
				j = len(changed)
				changed = append(changed, change{id: ev.Mailbox, committed: ev.Committed})
			}
			changed[j].kinds |= messageEventOf(ev.Kind)
		case notify.MailboxChanged:
			if err := s.notifyMailboxName(ev); err != nil {
				return err
			}
		case notify.SubscriptionChanged:
			if err := s.notifySubscription(ev); err != nil {
				return err
			}
		case notify.MetadataChanged:
			if err := s.notifyMetadata(ev); err != nil {
				return err
			}
		}
	}
	for _, c := range changed {
		st, err := s.srv.store.Status(s.ctx, mailstore.MailboxID(c.id))
		if errors.Is(err, mailstore.ErrNoSuchMailbox) {
			continue // deleted since: its LIST (\NonExistent) says so
		}
		if err != nil {
			return s.reply(err, roleMailbox)
		}
		if st.User != s.user.ID || n.eventsFor(st.Name)&c.kinds == 0 {
			continue
		}
		if err := s.writeStatusOf(st, s.notifyStatusItems()); err != nil {
			return err
		}
		s.srv.opts.Metrics.pushed("status", c.committed)
	}
	return s.w.Err()
}

// messageEventOf returns the NOTIFY event of a message event's kind.
func messageEventOf(k notify.Kind) notifyEvent {
	switch k {
	case notify.Appended:
		return evMessageNew
	case notify.Expunged:
		return evMessageExpunge
	case notify.FlagsChanged:
		return evFlagChange
	}
	return 0
}

// notifyMailboxName writes the LIST of a mailbox created, deleted or
// renamed (RFC 5465 §5.4): its attributes as LIST would give them now
// (\HasChildren or \HasNoChildren, as §5.4 asks; \Subscribed), a
// deleted one with \NonExistent, a renamed one with its OLDNAME (RFC 5258
// §3.2's extended data). The subscribed names follow a rename, as the
// store's do.
func (s *session) notifyMailboxName(ev *notify.Event) error {
	n := s.notif
	if ev.OldName != "" && ev.Name != "" && n.subscribed != nil && n.subscribed[ev.OldName] {
		delete(n.subscribed, ev.OldName)
		n.subscribed[ev.Name] = true
	}
	if ev.Name == "" && ev.OldName == "" {
		return nil // the account was deleted: the session ends at its next look
	}
	if (n.eventsFor(ev.Name)|n.eventsFor(ev.OldName))&evMailboxName == 0 {
		return nil
	}
	name := ev.Name
	if name == "" {
		name = ev.OldName
	}
	attrs, err := s.notifyListAttrs(name)
	if err != nil {
		return err
	}
	if ev.Name == "" && !slices.Contains(attrs, `\NonExistent`) {
		// §5.4: a deleted mailbox "MUST" be \NonExistent, even where
		// mailboxes below it leave an implied parent (\Noselect).
		attrs = slices.DeleteFunc(attrs, func(a string) bool { return a == `\Noselect` })
		attrs = append([]string{`\NonExistent`}, attrs...)
	}
	w := s.w
	w.Raw("* LIST (").Raw(strings.Join(attrs, " ")).Raw(`) "/" `).Mailbox(name)
	if ev.Name != "" && ev.OldName != "" {
		w.Raw(` ("OLDNAME" (`).Mailbox(ev.OldName).Raw("))")
	}
	w.CRLF()
	s.srv.opts.Metrics.pushed("list", ev.Committed)
	return w.Err()
}

// notifyListAttrs returns the attributes LIST (RETURN (SUBSCRIBED))
// gives name now: RFC 5465 §5.5 wants them "accurately computed".
func (s *session) notifyListAttrs(name string) ([]string, error) {
	mbs, err := s.srv.store.Mailboxes(s.ctx, s.user.ID)
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	subs, err := s.srv.store.Subscriptions(s.ctx, s.user.ID)
	if err != nil {
		return nil, s.reply(err, roleMailbox)
	}
	d, _ := newMailboxTree(mbs, subs, false).listData(name, &imap.ListOptions{ReturnSubscribed: true}, false, false)
	return d.attrs, nil
}

// notifySubscription writes the LIST of a name subscribed or
// unsubscribed (RFC 5465 §5.5), with \Subscribed if it now is.
func (s *session) notifySubscription(ev *notify.Event) error {
	n := s.notif
	// Matched before and after the change: a "subscribed" filter names
	// a name being unsubscribed until it is.
	events := n.eventsFor(ev.Name)
	if n.subscribed != nil {
		if ev.Subscribed {
			n.subscribed[ev.Name] = true
		} else {
			delete(n.subscribed, ev.Name)
		}
	}
	if (events|n.eventsFor(ev.Name))&evSubscriptionChange == 0 {
		return nil
	}
	attrs, err := s.notifyListAttrs(ev.Name)
	if err != nil {
		return err
	}
	s.w.Raw("* LIST (").Raw(strings.Join(attrs, " ")).Raw(`) "/" `).Mailbox(ev.Name).CRLF()
	s.srv.opts.Metrics.pushed("list", ev.Committed)
	return s.w.Err()
}

// notifyMetadata writes the names of metadata entries that changed, as
// an unsolicited METADATA response (RFC 5464 §4.4.2): the server's for
// ServerMetadataChange, a mailbox's for MailboxMetadataChange (RFC 5465
// §5.7, §5.6). The client fetches the values it wants.
func (s *session) notifyMetadata(ev *notify.Event) error {
	n := s.notif
	name := ""
	if ev.Mailbox == 0 {
		if n.anyEvents()&evServerMetadataChange == 0 {
			return nil
		}
	} else {
		st, err := s.srv.store.Status(s.ctx, mailstore.MailboxID(ev.Mailbox))
		if errors.Is(err, mailstore.ErrNoSuchMailbox) {
			return nil
		}
		if err != nil {
			return s.reply(err, roleMailbox)
		}
		if st.User != s.user.ID || n.eventsFor(st.Name)&evMailboxMetadataChange == 0 {
			return nil
		}
		name = st.Name
	}
	w := s.w
	w.Raw("* METADATA ").Mailbox(name)
	for _, e := range ev.Entries {
		w.SP().AString(e)
	}
	w.CRLF()
	s.srv.opts.Metrics.pushed("metadata", ev.Committed)
	return w.Err()
}

// notifyFetchNew follows the EXISTS of new messages in the selected
// mailbox (those above known, the view's highest UID before the update)
// with a FETCH of the attributes NOTIFY's MessageNew asked for (RFC 5465
// §5.2), as UID FETCH answers them.
func (s *session) notifyFetchNew(known mailstore.UID) error {
	n := s.notif
	if n == nil || len(n.fetch) == 0 || s.sel.known <= known {
		return nil
	}
	set := wire.NumSet{Ranges: []wire.NumRange{{Start: uint32(known) + 1, Stop: uint32(s.sel.known)}}}
	return s.Fetch(true, &wire.Fetch{Set: set, Attrs: n.fetch})
}

// watch writes n's notifications as they come, between commands: it
// sleeps on n's subscription, which hears every change of the user's
// mailboxes, the selected one included, and on wake-up does what a
// command's poll would, under wmu. It returns when stop is closed (IDLE
// began, or NOTIFY ended) or the session ends.
func (s *session) watch(n *notifier, stop <-chan struct{}) {
	for {
		select {
		case <-n.sub.Ready():
		case <-stop:
			return
		case <-s.ctx.Done():
			return
		}
		s.wmu.Lock()
		stopped := false
		select {
		case <-stop:
			stopped = true
		default:
		}
		if s.notif != n || s.byed || s.loggingOut {
			s.wmu.Unlock()
			return
		}
		if pc := s.parked; pc != nil {
			// Stopped by an IDLE that has hibernated since this
			// goroutine took the wake-up: the session must have it, or
			// the events wait for the next one.
			pc.Wake(hibernate.Signaled)
			s.wmu.Unlock()
			return
		}
		// Stopped by an IDLE still awake, or running: the wake-up is
		// served here, as idleWait would (RFC 9051 §7.5.1 lets IDLE
		// send expunges).
		var err error
		if s.sel != nil && (n.selected != 0 || s.idling) {
			err = s.update(updates{s}, n.immediate || s.idling)
		} else {
			err = s.notifyUpdate()
		}
		if err == nil {
			err = s.flush()
		}
		byed := s.byed
		s.wmu.Unlock()
		if err != nil || byed {
			if err != nil && !connectionGone(err) && !errors.Is(err, os.ErrDeadlineExceeded) {
				s.log.Warn("NOTIFY: ending the session", "err", err)
			}
			// As in idleWait: the session's reader then fails and the
			// session ends on its own goroutine.
			if cerr := s.raw.Close(); cerr != nil && !byed {
				s.log.Debug("close", "err", cerr)
			}
			return
		}
		if stopped {
			return
		}
	}
}
