package smtpd

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-smtp"
	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"pushmail/internal/membudget"
)

// bigMessage returns a message of about n bytes of varied text lines,
// some starting with a dot (unstuffed by go-smtp on DATA).
func bigMessage(subject string, n int) []byte {
	rng := rand.New(rand.NewPCG(1, uint64(n)))
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: sender@remote.example\r\nTo: alice@example.org\r\nSubject: %s\r\n\r\n", subject)
	const chars = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 .,;:-+/="
	line := make([]byte, 0, 100)
	for b.Len() < n {
		line = line[:0]
		if rng.IntN(50) == 0 {
			line = append(line, '.')
		}
		for range 20 + rng.IntN(70) {
			line = append(line, chars[rng.IntN(len(chars))])
		}
		b.Write(line)
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// spoolFiles lists what the test process holds in dir: the directory's
// entries, and on Linux the files of dir it has open, removed or not.
// The server runs in the test process, so its spool files are among them.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatalf("read spool directory: %v", err)
	}
	var files []string
	for _, e := range entries {
		files = append(files, e.Name())
	}
	fds, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return files // not Linux: the directory alone
	}
	for _, fd := range fds {
		target, err := os.Readlink("/proc/self/fd/" + fd.Name())
		if err == nil && strings.HasPrefix(target, dir+string(filepath.Separator)) {
			files = append(files, "open: "+target)
		}
	}
	return files
}

// spoolEnv is a server that spools every message over 64 KiB into a
// directory of its own, and counts the transfers that did.
func spoolEnv(t *testing.T, opts Options) (e *testEnv, dir string, spooled chan struct{}) {
	dir = t.TempDir()
	opts.SpoolDir = dir
	opts.SpoolThreshold = dataBufSize
	spooled = make(chan struct{}, 10)
	e = newEnv(t, envConfig{opts: opts, setup: func(s *Server) {
		s.onSpool = func() { spooled <- struct{}{} }
	}})
	return e, dir, spooled
}

// TestSpooledMessage sends messages far over the spool threshold by
// DATA, BDAT and LMTP: each is spooled, stored byte for byte, and leaves
// nothing in the spool directory.
func TestSpooledMessage(t *testing.T) {
	t.Parallel()
	e, dir, spooled := spoolEnv(t, Options{MaxMessageBytes: 8 << 20})
	msg := bigMessage("spooled", 3<<20)
	unstuffed := msg // what DATA stores: go-smtp's client stuffs, the server unstuffs
	for _, tc := range []struct {
		name, rcpt string
		send       func(rcpt string) error
	}{
		{"DATA", "alice@example.org", func(rcpt string) error {
			return send(t, e.dial(roleMX), "sender@remote.example", []string{rcpt}, msg)
		}},
		{"BDAT", "bob@example.org", func(rcpt string) error {
			r := dialRaw(t, e.addr[roleMX])
			r.expect(220, "")
			r.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<" + rcpt + ">\r\n")
			r.expect(250, "")
			r.expect(250, "")
			r.expect(250, "")
			half := len(msg) / 2
			r.send("BDAT " + strconv.Itoa(half) + "\r\n" + string(msg[:half]))
			r.expect(250, "")
			r.send("BDAT " + strconv.Itoa(len(msg)-half) + " LAST\r\n" + string(msg[half:]))
			r.expect(250, "2.0.0")
			return nil
		}},
		{"LMTP", "carol@example.org", func(rcpt string) error {
			return send(t, e.dial(roleLMTP), "sender@remote.example", []string{rcpt}, msg)
		}},
	} {
		if err := tc.send(tc.rcpt); err != nil {
			t.Fatalf("%s: send = %v, want success", tc.name, err)
		}
		select {
		case <-spooled:
		default:
			t.Errorf("%s: message of %d bytes was not spooled", tc.name, len(msg))
		}
		_, got := cutTrace(t, e.only(tc.rcpt), "sender@remote.example", tc.rcpt)
		if !bytes.Equal(got, unstuffed) {
			t.Errorf("%s: stored message (%d bytes) differs from the one sent (%d bytes)", tc.name, len(got), len(unstuffed))
		}
		if files := spoolFiles(t, dir); len(files) != 0 {
			t.Errorf("%s: spool directory holds %q after delivery, want nothing", tc.name, files)
		}
	}
	if n := e.srv.budget.InUse(); n != 0 {
		t.Errorf("budget in use after the deliveries = %d, want 0", n)
	}
}

