package wire

import (
	"errors"
	"strings"
	"testing"
)

// Literals of every kind, delivered one byte per Read (newSession).
func TestLiterals(t *testing.T) {
	tests := []struct {
		name      string
		input     string
		wantUser  string
		wantConts int // continuation requests the server had to send
	}{
		// RFC 9051 §4.3: "{" number "}" CRLF, then the octets.
		{"synchronizing", "a LOGIN {5}\r\nalice pw\r\n", "alice", 1},
		// RFC 7888 §3: "{" number "+}" needs no continuation.
		{"non-synchronizing", "a LOGIN {5+}\r\nalice pw\r\n", "alice", 0},
		{"empty", "a LOGIN {0}\r\n pw\r\n", "", 1},
		{"holds CRLF and specials", "a LOGIN {9+}\r\n(a)\r\n{1}\" pw\r\n", "(a)\r\n{1}\"", 0},
		{"holds 8-bit", "a LOGIN {4+}\r\n\xc3\xa9t\xff pw\r\n", "\xc3\xa9t\xff", 0},
		{"bare LF after the size", "a LOGIN {5+}\nalice pw\r\n", "alice", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tt.input, Limits{})
			c := s.read(t)
			if got := c.Args.(*Login).Username; got != tt.wantUser {
				t.Errorf("username = %q, want %q", got, tt.wantUser)
			}
			if s.conts != tt.wantConts {
				t.Errorf("continuations = %d, want %d", s.conts, tt.wantConts)
			}
			s.eof(t)
		})
	}
}

// RFC 3516 §4.4: APPEND takes its message as literal8, NUL included; a
// plain literal carries no NUL (RFC 9051 §4.3 CHAR8), except APPEND's
// message, which is taken as the client sent it.
func TestLiteral8(t *testing.T) {
	c := parseOne(t, "a APPEND INBOX ~{5+}\r\nab\x00cd\r\n")
	a := c.Args.(*Append)
	if !a.Binary || string(a.Message) != "ab\x00cd" {
		t.Errorf("APPEND = %+v, want binary message ab\\0cd", a)
	}
	// RFC 6855 §4: APPEND … UTF8 (literal8).
	c = parseOne(t, "a APPEND Drafts UTF8 (~{3}\r\n\xe2\x82\xac)\r\n")
	if a := c.Args.(*Append); !a.UTF8 || !a.Binary || string(a.Message) != "\xe2\x82\xac" {
		t.Errorf("APPEND UTF8 = %+v", a)
	}

	c = parseOne(t, "a APPEND INBOX {3+}\r\na\x00b\r\n")
	if a := c.Args.(*Append); a.Binary || string(a.Message) != "a\x00b" {
		t.Errorf("APPEND of NUL in a plain literal = %+v, want the message as sent", a)
	}

	errs := []struct{ name, input string }{
		{"NUL in a plain literal", "a LOGIN {3+}\r\na\x00b pw\r\n"},
		{"literal8 outside APPEND", "a LOGIN ~{3+}\r\nabc pw\r\n"},
		{"NUL in a quoted string", "a LOGIN \"a\x00b\" pw\r\n"},
	}
	for _, tt := range errs {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tt.input+"b NOOP\r\n", Limits{})
			if e := s.readErr(t); e.Code != ErrSyntax || e.Tag != "a" || e.Fatal {
				t.Errorf("error = %+v, want non-fatal syntax error tagged a", e)
			}
			if c := s.read(t); c.Tag != "b" {
				t.Errorf("next command = %+v, want b NOOP", c)
			}
			s.eof(t)
		})
	}
}

// The heart of RFC 7888 §4: a refused literal's data is never executed.
func TestRefusedLiterals(t *testing.T) {
	lim := Limits{MaxLiteral: 10, MaxMessage: 20}
	tests := []struct {
		name  string
		input string // then "c NOOP\r\n" follows
		code  ErrorCode
	}{
		{"oversized non-sync literal with a command inside",
			"a LOGIN {30+}\r\nc CREATE injected\r\n0123456789 pw\r\n", ErrLiteralTooBig},
		{"oversized APPEND message",
			"a APPEND INBOX {25+}\r\nc CREATE injected\r\n1234567\r\n", ErrMessageTooBig},
		// A synchronizing literal refused: the client waits for "+",
		// gets the tagged response instead, and sends no data.
		{"oversized sync literal", "a LOGIN {30}\r\n", ErrLiteralTooBig},
		{"oversized sync APPEND", "a APPEND INBOX (\\Seen) {999999}\r\n", ErrMessageTooBig},
		{"size beyond int64", "a LOGIN {99999999999999999999999}\r\n", ErrLiteralTooBig},
		// An error before the literal: the rest of its line, then its
		// data, then the rest of the command are dropped.
		{"unknown command announcing a literal",
			"a XYZZY {17+}\r\nc CREATE injected tail\r\n", ErrUnknownCommand},
		{"syntax error before a literal",
			"a LOGIN ( {17+}\r\nc CREATE injected\r\n", ErrSyntax},
		{"two literals after an error",
			"a FOO {3+}\r\nabc {17+}\r\nc CREATE injected\r\n", ErrUnknownCommand},
		{"error after a literal's data", "a LOGIN {3+}\r\nabc\r\n", ErrSyntax},
		{"literal8 announced after an error",
			"a FOO ~{17+}\r\nc CREATE injected\r\n", ErrUnknownCommand},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tt.input+"c NOOP\r\n", lim)
			e := s.readErr(t)
			if e.Code != tt.code || e.Tag != "a" || e.Fatal {
				t.Errorf("error = %+v, want non-fatal %v tagged a", e, tt.code)
			}
			if c := s.read(t); c.Tag != "c" || c.Name != "NOOP" {
				t.Errorf("next command = %+v, want c NOOP", c)
			}
			if s.conts != 0 {
				t.Errorf("continuations = %d, want none", s.conts)
			}
			s.eof(t)
		})
	}
}

