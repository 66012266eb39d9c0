package mailstore

import (
	"context"
	"encoding/base64"
	"fmt"
	"math/rand/v2"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/message"
)

// searchFixture is a mailbox of varied messages: UID n is searchCorpus[n-1].
type searchFixture struct {
	store   *Store
	user    UserID
	mailbox MailboxID
}

// searchCRLF turns a readable "\n" message into wire form.
func searchCRLF(s string) []byte { return []byte(strings.ReplaceAll(s, "\n", "\r\n")) }

var searchBase64Body = base64.StdEncoding.EncodeToString([]byte("The secret word is Pineapple.\nÜberraschung für alle!\n"))

var searchAttachment = base64.StdEncoding.EncodeToString([]byte("%PDF-1.4 invisible-needle\n"))

// searchCorpus holds the test messages with their internal dates (UTC).
var searchCorpus = []struct {
	raw   string
	date  time.Time
	flags []string
}{
	// 1: plain ASCII, seen.
	{`From: Alice Example <alice@example.org>
To: Bob <bob@example.net>
Subject: Meeting tomorrow
Date: Fri, 01 Mar 2024 10:00:00 +0000
Message-ID: <1@example.org>

Let's meet at noon in the big room.
`, time.Date(2024, 3, 1, 12, 0, 0, 0, time.UTC), []string{FlagSeen}},
	// 2: RFC 2047 subject and sender; sent late on 2 March in California,
	// which is already 3 March in UTC.
	{`From: =?ISO-8859-1?Q?J=F6rg_M=FCller?= <joerg@example.de>
To: bob@example.net
Cc: carol@example.com
Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_M=C3=BCnchen?=
Date: Sat, 02 Mar 2024 23:30:00 -0800
Message-ID: <2@example.de>

Servus!
`, time.Date(2024, 3, 3, 8, 0, 0, 0, time.UTC), nil},
	// 3: base64 UTF-8 text body.
	{`From: dave@example.com
To: bob@example.net
Subject: encoded
Date: Sun, 03 Mar 2024 09:00:00 +0100
MIME-Version: 1.0
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: base64

` + searchBase64Body + `
`, time.Date(2024, 3, 3, 9, 0, 0, 0, time.UTC), nil},
	// 4: quoted-printable Latin-1 body with a soft line break.
	{`From: erin@example.com
To: bob@example.net
Subject: qp
Date: Mon, 04 Mar 2024 09:00:00 +0000
MIME-Version: 1.0
Content-Type: text/plain; charset=iso-8859-1
Content-Transfer-Encoding: quoted-printable

Un caf=E9 cr=E8me, soft=
wrapped line.
`, time.Date(2024, 3, 4, 9, 0, 0, 0, time.UTC), nil},
	// 5: text plus a PDF attachment whose bytes are no text.
	{`From: frank@example.com
To: bob@example.net
Subject: invoice
Date: Tue, 05 Mar 2024 09:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary="b1"

--b1
Content-Type: text/plain; charset=us-ascii

Please see the attached invoice.
--b1
Content-Type: application/pdf; name="report-2024.pdf"
Content-Disposition: attachment; filename="report-2024.pdf"
Content-Transfer-Encoding: base64

` + searchAttachment + `
--b1--
`, time.Date(2024, 3, 5, 9, 0, 0, 0, time.UTC), nil},
	// 6: multipart/alternative with a quoted-printable HTML part.
	{`From: grace@example.com
To: bob@example.net, "Heidi" <heidi@example.net>
Subject: newsletter
Date: Wed, 06 Mar 2024 09:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/alternative; boundary=alt

--alt
Content-Type: text/plain; charset=utf-8

Spring sale starts now.
--alt
Content-Type: text/html; charset=utf-8
Content-Transfer-Encoding: quoted-printable

<p>Spring <b>sale</b> =E2=80=93 Kiwi =3D 1 EUR</p>
--alt--
`, time.Date(2024, 3, 6, 9, 0, 0, 0, time.UTC), nil},
	// 7: flagged and answered, with keywords (set below with StoreFlags).
	{`From: ivan@example.com
To: bob@example.net
Subject: Re: project plan
Date: Thu, 07 Mar 2024 09:00:00 +0000
X-Priority: 1

Agreed.
`, time.Date(2024, 3, 7, 9, 0, 0, 0, time.UTC), []string{FlagAnswered}},
	// 8: no Date: header at all; a folded subject.
	{`From: judy@example.com
To: bob@example.net
Subject: a subject that is
 folded over two lines

No date here.
`, time.Date(2024, 3, 8, 12, 0, 0, 0, time.UTC), []string{FlagDraft}},
	// 9: large.
	{`From: mallory@example.com
To: bob@example.net
Subject: big one
Date: Sat, 09 Mar 2024 09:00:00 +0000

` + strings.Repeat("lorem ipsum dolor sit amet\n", 200), time.Date(2024, 3, 9, 9, 0, 0, 0, time.UTC), []string{FlagSeen, FlagDeleted}},
	// 10: a forwarded message.
	{`From: niaj@example.com
To: bob@example.net
Subject: Fwd: old news
Date: Sun, 10 Mar 2024 09:00:00 +0000
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=fw

--fw
Content-Type: text/plain

See below.
--fw
Content-Type: message/rfc822

From: olivia@example.com
Subject: Inner subject
Content-Type: text/plain; charset=utf-8
Content-Transfer-Encoding: quoted-printable

Nested text with caf=C3=A9.
--fw--
`, time.Date(2024, 3, 10, 9, 0, 0, 0, time.UTC), []string{FlagSeen}},
}

