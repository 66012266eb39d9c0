package mailstore

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// BenchmarkSortInfoFirst100k measures the first SortInfo of a mailbox of
// 100,000 messages, each with a body of its own (the cache emptied before
// every call): what SORT (DATE) and THREAD=REFERENCES (RFC 5256) read
// before they can sort. Goal (issue 16): the whole command ≤ 300 ms.
func BenchmarkSortInfoFirst100k(b *testing.B) {
	s := openTestStore(b, Options{})
	r := addUser(b, s, "u@localhost")
	ctx := context.Background()
	const n, writers = 100_000, 32
	var next atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for range writers {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < n; i = int(next.Add(1) - 1) {
				msg := fmt.Sprintf("From: Sender %d <s%d@example.org>\r\nTo: <u@localhost>\r\nSubject: Re: note %d\r\n"+
					"Date: Mon, 04 Mar 2024 09:%02d:00 +0000\r\nMessage-ID: <m%d@example.org>\r\nReferences: <m%d@example.org>\r\n\r\nbody %d\r\n",
					i%97, i%97, i/10, i%60, i, i-i%10, i)
				if _, err := s.Append(ctx, r.Mailbox, []byte(msg), nil, time.Time{}, 0); err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		b.Fatal(err)
	}
	uids, err := s.UIDs(ctx, r.Mailbox)
	if err != nil || len(uids) != n {
		b.Fatalf("UIDs() = %d UIDs, %v; want %d", len(uids), err, n)
	}
	for _, c := range []struct {
		name string
		f    SortFields
	}{
		{"date", SortFields{Sent: true}},
		{"threading", SortFields{Sent: true, Subject: true, Threading: true}},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				s.sorts.drop(r.Mailbox)
				infos, err := s.SortInfo(ctx, r.Mailbox, uids, c.f)
				if err != nil || len(infos) != n {
					b.Fatalf("SortInfo() = %d, %v; want %d", len(infos), err, n)
				}
			}
		})
	}
}
