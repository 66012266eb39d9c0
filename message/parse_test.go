package message

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
)

const messagesDir = "../testdata/messages"

// anyText in a wantPart's header or body skips that comparison.
const anyText = "\x00any"

// wantPart is the expected shape of the Part reached from the root by
// following path through Parts. Header and body are compared with
// raw[HeaderStart:BodyStart] and raw[BodyStart:End], CRLF normalised to LF.
type wantPart struct {
	path       []int
	typ        string // "type/subtype"
	params     map[string]string
	enc        string // "" means "7bit"
	disp       string
	dispParams map[string]string
	id, desc   string
	lang       []string
	header     string
	body       string
	lines      int64
	nparts     int
	envelope   bool // Envelope != nil
}

func readMessage(tb testing.TB, name string) []byte {
	tb.Helper()
	raw, err := os.ReadFile(filepath.Join(messagesDir, name))
	if err != nil {
		tb.Fatal(err)
	}
	return raw
}

// partAt follows path from root.
func partAt(tb testing.TB, root *Part, path []int) *Part {
	tb.Helper()
	pt := root
	for i, n := range path {
		if n >= len(pt.Parts) {
			tb.Fatalf("part %v: parent has %d children", path[:i+1], len(pt.Parts))
		}
		pt = &pt.Parts[n]
	}
	return pt
}

