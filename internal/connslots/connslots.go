// Package connslots is the table of connection slots that imapd and
// pop3d share: how many connections a server holds, from which client
// networks, and which are not logged in yet, so that silent connections
// cannot keep clients out (issue 13's connection budgets).
//
// Invariants:
//   - A connection holds at most one slot, from Admit to Release (or to
//     the Admit that evicts it); Release is idempotent.
//   - The slots of one key (a client network, see internal/netkey) never
//     exceed MaxPerKey; a newcomer over it is refused, never another
//     network's connection evicted.
//   - When the table is full (MaxConns slots, or MaxPreAuth of them not
//     logged in) a newcomer takes the slot of the oldest connection not
//     logged in; only when every holder has logged in is it refused.
package connslots

import "time"

// Limits bound a Table. Zero or negative means no limit.
type Limits struct {
	MaxConns   int // slots in all
	MaxPerKey  int // slots of one key
	MaxPreAuth int // slots of connections not logged in; at most MaxConns
}

// Refusal says why Admit gave no slot.
type Refusal int

const (
	// Admitted: no refusal.
	Admitted Refusal = iota
	// TooManyFromKey: the key holds MaxPerKey slots.
	TooManyFromKey
	// Full: the table is full and every holder has logged in.
	Full
)

// Table is the slot table of one server, for connections of type C. It
// is not safe for concurrent use: the server calls it under its own lock.
type Table[C comparable] struct {
	lim     Limits
	holders map[C]holder
	preAuth int
	perKey  map[string]int
}

type holder struct {
	key      string
	start    time.Time
	loggedIn bool
}

// New returns an empty Table with limits lim.
func New[C comparable](lim Limits) *Table[C] {
	if lim.MaxPreAuth <= 0 || (lim.MaxConns > 0 && lim.MaxPreAuth > lim.MaxConns) {
		lim.MaxPreAuth = lim.MaxConns
	}
	return &Table[C]{lim: lim, holders: make(map[C]holder), perKey: make(map[string]int)}
}

// Admit gives c, a connection from key that opened at start, a slot, not
// logged in. When the table was full it took the slot of victim, the
// oldest connection not logged in (evicted: its slot is released; the
// server tells it to go). refusal is Admitted, or why c got no slot.
func (t *Table[C]) Admit(c C, key string, start time.Time) (victim C, evicted bool, refusal Refusal) {
	if t.lim.MaxPerKey > 0 && t.perKey[key] >= t.lim.MaxPerKey {
		return victim, false, TooManyFromKey
	}
	if t.lim.MaxConns > 0 && (len(t.holders) >= t.lim.MaxConns || t.preAuth >= t.lim.MaxPreAuth) {
		var ok bool
		if victim, ok = t.oldestPreAuth(); !ok {
			return victim, false, Full
		}
		t.Release(victim)
		evicted = true
	}
	t.holders[c] = holder{key: key, start: start}
	t.perKey[key]++
	t.preAuth++
	return victim, evicted, Admitted
}

// oldestPreAuth returns the connection not logged in that opened first.
// It scans the holders: at most MaxConns, once per connection accepted
// on a full table.
func (t *Table[C]) oldestPreAuth() (oldest C, ok bool) {
	var at time.Time
	for c, h := range t.holders {
		if !h.loggedIn && (!ok || h.start.Before(at)) {
			oldest, at, ok = c, h.start, true
		}
	}
	return oldest, ok
}

// LoggedIn marks c logged in: Admit no longer evicts it. It reports
// false if c holds no slot (evicted meanwhile): its login must fail.
func (t *Table[C]) LoggedIn(c C) bool {
	h, ok := t.holders[c]
	if !ok {
		return false
	}
	if !h.loggedIn {
		h.loggedIn = true
		t.holders[c] = h
		t.preAuth--
	}
	return true
}

// Release frees c's slot; nothing if it holds none.
func (t *Table[C]) Release(c C) {
	h, ok := t.holders[c]
	if !ok {
		return
	}
	delete(t.holders, c)
	if !h.loggedIn {
		t.preAuth--
	}
	if t.perKey[h.key]--; t.perKey[h.key] <= 0 {
		delete(t.perKey, h.key)
	}
}

// Holds reports whether c holds a slot.
func (t *Table[C]) Holds(c C) bool {
	_, ok := t.holders[c]
	return ok
}
