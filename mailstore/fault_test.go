package mailstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
)

// When the database is full, deliveries fail with ErrStorageFull, every
// delivery acknowledged before is intact, reads keep working, and once
// space is freed deliveries succeed again.
func TestStorageFull(t *testing.T) {
	sqliteOnly(t)
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{MaxDatabaseBytes: 400 << 10})
	r := addUser(t, s, "u@localhost")
	big := bytes.Repeat([]byte("0123456789abcdef"), 1024) // 16 KiB of body

	acked := map[UID][]byte{}
	var mu sync.Mutex
	var full error
	var wg sync.WaitGroup
	// Concurrent writers, so batches hold several deliveries when the
	// disk fills: SQLite may abandon the whole transaction.
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 200; i++ {
				msg := fmt.Appendf(nil, "Subject: %d-%d\r\n\r\n%s\r\n", w, i, big)
				uids, err := s.Deliver(ctx, msg, []Recipient{r})
				mu.Lock()
				if err != nil {
					if full == nil {
						full = err
					}
					mu.Unlock()
					return
				}
				acked[uids[0]] = msg
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if !errors.Is(full, ErrStorageFull) {
		t.Fatalf("Deliver on a full store = %v, want ErrStorageFull", full)
	}
	// The cap counts the write-ahead log: the store stops near it with
	// both files together, overshooting by at most the batch that was
	// admitted last (4 writers, each message twice: log and database).
	if n, limit := onDisk(t, s), int64(400<<10+4*2*(len(big)+64)); n > limit {
		t.Errorf("database and write-ahead log take %d bytes when full, want at most %d", n, limit)
	}
	stored := storedBodies(t, s, r.Mailbox)
	for uid, msg := range acked {
		if !bytes.Equal(stored[uid], msg) {
			t.Errorf("acknowledged UID %d lost or changed after the store filled up", uid)
		}
	}
	if len(stored) != len(acked) {
		t.Errorf("%d messages stored, %d acknowledged: a failed delivery was kept", len(stored), len(acked))
	}
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := s.Status(ctx, r.Mailbox)
	if err != nil || int(st.Messages) != len(acked) {
		t.Errorf("Status() = %d messages, %v; want %d", st.Messages, err, len(acked))
	}

	// Free space: delete half, then deliveries work again.
	if _, err := s.StoreFlags(ctx, r.Mailbox, AllUIDs(), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatalf("StoreFlags on a full store = %v", err)
	}
	if _, err := s.Expunge(ctx, r.Mailbox, AllUIDs(), 0); err != nil {
		t.Fatalf("Expunge on a full store = %v", err)
	}
	if _, err := s.Deliver(ctx, []byte("Subject: after\r\n\r\nroom again\r\n"), []Recipient{r}); err != nil {
		t.Errorf("Deliver after freeing space = %v", err)
	}
}
