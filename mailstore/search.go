package mailstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"pushmail/message"
)

// SearchCriteria is a search over one mailbox's messages; all fields must
// match (AND). The zero value matches every message. It follows the search
// keys of RFC 9051 §6.4.4, without their IMAP syntax.
type SearchCriteria struct {
	// UIDs: each set must contain the message's UID. An empty (or nil)
	// set matches nothing. In a range, 0 at either end stands for "*",
	// the largest UID in the mailbox, as in IMAP (RFC 9051 §6.4.9: a
	// range "559:*" always includes the last message, even if its UID
	// is below 559). Callers convert sequence sets to UID sets.
	UIDs []UIDSet

	// Since and Before bound the internal date: it must be at or after
	// Since and before Before. They are instants: RFC 9051 compares the
	// internal date's calendar date "disregarding time and timezone", and
	// the store keeps internal dates as instants, so the caller passes the
	// start of the day in the time zone its clients see internal dates in
	// (for ON, Since is the day's start and Before the next day's start).
	// The zero time is unset.
	Since, Before time.Time

	// SentSince and SentBefore compare calendar dates: the date of the
	// Date: header field as written, in its own zone, must be on or after
	// the calendar date of SentSince (in SentSince's Location) and before
	// that of SentBefore; their time of day is ignored (RFC 9051 §6.4.4
	// SENTSINCE, SENTBEFORE, SENTON). A message without a valid Date: is
	// compared by its internal date's calendar date in time.Local. The zero
	// time is unset.
	SentSince, SentBefore time.Time

	// Header: the message header must have a field named Key whose text
	// (unfolded, RFC 2047 encoded words decoded) contains Value,
	// case-insensitively; an empty Value only requires the field to exist.
	// IMAP SUBJECT and HEADER are Header matches.
	Header []HeaderMatch

	// Address: IMAP FROM, TO, CC and BCC (RFC 9051 §6.4.4: "the envelope
	// structure's FROM field"). Key is From, To, Cc or Bcc; the message
	// matches if it matches Header with the same Key and Value, or if
	// one of the field's addresses as ENVELOPE presents them
	// (message.Address.Text: display name decoded and unquoted, comments
	// removed, "Name <mailbox@host>") contains Value case-insensitively.
	// Another Key is a plain Header match.
	Address []HeaderMatch

	// Body: each string must occur, case-insensitively, in the decoded
	// text of the body: every text/* part, with its transfer encoding
	// (base64, quoted-printable) and charset decoded to UTF-8, and HTML
	// reduced to the text a reader sees (message.PartText), each part
	// on its own. The full-text index (fulltext.go) finds the candidates.
	Body []string

	// Text: each string must occur, case-insensitively, in the decoded
	// header fields (of the message or of any MIME part) or in the body
	// as Body searches it.
	Text []string

	// Flag lists flags the message must have, NotFlag flags it must not
	// have: system flags such as \Seen, or keywords; case-insensitive
	// (RFC 9051 §2.3.2). A flag the store cannot keep (\Recent, a
	// malformed keyword) is never set.
	Flag, NotFlag []string

	// Larger and Smaller bound the size (RFC822.SIZE): larger than Larger,
	// smaller than Smaller octets. 0 is unset.
	Larger, Smaller int64

	// ModSeq: the message's modseq must be at least ModSeq (RFC 7162
	// §3.1.5). 0 is unset.
	ModSeq uint64

	// SavedSince and SavedBefore bound the save date (RFC 8514;
	// savedate.go) as Since and Before bound the internal date: instants,
	// the caller passing day starts for SAVEDSINCE, SAVEDBEFORE and
	// SAVEDON. A message without a save date is compared by its internal
	// date (RFC 8514 §4.3). The zero time is unset.
	SavedSince, SavedBefore time.Time

	// Email: the message's email id (Message.Email) must be each of
	// these (IMAP EMAILID and THREADID, RFC 8474 §6).
	Email []EmailID

	// Not: each criteria must not match.
	Not []SearchCriteria
	// Or: for each pair, at least one must match.
	Or [][2]SearchCriteria
}

