package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// The change log: what changed in a mailbox after a modseq, as one
// indexed read (RFC 7162 CONDSTORE and QRESYNC, and the HTTP API's
// /changes). It is made of three things the writer keeps in the same
// transaction as every change:
//
//   - mailboxes.highest_modseq, raised by one per write that changes the
//     mailbox's messages (a delivery or append raises it once per
//     message, a copy or move in once per message, a flag store once for
//     all the messages it changed, an expunge once for all it removed);
//   - messages.modseq, the modseq of the write that added the message or
//     last changed its flags (index messages_modseq);
//   - vanished, one tombstone per expunged message: its UID and the
//     expunge's modseq (primary key (mailbox_id, modseq, uid)).
//
// The tombstones are bounded per mailbox by Options.MaxVanished; see
// pruneVanishedTx for how the horizon moves.

// defaultMaxVanished is Options.MaxVanished's default: enough for a
// client away for weeks from a mailbox that loses hundreds of messages a
// day, at about 15 bytes a tombstone.
const defaultMaxVanished = 10_000

// Changes is what happened to a mailbox's messages after a modseq, read
// in one snapshot: CONDSTORE's CHANGEDSINCE (RFC 7162 §3.1.4.1), QRESYNC's
// SELECT parameter and UID FETCH VANISHED (§3.2.5, §3.2.6).
type Changes struct {
	// HighestModSeq is the mailbox's highest modseq in the snapshot:
	// Changed and Vanished hold every change up to it and none after.
	HighestModSeq uint64
	// Changed holds each message of the set whose modseq is above the
	// one asked about, that is every message added (delivered, appended,
	// copied or moved in) or reflagged since, with its flags and modseq,
	// ascending by UID.
	Changed []FlagUpdate
	// VanishedKnown reports whether Vanished is the whole answer. It is
	// false when the modseq asked about is below Horizon: the tombstones
	// that would answer have been pruned. Vanished is then empty, and
	// the caller must compare the UIDs its client knows with UIDs (RFC
	// 7162 §3.2.6 lets a server that does not remember an expunge's
	// modseq report every UID of the set that no longer exists; §3.2.5.2's
	// sequence match data narrows that set).
	VanishedKnown bool
	// Vanished holds the UIDs of the set expunged after the modseq asked
	// about, ascending; only with VanishedKnown.
	Vanished []UID
	// Horizon is the lowest modseq for which the mailbox answers
	// "vanished since" in full.
	Horizon uint64
}

// ChangesSince returns what changed in mailbox after modseq since among
// the messages of set (AllUIDs for all; an empty set reports no message,
// only HighestModSeq and Horizon). Both lists come from indexes, by
// modseq: their cost grows with the number of changes since, not with
// the size of the mailbox. since 0 reports every message as changed.
// A mailbox that does not exist is ErrNoSuchMailbox.
func (s *Store) ChangesSince(ctx context.Context, mailbox MailboxID, set UIDSet, since uint64) (Changes, error) {
	var c Changes
	// One read transaction: HighestModSeq, Changed and Vanished from the
	// same snapshot, so that a caller that then applies the events above
	// HighestModSeq misses nothing and sees nothing twice.
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return Changes{}, fmt.Errorf("changes since %d: %w", since, err)
	}
	defer rollbackRead(tx)
	stmt := func(query string) (*sql.Stmt, error) {
		st, err := s.readStmt(ctx, query)
		if err != nil {
			return nil, err
		}
		return tx.StmtContext(ctx, st), nil
	}

	st, err := stmt("SELECT highest_modseq, vanished_horizon FROM mailboxes WHERE id = ?")
	if err != nil {
		return Changes{}, fmt.Errorf("changes since %d: %w", since, err)
	}
	err = st.QueryRowContext(ctx, mailbox).Scan(&c.HighestModSeq, &c.Horizon)
	if errors.Is(err, sql.ErrNoRows) {
		return Changes{}, fmt.Errorf("changes since %d: %w", since, ErrNoSuchMailbox)
	}
	if err != nil {
		return Changes{}, fmt.Errorf("changes since %d: %w", since, err)
	}
	c.VanishedKnown = since >= c.Horizon
	if len(set) == 0 {
		return c, nil
	}
	lo, hi := set.bounds()
	inSet := set.matcher()

	// INDEXED BY: with a UID range SQLite may otherwise take the primary
	// key and read every message of the range.
	st, err = stmt("SELECT uid, flags, keywords, modseq FROM messages INDEXED BY messages_modseq " +
		"WHERE mailbox_id = ? AND modseq > ? AND uid BETWEEN ? AND ? ORDER BY uid")
	if err != nil {
		return Changes{}, fmt.Errorf("changes since %d: %w", since, err)
	}
	rows, err := st.QueryContext(ctx, mailbox, since, lo, hi)
	if err != nil {
		return Changes{}, fmt.Errorf("changes since %d: %w", since, err)
	}
	for rows.Next() {
		var u FlagUpdate
		var bits int
		var kw string
		if err := rows.Scan(&u.UID, &bits, &kw, &u.ModSeq); err != nil {
			rows.Close()
			return Changes{}, fmt.Errorf("changes since %d: %w", since, err)
		}
		if inSet(u.UID) {
			u.Flags = decodeFlags(bits, kw)
			c.Changed = append(c.Changed, u)
		}
	}
	if err := rows.Close(); err != nil {
		return Changes{}, fmt.Errorf("changes since %d: %w", since, err)
	}

	if !c.VanishedKnown {
		return c, nil
	}
	st, err = stmt("SELECT uid FROM vanished WHERE mailbox_id = ? AND modseq > ? AND uid BETWEEN ? AND ? ORDER BY uid")
	if err != nil {
		return Changes{}, fmt.Errorf("changes since %d: %w", since, err)
	}
	rows, err = st.QueryContext(ctx, mailbox, since, lo, hi)
	if err != nil {
		return Changes{}, fmt.Errorf("changes since %d: %w", since, err)
	}
	if c.Vanished, err = collectUIDs(rows, set); err != nil {
		return Changes{}, fmt.Errorf("changes since %d: %w", since, err)
	}
	return c, nil
}

