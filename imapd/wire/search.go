package wire

import "time"

// SearchOp is a search-key's keyword (RFC 9051 §6.4.4; NEW, OLD and
// RECENT from RFC 3501 §6.4.4), or one of the composite forms.
type SearchOp string

const (
	SearchAnd SearchOp = "AND" // "(" key *(SP key) ")", and the top level: Keys
	SearchNot SearchOp = "NOT" // Keys[0]
	SearchOr  SearchOp = "OR"  // Keys[0], Keys[1]
	SearchSeq SearchOp = "SEQ" // a sequence-set as a key: Set
	SearchUID SearchOp = "UID" // Set

	// Flag keys take nothing.
	SearchAll        SearchOp = "ALL"
	SearchAnswered   SearchOp = "ANSWERED"
	SearchDeleted    SearchOp = "DELETED"
	SearchDraft      SearchOp = "DRAFT"
	SearchFlagged    SearchOp = "FLAGGED"
	SearchSeen       SearchOp = "SEEN"
	SearchUnanswered SearchOp = "UNANSWERED"
	SearchUndeleted  SearchOp = "UNDELETED"
	SearchUndraft    SearchOp = "UNDRAFT"
	SearchUnflagged  SearchOp = "UNFLAGGED"
	SearchUnseen     SearchOp = "UNSEEN"
	SearchNew        SearchOp = "NEW"
	SearchOld        SearchOp = "OLD"
	SearchRecent     SearchOp = "RECENT"

	// String keys take Str.
	SearchBcc     SearchOp = "BCC"
	SearchBody    SearchOp = "BODY"
	SearchCc      SearchOp = "CC"
	SearchFrom    SearchOp = "FROM"
	SearchSubject SearchOp = "SUBJECT"
	SearchText    SearchOp = "TEXT"
	SearchTo      SearchOp = "TO"
	SearchHeader  SearchOp = "HEADER" // Str is the field name, Value the string

	// Keyword keys take Str, a flag-keyword.
	SearchKeyword   SearchOp = "KEYWORD"
	SearchUnkeyword SearchOp = "UNKEYWORD"

	// Date keys take Date, midnight UTC of the day given.
	SearchBefore     SearchOp = "BEFORE"
	SearchOn         SearchOp = "ON"
	SearchSince      SearchOp = "SINCE"
	SearchSentBefore SearchOp = "SENTBEFORE"
	SearchSentOn     SearchOp = "SENTON"
	SearchSentSince  SearchOp = "SENTSINCE"

	// Size keys take Num.
	SearchLarger  SearchOp = "LARGER"
	SearchSmaller SearchOp = "SMALLER"

	// SearchModSeq takes Num, and the entry name and type in Str and
	// Value when given (lower case), RFC 7162 §3.1.5.
	SearchModSeq SearchOp = "MODSEQ"

	// Interval keys take Num, a number of seconds above zero, compared
	// with the internal date (RFC 5032 §3, WITHIN).
	SearchOlder   SearchOp = "OLDER"
	SearchYounger SearchOp = "YOUNGER"

	// Object-id keys take Str, an objectid (RFC 8474 §6, §7).
	SearchEmailID  SearchOp = "EMAILID"
	SearchThreadID SearchOp = "THREADID"

	// Save-date keys (RFC 8514 §4.3): the date keys take Date, as BEFORE,
	// ON and SINCE do; SAVEDATESUPPORTED takes nothing.
	SearchSavedBefore       SearchOp = "SAVEDBEFORE"
	SearchSavedOn           SearchOp = "SAVEDON"
	SearchSavedSince        SearchOp = "SAVEDSINCE"
	SearchSaveDateSupported SearchOp = "SAVEDATESUPPORTED"
)

// SearchKey is one node of a search (RFC 9051 §6.4.4); which fields
// are set depends on Op.
type SearchKey struct {
	Op    SearchOp
	Str   string
	Value string
	Date  time.Time
	Num   uint64
	Set   NumSet
	Keys  []SearchKey
}

type searchArg int

const (
	argNone searchArg = iota
	argString
	argHeader
	argKeyword
	argDate
	argNumber
	argSet
	argNot
	argOr
	argModSeq
	argNzNumber
	argObjectID
)

