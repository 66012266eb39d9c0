package smtpd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
)

// BenchmarkSMTPDeliver delivers b.N messages of 4 KB over SMTP from
// 1, 16 and 64 concurrent clients, each on its own connection, and reports
// messages per second, the latency of a whole transaction (MAIL to the
// 250 after DATA, which comes after the store's durable commit) and the
// CPU time of the process (server and clients) per message. The clients
// are go-smtp's, one command at a time, and, under pipelined/, a client
// that sends MAIL, RCPT and DATA in one write as MTAs do when the server
// offers PIPELINING (RFC 2920).
//
//	go test -tags sqlite_fts5 -run XXX -bench SMTPDeliver -benchtime 2000x ./smtpd/
func BenchmarkSMTPDeliver(b *testing.B) {
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			benchDeliver(b, clients, false)
		})
	}
	for _, clients := range []int{1, 16, 64} {
		b.Run(fmt.Sprintf("pipelined/clients=%d", clients), func(b *testing.B) {
			benchDeliver(b, clients, true)
		})
	}
}

// benchClient delivers one message to rcpt.
type benchClient func(rcpt string, msg []byte) error

func benchDeliver(b *testing.B, clients int, pipelined bool) {
	e := newEnv(b, envConfig{opts: Options{MaxConnsPerIP: clients + 1}})
	msg := testMessage("bench", 1)
	msg = append(msg, bytes.Repeat([]byte("0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcd\r\n"), (4096-len(msg))/64)...)
	rcpts := []string{"alice@example.org", "bob@example.org", "carol@example.org", "dave@example.org"}

	conns := make([]benchClient, clients)
	for i := range conns {
		nc, err := net.Dial("tcp", e.addr[roleMX])
		if err != nil {
			b.Fatalf("dial: %v", err)
		}
		if pipelined {
			conns[i] = pipelinedClient(b, nc)
			continue
		}
		c := smtp.NewClient(nc)
		if err := c.Hello("bench.test"); err != nil {
			b.Fatalf("EHLO: %v", err)
		}
		conns[i] = func(rcpt string, msg []byte) error { return deliverOne(c, rcpt, msg) }
		b.Cleanup(func() { c.Close() })
	}

	var next atomic.Int64
	latencies := make([][]time.Duration, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	cpu0 := processCPU(b)
	start := time.Now()
	for i, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for n := next.Add(1); n <= int64(b.N); n = next.Add(1) {
				t0 := time.Now()
				if err := c(rcpts[n%int64(len(rcpts))], msg); err != nil {
					errs <- err
					return
				}
				latencies[i] = append(latencies[i], time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	cpu := processCPU(b) - cpu0
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
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/msg")
}

// processCPU is the CPU time this process has used, user and system.
func processCPU(b *testing.B) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		b.Fatalf("getrusage: %v", err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// pipelinedClient says EHLO on nc and returns a client that sends MAIL,
// RCPT and DATA in one write, then the message and "." in another, and
// checks each reply (RFC 2920 §3.1). msg must need no dot-stuffing.
func pipelinedClient(b *testing.B, nc net.Conn) benchClient {
	b.Cleanup(func() { nc.Close() })
	r := textproto.NewReader(bufio.NewReader(nc))
	expect := func(want int) error {
		_, _, err := r.ReadResponse(want)
		return err
	}
	if err := expect(220); err != nil {
		b.Fatalf("greeting: %v", err)
	}
	if _, err := io.WriteString(nc, "EHLO bench.test\r\n"); err != nil {
		b.Fatal(err)
	}
	_, ehlo, err := r.ReadResponse(250)
	if err != nil || !strings.Contains(ehlo, "\nPIPELINING") {
		b.Fatalf("EHLO = %q, %v; want PIPELINING offered", ehlo, err)
	}
	var out []byte
	return func(rcpt string, msg []byte) error {
		if bytes.Contains(msg, []byte("\n.")) || !bytes.HasSuffix(msg, []byte("\r\n")) {
			return errors.New("pipelinedClient: the message needs dot-stuffing or a final CRLF")
		}
		out = append(out[:0], "MAIL FROM:<sender@remote.example>\r\nRCPT TO:<"+rcpt+">\r\nDATA\r\n"...)
		if _, err := nc.Write(out); err != nil {
			return err
		}
		for _, want := range []int{250, 250, 354} {
			if err := expect(want); err != nil {
				return err
			}
		}
		out = append(append(out[:0], msg...), ".\r\n"...)
		if _, err := nc.Write(out); err != nil {
			return err
		}
		return expect(250)
	}
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
