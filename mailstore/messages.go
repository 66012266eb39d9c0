package mailstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strings"
	"time"

	"pushmail/message"
	"pushmail/notify"
)

// Message is one message's stored metadata.
type Message struct {
	UID          UID
	Flags        []string
	InternalDate time.Time
	Size         int64
	ModSeq       uint64
	// Email is the message's email id (its body's, emails.go): the same
	// for the copies of one message in every mailbox of the account
	// (COPY, MOVE), and never handed out again (account.go).
	Email EmailID
	// SaveDate is when the message was stored into this mailbox (RFC
	// 8514; savedate.go); the zero time if unknown.
	SaveDate time.Time
	Parsed   *message.Parsed // with FetchOptions.Parsed
	Raw      []byte          // with FetchOptions.Body: the whole message
}

// FetchOptions says what Messages loads besides the flags, dates and sizes.
type FetchOptions struct {
	Parsed bool // the stored envelope and MIME structure
	Body   bool // the raw message bytes
	// Header loads only the message's header block into Raw (the bytes
	// before Parsed.Root.BodyStart): enough for BODY[HEADER] and
	// HEADER.FIELDS, without reading the body. Body takes precedence.
	Header bool
	// ChangedSince limits Messages to the messages whose modseq is above
	// it (RFC 7162 §3.1.4.1, FETCH CHANGEDSINCE): those added or
	// reflagged after it. Every modseq is at least 1, so the zero value
	// leaves out no message. The messages are found through the modseq
	// index, not by reading the whole set.
	ChangedSince uint64
}

// body is a message ready to store: its raw bytes, header and parse result.
type body struct {
	raw    []byte
	header []byte
	parsed []byte // JSON of message.Parsed
	text   bodyText
	// crlfSize is len(raw) plus one for every LF without a CR before it:
	// the size sent in CRLF form (maildrop.go).
	crlfSize int64
}

// newBody prepares raw for storing; pack is Store.indexPacksText.
func newBody(raw []byte, p *message.Parsed, pack bool) (body, error) {
	js, err := json.Marshal(p)
	if err != nil {
		return body{}, fmt.Errorf("encode parsed message: %w", err)
	}
	text := newBodyText(raw, toSearchPart(&p.Root))
	if pack {
		// Here, off the writer: deliveries prepare their bodies in
		// parallel.
		text = text.packed()
	}
	return body{raw: raw, header: raw[:p.Root.BodyStart], parsed: js, text: text,
		crlfSize: crlfSize(raw)}, nil
}

func (s *Store) checkSize(n int) error {
	if s.opts.MaxMessageSize > 0 && int64(n) > s.opts.MaxMessageSize {
		return fmt.Errorf("%w: %d bytes, limit %d", ErrTooBig, n, s.opts.MaxMessageSize)
	}
	return nil
}

