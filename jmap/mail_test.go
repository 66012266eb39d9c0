package jmap

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"pushmail/mailstore"
)

const multipartMessage = `From: "Joe Q. Public" <joe@example.org>
Sender: list@example.org
To: Alice <alice@localhost>, Team: bob@localhost, carol@example.org;
Cc: dave@example.org
Subject: =?UTF-8?Q?Caf=C3=A9?= report
Date: Tue, 1 Jul 2025 10:00:00 +0200
Message-ID: <m1@example.org>
In-Reply-To: <m0@example.org>
References: <a@example.org> <m0@example.org>
List-Post: <mailto:list@example.org>
MIME-Version: 1.0
Content-Type: multipart/mixed; boundary=outer

--outer
Content-Type: multipart/alternative; boundary=inner

--inner
Content-Type: text/plain; charset=utf-8

Hello Alice, the quarterly numbers are in.
--inner
Content-Type: text/html; charset=utf-8

<p>Hello <b>Alice</b>, the quarterly numbers are in.</p>
--inner--
--outer
Content-Type: application/pdf; name=report.pdf
Content-Disposition: attachment; filename=report.pdf
Content-Transfer-Encoding: base64

JVBERi0xLjQK
--outer--
`

// emailIDs returns alice's email ids, by an Email/query with no filter.
func (e *testEnv) emailIDs(t *testing.T, filter map[string]any) []string {
	t.Helper()
	args := map[string]any{}
	if filter != nil {
		args["filter"] = filter
	}
	return strs(e.call1(t, "Email/query", args)["ids"])
}

