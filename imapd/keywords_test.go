package imapd

import (
	"context"
	"slices"
	"strings"
	"testing"

	"pushmail/mailstore"
)

const (
	systemFlagsText = `\Answered \Flagged \Deleted \Seen \Draft`
	permanentOKText = "] Permanent flags"
)

// flagsLines returns the FLAGS and PERMANENTFLAGS lines a read-write
// session writes for keywords kw (RFC 9051 §7.3.5, §7.1).
func flagsLines(kw ...string) []string {
	list := systemFlagsText
	if len(kw) > 0 {
		list += " " + strings.Join(kw, " ")
	}
	return []string{"* FLAGS (" + list + ")", `* OK [PERMANENTFLAGS (` + list + ` \*)` + permanentOKText}
}

// storeKeywords adds keywords to messages of INBOX as another process
// would, without a session.
func storeKeywords(t testing.TB, env *testEnv, set mailstore.UIDSet, kw ...string) {
	t.Helper()
	if _, err := env.store.StoreFlags(context.Background(), env.inbox.Mailbox, set, mailstore.FlagsAdd, kw, 0); err != nil {
		t.Fatalf("StoreFlags(%v +%v) = %v", set, kw, err)
	}
}

// TestKeywordsAtSelect: RFC 9051 §7.3.5 and RFC 3501 §7.2.6, FLAGS lists
// the flags "applicable for this mailbox": the system flags and the
// keywords its messages carry; PERMANENTFLAGS the same plus \* in a
// read-write mailbox, nothing in a read-only one (RFC 9051 §7.1).
func TestKeywordsAtSelect(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, testMessage(2))
	storeKeywords(t, env, mailstore.UIDSetOf(1), "Work", "$Junk")
	storeKeywords(t, env, mailstore.UIDSetOf(2), "work", "$Forwarded", `\Seen`)

	c := env.raw(t)
	got := c.ok("SELECT INBOX")
	checkLines(t, "SELECT", got, "FLAGS", flagsLines("$Forwarded", "$Junk", "Work")...)
	c.ok("CLOSE")

	got = c.ok("EXAMINE INBOX")
	checkLines(t, "EXAMINE", got, "FLAGS",
		"* FLAGS ("+systemFlagsText+" $Forwarded $Junk Work)",
		"* OK [PERMANENTFLAGS ()] Permanent flags")

	// A mailbox without keywords lists the system flags alone.
	c.ok("CREATE Empty")
	checkLines(t, "SELECT Empty", c.ok("SELECT Empty"), "FLAGS", flagsLines()...)
}

