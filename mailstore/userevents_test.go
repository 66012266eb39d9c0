package mailstore

import (
	"context"
	"slices"
	"testing"

	"pushmail/notify"
)

// TestEventsCarryTheirUser: every event names the user it belongs to, so
// that one user watcher (notify.Hub.SubscribeUser, IMAP NOTIFY) hears all
// of that user's mailboxes; mailbox events carry the names before and
// after, subscription and metadata changes are events too, and nothing
// of another user's reaches the watcher.
func TestEventsCarryTheirUser(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hub := notify.New(0)
	s := openTestStore(t, Options{Hub: hub})
	r := addUser(t, s, "u@localhost")
	other := addUser(t, s, "other@localhost")
	w := hub.SubscribeUser(int64(r.User), 0)
	defer w.Close()

	if _, err := s.Deliver(ctx, testMessage(1), []Recipient{r, other}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.CreateMailbox(ctx, r.User, "Lists/Go", ""); err != nil {
		t.Fatal(err)
	}
	if err := s.RenameMailbox(ctx, r.User, "Lists", "Groups"); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, r.User, "Groups/Go", true); err != nil {
		t.Fatal(err)
	}
	if err := s.SetSubscribed(ctx, r.User, "Groups/Go", true); err != nil {
		t.Fatal(err) // already subscribed: no event
	}
	if err := s.SetMetadata(ctx, r.User, 0, []MetadataEntry{{Name: "/private/comment", Value: []byte("hi")}}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, r.User, "Groups/Go"); err != nil {
		t.Fatal(err)
	}

	events, resync := w.Take()
	if resync {
		t.Fatal("Take() asks for a resync")
	}
	type summary struct {
		kind          notify.Kind
		name, oldName string
	}
	var got []summary
	for _, ev := range events {
		if ev.User != int64(r.User) {
			t.Errorf("event %+v has User %d, want %d", ev, ev.User, r.User)
		}
		got = append(got, summary{ev.Kind, ev.Name, ev.OldName})
	}
	want := []summary{
		{notify.Appended, "", ""},
		{notify.MailboxChanged, "Lists", ""}, // the parent CREATE made
		{notify.MailboxChanged, "Lists/Go", ""},
		{notify.MailboxChanged, "Groups", "Lists"},
		{notify.MailboxChanged, "Groups/Go", "Lists/Go"},
		{notify.SubscriptionChanged, "Groups/Go", ""},
		{notify.MetadataChanged, "", ""},
		{notify.MailboxChanged, "", "Groups/Go"},
	}
	if !slices.Equal(got, want) {
		t.Errorf("events =\n%v\nwant\n%v", got, want)
	}
	if md := events[6]; md.Mailbox != 0 || !slices.Equal(md.Entries, []string{"/private/comment"}) {
		t.Errorf("MetadataChanged = %+v, want the server's /private/comment", md)
	}
}