// newSearchFixture stores searchCorpus in a fresh mailbox.
func newSearchFixture(t *testing.T) *searchFixture {
	t.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(t.TempDir(), "search.db"), Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatalf("Open() = %v", err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close() = %v", err)
		}
	})
	if _, err := s.AddUser(ctx, "bob@localhost", "secret"); err != nil {
		t.Fatalf("AddUser() = %v", err)
	}
	rcpt, err := s.Resolve(ctx, "bob@localhost")
	if err != nil {
		t.Fatalf("Resolve() = %v", err)
	}
	for i, m := range searchCorpus {
		res, err := s.Append(ctx, rcpt.Mailbox, searchCRLF(m.raw), m.flags, m.date, 0)
		if err != nil {
			t.Fatalf("Append(message %d) = %v", i+1, err)
		}
		if res.UID != UID(i+1) {
			t.Fatalf("Append(message %d) = UID %d, want %d", i+1, res.UID, i+1)
		}
	}
	// Keywords go through StoreFlags, as a client's STORE would.
	if _, err := s.StoreFlags(ctx, rcpt.Mailbox, UIDSetOf(7), FlagsAdd, []string{FlagFlagged, "$Important", "Project_X"}, 0); err != nil {
		t.Fatalf("StoreFlags(7) = %v", err)
	}
	if _, err := s.StoreFlags(ctx, rcpt.Mailbox, UIDSetOf(2), FlagsAdd, []string{"$important"}, 0); err != nil {
		t.Fatalf("StoreFlags(2) = %v", err)
	}
	return &searchFixture{store: s, user: rcpt.User, mailbox: rcpt.Mailbox}
}

func uidsOf(nums ...UID) []UID { return nums }

