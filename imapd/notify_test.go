package imapd

import (
	"context"
	"fmt"
	"os/exec"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// The NOTIFY command these tests set: every event of every mailbox but
// the selected one.
const notifyAll = "NOTIFY SET (personal (MessageNew MessageExpunge FlagChange MailboxName SubscriptionChange))"

var statusLine = regexp.MustCompile(`^\* STATUS "?([^"]+)"? \(MESSAGES (\d+) UIDNEXT (\d+) UIDVALIDITY (\d+) UNSEEN (\d+)\)$`)

// wireName is a mailbox name as the server writes these: INBOX as an
// atom, others quoted.
func wireName(name string) string {
	if name == "INBOX" {
		return name
	}
	return strconv.Quote(name)
}

// checkStatusLine checks that line is a NOTIFY STATUS of mailbox name
// and that the store holds what it says: the writes it reports are done.
func (e *testEnv) checkStatusLine(t testing.TB, line, name string) {
	t.Helper()
	m := statusLine.FindStringSubmatch(line)
	if m == nil || m[1] != name {
		t.Fatalf("got %q, want * STATUS %q (MESSAGES n UIDNEXT n UIDVALIDITY n UNSEEN n)", line, name)
	}
	st, err := e.store.Status(context.Background(), e.mailbox(t, name).ID)
	if err != nil {
		t.Fatalf("Status(%s) = %v", name, err)
	}
	want := fmt.Sprintf(`* STATUS %s (MESSAGES %d UIDNEXT %d UIDVALIDITY %d UNSEEN %d)`, wireName(name), st.Messages, st.UIDNext, st.UIDValidity, st.Unseen)
	if line != want {
		t.Errorf("NOTIFY said %q; the store holds %q", line, want)
	}
}

// TestNotifyDeliveryToMailboxNotSelected: a delivery to INBOX reaches a
// session in IDLE that has Archive selected and NOTIFY set for its
// inboxes, as a STATUS matching the store; the session holds one
// subscription for it however many mailboxes it watches, and NOTIFY NONE
// gives it back. The IDLE sleeps on the subscriptions (idleWait): the
// STATUS is read under a deadline, with no NOOP to provoke it.
func TestNotifyDeliveryToMailboxNotSelected(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	hub := env.store.Hub()
	a := env.raw(t)
	a.ok("SELECT Archive")
	before := hub.Subscriptions()
	a.ok("NOTIFY SET (inboxes (MessageNew MessageExpunge)) (subtree Lists (MessageNew MessageExpunge))")
	if got := hub.Subscriptions(); got != before+1 {
		t.Errorf("hub subscriptions after NOTIFY SET = %d, want %d (one per session, not per mailbox)", got, before+1)
	}
	tag := a.idle()
	for i := 1; i <= 3; i++ {
		env.deliver(t, testMessage(i))
		env.checkStatusLine(t, a.readLine(), "INBOX")
	}
	if rest := a.done(tag); len(rest) != 0 {
		t.Errorf("after the pushes, IDLE sent %q", rest)
	}
	if got := env.storeUIDs(t, "INBOX"); len(got) != 3 {
		t.Errorf("INBOX holds UIDs %v, want 3", got)
	}
	a.ok("NOTIFY NONE")
	if got := hub.Subscriptions(); got != before {
		t.Errorf("hub subscriptions after NOTIFY NONE = %d, want %d", got, before)
	}
	env.deliver(t, testMessage(4))
	if lines := a.ok("NOOP"); len(lines) != 0 {
		t.Errorf("NOOP after NOTIFY NONE and a delivery = %q, want nothing", lines)
	}
}

// TestNotifyOtherSessionsChanges: what a second session does to
// mailboxes the first has not selected reaches the first, in IDLE, as
// the unsolicited responses RFC 5465 §5 gives, each matching the store.
func TestNotifyOtherSessionsChanges(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	a := env.raw(t)
	a.ok("SELECT INBOX")
	a.ok(notifyAll)
	tag := a.idle()

	b := env.raw(t)
	b.ok("CREATE Work")
	if l := a.readLine(); l != `* LIST (\HasNoChildren) "/" "Work"` {
		t.Errorf("after CREATE: %q", l)
	}
	env.checkMailboxes(t, "INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive", "Work")

	b.ok("SELECT INBOX")
	b.ok("COPY 1 Work")
	env.checkStatusLine(t, a.readLine(), "Work")

	b.ok("SELECT Work")
	b.ok("STORE 1 +FLAGS (\\Seen \\Deleted)")
	env.checkStatusLine(t, a.readLine(), "Work")
	env.checkFlags(t, "Work", map[imap.UID][]string{1: {`\Deleted`, `\Seen`}})

	b.ok("EXPUNGE")
	env.checkStatusLine(t, a.readLine(), "Work")
	if got := env.storeUIDs(t, "Work"); len(got) != 0 {
		t.Errorf("Work holds %v after EXPUNGE, want nothing", got)
	}
	b.ok("UNSELECT")

	b.ok("RENAME Work Play")
	if l := a.readLine(); l != `* LIST (\HasNoChildren) "/" "Play" ("OLDNAME" ("Work"))` {
		t.Errorf("after RENAME: %q", l)
	}
	b.ok("SUBSCRIBE Play")
	if l := a.readLine(); l != `* LIST (\HasNoChildren \Subscribed) "/" "Play"` {
		t.Errorf("after SUBSCRIBE: %q", l)
	}
	if subs, err := env.store.Subscriptions(context.Background(), env.user.ID); err != nil || !slices.Contains(subs, "Play") {
		t.Errorf("Subscriptions() = %v, %v; want Play among them", subs, err)
	}
	b.ok("DELETE Play")
	// Subscriptions outlive DELETE (RFC 9051 §6.3.7).
	if l := a.readLine(); l != `* LIST (\NonExistent \Subscribed) "/" "Play"` {
		t.Errorf("after DELETE: %q", l)
	}
	env.checkMailboxes(t, "INBOX", "Sent", "Drafts", "Trash", "Junk", "Archive")

	// The selected mailbox reports through its view, not as STATUS.
	env.deliver(t, testMessage(2))
	if l := a.readLine(); l != "* 2 EXISTS" {
		t.Errorf("after a delivery to the selected INBOX: %q, want * 2 EXISTS", l)
	}
	if rest := a.done(tag); slices.ContainsFunc(rest, func(l string) bool { return strings.HasPrefix(l, "* STATUS") }) {
		t.Errorf("STATUS for the selected mailbox: %q", rest)
	}
}

// TestNotifyOverflow: a session busy for longer than it takes
// Options.NotifyQueue notifications to pile up (here: its write lock
// held, as by a long command) has fallen behind: it tells the client
// NOTIFICATIONOVERFLOW as soon as it can, unsolicited, and NOTIFY is off
// (RFC 5465 §5.8); the mail was stored all the same, and the client can
// set NOTIFY again, with STATUS to catch up.
func TestNotifyOverflow(t *testing.T) {
	t.Parallel()
	const queue = 4
	env := newTestEnv(t, envOptions{server: Options{NotifyQueue: queue}})
	hub := env.store.Hub()
	a := env.raw(t)
	a.ok("SELECT INBOX")
	before := hub.Subscriptions()
	a.ok("NOTIFY SET (personal (MessageNew MessageExpunge))")
	sess := env.onlySession(t)
	archive := env.mailbox(t, "Archive")
	appendArchive := func(n int) {
		t.Helper()
		if _, err := env.store.Append(context.Background(), archive.ID, testMessage(n), nil, time.Now(), 0); err != nil {
			t.Fatalf("Append(Archive) = %v", err)
		}
	}
	sess.wmu.Lock()
	for i := range queue + 1 {
		appendArchive(i)
	}
	sess.wmu.Unlock()
	if l := a.readLine(); !strings.HasPrefix(l, "* OK [NOTIFICATIONOVERFLOW] ") {
		t.Fatalf("after %d appends to a busy session: %q, want * OK [NOTIFICATIONOVERFLOW]", queue+1, l)
	}
	if got := hub.Subscriptions(); got != before {
		t.Errorf("hub subscriptions after the overflow = %d, want %d: NOTIFY is off", got, before)
	}
	if got := env.storeUIDs(t, "Archive"); len(got) != queue+1 {
		t.Errorf("Archive holds %v, want %d messages", got, queue+1)
	}
	appendArchive(9)
	if lines := a.ok("NOOP"); len(lines) != 0 {
		t.Errorf("NOOP after the overflow and one more append = %q, want nothing", lines)
	}
	// Set again, it reports as before; STATUS gives the client the state
	// it lost track of.
	lines := a.ok("NOTIFY SET STATUS (mailboxes Archive (MessageNew MessageExpunge))")
	if len(lines) != 1 {
		t.Fatalf("NOTIFY SET STATUS = %q, want Archive's STATUS", lines)
	}
	env.checkStatusLine(t, lines[0], "Archive")
	appendArchive(10)
	env.checkStatusLine(t, a.readLine(), "Archive")
}

// TestNotifyBetweenCommands: with NOTIFY set, changes reach a client
// that sends nothing, not only one in IDLE (RFC 5465 §1). With
// "selected", the selected mailbox's EXPUNGEs come at once too; with
// "selected-delayed" they wait for a command that allows them (§6.1).
func TestNotifyBetweenCommands(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	a := env.raw(t)
	a.ok("ENABLE IMAP4rev2") // no \Recent: one line per change
	a.ok("SELECT INBOX")
	a.ok("NOTIFY SET (selected (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))")
	archive := env.mailbox(t, "Archive")
	appendArchive := func(n int) {
		t.Helper()
		if _, err := env.store.Append(context.Background(), archive.ID, testMessage(n), nil, time.Now(), 0); err != nil {
			t.Fatalf("Append(Archive) = %v", err)
		}
	}
	env.deliver(t, testMessage(1))
	if l := a.readLine(); l != "* 1 EXISTS" {
		t.Fatalf("after a delivery to the selected INBOX: %q, want * 1 EXISTS", l)
	}
	appendArchive(2)
	env.checkStatusLine(t, a.readLine(), "Archive")

	b := env.raw(t)
	b.ok("SELECT INBOX")
	b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	if l := a.readLine(); l != "* 1 FETCH (UID 1 FLAGS (\\Deleted))" {
		t.Fatalf("after another session's STORE: %q", l)
	}
	b.ok("EXPUNGE")
	if l := a.readLine(); l != "* 1 EXPUNGE" {
		t.Fatalf(`after another session's EXPUNGE with "selected": %q, want * 1 EXPUNGE`, l)
	}
	if got := env.storeUIDs(t, "INBOX"); len(got) != 0 {
		t.Errorf("INBOX holds %v, want nothing", got)
	}

	a.ok("NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) (personal (MessageNew MessageExpunge))")
	env.deliver(t, testMessage(3))
	if l := a.readLine(); l != "* 1 EXISTS" {
		t.Fatalf("after a delivery: %q, want * 1 EXISTS", l)
	}
	b.ok("NOOP")
	b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
	if l := a.readLine(); l != "* 1 FETCH (UID 2 FLAGS (\\Deleted))" {
		t.Fatalf("after another session's STORE: %q", l)
	}
	b.ok("EXPUNGE")
	// Archive's STATUS, pushed after the EXPUNGE was published, shows
	// that the EXPUNGE was held back: the watcher writes in event order.
	appendArchive(4)
	env.checkStatusLine(t, a.readLine(), "Archive")
	if lines := a.ok("NOOP"); !slices.Equal(lines, []string{"* 1 EXPUNGE"}) {
		t.Errorf(`NOOP with "selected-delayed" = %q, want the held-back * 1 EXPUNGE`, lines)
	}
}

// onlySession returns the server's one session.
func (e *testEnv) onlySession(t testing.TB) *session {
	t.Helper()
	e.srv.mu.Lock()
	defer e.srv.mu.Unlock()
	if len(e.srv.sessions) != 1 {
		t.Fatalf("%d sessions, want 1", len(e.srv.sessions))
	}
	for s := range e.srv.sessions {
		return s
	}
	return nil
}

// TestNotifyHibernates: with hibernation on, a session in IDLE with
// NOTIFY set parks like any other (no goroutine: its watch goroutine is
// stopped for the IDLE) and wakes for a change of a mailbox it has not
// selected, sends the STATUS and parks again; after DONE its watch
// goroutine pushes again between commands.
func TestNotifyHibernates(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{server: Options{Hibernate: true}})
	if env.srv.hib == nil {
		t.Skip("hibernation unsupported here")
	}
	a := env.raw(t)
	a.ok("SELECT Archive")
	a.ok("NOTIFY SET (inboxes (MessageNew MessageExpunge))")
	tag := a.idle()
	waitParked(t, env, 1)
	for i := 1; i <= 3; i++ {
		env.deliver(t, testMessage(i))
		env.checkStatusLine(t, a.readLine(), "INBOX")
		waitParked(t, env, 1)
	}
	if rest := a.done(tag); len(rest) != 0 {
		t.Errorf("IDLE sent %q after the pushes", rest)
	}
	if n := env.srv.hib.Len(); n != 0 {
		t.Errorf("%d sessions parked after DONE, want 0", n)
	}
	env.deliver(t, testMessage(4))
	env.checkStatusLine(t, a.readLine(), "INBOX")
	if got := env.storeUIDs(t, "INBOX"); len(got) != 4 {
		t.Errorf("INBOX holds %v, want 4 messages", got)
	}
}

