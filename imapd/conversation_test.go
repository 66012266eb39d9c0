package imapd

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"pushmail/mailstore"
)

// The conversation tests are IMAP dialogues written from the RFCs'
// grammar and examples: imapd/testdata/conversations/*.txt, one subtest
// each, against a real server and store. The script format is described
// in imapd/testdata/conversations/README.

// conversationDir holds the scripts.
const conversationDir = "testdata/conversations"

// splitPause separates the pieces of a W line: long enough for the server
// to read one piece before the next arrives, so that a command is parsed
// from several reads. It waits for nothing the server does.
const splitPause = 30 * time.Millisecond

// Set PUSHMAIL_PENDING=1 to run the scripts marked pending too.

// quietWait is how long a script's end waits for output nobody expected.
const quietWait = 50 * time.Millisecond

func TestConversations(t *testing.T) {
	t.Parallel()
	files, err := filepath.Glob(filepath.Join(conversationDir, "*.txt"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatalf("no scripts in %s", conversationDir)
	}
	for _, file := range files {
		name := strings.TrimSuffix(filepath.Base(file), ".txt")
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			data, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			sc, err := parseScript(filepath.Base(file), string(data))
			if err != nil {
				t.Fatal(err)
			}
			if sc.pending != "" && os.Getenv("PUSHMAIL_PENDING") == "" {
				t.Skipf("pending: %s", sc.pending)
			}
			runScript(t, sc)
		})
	}
}

// stepKind says what one script line does.
type stepKind int

const (
	stepSend      stepKind = iota // C and W lines: bytes to the server
	stepExpect                    // S lines: the next line from the server
	stepUnordered                 // S lines between "unordered" and "end"
	stepClosed                    // "closed N": the server has closed
	stepHangUp                    // "hangup N": the client closes
	stepLogin                     // "login N"
	stepSelect                    // "select N mailbox", "examine N mailbox"
	stepDeliver                   // "deliver name"
	stepCheck                     // "check …": the store's state
	stepQuota                     // "quota BYTES MESSAGES": alice's limits
)

// step is one action of a script.
type step struct {
	line   int // in the script file, from 1
	text   string
	kind   stepKind
	conn   int
	pieces []string // stepSend: the writes, in order
	want   []string // stepExpect, stepUnordered: patterns
	arg    string   // stepSelect: the command; stepDeliver: message; stepCheck: what
	values []string // stepCheck: the expected items
}

// script is a parsed conversation.
type script struct {
	file     string
	pending  string
	appendMx uint32
	messages map[string][]byte
	steps    []step
}

var (
	connLineRe = regexp.MustCompile(`^([CSW])([0-9]+): ?(.*)$`)
	headerRe   = regexp.MustCompile(`^([a-z-]+):\s*(.*)$`)
)

