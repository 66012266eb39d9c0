package wire

import (
	"bufio"
	"bytes"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Sequence sets (RFC 9051 §9 sequence-set, RFC 5182 "$").
func TestNumSet(t *testing.T) {
	tests := []struct {
		in   string
		want NumSet // zero: an error
	}{
		{"1", set(NumRange{1, 1})},
		{"2:4", set(NumRange{2, 4})},
		{"5:2", set(NumRange{5, 2})}, // as written; 2:5 (§9 seq-range)
		{"*", set(NumRange{0, 0})},
		{"1:*", set(NumRange{1, 0})},
		{"*:4", set(NumRange{0, 4})},
		{"2,4:7,9,12:*", set(NumRange{2, 2}, NumRange{4, 7}, NumRange{9, 9}, NumRange{12, 0})},
		{"4294967295", set(NumRange{4294967295, 4294967295})},
		{"$", NumSet{Saved: true}},
		{"0", NumSet{}},
		{"4294967296", NumSet{}},
		{"1,", NumSet{}},
		{",1", NumSet{}},
		{"1::2", NumSet{}},
		{"$,1", NumSet{}}, // RFC 5182: "$" stands alone
		{"1:$", NumSet{}},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			s := newSession(t, "a FETCH "+tt.in+" UID\r\n", Limits{})
			c, err := s.p.ReadCommand()
			if tt.want.Ranges == nil && !tt.want.Saved {
				if err == nil {
					t.Fatalf("FETCH %s = %+v, want an error", tt.in, c.Args)
				}
				return
			}
			if err != nil {
				t.Fatalf("FETCH %s: %v", tt.in, err)
			}
			if got := c.Args.(*Fetch).Set; !reflect.DeepEqual(got, tt.want) || got.String() != tt.in {
				t.Errorf("set = %+v (%s), want %+v", got, got, tt.want)
			}
		})
	}
}

