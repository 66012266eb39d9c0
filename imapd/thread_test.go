package imapd

import (
	"bufio"
	"strings"
	"testing"
	"time"

	"pushmail/imapd/wire"
	"pushmail/mailstore"
)

// tmsg is a message for the threading tests: its sequence number is its
// place in the list, plus one.
type tmsg struct {
	subject, id, irt, refs string
	day                    int // sent date: day of January 2011, 0 for none
}

func threadFixture(in []tmsg) []sortMsg {
	out := make([]sortMsg, len(in))
	for i, m := range in {
		info := &mailstore.SortInfo{
			UID: mailstore.UID(i + 1), Subject: m.subject, MessageID: m.id,
			InReplyTo: strings.Fields(m.irt), References: strings.Fields(m.refs),
			InternalDate: time.Date(2026, 1, 1, 0, 0, i, 0, time.UTC),
		}
		if m.day > 0 {
			info.Sent = time.Date(2011, 1, m.day, 0, 0, 0, 0, time.UTC)
		}
		sent := info.Sent
		if sent.IsZero() {
			sent = info.InternalDate
		}
		base, reply := baseSubject(m.subject)
		out[i] = sortMsg{ref: msgRef{seq: uint32(i + 1), uid: mailstore.UID(i + 1)}, info: info,
			sent: sent, base: asciiUpper(base), reply: reply}
	}
	return out
}

func threadText(roots []*threadNode) string {
	var b strings.Builder
	bw := bufio.NewWriter(&b)
	w := wire.NewWriter(bw)
	for _, r := range roots {
		w.Raw("(")
		writeThreadMembers(w, r, func(r msgRef) uint64 { return uint64(r.seq) })
		w.Raw(")")
	}
	if err := bw.Flush(); err != nil {
		panic(err)
	}
	return b.String()
}

func TestThreadReferences(t *testing.T) {
	tests := []struct {
		name string
		msgs []tmsg
		want string
	}{
		{"chain by references",
			[]tmsg{{"a", "1", "", "", 1}, {"Re: a", "2", "", "1", 2}, {"Re: a", "3", "", "1 2", 3}},
			"(1 2 3)"},
		{"in-reply-to without references",
			[]tmsg{{"a", "1", "", "", 1}, {"Re: a", "2", "1 9", "", 2}},
			"(1 2)"},
		{"siblings by date",
			[]tmsg{{"a", "1", "", "", 1}, {"Re: a", "2", "", "1", 5}, {"Re: a", "3", "", "1", 3}},
			"(1 (3)(2))"},
		{"a child arrives before its parent",
			[]tmsg{{"Re: a", "2", "", "1", 2}, {"a", "1", "", "", 1}},
			"(2 1)"},
		{"missing parent with one child is promoted",
			[]tmsg{{"Re: a", "2", "", "gone", 2}},
			"(1)"},
		{"missing parent with two children stays as a dummy",
			[]tmsg{{"x", "2", "", "gone", 2}, {"y", "3", "", "gone", 1}},
			"((2)(1))"},
		{"missing middle of a chain: no dummy left below the root",
			[]tmsg{{"a", "1", "", "", 1}, {"Re: a", "3", "", "1 gone", 3}},
			"(1 2)"},
		// Step 5: same base subject, neither a reply: a dummy over both.
		{"same subject, no replies",
			[]tmsg{{"Lunch", "1", "", "", 1}, {"lunch", "2", "", "", 2}},
			"((1)(2))"},
		{"same subject, reply joins the original",
			[]tmsg{{"Re: Lunch", "2", "", "", 1}, {"Lunch", "1", "", "", 2}},
			"(2 1)"},
		{"same subject, both replies",
			[]tmsg{{"Re: Lunch", "1", "", "", 1}, {"Fwd: Lunch", "2", "", "", 2}},
			"((1)(2))"},
		{"empty subjects are never grouped",
			[]tmsg{{"", "1", "", "", 1}, {"Re:", "2", "", "", 2}},
			"(1)(2)"},
		{"no message-id, duplicate message-id",
			[]tmsg{{"a", "", "", "", 1}, {"b", "x", "", "", 2}, {"c", "x", "", "", 3}, {"Re: c", "4", "", "x", 4}},
			"(1)(2 4)(3)"},
		{"self reference",
			[]tmsg{{"a", "1", "", "1", 1}},
			"(1)"},
		{"references loop",
			[]tmsg{{"a", "1", "", "2", 1}, {"b", "2", "", "1", 2}},
			"(2 1)"},
		{"no date sorts by internal date, after dated ones",
			[]tmsg{{"a", "1", "", "", 0}, {"b", "2", "", "", 9}},
			"(2)(1)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := threadText(threadReferences(threadFixture(tt.msgs))); got != tt.want {
				t.Errorf("REFERENCES = %s, want %s", got, tt.want)
			}
		})
	}
}

func TestThreadOrderedSubject(t *testing.T) {
	msgs := []tmsg{
		{"Re: b", "", "", "", 4}, {"a", "", "", "", 3}, {"B", "", "", "", 2},
		{"[x] b (fwd)", "", "", "", 5}, {"c", "", "", "", 1}, {"a", "", "", "", 3},
	}
	// B: 3 (day 2), 1 (4), 4 (5); A: 2, 6 (day 3, by sequence); C: 5.
	want := "(5)(3 (1)(4))(2 6)"
	if got := threadText(threadOrderedSubject(threadFixture(msgs))); got != want {
		t.Errorf("ORDEREDSUBJECT = %s, want %s", got, want)
	}
}
