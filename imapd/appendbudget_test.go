package imapd

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"pushmail/internal/membudget"
)

// bigMessage returns a message of about n bytes whose body holds lines
// that would be commands if a server parsed them as such.
func bigMessage(n int) []byte {
	var b bytes.Buffer
	b.WriteString("Subject: big\r\n\r\n")
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "line %d \xc3\xa9\r\nc%d DELETE INBOX\r\n", i, i)
	}
	return b.Bytes()
}

// TestAppendExactBytes: a message many times the first buffer arrives
// whole, byte for byte, in the store; the budget is given back.
func TestAppendExactBytes(t *testing.T) {
	t.Parallel()
	budget := membudget.New(8 << 20)
	env := newTestEnv(t, envOptions{server: Options{Budget: budget}})
	c := env.login(t, nil)
	for _, n := range []int{10, appendBufSize, appendBufSize + 1, 5*appendBufSize + 17} {
		msg := bigMessage(n)
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := cmd.Write(msg); err != nil {
			t.Fatal(err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatal(err)
		}
		data, err := cmd.Wait()
		if err != nil {
			t.Fatalf("APPEND of %d bytes = %v", len(msg), err)
		}
		var got []byte
		for _, m := range env.storeMessages(t, "INBOX") {
			if m.UID == data.UID {
				got = m.Raw
			}
		}
		if !bytes.Equal(got, msg) {
			t.Errorf("APPEND of %d bytes: store holds %d bytes for UID %d, not the message sent", len(msg), len(got), data.UID)
		}
		if used := budget.InUse(); used != 0 {
			t.Errorf("after APPEND of %d bytes: budget in use %d, want 0", len(msg), used)
		}
	}
}

// TestAppendBudgetSpent: an APPEND that the in-flight budget cannot hold
// is NO [LIMIT] (RFC 5530 §3), with a synchronizing or a
// non-synchronizing literal; its data is read and dropped, never run as
// commands, and the connection goes on.
func TestAppendBudgetSpent(t *testing.T) {
	t.Parallel()
	const limit = 3 * appendBufSize / 2 // holds the first buffer, not the second
	budget := membudget.New(limit)
	env := newTestEnv(t, envOptions{server: Options{Budget: budget}})
	c := env.raw(t)
	msg := bigMessage(4 * appendBufSize)
	for _, nonSync := range []bool{false, true} {
		t.Run(fmt.Sprintf("nonSync=%v", nonSync), func(t *testing.T) {
			c.t = t
			plus := ""
			if nonSync {
				plus = "+"
			}
			tag := c.send("APPEND INBOX {%d%s}", len(msg), plus)
			if !nonSync {
				if l := c.readLine(); !strings.HasPrefix(l, "+") {
					t.Fatalf("APPEND: %q, want a continuation request", l)
				}
			}
			if _, err := c.conn.Write(append(msg, "\r\n"...)); err != nil {
				t.Fatal(err)
			}
			if l := c.readLine(); !strings.HasPrefix(l, tag+" NO [LIMIT]") {
				t.Fatalf("APPEND over the budget: %q, want NO [LIMIT]", l)
			}
			c.ok("NOOP")
			if used := budget.InUse(); used != 0 {
				t.Errorf("budget in use %d after the refusal, want 0", used)
			}
			if got := env.storeMessages(t, "INBOX"); len(got) != 0 {
				t.Errorf("INBOX holds %d messages after a refused APPEND, want 0", len(got))
			}
		})
	}
	c.t = t
	// A budget spent by others refuses even the first buffer; once it is
	// free again, the same APPEND passes.
	if !budget.TryAcquire(limit) {
		t.Fatal("budget not free")
	}
	small := bigMessage(100)
	if _, tagged := c.cmd("APPEND INBOX {%d+}\r\n%s", len(small), small); !strings.HasPrefix(tagged, "NO [LIMIT]") {
		t.Errorf("APPEND with the budget spent: %q, want NO [LIMIT]", tagged)
	}
	budget.Release(limit)
	c.ok("APPEND INBOX {%d+}\r\n%s", len(small), small)
	got := env.storeMessages(t, "INBOX")
	if len(got) != 1 || !bytes.Equal(got[0].Raw, small) {
		t.Errorf("INBOX holds %d messages, want the one appended", len(got))
	}
}
