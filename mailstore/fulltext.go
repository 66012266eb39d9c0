package mailstore

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"unicode/utf8"

	"pushmail/message"
)

// The full-text index (schema version versionBodyText) serves SEARCH
// BODY and TEXT (RFC 9051 §6.4.4) without decoding every message.
//
// body_text is an SQLite FTS5 table with the trigram tokenizer, one row
// per body (rowid = bodies.id, so a copy shares its original's row), with
// two columns: the decoded header fields of the message and of its MIME
// parts, and the text of its text parts, as the scanning search reads
// them (decodeHeaderText, decodeBodyText), already lower-cased by Go.
// It is contentless (content=''): the text is not stored a second time;
// contentless_delete lets a row be deleted by rowid. detail=none keeps
// only which rows hold each trigram, not where: a tenth of the size of
// the positions (detail=full) on the bench bigbox corpus, at the cost of
// answering "has every trigram of the needle" rather than "has the
// needle", which the confirming check settles. So each column is written
// packed (packTrigrams): every distinct trigram of the text at least once,
// the repeats dropped, which spares the writer most of FTS5's tokenizing.
//
// The index only narrows: a needle of three characters or more selects
// the bodies that hold all its trigrams, a superset of the bodies that
// contain it (see ftsQuery), and the scanning check then confirms each
// candidate, so the answer is exactly the scanning search's. Shorter
// needles (trigrams cannot answer them) scan, as before.
//
// A body's row is written behind the delivery, a few hundred bodies a
// transaction, and the bodies not indexed yet are candidates of every
// search (fulltextmark.go: the mark); it is deleted by a trigger in the
// transaction that deletes the body (its last message's expunge, move
// out of the last mailbox, DELETE of a mailbox or user); COPY and MOVE
// share the body, and so its row. So SEARCH never misses a committed
// message and never meets a stale row.

// versionBodyText is the schema version whose migration creates the
// full-text index and fills it (indexBodyText). The same migration
// stores each body's size in CRLF form, for POP3 (maildrop.go), which
// otherwise read every body of the INBOX at each login.
const versionBodyText = 13

// migrationBodyText is the migration to versionBodyText.
const migrationBodyText = `
CREATE VIRTUAL TABLE body_text USING fts5(
	header, body,
	content = '', contentless_delete = 1, detail = none,
	tokenize = 'trigram'
);
CREATE TABLE body_crlf_size (
	id   INTEGER PRIMARY KEY,  -- bodies.id
	size INTEGER NOT NULL      -- octets with every bare LF sent as CRLF (maildrop.go)
);
INSERT INTO body_crlf_size(id, size)
	SELECT id, n + (n - octet_length(replace(raw, char(10), ''))) - (n - octet_length(replace(raw, char(13, 10), ''))) / 2
	FROM (SELECT id, raw, octet_length(raw) AS n FROM bodies);
CREATE TRIGGER bodies_text_delete AFTER DELETE ON bodies BEGIN
	DELETE FROM body_text WHERE rowid = OLD.id;
	DELETE FROM body_crlf_size WHERE id = OLD.id;
END;
`

// errNoFTS5 explains the failure of a binary built without FTS5.
var errNoFTS5 = errors.New("this binary's SQLite has no FTS5, which the full-text index needs: build with -tags sqlite_fts5")

// checkFTS5 fails with errNoFTS5 if SQLite was compiled without FTS5
// (go-sqlite3 compiles it in with the build tag sqlite_fts5 only).
func checkFTS5(ctx context.Context, db *sql.DB) error {
	var on bool
	if err := db.QueryRowContext(ctx, "SELECT sqlite_compileoption_used('ENABLE_FTS5')").Scan(&on); err != nil {
		return fmt.Errorf("check for FTS5: %w", err)
	}
	if !on {
		return errNoFTS5
	}
	return nil
}

// bodyTextMatchSQL is a search term on messages m: the message's body
// matches an FTS5 query (ftsQuery).
// Bodies above the index's mark are not in the index yet
// (fulltextmark.go): each of them is a candidate.
const bodyTextMatchSQL = "(m.body_id > (SELECT value FROM meta WHERE key = '" + bodyTextMarkKey + "') OR m.body_id IN (SELECT rowid FROM body_text WHERE body_text MATCH ?))"

// bodyTextMatchPostgres is bodyTextMatchSQL on PostgreSQL, where
// body_text is a plain table (schema_postgres.go) with a trigram index
// (pg_trgm's gin_trgm_ops) on each column, which LIKE '%needle%' uses.
// Its two parameters are the same likeContains pattern. Unlike FTS5
// with detail=none, the index answers "contains the needle", but the
// scanning check still confirms each candidate, as on SQLite.
const bodyTextMatchPostgres = `(m.body_id > (SELECT value FROM meta WHERE key = '` + bodyTextMarkKey + `') OR m.body_id IN (SELECT id FROM body_text WHERE header LIKE ? ESCAPE '\' OR body LIKE ? ESCAPE '\'))`

