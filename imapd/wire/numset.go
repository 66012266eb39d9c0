package wire

import (
	"strconv"
	"strings"
)

// NumRange is a range of sequence numbers or UIDs as the client wrote
// it: Start may exceed Stop ("5:2" is 2:5, RFC 9051 §9 seq-range), and 0
// stands for "*", the largest number in use.
type NumRange struct{ Start, Stop uint32 }

// NumSet is a sequence-set (RFC 9051 §9), or "$" (RFC 5182 §2: the
// result saved by SEARCH RETURN (SAVE)), as the client wrote it. Whether
// its numbers are sequence numbers or UIDs depends on the command.
type NumSet struct {
	Ranges []NumRange
	Saved  bool // "$"
}

func (s NumSet) String() string {
	if s.Saved {
		return "$"
	}
	var sb strings.Builder
	num := func(n uint32) {
		if n == 0 {
			sb.WriteByte('*')
		} else {
			sb.WriteString(strconv.FormatUint(uint64(n), 10))
		}
	}
	for i, r := range s.Ranges {
		if i > 0 {
			sb.WriteByte(',')
		}
		num(r.Start)
		if r.Stop != r.Start {
			sb.WriteByte(':')
			num(r.Stop)
		}
	}
	return sb.String()
}

func isSeqChar(b byte) bool {
	return b >= '0' && b <= '9' || b == ':' || b == ',' || b == '*' || b == '$'
}

// numSet reads a sequence-set: ranges of nz-number or "*", or "$" alone.
func (p *Parser) numSet() (NumSet, error) {
	if err := p.arg(); err != nil {
		return NumSet{}, err
	}
	raw, err := p.run(isSeqChar, "a sequence set")
	if err != nil {
		return NumSet{}, err
	}
	s, msg := parseNumSet(raw, p.lim.MaxList)
	if msg != "" {
		return NumSet{}, p.syntax(msg)
	}
	return s, nil
}

// parseNumSet parses a sequence-set, at most max ranges.
func parseNumSet(raw []byte, max int) (NumSet, string) {
	if string(raw) == "$" {
		return NumSet{Saved: true}, ""
	}
	var s NumSet
	num := func(b []byte) (uint32, string) {
		if len(b) == 1 && b[0] == '*' {
			return 0, ""
		}
		if len(b) == 0 {
			return 0, "empty number in a sequence set"
		}
		var n uint64
		for _, d := range b {
			if d < '0' || d > '9' {
				return 0, "bad sequence set"
			}
			n = n*10 + uint64(d-'0')
			if n > 1<<32-1 {
				return 0, "number too large in a sequence set"
			}
		}
		if n == 0 {
			return 0, "0 in a sequence set"
		}
		return uint32(n), ""
	}
	for part := range strings.SplitSeq(string(raw), ",") {
		if len(s.Ranges) == max {
			return NumSet{}, "sequence set too long"
		}
		lo, hi, isRange := strings.Cut(part, ":")
		a, msg := num([]byte(lo))
		if msg != "" {
			return NumSet{}, msg
		}
		b := a
		if isRange {
			if b, msg = num([]byte(hi)); msg != "" {
				return NumSet{}, msg
			}
		}
		s.Ranges = append(s.Ranges, NumRange{a, b})
	}
	return s, ""
}
