package wire

// SortKey is a sort-key (RFC 5256 §3; DISPLAYFROM and DISPLAYTO from
// RFC 5957 §3), upper case.
type SortKey string

const (
	SortArrival     SortKey = "ARRIVAL"
	SortCc          SortKey = "CC"
	SortDate        SortKey = "DATE"
	SortFrom        SortKey = "FROM"
	SortSize        SortKey = "SIZE"
	SortSubject     SortKey = "SUBJECT"
	SortTo          SortKey = "TO"
	SortDisplayFrom SortKey = "DISPLAYFROM"
	SortDisplayTo   SortKey = "DISPLAYTO"
)

// SortCriterion is one sort-criterion: a key, reversed or not.
type SortCriterion struct {
	Key     SortKey
	Reverse bool
}

// Sort is SORT (RFC 5256 §3) with ESORT's RETURN (RFC 5267 §3.2).
type Sort struct {
	// Return is nil without RETURN; RETURN () is ALL (RFC 5267 §3.2,
	// RFC 4731 §3.1).
	Return   *SearchReturn
	Criteria []SortCriterion
	Charset  string    // upper case; SORT requires one
	Key      SearchKey // an And of the keys given
}

// Thread is THREAD (RFC 5256 §4).
type Thread struct {
	Algorithm string    // upper case, such as "REFERENCES"
	Charset   string    // upper case
	Key       SearchKey // an And of the keys given
}

// sortArgs reads what follows "SORT": [SP "RETURN" SP "(" … ")"] SP
// sort-criteria SP search-criteria (RFC 5256 §5, RFC 5267 §5).
func (p *Parser) sortArgs() (*Sort, error) {
	s := &Sort{}
	if err := p.sp(); err != nil {
		return nil, err
	}
	b, err := p.peek()
	if err != nil {
		return nil, err
	}
	if b != '(' {
		word, err := p.atom()
		if err != nil {
			return nil, err
		}
		if toUpper(word) != "RETURN" {
			return nil, p.syntax("expected sort criteria")
		}
		if s.Return, err = p.searchReturn(); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	err = p.list(false, func() error {
		word, err := p.atom()
		if err != nil {
			return err
		}
		var c SortCriterion
		if toUpper(word) == "REVERSE" {
			c.Reverse = true
			if err := p.sp(); err != nil {
				return err
			}
			if word, err = p.atom(); err != nil {
				return err
			}
		}
		switch c.Key = SortKey(toUpper(word)); c.Key {
		case SortArrival, SortCc, SortDate, SortFrom, SortSize, SortSubject, SortTo,
			SortDisplayFrom, SortDisplayTo:
		default:
			return p.syntax("unknown sort key " + word)
		}
		s.Criteria = append(s.Criteria, c)
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.Charset, s.Key, err = p.searchCriteria()
	return s, err
}

// threadArgs reads what follows "THREAD": SP thread-alg SP
// search-criteria (RFC 5256 §5).
func (p *Parser) threadArgs() (*Thread, error) {
	t := &Thread{}
	if err := p.sp(); err != nil {
		return nil, err
	}
	alg, err := p.atom()
	if err != nil {
		return nil, err
	}
	t.Algorithm = toUpper(alg)
	t.Charset, t.Key, err = p.searchCriteria()
	return t, err
}

// searchCriteria reads SP charset 1*(SP search-key), RFC 5256 §5's
// search-criteria: unlike SEARCH's, the charset is not optional.
func (p *Parser) searchCriteria() (string, SearchKey, error) {
	key := SearchKey{Op: SearchAnd}
	if err := p.sp(); err != nil {
		return "", key, err
	}
	charset, err := p.astring()
	if err != nil {
		return "", key, err
	}
	for {
		if err := p.sp(); err != nil {
			if len(key.Keys) == 0 {
				return "", key, p.syntax("a search key is needed")
			}
			return "", key, err
		}
		k, err := p.searchKey()
		if err != nil {
			return "", key, err
		}
		key.Keys = append(key.Keys, k)
		if end, err := p.atEnd(); err != nil || end {
			return toUpper(charset), key, err
		}
	}
}
