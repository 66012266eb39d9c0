package mailstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"pushmail/message"
	"pushmail/notify"
)

// Emails as the HTTP API sees them (RFC 8621 §4): an email is a message
// of an account in every mailbox it is in, that is the user's messages
// that share one body row (a copy shares its source's body). Its id is
// the body's id, which is never handed out twice (account.go). Its flags
// are the union of its messages' flags; setting them sets every
// message's.

// EmailID identifies an email within its account: its body's id.
type EmailID int64

// MessageRef is one message of an account: which email it is, where it
// is, and what a query filters and sorts on without its body.
type MessageRef struct {
	Email        EmailID
	Mailbox      MailboxID
	UID          UID
	InternalDate time.Time
	Size         int64
}

// AccountMessages returns every message of user, ascending by email id
// then mailbox: the universe an email query works in. It reads no body.
func (s *Store) AccountMessages(ctx context.Context, user UserID) ([]MessageRef, error) {
	rows, err := s.query(ctx, `SELECT m.body_id, m.mailbox_id, m.uid, m.internal_date, m.size
		FROM mailboxes b JOIN messages m ON m.mailbox_id = b.id WHERE b.user_id = ? ORDER BY m.body_id, m.mailbox_id, m.uid`, user)
	if err != nil {
		return nil, fmt.Errorf("account messages: %w", err)
	}
	defer rows.Close()
	var refs []MessageRef
	for rows.Next() {
		var r MessageRef
		var date int64
		if err := rows.Scan(&r.Email, &r.Mailbox, &r.UID, &date, &r.Size); err != nil {
			return nil, fmt.Errorf("account messages: %w", err)
		}
		r.InternalDate = time.Unix(0, date)
		refs = append(refs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("account messages: %w", err)
	}
	return refs, nil
}

// Email is one email of an account, as Emails reads it.
type Email struct {
	ID EmailID
	// Mailboxes maps each mailbox the email is in to its message's UID
	// there.
	Mailboxes map[MailboxID]UID
	// Flags is the union of its messages' flags.
	Flags []string
	// InternalDate is the earliest of its messages' internal dates.
	InternalDate time.Time
	Size         int64
	Parsed       *message.Parsed // with EmailOptions.Parsed
	Raw          []byte          // with EmailOptions.Body
}

// EmailOptions says what Emails loads besides mailboxes, flags, date
// and size.
type EmailOptions struct {
	Parsed bool // the envelope and MIME structure stored at delivery
	Body   bool // the raw message
}

// Emails returns the emails of user among ids, in the order of ids; ids
// the account does not have are left out (the caller reports them "not
// found").
func (s *Store) Emails(ctx context.Context, user UserID, ids []EmailID, opts EmailOptions) ([]Email, error) {
	if len(ids) == 0 {
		return nil, nil
	}
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("emails: %w", err)
	}
	defer rollbackRead(tx)
	byID := map[EmailID]*Email{}
	args := make([]any, 0, len(ids)+1)
	args = append(args, user)
	for _, id := range ids {
		args = append(args, id)
	}
	marks := strings.Repeat(",?", len(ids))[1:]
	rows, err := tx.QueryContext(ctx, `SELECT m.body_id, m.mailbox_id, m.uid, m.flags, m.keywords, m.internal_date, m.size
		FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
		WHERE b.user_id = ? AND m.body_id IN (`+marks+`) ORDER BY m.body_id, m.mailbox_id`, args...)
	if err != nil {
		return nil, fmt.Errorf("emails: %w", err)
	}
	for rows.Next() {
		var id EmailID
		var mb MailboxID
		var uid UID
		var bits int
		var kw string
		var date, size int64
		if err := rows.Scan(&id, &mb, &uid, &bits, &kw, &date, &size); err != nil {
			rows.Close()
			return nil, fmt.Errorf("emails: %w", err)
		}
		e := byID[id]
		if e == nil {
			e = &Email{ID: id, Mailboxes: map[MailboxID]UID{}, InternalDate: time.Unix(0, date), Size: size}
			byID[id] = e
		}
		e.Mailboxes[mb] = uid
		for _, f := range decodeFlags(bits, kw) {
			if !containsFold(e.Flags, f) {
				e.Flags = append(e.Flags, f)
			}
		}
		if d := time.Unix(0, date); d.Before(e.InternalDate) {
			e.InternalDate = d
		}
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("emails: %w", err)
	}
	out := make([]Email, 0, len(byID))
	for _, id := range ids {
		e := byID[id]
		if e == nil {
			continue
		}
		if opts.Parsed || opts.Body {
			var parsed, raw []byte
			if err := tx.QueryRowContext(ctx, "SELECT CASE WHEN ? THEN parsed END, CASE WHEN ? THEN raw END FROM bodies WHERE id = ?",
				opts.Parsed, opts.Body, id).Scan(&parsed, &raw); err != nil {
				return nil, fmt.Errorf("email %d: %w", id, err)
			}
			if opts.Parsed {
				e.Parsed = new(message.Parsed)
				if err := json.Unmarshal(parsed, e.Parsed); err != nil {
					return nil, fmt.Errorf("email %d: decode parsed: %w", id, err)
				}
			}
			e.Raw = raw
		}
		out = append(out, *e)
		delete(byID, id) // an id asked twice is answered once
	}
	return out, nil
}

