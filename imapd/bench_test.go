package imapd

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2/imapclient"
)

// BenchmarkPushLatency measures how long a client in IDLE waits for
// "* N EXISTS" after a delivery: from Deliver returning (the commit is
// durable and published) to the moment the last of the idling clients has
// read the response. The store publishes before Deliver returns, so a
// client may read it first; that counts as 0. deliver-p50 adds the
// delivery itself (one group-committed transaction with fsync).
func BenchmarkPushLatency(b *testing.B) {
	for _, idlers := range []int{1, 16} {
		b.Run(fmt.Sprintf("idlers=%d", idlers), func(b *testing.B) {
			env := newTestEnv(b, envOptions{})
			type receipt struct {
				client int
				n      uint32
				at     time.Time
			}
			got := make(chan receipt, 1024)
			for i := range idlers {
				c := env.selectInbox(b, &imapclient.Options{UnilateralDataHandler: &imapclient.UnilateralDataHandler{
					Mailbox: func(data *imapclient.UnilateralDataMailbox) {
						if data.NumMessages != nil {
							got <- receipt{i, *data.NumMessages, time.Now()}
						}
					},
				}})
				idle, err := c.Idle()
				if err != nil {
					b.Fatalf("Idle() = %v", err)
				}
				b.Cleanup(func() {
					if err := idle.Close(); err != nil {
						b.Errorf("Idle.Close() = %v", err)
					}
				})
			}
			msg := testMessage(1)
			var push, total []time.Duration
			for n := uint32(1); b.Loop(); n++ {
				start := time.Now()
				env.deliver(b, msg)
				delivered := time.Now()
				var last time.Time
				for seen := 0; seen < idlers; {
					r := wait(b, got, fmt.Sprintf("* %d EXISTS", n))
					if r.n != n {
						b.Fatalf("client %d: * %d EXISTS, want %d", r.client, r.n, n)
					}
					seen++
					if r.at.After(last) {
						last = r.at
					}
				}
				push = append(push, max(0, last.Sub(delivered)))
				total = append(total, last.Sub(start))
			}
			b.ReportMetric(percentile(push, 50).Seconds()*1e6, "p50-µs")
			b.ReportMetric(percentile(push, 99).Seconds()*1e6, "p99-µs")
			b.ReportMetric(percentile(total, 50).Seconds()*1e6, "deliver-p50-µs")
		})
	}
}

// percentile returns the p-th percentile of d (nearest rank).
func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	s := slices.Clone(d)
	slices.Sort(s)
	i := (len(s)*p + 99) / 100
	return s[max(0, min(i, len(s))-1)]
}
