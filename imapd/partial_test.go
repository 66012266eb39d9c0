package imapd

import (
	"fmt"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// TestPartialPaging pages through a mailbox of a few hundred messages with
// RFC 9394's PARTIAL, from the start and from the end, in SEARCH, SORT and
// UID FETCH, and checks each page against the UIDs the store holds.
func TestPartialPaging(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	const delivered = 250
	for i := range delivered {
		e.deliver(t, testMessage(i))
	}
	c := e.raw(t)
	c.ok("SELECT INBOX")
	// Every seventh message goes, so that UIDs and positions differ.
	var gone []string
	for uid := 7; uid <= delivered; uid += 7 {
		gone = append(gone, strconv.Itoa(uid))
	}
	c.ok(`UID STORE %s +FLAGS.SILENT (\Deleted)`, strings.Join(gone, ","))
	c.ok("EXPUNGE")
	uids := e.storeUIDs(t, "INBOX")
	if want := delivered - len(gone); len(uids) != want {
		t.Fatalf("the store holds %d messages, want %d", len(uids), want)
	}
	n := len(uids) // 215

	// search runs a UID SEARCH or UID SORT with PARTIAL and returns the
	// page's UIDs, in the order given, and COUNT.
	search := func(format string, args ...any) ([]imap.UID, int) {
		t.Helper()
		lines := c.ok(format, args...)
		if len(lines) != 1 {
			t.Fatalf("%s: untagged %q, want one ESEARCH", fmt.Sprintf(format, args...), lines)
		}
		m := esearchPartial.FindStringSubmatch(lines[0])
		if m == nil {
			t.Fatalf("%s: %q is no ESEARCH with PARTIAL and COUNT", fmt.Sprintf(format, args...), lines[0])
		}
		count, _ := strconv.Atoi(m[2])
		return parseOrderedSet(t, m[1]), count
	}

	pages := []struct {
		rng    string
		lo, hi int // the page: uids[lo:hi]
	}{
		{"1:100", 0, 100},
		{"101:200", 100, 200},
		{"201:300", 200, n},
		{"301:400", n, n},
		{"-1:-100", n - 100, n},
		{"-101:-200", n - 200, n - 100},
		{"-201:-300", 0, n - 200},
		{"-300:-201", 0, n - 200},
		{"50:1", 0, 50},
	}
	for _, p := range pages {
		got, count := search("UID SEARCH RETURN (COUNT PARTIAL %s) ALL", p.rng)
		if want := uids[p.lo:p.hi]; !slices.Equal(got, want) {
			t.Errorf("UID SEARCH PARTIAL %s = %v, want %v", p.rng, got, want)
		}
		if count != n {
			t.Errorf("UID SEARCH PARTIAL %s: COUNT %d, want %d", p.rng, count, n)
		}
	}

	// Paging forward and backward each gives the whole mailbox once.
	for _, ranges := range [][]string{{"1:100", "101:200", "201:300"}, {"-201:-300", "-101:-200", "-1:-100"}} {
		var all []imap.UID
		for _, r := range ranges {
			page, _ := search("UID SEARCH RETURN (COUNT PARTIAL %s) ALL", r)
			all = append(all, page...)
		}
		if !slices.Equal(all, uids) {
			t.Errorf("pages %v together = %d UIDs %v, want the store's %d: %v", ranges, len(all), all, len(uids), uids)
		}
	}

	// SORT: positions in the sorted order (RFC 9394 §3.1).
	reversed := slices.Clone(uids)
	slices.Reverse(reversed)
	got, count := search("UID SORT RETURN (COUNT PARTIAL 101:200) (REVERSE ARRIVAL) UTF-8 ALL")
	if want := reversed[100:200]; !slices.Equal(got, want) || count != n {
		t.Errorf("UID SORT REVERSE ARRIVAL PARTIAL 101:200 = %v COUNT %d, want %v COUNT %d", got, count, want, n)
	}

	// UID FETCH (RFC 9394 §3.2): the messages at those positions of the
	// set, in UID order.
	fetch := func(set, rng string) []imap.UID {
		t.Helper()
		var out []imap.UID
		for _, line := range c.ok("UID FETCH %s (UID) (PARTIAL %s)", set, rng) {
			m := fetchUID.FindStringSubmatch(line)
			if m == nil {
				t.Fatalf("UID FETCH %s PARTIAL %s: unexpected %q", set, rng, line)
			}
			u, _ := strconv.ParseUint(m[1], 10, 32)
			out = append(out, imap.UID(u))
		}
		return out
	}
	if got, want := fetch("1:*", "101:200"), uids[100:200]; !slices.Equal(got, want) {
		t.Errorf("UID FETCH 1:* PARTIAL 101:200 = %v, want %v", got, want)
	}
	if got, want := fetch("1:*", "-1:-30"), uids[n-30:]; !slices.Equal(got, want) {
		t.Errorf("UID FETCH 1:* PARTIAL -1:-30 = %v, want %v", got, want)
	}
	sub := fmt.Sprintf("%d:%d", uids[10], uids[60])
	if got, want := fetch(sub, "-1:-5"), uids[56:61]; !slices.Equal(got, want) {
		t.Errorf("UID FETCH %s PARTIAL -1:-5 = %v, want %v", sub, got, want)
	}
	if got := fetch("1:*", "400:500"); len(got) != 0 {
		t.Errorf("UID FETCH 1:* PARTIAL 400:500 = %v, want nothing", got)
	}

	// A FETCH that sets \Seen sets it on the page alone: the store says so.
	c.ok("UID FETCH 1:* (BODY[TEXT]) (PARTIAL -2:-3)")
	seen := map[imap.UID]bool{uids[n-3]: true, uids[n-2]: true}
	for _, m := range e.storeMessages(t, "INBOX") {
		if has := slices.Contains(m.Flags, `\Seen`); has != seen[m.UID] {
			t.Errorf("UID %d in the store has flags %v, want \\Seen %v", m.UID, m.Flags, seen[m.UID])
		}
	}
}

// TestPartialModSeq: a SEARCH with MODSEQ and PARTIAL reports the highest
// modseq of the page it returns (RFC 7162 §3.1.5, "all messages being
// returned"), and UID FETCH takes PARTIAL's positions among the messages
// CHANGEDSINCE leaves.
func TestPartialModSeq(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	for i := range 6 {
		e.deliver(t, testMessage(i))
	}
	c := e.raw(t)
	c.ok("SELECT INBOX (CONDSTORE)")
	since := modSeqOf(t, c.ok("UID FETCH 6 (MODSEQ)"))
	c.ok(`UID STORE 2 +FLAGS.SILENT (\Flagged)`)
	c.ok(`UID STORE 5 +FLAGS.SILENT (\Flagged)`)
	m2 := modSeqOf(t, c.ok("UID FETCH 2 (MODSEQ)"))
	m5 := modSeqOf(t, c.ok("UID FETCH 5 (MODSEQ)"))
	if m5 <= m2 || m2 <= since {
		t.Fatalf("modseqs %d, %d after %d: want them increasing", m2, m5, since)
	}
	lines := c.ok("UID SEARCH RETURN (PARTIAL 1:1) MODSEQ %d", since+1)
	if want := fmt.Sprintf(`* ESEARCH (TAG "t%d") UID PARTIAL (1:1 2) MODSEQ %d`, c.n, m2); !hasLine(lines, want) {
		t.Errorf("SEARCH MODSEQ PARTIAL 1:1 = %q, want %q", lines, want)
	}
	lines = c.ok("UID SEARCH RETURN (PARTIAL 5:9) MODSEQ %d", since+1)
	if want := fmt.Sprintf(`* ESEARCH (TAG "t%d") UID PARTIAL (5:9 NIL)`, c.n); !hasLine(lines, want) {
		t.Errorf("SEARCH MODSEQ PARTIAL 5:9 = %q, want %q (no MODSEQ for no message)", lines, want)
	}
	lines = c.ok("UID FETCH 1:* (FLAGS) (CHANGEDSINCE %d PARTIAL -1:-1)", since)
	if len(lines) != 1 || !strings.Contains(lines[0], "UID 5 ") {
		t.Errorf("UID FETCH CHANGEDSINCE PARTIAL -1:-1 = %q, want UID 5 alone", lines)
	}
}

var (
	esearchPartial = regexp.MustCompile(`^\* ESEARCH \(TAG "[^"]*"\) UID PARTIAL \(-?\d+:-?\d+ ([0-9:,]+|NIL)\) COUNT (\d+)$`)
	fetchUID       = regexp.MustCompile(`^\* \d+ FETCH \(UID (\d+)\)$`)
	fetchModSeq    = regexp.MustCompile(`MODSEQ \((\d+)\)`)
)

// modSeqOf returns the MODSEQ of a FETCH of one message.
func modSeqOf(t *testing.T, lines []string) uint64 {
	t.Helper()
	for _, line := range lines {
		if m := fetchModSeq.FindStringSubmatch(line); m != nil && strings.Contains(line, " FETCH ") {
			n, _ := strconv.ParseUint(m[1], 10, 64)
			return n
		}
	}
	t.Fatalf("FETCH MODSEQ = %q, no MODSEQ", lines)
	return 0
}

// parseOrderedSet expands a sequence-set in the order written (as SORT's
// are), "a:b" ascending; NIL is no number.
func parseOrderedSet(t *testing.T, s string) []imap.UID {
	t.Helper()
	if s == "NIL" {
		return nil
	}
	var out []imap.UID
	for _, part := range strings.Split(s, ",") {
		a, b, isRange := strings.Cut(part, ":")
		lo, err1 := strconv.ParseUint(a, 10, 32)
		hi := lo
		var err2 error
		if isRange {
			hi, err2 = strconv.ParseUint(b, 10, 32)
		}
		if err1 != nil || err2 != nil || hi < lo {
			t.Fatalf("bad set %q", s)
		}
		for u := lo; u <= hi; u++ {
			out = append(out, imap.UID(u))
		}
	}
	return out
}