func TestOnLiteralRefuses(t *testing.T) {
	quota := errors.New("over quota")
	s := newSession(t, "a APPEND INBOX {5}\r\nb APPEND INBOX {12+}\r\nc NOOP\r\nxx\r\n\r\nc NOOP\r\n", Limits{})
	s.refuse = quota
	for _, sync := range []bool{true, false} {
		e := s.readErr(t)
		if e.Code != ErrLiteralRefused || !errors.Is(e, quota) || e.Command != "APPEND" {
			t.Errorf("error = %+v, want ErrLiteralRefused wrapping %v", e, quota)
		}
		if got := s.seen[len(s.seen)-1]; got.Sync != sync || !got.Message || got.Size == 0 {
			t.Errorf("OnLiteral saw %+v", got)
		}
	}
	if c := s.read(t); c.Tag != "c" {
		t.Errorf("next command = %+v, want c NOOP", c)
	}
	if s.conts != 0 {
		t.Errorf("continuations = %d, want none", s.conts)
	}
	s.eof(t)
}

// A nil OnLiteral cannot send "+": synchronizing literals are refused.
func TestNilOnLiteral(t *testing.T) {
	s := newSession(t, "a LOGIN {5}\r\nb NOOP\r\n", Limits{})
	s.p.onLiteral = nil
	if e := s.readErr(t); e.Code != ErrLiteralRefused {
		t.Errorf("error = %+v, want ErrLiteralRefused", e)
	}
	if c := s.read(t); c.Tag != "b" {
		t.Errorf("next = %+v", c)
	}
}

// RFC 7888 §5: LITERAL- (and IMAP4rev2) takes non-synchronizing literals
// of at most 4096 octets; a larger one is refused and its data dropped.
func TestLiteralMinus(t *testing.T) {
	lim := Limits{NonSyncMax: 4096, MaxMessage: 1 << 20}
	ok := "a APPEND INBOX {4096+}\r\n" + strings.Repeat("x", 4096) + "\r\n"
	over := "b APPEND INBOX {4097+}\r\n" + strings.Repeat("y", 4097) + "\r\n"
	sync := "c APPEND INBOX {4097}\r\n"
	s := newSession(t, ok+over+sync+"d NOOP\r\n", lim)
	if c := s.read(t); len(c.Args.(*Append).Message) != 4096 {
		t.Errorf("4096-octet non-sync literal not taken")
	}
	if e := s.readErr(t); e.Code != ErrLiteralTooBig || e.Tag != "b" {
		t.Errorf("error = %+v, want ErrLiteralTooBig for b", e)
	}
	// The refusal only concerns non-synchronizing literals.
	s.p.onLiteral = func(LiteralInfo) error { return errors.New("no") }
	if e := s.readErr(t); e.Code != ErrLiteralRefused || e.Tag != "c" {
		t.Errorf("error = %+v, want c's sync literal asked about", e)
	}
	if c := s.read(t); c.Tag != "d" {
		t.Errorf("next = %+v, want d NOOP", c)
	}
}

// Past MaxDiscard the parser cannot drop the data: the error is fatal.
func TestDiscardLimit(t *testing.T) {
	s := newSession(t, "a LOGIN {5000+}\r\n"+strings.Repeat("x", 5000), Limits{MaxLiteral: 100, MaxDiscard: 4096})
	if e := s.readErr(t); !e.Fatal || e.Code != ErrLiteralTooBig {
		t.Errorf("error = %+v, want fatal ErrLiteralTooBig", e)
	}
	s = newSession(t, "a FOO "+strings.Repeat("x", 5000)+"\r\n", Limits{MaxDiscard: 4096})
	if e := s.readErr(t); !e.Fatal {
		t.Errorf("error = %+v, want fatal: line longer than the discard limit", e)
	}
	// A dropped line whose literal's "{" is out of the tail's sight.
	s = newSession(t, "a FOO {"+strings.Repeat("0", 40)+"5+}\r\nhello", Limits{})
	if e := s.readErr(t); !e.Fatal {
		t.Errorf("error = %+v, want fatal: literal size unknown", e)
	}
}

// Pipelined commands (RFC 9051 §5.5), literal data in between.
func TestPipelined(t *testing.T) {
	s := newSession(t, "a1 NOOP\r\na2 LOGIN {3+}\r\nbob {2+}\r\npw\r\na3 SELECT INBOX\r\na4 FOO\r\na5 CAPABILITY\r\n", Limits{})
	for _, want := range []string{"a1", "a2", "a3", "", "a5"} {
		if want == "" {
			if e := s.readErr(t); e.Tag != "a4" || e.Code != ErrUnknownCommand {
				t.Errorf("error = %+v, want unknown command a4", e)
			}
			continue
		}
		if c := s.read(t); c.Tag != want {
			t.Errorf("command = %+v, want tag %s", c, want)
		}
	}
	s.eof(t)
}
