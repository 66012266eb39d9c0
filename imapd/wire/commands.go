package wire

import (
	"encoding/base64"
	"time"
)

// ReadCommand reads the next command. It returns an *Error for a client
// mistake (after consuming the rest of that command, see Error), and the
// reader's error otherwise (io.EOF when the client closed between
// commands). The returned Command shares no memory with the parser.
func (p *Parser) ReadCommand() (*Command, error) {
	p.startCommand()
	if _, err := p.br.Peek(1); err != nil {
		return nil, err // io.EOF between commands stays io.EOF
	}
	c, err := p.command()
	if err != nil {
		return nil, p.wrapErr(err)
	}
	return c, nil
}

func isTagChar(b byte) bool { return isAStringChar(b) && b != '+' }

func (p *Parser) command() (*Command, error) {
	if end, err := p.atEnd(); err != nil {
		return nil, err
	} else if end {
		return nil, p.syntax("empty line")
	}
	tag, err := p.run(isTagChar, "a tag")
	if err != nil {
		return nil, err
	}
	p.tag = string(tag)
	if err := p.sp(); err != nil {
		// "a+ NOOP": no valid tag to answer.
		p.tag = ""
		if pe, ok := err.(*Error); ok {
			pe.Tag = ""
		}
		return nil, err
	}
	name, err := p.run(isAtomChar, "a command name")
	if err != nil {
		return nil, err
	}
	c := &Command{Tag: p.tag, Name: toUpper(string(name))}
	p.cmd = c.Name
	if c.Name == "UID" {
		if err := p.sp(); err != nil {
			return nil, err
		}
		sub, err := p.run(isAtomChar, "a command name")
		if err != nil {
			return nil, err
		}
		c.UID, c.Name = true, toUpper(string(sub))
		p.cmd = "UID " + c.Name
		switch c.Name {
		case "COPY", "MOVE", "FETCH", "SEARCH", "STORE", "EXPUNGE",
			"SORT", "THREAD": // RFC 5256 §4
		default:
			return nil, p.fail(ErrUnknownCommand, "unknown command UID "+c.Name)
		}
	}
	if c.Args, err = p.commandArgs(c); err != nil {
		return nil, err
	}
	if err := p.crlf(); err != nil {
		return nil, err
	}
	return c, nil
}

// commandArgs reads a command's arguments, up to its final CRLF.
func (p *Parser) commandArgs(c *Command) (any, error) {
	switch c.Name {
	case "CAPABILITY", "NOOP", "LOGOUT", "STARTTLS", "CHECK", "CLOSE",
		"UNSELECT", "IDLE", "NAMESPACE":
		return nil, nil
	case "EXPUNGE":
		if !c.UID {
			return nil, nil
		}
		set, err := p.spNumSet()
		return &Expunge{Set: set}, err
	case "AUTHENTICATE":
		return p.authenticate()
	case "LOGIN":
		var l Login
		err := p.spAString(&l.Username)
		if err == nil {
			err = p.spAString(&l.Password)
		}
		return &l, err
	case "ENABLE":
		var e Enable
		for {
			if err := p.sp(); err != nil {
				return nil, err
			}
			a, err := p.atom()
			if err != nil {
				return nil, err
			}
			e.Caps = append(e.Caps, toUpper(a))
			if end, err := p.atEnd(); err != nil || end {
				return &e, err
			}
		}
	case "SELECT", "EXAMINE":
		return p.selectArgs()
	case "CREATE":
		return p.createArgs()
	case "DELETE", "SUBSCRIBE", "UNSUBSCRIBE":
		var m Mailbox
		return &m, p.spMailbox(&m.Name)
	case "RENAME":
		var r Rename
		err := p.spMailbox(&r.From)
		if err == nil {
			err = p.spMailbox(&r.To)
		}
		return &r, err
	case "LIST":
		return p.listArgs()
	case "LSUB":
		var l Lsub
		err := p.spMailbox(&l.Reference)
		if err == nil {
			if err = p.sp(); err == nil {
				l.Pattern, err = p.listMailbox()
			}
		}
		return &l, err
	case "STATUS":
		var s Status
		if err := p.spMailbox(&s.Mailbox); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
		var err error
		s.Items, err = p.statusItems()
		return &s, err
	case "APPEND":
		return p.appendArgs()
	case "SEARCH":
		return p.searchArgs()
	case "SORT":
		return p.sortArgs()
	case "THREAD":
		return p.threadArgs()
	case "FETCH":
		f := &Fetch{}
		var err error
		if f.Set, err = p.spNumSet(); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
		return f, p.fetchArgs(f)
	case "STORE":
		return p.storeArgs()
	case "COPY", "MOVE":
		var cp Copy
		var err error
		if cp.Set, err = p.spNumSet(); err != nil {
			return nil, err
		}
		return &cp, p.spMailbox(&cp.Mailbox)
	case "ID":
		return p.idArgs()
	case "GETQUOTA", "GETQUOTAROOT", "SETQUOTA":
		return p.quotaArgs(c.Name)
	case "GETMETADATA":
		return p.getMetadataArgs()
	case "SETMETADATA":
		return p.setMetadataArgs()
	case "COMPRESS":
		return p.compressArgs()
	case "NOTIFY":
		return p.notifyArgs()
	}
	return nil, p.fail(ErrUnknownCommand, "unknown command "+c.Name)
}

