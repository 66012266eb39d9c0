package imapd

import (
	"context"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// SORT, THREAD and SEARCH with the key ALL answer from the session's view
// (allHits), without a store search: the answer must be the one the
// store's search gives (here checked against the key 1:*, which searches),
// while another session expunges messages the view still holds and
// delivers others it does not hold yet. The sort cache holds the
// expunged message's keys from an earlier SORT: ALL must still leave
// it out (RFC 9051 §7.5.1: the client keeps its sequence numbers until
// the EXPUNGE, and SORT (RFC 5256) reports what the mailbox holds).
func TestSortAllFromView(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	for i := 1; i <= 6; i++ {
		e.deliver(t, testMessage(i))
	}
	c := e.raw(t)
	c.ok("SELECT INBOX")
	line := func(lines []string, prefix string) string {
		t.Helper()
		for _, l := range lines {
			if strings.HasPrefix(l, prefix) {
				return l
			}
		}
		t.Fatalf("no %q among %q", prefix, lines)
		return ""
	}
	// both runs a command with ALL and with 1:* and checks that both
	// answer want.
	both := func(cmd, want string) []string {
		t.Helper()
		var lines []string
		for _, key := range []string{"ALL", "1:*"} {
			lines = c.ok("%s", strings.ReplaceAll(cmd, "KEY", key))
			if got := line(lines, strings.Fields(want)[0]+" "+strings.Fields(want)[1]); got != want {
				t.Errorf("%s with %s = %q, want %q", cmd, key, got, want)
			}
		}
		return lines
	}
	both("SORT (DATE) UTF-8 KEY", "* SORT 1 2 3 4 5 6")
	both("UID THREAD REFERENCES UTF-8 KEY", "* THREAD (1)(2)(3)(4)(5)(6)")

	// Another session expunges UID 2, whose sort keys the cache holds;
	// the view does not know yet.
	ctx := context.Background()
	inbox := e.mailbox(t, "INBOX")
	if _, err := e.store.StoreFlags(ctx, inbox.ID, mailstore.UIDSetOf(2), mailstore.FlagsAdd, []string{`\Deleted`}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := e.store.Expunge(ctx, inbox.ID, mailstore.AllUIDs(), 0); err != nil {
		t.Fatal(err)
	}
	// By sequence number: no EXPUNGE meanwhile, message 3 stays 3.
	lines := c.ok("SORT (DATE) UTF-8 ALL")
	if got := line(lines, "* SORT"); got != "* SORT 1 3 4 5 6" {
		t.Errorf("SORT ALL after another session's expunge = %q, want %q", got, "* SORT 1 3 4 5 6")
	}
	if slices.ContainsFunc(lines, func(l string) bool { return strings.HasSuffix(l, " EXPUNGE") }) {
		t.Errorf("SORT sent an EXPUNGE: %q", lines)
	}
	// Now the view has it marked gone, still unannounced.
	both("SORT (DATE) UTF-8 KEY", "* SORT 1 3 4 5 6")
	both("THREAD REFERENCES UTF-8 KEY", "* THREAD (1)(3)(4)(5)(6)")
	both("SEARCH KEY", "* SEARCH 1 3 4 5 6")

	// A delivery the view has not announced is not reported.
	uid7 := e.deliver(t, testMessage(7))
	lines = c.ok("UID SORT (DATE) UTF-8 ALL")
	if got := line(lines, "* SORT"); got != "* SORT 1 3 4 5 6" {
		t.Errorf("UID SORT ALL before the new message's EXISTS = %q, want %q", got, "* SORT 1 3 4 5 6")
	}
	// The UID command announced both: UID 2 gone, UID 7 new.
	both("UID SORT (DATE) UTF-8 KEY", "* SORT 1 3 4 5 6 7")
	both("SORT (DATE) UTF-8 KEY", "* SORT 1 2 3 4 5 6")
	if got, want := e.storeUIDs(t, "INBOX"), []imap.UID{1, 3, 4, 5, 6, imap.UID(uid7)}; !slices.Equal(got, want) {
		t.Errorf("the store holds %v, want %v", got, want)
	}
}
