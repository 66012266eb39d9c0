package imapd

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/mailstore"
)

// byeDeleted is all a session of a deleted account reads.
const byeDeleted = "* BYE Account no longer exists\r\n"

// deleteUserElsewhere deletes the test user as "pushmail user del" does:
// through a second Store on the same database, whose events the server
// never hears of.
func (e *testEnv) deleteUserElsewhere(t *testing.T, address string) {
	t.Helper()
	ctx := context.Background()
	other, err := mailstore.Open(ctx, e.store.Path(), mailstore.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		t.Fatalf("open a second store: %v", err)
	}
	defer func() {
		if err := other.Close(); err != nil {
			t.Errorf("close the second store: %v", err)
		}
	}()
	if err := other.DeleteUser(ctx, address); err != nil {
		t.Fatalf("DeleteUser(%s) = %v", address, err)
	}
}

// A session whose account was deleted ends at its next command with
// "* BYE" (RFC 9051 §7.1.5), whatever the command; nothing is logged as
// an error, and other accounts' sessions go on.
func TestDeletedUserSessionEnds(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		selected bool
		cmd      string
	}{
		{"CREATE", false, "CREATE Work"},
		{"SELECT", false, "SELECT INBOX"},
		{"EXAMINE", false, "EXAMINE INBOX"},
		{"STATUS", false, "STATUS INBOX (MESSAGES UIDNEXT)"},
		{"LIST", false, `LIST "" *`},
		{"LIST-STATUS", false, `LIST "" * RETURN (STATUS (MESSAGES))`},
		{"APPEND", false, "APPEND INBOX {5+}\r\nHello"},
		{"SUBSCRIBE", false, "SUBSCRIBE Sent"},
		{"DELETE", false, "DELETE Sent"},
		{"RENAME", false, "RENAME Sent Sent2"},
		{"NOOP", false, "NOOP"},
		{"selected NOOP", true, "NOOP"},
		{"selected FETCH", true, "FETCH 1:* (FLAGS)"},
		{"selected UID FETCH", true, "UID FETCH 1:* (FLAGS BODY.PEEK[])"},
		{"selected STORE", true, `STORE 1 +FLAGS (\Seen)`},
		{"selected SEARCH", true, "SEARCH ALL"},
		{"selected COPY", true, "COPY 1 Trash"},
		{"selected MOVE", true, "MOVE 1 Trash"},
		{"selected EXPUNGE", true, "EXPUNGE"},
		{"selected CLOSE", true, "CLOSE"},
		{"selected SELECT", true, "SELECT Sent"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newTestEnv(t, envOptions{})
			e.deliver(t, testMessage(1))
			if _, err := e.store.AddUser(context.Background(), "bob@localhost", "bobpw"); err != nil {
				t.Fatalf("AddUser(bob) = %v", err)
			}
			bob := e.dial(t, nil)
			if err := bob.Login("bob@localhost", "bobpw").Wait(); err != nil {
				t.Fatalf("bob: Login() = %v", err)
			}
			c := e.raw(t)
			if tc.selected {
				c.ok("SELECT INBOX")
			}
			e.deleteUserElsewhere(t, testUser)
			tag := c.send("%s", tc.cmd)
			got := untilClosed(t, c.conn)
			// SELECT in the selected state may first close the old
			// mailbox (RFC 9051 §7.1: [CLOSED]); nothing else is sent.
			got = strings.TrimPrefix(got, "* OK [CLOSED] Previous mailbox is now closed\r\n")
			if got != byeDeleted || strings.Contains(got, tag+" ") {
				t.Errorf("%s after the account was deleted: %q, want %q and the connection closed", tc.cmd, got, byeDeleted)
			}
			if _, err := bob.List("", "*", nil).Collect(); err != nil {
				t.Errorf("bob: LIST after alice's session ended: %v", err)
			}
		})
	}
}

// An account deleted in this process ends its sessions in IDLE at once.
func TestDeletedUserIdleBye(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	c := e.raw(t)
	c.ok("SELECT INBOX")
	c.send("IDLE")
	if line := c.readLine(); !strings.HasPrefix(line, "+ ") {
		t.Fatalf("IDLE: %q", line)
	}
	if err := e.store.DeleteUser(context.Background(), testUser); err != nil {
		t.Fatalf("DeleteUser() = %v", err)
	}
	if got := untilClosed(t, c.conn); got != byeDeleted {
		t.Errorf("IDLE session after its account was deleted read %q, want %q", got, byeDeleted)
	}
}

// SQLite gives a deleted user's id to the next user added. A session of
// the deleted account must not become a session of the new one.
func TestDeletedUserIDReused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	c := e.raw(t)
	e.deleteUserElsewhere(t, testUser)
	bob, err := e.store.AddUser(context.Background(), "bob@localhost", "bobpw")
	if err != nil {
		t.Fatalf("AddUser(bob) = %v", err)
	}
	if bob.ID != e.user.ID {
		t.Logf("bob has id %d, alice had %d: the id was not reused", bob.ID, e.user.ID)
	}
	if _, err := e.store.CreateMailbox(context.Background(), bob.ID, "Bob's secrets", ""); err != nil {
		t.Fatal(err)
	}
	c.send(`LIST "" *`)
	got := untilClosed(t, c.conn)
	if got != byeDeleted {
		t.Errorf("LIST by alice's session after bob took her id: %q, want %q only", got, byeDeleted)
	}
}

// SQLite gives a deleted mailbox's id to the next mailbox created. A
// session that has the deleted one selected must not read the new one
// (another user's) before the deletion's event has reached it.
func TestSelectedMailboxIDReused(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	ctx := context.Background()
	work, err := e.store.CreateMailbox(ctx, e.user.ID, "Work", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Append(ctx, work.ID, testMessage(1), nil, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	c := e.raw(t)
	c.ok("SELECT Work")
	if err := e.store.DeleteMailbox(ctx, e.user.ID, "Work"); err != nil {
		t.Fatal(err)
	}
	bob, err := e.store.AddUser(ctx, "bob@localhost", "bobpw")
	if err != nil {
		t.Fatal(err)
	}
	bobInbox, err := e.store.Mailbox(ctx, bob.ID, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	if bobInbox.ID != work.ID {
		t.Logf("bob's INBOX has id %d, Work had %d: the id was not reused", bobInbox.ID, work.ID)
	}
	secret := "Subject: for bob only\r\n\r\nsecret\r\n"
	if _, err := e.store.Append(ctx, bobInbox.ID, []byte(secret), nil, time.Time{}, 0); err != nil {
		t.Fatal(err)
	}
	c.send("UID FETCH 1 (BODY.PEEK[])")
	const bye = "* BYE Selected mailbox was deleted, have to disconnect\r\n"
	if got := untilClosed(t, c.conn); got != bye {
		t.Errorf("FETCH in the deleted mailbox, its id now bob's INBOX: %q, want %q", got, bye)
	}
}
