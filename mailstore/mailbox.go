package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"pushmail/notify"
)

// MailboxID identifies a mailbox across all users.
type MailboxID int64

// UID is a message's unique identifier within its mailbox (RFC 9051 §2.3.1.1).
type UID uint32

// Separator is the mailbox hierarchy separator.
const Separator = "/"

// MaxMailboxNameLen bounds a mailbox name, in bytes.
const MaxMailboxNameLen = 512

// Mailbox describes one of a user's mailboxes.
type Mailbox struct {
	ID          MailboxID
	User        UserID
	Name        string // UTF-8, hierarchy parts joined by Separator; "INBOX" is always upper-case
	UIDValidity uint32
	UIDNext     UID
	SpecialUse  string // an RFC 6154 attribute such as `\Sent`, or ""
	Subscribed  bool   // its name is among the user's Subscriptions
}

// MailboxStatus holds a mailbox's counters, as STATUS reports them.
type MailboxStatus struct {
	Mailbox
	Messages      uint32
	Unseen        uint32
	Size          int64 // sum of message sizes
	HighestModSeq uint64
	// Recent counts the messages no session has been told of yet: those
	// with a UID above RecentUID (STATUS RECENT, RFC 3501 §6.3.10). The
	// next session to claim them (ClaimRecent) sees them as \Recent.
	Recent uint32
	// RecentUID is the mailbox's \Recent high-water mark (see
	// ClaimRecent). A read-only session (EXAMINE) shows the messages
	// above it as \Recent without claiming them: RFC 3501 §6.3.2,
	// "EXAMINE MUST NOT cause messages to lose the \Recent flag".
	RecentUID UID
}

// ValidateMailboxName checks a mailbox name and returns it canonical:
// "INBOX" in any case becomes "INBOX" (RFC 9051 §5.1). Names must be valid
// UTF-8, non-empty, without NUL or other control characters, without empty
// hierarchy parts, and at most MaxMailboxNameLen bytes.
func ValidateMailboxName(name string) (string, error) {
	if name == "" || len(name) > MaxMailboxNameLen || !utf8.ValidString(name) {
		return "", fmt.Errorf("%w: %q", ErrInvalidName, name)
	}
	for _, r := range name {
		if r < 0x20 || r == 0x7f {
			return "", fmt.Errorf("%w: control character in %q", ErrInvalidName, name)
		}
	}
	parts := strings.Split(name, Separator)
	for _, p := range parts {
		if p == "" {
			return "", fmt.Errorf("%w: empty hierarchy level in %q", ErrInvalidName, name)
		}
	}
	if strings.EqualFold(parts[0], "INBOX") {
		parts[0] = "INBOX"
	}
	return strings.Join(parts, Separator), nil
}

// mailboxColumns are a Mailbox's columns, for a query FROM mailboxes (not
// aliased): Subscribed is looked up in subscriptions by the name.
const mailboxColumns = "id, user_id, name, uidvalidity, uidnext, special_use, " +
	"EXISTS (SELECT 1 FROM subscriptions WHERE subscriptions.user_id = mailboxes.user_id AND subscriptions.name = mailboxes.name)"

func scanMailbox(row interface{ Scan(...any) error }, mb *Mailbox) error {
	return row.Scan(&mb.ID, &mb.User, &mb.Name, &mb.UIDValidity, &mb.UIDNext, &mb.SpecialUse, &mb.Subscribed)
}

// statusColumns are a MailboxStatus's columns, for a query FROM mailboxes.
// Recent is counted on the messages primary key, (mailbox_id, uid): a
// range scan over the recent messages only.
const statusColumns = mailboxColumns + ", message_count, unseen_count, total_size, highest_modseq, recent_uid, " +
	"(SELECT COUNT(*) FROM messages WHERE messages.mailbox_id = mailboxes.id AND messages.uid > mailboxes.recent_uid)"

