package mailstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
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
// (ascending) in the mailbox, in UID order. uids are meant to be the
// mailbox's (a Search result): a UID not in the mailbox is left out,
// unless its message was read here before it was expunged. The answer,
// its strings and lists may be shared with the cache: the caller reads
// them and changes none. Safe for concurrent use.
//
// What it reads it keeps (sortCache): a message's envelope, size and
// internal date never change and a mailbox's UIDs are never reused, so
// a kept entry never goes stale, and a second SORT of a mailbox reads
// only the messages that arrived since. What it does not have it reads
// from the messages table and the sort keys written with each body
// (sortkeys.go) in one query, never from the bodies.
func (s *Store) SortInfo(ctx context.Context, mailbox MailboxID, uids []UID, f SortFields) ([]SortInfo, error) {
	if len(uids) == 0 {
		return nil, nil
	}
	if n := s.sorts.size(mailbox); n > 1024 {
		// Entries of expunged messages pile up: past twice the
		// mailbox's messages, start again.
		var count int
		err := s.rdb.QueryRowContext(ctx, "SELECT message_count FROM mailboxes WHERE id = ?", mailbox).Scan(&count)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sort info: %w", err)
		}
		if n > 2*count+1024 {
			s.sorts.drop(mailbox)
		}
	}
	// out is allocated only when the cache has the mailbox: the first
	// SORT of a large one would otherwise allocate it for nothing.
	var out []SortInfo
	missing, fields := s.sorts.lookup(mailbox, uids, f, &out)
	if len(missing) == 0 {
		return out, nil
	}
	read, err := s.readSortInfo(ctx, mailbox, missing, fields)
	if err != nil {
		return nil, err
	}
	// The cache keeps read itself, not a copy: the first SORT of a large
	// mailbox would otherwise allocate (and fault in) its entries twice.
	s.sorts.add(mailbox, read, fields)
	if fields != f {
		read = projectSortInfo(slices.Clone(read), f)
	}
	if len(missing) == len(uids) {
		return read, nil
	}
	// Merge the two ascending lists.
	merged := make([]SortInfo, 0, len(out)+len(read))
	i, j := 0, 0
	for i < len(out) || j < len(read) {
		if j == len(read) || i < len(out) && out[i].UID < read[j].UID {
			merged = append(merged, out[i])
			i++
		} else {
			merged = append(merged, read[j])
			j++
		}
	}
	return merged, nil
}

// projectSortInfo clears what f did not ask for, so that an answer does
// not depend on what the cache happened to hold.
func projectSortInfo(infos []SortInfo, f SortFields) []SortInfo {
	for i := range infos {
		project(&infos[i], f)
	}
	return infos
}

func project(m *SortInfo, f SortFields) {
	if !f.Sent {
		m.Sent = time.Time{}
	}
	if !f.Subject {
		m.Subject = ""
	}
	if !f.From {
		m.FromMailbox = ""
	}
	if !f.To {
		m.ToMailbox = ""
	}
	if !f.Cc {
		m.CcMailbox = ""
	}
	if !f.DisplayFrom {
		m.DisplayFrom = ""
	}
	if !f.DisplayTo {
		m.DisplayTo = ""
	}
	if !f.Threading {
		m.MessageID, m.InReplyTo, m.References = "", nil, nil
	}
}

