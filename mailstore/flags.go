package mailstore

import (
	"errors"
	"fmt"
	"sort"
	"strings"
)

// ErrInvalidFlag reports a flag that cannot be stored: an unknown system
// flag such as \Recent, or a keyword with characters outside an atom.
var ErrInvalidFlag = errors.New("invalid flag")

// The system flags (RFC 9051 §2.3.2) are kept as bits, so searches and
// counters on them are integer tests; keywords are kept as text.
const (
	flagSeen     = 1 << iota // \Seen: bit 0; the schema's triggers and indexes rely on it
	flagAnswered             // \Answered
	flagFlagged              // \Flagged
	flagDeleted              // \Deleted: bit 3; the messages_deleted index relies on it
	flagDraft                // \Draft
)

// Flag names, as IMAP spells them (RFC 9051 §2.3.2).
const (
	FlagSeen     = `\Seen`
	FlagAnswered = `\Answered`
	FlagFlagged  = `\Flagged`
	FlagDeleted  = `\Deleted`
	FlagDraft    = `\Draft`
)

var systemFlags = []struct {
	name string
	bit  int
}{
	{FlagSeen, flagSeen},
	{FlagAnswered, flagAnswered},
	{FlagFlagged, flagFlagged},
	{FlagDeleted, flagDeleted},
	{FlagDraft, flagDraft},
}

// flagSet is a message's flags as stored.
type flagSet struct {
	bits     int
	keywords []string // sorted, unique (case-insensitively)
}

// parseFlags validates flags and splits them into system bits and keywords.
func parseFlags(flags []string) (flagSet, error) {
	var fs flagSet
	seen := map[string]bool{}
next:
	for _, f := range flags {
		for _, sf := range systemFlags {
			if strings.EqualFold(f, sf.name) {
				fs.bits |= sf.bit
				continue next
			}
		}
		if !validKeyword(f) {
			return flagSet{}, fmt.Errorf("%w: %q", ErrInvalidFlag, f)
		}
		// RFC 9051 §2.3.2: flags are case-insensitive; keep the first spelling.
		if k := strings.ToLower(f); !seen[k] {
			seen[k] = true
			fs.keywords = append(fs.keywords, f)
		}
	}
	sort.Strings(fs.keywords)
	return fs, nil
}

// validKeyword reports whether k is an atom (RFC 9051 §9 flag-keyword) and
// not a system-flag lookalike.
func validKeyword(k string) bool {
	if k == "" || len(k) > 128 || k[0] == '\\' {
		return false
	}
	for i := 0; i < len(k); i++ {
		c := k[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`(){%*"\]`, c) >= 0 {
			return false
		}
	}
	return true
}

// encodeKeywords frames keywords with spaces (" a b ") so that a keyword
// search is one LIKE '% kw %'.
func encodeKeywords(kw []string) string {
	if len(kw) == 0 {
		return ""
	}
	return " " + strings.Join(kw, " ") + " "
}

func decodeFlags(bits int, keywords string) []string {
	flags := make([]string, 0, 4)
	for _, sf := range systemFlags {
		if bits&sf.bit != 0 {
			flags = append(flags, sf.name)
		}
	}
	return append(flags, strings.Fields(keywords)...)
}

// FlagOp says how StoreFlags combines the given flags with the current ones.
type FlagOp int

// Flag operations (RFC 9051 §6.4.6: FLAGS, +FLAGS, -FLAGS).
const (
	FlagsSet FlagOp = iota
	FlagsAdd
	FlagsRemove
)

// apply returns the flag set after op.
func (fs flagSet) apply(op FlagOp, arg flagSet) flagSet {
	switch op {
	case FlagsSet:
		return arg
	case FlagsAdd:
		out := flagSet{bits: fs.bits | arg.bits, keywords: append([]string(nil), fs.keywords...)}
		for _, k := range arg.keywords {
			if !containsFold(out.keywords, k) {
				out.keywords = append(out.keywords, k)
			}
		}
		sort.Strings(out.keywords)
		return out
	default: // FlagsRemove
		out := flagSet{bits: fs.bits &^ arg.bits}
		for _, k := range fs.keywords {
			if !containsFold(arg.keywords, k) {
				out.keywords = append(out.keywords, k)
			}
		}
		return out
	}
}

func containsFold(list []string, s string) bool {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return true
		}
	}
	return false
}
