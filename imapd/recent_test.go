package imapd

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"

	"pushmail/mailstore"
)

// idle starts IDLE on a raw connection and returns its tag once the
// server has said "+".
func (c *rawConn) idle() string {
	c.t.Helper()
	tag := c.send("IDLE")
	if line := c.readLine(); !strings.HasPrefix(line, "+ ") {
		c.t.Fatalf("IDLE: got %q, want a continuation", line)
	}
	return tag
}

// done ends the IDLE of tag and returns the untagged lines the server
// wrote before its tagged OK.
func (c *rawConn) done(tag string) []string {
	c.t.Helper()
	if _, err := c.conn.Write([]byte("DONE\r\n")); err != nil {
		c.t.Fatalf("write DONE: %v", err)
	}
	var untagged []string
	for {
		line := c.readLine()
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				c.t.Fatalf("IDLE: %s", rest)
			}
			return untagged
		}
		untagged = append(untagged, line)
	}
}

// expectLines reads len(want) lines and checks they are want, in order.
func (c *rawConn) expectLines(what string, want ...string) {
	c.t.Helper()
	for i, w := range want {
		if got := c.readLine(); got != w {
			c.t.Fatalf("%s: line %d = %q, want %q", what, i+1, got, w)
		}
	}
}

// linesWith returns the lines that contain s, in order.
func linesWith(lines []string, s string) []string {
	var out []string
	for _, l := range lines {
		if strings.Contains(l, s) {
			out = append(out, l)
		}
	}
	return out
}

// checkLines fails unless the lines of got that contain filter are
// exactly want, in order.
func checkLines(t testing.TB, what string, got []string, filter string, want ...string) {
	t.Helper()
	if sel := linesWith(got, filter); !slices.Equal(sel, want) {
		t.Errorf("%s: lines with %q = %q, want %q (all: %q)", what, filter, sel, want, got)
	}
}

// storeRecent checks the store's \Recent mark and STATUS RECENT count of
// INBOX: what sessions claimed, whatever they said.
func storeRecent(t testing.TB, env *testEnv, what string, wantMark mailstore.UID, wantRecent uint32) {
	t.Helper()
	st, err := env.store.Status(context.Background(), env.inbox.Mailbox)
	if err != nil {
		t.Fatalf("Status(INBOX) = %v", err)
	}
	if st.RecentUID != wantMark || st.Recent != wantRecent {
		t.Errorf("%s: store RecentUID, Recent = %d, %d; want %d, %d", what, st.RecentUID, st.Recent, wantMark, wantRecent)
	}
}

// TestRecentOnlyInFirstSession: RFC 3501 §2.3.2, \Recent means "this
// session is the first session to have been notified about this
// message". The first SELECT takes the messages there; of a message
// that arrives while two sessions have the mailbox selected, the one to
// hear of it first does; FETCH FLAGS and RECENT say so in that session
// only, and a later SELECT finds nothing recent.
func TestRecentOnlyInFirstSession(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, testMessage(2))

	a := env.raw(t)
	lines := a.ok("SELECT INBOX")
	checkLines(t, "A: SELECT", lines, " RECENT", "* 2 RECENT")
	checkLines(t, "A: FETCH", a.ok("FETCH 1:2 (FLAGS)"), "FETCH",
		`* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS (\Recent))`)
	storeRecent(t, env, "after A's SELECT", 2, 0)

	b := env.raw(t)
	checkLines(t, "B: SELECT", b.ok("SELECT INBOX"), " RECENT", "* 0 RECENT")
	checkLines(t, "B: FETCH", b.ok("FETCH 1:2 (FLAGS)"), "FETCH",
		`* 1 FETCH (FLAGS ())`, `* 2 FETCH (FLAGS ())`)

	// B hears of message 3 first: it is B's, not A's.
	env.deliver(t, testMessage(3))
	if got := b.ok("NOOP"); !slices.Equal(got, []string{"* 3 EXISTS", "* 1 RECENT"}) {
		t.Errorf("B: NOOP after a delivery = %q, want EXISTS then RECENT", got)
	}
	if got := a.ok("NOOP"); !slices.Equal(got, []string{"* 3 EXISTS", "* 2 RECENT"}) {
		t.Errorf("A: NOOP after a delivery = %q, want EXISTS then the RECENT A had", got)
	}
	checkLines(t, "B: FETCH 3", b.ok("FETCH 3 (FLAGS)"), "FETCH", `* 3 FETCH (FLAGS (\Recent))`)
	checkLines(t, "A: FETCH 3", a.ok("FETCH 3 (FLAGS)"), "FETCH", `* 3 FETCH (FLAGS ())`)
	storeRecent(t, env, "after B claimed 3", 3, 0)

	// \Recent stays with the session, also after flag changes: STORE's
	// answer shows it, with the stored flags.
	checkLines(t, "A: STORE", a.ok(`STORE 1 +FLAGS (\Seen)`), "FETCH", `* 1 FETCH (FLAGS (\Seen \Recent))`)
	checkLines(t, "B: NOOP after A's STORE", b.ok("NOOP"), "FETCH", `* 1 FETCH (UID 1 FLAGS (\Seen))`)

	c := env.raw(t)
	checkLines(t, "C: SELECT", c.ok("SELECT INBOX"), " RECENT", "* 0 RECENT")
}