// Deliver stores raw in the mailbox of every recipient, in one transaction:
// all copies or none. It returns once the commit is durable and the
// Appended events are published, with the new UID of each copy, in the
// order of rcpts. The message is parsed once here (message.Parse never rejects
// malformed mail); a recipient's Header is prepended to its copy only.
func (s *Store) Deliver(ctx context.Context, raw []byte, rcpts []Recipient) ([]UID, error) {
	if len(rcpts) == 0 {
		return nil, errors.New("deliver: no recipients")
	}
	if err := s.checkSize(len(raw)); err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	// Parse and encode outside the writer, so concurrent deliveries parse
	// in parallel and the writer only writes. The shared body (raw as is)
	// is encoded only if a recipient has no Header: smtpd gives every
	// copy trace fields of its own.
	parsed := message.Parse(raw)
	var shared body
	haveShared := false
	var err error
	bodies := make([]body, len(rcpts))
	size := 0
	for i, r := range rcpts {
		if len(r.Header) == 0 {
			if !haveShared {
				if shared, err = newBody(raw, parsed, s.indexPacksText()); err != nil {
					return nil, fmt.Errorf("deliver: %w", err)
				}
				haveShared = true
			}
			bodies[i] = shared
			continue
		}
		full := make([]byte, 0, len(r.Header)+len(raw))
		full = append(append(full, r.Header...), raw...)
		if bodies[i], err = newBody(full, parsed.Shift(int64(len(r.Header))), s.indexPacksText()); err != nil {
			return nil, fmt.Errorf("deliver: %w", err)
		}
		size += len(full)
	}
	size += len(raw)
	now := time.Now()
	uids := make([]UID, len(rcpts))
	err = s.writeMail(ctx, size, func(tx *wtx) ([]notify.Event, error) {
		sharedID := int64(0)
		byMailbox := map[MailboxID]*notify.Event{}
		var order []MailboxID
		addresses := map[MailboxID]string{} // the first recipient of each mailbox, for errors
		for i, r := range rcpts {
			var bodyID int64
			var err error
			var uid UID
			var modseq uint64
			switch {
			case len(r.Header) == 0 && sharedID != 0:
				bodyID = sharedID
				uid, modseq, err = insertMessageTx(tx, r.Mailbox, bodyID, flagSet{}, now, len(bodies[i].raw))
			case tx.postgres:
				bodyID, uid, modseq, err = insertBodyMessagePostgresTx(tx, bodies[i], r.Mailbox, flagSet{}, now)
			default:
				if bodyID, err = insertBodyTx(tx, bodies[i]); err != nil {
					return nil, err
				}
				uid, modseq, err = insertMessageTx(tx, r.Mailbox, bodyID, flagSet{}, now, len(bodies[i].raw))
			}
			if err != nil {
				return nil, fmt.Errorf("deliver to %s: %w", r.Address, err)
			}
			if len(r.Header) == 0 {
				sharedID = bodyID
			}
			uids[i] = uid
			ev := byMailbox[r.Mailbox]
			if ev == nil {
				// r.Mailbox is r.User's INBOX: no lookup of its owner
				// (fillUsersTx), a round trip on PostgreSQL.
				ev = &notify.Event{Mailbox: int64(r.Mailbox), User: int64(r.User), Kind: notify.Appended}
				byMailbox[r.Mailbox] = ev
				order = append(order, r.Mailbox)
				addresses[r.Mailbox] = r.Address
			}
			ev.UIDs = append(ev.UIDs, uint32(uid))
			ev.ModSeq = modseq
		}
		// RFC 9208 §4.3: each recipient's quota, with what this
		// delivery added to it; one over it fails the delivery. A
		// recipient's mailbox is its user's INBOX, so the mailboxes of
		// order have the recipients' users as owners: one read per
		// mailbox gives the event's counts and its owner's quota, a
		// round trip fewer per delivery on PostgreSQL, where the other
		// nodes wait for this node's writes.
		checked := map[UserID]bool{}
		events := make([]notify.Event, 0, len(order))
		for _, mb := range order {
			ev := byMailbox[mb]
			q, err := fillCountQuota(tx, ev)
			if err != nil {
				return nil, err
			}
			if !checked[UserID(ev.User)] {
				checked[UserID(ev.User)] = true
				if err := q.over(); err != nil {
					return nil, fmt.Errorf("deliver to %s: %w", addresses[mb], err)
				}
			}
			events = append(events, *ev)
		}
		return events, nil
	})
	if err != nil {
		return nil, fmt.Errorf("deliver: %w", err)
	}
	return uids, nil
}

// AppendResult says where Append put a message (RFC 4315 APPENDUID).
type AppendResult struct {
	UIDValidity uint32
	UID         UID
}

// Append stores raw in one mailbox with the given flags and internal date
// (the zero time means now). origin is the appending session's
// subscription ID (0 if none), passed on in the event.
func (s *Store) Append(ctx context.Context, mailbox MailboxID, raw []byte, flags []string, date time.Time, origin uint64) (AppendResult, error) {
	if err := s.checkSize(len(raw)); err != nil {
		return AppendResult{}, fmt.Errorf("append: %w", err)
	}
	fs, err := parseFlags(flags)
	if err != nil {
		return AppendResult{}, fmt.Errorf("append: %w", err)
	}
	b, err := newBody(raw, message.Parse(raw), s.indexPacksText())
	if err != nil {
		return AppendResult{}, fmt.Errorf("append: %w", err)
	}
	if date.IsZero() {
		date = time.Now()
	}
	var res AppendResult
	err = s.writeMail(ctx, len(raw), func(tx *wtx) ([]notify.Event, error) {
		if err := tx.QueryRow("SELECT uidvalidity FROM mailboxes WHERE id = ?", mailbox).Scan(&res.UIDValidity); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil, ErrNoSuchMailbox
			}
			return nil, err
		}
		bodyID, err := insertBodyTx(tx, b)
		if err != nil {
			return nil, err
		}
		uid, modseq, err := insertMessageTx(tx, mailbox, bodyID, fs, date, len(raw))
		if err != nil {
			return nil, err
		}
		if err := checkMailboxQuotaTx(tx, mailbox); err != nil {
			return nil, err
		}
		res.UID = uid
		ev := notify.Event{Mailbox: int64(mailbox), Kind: notify.Appended, UIDs: []uint32{uint32(uid)}, ModSeq: modseq, Origin: origin}
		if err := fillCount(tx, &ev); err != nil {
			return nil, err
		}
		return []notify.Event{ev}, nil
	})
	if err != nil {
		return AppendResult{}, fmt.Errorf("append: %w", err)
	}
	return res, nil
}

