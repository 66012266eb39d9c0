package wire

import (
	"bufio"
	"bytes"
	"errors"
	"strconv"
	"unicode/utf8"
)

// Writer writes responses into the caller's bufio.Writer and never
// flushes on its own account: the caller calls Flush once per command or
// per batch of pushed updates (bufio still writes through when its buffer
// fills, as a large FETCH must). It remembers the first error; later
// writes do nothing and Flush returns it. Not safe for concurrent use.
type Writer struct {
	bw *bufio.Writer
	// UTF8: the client enabled UTF8=ACCEPT or IMAP4rev2, so quoted
	// strings may carry UTF-8 (RFC 9051 §9 QUOTED-CHAR, RFC 6855 §3) and
	// mailbox names are written as UTF-8, not modified UTF-7.
	UTF8 bool
	err  error
}

// NewWriter returns a Writer on bw, which the caller owns.
func NewWriter(bw *bufio.Writer) *Writer { return &Writer{bw: bw} }

// SetWriter makes w write into bw from now on: a connection that gives
// its writer back to a pool while it sleeps takes another one. The
// caller flushes the old one first; nil leaves w with no writer until
// the next SetWriter.
func (w *Writer) SetWriter(bw *bufio.Writer) { w.bw = bw }

// ErrNUL is the Writer's error for a string with NUL that is not written
// as a literal8: RFC 9051 §4.3's CHAR8 excludes NUL, so only BINARY's
// literal8 may carry one (RFC 3516 §4.2).
var ErrNUL = errors.New("wire: NUL in a string that cannot be literal8")

// Err returns the first error met.
func (w *Writer) Err() error { return w.err }

// Flush writes out what is buffered.
func (w *Writer) Flush() error {
	if w.err != nil {
		return w.err
	}
	w.err = w.bw.Flush()
	return w.err
}

// Raw writes s as it is: protocol syntax the caller has built.
func (w *Writer) Raw(s string) *Writer {
	if w.err == nil {
		_, w.err = w.bw.WriteString(s)
	}
	return w
}

func (w *Writer) byte(b byte) *Writer {
	if w.err == nil {
		w.err = w.bw.WriteByte(b)
	}
	return w
}

// SP writes a space.
func (w *Writer) SP() *Writer { return w.byte(' ') }

// CRLF ends a response line.
func (w *Writer) CRLF() *Writer { return w.Raw("\r\n") }

// Number writes a number.
func (w *Writer) Number(n uint64) *Writer {
	if w.err == nil {
		var buf [20]byte
		_, w.err = w.bw.Write(strconv.AppendUint(buf[:0], n, 10))
	}
	return w
}

// Atom writes an atom, which the caller knows to be one (a flag, a
// keyword from the grammar); a string that is not is written as String.
func (w *Writer) Atom(s string) *Writer {
	if !isAtom(s) {
		return w.String(s)
	}
	return w.Raw(s)
}

func isAtom(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if !isAtomChar(s[i]) {
			return false
		}
	}
	return true
}

// maxQuoted is the longest string written quoted; longer ones are
// literals, which need no escaping and read better in traces.
const maxQuoted = 1024

// canQuote reports whether s can be a quoted string: no CR, LF or NUL
// (RFC 9051 §9 QUOTED-CHAR), 8-bit only as UTF-8 and only with utf8on.
func canQuote(s string, utf8on bool) bool {
	if len(s) > maxQuoted {
		return false
	}
	ascii := true
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c == 0 || c == '\r' || c == '\n' {
			return false
		}
		if c >= 0x80 {
			ascii = false
		}
	}
	return ascii || utf8on && utf8.ValidString(s)
}

// String writes s as a quoted string or, when it cannot be one, a
// literal ("string" in RFC 9051 §9). NUL sets ErrNUL: see NString8.
func (w *Writer) String(s string) *Writer {
	if canQuote(s, w.UTF8) {
		return w.quoted(s)
	}
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			if w.err == nil {
				w.err = ErrNUL
			}
			return w
		}
	}
	return w.literal(s, false)
}

// AString writes s as an atom when it is one and is not NIL (which
// would read as nil in an nstring context), else as String.
func (w *Writer) AString(s string) *Writer {
	if isAtom(s) && !equalFold(s, "NIL") {
		return w.Raw(s)
	}
	return w.String(s)
}

// NString writes NIL when ok is false, else String(s).
func (w *Writer) NString(s string, ok bool) *Writer {
	if !ok {
		return w.Raw("NIL")
	}
	return w.String(s)
}