func scanStatus(row interface{ Scan(...any) error }, st *MailboxStatus) error {
	return row.Scan(&st.ID, &st.User, &st.Name, &st.UIDValidity, &st.UIDNext, &st.SpecialUse, &st.Subscribed,
		&st.Messages, &st.Unseen, &st.Size, &st.HighestModSeq, &st.RecentUID, &st.Recent)
}

// Mailboxes lists a user's mailboxes ordered by name.
func (s *Store) Mailboxes(ctx context.Context, user UserID) ([]Mailbox, error) {
	rows, err := s.query(ctx, "SELECT "+mailboxColumns+" FROM mailboxes WHERE user_id = ? ORDER BY name", user)
	if err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	defer rows.Close()
	var list []Mailbox
	for rows.Next() {
		var mb Mailbox
		if err := scanMailbox(rows, &mb); err != nil {
			return nil, fmt.Errorf("list mailboxes: %w", err)
		}
		list = append(list, mb)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("list mailboxes: %w", err)
	}
	return list, nil
}

// Mailbox returns the user's mailbox called name (ErrNoSuchMailbox if none).
func (s *Store) Mailbox(ctx context.Context, user UserID, name string) (Mailbox, error) {
	name, err := ValidateMailboxName(name)
	if err != nil {
		return Mailbox{}, err
	}
	var mb Mailbox
	err = scanMailbox(s.queryRow(ctx, "SELECT "+mailboxColumns+" FROM mailboxes WHERE user_id = ? AND name = ?", user, name), &mb)
	if errors.Is(err, sql.ErrNoRows) {
		return Mailbox{}, fmt.Errorf("%w: %s", ErrNoSuchMailbox, name)
	}
	if err != nil {
		return Mailbox{}, fmt.Errorf("mailbox %s: %w", name, err)
	}
	return mb, nil
}

// Status returns a mailbox's counters.
func (s *Store) Status(ctx context.Context, id MailboxID) (MailboxStatus, error) {
	var st MailboxStatus
	// The \Recent count from the higher of the stored mark and the one
	// this process holds (recent.go): counting from a stale stored mark
	// first would read every message that arrived since, then count again.
	mark, _ := s.cachedRecentMark(id)
	err := scanStatus(s.queryRow(ctx, "SELECT "+mailboxColumns+", message_count, unseen_count, total_size, highest_modseq, max(recent_uid, ?1), "+
		"(SELECT COUNT(*) FROM messages WHERE messages.mailbox_id = mailboxes.id AND messages.uid > max(mailboxes.recent_uid, ?1)) "+
		"FROM mailboxes WHERE id = ?2", mark, id), &st)
	if errors.Is(err, sql.ErrNoRows) {
		return MailboxStatus{}, ErrNoSuchMailbox
	}
	if err != nil {
		return MailboxStatus{}, fmt.Errorf("mailbox status: %w", err)
	}
	if err := s.freshenRecent(ctx, &st); err != nil {
		return MailboxStatus{}, fmt.Errorf("mailbox status: %w", err)
	}
	return st, nil
}

// CreateMailbox creates a mailbox; specialUse is "" or an RFC 6154
// attribute. Missing parent levels are created too (RFC 9051 §6.3.4 lets a
// server do so), unsubscribed.
func (s *Store) CreateMailbox(ctx context.Context, user UserID, name, specialUse string) (Mailbox, error) {
	name, err := ValidateMailboxName(name)
	if err != nil {
		return Mailbox{}, err
	}
	if err := validSpecialUse(specialUse); err != nil {
		return Mailbox{}, err
	}
	var mb Mailbox
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		var users int
		if err := tx.QueryRow("SELECT COUNT(*) FROM users WHERE id = ?", user).Scan(&users); err != nil {
			return nil, err
		}
		if users == 0 {
			return nil, ErrNoSuchUser // deleted meanwhile
		}
		events, err := createParentsTx(tx, user, name)
		if err != nil {
			return nil, err
		}
		mb, err = createMailboxTx(tx, user, name, specialUse, false)
		if err != nil {
			return nil, err
		}
		return append(events, notify.Event{Mailbox: int64(mb.ID), User: int64(user), Kind: notify.MailboxChanged, Name: mb.Name}), nil
	})
	if err != nil {
		return Mailbox{}, fmt.Errorf("create mailbox %s: %w", name, err)
	}
	return mb, nil
}

