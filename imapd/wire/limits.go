package wire

// Limits bound every size the parser reads. Each is checked before the
// bytes it governs are read or allocated: a line is cut off at MaxLine, a
// literal is refused from its announced size. A zero field takes the
// default from DefaultLimits.
type Limits struct {
	// MaxLine bounds one line of a command: the bytes between two CRLFs,
	// or between a literal's data and the next CRLF. RFC 7162 §4 asks
	// clients to keep lines under 8192 octets.
	MaxLine int
	// MaxLiteral bounds a literal anywhere but APPEND's message.
	MaxLiteral int64
	// MaxMessage bounds APPEND's message literal (the APPENDLIMIT of
	// RFC 7889).
	MaxMessage int64
	// NonSyncMax, when not zero, bounds non-synchronizing literals: 4096
	// for LITERAL- (RFC 7888 §5, and IMAP4rev2). Zero means LITERAL+
	// (RFC 7888 §4): the other limits apply to both kinds.
	NonSyncMax int64
	// MaxCommand bounds one command's bytes, lines and literals together,
	// APPEND's message excluded.
	MaxCommand int64
	// MaxDepth bounds nesting: parenthesized lists, and NOT/OR chains in
	// search keys.
	MaxDepth int
	// MaxList bounds the elements of one parenthesized list.
	MaxList int
	// MaxArgs bounds the items (atoms, strings, numbers, lists) of one
	// command.
	MaxArgs int
	// MaxDiscard bounds what the parser reads and drops to resynchronize
	// after an error, refused literals included; past it the Error is
	// Fatal.
	MaxDiscard int64
}

// DefaultLimits are the limits a zero Limits field stands for.
var DefaultLimits = Limits{
	MaxLine:    8192,
	MaxLiteral: 16 << 10,
	MaxMessage: 25 << 20,
	NonSyncMax: 0,
	MaxCommand: 1 << 20,
	MaxDepth:   16,
	MaxList:    1000,
	MaxArgs:    2000,
	MaxDiscard: 32 << 20,
}

func (l Limits) withDefaults() Limits {
	d := DefaultLimits
	if l.MaxLine <= 0 {
		l.MaxLine = d.MaxLine
	}
	if l.MaxLiteral <= 0 {
		l.MaxLiteral = d.MaxLiteral
	}
	if l.MaxMessage <= 0 {
		l.MaxMessage = d.MaxMessage
	}
	if l.NonSyncMax < 0 {
		l.NonSyncMax = 0
	}
	if l.MaxCommand <= 0 {
		l.MaxCommand = d.MaxCommand
	}
	if l.MaxDepth <= 0 {
		l.MaxDepth = d.MaxDepth
	}
	if l.MaxList <= 0 {
		l.MaxList = d.MaxList
	}
	if l.MaxArgs <= 0 {
		l.MaxArgs = d.MaxArgs
	}
	if l.MaxDiscard <= 0 {
		l.MaxDiscard = d.MaxDiscard
	}
	return l
}