func (p *Parser) spAString(dst *string) error {
	if err := p.sp(); err != nil {
		return err
	}
	var err error
	*dst, err = p.astring()
	return err
}

func (p *Parser) spNumSet() (NumSet, error) {
	if err := p.sp(); err != nil {
		return NumSet{}, err
	}
	return p.numSet()
}

func (p *Parser) spMailbox(dst *string) error {
	if err := p.sp(); err != nil {
		return err
	}
	var err error
	*dst, err = p.mailbox()
	return err
}

// mailbox reads a mailbox name (RFC 9051 §9 mailbox): "INBOX" in any
// case is INBOX; other names are decoded from modified UTF-7 (RFC 3501
// §5.1.3) unless UTF-8 is enabled (RFC 6855 §3), when they must be UTF-8.
func (p *Parser) mailbox() (string, error) {
	s, err := p.astring()
	if err != nil {
		return "", err
	}
	return p.decodeName(s, true)
}

func (p *Parser) decodeName(s string, inbox bool) (string, error) {
	if inbox && equalFold(s, "INBOX") {
		return "INBOX", nil
	}
	if p.utf8 {
		if !validUTF8Name(s) {
			return "", p.fail(ErrMailboxName, "mailbox name is not UTF-8")
		}
		return s, nil
	}
	d, err := DecodeMUTF7(s)
	if err != nil {
		return "", p.fail(ErrMailboxName, "mailbox name is not valid modified UTF-7")
	}
	return d, nil
}

func validUTF8Name(s string) bool {
	for _, r := range s {
		if r == 0xfffd || r < 0x20 || r == 0x7f {
			// RuneError also stands for invalid bytes; a literal U+FFFD
			// is no mailbox name anyone needs.
			return false
		}
	}
	return true
}

// listMailbox reads a list-mailbox: 1*list-char or a string, decoded
// like a mailbox name (INBOX left as written: it is a pattern).
func (p *Parser) listMailbox() (string, error) {
	isStr, err := p.startsString()
	if err != nil {
		return "", err
	}
	var s string
	if isStr {
		if s, err = p.str(); err != nil {
			return "", err
		}
	} else {
		if err := p.arg(); err != nil {
			return "", err
		}
		raw, err := p.run(isListChar, "a mailbox pattern")
		if err != nil {
			return "", err
		}
		s = string(raw)
	}
	return p.decodeName(s, false)
}

