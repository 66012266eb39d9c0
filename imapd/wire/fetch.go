package wire

// FetchKind is a fetch-att (RFC 9051 §6.4.5; RFC822, RFC822.HEADER and
// RFC822.TEXT from RFC 3501 §6.4.5).
type FetchKind int

const (
	FetchEnvelope FetchKind = iota + 1
	FetchFlags
	FetchInternalDate
	FetchRFC822Size
	FetchUID
	FetchBody          // BODY without a section: the non-extensible BODYSTRUCTURE
	FetchBodyStructure // BODYSTRUCTURE
	FetchRFC822        // BODY[] answered as RFC822 (sets \Seen)
	FetchRFC822Header  // BODY.PEEK[HEADER] answered as RFC822.HEADER
	FetchRFC822Text    // BODY[TEXT] answered as RFC822.TEXT (sets \Seen)
	FetchBodySection   // BODY[section]<partial>, BODY.PEEK[…]
	FetchBinary        // BINARY[part]<partial>, BINARY.PEEK[…] (RFC 3516)
	FetchBinarySize    // BINARY.SIZE[part]
	FetchModSeq        // MODSEQ (RFC 7162 §3.1.4.2)
	FetchEmailID       // EMAILID (RFC 8474 §5.1)
	FetchThreadID      // THREADID (RFC 8474 §5.2)
	FetchSaveDate      // SAVEDATE (RFC 8514 §4.2)
)

// Fetch is FETCH (RFC 9051 §6.4.5). Macro is "ALL", "FAST" or "FULL" when
// the client used one; Attrs then holds its expansion. ChangedSince and
// Vanished are the fetch modifiers of RFC 7162 §3.1.4.1 and §3.2.6;
// whether VANISHED is allowed where it stands (UID FETCH, after ENABLE
// QRESYNC, with CHANGEDSINCE) is the session's to check.
type Fetch struct {
	Set             NumSet
	Macro           string
	Attrs           []FetchAttr
	HasChangedSince bool
	ChangedSince    uint64
	Vanished        bool
	// Partial is the PARTIAL fetch modifier's range (RFC 9394 §3.2), nil
	// without it; that only UID FETCH may carry it is the session's to
	// check.
	Partial *PartialRange
}

// FetchAttr is one fetch-att.
type FetchAttr struct {
	Kind    FetchKind
	Peek    bool     // BODY.PEEK, BINARY.PEEK
	Section Section  // for FetchBodySection, FetchBinary, FetchBinarySize
	Partial *Partial // "<offset.count>", nil if absent
}

// Section is a section-spec (RFC 9051 §6.4.5): Part is the section-part
// (empty for the whole message), Specifier "", "HEADER",
// "HEADER.FIELDS", "HEADER.FIELDS.NOT", "TEXT" or "MIME", Fields the
// header-list of HEADER.FIELDS[.NOT], upper case.
type Section struct {
	Part      []uint32
	Specifier string
	Fields    []string
}

// Partial is "<offset.count>": count octets from offset.
type Partial struct{ Offset, Count uint64 }

// Fetch macros, RFC 9051 §6.4.5.
var fetchMacros = map[string][]FetchKind{
	"ALL":  {FetchFlags, FetchInternalDate, FetchRFC822Size, FetchEnvelope},
	"FAST": {FetchFlags, FetchInternalDate, FetchRFC822Size},
	"FULL": {FetchFlags, FetchInternalDate, FetchRFC822Size, FetchEnvelope, FetchBody},
}

var fetchSimple = map[string]FetchKind{
	"ENVELOPE":      FetchEnvelope,
	"FLAGS":         FetchFlags,
	"INTERNALDATE":  FetchInternalDate,
	"RFC822.SIZE":   FetchRFC822Size,
	"UID":           FetchUID,
	"BODY":          FetchBody,
	"BODYSTRUCTURE": FetchBodyStructure,
	"RFC822":        FetchRFC822,
	"RFC822.HEADER": FetchRFC822Header,
	"RFC822.TEXT":   FetchRFC822Text,
	"MODSEQ":        FetchModSeq,
	"EMAILID":       FetchEmailID,
	"THREADID":      FetchThreadID,
	"SAVEDATE":      FetchSaveDate,
}

func isFetchNameChar(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '.'
}

// fetchArgs reads what follows "FETCH SP sequence-set SP": the items,
// then the fetch modifiers, if any.
func (p *Parser) fetchArgs(f *Fetch) error {
	if err := p.fetchItems(f); err != nil {
		return err
	}
	if end, err := p.atEnd(); err != nil || end {
		return err
	}
	if err := p.sp(); err != nil {
		return err
	}
	return p.fetchModifiers(f)
}

// fetchModifiers reads "(" fetch-modifier *(SP fetch-modifier) ")"
// (RFC 4466 §2.4): CHANGEDSINCE mod-sequence-value (RFC 7162 §3.1.4.1),
// VANISHED (§3.2.6) and PARTIAL partial-range (RFC 9394 §3.2), each at
// most once.
func (p *Parser) fetchModifiers(f *Fetch) error {
	return p.list(false, func() error {
		a, err := p.atom()
		if err != nil {
			return err
		}
		switch toUpper(a) {
		case "CHANGEDSINCE":
			if f.HasChangedSince {
				return p.syntax("CHANGEDSINCE given twice")
			}
			if err := p.sp(); err != nil {
				return err
			}
			f.HasChangedSince = true
			f.ChangedSince, err = p.modSeq()
			if err != nil {
				return err
			}
		case "VANISHED":
			if f.Vanished {
				return p.syntax("VANISHED given twice")
			}
			f.Vanished = true
		case "PARTIAL":
			if f.Partial != nil {
				return p.syntax("PARTIAL given twice")
			}
			if err := p.sp(); err != nil {
				return err
			}
			if f.Partial, err = p.partialRange(); err != nil {
				return err
			}
		default:
			return p.syntax("unknown fetch modifier " + a)
		}
		return nil
	})
}