func insertBodyTx(tx *wtx, b body) (int64, error) {
	if tx.postgres {
		return insertBodyPostgresTx(tx, b)
	}
	// A body id is an email id of the HTTP API, never to be handed out
	// twice (account.go).
	var id int64
	err := tx.QueryRow("INSERT INTO bodies(id, header, raw, parsed) VALUES ("+nextIDSQL("bodies")+", ?, ?, ?) RETURNING id", b.header, b.raw, b.parsed).Scan(&id)
	if err != nil {
		return 0, fmt.Errorf("store body: %w", err)
	}
	if _, err := tx.Exec("INSERT INTO body_crlf_size(id, size) VALUES (?, ?)", id, b.crlfSize); err != nil {
		return 0, fmt.Errorf("store body size: %w", err)
	}
	// For the full-text index, written behind (fulltextmark.go).
	*tx.bodyText = append(*tx.bodyText, bodyTextRow{id: id, text: b.text})
	return id, insertSortKeysTx(tx, id)
}

// insertBodyPostgresSQL is insertBodyTx's three INSERTs (the body, its
// CRLF size, its sort keys) as one statement, for PostgreSQL, where each
// statement is a round trip to the server: the body's row is the CTE b,
// which the other two read (data-modifying WITH, PostgreSQL manual
// §7.8.4). The foreign keys are checked at the end of the statement, when
// the body is there.
var insertBodyPostgresSQL = "WITH b AS (INSERT INTO bodies(id, header, raw, parsed) VALUES (" + nextIDSQL("bodies") +
	", ?1, ?2, ?3) RETURNING id, parsed), " +
	"c AS (INSERT INTO body_crlf_size(id, size) SELECT id, ?4 FROM b), " +
	"k AS (INSERT INTO sortkeys(body_id, " + sortKeyColumns + ") SELECT b.id, " + sortKeyExprsPostgres +
	" FROM b, LATERAL (SELECT b.parsed::jsonb AS j) p) " +
	"SELECT id FROM b"

// insertBodyMessagePostgresSQL is insertBodyPostgresSQL and
// insertMessagePostgresSQL as one statement: a delivery's body and its
// message in one round trip. The message's foreign key to the body, like
// the body's other rows', is checked at the end of the statement, and the
// AFTER triggers of both INSERTs run then too, after every CTE. When the
// mailbox is gone, n yields no row, the statement returns none and the
// caller fails the write, which rolls the body back with it.
var insertBodyMessagePostgresSQL = strings.TrimSuffix(insertBodyPostgresSQL, "SELECT id FROM b") +
	", n AS (UPDATE mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1 WHERE id = ?5 " +
	"RETURNING uidnext - 1 AS uid, highest_modseq AS modseq), " +
	"m AS (INSERT INTO messages(mailbox_id, uid, body_id, flags, keywords, internal_date, size, modseq, save_date) " +
	"SELECT ?5, n.uid, b.id, ?6, ?7, ?8, ?9, n.modseq, ?10 FROM b, n RETURNING uid, modseq) " +
	"SELECT b.id, m.uid, m.modseq FROM b, m"

