package notify

import (
	"testing"
	"testing/synctest"
)

func TestPublishReachesSubscribersOfThatMailbox(t *testing.T) {
	t.Parallel()
	h := New(0)
	a := h.Subscribe(1)
	defer a.Close()
	b := h.Subscribe(1)
	defer b.Close()
	other := h.Subscribe(2)
	defer other.Close()

	h.Publish(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{7}, Messages: 1})

	for name, s := range map[string]*Subscription{"a": a, "b": b} {
		select {
		case <-s.Ready():
		default:
			t.Fatalf("%s: Ready not signalled after Publish", name)
		}
		events, resync := s.Take()
		if resync || len(events) != 1 || events[0].UIDs[0] != 7 {
			t.Errorf("%s: Take() = %+v, %v; want one Appended event for UID 7", name, events, resync)
		}
	}
	select {
	case <-other.Ready():
		t.Error("subscriber of mailbox 2 woken by an event for mailbox 1")
	default:
	}
}

func TestEventsKeepPublishOrder(t *testing.T) {
	t.Parallel()
	h := New(0)
	s := h.Subscribe(1)
	defer s.Close()
	for i := uint32(1); i <= 100; i++ {
		h.Publish(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{i}})
	}
	events, resync := s.Take()
	if resync || len(events) != 100 {
		t.Fatalf("Take() = %d events, resync %v; want 100, false", len(events), resync)
	}
	for i, ev := range events {
		if ev.UIDs[0] != uint32(i+1) {
			t.Fatalf("event %d has UID %d, want %d", i, ev.UIDs[0], i+1)
		}
	}
}

// A subscriber that never reads must not block Publish nor delay the
// others; it is told to resync instead of growing without bound.
func TestStuckSubscriberIsMarkedForResync(t *testing.T) {
	t.Parallel()
	synctest.Test(t, func(t *testing.T) {
		h := New(4)
		stuck := h.Subscribe(1)
		defer stuck.Close()
		live := h.Subscribe(1)
		defer live.Close()

		got := make(chan uint32, 1000)
		done := make(chan struct{})
		go func() {
			for {
				select {
				case <-live.Ready():
				case <-done:
					return
				}
				events, resync := live.Take()
				if resync {
					t.Error("live subscriber was told to resync")
				}
				for _, ev := range events {
					got <- ev.UIDs[0]
				}
			}
		}()

		const n = 1000
		for i := uint32(1); i <= n; i++ {
			h.Publish(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{i}})
			synctest.Wait() // let the live reader drain; the stuck one never does
		}
		for i := uint32(1); i <= n; i++ {
			if uid := <-got; uid != i {
				t.Fatalf("live subscriber got UID %d, want %d", uid, i)
			}
		}

		events, resync := stuck.Take()
		if !resync {
			t.Error("stuck subscriber not told to resync")
		}
		if n := h.Resyncs(); n != 1 {
			t.Errorf("Resyncs() = %d, want 1 (one subscriber fell behind once)", n)
		}
		if len(events) > 4 {
			t.Errorf("stuck subscriber holds %d events, want at most the queue length 4", len(events))
		}
		// After a resync the subscription keeps working.
		h.Publish(Event{Mailbox: 1, Kind: Expunged, UIDs: []uint32{1}})
		if events, resync := stuck.Take(); resync || len(events) != 1 {
			t.Errorf("after resync Take() = %d events, resync %v; want 1, false", len(events), resync)
		}
		close(done)
	})
}

func TestCloseStopsDelivery(t *testing.T) {
	t.Parallel()
	h := New(0)
	s := h.Subscribe(3)
	s.Close()
	s.Close() // twice is fine
	h.Publish(Event{Mailbox: 3, Kind: Appended, UIDs: []uint32{1}})
	if events, _ := s.Take(); len(events) != 0 {
		t.Errorf("closed subscription received %d events", len(events))
	}
	if n := h.Subscriptions(); n != 0 {
		t.Errorf("Subscriptions() = %d after Close, want 0", n)
	}
}

func BenchmarkPublishFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(map[int]string{1: "subs=1", 100: "subs=100", 10000: "subs=10000"}[n], func(b *testing.B) {
			h := New(0)
			subs := make([]*Subscription, n)
			for i := range subs {
				subs[i] = h.Subscribe(1)
			}
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				h.Publish(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{uint32(i)}})
				if i%64 == 0 {
					for _, s := range subs {
						s.Take()
					}
				}
			}
		})
	}
}

