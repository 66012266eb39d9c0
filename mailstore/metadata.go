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

// Annotations (RFC 5464 METADATA) are entries, a name and a value, on
// the server as a whole or on one mailbox. Every entry belongs to one
// user: the private ones (/private/…) as RFC 5464 §3.2 has it, and the
// shared ones (/shared/…) too, since no mailbox here is shared: the only
// user who can see a "shared" entry is its owner. Both are kept, under
// their full names, so a client that stores either finds it again.
//
// A mailbox's entries stay with it through RENAME (same mailbox, RFC
// 5464 §3.3 is silent; the entries describe the mailbox, not its name),
// go with it at DELETE, and a user's all go with the user. RENAME of
// INBOX leaves INBOX, and its entries, in place.

// Limits on annotations (RFC 5464 §4.3): a value of at most
// MaxMetadataValue bytes, and at most MaxMetadataEntries entries per
// user, server and mailbox entries together. 4 KiB is also what IMAP
// takes in one literal (imapd's maxLiteral), and holds any push token
// or comment a client stores.
const (
	MaxMetadataValue   = 4 << 10
	MaxMetadataEntries = 256
	maxEntryName       = 1024
)

// MetadataEntry is one annotation. In SetMetadata, Delete removes the
// entry (IMAP's NIL value) and Value is ignored.
type MetadataEntry struct {
	Name   string
	Value  []byte
	Delete bool
}

// Depth says which entries below a name GetMetadata returns (RFC 5464
// §4.2.2 DEPTH).
type Depth int

const (
	DepthZero     Depth = iota // the entry itself
	DepthOne                   // and its children
	DepthInfinity              // and all its descendants
)

// NormalizeEntryName checks an entry name against RFC 5464 §3.2 and
// returns it in lower case (entry names are case-insensitive). It starts
// with /private/ or /shared/, has no "*" or "%" (they are wild cards in
// LIST), no empty component and no trailing "/", and is printable
// UTF-8. root allows the bare "/private" or "/shared", which names no
// entry of its own but has descendants, for GetMetadata. Otherwise it
// fails with ErrInvalidEntry.
func NormalizeEntryName(name string, root bool) (string, error) {
	bad := func(why string) (string, error) {
		return "", fmt.Errorf("%w: %q: %s", ErrInvalidEntry, name, why)
	}
	if len(name) > maxEntryName {
		return bad("too long")
	}
	if !utf8.ValidString(name) {
		return bad("not UTF-8")
	}
	for _, r := range name {
		if r < 0x21 || r == 0x7f || r == '*' || r == '%' {
			return bad("forbidden character")
		}
	}
	n := asciiLower(name)
	switch {
	case n == "/private" || n == "/shared":
		if !root {
			return bad("names no entry")
		}
		return n, nil
	case !strings.HasPrefix(n, "/private/") && !strings.HasPrefix(n, "/shared/"):
		return bad("neither /private nor /shared")
	case strings.HasSuffix(n, "/"), strings.Contains(n, "//"):
		return bad("empty component")
	}
	return n, nil
}

