package mailstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgxlisten"

	"pushmail/notify"
)

// Several nodes on one PostgreSQL store hear of each other's commits
// through LISTEN/NOTIFY. Each batch's events are sent with pg_notify in
// the batch's own transaction (notifyBatchTx), so PostgreSQL delivers
// them if and only if the batch commits, and in commit order (its manual,
// NOTIFY: "notifications from different transactions are delivered in the
// order in which the transactions committed"). Every node LISTENs on one
// dedicated connection (crossNode, with pgxlisten) and publishes what the
// others committed to its own hub, as if its own writer had: IMAP IDLE
// and NOTIFY, the HTTP API's event streams and the wake-ups all read the
// hub, and then the store.
//
// A node publishes its own commits at once, without waiting for the
// notification to come back; so on one node a mailbox's events may come
// out of commit order (its own commit published before another node's
// earlier one is heard). crossNode keeps each mailbox's highest modseq
// published and, instead of publishing an older event, tells the
// mailbox's watchers to resynchronise from the store. A lost LISTEN
// connection is treated the same way for every watcher once it is back:
// what was committed meanwhile was never heard. Never a silent gap.

// crossNodeChannel is the NOTIFY channel of the events.
const crossNodeChannel = "pushmail_events"

// maxNotifyPayload keeps one notification under PostgreSQL's limit of
// 8000 bytes, with room for the envelope.
const maxNotifyPayload = 7800

// wireEvents is one notification's payload.
type wireEvents struct {
	Node   uint64         `json:"n"` // the sending node (crossNode.id)
	Time   int64          `json:"t"` // the commit, Unix nanoseconds
	Events []notify.Event `json:"e,omitempty"`
	// Resync lists [mailbox, user] pairs whose event was too large to
	// send: their watchers resynchronise.
	Resync [][2]int64 `json:"r,omitempty"`
}

// crossNode is a node's view of the other nodes' commits.
type crossNode struct {
	s      *Store
	id     uint64 // this node's, random: its own notifications are skipped
	cancel context.CancelFunc
	done   chan struct{}

	mu      sync.Mutex
	last    map[int64]uint64 // mailbox -> highest modseq published here
	started chan struct{}    // closed at the first LISTEN
	listens int              // LISTENs so far
}

// startCrossNode starts listening for the other nodes' events on a
// connection of its own to url, and returns once the first LISTEN is in
// place, so that no commit made after Open returns goes unheard.
func (s *Store) startCrossNode(ctx context.Context, url string) error {
	var idb [8]byte
	if _, err := rand.Read(idb[:]); err != nil {
		return fmt.Errorf("node id: %w", err)
	}
	cfg, err := pgx.ParseConfig(url)
	if err != nil {
		return err
	}
	cfg.RuntimeParams["application_name"] = "pushmail-listen"
	lctx, cancel := context.WithCancel(context.Background())
	c := &crossNode{s: s, id: binary.BigEndian.Uint64(idb[:]), cancel: cancel, done: make(chan struct{}),
		last: make(map[int64]uint64), started: make(chan struct{})}
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, cfg.Copy())
		},
		LogError: func(_ context.Context, err error) {
			if lctx.Err() == nil {
				s.log.Warn("mailstore: cross-node listener", "err", err)
			}
		},
		ReconnectDelay: 500 * time.Millisecond,
	}
	l.Handle(crossNodeChannel, c)
	go func() {
		defer close(c.done)
		_ = l.Listen(lctx) // returns when lctx is cancelled (Close)
	}()
	select {
	case <-c.started:
	case <-ctx.Done():
		c.stop()
		return fmt.Errorf("listen for other nodes: %w", ctx.Err())
	case <-time.After(30 * time.Second):
		c.stop()
		return errors.New("listen for other nodes: no LISTEN connection after 30 s")
	}
	s.listener = c
	return nil
}

// stop ends the listener and waits for it.
func (c *crossNode) stop() {
	c.cancel()
	<-c.done
}

// HandleBacklog runs after each LISTEN (pgxlisten.BacklogHandler). After
// the first, the connection had been lost: every watcher resynchronises.
func (c *crossNode) HandleBacklog(context.Context, string, *pgx.Conn) error {
	c.mu.Lock()
	c.listens++
	first := c.listens == 1
	if !first {
		clear(c.last)
	}
	c.mu.Unlock()
	if first {
		close(c.started)
		return nil
	}
	c.s.log.Warn("mailstore: cross-node listener reconnected; every watcher resynchronises")
	c.s.uidLists.dropAll()
	var w notify.Wakeups
	c.s.hub.ResyncAll(&w)
	w.Wake()
	return nil
}

