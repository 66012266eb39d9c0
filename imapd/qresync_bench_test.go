package imapd

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"pushmail/mailstore"
)

// BenchmarkQResyncReconnect100k measures a QRESYNC client's reconnect to
// a mailbox of 100,000 messages with 100 changes since its modseq (60
// reflagged, 20 expunged, 20 delivered): one SELECT INBOX (QRESYNC …),
// from the command's first byte to its tagged OK, over loopback TCP.
// "select" is the same SELECT without QRESYNC, for comparison; "full" is
// what a client without QRESYNC adds to it: UID FETCH 1:* (FLAGS).
// Goal (issue 16): ≤ 5 ms for the QRESYNC SELECT.
func BenchmarkQResyncReconnect100k(b *testing.B) {
	env := newTestEnv(b, envOptions{})
	ctx := context.Background()
	const n, perDelivery = 100_000, 1000
	rcpts := make([]mailstore.Recipient, perDelivery)
	for i := range rcpts {
		rcpts[i] = env.inbox
	}
	raw := testMessage(0)
	for range n / perDelivery {
		if _, err := env.store.Deliver(ctx, raw, rcpts); err != nil {
			b.Fatalf("Deliver = %v", err)
		}
	}
	mb := env.mailbox(b, "INBOX")
	st, err := env.store.Status(ctx, mb.ID)
	if err != nil {
		b.Fatal(err)
	}
	since := st.HighestModSeq
	for i := range 60 {
		uid := mailstore.UID(1 + i*1500)
		if _, err := env.store.StoreFlags(ctx, mb.ID, mailstore.UIDSetOf(uid), mailstore.FlagsAdd, []string{mailstore.FlagSeen}, 0); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 20 {
		uid := mailstore.UID(7 + i*4000)
		if _, err := env.store.StoreFlags(ctx, mb.ID, mailstore.UIDSetOf(uid), mailstore.FlagsAdd, []string{mailstore.FlagDeleted}, 0); err != nil {
			b.Fatal(err)
		}
		if _, err := env.store.Expunge(ctx, mb.ID, mailstore.UIDSetOf(uid), 0); err != nil {
			b.Fatal(err)
		}
	}
	if _, err := env.store.Deliver(ctx, raw, rcpts[:20]); err != nil {
		b.Fatal(err)
	}
	c := env.raw(b)
	c.ok("ENABLE QRESYNC")
	check := func(lines []string) {
		vanished, fetched := 0, 0
		for _, l := range lines {
			if strings.HasPrefix(l, "* VANISHED (EARLIER) ") {
				vanished += strings.Count(l, ",") + 1
			}
			if strings.Contains(l, " FETCH (UID ") {
				fetched++
			}
		}
		// 60 reflagged plus 20 new; the 20 expunged are not adjacent.
		if vanished != 20 || fetched != 80 {
			b.Fatalf("QRESYNC SELECT: %d vanished, %d fetched, want 20 and 80", vanished, fetched)
		}
	}
	check(c.ok("SELECT INBOX (QRESYNC (%d %d))", mb.UIDValidity, since))
	b.Run("qresync", func(b *testing.B) {
		for b.Loop() {
			c.ok("SELECT INBOX (QRESYNC (%d %d))", mb.UIDValidity, since)
		}
	})
	b.Run("select", func(b *testing.B) {
		for b.Loop() {
			c.ok("SELECT INBOX")
		}
	})
	b.Run("full", func(b *testing.B) {
		for b.Loop() {
			c.ok("SELECT INBOX")
			if lines := c.ok("UID FETCH 1:* (FLAGS)"); len(lines) < n {
				b.Fatal(fmt.Sprint("UID FETCH returned ", len(lines), " lines"))
			}
		}
	})
}
