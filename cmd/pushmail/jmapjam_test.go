package main

import (
	"bufio"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// TestJMAPJam: jmap-jam, a JMAP client nobody here wrote (npm; installed
// by test.sh with npm ci from its lockfile), logs in to the real binary,
// lists mailboxes, queries and reads the mail a swaks delivery left,
// sets $seen, and receives the StateChange of a second delivery over
// the event source. The store is checked over IMAP afterwards.
func TestJMAPJam(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	dir, err := filepath.Abs("../../jmap/testdata/jmapjam")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(dir, "node_modules", "jmap-jam")); err != nil {
		t.Skip("jmap-jam not installed (test.sh runs npm ci in jmap/testdata/jmapjam)")
	}
	if _, err := exec.LookPath("node"); err != nil {
		t.Skip("node not installed")
	}
	if _, err := exec.LookPath("swaks"); err != nil {
		t.Skip("swaks not installed")
	}
	t.Parallel()
	data := t.TempDir()
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")
	swaks(t, srv.addr("smtp"), "alice@localhost", "before jam")

	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	node := exec.CommandContext(ctx, "node", "test.mjs", "http://"+srv.addr("http")+"/.well-known/jmap", "alice@localhost", "secret")
	node.Dir = dir
	var stderr strings.Builder
	node.Stderr = &stderr
	stdout, err := node.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := node.Start(); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(stdout)
	if line, err := r.ReadString('\n'); err != nil || line != "READY\n" {
		node.Wait()
		t.Fatalf("node's first line %q, %v; want READY\n%s", line, err, stderr.String())
	}
	swaks(t, srv.addr("smtp"), "alice@localhost", "during jam")
	line, err := r.ReadString('\n')
	if err := node.Wait(); err != nil {
		t.Fatalf("node test.mjs: %v\n%s", err, stderr.String())
	}
	if err != nil || !strings.HasPrefix(line, "STATECHANGE ") {
		t.Errorf("node's second line %q, %v; want the StateChange", line, err)
	}

	// The store: both messages, the first \Seen (set by jmap-jam), the
	// second not.
	c, err := imapclient.DialInsecure(srv.addr("imap"), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Login("alice@localhost", "secret").Wait(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Select("INBOX", &imap.SelectOptions{ReadOnly: true}).Wait(); err != nil {
		t.Fatal(err)
	}
	var all imap.UIDSet
	all.AddRange(1, 0)
	msgs, err := c.Fetch(all, &imap.FetchOptions{UID: true, Flags: true}).Collect()
	if err != nil {
		t.Fatal(err)
	}
	seen := map[imap.UID]bool{}
	for _, m := range msgs {
		for _, f := range m.Flags {
			if f == imap.FlagSeen {
				seen[m.UID] = true
			}
		}
	}
	if len(msgs) != 2 || !seen[1] || seen[2] {
		t.Errorf("INBOX over IMAP: %d messages, \\Seen %v; want 2, UID 1 only", len(msgs), seen)
	}
}