var searchKeys = map[SearchOp]searchArg{
	SearchAll: argNone, SearchAnswered: argNone, SearchDeleted: argNone,
	SearchDraft: argNone, SearchFlagged: argNone, SearchSeen: argNone,
	SearchUnanswered: argNone, SearchUndeleted: argNone, SearchUndraft: argNone,
	SearchUnflagged: argNone, SearchUnseen: argNone, SearchNew: argNone,
	SearchOld: argNone, SearchRecent: argNone,
	SearchBcc: argString, SearchBody: argString, SearchCc: argString,
	SearchFrom: argString, SearchSubject: argString, SearchText: argString,
	SearchTo: argString, SearchHeader: argHeader,
	SearchKeyword: argKeyword, SearchUnkeyword: argKeyword,
	SearchBefore: argDate, SearchOn: argDate, SearchSince: argDate,
	SearchSentBefore: argDate, SearchSentOn: argDate, SearchSentSince: argDate,
	SearchLarger: argNumber, SearchSmaller: argNumber,
	SearchUID: argSet, SearchNot: argNot, SearchOr: argOr,
	SearchModSeq: argModSeq,
	SearchOlder:  argNzNumber, SearchYounger: argNzNumber,
	SearchEmailID: argObjectID, SearchThreadID: argObjectID,
	SearchSavedBefore: argDate, SearchSavedOn: argDate, SearchSavedSince: argDate,
	SearchSaveDateSupported: argNone,
}

// searchArgs reads what follows "SEARCH": [SP "RETURN" SP "(" … ")"]
// [SP "CHARSET" SP astring] 1*(SP search-key).
func (p *Parser) searchArgs() (*Search, error) {
	s := &Search{Key: SearchKey{Op: SearchAnd}}
	stage := 0 // 0: RETURN may come; 1: CHARSET may come; 2: keys only
	for {
		if err := p.sp(); err != nil {
			if len(s.Key.Keys) == 0 {
				return nil, p.syntax("SEARCH needs a search key")
			}
			return nil, err
		}
		b, err := p.peek()
		if err != nil {
			return nil, err
		}
		var k SearchKey
		if isAtomChar(b) && !(b >= '0' && b <= '9' || b == '$') {
			word, err := p.atom()
			if err != nil {
				return nil, err
			}
			switch up := toUpper(word); {
			case stage == 0 && up == "RETURN":
				if s.Return, err = p.searchReturn(); err != nil {
					return nil, err
				}
				stage = 1
				continue
			case stage <= 1 && up == "CHARSET":
				if err := p.sp(); err != nil {
					return nil, err
				}
				cs, err := p.astring()
				if err != nil {
					return nil, err
				}
				s.Charset = toUpper(cs)
				stage = 2
				continue
			}
			if err := p.enter(); err != nil {
				return nil, err
			}
			k, err = p.searchKeyNamed(word)
			p.leave()
			if err != nil {
				return nil, err
			}
		} else if k, err = p.searchKey(); err != nil {
			return nil, err
		}
		stage = 2
		s.Key.Keys = append(s.Key.Keys, k)
		if end, err := p.atEnd(); err != nil || end {
			return s, err
		}
	}
}