// saveDateSQL is a message's save date for search: its internal date
// where none is stored (RFC 8514 §4.3; savedate.go).
const saveDateSQL = "coalesce(m.save_date, m.internal_date)"

// HeaderMatch is a header-field search: field Key (case-insensitive)
// contains Value; an empty Value only asks that the field exists.
type HeaderMatch struct{ Key, Value string }

// Bounds on the SQL a search becomes; what lies beyond them is checked in
// Go instead, so any criteria can run, however large or deep.
const (
	// maxSQLRanges bounds how many ranges of one UID set become SQL
	// terms; beyond it, SQL reads the span between the smallest and
	// largest UID.
	maxSQLRanges = 16
	// maxSQLDepth bounds NOT/OR nesting in SQL, well under SQLite's
	// expression depth limit (1000).
	maxSQLDepth = 32
	// maxSQLArgs bounds the bound parameters, well under SQLite's limit
	// (32766).
	maxSQLArgs = 4096
)

// Search returns the UIDs, ascending, of the mailbox's messages matching c.
// c must not be nil: every message is &SearchCriteria{}, said outright.
// An unknown mailbox has no messages.
//
// Flag, UID, size, date and modseq conditions become one SQL query on the
// messages table, which reads no bodies. Only when c needs the header,
// body or Date: header does the query also join the bodies, and then only
// for the rows that pass those cheap conditions; the full criteria are
// then checked in Go, one streamed row at a time. NOT and OR nest freely:
// whatever part of them SQL can state exactly is done there.
func (s *Store) Search(ctx context.Context, mailbox MailboxID, c *SearchCriteria) ([]UID, error) {
	return s.search(ctx, mailbox, c, true)
}

// search is Search; without index, Body and Text scan every candidate
// left by the other criteria, as Search did before the full-text index
// (tests compare the two).
func (s *Store) search(ctx context.Context, mailbox MailboxID, c *SearchCriteria, index bool) ([]UID, error) {
	if c == nil {
		return nil, errors.New("search: no criteria (the zero SearchCriteria matches every message)")
	}
	// One read transaction, so that "*" and the rows come from the same
	// snapshot.
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rollbackRead(tx)

	var maxUID UID
	if c.hasStar() {
		var last sql.NullInt64
		if err := tx.QueryRowContext(ctx, "SELECT max(uid) FROM messages WHERE mailbox_id = ?", mailbox).Scan(&last); err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		maxUID = UID(last.Int64)
	}
	q := prepareSearch(c, maxUID)
	if index {
		q.useIndex(s.postgres)
	}
	where, args, exact := q.sql(0)
	if len(args) > maxSQLArgs {
		// Beyond SQLite's limits on parameters: check it all in Go.
		where, args, exact = matchAll, nil, false
	}
	args = append([]any{mailbox}, args...)

	if exact {
		rows, err := tx.QueryContext(ctx,
			"SELECT m.uid FROM messages m WHERE m.mailbox_id = ? AND "+where+" ORDER BY m.uid", args...)
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		uids, err := scanUIDs(rows)
		if err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		return uids, nil
	}

	var need searchNeeds
	q.needs(&need)
	cols := "m.uid, m.flags, m.keywords, m.internal_date, m.size, m.modseq, m.body_id, " + saveDateSQL
	from := "messages m"
	if need.header || need.body || need.date {
		from += " JOIN bodies b ON b.id = m.body_id"
		// Text and Body read the whole message, which holds the header.
		// Of the stored Parsed only the MIME tree and the Date are read,
		// cut out by SQLite's JSON functions: decoding the whole JSON in
		// Go would cost more than the rest of a header search.
		cols += pick(need.header && !need.body, ", b.header", ", NULL")
		cols += pick(need.body, ", b.raw, json_extract(b.parsed, '$.root')", ", NULL, NULL")
		cols += pick(need.date, ", json_extract(b.parsed, '$.env.date')", ", NULL")
		// FROM/TO/CC/BCC: the stored envelope's four address lists, cut
		// out by SQLite as one small JSON array; Go decodes it only for
		// a row whose raw field text did not match already.
		cols += pick(need.addr, ", "+envelopeAddrsSQL, ", NULL")
	} else {
		cols += ", NULL, NULL, NULL, NULL, NULL"
	}
	rows, err := tx.QueryContext(ctx,
		"SELECT "+cols+" FROM "+from+" WHERE m.mailbox_id = ? AND "+where+" ORDER BY m.uid", args...)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	defer rows.Close()
	var uids []UID
	var m searchMessage
	for n := 0; rows.Next(); n++ {
		if n%1024 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("search: %w", err)
			}
		}
		m.reset()
		// RawBytes: the blobs are used for this row only, so they need
		// not be copied.
		if err := rows.Scan(&m.uid, &m.bits, &m.keywords, &m.date, &m.size, &m.modseq, &m.email, &m.saved,
			(*sql.RawBytes)(&m.header), (*sql.RawBytes)(&m.raw), (*sql.RawBytes)(&m.rootJSON), &m.sentJSON,
			(*sql.RawBytes)(&m.addrJSON)); err != nil {
			return nil, fmt.Errorf("search: %w", err)
		}
		if q.match(&m) {
			uids = append(uids, m.uid)
		}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	return uids, nil
}

