package notify

import (
	"sync/atomic"
	"testing"
)

// A hooked subscription is woken through its hook, never through Ready;
// a wake-up already in Ready goes to the hook as it is set, and Hook(nil)
// leaves one in Ready, so that no wake-up is lost across the hand-overs.
func TestHookTakesTheWakeUps(t *testing.T) {
	t.Parallel()
	h := New(0)
	s := h.Subscribe(1)
	defer s.Close()
	ready := func() bool {
		select {
		case <-s.Ready():
			return true
		default:
			return false
		}
	}

	h.Publish(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{1}})
	var calls atomic.Int32
	s.Hook(func() { calls.Add(1) })
	if n := calls.Load(); n != 1 {
		t.Fatalf("Hook with a wake-up pending in Ready called f %d times, want 1", n)
	}
	if ready() {
		t.Fatal("Ready still signalled after Hook took its wake-up")
	}

	var w Wakeups
	h.Enqueue(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{2}}, &w)
	h.Enqueue(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{3}}, &w)
	w.Wake()
	if n := calls.Load(); n != 2 {
		t.Fatalf("after one Wake, f called %d times in all, want 2", n)
	}
	if ready() {
		t.Fatal("Ready signalled while hooked")
	}
	if events, _ := s.Take(); len(events) != 3 {
		t.Fatalf("Take() = %d events, want 3", len(events))
	}

	s.Hook(nil)
	if !ready() {
		t.Fatal("Ready empty after Hook(nil), want a wake-up for what f may have been told")
	}
	h.Publish(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{4}})
	if n := calls.Load(); n != 2 {
		t.Errorf("f called after Hook(nil): %d calls, want 2", n)
	}
	if !ready() {
		t.Error("Ready not signalled by Publish after Hook(nil)")
	}
}

// Hook on an idle subscription calls nothing; Close drops the hook.
func TestHookWithoutEventsAndClose(t *testing.T) {
	t.Parallel()
	h := New(0)
	s := h.Subscribe(1)
	var calls atomic.Int32
	s.Hook(func() { calls.Add(1) })
	if n := calls.Load(); n != 0 {
		t.Fatalf("Hook on a quiet subscription called f %d times, want 0", n)
	}
	s.Close()
	h.Publish(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{1}})
	if n := calls.Load(); n != 0 {
		t.Errorf("f called %d times after Close, want 0", n)
	}
}