// fetchItems reads the fetch items: a macro, one fetch-att or a list.
func (p *Parser) fetchItems(f *Fetch) error {
	b, err := p.peek()
	if err != nil {
		return err
	}
	if b == '(' {
		return p.list(false, func() error {
			a, err := p.fetchAtt()
			if err == nil {
				f.Attrs = append(f.Attrs, a)
			}
			return err
		})
	}
	if err := p.arg(); err != nil {
		return err
	}
	name, err := p.run(isFetchNameChar, "a fetch attribute")
	if err != nil {
		return err
	}
	if kinds, ok := fetchMacros[toUpper(string(name))]; ok {
		f.Macro = toUpper(string(name))
		for _, k := range kinds {
			f.Attrs = append(f.Attrs, FetchAttr{Kind: k})
		}
		return nil
	}
	a, err := p.fetchAttNamed(toUpper(string(name)))
	if err == nil {
		f.Attrs = append(f.Attrs, a)
	}
	return err
}

func (p *Parser) fetchAtt() (FetchAttr, error) {
	if err := p.arg(); err != nil {
		return FetchAttr{}, err
	}
	name, err := p.run(isFetchNameChar, "a fetch attribute")
	if err != nil {
		return FetchAttr{}, err
	}
	return p.fetchAttNamed(toUpper(string(name)))
}

func (p *Parser) fetchAttNamed(name string) (FetchAttr, error) {
	b, err := p.peek()
	if err != nil {
		return FetchAttr{}, err
	}
	if b != '[' {
		if k, ok := fetchSimple[name]; ok {
			return FetchAttr{Kind: k}, nil
		}
		return FetchAttr{}, p.syntax("unknown fetch attribute " + name)
	}
	var a FetchAttr
	switch name {
	case "BODY":
		a.Kind = FetchBodySection
	case "BODY.PEEK":
		a.Kind, a.Peek = FetchBodySection, true
	case "BINARY":
		a.Kind = FetchBinary
	case "BINARY.PEEK":
		a.Kind, a.Peek = FetchBinary, true
	case "BINARY.SIZE":
		a.Kind = FetchBinarySize
	default:
		return FetchAttr{}, p.syntax("unknown fetch attribute " + name)
	}
	if a.Section, err = p.section(a.Kind != FetchBodySection); err != nil {
		return FetchAttr{}, err
	}
	if b, err = p.peek(); err != nil {
		return FetchAttr{}, err
	}
	if b == '<' {
		if a.Kind == FetchBinarySize {
			return FetchAttr{}, p.syntax("BINARY.SIZE takes no partial")
		}
		if a.Partial, err = p.partial(); err != nil {
			return FetchAttr{}, err
		}
	}
	return a, nil
}

// section reads "[" section-spec "]", or "[" section-binary "]" (part
// numbers only, RFC 3516 §4.2) when binary.
func (p *Parser) section(binary bool) (Section, error) {
	var s Section
	if err := p.expect('[', `"["`); err != nil {
		return s, err
	}
	dot := false // the last part number was followed by "."
	for {
		b, err := p.peek()
		if err != nil {
			return s, err
		}
		if b < '0' || b > '9' {
			if len(s.Part) > 0 && !dot {
				return s, p.expect(']', `"]"`)
			}
			break
		}
		n, err := p.number(1<<32 - 1)
		if err != nil {
			return s, err
		}
		if n == 0 {
			return s, p.syntax("section part 0")
		}
		if len(s.Part) == p.lim.MaxDepth {
			return s, p.fail(ErrTooComplex, "section nested too deeply")
		}
		s.Part = append(s.Part, uint32(n))
		if dot, err = p.maybe('.'); err != nil {
			return s, err
		}
	}
	if !dot {
		if ok, err := p.maybe(']'); err != nil || ok {
			return s, err
		}
	}
	if binary {
		return s, p.syntax("BINARY takes only part numbers")
	}
	word, err := p.run(func(b byte) bool { return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || b == '.' }, "a section")
	if err != nil {
		return s, err
	}
	s.Specifier = toUpper(string(word))
	switch s.Specifier {
	case "HEADER", "TEXT":
	case "MIME":
		if len(s.Part) == 0 {
			return s, p.syntax("MIME needs a part number")
		}
	case "HEADER.FIELDS", "HEADER.FIELDS.NOT":
		if err := p.sp(); err != nil {
			return s, err
		}
		if err := p.list(false, func() error {
			f, err := p.astring()
			if err == nil {
				s.Fields = append(s.Fields, toUpper(f))
			}
			return err
		}); err != nil {
			return s, err
		}
	default:
		return s, p.syntax("unknown section " + s.Specifier)
	}
	return s, p.expect(']', `"]"`)
}

// partial reads "<" number64 "." nz-number64 ">" (RFC 9051 §6.4.5).
func (p *Parser) partial() (*Partial, error) {
	if err := p.expect('<', `"<"`); err != nil {
		return nil, err
	}
	off, err := p.number(1<<63 - 1)
	if err != nil {
		return nil, err
	}
	if err := p.expect('.', `"." in a partial`); err != nil {
		return nil, err
	}
	n, err := p.number(1<<63 - 1)
	if err != nil {
		return nil, err
	}
	if n == 0 {
		return nil, p.syntax("partial of 0 octets")
	}
	return &Partial{Offset: off, Count: n}, p.expect('>', `">"`)
}
