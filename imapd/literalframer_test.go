package imapd

import (
	"fmt"
	"math"
	"slices"
	"testing"
)

// framerRun feeds reads to a framer as literalGuard does and returns what
// each feed handed on (empty hand-outs left out) and the events, with the
// decision taken at each announcement: "accept", "cut" (accept, cutting
// at line ends inside), "discard" or "line".
func framerRun(reads []string, decide string) (segs, events []string) {
	var f framer
	for _, r := range reads {
		in := []byte(r)
		for len(in) > 0 {
			out := make([]byte, len(in))
			c, d, ev := f.feed(in, out)
			if d > 0 {
				segs = append(segs, string(out[:d]))
			}
			in = in[c:]
			switch ev {
			case evAnnounce:
				events = append(events, fmt.Sprintf("announce %d %v", f.size, f.nonSync))
				switch decide {
				case "accept":
					f.accept(false)
				case "cut":
					f.accept(true)
				case "discard":
					f.discard()
				case "line":
					f.lineStart()
				}
			case evStartTLS:
				events = append(events, "starttls")
			case evSyncTail:
				events = append(events, "synctail")
				return segs, events
			}
		}
	}
	return segs, events
}

func TestFramer(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		reads  []string
		decide string
		segs   []string // what the server is handed, read by read
		events []string
	}{
		{
			name:  "lines are handed on one at a time",
			reads: []string{"a NOOP\r\nb NOOP\r\nc NO", "OP\r\n"},
			segs:  []string{"a NOOP\r\n", "b NOOP\r\n", "c NO", "OP\r\n"},
		},
		{
			name:   "non-synchronizing announcement split across reads",
			reads:  []string{"a APPEND INBOX {3", "0+", "}\r", "\n"},
			decide: "line",
			segs:   []string{"a APPEND INBOX {3", "0+", "}\r", "\n"},
			events: []string{"announce 30 true"},
		},
		{
			name:   "synchronizing announcement",
			reads:  []string{"a LOGIN {3}\r\n"},
			decide: "accept",
			segs:   []string{"a LOGIN {3}\r\n"},
			events: []string{"announce 3 false"},
		},
		{
			name:   "CRLF split from the announcement, data in the same read",
			reads:  []string{"a LOGIN {3+}", "\r\nbob {4+}\r\npass\r\nb NOOP\r\n"},
			decide: "accept",
			segs:   []string{"a LOGIN {3+}", "\r\n", "bob {4+}\r\n", "pass\r\n", "b NOOP\r\n"},
			events: []string{"announce 3 true", "announce 4 true"},
		},
		{
			name:   "accepted data is not scanned",
			reads:  []string{"a APPEND INBOX {24+}\r\nc CREATE x {99999999+}\r\n\r\nb NOOP\r\n"},
			decide: "accept",
			segs:   []string{"a APPEND INBOX {24+}\r\n", "c CREATE x {99999999+}\r\n\r\n", "b NOOP\r\n"},
			events: []string{"announce 24 true"},
		},
		{
			name:   "inferred data is cut at line ends, a lone CR included",
			reads:  []string{"a LOGIN {12+}\r\nab\r\ncd\ref\r\ngh x\r\n"},
			decide: "cut",
			segs:   []string{"a LOGIN {12+}\r\n", "ab\r\n", "cd\r", "ef\r\n", "gh x\r\n"},
			events: []string{"announce 12 true"},
		},
		{
			name:   "discarded data and the rest of its line",
			reads:  []string{"a APPEND INBOX {10+}\r\n0123\r\n6789)\r\nb NOOP\r\n"},
			decide: "discard",
			segs:   []string{"a APPEND INBOX {10+}\r\n", "b NOOP\r\n"},
			events: []string{"announce 10 true"},
		},
		{
			name:   "discarded across reads",
			reads:  []string{"a APPEND INBOX {10+}\r\n01", "23456", "789", "\r", "\nb NOOP\r\n"},
			decide: "discard",
			segs:   []string{"a APPEND INBOX {10+}\r\n", "b NOOP\r\n"},
			events: []string{"announce 10 true"},
		},
		{
			name:   "a further literal in a discarded line is skipped too",
			reads:  []string{"a X {5+}\r\nabcde {3+}\r\n\r\n\r)\r\nb NOOP\r\n"},
			decide: "discard",
			segs:   []string{"a X {5+}\r\n", "b NOOP\r\n"},
			events: []string{"announce 5 true"},
		},
		{
			name:   "a synchronizing literal in a discarded line",
			reads:  []string{"a X {5+}\r\nabcde {3}\r\nb NOOP\r\n"},
			decide: "discard",
			segs:   []string{"a X {5+}\r\n"},
			events: []string{"announce 5 true", "synctail"},
		},
		{
			name:   "zero-length literal",
			reads:  []string{"a LOGIN {0+}\r\n {0+}\r\n\r\nb NOOP\r\n"},
			decide: "discard",
			segs:   []string{"a LOGIN {0+}\r\n", "b NOOP\r\n"},
			events: []string{"announce 0 true"},
		},
		{
			name:   "APPEND UTF8 and literal8",
			reads:  []string{"a APPEND INBOX UTF8 (~{5+}\r\nhello)\r\nb APPEND INBOX ~{2}\r\n"},
			decide: "accept",
			segs:   []string{"a APPEND INBOX UTF8 (~{5+}\r\n", "hello)\r\n", "b APPEND INBOX ~{2}\r\n"},
			events: []string{"announce 5 true", "announce 2 false"},
		},
		{
			name:   "imapwire's liberal CRLF after the announcement",
			reads:  []string{"a {1+} \r\nx {2+}\nxy {3+} \nxyz\r\n"},
			decide: "accept",
			segs:   []string{"a {1+} \r\n", "x {2+}\n", "xy {3+} \n", "xyz\r\n"},
			events: []string{"announce 1 true", "announce 2 true", "announce 3 true"},
		},
		{
			name:   "not announcements",
			reads:  []string{"a {5+} x\r\n", "a {+}\r\n", "a {}\r\n", "a \"{5+}\"\r\n", "a {5+}}\r\n", "a {5++}\r\n", "a {5+}  \r\n", "a {5+}\r\r\n"},
			decide: "discard",
			segs:   []string{"a {5+} x\r\n", "a {+}\r\n", "a {}\r\n", "a \"{5+}\"\r\n", "a {5+}}\r\n", "a {5++}\r\n", "a {5+}  \r\n", "a {5+}\r", "\r\n"},
		},
		{
			name:   "a brace restarts the announcement",
			reads:  []string{"a {x{7+}\r\n"},
			decide: "line",
			segs:   []string{"a {x{7+}\r\n"},
			events: []string{"announce 7 true"},
		},
		{
			name:   "a number past int64 saturates",
			reads:  []string{"a {99999999999999999999+}\r\n"},
			decide: "line",
			segs:   []string{"a {99999999999999999999+}\r\n"},
			events: []string{fmt.Sprintf("announce %d true", int64(math.MaxInt64))},
		},
		{
			name:  "a lone CR ends what is handed on",
			reads: []string{"a NOOP x\rb NOOP\r\n"},
			segs:  []string{"a NOOP x\r", "b NOOP\r\n"},
		},
		{
			name:   "STARTTLS lines",
			reads:  []string{"a STARTTLS\r\n", "b starttls\n", "c STARTTLS \r\n", "d STAR", "TTLS\r", "\n"},
			segs:   []string{"a STARTTLS\r\n", "b starttls\n", "c STARTTLS \r\n", "d STAR", "TTLS\r", "\n"},
			events: []string{"starttls", "starttls", "starttls", "starttls"},
		},
		{
			name:  "not STARTTLS lines",
			reads: []string{"STARTTLS\r\n", "a STARTTLS x\r\n", "a  STARTTLS\r\n", "a STARTTLSX\r\n", "a(b STARTTLS\r\n", "a STARTTLS  \r\n", "a NOOP\rb STARTTLS\r\n"},
			segs:  []string{"STARTTLS\r\n", "a STARTTLS x\r\n", "a  STARTTLS\r\n", "a STARTTLSX\r\n", "a(b STARTTLS\r\n", "a STARTTLS  \r\n", "a NOOP\r", "b STARTTLS\r\n"},
		},
		{
			name:   "STARTTLS inside accepted data is data",
			reads:  []string{"a LOGIN {12+}\r\nb STARTTLS\r\n x\r\n"},
			decide: "accept",
			segs:   []string{"a LOGIN {12+}\r\n", "b STARTTLS\r\n x\r\n"},
			events: []string{"announce 12 true"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			segs, events := framerRun(tt.reads, tt.decide)
			if !slices.Equal(segs, tt.segs) {
				t.Errorf("handed on %q, want %q", segs, tt.segs)
			}
			if !slices.Equal(events, tt.events) {
				t.Errorf("events %q, want %q", events, tt.events)
			}
		})
	}
}