// TestRecentSelectAndExamine: RFC 3501 §6.3.1, SELECT's RECENT counts
// the messages recent to it; §6.3.2, "EXAMINE MUST NOT cause messages to
// lose the \Recent flag": EXAMINE shows the unclaimed messages as
// \Recent without claiming them, so a later SELECT still gets them.
func TestRecentSelectAndExamine(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	for i := 1; i <= 3; i++ {
		env.deliver(t, testMessage(i))
	}

	e := env.raw(t)
	lines := e.ok("EXAMINE INBOX")
	checkLines(t, "EXAMINE", lines, " RECENT", "* 3 RECENT")
	checkLines(t, "EXAMINE: FETCH", e.ok("FETCH 1:3 (FLAGS)"), "FETCH",
		`* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS (\Recent))`, `* 3 FETCH (FLAGS (\Recent))`)
	storeRecent(t, env, "after EXAMINE", 0, 3)

	s := env.raw(t)
	checkLines(t, "SELECT after EXAMINE", s.ok("SELECT INBOX"), " RECENT", "* 3 RECENT")
	storeRecent(t, env, "after SELECT", 3, 0)

	env.deliver(t, testMessage(4))
	s2 := env.raw(t)
	lines = s2.ok("SELECT INBOX")
	checkLines(t, "second SELECT", lines, "EXISTS", "* 4 EXISTS")
	checkLines(t, "second SELECT", lines, " RECENT", "* 1 RECENT")
	checkLines(t, "second SELECT: FETCH", s2.ok("FETCH 3:4 (FLAGS)"), "FETCH",
		`* 3 FETCH (FLAGS ())`, `* 4 FETCH (FLAGS (\Recent))`)

	// What the EXAMINE session was shown stays: \Recent is its view of
	// the messages as it heard of them.
	checkLines(t, "EXAMINE: NOOP", e.ok("NOOP"), "", "* 4 EXISTS", "* 3 RECENT")
	checkLines(t, "EXAMINE: FETCH 4", e.ok("FETCH 4 (FLAGS)"), "FETCH", `* 4 FETCH (FLAGS ())`)
	storeRecent(t, env, "at the end", 4, 0)
}

