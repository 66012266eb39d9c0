package notify

import "testing"

// TestSubscribeAccount: an account subscription gets the events of every
// mailbox of its account, in publish order, and nothing of another
// account's or of an event that names none; Close takes it off the hub.
func TestSubscribeAccount(t *testing.T) {
	h := New(0)
	a := h.SubscribeAccount(7)
	mb := h.Subscribe(1)
	if h.Subscriptions() != 2 || a.Account() != 7 || mb.Account() != 0 {
		t.Fatalf("Subscriptions() = %d, accounts %d and %d; want 2, 7 and 0", h.Subscriptions(), a.Account(), mb.Account())
	}
	h.Publish(Event{Mailbox: 1, Account: 7, Kind: Appended, UIDs: []uint32{1}})
	h.Publish(Event{Mailbox: 2, Account: 8, Kind: Appended, UIDs: []uint32{1}})
	h.Publish(Event{Mailbox: 3, Account: 7, Kind: MailboxChanged})
	h.Publish(Event{Mailbox: 4, Kind: MailboxChanged})
	<-a.Ready()
	evs, resync := a.Take()
	if resync || len(evs) != 2 || evs[0].Mailbox != 1 || evs[1].Mailbox != 3 {
		t.Errorf("account events = %+v, resync %v; want mailboxes 1 then 3", evs, resync)
	}
	if evs, _ := mb.Take(); len(evs) != 1 {
		t.Errorf("mailbox 1's subscription got %d events; want 1 (its own)", len(evs))
	}
	a.Close()
	mb.Close()
	if h.Subscriptions() != 0 {
		t.Errorf("Subscriptions() after Close = %d; want 0", h.Subscriptions())
	}
}