// TestSpoolAbortedTransfer breaks off a transfer after it was spooled:
// nothing stays in the spool directory, open or not.
func TestSpoolAbortedTransfer(t *testing.T) {
	t.Parallel()
	e, dir, spooled := spoolEnv(t, Options{MaxMessageBytes: 8 << 20})
	r := dialRaw(t, e.addr[roleMX])
	r.expect(220, "")
	r.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(354, "")
	r.send(string(bigMessage("aborted", 1<<20)))
	select {
	case <-spooled:
	case <-time.After(30 * time.Second):
		t.Fatal("transfer of 1 MiB was not spooled")
	}
	if err := r.nc.Close(); err != nil {
		t.Fatal(err)
	}
	e.shutdown() // waits for the session to end
	if files := spoolFiles(t, dir); len(files) != 0 {
		t.Errorf("spool directory holds %q after an aborted transfer, want nothing", files)
	}
	if msgs := e.inbox("alice@example.org"); len(msgs) != 0 {
		t.Errorf("INBOX has %d messages after an aborted transfer, want 0", len(msgs))
	}
	if n := e.srv.budget.InUse(); n != 0 {
		t.Errorf("budget in use after the aborted transfer = %d, want 0", n)
	}
}

// TestInflightBudget spends the budget (as other transfers, or IMAP,
// would) at each point where the server takes from it, checks the 451
// 4.3.1 there, and that the same connection delivers once it is free.
func TestInflightBudget(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	small := testMessage("budget", 300) // ~17 KB: fits the first buffer, not in 10 KiB
	for _, tc := range []struct {
		name  string
		stage string
		// take is held by the test before MAIL; more is taken between
		// RCPT and DATA.
		take, more int64
	}{
		{"at MAIL: not even one buffer free", refusedAtMail, limit - dataBufSize + 1, 0},
		{"at DATA: spent after RCPT", refusedAtData, 0, limit - dataBufSize + 1},
		{"at delivery: the message fits, its delivery does not", refusedAtDeliver, limit - dataBufSize - 10<<10, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			budget := membudget.New(limit)
			reg := prometheus.NewRegistry()
			e := newEnv(t, envConfig{opts: Options{Budget: budget, Metrics: NewMetrics(reg)}})
			c := e.dial(roleMX)
			if !budget.TryAcquire(tc.take + tc.more) {
				t.Fatal("TryAcquire failed on an unused budget")
			}
			budget.Release(tc.more) // held again between RCPT and DATA
			err := c.Mail("sender@remote.example", &smtp.MailOptions{Size: int64(len(small))})
			if tc.stage == refusedAtMail {
				wantReply(t, "MAIL", err, 451, "4.3.1")
			} else {
				wantReply(t, "MAIL", err, 0, "")
				wantReply(t, "RCPT", c.Rcpt("alice@example.org", nil), 0, "")
				if !budget.TryAcquire(tc.more) {
					t.Fatal("TryAcquire of what the test released failed")
				}
				w, err := c.Data()
				if err != nil {
					t.Fatalf("DATA: %v", err)
				}
				if _, err := w.Write(small); err != nil {
					t.Fatalf("write DATA: %v", err)
				}
				se := wantReply(t, "end of DATA", w.Close(), 451, "4.3.1")
				if se.Message != "Insufficient system resources, try again later" {
					t.Errorf("reply text %q", se.Message)
				}
			}
			if got := counterValue(t, reg, "pushmail_smtp_inflight_refusals_total", "proto=smtp stage="+tc.stage); got != 1 {
				t.Errorf("refusals at %s = %v, want 1", tc.stage, got)
			}
			if err := c.Reset(); err != nil {
				t.Fatalf("RSET after the refusal: %v", err)
			}

			// Recovery: once the budget is free, the same connection delivers.
			budget.Release(tc.take + tc.more)
			if err := send(t, c, "sender@remote.example", []string{"alice@example.org"}, small); err != nil {
				t.Fatalf("send after the budget was freed = %v, want success", err)
			}
			if _, got := cutTrace(t, e.only("alice@example.org"), "sender@remote.example", "alice@example.org"); !bytes.Equal(got, small) {
				t.Errorf("stored message differs from the one sent")
			}
			if n := budget.InUse(); n != 0 {
				t.Errorf("budget in use after the delivery = %d, want 0", n)
			}
			if got := counterValue(t, reg, "pushmail_smtp_inflight_bytes", ""); got != 0 {
				t.Errorf("pushmail_smtp_inflight_bytes after the delivery = %v, want 0", got)
			}
		})
	}
}