// readSortInfo reads the SortInfo of uids (ascending) from the database.
// It reads only the columns f asks for, into variables reused from row
// to row: the first SORT of a large mailbox reads every message here,
// and what it allocates per row (and the collections that follow) is
// most of its cost.
func (s *Store) readSortInfo(ctx context.Context, mailbox MailboxID, uids []UID, f SortFields) ([]SortInfo, error) {
	var (
		uid, date, size                int64
		sent                           sql.RawBytes
		subj, from, to, cc, dfrom, dto sql.NullString
		packed                         sql.NullString
		cols                           = []string{"m.uid", "m.internal_date", "m.size"}
		dest                           = []any{&uid, &date, &size}
	)
	add := func(on bool, expr string, d any) {
		if on {
			cols, dest = append(cols, expr), append(dest, d)
		}
	}
	// With the threading fields, the date, the three msg-id columns and
	// the subject come as one string per row, tab-separated (threadSQL),
	// and each is a part of it: one string for the driver to allocate
	// and the collector to mark per message, not five. THREAD over a
	// large mailbox reads every message here.
	add(f.Sent && !f.Threading, "k.sent", &sent)
	add(f.Subject && !f.Threading, "k.subject", &subj)
	add(f.From, "k.from_mailbox", &from)
	add(f.To, "k.to_mailbox", &to)
	add(f.Cc, "k.cc_mailbox", &cc)
	add(f.DisplayFrom, "k.display_from", &dfrom)
	add(f.DisplayTo, "k.display_to", &dto)
	add(f.Threading, threadSQL(f), &packed)

	join := ""
	if f != (SortFields{}) {
		// The narrow rows written at delivery (sortkeys.go), not the
		// bodies. Every body has one; LEFT keeps a message in the answer
		// even if its row were missing.
		join = " LEFT JOIN sortkeys k ON k.body_id = m.body_id"
	}
	// One range when the UIDs are most of those it spans (the common
	// "every message" case, gaps left by expunges and all, reads as a
	// range scan, merged with uids below: at most about twice the rows
	// asked for), else exactly the UIDs, as a JSON array.
	where, args := " AND m.uid BETWEEN ? AND ?", []any{mailbox, uids[0], uids[len(uids)-1]}
	if span := uint64(uids[len(uids)-1]-uids[0]) + 1; span > 2*uint64(len(uids))+64 {
		list, err := json.Marshal(uids)
		if err != nil {
			return nil, fmt.Errorf("sort info: %w", err)
		}
		where, args = s.pick(" AND m.uid IN (SELECT value FROM json_each(?))",
			" AND m.uid IN (SELECT value::bigint FROM jsonb_array_elements_text(?::jsonb) AS value)"), []any{mailbox, string(list)}
	}
	rows, err := s.rdb.QueryContext(ctx, "SELECT "+strings.Join(cols, ", ")+" FROM messages m"+join+
		" WHERE m.mailbox_id = ?"+where+" ORDER BY m.uid", args...)
	if err != nil {
		return nil, fmt.Errorf("sort info: %w", err)
	}
	defer rows.Close()
	out := make([]SortInfo, 0, len(uids))
	var ids idArena
	next := 0
	for n := 0; rows.Next(); n++ {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("sort info: %w", err)
			}
		}
		if err := rows.Scan(dest...); err != nil {
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
		out = append(out, SortInfo{
			UID: UID(uid), InternalDate: time.Unix(0, date), Size: size,
			Subject: subj.String, FromMailbox: from.String, ToMailbox: to.String, CcMailbox: cc.String,
			DisplayFrom: dfrom.String, DisplayTo: dto.String,
		})
		m := &out[len(out)-1]
		if sent != nil {
			m.Sent = parseSent(sent)
		}
		if f.Threading {
			// The parts of threadSQL's string: none of the columns
			// before the subject holds a tab (msg-ids hold no white
			// space, the date is RFC 3339); the subject, last, may.
			rest := packed.String
			var part string
			if f.Sent {
				part, rest, _ = strings.Cut(rest, "\t")
				m.Sent = parseSent(part)
			}
			m.MessageID, rest, _ = strings.Cut(rest, "\t")
			part, rest, _ = strings.Cut(rest, "\t")
			m.InReplyTo = ids.split(part)
			if f.Subject {
				part, m.Subject, _ = strings.Cut(rest, "\t")
			} else {
				part = rest
			}
			m.References = ids.split(part)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sort info: %w", err)
	}
	return out, nil
}

// threadSQL is SQL for readSortInfo's one string per row when f asks
// for the threading fields: the date (when f asks for it), the
// Message-ID, In-Reply-To and References lists and the subject (when f
// asks for it), in that order, joined by tabs; a NULL column is "" (the
// same value as a NULL read on its own gives).
func threadSQL(f SortFields) string {
	var parts []string
	if f.Sent {
		parts = append(parts, "k.sent")
	}
	parts = append(parts, "k.message_id", "k.in_reply_to", "k.refs")
	if f.Subject {
		parts = append(parts, "k.subject")
	}
	for i, p := range parts {
		parts[i] = "coalesce(" + p + ", '')"
	}
	return strings.Join(parts, " || '\t' || ")
}