// parseScript reads a script (see the README).
func parseScript(file, text string) (*script, error) {
	sc := &script{file: file, messages: map[string][]byte{}}
	lines := strings.Split(strings.TrimSuffix(text, "\n"), "\n")
	var group *step // an open "unordered" group
	for i := 0; i < len(lines); i++ {
		raw := lines[i]
		n := i + 1
		errf := func(format string, args ...any) error {
			return fmt.Errorf("%s:%d: %s: %q", file, n, fmt.Sprintf(format, args...), raw)
		}
		line := strings.TrimRight(raw, "\r")
		if m := connLineRe.FindStringSubmatch(line); m != nil {
			conn, _ := strconv.Atoi(m[2])
			body := m[3]
			switch m[1] {
			case "S":
				if group != nil {
					if group.conn != conn {
						return nil, errf("an unordered group is for one connection")
					}
					group.want = append(group.want, body)
					continue
				}
				sc.steps = append(sc.steps, step{line: n, text: line, kind: stepExpect, conn: conn, want: []string{body}})
			case "C":
				if group != nil {
					return nil, errf("only S lines inside an unordered group")
				}
				sc.steps = append(sc.steps, step{line: n, text: line, kind: stepSend, conn: conn, pieces: []string{body + "\r\n"}})
			case "W":
				if group != nil {
					return nil, errf("only S lines inside an unordered group")
				}
				pieces, err := unescapeW(body)
				if err != nil {
					return nil, errf("%v", err)
				}
				sc.steps = append(sc.steps, step{line: n, text: line, kind: stepSend, conn: conn, pieces: pieces})
			}
			continue
		}
		trimmed := strings.TrimSpace(line)
		if trimmed == "" || strings.HasPrefix(trimmed, "#") {
			continue
		}
		fields := strings.Fields(trimmed)
		switch fields[0] {
		case "unordered":
			if group != nil || len(fields) != 1 {
				return nil, errf("misplaced unordered")
			}
			group = &step{line: n, text: line, kind: stepUnordered, conn: -1}
			// The connection is the first S line's.
			if i+1 < len(lines) {
				if m := connLineRe.FindStringSubmatch(lines[i+1]); m != nil {
					group.conn, _ = strconv.Atoi(m[2])
				}
			}
			continue
		case "end":
			if group == nil || len(group.want) == 0 {
				return nil, errf("end without an unordered group")
			}
			sc.steps = append(sc.steps, *group)
			group = nil
			continue
		}
		if group != nil {
			return nil, errf("only S lines inside an unordered group")
		}
		switch fields[0] {
		case "message":
			if len(fields) != 2 {
				return nil, errf("message NAME")
			}
			var body []string
			for i++; i < len(lines) && strings.TrimRight(lines[i], "\r") != "."; i++ {
				body = append(body, strings.TrimRight(lines[i], "\r"))
			}
			if i == len(lines) {
				return nil, errf("message without its closing \".\" line")
			}
			sc.messages[fields[1]] = []byte(strings.Join(body, "\r\n") + "\r\n")
			continue
		case "login", "closed", "hangup":
			if len(fields) != 2 {
				return nil, errf("%s N", fields[0])
			}
			conn, err := strconv.Atoi(fields[1])
			if err != nil {
				return nil, errf("%s N", fields[0])
			}
			kind := map[string]stepKind{"login": stepLogin, "closed": stepClosed, "hangup": stepHangUp}[fields[0]]
			sc.steps = append(sc.steps, step{line: n, text: line, kind: kind, conn: conn})
			continue
		case "select", "examine":
			if len(fields) != 3 {
				return nil, errf("%s N mailbox", fields[0])
			}
			conn, err := strconv.Atoi(fields[1])
			if err != nil {
				return nil, errf("%s N mailbox", fields[0])
			}
			sc.steps = append(sc.steps, step{line: n, text: line, kind: stepSelect, conn: conn,
				arg: strings.ToUpper(fields[0]) + " " + fields[2]})
			continue
		case "deliver":
			if len(fields) != 2 {
				return nil, errf("deliver NAME")
			}
			sc.steps = append(sc.steps, step{line: n, text: line, kind: stepDeliver, arg: fields[1]})
			continue
		case "quota":
			if len(fields) != 3 {
				return nil, errf("quota BYTES MESSAGES")
			}
			for _, f := range fields[1:] {
				if _, err := strconv.ParseInt(f, 10, 64); err != nil {
					return nil, errf("quota BYTES MESSAGES")
				}
			}
			sc.steps = append(sc.steps, step{line: n, text: line, kind: stepQuota, values: fields[1:]})
			continue
		case "check":
			what, rest, ok := strings.Cut(strings.TrimPrefix(trimmed, "check "), ":")
			if !ok {
				return nil, errf("check WHAT: ITEMS")
			}
			values, err := splitQuoted(rest)
			if err != nil {
				return nil, errf("%v", err)
			}
			sc.steps = append(sc.steps, step{line: n, text: line, kind: stepCheck, arg: strings.TrimSpace(what), values: values})
			continue
		}
		if m := headerRe.FindStringSubmatch(trimmed); m != nil {
			switch m[1] {
			case "pending":
				sc.pending = m[2]
			case "appendlimit":
				v, err := strconv.ParseUint(m[2], 10, 32)
				if err != nil {
					return nil, errf("appendlimit: N")
				}
				sc.appendMx = uint32(v)
			case "rfc", "title":
				// For the reader.
			default:
				return nil, errf("unknown header")
			}
			continue
		}
		return nil, errf("unknown line")
	}
	if group != nil {
		return nil, fmt.Errorf("%s: unordered group without end", file)
	}
	for _, st := range sc.steps {
		if st.kind == stepDeliver {
			if _, ok := sc.messages[st.arg]; !ok {
				return nil, fmt.Errorf("%s:%d: no message %q", file, st.line, st.arg)
			}
		}
	}
	return sc, nil
}

