package mailstore

import (
	"context"
	"database/sql"
	"fmt"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestSortInfo(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "test.db")
	s := openStoreAt(t, path, Options{})
	rcpt := addUser(t, s, "alice@localhost")
	msgs := []string{
		"From: Zed <zed@example.org>\r\nTo: \"Adam\" <adam@example.org>, b@example.org\r\nCc: undisclosed:;, carol@example.com\r\n" +
			"Subject: =?utf-8?q?Re=3A_caf=C3=A9?=\r\nDate: Mon, 3 Jan 2011 12:00:00 +0200\r\nMessage-ID: <one@x>\r\n" +
			"In-Reply-To: <zero@x> <other@x>\r\nReferences: <root@x>\r\n <zero@x>\r\n\r\nbody\r\n",
		"From: <mike@example.org>\r\nSubject: no date\r\n\r\nbody\r\n",
		"Subject: old row\r\nReferences: <r1@x> <r2@x>\r\nMessage-ID: <three@x>\r\n\r\nbody\r\n",
		"Subject: old row without references\r\n\r\nbody\r\n",
	}
	var uids []UID
	for _, m := range msgs {
		res, err := s.Append(ctx, rcpt.Mailbox, []byte(m), nil, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), 0)
		if err != nil {
			t.Fatalf("Append() = %v", err)
		}
		uids = append(uids, res.UID)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	// The file as the schema before sortKeysVersion wrote it (no sort
	// keys: the migration writes them on open, backfillSortKeys), with
	// messages 3 and 4 as stored before Envelope.References existed: no
	// "references" key in their stored envelope.
	db, err := sql.Open("sqlite3", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE bodies SET parsed = json_remove(parsed, '$.env.references')
		WHERE id IN (SELECT body_id FROM messages WHERE uid IN (?, ?))`, uids[2], uids[3]); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(undoSaveDate + undoSchemaBodyText + undoSortKeys + fmt.Sprintf("PRAGMA user_version = %d", sortKeysVersion-1)); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	s = openStoreAt(t, path, Options{})
	var keys, bodies int
	if err := s.rdb.QueryRow("SELECT (SELECT COUNT(*) FROM sortkeys), (SELECT COUNT(*) FROM bodies)").Scan(&keys, &bodies); err != nil {
		t.Fatal(err)
	}
	if keys != bodies || bodies != len(msgs) {
		t.Fatalf("after the migration: %d sort key rows for %d bodies, want %d each", keys, bodies, len(msgs))
	}

	all := SortFields{Sent: true, Subject: true, From: true, To: true, Cc: true, DisplayFrom: true, DisplayTo: true, Threading: true}
	got, err := s.SortInfo(ctx, rcpt.Mailbox, uids, all)
	if err != nil {
		t.Fatalf("SortInfo() = %v", err)
	}
	if len(got) != 4 {
		t.Fatalf("SortInfo() = %d messages, want 4", len(got))
	}
	m := got[0]
	if !m.Sent.Equal(time.Date(2011, 1, 3, 10, 0, 0, 0, time.UTC)) || m.Subject != "Re: café" ||
		m.FromMailbox != "zed" || m.ToMailbox != "adam" || m.CcMailbox != "carol" ||
		m.DisplayFrom != "Zed" || m.DisplayTo != "Adam" || m.MessageID != "one@x" ||
		!slices.Equal(m.InReplyTo, []string{"zero@x", "other@x"}) || !slices.Equal(m.References, []string{"root@x", "zero@x"}) {
		t.Errorf("SortInfo()[0] = %+v", m)
	}
	if m := got[1]; !m.Sent.IsZero() || m.DisplayFrom != "mike@example.org" || m.FromMailbox != "mike" ||
		m.ToMailbox != "" || m.MessageID != "" || m.References != nil || m.Size == 0 ||
		!m.InternalDate.Equal(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)) {
		t.Errorf("SortInfo()[1] = %+v", m)
	}
	if m := got[2]; !slices.Equal(m.References, []string{"r1@x", "r2@x"}) || m.MessageID != "three@x" {
		t.Errorf("SortInfo()[2], an old row, References = %q, MessageID %q; want [r1@x r2@x] from the header", m.References, m.MessageID)
	}
	if m := got[3]; m.References != nil {
		t.Errorf("SortInfo()[3] References = %q, want none", m.References)
	}

	// A subset, with a UID that is not in the mailbox; only what is asked.
	got, err = s.SortInfo(ctx, rcpt.Mailbox, []UID{uids[1], uids[3], uids[3] + 10}, SortFields{})
	if err != nil {
		t.Fatalf("SortInfo(subset) = %v", err)
	}
	if len(got) != 2 || got[0].UID != uids[1] || got[1].UID != uids[3] || got[0].Subject != "" || got[0].Size == 0 {
		t.Errorf("SortInfo(subset) = %+v, want UIDs %d, %d without subjects", got, uids[1], uids[3])
	}
}

// The cache answers what it has read, reads what arrived since, reads
// again when asked for more fields, and forgets expunged messages.
func TestSortInfoCache(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	rcpt := addUser(t, s, "alice@localhost")
	var uids []UID
	appendN := func(n int) {
		for range n {
			i := len(uids)
			msg := fmt.Sprintf("Subject: s%d\r\nMessage-ID: <%d@x>\r\nDate: Mon, 3 Jan 2011 10:00:%02d +0000\r\n\r\nb\r\n", i, i, i%60)
			res, err := s.Append(ctx, rcpt.Mailbox, []byte(msg), nil, time.Time{}, 0)
			if err != nil {
				t.Fatalf("Append() = %v", err)
			}
			uids = append(uids, res.UID)
		}
	}
	check := func(what string, want []UID, f SortFields) []SortInfo {
		t.Helper()
		got, err := s.SortInfo(ctx, rcpt.Mailbox, want, f)
		if err != nil {
			t.Fatalf("%s: SortInfo() = %v", what, err)
		}
		if len(got) != len(want) {
			t.Fatalf("%s: SortInfo() = %d messages, want %d", what, len(got), len(want))
		}
		for i, m := range got {
			n := int(m.UID) - int(uids[0])
			if m.UID != want[i] || f.Subject != (m.Subject == fmt.Sprintf("s%d", n)) ||
				f.Threading != (m.MessageID == fmt.Sprintf("%d@x", n)) || f.Sent == m.Sent.IsZero() {
				t.Fatalf("%s: SortInfo()[%d] = %+v, want UID %d with fields %+v", what, i, m, want[i], f)
			}
		}
		return got
	}
	appendN(10)
	check("first", uids, SortFields{Sent: true})
	check("cached, fewer fields", uids[2:5], SortFields{})
	appendN(5)
	check("new messages", uids, SortFields{Sent: true})
	check("more fields", []UID{uids[0], uids[7], uids[14]}, SortFields{Sent: true, Subject: true, Threading: true})
	check("all of them, cached", uids, SortFields{Subject: true})
	if n := s.sorts.size(rcpt.Mailbox); n != len(uids) {
		t.Errorf("cached entries = %d, want %d", n, len(uids))
	}
	// Older messages read after newer ones: merged into the kept
	// entries in UID order.
	s.sorts.drop(rcpt.Mailbox)
	check("the newest first", uids[8:], SortFields{Sent: true})
	check("then the older too", []UID{uids[1], uids[9], uids[10]}, SortFields{Sent: true})
	check("all, after a merge", uids, SortFields{Sent: true})
	if n := s.sorts.size(rcpt.Mailbox); n != len(uids) {
		t.Errorf("cached entries after a merge = %d, want %d", n, len(uids))
	}

	// A UID expunged after it was read may still be answered (the
	// caller passes a Search result); one never read is left out.
	if _, err := s.StoreFlags(ctx, rcpt.Mailbox, UIDSetOf(uids[3]), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatalf("StoreFlags() = %v", err)
	}
	if _, err := s.Expunge(ctx, rcpt.Mailbox, UIDSetOf(uids[3]), 0); err != nil {
		t.Fatalf("Expunge() = %v", err)
	}
	got, err := s.SortInfo(ctx, rcpt.Mailbox, []UID{uids[2], uids[14] + 1}, SortFields{Sent: true})
	if err != nil || len(got) != 1 || got[0].UID != uids[2] {
		t.Errorf("SortInfo(a UID never delivered) = %+v, %v; want only UID %d", got, err, uids[2])
	}
}

// TestParseSent: the fast reading of sortkeys.sent gives time.Parse's
// instant for what encoding/json writes, and falls back to it (or to
// zero) for anything else.
func TestParseSent(t *testing.T) {
	for _, s := range []string{
		"2024-03-04T09:05:00Z",
		"2024-03-04T09:05:00+01:00",
		"2024-03-04T09:05:00-09:30",
		"2024-03-04T09:05:00.5Z",
		"2024-03-04T09:05:00.123456789+05:45",
		"0001-01-01T00:00:00Z",
		"1969-12-31T23:59:59-00:01",
		"2024-02-29T12:00:00Z",
		"2023-02-29T12:00:00Z",            // no such day: time.Parse refuses
		"2024-03-04T09:05:00.Z",           // a fraction without digits
		"2024-03-04T09:05:00.1234567891Z", // ten digits
		"2024-03-04T24:00:00Z",
		"2024-03-04 09:05:00Z",
		"2024-03-04T09:05:00+0100",
		"2024-03-04T09:05:00",
		"garbage",
		"",
	} {
		want, err := time.Parse(time.RFC3339Nano, s)
		if err != nil {
			want = time.Time{}
		}
		if got := parseSent([]byte(s)); !got.Equal(want) || got.IsZero() != want.IsZero() {
			t.Errorf("parseSent(%q) = %v; want %v (time.Parse)", s, got, want)
		}
	}
}