func checkParts(t *testing.T, raw []byte, root *Part, want []wantPart) {
	t.Helper()
	lf := func(b []byte) string { return strings.ReplaceAll(string(b), "\r\n", "\n") }
	for _, w := range want {
		pt := partAt(t, root, w.path)
		name := fmt.Sprintf("part %v", w.path)
		if got := pt.Type + "/" + pt.Subtype; got != w.typ {
			t.Errorf("%s: type = %q, want %q", name, got, w.typ)
		}
		if w.params != nil && !reflect.DeepEqual(pt.Params, w.params) {
			t.Errorf("%s: Params = %q, want %q", name, pt.Params, w.params)
		}
		if enc := cmpOr(w.enc, "7bit"); pt.Encoding != enc {
			t.Errorf("%s: Encoding = %q, want %q", name, pt.Encoding, enc)
		}
		if pt.Disposition != w.disp || !reflect.DeepEqual(pt.DispositionParams, w.dispParams) {
			t.Errorf("%s: disposition = %q %q, want %q %q", name, pt.Disposition, pt.DispositionParams, w.disp, w.dispParams)
		}
		if pt.ID != w.id || pt.Description != w.desc || !slices.Equal(pt.Language, w.lang) {
			t.Errorf("%s: ID, Description, Language = %q, %q, %q, want %q, %q, %q",
				name, pt.ID, pt.Description, pt.Language, w.id, w.desc, w.lang)
		}
		if got := lf(raw[pt.HeaderStart:pt.BodyStart]); w.header != anyText && got != w.header {
			t.Errorf("%s: header = %q, want %q", name, got, w.header)
		}
		if got := lf(raw[pt.BodyStart:pt.End]); w.body != anyText && got != w.body {
			t.Errorf("%s: body = %q, want %q", name, got, w.body)
		}
		if pt.Lines != w.lines {
			t.Errorf("%s: Lines = %d, want %d", name, pt.Lines, w.lines)
		}
		if len(pt.Parts) != w.nparts {
			t.Errorf("%s: %d children, want %d", name, len(pt.Parts), w.nparts)
		}
		if (pt.Envelope != nil) != w.envelope {
			t.Errorf("%s: Envelope = %+v, want present: %v", name, pt.Envelope, w.envelope)
		}
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// checkEnvelope compares envelopes, dates by instant.
func checkEnvelope(t *testing.T, what string, got, want *Envelope) {
	t.Helper()
	if !got.Date.Equal(want.Date) {
		t.Errorf("%s: Date = %v, want %v", what, got.Date, want.Date)
	}
	g, w := *got, *want
	g.Date, w.Date = time.Time{}, time.Time{}
	if !reflect.DeepEqual(g, w) {
		gj, _ := json.MarshalIndent(g, "", "  ")
		wj, _ := json.MarshalIndent(w, "", "  ")
		t.Errorf("%s = %s\nwant %s", what, gj, wj)
	}
}

// checkInvariants verifies the offset contract of Part for the whole tree
// and that all strings are valid UTF-8.
func checkInvariants(tb testing.TB, raw []byte, p *Parsed) {
	tb.Helper()
	if p.Root.HeaderStart != 0 {
		tb.Errorf("root HeaderStart = %d, want 0", p.Root.HeaderStart)
	}
	checkEnvelopeUTF8(tb, &p.Envelope)
	var walk func(pt *Part, lo, hi int64, path []int)
	walk = func(pt *Part, lo, hi int64, path []int) {
		if !(lo <= pt.HeaderStart && pt.HeaderStart <= pt.BodyStart && pt.BodyStart <= pt.End && pt.End <= hi) {
			tb.Fatalf("part %v: offsets %d, %d, %d outside [%d, %d]", path, pt.HeaderStart, pt.BodyStart, pt.End, lo, hi)
		}
		for _, s := range []string{pt.Type, pt.Subtype, pt.ID, pt.Description, pt.Encoding, pt.Disposition, pt.Location, pt.MD5} {
			if !utf8.ValidString(s) {
				tb.Errorf("part %v: invalid UTF-8 %q", path, s)
			}
		}
		for _, m := range []map[string]string{pt.Params, pt.DispositionParams} {
			for k, v := range m {
				if !utf8.ValidString(k) || !utf8.ValidString(v) {
					tb.Errorf("part %v: invalid UTF-8 param %q=%q", path, k, v)
				}
			}
		}
		if pt.Envelope != nil {
			checkEnvelopeUTF8(tb, pt.Envelope)
		}
		prevEnd := pt.BodyStart
		for i := range pt.Parts {
			walk(&pt.Parts[i], prevEnd, pt.End, append(path, i))
			prevEnd = pt.Parts[i].End
		}
	}
	walk(&p.Root, 0, int64(len(raw)), nil)
}

func checkEnvelopeUTF8(tb testing.TB, env *Envelope) {
	tb.Helper()
	strs := append([]string{env.Subject, env.MessageID}, env.InReplyTo...)
	strs = append(strs, env.References...)
	for _, l := range [][]Address{env.From, env.Sender, env.ReplyTo, env.To, env.Cc, env.Bcc} {
		for _, a := range l {
			strs = append(strs, a.Name, a.Mailbox, a.Host)
		}
	}
	for _, s := range strs {
		if !utf8.ValidString(s) {
			tb.Errorf("envelope: invalid UTF-8 %q", s)
		}
	}
}

func date(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func TestParseMessages(t *testing.T) {
	carol := []Address{{Name: "Carol Jones", Mailbox: "carol", Host: "example.com"}}
	grace := []Address{{Name: "Grace", Mailbox: "grace", Host: "example.com"}}
	alice := []Address{{Name: "Alice Example", Mailbox: "alice", Host: "example.org"}}
	tests := []struct {
		name  string
		file  string
		env   Envelope
		parts []wantPart
	}{{
		name: "simple text/plain",
		file: "simple.eml",
		env: Envelope{
			Date:     date("2024-05-14T11:12:30+02:00"),
			DateText: "Tue, 14 May 2024 11:12:30 +0200",
			Subject:  "Lunch on Thursday?",
			From:     alice, Sender: alice, ReplyTo: alice,
			To:        []Address{{Name: "Bob", Mailbox: "bob", Host: "example.net"}},
			MessageID: "20240514091230.GA1234@example.org",
		},
		parts: []wantPart{{
			typ:    "text/plain",
			params: map[string]string{"charset": "utf-8", "format": "flowed"},
			enc:    "8bit",
			header: anyText,
			body:   "Hi Bob,\n\nare you free for lunch on Thursday? The new place on\nMain Street opens at noon.\n\nAlice\n",
			lines:  6,
		}},
	}, {
		name: "nested multipart/mixed with alternative and attachment",
		file: "multipart.eml",
		env: Envelope{
			Date:     date("2024-07-03T16:45:00-04:00"),
			DateText: "Wed, 3 Jul 2024 16:45:00 -0400",
			Subject:  "Q2 report",
			From:     carol, Sender: carol, ReplyTo: carol,
			To: []Address{
				{Mailbox: "dave", Host: "example.net"},
				{Name: "Eve, the Auditor", Mailbox: "eve", Host: "example.net"},
			},
			Cc:        []Address{{Name: "Frank", Mailbox: "frank", Host: "example.org"}},
			InReplyTo: []string{"prev-1@example.net", "prev-2@example.net"},
			MessageID: "CAF=abc123@mail.example.com",
		},
		parts: []wantPart{{
			typ:    "multipart/mixed",
			params: map[string]string{"boundary": "----=_Part_0_123456.1720039500000"},
			header: anyText,
			body:   anyText,
			nparts: 2,
		}, {
			path:   []int{0},
			typ:    "multipart/alternative",
			params: map[string]string{"boundary": "----=_Part_1_654321.1720039500000"},
			header: "Content-Type: multipart/alternative;\n\tboundary=\"----=_Part_1_654321.1720039500000\"\n\n",
			body: "------=_Part_1_654321.1720039500000\n" +
				"Content-Type: text/plain; charset=UTF-8\n" +
				"Content-Transfer-Encoding: 7bit\n\n" +
				"Hi all,\n\nthe Q2 report is attached.\n\nCarol\n" +
				"------=_Part_1_654321.1720039500000\n" +
				"Content-Type: text/html; charset=UTF-8\n" +
				"Content-Transfer-Encoding: quoted-printable\n\n" +
				"<html><body><p>Hi all,</p><p>the Q2 report is attached.</p><p>Carol</p></bo=\ndy></html>\n" +
				"------=_Part_1_654321.1720039500000--\n",
			nparts: 2,
		}, {
			path:   []int{0, 0},
			typ:    "text/plain",
			params: map[string]string{"charset": "UTF-8"},
			header: "Content-Type: text/plain; charset=UTF-8\nContent-Transfer-Encoding: 7bit\n\n",
			body:   "Hi all,\n\nthe Q2 report is attached.\n\nCarol",
			lines:  5,
		}, {
			path:   []int{0, 1},
			typ:    "text/html",
			params: map[string]string{"charset": "UTF-8"},
			enc:    "quoted-printable",
			header: "Content-Type: text/html; charset=UTF-8\nContent-Transfer-Encoding: quoted-printable\n\n",
			body:   "<html><body><p>Hi all,</p><p>the Q2 report is attached.</p><p>Carol</p></bo=\ndy></html>",
			lines:  2,
		}, {
			path:       []int{1},
			typ:        "application/pdf",
			params:     map[string]string{"name": "Q2 report.pdf"},
			enc:        "base64",
			disp:       "attachment",
			dispParams: map[string]string{"filename": "Q2 résumé.pdf"}, // RFC 2231, ISO-8859-1
			id:         "<part1.q2@example.com>",
			desc:       "Quarterly report",
			lang:       []string{"en", "de"},
			header:     anyText,
			body: "JVBERi0xLjQKJcOkw7zDtsOfCjIgMCBvYmoKPDwvTGVuZ3RoIDMgMCBSL0ZpbHRlci9GbGF0ZURl\n" +
				"Y29kZT4+CnN0cmVhbQp4nDPQM1Qo5ypUMFAw0DMwslAwtTTVMzI2UbAwMdSzUChKTVEIL8pMSS1W\n" +
				"CFAILsnMS8lJLUpVqFYoVUxSslLIsDI0MLE1MzIyNjEyt7AwMLYwMDI0szAwsDQ2NzSxNDQ1NDK3",
		}},
	}, {
		name: "message/rfc822 attachment",
		file: "rfc822-attachment.eml",
		env: Envelope{
			Date:     date("2024-09-06T08:00:00Z"),
			DateText: "Fri, 6 Sep 2024 08:00:00 +0000",
			Subject:  "Fwd: Meeting notes",
			From:     grace, Sender: grace, ReplyTo: grace,
			To:        []Address{{Name: "Oscar", Mailbox: "oscar", Host: "example.com"}},
			MessageID: "fwd-42@example.com",
		},
		parts: []wantPart{{
			typ:    "multipart/mixed",
			params: map[string]string{"boundary": "outer42"},
			header: anyText,
			body:   anyText,
			nparts: 2,
		}, {
			path:   []int{0},
			typ:    "text/plain",
			params: map[string]string{"charset": "us-ascii"},
			header: "Content-Type: text/plain; charset=us-ascii\n\n",
			body:   "See the forwarded message below.\n",
			lines:  1,
		}, {
			path:   []int{1},
			typ:    "message/rfc822",
			disp:   "inline",
			header: "Content-Type: message/rfc822\nContent-Disposition: inline\n\n",
			body: rfc822Header + "\n" +
				"--inner7\nContent-Type: text/plain; charset=utf-8\n\nNotes: ship it.\n" +
				"--inner7\nContent-Type: text/html; charset=utf-8\n\n<p>Notes: ship it.</p>\n" +
				"--inner7--\n",
			lines:    17,
			nparts:   1,
			envelope: true,
		}, {
			path:   []int{1, 0},
			typ:    "multipart/alternative",
			params: map[string]string{"boundary": "inner7"},
			header: rfc822Header + "\n",
			body:   anyText,
			nparts: 2,
		}, {
			path:   []int{1, 0, 0},
			typ:    "text/plain",
			params: map[string]string{"charset": "utf-8"},
			header: "Content-Type: text/plain; charset=utf-8\n\n",
			body:   "Notes: ship it.",
			lines:  1,
		}, {
			path:   []int{1, 0, 1},
			typ:    "text/html",
			params: map[string]string{"charset": "utf-8"},
			header: "Content-Type: text/html; charset=utf-8\n\n",
			body:   "<p>Notes: ship it.</p>",
			lines:  1,
		}},
	}, {
		name: "RFC 2047 subject and names, undisclosed recipients",
		file: "rfc2047.eml",
		env: Envelope{
			Date:     date("2024-01-01T00:00:00+01:00"),
			DateText: "Mon, 1 Jan 2024 00:00:00 +0100",
			Subject:  "Échantillon de données — résumé",
			From:     []Address{{Name: "André Pirard", Mailbox: "pirard", Host: "example.be"}},
			Sender:   []Address{{Name: "山田太郎", Mailbox: "taro", Host: "example.jp"}},
			ReplyTo:  []Address{{Name: "Support ✓", Mailbox: "support", Host: "example.com"}},
			To:       []Address{{Name: "undisclosed-recipients", Group: true}, {GroupEnd: true}},

			MessageID: "rfc2047-test@example.be",
		},
		parts: []wantPart{{
			typ:    "text/plain",
			params: map[string]string{"charset": "ISO-8859-1"},
			enc:    "quoted-printable",
			header: anyText,
			body:   "Voil=E0 le r=E9sum=E9.\n",
			lines:  1,
		}},
	}}
	for _, tt := range tests {
		crlf := readMessage(t, tt.file)
		for _, v := range []struct {
			name string
			raw  []byte
		}{
			{"CRLF", crlf},
			{"LF", bytes.ReplaceAll(crlf, []byte("\r\n"), []byte("\n"))},
		} {
			t.Run(tt.name+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				p := parse(v.raw)
				checkInvariants(t, v.raw, p)
				checkEnvelope(t, "Envelope", &p.Envelope, &tt.env)
				checkParts(t, v.raw, &p.Root, tt.parts)
			})
		}
	}
}

// rfc822Header is the header of the message inside rfc822-attachment.eml.
const rfc822Header = "From: Heidi <heidi@example.org>\n" +
	"To: Ivan <ivan@example.org>, team: judy@example.org, Mallory <mallory@example.org>;\n" +
	"Subject: Meeting notes\n" +
	"Date: Thu, 5 Sep 2024 17:30:00 +0200\n" +
	"Message-ID: <notes-7@example.org>\n" +
	"MIME-Version: 1.0\n" +
	"Content-Type: multipart/alternative; boundary=\"inner7\"\n"

func TestParseRFC822Envelope(t *testing.T) {
	raw := readMessage(t, "rfc822-attachment.eml")
	p := parse(raw)
	heidi := []Address{{Name: "Heidi", Mailbox: "heidi", Host: "example.org"}}
	want := &Envelope{
		Date:     date("2024-09-05T17:30:00+02:00"),
		DateText: "Thu, 5 Sep 2024 17:30:00 +0200",
		Subject:  "Meeting notes",
		From:     heidi, Sender: heidi, ReplyTo: heidi,
		To: []Address{
			{Name: "Ivan", Mailbox: "ivan", Host: "example.org"},
			{Name: "team", Group: true},
			{Mailbox: "judy", Host: "example.org"},
			{Name: "Mallory", Mailbox: "mallory", Host: "example.org"},
			{GroupEnd: true},
		},
		MessageID: "notes-7@example.org",
	}
	checkEnvelope(t, "Parts[1].Envelope", partAt(t, &p.Root, []int{1}).Envelope, want)
}

func TestParseEnvelope(t *testing.T) {
	// KOI8-R needs the charsets of github.com/emersion/go-message/charset;
	// without them the word is kept, like any word in an unknown charset.
	koi8Subject := "=?koi8-r?B?8NLJ18XUIM3J0g==?="
	if gomessage.CharsetReader != nil {
		koi8Subject = "Привет мир"
	}
	bob := []Address{{Name: "Bob", Mailbox: "bob", Host: "example.com"}}
	tests := []struct {
		name   string
		header string // LF line breaks; a blank line and a body are appended
		want   Envelope
	}{{
		name:   "missing date, sender and reply-to default to from",
		header: "From: Bob <bob@example.com>\nSubject: hi\n",
		want:   Envelope{Subject: "hi", From: bob, Sender: bob, ReplyTo: bob},
	}, {
		// RFC 9051 §7.5.2: addr-adl "Holds route from [RFC-822]
		// route-addr if non-NIL"; RFC 5322 §4.4 obs-route.
		name: "source routes kept",
		header: "From: J\u00fcrgen <@route.example:j@example.org>\n" +
			"To: <@a.example, @b.example (hop):u@example.org>, plain@example.org\n",
		want: Envelope{
			From:    []Address{{Name: "J\u00fcrgen", Route: "@route.example", Mailbox: "j", Host: "example.org"}},
			Sender:  []Address{{Name: "J\u00fcrgen", Route: "@route.example", Mailbox: "j", Host: "example.org"}},
			ReplyTo: []Address{{Name: "J\u00fcrgen", Route: "@route.example", Mailbox: "j", Host: "example.org"}},
			To: []Address{
				{Route: "@a.example,@b.example", Mailbox: "u", Host: "example.org"},
				{Mailbox: "plain", Host: "example.org"},
			},
		},
	}, {
		name:   "unparsable date",
		header: "Date: the day after tomorrow\nSubject: hi\n",
		// ENVELOPE shows the field as written; Date stays zero.
		want: Envelope{DateText: "the day after tomorrow", Subject: "hi"},
	}, {
		name:   "obsolete date with comment",
		header: "Date: Fri, 21 Nov 1997 09:55:06 -0600 (MDT)\n",
		want:   Envelope{Date: date("1997-11-21T09:55:06-06:00"), DateText: "Fri, 21 Nov 1997 09:55:06 -0600 (MDT)"},
	}, {
		name: "explicit sender and reply-to, empty reply-to defaults",
		header: "From: Bob <bob@example.com>\nSender: list@example.org\nReply-To:\n" +
			"Cc: a@example.org\nBcc: b@example.org\n",
		want: Envelope{
			From: bob, ReplyTo: bob,
			Sender: []Address{{Mailbox: "list", Host: "example.org"}},
			Cc:     []Address{{Mailbox: "a", Host: "example.org"}},
			Bcc:    []Address{{Mailbox: "b", Host: "example.org"}},
		},
	}, {
		name:   "first of repeated fields wins",
		header: "Subject: first\nSubject: second\nmessage-id: <one@x>\nMESSAGE-ID: <two@x>\n",
		want:   Envelope{Subject: "first", MessageID: "one@x"},
	}, {
		name:   "folded subject",
		header: "Subject: a long\n  subject\n\tline\n",
		want:   Envelope{Subject: "a long  subject\tline"},
	}, {
		name:   "encoded word without end stays",
		header: "Subject: =?utf-8?q?broken\n",
		want:   Envelope{Subject: "=?utf-8?q?broken"},
	}, {
		name:   "encoded word with bad base64 stays",
		header: "Subject: =?utf-8?b?!!!?= tail\n",
		want:   Envelope{Subject: "=?utf-8?b?!!!?= tail"},
	}, {
		name:   "unknown charset keeps that word, decodes the others",
		header: "Subject: =?x-unknown?q?abc?= =?utf-8?q?=C3=A9t=C3=A9?= =?utf-8?q?_ok?=\n",
		want:   Envelope{Subject: "=?x-unknown?q?abc?= été ok"},
	}, {
		name:   "KOI8-R encoded word",
		header: "Subject: =?koi8-r?B?8NLJ18XUIM3J0g==?=\n",
		want:   Envelope{Subject: koi8Subject},
	}, {
		name:   "ISO-8859-1 encoded name",
		header: "To: =?iso-8859-1?q?J=F6rg?= <joerg@example.de>\n",
		want:   Envelope{To: []Address{{Name: "Jörg", Mailbox: "joerg", Host: "example.de"}}},
	}, {
		name:   "raw UTF-8 headers (RFC 6532)",
		header: "Subject: Grüße aus Köln\nTo: Jörg Müller <jörg@bücher.example>\n",
		want: Envelope{
			Subject: "Grüße aus Köln",
			To:      []Address{{Name: "Jörg Müller", Mailbox: "jörg", Host: "bücher.example"}},
		},
	}, {
		name:   "raw 8-bit non-UTF-8 header",
		header: "Subject: caf\xe9 cr\xe8me\nTo: Ren\xe9 <rene@example.fr>\n",
		want: Envelope{
			Subject: "caf\uFFFD cr\uFFFDme",
			To:      []Address{{Name: "Ren\uFFFD", Mailbox: "rene", Host: "example.fr"}},
		},
	}, {
		name:   "NUL bytes in header",
		header: "Subject: a\x00b\nMessage-ID: <x\x00y@z>\n",
		want:   Envelope{Subject: "a\x00b", MessageID: "x\x00y@z"},
	}, {
		name:   "groups",
		header: "To: a@example.com, Friends: b@example.com, \"C\" <c@example.com>;, d@example.com\nCc: undisclosed-recipients:;\n",
		want: Envelope{
			To: []Address{
				{Mailbox: "a", Host: "example.com"},
				{Name: "Friends", Group: true},
				{Mailbox: "b", Host: "example.com"},
				{Name: "C", Mailbox: "c", Host: "example.com"},
				{GroupEnd: true},
				{Mailbox: "d", Host: "example.com"},
			},
			Cc: []Address{{Name: "undisclosed-recipients", Group: true}, {GroupEnd: true}},
		},
	}, {
		name:   "group without closing semicolon",
		header: "To: \"The List\": a@example.com\n",
		want: Envelope{To: []Address{
			{Name: "The List", Group: true}, {Mailbox: "a", Host: "example.com"}, {GroupEnd: true},
		}},
	}, {
		name:   "semicolon-separated list",
		header: "To: a@example.com; b@example.com\n",
		want:   Envelope{To: []Address{{Mailbox: "a", Host: "example.com"}, {Mailbox: "b", Host: "example.com"}}},
	}, {
		name:   "malformed addresses fall back leniently",
		header: "From: MAILER-DAEMON\nTo: John Doe <john@example.com>, Jane <jane@example.org\nCc: <@relay.example:user@host.example>\n",
		want: Envelope{
			From:    []Address{{Mailbox: "MAILER-DAEMON"}},
			Sender:  []Address{{Mailbox: "MAILER-DAEMON"}},
			ReplyTo: []Address{{Mailbox: "MAILER-DAEMON"}},
			To: []Address{
				{Name: "John Doe", Mailbox: "john", Host: "example.com"},
				{Name: "Jane", Mailbox: "jane", Host: "example.org"},
			},
			Cc: []Address{{Route: "@relay.example", Mailbox: "user", Host: "host.example"}}, // RFC 9051 §7.5.2 addr-adl
		},
	}, {
		name:   "quoted local part",
		header: "To: \"john doe\"@example.com\n",
		want:   Envelope{To: []Address{{Mailbox: "john doe", Host: "example.com"}}},
	}, {
		name:   "message ids without brackets, with comments",
		header: "Message-ID: abc.123@example.com\nIn-Reply-To: <a@example.com> (the one before) <b@example.com>\n",
		want:   Envelope{MessageID: "abc.123@example.com", InReplyTo: []string{"a@example.com", "b@example.com"}},
	}, {
		name:   "in-reply-to garbage",
		header: "In-Reply-To: your message of yesterday\n",
		want:   Envelope{},
	}, {
		name:   "references folded, for THREAD=REFERENCES (RFC 5256 §2.2)",
		header: "References: <a@example.com>\n <b@example.com> (comment)\n\t<c@example.com>\nreferences: <ignored@example.com>\n",
		want:   Envelope{References: []string{"a@example.com", "b@example.com", "c@example.com"}},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			raw := []byte(tt.header + "\nbody\n")
			p := parse(raw)
			checkInvariants(t, raw, p)
			checkEnvelope(t, "Envelope", &p.Envelope, &tt.want)
		})
	}
}

func TestParseStructure(t *testing.T) {
	usASCII := map[string]string{"charset": "us-ascii"}
	tests := []struct {
		name  string
		raw   string
		parts []wantPart
	}{{
		name:  "empty input",
		raw:   "",
		parts: []wantPart{{typ: "text/plain", params: usASCII}},
	}, {
		name:  "no header/body separator",
		raw:   "From: a@example.com\nSubject: no body",
		parts: []wantPart{{typ: "text/plain", params: usASCII, header: "From: a@example.com\nSubject: no body"}},
	}, {
		name:  "no header at all",
		raw:   "\nJust a body\nwithout a final line break",
		parts: []wantPart{{typ: "text/plain", params: usASCII, header: "\n", body: "Just a body\nwithout a final line break", lines: 2}},
	}, {
		name:  "NUL bytes in body",
		raw:   "Subject: x\n\nnul\x00here\n\x00\n",
		parts: []wantPart{{typ: "text/plain", params: usASCII, header: "Subject: x\n\n", body: "nul\x00here\n\x00\n", lines: 2}},
	}, {
		name: "garbage header lines are skipped",
		raw:  " leading continuation\nnot a header line\nContent-Type: text/html\n\n<p>",
		parts: []wantPart{{
			typ: "text/html", header: " leading continuation\nnot a header line\nContent-Type: text/html\n\n", body: "<p>", lines: 1,
		}},
	}, {
		name: "invalid content-type defaults to text/plain",
		raw:  "Content-Type: garbage\nContent-Transfer-Encoding: BASE64 (why not)\n\naGk=\n",
		parts: []wantPart{{
			typ: "text/plain", params: usASCII, enc: "base64", header: anyText, body: "aGk=\n", lines: 1,
		}},
	}, {
		name: "content-type with comment and odd case",
		raw:  "Content-Type: TEXT/HTML (comment); CHARSET=\"utf-8\";\n\nx",
		parts: []wantPart{{
			typ: "text/html", params: map[string]string{"charset": "utf-8"}, header: anyText, body: "x", lines: 1,
		}},
	}, {
		name: "duplicate parameter falls back to first",
		raw:  "Content-Type: text/plain; charset=utf-8; charset=latin1\n\nx",
		parts: []wantPart{{
			typ: "text/plain", params: map[string]string{"charset": "utf-8"}, header: anyText, body: "x", lines: 1,
		}},
	}, {
		name: "RFC 2231 continuations and RFC 2047 parameter",
		raw: "Content-Type: application/octet-stream; name=\"=?UTF-8?B?w6l0w6kudHh0?=\"\n" +
			"Content-Disposition: ATTACHMENT; filename*0*=utf-8''%E2%9C%93; filename*1=\".txt\"\n\nx",
		parts: []wantPart{{
			typ: "application/octet-stream", params: map[string]string{"name": "été.txt"},
			disp: "attachment", dispParams: map[string]string{"filename": "✓.txt"},
			header: anyText, body: "x",
		}},
	}, {
		name: "multipart with unquoted boundary containing '='",
		raw: "Content-Type: multipart/mixed; boundary=----=_NextPart_000_0001\n\n" +
			"------=_NextPart_000_0001\n\nfirst\n------=_NextPart_000_0001--\n",
		parts: []wantPart{
			{typ: "multipart/mixed", params: map[string]string{"boundary": "----=_NextPart_000_0001"}, header: anyText, body: anyText, nparts: 1},
			{path: []int{0}, typ: "text/plain", params: usASCII, header: "\n", body: "first", lines: 1},
		},
	}, {
		name: "preamble, epilogue, padding, prefix lines and junk after close",
		raw: "Content-Type: multipart/mixed; boundary=b\n\npreamble\n--b \t\nContent-Type: text/plain\n\none\n--bb\n-- b\n" +
			"--b\n\ntwo\n\n--b--junk\nepilogue\n--b\n\nnot a part\n",
		parts: []wantPart{
			{typ: "multipart/mixed", params: map[string]string{"boundary": "b"}, header: anyText, body: anyText, nparts: 2},
			{path: []int{0}, typ: "text/plain", header: "Content-Type: text/plain\n\n", body: "one\n--bb\n-- b", lines: 3},
			{path: []int{1}, typ: "text/plain", params: usASCII, header: "\n", body: "two\n", lines: 1},
		},
	}, {
		name: "empty body parts",
		raw:  "Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\nContent-Type: text/html\n\n--b--\n",
		parts: []wantPart{
			{typ: "multipart/mixed", params: map[string]string{"boundary": "b"}, header: anyText, body: anyText, nparts: 2},
			{path: []int{0}, typ: "text/plain", params: usASCII, header: "", body: ""},
			// The line break before "--b--" belongs to the delimiter, so
			// this header has no blank line.
			{path: []int{1}, typ: "text/html", header: "Content-Type: text/html\n", body: ""},
		},
	}, {
		name: "missing close boundary",
		raw:  "Content-Type: multipart/alternative; boundary=\"b\"\n\n--b\n\none\n--b\nContent-Type: text/html\n\n<p>two</p>\n",
		parts: []wantPart{
			{typ: "multipart/alternative", params: map[string]string{"boundary": "b"}, header: anyText, body: anyText, nparts: 2},
			{path: []int{0}, typ: "text/plain", params: usASCII, header: "\n", body: "one", lines: 1},
			{path: []int{1}, typ: "text/html", header: "Content-Type: text/html\n\n", body: "<p>two</p>\n", lines: 1},
		},
	}, {
		name: "missing boundary parameter is a leaf",
		raw:  "Content-Type: multipart/mixed\n\n--b\n\none\n--b--\n",
		parts: []wantPart{
			{typ: "multipart/mixed", header: anyText, body: "--b\n\none\n--b--\n", lines: 4},
		},
	}, {
		name: "no delimiter in body",
		raw:  "Content-Type: multipart/mixed; boundary=zzz\n\nhello\n",
		parts: []wantPart{
			{typ: "multipart/mixed", params: map[string]string{"boundary": "zzz"}, header: anyText, body: "hello\n", lines: 1},
		},
	}, {
		name: "multipart/digest defaults to message/rfc822",
		raw:  "Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody one\n--d\nContent-Type: text/plain\n\ntwo\n--d--\n",
		parts: []wantPart{
			{typ: "multipart/digest", params: map[string]string{"boundary": "d"}, header: anyText, body: anyText, nparts: 2},
			{path: []int{0}, typ: "message/rfc822", header: "\n", body: "Subject: one\n\nbody one", lines: 3, nparts: 1, envelope: true},
			{path: []int{0, 0}, typ: "text/plain", params: usASCII, header: "Subject: one\n\n", body: "body one", lines: 1},
			{path: []int{1}, typ: "text/plain", header: "Content-Type: text/plain\n\n", body: "two", lines: 1},
		},
	}, {
		name: "base64 message/rfc822 is a leaf",
		raw:  "Content-Type: message/rfc822\nContent-Transfer-Encoding: base64\n\nU3ViamVjdDogeAoKeQo=\n",
		parts: []wantPart{
			{typ: "message/rfc822", enc: "base64", header: anyText, body: "U3ViamVjdDogeAoKeQo=\n", lines: 1},
		},
	}, {
		name: "message/global",
		raw:  "Content-Type: message/global\n\nSubject: ü\n\nbody\n",
		parts: []wantPart{
			{typ: "message/global", header: anyText, body: "Subject: ü\n\nbody\n", lines: 3, nparts: 1, envelope: true},
			{path: []int{0}, typ: "text/plain", params: usASCII, header: "Subject: ü\n\n", body: "body\n", lines: 1},
		},
	}}
	for _, tt := range tests {
		for _, v := range []struct {
			name string
			raw  string
		}{
			{"LF", tt.raw},
			{"CRLF", strings.ReplaceAll(tt.raw, "\n", "\r\n")},
		} {
			t.Run(tt.name+"/"+v.name, func(t *testing.T) {
				t.Parallel()
				raw := []byte(v.raw)
				p := parse(raw)
				checkInvariants(t, raw, p)
				checkParts(t, raw, &p.Root, tt.parts)
			})
		}
	}
}

// nestedMultipart returns a message of depth nested multiparts around a
// text/plain part.
func nestedMultipart(depth int) []byte {
	var b bytes.Buffer
	for i := range depth {
		fmt.Fprintf(&b, "Content-Type: multipart/mixed; boundary=b%d\n\n--b%d\n", i, i)
	}
	b.WriteString("Content-Type: text/plain\n\ninnermost\n")
	for i := depth - 1; i >= 0; i-- {
		fmt.Fprintf(&b, "--b%d--\n", i)
	}
	return b.Bytes()
}

// nestedMessage returns depth nested message/rfc822 entities.
func nestedMessage(depth int) []byte {
	return []byte(strings.Repeat("Subject: x\nContent-Type: message/rfc822\n\n", depth) + "Subject: last\n\nbody\n")
}

func TestParseLimits(t *testing.T) {
	big := strings.Repeat("a", 1<<20)
	tests := []struct {
		name  string
		raw   []byte
		check func(t *testing.T, p *Parsed)
	}{{
		name: "100-deep multipart",
		raw:  nestedMultipart(100),
		check: func(t *testing.T, p *Parsed) {
			depth, pt := 0, &p.Root
			for len(pt.Parts) > 0 {
				pt, depth = &pt.Parts[0], depth+1
			}
			if depth != maxDepth || pt.Type != "multipart" {
				t.Errorf("deepest part: depth %d, type %s; want depth %d, multipart leaf", depth, pt.Type, maxDepth)
			}
		},
	}, {
		name: "100-deep message/rfc822",
		raw:  nestedMessage(100),
		check: func(t *testing.T, p *Parsed) {
			depth, pt := 0, &p.Root
			for len(pt.Parts) > 0 {
				if pt.Envelope == nil || pt.Envelope.Subject != "x" {
					t.Fatalf("depth %d: Envelope = %+v, want subject x", depth, pt.Envelope)
				}
				pt, depth = &pt.Parts[0], depth+1
			}
			if depth != maxDepth || pt.Type != "message" || pt.Envelope != nil {
				t.Errorf("deepest part: depth %d, type %s; want depth %d, message leaf", depth, pt.Type, maxDepth)
			}
		},
	}, {
		name: "too many parts",
		raw: []byte("Content-Type: multipart/mixed; boundary=p\n\n" +
			strings.Repeat("--p\n\nx\n", 2*maxParts) + "--p--\n"),
		check: func(t *testing.T, p *Parsed) {
			if n := len(p.Root.Parts); n != maxParts-1 {
				t.Errorf("%d parts, want %d", n, maxParts-1)
			}
		},
	}, {
		name: "1 MB subject line",
		raw:  []byte("Subject: " + big + "\n\nbody\n"),
		check: func(t *testing.T, p *Parsed) {
			if p.Envelope.Subject != big {
				t.Errorf("Subject has %d bytes, want %d", len(p.Envelope.Subject), len(big))
			}
		},
	}, {
		name: "1 MB header lines that stress the structured parsers",
		raw: []byte("To: " + strings.Repeat("a@b.example, ", 1<<20/13) + "\n" +
			"Cc: " + strings.Repeat("(", 1<<20) + "\n" +
			"From: \"" + big + "\n" +
			"Message-ID: (" + big + "\n" +
			"In-Reply-To: " + strings.Repeat("<", 1<<20) + "\n" +
			"Subject: " + strings.Repeat("=?", 1<<19) + "\n" +
			"Bcc: " + strings.Repeat("g:;", 1<<20/3) + "\n" +
			"Reply-To: " + strings.Repeat("a@, ", 1<<20/4) + "\n" +
			"Sender: " + strings.Repeat("a <b@c>, ", 1<<20/9) + "x <\n" +
			"Content-Language: " + strings.Repeat("en,", 1<<20/3) + "\n" +
			"Content-Type: text/plain; " + strings.Repeat("x*1=y;", 1<<20/6) + "\n" +
			"Content-Disposition: attachment; filename=\"" + big + "\n\nbody\n"),
		check: func(t *testing.T, p *Parsed) {
			if n := len(p.Envelope.To); n != maxListLen {
				t.Errorf("%d To addresses, want %d", n, maxListLen)
			}
			if p.Root.Lines != 1 {
				t.Errorf("Lines = %d, want 1", p.Root.Lines)
			}
		},
	}, {
		name: "1 MB header without line breaks or separator",
		raw:  []byte("X-Junk: " + big),
		check: func(t *testing.T, p *Parsed) {
			if p.Root.BodyStart != int64(len(big)+8) {
				t.Errorf("BodyStart = %d, want %d", p.Root.BodyStart, len(big)+8)
			}
		},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := parse(tt.raw)
			checkInvariants(t, tt.raw, p)
			tt.check(t, p)
		})
	}
}