// unescapeW splits a W line into its writes at "|" and undoes its escapes:
// \r \n \t \\ \| \xHH; any other backslash is itself (\Seen).
func unescapeW(s string) ([]string, error) {
	var pieces []string
	var cur strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '|':
			pieces = append(pieces, cur.String())
			cur.Reset()
		case c == '\\' && i+1 < len(s):
			switch s[i+1] {
			case 'r':
				cur.WriteByte('\r')
			case 'n':
				cur.WriteByte('\n')
			case 't':
				cur.WriteByte('\t')
			case '\\', '|':
				cur.WriteByte(s[i+1])
			case 'x':
				if i+3 >= len(s) {
					return nil, errors.New(`\x needs two hex digits`)
				}
				v, err := strconv.ParseUint(s[i+2:i+4], 16, 8)
				if err != nil {
					return nil, fmt.Errorf(`bad \x escape: %v`, err)
				}
				cur.WriteByte(byte(v))
				i += 2
			default:
				cur.WriteByte('\\')
				continue
			}
			i++
		default:
			cur.WriteByte(c)
		}
	}
	return append(pieces, cur.String()), nil
}

// splitQuoted splits on spaces, keeping "quoted strings" (without their
// quotes) and parenthesized lists whole.
func splitQuoted(s string) ([]string, error) {
	var out []string
	s = strings.TrimSpace(s)
	for s != "" {
		var tok string
		switch s[0] {
		case '"':
			end := strings.IndexByte(s[1:], '"')
			if end < 0 {
				return nil, errors.New("unterminated quote")
			}
			tok, s = s[1:end+1], s[end+2:]
		case '(':
			end := strings.IndexByte(s, ')')
			if end < 0 {
				return nil, errors.New("unterminated list")
			}
			tok, s = s[:end+1], s[end+1:]
		default:
			end := strings.IndexAny(s, " ")
			if end < 0 {
				end = len(s)
			}
			tok, s = s[:end], s[end:]
		}
		out = append(out, tok)
		s = strings.TrimLeft(s, " ")
	}
	return out, nil
}

// pattern is a compiled S line.
type pattern struct {
	re   *regexp.Regexp
	vars []string // the capture groups' variable names ("" for classes)
}

// placeholderRe finds <name>, <*> and the \< escape in an S line.
var placeholderRe = regexp.MustCompile(`\\<|<(\*|[a-z][a-z0-9_]*)>`)

// Placeholder classes; other names are variables.
var classes = map[string]string{
	"*": `.*?`,
	"n": `[0-9]+`,
	// date-time (RFC 9051 §9) without its quotes.
	"date": `(?: [0-9]|[0-9]{2})-[A-Z][a-z]{2}-[0-9]{4} [0-9]{2}:[0-9]{2}:[0-9]{2} [+-][0-9]{4}`,
}

// varClass is what a variable matches the first time: a number or an
// atom.
const varClass = `[^ ()\[\]{}"]+`

// flagListRe finds a parenthesized list of backslash-atoms: flags and
// mailbox attributes, whose order RFC 9051 leaves free.
var flagListRe = regexp.MustCompile(`\((\\[A-Za-z]+(?: \\[A-Za-z*]+)*)\)`)

// sortFlagLists sorts the items of every such list, in a line or in a
// pattern, so that they match in any order.
func sortFlagLists(s string) string {
	return flagListRe.ReplaceAllStringFunc(s, func(l string) string {
		items := strings.Fields(l[1 : len(l)-1])
		slices.Sort(items)
		return "(" + strings.Join(items, " ") + ")"
	})
}

