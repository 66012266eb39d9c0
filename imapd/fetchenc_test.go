package imapd

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"pushmail/imapd/wire"
	"pushmail/message"
)

// The golden files in testdata/fetchenc are what imapd answered, under
// go-imap's imapserver, to "FETCH n (ENVELOPE BODYSTRUCTURE BODY)" for each
// message of ../testdata/messages and ../testdata/malformed, with the
// "* n FETCH " prefix cut: <dir>-<name>.golden on a plain connection,
// <dir>-<name>.utf8.golden after ENABLE UTF8=ACCEPT. They were recorded
// before issue 14 replaced imapserver, and stay as the independent
// reference the encoders are checked against: they are not regenerated
// from imapd's own answers. A new corpus message gets no golden file;
// the tests below skip it.
const fetchencDir = "testdata/fetchenc"

var fetchencCorpora = []string{"../testdata/messages", "../testdata/malformed"}

// fetchencCorpus returns the corpus messages by golden name.
func fetchencCorpus(t *testing.T) map[string]string {
	t.Helper()
	out := make(map[string]string)
	for _, dir := range fetchencCorpora {
		files, err := filepath.Glob(filepath.Join(dir, "*.eml"))
		if err != nil || len(files) == 0 {
			t.Fatalf("Glob(%s) = %v, %v", dir, files, err)
		}
		for _, f := range files {
			out[filepath.Base(dir)+"-"+strings.TrimSuffix(filepath.Base(f), ".eml")] = f
		}
	}
	return out
}

// fetchRaw sends FETCH seq (ENVELOPE BODYSTRUCTURE BODY) and returns the
// response's bytes after "* seq FETCH ", literals included.
func fetchRaw(t *testing.T, c *rawConn, seq int) []byte {
	t.Helper()
	tag := c.send("FETCH %d (ENVELOPE BODYSTRUCTURE BODY)", seq)
	var resp []byte
	for {
		if err := c.conn.SetReadDeadline(time.Now().Add(waitTimeout)); err != nil {
			t.Fatal(err)
		}
		line, err := c.r.ReadBytes('\n')
		if err != nil {
			t.Fatalf("read: %v", err)
		}
		if bytes.HasPrefix(line, []byte(tag+" ")) {
			if !bytes.HasPrefix(line, []byte(tag+" OK")) {
				t.Fatalf("FETCH %d: %s", seq, line)
			}
			break
		}
		resp = append(resp, line...)
		if n, ok := literalLen(line); ok {
			lit := make([]byte, n)
			if _, err := io.ReadFull(c.r, lit); err != nil {
				t.Fatalf("read literal: %v", err)
			}
			resp = append(resp, lit...)
		}
	}
	prefix := fmt.Sprintf("* %d FETCH ", seq)
	if !bytes.HasPrefix(resp, []byte(prefix)) {
		t.Fatalf("FETCH %d answered %q", seq, resp)
	}
	return resp[len(prefix):]
}

