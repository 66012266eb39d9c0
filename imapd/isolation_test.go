package imapd

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"pushmail/mailstore"
)

// trickyNames try to reach another user's mailboxes through a mailbox
// name. Names are per user in the store, so every one is only ever one of
// alice's own names, and none of hers exists under it.
var trickyNames = []string{
	"bob@localhost/INBOX",
	"bob@localhost",
	"BOB@LOCALHOST/InBoX",
	"bob",
	"bob/INBOX",
	"Private", // the name of one of bob's mailboxes
	"PRIVATE",
	"Private/Deeper",
	"../bob",
	"../bob/INBOX",
	"..",
	"../../bob@localhost/Private",
	"INBOX/../../bob",
	"/bob/INBOX",
	"/",
	"//",
	"#shared/bob",
	"#shared/bob/INBOX",
	"#user/bob/INBOX",
	"#public",
	"~bob",
	"~bob/INBOX",
	"Other Users/bob/INBOX",
	"Shared Folders/bob",
	"%",
	"*",
	"%/INBOX",
	"*/Private",
	"bob@localhost/%",
	"INBOX\x00bob@localhost/INBOX",
	"\x00",
	"INBOX\r\nbob",
	strings.Repeat("a", 600),
	strings.Repeat("bob/", 200) + "INBOX",
	"bob&AEA-localhost/INBOX", // modified UTF-7 for "bob@localhost/INBOX"
	"&AGIAbwBi-/INBOX",        // "bob" encoded, which RFC 3501 §5.1.3 forbids
	"&AC4ALg-/bob",            // "../bob" encoded
	"&AC8-bob",                // "/bob"
	"&Jjo",                    // unterminated
	"&-bob",                   // "&bob"
	"&AAA-",                   // NUL encoded
	"bob@lòcalhost/INBOX",     // 8-bit
}

// bobState is everything of bob's the store has, as text to compare.
func bobState(t *testing.T, st *mailstore.Store, bob mailstore.UserID) string {
	t.Helper()
	ctx := context.Background()
	mbs, err := st.Mailboxes(ctx, bob)
	if err != nil {
		t.Fatalf("Mailboxes(bob) = %v", err)
	}
	var b strings.Builder
	for _, mb := range mbs {
		s, err := st.Status(ctx, mb.ID)
		if err != nil {
			t.Fatalf("Status(%s) = %v", mb.Name, err)
		}
		fmt.Fprintf(&b, "%+v\n", s)
		err = st.Messages(ctx, mb.ID, mailstore.AllUIDs(), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
			fmt.Fprintf(&b, "  %d %v %d %d %x\n", m.UID, m.Flags, m.Size, m.ModSeq, sha256.Sum256(m.Raw))
			return nil
		})
		if err != nil {
			t.Fatalf("Messages(%s) = %v", mb.Name, err)
		}
	}
	return b.String()
}

