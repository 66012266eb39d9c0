package wire

import "strconv"

// PartialRange is a partial-range of the PARTIAL extension (RFC 9394 §5):
// positions First:Last of a result, counted from 1 at its start, or from
// its end when FromEnd ("-1:-100": the last hundred). First and Last are
// kept as written, without the minus sign; both are at least 1 and at
// most 2^32-1, and either may be the larger (RFC 9394 §5: "A range
// 500:400 is the same as 400:500").
type PartialRange struct {
	First, Last uint32
	FromEnd     bool
}

// String writes the range as the client wrote it: RFC 9394 §3.1 echoes
// "the original range" in the PARTIAL return data.
func (r PartialRange) String() string {
	a, b := strconv.FormatUint(uint64(r.First), 10), strconv.FormatUint(uint64(r.Last), 10)
	if r.FromEnd {
		return "-" + a + ":-" + b
	}
	return a + ":" + b
}

// Indexes returns the 0-based half-open span [lo, hi) of a result of n
// items that the range selects; lo == hi when it selects none (RFC 9394
// §3.1: positions beyond the result select nothing, and a range wholly
// beyond it is answered NIL).
func (r PartialRange) Indexes(n int) (lo, hi int) {
	a, b := int64(min(r.First, r.Last)), int64(max(r.First, r.Last))
	size := int64(n)
	var l, h int64
	if r.FromEnd {
		// -1 is the last item, index n-1; -b:-a covers n-b … n-a.
		l, h = size-b, size-a+1
	} else {
		l, h = a-1, b
	}
	l, h = max(l, 0), min(h, size)
	if l >= h {
		return 0, 0
	}
	return int(l), int(h)
}

// partialRange reads a partial-range (RFC 9394 §5):
//
//	partial-range-first = nz-number ":" nz-number
//	partial-range-last  = MINUS nz-number ":" MINUS nz-number
//
// The whole range is one atom on the wire, so it is read as one and its
// faults are named precisely.
func (p *Parser) partialRange() (*PartialRange, error) {
	word, err := p.atom()
	if err != nil {
		return nil, err
	}
	bad := func(why string) (*PartialRange, error) {
		return nil, p.syntax("PARTIAL range " + word + ": " + why + " (RFC 9394: n:m or -n:-m)")
	}
	colon := -1
	for i := 0; i < len(word); i++ {
		if word[i] == ':' {
			if colon >= 0 {
				return bad("more than one colon")
			}
			colon = i
		}
	}
	if colon < 0 {
		return bad("not a range")
	}
	r := &PartialRange{}
	var neg [2]bool
	for i, s := range []string{word[:colon], word[colon+1:]} {
		if len(s) > 0 && s[0] == '-' {
			neg[i], s = true, s[1:]
		}
		n, why := partialNumber(s)
		if why != "" {
			return bad(why)
		}
		if i == 0 {
			r.First = n
		} else {
			r.Last = n
		}
	}
	if neg[0] != neg[1] {
		return bad("both ends must count from the start, or both from the end")
	}
	r.FromEnd = neg[0]
	return r, nil
}

// partialNumber parses an nz-number of a partial-range, or says what is
// wrong with it.
func partialNumber(s string) (uint32, string) {
	if s == "" {
		return 0, "a position is missing"
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, "positions are numbers"
		}
	}
	if s[0] == '0' {
		// nz-number = digit-nz *DIGIT (RFC 9051 §9): positions start at 1.
		return 0, "positions start at 1, without leading zeros"
	}
	n, err := strconv.ParseUint(s, 10, 32)
	if err != nil {
		return 0, "a position is above 4294967295"
	}
	return uint32(n), ""
}