// likeContains returns the LIKE pattern of the strings that contain
// needle (lower-case, as the index text is); ok is false when the index
// cannot narrow the search for it: PostgreSQL's text holds no NUL, which
// newBodyText turned into spaces.
func likeContains(needle string) (string, bool) {
	if needle == "" || strings.IndexByte(needle, 0) >= 0 {
		return "", false
	}
	return "%" + likePrefix(needle), true
}

// bodyTextRow is one body's row of the index, to be written.
type bodyTextRow struct {
	id   int64
	text bodyText
}

// maxBodyTextRows bounds the rows of one INSERT (3 parameters each, well
// under SQLite's 32766).
const maxBodyTextRows = 512

// writeBodyText writes rows to the index, as few statements as it can.
//
// FTS5 collects a transaction's rows in memory and writes them out as one
// new segment at the commit, or earlier, whenever a statement opens a
// statement journal (sqlite3VtabSavepoint calls FTS5's xSavepoint, which
// flushes): every INSERT into an FTS5 table, and every UPDATE with a
// trigger, does. Written one INSERT per message among the delivery's other
// statements, each message became a segment of its own, for FTS5 to merge
// again: twice the writer's time per delivery. One multi-row INSERT per
// batch, as its last statement, makes one segment per commit.
//
// The rows were collected while the batch ran, and a later write of the
// batch may have deleted a body (its delete trigger then found no row to
// delete), and SQLite may have given its id to a newer body: so only the
// last row collected for an id is written, and only if that body is
// still there. FTS5 does not check that a rowid is new; a second row
// under one would corrupt the index.
func writeBodyText(ctx context.Context, tx *sql.Tx, rows []bodyTextRow, postgres bool) error {
	last := make(map[int64]int, len(rows))
	for i, r := range rows {
		last[r.id] = i
	}
	args := make([]any, 0, 3*min(len(rows), maxBodyTextRows))
	flush := func() error {
		if len(args) == 0 {
			return nil
		}
		n := len(args) / 3
		q := "INSERT INTO body_text(rowid, header, body) SELECT v.column1, v.column2, v.column3 FROM (VALUES " +
			strings.Repeat("(?, ?, ?), ", n-1) + "(?, ?, ?)) v JOIN bodies b ON b.id = v.column1"
		if postgres {
			// A plain table (bodyTextMatchPostgres), whose VALUES need
			// their types.
			q = "INSERT INTO body_text(id, header, body) SELECT v.column1, v.column2, v.column3 FROM (VALUES " +
				strings.Repeat("(?::bigint, ?::text, ?::text), ", n-1) + "(?::bigint, ?::text, ?::text)) v JOIN bodies b ON b.id = v.column1"
		}
		_, err := tx.ExecContext(ctx, q, args...)
		args = args[:0]
		return err
	}
	for i, r := range rows {
		if last[r.id] != i {
			continue // the body was deleted, and its id given again
		}
		args = append(args, r.id, r.text.header, r.text.body)
		if len(args) == 3*maxBodyTextRows {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

// bodyText is what the index holds for one body.
type bodyText struct{ header, body string }

// newBodyText derives a body's index text from its raw bytes and parse
// result: the same text the scanning search reads, parts separated by a
// line break. The separator may make a needle match across two parts in
// the index; the scanning check, which reads each part alone, then
// rejects it. NUL bytes become spaces: FTS5 reads text as C strings in
// places, and a needle with a NUL never uses the index (ftsQuery).
func newBodyText(raw []byte, root *searchPart) bodyText {
	h := decodeHeaderText(raw[:message.HeaderEnd(raw)], raw, root)
	b := bytes.Join(decodeBodyText(raw, root), []byte{'\n'})
	return bodyText{
		header: strings.ReplaceAll(h, "\x00", " "),
		body:   string(bytes.ReplaceAll(b, []byte{0}, []byte{' '})),
	}
}

// packed returns t with each column reduced to its distinct trigrams
// (packTrigrams), for an index that is only asked which trigrams a body
// holds: SQLite's (detail=none). See indexPacksText.
func (t bodyText) packed() bodyText {
	return bodyText{header: packWorthIt(t.header), body: packWorthIt(t.body)}
}

// packWorthIt returns packTrigrams(s) when that is at most half as long
// as s, else s. Each join of the packed runs may add two trigrams s
// lacks, new terms for the index: in text that repeats little (the bench
// bigbox corpus, words drawn at random) packing saved FTS5 little
// tokenizing and made the index a fifth larger.
func packWorthIt(s string) string {
	if p := packTrigrams(s); 2*len(p) <= len(s) {
		return p
	}
	return s
}

// packTrigrams returns a text that holds every trigram (three code
// points in a row) of s, each of them at least once, and little else:
// the runs of s whose trigrams are new, in order, joined together. Mail
// repeats itself (a text/plain part and its text/html alternative, quoted
// replies, signatures, the lines of a bench message), and FTS5's trigram
// tokenizer otherwise hashes every trigram of every repeat in the
// writer's transaction, while detail=none keeps only whether a body holds
// it. A join adds up to two trigrams s may lack: they can only add
// candidates, which the confirming check rejects (the index narrows, it
// never decides). SQLite folds case one code point at a time, so each
// trigram of the packed text folds as it did in s. s is returned as is
// when it is not valid UTF-8 (Go and SQLite would read its invalid bytes
// differently) or has no repeat to drop.
func packTrigrams(s string) string {
	if len(s) < 6 {
		return s
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			ascii = false
			break
		}
	}
	if ascii {
		return packASCIITrigrams(s)
	}
	if !utf8.ValidString(s) {
		return s
	}
	// starts[i] is the byte offset of the i-th code point of s; the
	// trigram at i is the three code points from starts[i].
	starts := make([]int, 0, len(s)+1)
	runes := make([]rune, 0, len(s))
	for i, r := range s {
		starts = append(starts, i)
		runes = append(runes, r)
	}
	n := len(runes)
	starts = append(starts, len(s))
	// An open-addressing set of the trigrams seen, twice as large as
	// their number can be: a map costs ten times as much here.
	size := 16
	for size < 2*n {
		size *= 2
	}
	seen := make([]uint64, size)
	mask := uint64(size - 1)
	var b strings.Builder
	end := 0 // code points of s written so far, when the output ends in s's run
	for i := 0; i+3 <= n; i++ {
		// 21 bits a code point, plus one so that no key is 0 (empty).
		key := (uint64(runes[i])<<42 | uint64(runes[i+1])<<21 | uint64(runes[i+2])) + 1
		h := (key * 0x9e3779b97f4a7c15) >> 32 & mask
		for seen[h] != 0 && seen[h] != key {
			h = (h + 1) & mask
		}
		if seen[h] == key {
			continue
		}
		seen[h] = key
		from := i
		if i < end {
			from = end // the run goes on: code points up to end are written
		}
		b.WriteString(s[starts[from]:starts[i+3]])
		end = i + 3
	}
	if b.Len() >= len(s) {
		return s
	}
	return b.String()
}

// asciiTrigrams is the set of packASCIITrigrams: one bit per trigram of
// 7-bit characters (2^21 bits, 256 KiB), pooled, and cleared after each
// use through the words it set, so that a 4 KB text costs a few
// microseconds instead of a map's hundred.
type asciiTrigrams struct {
	bits    [1 << 21 / 64]uint64
	touched []uint32
}

var asciiTrigramsPool = sync.Pool{New: func() any { return new(asciiTrigrams) }}

// packASCIITrigrams is packTrigrams for a text of 7-bit characters, where
// a byte is a code point.
func packASCIITrigrams(s string) string {
	set := asciiTrigramsPool.Get().(*asciiTrigrams)
	defer func() {
		for _, w := range set.touched {
			set.bits[w] = 0
		}
		set.touched = set.touched[:0]
		asciiTrigramsPool.Put(set)
	}()
	var b []byte
	end := 0 // bytes of s written so far, when the output ends in s's run
	for i := 0; i+3 <= len(s); i++ {
		k := uint32(s[i])<<14 | uint32(s[i+1])<<7 | uint32(s[i+2])
		w, bit := k>>6, uint64(1)<<(k&63)
		if set.bits[w]&bit != 0 {
			continue
		}
		if set.bits[w] == 0 {
			set.touched = append(set.touched, w)
		}
		set.bits[w] |= bit
		if b == nil {
			b = make([]byte, 0, len(s)/4)
		}
		from := i
		if i < end {
			from = end // the run goes on
		}
		b = append(b, s[from:i+3]...)
		end = i + 3
	}
	if len(b) >= len(s) {
		return s
	}
	return string(b)
}

// indexPacksText reports whether the store's full-text index is written
// packed text (bodyText.packed): on SQLite, whose FTS5 index with
// detail=none records only which trigrams a body holds. PostgreSQL's
// body_text answers LIKE '%needle%' on the text itself
// (bodyTextMatchPostgres), which must stay whole.
func (s *Store) indexPacksText() bool { return !s.postgres }

// toSearchPart copies what search reads of a parsed MIME tree.
func toSearchPart(p *message.Part) *searchPart {
	sp := &searchPart{
		Type:        p.Type,
		Subtype:     p.Subtype,
		Encoding:    p.Encoding,
		HeaderStart: p.HeaderStart,
		BodyStart:   p.BodyStart,
		End:         p.End,
	}
	sp.Params.Charset = p.Params["charset"]
	if len(p.Parts) > 0 {
		sp.Parts = make([]searchPart, len(p.Parts))
		for i := range p.Parts {
			sp.Parts[i] = *toSearchPart(&p.Parts[i])
		}
	}
	return sp
}

// maxQueryTrigrams bounds the trigrams of one needle put to the index;
// a long needle is narrowed enough by some of them.
const maxQueryTrigrams = 24

// ftsQuery returns the FTS5 query that selects the bodies whose index
// text may contain needle (lower-case): those holding each of its
// trigrams (at most maxQueryTrigrams of them, spread over the needle);
// ok is false when the index cannot narrow the search for it.
//
// The trigram tokenizer folds case per code point (SQLite's unicode
// folding, which may differ from Go's). Both the text and the needle are
// lower-cased by Go before SQLite folds them, one code point at a time;
// so where Go's lower-cased text contains Go's lower-cased needle, the
// folded text holds every folded trigram of the folded needle: every
// match of the scanning search is a candidate. The converse fails (the
// trigrams may lie apart, folding may merge what Go keeps apart), which
// the confirming check absorbs. Needles of fewer than three characters
// have no trigram, and one with a NUL may be cut short in FTS5, so those
// go without the index.
func ftsQuery(needle string) (string, bool) {
	if strings.IndexByte(needle, 0) >= 0 {
		return "", false
	}
	runes := []rune(needle)
	n := len(runes) - 2 // trigrams
	if n < 1 {
		return "", false
	}
	step := max(1, (n+maxQueryTrigrams-1)/maxQueryTrigrams)
	seen := map[string]bool{}
	var terms []string
	for i := 0; i < n; i += step {
		if i+step >= n {
			i = n - 1 // always the last trigram
		}
		tri := string(runes[i : i+3])
		if seen[tri] {
			continue
		}
		seen[tri] = true
		// FTS5 query syntax (sqlite.org/fts5.html §3.1): a string in
		// double quotes, a double quote in it written twice; one
		// trigram is one token, which detail=none can answer.
		terms = append(terms, `"`+strings.ReplaceAll(tri, `"`, `""`)+`"`)
	}
	return strings.Join(terms, " AND "), true
}

// indexBodyText is the migration step to versionBodyText: it indexes
// every body already stored, a batch at a time, logging its progress
// (a large store takes minutes).
func indexBodyText(ctx context.Context, tx *sql.Tx, log *slog.Logger) error {
	var total int64
	if err := tx.QueryRowContext(ctx, "SELECT count(*) FROM bodies").Scan(&total); err != nil {
		return err
	}
	if total == 0 {
		return nil // a new store: nothing to index, nothing to say
	}
	log.Info("full-text index: indexing the stored messages", "bodies", total)
	const batch = 256
	var last, done int64
	type row struct {
		id      int64
		raw, js []byte
	}
	for {
		rows, err := tx.QueryContext(ctx,
			"SELECT id, raw, json_extract(parsed, '$.root') FROM bodies WHERE id > ? ORDER BY id LIMIT ?", last, batch)
		if err != nil {
			return err
		}
		var got []row
		for rows.Next() {
			var r row
			if err := rows.Scan(&r.id, &r.raw, &r.js); err != nil {
				rows.Close()
				return err
			}
			got = append(got, r)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if len(got) == 0 {
			break
		}
		index := make([]bodyTextRow, 0, len(got))
		for _, r := range got {
			var root *searchPart
			if p := new(searchPart); json.Unmarshal(r.js, p) == nil {
				root = p
			}
			index = append(index, bodyTextRow{id: r.id, text: newBodyText(r.raw, root).packed()})
			last = r.id
		}
		if err := writeBodyText(ctx, tx, index, false); err != nil {
			return fmt.Errorf("index bodies up to %d: %w", last, err)
		}
		before := done / 10000
		done += int64(len(got))
		if done/10000 != before {
			log.Info("full-text index: progress", "indexed", done, "of", total)
		}
	}
	log.Info("full-text index: done", "indexed", done)
	return nil
}