// TestEmailGet: RFC 8621 §4.2's properties of one multipart message, as
// stored at delivery: convenience headers, parsed header forms, the
// body structure and textBody/htmlBody/attachments by §4.1.4's
// algorithm, body values and the preview.
func TestEmailGet(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	env.deliver(t, multipartMessage)
	ids := env.emailIDs(t, nil)
	if len(ids) != 1 {
		t.Fatalf("Email/query ids %v; want one", ids)
	}
	res := env.call1(t, "Email/get", map[string]any{"ids": ids, "fetchTextBodyValues": true, "maxBodyValueBytes": 11,
		"properties": []string{"id", "blobId", "threadId", "mailboxIds", "keywords", "size", "receivedAt", "messageId", "inReplyTo",
			"references", "sender", "from", "to", "cc", "bcc", "replyTo", "subject", "sentAt", "hasAttachment", "preview",
			"bodyValues", "textBody", "htmlBody", "attachments", "bodyStructure",
			"header:List-Post:asURLs", "header:To:asGroupedAddresses", "header:Subject", "header:Date:asDate", "header:X-None:all"}})
	list, _ := res["list"].([]any)
	if len(list) != 1 {
		t.Fatalf("Email/get: %v", res)
	}
	m := list[0].(map[string]any)
	inbox := mailboxID(env.user.Mailbox)
	check := func(prop string, want string) {
		t.Helper()
		if got := jsonString(m[prop]); got != want {
			t.Errorf("%s = %s; want %s", prop, got, want)
		}
	}
	check("mailboxIds", `{"`+inbox+`":true}`)
	check("keywords", `{}`)
	check("messageId", `["m1@example.org"]`)
	check("inReplyTo", `["m0@example.org"]`)
	check("references", `["a@example.org","m0@example.org"]`)
	check("sender", `[{"email":"list@example.org","name":null}]`)
	check("from", `[{"email":"joe@example.org","name":"Joe Q. Public"}]`)
	check("to", `[{"email":"alice@localhost","name":"Alice"},{"email":"bob@localhost","name":null},{"email":"carol@example.org","name":null}]`)
	check("cc", `[{"email":"dave@example.org","name":null}]`)
	check("bcc", `null`)
	check("subject", `"Café report"`)
	check("sentAt", `"2025-07-01T10:00:00+02:00"`)
	check("hasAttachment", `true`)
	check("preview", `"Hello Alice, the quarterly numbers are in."`)
	check("header:List-Post:asURLs", `["mailto:list@example.org"]`)
	check("header:To:asGroupedAddresses", `[{"addresses":[{"email":"alice@localhost","name":"Alice"}],"name":null},{"addresses":[{"email":"bob@localhost","name":null},{"email":"carol@example.org","name":null}],"name":"Team"}]`)
	check("header:Subject", `" =?UTF-8?Q?Caf=C3=A9?= report\r\n"`)
	check("header:Date:asDate", `"2025-07-01T10:00:00+02:00"`)
	check("header:X-None:all", `[]`)
	if m["threadId"] != "T"+strings.TrimPrefix(ids[0], "E") || m["blobId"] != "G"+strings.TrimPrefix(ids[0], "E") {
		t.Errorf("threadId %v, blobId %v for %s", m["threadId"], m["blobId"], ids[0])
	}
	parts := func(prop string) string {
		var out []string
		for _, p := range m[prop].([]any) {
			pm := p.(map[string]any)
			out = append(out, pm["partId"].(string)+":"+pm["type"].(string))
		}
		return strings.Join(out, ",")
	}
	if got := parts("textBody"); got != "1.1:text/plain" {
		t.Errorf("textBody %s; want 1.1:text/plain", got)
	}
	if got := parts("htmlBody"); got != "1.2:text/html" {
		t.Errorf("htmlBody %s; want 1.2:text/html", got)
	}
	if got := parts("attachments"); got != "2:application/pdf" {
		t.Errorf("attachments %s; want 2:application/pdf", got)
	}
	att := m["attachments"].([]any)[0].(map[string]any)
	if att["name"] != "report.pdf" || att["size"] != float64(9) || att["disposition"] != "attachment" {
		t.Errorf("attachment %v; want report.pdf, 9 bytes decoded, attachment", att)
	}
	check("bodyValues", `{"1.1":{"isEncodingProblem":false,"isTruncated":true,"value":"Hello Alice"}}`)
	bs := m["bodyStructure"].(map[string]any)
	if bs["type"] != "multipart/mixed" || len(bs["subParts"].([]any)) != 2 {
		t.Errorf("bodyStructure %v", jsonString(bs))
	}

	// The attachment's blob downloads decoded, with the asked type.
	status, body := env.do(t, "GET", "/jmap/download/"+env.account()+"/"+att["blobId"].(string)+"/r.pdf?accept=application/pdf", testUser, testPassword, nil)
	if status != http.StatusOK || string(body) != "%PDF-1.4\n" {
		t.Errorf("download attachment: %d %q", status, body)
	}
	// The email's blob is the message as stored.
	status, body = env.do(t, "GET", "/jmap/download/"+env.account()+"/"+m["blobId"].(string)+"/m.eml", testUser, testPassword, nil)
	if status != http.StatusOK || !strings.Contains(string(body), "Message-ID: <m1@example.org>") || int64(len(body)) != int64(m["size"].(float64)) {
		t.Errorf("download email: %d, %d bytes, size %v", status, len(body), m["size"])
	}
	// Bob cannot download alice's blob, even naming his own account.
	if status, _ := env.do(t, "GET", "/jmap/download/"+accountID(env.other.User)+"/"+m["blobId"].(string)+"/m.eml", "bob@localhost", testPassword, nil); status != http.StatusNotFound {
		t.Errorf("bob downloading alice's blob: %d; want 404", status)
	}
}