// HandleNotification publishes another node's events
// (pgxlisten.Handler).
func (c *crossNode) HandleNotification(_ context.Context, n *pgconn.Notification, _ *pgx.Conn) error {
	var msg wireEvents
	if err := json.Unmarshal([]byte(n.Payload), &msg); err != nil {
		// Not ours to read: resynchronise everyone rather than guess.
		var w notify.Wakeups
		c.s.uidLists.dropAll()
		c.s.hub.ResyncAll(&w)
		w.Wake()
		return fmt.Errorf("cross-node event: %w", err)
	}
	if msg.Node == c.id {
		return nil // published when committed
	}
	var w notify.Wakeups
	committed := time.Unix(0, msg.Time)
	for i := range msg.Events {
		msg.Events[i].Committed = committed
		msg.Events[i].Remote = true
		c.publish(&msg.Events[i], &w)
	}
	for _, r := range msg.Resync {
		c.resync(r[0], r[1], &w)
	}
	w.Wake()
	return nil
}

// publish hands ev, committed here or by another node, to the hub, or
// resynchronises its mailbox's watchers when a later change of the
// mailbox was published before it.
func (c *crossNode) publish(ev *notify.Event, w *notify.Wakeups) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if ev.Mailbox != 0 && ev.ModSeq != 0 {
		// One commit may publish several events of a mailbox with one
		// modseq; only an older one is out of order.
		if ev.ModSeq < c.last[ev.Mailbox] {
			c.s.uidLists.drop(MailboxID(ev.Mailbox))
			c.s.hub.Resync(ev.Mailbox, ev.User, w)
			return
		}
		c.last[ev.Mailbox] = ev.ModSeq
	}
	c.s.uidLists.applyEvent(ev)
	c.s.hub.Enqueue(*ev, w)
}

// resync makes the watchers of mailbox and user rebuild their state.
func (c *crossNode) resync(mailbox, user int64, w *notify.Wakeups) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.s.uidLists.drop(MailboxID(mailbox))
	c.s.hub.Resync(mailbox, user, w)
}

// notifyBatchTx sends a batch's events to the other nodes, in the batch's
// transaction, in as few notifications as the payload limit allows.
func (c *crossNode) notifyBatchTx(ctx context.Context, tx *sql.Tx, ops []*writeOp) error {
	var events []notify.Event
	for _, op := range ops {
		if op.err == nil {
			events = append(events, op.events...)
		}
	}
	if len(events) == 0 {
		return nil
	}
	payloads, err := c.notifyPayloads(events, time.Now())
	if err != nil {
		return fmt.Errorf("encode events for the other nodes: %w", err)
	}
	for _, p := range payloads {
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify(?, ?)", crossNodeChannel, p); err != nil {
			return fmt.Errorf("notify the other nodes: %w", err)
		}
	}
	return nil
}

// notifyPayloads encodes events as notification payloads of at most
// maxNotifyPayload bytes each. An event that alone exceeds it (an expunge
// of thousands of messages) is sent as a request to resynchronise its
// mailbox.
func (c *crossNode) notifyPayloads(events []notify.Event, now time.Time) ([]string, error) {
	var out []string
	msg := wireEvents{Node: c.id, Time: now.UnixNano()}
	size := 64 // the envelope
	flush := func() error {
		if len(msg.Events) == 0 && len(msg.Resync) == 0 {
			return nil
		}
		b, err := json.Marshal(&msg)
		if err != nil {
			return err
		}
		out = append(out, string(b))
		msg.Events, msg.Resync, size = nil, nil, 64
		return nil
	}
	for i := range events {
		ev := events[i]
		ev.Committed = time.Time{} // the envelope's Time says it once
		b, err := json.Marshal(&ev)
		if err != nil {
			return nil, err
		}
		if len(b)+64 > maxNotifyPayload {
			if size+40 > maxNotifyPayload {
				if err := flush(); err != nil {
					return nil, err
				}
			}
			msg.Resync = append(msg.Resync, [2]int64{ev.Mailbox, ev.User})
			size += 40
			continue
		}
		if size+len(b)+1 > maxNotifyPayload {
			if err := flush(); err != nil {
				return nil, err
			}
		}
		msg.Events = append(msg.Events, ev)
		size += len(b) + 1
	}
	if err := flush(); err != nil {
		return nil, err
	}
	return out, nil
}