// searchReturn reads "RETURN" SP "(" [opt *(SP opt)] ")" (RFC 4731 §3.1,
// RFC 5182 §2 SAVE, RFC 9394 §3.1 PARTIAL). RETURN () means ALL.
func (p *Parser) searchReturn() (*SearchReturn, error) {
	if err := p.sp(); err != nil {
		return nil, err
	}
	r := &SearchReturn{}
	err := p.list(true, func() error {
		opt, err := p.atom()
		if err != nil {
			return err
		}
		switch toUpper(opt) {
		case "MIN":
			r.Min = true
		case "MAX":
			r.Max = true
		case "ALL":
			r.All = true
		case "COUNT":
			r.Count = true
		case "SAVE":
			r.Save = true
		case "PARTIAL":
			// RFC 9394 §3.1: "A single command MUST NOT contain more
			// than one PARTIAL or ALL search return option".
			if r.Partial != nil {
				return p.syntax("PARTIAL given twice")
			}
			if err := p.sp(); err != nil {
				return err
			}
			if r.Partial, err = p.partialRange(); err != nil {
				return err
			}
		default:
			return p.syntax("unknown search return option " + opt)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if r.All && r.Partial != nil {
		return nil, p.syntax("PARTIAL and ALL cannot be used together (RFC 9394 §3.1)")
	}
	if !r.Min && !r.Max && !r.All && !r.Count && !r.Save && r.Partial == nil {
		r.All = true
	}
	return r, nil
}

// searchKey reads one search-key.
func (p *Parser) searchKey() (SearchKey, error) {
	b, err := p.peek()
	if err != nil {
		return SearchKey{}, err
	}
	switch {
	case b == '(':
		k := SearchKey{Op: SearchAnd}
		err := p.list(false, func() error {
			sub, err := p.searchKey()
			k.Keys = append(k.Keys, sub)
			return err
		})
		return k, err
	case b >= '0' && b <= '9' || b == '*' || b == '$':
		set, err := p.numSet()
		return SearchKey{Op: SearchSeq, Set: set}, err
	}
	word, err := p.atom()
	if err != nil {
		return SearchKey{}, err
	}
	// A parenthesized list counts its own depth (list); a keyword counts
	// one, so that NOT NOT NOT … is bounded too.
	if err := p.enter(); err != nil {
		return SearchKey{}, err
	}
	defer p.leave()
	return p.searchKeyNamed(word)
}

// searchKeyNamed reads the rest of a search-key whose keyword was word.
func (p *Parser) searchKeyNamed(word string) (SearchKey, error) {
	var err error
	k := SearchKey{Op: SearchOp(toUpper(word))}
	kind, ok := searchKeys[k.Op]
	if !ok {
		return SearchKey{}, p.syntax("unknown search key " + word)
	}
	if kind == argNone {
		return k, nil
	}
	if err := p.sp(); err != nil {
		return SearchKey{}, err
	}
	switch kind {
	case argString:
		k.Str, err = p.astring()
	case argHeader:
		if k.Str, err = p.astring(); err == nil {
			if err = p.sp(); err == nil {
				k.Value, err = p.astring()
			}
		}
	case argKeyword:
		k.Str, err = p.atom()
	case argDate:
		k.Date, err = p.date()
	case argNumber:
		k.Num, err = p.number(1<<63 - 1)
	case argNzNumber:
		// RFC 5032 §4: "OLDER" SP nz-number / "YOUNGER" SP nz-number.
		if k.Num, err = p.number(1<<32 - 1); err == nil && k.Num == 0 {
			err = p.syntax(word + " needs a number above zero")
		}
	case argObjectID:
		// RFC 8474 §7: objectid = 1*255(ALPHA / DIGIT / "_" / "-").
		if k.Str, err = p.atom(); err == nil && !isObjectID(k.Str) {
			err = p.syntax(word + " needs an object id")
		}
	case argSet:
		k.Set, err = p.numSet()
	case argNot:
		var sub SearchKey
		sub, err = p.searchKey()
		k.Keys = []SearchKey{sub}
	case argModSeq:
		err = p.searchModSeq(&k)
	case argOr:
		var a, b SearchKey
		if a, err = p.searchKey(); err == nil {
			if err = p.sp(); err == nil {
				b, err = p.searchKey()
			}
		}
		k.Keys = []SearchKey{a, b}
	}
	return k, err
}

// searchModSeq reads the rest of search-modsequence (RFC 7162 §7):
// [entry-name SP entry-type-req SP] mod-sequence-valzer, where entry-name
// is DQUOTE "/flags/" attr-flag DQUOTE and entry-type-req is "priv",
// "shared" or "all".
func (p *Parser) searchModSeq(k *SearchKey) error {
	b, err := p.peek()
	if err != nil {
		return err
	}
	if b == '"' {
		if err := p.arg(); err != nil {
			return err
		}
		q, err := p.quoted()
		if err != nil {
			return err
		}
		name := string(q)
		if len(name) <= len("/flags/") || !equalFold(name[:len("/flags/")], "/flags/") {
			return p.syntax("MODSEQ entry name must be /flags/<flag>")
		}
		k.Str = "/flags/" + name[len("/flags/"):]
		if err := p.sp(); err != nil {
			return err
		}
		t, err := p.atom()
		if err != nil {
			return err
		}
		switch t = toLower(t); t {
		case "priv", "shared", "all":
			k.Value = t
		default:
			return p.syntax("MODSEQ entry type must be priv, shared or all")
		}
		if err := p.sp(); err != nil {
			return err
		}
	}
	k.Num, err = p.modSeq()
	return err
}

func toLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// isObjectID reports whether s is an objectid (RFC 8474 §7).
func isObjectID(s string) bool {
	if len(s) == 0 || len(s) > 255 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}
