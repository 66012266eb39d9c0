package membudget

import (
	"sync"
	"testing"
)

func TestBudget(t *testing.T) {
	t.Parallel()
	b := New(100)
	steps := []struct {
		name    string
		acquire int64 // acquire this much, or release -acquire
		ok      bool
		inUse   int64
	}{
		{"first", 60, true, 60},
		{"over the rest", 41, false, 60},
		{"exactly the rest", 40, true, 100},
		{"nothing left", 1, false, 100},
		{"zero always fits", 0, true, 100},
		{"release", -60, true, 40},
		{"fits again", 60, true, 100},
	}
	for _, s := range steps {
		ok := true
		if s.acquire >= 0 {
			ok = b.TryAcquire(s.acquire)
		} else {
			b.Release(-s.acquire)
		}
		if ok != s.ok || b.InUse() != s.inUse {
			t.Fatalf("%s: ok %v, InUse %d; want %v, %d", s.name, ok, b.InUse(), s.ok, s.inUse)
		}
	}
}

// TestBudgetConcurrent checks that concurrent holders never exceed the
// limit together and that everything released adds up to zero.
func TestBudgetConcurrent(t *testing.T) {
	t.Parallel()
	const limit = 1000
	b := New(limit)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10000 {
				if b.TryAcquire(300) {
					if u := b.InUse(); u > limit {
						t.Errorf("InUse %d > limit %d", u, limit)
					}
					b.Release(300)
				}
			}
		})
	}
	wg.Wait()
	if u := b.InUse(); u != 0 {
		t.Errorf("InUse after all releases = %d, want 0", u)
	}
}