// insertBodyMessagePostgresTx is insertBodyTx then insertMessageTx, on
// PostgreSQL, in one round trip (insertBodyMessagePostgresSQL).
func insertBodyMessagePostgresTx(tx *wtx, b body, mailbox MailboxID, fs flagSet, date time.Time) (bodyID int64, uid UID, modseq uint64, err error) {
	// RFC 8514 §3: the save date is when the message is stored here.
	err = tx.QueryRow(insertBodyMessagePostgresSQL, b.header, b.raw, b.parsed, b.crlfSize,
		mailbox, fs.bits, encodeKeywords(fs.keywords), date.UnixNano(), len(b.raw), time.Now().UnixNano()).Scan(&bodyID, &uid, &modseq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, 0, ErrNoSuchMailbox
	}
	if err != nil {
		return 0, 0, 0, fmt.Errorf("store message: %w", err)
	}
	*tx.bodyText = append(*tx.bodyText, bodyTextRow{id: bodyID, text: b.text})
	return bodyID, uid, modseq, nil
}

// insertBodyPostgresTx is insertBodyTx on PostgreSQL, in one round trip.
func insertBodyPostgresTx(tx *wtx, b body) (int64, error) {
	var id int64
	if err := tx.QueryRow(insertBodyPostgresSQL, b.header, b.raw, b.parsed, b.crlfSize).Scan(&id); err != nil {
		return 0, fmt.Errorf("store body: %w", err)
	}
	*tx.bodyText = append(*tx.bodyText, bodyTextRow{id: id, text: b.text})
	return id, nil
}

// nextUIDTx takes the mailbox's next UID and modseq. UIDNEXT only ever
// grows, so a UID is never handed out twice (RFC 9051 §2.3.1.1).
func nextUIDTx(tx *wtx, mailbox MailboxID) (UID, uint64, error) {
	var uid UID
	var modseq uint64
	err := tx.QueryRow("UPDATE mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING uidnext - 1, highest_modseq",
		mailbox).Scan(&uid, &modseq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, 0, ErrNoSuchMailbox
	}
	if err != nil {
		return 0, 0, fmt.Errorf("next uid: %w", err)
	}
	return uid, modseq, nil
}

// insertMessagePostgresSQL is insertMessageTx's two statements (the
// mailbox's next UID and modseq, then the message row) as one, for
// PostgreSQL, where each statement is a round trip made while this node
// holds the write lock and the other nodes wait for it. The UPDATE is the
// CTE n, which the INSERT reads (PostgreSQL manual §7.8.4); it yields no
// row, and so inserts none, when the mailbox is gone. The AFTER triggers
// of the INSERT (the mailbox's counters, the account log) run at the end
// of the statement, after n's UPDATE, and see it, as they saw the UPDATE
// of a statement of its own before; n's UPDATE sets no column those
// triggers watch (uidnext and highest_modseq), as before.
const insertMessagePostgresSQL = "WITH n AS (UPDATE mailboxes SET uidnext = uidnext + 1, highest_modseq = highest_modseq + 1 WHERE id = ?1 " +
	"RETURNING uidnext - 1 AS uid, highest_modseq AS modseq) " +
	"INSERT INTO messages(mailbox_id, uid, body_id, flags, keywords, internal_date, size, modseq, save_date) " +
	"SELECT ?1, n.uid, ?2, ?3, ?4, ?5, ?6, n.modseq, ?7 FROM n RETURNING uid, modseq"

func insertMessageTx(tx *wtx, mailbox MailboxID, bodyID int64, fs flagSet, date time.Time, size int) (UID, uint64, error) {
	if tx.postgres {
		// RFC 8514 §3: the save date is when the message is stored here.
		var uid UID
		var modseq uint64
		err := tx.QueryRow(insertMessagePostgresSQL, mailbox, bodyID, fs.bits, encodeKeywords(fs.keywords), date.UnixNano(), size, time.Now().UnixNano()).Scan(&uid, &modseq)
		if errors.Is(err, sql.ErrNoRows) {
			return 0, 0, ErrNoSuchMailbox
		}
		if err != nil {
			return 0, 0, fmt.Errorf("store message: %w", err)
		}
		return uid, modseq, nil
	}
	uid, modseq, err := nextUIDTx(tx, mailbox)
	if err != nil {
		return 0, 0, err
	}
	// RFC 8514 §3: the save date is when the message is stored here.
	_, err = tx.Exec("INSERT INTO messages(mailbox_id, uid, body_id, flags, keywords, internal_date, size, modseq, save_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
		mailbox, uid, bodyID, fs.bits, encodeKeywords(fs.keywords), date.UnixNano(), size, modseq, time.Now().UnixNano())
	if err != nil {
		return 0, 0, fmt.Errorf("store message: %w", err)
	}
	return uid, modseq, nil
}

