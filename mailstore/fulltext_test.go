package mailstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/message"
	"pushmail/notify"
)

// undoSchemaBodyText turns a file written at versionBodyText back into
// one of the version before: the full-text index goes.
const undoSchemaBodyText = `
DROP TRIGGER bodies_text_delete;
DROP TABLE body_text;
DROP TABLE body_crlf_size;
`

// fullTextCorpus adds to searchCorpus what the index must read like the
// scanning search: HTML-only mail, words split by markup, character
// references, hidden script text, base64 HTML, non-UTF-8 charsets, a
// header in an encoded word, and a NUL byte.
var fullTextCorpus = []string{
	// 11: HTML only, a word split by inline markup, a block break,
	// entities and a script.
	`From: kim@example.com
To: bob@example.net
Subject: html only
MIME-Version: 1.0
Content-Type: text/html; charset=utf-8

<html><head><style>p { color: red }</style><script>var secretScript = 1;</script></head>
<body><p>hel<b>lo</b> wor<i>ld</i></p><div>caf&eacute; &amp; cr&egrave;me&nbsp;br&ucirc;l&eacute;e</div>
<p>line<br>break</p><!-- a hidden comment --></body></html>
`,
	// 12: windows-1252 quoted-printable, with curly quotes and the euro.
	`From: leo@example.com
To: bob@example.net
Subject: =?windows-1252?Q?=93Preis=94_80_=80?=
MIME-Version: 1.0
Content-Type: text/plain; charset=windows-1252
Content-Transfer-Encoding: quoted-printable

Der Preis ist =93nur=94 80 =80 =96 wirklich.
`,
	// 13: ISO-2022-JP (needs go-message's charsets, linked by package
	// message).
	"From: mai@example.jp\nTo: bob@example.net\nSubject: =?ISO-2022-JP?B?GyRCRnxLXDhsGyhC?=\nMIME-Version: 1.0\nContent-Type: text/plain; charset=iso-2022-jp\nContent-Transfer-Encoding: 7bit\n\n\x1b$BF|K\\8l$N%a!<%k\x1b(B kumquat\n",
	// 14: base64 HTML in a multipart/alternative beside ISO-8859-1 text.
	`From: ned@example.com
To: bob@example.net
Subject: two tongues
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=x

--x
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Gr=FC=DFe aus K=F6ln, KUMQUAT!
--x
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: base64

PHA+R3LDvMOfZSBhdXMgPGVtPks8L2VtPsO2bG48L3A+
--x--
`,
	// 15: a NUL byte in the body, upper-case non-ASCII letters.
	"From: otto@example.com\nTo: bob@example.net\nSubject: odd bytes\n\nBefore\x00after ÆØÅ ΣΊΣΥΦΟΣ İstanbul\n",
}

// fullTextNeedles are the strings compared: found once, found often,
// found nowhere, shorter than a trigram, across markup, in markup, in
// headers only, across a part boundary, with case and charset changes.
var fullTextNeedles = []string{
	"", "e", "ok", "ÿ", "the", "noon", "NOON", "secret word", "pineapple", "über", "ÜBERRASCHUNG",
	"café", "CAFÉ CRÈME", "soft", "softwrapped", "invisible-needle", "report-2024", "attached invoice",
	"spring sale", "<b>", "sale</b>", "–", "kiwi = 1", "inner subject", "nested text", "see below",
	"lorem ipsum dolor", "hello", "hello world", "hel", "world", "crème brûlée", "line break", "linebreak",
	"secretscript", "color: red", "hidden comment", "&amp;", "“nur”", "80 €", "€", "preis", "日本語",
	"日本", "のメール kumquat", "kumquat", "grüße aus köln", "grüße aus k", "grüße aus kö", "köln",
	"before", "before\x00after", "æøå", "σίσυφοσ", "σίσυφος", "istanbul", "i̇stanbul", "subject: html",
	"from: kim", "bob@example.net", "content-type: text/html", "quoted-printable", "alle!\nüberr",
	"servus", "grüße aus münchen", "jörg", "priority", `"quoted"`, "nowhere-at-all",
	"lorem ipsum dolor sit amet\nlorem ipsum dolor sit amet\nlorem ipsum dolor sit amet\nlorem",
	"lorem ipsum dolor sit amet\nlorem ipsum dolor sit amet\nlorem ipsum dolor sit amet\nlorex",
}

