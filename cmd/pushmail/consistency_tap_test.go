package main

import (
	"bytes"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// ccTap sits between imapclient and the socket. It reads both directions
// in wire order, synchronously, before imapclient sees a byte: the
// commands sent (tag and name) and every response, from which it keeps
// the client's view of the selected mailbox exactly as RFC 9051 defines
// it (§7.5.1 EXISTS and EXPUNGE, §7.5.2 FETCH). It checks each response
// against the view as it arrives.
type ccTap struct {
	net.Conn
	w      *ccWorld
	client int

	mu sync.Mutex
	// Server to client: the response being assembled, literals replaced
	// by ccLitMark and kept in lits.
	in   []byte
	lit  int // bytes still owed to a literal
	inLi bool
	cur  []byte
	lits [][]byte
	// Client to server.
	out    []byte
	outLit int
	// inflight maps the tags of commands sent and not yet completed to
	// their names ("UID FETCH").
	inflight map[string]string
	v        ccView
	// trace holds the client's last commands, for failure reports.
	trace []string
	// events is signalled (without blocking) on every EXISTS, EXPUNGE and
	// FETCH: IDLE waits on it.
	events chan struct{}
}

// ccLitMark stands for a literal in an assembled response; server text
// never holds the byte.
const ccLitMark = '\x01'

const (
	ccNone = iota
	ccSelecting
	ccSelected
)

// ccView is a client's view of its selected mailbox.
type ccView struct {
	state    int
	mailbox  string
	readOnly bool
	uids     []uint32   // by sequence number - 1; 0 while unknown
	flags    [][]string // normalised; nil while unknown
	// keywords are those the last FLAGS response listed, lower-cased: a
	// FETCH may show no other (RFC 3501 §7.2.6, RFC 9051 §7.3.5).
	keywords map[string]bool
}

func newCCTap(conn net.Conn, w *ccWorld, client int) *ccTap {
	return &ccTap{Conn: conn, w: w, client: client, inflight: map[string]string{}, events: make(chan struct{}, 1)}
}

func (t *ccTap) Read(p []byte) (int, error) {
	n, err := t.Conn.Read(p)
	if n > 0 {
		t.mu.Lock()
		t.feedIn(p[:n])
		t.mu.Unlock()
	}
	return n, err
}

func (t *ccTap) Write(p []byte) (int, error) {
	t.mu.Lock()
	t.feedOut(p)
	t.mu.Unlock()
	return t.Conn.Write(p)
}

// fail reports a failure with the client's last commands; t.mu is held.
func (t *ccTap) fail(format string, args ...any) {
	t.w.fail("client %d: %s\n\tlast commands: %s", t.client, fmt.Sprintf(format, args...), strings.Join(t.trace, " | "))
}

// literalSuffix returns the size of the literal a line announces at its
// end ("{N}", "{N+}", "~{N}"), and where the announcement starts.
func literalSuffix(line []byte) (n, start int, ok bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, 0, false
	}
	num := strings.TrimSuffix(string(line[open+1:len(line)-1]), "+")
	v, err := strconv.Atoi(num)
	if err != nil || v < 0 {
		return 0, 0, false
	}
	if open > 0 && line[open-1] == '~' {
		open--
	}
	return v, open, true
}

// feedOut notes the tag and name of each command sent; literals and the
// DONE that ends IDLE carry none.
func (t *ccTap) feedOut(p []byte) {
	t.out = append(t.out, p...)
	for {
		if t.outLit > 0 {
			k := min(t.outLit, len(t.out))
			t.out, t.outLit = t.out[k:], t.outLit-k
			if t.outLit > 0 {
				return
			}
			continue
		}
		i := bytes.Index(t.out, []byte("\r\n"))
		if i < 0 {
			return
		}
		line := t.out[:i]
		t.out = t.out[i+2:]
		if n, _, ok := literalSuffix(line); ok {
			t.outLit = n
		}
		// A command's first line starts with its tag; literals, the
		// CRLF after one and the DONE that ends IDLE carry none.
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		name := strings.ToUpper(f[1])
		if name == "UID" && len(f) > 2 {
			name += " " + strings.ToUpper(f[2])
		}
		t.inflight[f[0]] = name
		switch name {
		case "SELECT", "EXAMINE":
			mb := strings.Trim(f[2], `"`)
			if t.v.state == ccNone {
				t.v = ccView{state: ccSelecting, mailbox: mb, readOnly: name == "EXAMINE"}
			} else {
				// The old view lasts until OK [CLOSED] (RFC 9051 §7.1).
				t.v.mailbox, t.v.readOnly = mb, name == "EXAMINE"
			}
		}
	}
}