// scanUIDs reads a column of UIDs. It scans into an int64, which
// database/sql assigns without reflection: a search of "ALL" in a large
// mailbox spends most of its time here.
func scanUIDs(rows *sql.Rows) ([]UID, error) {
	defer rows.Close()
	var uids []UID
	var u int64
	for rows.Next() {
		if err := rows.Scan(&u); err != nil {
			return nil, err
		}
		uids = append(uids, UID(u))
	}
	return uids, rows.Err()
}

// rollbackRead ends a read-only transaction; it changed nothing, so there
// is nothing a failed rollback could leave behind.
func rollbackRead(tx *sql.Tx) {
	_ = tx.Rollback() // read-only: see above
}

func pick(cond bool, a, b string) string {
	if cond {
		return a
	}
	return b
}

// hasStar reports whether any UID range, at any depth, uses "*".
func (c *SearchCriteria) hasStar() bool {
	for _, set := range c.UIDs {
		for _, r := range set {
			if r.Start == 0 || r.Stop == 0 {
				return true
			}
		}
	}
	for i := range c.Not {
		if c.Not[i].hasStar() {
			return true
		}
	}
	for i := range c.Or {
		if c.Or[i][0].hasStar() || c.Or[i][1].hasStar() {
			return true
		}
	}
	return false
}

// searchQuery is SearchCriteria made ready to run: "*" resolved, ranges
// ordered, flags classified, needles lower-cased, dates as numbers.
type searchQuery struct {
	uids                  []UIDSet // ranges with Start <= Stop, no zeros
	since, before         int64    // unix nanoseconds, if hasSince, hasBefore
	hasSince, hasBefore   bool
	sentSince, sentBefore int // civil dates as yyyymmdd; 0 unset
	header                []HeaderMatch
	address               []HeaderMatch // Value lower-case
	body, text            []string      // lower-case
	flagBits, notFlagBits int
	keywords, notKeywords []string // lower-case, space-framed
	never                 bool     // a Flag the store cannot keep
	larger, smaller       int64
	modseq                uint64
	email                 []EmailID
	savedSince            int64 // unix nanoseconds, if hasSavedSince
	savedBefore           int64 // unix nanoseconds, if hasSavedBefore
	hasSavedSince         bool
	hasSavedBefore        bool
	index                 bool // Body and Text narrowed by the full-text index
	postgres              bool // ... the index of PostgreSQL (fulltext.go)
	not                   []*searchQuery
	or                    [][2]*searchQuery
}

