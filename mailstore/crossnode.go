package mailstore

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/binary"
	"encoding/hex"
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
// A node publishes its own commits too when it hears their notification
// back (publishOwn), not as soon as they are committed: the listener then
// publishes every node's commits in commit order. That order matters: a
// session announces new messages by EXISTS at the end of its view, so it
// must never hear of UID 289 of a mailbox before UID 288, which another
// node committed first (the writers take turns, so UIDs follow the commit
// order). The writer waits for it before it releases its callers, as it
// publishes before it releases them on SQLite. If the notification does
// not come back (the LISTEN connection is down), the batch's mailboxes
// are resynchronised instead: their watchers read the store, a committed
// prefix, and miss nothing. A lost LISTEN connection makes every watcher
// resynchronise once it is back: what was committed meanwhile was never
// heard. Never a silent gap. crossNode also keeps each mailbox's highest
// modseq published and turns an older event, which the order above rules
// out, into a resync.

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
	// Barrier is SyncOtherNodes's token, which only its sender reads.
	Barrier string `json:"b,omitempty"`
	// Batch numbers the sender's write batches; its own listener
	// publishes the batch's events on hearing it (publishOwn).
	Batch uint64 `json:"k,omitempty"`
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
	// barriers are SyncOtherNodes's tokens not yet heard back.
	barriers map[string]chan struct{}
	// own are this node's committed batches whose notification has not
	// come back yet, by Batch; listening is false while the LISTEN
	// connection is down, when publishOwn does not wait.
	own       map[uint64]*ownBatch
	listening bool
	// batches numbers this node's batches (the writer's alone).
	batches uint64
}

// ownBatch is a batch of this node's events waiting for its notification.
type ownBatch struct {
	events    []notify.Event
	published chan struct{} // closed once the listener published them
}

