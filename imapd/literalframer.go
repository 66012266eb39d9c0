package imapd

import (
	"math"
	"unicode"
)

// framer follows the client's byte stream the way the client frames it:
// command lines, and the literals announced at their ends (RFC 9051 §4.3:
// "{" number "}" CRLF, RFC 7888 §3: "{" number "+}" CRLF for a
// non-synchronizing one). It is literalGuard's state machine; it knows
// nothing of the server and decides nothing: what becomes of an announced
// literal is the guard's to say (accept, discard or lineStart).
//
// The zero value is at the start of a command line. It is not safe for
// concurrent use, and allocates nothing.
type framer struct {
	mode   frameMode
	remain int64 // literal bytes left, in frameContent and frameDiscard
	// cutContent makes feed stop after each line end inside the literal
	// data being passed (see literalGuard: data whose reading by the
	// server is inferred, not seen).
	cutContent bool

	head     headStep // the line's tag and command name, for STARTTLS
	nameLen  uint8    // letters of "STARTTLS" matched
	lit      litStep  // the literal announcement being read
	size     int64    // its number
	nonSync  bool     // and whether it has the "+"
	cr       bool     // the last byte fed was a CR
	sawDigit bool     // the announcement has a digit

	// discarded counts the bytes dropped since the last discard, for the
	// guard's bound.
	discarded int64
}

type frameMode uint8

const (
	frameLine        frameMode = iota // in a command line
	frameContent                      // passing a literal's data
	frameDiscard                      // dropping a literal's data
	frameDiscardTail                  // dropping the rest of that command's line
)

// headStep is the position in a line's start: imapserver's grammar for a
// command without arguments, tag SP name [SP] [CR] LF (imapwire's CRLF
// takes an optional space and a lone LF).
type headStep uint8

const (
	headStart headStep = iota // nothing yet
	headTag                   // in the tag
	headName                  // in the command name
	headEndSP                 // the optional SP after it
	headEndCR                 // the CR
	headOther                 // anything else, until the line ends
)

// litStep is the position in a literal announcement: imapwire's
// "{" 1*DIGIT ["+"] "}" [SP] [CR] LF.
type litStep uint8

const (
	litNone    litStep = iota
	litDigits          // after "{"
	litPlus            // after "+"
	litClose           // after "}"
	litCloseSP         // after "} "
	litCR              // after the CR
)

// frameEvent is what made feed stop.
type frameEvent uint8

const (
	evNone     frameEvent = iota // the input ended, or a line ended
	evAnnounce                   // a literal announcement ended the line: size, nonSync
	evStartTLS                   // a line "tag STARTTLS" ended
	evSyncTail                   // a synchronizing literal in a line being dropped
)

// startTLSName is matched upper-cased.
const startTLSName = "STARTTLS"

// feed consumes bytes of in and copies those to be handed to the server
// into out, which must be at least as long as in; in and out may be the
// same slice. It stops after each line end (LF, or a CR not followed by
// LF), so that the server has read everything handed to it before it asks
// for more: then the guard can tell what the server did with a line by
// what it wrote and asked for in between. After evAnnounce and
// evSyncTail, the caller must say what comes next (accept, discard,
// lineStart) before feeding more.
func (f *framer) feed(in, out []byte) (consumed, delivered int, ev frameEvent) {
	i, d := 0, 0
	for i < len(in) {
		switch f.mode {
		case frameContent:
			n := int(min(f.remain, int64(len(in)-i)))
			cut := false
			if f.cutContent {
				for j, b := range in[i : i+n] {
					if f.cr && b != '\n' && j+i > 0 {
						n, cut = j, true
						break
					}
					f.cr = b == '\r'
					if b == '\n' {
						n, cut = j+1, true
						break
					}
				}
			}
			if &out[d] != &in[i] { // in and out are often the same slice
				copy(out[d:], in[i:i+n])
			}
			d += n
			i += n
			f.remain -= int64(n)
			if f.remain == 0 {
				f.mode = frameLine
				f.cr = false
			}
			if cut {
				return i, d, evNone
			}
		case frameDiscard:
			n := min(f.remain, int64(len(in)-i))
			i += int(n)
			f.remain -= n
			f.discarded += n
			if f.remain == 0 {
				f.mode = frameDiscardTail
				f.lit = litNone
			}
		case frameDiscardTail:
			b := in[i]
			i++
			f.discarded++
			if f.stepLiteral(b) {
				if !f.nonSync {
					return i, d, evSyncTail
				}
				f.mode, f.remain = frameDiscard, f.size
				continue
			}
			if b == '\n' {
				// The command line is over; discarded keeps its count.
				f.mode, f.head, f.nameLen, f.lit, f.cr = frameLine, headStart, 0, litNone, false
			}
		case frameLine:
			b := in[i]
			if f.cr && b != '\n' && i > 0 {
				// A lone CR: imapserver may end a failed command there
				// (imapwire's DiscardLine stops at it).
				f.cr = false
				return i, d, evNone
			}
			f.cr = b == '\r'
			out[d] = b
			d++
			i++
			announced := f.stepLiteral(b)
			starttls := f.stepHead(b)
			if b == '\n' {
				f.cr = false
				if announced {
					f.head = headOther // the command goes on after the data
					return i, d, evAnnounce
				}
				f.head, f.nameLen = headStart, 0
				if starttls {
					return i, d, evStartTLS
				}
				return i, d, evNone
			}
		}
	}
	return i, d, evNone
}