// fillCount sets ev.Messages (and ModSeq) from the mailbox row.
func fillCount(tx *wtx, ev *notify.Event) error {
	return tx.QueryRow("SELECT message_count, highest_modseq FROM mailboxes WHERE id = ?", ev.Mailbox).
		Scan(&ev.Messages, &ev.ModSeq)
}

// fillCountQuota is fillCount that also returns the quota of the
// mailbox's owner (checkQuotaTx), read in the same statement.
func fillCountQuota(tx *wtx, ev *notify.Event) (Quota, error) {
	var q Quota
	err := tx.QueryRow("SELECT m.message_count, m.highest_modseq, u.quota_storage, u.quota_messages, u.used_storage, u.used_messages "+
		"FROM mailboxes m JOIN users u ON u.id = m.user_id WHERE m.id = ?", ev.Mailbox).
		Scan(&ev.Messages, &ev.ModSeq, &q.StorageLimit, &q.MessageLimit, &q.StorageUsed, &q.MessagesUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Quota{}, ErrNoSuchMailbox
	}
	return q, err
}

// FlagUpdate is one message's flags and their modseq: after StoreFlags,
// or as ChangesSince found them.
type FlagUpdate struct {
	UID    UID
	Flags  []string
	ModSeq uint64
}

// StoreFlags changes the flags of the messages of set in mailbox and
// returns the resulting flags of every message in the set (changed or not),
// ascending by UID. Changed messages get a new modseq and are published in
// one FlagsChanged event carrying origin.
func (s *Store) StoreFlags(ctx context.Context, mailbox MailboxID, set UIDSet, op FlagOp, flags []string, origin uint64) ([]FlagUpdate, error) {
	updates, _, err := s.storeFlags(ctx, mailbox, set, op, flags, storeCondition{}, origin)
	if err != nil {
		return nil, fmt.Errorf("store flags: %w", err)
	}
	return updates, nil
}

// storeCondition is the test a message must pass for storeFlags to
// change it: none (StoreFlags), or RFC 7162 §3.1.3's UNCHANGEDSINCE
// (StoreFlagsUnchangedSince).
type storeCondition struct {
	unchanged      bool   // test the modseq: change only messages at or below unchangedSince
	unchangedSince uint64 // with unchanged; 0 is a real bound, which every message fails
}

// storeFlags is StoreFlags under cond: a message of set that fails cond is
// left as it is, missing from updates, and listed in failed (ascending).
func (s *Store) storeFlags(ctx context.Context, mailbox MailboxID, set UIDSet, op FlagOp, flags []string, cond storeCondition, origin uint64) (updates []FlagUpdate, failed []UID, err error) {
	arg, err := parseFlags(flags)
	if err != nil {
		return nil, nil, err
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		updates, failed = updates[:0], failed[:0] // this run's alone (writeFunc)
		lo, hi := set.bounds()
		inSet := set.matcher()
		rows, err := tx.Query("SELECT uid, flags, keywords, modseq FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid",
			mailbox, lo, hi)
		if err != nil {
			return nil, err
		}
		type change struct {
			i  int
			fs flagSet
		}
		var changes []change
		for rows.Next() {
			var u FlagUpdate
			var old flagSet
			var kw string
			if err := rows.Scan(&u.UID, &old.bits, &kw, &u.ModSeq); err != nil {
				rows.Close()
				return nil, err
			}
			if !inSet(u.UID) {
				continue
			}
			// The test and the change happen in this one write, so no
			// other change can fall between them: the writer runs one
			// write at a time.
			if cond.unchanged && u.ModSeq > cond.unchangedSince {
				failed = append(failed, u.UID)
				continue
			}
			old.keywords, _ = splitKeywords(kw)
			nw := old.apply(op, arg)
			if nw.bits != old.bits || encodeKeywords(nw.keywords) != kw {
				changes = append(changes, change{len(updates), nw})
			}
			u.Flags = decodeFlags(nw.bits, encodeKeywords(nw.keywords))
			updates = append(updates, u)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		if len(changes) == 0 {
			return nil, nil
		}
		var modseq uint64
		if err := tx.QueryRow("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq", mailbox).Scan(&modseq); err != nil {
			return nil, err
		}
		ev := notify.Event{Mailbox: int64(mailbox), Kind: notify.FlagsChanged, ModSeq: modseq, Origin: origin}
		for _, c := range changes {
			u := &updates[c.i]
			if _, err := tx.Exec("UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
				c.fs.bits, encodeKeywords(c.fs.keywords), modseq, mailbox, u.UID); err != nil {
				return nil, err
			}
			u.ModSeq = modseq
			ev.Flags = append(ev.Flags, notify.FlagUpdate{UID: uint32(u.UID), Flags: u.Flags})
		}
		return []notify.Event{ev}, nil
	})
	if err != nil {
		return nil, nil, err
	}
	return updates, failed, nil
}

