package imapd

import (
	"bytes"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"pushmail/internal/membudget"
)

// multiAppendCmd builds "APPEND mailbox {n+}\r\nmsg {n+}\r\nmsg ...",
// without the final CRLF, which rawConn.send adds.
func multiAppendCmd(mailbox string, msgs ...[]byte) string {
	var b strings.Builder
	b.WriteString("APPEND " + mailbox)
	for _, m := range msgs {
		fmt.Fprintf(&b, " {%d+}\r\n%s", len(m), m)
	}
	return b.String()
}

// TestMultiAppendStores: a MULTIAPPEND over a raw socket (Python's imaplib
// and go-imap's client cannot send one) stores every message byte for
// byte, in order, and its APPENDUID names them.
func TestMultiAppendStores(t *testing.T) {
	t.Parallel()
	budget := membudget.New(8 << 20)
	env := newTestEnv(t, envOptions{server: Options{Budget: budget}})
	c := env.raw(t)
	msgs := [][]byte{bigMessage(10), bigMessage(appendBufSize + 1), bigMessage(3 * appendBufSize)}
	_, tagged := c.cmd("%s", multiAppendCmd("INBOX", msgs...))
	want := fmt.Sprintf("OK [APPENDUID %d 1:3] APPEND completed", env.mailbox(t, "INBOX").UIDValidity)
	if tagged != want {
		t.Fatalf("MULTIAPPEND = %q, want %q", tagged, want)
	}
	got := env.storeMessages(t, "INBOX")
	if len(got) != len(msgs) {
		t.Fatalf("INBOX holds %d messages, want %d", len(got), len(msgs))
	}
	for i, m := range got {
		if m.UID != imap.UID(i+1) || !bytes.Equal(m.Raw, msgs[i]) {
			t.Errorf("message %d: UID %d, %d bytes; want UID %d, the %d bytes sent", i, m.UID, len(m.Raw), i+1, len(msgs[i]))
		}
	}
	if used := budget.InUse(); used != 0 {
		t.Errorf("budget in use %d after MULTIAPPEND, want 0", used)
	}
}

// TestMultiAppendThirdFails: whatever refuses the third message (the
// in-flight budget, which counts all the command's messages together;
// APPENDLIMIT; a flag the store refuses), none of the three is stored,
// the budget is given back and the connection goes on.
func TestMultiAppendThirdFails(t *testing.T) {
	t.Parallel()
	// Each message takes one first buffer: the budget holds two, not three.
	budget := membudget.New(2*appendBufSize + appendBufSize/2)
	env := newTestEnv(t, envOptions{server: Options{Budget: budget, AppendLimit: 8 * appendBufSize}})
	c := env.raw(t)
	m1, m2 := bigMessage(appendBufSize-100), bigMessage(appendBufSize-100)
	tests := []struct {
		name       string
		third      string // the third message's opts and data, after the space
		wantPrefix string
	}{
		{"budget", fmt.Sprintf("{%d+}\r\n%s", appendBufSize-100, bigMessage(appendBufSize-100)), "NO [LIMIT]"},
		{"APPENDLIMIT", fmt.Sprintf("{%d+}\r\n%s", 8*appendBufSize+1, bytes.Repeat([]byte("x"), 8*appendBufSize+1)), "NO [TOOBIG]"},
		{"bad flag", "(\\Recent) {5+}\r\nhello", "BAD"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c.t = t
			_, tagged := c.cmd("%s %s", multiAppendCmd("INBOX", m1, m2), tt.third)
			if !strings.HasPrefix(tagged, tt.wantPrefix) {
				t.Fatalf("MULTIAPPEND with a bad third message = %q, want %s", tagged, tt.wantPrefix)
			}
			if got := env.storeMessages(t, "INBOX"); len(got) != 0 {
				t.Errorf("INBOX holds %d messages after a refused MULTIAPPEND, want 0", len(got))
			}
			if st := env.mailbox(t, "INBOX"); st.UIDNext != 1 {
				t.Errorf("UIDNEXT = %d after a refused MULTIAPPEND, want 1", st.UIDNext)
			}
			c.ok("NOOP")
			if used := budget.InUse(); used != 0 {
				t.Errorf("budget in use %d after the refusal, want 0", used)
			}
		})
	}
	c.t = t
	// Two fit.
	if _, tagged := c.cmd("%s", multiAppendCmd("INBOX", m1, m2)); !strings.HasPrefix(tagged, "OK [APPENDUID") {
		t.Fatalf("MULTIAPPEND of two = %q, want OK", tagged)
	}
	if got := env.storeMessages(t, "INBOX"); len(got) != 2 {
		t.Errorf("INBOX holds %d messages, want 2", len(got))
	}
}
