package smtpd

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// BenchmarkSMTPDeliver delivers b.N messages of 4 KB over SMTP from
// 1, 16 and 64 concurrent clients, each on its own connection, and reports
// messages per second and the latency of a whole transaction (MAIL to the
// 250 after DATA, which comes after the store's durable commit).
//
//	go test -run XXX -bench SMTPDeliver -benchtime 2000x ./smtpd/
func BenchmarkSMTPDeliver(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchDeliver(b, clients)
		})
	}
}

func benchDeliver(b *testing.B, clients int) {
	e := newEnv(b, envConfig{opts: Options{MaxConnsPerIP: clients + 1}})
	msg := testMessage("bench", 1)
	msg = append(msg, bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), (4096-len(msg))/64)...)
	rcpts := []string{"alice@example.org", "bob@example.org", "carol@example.org", "dave@example.org"}

	conns := make([]*smtp.Client, clients)
	for i := range conns {
		nc, err := net.Dial("tcp", e.addr[roleMX])
		if err != nil {
			b.Fatalf("dial: %v", err)
		}
		c := smtp.NewClient(nc)
		if err := c.Hello("bench.test"); err != nil {
			b.Fatalf("EHLO: %v", err)
		}
		conns[i] = c
		b.Cleanup(func() { c.Close() })
	}

	var next atomic.Int64
	latencies := make([][]time.Duration, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				t0 := time.Now()
				if err := deliverOne(c, rcpts[n%int64(len(rcpts))], msg); err != nil {
					errs <- err
					return
				}
				latencies[i] = append(latencies[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	b.StopTimer()
	close(errs)
	for err := range errs {
		b.Fatalf("deliver: %v", err)
	}
	all := slices.Concat(latencies...)
	slices.Sort(all)
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "msgs/s")
	b.ReportMetric(float64(all[len(all)/2].Microseconds())/1000, "p50-ms")
	b.ReportMetric(float64(all[len(all)*99/100].Microseconds())/1000, "p99-ms")
}

func deliverOne(c *smtp.Client, rcpt string, msg []byte) error {
	if err := c.Mail("sender@remote.example", nil); err != nil {
		return err
	}
	if err := c.Rcpt(rcpt, nil); err != nil {
		return err
	}
	w, err := c.Data()
	if err != nil {
		return err
	}
	if _, err := w.Write(msg); err != nil {
		return err
	}
	return w.Close()
}
