package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"sync"

	"pushmail/notify"
)

// UIDList is a mailbox's UIDs at one moment, ascending: what an IMAP
// session's view of a mailbox starts from (RFC 9051 §2.3.1.2, sequence
// numbers). The store keeps one list per mailbox in use and hands the
// same slice to every caller, so that ten thousand sessions of a mailbox
// of 100,000 messages share one 400 KB array instead of holding one each.
//
// UIDs is shared: a holder must never write to it. Its capacity is
// clipped to its length, so an append makes a private copy.
type UIDList struct {
	UIDs []UID
	// The mailbox held exactly these UIDs at every modseq from Since
	// through ModSeq (RFC 7162 §3.1.1); ModSeq is the mailbox's highest
	// modseq when the list was taken. A holder whose own view stands at a
	// modseq in that range holds these UIDs.
	Since, ModSeq uint64
	// gen identifies the array: a list of the same gen is a prefix of a
	// longer one (the store appends to it, never changes what it gave).
	gen *uidGen
}

// uidGen is the identity of one append-only UID array.
type uidGen struct{}

// Extend returns cur cut to the length of l plus added, when cur is l
// with exactly added appended: the same array, so a holder of l moves on
// to the shared list instead of copying l to append to it. ok is false
// when cur is another array (an expunge rebuilt it) or holds other UIDs
// there.
func (l UIDList) Extend(cur UIDList, added []UID) (next UIDList, ok bool) {
	n := len(l.UIDs) + len(added)
	if l.gen == nil || cur.gen != l.gen || len(cur.UIDs) < n || !slices.Equal(cur.UIDs[len(l.UIDs):n], added) {
		return UIDList{}, false
	}
	cur.UIDs = cur.UIDs[:n:n]
	return cur, true
}

// uidCacheMax bounds the UIDs the store keeps listed over all mailboxes
// (4 Mi UIDs, 16 MB); past it the least recently used lists go. A
// session keeps the list it holds either way: eviction only means the
// next SELECT of that mailbox reads the list again.
const uidCacheMax = 4 << 20

// uidCache holds the shared UIDList of the mailboxes in use. The writer
// keeps each list current from the events it publishes (applyEvent),
// before publishing them: a session that learns of a change from its
// subscription finds the list already past it. Safe for concurrent use;
// the zero value is empty and ready.
type uidCache struct {
	mu      sync.Mutex
	entries map[MailboxID]*uidEntry
	total   int
	clock   uint64
}

type uidEntry struct {
	uids          []UID // append-only within gen; handed out cut and clipped
	gen           *uidGen
	since, modseq uint64
	used          uint64 // clock at the last use

	// loading is open while the first read of the list runs; the
	// events committed meanwhile wait in pending, and a MailboxChanged
	// among them sets stale: the read is then not kept.
	loading chan struct{}
	pending []notify.Event
	stale   bool
}

func (e *uidEntry) list() UIDList {
	n := len(e.uids)
	return UIDList{UIDs: e.uids[:n:n], Since: e.since, ModSeq: e.modseq, gen: e.gen}
}

// UIDList returns the mailbox's UIDs, ascending, as the shared list (see
// the type): from the store's cache, or read once for every caller that
// asks meanwhile. A mailbox that does not exist is ErrNoSuchMailbox.
func (s *Store) UIDList(ctx context.Context, mailbox MailboxID) (UIDList, error) {
	c := &s.uidLists
	for {
		c.mu.Lock()
		e := c.entries[mailbox]
		if e == nil {
			break // load it; c.mu still held
		}
		if e.loading == nil {
			c.clock++
			e.used = c.clock
			l := e.list()
			c.mu.Unlock()
			return l, nil
		}
		wait := e.loading
		c.mu.Unlock()
		select {
		case <-wait:
		case <-ctx.Done():
			return UIDList{}, fmt.Errorf("list uids: %w", ctx.Err())
		}
	}
	if c.entries == nil {
		c.entries = make(map[MailboxID]*uidEntry)
	}
	e := &uidEntry{loading: make(chan struct{})}
	c.entries[mailbox] = e
	c.mu.Unlock()

	uids, modseq, err := s.readUIDs(ctx, mailbox)

	c.mu.Lock()
	defer c.mu.Unlock()
	defer close(e.loading)
	if err != nil || e.stale {
		delete(c.entries, mailbox)
		if err != nil {
			return UIDList{}, err
		}
		// Read before the mailbox was renamed or deleted: right for this
		// caller, whose subscription brings the change, not to keep.
		return UIDList{UIDs: slices.Clip(uids), Since: modseq, ModSeq: modseq, gen: new(uidGen)}, nil
	}
	e.uids, e.gen, e.since, e.modseq = uids, new(uidGen), modseq, modseq
	pending := e.pending
	e.loading, e.pending = nil, nil
	for i := range pending {
		// Changes the read already holds have no higher modseq than it.
		if pending[i].ModSeq > modseq {
			if !e.apply(&pending[i]) {
				delete(c.entries, mailbox)
				return UIDList{UIDs: slices.Clip(uids), Since: modseq, ModSeq: modseq, gen: new(uidGen)}, nil
			}
		}
	}
	c.total += len(e.uids)
	c.clock++
	e.used = c.clock
	c.evictLocked(mailbox)
	return e.list(), nil
}