func (t *ccTap) feedIn(p []byte) {
	t.in = append(t.in, p...)
	for {
		if t.inLi {
			if len(t.in) < t.lit {
				return
			}
			t.lits = append(t.lits, bytes.Clone(t.in[:t.lit]))
			t.in = t.in[t.lit:]
			t.inLi = false
			continue
		}
		i := bytes.Index(t.in, []byte("\r\n"))
		if i < 0 {
			return
		}
		line := t.in[:i]
		t.in = t.in[i+2:]
		if n, start, ok := literalSuffix(line); ok {
			t.cur = append(t.cur, line[:start]...)
			t.cur = append(t.cur, ccLitMark)
			t.lit, t.inLi = n, true
			continue
		}
		t.cur = append(t.cur, line...)
		t.handle(string(t.cur), t.lits)
		t.cur, t.lits = nil, nil
	}
}

// handle applies one complete response to the view.
func (t *ccTap) handle(resp string, lits [][]byte) {
	p := &ccParser{s: resp, lits: lits}
	tag := p.atom()
	p.sp()
	switch tag {
	case "+":
		return
	case "*":
	default:
		name, ok := t.inflight[tag]
		if !ok {
			t.fail("tagged response %q for no command in flight", ccAbbrev(resp))
			return
		}
		delete(t.inflight, tag)
		status := strings.ToUpper(p.atom())
		switch name {
		case "SELECT", "EXAMINE":
			if status == "OK" && t.v.state == ccSelecting {
				t.v.state = ccSelected
			} else {
				t.v = ccView{}
			}
		case "CLOSE", "UNSELECT":
			if status == "OK" {
				t.v = ccView{}
			}
		}
		return
	}
	first := p.atom()
	n, err := strconv.ParseUint(first, 10, 32)
	if err != nil {
		switch strings.ToUpper(first) {
		case "OK":
			if strings.HasPrefix(strings.ToUpper(p.rest()), " [CLOSED]") {
				if t.v.state != ccSelected {
					t.fail("OK [CLOSED] with no mailbox selected")
				}
				t.v = ccView{state: ccSelecting, mailbox: t.v.mailbox, readOnly: t.v.readOnly}
			}
		case "FLAGS":
			if t.v.state == ccNone {
				t.fail("%q with no mailbox selected", ccAbbrev(resp))
				return
			}
			p.sp()
			list, ok := p.value().([]any)
			if !ok {
				t.fail("malformed FLAGS response %q", ccAbbrev(resp))
				return
			}
			t.v.keywords = map[string]bool{}
			for _, f := range list {
				if s, _ := f.(string); !strings.HasPrefix(s, `\`) {
					t.v.keywords[strings.ToLower(s)] = true
				}
			}
		case "SEARCH":
			t.checkSearch(p)
		case "ESEARCH":
			t.checkESearch(p)
		case "BYE":
			if t.command() != "LOGOUT" {
				t.fail("unexpected %q", ccAbbrev(resp))
			}
		}
		return
	}
	p.sp()
	seq := uint32(n)
	kind := strings.ToUpper(p.atom())
	v := &t.v
	if kind == "RECENT" {
		return
	}
	if v.state == ccNone || v.state == ccSelecting && kind != "EXISTS" {
		t.fail("%q with no mailbox selected (state %d, in flight %v)", ccAbbrev(resp), v.state, t.inflight)
		return
	}
	select {
	case t.events <- struct{}{}:
	default:
	}
	switch kind {
	case "EXISTS":
		if v.state == ccSelecting {
			v.uids, v.flags = make([]uint32, seq), make([][]string, seq)
			return
		}
		if int(seq) < len(v.uids) {
			t.fail("%s: EXISTS %d below the %d messages known, with no EXPUNGE", v.mailbox, seq, len(v.uids))
			return
		}
		for len(v.uids) < int(seq) {
			v.uids = append(v.uids, 0)
			v.flags = append(v.flags, nil)
		}
	case "EXPUNGE":
		cmd := t.command()
		switch cmd {
		// RFC 9051 §7.5.1: no EXPUNGE during FETCH, STORE or SEARCH
		// (UID variants may carry one); §6.4.1: none during CLOSE.
		case "FETCH", "STORE", "SEARCH", "CLOSE", "SELECT", "EXAMINE", "":
			t.fail("%s: EXPUNGE %d during %q", v.mailbox, seq, cmd)
		}
		if seq < 1 || int(seq) > len(v.uids) {
			t.fail("%s: EXPUNGE %d, but the client knows %d messages", v.mailbox, seq, len(v.uids))
			return
		}
		t.w.count("EXPUNGE response during " + cmd)
		if uid := v.uids[seq-1]; uid != 0 {
			t.w.mu.Lock()
			t.w.expunged = append(t.w.expunged, ccExpunged{t.client, ccKey{t.w.mbs[v.mailbox], uid}, cmd})
			t.w.mu.Unlock()
		}
		v.uids = slices.Delete(v.uids, int(seq-1), int(seq))
		v.flags = slices.Delete(v.flags, int(seq-1), int(seq))
	case "FETCH":
		if seq < 1 || int(seq) > len(v.uids) {
			t.fail("%s: FETCH %d, but the client knows %d messages (in flight %v)", v.mailbox, seq, len(v.uids), t.inflight)
			return
		}
		p.sp()
		t.fetch(seq, p, resp)
	default:
		t.fail("unexpected response %q", ccAbbrev(resp))
	}
}

// command returns the name of the command in flight, "" if none.
func (t *ccTap) command() string {
	for _, name := range t.inflight {
		return name
	}
	return ""
}

// fetch applies the items of "* seq FETCH (…)".
func (t *ccTap) fetch(seq uint32, p *ccParser, resp string) {
	v := &t.v
	items, ok := p.value().([]any)
	if !ok || len(items)%2 != 0 {
		t.fail("malformed FETCH response %q", ccAbbrev(resp))
		return
	}
	i := int(seq - 1)
	var body []byte
	recent := false
	for j := 0; j < len(items); j += 2 {
		name, _ := items[j].(string)
		switch name = strings.ToUpper(name); {
		case name == "UID":
			s, _ := items[j+1].(string)
			u, err := strconv.ParseUint(s, 10, 32)
			if err != nil || u == 0 {
				t.fail("FETCH %d: bad UID in %q", seq, ccAbbrev(resp))
				return
			}
			uid := uint32(u)
			if old := v.uids[i]; old != 0 && old != uid {
				t.fail("%s: FETCH %d says UID %d, but the view has UID %d there", v.mailbox, seq, uid, old)
				return
			}
			// UIDs ascend with sequence numbers (RFC 9051 §2.3.1.1).
			for k := i - 1; k >= 0; k-- {
				if v.uids[k] != 0 {
					if v.uids[k] >= uid {
						t.fail("%s: FETCH %d says UID %d, but %d has UID %d", v.mailbox, seq, uid, k+1, v.uids[k])
					}
					break
				}
			}
			for k := i + 1; k < len(v.uids); k++ {
				if v.uids[k] != 0 {
					if v.uids[k] <= uid {
						t.fail("%s: FETCH %d says UID %d, but %d has UID %d", v.mailbox, seq, uid, k+1, v.uids[k])
					}
					break
				}
			}
			v.uids[i] = uid
		case name == "FLAGS":
			list, ok := items[j+1].([]any)
			if !ok {
				t.fail("FETCH %d: bad FLAGS in %q", seq, ccAbbrev(resp))
				return
			}
			var flags []string
			for _, f := range list {
				s, _ := f.(string)
				flags = append(flags, s)
				if strings.EqualFold(s, `\Recent`) {
					recent = true
				} else if !strings.HasPrefix(s, `\`) && !v.keywords[strings.ToLower(s)] {
					t.fail("%s: FETCH %d shows keyword %s before a FLAGS response listed it", v.mailbox, seq, s)
				}
			}
			v.flags[i] = ccNormFlags(flags)
		case strings.HasPrefix(name, "BODY["):
			switch b := items[j+1].(type) {
			case []byte:
				body = b
			case string:
				body = []byte(b)
			}
		}
	}
	if recent && !v.readOnly && v.uids[i] != 0 {
		t.w.noteRecent(ccKey{t.w.mbs[v.mailbox], v.uids[i]}, t.client)
	}
	if body != nil {
		if id := ccTestID(body); id != "" && v.uids[i] != 0 {
			t.w.noteID(ccKey{t.w.mbs[v.mailbox], v.uids[i]}, id, fmt.Sprintf("client %d FETCH body", t.client))
		}
	}
}

// checkSearch checks "* SEARCH n…": with SEARCH, every n is a sequence
// number the client knows.
func (t *ccTap) checkSearch(p *ccParser) {
	if t.command() != "SEARCH" {
		return
	}
	for _, f := range strings.Fields(p.rest()) {
		if strings.HasPrefix(f, "(") {
			break // (MODSEQ n)
		}
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil || n < 1 || int(n) > len(t.v.uids) {
			t.fail("%s: SEARCH result %q, but the client knows %d messages", t.v.mailbox, f, len(t.v.uids))
		}
	}
}

// checkESearch checks the ALL, MIN and MAX of a SEARCH's ESEARCH
// response (RFC 4731 §3.1) against the messages the client knows.
func (t *ccTap) checkESearch(p *ccParser) {
	if t.command() != "SEARCH" {
		return
	}
	f := strings.Fields(p.rest())
	for i := 0; i+1 < len(f); i++ {
		switch strings.ToUpper(f[i]) {
		case "ALL", "MIN", "MAX":
			for _, r := range strings.Split(f[i+1], ",") {
				for _, s := range strings.Split(r, ":") {
					n, err := strconv.ParseUint(s, 10, 32)
					if err != nil || n < 1 || int(n) > len(t.v.uids) {
						t.fail("%s: ESEARCH %s %s, but the client knows %d messages", t.v.mailbox, f[i], f[i+1], len(t.v.uids))
					}
				}
			}
		}
	}
}

// ccNormFlags returns flags lower-cased (RFC 9051 §2.3.2: they are
// case-insensitive) and sorted, without \Recent, which IMAP4rev1 servers
// may add and the store does not keep.
func ccNormFlags(flags []string) []string {
	out := []string{}
	for _, f := range flags {
		if f = strings.ToLower(f); f != `\recent` && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	slices.Sort(out)
	return out
}

func ccAbbrev(s string) string {
	if len(s) > 160 {
		return s[:160] + "…"
	}
	return s
}

// ccParser reads the values of one response: atoms, numbers, quoted
// strings, literals and parenthesised lists.
type ccParser struct {
	s    string
	pos  int
	lits [][]byte
	li   int
}

func (p *ccParser) sp() {
	if p.pos < len(p.s) && p.s[p.pos] == ' ' {
		p.pos++
	}
}

func (p *ccParser) rest() string { return p.s[p.pos:] }

// atom reads up to a space or a parenthesis, keeping brackets whole:
// BODY[HEADER.FIELDS (X-TEST-ID)] is one name.
func (p *ccParser) atom() string {
	start, depth := p.pos, 0
	for p.pos < len(p.s) {
		c := p.s[p.pos]
		switch {
		case c == '[':
			depth++
		case c == ']':
			depth--
		case depth == 0 && (c == ' ' || c == '(' || c == ')'):
			return p.s[start:p.pos]
		}
		p.pos++
	}
	return p.s[start:]
}

// value reads one value: string for atoms and quoted strings, []byte for
// literals, []any for lists.
func (p *ccParser) value() any {
	if p.pos >= len(p.s) {
		return nil
	}
	switch c := p.s[p.pos]; c {
	case '(':
		p.pos++
		var list []any
		for p.pos < len(p.s) && p.s[p.pos] != ')' {
			list = append(list, p.value())
			p.sp()
		}
		p.pos++
		if list == nil {
			list = []any{}
		}
		return list
	case '"':
		var b strings.Builder
		for p.pos++; p.pos < len(p.s) && p.s[p.pos] != '"'; p.pos++ {
			if p.s[p.pos] == '\\' {
				p.pos++
			}
			if p.pos < len(p.s) {
				b.WriteByte(p.s[p.pos])
			}
		}
		p.pos++
		return b.String()
	case ccLitMark:
		p.pos++
		if p.li >= len(p.lits) {
			return []byte(nil)
		}
		p.li++
		return p.lits[p.li-1]
	}
	return p.atom()
}
