package main

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
	"github.com/emersion/go-smtp"
)

// TestCrashKeepsEveryAcknowledgedMessage is the end-to-end durability
// contract: concurrent SMTP senders deliver to the real server, which is
// SIGKILLed at a random moment; after a restart, every message that got a
// 250 is in the mailbox exactly once. (A message cut off before its 250
// may or may not be there: the sender would retry it.)
func TestCrashKeepsEveryAcknowledgedMessage(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "crash@localhost", "--data", data, "--password-stdin")

	const senders = 8
	killAt := 50 + rand.IntN(250) // crash after this many acknowledgements
	storm := newSMTPStorm("crash@localhost", killAt)
	for w := range senders {
		storm.sender(t, w, srv.addr("smtp"), nil)
	}
	// Kill mid-stream: the other senders are between MAIL and 250.
	select {
	case <-storm.reached:
	case <-time.After(2 * time.Minute):
		t.Fatalf("only %d deliveries acknowledged, want %d:\n%s", storm.ackedCount(), killAt, srv.logText())
	}
	if err := srv.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	storm.wg.Wait()
	t.Logf("SIGKILL after %d acknowledged deliveries (%d attempted)", len(storm.acked), len(storm.sent))

	srv = startServer(t, data)
	c, err := imapclient.DialInsecure(srv.addr("imap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("crash@localhost", "secret").Wait(); err != nil {
		t.Fatal(err)
	}
	sel, err := c.Select("INBOX", nil).Wait()
	if err != nil {
		t.Fatal(err)
	}
	found := map[string]int{}
	if sel.NumMessages > 0 {
		all, err := c.Fetch(seqRange(1, sel.NumMessages), &imap.FetchOptions{Envelope: true}).Collect()
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range all {
			found[m.Envelope.Subject]++
		}
	}
	storm.check(t, found)
	if err := srv.stop(t); err != nil {
		t.Errorf("restarted server after SIGTERM: %v", err)
	}
}

func seqRange(start, stop uint32) imap.SeqSet {
	var s imap.SeqSet
	s.AddRange(start, stop)
	return s
}

// smtpStorm is a storm of deliveries to one recipient from senders that
// each keep one SMTP connection and send until it fails (the server was
// killed) or stop is closed, recording every message sent and every one
// acknowledged with a 250. Read acked and sent once wg is done.
type smtpStorm struct {
	rcpt    string
	mu      sync.Mutex
	acked   map[string]bool
	sent    map[string]bool
	wg      sync.WaitGroup
	reachAt int
	reached chan struct{} // closed at the reachAt-th acknowledgement
}

func newSMTPStorm(rcpt string, reachAt int) *smtpStorm {
	return &smtpStorm{rcpt: rcpt, acked: map[string]bool{}, sent: map[string]bool{}, reachAt: reachAt, reached: make(chan struct{})}
}

// sender starts sender id on the SMTP server at addr.
func (s *smtpStorm) sender(t *testing.T, id int, addr string, stop <-chan struct{}) {
	s.wg.Go(func() {
		c, err := smtp.Dial(addr)
		if err != nil {
			t.Errorf("dial: %v", err)
			return
		}
		defer c.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			msgID := fmt.Sprintf("w%d-%d", id, i)
			s.mu.Lock()
			s.sent[msgID] = true
			s.mu.Unlock()
			msg := fmt.Sprintf("From: s@example.org\r\nTo: %s\r\nSubject: %s\r\n\r\nmessage %s\r\n", s.rcpt, msgID, msgID)
			// Any error means the server died: stop this sender.
			if err := c.SendMail("s@example.org", []string{s.rcpt}, strings.NewReader(msg)); err != nil {
				return
			}
			s.mu.Lock()
			s.acked[msgID] = true
			if len(s.acked) == s.reachAt {
				close(s.reached)
			}
			s.mu.Unlock()
		}
	})
}

func (s *smtpStorm) ackedCount() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.acked)
}

// check compares what the store holds (found: how often each Subject is
// there) with the storm: every acknowledged message exactly once, and
// nothing that was never sent.
func (s *smtpStorm) check(t *testing.T, found map[string]int) {
	t.Helper()
	for id := range s.acked {
		if found[id] != 1 {
			t.Errorf("acknowledged message %s found %d times, want 1", id, found[id])
		}
	}
	for id, n := range found {
		if !s.sent[id] || n > 1 {
			t.Errorf("message %s found %d times; it was never sent, or is duplicated", id, n)
		}
	}
}