// TestOwnStoreAnnouncesNewKeyword: RFC 3501 §7.2.6 and RFC 9051 §7.3.5,
// the client must learn a new keyword from FLAGS (and the read-write
// session from PERMANENTFLAGS) before a FETCH shows it: a STORE of a
// keyword the session has not announced writes them first, once.
func TestOwnStoreAnnouncesNewKeyword(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, testMessage(2))
	storeKeywords(t, env, mailstore.UIDSetOf(1), "Old")

	c := env.raw(t)
	checkLines(t, "SELECT", c.ok("SELECT INBOX"), "FLAGS", flagsLines("Old")...)
	want := append(flagsLines("Old", "Urgent"), `* 1 FETCH (FLAGS (\Recent Old Urgent))`)
	if got := c.ok("STORE 1 +FLAGS (Urgent)"); !slices.Equal(got, want) {
		t.Errorf("STORE 1 +FLAGS (Urgent) = %q, want %q", got, want)
	}
	// Known now: no second announcement, by STORE or FETCH.
	if got := c.ok("STORE 2 +FLAGS (urgent)"); !slices.Equal(got, []string{`* 2 FETCH (FLAGS (\Recent urgent))`}) {
		t.Errorf("STORE 2 +FLAGS (urgent) = %q, want the FETCH alone", got)
	}
	// A .SILENT STORE shows no FETCH; the FETCH that later shows the
	// keyword announces it.
	if got := c.ok("STORE 2 +FLAGS.SILENT (Later)"); len(got) != 0 {
		t.Errorf("STORE .SILENT = %q, want nothing", got)
	}
	want = append([]string{`* 1 FETCH (UID 1 FLAGS (\Recent Old Urgent))`}, flagsLines("Later", "Old", "Urgent")...)
	want = append(want, `* 2 FETCH (UID 2 FLAGS (\Recent Later urgent))`)
	if got := c.ok("UID FETCH 1:2 (FLAGS)"); !slices.Equal(got, want) {
		t.Errorf("UID FETCH 1:2 (FLAGS) = %q, want %q", got, want)
	}
	// A keyword in the FLAGS of a FETCH that sets \Seen.
	storeKeywords(t, env, mailstore.UIDSetOf(1), "Zed")
	got := c.ok("FETCH 1 (BODY[HEADER.FIELDS (Subject)])")
	if len(got) < 3 || !slices.Equal(got[:2], flagsLines("Later", "Old", "Urgent", "Zed")) ||
		!strings.HasSuffix(got[len(got)-1], ` FLAGS (\Seen \Recent Old Urgent Zed))`) {
		t.Errorf("FETCH 1 BODY[…] after another process added Zed = %q, want FLAGS, PERMANENTFLAGS, then the FETCH with Zed", got)
	}
}

// TestPushedKeywordAnnouncedBeforeFetch: a keyword that another session
// stores, or brings in with APPEND, reaches a session in IDLE or at NOOP
// as FLAGS (and PERMANENTFLAGS) before the FETCH that shows it (RFC 3501
// §7.2.6).
func TestPushedKeywordAnnouncedBeforeFetch(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	a := env.raw(t)
	checkLines(t, "A: SELECT", a.ok("SELECT INBOX"), "FLAGS", flagsLines()...)
	e := env.raw(t)
	e.ok("EXAMINE INBOX")
	b := env.raw(t)
	b.ok("SELECT INBOX")

	tag := a.idle()
	b.ok("STORE 1 +FLAGS (Later)")
	a.expectLines("A: IDLE after B's STORE", append(flagsLines("Later"), `* 1 FETCH (UID 1 FLAGS (\Recent Later))`)...)
	// The same keyword on another message is known by now.
	b.ok(`STORE 1 +FLAGS (\Flagged)`)
	a.expectLines("A: IDLE after B's second STORE", `* 1 FETCH (UID 1 FLAGS (\Flagged \Recent Later))`)
	if got := a.done(tag); len(got) != 0 {
		t.Errorf("A: after DONE: %q", got)
	}

	// The read-only session: FLAGS alone, its PERMANENTFLAGS stay ().
	if got, want := e.ok("NOOP"), []string{"* FLAGS (" + systemFlagsText + " Later)",
		`* 1 FETCH (UID 1 FLAGS (Later))`, `* 1 FETCH (UID 1 FLAGS (\Flagged Later))`}; !slices.Equal(got, want) {
		t.Errorf("EXAMINE: NOOP = %q, want %q", got, want)
	}

	// APPEND with a new keyword: EXISTS shows no flags, the FETCH of
	// them announces it.
	msg := testMessage(2)
	b.ok("APPEND INBOX (Appended) {%d+}\r\n%s", len(msg), msg)
	// B heard of its message first (its APPEND's own update): it is
	// \Recent to B, not to A.
	checkLines(t, "A: NOOP after the APPEND", a.ok("NOOP"), "", "* 2 EXISTS", "* 1 RECENT")
	want := append(flagsLines("Appended", "Later"), `* 2 FETCH (FLAGS (Appended))`)
	if got := a.ok("FETCH 2 (FLAGS)"); !slices.Equal(got, want) {
		t.Errorf("A: FETCH 2 (FLAGS) = %q, want %q", got, want)
	}
}