func prepareSearch(c *SearchCriteria, maxUID UID) *searchQuery {
	q := &searchQuery{
		header:  make([]HeaderMatch, len(c.Header)),
		larger:  c.Larger,
		smaller: c.Smaller,
		modseq:  c.ModSeq,
		email:   c.Email,
	}
	for _, set := range c.UIDs {
		q.uids = append(q.uids, resolveStar(set, maxUID))
	}
	if !c.Since.IsZero() {
		q.since, q.hasSince = unixNano(c.Since), true
	}
	if !c.Before.IsZero() {
		q.before, q.hasBefore = unixNano(c.Before), true
	}
	if !c.SavedSince.IsZero() {
		q.savedSince, q.hasSavedSince = unixNano(c.SavedSince), true
	}
	if !c.SavedBefore.IsZero() {
		q.savedBefore, q.hasSavedBefore = unixNano(c.SavedBefore), true
	}
	q.sentSince = civilDay(c.SentSince)
	q.sentBefore = civilDay(c.SentBefore)
	for i, h := range c.Header {
		q.header[i] = HeaderMatch{Key: h.Key, Value: strings.ToLower(h.Value)}
	}
	for _, h := range c.Address {
		q.address = append(q.address, HeaderMatch{Key: h.Key, Value: strings.ToLower(h.Value)})
	}
	for _, b := range c.Body {
		q.body = append(q.body, strings.ToLower(b))
	}
	for _, t := range c.Text {
		q.text = append(q.text, strings.ToLower(t))
	}
	for _, f := range c.Flag {
		bit, kw, ok := classifyFlag(f)
		switch {
		case !ok:
			q.never = true
		case bit != 0:
			q.flagBits |= bit
		default:
			q.keywords = append(q.keywords, kw)
		}
	}
	for _, f := range c.NotFlag {
		bit, kw, ok := classifyFlag(f)
		switch {
		case !ok:
			// never set, so never a reason to exclude a message
		case bit != 0:
			q.notFlagBits |= bit
		default:
			q.notKeywords = append(q.notKeywords, kw)
		}
	}
	for i := range c.Not {
		q.not = append(q.not, prepareSearch(&c.Not[i], maxUID))
	}
	for i := range c.Or {
		q.or = append(q.or, [2]*searchQuery{prepareSearch(&c.Or[i][0], maxUID), prepareSearch(&c.Or[i][1], maxUID)})
	}
	return q
}

// useIndex lets q and every criteria nested in it narrow Body and Text
// with the full-text index.
func (q *searchQuery) useIndex(postgres bool) {
	q.index, q.postgres = true, postgres
	for _, n := range q.not {
		n.useIndex(postgres)
	}
	for _, pair := range q.or {
		pair[0].useIndex(postgres)
		pair[1].useIndex(postgres)
	}
}

// unixNano is t.UnixNano clamped to the int64 range (years 1678 to 2262),
// where UnixNano itself is undefined, so that "SINCE 1-Jan-1000" works.
func unixNano(t time.Time) int64 {
	switch {
	case t.Before(time.Unix(0, math.MinInt64)):
		return math.MinInt64
	case t.After(time.Unix(0, math.MaxInt64)):
		return math.MaxInt64
	}
	return t.UnixNano()
}

// resolveStar replaces "*" (0) by maxUID and orders each range. In an
// empty mailbox "*" is 0, which no message has.
func resolveStar(set UIDSet, maxUID UID) UIDSet {
	out := make(UIDSet, 0, len(set))
	for _, r := range set {
		if r.Start == 0 {
			r.Start = maxUID
		}
		if r.Stop == 0 {
			r.Stop = maxUID
		}
		if r.Start > r.Stop {
			r.Start, r.Stop = r.Stop, r.Start
		}
		out = append(out, r)
	}
	return out
}

// resolvedBounds returns the smallest and largest UID of a resolved set.
func resolvedBounds(set UIDSet) (lo, hi UID) {
	lo, hi = math.MaxUint32, 0
	for _, r := range set {
		lo, hi = min(lo, r.Start), max(hi, r.Stop)
	}
	return lo, hi
}

// resolvedContains is Contains for a resolved set, where 0 is no longer "*".
func resolvedContains(set UIDSet, uid UID) bool {
	for _, r := range set {
		if uid >= r.Start && uid <= r.Stop {
			return true
		}
	}
	return false
}