// stepLiteral advances the announcement recogniser by b and reports
// whether b, an LF, completed an announcement (then size and nonSync
// describe it).
func (f *framer) stepLiteral(b byte) bool {
	switch f.lit {
	case litDigits:
		switch {
		case b >= '0' && b <= '9':
			if f.size > (math.MaxInt64-9)/10 {
				f.size = math.MaxInt64 // imapserver refuses it as a syntax error
			} else {
				f.size = f.size*10 + int64(b-'0')
			}
			f.sawDigit = true
			return false
		case b == '+' && f.sawDigit:
			f.nonSync = true
			f.lit = litPlus
			return false
		case b == '}' && f.sawDigit:
			f.lit = litClose
			return false
		}
	case litPlus:
		if b == '}' {
			f.lit = litClose
			return false
		}
	case litClose, litCloseSP, litCR:
		switch {
		case b == '\n':
			f.lit = litNone
			return true
		case b == '\r' && f.lit != litCR:
			f.lit = litCR
			return false
		case b == ' ' && f.lit == litClose:
			f.lit = litCloseSP
			return false
		}
	}
	f.lit = litNone
	if b == '{' {
		f.lit, f.size, f.nonSync, f.sawDigit = litDigits, 0, false, false
	}
	return false
}

// stepHead advances the line-start recogniser by b and reports whether
// b, an LF, ended a line that imapserver parses as "tag STARTTLS".
func (f *framer) stepHead(b byte) bool {
	switch f.head {
	case headStart:
		f.head = headOther
		if isAtomChar(b) {
			f.head = headTag
		}
	case headTag:
		switch {
		case b == ' ':
			f.head, f.nameLen = headName, 0
		case !isAtomChar(b):
			f.head = headOther
		}
	case headName:
		switch {
		case int(f.nameLen) < len(startTLSName) && upper(b) == startTLSName[f.nameLen]:
			f.nameLen++
		case int(f.nameLen) == len(startTLSName) && b == ' ':
			f.head = headEndSP
		case int(f.nameLen) == len(startTLSName) && b == '\r':
			f.head = headEndCR
		case int(f.nameLen) == len(startTLSName) && b == '\n':
			return true
		default:
			f.head = headOther
		}
	case headEndSP:
		switch b {
		case '\r':
			f.head = headEndCR
		case '\n':
			return true
		default:
			f.head = headOther
		}
	case headEndCR:
		if b == '\n' {
			return true
		}
		f.head = headOther
	}
	return false
}

// accept makes the announced literal's data pass to the server; cut
// makes feed stop after each line end inside it.
func (f *framer) accept(cut bool) {
	f.mode, f.remain, f.cutContent = frameContent, f.size, cut
	f.cr = false
	if f.remain == 0 {
		f.mode = frameLine
	}
}

// discard drops the announced literal's data and the rest of its command
// line (further literals in it included).
func (f *framer) discard() {
	f.mode, f.remain, f.discarded = frameDiscard, f.size, 0
	if f.remain == 0 {
		f.mode = frameDiscardTail
	}
	f.lit = litNone
}

// lineStart puts the framer at the start of a command line: the server
// has finished the command, and the client sends no more of it (after a
// refused synchronizing literal, RFC 9051 §4.3).
func (f *framer) lineStart() {
	f.mode, f.remain = frameLine, 0
	f.head, f.nameLen, f.lit, f.cr = headStart, 0, litNone, false
}

// isAtomChar is imapwire's ATOM-CHAR test (go-imap v2.0.0-beta.8), which
// is what imapserver reads a tag and a command name with.
func isAtomChar(ch byte) bool {
	switch ch {
	case '(', ')', '{', ' ', '%', '*', '"', '\\', ']':
		return false
	}
	return !unicode.IsControl(rune(ch))
}

func upper(b byte) byte {
	if b >= 'a' && b <= 'z' {
		return b - 'a' + 'A'
	}
	return b
}
