package mailstore

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"golang.org/x/crypto/bcrypt"
)

// crashChildEnv names the store a crash-test child delivers into.
const crashChildEnv = "PUSHMAIL_CRASH_CHILD_DB"

// TestCrashKeepsAcknowledgedDeliveries kills a delivering process with
// SIGKILL mid-stream and checks that every delivery it had acknowledged
// survived, byte for byte, in a database that passes integrity_check.
func TestCrashKeepsAcknowledgedDeliveries(t *testing.T) {
	if os.Getenv(crashChildEnv) != "" {
		t.Skip("running as the crash child")
	}
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "crash.db")
	s, err := Open(ctx, path, Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatal(err)
	}
	r := addUser(t, s, "u@localhost")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashChildEnv+"="+path)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killAfter := 100 + rand.IntN(200)
	acked := map[UID]int{} // UID -> message number
	sc := bufio.NewScanner(out)
	killed := false
	for sc.Scan() {
		var uid UID
		var n int
		if _, err := fmt.Sscanf(sc.Text(), "ACK %d %d", &uid, &n); err != nil {
			continue // test framework output
		}
		acked[uid] = n
		if len(acked) == killAfter && !killed {
			// Kill while deliveries are in flight: the child keeps going
			// until the signal lands, so some were queued, some committing.
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child exited before %d acknowledgements (%d): %v", killAfter, len(acked), err)
	}
	t.Logf("killed after %d acknowledged deliveries", len(acked))

	s = openStoreAt(t, path, Options{})
	if err := s.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	stored := storedBodies(t, s, r.Mailbox)
	for uid, n := range acked {
		if !bytes.Equal(stored[uid], testMessage(n)) {
			t.Errorf("acknowledged message %d (UID %d) is %q after the crash", n, uid, stored[uid])
		}
	}
	if len(stored) < len(acked) {
		t.Errorf("%d messages stored, %d acknowledged", len(stored), len(acked))
	}
}

// TestCrashChild is the child half of TestCrashKeepsAcknowledgedDeliveries:
// it delivers from four goroutines until killed, printing "ACK uid n" once
// each Deliver has returned.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashChildEnv)
	if path == "" {
		t.Skip("only runs as a child of TestCrashKeepsAcknowledgedDeliveries")
	}
	ctx := context.Background()
	s, err := Open(ctx, path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Resolve(ctx, "u@localhost")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < 1_000_000; i += 4 {
				uids, err := s.Deliver(ctx, testMessage(i), []Recipient{r})
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				fmt.Fprintf(os.Stdout, "ACK %d %d\n", uids[0], i)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
}
