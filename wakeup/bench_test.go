package wakeup

import (
	"context"
	"net"
	"path/filepath"
	"runtime"
	"slices"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/mailstore"
)

// BenchmarkDeliverWithDeadEndpoints measures what a dead endpoint costs
// the rest of the server: each op is one delivery (the store's durable
// commit, what SMTP's 250 waits for) and reports the delivery's latency
// and the latency from the commit to a mailbox watcher's event (what an
// IDLE session's push waits for). "none" runs without the engine;
// "dead" with a webhook and a relay whose endpoint accepts connections
// and never answers, and a user with a device token, so every delivery
// queues wake-ups that can never leave. The dead run also reports the
// queued wake-ups and the heap in use at the end: bounded by coalescing
// and MaxPending, not by the number of deliveries.
//
//	go test -run '^$' -bench DeliverWithDeadEndpoints -benchtime 10000x ./wakeup
func BenchmarkDeliverWithDeadEndpoints(b *testing.B) {
	for _, dead := range []bool{false, true} {
		name := "none"
		if dead {
			name = "dead"
		}
		b.Run(name, func(b *testing.B) {
			ctx := context.Background()
			s, err := mailstore.Open(ctx, filepath.Join(b.TempDir(), "store.db"), mailstore.Options{PasswordCost: bcrypt.MinCost})
			if err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			if _, err := s.AddUser(ctx, "alice@localhost", "secret"); err != nil {
				b.Fatal(err)
			}
			r, err := s.Resolve(ctx, "alice@localhost")
			if err != nil {
				b.Fatal(err)
			}
			var eng *Engine
			if dead {
				// A black hole: accepts, reads nothing, answers nothing.
				ln, err := net.Listen("tcp", "127.0.0.1:0")
				if err != nil {
					b.Fatal(err)
				}
				defer ln.Close()
				var held []net.Conn
				go func() {
					for {
						c, err := ln.Accept()
						if err != nil {
							return
						}
						held = append(held, c)
					}
				}()
				url := "http://" + ln.Addr().String()
				inbox, err := s.Mailbox(ctx, r.User, "INBOX")
				if err != nil {
					b.Fatal(err)
				}
				if err := s.SetMetadata(ctx, r.User, inbox.ID, []mailstore.MetadataEntry{{Name: DeviceTokenEntry, Value: []byte("tok")}}); err != nil {
					b.Fatal(err)
				}
				eng, err = New(Options{Store: s, Hub: s.Hub(), Webhooks: []Webhook{{URL: url + "/hook", Users: []string{"*"}}},
					Relay: &Relay{URL: url + "/relay"}, RequestTimeout: time.Hour,
					States: func(context.Context, mailstore.UserID) (string, map[string]string, error) {
						return "A1", map[string]string{"Email": "1"}, nil
					}})
				if err != nil {
					b.Fatal(err)
				}
				if err := eng.Start(ctx); err != nil {
					b.Fatal(err)
				}
			}
			watch := s.Hub().Subscribe(int64(r.Mailbox))
			defer watch.Close()
			msg := []byte("From: bob@example.org\r\nSubject: load\r\n\r\nbody\r\n")
			commits := make([]time.Duration, 0, b.N)
			pushes := make([]time.Duration, 0, b.N)
			b.ResetTimer()
			for range b.N {
				start := time.Now()
				if _, err := s.Deliver(ctx, msg, []mailstore.Recipient{r}); err != nil {
					b.Fatal(err)
				}
				commits = append(commits, time.Since(start))
				<-watch.Ready()
				evs, _ := watch.Take()
				pushes = append(pushes, time.Since(evs[len(evs)-1].Committed))
			}
			b.StopTimer()
			p99 := func(d []time.Duration) float64 {
				slices.Sort(d)
				return float64(d[len(d)*99/100].Microseconds())
			}
			b.ReportMetric(p99(commits), "deliver-p99-µs")
			b.ReportMetric(p99(pushes), "push-p99-µs")
			if eng != nil {
				pending := 0
				for _, n := range eng.Pending() {
					pending += n
				}
				runtime.GC()
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				b.ReportMetric(float64(pending), "queued")
				b.ReportMetric(float64(ms.HeapInuse)/(1<<20), "heap-MiB")
				eng.Close()
			}
		})
	}
}