// TestFullTextMatchesScan: over a varied corpus, Search with the index
// answers every BODY and TEXT needle, alone and under NOT and OR, with
// exactly the UIDs of the scanning search, and finds what a reader sees:
// with no body indexed yet (all above the mark, fulltextmark.go), with
// some, and with all.
func TestFullTextMatchesScan(t *testing.T) {
	t.Parallel()
	f := newSearchFixture(t)
	ctx := context.Background()
	appendCorpus := func() {
		t.Helper()
		for i, raw := range fullTextCorpus {
			if _, err := f.store.Append(ctx, f.mailbox, searchCRLF(raw), nil, time.Time{}, 0); err != nil {
				t.Fatalf("Append(extra message %d) = %v", i+1, err)
			}
		}
	}
	flush := func() {
		t.Helper()
		if err := f.store.flushFullText(ctx); err != nil {
			t.Fatalf("flushFullText() = %v", err)
		}
	}
	appendCorpus()
	state := "none indexed"
	compare := func(name string, c *SearchCriteria) []UID {
		t.Helper()
		got, err := f.store.search(ctx, f.mailbox, c, true)
		if err != nil {
			t.Fatalf("%s, %s: indexed search = %v", state, name, err)
		}
		want, err := f.store.search(ctx, f.mailbox, c, false)
		if err != nil {
			t.Fatalf("%s, %s: scanning search = %v", state, name, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s, %s: indexed search = %v, scanning search = %v", state, name, got, want)
		}
		return got
	}
	compareAll := func() {
		t.Helper()
		hits := 0
		for _, n := range fullTextNeedles {
			body := compare(fmt.Sprintf("BODY %q", n), &SearchCriteria{Body: []string{n}})
			text := compare(fmt.Sprintf("TEXT %q", n), &SearchCriteria{Text: []string{n}})
			compare(fmt.Sprintf("NOT TEXT %q", n), &SearchCriteria{Not: []SearchCriteria{{Text: []string{n}}}})
			compare(fmt.Sprintf("OR BODY %q TEXT kumquat", n), &SearchCriteria{Or: [][2]SearchCriteria{{{Body: []string{n}}, {Text: []string{"kumquat"}}}}})
			compare(fmt.Sprintf("UNSEEN TEXT %q BODY e", n), &SearchCriteria{NotFlag: []string{FlagSeen}, Text: []string{n}, Body: []string{"e"}})
			if len(body) > len(text) {
				t.Errorf("BODY %q = %v, TEXT = %v: TEXT must find all BODY finds", n, body, text)
			}
			if len(text) > 0 {
				hits++
			}
		}
		if hits < len(fullTextNeedles)/2 {
			t.Errorf("only %d of %d needles found anything: the corpus no longer exercises the index", hits, len(fullTextNeedles))
		}
	}
	readerSees := func() {
		t.Helper()
		// What a reader sees is found, and markup is not.
		for _, tt := range []struct {
			c    SearchCriteria
			want []UID
		}{
			{SearchCriteria{Body: []string{"hello world"}}, []UID{11}},
			{SearchCriteria{Body: []string{"crème brûlée"}}, []UID{11}},
			{SearchCriteria{Body: []string{"line\nbreak"}}, []UID{11}},
			{SearchCriteria{Body: []string{"linebreak"}}, nil},
			{SearchCriteria{Body: []string{"secretScript"}}, nil},
			{SearchCriteria{Body: []string{"<b>"}}, nil},
			{SearchCriteria{Body: []string{"Spring sale –"}}, []UID{6}},
			{SearchCriteria{Body: []string{"“nur” 80 €"}}, []UID{12}},
			{SearchCriteria{Text: []string{"“Preis” 80 €"}}, []UID{12}},
			{SearchCriteria{Body: []string{"日本語"}}, []UID{13}},
			{SearchCriteria{Text: []string{"日本語"}}, []UID{13}},
			{SearchCriteria{Body: []string{"kumquat"}}, []UID{13, 14}},
			{SearchCriteria{Body: []string{"grüße aus köln"}}, []UID{14}},
			{SearchCriteria{Body: []string{"café"}}, []UID{4, 10, 11}},
			{SearchCriteria{Body: []string{"Überraschung"}}, []UID{3}},
			{SearchCriteria{Body: []string{"ΣΊΣΥΦΟΣ"}}, []UID{15}},
			{SearchCriteria{Body: []string{"fter æ"}}, []UID{15}},
		} {
			got, err := f.store.Search(ctx, f.mailbox, &tt.c)
			if err != nil || !slices.Equal(got, tt.want) {
				t.Errorf("Search(%+v) = %v, %v; want %v", tt.c, got, err, tt.want)
			}
		}
	}
	compareAll()
	readerSees()
	flush()
	state = "all indexed"
	compareAll()
	readerSees()
	appendCorpus()
	state = "half indexed"
	compareAll()
	flush()
	state = "all indexed again"
	compareAll()
}

// indexRows returns how many rows the full-text index holds, and how many
// bodies match needle (three characters or more) there.
func indexRows(t *testing.T, s *Store, needle string) (rows, matches int) {
	t.Helper()
	// The bodies waiting for the index first (fulltextmark.go).
	if err := s.flushFullText(context.Background()); err != nil {
		t.Fatalf("flushFullText() = %v", err)
	}
	// FTS5 keeps one row per document in its docsize shadow table.
	if err := s.rdb.QueryRow("SELECT count(*) FROM body_text_docsize").Scan(&rows); err != nil {
		t.Fatalf("count index rows: %v", err)
	}
	q, ok := ftsQuery(strings.ToLower(needle))
	if !ok {
		t.Fatalf("ftsQuery(%q) cannot use the index", needle)
	}
	if err := s.rdb.QueryRow("SELECT count(*) FROM body_text WHERE body_text MATCH ?", q).Scan(&matches); err != nil {
		t.Fatalf("count index matches: %v", err)
	}
	return rows, matches
}

// TestFullTextFollowsMessages: a delivered message is in the index once
// it is written (flushFullText); a copy and a move share its row; the row goes when
// the last message with the body is expunged, and with DeleteMailbox.
func TestFullTextFollowsMessages(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStoreAt(t, filepath.Join(t.TempDir(), "fts.db"), Options{})
	r := addUser(t, s, "u@localhost")
	archive, err := s.CreateMailbox(ctx, r.User, "Kept", "")
	if err != nil {
		t.Fatal(err)
	}
	msg := func(word string) []byte {
		return fmt.Appendf(nil, "From: a@example.org\r\nSubject: %s\r\n\r\nThe word is %s.\r\n", word, word)
	}
	for _, w := range []string{"kumquat", "rambutan", "durian"} {
		if _, err := s.Deliver(ctx, msg(w), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	check := func(when, needle string, wantRows, wantMatches int) {
		t.Helper()
		if rows, matches := indexRows(t, s, needle); rows != wantRows || matches != wantMatches {
			t.Errorf("%s: index has %d rows, %d matching %q; want %d, %d", when, rows, matches, needle, wantRows, wantMatches)
		}
		var sizes int
		if err := s.rdb.QueryRow("SELECT count(*) FROM body_crlf_size").Scan(&sizes); err != nil || sizes != wantRows {
			t.Errorf("%s: %d stored CRLF sizes, %v; want %d, one per body", when, sizes, err, wantRows)
		}
	}
	check("after delivery", "kumquat", 3, 1)
	if got, err := s.Search(ctx, r.Mailbox, &SearchCriteria{Text: []string{"KUMQUAT"}}); err != nil || !slices.Equal(got, []UID{1}) {
		t.Errorf("Search(TEXT KUMQUAT) = %v, %v; want [1]", got, err)
	}
	// COPY shares the body, and so its row; MOVE too.
	if _, err := s.Copy(ctx, r.Mailbox, UIDSetOf(1), archive.ID, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Move(ctx, r.Mailbox, UIDSetOf(2), archive.ID, 0); err != nil {
		t.Fatal(err)
	}
	check("after copy and move", "kumquat", 3, 1)
	for _, c := range []struct {
		mb   MailboxID
		word string
		want []UID
	}{{r.Mailbox, "kumquat", []UID{1}}, {archive.ID, "kumquat", []UID{1}}, {archive.ID, "rambutan", []UID{2}}, {r.Mailbox, "rambutan", nil}} {
		if got, err := s.Search(ctx, c.mb, &SearchCriteria{Body: []string{c.word}}); err != nil || !slices.Equal(got, c.want) {
			t.Errorf("Search(%d, BODY %s) = %v, %v; want %v", c.mb, c.word, got, err, c.want)
		}
	}
	expunge := func(mb MailboxID, uid UID) {
		t.Helper()
		if _, err := s.StoreFlags(ctx, mb, UIDSetOf(uid), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
			t.Fatal(err)
		}
		if got, err := s.Expunge(ctx, mb, UIDSetOf(uid), 0); err != nil || !slices.Equal(got, []UID{uid}) {
			t.Fatalf("Expunge(%d, %d) = %v, %v", mb, uid, got, err)
		}
	}
	// Expunging one of two messages with the body keeps the row.
	expunge(r.Mailbox, 1)
	check("after expunging the original", "kumquat", 3, 1)
	expunge(archive.ID, 1)
	check("after expunging the copy too", "kumquat", 2, 0)
	if got, err := s.Search(ctx, archive.ID, &SearchCriteria{Text: []string{"kumquat"}}); err != nil || len(got) != 0 {
		t.Errorf("Search(TEXT kumquat) after expunge = %v, %v; want none", got, err)
	}
	if err := s.DeleteMailbox(ctx, r.User, "Kept"); err != nil {
		t.Fatal(err)
	}
	check("after deleting Kept", "rambutan", 1, 0)
	check("after deleting Kept", "durian", 1, 1)
}

// TestMigrationBodyText: a file written at the schema before the index
// (messages stored by that version's SQL, their parse results as it
// stored them) is indexed when opened, with its progress logged, and
// searches with the index then answer as scanning does.
func TestMigrationBodyText(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v9.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(ctx, db, slog.New(slog.DiscardHandler), versionBodyText-1); err != nil {
		t.Fatalf("migrateTo(%d) = %v", versionBodyText-1, err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("INSERT INTO users(id, address, domain, password, created) VALUES (7, 'old@localhost', 'localhost', 'x', 0)")
	exec("INSERT INTO mailboxes(id, user_id, name, uidvalidity, uidnext, highest_modseq) VALUES (1, 7, 'INBOX', 1, 1, 1)")
	var all []string
	for _, m := range searchCorpus {
		all = append(all, m.raw)
	}
	all = append(all, fullTextCorpus...)
	// The last as it came, with bare and doubled line ends, for the
	// stored CRLF sizes.
	all = append(all, "Subject: bare kumquat\n\nline one\r\n\nline two\r\r\nend")
	raws := make([][]byte, len(all))
	for i, m := range all {
		raw := searchCRLF(m)
		if i == len(all)-1 {
			raw = []byte(m)
		}
		raws[i] = raw
		p := message.Parse(raw)
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		exec("INSERT INTO bodies(id, header, raw, parsed) VALUES (?, ?, ?, ?)", i+1, raw[:p.Root.BodyStart], raw, js)
		exec("INSERT INTO messages(mailbox_id, uid, body_id, internal_date, size, modseq) VALUES (1, ?, ?, 0, ?, ?)", i+1, i+1, len(raw), i+2)
	}
	exec("UPDATE mailboxes SET uidnext = ?, highest_modseq = ? WHERE id = 1", len(all)+1, len(all)+1)
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	var logs strings.Builder
	s := openStoreAt(t, path, Options{Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	if !strings.Contains(logs.String(), "full-text index: indexing") || !strings.Contains(logs.String(), fmt.Sprintf("indexed=%d", len(all))) {
		t.Errorf("migration logs = %q; want the start and the count indexed (%d)", logs.String(), len(all))
	}
	if rows, _ := indexRows(t, s, "kumquat"); rows != len(all) {
		t.Errorf("index rows after migration = %d, want %d", rows, len(all))
	}
	for _, n := range fullTextNeedles {
		for _, c := range []*SearchCriteria{{Body: []string{n}}, {Text: []string{n}}} {
			got, err := s.search(ctx, 1, c, true)
			if err != nil {
				t.Fatal(err)
			}
			want, err := s.search(ctx, 1, c, false)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, want) {
				t.Errorf("after migration, Search(%+v) = %v, scanning = %v", c, got, want)
			}
		}
	}
	if got, err := s.Search(ctx, 1, &SearchCriteria{Text: []string{"kumquat"}}); err != nil || !slices.Equal(got, []UID{13, 14, UID(len(all))}) {
		t.Errorf("after migration, Search(TEXT kumquat) = %v, %v; want [13 14 %d]", got, err, len(all))
	}
	// The same migration stored each body's CRLF size (POP3).
	drop, err := s.Maildrop(ctx, 1)
	if err != nil || len(drop) != len(all) {
		t.Fatalf("after migration, Maildrop() = %d entries, %v; want %d", len(drop), err, len(all))
	}
	for i, e := range drop {
		if want := wantCRLFSize(raws[i]); e.UID != UID(i+1) || e.Size != want {
			t.Errorf("after migration, Maildrop()[%d] = %+v, want UID %d, size %d", i, e, i+1, want)
		}
	}
}

func TestFTSQuery(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		needle, want string
		ok           bool
	}{
		{"", "", false},
		{"ab", "", false},
		{"ü€", "", false},
		{"abc", `"abc"`, true},
		{"kumquat", `"kum" AND "umq" AND "mqu" AND "qua" AND "uat"`, true},
		{"aaaa", `"aaa"`, true},
		{`a"b"c`, `"a""b" AND """b""" AND "b""c"`, true},
		{"日本語の", `"日本語" AND "本語の"`, true},
		{"ab\x00cd", "", false},
	} {
		got, ok := ftsQuery(tt.needle)
		if got != tt.want || ok != tt.ok {
			t.Errorf("ftsQuery(%q) = %q, %v; want %q, %v", tt.needle, got, ok, tt.want, tt.ok)
		}
	}
	// A long needle: at most maxQueryTrigrams, the last one included.
	long := strings.Repeat("abcdefghij", 10) + "xyz"
	got, ok := ftsQuery(long)
	if n := strings.Count(got, " AND ") + 1; !ok || n > maxQueryTrigrams || !strings.HasSuffix(got, `"xyz"`) {
		t.Errorf("ftsQuery(%d characters) = %q (%d trigrams), %v; want at most %d, ending with the last", len(long), got, n, ok, maxQueryTrigrams)
	}
}

// TestFullTextBatchStoreAndDelete: within one batch, a body stored and
// deleted (its last message expunged) leaves no index row, and one stored
// after it in the batch leaves its own, in an index that passes the
// integrity check. Body ids are never handed out twice (schema version
// 10, account.go), so a newer body never takes a deleted one's id.
func TestFullTextBatchStoreAndDelete(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStoreAt(t, filepath.Join(t.TempDir(), "fts.db"), Options{})
	body := func(word string) body {
		raw := fmt.Appendf(nil, "Subject: %s\r\n\r\nThe word is %s.\r\n", word, word)
		b, err := newBody(raw, message.Parse(raw), s.indexPacksText())
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	var ids []int64
	err := s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		*tx.fullTextNow = true // indexed in this very transaction
		ids = ids[:0]
		for _, w := range []string{"kumquat", "rambutan", "durian"} {
			id, err := insertBodyTx(tx, body(w))
			if err != nil {
				return nil, err
			}
			ids = append(ids, id)
			if _, err := tx.Exec("DELETE FROM bodies WHERE id = ?", id); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		t.Fatalf("write = %v", err)
	}
	if ids[0] == ids[1] || ids[1] == ids[2] {
		t.Errorf("body ids %v: a deleted body's id was handed out again", ids)
	}
	if rows, _ := indexRows(t, s, "kumquat"); rows != 0 {
		t.Errorf("index rows after storing and deleting in one batch = %d, want 0", rows)
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		*tx.fullTextNow = true // indexed in this very transaction
		for _, w := range []string{"kumquat", "rambutan"} {
			id, err := insertBodyTx(tx, body(w))
			if err != nil {
				return nil, err
			}
			if w == "kumquat" {
				if _, err := tx.Exec("DELETE FROM bodies WHERE id = ?", id); err != nil {
					return nil, err
				}
			}
		}
		return nil, nil
	})
	if err != nil {
		t.Fatalf("write = %v", err)
	}
	for _, c := range []struct {
		word string
		want int
	}{{"kumquat", 0}, {"rambutan", 1}} {
		if rows, matches := indexRows(t, s, c.word); rows != 1 || matches != c.want {
			t.Errorf("index: %d rows, %d matching %q; want 1, %d", rows, matches, c.word, c.want)
		}
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Errorf("IntegrityCheck() = %v", err)
	}
}

// trigrams returns the distinct trigrams of s, as packTrigrams counts
// them: three code points in a row.
func trigrams(s string) map[string]bool {
	r := []rune(s)
	out := map[string]bool{}
	for i := 0; i+3 <= len(r); i++ {
		out[string(r[i:i+3])] = true
	}
	return out
}

// TestPackTrigrams checks that the packed text holds every trigram of
// the text (so the index still selects every body that contains a
// needle) and drops the repeats.
func TestPackTrigrams(t *testing.T) {
	t.Parallel()
	line := "the quick brown fox jumps over the lazy dog; pack my box now.\n"
	tests := []struct {
		name    string
		in      string
		shorter bool // the packed text must be shorter than in
	}{
		{"empty", "", false},
		{"short", "abcde", false},
		{"no repeat", "abcdefghij", false},
		{"repeated line", strings.Repeat(line, 60), true},
		{"multi-byte", strings.Repeat("grüße aus köln – ☃ ", 20), true},
		{"repeat far apart", "alpha beta gamma delta alpha beta epsilon", true},
		{"one letter", strings.Repeat("a", 100), true},
		{"invalid UTF-8", "ab\xffcd ab\xffcd ab\xffcdö", false},
		{"ascii tail repeat", "xyzxyzxyz", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := packTrigrams(tc.in)
			if tc.shorter && len(got) >= len(tc.in) {
				t.Errorf("packTrigrams(%q) = %q, not shorter", tc.in, got)
			}
			if !tc.shorter && got != tc.in {
				t.Errorf("packTrigrams(%q) = %q, want it unchanged", tc.in, got)
			}
			have := trigrams(got)
			for tri := range trigrams(tc.in) {
				if !have[tri] {
					t.Errorf("packTrigrams(%q) = %q lacks the trigram %q", tc.in, got, tri)
				}
			}
		})
	}
}

// BenchmarkPackTrigrams measures the packing of one 4 KB text part, done
// for each delivered body off the writer.
func BenchmarkPackTrigrams(b *testing.B) {
	line := "the quick brown fox jumps over the lazy dog; pack my box now.\r\n"
	for _, tc := range []struct{ name, text string }{
		{"ascii", strings.Repeat(line, 64)},
		{"utf8", strings.Repeat("grüße aus köln – "+line, 50)},
	} {
		b.Run(tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(tc.text)))
			for b.Loop() {
				packTrigrams(tc.text)
			}
		})
	}
}

// fullTextMark returns the index's mark and the highest body id.
func fullTextMark(t *testing.T, s *Store) (mark, top int64) {
	t.Helper()
	if err := s.rdb.QueryRow("SELECT (SELECT value FROM meta WHERE key = '"+bodyTextMarkKey+"'), (SELECT COALESCE(max(id), 0) FROM bodies)").Scan(&mark, &top); err != nil {
		t.Fatalf("read the mark: %v", err)
	}
	return mark, top
}

// TestFullTextIndexedBehind: deliveries leave their bodies above the
// index's mark until fullTextBatch of them wait, when a batch indexes
// them all; SEARCH finds the bodies above the mark; bodies left
// unindexed at Close (as by a crash) are found after a restart and
// indexed from their stored text, each once.
func TestFullTextIndexedBehind(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "fts.db")
	s, err := Open(ctx, path, Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	r := addUser(t, s, "u@localhost")
	msg := func(i int, word string) []byte {
		return fmt.Appendf(nil, "Subject: message %d\r\n\r\nThe word is %s.\r\n", i, word)
	}
	search := func(s *Store, word string, want int) {
		t.Helper()
		got, err := s.Search(ctx, r.Mailbox, &SearchCriteria{Body: []string{word}})
		if err != nil || len(got) != want {
			t.Errorf("Search(BODY %s) = %d UIDs, %v; want %d", word, len(got), err, want)
		}
	}
	for i := range 3 {
		if _, err := s.Deliver(ctx, msg(i, "kumquat"), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	if mark, top := fullTextMark(t, s); mark != 0 || top == 0 {
		t.Errorf("after 3 deliveries: mark %d, highest body %d; want 0 and above", mark, top)
	}
	search(s, "kumquat", 3)
	// A batch indexes once fullTextBatch bodies wait.
	for i := 3; i < fullTextBatch; i++ {
		if _, err := s.Deliver(ctx, msg(i, "rambutan"), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	if mark, top := fullTextMark(t, s); mark != top {
		t.Errorf("after %d deliveries: mark %d, want the highest body %d", fullTextBatch, mark, top)
	}
	var rows int
	if err := s.rdb.QueryRow("SELECT count(*) FROM body_text_docsize").Scan(&rows); err != nil || rows != fullTextBatch {
		t.Errorf("index rows = %d, %v; want %d", rows, err, fullTextBatch)
	}
	// Two more, then a restart before they are indexed.
	for i := range 2 {
		if _, err := s.Deliver(ctx, msg(i, "durian"), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, path, Options{})
	search(s, "durian", 2)
	search(s, "kumquat", 3)
	if rows, matches := indexRows(t, s, "durian"); rows != fullTextBatch+2 || matches != 2 {
		t.Errorf("after the restart: index has %d rows, %d matching durian; want %d, 2", rows, matches, fullTextBatch+2)
	}
	if mark, top := fullTextMark(t, s); mark != top {
		t.Errorf("after the restart: mark %d, want the highest body %d", mark, top)
	}
	search(s, "durian", 2)
	search(s, "rambutan", fullTextBatch-3)
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Errorf("IntegrityCheck() = %v", err)
	}
}

// TestPackWorthIt: a text is packed only when that halves it at least.
func TestPackWorthIt(t *testing.T) {
	t.Parallel()
	repeated := strings.Repeat("the quick brown fox jumps over the lazy dog\n", 20)
	if got := packWorthIt(repeated); len(got) > len(repeated)/2 {
		t.Errorf("packWorthIt(a repeated line) = %d bytes of %d, want it packed", len(got), len(repeated))
	}
	varied := "alpha beta gamma delta alpha beta epsilon"
	if got := packWorthIt(varied); got != varied {
		t.Errorf("packWorthIt(%q) = %q, want it whole", varied, got)
	}
}
