package wire

// Compress is COMPRESS (RFC 4978 §3): the mechanism in upper case.
type Compress struct{ Mechanism string }

// compressArgs reads SP algorithm (RFC 4978 §4: "COMPRESS" SP
// algorithm, algorithm = "DEFLATE", an atom).
func (p *Parser) compressArgs() (*Compress, error) {
	if err := p.sp(); err != nil {
		return nil, err
	}
	a, err := p.atom()
	if err != nil {
		return nil, err
	}
	return &Compress{Mechanism: toUpper(a)}, nil
}