// civilDay returns t's calendar date (in t's Location) as yyyymmdd, 0 for
// the zero time.
func civilDay(t time.Time) int {
	if t.IsZero() {
		return 0
	}
	y, m, d := t.Date()
	return y*10000 + int(m)*100 + d
}

// classifyFlag returns a system flag's bit, or a keyword in its stored,
// space-framed, lower-case search form; ok is false for a flag the store
// cannot keep.
func classifyFlag(f string) (bit int, kw string, ok bool) {
	for _, sf := range systemFlags {
		if strings.EqualFold(f, sf.name) {
			return sf.bit, "", true
		}
	}
	if !validKeyword(f) {
		return 0, "", false
	}
	return 0, " " + strings.ToLower(f) + " ", true
}

// sql returns a condition on messages m that holds for every message q
// matches, with its arguments; exact reports that it holds for no other,
// so no check in Go is needed. depth is the NOT/OR nesting; at depth 0, a
// UID set also bounds the primary-key range SQLite reads.
//
// Only our own integer constants are written into the text (the flag bits,
// literal so that a partial index on them can serve); every value from the
// caller is a bound parameter.
func (q *searchQuery) sql(depth int) (expr string, args []any, exact bool) {
	if depth > maxSQLDepth {
		return matchAll, nil, false
	}
	top := depth == 0
	var terms []string
	exact = true
	add := func(term string, a ...any) {
		terms = append(terms, term)
		args = append(args, a...)
	}
	if q.never {
		return matchNone, nil, true
	}
	for _, set := range q.uids {
		if len(set) == 0 {
			return matchNone, nil, true
		}
		lo, hi := resolvedBounds(set)
		if top || len(set) > maxSQLRanges {
			// The span lets SQLite read only part of the primary key.
			add("m.uid BETWEEN ? AND ?", lo, hi)
		}
		if len(set) > maxSQLRanges {
			exact = false
			continue
		}
		if len(set) == 1 && top {
			continue // the span is the set
		}
		parts := make([]string, len(set))
		for i, r := range set {
			parts[i] = "m.uid BETWEEN ? AND ?"
			args = append(args, r.Start, r.Stop)
		}
		terms = append(terms, "("+strings.Join(parts, " OR ")+")")
	}
	// One term per flag, each literal, so that a partial index such as
	// "WHERE flags & 1 = 0" (unseen) matches the term it was made for.
	for _, sf := range systemFlags {
		if q.flagBits&sf.bit != 0 {
			add(fmt.Sprintf("m.flags & %d != 0", sf.bit))
		}
		if q.notFlagBits&sf.bit != 0 {
			add(fmt.Sprintf("m.flags & %d = 0", sf.bit))
		}
	}
	for _, kw := range q.keywords {
		add("instr(lower(m.keywords), ?) > 0", kw)
	}
	for _, kw := range q.notKeywords {
		add("instr(lower(m.keywords), ?) = 0", kw)
	}
	if q.hasSince {
		add("m.internal_date >= ?", q.since)
	}
	if q.hasBefore {
		add("m.internal_date < ?", q.before)
	}
	if q.larger != 0 {
		add("m.size > ?", q.larger)
	}
	if q.smaller != 0 {
		add("m.size < ?", q.smaller)
	}
	if q.modseq != 0 {
		add("m.modseq >= ?", q.modseq)
	}
	for _, e := range q.email {
		add("m.body_id = ?", e)
	}
	if q.hasSavedSince {
		add(saveDateSQL+" >= ?", q.savedSince)
	}
	if q.hasSavedBefore {
		add(saveDateSQL+" < ?", q.savedBefore)
	}
	if q.sentSince != 0 || q.sentBefore != 0 || len(q.header) > 0 || len(q.address) > 0 || len(q.body) > 0 || len(q.text) > 0 {
		exact = false // checked in Go on the body row
	}
	if q.index {
		// Candidates only (ftsQuery): the Go check confirms each. BODY
		// asks the whole row too: detail=none has no column filters.
		for _, n := range slices.Concat(q.body, q.text) {
			if q.postgres {
				if pattern, ok := likeContains(n); ok {
					add(bodyTextMatchPostgres, pattern, pattern)
				}
			} else if fq, ok := ftsQuery(n); ok {
				add(bodyTextMatchSQL, fq)
			}
		}
	}
	for _, n := range q.not {
		e, a, x := n.sql(depth + 1)
		if !x {
			// NOT of a superset says nothing about the set.
			exact = false
			continue
		}
		add("NOT ("+e+")", a...)
	}
	for _, pair := range q.or {
		e0, a0, x0 := pair[0].sql(depth + 1)
		e1, a1, x1 := pair[1].sql(depth + 1)
		exact = exact && x0 && x1
		if e0 == matchAll || e1 == matchAll {
			continue // no restriction
		}
		add("(("+e0+") OR ("+e1+"))", append(a0, a1...)...)
	}
	if len(terms) == 0 {
		return matchAll, nil, exact
	}
	return strings.Join(terms, " AND "), args, exact
}

