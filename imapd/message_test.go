package imapd

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"

	"pushmail/mailstore"
)

// mimeMessage has an encoded UTF-8 subject and display name, an 8-bit
// text part, a base64 attachment and an attached message.
const mimeMessage = "From: =?UTF-8?Q?J=C3=BCrgen_M=C3=BCller?= <juergen@example.org>\r\n" +
	"To: Alice <alice@localhost>, bob@example.org\r\n" +
	"Cc: Team: carol@example.org, dave@example.org;\r\n" +
	"Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n" +
	"Date: Tue, 3 Jan 2006 10:00:00 +0100\r\n" +
	"Message-ID: <mime-1@example.org>\r\n" +
	"In-Reply-To: <parent@example.org>\r\n" +
	"MIME-Version: 1.0\r\n" +
	"Content-Type: multipart/mixed; boundary=\"b1\"\r\n" +
	"\r\n" +
	"preamble\r\n" +
	"--b1\r\n" +
	"Content-Type: text/plain; charset=utf-8\r\n" +
	"Content-Transfer-Encoding: 8bit\r\n" +
	"\r\n" +
	"Grüße,\r\n8-bit body.\r\n" +
	"--b1\r\n" +
	"Content-Type: application/octet-stream; name=\"a.bin\"\r\n" +
	"Content-Transfer-Encoding: base64\r\n" +
	"Content-Disposition: attachment; filename=\"a.bin\"\r\n" +
	"\r\n" +
	"AAECAwQ=\r\n" +
	"--b1\r\n" +
	"Content-Type: message/rfc822\r\n" +
	"\r\n" +
	"Subject: inner\r\n" +
	"From: x@example.org\r\n" +
	"\r\n" +
	"Inner body.\r\n" +
	"--b1--\r\n"