// ownBatchWait bounds how long the writer waits for its own
// notification before resynchronising the batch's mailboxes instead.
const ownBatchWait = 2 * time.Second

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
		last: make(map[int64]uint64), started: make(chan struct{}), barriers: make(map[string]chan struct{}),
		own: make(map[uint64]*ownBatch)}
	l := &pgxlisten.Listener{
		Connect: func(ctx context.Context) (*pgx.Conn, error) {
			return pgx.ConnectConfig(ctx, cfg.Copy())
		},
		LogError: func(_ context.Context, err error) {
			// Listen failed or the connection dropped: until the next
			// LISTEN, no notification comes back.
			c.mu.Lock()
			c.listening = false
			c.mu.Unlock()
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
	c.listening = true
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
		if msg.Batch != 0 {
			c.publishHeard(msg.Batch, time.Unix(0, msg.Time))
		}
		if msg.Barrier != "" {
			c.mu.Lock()
			if ch := c.barriers[msg.Barrier]; ch != nil {
				close(ch)
				delete(c.barriers, msg.Barrier)
			}
			c.mu.Unlock()
		}
		return nil
	}
	var w notify.Wakeups
	committed := time.Unix(0, msg.Time)
	for i := range msg.Events {
		msg.Events[i].Committed = committed
		msg.Events[i].Remote = true
		// Origin names a subscription of the sending node: here it
		// could name another one, which would take the change for its
		// own and not report it.
		msg.Events[i].Origin = 0
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

// notifyBatchTx sends a batch's events to every node, this one included,
// in the batch's transaction, in as few notifications as the payload
// limit allows, and registers them for publishOwn. It returns the batch's
// number, 0 when it has no events (nothing to send or publish).
func (c *crossNode) notifyBatchTx(ctx context.Context, tx *sql.Tx, ops []*writeOp) (uint64, error) {
	var events []notify.Event
	for _, op := range ops {
		if op.err == nil {
			events = append(events, op.events...)
		}
	}
	if len(events) == 0 {
		return 0, nil
	}
	c.batches++
	batch := c.batches
	now := time.Now()
	payloads, err := c.notifyPayloads(events, now, batch)
	if err != nil {
		return 0, fmt.Errorf("encode events for the other nodes: %w", err)
	}
	for _, p := range payloads {
		if _, err := tx.ExecContext(ctx, "SELECT pg_notify(?, ?)", crossNodeChannel, p); err != nil {
			return 0, fmt.Errorf("notify the other nodes: %w", err)
		}
	}
	for i := range events {
		events[i].Committed = now
	}
	// Registered before the COMMIT: the notification may come back
	// before the writer is past it.
	c.mu.Lock()
	c.own[batch] = &ownBatch{events: events, published: make(chan struct{})}
	c.mu.Unlock()
	return batch, nil
}

// forgetOwn drops a registered batch whose transaction did not commit.
func (c *crossNode) forgetOwn(batch uint64) {
	if batch == 0 {
		return
	}
	c.mu.Lock()
	delete(c.own, batch)
	c.mu.Unlock()
}

// publishHeard publishes this node's batch on hearing its notification
// (the first, if it took several), in order with the other nodes'.
func (c *crossNode) publishHeard(batch uint64, committed time.Time) {
	c.mu.Lock()
	b := c.own[batch]
	delete(c.own, batch)
	c.mu.Unlock()
	if b == nil {
		return // given up by publishOwn, or published already
	}
	var w notify.Wakeups
	for i := range b.events {
		b.events[i].Committed = committed
		c.publish(&b.events[i], &w)
	}
	close(b.published)
	w.Wake()
}

// publishOwn returns once the committed batch's events are published: by
// the listener, when it hears the batch's notification, in commit order
// with the other nodes' events; or, when that does not come within
// ownBatchWait or the LISTEN connection is down, as resyncs of the
// batch's mailboxes, which is always right (their watchers read the
// store) if slower. Called by the writer after the COMMIT, before it
// releases the batch's callers.
func (c *crossNode) publishOwn(batch uint64) {
	c.mu.Lock()
	b := c.own[batch]
	listening := c.listening
	c.mu.Unlock()
	if b == nil {
		return
	}
	if listening {
		select {
		case <-b.published:
			return
		case <-time.After(ownBatchWait):
		}
	}
	c.mu.Lock()
	_, mine := c.own[batch]
	delete(c.own, batch)
	c.mu.Unlock()
	if !mine {
		<-b.published // the listener has it: being published now
		return
	}
	c.s.log.Warn("mailstore: own commit not heard back from PostgreSQL; its mailboxes' watchers resynchronise", "listening", listening)
	var w notify.Wakeups
	for _, ev := range b.events {
		c.resync(ev.Mailbox, ev.User, &w)
	}
	w.Wake()
}

// notifyPayloads encodes events as notification payloads of at most
// maxNotifyPayload bytes each. An event that alone exceeds it (an expunge
// of thousands of messages) is sent as a request to resynchronise its
// mailbox.
func (c *crossNode) notifyPayloads(events []notify.Event, now time.Time, batch uint64) ([]string, error) {
	var out []string
	msg := wireEvents{Node: c.id, Time: now.UnixNano(), Batch: batch}
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

// SyncOtherNodes returns once this node has published every change the
// other nodes sharing its PostgreSQL store committed before the call: it
// commits a notification of its own and waits to hear it back, which
// PostgreSQL delivers after every notification committed before it. On
// SQLite, with no other node, it returns at once. Tests use it to compare
// what two nodes' sessions show once activity has stopped.
func (s *Store) SyncOtherNodes(ctx context.Context) error {
	c := s.listener
	if c == nil {
		return nil
	}
	var tok [8]byte
	if _, err := rand.Read(tok[:]); err != nil {
		return err
	}
	token := hex.EncodeToString(tok[:])
	heard := make(chan struct{})
	c.mu.Lock()
	c.barriers[token] = heard
	c.mu.Unlock()
	defer func() {
		c.mu.Lock()
		delete(c.barriers, token)
		c.mu.Unlock()
	}()
	payload, err := json.Marshal(wireEvents{Node: c.id, Time: time.Now().UnixNano(), Barrier: token})
	if err != nil {
		return err
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		_, err := tx.Exec("SELECT pg_notify(?, ?)", crossNodeChannel, string(payload))
		return nil, err
	})
	if err != nil {
		return fmt.Errorf("sync with the other nodes: %w", err)
	}
	select {
	case <-heard:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("sync with the other nodes: %w", ctx.Err())
	}
}
