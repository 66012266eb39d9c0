package fanout

import (
	"slices"
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
					if !p.Submit(uint64(i%3), targets[(i+r)%len(targets)]) {
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
		if p.Submit(0, targets[0]) {
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
	for i := range 1000 {
		p.Submit(uint64(i%7), c)
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
		p.Submit(1, c)
	}
	done.Wait()
}

// gate is a Target that blocks its worker until released.
type gate struct {
	started, release chan struct{}
}

func (g *gate) Deliver(*scratch) {
	close(g.started)
	<-g.release
}

// order records the group of each delivery, in order.
type order struct {
	mu   *sync.Mutex
	seen *[]int
	id   int
	done *sync.WaitGroup
}

func (o order) Deliver(*scratch) {
	o.mu.Lock()
	*o.seen = append(*o.seen, o.id)
	o.mu.Unlock()
	o.done.Done()
}

// Groups take turns a chunk at a time: one watcher of mailbox B, queued
// after ten thousand of mailbox A, runs after A's first chunk, not after
// all of A.
func TestGroupsTakeTurns(t *testing.T) {
	p := New(1, func() *scratch { return new(scratch) })
	defer p.Close()
	// Hold the one worker until everything is queued.
	g := &gate{started: make(chan struct{}), release: make(chan struct{})}
	p.Submit(0, g)
	<-g.started
	var mu sync.Mutex
	var seen []int
	var done sync.WaitGroup
	const many = 10000
	done.Add(many + 1)
	for range many {
		p.Submit(1, order{&mu, &seen, 1, &done})
	}
	p.Submit(2, order{&mu, &seen, 2, &done})
	close(g.release)
	done.Wait()
	mu.Lock()
	defer mu.Unlock()
	at := slices.Index(seen, 2)
	if at < 0 || at > chunk {
		t.Errorf("the one target of group 2 ran %d-th, after %d of group 1's; want after one chunk (%d) at most", at+1, at, chunk)
	}
	if len(seen) != many+1 {
		t.Errorf("%d deliveries, want %d", len(seen), many+1)
	}
}