func validSpecialUse(use string) error {
	switch use {
	case "", `\All`, `\Archive`, `\Drafts`, `\Flagged`, `\Junk`, `\Sent`, `\Trash`:
		return nil
	}
	return fmt.Errorf("%w: unknown special-use attribute %q", ErrInvalidName, use)
}

// createMailboxTx creates a mailbox and, if subscribe, subscribes its
// name. Without subscribe, a subscription the name already has (it
// outlived an earlier mailbox of that name) stays.
func createMailboxTx(tx *wtx, user UserID, name, specialUse string, subscribe bool) (Mailbox, error) {
	var n int
	if err := tx.QueryRow("SELECT COUNT(*) FROM mailboxes WHERE user_id = ? AND name = ?", user, name).Scan(&n); err != nil {
		return Mailbox{}, err
	}
	if n > 0 {
		return Mailbox{}, ErrMailboxExists
	}
	var validity uint32
	if err := tx.QueryRow("UPDATE meta SET value = value + 1 WHERE key = 'uidvalidity' RETURNING value").Scan(&validity); err != nil {
		return Mailbox{}, fmt.Errorf("next uidvalidity: %w", err)
	}
	var id int64
	err := tx.QueryRow("INSERT INTO mailboxes(id, user_id, name, uidvalidity, special_use) VALUES ("+nextIDSQL("mailboxes")+", ?, ?, ?, ?) RETURNING id",
		user, name, validity, specialUse).Scan(&id)
	if err != nil {
		return Mailbox{}, err
	}
	if subscribe {
		if _, err := tx.Exec("INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES (?, ?)", user, name); err != nil {
			return Mailbox{}, err
		}
	}
	var mb Mailbox
	if err := scanMailbox(tx.QueryRow("SELECT "+mailboxColumns+" FROM mailboxes WHERE id = ?", id), &mb); err != nil {
		return Mailbox{}, err
	}
	return mb, nil
}

// DeleteMailbox deletes a mailbox and its messages. INBOX cannot be
// deleted (RFC 9051 §6.3.5). Inferior mailboxes stay.
func (s *Store) DeleteMailbox(ctx context.Context, user UserID, name string) error {
	name, err := ValidateMailboxName(name)
	if err != nil {
		return err
	}
	if name == "INBOX" {
		return fmt.Errorf("delete mailbox INBOX: %w", ErrProtected)
	}
	var id int64
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		err := tx.QueryRow("DELETE FROM mailboxes WHERE user_id = ? AND name = ? RETURNING id", user, name).Scan(&id)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, ErrNoSuchMailbox
		}
		if err != nil {
			return nil, err
		}
		return []notify.Event{{Mailbox: id, User: int64(user), Kind: notify.MailboxChanged, OldName: name}}, nil
	})
	if err != nil {
		return fmt.Errorf("delete mailbox %s: %w", name, err)
	}
	s.forgetRecentMark(MailboxID(id))
	return nil
}