// astring writes name as an IMAP astring: quoted, or a non-synchronizing
// literal (RFC 7888) when a quoted string cannot carry it.
func astring(name string, utf8 bool) string {
	for i := 0; i < len(name); i++ {
		if c := name[i]; c < ' ' || c == 0x7f || c >= 0x80 && !utf8 {
			return "{" + strconv.Itoa(len(name)) + "+}\r\n" + name
		}
	}
	return `"` + strings.NewReplacer(`\`, `\\`, `"`, `\"`).Replace(name) + `"`
}

// closed is probe.do's tagged reply when the server closed the connection
// instead of answering, as go-imap does after some syntax errors, such as
// a name that is not valid modified UTF-7.
const closed = "(connection closed)"

// probe runs commands as alice and reconnects when the server closes the
// connection.
type probe struct {
	t        *testing.T
	env      *testEnv
	utf8     bool
	conn     net.Conn
	r        *bufio.Reader
	n        int
	reopened int
}

func (p *probe) open() {
	p.t.Helper()
	c := p.env.raw(p.t)
	if p.utf8 {
		c.ok("ENABLE UTF8=ACCEPT")
	}
	p.conn, p.r = c.conn, c.r
}

// do runs one command and returns its untagged lines and the tagged
// reply without the tag, or closed.
func (p *probe) do(format string, args ...any) (untagged []string, tagged string) {
	p.t.Helper()
	p.n++
	tag := fmt.Sprintf("p%d", p.n)
	if err := p.conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		p.t.Fatal(err)
	}
	if _, err := fmt.Fprintf(p.conn, tag+" "+format+"\r\n", args...); err == nil {
		for {
			line, err := p.r.ReadString('\n')
			if err != nil {
				if errors.Is(err, os.ErrDeadlineExceeded) {
					p.t.Fatalf("no reply to %q", fmt.Sprintf(format, args...))
				}
				break
			}
			line = strings.TrimRight(line, "\r\n")
			if rest, ok := strings.CutPrefix(line, tag+" "); ok {
				return untagged, rest
			}
			untagged = append(untagged, line)
		}
	}
	p.conn.Close()
	p.reopened++
	p.open()
	return untagged, closed
}

// TestIsolation: alice tries every tricky name with every command that
// names a mailbox; each is refused, nothing of bob's is listed or
// returned, and bob's mailboxes are exactly as before.
func TestIsolation(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	ctx := context.Background()
	bob, err := env.store.AddUser(ctx, "bob@localhost", "bob-password")
	if err != nil {
		t.Fatalf("AddUser(bob) = %v", err)
	}
	bobInbox, err := env.store.Resolve(ctx, "bob@localhost")
	if err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		msg := fmt.Appendf(nil, "From: carol@example.org\r\nSubject: bob-secret %d\r\n\r\nbob-secret body %d\r\n", i, i)
		if _, err := env.store.Deliver(ctx, msg, []mailstore.Recipient{bobInbox}); err != nil {
			t.Fatalf("Deliver to bob = %v", err)
		}
	}
	for _, name := range []string{"Private", "Private/Deeper"} {
		mb, err := env.store.CreateMailbox(ctx, bob.ID, name, "")
		if err != nil {
			t.Fatalf("CreateMailbox(bob, %s) = %v", name, err)
		}
		if _, err := env.store.Append(ctx, mb.ID, []byte("Subject: bob-secret in "+name+"\r\n\r\nbob-secret\r\n"), []string{`\Flagged`}, mailstore.Message{}.InternalDate, 0); err != nil {
			t.Fatalf("Append(bob, %s) = %v", name, err)
		}
	}
	before := bobState(t, env.store, bob.ID)
	env.deliver(t, []byte("Subject: alice's own\r\n\r\nhello\r\n"))
	aliceMbs, err := env.store.Mailboxes(ctx, env.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	var aliceNames []string
	for _, mb := range aliceMbs {
		aliceNames = append(aliceNames, mb.Name)
	}

	for _, utf8 := range []bool{false, true} {
		t.Run(fmt.Sprintf("UTF8=ACCEPT %v", utf8), func(t *testing.T) {
			p := &probe{t: t, env: env, utf8: utf8}
			p.open()
			var seen []string // every untagged line
			refused := func(name, format string, args ...any) {
				t.Helper()
				untagged, tagged := p.do(format, args...)
				seen = append(seen, untagged...)
				if !strings.HasPrefix(tagged, "NO") && !strings.HasPrefix(tagged, "BAD") && tagged != closed {
					t.Errorf("%q: %s = %s, want NO or BAD", name, strings.SplitN(format, " ", 2)[0], tagged)
				}
			}
			for _, name := range trickyNames {
				mb := astring(name, utf8)
				_, tagged := p.do("SELECT INBOX")
				if tagged == closed { // after the previous command
					_, tagged = p.do("SELECT INBOX")
				}
				if !strings.HasPrefix(tagged, "OK") {
					t.Fatalf("SELECT INBOX = %s", tagged)
				}
				refused(name, "COPY 1 %s", mb)
				refused(name, "MOVE 1 %s", mb)
				refused(name, "UID COPY 1:* %s", mb)
				refused(name, "APPEND %s (\\Seen) {8+}\r\nx: y\r\n\r\n", mb)
				refused(name, "STATUS %s (MESSAGES UIDNEXT UIDVALIDITY UNSEEN SIZE)", mb)
				refused(name, "DELETE %s", mb)
				refused(name, "RENAME %s Stolen", mb)
				// A subscription is a name in alice's own list, which may
				// name no mailbox (RFC 9051 §6.3.7): SUBSCRIBE may be OK
				// and touches nothing of bob's. It is undone at once, so
				// the LIST checks below see only alice's mailboxes.
				p.do("SUBSCRIBE %s", mb)
				p.do("UNSUBSCRIBE %s", mb)
				refused(name, "EXAMINE %s", mb)
				refused(name, "FETCH 1:* (FLAGS BODY.PEEK[])")
				refused(name, "SELECT %s", mb)
				refused(name, "UID FETCH 1:* (FLAGS BODY.PEEK[])")
				refused(name, "UID SEARCH ALL")
				// LIST may answer OK with no match; what it lists is
				// checked below. (go-imap answers a pattern that is not
				// valid modified UTF-7 with NO [SERVERBUG].)
				for _, list := range []string{
					`LIST "" %s`, `LIST %s "*"`, `LIST %s "%%"`, `LSUB "" %s`,
					`LIST (SUBSCRIBED) "" %s RETURN (STATUS (MESSAGES))`,
				} {
					untagged, _ := p.do(list, mb)
					seen = append(seen, untagged...)
				}
			}
			// Everything alice saw was hers.
			for _, line := range seen {
				if strings.Contains(line, "bob-secret") || strings.Contains(line, "Private") {
					t.Errorf("alice saw bob's data: %q", line)
				}
				if rest, ok := strings.CutPrefix(line, "* LIST "); ok {
					i := strings.LastIndex(rest, ` "/" `)
					if n := strings.Trim(rest[i+5:], `"`); i < 0 || !slices.Contains(aliceNames, n) {
						t.Errorf("LIST returned %q, not one of alice's %q", line, aliceNames)
					}
				}
				if rest, ok := strings.CutPrefix(line, "* STATUS "); ok {
					// Only from LIST ... RETURN (STATUS), for alice's own.
					i := strings.LastIndex(rest, " (")
					if n := strings.Trim(rest[:max(i, 0)], `"`); i < 0 || !slices.Contains(aliceNames, n) {
						t.Errorf("STATUS data %q, not for one of alice's %q", line, aliceNames)
					}
				}
			}
			// A last check that the connection is in order.
			untagged, tagged := p.do(`LIST "" "*"`)
			if !strings.HasPrefix(tagged, "OK") || len(untagged) != len(aliceNames) {
				t.Errorf(`LIST "" "*" = %q %s, want alice's %d mailboxes`, untagged, tagged, len(aliceNames))
			}
			t.Logf("%d connections closed by the server on malformed names", p.reopened)
		})
	}
	if after := bobState(t, env.store, bob.ID); after != before {
		t.Errorf("bob's mailboxes changed:\nbefore:\n%s\nafter:\n%s", before, after)
	}
	if uids := env.storeUIDs(t, "INBOX"); len(uids) != 1 {
		t.Errorf("alice's INBOX has UIDs %v, want her one message", uids)
	}
	after, err := env.store.Mailboxes(ctx, env.user.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(after) != len(aliceMbs) {
		t.Errorf("alice's mailboxes went from %d to %d: %+v", len(aliceMbs), len(after), after)
	}
}