// StoreFlagsUnchangedSince is StoreFlags with RFC 7162 §3.1.3's
// UNCHANGEDSINCE: a message of set whose modseq is above unchangedSince
// has been changed since the client last saw it, and is left as it is.
// The test and the change are one write, atomic with respect to every
// other write. It returns the resulting flags of each message that
// passed (changed or not, as StoreFlags does) and the UIDs of those that
// failed (for the MODIFIED response code), both ascending. unchangedSince
// 0 fails every message: RFC 7162 §3.1.3, "Use of UNCHANGEDSINCE with a
// modification sequence of 0 always fails if the metadata item exists".
func (s *Store) StoreFlagsUnchangedSince(ctx context.Context, mailbox MailboxID, set UIDSet, op FlagOp, flags []string, unchangedSince, origin uint64) (updates []FlagUpdate, modified []UID, err error) {
	updates, modified, err = s.storeFlags(ctx, mailbox, set, op, flags, storeCondition{unchanged: true, unchangedSince: unchangedSince}, origin)
	if err != nil {
		return nil, nil, fmt.Errorf("store flags unchanged since %d: %w", unchangedSince, err)
	}
	return updates, modified, nil
}

// recordVanishedTx leaves a tombstone for each of uids, expunged from
// mailbox at modseq, and prunes the mailbox's oldest tombstones if there
// are now more than the store keeps.
func recordVanishedTx(tx *wtx, mailbox MailboxID, modseq uint64, uids []UID) error {
	if len(uids) == 0 {
		return nil
	}
	for _, u := range uids {
		if _, err := tx.Exec("INSERT INTO vanished(mailbox_id, modseq, uid) VALUES (?, ?, ?)", mailbox, modseq, u); err != nil {
			return fmt.Errorf("record expunged uid %d: %w", u, err)
		}
	}
	var count int
	if err := tx.QueryRow("UPDATE mailboxes SET vanished_count = vanished_count + ? WHERE id = ? RETURNING vanished_count",
		len(uids), mailbox).Scan(&count); err != nil {
		return fmt.Errorf("count expunged uids: %w", err)
	}
	if count <= tx.maxVanished {
		return nil
	}
	return pruneVanishedTx(tx, mailbox, count)
}

// pruneVanishedTx moves a mailbox's horizon: it is called by the expunge
// that takes the mailbox past Options.MaxVanished tombstones (count), and
// drops the oldest, down to at most three quarters of the limit, whole
// modseqs at a time (the tombstones of one expunge share its modseq).
// The horizon becomes the modseq of the newest tombstone dropped: every
// expunge after it still has its tombstones. There is no timer: the
// horizon moves only when the mailbox loses messages, and stays where it
// is for a mailbox that loses none, however old its tombstones. Pruning
// to three quarters rather than to the limit makes the cost (finding
// the cut-off walks the dropped tombstones in the index) one step per
// dropped tombstone, paid once per quarter of the limit.
func pruneVanishedTx(tx *wtx, mailbox MailboxID, count int) error {
	keep := tx.maxVanished - tx.maxVanished/4
	drop := count - keep
	var cutoff uint64
	err := tx.QueryRow("SELECT modseq FROM vanished WHERE mailbox_id = ? ORDER BY modseq LIMIT 1 OFFSET ?",
		mailbox, drop-1).Scan(&cutoff)
	if errors.Is(err, sql.ErrNoRows) {
		// The count says more than the table holds (a repaired or
		// partly restored file): count again rather than fail every
		// expunge of the mailbox from now on.
		if _, err := tx.Exec("UPDATE mailboxes SET vanished_count = (SELECT count(*) FROM vanished WHERE mailbox_id = ?) WHERE id = ?", mailbox, mailbox); err != nil {
			return fmt.Errorf("prune expunged uids: recount: %w", err)
		}
		return nil
	}
	if err != nil {
		return fmt.Errorf("prune expunged uids: %w", err)
	}
	res, err := tx.Exec("DELETE FROM vanished WHERE mailbox_id = ? AND modseq <= ?", mailbox, cutoff)
	if err != nil {
		return fmt.Errorf("prune expunged uids: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return fmt.Errorf("prune expunged uids: %w", err)
	}
	if _, err := tx.Exec("UPDATE mailboxes SET vanished_count = vanished_count - ?, vanished_horizon = max(vanished_horizon, ?) WHERE id = ?",
		n, cutoff, mailbox); err != nil {
		return fmt.Errorf("prune expunged uids: %w", err)
	}
	return nil
}