// splitKeywords parses a stored keywords column.
func splitKeywords(kw string) ([]string, error) {
	fs, err := parseFlags(decodeFlags(0, kw))
	return fs.keywords, err
}

// Expunge removes the messages of set that have the \Deleted flag and
// returns their UIDs, ascending: AllUIDs for EXPUNGE and CLOSE (RFC 9051
// §6.4.3, §6.4.2), the client's set for UID EXPUNGE (RFC 4315 §2.1). A
// message without \Deleted is never removed; with none, or an empty set,
// nothing is.
func (s *Store) Expunge(ctx context.Context, mailbox MailboxID, set UIDSet, origin uint64) ([]UID, error) {
	var expunged []UID
	if len(set) == 0 {
		return nil, nil
	}
	err := s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		lo, hi := set.bounds()
		// flags & 8 spelt out: the messages_deleted index needs the literal.
		rows, err := tx.Query("SELECT uid FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? AND flags & 8 != 0 ORDER BY uid",
			mailbox, lo, hi)
		if err != nil {
			return nil, err
		}
		expunged, err = collectUIDs(rows, set)
		if err != nil {
			return nil, err
		}
		return deleteMessagesTx(tx, mailbox, expunged, origin)
	})
	if err != nil {
		return nil, fmt.Errorf("expunge: %w", err)
	}
	return expunged, nil
}

func collectUIDs(rows *sql.Rows, set UIDSet) ([]UID, error) {
	defer rows.Close()
	inSet := set.matcher()
	var uids []UID
	for rows.Next() {
		var u UID
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		if inSet(u) {
			uids = append(uids, u)
		}
	}
	return uids, rows.Err()
}

// deleteMessagesTx deletes exactly the given messages, none if uids is
// empty, and returns the Expunged event. The expunge takes one new modseq
// for all of them, and leaves a tombstone of each at it (RFC 7162 §3.2;
// recordVanishedTx).
func deleteMessagesTx(tx *wtx, mailbox MailboxID, uids []UID, origin uint64) ([]notify.Event, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	ev := notify.Event{Mailbox: int64(mailbox), Kind: notify.Expunged, Origin: origin, UIDs: make([]uint32, 0, len(uids))}
	gone := make([]UID, 0, len(uids))
	for _, u := range uids {
		res, err := tx.Exec("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", mailbox, u)
		if err != nil {
			return nil, err
		}
		// Callers pass UIDs they just read in this transaction; one that
		// was not there gets no tombstone and no mention.
		if n, err := res.RowsAffected(); err != nil {
			return nil, err
		} else if n == 1 {
			gone = append(gone, u)
			ev.UIDs = append(ev.UIDs, uint32(u))
		}
	}
	if len(gone) == 0 {
		return nil, nil
	}
	if err := tx.QueryRow("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING message_count, highest_modseq", mailbox).
		Scan(&ev.Messages, &ev.ModSeq); err != nil {
		return nil, err
	}
	if err := recordVanishedTx(tx, mailbox, ev.ModSeq, gone); err != nil {
		return nil, err
	}
	return []notify.Event{ev}, nil
}

// CopyResult pairs source and destination UIDs (RFC 4315 COPYUID).
type CopyResult struct {
	UIDValidity uint32 // of the destination
	Source      []UID
	Dest        []UID
}