// NString8 writes s as BINARY's data (RFC 3516 §4.2: nstring /
// literal8): a literal8 when s holds NUL, else as String.
func (w *Writer) NString8(s string) *Writer {
	for i := 0; i < len(s); i++ {
		if s[i] == 0 {
			return w.literal(s, true)
		}
	}
	return w.String(s)
}

func (w *Writer) quoted(s string) *Writer {
	w.byte('"')
	start := 0
	for i := 0; i < len(s); i++ {
		if s[i] == '"' || s[i] == '\\' {
			w.Raw(s[start:i]).byte('\\')
			start = i
		}
	}
	return w.Raw(s[start:]).byte('"')
}

func (w *Writer) literal(s string, binary bool) *Writer {
	if binary {
		w.byte('~')
	}
	return w.byte('{').Number(uint64(len(s))).Raw("}\r\n").Raw(s)
}

// Mailbox writes a mailbox name: INBOX as is, others in modified UTF-7
// unless UTF8 (RFC 3501 §5.1.3, RFC 6855 §3).
func (w *Writer) Mailbox(name string) *Writer {
	if equalFold(name, "INBOX") {
		return w.Raw("INBOX")
	}
	if !w.UTF8 {
		name = EncodeMUTF7(name)
	}
	// Always a string, never an atom, as most servers write names:
	// clients' parsers have met quoted names far more often.
	return w.String(name)
}

// StatusType is a status response's condition (RFC 9051 §7.1).
type StatusType string

const (
	OK      StatusType = "OK"
	NO      StatusType = "NO"
	BAD     StatusType = "BAD"
	PREAUTH StatusType = "PREAUTH"
	BYE     StatusType = "BYE"
)

// Code is a response code (RFC 9051 §7.1): Name, and Args as protocol
// syntax the caller built ("" for none), e.g. {"APPENDUID", "38505 3955"}.
type Code struct{ Name, Args string }

// Tagged writes "tag status [code] text" CRLF.
func (w *Writer) Tagged(tag string, status StatusType, code Code, text string) *Writer {
	return w.Raw(tag).SP().status(status, code, text)
}

// Untagged writes "* status [code] text" CRLF.
func (w *Writer) Untagged(status StatusType, code Code, text string) *Writer {
	return w.Raw("* ").status(status, code, text)
}

// Continue writes a continuation request, "+ text" CRLF (RFC 9051 §7.5).
func (w *Writer) Continue(text string) *Writer {
	return w.Raw("+ ").text(text).CRLF()
}

func (w *Writer) status(status StatusType, code Code, text string) *Writer {
	w.Raw(string(status)).SP()
	if code.Name != "" {
		w.byte('[').Raw(code.Name)
		if code.Args != "" {
			w.SP().Raw(cleanText(code.Args, true))
		}
		w.Raw("] ")
	}
	if text == "" {
		// RFC 3501 §9 text is 1*TEXT-CHAR.
		text = string(status)
	} else if code.Name == "" && text[0] == '[' {
		// Would read as a response code.
		text = " " + text
	}
	return w.text(text).CRLF()
}

// text writes human-readable text with CR, LF and NUL replaced by spaces
// (RFC 9051 §9 TEXT-CHAR).
func (w *Writer) text(s string) *Writer { return w.Raw(cleanText(s, false)) }

func cleanText(s string, code bool) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c == 0 || c == '\r' || c == '\n' || code && c == ']' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; c == 0 || c == '\r' || c == '\n' || code && c == ']' {
					b[j] = ' '
				}
			}
			return string(b)
		}
	}
	return s
}

// Literal writes b as a literal, "{n}" CRLF and the bytes, for message
// data (BODY[…], RFC822): the caller has made sure b holds no NUL, which
// sets ErrNUL (RFC 9051 §4.3).
func (w *Writer) Literal(b []byte) *Writer {
	if bytes.IndexByte(b, 0) >= 0 {
		if w.err == nil {
			w.err = ErrNUL
		}
		return w
	}
	return w.byte('{').Number(uint64(len(b))).Raw("}\r\n").bytes(b)
}

// Literal8 writes b as BINARY's data (RFC 3516 §4.2): a literal8,
// "~{n}", when b holds NUL, else a literal.
func (w *Writer) Literal8(b []byte) *Writer {
	if bytes.IndexByte(b, 0) < 0 {
		return w.Literal(b)
	}
	return w.Raw("~{").Number(uint64(len(b))).Raw("}\r\n").bytes(b)
}

func (w *Writer) bytes(b []byte) *Writer {
	if w.err == nil {
		_, w.err = w.bw.Write(b)
	}
	return w
}
