package mailstore

import (
	"bytes"
	"context"
	"slices"
	"testing"
	"time"

	"pushmail/notify"
)

// wantCRLFSize is the size of raw with every bare LF sent as CRLF, counted
// apart from the store's crlfSize.
func wantCRLFSize(raw []byte) int64 {
	return int64(len(raw) + bytes.Count(raw, []byte("\n")) - bytes.Count(raw, []byte("\r\n")))
}

func TestMaildropSizesCountBareLFTwice(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	msgs := [][]byte{
		testMessage(1), // CRLF throughout
		[]byte("Subject: bare\n\nline one\nline two\n"),
		[]byte("Subject: mixed\r\n\nNUL \x00 and \xff\xfe not UTF-8\r\n\n\r\r\nend without newline"),
	}
	for _, m := range msgs {
		if _, err := s.Append(ctx, r.Mailbox, m, nil, time.Time{}, 0); err != nil {
			t.Fatalf("Append() = %v", err)
		}
	}
	got, err := s.Maildrop(ctx, r.Mailbox)
	if err != nil {
		t.Fatalf("Maildrop() = %v", err)
	}
	bodies := storedBodies(t, s, r.Mailbox)
	if len(got) != len(msgs) {
		t.Fatalf("Maildrop() = %v, want %d entries", got, len(msgs))
	}
	for i, e := range got {
		if e.UID != UID(i+1) {
			t.Errorf("entry %d has UID %d, want %d", i, e.UID, i+1)
		}
		if want := wantCRLFSize(bodies[e.UID]); e.Size != want {
			t.Errorf("UID %d: Size = %d, want %d (stored %d bytes)", e.UID, e.Size, want, len(bodies[e.UID]))
		}
	}
}

// UpdateMaildrop removes exactly the UIDs it is given, whatever their
// flags, never more: an empty list removes nothing (an empty list once
// meant "all" to Expunge and erased mailboxes).
func TestUpdateMaildropRemovesExactlyTheUIDsGiven(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hub := notify.New(0)
	s := openTestStore(t, Options{Hub: hub})
	r := addUser(t, s, "u@localhost")
	for i := range 5 {
		if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	sub := hub.Subscribe(int64(r.Mailbox))
	defer sub.Close()
	holds := func(what string, want ...UID) {
		t.Helper()
		uids, err := s.UIDs(ctx, r.Mailbox)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(uids, want) {
			t.Fatalf("after %s the mailbox holds %v, want %v", what, uids, want)
		}
	}

	for _, c := range []struct {
		name         string
		seen, remove []UID
	}{{"nil lists", nil, nil}, {"empty lists", []UID{}, []UID{}}, {"UIDs that do not exist", nil, []UID{9, 10}}} {
		if got, err := s.UpdateMaildrop(ctx, r.Mailbox, c.seen, c.remove, 0); err != nil || len(got) != 0 {
			t.Fatalf("UpdateMaildrop(%s) = %v, %v; want nothing removed", c.name, got, err)
		}
		holds(c.name, 1, 2, 3, 4, 5)
	}
	if events, _ := sub.Take(); len(events) != 0 {
		t.Fatalf("events after no-op updates = %+v, want none", events)
	}

	// 2 and 4 go although neither is \Deleted; 1 and 4 were retrieved:
	// 1 becomes \Seen, 4 is removed instead.
	got, err := s.UpdateMaildrop(ctx, r.Mailbox, []UID{1, 4}, []UID{4, 2, 7}, 77)
	if err != nil || !slices.Equal(got, []UID{2, 4}) {
		t.Fatalf("UpdateMaildrop(seen 1 4, remove 4 2 7) = %v, %v; want [2 4]", got, err)
	}
	holds("the update", 1, 3, 5)
	var seen []UID
	err = s.Messages(ctx, r.Mailbox, AllUIDs(), FetchOptions{}, func(m *Message) error {
		if slices.Contains(m.Flags, FlagSeen) {
			seen = append(seen, m.UID)
		}
		return nil
	})
	if err != nil || !slices.Equal(seen, []UID{1}) {
		t.Fatalf("\\Seen messages = %v, %v; want [1]", seen, err)
	}
	events, resync := sub.Take()
	if resync || len(events) != 2 || events[0].Kind != notify.FlagsChanged || events[1].Kind != notify.Expunged {
		t.Fatalf("events = %+v, want FlagsChanged then Expunged", events)
	}
	if !slices.Equal(events[1].UIDs, []uint32{2, 4}) || events[1].Messages != 3 || events[1].Origin != 77 {
		t.Errorf("Expunged = %+v, want UIDs [2 4], 3 messages, origin 77", events[1])
	}
	if f := events[0].Flags; len(f) != 1 || f[0].UID != 1 || !slices.Equal(f[0].Flags, []string{FlagSeen}) {
		t.Errorf("FlagsChanged = %+v", events[0])
	}
	// Tombstones: the expunge is visible to CONDSTORE/QRESYNC clients.
	ch, err := s.ChangesSince(ctx, r.Mailbox, AllUIDs(), events[0].ModSeq)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ch.Vanished, []UID{2, 4}) {
		t.Errorf("ChangesSince().Vanished = %v, want [2 4]", ch.Vanished)
	}
}
