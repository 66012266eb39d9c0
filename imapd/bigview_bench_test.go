package imapd

import (
	"context"
	"fmt"
	"runtime"
	"testing"
	"time"

	"pushmail/mailstore"
)

// BenchmarkBigMailboxSession measures what a session in IDLE on a mailbox
// of 50,000 messages holds in the server: heap in use per session after
// b.N sessions selected it, and again after a delivery and an expunge by
// another session reached all of them. Sessions share the store's UID
// list (mailstore.UIDList); a view of its own would cost 200 KB each
// (50,000 four-byte UIDs). Run with -benchtime 200x or so.
func BenchmarkBigMailboxSession(b *testing.B) {
	store, inbox, addr := newCostEnv(b)
	ctx := context.Background()
	const n, perDelivery = 50_000, 1000
	rcpts := make([]mailstore.Recipient, perDelivery)
	for i := range rcpts {
		rcpts[i] = inbox
	}
	for range n / perDelivery {
		if _, err := store.Deliver(ctx, testMessage(0), rcpts); err != nil {
			b.Fatalf("Deliver() = %v", err)
		}
	}
	// One session first: the list read once is not any session's cost.
	first := dialIdle(b, addr)
	b.Cleanup(func() { first.conn.Close() })
	var before, selected, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	clients := make([]*idleClient, 0, b.N)
	b.Cleanup(func() {
		for _, c := range clients {
			c.conn.Close()
		}
	})
	for b.Loop() {
		clients = append(clients, dialIdle(b, addr))
	}
	b.StopTimer()
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&selected)

	if _, err := store.Deliver(ctx, testMessage(1), []mailstore.Recipient{inbox}); err != nil {
		b.Fatalf("Deliver() = %v", err)
	}
	if _, err := store.StoreFlags(ctx, inbox.Mailbox, mailstore.UIDSetOf(7), mailstore.FlagsAdd, []string{mailstore.FlagDeleted}, 0); err != nil {
		b.Fatal(err)
	}
	if _, err := store.Expunge(ctx, inbox.Mailbox, mailstore.UIDSetOf(7), 0); err != nil {
		b.Fatal(err)
	}
	for _, c := range append(clients, first) {
		if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
			b.Fatal(err)
		}
		c.expect(b, fmt.Sprintf("* %d EXISTS", n+1))
		c.expect(b, "* 7 EXPUNGE")
	}
	runtime.GC()
	runtime.GC()
	runtime.ReadMemStats(&after)
	k := float64(len(clients))
	b.ReportMetric((float64(selected.HeapInuse)-float64(before.HeapInuse))/k, "heap-B/session")
	b.ReportMetric((float64(after.HeapInuse)-float64(before.HeapInuse))/k, "heap-B/session-after-changes")
}