// authenticate reads SP auth-type [SP (base64 / "=")] (RFC 9051 §6.2.2,
// SASL-IR RFC 4959 §3).
func (p *Parser) authenticate() (*Authenticate, error) {
	if err := p.sp(); err != nil {
		return nil, err
	}
	mech, err := p.atom()
	if err != nil {
		return nil, err
	}
	a := &Authenticate{Mechanism: toUpper(mech)}
	if end, err := p.atEnd(); err != nil || end {
		return a, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	raw, err := p.run(isBase64Char, "an initial response")
	if err != nil {
		return nil, err
	}
	if a.Initial, err = decodeSASL(raw); err != nil {
		return nil, p.syntax("initial response is not base64")
	}
	return a, nil
}

func isBase64Char(b byte) bool {
	return 'A' <= b && b <= 'Z' || 'a' <= b && b <= 'z' || '0' <= b && b <= '9' || b == '+' || b == '/' || b == '='
}

// decodeSASL decodes a SASL response: "=" is empty (RFC 4959 §3).
func decodeSASL(raw []byte) ([]byte, error) {
	if string(raw) == "=" {
		return []byte{}, nil
	}
	out := make([]byte, base64.StdEncoding.DecodedLen(len(raw)))
	n, err := base64.StdEncoding.Strict().Decode(out, raw)
	return out[:n], err
}

// selectArgs reads SP mailbox [SP "(" select-param *(SP select-param) ")"]
// (RFC 4466 §2.1): CONDSTORE (RFC 7162 §3.1.8) and QRESYNC (§3.2.5).
func (p *Parser) selectArgs() (*Select, error) {
	s := &Select{}
	if err := p.spMailbox(&s.Mailbox); err != nil {
		return nil, err
	}
	if end, err := p.atEnd(); err != nil || end {
		return s, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	return s, p.list(false, func() error {
		a, err := p.atom()
		if err != nil {
			return err
		}
		switch toUpper(a) {
		case "CONDSTORE":
			s.CondStore = true
		case "QRESYNC":
			if s.QResync != nil {
				return p.syntax("QRESYNC given twice")
			}
			if err := p.sp(); err != nil {
				return err
			}
			s.QResync, err = p.qresyncParam()
			return err
		default:
			return p.syntax("unknown select parameter " + a)
		}
		return nil
	})
}

// qresyncParam reads "(" uidvalidity SP mod-sequence-value [SP known-uids]
// [SP seq-match-data] ")" (RFC 7162 §7), where seq-match-data is
// "(" known-sequence-set SP known-uid-set ")".
func (p *Parser) qresyncParam() (*QResync, error) {
	q := &QResync{}
	if err := p.expect('(', `"("`); err != nil {
		return nil, err
	}
	if err := p.enter(); err != nil {
		return nil, err
	}
	defer p.leave()
	if err := p.arg(); err != nil {
		return nil, err
	}
	v, err := p.number(1<<32 - 1)
	if err != nil {
		return nil, err
	}
	if v == 0 {
		return nil, p.syntax("UIDVALIDITY 0")
	}
	q.UIDValidity = uint32(v)
	if err := p.sp(); err != nil {
		return nil, err
	}
	if q.ModSeq, err = p.modSeq(); err != nil {
		return nil, err
	}
	if ok, err := p.maybe(')'); err != nil || ok {
		return q, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	b, err := p.peek()
	if err != nil {
		return nil, err
	}
	if b != '(' {
		if q.KnownUIDs, err = p.knownSet(); err != nil {
			return nil, err
		}
		if ok, err := p.maybe(')'); err != nil || ok {
			return q, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	m := &SeqMatch{}
	if err := p.expect('(', `"("`); err != nil {
		return nil, err
	}
	if m.Seqs, err = p.knownSet(); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if m.UIDs, err = p.knownSet(); err != nil {
		return nil, err
	}
	if err := p.expect(')', `")"`); err != nil {
		return nil, err
	}
	q.SeqMatch = m
	return q, p.expect(')', `")"`)
}

// knownSet reads a sequence-set of QRESYNC's, where "*" and "$" are not
// allowed (RFC 7162 §7: known-uids, known-sequence-set, known-uid-set).
func (p *Parser) knownSet() (NumSet, error) {
	set, err := p.numSet()
	if err != nil {
		return NumSet{}, err
	}
	if set.Saved {
		return NumSet{}, p.syntax(`"$" in QRESYNC`)
	}
	for _, r := range set.Ranges {
		if r.Start == 0 || r.Stop == 0 {
			return NumSet{}, p.syntax(`"*" in QRESYNC`)
		}
	}
	return set, nil
}

// modSeq reads a mod-sequence-value or mod-sequence-valzer (RFC 7162 §7),
// at most 2^63-1. mod-sequence-value excludes 0; a client's 0 is taken
// all the same (it asks about every change, as if it had seen none), as
// some clients send it where they have no modseq yet.
func (p *Parser) modSeq() (uint64, error) {
	if err := p.arg(); err != nil {
		return 0, err
	}
	return p.number(1<<63 - 1)
}

// createArgs reads SP mailbox [SP "(" "USE" SP "(" [use-attr …] ")" ")"]
// (RFC 4466 §2.2, RFC 6154 §6).
func (p *Parser) createArgs() (*Create, error) {
	c := &Create{}
	if err := p.spMailbox(&c.Mailbox); err != nil {
		return nil, err
	}
	if end, err := p.atEnd(); err != nil || end {
		return c, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	return c, p.list(false, func() error {
		a, err := p.atom()
		if err != nil {
			return err
		}
		if toUpper(a) != "USE" {
			return p.syntax("unknown create parameter " + a)
		}
		if err := p.sp(); err != nil {
			return err
		}
		return p.list(true, func() error {
			f, err := p.flag()
			if err != nil {
				return err
			}
			if f[0] != '\\' {
				return p.syntax("special-use attribute must start with a backslash")
			}
			c.Use = append(c.Use, f)
			return nil
		})
	})
}

// flag reads a flag: "\" atom or atom (RFC 9051 §9 flag).
func (p *Parser) flag() (string, error) {
	bs, err := p.maybe('\\')
	if err != nil {
		return "", err
	}
	a, err := p.atom()
	if err != nil {
		return "", err
	}
	if bs {
		return `\` + a, nil
	}
	return a, nil
}

// flagList reads "(" [flag *(SP flag)] ")".
func (p *Parser) flagList() ([]string, error) {
	flags := []string{}
	err := p.list(true, func() error {
		f, err := p.flag()
		flags = append(flags, f)
		return err
	})
	return flags, err
}

var statusItems = map[string]StatusItem{
	"MESSAGES": StatusMessages, "RECENT": StatusRecent, "UIDNEXT": StatusUIDNext,
	"UIDVALIDITY": StatusUIDValidity, "UNSEEN": StatusUnseen,
	"DELETED": StatusDeleted, "SIZE": StatusSize, "APPENDLIMIT": StatusAppendLimit,
	"HIGHESTMODSEQ": StatusHighestModSeq, "MAILBOXID": StatusMailboxID,
}

// statusItems reads "(" status-att *(SP status-att) ")".
func (p *Parser) statusItems() ([]StatusItem, error) {
	var items []StatusItem
	err := p.list(false, func() error {
		a, err := p.atom()
		if err != nil {
			return err
		}
		it, ok := statusItems[toUpper(a)]
		if !ok {
			return p.syntax("unknown status item " + a)
		}
		items = append(items, it)
		return nil
	})
	return items, err
}

// listArgs reads LIST's arguments, LIST-EXTENDED included (RFC 5258 §6):
// [SP list-select-opts] SP mailbox SP mbox-or-pat [SP list-return-opts].
func (p *Parser) listArgs() (*List, error) {
	l := &List{}
	if err := p.sp(); err != nil {
		return nil, err
	}
	b, err := p.peek()
	if err != nil {
		return nil, err
	}
	if b == '(' {
		l.Extended = true
		if err := p.list(true, func() error {
			a, err := p.atom()
			if err != nil {
				return err
			}
			switch toUpper(a) {
			case "SUBSCRIBED":
				l.SelectSubscribed = true
			case "REMOTE":
				l.SelectRemote = true
			case "RECURSIVEMATCH":
				l.SelectRecursiveMatch = true
			case "SPECIAL-USE":
				l.SelectSpecialUse = true
			default:
				return p.syntax("unknown LIST selection option " + a)
			}
			return nil
		}); err != nil {
			return nil, err
		}
		// RFC 5258 §3: RECURSIVEMATCH needs another selection option.
		if l.SelectRecursiveMatch && !l.SelectSubscribed && !l.SelectSpecialUse {
			return nil, p.syntax("RECURSIVEMATCH without a selection option to match")
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	if l.Reference, err = p.mailbox(); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if b, err = p.peek(); err != nil {
		return nil, err
	}
	if b == '(' {
		l.Extended = true
		if err := p.list(false, func() error {
			pat, err := p.listMailbox()
			l.Patterns = append(l.Patterns, pat)
			return err
		}); err != nil {
			return nil, err
		}
	} else {
		pat, err := p.listMailbox()
		if err != nil {
			return nil, err
		}
		l.Patterns = []string{pat}
	}
	if end, err := p.atEnd(); err != nil || end {
		return l, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	word, err := p.atom()
	if err != nil {
		return nil, err
	}
	if toUpper(word) != "RETURN" {
		return nil, p.syntax("expected RETURN")
	}
	l.Extended = true
	if err := p.sp(); err != nil {
		return nil, err
	}
	return l, p.list(true, func() error {
		a, err := p.atom()
		if err != nil {
			return err
		}
		switch toUpper(a) {
		case "SUBSCRIBED":
			l.ReturnSubscribed = true
		case "CHILDREN":
			l.ReturnChildren = true
		case "SPECIAL-USE":
			l.ReturnSpecialUse = true
		case "STATUS":
			// RFC 5819 §2.
			if err := p.sp(); err != nil {
				return err
			}
			items, err := p.statusItems()
			l.ReturnStatus = items
			return err
		default:
			return p.syntax("unknown LIST return option " + a)
		}
		return nil
	})
}

// appendArgs reads SP mailbox 1*(SP append-message) (RFC 3502 §6,
// MULTIAPPEND); see appendMessage.
func (p *Parser) appendArgs() (*Append, error) {
	a := &Append{}
	if err := p.spMailbox(&a.Mailbox); err != nil {
		return nil, err
	}
	return a, p.appendMessages(a)
}

// storeArgs reads SP sequence-set [store-modifiers] SP (["+" / "-"]
// "FLAGS" [".SILENT"]) SP (flag-list / (flag *(SP flag))) (RFC 9051
// §6.4.6; store-modifiers RFC 4466 §2.5, UNCHANGEDSINCE RFC 7162 §3.1.3).
func (p *Parser) storeArgs() (*Store, error) {
	s := &Store{}
	var err error
	if s.Set, err = p.spNumSet(); err != nil {
		return nil, err
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	if b, err := p.peek(); err != nil {
		return nil, err
	} else if b == '(' {
		if err := p.list(false, func() error {
			a, err := p.atom()
			if err != nil {
				return err
			}
			if toUpper(a) != "UNCHANGEDSINCE" || s.HasUnchangedSince {
				return p.syntax("unknown or repeated store modifier " + a)
			}
			if err := p.sp(); err != nil {
				return err
			}
			s.HasUnchangedSince = true
			s.UnchangedSince, err = p.modSeq()
			return err
		}); err != nil {
			return nil, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
	if ok, err := p.maybe('+'); err != nil {
		return nil, err
	} else if ok {
		s.Op = StoreAdd
	} else if ok, err := p.maybe('-'); err != nil {
		return nil, err
	} else if ok {
		s.Op = StoreRemove
	}
	w, err := p.atom()
	if err != nil {
		return nil, err
	}
	switch toUpper(w) {
	case "FLAGS":
	case "FLAGS.SILENT":
		s.Silent = true
	default:
		return nil, p.syntax("expected FLAGS or FLAGS.SILENT")
	}
	if err := p.sp(); err != nil {
		return nil, err
	}
	b, err := p.peek()
	if err != nil {
		return nil, err
	}
	if b == '(' {
		s.Flags, err = p.flagList()
		return s, err
	}
	s.Flags = []string{}
	for n := 1; ; n++ {
		if n > p.lim.MaxList {
			return nil, p.fail(ErrTooComplex, "too many flags")
		}
		f, err := p.flag()
		if err != nil {
			return nil, err
		}
		s.Flags = append(s.Flags, f)
		if end, err := p.atEnd(); err != nil || end {
			return s, err
		}
		if err := p.sp(); err != nil {
			return nil, err
		}
	}
}

// idArgs reads SP ("(" *(string SP nstring) ")" / "NIL") (RFC 2971 §4).
func (p *Parser) idArgs() (*ID, error) {
	if err := p.sp(); err != nil {
		return nil, err
	}
	b, err := p.peek()
	if err != nil {
		return nil, err
	}
	id := &ID{}
	if b != '(' {
		w, err := p.atom()
		if err != nil {
			return nil, err
		}
		if toUpper(w) != "NIL" {
			return nil, p.syntax("expected a list or NIL")
		}
		id.Nil = true
		return id, nil
	}
	return id, p.list(true, func() error {
		var f IDField
		var err error
		if f.Key, err = p.str(); err != nil {
			return err
		}
		if err := p.sp(); err != nil {
			return err
		}
		if f.Value, f.HasValue, err = p.nstring(); err != nil {
			return err
		}
		id.Fields = append(id.Fields, f)
		return nil
	})
}

var months = [...]string{"JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"}

// date reads a search date: date-text or DQUOTE date-text DQUOTE, where
// date-text is 1*2DIGIT "-" month "-" 4DIGIT (RFC 9051 §9).
func (p *Parser) date() (time.Time, error) {
	q, err := p.maybe('"')
	if err != nil {
		return time.Time{}, err
	}
	if err := p.arg(); err != nil {
		return time.Time{}, err
	}
	raw, err := p.run(func(b byte) bool { return isAtomChar(b) && b != '"' }, "a date")
	if err != nil {
		return time.Time{}, err
	}
	t, ok := parseDate(string(raw), false)
	if !ok {
		return time.Time{}, p.syntax("bad date, want d-Mon-yyyy")
	}
	if q {
		if err := p.expect('"', "closing quote of a date"); err != nil {
			return time.Time{}, err
		}
	}
	return t, nil
}

// parseDate parses d-Mon-yyyy; fixed: the day is two characters, the
// first a space or digit (date-day-fixed).
func parseDate(s string, fixed bool) (time.Time, bool) {
	day, rest, ok := cut(s, '-')
	if !ok {
		return time.Time{}, false
	}
	mon, year, ok := cut(rest, '-')
	if !ok || len(year) != 4 || len(mon) != 3 {
		return time.Time{}, false
	}
	if fixed {
		if len(day) != 2 {
			return time.Time{}, false
		}
		if day[0] == ' ' {
			day = day[1:]
		}
	}
	d, ok := digits(day, 1, 2)
	if !ok || d < 1 || d > 31 {
		return time.Time{}, false
	}
	y, ok := digits(year, 4, 4)
	if !ok {
		return time.Time{}, false
	}
	m := 0
	for i, name := range months {
		if equalFold(mon, name) {
			m = i + 1
		}
	}
	if m == 0 {
		return time.Time{}, false
	}
	t := time.Date(y, time.Month(m), d, 0, 0, 0, 0, time.UTC)
	if t.Day() != d {
		return time.Time{}, false // 31-Apr
	}
	return t, true
}

// dateTime reads a date-time (RFC 9051 §9):
// DQUOTE date-day-fixed "-" date-month "-" date-year SP time SP zone DQUOTE,
// e.g. "17-Jul-1996 02:44:25 -0700".
func (p *Parser) dateTime() (time.Time, error) {
	if err := p.arg(); err != nil {
		return time.Time{}, err
	}
	q, err := p.quoted()
	if err != nil {
		return time.Time{}, err
	}
	s := string(q)
	bad := p.syntax(`bad date-time, want "dd-Mon-yyyy hh:mm:ss +zzzz"`)
	if len(s) != 26 || s[11] != ' ' || s[20] != ' ' {
		return time.Time{}, bad
	}
	day, ok := parseDate(s[:11], true)
	if !ok {
		return time.Time{}, bad
	}
	hh, ok1 := digits(s[12:14], 2, 2)
	mm, ok2 := digits(s[15:17], 2, 2)
	ss, ok3 := digits(s[18:20], 2, 2)
	if !ok1 || !ok2 || !ok3 || s[14] != ':' || s[17] != ':' || hh > 23 || mm > 59 || ss > 60 {
		return time.Time{}, bad
	}
	sign := s[21]
	zh, ok1 := digits(s[22:24], 2, 2)
	zm, ok2 := digits(s[24:26], 2, 2)
	if sign != '+' && sign != '-' || !ok1 || !ok2 || zm > 59 {
		return time.Time{}, bad
	}
	off := zh*3600 + zm*60
	if sign == '-' {
		off = -off
	}
	loc := time.FixedZone("", off)
	return time.Date(day.Year(), day.Month(), day.Day(), hh, mm, ss, 0, loc), nil
}

func cut(s string, sep byte) (string, string, bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == sep {
			return s[:i], s[i+1:], true
		}
	}
	return s, "", false
}

func digits(s string, minLen, maxLen int) (int, bool) {
	if len(s) < minLen || len(s) > maxLen {
		return 0, false
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, false
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, true
}

// ReadLine reads one line for a command in progress: an AUTHENTICATE
// response or IDLE's DONE. It returns the line without CRLF, within
// Limits.MaxLine; a longer line is an *Error after which the rest of it
// has been dropped.
func (p *Parser) ReadLine() ([]byte, error) {
	p.startCommand()
	p.scratch = p.scratch[:0]
	for {
		b, err := p.peek()
		if err != nil {
			return nil, ioErrOf(err)
		}
		if b == '\r' || b == '\n' {
			break
		}
		if _, err := p.next(); err != nil {
			return nil, p.wrapLineErr(err)
		}
		p.scratch = append(p.scratch, b)
	}
	if err := p.crlf(); err != nil {
		return nil, p.wrapLineErr(err)
	}
	return append([]byte(nil), p.scratch...), nil
}

func ioErrOf(err error) error {
	if e, ok := err.(errIO); ok {
		return e.err
	}
	return err
}

// wrapLineErr drops the rest of a line that ReadLine refused, literal
// announcements included: a SASL response or DONE has none.
func (p *Parser) wrapLineErr(err error) error {
	if _, ok := err.(errIO); ok {
		return ioErrOf(err)
	}
	budget := p.lim.MaxDiscard
	for !p.lineDone && budget > 0 {
		b, rerr := p.br.ReadByte()
		if rerr != nil {
			return ioErr(rerr)
		}
		p.push(b)
		budget--
	}
	if pe, ok := err.(*Error); ok && !p.lineDone {
		pe.Fatal = true
	}
	return err
}

// ReadSASL reads a client's response in an AUTHENTICATE exchange
// (RFC 9051 §6.2.2): base64, decoded, or canceled when the client sent
// "*".
func (p *Parser) ReadSASL() (resp []byte, canceled bool, err error) {
	line, err := p.ReadLine()
	if err != nil {
		return nil, false, err
	}
	if string(line) == "*" {
		return nil, true, nil
	}
	for _, b := range line {
		if !isBase64Char(b) {
			return nil, false, lineError(line, "response is not base64")
		}
	}
	resp, err = decodeSASL(line)
	if err != nil {
		return nil, false, &Error{Code: ErrSyntax, Msg: "response is not base64"}
	}
	return resp, false, nil
}

// ReadDone reads the line that ends IDLE (RFC 2177 §3): "DONE" in any
// case; anything else is an *Error.
func (p *Parser) ReadDone() error {
	line, err := p.ReadLine()
	if err != nil {
		return err
	}
	if !equalFold(string(line), "DONE") {
		return lineError(line, "expected DONE")
	}
	return nil
}

// lineError is the syntax Error for a line that should have been a bare
// continuation (DONE, a SASL response). When the line announces a literal
// the client will send its data next, which must not be read as commands:
// the Error is then Fatal.
func lineError(line []byte, msg string) *Error {
	_, _, ok, ambiguous := announced(line)
	return &Error{Code: ErrSyntax, Msg: msg, Fatal: ok || ambiguous}
}