// A user watcher hears every mailbox of its user, and the events that
// name no mailbox, but nothing of another user's; a mailbox watcher
// hears nothing of SubscriptionChanged.
func TestSubscribeUserSeesAllMailboxesOfItsUser(t *testing.T) {
	t.Parallel()
	h := New(0)
	u := h.SubscribeUser(10, 0)
	defer u.Close()
	other := h.SubscribeUser(11, 0)
	defer other.Close()
	mb := h.Subscribe(1)
	defer mb.Close()
	if got := u.Mailbox(); got != 0 {
		t.Errorf("SubscribeUser(10).Mailbox() = %d, want 0", got)
	}

	h.Publish(Event{Mailbox: 1, User: 10, Kind: Appended, UIDs: []uint32{1}})
	h.Publish(Event{Mailbox: 2, User: 10, Kind: Expunged, UIDs: []uint32{4}})
	h.Publish(Event{User: 10, Kind: SubscriptionChanged, Name: "Lists", Subscribed: true})
	h.Publish(Event{Mailbox: 3, User: 11, Kind: Appended, UIDs: []uint32{9}})

	events, resync := u.Take()
	if resync || len(events) != 3 {
		t.Fatalf("user 10: Take() = %+v, %v; want 3 events", events, resync)
	}
	for i, want := range []Kind{Appended, Expunged, SubscriptionChanged} {
		if events[i].Kind != want {
			t.Errorf("user 10: event %d is %v, want %v", i, events[i].Kind, want)
		}
	}
	if events, _ := other.Take(); len(events) != 1 || events[0].Mailbox != 3 {
		t.Errorf("user 11: Take() = %+v; want only mailbox 3's event", events)
	}
	if events, _ := mb.Take(); len(events) != 1 || events[0].Kind != Appended {
		t.Errorf("mailbox 1: Take() = %+v; want only its Appended event", events)
	}
	if n := h.Subscriptions(); n != 3 {
		t.Errorf("Subscriptions() = %d, want 3", n)
	}
	u.Close()
	other.Close()
	if n := h.Subscriptions(); n != 1 {
		t.Errorf("Subscriptions() after closing the user watchers = %d, want 1", n)
	}
}

// A user watcher's own queue length bounds it: past it, the queue is
// dropped and resync is set, as for a mailbox watcher.
func TestSubscribeUserQueueLen(t *testing.T) {
	t.Parallel()
	h := New(100)
	u := h.SubscribeUser(10, 3)
	defer u.Close()
	for i := range uint32(4) {
		h.Publish(Event{Mailbox: 1, User: 10, Kind: Appended, UIDs: []uint32{i + 1}})
	}
	events, resync := u.Take()
	if !resync || len(events) != 0 {
		t.Fatalf("Take() after 4 events into a queue of 3 = %d events, resync %v; want 0, true", len(events), resync)
	}
	if got := h.Resyncs(); got != 1 {
		t.Errorf("Resyncs() = %d, want 1", got)
	}
}

// TestSubscribeAll: a SubscribeAll subscription gets every event, of any
// user and mailbox, once each, and none after Close.
func TestSubscribeAll(t *testing.T) {
	h := New(0)
	all := h.SubscribeAll(0)
	one := h.Subscribe(7)
	if n := h.Subscriptions(); n != 1 {
		t.Fatalf("Subscriptions() = %d, want 1 (the server-wide one is not a client's)", n)
	}
	h.Publish(Event{Mailbox: 7, User: 1, Kind: Appended, UIDs: []uint32{1}})
	h.Publish(Event{Mailbox: 9, User: 2, Kind: Expunged, UIDs: []uint32{4}})
	h.Publish(Event{User: 2, Kind: SubscriptionChanged, Name: "Lists"})
	<-all.Ready()
	evs, resync := all.Take()
	if resync || len(evs) != 3 || evs[0].Mailbox != 7 || evs[1].Mailbox != 9 || evs[2].Kind != SubscriptionChanged {
		t.Fatalf("SubscribeAll took %+v (resync %v), want the three events in order", evs, resync)
	}
	if evs, _ := one.Take(); len(evs) != 1 {
		t.Errorf("mailbox 7's watcher took %d events, want 1", len(evs))
	}
	all.Close()
	h.Publish(Event{Mailbox: 7, User: 1, Kind: Appended, UIDs: []uint32{2}})
	if evs, _ := all.Take(); len(evs) != 0 {
		t.Errorf("closed SubscribeAll took %d events", len(evs))
	}
	if n := h.Subscriptions(); n != 1 {
		t.Errorf("Subscriptions() after Close = %d, want 1", n)
	}
	one.Close()
	if n := h.Subscriptions(); n != 0 {
		t.Errorf("Subscriptions() after closing both = %d, want 0", n)
	}
}

