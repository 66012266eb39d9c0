package fanout

import (
	"sync"
	"sync/atomic"
	"testing"
)

// counter is a Target that counts its deliveries and checks that its
// worker's scratch is its own.
type counter struct {
	n    atomic.Int64
	done *sync.WaitGroup
}

type scratch struct{ busy atomic.Bool }

func (c *counter) Deliver(s *scratch) {
	if !s.busy.CompareAndSwap(false, true) {
		panic("a worker's scratch is in use by another delivery")
	}
	c.n.Add(1)
	s.busy.Store(false)
	c.done.Done()
}

// Every submitted Target runs once per Submit, from several submitters at
// once, on workers that each keep their own scratch; Close waits for the
// queue to drain and refuses later Submits.
func TestPoolDeliversEverySubmit(t *testing.T) {
	for _, workers := range []int{1, 2, 4} {
		p := New(workers, func() *scratch { return new(scratch) })
		var done sync.WaitGroup
		targets := make([]*counter, 500)
		for i := range targets {
			targets[i] = &counter{done: &done}
		}
		const rounds = 7
		done.Add(rounds * len(targets))
		var submitters sync.WaitGroup
		for r := range rounds {
			submitters.Go(func() {
				for i := range targets {
					if !p.Submit(targets[(i+r)%len(targets)]) {
						panic("Submit refused before Close")
					}
				}
			})
		}
		submitters.Wait()
		done.Wait()
		p.Close()
		for i, c := range targets {
			if n := c.n.Load(); n != rounds {
				t.Errorf("workers %d: target %d delivered %d times, want %d", workers, i, n, rounds)
			}
		}
		if got := p.Delivered(); got != rounds*uint64(len(targets)) {
			t.Errorf("workers %d: Delivered() = %d, want %d", workers, got, rounds*len(targets))
		}
		if p.Submit(targets[0]) {
			t.Errorf("workers %d: Submit after Close = true, want false", workers)
		}
		p.Close() // twice is fine
	}
}

// What is queued when Close is called still runs.
func TestPoolCloseDrains(t *testing.T) {
	p := New(1, func() *scratch { return new(scratch) })
	var done sync.WaitGroup
	c := &counter{done: &done}
	done.Add(1000)
	for range 1000 {
		p.Submit(c)
	}
	p.Close()
	if n := c.n.Load(); n != 1000 {
		t.Errorf("after Close, %d deliveries ran, want 1000", n)
	}
}

// BenchmarkSubmit measures the publisher's side: queueing one delivery.
func BenchmarkSubmit(b *testing.B) {
	p := New(2, func() *scratch { return new(scratch) })
	defer p.Close()
	var done sync.WaitGroup
	c := &counter{done: &done}
	done.Add(b.N)
	b.ResetTimer()
	for range b.N {
		p.Submit(c)
	}
	done.Wait()
}
