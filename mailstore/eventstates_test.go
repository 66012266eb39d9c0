package mailstore

import (
	"context"
	"sync"
	"testing"

	"pushmail/notify"
)

// TestEventsCarryAccountStates: the events of a user with watchers of
// their own carry the account's states after their commit
// (Event.States): the last write's equal what AccountState reads once
// it has returned, for each kind of write that moves them (delivery, flags,
// copy, expunge, mailbox creation, rename, subscription, deletion);
// those of a user nobody watches carry none.
func TestEventsCarryAccountStates(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hub := notify.New(0)
	s := openTestStore(t, Options{Hub: hub})
	r := addUser(t, s, "u@localhost")
	other := addUser(t, s, "other@localhost")
	w := hub.SubscribeUser(int64(r.User), 0)
	defer w.Close()
	all := hub.SubscribeAll(0)
	defer all.Close()

	var lists Mailbox
	steps := []struct {
		name  string
		write func() error
	}{
		{"deliver", func() error { _, err := s.Deliver(ctx, testMessage(1), []Recipient{r, other}); return err }},
		{"flags", func() error {
			_, err := s.StoreFlags(ctx, r.Mailbox, UIDSetOf(1), FlagsAdd, []string{FlagSeen}, 0)
			return err
		}},
		{"create", func() error { var err error; lists, err = s.CreateMailbox(ctx, r.User, "Lists", ""); return err }},
		{"copy", func() error { _, err := s.Copy(ctx, r.Mailbox, UIDSetOf(1), lists.ID, 0); return err }},
		{"expunge", func() error {
			if _, err := s.StoreFlags(ctx, r.Mailbox, UIDSetOf(1), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
				return err
			}
			_, err := s.Expunge(ctx, r.Mailbox, UIDSetOf(1), 0)
			return err
		}},
		{"rename", func() error { return s.RenameMailbox(ctx, r.User, "Lists", "Groups") }},
		{"subscribe", func() error { return s.SetSubscribed(ctx, r.User, "Groups", true) }},
		{"delete", func() error { return s.DeleteMailbox(ctx, r.User, "Groups") }},
	}
	for _, step := range steps {
		if err := step.write(); err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		want, err := s.AccountState(ctx, r.User)
		if err != nil {
			t.Fatal(err)
		}
		events, resync := w.Take()
		if resync || len(events) == 0 {
			t.Fatalf("%s: Take() = %d events, resync %v; want events", step.name, len(events), resync)
		}
		// A step may be several commits (expunge: a flag store, then
		// the expunge): the states never go back, and the last
		// commit's are the account's.
		for i, ev := range events {
			got := ev.States
			if !got.Known || got.Email > want.Email || got.Mailbox > want.Mailbox ||
				i > 0 && (got.Email < events[i-1].States.Email || got.Mailbox < events[i-1].States.Mailbox) {
				t.Errorf("%s: %v event's States = %+v after %+v; want known, not lower, not above %+v", step.name, ev.Kind, got, events[max(i-1, 0)].States, want)
			}
		}
		if got := events[len(events)-1].States; got.Email != want.Email || got.Mailbox != want.Mailbox {
			t.Errorf("%s: last event's States = %+v; want AccountState %+v", step.name, got, want)
		}
	}
	// Nobody watches other: their delivery's event carries no states.
	events, _ := all.Take()
	seen := 0
	for _, ev := range events {
		if ev.User != int64(other.User) {
			continue
		}
		seen++
		if ev.States.Known {
			t.Errorf("unwatched user's %v event carries States %+v", ev.Kind, ev.States)
		}
	}
	if seen != 1 {
		t.Errorf("%d events of the unwatched user; want its delivery's", seen)
	}
}

// TestEventStatesUnderBatching: deliveries from many goroutines at once,
// which the writer commits several to a transaction, give events whose
// states never go back, and the last of which is the account's state.
func TestEventStatesUnderBatching(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	hub := notify.New(1 << 12)
	s := openTestStore(t, Options{Hub: hub})
	r := addUser(t, s, "u@localhost")
	w := hub.SubscribeUser(int64(r.User), 0)
	defer w.Close()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := range 200 {
		wg.Go(func() {
			if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	events, resync := w.Take()
	if resync || len(events) != 200 {
		t.Fatalf("Take() = %d events, resync %v; want 200", len(events), resync)
	}
	var last notify.AccountStates
	for i, ev := range events {
		if !ev.States.Known || ev.States.Email < last.Email || ev.States.Mailbox < last.Mailbox {
			t.Fatalf("event %d States = %+v after %+v; want known and not lower", i, ev.States, last)
		}
		last = ev.States
	}
	want, err := s.AccountState(ctx, r.User)
	if err != nil {
		t.Fatal(err)
	}
	if last.Email != want.Email || last.Mailbox != want.Mailbox {
		t.Errorf("last event's States = %+v; want AccountState %+v", last, want)
	}
}

// TestEventStatesStayOnTheirNode: on PostgreSQL, the committing node's
// own watchers get the states with the event, and another node's get the
// event without them (Event.States is not sent), so that its HTTP API
// reads them from the store, where they are the same.
func TestEventStatesStayOnTheirNode(t *testing.T) {
	a, b := openTwoNodes(t)
	ctx := t.Context()
	r := addUser(t, a, "u@localhost")
	subA := a.Hub().SubscribeUser(int64(r.User), 0)
	defer subA.Close()
	subB := b.Hub().SubscribeUser(int64(r.User), 0)
	defer subB.Close()
	if _, err := a.Deliver(ctx, testMessage(1), []Recipient{r}); err != nil {
		t.Fatal(err)
	}
	want, err := b.AccountState(ctx, r.User)
	if err != nil {
		t.Fatal(err)
	}
	evs, _ := nextEvents(t, subA)
	if len(evs) != 1 || !evs[0].States.Known || evs[0].States.Email != want.Email || evs[0].States.Mailbox != want.Mailbox {
		t.Errorf("A's own event %+v; want States %+v, known", evs, want)
	}
	evs, _ = nextEvents(t, subB)
	if len(evs) != 1 || !evs[0].Remote || evs[0].States.Known {
		t.Errorf("B's event of A's delivery %+v; want a remote event without States", evs)
	}
}