// RenameMailbox renames a mailbox and its inferiors. Renaming INBOX moves
// all its messages into a new mailbox with the new name and leaves INBOX
// empty (RFC 9051 §6.3.6).
func (s *Store) RenameMailbox(ctx context.Context, user UserID, oldName, newName string) error {
	from, err := ValidateMailboxName(oldName)
	if err != nil {
		return err
	}
	to, err := ValidateMailboxName(newName)
	if err != nil {
		return err
	}
	if to == "INBOX" || strings.HasPrefix(to+Separator, from+Separator) {
		return fmt.Errorf("rename %s to %s: %w", from, to, ErrProtected)
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		var src Mailbox
		if err := scanMailbox(tx.QueryRow("SELECT "+mailboxColumns+" FROM mailboxes WHERE user_id = ? AND name = ?", user, from), &src); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil, ErrNoSuchMailbox
			}
			return nil, err
		}
		var n int
		toLo, toHi := inferiorRange(to)
		if err := tx.QueryRow("SELECT COUNT(*) FROM mailboxes WHERE user_id = ? AND (name = ? OR (name > ? AND name < ?))",
			user, to, toLo, toHi).Scan(&n); err != nil {
			return nil, err
		}
		if n > 0 {
			return nil, ErrMailboxExists
		}
		if from == "INBOX" {
			dst, err := createMailboxTx(tx, user, to, "", false)
			if err != nil {
				return nil, err
			}
			created, err := createParentsTx(tx, user, to)
			if err != nil {
				return nil, err
			}
			created = append(created, notify.Event{Mailbox: int64(dst.ID), User: int64(user), Kind: notify.MailboxChanged, Name: dst.Name})
			copied, events, err := copyMessagesTx(tx, src.ID, AllUIDs(), dst.ID, 0)
			if err != nil {
				return nil, err
			}
			events = append(created, events...)
			// Exactly what was copied leaves INBOX, in the same
			// transaction, so nothing can be lost between the two.
			expunged, err := deleteMessagesTx(tx, src.ID, copied.Source, 0)
			if err != nil {
				return nil, err
			}
			return append(events, expunged...), nil
		}
		// Rename the mailbox and every inferior: "a/b" -> "c/b".
		fromLo, fromHi := inferiorRange(from)
		rows, err := tx.Query("SELECT id, name FROM mailboxes WHERE user_id = ? AND (name = ? OR (name > ? AND name < ?))",
			user, from, fromLo, fromHi)
		if err != nil {
			return nil, err
		}
		type rename struct {
			id   int64
			name string
		}
		var renames []rename
		for rows.Next() {
			var r rename
			if err := rows.Scan(&r.id, &r.name); err != nil {
				rows.Close()
				return nil, err
			}
			renames = append(renames, r)
		}
		if err := rows.Close(); err != nil {
			return nil, err
		}
		var events []notify.Event
		for _, r := range renames {
			newName := to + r.name[len(from):]
			if _, err := tx.Exec("UPDATE mailboxes SET name = ? WHERE id = ?", newName, r.id); err != nil {
				return nil, err
			}
			// The subscription follows the mailbox. RFC 9051 §6.3.6 does
			// not say; §6.3.7's "SHOULD NOT unilaterally remove" protects
			// a name whose mailbox went away and may come back, whereas
			// RENAME is the client moving this mailbox: left behind, the
			// old name would list as \NonExistent and the mailbox, under
			// its new name, as unsubscribed. The names RENAME moves to
			// hold no mailbox (checked above) but may hold a subscription
			// of their own; OR REPLACE merges the two.
			// PostgreSQL has no OR REPLACE: the subscription of the new
			// name goes first, if the old name has one to take its place.
			if tx.postgres {
				if _, err := tx.Exec("DELETE FROM subscriptions WHERE user_id = ?1 AND name = ?2 AND EXISTS (SELECT 1 FROM subscriptions WHERE user_id = ?1 AND name = ?3)",
					user, newName, r.name); err != nil {
					return nil, err
				}
			}
			if _, err := tx.Exec(tx.pick("UPDATE OR REPLACE", "UPDATE")+" subscriptions SET name = ? WHERE user_id = ? AND name = ?", newName, user, r.name); err != nil {
				return nil, err
			}
			events = append(events, notify.Event{Mailbox: r.id, User: int64(user), Kind: notify.MailboxChanged, Name: newName, OldName: r.name})
		}
		created, err := createParentsTx(tx, user, to)
		if err != nil {
			return nil, err
		}
		return append(events, created...), nil
	})
	if err != nil {
		return fmt.Errorf("rename mailbox %s to %s: %w", from, to, err)
	}
	return nil
}