// TakeIf takes the whole queue or nothing: not when one event is refused,
// not when a resync is due; what it leaves, Take returns.
func TestTakeIfAllOrNothing(t *testing.T) {
	t.Parallel()
	notMailbox := func(ev *Event) bool { return ev.Kind != MailboxChanged }
	for _, tc := range []struct {
		name      string
		kinds     []Kind
		queueLen  int
		wantTaken bool
	}{
		{"empty", nil, 0, true},
		{"all accepted", []Kind{Appended, FlagsChanged, Expunged}, 0, true},
		{"one refused", []Kind{Appended, MailboxChanged, Appended}, 0, false},
		{"resync due", []Kind{Appended, Appended, Appended}, 2, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := New(tc.queueLen)
			s := h.Subscribe(1)
			defer s.Close()
			for i, k := range tc.kinds {
				h.Publish(Event{Mailbox: 1, Kind: k, ModSeq: uint64(i + 1)})
			}
			events, taken := s.TakeIf(notMailbox)
			if taken != tc.wantTaken {
				t.Fatalf("TakeIf() taken = %v, want %v", taken, tc.wantTaken)
			}
			if taken {
				if len(events) != len(tc.kinds) {
					t.Errorf("TakeIf() = %d events, want %d", len(events), len(tc.kinds))
				}
				if rest, resync := s.Take(); len(rest) != 0 || resync {
					t.Errorf("Take() after TakeIf = %d events, resync %v; want none", len(rest), resync)
				}
				return
			}
			if events != nil {
				t.Errorf("TakeIf() refused but returned %d events", len(events))
			}
			rest, resync := s.Take()
			if tc.queueLen == 0 && len(rest) != len(tc.kinds) || tc.queueLen > 0 && !resync {
				t.Errorf("Take() after a refused TakeIf = %d events, resync %v; want what was queued", len(rest), resync)
			}
		})
	}
}

func TestResync(t *testing.T) {
	h := New(0)
	mb := h.Subscribe(1)
	other := h.Subscribe(2)
	user := h.SubscribeUser(7, 0)
	defer mb.Close()
	defer other.Close()
	defer user.Close()
	h.Publish(Event{Mailbox: 1, User: 7, Kind: Appended, UIDs: []uint32{1}})
	h.Publish(Event{Mailbox: 2, User: 8, Kind: Appended, UIDs: []uint32{1}})

	var w Wakeups
	h.Resync(1, 7, &w)
	w.Wake()
	for _, s := range []*Subscription{mb, user} {
		if evs, resync := s.Take(); !resync || len(evs) != 0 {
			t.Errorf("after Resync: %d events, resync %v; want none and true", len(evs), resync)
		}
	}
	if evs, resync := other.Take(); resync || len(evs) != 1 {
		t.Errorf("another mailbox's watcher: %d events, resync %v; want its 1 event", len(evs), resync)
	}

	h.ResyncAll(&w)
	w.Wake()
	for _, s := range []*Subscription{mb, other, user} {
		select {
		case <-s.Ready():
		default:
			t.Error("ResyncAll woke no reader")
		}
		if _, resync := s.Take(); !resync {
			t.Error("ResyncAll: a subscription not marked")
		}
	}
	if got := h.Resyncs(); got != 5 {
		t.Errorf("Resyncs() = %d, want 5", got)
	}
}

// The server's own subscriptions act on their node's commits only: a
// resync for other nodes' events leaves them alone.
func TestResyncLeavesServerSubscriptions(t *testing.T) {
	h := New(0)
	all := h.SubscribeAll(0)
	defer all.Close()
	h.Publish(Event{Mailbox: 1, User: 7, Kind: Appended, UIDs: []uint32{1}})
	var w Wakeups
	h.Resync(1, 7, &w)
	h.ResyncAll(&w)
	w.Wake()
	if evs, resync := all.Take(); resync || len(evs) != 1 {
		t.Errorf("SubscribeAll after Resync: %d events, resync %v; want its event and no resync", len(evs), resync)
	}
}