// Copy copies the messages of set from src to dst, keeping flags and
// internal dates (RFC 9051 §6.4.7); the copies share the source bodies.
// Both mailboxes must belong to the same user.
func (s *Store) Copy(ctx context.Context, src MailboxID, set UIDSet, dst MailboxID, origin uint64) (CopyResult, error) {
	var res CopyResult
	err := s.writeMail(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		var events []notify.Event
		var err error
		res, events, err = copyMessagesTx(tx, src, set, dst, origin)
		if err == nil && len(res.Dest) > 0 {
			err = checkMailboxQuotaTx(tx, dst)
		}
		return events, err
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("copy: %w", err)
	}
	return res, nil
}

// Move moves the messages of set from src to dst (RFC 6851): a copy and
// an expunge of the source messages in one transaction. It adds nothing
// to the user's quota usage, so no quota refuses it.
func (s *Store) Move(ctx context.Context, src MailboxID, set UIDSet, dst MailboxID, origin uint64) (CopyResult, error) {
	var res CopyResult
	err := s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		var events []notify.Event
		var err error
		res, events, err = copyMessagesTx(tx, src, set, dst, origin)
		if err != nil || len(res.Source) == 0 {
			return events, err
		}
		expunged, err := deleteMessagesTx(tx, src, res.Source, origin)
		return append(events, expunged...), err
	})
	if err != nil {
		return CopyResult{}, fmt.Errorf("move: %w", err)
	}
	return res, nil
}

func copyMessagesTx(tx *wtx, src MailboxID, set UIDSet, dst MailboxID, origin uint64) (CopyResult, []notify.Event, error) {
	var res CopyResult
	var sameUser int
	err := tx.QueryRow("SELECT d.uidvalidity, d.user_id = s.user_id FROM mailboxes d, mailboxes s WHERE d.id = ? AND s.id = ?",
		dst, src).Scan(&res.UIDValidity, &sameUser)
	if errors.Is(err, sql.ErrNoRows) {
		return res, nil, ErrNoSuchMailbox
	}
	if err != nil {
		return res, nil, err
	}
	if sameUser == 0 {
		return res, nil, ErrNoSuchMailbox // never reveal another user's mailbox
	}
	lo, hi := set.bounds()
	inSet := set.matcher()
	rows, err := tx.Query("SELECT uid, body_id, flags, keywords, internal_date, size FROM messages WHERE mailbox_id = ? AND uid BETWEEN ? AND ? ORDER BY uid",
		src, lo, hi)
	if err != nil {
		return res, nil, err
	}
	type row struct {
		uid        UID
		body       int64
		bits       int
		kw         string
		date, size int64
	}
	var list []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.uid, &r.body, &r.bits, &r.kw, &r.date, &r.size); err != nil {
			rows.Close()
			return res, nil, err
		}
		if inSet(r.uid) {
			list = append(list, r)
		}
	}
	if err := rows.Close(); err != nil {
		return res, nil, err
	}
	if len(list) == 0 {
		return res, nil, nil
	}
	ev := notify.Event{Mailbox: int64(dst), Kind: notify.Appended, Origin: origin}
	saved := time.Now().UnixNano()
	for _, r := range list {
		uid, _, err := nextUIDTx(tx, dst)
		if err != nil {
			return res, nil, err
		}
		// RFC 8514 §3: a copy's save date is when it was copied, though
		// its internal date is the original's (RFC 9051 §6.4.7).
		if _, err := tx.Exec("INSERT INTO messages(mailbox_id, uid, body_id, flags, keywords, internal_date, size, modseq, save_date) SELECT ?, ?, ?, ?, ?, ?, ?, highest_modseq, ? FROM mailboxes WHERE id = ?",
			dst, uid, r.body, r.bits, r.kw, r.date, r.size, saved, dst); err != nil {
			return res, nil, err
		}
		res.Source = append(res.Source, r.uid)
		res.Dest = append(res.Dest, uid)
		ev.UIDs = append(ev.UIDs, uint32(uid))
	}
	if err := fillCount(tx, &ev); err != nil {
		return res, nil, err
	}
	return res, []notify.Event{ev}, nil
}

// UIDs returns every UID of the mailbox, ascending, read from the
// database into a slice of the caller's own. An IMAP session's view
// starts from the shared UIDList instead.
func (s *Store) UIDs(ctx context.Context, mailbox MailboxID) ([]UID, error) {
	uids, _, err := s.readUIDs(ctx, mailbox)
	return uids, err
}