// compilePattern turns an S line into a regexp, given the variables bound
// so far.
func compilePattern(s string, vars map[string]string) (*pattern, error) {
	s = sortFlagLists(s)
	p := &pattern{}
	var re strings.Builder
	re.WriteString("^")
	last := 0
	fresh := map[string]bool{}
	for _, m := range placeholderRe.FindAllStringSubmatchIndex(s, -1) {
		re.WriteString(regexp.QuoteMeta(s[last:m[0]]))
		last = m[1]
		if m[2] < 0 {
			re.WriteString("<") // \<
			continue
		}
		name := s[m[2]:m[3]]
		if class, ok := classes[name]; ok {
			re.WriteString("(?:" + class + ")")
			continue
		}
		if v, ok := vars[name]; ok {
			re.WriteString(regexp.QuoteMeta(v))
			continue
		}
		// A variable bound by this line: every occurrence captures, and
		// the captures must agree (see match).
		fresh[name] = true
		re.WriteString("(" + varClass + ")")
		p.vars = append(p.vars, name)
	}
	re.WriteString(regexp.QuoteMeta(s[last:]))
	re.WriteString("$")
	var err error
	p.re, err = regexp.Compile(re.String())
	return p, err
}

// match matches a line and returns the variables it binds.
func (p *pattern) match(line string) (map[string]string, bool) {
	m := p.re.FindStringSubmatch(sortFlagLists(line))
	if m == nil {
		return nil, false
	}
	bound := map[string]string{}
	for i, name := range p.vars {
		if v, ok := bound[name]; ok && v != m[i+1] {
			return nil, false
		}
		bound[name] = m[i+1]
	}
	return bound, true
}

// substitute replaces bound <variables> in a client line; \< is "<".
func substitute(s string, vars map[string]string) (string, error) {
	var err error
	out := placeholderRe.ReplaceAllStringFunc(s, func(ph string) string {
		if ph == `\<` {
			return "<"
		}
		name := ph[1 : len(ph)-1]
		if v, ok := vars[name]; ok {
			return v
		}
		if err == nil {
			err = fmt.Errorf("variable <%s> is not bound yet", name)
		}
		return ph
	})
	return out, err
}

// scriptConn is one client connection of a running script.
type scriptConn struct {
	conn net.Conn
	r    *bufio.Reader
	eof  bool
}

// scriptRun is the state of a running script.
type scriptRun struct {
	t     *testing.T
	sc    *script
	env   *testEnv
	conns map[int]*scriptConn
	vars  map[string]string
	mu    sync.Mutex
	log   []string // the transcript
	cur   *step
}

func runScript(t *testing.T, sc *script) {
	env := newTestEnv(t, envOptions{server: Options{AppendLimit: sc.appendMx}})
	r := &scriptRun{t: t, sc: sc, env: env, conns: map[int]*scriptConn{}, vars: map[string]string{}}
	for i := range sc.steps {
		st := &sc.steps[i]
		r.cur = st
		r.step(st)
	}
	r.cur = nil
	r.quiet()
}

// record adds a line to the transcript.
func (r *scriptRun) record(format string, args ...any) {
	r.mu.Lock()
	r.log = append(r.log, fmt.Sprintf(format, args...))
	r.mu.Unlock()
}

// fail ends the script with the step's line and the transcript.
func (r *scriptRun) fail(format string, args ...any) {
	r.t.Helper()
	var where string
	if r.cur != nil {
		where = fmt.Sprintf("%s:%d: %s\n", r.sc.file, r.cur.line, r.cur.text)
	} else {
		where = r.sc.file + ": at the end\n"
	}
	r.mu.Lock()
	transcript := strings.Join(r.log, "\n")
	r.mu.Unlock()
	r.t.Fatalf("%s%s\ntranscript:\n%s", where, fmt.Sprintf(format, args...), transcript)
}

// conn returns connection n, dialling it on first use.
func (r *scriptRun) conn(n int) *scriptConn {
	r.t.Helper()
	if c, ok := r.conns[n]; ok {
		return c
	}
	nc, err := net.DialTimeout("tcp", r.env.addr, waitTimeout)
	if err != nil {
		r.fail("dial: %v", err)
	}
	r.t.Cleanup(func() { nc.Close() })
	c := &scriptConn{conn: nc, r: bufio.NewReader(nc)}
	r.conns[n] = c
	r.record("-- connection %d opened", n)
	return c
}

