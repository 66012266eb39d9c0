package mailstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"pushmail/message"
)

// undoSaveDate turns a file written at versionSaveDate back into one of
// the version before: the save dates go.
const undoSaveDate = `
ALTER TABLE messages DROP COLUMN save_date;
`

// messageAt returns the one message with uid in mailbox.
func messageAt(t *testing.T, s *Store, mailbox MailboxID, uid UID) Message {
	t.Helper()
	var got []Message
	if err := s.Messages(context.Background(), mailbox, UIDSetOf(uid), FetchOptions{}, func(m *Message) error {
		got = append(got, *m)
		return nil
	}); err != nil || len(got) != 1 {
		t.Fatalf("Messages(%d, %d) = %d messages, %v; want 1", mailbox, uid, len(got), err)
	}
	return got[0]
}

// The save date is when a message was stored into its mailbox (RFC 8514
// §3): an APPEND with an old internal date is saved now, and a COPY or
// MOVE is saved anew in the destination, keeping its internal date and
// email id. SavedSince and SavedBefore find them by it.
func TestSaveDate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	other, err := s.CreateMailbox(ctx, r.User, "Other", "")
	if err != nil {
		t.Fatal(err)
	}
	old := time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC)
	before := time.Now()
	res, err := s.Append(ctx, r.Mailbox, testMessage(1), nil, old, 0)
	if err != nil {
		t.Fatal(err)
	}
	appended := messageAt(t, s, r.Mailbox, res.UID)
	if !appended.InternalDate.Equal(old) || appended.SaveDate.Before(before) || appended.SaveDate.After(time.Now()) {
		t.Errorf("after APPEND: internal date %v, save date %v; want %v and a time from the append", appended.InternalDate, appended.SaveDate, old)
	}
	moved, err := s.Move(ctx, r.Mailbox, UIDSetOf(res.UID), other.ID, 0)
	if err != nil || len(moved.Dest) != 1 {
		t.Fatalf("Move() = %+v, %v", moved, err)
	}
	m := messageAt(t, s, other.ID, moved.Dest[0])
	if !m.InternalDate.Equal(old) || m.Email != appended.Email || m.SaveDate.Before(appended.SaveDate) {
		t.Errorf("after MOVE: internal date %v, email %d, save date %v; want %v, %d, at or after %v",
			m.InternalDate, m.Email, m.SaveDate, old, appended.Email, appended.SaveDate)
	}
	for _, tt := range []struct {
		name string
		c    SearchCriteria
		want []UID
	}{
		{"saved since the move", SearchCriteria{SavedSince: m.SaveDate}, []UID{moved.Dest[0]}},
		{"saved before the move", SearchCriteria{SavedBefore: m.SaveDate}, nil},
		{"internal date before", SearchCriteria{Before: old.Add(time.Second)}, []UID{moved.Dest[0]}},
		{"saved since, in NOT", SearchCriteria{Not: []SearchCriteria{{SavedSince: m.SaveDate.Add(time.Hour)}}}, []UID{moved.Dest[0]}},
		{"with a header search", SearchCriteria{SavedBefore: m.SaveDate.Add(time.Hour), Header: []HeaderMatch{{Key: "Subject", Value: ""}}}, []UID{moved.Dest[0]}},
		{"email id", SearchCriteria{Email: []EmailID{m.Email}}, []UID{moved.Dest[0]}},
		{"another email id", SearchCriteria{Email: []EmailID{m.Email + 1}}, nil},
	} {
		got, err := s.Search(ctx, other.ID, &tt.c)
		if err != nil || !slices.Equal(got, tt.want) {
			t.Errorf("%s: Search(%+v) = %v, %v; want %v", tt.name, tt.c, got, err, tt.want)
		}
	}
}

// A store written at the version before versionSaveDate gets every
// message's internal date as its save date (savedate.go), with no modseq
// or change-log entry for it.
func TestMigrateSaveDate(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v13.db")
	db, err := sql.Open("sqlite3", "file:"+path+"?_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	if err := migrateTo(ctx, db, slog.New(slog.DiscardHandler), versionSaveDate-1); err != nil {
		t.Fatalf("migrateTo(%d) = %v", versionSaveDate-1, err)
	}
	exec := func(q string, args ...any) {
		t.Helper()
		if _, err := db.Exec(q, args...); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	exec("INSERT INTO users(id, address, domain, password, created) VALUES (7, 'old@localhost', 'localhost', 'x', 0)")
	exec("INSERT INTO mailboxes(id, user_id, name, uidvalidity, uidnext, highest_modseq) VALUES (1, 7, 'INBOX', 1, 3, 3)")
	dates := []time.Time{time.Date(2006, 1, 2, 15, 4, 5, 0, time.UTC), time.Date(2024, 2, 5, 9, 0, 0, 0, time.UTC)}
	for i, d := range dates {
		raw := testMessage(i + 1)
		p := message.Parse(raw)
		js, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		exec("INSERT INTO bodies(id, header, raw, parsed) VALUES (?, ?, ?, ?)", i+1, raw[:p.Root.BodyStart], raw, js)
		exec("INSERT INTO messages(mailbox_id, uid, body_id, internal_date, size, modseq) VALUES (1, ?, ?, ?, ?, ?)", i+1, i+1, d.UnixNano(), len(raw), i+2)
	}
	var loggedBefore int
	if err := db.QueryRow("SELECT COUNT(*) FROM account_changes").Scan(&loggedBefore); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := openStoreAt(t, path, Options{})
	for i, d := range dates {
		m := messageAt(t, s, 1, UID(i+1))
		if !m.SaveDate.Equal(d) || !m.InternalDate.Equal(d) || m.ModSeq != uint64(i+2) {
			t.Errorf("after migration, message %d: save date %v, internal date %v, modseq %d; want %v, %v, %d",
				i+1, m.SaveDate, m.InternalDate, m.ModSeq, d, d, i+2)
		}
	}
	got, err := s.Search(ctx, 1, &SearchCriteria{SavedSince: dates[1]})
	if err != nil || !slices.Equal(got, []UID{2}) {
		t.Errorf("after migration, Search(SavedSince %v) = %v, %v; want [2]", dates[1], got, err)
	}
	var logged int
	if err := s.rdb.QueryRow("SELECT COUNT(*) FROM account_changes").Scan(&logged); err != nil || logged != loggedBefore {
		t.Errorf("after migration: %d change-log entries, %v; want the %d of before", logged, err, loggedBefore)
	}
}