// TestInboxAnyCase: "INBOX" in any case is alice's own INBOX (RFC 9051
// §5.1), never anyone else's, with her message count.
func TestInboxAnyCase(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	ctx := context.Background()
	if _, err := env.store.AddUser(ctx, "bob@localhost", "bob-password"); err != nil {
		t.Fatal(err)
	}
	bobInbox, err := env.store.Resolve(ctx, "bob@localhost")
	if err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := env.store.Deliver(ctx, []byte("Subject: bob-secret\r\n\r\nx\r\n"), []mailstore.Recipient{bobInbox}); err != nil {
			t.Fatal(err)
		}
	}
	env.deliver(t, testMessage(1))
	c := env.raw(t)
	for _, name := range []string{"inbox", "InBoX", "INBOX", "iNBOX"} {
		if untagged := c.ok("SELECT %s", name); !hasLine(untagged, "* 1 EXISTS") {
			t.Errorf("SELECT %s: %q, want alice's 1 EXISTS", name, untagged)
		}
		if untagged := c.ok("STATUS %s (MESSAGES)", name); !hasLine(untagged, "* STATUS INBOX (MESSAGES 1)") {
			t.Errorf("STATUS %s: %q, want INBOX with alice's 1 message", name, untagged)
		}
	}
}

// TestReservedNamesNotCreated: names that would look like another
// namespace, escape the hierarchy or be unlistable are refused at CREATE
// and as RENAME's target.
func TestReservedNamesNotCreated(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.raw(t)
	c.ok("CREATE Mine")
	for _, name := range []string{
		"#shared/bob", "#news", "../bob", "..", "a/../b", "./x", "a/.", "%", "x*", "a/%/b",
	} {
		for _, cmd := range []string{"CREATE %s", "RENAME Mine %s"} {
			_, tagged := c.cmd(cmd, astring(name, false))
			if !strings.HasPrefix(tagged, "NO [CANNOT]") {
				t.Errorf(cmd+" = %s, want NO [CANNOT]", name, tagged)
			}
		}
	}
	// Ordinary names, dots inside a level included, are fine.
	for _, name := range []string{"a.b", "...more", "Lists/go.dev", "bob@localhost"} {
		c.ok("CREATE %s", astring(name, false))
	}
}