// Search keys (RFC 9051 §6.4.4 and its examples, RFC 3501's NEW/OLD/
// RECENT, RFC 4731 RETURN, RFC 5182 SAVE and "$").
func TestSearch(t *testing.T) {
	day := func(y int, m time.Month, d int) time.Time { return time.Date(y, m, d, 0, 0, 0, 0, time.UTC) }
	and := func(k ...SearchKey) SearchKey { return SearchKey{Op: SearchAnd, Keys: k} }
	tests := []struct {
		name  string
		input string
		want  Search
	}{
		{"§6.4.4 example 1", `SEARCH FLAGGED SINCE 1-Feb-1994 NOT FROM "Smith"`, Search{Key: and(
			SearchKey{Op: SearchFlagged}, SearchKey{Op: SearchSince, Date: day(1994, 2, 1)},
			SearchKey{Op: SearchNot, Keys: []SearchKey{{Op: SearchFrom, Str: "Smith"}}})}},
		{"§6.4.4 example 2", `SEARCH TEXT "string not in mailbox"`, Search{Key: and(SearchKey{Op: SearchText, Str: "string not in mailbox"})}},
		{"CHARSET and a literal", "SEARCH CHARSET UTF-8 TEXT {12}\r\nXXXXXX\xd1\x82\xd0\xb5\xd1\x81", Search{Charset: "UTF-8",
			Key: and(SearchKey{Op: SearchText, Str: "XXXXXX\xd1\x82\xd0\xb5\xd1\x81"})}},
		{"RETURN RFC 4731", "SEARCH RETURN (MIN COUNT) UNSEEN", Search{Return: &SearchReturn{Min: true, Count: true}, Key: and(SearchKey{Op: SearchUnseen})}},
		{"RETURN () is ALL", "SEARCH RETURN () ALL", Search{Return: &SearchReturn{All: true}, Key: and(SearchKey{Op: SearchAll})}},
		{"SAVE then $ RFC 5182 §2.1", "SEARCH RETURN (SAVE) CHARSET us-ascii UID $ 1:3", Search{Return: &SearchReturn{Save: true}, Charset: "US-ASCII",
			Key: and(SearchKey{Op: SearchUID, Set: NumSet{Saved: true}}, SearchKey{Op: SearchSeq, Set: set(NumRange{1, 3})})}},
		{"OR of a list and a set", "SEARCH OR (DELETED SEEN) 2:*", Search{Key: and(SearchKey{Op: SearchOr, Keys: []SearchKey{
			and(SearchKey{Op: SearchDeleted}, SearchKey{Op: SearchSeen}), {Op: SearchSeq, Set: set(NumRange{2, 0})}}})}},
		{"HEADER, sizes, keywords, dates", `SEARCH HEADER Message-ID "<x@y>" LARGER 100 SMALLER 9999999999 KEYWORD $Junk UNKEYWORD foo SENTON "3-Mar-2020" BEFORE 31-Dec-1999`,
			Search{Key: and(SearchKey{Op: SearchHeader, Str: "Message-ID", Value: "<x@y>"}, SearchKey{Op: SearchLarger, Num: 100},
				SearchKey{Op: SearchSmaller, Num: 9999999999}, SearchKey{Op: SearchKeyword, Str: "$Junk"}, SearchKey{Op: SearchUnkeyword, Str: "foo"},
				SearchKey{Op: SearchSentOn, Date: day(2020, 3, 3)}, SearchKey{Op: SearchBefore, Date: day(1999, 12, 31)})}},
		{"IMAP4rev1 NEW OLD RECENT", "SEARCH new old Recent", Search{Key: and(SearchKey{Op: SearchNew}, SearchKey{Op: SearchOld}, SearchKey{Op: SearchRecent})}},
		{"a key named like an option", "SEARCH FROM charset", Search{Key: and(SearchKey{Op: SearchFrom, Str: "charset"})}},
		{"RFC 5032 §3 example", "SEARCH UNSEEN YOUNGER 259200", Search{Key: and(SearchKey{Op: SearchUnseen}, SearchKey{Op: SearchYounger, Num: 259200})}},
		{"RFC 8474 §6 EMAILID, THREADID", "SEARCH EMAILID M6d99ac3275bb4e THREADID T64b478a75b7ea9", Search{Key: and(
			SearchKey{Op: SearchEmailID, Str: "M6d99ac3275bb4e"}, SearchKey{Op: SearchThreadID, Str: "T64b478a75b7ea9"})}},
		{"RFC 8514 §4.2 save-date keys", "SEARCH SAVEDSINCE 1-Feb-1994 SAVEDON 2-Feb-1994 SAVEDBEFORE 3-Feb-1994 SAVEDATESUPPORTED", Search{Key: and(
			SearchKey{Op: SearchSavedSince, Date: day(1994, 2, 1)}, SearchKey{Op: SearchSavedOn, Date: day(1994, 2, 2)},
			SearchKey{Op: SearchSavedBefore, Date: day(1994, 2, 3)}, SearchKey{Op: SearchSaveDateSupported})}},
		{"OLDER in NOT", "SEARCH NOT older 60", Search{Key: and(SearchKey{Op: SearchNot, Keys: []SearchKey{{Op: SearchOlder, Num: 60}}})}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseOne(t, "a UID "+tt.input+"\r\n")
			if got := c.Args.(*Search); !reflect.DeepEqual(*got, tt.want) || !c.UID {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
	for _, bad := range []string{
		"SEARCH", "SEARCH FOO", "SEARCH FROM", "SEARCH SINCE 1-Foo-2000", "SEARCH SINCE 30-Feb-2000",
		"SEARCH OR SEEN", "SEARCH ()", "SEARCH (SEEN", "SEARCH RETURN (BOGUS) ALL", "SEARCH CHARSET",
		"SEARCH ALL RETURN (MIN)", "SEARCH LARGER x", "SEARCH UID x", "SEARCH 1:abc", "SEARCH AND SEEN",
		"SEARCH YOUNGER 0", "SEARCH OLDER", "SEARCH OLDER -1", "SEARCH YOUNGER 4294967296",
		"SEARCH EMAILID", "SEARCH EMAILID a.b", `SEARCH THREADID "T1"`, "SEARCH SAVEDON", "SEARCH SAVEDSINCE x",
	} {
		t.Run(bad, func(t *testing.T) {
			s := newSession(t, "a "+bad+"\r\nb NOOP\r\n", Limits{})
			if e := s.readErr(t); e.Code != ErrSyntax || e.Fatal {
				t.Errorf("error = %+v, want syntax", e)
			}
			if c := s.read(t); c.Tag != "b" {
				t.Errorf("next = %+v", c)
			}
		})
	}
}

// FETCH attributes (RFC 9051 §6.4.5, RFC 3516 §4.2).
func TestFetch(t *testing.T) {
	part := func(spec string, fields []string, p ...uint32) Section {
		return Section{Part: p, Specifier: spec, Fields: fields}
	}
	tests := []struct {
		name, input string
		want        Fetch
	}{
		{"§6.4.5 example", "FETCH 2:4 (FLAGS BODY[HEADER.FIELDS (DATE FROM)])", Fetch{Set: set(NumRange{2, 4}), Attrs: []FetchAttr{
			{Kind: FetchFlags}, {Kind: FetchBodySection, Section: part("HEADER.FIELDS", []string{"DATE", "FROM"})}}}},
		{"ALL macro", "FETCH 1 ALL", Fetch{Set: set(NumRange{1, 1}), Macro: "ALL", Attrs: []FetchAttr{
			{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}, {Kind: FetchEnvelope}}}},
		{"fast macro", "FETCH 1 fast", Fetch{Set: set(NumRange{1, 1}), Macro: "FAST", Attrs: []FetchAttr{
			{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}}}},
		{"FULL macro", "FETCH 1 FULL", Fetch{Set: set(NumRange{1, 1}), Macro: "FULL", Attrs: []FetchAttr{
			{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}, {Kind: FetchEnvelope}, {Kind: FetchBody}}}},
		{"single attribute", "FETCH * bodystructure", Fetch{Set: set(NumRange{0, 0}), Attrs: []FetchAttr{{Kind: FetchBodyStructure}}}},
		{"RFC822 family", "FETCH 1 (RFC822 RFC822.HEADER RFC822.TEXT RFC822.SIZE ENVELOPE INTERNALDATE UID BODY)", Fetch{Set: set(NumRange{1, 1}), Attrs: []FetchAttr{
			{Kind: FetchRFC822}, {Kind: FetchRFC822Header}, {Kind: FetchRFC822Text}, {Kind: FetchRFC822Size},
			{Kind: FetchEnvelope}, {Kind: FetchInternalDate}, {Kind: FetchUID}, {Kind: FetchBody}}}},
		{"sections and partials", "FETCH 1 (BODY[] BODY.PEEK[1.2.MIME] BODY[3.TEXT]<0.2048> BODY[4.HEADER.FIELDS.NOT (x-a)] body[2])", Fetch{Set: set(NumRange{1, 1}), Attrs: []FetchAttr{
			{Kind: FetchBodySection}, {Kind: FetchBodySection, Peek: true, Section: part("MIME", nil, 1, 2)},
			{Kind: FetchBodySection, Section: part("TEXT", nil, 3), Partial: &Partial{0, 2048}},
			{Kind: FetchBodySection, Section: part("HEADER.FIELDS.NOT", []string{"X-A"}, 4)},
			{Kind: FetchBodySection, Section: part("", nil, 2)}}}},
		{"BINARY RFC 3516", "FETCH 1 (BINARY[1]<5.7> BINARY.PEEK[] BINARY.SIZE[2.1])", Fetch{Set: set(NumRange{1, 1}), Attrs: []FetchAttr{
			{Kind: FetchBinary, Section: part("", nil, 1), Partial: &Partial{5, 7}}, {Kind: FetchBinary, Peek: true},
			{Kind: FetchBinarySize, Section: part("", nil, 2, 1)}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseOne(t, "a "+tt.input+"\r\n")
			if got := c.Args.(*Fetch); !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("got  %+v\nwant %+v", *got, tt.want)
			}
		})
	}
	for _, bad := range []string{
		"FETCH 1", "FETCH 1 ()", "FETCH 1 BOGUS", "FETCH 1 (ALL)", "FETCH 1 BODY[MIME]", "FETCH 1 BODY[1.]",
		"FETCH 1 BODY[0]", "FETCH 1 BODY[HEADER.FIELDS ()]", "FETCH 1 BODY[1]<1.0>", "FETCH 1 BODY[1]<1>",
		"FETCH 1 BINARY[TEXT]", "FETCH 1 BINARY.SIZE[1]<0.1>", "FETCH 1 BODY.PEEK", "FETCH 1:abc FLAGS", "FETCH 1 (FLAGS",
	} {
		t.Run(bad, func(t *testing.T) {
			s := newSession(t, "a "+bad+"\r\nb NOOP\r\n", Limits{})
			if e := s.readErr(t); e.Code != ErrSyntax || e.Fatal {
				t.Errorf("error = %+v, want syntax", e)
			}
			if c := s.read(t); c.Tag != "b" {
				t.Errorf("next = %+v", c)
			}
		})
	}
}

// Each bound: at the limit the command parses, one over it does not,
// and the parser is back in step for the next command.
func TestLimits(t *testing.T) {
	nest := func(n int) string { return "a SEARCH " + strings.Repeat("(", n) + "SEEN" + strings.Repeat(")", n) }
	nots := func(n int) string { return "a SEARCH " + strings.Repeat("NOT ", n) + "SEEN" }
	list := func(n int) string { return "a STATUS x (" + strings.TrimSpace(strings.Repeat("SIZE ", n)) + ")" }
	flags := func(n int) string { return "a STORE 1 FLAGS " + strings.TrimSpace(strings.Repeat("x ", n)) }
	line := func(n int) string { return "a LOGIN " + strings.Repeat("u", n-len("a LOGIN  p\r\n")) + " p" }
	lit := func(n int) string { return "a LOGIN {" + itoa(n) + "+}\r\n" + strings.Repeat("u", n) + " p" }
	msg := func(n int) string { return "a APPEND x {" + itoa(n) + "+}\r\n" + strings.Repeat("m", n) }
	lim := Limits{MaxLine: 100, MaxLiteral: 50, MaxMessage: 200, MaxDepth: 5, MaxList: 4, MaxArgs: 10, MaxCommand: 500}
	tests := []struct {
		name     string
		at, over string
		code     ErrorCode
	}{
		// Depth counts each paren level and the key inside (1).
		{"MaxDepth, parens", nest(4), nest(5), ErrTooComplex},
		{"MaxDepth, NOT chain", nots(4), nots(5), ErrTooComplex},
		{"MaxList", list(4), list(5), ErrTooComplex},
		{"MaxList, STORE flags without parens", flags(4), flags(5), ErrTooComplex},
		{"MaxArgs", "a LOGIN " + strings.Repeat("x", 1) + " y", "a SEARCH " + strings.TrimSpace(strings.Repeat("SEEN ", 11)), ErrTooComplex},
		{"MaxLine", line(100), line(101), ErrLineTooLong},
		{"MaxLiteral", lit(50), lit(51), ErrLiteralTooBig},
		{"MaxMessage", msg(200), msg(201), ErrMessageTooBig},
		{"MaxCommand", "a LOGIN {50+}\r\n" + strings.Repeat("u", 50) + " {50+}\r\n" + strings.Repeat("p", 50),
			strings.Repeat("a LOGIN {50+}\r\n"+strings.Repeat("u", 50)+" ", 1) + "{50+}\r\n" + strings.Repeat("p", 50) + "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.code == 0 {
				// MaxCommand: 500 bytes take ten such literals; shrink it.
				l := lim
				l.MaxCommand = 120
				s := newSession(t, tt.over+"\r\nb NOOP\r\n", l)
				if e := s.readErr(t); e.Code != ErrLiteralTooBig || e.Fatal {
					t.Errorf("over MaxCommand: %+v", e)
				}
				if c := s.read(t); c.Tag != "b" {
					t.Errorf("next = %+v", c)
				}
				return
			}
			s := newSession(t, tt.at+"\r\n"+tt.over+"\r\nb NOOP\r\n", lim)
			if c, err := s.p.ReadCommand(); err != nil {
				t.Fatalf("at the limit: %v", err)
			} else if c.Tag != "a" {
				t.Fatalf("at the limit: %+v", c)
			}
			if e := s.readErr(t); e.Code != tt.code || e.Fatal {
				t.Errorf("over the limit: %+v, want %v", e, tt.code)
			}
			if c := s.read(t); c.Tag != "b" {
				t.Errorf("next = %+v", c)
			}
			s.eof(t)
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// Garbage: whatever arrives, the parser answers with errors and reads on.
func TestGarbage(t *testing.T) {
	for _, g := range []string{
		"GET / HTTP/1.1", "EHLO example.com", "\x00\x01\x02", "\xff\xfe", "* OK hi", "+ go", ")(", "a (((((((((",
		"a LOGIN \"", "a {5}", "{3+}\r\nabc", "a SELECT {", "a FETCH 1 BODY[", "a\tNOOP",
	} {
		t.Run(g, func(t *testing.T) {
			s := newSession(t, g+"\r\nz NOOP\r\n", Limits{})
			for i := 0; ; i++ {
				c, err := s.p.ReadCommand()
				if err == nil && c.Tag == "z" {
					break
				}
				if pe, ok := err.(*Error); !ok || pe.Fatal || i > 3 {
					t.Fatalf("ReadCommand() = %+v, %v", c, err)
				}
			}
			s.eof(t)
		})
	}
}

func TestMUTF7(t *testing.T) {
	for _, tt := range []struct{ enc, dec string }{
		{"INBOX", "INBOX"}, {"&-", "&"}, {"a&-b", "a&b"},
		{"~peter/mail/&U,BTFw-/&ZeVnLIqe-", "~peter/mail/台北/日本語"},
		{"&2D3eAQ-", "\U0001F601"}, {"Entw&APw-rfe", "Entwürfe"},
	} {
		if got := EncodeMUTF7(tt.dec); got != tt.enc {
			t.Errorf("EncodeMUTF7(%q) = %q, want %q", tt.dec, got, tt.enc)
		}
		if got, err := DecodeMUTF7(tt.enc); err != nil || got != tt.dec {
			t.Errorf("DecodeMUTF7(%q) = %q, %v, want %q", tt.enc, got, err, tt.dec)
		}
	}
	for _, bad := range []string{"&", "&Jjo", "&AGE-", "&Jjo-&Jjo-", "&2D0-", "a\x01b", "&Jj=-", "&Jjp-"} {
		if got, err := DecodeMUTF7(bad); err == nil {
			t.Errorf("DecodeMUTF7(%q) = %q, want an error", bad, got)
		}
	}
}

func TestWriter(t *testing.T) {
	tests := []struct {
		name  string
		utf8  bool
		write func(w *Writer)
		want  string
	}{
		{"tagged with code", false, func(w *Writer) { w.Tagged("A003", OK, Code{"APPENDUID", "38505 3955"}, "APPEND completed") },
			"A003 OK [APPENDUID 38505 3955] APPEND completed\r\n"},
		{"untagged, CRLF in text", false, func(w *Writer) { w.Untagged(BYE, Code{}, "bye\r\n* OK forged") }, "* BYE bye  * OK forged\r\n"},
		{"text like a code", false, func(w *Writer) { w.Untagged(NO, Code{}, "[x]") }, "* NO  [x]\r\n"},
		{"empty text", false, func(w *Writer) { w.Tagged("a", BAD, Code{"CLIENTBUG", ""}, "") }, "a BAD [CLIENTBUG] BAD\r\n"},
		{"continuation", false, func(w *Writer) { w.Continue("Ready") }, "+ Ready\r\n"},
		{"astring atom", false, func(w *Writer) { w.AString("foo") }, "foo"},
		{"astring NIL is quoted", false, func(w *Writer) { w.AString("nil") }, `"nil"`},
		{"quoted with escapes", false, func(w *Writer) { w.String(`a "b" \c`) }, `"a \"b\" \\c"`},
		{"empty string", false, func(w *Writer) { w.AString("") }, `""`},
		{"CRLF needs a literal", false, func(w *Writer) { w.String("a\r\nb") }, "{4}\r\na\r\nb"},
		{"8-bit without UTF8 is a literal", false, func(w *Writer) { w.String("café") }, "{5}\r\ncafé"},
		{"UTF-8 quoted under UTF8=ACCEPT", true, func(w *Writer) { w.String("café") }, `"café"`},
		{"invalid UTF-8 is a literal even so", true, func(w *Writer) { w.String("\xff") }, "{1}\r\n\xff"},
		{"long string is a literal", false, func(w *Writer) { w.String(strings.Repeat("x", 1025)) }, "{1025}\r\n" + strings.Repeat("x", 1025)},
		{"NIL", false, func(w *Writer) { w.NString("", false) }, "NIL"},
		{"NUL in BINARY is literal8", false, func(w *Writer) { w.NString8("a\x00b") }, "~{3}\r\na\x00b"},
		{"BINARY without NUL", false, func(w *Writer) { w.NString8("ab") }, `"ab"`},
		{"mailbox modified UTF-7", false, func(w *Writer) { w.Mailbox("台北 &") }, `"&U,BTFw- &-"`},
		{"mailbox UTF-8", true, func(w *Writer) { w.Mailbox("台北") }, `"台北"`},
		{"inbox", false, func(w *Writer) { w.Mailbox("inbox") }, "INBOX"},
		{"number, atom", false, func(w *Writer) { w.Raw("* ").Number(23).SP().Atom("EXISTS").CRLF() }, "* 23 EXISTS\r\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var out bytes.Buffer
			w := NewWriter(bufio.NewWriter(&out))
			w.UTF8 = tt.utf8
			tt.write(w)
			if out.Len() != 0 {
				t.Errorf("wrote %q before Flush", out.String())
			}
			if err := w.Flush(); err != nil {
				t.Fatal(err)
			}
			if out.String() != tt.want {
				t.Errorf("wrote %q, want %q", out.String(), tt.want)
			}
		})
	}
	var out bytes.Buffer
	w := NewWriter(bufio.NewWriter(&out))
	if err := w.String("a\x00b").Raw("more").Flush(); err != ErrNUL || out.Len() != 0 {
		t.Errorf("String with NUL: Flush() = %v, wrote %q; want ErrNUL and nothing", err, out.String())
	}
}
