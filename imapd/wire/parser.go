package wire

import (
	"bufio"
	"bytes"
	"errors"
	"io"
	"unicode/utf8"
)

// LiteralInfo describes a literal whose header ("{n}", "{n+}", "~{n}")
// has been read and whose data has not.
type LiteralInfo struct {
	Tag, Command string
	Size         int64
	Sync         bool // "{n}": the client waits for a continuation request
	Binary       bool // literal8, "~{n}" (RFC 3516 §4.1)
	Message      bool // APPEND's message, bounded by Limits.MaxMessage
}

// Options configure a Parser.
type Options struct {
	Limits Limits
	// OnLiteral is called for every literal within its limits, before
	// its data is read. For a synchronizing literal it accepts by writing
	// and flushing a continuation request ("+ ...") before it returns
	// nil; a non-nil error refuses the literal, the client sends no data
	// (RFC 9051 §7.5), and ReadCommand returns an Error with code
	// ErrLiteralRefused. For a non-synchronizing literal it must not
	// write; an error refuses it and the parser skips its data (RFC 7888
	// §4). A nil OnLiteral accepts non-synchronizing literals and refuses
	// synchronizing ones, as it cannot ask for their data.
	OnLiteral func(LiteralInfo) error
	// UTF8 says UTF8=ACCEPT (RFC 6855) or IMAP4rev2 is enabled: mailbox
	// names are UTF-8, not modified UTF-7. See Parser.SetUTF8.
	UTF8 bool
	// Grow, if set, is asked before the buffer of APPEND's message grows
	// to total bytes: its whole capacity so far, plus the capacity of the
	// command's earlier messages (MULTIAPPEND, RFC 3502), so total is the
	// memory the command holds: the caller's memory budget. false refuses the message: the parser drops the rest of its
	// data and ReadCommand returns an Error with ErrLiteralRefused. The
	// caller learns what it granted from its own calls, and releases it
	// once the command is done with.
	Grow func(total int64) bool
}

// Parser reads commands from a client. It is not safe for concurrent
// use; one goroutine reads a connection's commands. Its only buffers are
// the caller's bufio.Reader and a scratch slice bounded by Limits.MaxLine.
type Parser struct {
	br        *bufio.Reader
	lim       Limits
	onLiteral func(LiteralInfo) error
	grow      func(int64) bool
	utf8      bool

	// The command being read.
	tag, cmd string
	lineLen  int   // bytes of the current line
	cmdBytes int64 // bytes of the command, APPEND's message excluded
	msgBytes int64 // capacity of the command's APPEND messages read so far
	args     int
	depth    int
	// lineDone: the last byte consumed ended a line (LF): nothing of
	// that line is left to discard.
	lineDone bool
	// tail holds the last bytes of the current line, so that resync can
	// tell whether the line announced a literal.
	tail    [tailSize]byte
	tailLen int
	// skip: data of a refused non-synchronizing literal, to be dropped.
	skip    int64
	scratch []byte
}

const tailSize = 32

// NewParser returns a parser reading from br, which the caller owns (it
// may pool it between commands: the parser holds no bytes of its own
// between ReadCommand calls).
func NewParser(br *bufio.Reader, opts Options) *Parser {
	return &Parser{br: br, lim: opts.Limits.withDefaults(), onLiteral: opts.OnLiteral, grow: opts.Grow, utf8: opts.UTF8}
}

// SetReader makes the parser read from br from now on: a connection that
// gives its reader back to a pool between commands takes another one.
// Between commands the parser holds no bytes of br's; nil leaves it
// with no reader (and drops its scratch space) until the next SetReader.
func (p *Parser) SetReader(br *bufio.Reader) {
	p.br = br
	if br == nil {
		p.scratch = nil
	}
}

// SetUTF8 switches mailbox names to UTF-8 once the client has enabled
// UTF8=ACCEPT or IMAP4rev2 (RFC 6855 §3, RFC 9051 §6.3.1).
func (p *Parser) SetUTF8(on bool) { p.utf8 = on }

// SetLimits replaces the limits, e.g. MaxMessage once the user is known.
func (p *Parser) SetLimits(l Limits) { p.lim = l.withDefaults() }

