package mailstore

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"pushmail/notify"
)

// AppendBatch stores every message, in order, with its own UID, modseq,
// flags and date, and publishes one event per message after the commit.
func TestAppendBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hub := notify.New(0)
	s := openTestStore(t, Options{Hub: hub})
	r := addUser(t, s, "u@localhost")
	sub := hub.Subscribe(int64(r.Mailbox))
	defer sub.Close()
	date := time.Date(2024, 2, 29, 12, 0, 0, 0, time.UTC)
	msgs := []AppendMessage{
		{Raw: testMessage(1), Flags: []string{FlagSeen}, Date: date},
		{Raw: testMessage(2)},
		{Raw: testMessage(3), Flags: []string{"Work", FlagDraft}},
	}
	res, err := s.AppendBatch(ctx, r.Mailbox, msgs, 9)
	if err != nil || !slices.Equal(res.UIDs, []UID{1, 2, 3}) || res.UIDValidity == 0 {
		t.Fatalf("AppendBatch() = %+v, %v, want UIDs 1 2 3", res, err)
	}
	events, resync := sub.Take()
	if resync || len(events) != 3 {
		t.Fatalf("events = %+v (resync %v), want 3", events, resync)
	}
	for i, ev := range events {
		want := notify.Event{Mailbox: int64(r.Mailbox), Kind: notify.Appended, UIDs: []uint32{uint32(i + 1)}, Messages: uint32(i + 1), ModSeq: uint64(i + 2), Origin: 9}
		if !eventEqual(ev, want) {
			t.Errorf("event %d = %+v, want %+v", i, ev, want)
		}
	}
	stored := storedBodies(t, s, r.Mailbox)
	for i, m := range msgs {
		if !bytes.Equal(stored[UID(i+1)], m.Raw) {
			t.Errorf("UID %d holds %q, want %q", i+1, stored[UID(i+1)], m.Raw)
		}
	}
	err = s.Messages(ctx, r.Mailbox, AllUIDs(), FetchOptions{}, func(m *Message) error {
		switch m.UID {
		case 1:
			if !m.InternalDate.Equal(date) || !slices.Equal(m.Flags, []string{FlagSeen}) {
				t.Errorf("message 1 = %+v", m)
			}
		case 3:
			if !slices.Equal(m.Flags, []string{FlagDraft, "Work"}) {
				t.Errorf("message 3 flags = %v", m.Flags)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// A batch with a bad third message stores none: refused before the write
// (too big, a bad flag, no mailbox), or failing inside the transaction
// after two messages went in (an SQLite trigger that aborts the third
// insert, standing in for a disk error).
func TestAppendBatchAllOrNone(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{MaxMessageSize: 1000})
	r := addUser(t, s, "u@localhost")
	good := func(i int) AppendMessage { return AppendMessage{Raw: testMessage(i)} }
	tests := []struct {
		name  string
		mb    MailboxID
		third AppendMessage
		want  error
	}{
		{"too big", r.Mailbox, AppendMessage{Raw: make([]byte, 1001)}, ErrTooBig},
		{"bad flag", r.Mailbox, AppendMessage{Raw: testMessage(3), Flags: []string{`\Bogus`}}, ErrInvalidFlag},
		{"no mailbox", 4242, good(3), ErrNoSuchMailbox},
	}
	for _, tt := range tests {
		_, err := s.AppendBatch(ctx, tt.mb, []AppendMessage{good(1), good(2), tt.third}, 0)
		if !errors.Is(err, tt.want) {
			t.Errorf("%s: AppendBatch() = %v, want %v", tt.name, err, tt.want)
		}
	}
	removeFailure := injectFailure(t, s, "fail_third", "INSERT", "messages",
		"(SELECT count(*) FROM messages WHERE mailbox_id = NEW.mailbox_id) >= 2")
	if _, err := s.AppendBatch(ctx, r.Mailbox, []AppendMessage{good(1), good(2), good(3)}, 0); err == nil {
		t.Error("AppendBatch() with a failing third insert = nil, want an error")
	}
	if got := storedBodies(t, s, r.Mailbox); len(got) != 0 {
		t.Errorf("mailbox holds %d messages after failed batches, want 0", len(got))
	}
	st, err := s.Status(ctx, r.Mailbox)
	if err != nil || st.Messages != 0 || st.UIDNext != 1 {
		t.Errorf("Status() = %+v, %v, want no messages and UIDNEXT 1", st, err)
	}
	removeFailure()
	if res, err := s.AppendBatch(ctx, r.Mailbox, []AppendMessage{good(1)}, 0); err != nil || !slices.Equal(res.UIDs, []UID{1}) {
		t.Errorf("AppendBatch() after the failures = %+v, %v, want UID 1", res, err)
	}
	if _, err := s.AppendBatch(ctx, r.Mailbox, nil, 0); err == nil {
		t.Error("AppendBatch(nil) = nil, want an error")
	}
}

// TestAppendBatchQuota: a batch that would pass the user's message quota
// stores none of its messages (RFC 9208 §4.3), one that fits stores all.
func TestAppendBatchQuota(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	if err := s.SetQuota(ctx, "u@localhost", 0, 2); err != nil {
		t.Fatal(err)
	}
	three := []AppendMessage{{Raw: testMessage(1)}, {Raw: testMessage(2)}, {Raw: testMessage(3)}}
	if _, err := s.AppendBatch(ctx, r.Mailbox, three, 0); !errors.Is(err, ErrOverQuota) {
		t.Errorf("AppendBatch() of 3 under a 2-message quota = %v, want ErrOverQuota", err)
	}
	if got := storedBodies(t, s, r.Mailbox); len(got) != 0 {
		t.Errorf("mailbox holds %d messages after the refused batch, want 0", len(got))
	}
	if res, err := s.AppendBatch(ctx, r.Mailbox, three[:2], 0); err != nil || len(res.UIDs) != 2 {
		t.Errorf("AppendBatch() of 2 = %+v, %v, want 2 UIDs", res, err)
	}
	if q, err := s.Quota(ctx, r.User); err != nil || q.MessagesUsed != 2 {
		t.Errorf("Quota() = %+v, %v, want 2 messages used", q, err)
	}
}
