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

	var (
		mu    sync.Mutex
		acked = map[string]bool{}
		sent  = map[string]bool{}
		wg    sync.WaitGroup
	)
	const senders = 8
	killAt := 50 + rand.IntN(250) // crash after this many acknowledgements
	reached := make(chan struct{})
	for w := 0; w < senders; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := smtp.Dial(srv.addr("smtp"))
			if err != nil {
				t.Errorf("dial: %v", err)
				return
			}
			defer c.Close()
			for i := 0; ; i++ {
				id := fmt.Sprintf("w%d-%d", w, i)
				mu.Lock()
				sent[id] = true
				mu.Unlock()
				msg := fmt.Sprintf("From: s@example.org\r\nTo: crash@localhost\r\nSubject: %s\r\n\r\nmessage %s\r\n", id, id)
				// Any error means the server died: stop this sender.
				if err := c.SendMail("s@example.org", []string{"crash@localhost"}, strings.NewReader(msg)); err != nil {
					return
				}
				mu.Lock()
				acked[id] = true
				if len(acked) == killAt {
					close(reached)
				}
				mu.Unlock()
			}
		}()
	}
	// Kill mid-stream: the other senders are between MAIL and 250.
	select {
	case <-reached:
	case <-time.After(2 * time.Minute):
		mu.Lock()
		n := len(acked)
		mu.Unlock()
		t.Fatalf("only %d deliveries acknowledged, want %d:\n%s", n, killAt, srv.logText())
	}
	if err := srv.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-srv.done
	wg.Wait()
	t.Logf("SIGKILL after %d acknowledged deliveries (%d attempted)", len(acked), len(sent))

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
	for id := range acked {
		if found[id] != 1 {
			t.Errorf("acknowledged message %s found %d times after the crash, want 1", id, found[id])
		}
	}
	for id, n := range found {
		if !sent[id] || n > 1 {
			t.Errorf("message %s found %d times; it was never sent, or is duplicated", id, n)
		}
	}
	if err := srv.stop(t); err != nil {
		t.Errorf("restarted server after SIGTERM: %v", err)
	}
}

func seqRange(start, stop uint32) imap.SeqSet {
	var s imap.SeqSet
	s.AddRange(start, stop)
	return s
}