// EmailUpdate is a change to one email (RFC 8621 §4.6 Email/set update).
// A field left unset leaves that part of the email as it is.
type EmailUpdate struct {
	// SetFlags replaces the flags of every message of the email with
	// Flags.
	SetFlags bool
	Flags    []string
	// SetMailboxes puts the email in exactly Mailboxes (at least one): a
	// copy into each new one, which shares the body, and an expunge from
	// each it leaves.
	SetMailboxes bool
	Mailboxes    []MailboxID
}

// UpdateEmail applies u to user's email id in one write: mailboxes
// first (a new copy takes the flags of the message it is copied from),
// then flags. Only what u names changes; each changed mailbox takes a
// modseq, publishes its events and, like every write, the account log.
func (s *Store) UpdateEmail(ctx context.Context, user UserID, id EmailID, u EmailUpdate, origin uint64) error {
	var fs flagSet
	if u.SetFlags {
		var err error
		if fs, err = parseFlags(u.Flags); err != nil {
			return fmt.Errorf("update email %d: %w", id, err)
		}
	}
	if u.SetMailboxes && len(u.Mailboxes) == 0 {
		return fmt.Errorf("update email %d: an email must stay in a mailbox: %w", id, ErrNoSuchMailbox)
	}
	grows := u.SetMailboxes
	fn := func(tx *wtx) ([]notify.Event, error) {
		rows, err := emailMessagesTx(tx, user, id)
		if err != nil {
			return nil, err
		}
		var events []notify.Event
		if u.SetMailboxes {
			for _, mb := range u.Mailboxes {
				if err := ownMailboxTx(tx, user, mb); err != nil {
					return nil, err
				}
			}
			src := rows[0]
			for _, mb := range u.Mailboxes {
				if slices.ContainsFunc(rows, func(r emailMessage) bool { return r.mailbox == mb }) {
					continue
				}
				_, evs, err := copyMessagesTx(tx, src.mailbox, UIDSetOf(src.uid), mb, origin)
				if err != nil {
					return nil, err
				}
				events = append(events, evs...)
				if err := checkMailboxQuotaTx(tx, mb); err != nil {
					return nil, err
				}
			}
			for _, r := range rows {
				if slices.Contains(u.Mailboxes, r.mailbox) {
					continue
				}
				evs, err := deleteMessagesTx(tx, r.mailbox, []UID{r.uid}, origin)
				if err != nil {
					return nil, err
				}
				events = append(events, evs...)
			}
			if rows, err = emailMessagesTx(tx, user, id); err != nil {
				return nil, err
			}
		}
		if u.SetFlags {
			kw := encodeKeywords(fs.keywords)
			for _, r := range rows {
				if r.bits == fs.bits && r.keywords == kw {
					continue
				}
				var modseq uint64
				if err := tx.QueryRow("UPDATE mailboxes SET highest_modseq = highest_modseq + 1 WHERE id = ? RETURNING highest_modseq", r.mailbox).Scan(&modseq); err != nil {
					return nil, err
				}
				if _, err := tx.Exec("UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?",
					fs.bits, kw, modseq, r.mailbox, r.uid); err != nil {
					return nil, err
				}
				events = append(events, notify.Event{Mailbox: int64(r.mailbox), Kind: notify.FlagsChanged, ModSeq: modseq, Origin: origin,
					Flags: []notify.FlagUpdate{{UID: uint32(r.uid), Flags: decodeFlags(fs.bits, kw)}}})
			}
		}
		return events, nil
	}
	var err error
	if grows {
		err = s.writeMail(ctx, 0, fn)
	} else {
		err = s.write(ctx, 0, fn)
	}
	if err != nil {
		return fmt.Errorf("update email %d: %w", id, err)
	}
	return nil
}