// TestRecentInIdle: RFC 3501 §7.3.2, the RECENT response follows a
// change of the mailbox's size; a read-write session in IDLE claims the
// new message and says "* N RECENT" right after "* N EXISTS". A
// read-only one shows it as \Recent without claiming it.
func TestRecentInIdle(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	a := env.raw(t)
	checkLines(t, "SELECT", a.ok("SELECT INBOX"), " RECENT", "* 0 RECENT")
	e := env.raw(t)
	checkLines(t, "EXAMINE", e.ok("EXAMINE INBOX"), " RECENT", "* 0 RECENT")

	// EXAMINE first, so that it hears of the message before A claims it.
	eTag := e.idle()
	env.deliver(t, testMessage(1))
	e.expectLines("EXAMINE IDLE after a delivery", "* 1 EXISTS", "* 1 RECENT")
	if got := e.done(eTag); len(got) != 0 {
		t.Errorf("EXAMINE: after DONE: %q, want nothing", got)
	}
	storeRecent(t, env, "after EXAMINE heard of it", 0, 1)

	tag := a.idle()
	a.expectLines("SELECT IDLE, the delivery before IDLE", "* 1 EXISTS", "* 1 RECENT")
	env.deliver(t, testMessage(2))
	a.expectLines("SELECT IDLE after a delivery", "* 2 EXISTS", "* 2 RECENT")
	if got := a.done(tag); len(got) != 0 {
		t.Errorf("after DONE: %q, want nothing", got)
	}
	storeRecent(t, env, "after the IDLE", 2, 0)
	checkLines(t, "FETCH", a.ok("FETCH 1:2 (FLAGS)"), "FETCH",
		`* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS (\Recent))`)

	// The EXAMINE session heard of message 2 after A claimed it.
	checkLines(t, "EXAMINE: NOOP", e.ok("NOOP"), "", "* 2 EXISTS", "* 1 RECENT")
	checkLines(t, "EXAMINE: FETCH", e.ok("FETCH 1:2 (FLAGS)"), "FETCH",
		`* 1 FETCH (FLAGS (\Recent))`, `* 2 FETCH (FLAGS ())`)
}

// TestStatusRecent: RFC 3501 §6.3.10, STATUS RECENT counts the messages
// no session has been told of yet.
func TestStatusRecent(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, testMessage(2))
	c := env.raw(t)
	checkLines(t, "STATUS", c.ok("STATUS INBOX (MESSAGES RECENT UNSEEN)"), "STATUS",
		"* STATUS INBOX (MESSAGES 2 RECENT 2 UNSEEN 2)")
	s := env.raw(t)
	s.ok("EXAMINE INBOX")
	checkLines(t, "STATUS after EXAMINE", c.ok("STATUS INBOX (RECENT)"), "STATUS", "* STATUS INBOX (RECENT 2)")
	s.ok("SELECT INBOX")
	checkLines(t, "STATUS after SELECT", c.ok("STATUS INBOX (RECENT)"), "STATUS", "* STATUS INBOX (RECENT 0)")
	env.deliver(t, testMessage(3))
	checkLines(t, "STATUS after a delivery", c.ok("STATUS INBOX (RECENT MESSAGES)"), "STATUS", "* STATUS INBOX (RECENT 1 MESSAGES 3)")
}

// TestSearchRecent: RFC 3501 §6.4.4, RECENT finds the session's \Recent
// messages, NEW those of them without \Seen, OLD the others.
func TestSearchRecent(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, testMessage(2))
	b := env.raw(t)
	b.ok("SELECT INBOX") // takes 1 and 2
	env.deliver(t, testMessage(3))
	env.deliver(t, testMessage(4))
	a := env.raw(t)
	a.ok("SELECT INBOX") // takes 3 and 4
	a.ok(`STORE 3 +FLAGS.SILENT (\Seen)`)

	tests := []struct {
		c       *rawConn
		name    string
		command string
		want    string
	}{
		{a, "A", "SEARCH RECENT", "* SEARCH 3 4"},
		{a, "A", "SEARCH NEW", "* SEARCH 4"},
		{a, "A", "SEARCH OLD", "* SEARCH 1 2"},
		{a, "A", "SEARCH NOT NEW", "* SEARCH 1 2 3"},
		{a, "A", "UID SEARCH OR RECENT 1", "* SEARCH 1 3 4"},
		{a, "A", "SEARCH RETURN (COUNT) OLD", "* ESEARCH (TAG \"$TAG\") COUNT 2"},
	}
	for _, tc := range tests {
		want := strings.ReplaceAll(tc.want, "$TAG", fmt.Sprintf("t%d", tc.c.n+1))
		got := tc.c.ok("%s", tc.command)
		checkLines(t, tc.name+": "+tc.command, got, "SEARCH", want)
	}
	// B has not heard of 3 and 4 when it searches; it does after, and
	// they are not recent to it: A was first.
	checkLines(t, "B: SEARCH OLD", b.ok("SEARCH OLD"), "",
		"* SEARCH", "* 3 EXISTS", "* 2 RECENT", "* 4 EXISTS", "* 2 RECENT", `* 3 FETCH (UID 3 FLAGS (\Seen))`)
	checkLines(t, "B: SEARCH RECENT", b.ok("SEARCH RECENT"), "SEARCH", "* SEARCH 1 2")
	checkLines(t, "B: SEARCH OLD", b.ok("SEARCH OLD"), "SEARCH", "* SEARCH 3 4")
	checkLines(t, "B: SEARCH NEW", b.ok("SEARCH NEW"), "SEARCH", "* SEARCH 1 2")

	// With nothing recent, RECENT and NEW find nothing and OLD all.
	c := env.raw(t)
	c.ok("SELECT INBOX")
	checkLines(t, "C: SEARCH RECENT", c.ok("SEARCH RECENT"), "SEARCH", "* SEARCH")
	checkLines(t, "C: SEARCH NEW", c.ok("SEARCH NEW"), "SEARCH", "* SEARCH")
	checkLines(t, "C: SEARCH OLD", c.ok("SEARCH OLD"), "SEARCH", "* SEARCH 1 2 3 4")
}

