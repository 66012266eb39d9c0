package imapd

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"
)

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// The session's log line (issue 7: user, duration, commands, bytes)
// counts the client's commands: successful and failed ones, CAPABILITY
// and NOOP, IDLE once however long, CLOSE once though it runs an expunge
// and an unselect, and LOGOUT.
func TestSessionLogCountsCommands(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	e := newTestEnv(t, envOptions{logs: logs})
	e.deliver(t, testMessage(1))

	c := e.raw(t)                          // 1 LOGIN
	c.ok("SELECT INBOX")                   // 2
	c.ok("NOOP")                           // 3
	c.ok("FETCH 1 (FLAGS)")                // 4
	c.ok("STORE 1 +FLAGS.SILENT (\\Seen)") // 5
	if _, tagged := c.cmd("SELECT Nonexistent"); !strings.HasPrefix(tagged, "NO") {
		t.Fatalf("SELECT Nonexistent: %s, want NO", tagged) // 6
	}
	c.ok("NOOP")          // 7
	c.ok("CAPABILITY")    // 8
	tag := c.send("IDLE") // 9
	if l := c.readLine(); !strings.HasPrefix(l, "+") {
		t.Fatalf("IDLE: %q, want a continuation", l)
	}
	c.conn.Write([]byte("DONE\r\n"))
	for l := c.readLine(); !strings.HasPrefix(l, tag+" "); l = c.readLine() {
	}
	c.ok("SELECT INBOX") // 10
	c.ok("CLOSE")        // 11
	c.cmd("LOGOUT")      // 12
	c.conn.Close()

	// The line is written when the server has closed the session, a moment
	// after LOGOUT's reply: look until it is there.
	line := regexp.MustCompile(`msg="imap session" .*`)
	var got string
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for deadline := time.Now().Add(waitTimeout); got == "" && time.Now().Before(deadline); <-tick.C {
		got = line.FindString(logs.String())
	}
	if !strings.Contains(got, "user="+testUser) || !strings.Contains(got, " commands=12 ") ||
		!regexp.MustCompile(`bytes_in=[1-9]\d* bytes_out=[1-9]\d*`).MatchString(got) {
		t.Errorf("session log line = %q, want user=%s, commands=12 and the bytes", got, testUser)
	}
}

// Shutting down with clients in IDLE is routine: imapserver reports each
// IDLE ended by the closed connection, and that must not become one
// warning per client in the operator's log.
func TestShutdownWithIdleClientsLogsNoWarnings(t *testing.T) {
	t.Parallel()
	logs := &syncBuffer{}
	// Registered first, so it runs after the environment's shutdown.
	t.Cleanup(func() {
		for _, l := range strings.Split(logs.String(), "\n") {
			if strings.Contains(l, "level=WARN") || strings.Contains(l, "level=ERROR") {
				t.Errorf("logged at shutdown: %s", l)
			}
		}
	})
	e := newTestEnv(t, envOptions{logs: logs})
	var idlers []*rawConn
	for range 3 {
		c := e.raw(t)
		c.ok("SELECT INBOX")
		c.send("IDLE")
		if l := c.readLine(); !strings.HasPrefix(l, "+") {
			t.Fatalf("IDLE: %q, want a continuation", l)
		}
		idlers = append(idlers, c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
	defer cancel()
	if err := e.srv.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown() = %v", err)
	}
	for _, c := range idlers {
		if l := c.readLine(); !strings.HasPrefix(l, "* BYE") {
			t.Errorf("IDLE client at shutdown read %q, want * BYE", l)
		}
	}
}