// DestroyEmail removes user's email id from every mailbox it is in, and
// nothing else: exactly its messages are expunged, whatever their flags
// (RFC 8621 §4.6: destroying an Email removes it from all mailboxes).
func (s *Store) DestroyEmail(ctx context.Context, user UserID, id EmailID, origin uint64) error {
	err := s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		rows, err := emailMessagesTx(tx, user, id)
		if err != nil {
			return nil, err
		}
		var events []notify.Event
		for _, r := range rows {
			evs, err := deleteMessagesTx(tx, r.mailbox, []UID{r.uid}, origin)
			if err != nil {
				return nil, err
			}
			events = append(events, evs...)
		}
		return events, nil
	})
	if err != nil {
		return fmt.Errorf("destroy email %d: %w", id, err)
	}
	return nil
}

// ImportEmail stores raw as a new email of user in each of mailboxes
// (at least one), with flags and internal date (zero: now), in one
// write (RFC 8621 §4.8 Email/import). The messages share one body.
func (s *Store) ImportEmail(ctx context.Context, user UserID, raw []byte, mailboxes []MailboxID, flags []string, date time.Time) (EmailID, error) {
	if len(mailboxes) == 0 {
		return 0, fmt.Errorf("import email: no mailbox: %w", ErrNoSuchMailbox)
	}
	if err := s.checkSize(len(raw)); err != nil {
		return 0, fmt.Errorf("import email: %w", err)
	}
	fs, err := parseFlags(flags)
	if err != nil {
		return 0, fmt.Errorf("import email: %w", err)
	}
	b, err := newBody(raw, message.Parse(raw), s.indexPacksText())
	if err != nil {
		return 0, fmt.Errorf("import email: %w", err)
	}
	if date.IsZero() {
		date = time.Now()
	}
	var id EmailID
	err = s.writeMail(ctx, len(raw)*len(mailboxes), func(tx *wtx) ([]notify.Event, error) {
		for _, mb := range mailboxes {
			if err := ownMailboxTx(tx, user, mb); err != nil {
				return nil, err
			}
		}
		bodyID, err := insertBodyTx(tx, b)
		if err != nil {
			return nil, err
		}
		id = EmailID(bodyID)
		var events []notify.Event
		done := map[MailboxID]bool{}
		for _, mb := range mailboxes {
			if done[mb] {
				continue
			}
			done[mb] = true
			uid, _, err := insertMessageTx(tx, mb, bodyID, fs, date, len(raw))
			if err != nil {
				return nil, err
			}
			ev := notify.Event{Mailbox: int64(mb), Kind: notify.Appended, UIDs: []uint32{uint32(uid)}}
			if err := fillCount(tx, &ev); err != nil {
				return nil, err
			}
			events = append(events, ev)
		}
		if err := checkQuotaTx(tx, user); err != nil {
			return nil, err
		}
		return events, nil
	})
	if err != nil {
		return 0, fmt.Errorf("import email: %w", err)
	}
	return id, nil
}

// emailMessage is one message of an email, as a write reads it.
type emailMessage struct {
	mailbox  MailboxID
	uid      UID
	bits     int
	keywords string
}