// send writes pieces, each in its own write, with a pause between them.
func (r *scriptRun) send(n int, pieces []string) {
	r.t.Helper()
	c := r.conn(n)
	for i, p := range pieces {
		if i > 0 {
			time.Sleep(splitPause)
		}
		p, err := substitute(p, r.vars)
		if err != nil {
			r.fail("%v", err)
		}
		if i == 0 {
			r.record("C%d: %s", n, strings.TrimSuffix(p, "\r\n"))
		} else {
			r.record("C%d: (next write) %q", n, p)
		}
		if err := c.conn.SetWriteDeadline(time.Now().Add(waitTimeout)); err != nil {
			r.fail("%v", err)
		}
		if _, err := c.conn.Write([]byte(p)); err != nil {
			r.fail("write on connection %d: %v", n, err)
		}
	}
}

// readLine reads the next line from connection n, without its CRLF; a
// line ended by a bare LF keeps it, and so matches nothing.
func (r *scriptRun) readLine(n int) string {
	r.t.Helper()
	c := r.conn(n)
	if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
		r.fail("%v", err)
	}
	line, err := c.r.ReadString('\n')
	if err != nil {
		if line != "" {
			r.record("S%d: %s", n, line)
		}
		r.fail("read on connection %d: %v", n, err)
	}
	if s, ok := strings.CutSuffix(line, "\r\n"); ok {
		line = s
	}
	r.record("S%d: %s", n, line)
	return line
}

// bind adds the variables a matched line bound.
func (r *scriptRun) bind(vars map[string]string) {
	for k, v := range vars {
		r.vars[k] = v
	}
}

func (r *scriptRun) compile(s string) *pattern {
	r.t.Helper()
	p, err := compilePattern(s, r.vars)
	if err != nil {
		r.fail("bad pattern: %v", err)
	}
	return p
}

func (r *scriptRun) step(st *step) {
	r.t.Helper()
	switch st.kind {
	case stepSend:
		r.send(st.conn, st.pieces)
	case stepExpect:
		p := r.compile(st.want[0])
		line := r.readLine(st.conn)
		vars, ok := p.match(line)
		if !ok {
			r.fail("got  %q\nwant %q", line, st.want[0])
		}
		r.bind(vars)
	case stepUnordered:
		left := slices.Clone(st.want)
		for len(left) > 0 {
			line := r.readLine(st.conn)
			found := false
			for i, w := range left {
				if vars, ok := r.compile(w).match(line); ok {
					r.bind(vars)
					left = slices.Delete(left, i, i+1)
					found = true
					break
				}
			}
			if !found {
				r.fail("got %q, want one of %q", line, left)
			}
		}
	case stepClosed:
		c := r.conn(st.conn)
		if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
			r.fail("%v", err)
		}
		line, err := c.r.ReadString('\n')
		if line != "" || err == nil {
			r.record("S%d: %s", st.conn, strings.TrimSuffix(line, "\r\n"))
			r.fail("got %q, want the connection closed", line)
		}
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			r.fail("the connection is still open")
		}
		c.eof = true
		r.record("-- connection %d closed by the server", st.conn)
	case stepHangUp:
		c := r.conn(st.conn)
		if err := c.conn.Close(); err != nil {
			r.fail("close: %v", err)
		}
		c.eof = true
		r.record("-- connection %d closed by the client", st.conn)
	case stepLogin:
		if _, ok := r.conns[st.conn]; !ok {
			if greeting := r.readLine(st.conn); !strings.HasPrefix(greeting, "* OK ") {
				r.fail("greeting %q, want * OK", greeting)
			}
		}
		r.shortcut(st.conn, "login", "LOGIN "+testUser+" "+testPassword)
	case stepSelect:
		r.shortcut(st.conn, "select", st.arg)
	case stepDeliver:
		uids, err := r.env.store.Deliver(context.Background(), r.sc.messages[st.arg], []mailstore.Recipient{r.env.inbox})
		if err != nil {
			r.fail("Deliver(%s) = %v", st.arg, err)
		}
		r.record("-- delivered %s to INBOX as UID %d", st.arg, uids[0])
	case stepCheck:
		r.check(st)
	case stepQuota:
		storage, _ := strconv.ParseInt(st.values[0], 10, 64)
		messages, _ := strconv.ParseInt(st.values[1], 10, 64)
		if err := r.env.store.SetQuota(context.Background(), testUser, storage, messages); err != nil {
			r.fail("SetQuota = %v", err)
		}
		r.record("-- %s", st.text)
	}
}

