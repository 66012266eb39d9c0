package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"

	"pushmail/notify"
)

// MaildropEntry is one message of a mailbox as a download protocol (POP3)
// lists it.
type MaildropEntry struct {
	UID UID
	// Size is the message's size as sent with CRLF line ends: the stored
	// size plus one octet for every line feed not preceded by a carriage
	// return (RFC 1939 §11: "the POP3 server simply counts each
	// occurrence of this character in a message as two octets").
	Size int64
}

// Maildrop returns every message of mailbox, ascending by UID, with its
// size in CRLF form. The sizes were counted when each body was stored
// (crlfSize; body_crlf_size): no body is read.
func (s *Store) Maildrop(ctx context.Context, mailbox MailboxID) ([]MaildropEntry, error) {
	rows, err := s.query(ctx, `SELECT m.uid, c.size FROM messages m JOIN body_crlf_size c ON c.id = m.body_id
		WHERE m.mailbox_id = ? ORDER BY m.uid`, mailbox)
	if err != nil {
		return nil, fmt.Errorf("maildrop: %w", err)
	}
	defer rows.Close()
	var out []MaildropEntry
	for rows.Next() {
		var e MaildropEntry
		if err := rows.Scan(&e.UID, &e.Size); err != nil {
			return nil, fmt.Errorf("maildrop: %w", err)
		}
		out = append(out, e)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("maildrop: %w", err)
	}
	return out, nil
}

// UpdateMaildrop ends a download session's use of mailbox in one durable
// write: it sets \Seen on the messages of seen that are still there, are
// not in remove and lack it, and removes exactly the messages of remove,
// whatever their flags (an expunge like any other: a new modseq,
// tombstones, and an Expunged event that IDLE sessions turn into EXPUNGE
// responses). Messages already gone are skipped. It returns the UIDs it
// removed, ascending. Both lists name messages one by one: empty lists
// change nothing; there is no "all".
func (s *Store) UpdateMaildrop(ctx context.Context, mailbox MailboxID, seen, remove []UID, origin uint64) ([]UID, error) {
	if len(seen) == 0 && len(remove) == 0 {
		return nil, nil
	}
	removing := make(map[UID]bool, len(remove))
	for _, u := range remove {
		removing[u] = true
	}
	var removed []UID
	err := s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		removed = removed[:0] // this run's alone (writeFunc)
		var events []notify.Event
		ev, err := markSeenTx(tx, mailbox, seen, removing, origin)
		if err != nil {
			return nil, err
		}
		if ev != nil {
			events = append(events, *ev)
		}
		// Only the UIDs still there: deleteMessagesTx reports those.
		evs, err := deleteMessagesTx(tx, mailbox, sortedUIDs(removing), origin)
		if err != nil {
			return nil, err
		}
		for _, e := range evs {
			for _, u := range e.UIDs {
				removed = append(removed, UID(u))
			}
		}
		return append(events, evs...), nil
	})
	if err != nil {
		return nil, fmt.Errorf("update maildrop: %w", err)
	}
	return removed, nil
}

// markSeenTx sets \Seen on the messages of uids that lack it, skipping
// those in skip and those gone, under one new modseq; it returns their
// FlagsChanged event, or nil if none changed.
func markSeenTx(tx *wtx, mailbox MailboxID, uids []UID, skip map[UID]bool, origin uint64) (*notify.Event, error) {
	type change struct {
		uid  UID
		bits int
		kw   string
	}
	var changes []change
	for _, u := range uids {
		if skip[u] {
			continue
		}
		var c change
		err := tx.QueryRow("SELECT uid, flags, keywords FROM messages WHERE mailbox_id = ? AND uid = ?", mailbox, u).
			Scan(&c.uid, &c.bits, &c.kw)
		if errors.Is(err, sql.ErrNoRows) {
			continue
		}
		if err != nil {
			return nil, err
		}
		if c.bits&flagSeen == 0 {
			c.bits |= flagSeen
			changes = append(changes, c)
		}
	}
	if len(changes) == 0 {
		return nil, nil
	}
	ev := notify.Event{Mailbox: int64(mailbox), Kind: notify.FlagsChanged, Origin: origin}
	if err := tx.QueryRow("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq", mailbox).Scan(&ev.ModSeq); err != nil {
		return nil, err
	}
	for _, c := range changes {
		if _, err := tx.Exec("UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?", c.bits, ev.ModSeq, mailbox, c.uid); err != nil {
			return nil, err
		}
		ev.Flags = append(ev.Flags, notify.FlagUpdate{UID: uint32(c.uid), Flags: decodeFlags(c.bits, c.kw)})
	}
	return &ev, nil
}

// sortedUIDs returns the keys of set, ascending.
func sortedUIDs(set map[UID]bool) []UID {
	uids := make([]UID, 0, len(set))
	for u := range set {
		uids = append(uids, u)
	}
	slices.Sort(uids)
	return uids
}

// crlfSize returns the size of raw in CRLF form: one more octet for every
// LF without a CR before it (RFC 1939 §11).
func crlfSize(raw []byte) int64 {
	n := int64(len(raw))
	for i, c := range raw {
		if c == '\n' && (i == 0 || raw[i-1] != '\r') {
			n++
		}
	}
	return n
}
