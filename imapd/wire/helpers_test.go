package wire

import (
	"bufio"
	"errors"
	"io"
	"strings"
	"testing"
	"testing/iotest"
)

// session is a parser over a client's bytes, delivered one byte per
// Read so that every token and literal is split across reads. conts
// counts the continuation requests the server sent; refuse, when set,
// refuses every literal with that error.
type session struct {
	p      *Parser
	conts  int
	seen   []LiteralInfo
	refuse error
}

func newSession(t *testing.T, input string, lim Limits) *session {
	t.Helper()
	s := &session{}
	br := bufio.NewReaderSize(iotest.OneByteReader(strings.NewReader(input)), 16)
	s.p = NewParser(br, Options{Limits: lim, OnLiteral: func(l LiteralInfo) error {
		s.seen = append(s.seen, l)
		if s.refuse != nil {
			return s.refuse
		}
		if l.Sync {
			s.conts++
		}
		return nil
	}})
	return s
}

// read returns the next command, or fails the test.
func (s *session) read(t *testing.T) *Command {
	t.Helper()
	c, err := s.p.ReadCommand()
	if err != nil {
		t.Fatalf("ReadCommand() = %v, want a command", err)
	}
	return c
}

// readErr returns the next parse error, or fails the test.
func (s *session) readErr(t *testing.T) *Error {
	t.Helper()
	c, err := s.p.ReadCommand()
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("ReadCommand() = %+v, %v, want an *Error", c, err)
	}
	return pe
}

// eof checks that the input is used up.
func (s *session) eof(t *testing.T) {
	t.Helper()
	if c, err := s.p.ReadCommand(); err != io.EOF {
		t.Fatalf("ReadCommand() = %+v, %v, want io.EOF", c, err)
	}
}

// parseOne parses input, which must hold exactly one command.
func parseOne(t *testing.T, input string) *Command {
	t.Helper()
	s := newSession(t, input, Limits{})
	c := s.read(t)
	s.eof(t)
	return c
}