func TestEmailQuery(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	ctx := context.Background()
	work, err := env.store.CreateMailbox(ctx, env.user.User, "Work", "")
	if err != nil {
		t.Fatal(err)
	}
	msgs := []string{
		"From: Zed <zed@example.org>\nTo: alice@localhost\nSubject: Re: lunch\n\nshall we eat\n",
		"From: Amy <amy@example.org>\nTo: bob@example.org\nSubject: budget\n\nthe numbers " + strings.Repeat("x", 500) + "\n",
		"From: Max <max@example.org>\nTo: alice@localhost\nSubject: meeting\n\nlunch at noon\n",
	}
	var ids []mailstore.EmailID
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i, raw := range msgs {
		mb := env.user.Mailbox
		if i == 2 {
			mb = work.ID
		}
		flags := []string{}
		if i == 0 {
			flags = append(flags, mailstore.FlagSeen, "$important")
		}
		id, err := env.store.ImportEmail(ctx, env.user.User, []byte(strings.ReplaceAll(raw, "\n", "\r\n")), []mailstore.MailboxID{mb}, flags, base.Add(time.Duration(i)*time.Hour))
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, id)
	}
	e := func(i int) string { return emailID(ids[i]) }
	inbox, workID := mailboxID(env.user.Mailbox), mailboxID(work.ID)
	for _, tc := range []struct {
		name   string
		filter map[string]any
		sort   []any
		want   []string
	}{
		{"all by receivedAt", nil, nil, []string{e(0), e(1), e(2)}},
		{"inMailbox", map[string]any{"inMailbox": inbox}, nil, []string{e(0), e(1)}},
		{"inMailboxOtherThan", map[string]any{"inMailboxOtherThan": []string{inbox}}, nil, []string{e(2)}},
		{"text", map[string]any{"text": "lunch"}, nil, []string{e(0), e(2)}},
		{"body", map[string]any{"body": "lunch"}, nil, []string{e(2)}},
		{"subject", map[string]any{"subject": "LUNCH"}, nil, []string{e(0)}},
		{"from", map[string]any{"from": "amy"}, nil, []string{e(1)}},
		{"to", map[string]any{"to": "alice@localhost"}, nil, []string{e(0), e(2)}},
		{"hasKeyword $seen", map[string]any{"hasKeyword": "$seen"}, nil, []string{e(0)}},
		{"hasKeyword custom", map[string]any{"hasKeyword": "$important"}, nil, []string{e(0)}},
		{"notKeyword", map[string]any{"notKeyword": "$seen"}, nil, []string{e(1), e(2)}},
		{"before", map[string]any{"before": "2025-01-01T01:00:00Z"}, nil, []string{e(0)}},
		{"after", map[string]any{"after": "2025-01-01T01:00:00Z"}, nil, []string{e(1), e(2)}},
		{"minSize", map[string]any{"minSize": 400}, nil, []string{e(1)}},
		{"maxSize", map[string]any{"maxSize": 400}, nil, []string{e(0), e(2)}},
		{"OR", map[string]any{"operator": "OR", "conditions": []any{map[string]any{"from": "amy"}, map[string]any{"from": "max"}}}, nil, []string{e(1), e(2)}},
		{"AND", map[string]any{"operator": "AND", "conditions": []any{map[string]any{"text": "lunch"}, map[string]any{"inMailbox": workID}}}, nil, []string{e(2)}},
		{"NOT", map[string]any{"operator": "NOT", "conditions": []any{map[string]any{"text": "lunch"}}}, nil, []string{e(1)}},
		{"sort size desc", nil, []any{map[string]any{"property": "size", "isAscending": false}}, []string{e(1), e(0), e(2)}},
		{"sort from", nil, []any{map[string]any{"property": "from"}}, []string{e(1), e(2), e(0)}},
		{"sort subject (base subject)", nil, []any{map[string]any{"property": "subject"}}, []string{e(1), e(0), e(2)}},
	} {
		args := map[string]any{"calculateTotal": true}
		if tc.filter != nil {
			args["filter"] = tc.filter
		}
		if tc.sort != nil {
			args["sort"] = tc.sort
		}
		res := env.call1(t, "Email/query", args)
		if got := strs(res["ids"]); !slices.Equal(got, tc.want) || res["total"] != float64(len(tc.want)) {
			t.Errorf("%s: ids %v total %v; want %v", tc.name, got, res["total"], tc.want)
		}
	}
	// position, anchor and limit (RFC 8620 §5.5).
	res := env.call1(t, "Email/query", map[string]any{"position": 1, "limit": 1})
	if got := strs(res["ids"]); !slices.Equal(got, []string{e(1)}) || res["position"] != float64(1) {
		t.Errorf("position 1 limit 1: %v", res)
	}
	res = env.call1(t, "Email/query", map[string]any{"anchor": e(2), "anchorOffset": -1, "limit": 5})
	if got := strs(res["ids"]); !slices.Equal(got, []string{e(1), e(2)}) {
		t.Errorf("anchor: %v", res)
	}
	if got := env.callErr(t, "Email/query", map[string]any{"accountId": env.account(), "anchor": "E999999"}); got != "anchorNotFound" {
		t.Errorf("unknown anchor: %q; want anchorNotFound", got)
	}
	// SearchSnippet/get marks the terms.
	res = env.call1(t, "SearchSnippet/get", map[string]any{"emailIds": []string{e(0), e(1)}, "filter": map[string]any{"text": "lunch"}})
	snips, _ := res["list"].([]any)
	if len(snips) != 2 || snips[0].(map[string]any)["subject"] != "Re: <mark>lunch</mark>" || snips[1].(map[string]any)["subject"] != nil {
		t.Errorf("SearchSnippet/get: %s", jsonString(res))
	}
}

