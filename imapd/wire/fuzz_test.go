package wire

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"testing/iotest"
)

var fuzzLimits = Limits{MaxLine: 512, MaxLiteral: 256, MaxMessage: 1024, MaxCommand: 2048, MaxDepth: 8, MaxList: 16, MaxArgs: 64, MaxDiscard: 4096}

// transcript parses input to its end and describes what the parser
// returned, one line per command or error.
func transcript(input []byte, oneByte bool) ([]string, error) {
	var r = bytes.NewReader(input)
	var br *bufio.Reader
	if oneByte {
		br = bufio.NewReaderSize(iotest.OneByteReader(r), 16)
	} else {
		br = bufio.NewReader(r)
	}
	n := 0
	p := NewParser(br, Options{Limits: fuzzLimits, OnLiteral: func(l LiteralInfo) error {
		n++
		if n%3 == 0 {
			return errors.New("refused") // every third literal
		}
		return nil
	}})
	var out []string
	// Every command or error consumes at least one byte: more rounds
	// than bytes means the parser is stuck.
	for range len(input) + 2 {
		c, err := p.ReadCommand()
		var pe *Error
		switch {
		case err == nil:
			out = append(out, fmt.Sprintf("%s %s %v", c.Tag, c.Name, c.UID))
			if a, ok := c.Args.(*Append); ok && int64(len(a.Message)) > fuzzLimits.MaxMessage {
				return out, fmt.Errorf("message of %d bytes over MaxMessage", len(a.Message))
			}
		case errors.As(err, &pe):
			out = append(out, fmt.Sprintf("error %q %v %v", pe.Tag, pe.Code, pe.Fatal))
			if pe.Fatal {
				return out, nil
			}
		default:
			return out, nil // end of input
		}
		if cap(p.scratch) > 2*fuzzLimits.MaxLine {
			return out, fmt.Errorf("scratch buffer of %d bytes", cap(p.scratch))
		}
	}
	return out, errors.New("no progress")
}

// FuzzParser feeds bytes to the parser: it never panics, always makes
// progress, allocates in proportion to the input (a literal's buffer
// grows with the bytes received, whatever size was announced), and
// parses the same whether the bytes come at once or one at a time.
func FuzzParser(f *testing.F) {
	for _, s := range []string{
		"a NOOP\r\n", "a LOGIN {5}\r\nalice {2+}\r\npw\r\n", "a LOGIN {999999999+}\r\nc CREATE injected\r\n",
		"a APPEND INBOX (\\Seen) \"17-Jul-1996 02:44:25 -0700\" ~{5+}\r\nab\x00cd\r\n", "a APPEND x UTF8 (~{2}\r\nhi)\r\n",
		"a APPEND INBOX {5+}\r\nhello (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {3+}\r\nbye ~{1+}\r\nz\r\n", "a COMPRESS DEFLATE\r\n",
		"a UID FETCH 1:*,$ (UID FLAGS BODY.PEEK[1.2.HEADER.FIELDS (From)]<0.10> BINARY[1] BINARY.SIZE[1])\r\n",
		"a SEARCH RETURN (MIN SAVE) CHARSET UTF-8 OR (FROM x NOT SEEN) 1:3 UID $ SINCE 1-Feb-1994 HEADER a {1+}\r\nb\r\n",
		"a UID SORT RETURN (MIN ALL) (REVERSE DATE SUBJECT DISPLAYFROM) UTF-8 OR FROM x 1:3\r\nb THREAD REFERENCES US-ASCII ALL\r\n",
		"a LIST (SUBSCRIBED RECURSIVEMATCH) \"\" (\"*\" %) RETURN (CHILDREN STATUS (MESSAGES SIZE))\r\n",
		"a STORE 1 +FLAGS.SILENT (\\Deleted)\r\nb ID (\"name\" NIL)\r\nc SELECT &ZeVnLIqe- (CONDSTORE)\r\n",
		"a CREATE x (USE (\\Sent))\r\na STATUS x (SIZE DELETED)\r\na AUTHENTICATE PLAIN =\r\nb FOO {3}\r\n",
		"a SELECT INBOX (QRESYNC (67890007 20050715194045000 41,43:211,214:541 (1,3:5 41,43:45)) CONDSTORE)\r\n",
		"a UID FETCH 300:500 (FLAGS MODSEQ) (CHANGEDSINCE 12345 VANISHED)\r\nb STATUS x (HIGHESTMODSEQ)\r\n",
		"a STORE 1:* (UNCHANGEDSINCE 0) +FLAGS.SILENT (\\Deleted)\r\nb SEARCH OR MODSEQ \"/flags/\\\\draft\" all 620162338 MODSEQ 7\r\n",
		"a NOTIFY SET STATUS (selected (MessageNew (UID BODY.PEEK[HEADER.FIELDS (From)]) MessageExpunge)) (subtree (a {1+}\r\nb) NONE)\r\nb NOTIFY NONE\r\n",
		"a UID SEARCH RETURN (COUNT PARTIAL -1:-100) ALL\r\nb UID FETCH 1:* (UID) (CHANGEDSINCE 1 PARTIAL 4294967295:1)\r\nc SEARCH RETURN (PARTIAL 0:-1) ALL\r\n",
		"GET / HTTP/1.1\r\n\r\n", "a FOO {00000000000000000000000000000000000005+}\r\nhello\r\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, input []byte) {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		whole, err := transcript(input, false)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		// Generous: strings and structs per byte of input and per command
		// or error (an empty line is one byte and one Error, and a line
		// of this transcript), plus a fixed part for the reader and the
		// parser. Commands are at most one per byte, so this stays in
		// proportion to the input, whatever size a literal announced.
		if alloc := after.TotalAlloc - before.TotalAlloc; alloc > uint64(200*len(input)+400*len(whole)+64<<10) {
			t.Errorf("allocated %d bytes for %d bytes of input", alloc, len(input))
		}
		split, err := transcript(input, true)
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(whole) != fmt.Sprint(split) {
			t.Errorf("at once: %q\none byte at a time: %q", whole, split)
		}
	})
}
