package wire

import (
	"bufio"
	"reflect"
	"strings"
	"testing"
	"time"
)

// MULTIAPPEND (RFC 3502 §6) and COMPRESS (RFC 4978 §4) as their RFCs
// write them.
func TestMultiAppendCommands(t *testing.T) {
	date := time.Date(1994, 2, 7, 21, 52, 25, 0, time.FixedZone("", -8*3600))
	tests := []struct {
		name  string
		input string
		want  Command
	}{
		{"RFC 3502 §6 example", "A003 APPEND saved-messages (\\Seen) {5}\r\nhello" +
			" (\\Seen) \" 7-Feb-1994 21:52:25 -0800\" {3}\r\nbye",
			Command{Tag: "A003", Name: "APPEND", Args: &Append{Mailbox: "saved-messages", Flags: []string{`\Seen`}, Message: []byte("hello"),
				More: []AppendMessage{{Flags: []string{`\Seen`}, Date: date, Message: []byte("bye")}}}}},
		{"three messages, bare, literal8 and UTF8", "a APPEND INBOX {1+}\r\nx ~{1+}\r\ny UTF8 (~{1+}\r\nz)",
			Command{Tag: "a", Name: "APPEND", Args: &Append{Mailbox: "INBOX", Message: []byte("x"),
				More: []AppendMessage{{Message: []byte("y"), Binary: true}, {Message: []byte("z"), Binary: true, UTF8: true}}}}},
		{"COMPRESS RFC 4978 §3", "a COMPRESS deflate", Command{Tag: "a", Name: "COMPRESS", Args: &Compress{Mechanism: "DEFLATE"}}},
		{"COMPRESS unknown mechanism", "a COMPRESS LZW", Command{Tag: "a", Name: "COMPRESS", Args: &Compress{Mechanism: "LZW"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := parseOne(t, tt.input+"\r\n")
			if !reflect.DeepEqual(*got, tt.want) {
				t.Errorf("ReadCommand() = %+v\nwant %+v", got.Args, tt.want.Args)
			}
		})
	}
}

func TestMultiAppendErrors(t *testing.T) {
	tests := []struct {
		name, input string
		code        ErrorCode
	}{
		{"space and nothing", "a APPEND INBOX {1+}\r\nx ", ErrSyntax},
		{"second without literal", "a APPEND INBOX {1+}\r\nx (\\Seen) hello", ErrSyntax},
		{"second too big", "a APPEND INBOX {1+}\r\nx {9+}\r\n123456789", ErrMessageTooBig},
		{"COMPRESS without mechanism", "a COMPRESS", ErrSyntax},
		{"COMPRESS with two", "a COMPRESS DEFLATE X", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tt.input+"\r\nz NOOP\r\n", Limits{MaxMessage: 8})
			e := s.readErr(t)
			if e.Tag != "a" || e.Code != tt.code || e.Fatal {
				t.Errorf("error = %+v, want tag a code %v", e, tt.code)
			}
			if c := s.read(t); c.Tag != "z" {
				t.Errorf("next command = %+v, want z NOOP", c)
			}
			s.eof(t)
		})
	}
}

// Grow's total counts every message of a MULTIAPPEND, so the caller's
// budget holds them all; it starts again at the next command.
func TestMultiAppendGrowTotal(t *testing.T) {
	var totals []int64
	in := "a APPEND INBOX {5+}\r\nhello {6000+}\r\n" + strings.Repeat("x", 6000) + " {3+}\r\nbye\r\n" +
		"b APPEND INBOX {2+}\r\nhi\r\n"
	p := NewParser(bufio.NewReader(strings.NewReader(in)), Options{Grow: func(total int64) bool {
		totals = append(totals, total)
		return true
	}})
	for range 2 {
		if _, err := p.ReadCommand(); err != nil {
			t.Fatalf("ReadCommand() = %v", err)
		}
	}
	// 5; then 4096 and 6000 on top of 5; then 3 on top of 6005; then 2.
	want := []int64{5, 5 + 4096, 5 + 6000, 6005 + 3, 2}
	if !reflect.DeepEqual(totals, want) {
		t.Errorf("Grow totals = %v, want %v", totals, want)
	}
}

// A refused Grow in the third message fails the whole command.
func TestMultiAppendGrowRefused(t *testing.T) {
	calls := 0
	in := "a APPEND INBOX {1+}\r\nx {1+}\r\ny {1+}\r\nz\r\nb NOOP\r\n"
	p := NewParser(bufio.NewReader(strings.NewReader(in)), Options{Grow: func(total int64) bool {
		calls++
		return calls < 3
	}})
	_, err := p.ReadCommand()
	pe, ok := err.(*Error)
	if !ok || pe.Code != ErrLiteralRefused || pe.Fatal {
		t.Fatalf("ReadCommand() = %v, want a non-fatal ErrLiteralRefused", err)
	}
	if c, err := p.ReadCommand(); err != nil || c.Tag != "b" {
		t.Fatalf("next = %+v, %v, want b NOOP", c, err)
	}
}
