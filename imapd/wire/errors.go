package wire

import "fmt"

// ErrorCode says what kind of client mistake a parse Error is, so that the
// server can pick its answer: BAD for syntax, NO [TOOBIG] for a literal it
// will not take (RFC 7889 §4 for APPEND), BYE when Error.Fatal.
type ErrorCode int

const (
	// ErrSyntax: the bytes do not match the grammar.
	ErrSyntax ErrorCode = iota + 1
	// ErrUnknownCommand: a well-formed tag and command name that this
	// package does not know.
	ErrUnknownCommand
	// ErrLineTooLong: a line of the command exceeded Limits.MaxLine.
	ErrLineTooLong
	// ErrLiteralTooBig: a literal over its limit (Limits.MaxLiteral,
	// NonSyncMax or MaxCommand), refused before its data.
	ErrLiteralTooBig
	// ErrMessageTooBig: APPEND's message literal over Limits.MaxMessage,
	// refused before its data (RFC 7889 §4: NO [TOOBIG]).
	ErrMessageTooBig
	// ErrLiteralRefused: Options.OnLiteral refused the literal; Error.Err
	// holds its error.
	ErrLiteralRefused
	// ErrTooComplex: nesting deeper than Limits.MaxDepth, a list longer
	// than MaxList, more than MaxArgs items, or a command over MaxCommand.
	ErrTooComplex
	// ErrMailboxName: a mailbox name that is not valid modified UTF-7
	// (RFC 3501 §5.1.3) or, under UTF8=ACCEPT, not valid UTF-8 (RFC 6855 §3).
	ErrMailboxName
)

var codeNames = map[ErrorCode]string{
	ErrSyntax:         "syntax",
	ErrUnknownCommand: "unknown command",
	ErrLineTooLong:    "line too long",
	ErrLiteralTooBig:  "literal too big",
	ErrMessageTooBig:  "message too big",
	ErrLiteralRefused: "literal refused",
	ErrTooComplex:     "too complex",
	ErrMailboxName:    "mailbox name",
}

func (c ErrorCode) String() string {
	if s, ok := codeNames[c]; ok {
		return s
	}
	return fmt.Sprintf("ErrorCode(%d)", int(c))
}

// Error is a client mistake found by Parser.ReadCommand. Unless Fatal,
// the parser has already consumed the rest of the failed command,
// including the data of any non-synchronizing literal it announced, so
// the caller answers (tagged with Tag, or untagged when Tag is empty) and
// calls ReadCommand again. When Fatal, client and server can no longer
// agree on where the next command starts: the caller says BYE and closes.
type Error struct {
	Tag     string // the command's tag, "" if none could be read
	Command string // the command's name in upper case ("UID FETCH"), if read
	Code    ErrorCode
	Msg     string // a short text for the client, without CR or LF
	Fatal   bool
	Err     error // what OnLiteral returned, for ErrLiteralRefused
}

func (e *Error) Error() string {
	s := e.Code.String() + ": " + e.Msg
	if e.Fatal {
		s += " (fatal)"
	}
	return s
}

func (e *Error) Unwrap() error { return e.Err }