// literalLen reads the {n} CRLF that ends a line announcing a literal.
func literalLen(line []byte) (int, bool) {
	line = bytes.TrimSuffix(line, []byte("\r\n"))
	if !bytes.HasSuffix(line, []byte("}")) {
		return 0, false
	}
	open := bytes.LastIndexByte(line, '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(line[open+1 : len(line)-1]))
	return n, err == nil
}

// fetchenc runs the encoders as FETCH (ENVELOPE BODYSTRUCTURE BODY) does,
// in imapserver's order: ENVELOPE, BODY, BODYSTRUCTURE.
func fetchenc(t *testing.T, p *message.Parsed, utf8 bool) []byte {
	t.Helper()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := wire.NewWriter(bw)
	w.UTF8 = utf8
	w.Raw("(ENVELOPE ")
	writeEnvelope(w, &p.Envelope, utf8)
	w.Raw(" BODY ")
	writeBodyStructure(w, &p.Root, false, utf8)
	w.Raw(" BODYSTRUCTURE ")
	writeBodyStructure(w, &p.Root, true, utf8)
	w.Raw(")").CRLF()
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	return buf.Bytes()
}

// eachEnvelope calls f on the message's envelope and on those of its
// message/rfc822 and message/global parts.
func eachEnvelope(p *message.Parsed, f func(*message.Envelope)) {
	f(&p.Envelope)
	var walk func(*message.Part)
	walk = func(pt *message.Part) {
		if pt.Envelope != nil {
			f(pt.Envelope)
		}
		for i := range pt.Parts {
			walk(&pt.Parts[i])
		}
	}
	walk(&p.Root)
}

func eachAddress(e *message.Envelope, f func(*message.Address)) {
	for _, l := range [][]message.Address{e.From, e.Sender, e.ReplyTo, e.To, e.Cc, e.Bcc} {
		for i := range l {
			f(&l[i])
		}
	}
}

// Intended difference 1: imapserver wrote NIL for every addr-adl, the
// encoders write the route. The golden comparison runs on envelopes with
// their routes removed; countRoutes tells how many that hid, and
// TestFetchencEnvelope checks routes by hand.
func stripRoutes(p *message.Parsed) (n int) {
	eachEnvelope(p, func(e *message.Envelope) {
		eachAddress(e, func(a *message.Address) {
			if a.Route != "" {
				n++
				a.Route = ""
			}
		})
	})
	return n
}

// Intended difference 2: with UTF8=ACCEPT imapserver still sent the
// subject and display names as RFC 2047 words; the encoders send UTF-8.
// The utf8 golden comparison encodes them beforehand, as imapserver did
// (an encoded word is printable ASCII, which envText leaves alone).
func qEncodeTexts(p *message.Parsed) {
	eachEnvelope(p, func(e *message.Envelope) {
		e.Subject = envText(e.Subject, false)
		eachAddress(e, func(a *message.Address) {
			if !a.Group {
				a.Name = envText(a.Name, false)
			}
		})
	})
}

// Intended difference 3: imapserver wrote ENVELOPE's date reformatted
// from the parsed time; the encoders write the Date field as the message
// has it (message.Envelope.DateText). The golden comparison runs without
// DateText; TestFetchencDateAsWritten checks it by hand.
func dropDateTexts(p *message.Parsed) {
	eachEnvelope(p, func(e *message.Envelope) { e.DateText = "" })
}

// wireGolden rewrites a golden answer for the two differences of the wire
// layer, not of the encoders: a literal holding NUL, which imapserver sent
// and wire.Writer refuses, carries U+FFFD instead (nulFree); a quoted
// string longer than wire.Writer quotes becomes a literal. It reports how
// many strings it rewrote.
func wireGolden(t *testing.T, g []byte, utf8 bool) ([]byte, int) {
	t.Helper()
	var out bytes.Buffer
	bw := bufio.NewWriter(&out)
	w := wire.NewWriter(bw)
	w.UTF8 = utf8
	n := 0
	for i := 0; i < len(g); {
		switch c := g[i]; {
		case c == '"':
			var s []byte
			j := i + 1
			for ; j < len(g) && g[j] != '"'; j++ {
				if g[j] == '\\' {
					j++
				}
				s = append(s, g[j])
			}
			if j >= len(g) {
				t.Fatalf("golden: unterminated quoted string at %d", i)
			}
			if len(s) > 1024 {
				n++
				w.String(string(s))
			} else {
				w.Raw(string(g[i : j+1]))
			}
			i = j + 1
		case c == '{':
			end := bytes.Index(g[i:], []byte("}\r\n"))
			size, err := strconv.Atoi(string(g[i+1 : i+end]))
			if end < 0 || err != nil {
				t.Fatalf("golden: bad literal at %d", i)
			}
			start := i + end + 3
			s := string(g[start : start+size])
			if strings.IndexByte(s, 0) >= 0 {
				n++
				w.String(nulFree(s))
			} else {
				w.Raw("{" + strconv.Itoa(len(s)) + "}\r\n" + s)
			}
			i = start + size
		default:
			w.Raw(string(c))
			i++
		}
	}
	if err := w.Flush(); err != nil {
		t.Fatal(err)
	}
	return out.Bytes(), n
}

// TestFetchencGolden compares the encoders with imapserver's answers for
// the whole corpus, plain and with UTF8=ACCEPT.
func TestFetchencGolden(t *testing.T) {
	corpus := fetchencCorpus(t)
	for name, file := range corpus {
		t.Run(name, func(t *testing.T) {
			raw, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			for _, utf8 := range []bool{false, true} {
				golden := filepath.Join(fetchencDir, name+".golden")
				if utf8 {
					golden = filepath.Join(fetchencDir, name+".utf8.golden")
				}
				want, err := os.ReadFile(golden)
				if errors.Is(err, fs.ErrNotExist) {
					t.Skipf("no golden file for %s: added to the corpus after the reference was recorded", name)
				}
				if err != nil {
					t.Fatal(err)
				}
				want, rewritten := wireGolden(t, want, utf8)
				p := message.Parse(raw)
				routes := stripRoutes(p)
				dropDateTexts(p)
				if utf8 {
					qEncodeTexts(p)
				}
				got := fetchenc(t, p, utf8)
				if !bytes.Equal(got, want) {
					t.Errorf("utf8=%v:\n got %q\nwant %q", utf8, got, want)
				}
				if routes > 0 || rewritten > 0 {
					t.Logf("utf8=%v: %d routes hidden, %d golden strings rewritten", utf8, routes, rewritten)
				}
			}
		})
	}
}

// TestFetchencGoldenDifferences pins where the corpus shows the intended
// differences, so that the golden comparison cannot hide them all.
func TestFetchencGoldenDifferences(t *testing.T) {
	raw, err := os.ReadFile("../testdata/malformed/broken-addresses.eml")
	if err != nil {
		t.Fatal(err)
	}
	p := message.Parse(raw)
	if n := stripRoutes(p); n == 0 {
		t.Errorf("broken-addresses.eml: no source route parsed; the adl difference is untested on the corpus")
	}
	full := string(fetchenc(t, message.Parse(raw), false))
	golden, err := os.ReadFile(filepath.Join(fetchencDir, "malformed-broken-addresses.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if full == string(golden) {
		t.Errorf("broken-addresses.eml: output equals imapserver's, want its routes as addr-adl")
	}
	if !strings.Contains(full, `"@`) {
		t.Errorf("broken-addresses.eml: no addr-adl in %q", full)
	}

	raw, err = os.ReadFile("../testdata/malformed/nul-bytes.eml")
	if err != nil {
		t.Fatal(err)
	}
	golden, err = os.ReadFile(filepath.Join(fetchencDir, "malformed-nul-bytes.golden"))
	if err != nil {
		t.Fatal(err)
	}
	if _, n := wireGolden(t, golden, false); n == 0 {
		t.Errorf("nul-bytes.golden: no literal with NUL; the NUL difference is untested on the corpus")
	}
	if got := fetchenc(t, message.Parse(raw), false); bytes.IndexByte(got, 0) >= 0 {
		t.Errorf("nul-bytes.eml: NUL on the wire: %q", got)
	}

	raw, err = os.ReadFile("../testdata/malformed/8bit-utf8-headers.eml")
	if err != nil {
		t.Fatal(err)
	}
	golden, err = os.ReadFile(filepath.Join(fetchencDir, "malformed-8bit-utf8-headers.utf8.golden"))
	if err != nil {
		t.Fatal(err)
	}
	got := string(fetchenc(t, message.Parse(raw), true))
	if got == string(golden) || strings.Contains(got, "=?utf-8?") {
		t.Errorf("8bit-utf8-headers.eml with utf8: %q, want UTF-8 text, not imapserver's encoded words %q", got, golden)
	}
}

// encode runs f on a fresh Writer and returns what it wrote.
func encode(t *testing.T, utf8 bool, f func(w *wire.Writer)) string {
	t.Helper()
	var buf bytes.Buffer
	bw := bufio.NewWriter(&buf)
	w := wire.NewWriter(bw)
	w.UTF8 = utf8
	f(w)
	if err := w.Flush(); err != nil {
		t.Fatalf("Flush() = %v", err)
	}
	return buf.String()
}

func TestFetchencEnvelope(t *testing.T) {
	terry := []message.Address{{Name: "Terry Gray", Mailbox: "gray", Host: "cac.washington.edu"}}
	pdt := time.FixedZone("PDT", -7*3600)
	tests := []struct {
		name string
		env  message.Envelope
		// utf8 is both the client's UTF8=ACCEPT and the Writer's.
		utf8 bool
		want string
	}{{
		// RFC 3501 §7.4.2's example, without the date's "(PDT)" comment.
		name: "RFC 3501 example",
		env: message.Envelope{
			Date:    time.Date(1996, 7, 17, 2, 23, 25, 0, pdt),
			Subject: "IMAP4rev1 WG mtg summary and minutes",
			From:    terry, Sender: terry, ReplyTo: terry,
			To: []message.Address{{Mailbox: "imap", Host: "cac.washington.edu"}},
			Cc: []message.Address{
				{Mailbox: "minutes", Host: "CNRI.Reston.VA.US"},
				{Name: "John Klensin", Mailbox: "KLENSIN", Host: "MIT.EDU"},
			},
			MessageID: "B27397-0100000@cac.washington.edu",
		},
		want: `("Wed, 17 Jul 1996 02:23:25 -0700" "IMAP4rev1 WG mtg summary and minutes" ` +
			`(("Terry Gray" NIL "gray" "cac.washington.edu")) (("Terry Gray" NIL "gray" "cac.washington.edu")) ` +
			`(("Terry Gray" NIL "gray" "cac.washington.edu")) ((NIL NIL "imap" "cac.washington.edu")) ` +
			`((NIL NIL "minutes" "CNRI.Reston.VA.US") ("John Klensin" NIL "KLENSIN" "MIT.EDU")) NIL NIL ` +
			`"<B27397-0100000@cac.washington.edu>")`,
	}, {
		name: "empty",
		want: `(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)`,
	}, {
		// RFC 9051 §7.5.2: sender and reply-to default to from.
		name: "sender and reply-to from from",
		env: message.Envelope{
			From:      []message.Address{{Mailbox: "a", Host: "x"}},
			InReplyTo: []string{"1@x", "2@x"},
		},
		want: `(NIL NIL ((NIL NIL "a" "x")) ((NIL NIL "a" "x")) ((NIL NIL "a" "x")) NIL NIL NIL "<1@x> <2@x>" NIL)`,
	}, {
		// RFC 9051 §7.5.2 addr-adl; imapserver wrote NIL.
		name: "source route",
		env: message.Envelope{From: []message.Address{
			{Name: "Joe", Route: "@route.example,@b.example", Mailbox: "joe", Host: "example.com"},
		}},
		want: `(NIL NIL (("Joe" "@route.example,@b.example" "joe" "example.com")) ` +
			`(("Joe" "@route.example,@b.example" "joe" "example.com")) ` +
			`(("Joe" "@route.example,@b.example" "joe" "example.com")) NIL NIL NIL NIL NIL)`,
	}, {
		name: "group, missing mailbox and domain",
		env: message.Envelope{To: []message.Address{
			{Group: true, Name: "Friends"},
			{Mailbox: "a", Host: "x"},
			{GroupEnd: true},
			{Group: true},
			{GroupEnd: true},
			{Mailbox: "MAILER-DAEMON"},
			{Host: "x"},
		}},
		want: `(NIL NIL NIL NIL NIL ((NIL NIL "Friends" NIL) (NIL NIL "a" "x") (NIL NIL NIL NIL) ` +
			`(NIL NIL "undisclosed-recipients" NIL) (NIL NIL NIL NIL) ` +
			`(NIL NIL "MAILER-DAEMON" "MISSING_DOMAIN") (NIL NIL "MISSING_MAILBOX" "x")) NIL NIL NIL NIL)`,
	}, {
		name: "non-ASCII without utf8: encoded words",
		env: message.Envelope{
			Subject: "Grüße",
			From:    []message.Address{{Name: "Jörg", Mailbox: "j", Host: "x"}},
		},
		want: `(NIL "=?utf-8?q?Gr=C3=BC=C3=9Fe?=" (("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x")) ` +
			`(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x")) (("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x")) NIL NIL NIL NIL NIL)`,
	}, {
		// RFC 6855 §3: UTF-8 in quoted strings once UTF8=ACCEPT is on.
		name: "non-ASCII with utf8: UTF-8",
		env: message.Envelope{
			Subject: "Grüße",
			From:    []message.Address{{Name: "Jörg", Mailbox: "jörg", Host: "bücher.example"}},
		},
		utf8: true,
		want: `(NIL "Grüße" (("Jörg" NIL "jörg" "bücher.example")) ` +
			`(("Jörg" NIL "jörg" "bücher.example")) (("Jörg" NIL "jörg" "bücher.example")) NIL NIL NIL NIL NIL)`,
	}, {
		// Decoded from =?utf-8?q?a=0D=0Ab?=: never a quoted string.
		name: "CRLF in the subject without utf8",
		env:  message.Envelope{Subject: "a\r\nb"},
		want: `(NIL "=?utf-8?q?a=0D=0Ab?=" NIL NIL NIL NIL NIL NIL NIL NIL)`,
	}, {
		name: "CRLF in the subject with utf8: a literal",
		env:  message.Envelope{Subject: "ä\r\nb"},
		utf8: true,
		want: "(NIL {5}\r\nä\r\nb NIL NIL NIL NIL NIL NIL NIL NIL)",
	}, {
		name: "NUL in the subject without utf8",
		env:  message.Envelope{Subject: "a\x00b"},
		want: `(NIL "=?utf-8?q?a=00b?=" NIL NIL NIL NIL NIL NIL NIL NIL)`,
	}, {
		// No string may carry NUL (RFC 9051 §4.3): still an encoded word.
		name: "NUL in the subject with utf8",
		env:  message.Envelope{Subject: "ä\x00b"},
		utf8: true,
		want: `(NIL "=?utf-8?q?=C3=A4=00b?=" NIL NIL NIL NIL NIL NIL NIL NIL)`,
	}, {
		name: "NUL in an address: U+FFFD in a literal",
		env:  message.Envelope{From: []message.Address{{Mailbox: "a\x00b", Host: "x"}}},
		want: "(NIL NIL ((NIL NIL {5}\r\na\uFFFDb \"x\")) ((NIL NIL {5}\r\na\uFFFDb \"x\")) " +
			"((NIL NIL {5}\r\na\uFFFDb \"x\")) NIL NIL NIL NIL NIL)",
	}, {
		name: "quote and backslash",
		env:  message.Envelope{Subject: `say "hi" \o/`},
		want: `(NIL "say \"hi\" \\o/" NIL NIL NIL NIL NIL NIL NIL NIL)`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := encode(t, tc.utf8, func(w *wire.Writer) { writeEnvelope(w, &tc.env, tc.utf8) })
			if got != tc.want {
				t.Errorf("writeEnvelope(utf8=%v) =\n%q\nwant\n%q", tc.utf8, got, tc.want)
			}
		})
	}
}

// TestFetchencEnvelopeParsed runs the encoders on messages through
// message.Parse, as the session will.
func TestFetchencEnvelopeParsed(t *testing.T) {
	tests := []struct {
		name, msg string
		utf8      bool
		want      string
	}{{
		name: "source route",
		msg:  "From: Joe <@route.example,@b.example:joe@example.com>\r\n\r\n",
		want: `(NIL NIL (("Joe" "@route.example,@b.example" "joe" "example.com")) ` +
			`(("Joe" "@route.example,@b.example" "joe" "example.com")) ` +
			`(("Joe" "@route.example,@b.example" "joe" "example.com")) NIL NIL NIL NIL NIL)`,
	}, {
		name: "encoded CRLF in the subject, utf8",
		msg:  "Subject: =?utf-8?q?a=0D=0Ab?=\r\n\r\n",
		utf8: true,
		want: "(NIL {4}\r\na\r\nb NIL NIL NIL NIL NIL NIL NIL NIL)",
	}, {
		name: "encoded CRLF in the subject",
		msg:  "Subject: =?utf-8?q?a=0D=0Ab?=\r\n\r\n",
		want: `(NIL "=?utf-8?q?a=0D=0Ab?=" NIL NIL NIL NIL NIL NIL NIL NIL)`,
	}, {
		name: "encoded NUL in the subject, utf8",
		msg:  "Subject: =?utf-8?q?a=00b?=\r\n\r\n",
		utf8: true,
		want: `(NIL "=?utf-8?q?a=00b?=" NIL NIL NIL NIL NIL NIL NIL NIL)`,
	}, {
		name: "RFC 2047 subject, utf8",
		msg:  "Subject: =?iso-8859-1?q?H=F3la!?=\r\n\r\n",
		utf8: true,
		want: `(NIL "Hóla!" NIL NIL NIL NIL NIL NIL NIL NIL)`,
	}, {
		name: "RFC 2047 subject",
		msg:  "Subject: =?iso-8859-1?q?H=F3la!?=\r\n\r\n",
		want: `(NIL "=?utf-8?q?H=C3=B3la!?=" NIL NIL NIL NIL NIL NIL NIL NIL)`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p := message.Parse([]byte(tc.msg))
			got := encode(t, tc.utf8, func(w *wire.Writer) { writeEnvelope(w, &p.Envelope, tc.utf8) })
			if got != tc.want {
				t.Errorf("writeEnvelope(utf8=%v) =\n%q\nwant\n%q", tc.utf8, got, tc.want)
			}
		})
	}
}