// errIO wraps a read error so that parse functions pass it up unchanged.
type errIO struct{ err error }

func (e errIO) Error() string { return e.err.Error() }

func (p *Parser) fail(code ErrorCode, msg string) error {
	return &Error{Tag: p.tag, Command: p.cmd, Code: code, Msg: msg}
}

func (p *Parser) syntax(msg string) error { return p.fail(ErrSyntax, msg) }

func (p *Parser) startCommand() {
	p.tag, p.cmd = "", ""
	p.lineLen, p.cmdBytes, p.args, p.depth = 0, 0, 0, 0
	p.msgBytes = 0
	p.lineDone = false
	p.tailLen = 0
	p.skip = 0
}

// peek returns the next byte without consuming it.
func (p *Parser) peek() (byte, error) {
	b, err := p.br.Peek(1)
	if err != nil {
		return 0, errIO{ioErr(err)}
	}
	return b[0], nil
}

func ioErr(err error) error {
	if err == io.EOF {
		return io.ErrUnexpectedEOF
	}
	return err
}

// next consumes one byte of a line, within MaxLine and MaxCommand.
func (p *Parser) next() (byte, error) {
	if p.lineLen >= p.lim.MaxLine {
		return 0, p.fail(ErrLineTooLong, "line too long")
	}
	if p.cmdBytes >= p.lim.MaxCommand {
		return 0, p.fail(ErrTooComplex, "command too long")
	}
	b, err := p.br.ReadByte()
	if err != nil {
		return 0, errIO{ioErr(err)}
	}
	p.lineLen++
	p.cmdBytes++
	p.push(b)
	return b, nil
}

func (p *Parser) push(b byte) {
	p.tail[p.tailLen%tailSize] = b
	p.tailLen++
	p.lineDone = b == '\n'
	if b == '\n' {
		p.lineLen = 0
	}
}

// tailBytes returns the current line's last bytes in order.
func (p *Parser) tailBytes() []byte {
	n := min(p.tailLen, tailSize)
	out := make([]byte, 0, tailSize)
	for i := p.tailLen - n; i < p.tailLen; i++ {
		out = append(out, p.tail[i%tailSize])
	}
	return out
}

// announced reports whether a line ending in tail (LF included)
// announced a literal, and which. ambiguous: the line ends in "}" after
// more digits than the tail holds, so its size is unknown.
func announced(tail []byte) (size int64, sync, ok, ambiguous bool) {
	t := bytes.TrimSuffix(tail, []byte("\n"))
	t = bytes.TrimSuffix(t, []byte("\r"))
	if len(t) == 0 || t[len(t)-1] != '}' {
		return 0, false, false, false
	}
	t = t[:len(t)-1]
	sync = true
	if len(t) > 0 && t[len(t)-1] == '+' {
		sync = false
		t = t[:len(t)-1]
	}
	i := len(t)
	for i > 0 && t[i-1] >= '0' && t[i-1] <= '9' {
		i--
	}
	if i == 0 {
		// Digits up to the tail's start: the "{" is out of sight.
		return 0, sync, false, len(t) > 0 && len(tail) == tailSize
	}
	if t[i-1] != '{' || i == len(t) {
		return 0, false, false, false
	}
	n, ok := parseSize(t[i:])
	if !ok {
		return 0, sync, false, true
	}
	return n, sync, true, false
}