// TestNotifyIMAPLib: python3's imaplib, a client that knows no NOTIFY,
// sends it as a plain command (imaplib's _simple_command) and reads the
// STATUS it causes as untagged data; the store holds what it was told.
func TestNotifyIMAPLib(t *testing.T) {
	t.Parallel()
	python := lookTool(t, "python3", "python3")
	env := newTestEnv(t, envOptions{})
	host, port, _ := strings.Cut(env.addr, ":")
	const script = `
import imaplib, sys
imaplib.Commands["NOTIFY"] = ("AUTH", "SELECTED")
c = imaplib.IMAP4(sys.argv[1], int(sys.argv[2]))
c.login("alice@localhost", "secret")
c.select("Archive")
typ, data = c._simple_command("NOTIFY", "SET", "STATUS", "(inboxes (MessageNew MessageExpunge))")
assert typ == "OK", (typ, data)
typ, data = c.response("STATUS")
print("initial", data[-1].decode())
print("SYNC deliver", flush=True)
if sys.stdin.readline().strip() != "ok":
    sys.exit(1)
c.noop()
typ, data = c.response("STATUS")
print("pushed", data[-1].decode())
c.logout()
print("PASS")
`
	cmd := exec.Command(python, "-c", script, host, port)
	out := runSynced(t, cmd, map[string]func(){"deliver": func() { env.deliver(t, testMessage(1)) }})
	want := []string{
		fmt.Sprintf(`initial INBOX (MESSAGES 0 UIDNEXT 1 UIDVALIDITY %d UNSEEN 0)`, env.mailbox(t, "INBOX").UIDValidity),
		"SYNC deliver",
		fmt.Sprintf(`pushed INBOX (MESSAGES 1 UIDNEXT 2 UIDVALIDITY %d UNSEEN 1)`, env.mailbox(t, "INBOX").UIDValidity),
		"PASS",
	}
	if !slices.Equal(out, want) {
		t.Errorf("imaplib printed %q, want %q", out, want)
	}
	if got := env.storeUIDs(t, "INBOX"); len(got) != 1 {
		t.Errorf("INBOX holds %v, want one message", got)
	}
}