func TestSelectAndExamine(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, testMessage(2))
	inbox := env.mailbox(t, "INBOX")
	if _, err := env.store.StoreFlags(context.Background(), inbox.ID, mailstore.UIDSetOf(1), mailstore.FlagsAdd, []string{`\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	c := env.login(t, nil)

	if _, err := c.Select("Nope", nil).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("SELECT Nope = %v, want NO [NONEXISTENT]", err)
	}
	data, err := c.Select("inbox", nil).Wait()
	if err != nil {
		t.Fatalf("SELECT inbox = %v", err)
	}
	if data.NumMessages != 2 || data.UIDNext != 3 || data.UIDValidity != inbox.UIDValidity {
		t.Errorf("SELECT = %+v, want 2 messages, UIDNEXT 3, UIDVALIDITY %d", data, inbox.UIDValidity)
	}
	if !slices.Contains(data.PermanentFlags, imap.FlagWildcard) || !slices.Contains(data.PermanentFlags, imap.FlagDeleted) {
		t.Errorf("SELECT PERMANENTFLAGS = %v, want system flags and \\*", data.PermanentFlags)
	}
	if !slices.Contains(data.Flags, imap.FlagSeen) {
		t.Errorf("SELECT FLAGS = %v, want the system flags", data.Flags)
	}

	data, err = c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait()
	if err != nil {
		t.Fatalf("EXAMINE INBOX = %v", err)
	}
	if len(data.PermanentFlags) != 0 {
		t.Errorf("EXAMINE PERMANENTFLAGS = %v, want none", data.PermanentFlags)
	}
	// RFC 9051 §6.3.3: no change to a mailbox opened with EXAMINE.
	if err := c.Store(imap.SeqSetNum(2), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}}, nil).Close(); imapType(err) != imap.StatusResponseTypeNo {
		t.Errorf("STORE after EXAMINE = %v, want NO", err)
	}
	if err := c.Expunge().Close(); imapType(err) != imap.StatusResponseTypeNo {
		t.Errorf("EXPUNGE after EXAMINE = %v, want NO", err)
	}
	if _, err := c.Move(imap.SeqSetNum(2), "Archive").Wait(); imapType(err) != imap.StatusResponseTypeNo {
		t.Errorf("MOVE after EXAMINE = %v, want NO", err)
	}
	body := &imap.FetchItemBodySection{}
	msgs, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil || len(msgs) != 1 || !bytes.Equal(msgs[0].FindBodySection(body), testMessage(2)) {
		t.Fatalf("FETCH 2 BODY[] after EXAMINE = %+v, %v", msgs, err)
	}
	if flags := fetchFlags(t, c, 2); slices.Contains(flags, imap.FlagSeen) {
		t.Errorf("FETCH BODY[] after EXAMINE set \\Seen: %v", flags)
	}
	// CLOSE after EXAMINE expunges nothing (RFC 9051 §6.4.1).
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err == nil {
		t.Error("STORE after EXAMINE succeeded")
	}
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Errorf("CLOSE after EXAMINE = %v", err)
	}
	if uids := env.storeUIDs(t, "INBOX"); len(uids) != 2 {
		t.Errorf("store UIDs after CLOSE = %v, want 2 messages", uids)
	}
}

func fetchFlags(t *testing.T, c *imapclient.Client, seq uint32) []imap.Flag {
	t.Helper()
	msgs, err := c.Fetch(imap.SeqSetNum(seq), &imap.FetchOptions{Flags: true}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH %d FLAGS = %+v, %v", seq, msgs, err)
	}
	return msgs[0].Flags
}

func TestFetchItems(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	before := time.Now().Truncate(time.Second)
	uid := env.deliver(t, []byte(mimeMessage))
	c := env.selectInbox(t, nil)

	sec := func(part []int, spec imap.PartSpecifier) *imap.FetchItemBodySection {
		return &imap.FetchItemBodySection{Part: part, Specifier: spec, Peek: true}
	}
	fields := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"subject", "TO"}, Peek: true}
	fieldsNot := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, HeaderFieldsNot: []string{"Content-Type", "MIME-Version", "From", "To", "Cc", "Date", "Message-ID", "In-Reply-To"}, Peek: true}
	partialText := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierText, Partial: &imap.SectionPartial{Offset: 10, Size: 4}, Peek: true}
	sections := map[*imap.FetchItemBodySection]string{
		sec(nil, imap.PartSpecifierNone):         mimeMessage,
		sec([]int{1}, imap.PartSpecifierNone):    "Grüße,\r\n8-bit body.",
		sec([]int{2}, imap.PartSpecifierMIME):    "Content-Type: application/octet-stream; name=\"a.bin\"\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\n",
		sec([]int{2}, imap.PartSpecifierNone):    "AAECAwQ=",
		sec([]int{3}, imap.PartSpecifierHeader):  "Subject: inner\r\nFrom: x@example.org\r\n\r\n",
		sec([]int{3}, imap.PartSpecifierText):    "Inner body.",
		sec([]int{3, 1}, imap.PartSpecifierNone): "Inner body.",
		sec([]int{4}, imap.PartSpecifierNone):    "",
		sec(nil, imap.PartSpecifierText):         mimeMessage[strings.Index(mimeMessage, "\r\n\r\n")+4:],
		fields:                                   "To: Alice <alice@localhost>, bob@example.org\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n\r\n",
		fieldsNot:                                "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n\r\n",
		partialText:                              "--b1",
	}
	binary := &imap.FetchItemBinarySection{Part: []int{2}, Peek: true}
	binaryText := &imap.FetchItemBinarySection{Part: []int{1}, Peek: true}
	options := &imap.FetchOptions{
		UID: true, Flags: true, InternalDate: true, RFC822Size: true, Envelope: true,
		BodyStructure:     &imap.FetchItemBodyStructure{Extended: true},
		BinarySection:     []*imap.FetchItemBinarySection{binary, binaryText},
		BinarySectionSize: []*imap.FetchItemBinarySectionSize{{Part: []int{2}}},
	}
	for s := range sections {
		options.BodySection = append(options.BodySection, s)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), options).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("UID FETCH = %+v, %v", msgs, err)
	}
	m := msgs[0]
	if m.SeqNum != 2 || m.UID != imap.UID(uid) {
		t.Errorf("FETCH seq %d UID %d, want 2 %d", m.SeqNum, m.UID, uid)
	}
	if !slices.Equal(m.Flags, []imap.Flag{imap.Flag(flagRecent)}) {
		t.Errorf("FLAGS = %v, want \\Recent alone (PEEK)", m.Flags)
	}
	if m.RFC822Size != int64(len(mimeMessage)) {
		t.Errorf("RFC822.SIZE = %d, want %d", m.RFC822Size, len(mimeMessage))
	}
	if m.InternalDate.Before(before.Add(-time.Second)) || m.InternalDate.After(time.Now().Add(time.Second)) {
		t.Errorf("INTERNALDATE = %v, want about now", m.InternalDate)
	}
	for s, want := range sections {
		if got := m.FindBodySection(s); string(got) != want {
			t.Errorf("BODY[%v %s %v %v]<%v> = %q, want %q", s.Part, s.Specifier, s.HeaderFields, s.HeaderFieldsNot, s.Partial, got, want)
		}
	}
	if got := m.FindBinarySection(binary); !bytes.Equal(got, []byte{0, 1, 2, 3, 4}) {
		t.Errorf("BINARY[2] = %q, want bytes 0-4", got)
	}
	if got := m.FindBinarySection(binaryText); string(got) != "Grüße,\r\n8-bit body." {
		t.Errorf("BINARY[1] = %q", got)
	}
	if n, ok := m.FindBinarySectionSize([]int{2}); !ok || n != 5 {
		t.Errorf("BINARY.SIZE[2] = %d, %v, want 5", n, ok)
	}

	env1 := m.Envelope
	if env1 == nil {
		t.Fatal("no ENVELOPE")
	}
	if env1.Subject != "Grüße aus Köln" {
		t.Errorf("ENVELOPE subject = %q", env1.Subject)
	}
	if len(env1.From) != 1 || env1.From[0].Name != "Jürgen Müller" || env1.From[0].Addr() != "juergen@example.org" {
		t.Errorf("ENVELOPE from = %+v", env1.From)
	}
	if len(env1.Sender) != 1 || env1.Sender[0].Addr() != "juergen@example.org" {
		t.Errorf("ENVELOPE sender = %+v, want From's", env1.Sender)
	}
	if len(env1.To) != 2 || env1.To[0].Addr() != "alice@localhost" || env1.To[1].Addr() != "bob@example.org" {
		t.Errorf("ENVELOPE to = %+v", env1.To)
	}
	if len(env1.Cc) != 4 || !env1.Cc[0].IsGroupStart() || env1.Cc[1].Addr() != "carol@example.org" || !env1.Cc[3].IsGroupEnd() {
		t.Errorf("ENVELOPE cc = %+v, want group Team with two members", env1.Cc)
	}
	if env1.MessageID != "mime-1@example.org" || !slices.Equal(env1.InReplyTo, []string{"parent@example.org"}) {
		t.Errorf("ENVELOPE message-id %q in-reply-to %v", env1.MessageID, env1.InReplyTo)
	}
	if !env1.Date.Equal(time.Date(2006, 1, 3, 9, 0, 0, 0, time.UTC)) {
		t.Errorf("ENVELOPE date = %v", env1.Date)
	}

	mp, ok := m.BodyStructure.(*imap.BodyStructureMultiPart)
	if !ok || mp.Subtype != "mixed" || len(mp.Children) != 3 {
		t.Fatalf("BODYSTRUCTURE = %#v, want multipart/mixed with 3 parts", m.BodyStructure)
	}
	text := mp.Children[0].(*imap.BodyStructureSinglePart)
	if text.MediaType() != "text/plain" || text.Params["charset"] != "utf-8" || text.Encoding != "8bit" ||
		text.Size != uint32(len("Grüße,\r\n8-bit body.")) || text.Text == nil || text.Text.NumLines != 2 {
		t.Errorf("BODYSTRUCTURE part 1 = %+v", text)
	}
	att := mp.Children[1].(*imap.BodyStructureSinglePart)
	if att.MediaType() != "application/octet-stream" || att.Encoding != "base64" || att.Filename() != "a.bin" {
		t.Errorf("BODYSTRUCTURE part 2 = %+v", att)
	}
	inner := mp.Children[2].(*imap.BodyStructureSinglePart)
	if inner.MediaType() != "message/rfc822" || inner.MessageRFC822 == nil || inner.MessageRFC822.Envelope.Subject != "inner" {
		t.Errorf("BODYSTRUCTURE part 3 = %+v", inner)
	}

	// BODY (non-extended) too.
	msgs, err = c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{BodyStructure: &imap.FetchItemBodyStructure{}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH 1 BODY = %v", err)
	}
	if sp, ok := msgs[0].BodyStructure.(*imap.BodyStructureSinglePart); !ok || sp.MediaType() != "text/plain" || sp.Params["charset"] != "us-ascii" {
		t.Errorf("FETCH 1 BODY = %#v, want text/plain; charset=us-ascii", msgs[0].BodyStructure)
	}
}

// RFC 9051 §6.4.5: BODY[] without .PEEK sets \Seen, and the FETCH reply
// carries the new FLAGS.
func TestFetchSetsSeen(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, testMessage(2))
	ev, opts := newEvents()
	c := env.selectInbox(t, opts)
	body := &imap.FetchItemBodySection{}
	msgs, err := c.Fetch(imap.SeqSetNum(2), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH 2 BODY[] = %+v, %v", msgs, err)
	}
	if !slices.Contains(msgs[0].Flags, imap.FlagSeen) {
		t.Errorf("FETCH 2 BODY[] flags = %v, want \\Seen", msgs[0].Flags)
	}
	if flags := fetchFlags(t, c, 1); slices.Contains(flags, imap.FlagSeen) {
		t.Errorf("message 1 flags = %v, want not \\Seen", flags)
	}
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	select {
	case f := <-ev.fetch:
		t.Errorf("echo of the implicit \\Seen: %+v", f)
	default:
	}
	// BODY.PEEK[HEADER] does not mark.
	env.deliver(t, testMessage(3))
	if err := c.Noop().Wait(); err != nil {
		t.Fatal(err)
	}
	rfc822hdr := &imap.FetchItemBodySection{Specifier: imap.PartSpecifierHeader, Peek: true}
	if _, err := c.Fetch(imap.SeqSetNum(3), &imap.FetchOptions{BodySection: []*imap.FetchItemBodySection{rfc822hdr}}).Collect(); err != nil {
		t.Fatal(err)
	}
	if flags := fetchFlags(t, c, 3); slices.Contains(flags, imap.FlagSeen) {
		t.Errorf("BODY.PEEK[HEADER] set \\Seen: %v", flags)
	}
}

func TestStoreFlags(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	for i := 1; i <= 3; i++ {
		env.deliver(t, testMessage(i))
	}
	c := env.selectInbox(t, nil)
	store := func(set imap.NumSet, op imap.StoreFlagsOp, silent bool, flags ...imap.Flag) ([]*imapclient.FetchMessageBuffer, error) {
		return c.Store(set, &imap.StoreFlags{Op: op, Silent: silent, Flags: flags}, nil).Collect()
	}
	steps := []struct {
		name    string
		set     imap.NumSet
		op      imap.StoreFlagsOp
		silent  bool
		flags   []imap.Flag
		replies int
		want    map[uint32][]imap.Flag
	}{
		{"add", imap.SeqSetNum(1, 2), imap.StoreFlagsAdd, false, []imap.Flag{imap.FlagFlagged, "$Important"}, 2,
			map[uint32][]imap.Flag{1: {"$Important", imap.FlagFlagged}, 2: {"$Important", imap.FlagFlagged}, 3: {}}},
		{"remove", imap.SeqSetNum(2), imap.StoreFlagsDel, false, []imap.Flag{"$important"}, 1,
			map[uint32][]imap.Flag{1: {"$Important", imap.FlagFlagged}, 2: {imap.FlagFlagged}, 3: {}}},
		{"set by UID, silent", imap.UIDSetNum(3), imap.StoreFlagsSet, true, []imap.Flag{imap.FlagAnswered, imap.FlagDraft}, 0,
			map[uint32][]imap.Flag{1: {"$Important", imap.FlagFlagged}, 2: {imap.FlagFlagged}, 3: {imap.FlagAnswered, imap.FlagDraft}}},
		{"star", imap.SeqSet{{Start: 2, Stop: 0}}, imap.StoreFlagsAdd, false, []imap.Flag{imap.FlagSeen}, 2,
			map[uint32][]imap.Flag{1: {"$Important", imap.FlagFlagged}, 2: {imap.FlagFlagged, imap.FlagSeen}, 3: {imap.FlagAnswered, imap.FlagDraft, imap.FlagSeen}}},
	}
	for _, s := range steps {
		replies, err := store(s.set, s.op, s.silent, s.flags...)
		if err != nil {
			t.Fatalf("%s: STORE = %v", s.name, err)
		}
		if len(replies) != s.replies {
			t.Errorf("%s: %d FETCH replies, want %d", s.name, len(replies), s.replies)
		}
		if _, byUID := s.set.(imap.UIDSet); byUID {
			for _, r := range replies {
				if r.UID == 0 {
					t.Errorf("%s: UID STORE reply without UID", s.name)
				}
			}
		}
		for seq, want := range s.want {
			// The only session: every message is \Recent to it.
			want = append(slices.Clone(want), imap.Flag(flagRecent))
			if got := sortedFlags(fetchFlags(t, c, seq)); !slices.Equal(got, sortedFlags(want)) {
				t.Errorf("%s: message %d flags = %v, want %v", s.name, seq, got, want)
			}
		}
	}
	if _, err := store(imap.SeqSetNum(1), imap.StoreFlagsAdd, false, `\Recent`); imapType(err) != imap.StatusResponseTypeBad {
		t.Errorf("STORE +FLAGS (\\Recent) = %v, want BAD", err)
	}
	if _, err := store(imap.SeqSetNum(9), imap.StoreFlagsAdd, false, imap.FlagSeen); imapType(err) != imap.StatusResponseTypeBad {
		t.Errorf("STORE 9 (of 3) = %v, want BAD", err)
	}
}

func TestAppend(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{server: Options{AppendLimit: 1024}})
	c := env.login(t, nil)
	appendMsg := func(mailbox string, msg []byte, options *imap.AppendOptions) (*imap.AppendData, error) {
		cmd := c.Append(mailbox, int64(len(msg)), options)
		if _, err := cmd.Write(msg); err != nil {
			return nil, err
		}
		if err := cmd.Close(); err != nil {
			return nil, err
		}
		return cmd.Wait()
	}
	date := time.Date(2020, 5, 17, 12, 30, 0, 0, time.UTC)
	msg := []byte("Subject: 8-bit\r\n\r\nBody with bytes \xe2\x82\xac and \xff.\r\n")
	data, err := appendMsg("Drafts", msg, &imap.AppendOptions{Flags: []imap.Flag{imap.FlagDraft, "$Label"}, Time: date})
	if err != nil {
		t.Fatalf("APPEND Drafts = %v", err)
	}
	drafts := env.mailbox(t, "Drafts")
	if data.UID != 1 || data.UIDValidity != drafts.UIDValidity {
		t.Errorf("APPENDUID = %d %d, want %d 1", data.UIDValidity, data.UID, drafts.UIDValidity)
	}
	if _, err := c.Select("Drafts", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	body := &imap.FetchItemBodySection{Peek: true}
	msgs, err := c.Fetch(imap.SeqSetNum(1), &imap.FetchOptions{Flags: true, InternalDate: true, BodySection: []*imap.FetchItemBodySection{body}}).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("FETCH = %v", err)
	}
	// The SELECT after the APPEND was the first to hear of it: \Recent.
	if got := sortedFlags(msgs[0].Flags); !slices.Equal(got, []imap.Flag{"$Label", imap.FlagDraft, imap.Flag(flagRecent)}) {
		t.Errorf("appended flags = %v", got)
	}
	if !msgs[0].InternalDate.Equal(date) {
		t.Errorf("appended INTERNALDATE = %v, want %v", msgs[0].InternalDate, date)
	}
	if got := msgs[0].FindBodySection(body); !bytes.Equal(got, msg) {
		t.Errorf("appended body = %q, want %q", got, msg)
	}

	if _, err := appendMsg("Nope", msg, nil); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("APPEND Nope = %v, want NO [TRYCREATE]", err)
	}
	big := bytes.Repeat([]byte("x"), 2048)
	if _, err := appendMsg("INBOX", big, nil); imapCode(err) != imap.ResponseCodeTooBig {
		t.Errorf("APPEND of %d bytes over a 1024 limit = %v, want NO [TOOBIG]", len(big), err)
	}
	// imapclient sent the literal without waiting (LITERAL+, RFC 7888),
	// and imapserver refuses before reading it: the connection is lost, as
	// RFC 7888 §4 allows. A client that honours APPENDLIMIT never gets here.
}

func TestCopyMoveExpunge(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	for i := 1; i <= 5; i++ {
		env.deliver(t, testMessage(i))
	}
	c := env.selectInbox(t, nil)

	data, err := c.Copy(imap.SeqSetNum(1, 2), "Archive").Wait()
	if err != nil {
		t.Fatalf("COPY 1,2 Archive = %v", err)
	}
	archive := env.mailbox(t, "Archive")
	if data.UIDValidity != archive.UIDValidity || data.SourceUIDs.String() != "1:2" || data.DestUIDs.String() != "1:2" {
		t.Errorf("COPYUID = %d %v %v", data.UIDValidity, data.SourceUIDs, data.DestUIDs)
	}
	if _, err := c.Copy(imap.SeqSetNum(1), "Nope").Wait(); imapCode(err) != imap.ResponseCodeTryCreate {
		t.Errorf("COPY to a missing mailbox = %v, want NO [TRYCREATE]", err)
	}

	mv, err := c.Move(imap.UIDSetNum(2, 4), "Trash").Wait()
	if err != nil {
		t.Fatalf("UID MOVE 2,4 Trash = %v", err)
	}
	if mv.SourceUIDs.String() != "2,4" || mv.DestUIDs.String() != "1:2" {
		t.Errorf("MOVE COPYUID = %v %v", mv.SourceUIDs, mv.DestUIDs)
	}
	if got := viewUIDs(t, c); !slices.Equal(got, []imap.UID{1, 3, 5}) {
		t.Errorf("after MOVE view = %v, want 1 3 5", got)
	}

	// EXPUNGE, UID EXPUNGE.
	if err := c.Store(imap.SeqSetNum(1, 2, 3), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	seqs, err := c.UIDExpunge(imap.UIDSetNum(3)).Collect()
	if err != nil || !slices.Equal(seqs, []uint32{2}) {
		t.Errorf("UID EXPUNGE 3 = %v, %v, want [2]", seqs, err)
	}
	seqs, err = c.Expunge().Collect()
	if err != nil || !slices.Equal(seqs, []uint32{2, 1}) && !slices.Equal(seqs, []uint32{1, 1}) {
		t.Errorf("EXPUNGE = %v, %v, want UIDs 1 and 5 gone", seqs, err)
	}
	if got := viewUIDs(t, c); len(got) != 0 {
		t.Errorf("after EXPUNGE view = %v, want empty", got)
	}

	// CLOSE expunges silently; UNSELECT does not expunge.
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Unselect().Wait(); err != nil {
		t.Fatalf("UNSELECT = %v", err)
	}
	if uids := env.storeUIDs(t, "Archive"); len(uids) != 2 {
		t.Errorf("Archive after UNSELECT = %v, want 2 messages", uids)
	}
	if _, err := c.Select("Archive", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.UnselectAndExpunge().Wait(); err != nil {
		t.Fatalf("CLOSE = %v", err)
	}
	if uids := env.storeUIDs(t, "Archive"); !slices.Equal(uids, []imap.UID{2}) {
		t.Errorf("Archive after CLOSE = %v, want [2]", uids)
	}
}

func TestSearch(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	for i := 1; i <= 6; i++ {
		env.deliver(t, testMessage(i))
	}
	env.deliver(t, []byte(mimeMessage))
	c := env.selectInbox(t, nil)
	if err := c.Store(imap.SeqSetNum(2, 4, 7), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagSeen}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	// Expunge UID 1 so sequence numbers and UIDs differ.
	if err := c.Store(imap.SeqSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted}}, nil).Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.Expunge().Close(); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		criteria *imap.SearchCriteria
		seqs     []uint32
		uids     []imap.UID
	}{
		{"all", &imap.SearchCriteria{}, []uint32{1, 2, 3, 4, 5, 6}, []imap.UID{2, 3, 4, 5, 6, 7}},
		{"unseen", &imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, []uint32{2, 4, 5}, []imap.UID{3, 5, 6}},
		{"subject", &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "test 4"}}}, []uint32{3}, []imap.UID{4}},
		{"utf-8 subject", &imap.SearchCriteria{Header: []imap.SearchCriteriaHeaderField{{Key: "Subject", Value: "köln"}}}, []uint32{6}, []imap.UID{7}},
		{"body", &imap.SearchCriteria{Body: []string{"8-BIT BODY"}}, []uint32{6}, []imap.UID{7}},
		{"seq set", &imap.SearchCriteria{SeqNum: []imap.SeqSet{imap.SeqSetNum(1, 2)}}, []uint32{1, 2}, []imap.UID{2, 3}},
		{"uid star", &imap.SearchCriteria{UID: []imap.UIDSet{{{Start: 7, Stop: 0}}}}, []uint32{6}, []imap.UID{7}},
		{"none", &imap.SearchCriteria{Flag: []imap.Flag{imap.FlagDraft}}, nil, nil},
	}
	for _, tt := range tests {
		data, err := c.Search(tt.criteria, nil).Wait()
		if err != nil {
			t.Fatalf("%s: SEARCH = %v", tt.name, err)
		}
		if got := data.AllSeqNums(); !slices.Equal(got, tt.seqs) {
			t.Errorf("%s: SEARCH = %v, want %v", tt.name, got, tt.seqs)
		}
		data, err = c.UIDSearch(tt.criteria, nil).Wait()
		if err != nil {
			t.Fatalf("%s: UID SEARCH = %v", tt.name, err)
		}
		if got := data.AllUIDs(); !slices.Equal(got, tt.uids) {
			t.Errorf("%s: UID SEARCH = %v, want %v", tt.name, got, tt.uids)
		}
	}

	// ESEARCH (RFC 4731) return options.
	data, err := c.UIDSearch(&imap.SearchCriteria{NotFlag: []imap.Flag{imap.FlagSeen}}, &imap.SearchOptions{ReturnMin: true, ReturnMax: true, ReturnCount: true}).Wait()
	if err != nil {
		t.Fatalf("UID SEARCH RETURN (MIN MAX COUNT) = %v", err)
	}
	if data.Min != 3 || data.Max != 6 || data.Count != 3 {
		t.Errorf("ESEARCH = min %d max %d count %d, want 3 6 3", data.Min, data.Max, data.Count)
	}
}

// Replies imapclient does not expose, checked on the wire.
func TestSelectTranscript(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	for i := 1; i <= 3; i++ {
		env.deliver(t, testMessage(i))
	}
	inbox := env.mailbox(t, "INBOX")
	if _, err := env.store.StoreFlags(context.Background(), inbox.ID, mailstore.UIDSetOf(1), mailstore.FlagsAdd, []string{`\Seen`}, 0); err != nil {
		t.Fatal(err)
	}
	c := env.raw(t)
	untagged, tagged := c.cmd("SELECT INBOX")
	for _, want := range []string{
		"* 3 EXISTS",
		"* 3 RECENT", // the first session to select them (RFC 3501 §2.3.2)
		"* OK [UNSEEN 2] First unseen message",
		fmt.Sprintf("* OK [UIDVALIDITY %d] UIDs valid", inbox.UIDValidity),
		"* OK [UIDNEXT 4] Predicted next UID",
		`* FLAGS (\Answered \Flagged \Deleted \Seen \Draft)`,
		`* OK [PERMANENTFLAGS (\Answered \Flagged \Deleted \Seen \Draft \*)] Permanent flags`,
	} {
		if !hasLine(untagged, want) {
			t.Errorf("SELECT lacks %q; got %q", want, untagged)
		}
	}
	if tagged != "OK [READ-WRITE] SELECT completed" {
		t.Errorf("SELECT: %q", tagged)
	}
	untagged, tagged = c.cmd("EXAMINE INBOX")
	if !hasLine(untagged, "* OK [PERMANENTFLAGS ()] Permanent flags") || tagged != "OK [READ-ONLY] EXAMINE completed" {
		t.Errorf("EXAMINE = %q %q", untagged, tagged)
	}
	// IMAP4rev2 (RFC 9051 §6.3.2): SELECT includes the mailbox's LIST.
	c.ok("ENABLE IMAP4rev2")
	untagged = c.ok("SELECT Sent")
	if !hasLine(untagged, `* LIST (\Sent) "/" "Sent"`) {
		t.Errorf("IMAP4rev2 SELECT lacks LIST; got %q", untagged)
	}
	if hasLine(untagged, "* 0 RECENT") {
		t.Errorf("IMAP4rev2 SELECT sent RECENT: %q", untagged)
	}
	// LSUB still works for IMAP4rev1 clients.
	untagged = c.ok(`LSUB "" "*"`)
	if !hasLine(untagged, `* LSUB (\HasNoChildren \Subscribed) "/" INBOX`) {
		t.Errorf("LSUB = %q", untagged)
	}
}

func TestSearchResTranscript(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	for i := 1; i <= 5; i++ {
		env.deliver(t, testMessage(i))
	}
	c := env.raw(t)
	c.ok("SELECT INBOX")
	c.ok(`STORE 2,4 +FLAGS.SILENT (\Seen)`)
	// RFC 5182 §2.4: SAVE alone answers no ESEARCH at all; $ then stands
	// for the result.
	if untagged := c.ok("SEARCH RETURN (SAVE) SEEN"); len(untagged) != 0 {
		t.Errorf("SEARCH RETURN (SAVE) = %q, want no untagged response", untagged)
	}
	untagged := c.ok("FETCH $ (UID)")
	if !slices.Equal(untagged, []string{"* 2 FETCH (UID 2)", "* 4 FETCH (UID 4)"}) {
		t.Errorf("FETCH $ = %q", untagged)
	}
	untagged = c.ok("UID SEARCH RETURN (COUNT MIN) UID $")
	if !slices.Equal(untagged, []string{`* ESEARCH (TAG "t6") UID MIN 2 COUNT 2`}) {
		t.Errorf("UID SEARCH $ = %q", untagged)
	}
	// SAVE with MIN keeps only the minimum (RFC 5182 §2.4).
	c.ok("SEARCH RETURN (SAVE MIN) SEEN")
	untagged = c.ok("UID FETCH $ (FLAGS)")
	if !slices.Equal(untagged, []string{`* 2 FETCH (UID 2 FLAGS (\Seen \Recent))`}) {
		t.Errorf("UID FETCH $ after SAVE MIN = %q", untagged)
	}
	untagged = c.ok("SEARCH 2:*")
	if !slices.Equal(untagged, []string{"* SEARCH 2 3 4 5"}) {
		t.Errorf("SEARCH 2:* = %q", untagged)
	}
}

// RFC 3516 §4.3: BINARY of an encoding the server cannot decode is
// NO [UNKNOWN-CTE]; BODY of the same part still works.
func TestBinaryUnknownCTE(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, []byte("Subject: uu\r\nContent-Transfer-Encoding: x-uuencode\r\n\r\nbegin 644 a\r\nend\r\n"))
	c := env.raw(t)
	c.ok("SELECT INBOX")
	if _, tagged := c.cmd("FETCH 1 (BINARY.PEEK[1])"); !strings.HasPrefix(tagged, "NO [UNKNOWN-CTE]") {
		t.Errorf("FETCH BINARY[1] of x-uuencode = %q, want NO [UNKNOWN-CTE]", tagged)
	}
	untagged := c.ok("FETCH 1 (BODY.PEEK[1]<0.5>)")
	if got := strings.Join(untagged, "\n"); got != "* 1 FETCH (BODY[1]<0> {5}\nbegin)" {
		t.Errorf("FETCH BODY[1]<0.5> = %q", untagged)
	}
}

// A FETCH of only the top-level header sections, as a client's message
// list makes for every message, is served from the stored header block
// and gives the same bytes as when the whole message is read.
func TestFetchHeaderSectionsOnly(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	uid := env.deliver(t, []byte(mimeMessage))
	c := env.selectInbox(t, nil)
	header := mimeMessage[:strings.Index(mimeMessage, "\r\n\r\n")+4]
	sections := map[*imap.FetchItemBodySection]string{
		{Specifier: imap.PartSpecifierHeader, Peek: true}:                                                    header,
		{Specifier: imap.PartSpecifierHeader, HeaderFields: []string{"subject"}, Peek: true}:                 "Subject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe_aus_K=C3=B6ln?=\r\n\r\n",
		{Specifier: imap.PartSpecifierHeader, Partial: &imap.SectionPartial{Offset: 0, Size: 5}, Peek: true}: header[:5],
	}
	options := &imap.FetchOptions{UID: true}
	for s := range sections {
		options.BodySection = append(options.BodySection, s)
	}
	msgs, err := c.Fetch(imap.UIDSetNum(imap.UID(uid)), options).Collect()
	if err != nil || len(msgs) != 1 {
		t.Fatalf("UID FETCH = %+v, %v", msgs, err)
	}
	for s, want := range sections {
		if got := msgs[0].FindBodySection(s); string(got) != want {
			t.Errorf("BODY.PEEK[HEADER %v]<%v> = %q, want %q", s.HeaderFields, s.Partial, got, want)
		}
	}
}