// counterValue reads one series of a counter or gauge from reg; labels
// is "name=value ..." in the registry's order, "" for none.
func counterValue(t *testing.T, reg *prometheus.Registry, name, labels string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatalf("Gather: %v", err)
	}
	for _, f := range fams {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelString(m) != labels {
				continue
			}
			if m.GetCounter() != nil {
				return m.GetCounter().GetValue()
			}
			return m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no series %s{%s}", name, labels)
	return 0
}

func labelString(m *dto.Metric) string {
	var parts []string
	for _, l := range m.GetLabel() {
		parts = append(parts, l.GetName()+"="+l.GetValue())
	}
	return strings.Join(parts, " ")
}

// TestOversizeClosesEarly sends far more DATA than the limit, without
// SIZE=: the server answers 552 5.3.4 and closes the connection once the
// limit is passed (RFC 1870 §6.3), so the client cannot write it all.
func TestOversizeClosesEarly(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	const total = 256 << 20 // far more than loopback socket buffers hold
	e := newEnv(t, envConfig{opts: Options{MaxMessageBytes: limit}})
	r := dialRaw(t, e.addr[roleMX])
	r.expect(220, "")
	r.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nDATA\r\n")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(354, "")

	written := make(chan error, 1)
	var sent int64
	go func() {
		line := []byte(strings.Repeat("x", 998) + "\r\n")
		chunk := bytes.Repeat(line, 64)
		for sent < total {
			n, err := r.nc.Write(chunk)
			sent += int64(n)
			if err != nil {
				written <- err
				return
			}
		}
		_, err := io.WriteString(r.nc, ".\r\n")
		written <- err
	}()
	r.expect(552, "5.3.4")
	r.expectEOF()
	err := <-written
	if err == nil {
		t.Fatalf("client wrote all %d bytes and the end of data, want the connection closed early", total)
	}
	t.Logf("client wrote %d of %d bytes before the write failed: %v", sent, total, err)
	if msgs := e.inbox("alice@example.org"); len(msgs) != 0 {
		t.Errorf("INBOX has %d messages, want 0", len(msgs))
	}
}

// TestOversizeBDATClosesEarly: a BDAT chunk declared over the limit is
// refused from its size, 552, and the connection closed (RFC 1870 §6.3):
// go-smtp alone would read and drop the whole chunk, up to 4 GB, first.
func TestOversizeBDATClosesEarly(t *testing.T) {
	t.Parallel()
	const limit = 1 << 20
	e := newEnv(t, envConfig{opts: Options{MaxMessageBytes: limit}})
	r := dialRaw(t, e.addr[roleMX])
	r.expect(220, "")
	r.send("EHLO client.test\r\nMAIL FROM:<sender@remote.example>\r\nRCPT TO:<alice@example.org>\r\nBDAT 4000000000 LAST\r\n")
	r.expect(250, "")
	r.expect(250, "")
	r.expect(250, "")
	// Not one byte of the chunk is sent: the server must not wait for it
	// (its read timeout is 5 minutes: a timeout here means it waited).
	r.expect(552, "5.3.4")
	if err := r.nc.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	if line, err := r.r.ReadLine(); err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("after 552: read %q, %v; want the connection closed by the server", line, err)
	}
	if msgs := e.inbox("alice@example.org"); len(msgs) != 0 {
		t.Errorf("INBOX has %d messages, want 0", len(msgs))
	}
}