// imapLogin returns an IMAP client of env's server logged in as the
// test user, closed when the test ends.
func imapLogin(t *testing.T, env *testEnv) *imapclient.Client {
	t.Helper()
	c, err := imapclient.DialInsecure(env.imapAddr, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	if err := c.Login(testUser, testPassword).Wait(); err != nil {
		t.Fatal(err)
	}
	return c
}

// imapFlags returns the UIDs and flags of a mailbox over IMAP.
func imapFlags(t *testing.T, env *testEnv, mailbox string) map[imap.UID][]imap.Flag {
	t.Helper()
	c := imapLogin(t, env)
	sel, err := c.Select(mailbox, &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("SELECT %s: %v", mailbox, err)
	}
	if sel.NumMessages == 0 {
		return map[imap.UID][]imap.Flag{}
	}
	out := map[imap.UID][]imap.Flag{}
	var all imap.UIDSet
	all.AddRange(1, 0)
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatalf("FETCH: %v", err)
	}
	for _, m := range msgs {
		// \Recent is the IMAP session's, not the message's.
		out[m.UID] = slices.DeleteFunc(m.Flags, func(f imap.Flag) bool { return f == `\Recent` })
	}
	if err := c.Logout().Wait(); err != nil {
		t.Errorf("LOGOUT: %v", err)
	}
	return out
}

// TestEmailSetOverIMAP: JMAP and IMAP see each other's writes, and
// Email/set and Mailbox/set destroy change exactly what was asked.
func TestEmailSetOverIMAP(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	ctx := context.Background()
	for i := range 3 {
		env.deliver(t, "From: a@example.org\nSubject: m"+string(rune('0'+i))+"\n\nbody\n")
	}
	ids := env.emailIDs(t, nil)
	if len(ids) != 3 {
		t.Fatalf("ids %v", ids)
	}
	state0 := env.call1(t, "Email/get", map[string]any{"ids": []string{}})["state"].(string)

	// JMAP sets $seen by patch path: IMAP sees \Seen on UID 1 only.
	res := env.call1(t, "Email/set", map[string]any{"update": map[string]any{ids[0]: map[string]any{"keywords/$seen": true}}})
	if _, ok := res["updated"].(map[string]any)[ids[0]]; !ok {
		t.Fatalf("Email/set keywords/$seen: %s", jsonString(res))
	}
	flags := imapFlags(t, env, "INBOX")
	if !slices.Contains(flags[1], imap.FlagSeen) || slices.Contains(flags[2], imap.FlagSeen) || len(flags) != 3 {
		t.Errorf("IMAP flags after JMAP $seen: %v; want \\Seen on UID 1 only", flags)
	}

	// IMAP STORE \Flagged on UID 2: JMAP's Email/changes reports it, and
	// Email/get shows $flagged.
	if _, err := env.store.StoreFlags(ctx, env.user.Mailbox, mailstore.UIDSetOf(2), mailstore.FlagsAdd, []string{mailstore.FlagFlagged}, 0); err != nil {
		t.Fatal(err)
	}
	ch := env.call1(t, "Email/changes", map[string]any{"sinceState": state0})
	if got := strs(ch["updated"]); !slices.Equal(got, []string{ids[0], ids[1]}) || len(strs(ch["created"])) != 0 {
		t.Errorf("Email/changes after JMAP and IMAP flag changes: %s", jsonString(ch))
	}
	got := env.call1(t, "Email/get", map[string]any{"ids": []string{ids[1]}, "properties": []string{"keywords"}})
	if jsonString(got["list"]) != `[{"id":"`+ids[1]+`","keywords":{"$flagged":true}}]` {
		t.Errorf("Email/get after IMAP STORE: %s", jsonString(got))
	}

	// Whole keywords replace: $flagged off, a custom keyword on.
	env.call1(t, "Email/set", map[string]any{"update": map[string]any{ids[1]: map[string]any{"keywords": map[string]bool{"$label1": true}}}})
	if flags := imapFlags(t, env, "INBOX"); !slices.Equal(flags[2], []imap.Flag{"$label1"}) {
		t.Errorf("IMAP flags of UID 2 after keywords replace: %v; want [$label1]", flags[2])
	}

	// Destroy one email: exactly UID 2 goes.
	res = env.call1(t, "Email/set", map[string]any{"destroy": []string{ids[1], "E999999"}})
	if !slices.Equal(strs(res["destroyed"]), []string{ids[1]}) || res["notDestroyed"].(map[string]any)["E999999"] == nil {
		t.Errorf("Email/set destroy: %s", jsonString(res))
	}
	if flags := imapFlags(t, env, "INBOX"); len(flags) != 2 || flags[1] == nil || flags[3] == nil {
		t.Errorf("IMAP INBOX after destroying UID 2: %v; want UIDs 1 and 3", flags)
	}

	// Move email 0 to a new mailbox by mailboxIds: it leaves INBOX,
	// keeps \Seen in Work.
	res = env.call1(t, "Mailbox/set", map[string]any{"create": map[string]any{"w": map[string]any{"name": "Work"}}})
	work := res["created"].(map[string]any)["w"].(map[string]any)["id"].(string)
	env.call1(t, "Email/set", map[string]any{"update": map[string]any{ids[0]: map[string]any{"mailboxIds": map[string]bool{work: true}}}})
	if flags := imapFlags(t, env, "INBOX"); len(flags) != 1 || flags[3] == nil {
		t.Errorf("IMAP INBOX after the move: %v; want UID 3 only", flags)
	}
	if flags := imapFlags(t, env, "Work"); len(flags) != 1 || !slices.Contains(flags[1], imap.FlagSeen) {
		t.Errorf("IMAP Work after the move: %v; want one \\Seen message", flags)
	}
	// An email must stay in a mailbox.
	res = env.call1(t, "Email/set", map[string]any{"update": map[string]any{ids[0]: map[string]any{"mailboxIds/" + work: nil}}})
	if res["notUpdated"] == nil {
		t.Errorf("removing an email's last mailbox: %s; want notUpdated", jsonString(res))
	}

	// Mailbox/set destroy: refused while Work holds mail, then with
	// onDestroyRemoveEmails it goes with its one email; INBOX is as it was.
	res = env.call1(t, "Mailbox/set", map[string]any{"destroy": []string{work}})
	if e, _ := res["notDestroyed"].(map[string]any)[work].(map[string]any); e["type"] != "mailboxHasEmail" {
		t.Errorf("destroying a mailbox with mail: %s; want mailboxHasEmail", jsonString(res))
	}
	res = env.call1(t, "Mailbox/set", map[string]any{"destroy": []string{work}, "onDestroyRemoveEmails": true})
	if !slices.Equal(strs(res["destroyed"]), []string{work}) {
		t.Errorf("destroy with onDestroyRemoveEmails: %s", jsonString(res))
	}
	if flags := imapFlags(t, env, "INBOX"); len(flags) != 1 || flags[3] == nil {
		t.Errorf("IMAP INBOX after destroying Work: %v; want UID 3 untouched", flags)
	}
	if refs, err := env.store.AccountMessages(ctx, env.user.User); err != nil || len(refs) != 1 {
		t.Errorf("store holds %d messages (%v); want 1", len(refs), err)
	}
	if got := env.emailIDs(t, nil); !slices.Equal(got, []string{ids[2]}) {
		t.Errorf("Email/query after all: %v; want [%s]", got, ids[2])
	}
}

