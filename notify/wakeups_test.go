package notify

import (
	"fmt"
	"sync"
	"testing"
	"time"
)

// Enqueue makes events visible to Take at once but leaves the wake-up to
// Wakeups.Wake, which signals each subscriber once however many events it
// was given.
func TestEnqueueDefersTheWakeUp(t *testing.T) {
	t.Parallel()
	h := New(0)
	a := h.Subscribe(1)
	defer a.Close()
	b := h.Subscribe(1)
	defer b.Close()
	other := h.Subscribe(2)
	defer other.Close()

	var w Wakeups
	h.Enqueue(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{1}}, &w)
	h.Enqueue(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{2}}, &w)
	if w.Len() != 2 {
		t.Fatalf("Wakeups.Len() = %d after two events to two subscribers, want 2 (one entry each)", w.Len())
	}
	select {
	case <-a.Ready():
		t.Fatal("Ready signalled by Enqueue, before Wake")
	default:
	}

	w.Wake()
	if w.Len() != 0 {
		t.Errorf("Wakeups.Len() = %d after Wake, want 0", w.Len())
	}
	for name, s := range map[string]*Subscription{"a": a, "b": b} {
		select {
		case <-s.Ready():
		default:
			t.Fatalf("%s: Ready not signalled after Wake", name)
		}
		events, resync := s.Take()
		if resync || len(events) != 2 || events[0].UIDs[0] != 1 || events[1].UIDs[0] != 2 {
			t.Errorf("%s: Take() = %+v, %v; want the two events in order", name, events, resync)
		}
	}
	select {
	case <-other.Ready():
		t.Error("subscriber of mailbox 2 woken by events for mailbox 1")
	default:
	}
}

// A subscription waiting in one Wakeups is not listed by another: the
// pending wake-up covers the later events too. Once woken, it is listed
// again.
func TestWakeupsListASubscriptionOnceUntilWoken(t *testing.T) {
	t.Parallel()
	h := New(0)
	s := h.Subscribe(1)
	defer s.Close()

	var first, second Wakeups
	h.Enqueue(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{1}}, &first)
	h.Enqueue(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{2}}, &second)
	if first.Len() != 1 || second.Len() != 0 {
		t.Fatalf("Len() = %d, %d; want 1, 0 (listed once until woken)", first.Len(), second.Len())
	}
	first.Wake()
	<-s.Ready()
	if events, _ := s.Take(); len(events) != 2 {
		t.Fatalf("Take() after the first Wake = %d events, want both", len(events))
	}
	h.Enqueue(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{3}}, &second)
	if second.Len() != 1 {
		t.Fatalf("Len() = %d after the subscription was woken, want it listed again", second.Len())
	}
	second.Wake()
	<-s.Ready()
	if events, _ := s.Take(); len(events) != 1 || events[0].UIDs[0] != 3 {
		t.Fatalf("Take() = %+v, want the event for UID 3", events)
	}
}

func TestEnqueueSkipsClosedSubscriptions(t *testing.T) {
	t.Parallel()
	h := New(0)
	s := h.Subscribe(1)
	var w Wakeups
	h.Enqueue(Event{Mailbox: 1, Kind: Appended}, &w)
	s.Close()
	w.Wake() // must not panic or block on the closed subscription
	h.Enqueue(Event{Mailbox: 1, Kind: Appended}, &w)
	if w.Len() != 0 {
		t.Errorf("Len() = %d after the only subscription closed, want 0", w.Len())
	}
}

// The way mailstore uses it: one goroutine enqueues batches and hands each
// Wakeups to a waking goroutine, while a reader sleeps on Ready. No event
// may be left without a wake-up after it. Run with -race.
func TestEnqueueThenWakeElsewhereLosesNoWakeUp(t *testing.T) {
	t.Parallel()
	h := New(1 << 16)
	s := h.Subscribe(1)
	defer s.Close()
	const n = 5000

	handoff := make(chan *Wakeups, 4)
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { // publisher
		defer wg.Done()
		defer close(handoff)
		for i := uint32(1); i <= n; {
			w := new(Wakeups)
			for end := i + uint32(i%7); i <= end && i <= n; i++ {
				h.Enqueue(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{i}}, w)
			}
			handoff <- w
		}
	}()
	go func() { // waker
		defer wg.Done()
		for w := range handoff {
			w.Wake()
		}
	}()

	var next uint32 = 1
	deadline := time.After(30 * time.Second)
	for next <= n {
		select {
		case <-s.Ready():
		case <-deadline:
			t.Fatalf("no wake-up for events from UID %d on: a wake-up was lost", next)
		}
		events, resync := s.Take()
		if resync {
			t.Fatal("resync with a queue large enough for every event")
		}
		for _, ev := range events {
			if ev.UIDs[0] != next {
				t.Fatalf("got UID %d, want %d (publish order)", ev.UIDs[0], next)
			}
			next++
		}
	}
	wg.Wait()
}

// BenchmarkEnqueueFanOut is what the mailstore writer pays per committed
// event before it releases its callers (Enqueue), and what its waker
// goroutine pays after (Wake), with no goroutine parked on the
// subscriptions (see BenchmarkPublishFanOut's note in BENCHMARKS.md).
func BenchmarkEnqueueFanOut(b *testing.B) {
	for _, n := range []int{1, 100, 10000} {
		b.Run(fmt.Sprintf("subs=%d", n), func(b *testing.B) {
			h := New(0)
			subs := make([]*Subscription, n)
			for i := range subs {
				subs[i] = h.Subscribe(1)
			}
			var enqueue, wake time.Duration
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				var w Wakeups
				t0 := time.Now()
				h.Enqueue(Event{Mailbox: 1, Kind: Appended, UIDs: []uint32{uint32(i)}}, &w)
				t1 := time.Now()
				w.Wake()
				wake += time.Since(t1)
				enqueue += t1.Sub(t0)
				if i%64 == 0 {
					for _, s := range subs {
						s.Take()
					}
				}
			}
			b.ReportMetric(float64(enqueue.Nanoseconds())/float64(b.N), "enqueue-ns/op")
			b.ReportMetric(float64(wake.Nanoseconds())/float64(b.N), "wake-ns/op")
		})
	}
}