func TestParsedShift(t *testing.T) {
	t.Parallel()
	raw := readMessage(t, "rfc822-attachment.eml")
	trace := []byte("Received: from client.example.com by mx.example.net; Fri, 6 Sep 2024 08:00:01 +0000\r\n")
	p := Parse(raw)
	before, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}

	got := p.Shift(int64(len(trace)))
	want := Parse(append(trace, raw...))
	if !reflect.DeepEqual(got, want) {
		gj, _ := json.Marshal(got)
		wj, _ := json.Marshal(want)
		t.Errorf("Shift(%d) = %s\nwant %s", len(trace), gj, wj)
	}
	if after, _ := json.Marshal(p); !bytes.Equal(before, after) {
		t.Errorf("Shift modified its receiver")
	}
}

func TestParseJSONRoundTrip(t *testing.T) {
	for _, name := range []string{"simple.eml", "multipart.eml", "rfc822-attachment.eml", "rfc2047.eml"} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			p := Parse(readMessage(t, name))
			b, err := json.Marshal(p)
			if err != nil {
				t.Fatal(err)
			}
			var got Parsed
			if err := json.Unmarshal(b, &got); err != nil {
				t.Fatal(err)
			}
			// JSON keeps the instant and offset, not the *time.Location.
			normalize := func(q *Parsed) {
				q.Envelope.Date = q.Envelope.Date.UTC()
				for i := range q.Root.Parts {
					if e := q.Root.Parts[i].Envelope; e != nil {
						e.Date = e.Date.UTC()
					}
				}
			}
			normalize(p)
			normalize(&got)
			if !reflect.DeepEqual(&got, p) {
				t.Errorf("JSON round trip = %+v, want %+v", got, *p)
			}
		})
	}
}