// parseUIDList parses "1,2,5" (group_concat's output) into UIDs.
func parseUIDList(list string) ([]UID, error) {
	if list == "" {
		return nil, nil
	}
	uids := make([]UID, 0, strings.Count(list, ",")+1)
	var n uint64
	digits := 0
	for i := 0; i <= len(list); i++ {
		if i == len(list) || list[i] == ',' {
			if digits == 0 || n > math.MaxUint32 {
				return nil, fmt.Errorf("list uids: bad list near byte %d", i)
			}
			uids = append(uids, UID(n))
			n, digits = 0, 0
			continue
		}
		c := list[i]
		if c < '0' || c > '9' {
			return nil, fmt.Errorf("list uids: bad list near byte %d", i)
		}
		n = n*10 + uint64(c-'0')
		digits++
		if digits > 10 {
			return nil, fmt.Errorf("list uids: bad list near byte %d", i)
		}
	}
	return uids, nil
}

// FirstUnseen returns the lowest UID without \Seen, or 0 if all are seen.
func (s *Store) FirstUnseen(ctx context.Context, mailbox MailboxID) (UID, error) {
	var uid UID
	err := s.queryRow(ctx, // flags & 1 spelt out: the messages_unseen index needs the literal.
		"SELECT uid FROM messages WHERE mailbox_id = ? AND flags & 1 = 0 ORDER BY uid LIMIT 1", mailbox).Scan(&uid)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("first unseen: %w", err)
	}
	return uid, nil
}

// Messages calls fn for each message of set in mailbox (AllUIDs for
// every one; an empty set calls it for none), ascending by UID, streaming
// from the database. fn must not call the
// Store (it holds a read connection) and must not keep m.Raw after it
// returns. An error from fn stops the iteration and is returned.
func (s *Store) Messages(ctx context.Context, mailbox MailboxID, set UIDSet, opts FetchOptions, fn func(m *Message) error) error {
	cols := "m.uid, m.flags, m.keywords, m.internal_date, m.size, m.modseq, m.body_id, m.save_date"
	from := "messages m"
	where := "m.mailbox_id = ? AND m.uid BETWEEN ? AND ?"
	lo, hi := set.bounds()
	args := []any{mailbox, lo, hi}
	if opts.ChangedSince > 0 {
		// INDEXED BY: SQLite would otherwise often take the primary key
		// for the UID range, and read every message of it.
		from = "messages m INDEXED BY messages_modseq"
		where += " AND m.modseq > ?"
		args = append(args, opts.ChangedSince)
	}
	joined := opts.Parsed || opts.Body || opts.Header
	if joined {
		from += " JOIN bodies b ON b.id = m.body_id"
		if opts.Parsed {
			cols += ", b.parsed"
		} else {
			cols += ", NULL"
		}
		switch {
		case opts.Body:
			cols += ", b.raw"
		case opts.Header:
			cols += ", b.header"
		default:
			cols += ", NULL"
		}
	}
	if len(set) == 0 {
		return nil
	}
	inSet := set.matcher()
	rows, err := s.query(ctx, "SELECT "+cols+" FROM "+from+" WHERE "+where+" ORDER BY m.uid", args...)
	if err != nil {
		return fmt.Errorf("fetch messages: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m Message
		var bits int
		var kw string
		var date int64
		var parsed, raw []byte
		var saved sql.NullInt64
		dest := []any{&m.UID, &bits, &kw, &date, &m.Size, &m.ModSeq, &m.Email, &saved}
		if joined {
			dest = append(dest, &parsed, &raw)
		}
		if err := rows.Scan(dest...); err != nil {
			return fmt.Errorf("fetch messages: %w", err)
		}
		if !inSet(m.UID) {
			continue
		}
		m.Flags = decodeFlags(bits, kw)
		m.InternalDate = time.Unix(0, date)
		if saved.Valid {
			m.SaveDate = time.Unix(0, saved.Int64)
		}
		if opts.Parsed {
			m.Parsed = new(message.Parsed)
			if err := json.Unmarshal(parsed, m.Parsed); err != nil {
				return fmt.Errorf("fetch message %d: decode parsed: %w", m.UID, err)
			}
		}
		m.Raw = raw
		if err := fn(&m); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("fetch messages: %w", err)
	}
	return nil
}