// leaf is a Part with a body of size bytes.
func leaf(typ, sub string, size, lines int64) message.Part {
	return message.Part{Type: typ, Subtype: sub, Encoding: "7bit", End: size, Lines: lines}
}

func TestFetchencBodyStructure(t *testing.T) {
	// RFC 3501 §7.4.2's multipart example; message.Part's types,
	// subtypes, parameter names and encodings are lower case.
	plain := leaf("text", "plain", 1152, 23)
	plain.Params = map[string]string{"charset": "US-ASCII"}
	diff := leaf("text", "plain", 4554, 73)
	diff.Params = map[string]string{"charset": "US-ASCII", "name": "cc.diff"}
	diff.ID = "<960723163407.20117h@cac.washington.edu>"
	diff.Description = "Compiler diff"
	diff.Encoding = "base64"
	rfc3501 := message.Part{Type: "multipart", Subtype: "mixed", Parts: []message.Part{plain, diff}}

	attach := leaf("application", "pdf", 10, 0)
	attach.Encoding = ""
	attach.Disposition = "attachment"
	attach.DispositionParams = map[string]string{"filename": "a b.pdf"}
	attach.Language = []string{"en", "de"}
	attach.Location = "http://x/a.pdf"
	attach.MD5 = "Q2hlY2sgSW50ZWdyaXR5IQ=="
	mixed := message.Part{
		Type: "multipart", Subtype: "mixed", Params: map[string]string{"boundary": "b"},
		Disposition: "inline", Language: []string{"fr"}, Location: "loc",
		Parts: []message.Part{leaf("text", "html", 3, 1), attach},
	}

	inner := leaf("text", "plain", 2, 1)
	rfc822 := message.Part{
		Type: "message", Subtype: "rfc822", Encoding: "7bit", End: 40, Lines: 3,
		Envelope: &message.Envelope{Subject: "Grüße", From: []message.Address{{Name: "Jörg", Mailbox: "j", Host: "x"}}},
		Parts:    []message.Part{inner},
	}
	global := rfc822
	global.Subtype = "global"

	tests := []struct {
		name     string
		part     message.Part
		extended bool
		utf8     bool
		want     string
	}{{
		name: "RFC 3501 example, BODY",
		part: rfc3501,
		want: `(("text" "plain" ("charset" "US-ASCII") NIL NIL "7bit" 1152 23)` +
			`("text" "plain" ("charset" "US-ASCII" "name" "cc.diff") "<960723163407.20117h@cac.washington.edu>" ` +
			`"Compiler diff" "base64" 4554 73) "mixed")`,
	}, {
		name:     "RFC 3501 example, BODYSTRUCTURE",
		part:     rfc3501,
		extended: true,
		want: `(("text" "plain" ("charset" "US-ASCII") NIL NIL "7bit" 1152 23 NIL NIL NIL NIL)` +
			`("text" "plain" ("charset" "US-ASCII" "name" "cc.diff") "<960723163407.20117h@cac.washington.edu>" ` +
			`"Compiler diff" "base64" 4554 73 NIL NIL NIL NIL) "mixed" NIL NIL NIL NIL)`,
	}, {
		name:     "extension data",
		part:     mixed,
		extended: true,
		want: `(("text" "html" NIL NIL NIL "7bit" 3 1 NIL NIL NIL NIL)` +
			`("application" "pdf" NIL NIL NIL "7bit" 10 NIL ("attachment" ("filename" "a b.pdf")) ("en" "de") "http://x/a.pdf") ` +
			`"mixed" ("boundary" "b") ("inline" NIL) ("fr") "loc")`,
	}, {
		name: "extension data dropped for BODY",
		part: mixed,
		want: `(("text" "html" NIL NIL NIL "7bit" 3 1)("application" "pdf" NIL NIL NIL "7bit" 10) "mixed")`,
	}, {
		name:     "message/rfc822",
		part:     rfc822,
		extended: true,
		want: `("message" "rfc822" NIL NIL NIL "7bit" 40 (NIL "=?utf-8?q?Gr=C3=BC=C3=9Fe?=" ` +
			`(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x")) (("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x")) ` +
			`(("=?utf-8?q?J=C3=B6rg?=" NIL "j" "x")) NIL NIL NIL NIL NIL) ` +
			`("text" "plain" NIL NIL NIL "7bit" 2 1 NIL NIL NIL NIL) 3 NIL NIL NIL NIL)`,
	}, {
		name: "message/global, utf8, BODY",
		part: global,
		utf8: true,
		want: `("message" "global" NIL NIL NIL "7bit" 40 (NIL "Grüße" (("Jörg" NIL "j" "x")) ` +
			`(("Jörg" NIL "j" "x")) (("Jörg" NIL "j" "x")) NIL NIL NIL NIL NIL) ` +
			`("text" "plain" NIL NIL NIL "7bit" 2 1) 3)`,
	}, {
		name: "message/rfc822 without its message: opaque",
		part: message.Part{Type: "message", Subtype: "rfc822", Params: map[string]string{"x": "y"},
			Encoding: "base64", End: 8, Lines: 1},
		extended: true,
		want:     `("application" "octet-stream" NIL NIL NIL "base64" 8 NIL NIL NIL NIL)`,
	}, {
		name: "multipart without parts: opaque",
		part: message.Part{Type: "multipart", Subtype: "mixed", Params: map[string]string{"boundary": "b"},
			Encoding: "7bit", End: 5, Lines: 2},
		want: `("application" "octet-stream" NIL NIL NIL "7bit" 5)`,
	}, {
		name: "param value with CRLF, NUL and non-ASCII",
		part: message.Part{Type: "text", Subtype: "plain", Encoding: "7bit",
			Params: map[string]string{"a": "x\r\ny", "b": "n\x00l", "c": "ü"}},
		want: "(\"text\" \"plain\" (\"a\" {4}\r\nx\r\ny \"b\" {5}\r\nn\uFFFDl \"c\" {2}\r\nü) NIL NIL \"7bit\" 0 0)",
	}, {
		name: "param value non-ASCII, utf8",
		part: message.Part{Type: "text", Subtype: "plain", Encoding: "7bit",
			Params: map[string]string{"c": "ü"}},
		utf8: true,
		want: `("text" "plain" ("c" "ü") NIL NIL "7bit" 0 0)`,
	}}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got := encode(t, tc.utf8, func(w *wire.Writer) { writeBodyStructure(w, &tc.part, tc.extended, tc.utf8) })
			if got != tc.want {
				t.Errorf("writeBodyStructure(extended=%v, utf8=%v) =\n%q\nwant\n%q", tc.extended, tc.utf8, got, tc.want)
			}
		})
	}
}

