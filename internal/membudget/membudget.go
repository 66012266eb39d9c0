// Package membudget bounds the memory that message bodies in transit may
// hold, across the whole process. One Budget is meant to be shared by
// every protocol that receives messages (smtpd's SMTP, LMTP and
// submission, and later IMAP APPEND), so that clients of all of them
// together cannot hold more than its limit.
//
// A Budget is a counter, not an allocator: callers acquire the number of
// bytes they are about to hold before they allocate them, and release
// the same number once nothing refers to them. Acquire never waits: a
// caller that is refused answers "try again later" (RFC 3463 4.3.1) or
// keeps the bytes elsewhere, on disk.
package membudget

import (
	"fmt"
	"sync/atomic"
)

// Budget counts the bytes held against a limit. Create it with New; it
// is safe for concurrent use.
type Budget struct {
	limit int64
	used  atomic.Int64
}

// New returns a Budget of limit bytes; limit must be positive.
func New(limit int64) *Budget {
	if limit <= 0 {
		panic(fmt.Sprintf("membudget: limit %d, want > 0", limit))
	}
	return &Budget{limit: limit}
}

// TryAcquire takes n bytes of the budget if that many are free, and
// reports whether it did. n must not be negative.
func (b *Budget) TryAcquire(n int64) bool {
	for {
		used := b.used.Load()
		if used+n > b.limit {
			return false
		}
		if b.used.CompareAndSwap(used, used+n) {
			return true
		}
	}
}

// Release gives back n bytes taken with TryAcquire.
func (b *Budget) Release(n int64) {
	if b.used.Add(-n) < 0 {
		panic("membudget: released more than was acquired")
	}
}

// InUse is the number of bytes held now.
func (b *Budget) InUse() int64 { return b.used.Load() }

// Limit is the budget's size in bytes.
func (b *Budget) Limit() int64 { return b.limit }