// shortcut runs a command whose replies the script does not spell out,
// and fails unless it ends in OK.
func (r *scriptRun) shortcut(n int, tag, command string) {
	r.t.Helper()
	r.send(n, []string{tag + " " + command + "\r\n"})
	for {
		line := r.readLine(n)
		if rest, ok := strings.CutPrefix(line, tag+" "); ok {
			if !strings.HasPrefix(rest, "OK") {
				r.fail("%s: %s", command, rest)
			}
			return
		}
	}
}

// check compares the store's state with a check line.
func (r *scriptRun) check(st *step) {
	r.t.Helper()
	ctx := context.Background()
	store, user := r.env.store, r.env.user.ID
	switch st.arg {
	case "mailboxes":
		mbs, err := store.Mailboxes(ctx, user)
		if err != nil {
			r.fail("Mailboxes() = %v", err)
		}
		var got []string
		for _, mb := range mbs {
			name := mb.Name
			if mb.SpecialUse != "" {
				name += " " + mb.SpecialUse
			}
			got = append(got, name)
		}
		r.compareSets("mailboxes", got, st.values)
	case "subscribed":
		got, err := store.Subscriptions(ctx, user)
		if err != nil {
			r.fail("Subscriptions() = %v", err)
		}
		r.compareSets("subscriptions", got, st.values)
	default:
		r.checkMailbox(st.arg, st.values)
	}
	r.record("-- %s", st.text)
}

// compareSets fails unless got and want hold the same strings.
func (r *scriptRun) compareSets(what string, got, want []string) {
	r.t.Helper()
	got, want = slices.Clone(got), slices.Clone(want)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		r.fail("the store's %s are %q, want %q", what, got, want)
	}
}

// checkMailbox compares a mailbox's messages with "UID[=message] (flags)"
// items.
func (r *scriptRun) checkMailbox(name string, items []string) {
	r.t.Helper()
	mb, err := r.env.store.Mailbox(context.Background(), r.env.user.ID, name)
	if err != nil {
		r.fail("Mailbox(%s) = %v", name, err)
	}
	type want struct {
		uid   string
		msg   string
		flags []string
	}
	var wants []want
	for i := 0; i < len(items); i += 2 {
		if i+1 >= len(items) || !strings.HasPrefix(items[i+1], "(") {
			r.fail("check %s: want UID[=message] (flags) pairs", name)
		}
		uid, msg, _ := strings.Cut(items[i], "=")
		uid, err := substitute(uid, r.vars)
		if err != nil {
			r.fail("%v", err)
		}
		if msg != "" {
			if _, ok := r.sc.messages[msg]; !ok {
				r.fail("no message %q", msg)
			}
		}
		flags := strings.Fields(strings.Trim(items[i+1], "()"))
		slices.Sort(flags)
		wants = append(wants, want{uid, msg, flags})
	}
	var got []string
	var gotMsgs []*mailstore.Message
	err = r.env.store.Messages(context.Background(), mb.ID, mailstore.AllUIDs(), mailstore.FetchOptions{Body: true}, func(m *mailstore.Message) error {
		flags := slices.Clone(m.Flags)
		slices.Sort(flags)
		got = append(got, fmt.Sprintf("%d (%s)", m.UID, strings.Join(flags, " ")))
		mc := *m
		mc.Raw = bytes.Clone(m.Raw)
		gotMsgs = append(gotMsgs, &mc)
		return nil
	})
	if err != nil {
		r.fail("Messages(%s) = %v", name, err)
	}
	var wantLines []string
	for _, w := range wants {
		wantLines = append(wantLines, fmt.Sprintf("%s (%s)", w.uid, strings.Join(w.flags, " ")))
	}
	if !slices.Equal(got, wantLines) {
		r.fail("the store's %s holds %q, want %q", name, got, wantLines)
	}
	for i, w := range wants {
		if w.msg != "" && !bytes.Equal(gotMsgs[i].Raw, r.sc.messages[w.msg]) {
			r.fail("the store's %s UID %s holds %q, want message %s: %q", name, w.uid, gotMsgs[i].Raw, w.msg, r.sc.messages[w.msg])
		}
	}
}