// TestNoRecentInIMAP4rev2: RFC 9051 removed \Recent (Appendix E): after
// ENABLE IMAP4rev2 a session sends no RECENT response and no \Recent
// flag, and claims nothing, so an IMAP4rev1 session still gets the
// messages as \Recent. RECENT is no status-att and NEW, OLD, RECENT no
// search-key of RFC 9051's grammar (§9): STATUS and SEARCH with them are
// BAD.
func TestNoRecentInIMAP4rev2(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, testMessage(2))

	c := env.raw(t)
	c.ok("ENABLE IMAP4rev2")
	lines := c.ok("SELECT INBOX")
	checkLines(t, "SELECT", lines, "EXISTS", "* 2 EXISTS")
	checkLines(t, "SELECT", lines, "RECENT")
	checkLines(t, "FETCH", c.ok("FETCH 1:2 (FLAGS)"), "FETCH", `* 1 FETCH (FLAGS ())`, `* 2 FETCH (FLAGS ())`)
	tag := c.idle()
	env.deliver(t, testMessage(3))
	c.expectLines("IDLE after a delivery", "* 3 EXISTS")
	checkLines(t, "IDLE after EXISTS", c.done(tag), "RECENT")
	checkLines(t, "STORE", c.ok(`STORE 3 +FLAGS (\Flagged)`), "FETCH", `* 3 FETCH (FLAGS (\Flagged))`)
	for _, cmd := range []string{"STATUS INBOX (MESSAGES RECENT)", "SEARCH RECENT", "SEARCH NEW", "SEARCH NOT OLD", "UID SEARCH 1:* RECENT"} {
		if untagged, tagged := c.cmd("%s", cmd); !strings.HasPrefix(tagged, "BAD") || len(untagged) != 0 {
			t.Errorf("%s in IMAP4rev2: %q, %q; want BAD alone", cmd, untagged, tagged)
		}
	}
	checkLines(t, "STATUS without RECENT", c.ok("STATUS INBOX (MESSAGES)"), "STATUS", "* STATUS INBOX (MESSAGES 3)")
	storeRecent(t, env, "after the IMAP4rev2 session", 0, 3)

	r := env.raw(t)
	checkLines(t, "IMAP4rev1 SELECT after", r.ok("SELECT INBOX"), " RECENT", "* 3 RECENT")

	// ENABLE IMAP4rev2 with the mailbox selected: \Recent ends there.
	r.ok("ENABLE IMAP4rev2")
	checkLines(t, "FETCH after ENABLE", r.ok("FETCH 1 (FLAGS)"), "FETCH", `* 1 FETCH (FLAGS ())`)
	env.deliver(t, testMessage(4))
	checkLines(t, "NOOP after ENABLE", r.ok("NOOP"), "", "* 4 EXISTS")
	storeRecent(t, env, "after ENABLE in the selected state", 3, 1)
}