// matchAll is the search term of no restriction: TRUE, which both SQLite
// and PostgreSQL (where a bare 1 is no boolean) read.
const matchAll = "TRUE"

// matchNone is the search term that no message meets.
const matchNone = "FALSE"

// searchNeeds says which body columns the Go check reads.
type searchNeeds struct{ header, body, date, addr bool }

func (q *searchQuery) needs(n *searchNeeds) {
	n.header = n.header || len(q.header) > 0 || len(q.address) > 0
	n.addr = n.addr || len(q.address) > 0
	n.body = n.body || len(q.body) > 0 || len(q.text) > 0
	n.date = n.date || q.sentSince != 0 || q.sentBefore != 0
	for _, c := range q.not {
		c.needs(n)
	}
	for _, pair := range q.or {
		pair[0].needs(n)
		pair[1].needs(n)
	}
}

// searchPart is the part of a stored Part (the JSON of Parsed.Root) that
// search reads: decoding only these fields costs about half as much as a
// whole Part. TestSearchPartMatchesParsed keeps the JSON names in step
// with message.Part.
type searchPart struct {
	Type    string `json:"type"`
	Subtype string `json:"subtype"`
	Params  struct {
		Charset string `json:"charset"`
	} `json:"params"`
	Encoding    string       `json:"enc"`
	HeaderStart int64        `json:"hdr"`
	BodyStart   int64        `json:"body"`
	End         int64        `json:"end"`
	Parts       []searchPart `json:"parts"`
}

// searchMessage is one candidate row, with what the Go check derived from
// it so far (each derived once per message, only if a criterion asks).
type searchMessage struct {
	uid      UID
	bits     int
	keywords string
	date     int64
	size     int64
	modseq   uint64
	email    EmailID
	saved    int64  // saveDateSQL
	header   []byte // the header block, or nil if raw is loaded
	raw      []byte
	rootJSON []byte         // Parsed.Root as JSON
	sentJSON sql.NullString // Parsed.Envelope.Date (RFC 3339), NULL if none
	addrJSON []byte         // envelopeAddrsSQL's array, or nil

	root       *searchPart
	rootDone   bool
	headerText string // decoded header fields, lower-case (TEXT)
	headerDone bool
	bodyText   [][]byte // decoded text parts, lower-case
	bodyDone   bool
	sentDay    int
	addrs      *envelopeAddrs // nil if not decoded or undecodable
	addrsDone  bool
}

func (m *searchMessage) reset() { *m = searchMessage{} }