// quiet fails if a connection still open has output nobody expected.
func (r *scriptRun) quiet() {
	r.t.Helper()
	for n, c := range r.conns {
		if c.eof {
			continue
		}
		if err := c.conn.SetReadDeadline(time.Now().Add(quietWait)); err != nil {
			r.fail("%v", err)
		}
		line, err := c.r.ReadString('\n')
		if line != "" {
			r.record("S%d: %s", n, strings.TrimSuffix(line, "\r\n"))
			r.fail("connection %d: unexpected output %q", n, line)
		}
		var ne net.Error
		if err != nil && !(errors.As(err, &ne) && ne.Timeout()) {
			r.fail("connection %d: %v after the script, want it open and quiet (end the script with closed %d)", n, err, n)
		}
	}
}

func TestConversationPatterns(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		pattern string
		vars    map[string]string
		line    string
		ok      bool
		binds   map[string]string
	}{
		{"literal", `* 1 EXISTS`, nil, `* 1 EXISTS`, true, nil},
		{"literal mismatch", `* 1 EXISTS`, nil, `* 2 EXISTS`, false, nil},
		{"regexp characters are literal", `* FLAGS (\Seen \*)`, nil, `* FLAGS (\Seen \*)`, true, nil},
		{"number", `* <n> EXISTS`, nil, `* 42 EXISTS`, true, nil},
		{"number is digits", `* <n> EXISTS`, nil, `* x EXISTS`, false, nil},
		{"anything", `a OK <*>`, nil, `a OK [READ-WRITE] SELECT completed`, true, nil},
		{"date", `* 1 FETCH (INTERNALDATE "<date>")`, nil, `* 1 FETCH (INTERNALDATE "02-Jan-2006 15:04:05 +0000")`, true, nil},
		{"date with a space", `"<date>"`, nil, `" 2-Jan-2006 15:04:05 -0700"`, true, nil},
		{"binds", `* OK [UIDVALIDITY <uv>] x`, nil, `* OK [UIDVALIDITY 17] x`, true, map[string]string{"uv": "17"}},
		{"bound", `a OK [COPYUID <uv> 1 1] x`, map[string]string{"uv": "17"}, `a OK [COPYUID 18 1 1] x`, false, nil},
		{"twice in one line", `<a> <a>`, nil, `1 2`, false, nil},
		{"twice in one line agree", `<a> <a>`, nil, `1 1`, true, map[string]string{"a": "1"}},
		{"escaped", `\<abc>`, nil, `<abc>`, true, nil},
		{"message id is literal", `"<1@example.org>"`, nil, `"<1@example.org>"`, true, nil},
		{"flags in any order", `* 1 FETCH (FLAGS (\Seen \Deleted))`, nil, `* 1 FETCH (FLAGS (\Deleted \Seen))`, true, nil},
		{"attributes in any order", `* LIST (\Subscribed \NonExistent) "/" x`, nil, `* LIST (\NonExistent \Subscribed) "/" x`, true, nil},
		{"other lists in order", `* STATUS x (MESSAGES 2 UIDNEXT 3)`, nil, `* STATUS x (MESSAGES 3 UIDNEXT 2)`, false, nil},
		{"partial origin is literal", `BODY[]<0> {5}`, nil, `BODY[]<0> {5}`, true, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := compilePattern(tt.pattern, tt.vars)
			if err != nil {
				t.Fatalf("compilePattern(%q) = %v", tt.pattern, err)
			}
			binds, ok := p.match(tt.line)
			if ok != tt.ok {
				t.Fatalf("match(%q, %q) = %v, want %v", tt.pattern, tt.line, ok, tt.ok)
			}
			if ok && len(tt.binds) > 0 && fmt.Sprint(binds) != fmt.Sprint(tt.binds) {
				t.Errorf("match(%q, %q) binds %v, want %v", tt.pattern, tt.line, binds, tt.binds)
			}
		})
	}
}

func TestConversationWLine(t *testing.T) {
	t.Parallel()
	got, err := unescapeW(`a LOGIN {5+}\r\nal|ice \\Seen \| \x00\r|\n`)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"a LOGIN {5+}\r\nal", "ice \\Seen | \x00\r", "\n"}
	if !slices.Equal(got, want) {
		t.Errorf("unescapeW = %q, want %q", got, want)
	}
}
