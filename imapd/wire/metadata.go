package wire

// GetMetadata is GETMETADATA (RFC 5464 §4.2). Mailbox "" names the
// server. MaxSize is -1 without the MAXSIZE option; Depth is 0, 1 or
// DepthInfinity.
type GetMetadata struct {
	Mailbox string
	MaxSize int64
	Depth   int
	Entries []string // as sent; the session checks and normalises them
}

// DepthInfinity is GETMETADATA's DEPTH infinity (RFC 5464 §4.2.2).
const DepthInfinity = -1

// SetMetadata is SETMETADATA (RFC 5464 §4.3). Mailbox "" names the
// server.
type SetMetadata struct {
	Mailbox string
	Entries []MetadataValue
}

// MetadataValue is one entry of SETMETADATA: a name and its value, or
// Nil (NIL: delete the entry).
type MetadataValue struct {
	Name  string
	Value []byte
	Nil   bool
}

// getMetadataArgs reads [SP "(" getmetadata-option *(SP
// getmetadata-option) ")"] SP mailbox SP entries (RFC 5464 §5), where
// entries is one entry or a parenthesized list of them. The options are
// also taken after the mailbox, where the RFC's own examples (§4.2.1,
// §4.2.2) put them and clients followed: an option list starts with a
// letter, an entry list with "/" or a string.
func (p *Parser) getMetadataArgs() (*GetMetadata, error) {
	g := &GetMetadata{MaxSize: -1}
	if err := p.sp(); err != nil {
		return nil, err
	}
	opts, err := p.metadataOptionsNext()
	if err != nil {
		return nil, err
	}
	if opts {
		if err := p.metadataOptions(g); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	if g.Mailbox, err = p.mailbox(); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if !opts {
		if opts, err = p.metadataOptionsNext(); err != nil {
			return nil, err
		}
		if opts {
			if err := p.metadataOptions(g); err != nil {
				return nil, err
			}
			if err := p.sp(); err != nil {
				return nil, err
			}
		}
	}
	b, err := p.peek()
	if err != nil {
		return nil, err
	}
	entry := func() error {
		e, err := p.astring()
		g.Entries = append(g.Entries, e)
		return err
	}
	if b == '(' {
		return g, p.list(false, entry)
	}
	return g, entry()
}

// metadataOptionsNext reports whether a GETMETADATA option list comes
// next: "(" and a letter.
func (p *Parser) metadataOptionsNext() (bool, error) {
	two, err := p.br.Peek(2)
	if err != nil {
		return false, errIO{ioErr(err)}
	}
	c := upper(two[1])
	return two[0] == '(' && 'A' <= c && c <= 'Z', nil
}

// metadataOptions reads "(" getmetadata-option *(SP getmetadata-option)
// ")": MAXSIZE n (§4.2.1) and DEPTH 0/1/infinity (§4.2.2).
func (p *Parser) metadataOptions(g *GetMetadata) error {
	return p.list(false, func() error {
		opt, err := p.atom()
		if err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
		switch toUpper(opt) {
		case "MAXSIZE":
			n, err := p.number(1<<63 - 1)
			g.MaxSize = int64(n)
			return err
		case "DEPTH":
			d, err := p.atom()
			if err != nil {
				return err
			}
			switch toUpper(d) {
			case "0":
				g.Depth = 0
			case "1":
				g.Depth = 1
			case "INFINITY":
				g.Depth = DepthInfinity
			default:
				return p.syntax(`DEPTH is "0", "1" or "infinity"`)
			}
			return nil
		}
		return p.syntax("unknown GETMETADATA option " + opt)
	})
}

// setMetadataArgs reads SP mailbox SP "(" entry SP value *(SP entry SP
// value) ")" (RFC 5464 §5), value being a string or NIL. A literal8
// value is refused: values here are text (a push token, a comment).
func (p *Parser) setMetadataArgs() (*SetMetadata, error) {
	s := &SetMetadata{}
	if err := p.spMailbox(&s.Mailbox); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	err := p.list(false, func() error {
		var v MetadataValue
		var err error
		if v.Name, err = p.astring(); err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
		val, ok, err := p.nstring()
		if err != nil {
			return err
		}
		v.Nil = !ok
		if ok {
			v.Value = []byte(val)
		}
		s.Entries = append(s.Entries, v)
		return nil
	})
	return s, err
}