// emailMessagesTx reads the messages of user's email id; none is
// ErrNoSuchEmail.
func emailMessagesTx(tx *wtx, user UserID, id EmailID) ([]emailMessage, error) {
	rows, err := tx.Query(`SELECT m.mailbox_id, m.uid, m.flags, m.keywords FROM messages m JOIN mailboxes b ON b.id = m.mailbox_id
		WHERE m.body_id = ? AND b.user_id = ? ORDER BY m.mailbox_id, m.uid`, id, user)
	if err != nil {
		return nil, err
	}
	var list []emailMessage
	for rows.Next() {
		var r emailMessage
		if err := rows.Scan(&r.mailbox, &r.uid, &r.bits, &r.keywords); err != nil {
			rows.Close()
			return nil, err
		}
		list = append(list, r)
	}
	if err := rows.Close(); err != nil {
		return nil, err
	}
	if len(list) == 0 {
		return nil, ErrNoSuchEmail
	}
	return list, nil
}

// MailboxByID returns user's mailbox id; another user's is
// ErrNoSuchMailbox.
func (s *Store) MailboxByID(ctx context.Context, user UserID, id MailboxID) (Mailbox, error) {
	var mb Mailbox
	err := scanMailbox(s.queryRow(ctx, "SELECT "+mailboxColumns+" FROM mailboxes WHERE id = ? AND user_id = ?", id, user), &mb)
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, fmt.Errorf("mailbox %d: %w", id, ErrNoSuchMailbox)
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("mailbox %d: %w", id, err)
	}
	return mb, nil
}

// EmailPage returns one page of the emails in mailbox (user's) by
// internal date, newest first when desc, then by email id: the ids at
// positions [offset, offset+limit) of that order, and how many there
// are in all. Messages with \Deleted are left out (the HTTP API does not
// show them, RFC 8621 §4.1.1). An email is counted once however many
// messages it has in the mailbox. The page is an index range
// (messages_date): its cost grows with offset+limit, not with the size
// of the mailbox; the total is the mailbox's counter less its \Deleted
// messages (an index count), and counts an email with two messages in
// the mailbox twice.
func (s *Store) EmailPage(ctx context.Context, user UserID, mailbox MailboxID, desc bool, offset, limit int) (ids []EmailID, total int, err error) {
	if offset < 0 || limit < 0 {
		return nil, 0, errors.New("email page: negative offset or limit")
	}
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, 0, fmt.Errorf("email page: %w", err)
	}
	defer rollbackRead(tx)
	var count, deleted int
	err = tx.QueryRowContext(ctx, "SELECT message_count FROM mailboxes WHERE id = ? AND user_id = ?", mailbox, user).Scan(&count)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, 0, fmt.Errorf("email page: %w", ErrNoSuchMailbox)
	}
	if err != nil {
		return nil, 0, fmt.Errorf("email page: %w", err)
	}
	// flags & 8 spelt out: the messages_deleted index needs the literal.
	// INDEXED BY: without statistics SQLite takes the primary key's
	// range instead, and reads every message of the mailbox (10 ms for
	// 100,000) to count the few with \Deleted.
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM messages INDEXED BY messages_deleted WHERE mailbox_id = ? AND flags & 8 != 0", mailbox).Scan(&deleted); err != nil {
		return nil, 0, fmt.Errorf("email page: %w", err)
	}
	order := "ASC"
	if desc {
		order = "DESC"
	}
	// Read on until the page is full of distinct emails: copies of one
	// email in the mailbox are rare, and each takes one row more.
	rows, err := tx.QueryContext(ctx, "SELECT body_id FROM messages INDEXED BY messages_date WHERE mailbox_id = ? AND flags & 8 = 0 ORDER BY internal_date "+order+", body_id "+order, mailbox)
	if err != nil {
		return nil, 0, fmt.Errorf("email page: %w", err)
	}
	defer rows.Close()
	seen := map[EmailID]bool{}
	pos := 0
	for rows.Next() && len(ids) < limit {
		var id EmailID
		if err := rows.Scan(&id); err != nil {
			return nil, 0, fmt.Errorf("email page: %w", err)
		}
		if seen[id] {
			continue
		}
		seen[id] = true
		if pos >= offset {
			ids = append(ids, id)
		}
		pos++
	}
	if err := rows.Err(); err != nil {
		return nil, 0, fmt.Errorf("email page: %w", err)
	}
	return ids, count - deleted, nil
}