// TestEmailQueryByDate: the index path (one mailbox by receivedAt, a
// position and a limit) answers as the general path does, \Deleted
// messages left out of both, ties by id in the sort's direction.
func TestEmailQueryByDate(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	ctx := context.Background()
	base := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 12 {
		// Pairs share a date: the ties must come out the same way.
		if _, err := env.store.ImportEmail(ctx, env.user.User, []byte(fmt.Sprintf("Subject: %d\r\n\r\nx\r\n", i)), []mailstore.MailboxID{env.user.Mailbox}, nil, base.Add(time.Duration(i/2)*time.Hour)); err != nil {
			t.Fatal(err)
		}
	}
	inbox := mailboxID(env.user.Mailbox)
	before := env.call1(t, "Mailbox/get", map[string]any{"ids": []string{inbox}, "properties": []string{"totalEmails", "unreadEmails"}})
	if _, err := env.store.StoreFlags(ctx, env.user.Mailbox, mailstore.UIDSetOf(3, 8), mailstore.FlagsAdd, []string{mailstore.FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	// RFC 8621 §4.1.1: \Deleted messages are not counted, and setting
	// the flag changes the mailbox (its state moves, as a count change).
	after := env.call1(t, "Mailbox/get", map[string]any{"ids": []string{inbox}, "properties": []string{"totalEmails", "unreadEmails"}})
	if got := jsonString(after["list"]); got != `[{"id":"`+inbox+`","totalEmails":10,"unreadEmails":10}]` || after["state"] == before["state"] {
		t.Errorf("INBOX after \\Deleted on two: %s, state %v -> %v; want 10 and 10, a new state", got, before["state"], after["state"])
	}
	ch := env.call1(t, "Mailbox/changes", map[string]any{"sinceState": before["state"]})
	if !slices.Equal(strs(ch["updated"]), []string{inbox}) || len(strs(ch["updatedProperties"])) != 4 {
		t.Errorf("Mailbox/changes after \\Deleted: %s; want INBOX, counts only", jsonString(ch))
	}
	for _, asc := range []bool{true, false} {
		for _, pos := range []int{0, 3, 9, 20} {
			sort := []any{map[string]any{"property": "receivedAt", "isAscending": asc}}
			fast := env.call1(t, "Email/query", map[string]any{"filter": map[string]any{"inMailbox": inbox}, "sort": sort, "position": pos, "limit": 4, "calculateTotal": true})
			general := env.call1(t, "Email/query", map[string]any{"filter": map[string]any{"operator": "AND", "conditions": []any{map[string]any{"inMailbox": inbox}}},
				"sort": sort, "position": pos, "limit": 4, "calculateTotal": true})
			if jsonString(fast["ids"]) != jsonString(general["ids"]) || fast["total"] != float64(10) || general["total"] != float64(10) {
				t.Errorf("asc %v position %d: index path %v (total %v), general %v (total %v); want equal, total 10", asc, pos, fast["ids"], fast["total"], general["ids"], general["total"])
			}
		}
	}
}

// TestEmailSetCreate: Email/set create writes the message from its
// properties (RFC 8621 §4.6); Email/get reads back what was given, and
// IMAP sees the message in Drafts with \Draft.
func TestEmailSetCreate(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	drafts, err := env.store.Mailbox(t.Context(), env.user.User, "Drafts")
	if err != nil {
		t.Fatal(err)
	}
	res := env.call1(t, "Email/set", map[string]any{"create": map[string]any{
		"d": map[string]any{
			"mailboxIds": map[string]bool{mailboxID(drafts.ID): true},
			"keywords":   map[string]bool{"$draft": true},
			"from":       []any{map[string]any{"name": "Alice Ä", "email": "alice@localhost"}},
			"to":         []any{map[string]any{"email": "bob@example.org"}},
			"subject":    "Grüße",
			"inReplyTo":  []string{"x@example.org"},
			"textBody":   []any{map[string]any{"partId": "t", "type": "text/plain"}},
			"htmlBody":   []any{map[string]any{"partId": "h", "type": "text/html"}},
			"bodyValues": map[string]any{"t": map[string]any{"value": "Hallo Bob,\nbis bald."}, "h": map[string]any{"value": "<p>Hallo Bob</p>"}},
		},
		"bad": map[string]any{"mailboxIds": map[string]bool{mailboxID(drafts.ID): true}, "bodyStructure": map[string]any{}},
	}})
	created, _ := res["created"].(map[string]any)
	nc, _ := res["notCreated"].(map[string]any)
	if len(created) != 1 || nc["bad"].(map[string]any)["type"] != "invalidProperties" {
		t.Fatalf("Email/set create: %s", jsonString(res))
	}
	id := created["d"].(map[string]any)["id"].(string)
	got := env.call1(t, "Email/get", map[string]any{"ids": []string{id}, "fetchAllBodyValues": true,
		"properties": []string{"mailboxIds", "keywords", "from", "to", "subject", "inReplyTo", "messageId", "textBody", "htmlBody", "bodyValues"}})
	m := got["list"].([]any)[0].(map[string]any)
	if m["subject"] != "Grüße" || jsonString(m["from"]) != `[{"email":"alice@localhost","name":"Alice Ä"}]` ||
		jsonString(m["to"]) != `[{"email":"bob@example.org","name":null}]` || jsonString(m["keywords"]) != `{"$draft":true}` ||
		jsonString(m["inReplyTo"]) != `["x@example.org"]` || len(strs(m["messageId"])) != 1 {
		t.Errorf("created email: %s", jsonString(m))
	}
	values := jsonString(m["bodyValues"])
	if !strings.Contains(values, `"value":"Hallo Bob,\r\nbis bald."`) || !strings.Contains(values, `"value":"\u003cp\u003eHallo Bob\u003c/p\u003e"`) && !strings.Contains(values, `<p>Hallo Bob</p>`) {
		t.Errorf("body values: %s", values)
	}
	if flags := imapFlags(t, env, "Drafts"); len(flags) != 1 || !slices.Contains(flags[1], imap.FlagDraft) {
		t.Errorf("IMAP Drafts: %v; want one \\Draft message", flags)
	}
}