func TestSearch(t *testing.T) {
	t.Parallel()
	f := newSearchFixture(t)
	ctx := context.Background()

	var modseq7 uint64
	err := f.store.Messages(ctx, f.mailbox, UIDSetOf(7), FetchOptions{}, func(m *Message) error {
		modseq7 = m.ModSeq
		return nil
	})
	if err != nil {
		t.Fatalf("Messages(7) = %v", err)
	}
	all := uidsOf(1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
	sizeOf := func(uid UID) int64 { return int64(len(searchCRLF(searchCorpus[uid-1].raw))) }
	day := func(d int) time.Time { return time.Date(2024, 3, d, 0, 0, 0, 0, time.UTC) }

	tests := []struct {
		name string
		c    *SearchCriteria
		want []UID
	}{
		{"all", &SearchCriteria{}, all},

		// UID sets, with "*" as 0.
		{"uid range", &SearchCriteria{UIDs: []UIDSet{{{2, 4}}}}, uidsOf(2, 3, 4)},
		{"uid ranges", &SearchCriteria{UIDs: []UIDSet{{{1, 1}, {5, 6}, {9, 9}}}}, uidsOf(1, 5, 6, 9)},
		{"uid sets intersect", &SearchCriteria{UIDs: []UIDSet{{{1, 5}}, {{4, 8}}}}, uidsOf(4, 5)},
		{"uid star alone", &SearchCriteria{UIDs: []UIDSet{{{0, 0}}}}, uidsOf(10)},
		{"uid n:star", &SearchCriteria{UIDs: []UIDSet{{{8, 0}}}}, uidsOf(8, 9, 10)},
		// RFC 9051 §6.4.9: 559:* includes the last message even above it.
		{"uid beyond max:star", &SearchCriteria{UIDs: []UIDSet{{{500, 0}}}}, uidsOf(10)},
		{"uid beyond max", &SearchCriteria{UIDs: []UIDSet{{{500, 600}}}}, nil},
		{"uid empty set", &SearchCriteria{UIDs: []UIDSet{{}}}, nil},
		{"uid nil set", &SearchCriteria{UIDs: []UIDSet{nil}}, nil},
		{"uid many ranges", &SearchCriteria{UIDs: []UIDSet{UIDSetOf(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35, 0)}}, uidsOf(1, 3, 5, 7, 9, 10)},

		// Flags and keywords.
		{"seen", &SearchCriteria{Flag: []string{FlagSeen}}, uidsOf(1, 9, 10)},
		{"unseen", &SearchCriteria{NotFlag: []string{FlagSeen}}, uidsOf(2, 3, 4, 5, 6, 7, 8)},
		{"flag case-insensitive", &SearchCriteria{Flag: []string{`\SEEN`}}, uidsOf(1, 9, 10)},
		{"seen and deleted", &SearchCriteria{Flag: []string{FlagSeen, FlagDeleted}}, uidsOf(9)},
		{"flagged answered", &SearchCriteria{Flag: []string{FlagFlagged, FlagAnswered}}, uidsOf(7)},
		{"draft", &SearchCriteria{Flag: []string{FlagDraft}}, uidsOf(8)},
		{"undeleted unseen", &SearchCriteria{NotFlag: []string{FlagDeleted, FlagSeen}}, uidsOf(2, 3, 4, 5, 6, 7, 8)},
		{"keyword", &SearchCriteria{Flag: []string{"$Important"}}, uidsOf(2, 7)},
		{"keyword case-insensitive", &SearchCriteria{Flag: []string{"$IMPORTANT"}}, uidsOf(2, 7)},
		{"keyword with underscore is literal", &SearchCriteria{Flag: []string{"Project_X"}}, uidsOf(7)},
		{"keyword no wildcard", &SearchCriteria{Flag: []string{"Project"}}, nil},
		{"unkeyword", &SearchCriteria{NotFlag: []string{"$Important"}}, uidsOf(1, 3, 4, 5, 6, 8, 9, 10)},
		{"recent never set", &SearchCriteria{Flag: []string{`\Recent`}}, nil},
		{"not recent is all", &SearchCriteria{NotFlag: []string{`\Recent`}}, all},
		{"malformed keyword never set", &SearchCriteria{Flag: []string{"a b"}}, nil},

		// Sizes and modseq.
		{"larger", &SearchCriteria{Larger: 2000}, uidsOf(9)},
		{"smaller", &SearchCriteria{Smaller: sizeOf(1)}, smallerThanOr(0, sizeOf(1))},
		{"larger is strict", &SearchCriteria{Larger: sizeOf(9)}, nil},
		// 2 got its keyword after 7 did.
		{"modseq", &SearchCriteria{ModSeq: modseq7}, uidsOf(2, 7)},

		// Internal dates: instants, [Since, Before).
		{"since", &SearchCriteria{Since: day(9)}, uidsOf(9, 10)},
		{"before", &SearchCriteria{Before: day(3)}, uidsOf(1)},
		{"on", &SearchCriteria{Since: day(3), Before: day(4)}, uidsOf(2, 3)},
		{"on in a zone", &SearchCriteria{
			Since:  time.Date(2024, 3, 9, 0, 0, 0, 0, time.FixedZone("UTC+2", 2*3600)),
			Before: time.Date(2024, 3, 10, 0, 0, 0, 0, time.FixedZone("UTC+2", 2*3600)),
		}, uidsOf(9)},
		{"on in another zone", &SearchCriteria{
			Since:  time.Date(2024, 3, 2, 0, 0, 0, 0, time.FixedZone("UTC-10", -10*3600)),
			Before: time.Date(2024, 3, 3, 0, 0, 0, 0, time.FixedZone("UTC-10", -10*3600)),
		}, uidsOf(2, 3)},

		{"since long ago", &SearchCriteria{Since: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}, all},
		{"before long ago", &SearchCriteria{Before: time.Date(1000, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},
		{"before the epoch", &SearchCriteria{Before: time.Unix(0, 0)}, nil},
		{"since far ahead", &SearchCriteria{Since: time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)}, nil},

		// Sent dates: the Date: field's own calendar date.
		{"senton in the sender's zone", &SearchCriteria{SentSince: day(2), SentBefore: day(3)}, uidsOf(2)},
		{"sentbefore", &SearchCriteria{SentBefore: day(3)}, uidsOf(1, 2)},
		{"sentsince", &SearchCriteria{SentSince: day(9)}, uidsOf(9, 10)},
		{"sentsince ignores the time of day", &SearchCriteria{SentSince: time.Date(2024, 3, 9, 23, 59, 0, 0, time.UTC)}, uidsOf(9, 10)},
		{"no date falls back to internal date", &SearchCriteria{SentSince: day(8), SentBefore: day(9)}, uidsOf(8)},

		// Header fields, decoded and case-insensitive.
		{"from", &SearchCriteria{Header: []HeaderMatch{{"From", "alice"}}}, uidsOf(1)},
		{"from display name", &SearchCriteria{Header: []HeaderMatch{{"From", "Alice Example"}}}, uidsOf(1)},
		{"from rfc2047 latin1", &SearchCriteria{Header: []HeaderMatch{{"From", "jörg müller"}}}, uidsOf(2)},
		{"subject rfc2047 utf8", &SearchCriteria{Header: []HeaderMatch{{"Subject", "grüße aus"}}}, uidsOf(2)},
		{"subject rfc2047 upper", &SearchCriteria{Header: []HeaderMatch{{"subject", "MÜNCHEN"}}}, uidsOf(2)},
		{"encoded word text does not match", &SearchCriteria{Header: []HeaderMatch{{"Subject", "=C3=BC"}}}, nil},
		{"to", &SearchCriteria{Header: []HeaderMatch{{"To", "heidi"}}}, uidsOf(6)},
		{"cc", &SearchCriteria{Header: []HeaderMatch{{"Cc", "carol@"}}}, uidsOf(2)},
		{"bcc none", &SearchCriteria{Header: []HeaderMatch{{"Bcc", "bob"}}}, nil},
		{"folded subject", &SearchCriteria{Header: []HeaderMatch{{"Subject", "is folded over"}}}, uidsOf(8)},
		{"header present", &SearchCriteria{Header: []HeaderMatch{{"X-Priority", ""}}}, uidsOf(7)},
		{"header absent", &SearchCriteria{Header: []HeaderMatch{{"X-Nothing", ""}}}, nil},
		{"header of a part is not the message's", &SearchCriteria{Header: []HeaderMatch{{"Content-Disposition", ""}}}, nil},
		{"header and flag", &SearchCriteria{Header: []HeaderMatch{{"To", "bob"}}, Flag: []string{FlagSeen}}, uidsOf(1, 9, 10)},

		// Body: decoded text parts only.
		{"body plain", &SearchCriteria{Body: []string{"big room"}}, uidsOf(1)},
		{"body base64", &SearchCriteria{Body: []string{"pineapple"}}, uidsOf(3)},
		{"body base64 utf8 case-insensitive", &SearchCriteria{Body: []string{"ÜBERRASCHUNG"}}, uidsOf(3)},
		{"body quoted-printable latin1", &SearchCriteria{Body: []string{"café crème"}}, uidsOf(4)},
		{"body soft line break", &SearchCriteria{Body: []string{"softwrapped"}}, uidsOf(4)},
		{"body html part", &SearchCriteria{Body: []string{"kiwi = 1 eur"}}, uidsOf(6)},
		{"body text part of multipart", &SearchCriteria{Body: []string{"attached invoice"}}, uidsOf(5)},
		{"body skips attachments", &SearchCriteria{Body: []string{"invisible-needle"}}, nil},
		{"body not header", &SearchCriteria{Body: []string{"Meeting tomorrow"}}, nil},
		{"body forwarded message", &SearchCriteria{Body: []string{"nested text with café"}}, uidsOf(10)},
		{"body two words", &SearchCriteria{Body: []string{"spring", "sale"}}, uidsOf(6)},
		{"body empty string", &SearchCriteria{Body: []string{""}}, all},
		{"body nowhere", &SearchCriteria{Body: []string{"xyzzy"}}, nil},

		// Text: header or body.
		{"text in header", &SearchCriteria{Text: []string{"meeting tomorrow"}}, uidsOf(1)},
		{"text in body", &SearchCriteria{Text: []string{"pineapple"}}, uidsOf(3)},
		{"text decoded header", &SearchCriteria{Text: []string{"grüße"}}, uidsOf(2)},
		{"text part header", &SearchCriteria{Text: []string{"report-2024.pdf"}}, uidsOf(5)},
		{"text forwarded header", &SearchCriteria{Text: []string{"inner subject"}}, uidsOf(10)},
		{"text address", &SearchCriteria{Text: []string{"niaj@example.com"}}, uidsOf(10)},

		// NOT, OR and nesting.
		{"not seen", &SearchCriteria{Not: []SearchCriteria{{Flag: []string{FlagSeen}}}}, uidsOf(2, 3, 4, 5, 6, 7, 8)},
		{"not body", &SearchCriteria{Not: []SearchCriteria{{Body: []string{"spring"}}}}, uidsOf(1, 2, 3, 4, 5, 7, 8, 9, 10)},
		{"not not", &SearchCriteria{Not: []SearchCriteria{{Not: []SearchCriteria{{Flag: []string{FlagDraft}}}}}}, uidsOf(8)},
		{"not everything", &SearchCriteria{Not: []SearchCriteria{{}}}, nil},
		{"or flags", &SearchCriteria{Or: [][2]SearchCriteria{{{Flag: []string{FlagDraft}}, {Flag: []string{FlagDeleted}}}}}, uidsOf(8, 9)},
		{"or header body", &SearchCriteria{Or: [][2]SearchCriteria{{
			{Header: []HeaderMatch{{"From", "alice"}}},
			{Body: []string{"pineapple"}},
		}}}, uidsOf(1, 3)},
		{"or with uid", &SearchCriteria{Or: [][2]SearchCriteria{{
			{UIDs: []UIDSet{{{1, 2}}}},
			{UIDs: []UIDSet{{{0, 0}}}},
		}}}, uidsOf(1, 2, 10)},
		{"or with not inside", &SearchCriteria{Or: [][2]SearchCriteria{{
			{Not: []SearchCriteria{{Larger: 300}}},
			{Flag: []string{FlagDeleted}},
		}}}, smallerThanOr(9, 301)},
		{"two ors", &SearchCriteria{Or: [][2]SearchCriteria{
			{{Flag: []string{FlagSeen}}, {Flag: []string{FlagDraft}}},
			{{UIDs: []UIDSet{{{1, 8}}}}, {Body: []string{"lorem"}}},
		}}, uidsOf(1, 8, 9)},
		{"nested not or body", &SearchCriteria{
			NotFlag: []string{FlagDeleted},
			Not: []SearchCriteria{{Or: [][2]SearchCriteria{{
				{Body: []string{"spring"}},
				{Header: []HeaderMatch{{"Subject", "münchen"}}},
			}}}},
		}, uidsOf(1, 3, 4, 5, 7, 8, 10)},
		{"or of nots on sent dates", &SearchCriteria{Or: [][2]SearchCriteria{{
			{Not: []SearchCriteria{{SentSince: day(2)}}},
			{Not: []SearchCriteria{{SentBefore: day(10)}}},
		}}}, uidsOf(1, 10)},
		{"and of everything", &SearchCriteria{
			UIDs:      []UIDSet{{{1, 0}}},
			Since:     day(1),
			Before:    day(11),
			SentSince: day(1),
			Header:    []HeaderMatch{{"To", "bob"}},
			Body:      []string{"noon"},
			Text:      []string{"alice"},
			Flag:      []string{FlagSeen},
			NotFlag:   []string{FlagDeleted},
			Smaller:   1000,
		}, uidsOf(1)},
		{"nothing matches", &SearchCriteria{Flag: []string{FlagSeen}, NotFlag: []string{FlagSeen}}, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := f.store.Search(ctx, f.mailbox, tt.c)
			if err != nil {
				t.Fatalf("Search(%+v) = %v", tt.c, err)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("Search(%+v) = %v, want %v", tt.c, got, tt.want)
			}
			// The SQL translation must agree with the Go check alone.
			if goOnly := searchInGo(t, f, tt.c); !slices.Equal(goOnly, tt.want) {
				t.Errorf("Go-only search(%+v) = %v, want %v", tt.c, goOnly, tt.want)
			}
		})
	}
}

// searchInGo evaluates c on every message of the fixture in Go only, with
// every column loaded: the reference the SQL fast paths are checked against.
func searchInGo(t *testing.T, f *searchFixture, c *SearchCriteria) []UID {
	t.Helper()
	if c == nil {
		c = &SearchCriteria{}
	}
	ctx := context.Background()
	uids, err := f.store.UIDs(ctx, f.mailbox)
	if err != nil {
		t.Fatalf("UIDs() = %v", err)
	}
	q := prepareSearch(c, uids[len(uids)-1])
	rows, err := f.store.rdb.QueryContext(ctx, `SELECT m.uid, m.flags, m.keywords, m.internal_date, m.size, m.modseq,
	b.raw, json_extract(b.parsed, '$.root'), json_extract(b.parsed, '$.env.date'), `+envelopeAddrsSQL+`
FROM messages m JOIN bodies b ON b.id = m.body_id WHERE m.mailbox_id = ? ORDER BY m.uid`, f.mailbox)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	var out []UID
	for rows.Next() {
		var m searchMessage
		if err := rows.Scan(&m.uid, &m.bits, &m.keywords, &m.date, &m.size, &m.modseq, &m.raw, &m.rootJSON, &m.sentJSON, &m.addrJSON); err != nil {
			t.Fatalf("scan: %v", err)
		}
		if q.match(&m) {
			out = append(out, m.uid)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
	return out
}

// smallerThanOr lists the corpus UIDs below size bytes, plus also.
func smallerThanOr(also UID, size int64) []UID {
	var out []UID
	for i, m := range searchCorpus {
		uid := UID(i + 1)
		if int64(len(searchCRLF(m.raw))) < size || uid == also {
			out = append(out, uid)
		}
	}
	return out
}

func TestSearchEmptyMailbox(t *testing.T) {
	t.Parallel()
	f := newSearchFixture(t)
	ctx := context.Background()
	mb, err := f.store.CreateMailbox(ctx, f.user, "Empty", "")
	if err != nil {
		t.Fatalf("CreateMailbox() = %v", err)
	}
	for _, c := range []*SearchCriteria{
		{},
		{UIDs: []UIDSet{{{0, 0}}}},
		{UIDs: []UIDSet{{{1, 0}}}},
		{Body: []string{"x"}},
		{Not: []SearchCriteria{{Flag: []string{FlagSeen}}}},
	} {
		got, err := f.store.Search(ctx, mb.ID, c)
		if err != nil || len(got) != 0 {
			t.Errorf("Search(empty mailbox, %+v) = %v, %v, want none", c, got, err)
		}
	}
	// Another mailbox's messages never leak into a search.
	got, err := f.store.Search(ctx, mb.ID+1000, &SearchCriteria{})
	if err != nil || len(got) != 0 {
		t.Errorf("Search(unknown mailbox) = %v, %v, want none", got, err)
	}
}

func TestSearchAfterFlagChange(t *testing.T) {
	t.Parallel()
	f := newSearchFixture(t)
	ctx := context.Background()
	if _, err := f.store.StoreFlags(ctx, f.mailbox, UIDSet{{Start: 1, Stop: 0}}, FlagsAdd, []string{FlagSeen}, 0); err != nil {
		t.Fatalf("StoreFlags() = %v", err)
	}
	got, err := f.store.Search(ctx, f.mailbox, &SearchCriteria{NotFlag: []string{FlagSeen}})
	if err != nil || len(got) != 0 {
		t.Errorf("Search(UNSEEN) after marking all seen = %v, %v, want none", got, err)
	}
	if _, err := f.store.Expunge(ctx, f.mailbox, AllUIDs(), 0); err != nil {
		t.Fatalf("Expunge() = %v", err)
	}
	got, err = f.store.Search(ctx, f.mailbox, &SearchCriteria{UIDs: []UIDSet{{{0, 0}}}})
	if err != nil || !slices.Equal(got, uidsOf(10)) {
		t.Errorf("Search(UID *) after expunging 9 = %v, %v, want [10]", got, err)
	}
	got, err = f.store.Search(ctx, f.mailbox, &SearchCriteria{Flag: []string{FlagDeleted}})
	if err != nil || len(got) != 0 {
		t.Errorf("Search(DELETED) after expunge = %v, %v, want none", got, err)
	}
}

func TestSearchCancelled(t *testing.T) {
	t.Parallel()
	f := newSearchFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := f.store.Search(ctx, f.mailbox, &SearchCriteria{Body: []string{"x"}}); err == nil {
		t.Errorf("Search(cancelled ctx) = nil error, want one")
	}
}

// TestSearchLargeCriteria runs criteria beyond the SQL bounds (nesting,
// parameters), which fall back to the Go check.
func TestSearchLargeCriteria(t *testing.T) {
	t.Parallel()
	f := newSearchFixture(t)
	ctx := context.Background()

	deep := SearchCriteria{Flag: []string{FlagSeen}}
	for range 200 { // an even number of NOTs
		deep = SearchCriteria{Not: []SearchCriteria{deep}}
	}
	wide := SearchCriteria{}
	for i := range 3000 {
		wide.Or = append(wide.Or, [2]SearchCriteria{
			{UIDs: []UIDSet{{{1, UID(10 + i)}}}}, // every message
			{Flag: []string{fmt.Sprintf("kw%d", i)}},
		})
	}
	wide.Or = append(wide.Or, [2]SearchCriteria{{Flag: []string{FlagSeen}}, {Flag: []string{FlagDraft}}})
	for _, tt := range []struct {
		name string
		c    *SearchCriteria
		want []UID
	}{
		{"200 nested NOTs", &deep, uidsOf(1, 9, 10)},
		{"3000 ORs", &wide, uidsOf(1, 8, 9, 10)},
	} {
		got, err := f.store.Search(ctx, f.mailbox, tt.c)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("Search(%s) = %v, %v, want %v", tt.name, got, err, tt.want)
		}
	}
}

// TestSearchSQLIsParameterised checks that no caller text reaches the SQL
// text: it may only travel as a bound argument.
func TestSearchSQLIsParameterised(t *testing.T) {
	t.Parallel()
	evil := `x'); DROP TABLE messages; --`
	c := &SearchCriteria{
		Flag:    []string{evil, "kw'1"},
		NotFlag: []string{"kw'2"},
		Header:  []HeaderMatch{{evil, evil}},
		Body:    []string{evil},
		Not:     []SearchCriteria{{Flag: []string{"kw'3"}}},
		Or:      [][2]SearchCriteria{{{Flag: []string{"kw'4"}}, {Text: []string{evil}}}},
	}
	expr, args, _ := prepareSearch(c, 10).sql(0)
	for _, bad := range []string{"'", "DROP", "kw"} {
		if strings.Contains(expr, bad) {
			t.Errorf("sql() = %q contains caller text %q", expr, bad)
		}
	}
	if n := strings.Count(expr, "?"); n != len(args) {
		t.Errorf("sql() has %d placeholders and %d arguments", n, len(args))
	}
	f := newSearchFixture(t)
	if _, err := f.store.Search(context.Background(), f.mailbox, c); err != nil {
		t.Errorf("Search(hostile strings) = %v", err)
	}
}

// TestSearchSQLExact pins which criteria SQL answers alone, without
// reading any body.
func TestSearchSQLExact(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		c     SearchCriteria
		exact bool
	}{
		{"all", SearchCriteria{}, true},
		{"unseen", SearchCriteria{NotFlag: []string{FlagSeen}}, true},
		{"keyword", SearchCriteria{Flag: []string{"$Junk"}}, true},
		{"uid star", SearchCriteria{UIDs: []UIDSet{{{5, 0}}}}, true},
		{"many uid ranges", SearchCriteria{UIDs: []UIDSet{UIDSetOf(1, 3, 5, 7, 9, 11, 13, 15, 17, 19, 21, 23, 25, 27, 29, 31, 33, 35)}}, false},
		{"dates sizes modseq", SearchCriteria{Since: time.Unix(1, 0), Before: time.Unix(2, 0), Larger: 1, Smaller: 9, ModSeq: 3}, true},
		{"or of flags and uids", SearchCriteria{Or: [][2]SearchCriteria{{{Flag: []string{FlagSeen}}, {UIDs: []UIDSet{{{1, 2}, {4, 4}}}}}}}, true},
		{"not of or", SearchCriteria{Not: []SearchCriteria{{Or: [][2]SearchCriteria{{{Larger: 5}, {Flag: []string{"x"}}}}}}}, true},
		{"header", SearchCriteria{Header: []HeaderMatch{{"From", "a"}}}, false},
		{"sent date", SearchCriteria{SentSince: time.Unix(1, 0)}, false},
		{"not body", SearchCriteria{Not: []SearchCriteria{{Body: []string{"a"}}}}, false},
		{"or with text", SearchCriteria{Or: [][2]SearchCriteria{{{Flag: []string{FlagSeen}}, {Text: []string{"a"}}}}}, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			expr, args, exact := prepareSearch(&tt.c, 100).sql(0)
			if exact != tt.exact {
				t.Errorf("sql(%+v) = %q exact %v, want exact %v", tt.c, expr, exact, tt.exact)
			}
			if n := strings.Count(expr, "?"); n != len(args) {
				t.Errorf("sql(%+v) = %q with %d arguments", tt.c, expr, len(args))
			}
		})
	}
	// The UNSEEN test is literal, so that a partial index on it can serve.
	if expr, _, _ := prepareSearch(&SearchCriteria{NotFlag: []string{FlagSeen}}, 0).sql(0); expr != "m.flags & 1 = 0" {
		t.Errorf("sql(UNSEEN) = %q, want %q", expr, "m.flags & 1 = 0")
	}
}