func TestParseFallback(t *testing.T) {
	t.Parallel()
	raw := []byte("Subject: x\r\n\r\nbody\r\n")
	got := fallbackParse(raw)
	want := &Parsed{Root: Part{
		Type: "text", Subtype: "plain", Params: map[string]string{"charset": "us-ascii"},
		Encoding: "7bit", BodyStart: 14, End: 20, Lines: 1,
	}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("fallbackParse(%q) = %+v, want %+v", raw, got, want)
	}
}

func FuzzParse(f *testing.F) {
	entries, err := os.ReadDir(messagesDir)
	if err != nil {
		f.Fatal(err)
	}
	for _, e := range entries {
		f.Add(readMessage(f, e.Name()))
	}
	// The malformed-mail corpus that cmd/pushmail's TestMalformedMail also
	// delivers over SMTP, plus its generated member: a 1 MB header line.
	malformed, err := filepath.Glob("../testdata/malformed/*.eml")
	if err != nil || len(malformed) == 0 {
		f.Fatalf("malformed corpus: %d files, %v", len(malformed), err)
	}
	for _, name := range malformed {
		raw, err := os.ReadFile(name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(raw)
	}
	f.Add([]byte("Subject: huge\r\nX-Huge: " + strings.Repeat("h", 1<<20) + "\r\n\r\nbody\r\n"))
	for _, s := range []string{
		"",
		"Subject: x",
		"\r\n\r\n",
		"Content-Type: multipart/mixed; boundary=b\n\n--b\n--b\nContent-Type: text/html\n\n--b--\n",
		"Content-Type: multipart/digest; boundary=d\n\n--d\n\nSubject: one\n\nbody one\n--d--\n",
		"Content-Type: message/rfc822\n\nContent-Type: multipart/mixed; boundary=x\n\n--x\n\n--x--",
		"To: a@b, G: c@d, \"e\" <f@g>;, h\nCc: <@r:u@h>, (x\n\n",
		"Content-Type: text/plain; a*0*=iso-8859-1''%E9; a*1=x; b*=utf-8''%ZZ\n\n",
		"Subject: =?x?q?a?= =?utf-8?b?w6k=?=\x00\xff\n\n",
	} {
		f.Add([]byte(s))
	}
	f.Add(nestedMultipart(60))
	f.Add(nestedMessage(60))
	f.Fuzz(func(t *testing.T, raw []byte) {
		p := parse(raw) // not Parse: its recover would hide panics
		checkInvariants(t, raw, p)
		if _, err := json.Marshal(p); err != nil {
			t.Errorf("json.Marshal: %v", err)
		}
	})
}

// benchMessage is a typical ~4 KB delivery: trace and authentication
// headers on top of multipart.eml.
func benchMessage(tb testing.TB) []byte {
	var b bytes.Buffer
	for i := range 8 {
		fmt.Fprintf(&b, "Received: from relay%d.example.net (relay%d.example.net [198.51.100.%d])\r\n"+
			"\tby mx.example.com (Postfix) with ESMTPS id 4WcK%dx2Lz\r\n"+
			"\tfor <dave@example.net>; Wed, 3 Jul 2024 16:45:0%d -0400 (EDT)\r\n", i, i, i, i, i)
	}
	b.WriteString("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.com; s=2024;\r\n" +
		"\th=from:to:cc:subject:date:message-id:in-reply-to:mime-version:content-type;\r\n" +
		"\tbh=47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=;\r\n" +
		"\tb=" + strings.Repeat("dGhpcyBpcyBub3QgYSByZWFsIHNpZ25hdHVyZQ", 8) + "\r\n")
	b.WriteString("ARC-Seal: i=1; a=rsa-sha256; t=1720039500; cv=none; d=example.com; s=arc-2024;\r\n" +
		"\tb=" + strings.Repeat("bm90IGEgcmVhbCBzZWFsIGVpdGhlcg", 8) + "\r\n")
	b.WriteString("Authentication-Results: mx.example.com; dkim=pass header.d=example.com;\r\n" +
		"\tspf=pass smtp.mailfrom=carol@example.com; dmarc=pass header.from=example.com\r\n")
	b.Write(readMessage(tb, "multipart.eml"))
	return b.Bytes()
}

func BenchmarkParse(b *testing.B) {
	raw := benchMessage(b)
	b.SetBytes(int64(len(raw)))
	b.ReportAllocs()
	for b.Loop() {
		Parse(raw)
	}
}

// BenchmarkParseHostile parses 1 MB address and parameter lists: the
// inputs that were quadratic before the parser bounded them. Its figure,
// not a test timeout, is where a regression shows.
func BenchmarkParseHostile(b *testing.B) {
	raw := []byte("To: " + strings.Repeat("a@b, ", 1<<20/5) + "\n" +
		"Content-Type: text/plain; " + strings.Repeat("x*1=y;", 1<<20/6) + "\n\nbody\n")
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		parse(raw)
	}
}

func TestHeaderReferences(t *testing.T) {
	hdr := []byte("Subject: x\r\nREFERENCES: <a@x>\r\n  <b@x>\r\nIn-Reply-To: <c@x>\r\n\r\n")
	if got := HeaderReferences(hdr); !slices.Equal(got, []string{"a@x", "b@x"}) {
		t.Errorf("HeaderReferences() = %q, want [a@x b@x]", got)
	}
	if got := HeaderReferences([]byte("Subject: x\r\n\r\n")); got != nil {
		t.Errorf("HeaderReferences(no field) = %q, want nil", got)
	}
}

func TestEnvelopeJSONKeepsNullReferences(t *testing.T) {
	// mailstore tells an envelope stored before References existed by
	// the missing key: a message without the field must still have it.
	b, err := json.Marshal(parse([]byte("Subject: x\r\n\r\nbody\r\n")).Envelope)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"references":null`) {
		t.Errorf("json.Marshal(Envelope) = %s, want a \"references\":null key", b)
	}
}