// TestRecentCannotBeStored: RFC 3501 §2.3.2, \Recent "can not be
// altered by the client": STORE and APPEND with it are refused BAD, as
// Dovecot does, and the message keeps its flags.
func TestRecentCannotBeStored(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	c := env.raw(t)
	c.ok("SELECT INBOX")
	for _, cmd := range []string{`STORE 1 +FLAGS (\Recent)`, `STORE 1 FLAGS (\Seen \Recent)`, `STORE 1 -FLAGS (\Recent)`} {
		if untagged, tagged := c.cmd("%s", cmd); !strings.HasPrefix(tagged, "BAD") {
			t.Errorf("%s: %q, %q; want BAD", cmd, untagged, tagged)
		}
	}
	msg := testMessage(2)
	if _, tagged := c.cmd("APPEND INBOX (\\Recent) {%d+}\r\n%s", len(msg), msg); !strings.HasPrefix(tagged, "BAD") {
		t.Errorf(`APPEND (\Recent): %q, want BAD`, tagged)
	}
	checkLines(t, "FETCH after", c.ok("FETCH 1:* (FLAGS)"), "FETCH", `* 1 FETCH (FLAGS (\Recent))`)
	if uids := env.storeUIDs(t, "INBOX"); len(uids) != 1 {
		t.Errorf("INBOX after the refused APPEND holds UIDs %v, want 1 message", uids)
	}
}

// TestRecentState: the session's \Recent set grows by what each claim
// or peek hands it above what it had settled, and counts the view's
// messages in it.
func TestRecentState(t *testing.T) {
	t.Parallel()
	type step struct{ from, upTo mailstore.UID }
	tests := []struct {
		name      string
		steps     []step
		view      []mailstore.UID
		want      []mailstore.UIDRange
		recent    []mailstore.UID
		notRecent []mailstore.UID
		count     uint32
	}{
		{"nothing claimed", []step{{0, 0}}, []mailstore.UID{1}, nil, nil, []mailstore.UID{1}, 0},
		{"another session had them", []step{{5, 3}}, []mailstore.UID{1, 2, 3}, nil, nil, []mailstore.UID{1, 3}, 0},
		{"first claim", []step{{0, 3}}, []mailstore.UID{1, 3}, []mailstore.UIDRange{{Start: 1, Stop: 3}}, []mailstore.UID{1, 2, 3}, []mailstore.UID{4}, 2},
		{"claims in a row merge", []step{{0, 3}, {3, 5}}, []mailstore.UID{2, 5}, []mailstore.UIDRange{{Start: 1, Stop: 5}}, []mailstore.UID{1, 4, 5}, []mailstore.UID{6}, 2},
		{"another session in between", []step{{2, 3}, {4, 6}}, []mailstore.UID{1, 2, 3, 4, 5, 6}, []mailstore.UIDRange{{Start: 3, Stop: 3}, {Start: 5, Stop: 6}}, []mailstore.UID{3, 5, 6}, []mailstore.UID{1, 2, 4, 7}, 3},
		{"a claim from below the settled mark adds what lies above it", []step{{0, 4}, {2, 6}}, []mailstore.UID{1, 6}, []mailstore.UIDRange{{Start: 1, Stop: 6}}, []mailstore.UID{1, 6}, nil, 2},
		{"a peek at a lower mark adds only the new", []step{{0, 2}, {0, 4}}, []mailstore.UID{3, 4}, []mailstore.UIDRange{{Start: 1, Stop: 4}}, []mailstore.UID{3}, nil, 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			var r recentState
			for _, s := range tc.steps {
				r.add(s.from, s.upTo)
			}
			if !slices.Equal(r.ranges, tc.want) {
				t.Errorf("ranges = %v, want %v", r.ranges, tc.want)
			}
			for _, u := range tc.recent {
				if !r.has(u) {
					t.Errorf("has(%d) = false, want true", u)
				}
			}
			for _, u := range tc.notRecent {
				if r.has(u) {
					t.Errorf("has(%d) = true, want false", u)
				}
			}
			if got := r.count(tc.view); got != tc.count {
				t.Errorf("count(%v) = %d, want %d", tc.view, got, tc.count)
			}
		})
	}
}