// parseSent reads a sortkeys.sent value, RFC 3339 as encoding/json wrote
// it (message.Envelope.Date), as an instant in UTC: only instants are
// compared (RFC 5256 §3 DATE). The layout json writes,
// 2006-01-02T15:04:05[.fraction](Z|±hh:mm), is read without time.Parse
// and without a string; anything else goes to time.Parse. Zero when it
// is not RFC 3339 at all.
func parseSent[T ~string | ~[]byte](b T) time.Time {
	num := func(s T) (int, bool) {
		n := 0
		for i := range len(s) {
			c := s[i]
			if c < '0' || c > '9' {
				return 0, false
			}
			n = n*10 + int(c-'0')
		}
		return n, true
	}
	if len(b) >= 20 && b[4] == '-' && b[7] == '-' && b[10] == 'T' && b[13] == ':' && b[16] == ':' {
		year, ok1 := num(b[0:4])
		month, ok2 := num(b[5:7])
		day, ok3 := num(b[8:10])
		hour, ok4 := num(b[11:13])
		minute, ok5 := num(b[14:16])
		sec, ok6 := num(b[17:19])
		rest := b[19:]
		nsec := 0
		ok7 := true
		if rest[0] == '.' {
			i := 1
			for i < len(rest) && i <= 9 && '0' <= rest[i] && rest[i] <= '9' {
				nsec = nsec*10 + int(rest[i]-'0')
				i++
			}
			for k := i; k <= 9; k++ {
				nsec *= 10
			}
			ok7 = i > 1 && (i >= len(rest) || rest[i] < '0' || rest[i] > '9')
			rest = rest[i:]
		}
		off, okz := 0, false
		switch {
		case len(rest) == 1 && rest[0] == 'Z':
			okz = true
		case len(rest) == 6 && (rest[0] == '+' || rest[0] == '-') && rest[3] == ':':
			h, okh := num(rest[1:3])
			m, okm := num(rest[4:6])
			off, okz = (h*60+m)*60, okh && okm && h < 24 && m < 60
			if rest[0] == '-' {
				off = -off
			}
		}
		if ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && okz &&
			1 <= month && month <= 12 && 1 <= day && day <= 31 && hour < 24 && minute < 60 && sec < 60 {
			t := time.Date(year, time.Month(month), day, hour, minute, sec, nsec, time.UTC)
			if t.Day() == day { // not normalised: the day exists
				return t.Add(-time.Duration(off) * time.Second)
			}
		}
	}
	t, err := time.Parse(time.RFC3339Nano, string(b))
	if err != nil {
		return time.Time{}
	}
	return t.UTC()
}

// idArena hands out the msg-id lists of readSortInfo from shared
// chunks, not a slice per list: a THREAD over 100,000 messages would
// otherwise allocate two per message.
type idArena struct{ chunk []string }

// split splits idListSQL's result (msg-ids joined by spaces) into a list
// whose capacity is its length, so an append by the caller copies it
// rather than write into the chunk; nil when it is empty.
func (a *idArena) split(s string) []string {
	if s == "" {
		return nil
	}
	n := strings.Count(s, " ") + 1 // at most this many
	if cap(a.chunk)-len(a.chunk) < n {
		a.chunk = make([]string, 0, max(n, 4096))
	}
	start := len(a.chunk)
	for f := range strings.FieldsSeq(s) {
		a.chunk = append(a.chunk, f)
	}
	if len(a.chunk) == start {
		return nil
	}
	return a.chunk[start:len(a.chunk):len(a.chunk)]
}

// sortCacheMax bounds the SortInfo entries kept over all mailboxes: a
// few hundred bytes each, so about 100 MB at most.
const sortCacheMax = 500_000

// sortCache keeps the SortInfo read per mailbox. An entry is valid for
// as long as it is kept (see SortInfo); the cache only bounds memory,
// dropping whole mailboxes, least recently used first, beyond
// sortCacheMax entries, and a mailbox whose entries outnumber twice its
// messages plus 1024 (expunged messages pile up, SortInfo). The
// zero value is empty and ready; safe for concurrent use.
type sortCache struct {
	mu    sync.Mutex
	boxes map[MailboxID]*sortBox
	total int
	clock uint64
}

// sortBox is a mailbox's entries, ascending by UID in one slice: no
// allocation nor hashing per message, and a lookup of ascending UIDs is
// one walk along it.
type sortBox struct {
	infos  []SortInfo
	fields SortFields // what every entry holds
	used   uint64     // clock at the last use
}