// TestSearchPartMatchesParsed checks that what Search cuts out of the
// stored JSON (the MIME tree, the Date) matches what message.Parse found.
func TestSearchPartMatchesParsed(t *testing.T) {
	t.Parallel()
	f := newSearchFixture(t)
	var check func(name string, got searchPart, want message.Part)
	check = func(name string, got searchPart, want message.Part) {
		t.Helper()
		if got.Type != want.Type || got.Encoding != want.Encoding || got.Params.Charset != want.Params["charset"] ||
			got.HeaderStart != want.HeaderStart || got.BodyStart != want.BodyStart || got.End != want.End ||
			len(got.Parts) != len(want.Parts) {
			t.Fatalf("%s: stored part = %+v, want %+v", name, got, want)
		}
		for i := range got.Parts {
			check(fmt.Sprintf("%s.%d", name, i+1), got.Parts[i], want.Parts[i])
		}
	}
	rows, err := f.store.rdb.QueryContext(context.Background(), `SELECT m.uid, b.raw, json_extract(b.parsed, '$.root'), json_extract(b.parsed, '$.env.date')
FROM messages m JOIN bodies b ON b.id = m.body_id WHERE m.mailbox_id = ? ORDER BY m.uid`, f.mailbox)
	if err != nil {
		t.Fatalf("query: %v", err)
	}
	defer rows.Close()
	for rows.Next() {
		var m searchMessage
		if err := rows.Scan(&m.uid, &m.raw, &m.rootJSON, &m.sentJSON); err != nil {
			t.Fatalf("scan: %v", err)
		}
		p := message.Parse(m.raw)
		name := fmt.Sprintf("message %d", m.uid)
		root := m.getRoot()
		if root == nil {
			t.Fatalf("%s: no stored MIME tree in %q", name, m.rootJSON)
		}
		check(name, *root, p.Root)
		want := 0
		if !p.Envelope.Date.IsZero() {
			want = civilDay(p.Envelope.Date)
		}
		if got := m.sentDate(); want != 0 && got != want {
			t.Errorf("%s: sent date = %d (from %v), want %d", name, got, m.sentJSON, want)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("rows: %v", err)
	}
}

// loadSearchBench fills one mailbox with n small messages through Append,
// from several goroutines so that the writer's group commit batches them;
// every 100th is unseen and every 1000th mentions "kumquat".
func loadSearchBench(b *testing.B, n int) (*Store, MailboxID) {
	b.Helper()
	ctx := context.Background()
	s, err := Open(ctx, filepath.Join(b.TempDir(), "bench.db"), Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		b.Fatalf("Open() = %v", err)
	}
	b.Cleanup(func() {
		if err := s.Close(); err != nil {
			b.Errorf("Close() = %v", err)
		}
	})
	if _, err := s.AddUser(ctx, "bench@localhost", "secret"); err != nil {
		b.Fatalf("AddUser() = %v", err)
	}
	rcpt, err := s.Resolve(ctx, "bench@localhost")
	if err != nil {
		b.Fatalf("Resolve() = %v", err)
	}
	words := []string{"apple", "banana", "cherry", "damson", "elder", "fig", "grape", "hazel"}
	const workers = 64
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for i := w; i < n; i += workers {
				word := words[rng.IntN(len(words))]
				if i%1000 == 0 {
					word = "kumquat"
				}
				raw := fmt.Appendf(nil, "From: sender%d@example.org\r\nTo: bench@localhost\r\nSubject: note %d about %s\r\nDate: Mon, 04 Mar 2024 09:00:00 +0000\r\nMessage-ID: <%d@example.org>\r\n\r\nHello,\r\nthis is message %d; it talks about %s at some length.\r\nBye.\r\n",
					i%97, i, words[i%len(words)], i, i, word)
				var flags []string
				if i%100 != 0 {
					flags = []string{FlagSeen}
				}
				if _, err := s.Append(ctx, rcpt.Mailbox, raw, flags, time.Time{}, 0); err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		b.Fatalf("Append() = %v", err)
	}
	return s, rcpt.Mailbox
}

// benchMessages is the size of the benchmark mailbox.
const benchMessages = 100_000

// BenchmarkSearchUnseen100k measures UID SEARCH UNSEEN in a mailbox of
// 100,000 messages of which 1% are unseen: one SQL query, no bodies.
func BenchmarkSearchUnseen100k(b *testing.B) {
	s, mb := loadSearchBench(b, benchMessages)
	ctx := context.Background()
	c := &SearchCriteria{NotFlag: []string{FlagSeen}}
	var got []UID
	for b.Loop() {
		var err error
		if got, err = s.Search(ctx, mb, c); err != nil {
			b.Fatalf("Search(UNSEEN) = %v", err)
		}
	}
	b.ReportMetric(float64(benchMessages)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if len(got) != benchMessages/100 {
		b.Fatalf("Search(UNSEEN) = %d messages, want %d", len(got), benchMessages/100)
	}
}

// BenchmarkSearchText measures SEARCH TEXT for a word that 0.1% of the
// 100,000 messages hold in their body: every header and body is read.
func BenchmarkSearchText(b *testing.B) {
	s, mb := loadSearchBench(b, benchMessages)
	ctx := context.Background()
	c := &SearchCriteria{Text: []string{"kumquat"}}
	var got []UID
	for b.Loop() {
		var err error
		if got, err = s.Search(ctx, mb, c); err != nil {
			b.Fatalf("Search(TEXT kumquat) = %v", err)
		}
	}
	b.ReportMetric(float64(benchMessages)*float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if len(got) != benchMessages/1000 {
		b.Fatalf("Search(TEXT kumquat) = %d messages, want %d", len(got), benchMessages/1000)
	}
}

// A nil criteria is an error, not "every message": "all" is said with the
// zero SearchCriteria, so a criteria lost on the way cannot widen a search.
func TestSearchNilCriteria(t *testing.T) {
	t.Parallel()
	f := newSearchFixture(t)
	if got, err := f.store.Search(context.Background(), f.mailbox, nil); err == nil {
		t.Errorf("Search(nil) = %v, nil; want an error", got)
	}
}