// match reports whether m satisfies q. Cheap tests come first.
func (q *searchQuery) match(m *searchMessage) bool {
	if q.never {
		return false
	}
	for _, set := range q.uids {
		if !resolvedContains(set, m.uid) {
			return false
		}
	}
	if m.bits&q.flagBits != q.flagBits || m.bits&q.notFlagBits != 0 {
		return false
	}
	if len(q.keywords) > 0 || len(q.notKeywords) > 0 {
		kw := strings.ToLower(m.keywords)
		for _, k := range q.keywords {
			if !strings.Contains(kw, k) {
				return false
			}
		}
		for _, k := range q.notKeywords {
			if strings.Contains(kw, k) {
				return false
			}
		}
	}
	if (q.hasSince && m.date < q.since) || (q.hasBefore && m.date >= q.before) {
		return false
	}
	if (q.larger != 0 && m.size <= q.larger) || (q.smaller != 0 && m.size >= q.smaller) {
		return false
	}
	if q.modseq != 0 && m.modseq < q.modseq {
		return false
	}
	for _, e := range q.email {
		if m.email != e {
			return false
		}
	}
	if (q.hasSavedSince && m.saved < q.savedSince) || (q.hasSavedBefore && m.saved >= q.savedBefore) {
		return false
	}
	if q.sentSince != 0 || q.sentBefore != 0 {
		d := m.sentDate()
		if (q.sentSince != 0 && d < q.sentSince) || (q.sentBefore != 0 && d >= q.sentBefore) {
			return false
		}
	}
	for _, h := range q.header {
		if !m.headerMatch(h) {
			return false
		}
	}
	for _, h := range q.address {
		if !m.headerMatch(h) && !m.envelopeMatch(h) {
			return false
		}
	}
	for _, b := range q.body {
		if !m.bodyContains(b) {
			return false
		}
	}
	for _, t := range q.text {
		if !strings.Contains(m.decodedHeader(), t) && !m.bodyContains(t) {
			return false
		}
	}
	for _, n := range q.not {
		if n.match(m) {
			return false
		}
	}
	for _, pair := range q.or {
		if !pair[0].match(m) && !pair[1].match(m) {
			return false
		}
	}
	return true
}

// getRoot decodes the stored MIME tree; nil if it is missing or
// unreadable, in which case callers fall back to the raw bytes.
func (m *searchMessage) getRoot() *searchPart {
	if !m.rootDone {
		m.rootDone = true
		if len(m.rootJSON) > 0 {
			p := new(searchPart)
			if json.Unmarshal(m.rootJSON, p) == nil {
				m.root = p
			}
		}
	}
	return m.root
}

// headerBlock returns the message's header block.
func (m *searchMessage) headerBlock() []byte {
	if m.header != nil {
		return m.header
	}
	return m.raw[:message.HeaderEnd(m.raw)]
}

// headerMatch reports whether the message has a field h.Key containing
// h.Value (already lower-case) in its decoded text.
func (m *searchMessage) headerMatch(h HeaderMatch) bool {
	found := false
	message.EachField(m.headerBlock(), func(name, value []byte) bool {
		if !strings.EqualFold(string(name), h.Key) {
			return true
		}
		if h.Value == "" || strings.Contains(strings.ToLower(message.FieldText(value)), h.Value) {
			found = true
			return false
		}
		return true
	})
	return found
}

// envelopeAddrsSQL selects the stored envelope's From, To, Cc and Bcc
// address lists (message.Envelope's JSON) as one JSON array of four.
const envelopeAddrsSQL = "json_extract(b.parsed, '$.env.from', '$.env.to', '$.env.cc', '$.env.bcc')"

// envelopeAddrs is envelopeAddrsSQL's array decoded.
type envelopeAddrs [4][]message.Address

// envelopeMatch reports whether one of the addresses of field h.Key
// (From, To, Cc or Bcc) in the stored envelope contains h.Value
// (lower-case) as ENVELOPE presents it (message.Address.Text). An empty
// Value is the raw field's question (headerMatch).
func (m *searchMessage) envelopeMatch(h HeaderMatch) bool {
	i := -1
	for j, k := range []string{"From", "To", "Cc", "Bcc"} {
		if strings.EqualFold(h.Key, k) {
			i = j
		}
	}
	if i < 0 || h.Value == "" {
		return false
	}
	if !m.addrsDone {
		m.addrsDone = true
		if len(m.addrJSON) > 0 {
			a := new(envelopeAddrs)
			if json.Unmarshal(m.addrJSON, a) == nil {
				m.addrs = a
			}
		}
	}
	if m.addrs == nil {
		return false
	}
	for _, a := range m.addrs[i] {
		if strings.Contains(strings.ToLower(a.Text()), h.Value) {
			return true
		}
	}
	return false
}