// asciiLower lowers ASCII letters only: other letters stay as sent.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// SetMetadata sets and deletes entries of one user on the server
// (mailbox 0) or on one of their mailboxes, all or none (RFC 5464 §4.3).
// Names must be as NormalizeEntryName returns them. It fails with
// ErrMetadataTooBig for a value over MaxMetadataValue, with
// ErrMetadataTooMany if the user would have more than
// MaxMetadataEntries, and with ErrNoSuchMailbox for a mailbox that is
// not the user's.
func (s *Store) SetMetadata(ctx context.Context, user UserID, mailbox MailboxID, entries []MetadataEntry) error {
	size := 0
	for _, e := range entries {
		n, err := NormalizeEntryName(e.Name, false)
		if err != nil {
			return fmt.Errorf("set metadata: %w", err)
		}
		if n != e.Name {
			// Stored under another spelling, Metadata would never find it.
			return fmt.Errorf("set metadata: %w: %q is not in normal form (%q)", ErrInvalidEntry, e.Name, n)
		}
		if e.Delete {
			continue
		}
		if len(e.Value) > MaxMetadataValue {
			return fmt.Errorf("set metadata %s: %w: %d bytes, limit %d", e.Name, ErrMetadataTooBig, len(e.Value), MaxMetadataValue)
		}
		size += len(e.Value)
	}
	err := s.write(ctx, size, func(tx *wtx) ([]notify.Event, error) {
		if err := ownMailboxTx(tx, user, mailbox); err != nil {
			return nil, err
		}
		for _, e := range entries {
			var err error
			if e.Delete {
				_, err = tx.Exec("DELETE FROM metadata WHERE user_id = ? AND mailbox_id = ? AND name = ?", user, mailbox, e.Name)
			} else {
				v := e.Value
				if v == nil {
					v = []byte{} // an empty value, not SQL NULL
				}
				_, err = tx.Exec("INSERT INTO metadata(user_id, mailbox_id, name, value) VALUES (?, ?, ?, ?) ON CONFLICT(user_id, mailbox_id, name) DO UPDATE SET value = excluded.value", user, mailbox, e.Name, v)
			}
			if err != nil {
				return nil, err
			}
		}
		var n int
		if err := tx.QueryRow("SELECT count(*) FROM metadata WHERE user_id = ?", user).Scan(&n); err != nil {
			return nil, err
		}
		if n > MaxMetadataEntries {
			return nil, fmt.Errorf("%w: %d entries, limit %d", ErrMetadataTooMany, n, MaxMetadataEntries)
		}
		names := make([]string, len(entries))
		for i, e := range entries {
			names[i] = e.Name
		}
		// RFC 5465 §5.7/§5.8: NOTIFY watchers hear which entries changed.
		return []notify.Event{{Mailbox: int64(mailbox), User: int64(user), Kind: notify.MetadataChanged, Entries: names}}, nil
	})
	if err != nil {
		return fmt.Errorf("set metadata: %w", err)
	}
	return nil
}

// ownMailboxTx fails with ErrNoSuchMailbox unless mailbox is 0 (the
// server) or one of user's mailboxes.
func ownMailboxTx(tx *wtx, user UserID, mailbox MailboxID) error {
	if mailbox == 0 {
		var one int
		err := tx.QueryRow("SELECT 1 FROM users WHERE id = ?", user).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNoSuchUser
		}
		return err
	}
	var one int
	err := tx.QueryRow("SELECT 1 FROM mailboxes WHERE id = ? AND user_id = ?", mailbox, user).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return ErrNoSuchMailbox
	}
	return err
}

// Metadata returns the user's entries on the server (mailbox 0) or on
// one of their mailboxes that the names and depth select (RFC 5464
// §4.2), each once, ordered by name within each requested name. Names
// must be as NormalizeEntryName(name, true) returns them; an entry that
// does not exist is left out. It fails with ErrNoSuchMailbox for a
// mailbox that is not the user's.
func (s *Store) Metadata(ctx context.Context, user UserID, mailbox MailboxID, names []string, depth Depth) ([]MetadataEntry, error) {
	if mailbox != 0 {
		var one int
		err := s.queryRow(ctx, "SELECT 1 FROM mailboxes WHERE id = ? AND user_id = ?", mailbox, user).Scan(&one)
		if errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("metadata: %w", ErrNoSuchMailbox)
		}
		if err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
	}
	var list []MetadataEntry
	seen := map[string]bool{}
	for _, name := range names {
		lo, hi := name, name
		if depth != DepthZero {
			// The descendants: names from name+"/" up to, not including,
			// name+"0" ("0" follows "/" in byte order).
			hi = name + "0"
		}
		rows, err := s.query(ctx, "SELECT name, value FROM metadata WHERE user_id = ? AND mailbox_id = ? AND name >= ? AND name <= ? ORDER BY name",
			user, mailbox, lo, hi)
		if err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
		for rows.Next() {
			var e MetadataEntry
			if err := rows.Scan(&e.Name, &e.Value); err != nil {
				rows.Close()
				return nil, fmt.Errorf("metadata: %w", err)
			}
			if e.Name != name {
				rest, below := strings.CutPrefix(e.Name, name+"/")
				if !below || depth == DepthOne && strings.Contains(rest, "/") {
					continue
				}
			}
			if !seen[e.Name] {
				seen[e.Name] = true
				list = append(list, e)
			}
		}
		err = rows.Err()
		if cerr := rows.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return nil, fmt.Errorf("metadata: %w", err)
		}
	}
	return list, nil
}
