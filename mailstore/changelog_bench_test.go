package mailstore

import (
	"context"
	"testing"
	"time"

	"pushmail/message"
	"pushmail/notify"
)

// loadChangeLogBench makes a mailbox of n messages, written straight
// through the writer in transactions of 10,000 (the bodies are one shared
// row: the change log reads none), and returns it with its highest modseq.
func loadChangeLogBench(b *testing.B, n int) (*Store, MailboxID, uint64) {
	b.Helper()
	ctx := context.Background()
	s := openTestStore(b, Options{})
	r := addUser(b, s, "bench@localhost")
	raw := testMessage(0)
	body, err := newBody(raw, message.Parse(raw), s.indexPacksText())
	if err != nil {
		b.Fatal(err)
	}
	var bodyID int64
	for done := 0; done < n; {
		batch := min(10_000, n-done)
		err := s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
			if bodyID == 0 {
				id, err := insertBodyTx(tx, body)
				if err != nil {
					return nil, err
				}
				bodyID = id
			}
			for i := range batch {
				fs := flagSet{bits: flagSeen}
				if (done+i)%100 == 0 {
					fs = flagSet{}
				}
				if _, _, err := insertMessageTx(tx, r.Mailbox, bodyID, fs, time.Unix(1_700_000_000, 0), len(raw)); err != nil {
					return nil, err
				}
			}
			return nil, nil
		})
		if err != nil {
			b.Fatalf("load: %v", err)
		}
		done += batch
	}
	return s, r.Mailbox, status(b, s, r.Mailbox).HighestModSeq
}

// BenchmarkChangesSince100k measures what a QRESYNC client reconnecting to
// a mailbox of 100,000 messages costs the store, when 100 things changed
// since its modseq: 60 messages reflagged, 20 expunged and 20 delivered.
// "changes" is ChangesSince (the changed messages' flags and the
// vanished UIDs, in one snapshot: SELECT … QRESYNC, UID FETCH …
// (CHANGEDSINCE m VANISHED)); "fetch-changedsince" is Messages with
// FetchOptions.ChangedSince (FETCH 1:* (FLAGS) (CHANGEDSINCE m));
// "full-fetch" is Messages of every message, what a client without
// CONDSTORE reads instead. Goal for the IMAP command end to end: ≤ 5 ms.
func BenchmarkChangesSince100k(b *testing.B) {
	const n = 100_000
	ctx := context.Background()
	s, mb, since := loadChangeLogBench(b, n)
	for i := range 60 {
		uid := UID(1 + i*1601)
		if _, err := s.StoreFlags(ctx, mb, UIDSetOf(uid), FlagsAdd, []string{FlagFlagged}, 0); err != nil {
			b.Fatal(err)
		}
	}
	var gone UIDSet
	for i := range 20 {
		gone = append(gone, UIDRange{UID(500 + i*4001), UID(500 + i*4001)})
	}
	if _, err := s.StoreFlags(ctx, mb, gone, FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		b.Fatal(err)
	}
	if _, err := s.Expunge(ctx, mb, gone, 0); err != nil {
		b.Fatal(err)
	}
	r, err := s.Resolve(ctx, "bench@localhost")
	if err != nil {
		b.Fatal(err)
	}
	for i := range 20 {
		if _, err := s.Deliver(ctx, testMessage(n+i), []Recipient{r}); err != nil {
			b.Fatal(err)
		}
	}

	b.Run("changes", func(b *testing.B) {
		var c Changes
		for b.Loop() {
			var err error
			if c, err = s.ChangesSince(ctx, mb, AllUIDs(), since); err != nil {
				b.Fatal(err)
			}
		}
		// 60 reflagged and 20 delivered; the 20 that were marked
		// \Deleted, then expunged, are among the vanished only.
		if len(c.Changed) != 80 || len(c.Vanished) != 20 || !c.VanishedKnown {
			b.Fatalf("ChangesSince = %d changed, %d vanished (known %v); want 80, 20, true", len(c.Changed), len(c.Vanished), c.VanishedKnown)
		}
	})
	b.Run("fetch-changedsince", func(b *testing.B) {
		got := 0
		for b.Loop() {
			got = 0
			if err := s.Messages(ctx, mb, AllUIDs(), FetchOptions{ChangedSince: since}, func(*Message) error { got++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		if got != 80 {
			b.Fatalf("Messages(ChangedSince) = %d messages, want 80", got)
		}
	})
	b.Run("full-fetch", func(b *testing.B) {
		got := 0
		for b.Loop() {
			got = 0
			if err := s.Messages(ctx, mb, AllUIDs(), FetchOptions{}, func(*Message) error { got++; return nil }); err != nil {
				b.Fatal(err)
			}
		}
		if got != n {
			b.Fatalf("Messages() = %d messages, want %d", got, n)
		}
	})
}