// decodedHeader returns every header field of the message and of its MIME
// parts (and forwarded messages), decoded and lower-cased, one
// "name: text" line each.
func (m *searchMessage) decodedHeader() string {
	if !m.headerDone {
		m.headerDone = true
		m.headerText = decodeHeaderText(m.headerBlock(), m.raw, m.getRoot())
	}
	return m.headerText
}

// decodeHeaderText returns the fields of the header block hdr and, if raw
// and root are known, of every MIME part below the root, decoded
// (message.FieldText) and lower-cased, one "name: text" line each: what
// TEXT searches besides the body (RFC 9051 §6.4.4).
func decodeHeaderText(hdr, raw []byte, root *searchPart) string {
	var sb strings.Builder
	appendFields := func(b []byte) {
		message.EachField(b, func(name, value []byte) bool {
			sb.Write(name)
			sb.WriteString(": ")
			sb.WriteString(message.FieldText(value))
			sb.WriteByte('\n')
			return true
		})
	}
	appendFields(hdr)
	if root != nil && raw != nil {
		walkParts(root, 0, func(part *searchPart, depth int) {
			if depth == 0 {
				return
			}
			if b, ok := sliceOK(raw, part.HeaderStart, part.BodyStart); ok {
				appendFields(b)
			}
		})
	}
	return strings.ToLower(sb.String())
}

// bodyContains reports whether needle (lower-case) is in the decoded text
// of the body.
func (m *searchMessage) bodyContains(needle string) bool {
	if needle == "" {
		return true // even a body without text contains the empty string
	}
	if !m.bodyDone {
		m.bodyDone = true
		m.bodyText = decodeBodyText(m.raw, m.getRoot())
	}
	n := []byte(needle)
	for _, t := range m.bodyText {
		if bytes.Contains(t, n) {
			return true
		}
	}
	return false
}

// sentDate returns the calendar date (yyyymmdd) of the Date: header field
// in its own zone, or of the internal date in time.Local without one.
func (m *searchMessage) sentDate() int {
	if m.sentDay == 0 {
		// Parsed.Envelope.Date is stored as RFC 3339 with the header's
		// own offset, so its calendar date survives.
		if t, err := time.Parse(time.RFC3339Nano, m.sentJSON.String); m.sentJSON.Valid && err == nil && !t.IsZero() {
			m.sentDay = civilDay(t)
		} else {
			m.sentDay = civilDay(time.Unix(0, m.date))
		}
	}
	return m.sentDay
}

// walkParts calls fn for p and every part below it, depth first, in order.
func walkParts(p *searchPart, depth int, fn func(p *searchPart, depth int)) {
	fn(p, depth)
	for i := range p.Parts {
		walkParts(&p.Parts[i], depth+1, fn)
	}
}

// decodeBodyText returns the lower-cased text of every text/* part (RFC
// 9051 §6.4.4 BODY), forwarded messages included, as message.PartText
// reads it: decoded, and HTML reduced to its text. Without a parse
// result, the raw body after the header is used.
func decodeBodyText(raw []byte, root *searchPart) [][]byte {
	if root == nil {
		return [][]byte{bytes.ToLower(raw[message.HeaderEnd(raw):])}
	}
	var out [][]byte
	walkParts(root, 0, func(part *searchPart, _ int) {
		if part.Type != "text" || len(part.Parts) > 0 {
			return
		}
		if b, ok := sliceOK(raw, part.BodyStart, part.End); ok {
			out = append(out, bytes.ToLower(message.PartText(part.Subtype, part.Encoding, part.Params.Charset, b)))
		}
	})
	return out
}

// sliceOK returns raw[start:end] if the offsets are sane.
func sliceOK(raw []byte, start, end int64) ([]byte, bool) {
	if start < 0 || end < start || end > int64(len(raw)) {
		return nil, false
	}
	return raw[start:end], true
}