// createParentsTx creates the missing parent levels of name, as CREATE
// makes them (RFC 9051 §6.3.4), and as RENAME should (§6.3.6).
// It returns a MailboxChanged event for each mailbox it created.
func createParentsTx(tx *wtx, user UserID, name string) ([]notify.Event, error) {
	var events []notify.Event
	parts := strings.Split(name, Separator)
	for i := 1; i < len(parts); i++ {
		mb, err := createMailboxTx(tx, user, strings.Join(parts[:i], Separator), "", false)
		if errors.Is(err, ErrMailboxExists) {
			continue
		}
		if err != nil {
			return nil, err
		}
		events = append(events, notify.Event{Mailbox: int64(mb.ID), User: int64(user), Kind: notify.MailboxChanged, Name: mb.Name})
	}
	return events, nil
}

// inferiorRange returns the bounds, both exclusive, of the names of
// name's inferiors: those that start with name and the separator. Names
// compare byte by byte (SQLite's BINARY collation; the PostgreSQL schema's
// "C"), and IMAP mailbox names are case-sensitive (RFC 9051 §5.1, but for
// INBOX): a range, not LIKE, which ignores ASCII case in SQLite, so that
// RENAME of "Work" never takes "work/2026" along.
func inferiorRange(name string) (lo, hi string) {
	// Separator is one byte, "/"; the next byte value ends the range.
	return name + Separator, name + string(rune(Separator[0]+1))
}

// likePrefix returns a LIKE pattern matching strings that start with p.
func likePrefix(p string) string {
	r := strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`)
	return r.Replace(p) + "%"
}

// SetSubscribed adds name to the user's subscriptions or removes it
// (SUBSCRIBE, RFC 9051 §6.3.7; UNSUBSCRIBE, §6.3.8). The name need not
// name a mailbox: §6.3.7 says a server "MAY validate" that it exists, and
// pushmail does not, since subscriptions outlive DELETE anyway and LIST
// (SUBSCRIBED) shows such names as \NonExistent (§6.3.9). Removing a
// name that is not subscribed succeeds (§6.3.8: OK "if the mailbox is not
// subscribed"). A user that does not exist is ErrNoSuchUser.
func (s *Store) SetSubscribed(ctx context.Context, user UserID, name string, subscribed bool) error {
	name, err := ValidateMailboxName(name)
	if err != nil {
		return err
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		var users int
		if err := tx.QueryRow("SELECT COUNT(*) FROM users WHERE id = ?", user).Scan(&users); err != nil {
			return nil, err
		}
		if users == 0 {
			return nil, ErrNoSuchUser
		}
		q := "DELETE FROM subscriptions WHERE user_id = ? AND name = ?"
		if subscribed {
			q = "INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES (?, ?)"
		}
		res, err := tx.Exec(q, user, name)
		if err != nil {
			return nil, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return nil, err // nothing changed: nothing to tell
		}
		return []notify.Event{{User: int64(user), Kind: notify.SubscriptionChanged, Name: name, Subscribed: subscribed}}, nil
	})
	if err != nil {
		return fmt.Errorf("subscribe %s: %w", name, err)
	}
	return nil
}

// Subscriptions returns the user's subscribed names, sorted, whether or
// not a mailbox has the name (RFC 9051 §6.3.9: LIST (SUBSCRIBED) lists
// them, a missing one with \NonExistent).
func (s *Store) Subscriptions(ctx context.Context, user UserID) ([]string, error) {
	rows, err := s.query(ctx, "SELECT name FROM subscriptions WHERE user_id = ? ORDER BY name", user)
	if err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	defer rows.Close()
	var names []string
	for rows.Next() {
		var name string
		if err := rows.Scan(&name); err != nil {
			return nil, fmt.Errorf("subscriptions: %w", err)
		}
		names = append(names, name)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("subscriptions: %w", err)
	}
	return names, nil
}