// parseSize parses a literal's announced size; ok is false on overflow.
func parseSize(digits []byte) (int64, bool) {
	var n int64
	for _, d := range digits {
		if n > (1<<63-1-int64(d-'0'))/10 {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// resync consumes the rest of a failed command: the rest of the current
// line and, for every line that announced a non-synchronizing literal,
// that literal's data and the line after it (RFC 7888 §4: a server that
// refuses such a literal must read and drop it, or close). A line that
// announced a synchronizing literal ends the command: its data comes only
// after a continuation request, which the client does not get. Returns a
// non-nil error when resynchronizing is impossible: the caller closes.
func (p *Parser) resync() error {
	budget := p.lim.MaxDiscard
	for {
		if p.skip > 0 {
			if p.skip > budget {
				return errors.New("refused literal larger than the discard limit")
			}
			budget -= p.skip
			n, err := p.br.Discard(int(min(p.skip, 1<<62)))
			p.skip -= int64(n)
			if err != nil {
				return errIO{ioErr(err)}
			}
			p.tailLen, p.lineLen, p.lineDone = 0, 0, false
			continue
		}
		if p.lineDone {
			return nil
		}
		// Drop the rest of the line, keeping its tail.
		for !p.lineDone {
			if budget <= 0 {
				return errors.New("discarded line longer than the discard limit")
			}
			if _, err := p.br.Peek(1); err != nil {
				return errIO{ioErr(err)}
			}
			data, _ := p.br.Peek(p.br.Buffered())
			i := bytes.IndexByte(data, '\n')
			n := len(data)
			if i >= 0 {
				n = i + 1
			}
			n = int(min(int64(n), budget))
			for _, b := range data[:n] {
				p.push(b)
			}
			if _, err := p.br.Discard(n); err != nil {
				return errIO{ioErr(err)}
			}
			budget -= int64(n)
		}
		size, sync, ok, ambiguous := announced(p.tailBytes())
		switch {
		case ambiguous:
			return errors.New("cannot tell the size of a literal announced by a discarded line")
		case ok && !sync:
			p.skip = size
			if size == 0 {
				p.tailLen, p.lineLen, p.lineDone = 0, 0, false
			}
		}
		// ok && sync: the client waits for "+", which it will not get;
		// the tagged response ends the command. Not ok: the line ended it.
		if !ok || sync {
			return nil
		}
	}
}

// wrapErr turns a parse failure into what ReadCommand returns: I/O errors
// as they are, parse errors after resynchronizing.
func (p *Parser) wrapErr(err error) error {
	var ioe errIO
	if errors.As(err, &ioe) {
		return ioe.err
	}
	var pe *Error
	if !errors.As(err, &pe) {
		return err
	}
	if pe.Tag == "" {
		pe.Tag = p.tag
	}
	if pe.Command == "" {
		pe.Command = p.cmd
	}
	if rerr := p.resync(); rerr != nil {
		if errors.As(rerr, &ioe) {
			return ioe.err
		}
		pe.Fatal = true
		pe.Msg += "; " + rerr.Error()
	}
	p.scratch = p.scratch[:0]
	return pe
}

// sp consumes one space.
func (p *Parser) sp() error {
	b, err := p.peek()
	if err != nil {
		return err
	}
	if b != ' ' {
		return p.syntax("expected a space")
	}
	_, err = p.next()
	return err
}

// crlf consumes the CRLF that ends a command.
func (p *Parser) crlf() error {
	b, err := p.peek()
	if err != nil {
		return err
	}
	if b != '\r' {
		if b == ' ' {
			return p.syntax("unexpected space")
		}
		return p.syntax("expected the end of the command")
	}
	if _, err := p.next(); err != nil {
		return err
	}
	b, err = p.peek()
	if err != nil {
		return err
	}
	if b != '\n' {
		return p.syntax("CR without LF")
	}
	_, err = p.next()
	return err
}

// atEnd reports whether the next byte ends the line.
func (p *Parser) atEnd() (bool, error) {
	b, err := p.peek()
	if err != nil {
		return false, err
	}
	return b == '\r' || b == '\n', nil
}

// maybe consumes c if it is next.
func (p *Parser) maybe(c byte) (bool, error) {
	b, err := p.peek()
	if err != nil {
		return false, err
	}
	if b != c {
		return false, nil
	}
	_, err = p.next()
	return err == nil, err
}

func (p *Parser) expect(c byte, what string) error {
	ok, err := p.maybe(c)
	if err != nil {
		return err
	}
	if !ok {
		return p.syntax("expected " + what)
	}
	return nil
}

// arg counts one item against MaxArgs.
func (p *Parser) arg() error {
	p.args++
	if p.args > p.lim.MaxArgs {
		return p.fail(ErrTooComplex, "too many arguments")
	}
	return nil
}

// enter and leave bound nesting.
func (p *Parser) enter() error {
	p.depth++
	if p.depth > p.lim.MaxDepth {
		return p.fail(ErrTooComplex, "nested too deeply")
	}
	return nil
}

func (p *Parser) leave() { p.depth-- }

// list reads "(" elem *(SP elem) ")", or "()" when empty is true,
// calling elem for each element within MaxList and MaxDepth.
func (p *Parser) list(empty bool, elem func() error) error {
	if err := p.expect('(', `"("`); err != nil {
		return err
	}
	if err := p.enter(); err != nil {
		return err
	}
	defer p.leave()
	if err := p.arg(); err != nil {
		return err
	}
	if ok, err := p.maybe(')'); err != nil || ok {
		if ok && !empty {
			return p.syntax("empty list")
		}
		return err
	}
	for n := 1; ; n++ {
		if n > p.lim.MaxList {
			return p.fail(ErrTooComplex, "list too long")
		}
		if err := elem(); err != nil {
			return err
		}
		if ok, err := p.maybe(')'); err != nil || ok {
			return err
		}
		if err := p.sp(); err != nil {
			return p.syntax(`expected a space or ")"`)
		}
	}
}

// Character classes, RFC 9051 §9.

func isCTL(b byte) bool { return b < 0x20 || b == 0x7f }

func isAtomChar(b byte) bool {
	if b >= 0x80 || isCTL(b) {
		return false
	}
	switch b {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return true
}

func isAStringChar(b byte) bool { return isAtomChar(b) || b == ']' }

func isAStringCharUTF8(b byte) bool { return b >= 0x80 || isAStringChar(b) }

func isListChar(b byte) bool { return isAtomChar(b) || b == '%' || b == '*' || b == ']' }

// run reads 1*c bytes for which class is true into scratch.
func (p *Parser) run(class func(byte) bool, what string) ([]byte, error) {
	p.scratch = p.scratch[:0]
	for {
		b, err := p.peek()
		if err != nil {
			return nil, err
		}
		if !class(b) {
			break
		}
		if _, err := p.next(); err != nil {
			return nil, err
		}
		p.scratch = append(p.scratch, b)
	}
	if len(p.scratch) == 0 {
		return nil, p.syntax("expected " + what)
	}
	return p.scratch, nil
}

// atom reads an atom (RFC 9051 §9 atom).
func (p *Parser) atom() (string, error) {
	if err := p.arg(); err != nil {
		return "", err
	}
	b, err := p.run(isAtomChar, "an atom")
	return string(b), err
}

// quoted reads a quoted string: escapes only for DQUOTE and backslash;
// never CR, LF or NUL; UTF-8 as RFC 9051's QUOTED-CHAR allows.
func (p *Parser) quoted() ([]byte, error) {
	if err := p.expect('"', "a quoted string"); err != nil {
		return nil, err
	}
	p.scratch = p.scratch[:0]
	for {
		b, err := p.peek()
		if err != nil {
			return nil, err
		}
		switch {
		case b == '\r' || b == '\n':
			return nil, p.syntax("unterminated quoted string")
		case b == 0:
			return nil, p.syntax("NUL in a quoted string")
		}
		if _, err := p.next(); err != nil {
			return nil, err
		}
		switch b {
		case '"':
			if !utf8.Valid(p.scratch) {
				return nil, p.syntax("invalid UTF-8 in a quoted string")
			}
			return p.scratch, nil
		case '\\':
			e, err := p.peek()
			if err != nil {
				return nil, err
			}
			if e != '"' && e != '\\' {
				return nil, p.syntax(`bad escape in a quoted string: only \" and \\`)
			}
			if _, err := p.next(); err != nil {
				return nil, err
			}
			b = e
		}
		p.scratch = append(p.scratch, b)
	}
}

// literalKind says where a literal stands.
type literalKind int

const (
	litString  literalKind = iota // a string: plain literal, no NUL
	litMessage                    // APPEND's message: literal or literal8
	litBinary                     // APPEND UTF8 (…): literal8, or literal
)

// literal reads a literal's header, asks OnLiteral, and reads its data
// into a buffer that grows with the bytes received. On refusal it leaves
// the parser ready to resync: a non-synchronizing literal's data is
// marked to skip.
func (p *Parser) literal(kind literalKind) ([]byte, bool, error) {
	binary, err := p.maybe('~')
	if err != nil {
		return nil, false, err
	}
	if binary && kind == litString {
		return nil, false, p.syntax("literal8 only in APPEND (RFC 3516)")
	}
	if err := p.expect('{', `"{"`); err != nil {
		return nil, false, err
	}
	digits, err := p.run(func(b byte) bool { return b >= '0' && b <= '9' }, "a literal's size")
	if err != nil {
		return nil, false, err
	}
	size, sizeOK := parseSize(digits)
	plus, err := p.maybe('+')
	if err != nil {
		return nil, false, err
	}
	if err := p.expect('}', `"}"`); err != nil {
		return nil, false, err
	}
	// The header ends the line: CRLF, or a bare LF, which resync counts too.
	if _, err := p.maybe('\r'); err != nil {
		return nil, false, err
	}
	if err := p.expect('\n', "CRLF after a literal's size"); err != nil {
		return nil, false, err
	}
	info := LiteralInfo{Tag: p.tag, Command: p.cmd, Size: size, Sync: !plus, Binary: binary, Message: kind != litString}
	limit := p.lim.MaxLiteral
	if info.Message {
		limit = p.lim.MaxMessage
	}
	refuse := func(code ErrorCode, msg string, cause error) error {
		if !info.Sync {
			p.skip = size
			if !sizeOK {
				p.skip = 1<<63 - 1
			}
		}
		e := p.fail(code, msg).(*Error)
		e.Err = cause
		return e
	}
	switch {
	case info.Message && (!sizeOK || size > limit):
		return nil, false, refuse(ErrMessageTooBig, "message too big", nil)
	case !sizeOK || size > limit:
		return nil, false, refuse(ErrLiteralTooBig, "literal too big", nil)
	case !info.Sync && p.lim.NonSyncMax > 0 && size > p.lim.NonSyncMax:
		// RFC 7888 §5: LITERAL- takes non-synchronizing literals of at
		// most 4096 octets; a larger one is BAD.
		return nil, false, refuse(ErrLiteralTooBig, "non-synchronizing literal over 4096 octets (LITERAL-)", nil)
	case !info.Message && p.cmdBytes+size > p.lim.MaxCommand:
		return nil, false, refuse(ErrLiteralTooBig, "command too long", nil)
	}
	if p.onLiteral != nil {
		if err := p.onLiteral(info); err != nil {
			return nil, false, refuse(ErrLiteralRefused, "literal refused", err)
		}
	} else if info.Sync {
		return nil, false, refuse(ErrLiteralRefused, "synchronizing literal refused", nil)
	}
	data, err := p.readData(size, info.Message)
	if err != nil {
		return nil, false, err
	}
	if !info.Message {
		p.cmdBytes += size
	}
	p.tailLen, p.lineLen, p.lineDone = 0, 0, false
	if !binary && !info.Message && bytes.IndexByte(data, 0) >= 0 {
		// RFC 9051 §4.3: CHAR8 excludes NUL; RFC 3516 §4.1: literal8.
		// APPEND's message is the exception, taken as sent: clients
		// that copy stored mail (mbsync, imapsync) send a message that
		// holds NUL in a plain literal, and refusing it would lose it.
		return nil, false, p.syntax("NUL in a literal: use literal8 (RFC 3516)")
	}
	return data, binary, nil
}

// readData reads n bytes, growing the buffer as they arrive: a client
// that announces much and sends little holds little. For APPEND's message
// each growth is first asked of Options.Grow; a refusal drops the rest of
// the literal and fails the command with ErrLiteralRefused.
func (p *Parser) readData(n int64, message bool) ([]byte, error) {
	const step = 4096
	first := min(n, step)
	if message && p.grow != nil && !p.grow(p.msgBytes+first) {
		p.skip = n
		return nil, p.fail(ErrLiteralRefused, "no memory for the message now")
	}
	buf := make([]byte, 0, first)
	for int64(len(buf)) < n {
		if len(buf) == cap(buf) {
			next := min(n, int64(2*cap(buf)))
			if message && p.grow != nil && !p.grow(p.msgBytes+next) {
				p.skip = n - int64(len(buf))
				return nil, p.fail(ErrLiteralRefused, "no memory for the message now")
			}
			grown := make([]byte, len(buf), next)
			copy(grown, buf)
			buf = grown
		}
		m, err := p.br.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil && int64(len(buf)) < n {
			return nil, errIO{ioErr(err)}
		}
	}
	if message {
		p.msgBytes += int64(cap(buf))
	}
	return buf, nil
}

// str reads a string: quoted or literal.
func (p *Parser) str() (string, error) {
	if err := p.arg(); err != nil {
		return "", err
	}
	b, err := p.peek()
	if err != nil {
		return "", err
	}
	switch b {
	case '"':
		q, err := p.quoted()
		return string(q), err
	case '{', '~':
		d, _, err := p.literal(litString)
		return string(d), err
	}
	return "", p.syntax("expected a string")
}

// startsString reports whether a string (quoted or literal, literal8
// included so that it is refused as such) comes next; "~" alone is an
// atom character.
func (p *Parser) startsString() (bool, error) {
	b, err := p.peek()
	if err != nil {
		return false, err
	}
	switch b {
	case '"', '{':
		return true, nil
	case '~':
		two, err := p.br.Peek(2)
		if err != nil {
			return false, errIO{ioErr(err)}
		}
		return two[1] == '{', nil
	}
	return false, nil
}

// astring reads an astring: 1*ASTRING-CHAR or a string.
func (p *Parser) astring() (string, error) {
	if ok, err := p.startsString(); err != nil || ok {
		if err != nil {
			return "", err
		}
		return p.str()
	}
	if err := p.arg(); err != nil {
		return "", err
	}
	class := isAStringChar
	if p.utf8 {
		// RFC 9051 §4.3 keeps atoms 7-bit, but clients that send UTF-8
		// mailbox names unquoted after ENABLE UTF8=ACCEPT exist
		// (Python's imaplib): their bytes are taken, and names are
		// checked as UTF-8 afterwards (decodeName).
		class = isAStringCharUTF8
	}
	s, err := p.run(class, "an astring")
	if err != nil {
		return "", err
	}
	if b, err := p.peek(); err == nil && b >= 0x80 {
		return "", p.syntax("8-bit characters in an atom: send a quoted string or a literal (RFC 9051 §4.3)")
	}
	return string(s), nil
}

// nstring reads a string or NIL; ok is false for NIL.
func (p *Parser) nstring() (s string, ok bool, err error) {
	b, err := p.peek()
	if err != nil {
		return "", false, err
	}
	if b == 'N' || b == 'n' {
		a, err := p.atom()
		if err != nil {
			return "", false, err
		}
		if !equalFold(a, "NIL") {
			return "", false, p.syntax("expected a string or NIL")
		}
		return "", false, nil
	}
	s, err = p.str()
	return s, err == nil, err
}

// number reads a number (RFC 9051 number64 when max allows it).
func (p *Parser) number(max uint64) (uint64, error) {
	digits, err := p.run(func(b byte) bool { return b >= '0' && b <= '9' }, "a number")
	if err != nil {
		return 0, err
	}
	var n uint64
	for _, d := range digits {
		v := uint64(d - '0')
		if n > (max-v)/10 {
			return 0, p.syntax("number too large")
		}
		n = n*10 + v
	}
	return n, nil
}

func equalFold(a, b string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if upper(a[i]) != upper(b[i]) {
			return false
		}
	}
	return true
}

func upper(c byte) byte {
	if 'a' <= c && c <= 'z' {
		return c - 'a' + 'A'
	}
	return c
}

func toUpper(s string) string {
	for i := 0; i < len(s); i++ {
		if 'a' <= s[i] && s[i] <= 'z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				b[j] = upper(b[j])
			}
			return string(b)
		}
	}
	return s
}
