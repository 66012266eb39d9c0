package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
	"time"

	"pushmail/message"
)

// SortFields says which of SortInfo's fields SortInfo reads; UID,
// InternalDate and Size are always read. Each field asked for costs a
// JSON extraction per message, so a caller asks only for what it sorts
// or threads by.
type SortFields struct {
	Sent        bool // Sent
	Subject     bool // Subject
	From, To    bool // FromMailbox, ToMailbox
	Cc          bool // CcMailbox
	DisplayFrom bool // DisplayFrom
	DisplayTo   bool // DisplayTo
	Threading   bool // MessageID, InReplyTo, References
}

// SortInfo is what SORT and THREAD (RFC 5256) need of one message, read
// from the envelope stored at delivery: no body is parsed again. Fields
// not asked for in SortFields are zero.
type SortInfo struct {
	UID          UID
	InternalDate time.Time
	Size         int64

	// Sent is the Date field's instant; zero when the field is missing
	// or unparsable.
	Sent time.Time
	// Subject is the Subject field, RFC 2047-decoded to UTF-8.
	Subject string
	// FromMailbox, ToMailbox and CcMailbox are the local part
	// (addr-mailbox) of the field's first address that has one, "" when
	// there is none.
	FromMailbox, ToMailbox, CcMailbox string
	// DisplayFrom and DisplayTo are the display name of the field's
	// first address that has a mailbox, or its addr-spec when it has no
	// display name; "" when there is none (RFC 5957 §2).
	DisplayFrom, DisplayTo string

	MessageID  string   // without angle brackets
	InReplyTo  []string // msg-ids without angle brackets
	References []string // msg-ids without angle brackets
}

// firstMailboxSQL is SQL for the local part of the first address of an
// envelope field (a JSON path under $.env) that has one: group markers
// have none.
func firstMailboxSQL(field string) string {
	return "(SELECT a.value->>'mailbox' FROM json_each(b.parsed, '$.env." + field +
		"') a WHERE a.value->>'mailbox' IS NOT NULL LIMIT 1)"
}

// firstDisplaySQL is SQL for RFC 5957's display form of the same
// address: its display name, or mailbox@host without one.
func firstDisplaySQL(field string) string {
	return "(SELECT coalesce(nullif(a.value->>'name', ''), a.value->>'mailbox' || " +
		"CASE WHEN coalesce(a.value->>'host', '') = '' THEN '' ELSE '@' || (a.value->>'host') END) " +
		"FROM json_each(b.parsed, '$.env." + field + "') a WHERE a.value->>'mailbox' IS NOT NULL LIMIT 1)"
}

// idListSQL is SQL for the msg-ids of an envelope list field, joined by
// single spaces: stored msg-ids hold no white space (message.Parse
// removes it), so strings.Fields splits them again without a JSON
// decoder in Go.
func idListSQL(field string) string {
	return "(SELECT group_concat(i.value, ' ') FROM json_each(b.parsed, '$.env." + field + "') i)"
}

// SortInfo returns what SORT and THREAD need of the messages of uids
// (ascending) in the mailbox, in UID order; UIDs not in the mailbox are
// left out. It reads the messages table and the stored envelope in one
// query, in one read transaction, whatever the number of messages.
//
// Envelopes stored before Envelope.References existed have no
// "references" key; for those, and only those, References comes from the
// stored header (message.HeaderReferences): no migration is needed.
func (s *Store) SortInfo(ctx context.Context, mailbox MailboxID, uids []UID, f SortFields) ([]SortInfo, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	cols := []string{"m.uid", "m.internal_date", "m.size"}
	add := func(on bool, expr string) {
		cols = append(cols, pick(on, expr, "NULL"))
	}
	add(f.Sent, "b.parsed->>'$.env.date'")
	add(f.Subject, "b.parsed->>'$.env.subject'")
	add(f.From, firstMailboxSQL("from"))
	add(f.To, firstMailboxSQL("to"))
	add(f.Cc, firstMailboxSQL("cc"))
	add(f.DisplayFrom, firstDisplaySQL("from"))
	add(f.DisplayTo, firstDisplaySQL("to"))
	add(f.Threading, "b.parsed->>'$.env.message_id'")
	add(f.Threading, idListSQL("in_reply_to"))
	add(f.Threading, idListSQL("references"))
	// An envelope without the key: read References from the header.
	add(f.Threading, "CASE WHEN json_type(b.parsed, '$.env.references') IS NULL THEN b.header END")

	join := ""
	if f != (SortFields{}) {
		join = " JOIN bodies b ON b.id = m.body_id"
	}
	// One range scan from the lowest to the highest UID asked for, merged
	// with uids in Go: cheaper than a long IN list, and exact for the
	// common case of every message.
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM messages m"+join+
		" WHERE m.mailbox_id = ? AND m.uid BETWEEN ? AND ? ORDER BY m.uid",
		mailbox, uids[0], uids[len(uids)-1])
	if err != nil {
		return nil, fmt.Errorf("sort info: %w", err)
	}
	defer rows.Close()
	out := make([]SortInfo, 0, len(uids))
	next := 0
	var (
		uid, date, size                      int64
		sent, subj, from, to, cc, dfrom, dto sql.NullString
		msgID, inReplyTo, references, header sql.NullString
	)
	for n := 0; rows.Next(); n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("sort info: %w", err)
			}
		}
		if err := rows.Scan(&uid, &date, &size, &sent, &subj, &from, &to, &cc, &dfrom, &dto,
			&msgID, &inReplyTo, &references, &header); err != nil {
			return nil, fmt.Errorf("sort info: %w", err)
		}
		for next < len(uids) && uids[next] < UID(uid) {
			next++
		}
		if next == len(uids) {
			break
		}
		if uids[next] != UID(uid) {
			continue
		}
		m := SortInfo{
			UID: UID(uid), InternalDate: time.Unix(0, date), Size: size,
			Subject: subj.String, FromMailbox: from.String, ToMailbox: to.String, CcMailbox: cc.String,
			DisplayFrom: dfrom.String, DisplayTo: dto.String, MessageID: msgID.String,
		}
		if sent.Valid {
			// As encoding/json wrote it (message.Envelope.Date).
			if t, err := time.Parse(time.RFC3339Nano, sent.String); err == nil {
				m.Sent = t
			}
		}
		if f.Threading {
			m.InReplyTo = idList(inReplyTo.String)
			if header.Valid {
				m.References = message.HeaderReferences([]byte(header.String))
			} else {
				m.References = idList(references.String)
			}
		}
		out = append(out, m)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sort info: %w", err)
	}
	return out, nil
}

// idList splits idListSQL's result; nil when it is empty.
func idList(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Fields(s)
}