// TestFetchencWireGolden checks the golden rewriter on the cases the
// corpus may not reach.
func TestFetchencWireGolden(t *testing.T) {
	long := strings.Repeat("x", 1025)
	tests := []struct {
		name, golden, want string
		utf8               bool
		n                  int
	}{
		{"short quoted", `("a\"b" {3}` + "\r\nabc)", `("a\"b" {3}` + "\r\nabc)", false, 0},
		{"long quoted", `("` + long + `")`, "({1025}\r\n" + long + ")", false, 1},
		{"NUL literal", "({3}\r\na\x00b)", "({5}\r\na\uFFFDb)", false, 1},
		{"NUL literal, utf8", "({3}\r\na\x00b)", "(\"a\uFFFDb\")", true, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, n := wireGolden(t, []byte(tc.golden), tc.utf8)
			if string(got) != tc.want || n != tc.n {
				t.Errorf("wireGolden(%q) = %q, %d, want %q, %d", tc.golden, got, n, tc.want, tc.n)
			}
		})
	}
}

// ENVELOPE's date is the Date field as written (RFC 9051 §7.5.2: its
// example keeps "(PDT)"), not reformatted from the parsed time, and
// even when it cannot be parsed.
func TestFetchencDateAsWritten(t *testing.T) {
	for _, date := range []string{
		"Mon, 2 Jan 2006 15:04:05 -0700 (MST)",
		"2 Jan 06 15:04 GMT",
		"the day after tomorrow",
	} {
		p := message.Parse([]byte("Date: " + date + "\r\nSubject: d\r\n\r\nbody\r\n"))
		got := string(fetchenc(t, p, false))
		if want := `(ENVELOPE ("` + date + `" "d" `; !strings.HasPrefix(got, want) {
			t.Errorf("ENVELOPE for Date: %s = %s, want it to start %s", date, got, want)
		}
	}
}