// TestNotifySubscribedFilter: the "subscribed" filter follows the
// subscriptions as they change (RFC 5465 §6.4), whoever changes them.
func TestNotifySubscribedFilter(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	appendTo := func(name string, n int) {
		t.Helper()
		if _, err := env.store.Append(context.Background(), env.mailbox(t, name).ID, testMessage(n), nil, time.Now(), 0); err != nil {
			t.Fatalf("Append(%s) = %v", name, err)
		}
	}
	a := env.raw(t)
	a.ok("NOTIFY SET (subscribed (MessageNew MessageExpunge))")
	appendTo("Archive", 1) // the default mailboxes are subscribed
	env.checkStatusLine(t, a.readLine(), "Archive")

	b := env.raw(t)
	b.ok("UNSUBSCRIBE Archive")
	b.ok("CREATE Lists")
	b.ok("SUBSCRIBE Lists")
	appendTo("Archive", 2)
	appendTo("Lists", 3)
	// In event order: had Archive still counted, its STATUS came first.
	env.checkStatusLine(t, a.readLine(), "Lists")
	if lines := a.ok("NOOP"); len(lines) != 0 {
		t.Errorf("NOOP = %q, want nothing more", lines)
	}
	if got := env.storeUIDs(t, "Archive"); len(got) != 2 {
		t.Errorf("Archive holds %v, want 2 messages", got)
	}
}