// readUIDs reads a mailbox's UIDs and highest modseq in one read
// transaction, so that the list is the mailbox's at exactly that modseq.
func (s *Store) readUIDs(ctx context.Context, mailbox MailboxID) ([]UID, uint64, error) {
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("list uids: %w", err)
	}
	defer rollbackRead(tx)
	var modseq uint64
	err = tx.QueryRowContext(ctx, "SELECT highest_modseq FROM mailboxes WHERE id = ?", mailbox).Scan(&modseq)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("list uids: %w", ErrNoSuchMailbox)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("list uids: %w", err)
	}
	// One row holding every UID as text: scanning 100,000 rows one by one
	// through database/sql costs several times more than parsing them.
	// The subquery's ORDER BY fixes the order group_concat sees.
	var list sql.NullString
	err = tx.QueryRowContext(ctx,
		s.pick("SELECT group_concat(uid) FROM (SELECT uid FROM messages WHERE mailbox_id = ? ORDER BY uid)",
			"SELECT string_agg(uid::text, ',' ORDER BY uid) FROM messages WHERE mailbox_id = ?"), mailbox).Scan(&list)
	if err != nil {
		return nil, 0, fmt.Errorf("list uids: %w", err)
	}
	uids, err := parseUIDList(list.String)
	return uids, modseq, err
}

// CachedUIDList returns the mailbox's shared list if the store holds it,
// without reading the database: for a session that wants to share the
// list again after changing its own view (see UIDList.Extend).
func (s *Store) CachedUIDList(mailbox MailboxID) (UIDList, bool) {
	c := &s.uidLists
	c.mu.Lock()
	defer c.mu.Unlock()
	e := c.entries[mailbox]
	if e == nil || e.loading != nil {
		return UIDList{}, false
	}
	return e.list(), true
}

// applyEvent brings the mailbox's list, if kept, up to a committed
// event. Only the writer calls it, in commit order, before publishing.
func (c *uidCache) applyEvent(ev *notify.Event) {
	c.mu.Lock()
	defer c.mu.Unlock()
	id := MailboxID(ev.Mailbox)
	e := c.entries[id]
	if e == nil {
		return
	}
	if e.loading != nil {
		if ev.Kind == notify.MailboxChanged {
			e.stale = true
		}
		e.pending = append(e.pending, *ev)
		return
	}
	n := len(e.uids)
	if !e.apply(ev) {
		delete(c.entries, id)
		c.total -= n
		return
	}
	c.total += len(e.uids) - n
}

// apply applies ev to the list and reports whether the list is still
// right: a MailboxChanged (renamed, deleted) drops it, and so does an
// event whose message count disagrees with the list, which should never
// happen but would otherwise go unnoticed until a client saw it.
func (e *uidEntry) apply(ev *notify.Event) bool {
	switch ev.Kind {
	case notify.Appended:
		for _, u := range ev.UIDs {
			if len(e.uids) > 0 && UID(u) <= e.uids[len(e.uids)-1] {
				return false // UIDs only grow (RFC 9051 §2.3.1.1)
			}
			// Writes beyond every length handed out: no holder sees it.
			e.uids = append(e.uids, UID(u))
		}
		e.since = ev.ModSeq
	case notify.Expunged:
		// A new array: holders keep the old one, which stays as it was.
		kept := make([]UID, 0, len(e.uids))
		j := 0
		for _, u := range e.uids {
			for j < len(ev.UIDs) && UID(ev.UIDs[j]) < u {
				j++
			}
			if j < len(ev.UIDs) && UID(ev.UIDs[j]) == u {
				continue
			}
			kept = append(kept, u)
		}
		e.uids, e.gen, e.since = kept, new(uidGen), ev.ModSeq
	case notify.FlagsChanged:
	default:
		return false
	}
	e.modseq = max(e.modseq, ev.ModSeq)
	if ev.Kind != notify.FlagsChanged && int(ev.Messages) != len(e.uids) {
		return false
	}
	return true
}

// drop forgets the mailbox's list, to be read again: its events may have
// been missed or come out of order (crossnode.go). A read under way is
// not kept.
func (c *uidCache) drop(id MailboxID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dropLocked(id)
}

// dropAll is drop for every mailbox.
func (c *uidCache) dropAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for id := range c.entries {
		c.dropLocked(id)
	}
}

func (c *uidCache) dropLocked(id MailboxID) {
	e := c.entries[id]
	if e == nil {
		return
	}
	if e.loading != nil {
		e.stale = true
		return
	}
	delete(c.entries, id)
	c.total -= len(e.uids)
}

// evictLocked drops the least recently used lists, other than keep's,
// while the cache holds more than uidCacheMax UIDs.
func (c *uidCache) evictLocked(keep MailboxID) {
	for c.total > uidCacheMax {
		var victim MailboxID
		var oldest *uidEntry
		for id, e := range c.entries {
			if id != keep && e.loading == nil && (oldest == nil || e.used < oldest.used) {
				victim, oldest = id, e
			}
		}
		if oldest == nil {
			return
		}
		delete(c.entries, victim)
		c.total -= len(oldest.uids)
	}
}