// TestFramerDiscardedCount: discarded counts the data and the rest of its
// line, for the guard's bound.
func TestFramerDiscardedCount(t *testing.T) {
	t.Parallel()
	var f framer
	in := []byte("a APPEND INBOX {10+}\r\n0123456789)\r\nb NOOP\r\n")
	out := make([]byte, len(in))
	c, _, ev := f.feed(in, out)
	if ev != evAnnounce {
		t.Fatalf("feed = %v, want evAnnounce", ev)
	}
	f.discard()
	_, d, _ := f.feed(in[c:], out)
	if got := string(out[:d]); got != "b NOOP\r\n" {
		t.Errorf("handed on %q, want b NOOP", got)
	}
	if f.discarded != 13 {
		t.Errorf("discarded = %d, want 13", f.discarded)
	}
}

func TestTaggedStatusAndCapabilities(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		p      string
		tagged bool
	}{
		{"a OK done\r\n", true},
		{"a1 NO [TOOBIG] x\r\n", true},
		{"+ OK odd tag\r\n", true},
		{"a BAD x\r\n", true},
		{"* OK [CAPABILITY IMAP4rev1] hi\r\n", false},
		{"* 3 EXISTS\r\n", false},
		{"+ Ready for literal data\r\n", false},
		{"+ \r\n", false},
		{"a OKAY\r\n", false},
		{"", false},
	} {
		if got := isTaggedStatus([]byte(tt.p)); got != tt.tagged {
			t.Errorf("isTaggedStatus(%q) = %v, want %v", tt.p, got, tt.tagged)
		}
	}
	for _, tt := range []struct {
		name                    string
		p                       string
		startTLS, loginDisabled bool
		want                    string
	}{
		{"STARTTLS in CAPABILITY", "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n", true, false, "* CAPABILITY IMAP4rev1 AUTH=PLAIN STARTTLS\r\n"},
		{"STARTTLS in greeting", "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] IMAP server ready\r\n", true, false, "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN STARTTLS] IMAP server ready\r\n"},
		{"STARTTLS already there", "* CAPABILITY IMAP4rev1 STARTTLS\r\n", true, false, ""},
		{"LOGINDISABLED in CAPABILITY", "* CAPABILITY IMAP4rev2 SASL-IR AUTH=PLAIN auth=XOAUTH2 IDLE\r\n", true, true, "* CAPABILITY IMAP4rev2 SASL-IR IDLE STARTTLS LOGINDISABLED\r\n"},
		{"LOGINDISABLED in greeting", "* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] IMAP server ready\r\n", false, true, "* OK [CAPABILITY IMAP4rev1 LOGINDISABLED] IMAP server ready\r\n"},
		{"LOGINDISABLED already there", "* CAPABILITY IMAP4rev1 LOGINDISABLED\r\n", false, true, ""},
		{"nothing asked", "* CAPABILITY IMAP4rev1 AUTH=PLAIN\r\n", false, false, ""},
		{"not capabilities", "* 1 FETCH (FLAGS ())\r\n", true, true, ""},
		{"other response code", "* OK [UIDNEXT 4] x\r\n", true, true, ""},
	} {
		if got := string(rewriteCaps([]byte(tt.p), tt.startTLS, tt.loginDisabled)); got != tt.want {
			t.Errorf("%s: rewriteCaps(%q, %v, %v) = %q, want %q", tt.name, tt.p, tt.startTLS, tt.loginDisabled, got, tt.want)
		}
	}
}