// lookup appends to out, in order, the entries of uids (ascending) the
// cache has with the fields f, and returns the UIDs it lacks and the
// fields to read them with: f and what the mailbox's entries hold
// already, so that they all hold the same. Entries holding fewer fields
// than f are dropped.
func (c *sortCache) lookup(mailbox MailboxID, uids []UID, f SortFields, out *[]SortInfo) ([]UID, SortFields) {
	c.mu.Lock()
	defer c.mu.Unlock()
	box := c.boxes[mailbox]
	if box != nil && !f.within(box.fields) {
		c.total -= len(box.infos)
		delete(c.boxes, mailbox)
		f, box = f.union(box.fields), nil
	}
	if box == nil {
		return uids, f
	}
	c.clock++
	box.used = c.clock
	if f == box.fields && len(uids) == len(box.infos) && slices.EqualFunc(uids, box.infos, func(u UID, m SortInfo) bool { return u == m.UID }) {
		// Every entry, as kept: shared, not copied (SortInfo's answer
		// is read only).
		*out = box.infos[:len(uids):len(uids)]
		return nil, box.fields
	}
	*out = slices.Grow(*out, len(uids))
	var missing []UID
	j := 0
	for _, u := range uids {
		for j < len(box.infos) && box.infos[j].UID < u {
			j++
		}
		if j < len(box.infos) && box.infos[j].UID == u {
			v := box.infos[j]
			project(&v, f)
			*out = append(*out, v)
		} else {
			missing = append(missing, u)
		}
	}
	return missing, box.fields
}

// size returns how many entries the mailbox has.
func (c *sortCache) size(mailbox MailboxID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	if box := c.boxes[mailbox]; box != nil {
		return len(box.infos)
	}
	return 0
}

// drop forgets the mailbox's entries.
func (c *sortCache) drop(mailbox MailboxID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if box := c.boxes[mailbox]; box != nil {
		c.total -= len(box.infos)
		delete(c.boxes, mailbox)
	}
}

// add keeps infos (ascending by UID), read with fields, for the
// mailbox: infos itself when the mailbox has no entries, so the caller
// must not change infos afterwards.
func (c *sortCache) add(mailbox MailboxID, infos []SortInfo, fields SortFields) {
	if len(infos) > sortCacheMax || len(infos) == 0 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.boxes == nil {
		c.boxes = make(map[MailboxID]*sortBox)
	}
	box := c.boxes[mailbox]
	if box != nil && box.fields != fields {
		// Another SortInfo replaced the box meanwhile: start again.
		c.total -= len(box.infos)
		box = nil
	}
	c.clock++
	switch {
	case box == nil:
		// Clipped: an append to it later copies rather than write past
		// the end of a slice a caller holds.
		box = &sortBox{infos: infos[:len(infos):len(infos)], fields: fields}
		c.boxes[mailbox] = box
		c.total += len(infos)
	case len(box.infos) == 0 || infos[0].UID > box.infos[len(box.infos)-1].UID:
		// Messages that arrived since: the common case, appended.
		box.infos = append(box.infos, infos...)
		c.total += len(infos)
	default:
		merged := make([]SortInfo, 0, len(box.infos)+len(infos))
		i, j := 0, 0
		for i < len(box.infos) || j < len(infos) {
			switch {
			case j == len(infos) || i < len(box.infos) && box.infos[i].UID < infos[j].UID:
				merged = append(merged, box.infos[i])
				i++
			case i < len(box.infos) && box.infos[i].UID == infos[j].UID:
				merged = append(merged, box.infos[i]) // kept already
				i++
				j++
			default:
				merged = append(merged, infos[j])
				j++
			}
		}
		c.total += len(merged) - len(box.infos)
		box.infos = merged
	}
	box.used = c.clock
	for c.total > sortCacheMax {
		var oldest MailboxID
		var old *sortBox
		for id, b := range c.boxes {
			if b != box && (old == nil || b.used < old.used) {
				oldest, old = id, b
			}
		}
		if old == nil {
			break
		}
		c.total -= len(old.infos)
		delete(c.boxes, oldest)
	}
}

// within reports whether every field f asks for, g asks for too.
func (f SortFields) within(g SortFields) bool { return f.union(g) == g }

func (f SortFields) union(g SortFields) SortFields {
	return SortFields{
		Sent: f.Sent || g.Sent, Subject: f.Subject || g.Subject,
		From: f.From || g.From, To: f.To || g.To, Cc: f.Cc || g.Cc,
		DisplayFrom: f.DisplayFrom || g.DisplayFrom, DisplayTo: f.DisplayTo || g.DisplayTo,
		Threading: f.Threading || g.Threading,
	}
}
