package message

import (
	"bytes"
	"errors"
	"io"
	"mime"
	netmail "net/mail"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
	// Registers the charsets beyond UTF-8/ASCII/Latin-1 for RFC 2047 words.
	_ "github.com/emersion/go-message/charset"
	"github.com/emersion/go-message/mail"
)

// Limits that bound Parse's time and memory on hostile input: each nesting
// level scans its share of the message once, so at most maxDepth passes.
const (
	// maxDepth is the deepest MIME nesting (multipart or message/rfc822
	// levels) Parse descends into; an entity at this depth is an opaque leaf.
	maxDepth = 50
	// maxParts bounds the number of Parts in one message. Once reached, the
	// remaining delimiters of the multipart being split are ignored, as if
	// they were epilogue.
	maxParts = 10000
	// maxListLen bounds the entries of each address list, msg-id list and
	// language list; later ones are dropped.
	maxListLen = 10000
	// maxParamsLen bounds the bytes of a Content-Type or
	// Content-Disposition value that are parsed for parameters.
	maxParamsLen = 64 << 10
	// maxDateLen bounds the Date values worth parsing.
	maxDateLen = 1 << 10
)

// Address is one address from an address-list header (RFC 5322 §3.4).
//
// An ordinary address has Group and GroupEnd false. An RFC 5322 group
// ("Friends: a@example.com, b@example.com;") is represented as IMAP ENVELOPE
// does (RFC 9051 §7.5.2): a start marker with Group set and Name holding the
// group's display name, the member addresses, then an end marker with only
// GroupEnd set. go-imap encodes the start marker as Mailbox = group name and
// Host = "" (imap.Address.IsGroupStart), so imapd must translate.
//
// Mailbox or Host may be empty in an ordinary address when the header lacks
// them ("From: MAILER-DAEMON"); IMAP reads a NIL host as group syntax, so
// imapd must substitute a placeholder there.
type Address struct {
	Name string `json:"name,omitempty"` // display name, RFC 2047-decoded to UTF-8
	// Route is an obsolete source route (RFC 5322 §4.4 obs-route, RFC 822
	// route-addr) without its colon, such as "@route.example" or
	// "@a.example,@b.example": ENVELOPE's addr-adl (RFC 9051 §7.5.2),
	// "" (NIL) when the address has none. go-imap's imap.Address has no
	// field for it, so imapd's ENVELOPE under imapserver writes NIL;
	// imapd's own wire layer (issue 14) writes it from here.
	Route    string `json:"route,omitempty"`
	Mailbox  string `json:"mailbox,omitempty"` // local part, unquoted
	Host     string `json:"host,omitempty"`    // domain
	Group    bool   `json:"group,omitempty"`   // start of a group named Name
	GroupEnd bool   `json:"group_end,omitempty"`
}

// Text is the address on one line as ENVELOPE presents it (RFC 9051
// §7.5.2), for SEARCH FROM, TO, CC and BCC to compare (§6.4.4): "Name
// <mailbox@host>", or "mailbox@host" without a display name; the name
// decoded and unquoted, comments gone. A group's start marker is the
// group's name, its end marker "".
func (a Address) Text() string {
	if a.Group || a.GroupEnd {
		return a.Name
	}
	spec := a.Mailbox
	if a.Host != "" {
		spec += "@" + a.Host
	}
	if a.Name == "" {
		return spec
	}
	return a.Name + " <" + spec + ">"
}

// Envelope is the message's envelope as IMAP ENVELOPE presents it (RFC 9051
// §7.5.2), decoded: strings are UTF-8, never RFC 2047 encoded words, and
// invalid UTF-8 in the header is replaced by U+FFFD.
//
// Sender and ReplyTo are never empty when From is not: RFC 9051 §7.5.2 says
// the server sets them to From when the header fields are absent or empty.
type Envelope struct {
	Date time.Time `json:"date,omitzero"` // zero if missing or unparsable
	// DateText is the Date field as written, unfolded and trimmed: what
	// ENVELOPE shows (RFC 9051 §7.5.2 takes the envelope's fields from
	// the header; its example keeps a "(PDT)" comment). Empty if the
	// field is missing, and in envelopes stored before it existed.
	DateText  string    `json:"date_text,omitempty"`
	Subject   string    `json:"subject,omitempty"` // RFC 2047-decoded to UTF-8
	From      []Address `json:"from,omitempty"`
	Sender    []Address `json:"sender,omitempty"`
	ReplyTo   []Address `json:"reply_to,omitempty"`
	To        []Address `json:"to,omitempty"`
	Cc        []Address `json:"cc,omitempty"`
	Bcc       []Address `json:"bcc,omitempty"`
	InReplyTo []string  `json:"in_reply_to,omitempty"` // msg-ids without angle brackets
	MessageID string    `json:"message_id,omitempty"`  // without angle brackets
	// References holds the References field's msg-ids without angle
	// brackets (RFC 5322 §3.6.4), for THREAD=REFERENCES (RFC 5256 §2.2);
	// ENVELOPE does not show it. It is stored as JSON null when the
	// field is absent, never left out, so that a stored envelope
	// written before the field existed (no "references" key) can be told
	// from one without References: for those, HeaderReferences reads
	// the stored header instead.
	References []string `json:"references"`
}

// Part is one MIME entity of a message, with byte offsets into the raw
// message so that BODY[n.HEADER], BODY[n.MIME], BODY[n.TEXT] and BODY[n]
// (RFC 9051 §6.4.5) are served by slicing the stored bytes:
// raw[HeaderStart:BodyStart] is the header including its terminating blank
// line (when there is one) and raw[BodyStart:End] is the body.
//
// Offsets always satisfy HeaderStart <= BodyStart <= End <= len(raw), and
// every child lies within its parent's body.
//
// A multipart Part has its children in Parts, except that it has none when
// its boundary parameter is missing, no delimiter line was found, or it sits
// at the nesting limit; RFC 9051 requires at least one body in a multipart,
// so imapd must then present it differently. A message/rfc822 or
// message/global Part has Envelope and exactly one child (the encapsulated
// message's root), except at the nesting limit or when it is base64 or
// quoted-printable encoded (RFC 2046 §5.2.1 forbids that for message/rfc822;
// RFC 6532 §3.5 allows it for message/global): then it is an opaque leaf.
//
// String fields hold valid UTF-8.
type Part struct {
	// Type and Subtype are lower-case. Without a (valid) Content-Type they
	// default to text/plain with Params {"charset": "us-ascii"} (RFC 2045
	// §5.2), or to message/rfc822 inside multipart/digest (RFC 2046 §5.1.5).
	Type    string `json:"type"`
	Subtype string `json:"subtype"`
	// Params holds the Content-Type parameters: keys lower-case, values with
	// RFC 2231 continuations and charsets (and, as senders misuse them,
	// RFC 2047 encoded words) decoded to UTF-8. Nil when there are none.
	Params map[string]string `json:"params,omitempty"`
	// ID, Description, Location and MD5 are the unfolded, trimmed values of
	// Content-ID, Content-Description, Content-Location and Content-MD5, not
	// decoded: IMAP sends them as they appear (RFC 9051 §7.5.2 body-fld-id,
	// body-fld-desc).
	ID          string `json:"id,omitempty"`
	Description string `json:"desc,omitempty"`
	// Encoding is the Content-Transfer-Encoding, lower-case; "7bit" when
	// absent (RFC 2045 §6.1).
	Encoding string `json:"enc"`
	// Disposition is the Content-Disposition value, lower-case, "" when
	// absent; DispositionParams are its parameters, decoded like Params.
	Disposition       string            `json:"disp,omitempty"`
	DispositionParams map[string]string `json:"disp_params,omitempty"`
	// Language holds the Content-Language tags (RFC 3282) in order.
	Language []string `json:"lang,omitempty"`
	Location string   `json:"loc,omitempty"`
	MD5      string   `json:"md5,omitempty"`
	// HeaderStart is the offset of the part's header block; 0 for the root.
	HeaderStart int64 `json:"hdr,omitempty"`
	// BodyStart is the offset of the first byte after the blank line that
	// ends the header, or End when the header has no blank line.
	BodyStart int64 `json:"body"`
	// End is the offset one past the body's last byte. The line break before
	// a boundary delimiter belongs to the delimiter (RFC 2046 §5.1.1) and is
	// excluded.
	End int64 `json:"end"`
	// Lines is the number of lines in the body, a final line without a line
	// break included (RFC 9051 body-fld-lines). It is set for text/*,
	// message/rfc822, message/global and childless multipart Parts, else 0.
	Lines int64 `json:"lines,omitempty"`
	// Envelope is the encapsulated message's envelope, for message/rfc822
	// and message/global Parts that have a child.
	Envelope *Envelope `json:"env,omitempty"`
	// Parts are the children: multipart body parts in order, without
	// preamble and epilogue, or the single encapsulated message.
	Parts []Part `json:"parts,omitempty"`
}

// Parsed is what Parse extracts from a raw message. It is a plain value
// meant to be stored as JSON; nothing in it refers back to the raw bytes.
type Parsed struct {
	Envelope Envelope `json:"env"`
	Root     Part     `json:"root"`
}

// Parse parses raw (an RFC 5322 message, CRLF or bare-LF line endings) into
// its envelope and MIME structure. It does not copy the body: each nesting
// level scans its own bytes once, and only header values are decoded.
//
// It never fails and never panics: malformed input (bad MIME, missing
// boundaries, 8-bit or garbage headers, NUL bytes, no header/body separator,
// bad RFC 2047, unknown charsets, deep nesting) yields a best-effort result,
// so mail is never rejected because of bad MIME. Entities nested 50 levels
// deep are opaque leaves, a message has at most 10000 Parts, and each
// address, msg-id or language list keeps its first 10000 entries.
//
// A header without a blank line after it makes the whole entity header, with
// an empty body. The first occurrence of a repeated header field wins; lines
// that are neither fields nor continuations are ignored. Parse does not
// retain raw and is safe for concurrent use.
func Parse(raw []byte) (parsed *Parsed) {
	defer func() {
		// Defense in depth: a bug in field decoding, ours or a library's,
		// must not crash delivery. The fallback keeps the body reachable.
		if recover() != nil {
			parsed = fallbackParse(raw)
		}
	}()
	return parse(raw)
}

// parse is Parse without the recover, so that tests and fuzzing see panics.
func parse(raw []byte) *Parsed {
	p := parser{raw: raw}
	out := new(Parsed)
	out.Root = p.entity(0, len(raw), 0, false, &out.Envelope)
	return out
}

// fallbackParse is the result of Parse when parsing panicked: a text/plain
// leaf split at the first blank line, with an empty envelope.
func fallbackParse(raw []byte) *Parsed {
	bodyStart := len(raw)
	for i := 0; i < len(raw); {
		if raw[i] == '\n' {
			bodyStart = i + 1
			break
		}
		if raw[i] == '\r' && i+1 < len(raw) && raw[i+1] == '\n' {
			bodyStart = i + 2
			break
		}
		nl := bytes.IndexByte(raw[i:], '\n')
		if nl < 0 {
			break
		}
		i += nl + 1
	}
	return &Parsed{Root: Part{
		Type: "text", Subtype: "plain", Params: map[string]string{"charset": "us-ascii"},
		Encoding: "7bit", BodyStart: int64(bodyStart), End: int64(len(raw)),
		Lines: countLines(raw[bodyStart:]),
	}}
}

// Shift returns a copy of p with every offset moved by n bytes, for a stored
// copy of the message with n bytes of trace header fields prepended: the
// root's HeaderStart is left unchanged, since the prepended fields join the
// root header. The Part tree is copied; Envelopes, Params, DispositionParams
// and Language are shared with p, so neither must be modified afterwards.
func (p *Parsed) Shift(n int64) *Parsed {
	q := &Parsed{Envelope: p.Envelope, Root: shiftPart(p.Root, n)}
	q.Root.HeaderStart = p.Root.HeaderStart
	return q
}

func shiftPart(pt Part, n int64) Part {
	pt.HeaderStart += n
	pt.BodyStart += n
	pt.End += n
	if pt.Parts != nil {
		kids := make([]Part, len(pt.Parts))
		for i := range pt.Parts {
			kids[i] = shiftPart(pt.Parts[i], n)
		}
		pt.Parts = kids
	}
	return pt
}

// parser holds the state of one Parse call.
type parser struct {
	raw    []byte
	nparts int
}

// entity parses the MIME entity raw[start:end] at nesting depth depth. If env
// is non-nil, the entity is a message whose envelope is stored there.
func (p *parser) entity(start, end, depth int, inDigest bool, env *Envelope) Part {
	p.nparts++
	var h header
	bodyStart := p.readHeader(start, end, &h)
	pt := Part{HeaderStart: int64(start), BodyStart: int64(bodyStart), End: int64(end)}
	p.fillFields(&pt, &h, inDigest)
	if env != nil {
		p.fillEnvelope(env, &h)
	}

	body := p.raw[bodyStart:end]
	switch pt.Type {
	case "multipart":
		// RFC 2046 §5.1.1: delimiters need the boundary parameter.
		boundary := strings.TrimRight(pt.Params["boundary"], " \t")
		if boundary != "" && depth < maxDepth && p.nparts < maxParts {
			pt.Parts = p.multipart(bodyStart, end, boundary, depth+1, pt.Subtype == "digest")
		}
		if len(pt.Parts) == 0 {
			pt.Parts = nil
			pt.Lines = countLines(body)
		}
	case "message":
		if pt.Subtype != "rfc822" && pt.Subtype != "global" {
			break
		}
		pt.Lines = countLines(body)
		if depth >= maxDepth || p.nparts >= maxParts ||
			pt.Encoding == "base64" || pt.Encoding == "quoted-printable" {
			break
		}
		pt.Envelope = new(Envelope)
		pt.Parts = []Part{p.entity(bodyStart, end, depth+1, false, pt.Envelope)}
	case "text":
		pt.Lines = countLines(body)
	}
	return pt
}

// multipart splits the multipart body raw[start:end] at the delimiter lines
// of boundary (RFC 2046 §5.1.1) and parses each body part at depth.
func (p *parser) multipart(start, end int, boundary string, depth int, digest bool) []Part {
	raw := p.raw
	delim := []byte("--" + boundary)
	var parts []Part
	partStart := -1 // -1 while in the preamble
	for pos := start; pos < end; {
		i := bytes.Index(raw[pos:end], delim)
		if i < 0 {
			break
		}
		i += pos
		pos = i + 1
		if i > start && raw[i-1] != '\n' {
			continue // not at a line start
		}
		j := i + len(delim)
		isClose := j+1 < end && raw[j] == '-' && raw[j+1] == '-'
		if isClose {
			j += 2
		}
		for j < end && (raw[j] == ' ' || raw[j] == '\t') {
			j++ // transport-padding
		}
		next := end
		switch {
		case j == end:
		case raw[j] == '\n':
			next = j + 1
		case raw[j] == '\r' && j+1 < end && raw[j+1] == '\n':
			next = j + 2
		case isClose:
			// Junk after a close delimiter: still the close; the rest is
			// epilogue anyway.
		default:
			continue // "--boundaryX": a longer boundary or plain text
		}

		if partStart >= 0 {
			// The line break before the delimiter belongs to it.
			pe := i
			if pe > partStart && raw[pe-1] == '\n' {
				pe--
				if pe > partStart && raw[pe-1] == '\r' {
					pe--
				}
			}
			parts = append(parts, p.entity(partStart, pe, depth, digest, nil))
		}
		if isClose || p.nparts >= maxParts {
			return parts // the rest is epilogue
		}
		partStart = next
		pos = next
	}
	if partStart >= 0 {
		// No close delimiter: the last part runs to the end.
		parts = append(parts, p.entity(partStart, end, depth, digest, nil))
	}
	return parts
}

// countLines counts the lines of b, a final line without a line break
// included.
func countLines(b []byte) int64 {
	n := int64(bytes.Count(b, []byte{'\n'}))
	if len(b) > 0 && b[len(b)-1] != '\n' {
		n++
	}
	return n
}

// Header fields Parse looks at; the rest are skipped without allocating.
const (
	fContentType = iota
	fContentTransferEncoding
	fContentID
	fContentDescription
	fContentDisposition
	fContentLanguage
	fContentLocation
	fContentMD5
	fDate
	fSubject
	fFrom
	fSender
	fReplyTo
	fTo
	fCc
	fBcc
	fInReplyTo
	fMessageID
	fReferences
	numFields
)

// fieldIndex returns the f… constant for a header field name, or -1.
func fieldIndex(name []byte) int {
	switch len(name) {
	case 2:
		switch {
		case equalFold(name, "to"):
			return fTo
		case equalFold(name, "cc"):
			return fCc
		}
	case 3:
		if equalFold(name, "bcc") {
			return fBcc
		}
	case 4:
		switch {
		case equalFold(name, "date"):
			return fDate
		case equalFold(name, "from"):
			return fFrom
		}
	case 6:
		if equalFold(name, "sender") {
			return fSender
		}
	case 7:
		if equalFold(name, "subject") {
			return fSubject
		}
	case 8:
		if equalFold(name, "reply-to") {
			return fReplyTo
		}
	case 10:
		switch {
		case equalFold(name, "content-id"):
			return fContentID
		case equalFold(name, "message-id"):
			return fMessageID
		case equalFold(name, "references"):
			return fReferences
		}
	case 11:
		switch {
		case equalFold(name, "content-md5"):
			return fContentMD5
		case equalFold(name, "in-reply-to"):
			return fInReplyTo
		}
	case 12:
		if equalFold(name, "content-type") {
			return fContentType
		}
	case 16:
		switch {
		case equalFold(name, "content-language"):
			return fContentLanguage
		case equalFold(name, "content-location"):
			return fContentLocation
		}
	case 19:
		switch {
		case equalFold(name, "content-description"):
			return fContentDescription
		case equalFold(name, "content-disposition"):
			return fContentDisposition
		}
	case 25:
		if equalFold(name, "content-transfer-encoding") {
			return fContentTransferEncoding
		}
	}
	return -1
}

// equalFold reports whether b equals the lower-case ASCII string s, ignoring
// ASCII case.
func equalFold(b []byte, s string) bool {
	if len(b) != len(s) {
		return false
	}
	for i := range b {
		c := b[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		if c != s[i] {
			return false
		}
	}
	return true
}

// header records where the first occurrence of each field's value lies.
type header struct {
	f [numFields]struct {
		start, end int
		ok         bool
	}
}

// set records raw[start:end] as the value of field f unless it already has
// one (the first occurrence wins).
func (h *header) set(f, start, end int) {
	if f >= 0 && !h.f[f].ok {
		h.f[f].start, h.f[f].end, h.f[f].ok = start, end, true
	}
}

// get returns field f's value unfolded and trimmed, and whether it is present.
func (h *header) get(raw []byte, f int) (string, bool) {
	v := h.f[f]
	if !v.ok {
		return "", false
	}
	return unfold(raw[v.start:v.end]), true
}

// readHeader scans the header block starting at raw[start], up to end,
// recording the fields Parse uses, and returns the body's start: the offset
// after the first empty line, or end when there is none (RFC 5322 §2.1).
// Lines that are neither fields nor continuations are skipped.
func (p *parser) readHeader(start, end int, h *header) int {
	raw := p.raw
	cur, vs := -1, 0 // field being collected and its value's start
	for i := start; i < end; {
		lineEnd := end
		if nl := bytes.IndexByte(raw[i:end], '\n'); nl >= 0 {
			lineEnd = i + nl + 1
		}
		c := raw[i]
		if c == '\n' || (c == '\r' && lineEnd-i == 2 && raw[i+1] == '\n') {
			h.set(cur, vs, i)
			return lineEnd
		}
		if c == ' ' || c == '\t' {
			i = lineEnd // continuation (RFC 5322 §2.2.3)
			continue
		}
		h.set(cur, vs, i)
		cur = -1
		if colon := bytes.IndexByte(raw[i:lineEnd], ':'); colon > 0 {
			cur = fieldIndex(bytes.TrimRight(raw[i:i+colon], " \t"))
			vs = i + colon + 1
		}
		i = lineEnd
	}
	h.set(cur, vs, end)
	return end
}

// unfold removes the line breaks of a folded field value (RFC 5322 §2.2.3)
// and trims surrounding white space.
func unfold(b []byte) string {
	b = bytes.Trim(b, " \t\r\n")
	if bytes.IndexByte(b, '\n') < 0 && bytes.IndexByte(b, '\r') < 0 {
		return clean(string(b))
	}
	out := make([]byte, 0, len(b))
	for _, c := range b {
		if c != '\r' && c != '\n' {
			out = append(out, c)
		}
	}
	return clean(string(out))
}

// clean replaces invalid UTF-8 by U+FFFD, so values survive JSON unchanged.
func clean(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strings.ToValidUTF8(s, "\uFFFD")
}

// fillFields sets pt's content fields from h.
func (p *parser) fillFields(pt *Part, h *header, inDigest bool) {
	raw := p.raw
	if v, ok := h.get(raw, fContentType); ok {
		t, params := parseValueParams(v)
		if typ, sub, ok := splitMediaType(t); ok {
			pt.Type, pt.Subtype, pt.Params = typ, sub, params
		}
	}
	if pt.Type == "" {
		if inDigest {
			pt.Type, pt.Subtype = "message", "rfc822" // RFC 2046 §5.1.5
		} else {
			pt.Type, pt.Subtype = "text", "plain" // RFC 2045 §5.2
			pt.Params = map[string]string{"charset": "us-ascii"}
		}
	}

	pt.Encoding = "7bit" // RFC 2045 §6.1
	if v, _ := h.get(raw, fContentTransferEncoding); v != "" {
		if tok := strings.ToLower(leadingToken(v)); tok != "" {
			pt.Encoding = tok
		}
	}
	if v, _ := h.get(raw, fContentDisposition); v != "" {
		d, params := parseValueParams(v)
		if d = strings.ToLower(leadingToken(d)); d != "" {
			pt.Disposition, pt.DispositionParams = d, params
		}
	}
	if v, _ := h.get(raw, fContentLanguage); v != "" {
		for tag := range strings.SplitSeq(stripComments(v), ",") {
			if tag = strings.TrimSpace(tag); tag != "" && len(pt.Language) < maxListLen {
				pt.Language = append(pt.Language, tag)
			}
		}
	}
	pt.ID, _ = h.get(raw, fContentID)
	pt.Description, _ = h.get(raw, fContentDescription)
	pt.Location, _ = h.get(raw, fContentLocation)
	pt.MD5, _ = h.get(raw, fContentMD5)
}

// fillEnvelope sets env from the message header h.
func (p *parser) fillEnvelope(env *Envelope, h *header) {
	raw := p.raw
	if v, _ := h.get(raw, fDate); v != "" && len(v) <= maxDateLen {
		env.Date = parseDate(v)
		env.DateText = strings.TrimSpace(v)
	}
	if v, _ := h.get(raw, fSubject); v != "" {
		env.Subject = decodeWords(v)
	}
	for _, a := range []struct {
		f    int
		list *[]Address
	}{
		{fFrom, &env.From}, {fSender, &env.Sender}, {fReplyTo, &env.ReplyTo},
		{fTo, &env.To}, {fCc, &env.Cc}, {fBcc, &env.Bcc},
	} {
		if v, _ := h.get(raw, a.f); v != "" {
			*a.list = parseAddressList(v)
		}
	}
	// RFC 9051 §7.5.2: absent or empty Sender and Reply-To take From's value.
	if len(env.Sender) == 0 {
		env.Sender = slices.Clone(env.From)
	}
	if len(env.ReplyTo) == 0 {
		env.ReplyTo = slices.Clone(env.From)
	}
	if v, _ := h.get(raw, fInReplyTo); v != "" {
		env.InReplyTo = msgIDs(v)
	}
	if v, _ := h.get(raw, fMessageID); v != "" {
		if ids := msgIDs(v); len(ids) > 0 {
			env.MessageID = ids[0]
		}
	}
	if v, _ := h.get(raw, fReferences); v != "" {
		env.References = msgIDs(v)
	}
}

// HeaderReferences returns the msg-ids of the References field of a raw
// header block, as Parse would store them in Envelope.References: for
// envelopes stored before that field existed. It reads the header only.
func HeaderReferences(hdr []byte) []string {
	p := parser{raw: hdr}
	var h header
	p.readHeader(0, len(hdr), &h)
	v, _ := h.get(hdr, fReferences)
	if v == "" {
		return nil
	}
	return msgIDs(v)
}

// parseDate parses an RFC 5322 §3.3 date-time, returning the zero time when
// it cannot. The common modern form takes a fast path; net/mail.ParseDate
// handles the rest, trying a dozen layouts.
func parseDate(v string) time.Time {
	if t, err := time.Parse("Mon, 2 Jan 2006 15:04:05 -0700", v); err == nil {
		return t
	}
	if t, err := netmail.ParseDate(v); err == nil {
		return t
	}
	return time.Time{}
}

// msgIDs extracts the msg-ids (RFC 5322 §3.6.4) of v without angle brackets.
// A bracket-less single token counts as one id, as some senders omit them.
// go-message's MsgIDList is not used: it rejects common malformed ids and
// its comment parsing is quadratic in the field length.
func msgIDs(v string) []string {
	var ids []string
	bracketed := strings.Contains(v, "<")
	for len(ids) < maxListLen {
		lt := strings.IndexByte(v, '<')
		if lt < 0 {
			break
		}
		v = v[lt+1:]
		gt := strings.IndexByte(v, '>')
		if gt < 0 {
			gt = len(v)
		}
		id := strings.Join(strings.Fields(v[:gt]), "")
		if id != "" {
			ids = append(ids, id)
		}
		v = v[min(gt+1, len(v)):]
	}
	if !bracketed {
		if v = strings.TrimSpace(stripComments(v)); v != "" && !strings.ContainsAny(v, " \t") {
			ids = []string{v}
		}
	}
	return ids
}

// wordDecoder decodes RFC 2047 encoded words. It holds no mutable state.
var wordDecoder = &mime.WordDecoder{CharsetReader: charsetReader}

// charsetReader converts from charsets other than UTF-8, US-ASCII and
// ISO-8859-1 (which mime.WordDecoder and toUTF8 handle themselves) through
// go-message's CharsetReader, which is set once the program links
// github.com/emersion/go-message/charset; until then such text stays as it
// is.
func charsetReader(charset string, input io.Reader) (io.Reader, error) {
	if gomessage.CharsetReader == nil {
		return nil, errors.New("message: no charset support for " + strconv.Quote(charset))
	}
	return gomessage.CharsetReader(charset, input)
}

// decodeWords decodes the RFC 2047 encoded words of an unstructured value.
// Malformed words stay as they are; words in unknown charsets too, while the
// others are still decoded.
func decodeWords(s string) string {
	if !strings.Contains(s, "=?") {
		return clean(s)
	}
	if d, err := wordDecoder.DecodeHeader(s); err == nil {
		return clean(d)
	}
	// DecodeHeader fails as a whole on one unknown charset: go word by word.
	var b strings.Builder
	prevDecoded := false
	for i, tok := range strings.Fields(s) {
		out, decoded := tok, false
		if strings.HasPrefix(tok, "=?") && strings.HasSuffix(tok, "?=") {
			if d, err := wordDecoder.Decode(tok); err == nil {
				out, decoded = d, true
			}
		}
		// RFC 2047 §6.2: white space between encoded words is dropped.
		if i > 0 && !(decoded && prevDecoded) {
			b.WriteByte(' ')
		}
		b.WriteString(out)
		prevDecoded = decoded
	}
	return clean(b.String())
}

// toUTF8 converts b from charset to UTF-8, returning it unchanged when the
// charset is unknown.
func toUTF8(charset string, b []byte) string {
	switch strings.ToLower(charset) {
	case "", "utf-8", "utf8", "us-ascii":
		return clean(string(b))
	case "iso-8859-1", "latin1":
		// Common in RFC 2231 filenames; each byte is its code point.
		r := make([]rune, len(b))
		for i, c := range b {
			r[i] = rune(c)
		}
		return string(r)
	}
	if r, err := charsetReader(charset, bytes.NewReader(b)); err == nil {
		if d, err := io.ReadAll(r); err == nil {
			return clean(string(d))
		}
	}
	return clean(string(b))
}

// parseValueParams parses a Content-Type or Content-Disposition value
// (RFC 2045 §5.1, RFC 2183) into its lower-case value and parameters,
// decoded as Part.Params documents. It uses mime.ParseMediaType and falls
// back to a lenient parser on syntax errors.
func parseValueParams(v string) (string, map[string]string) {
	if len(v) > maxParamsLen {
		v = v[:maxParamsLen]
	}
	value, params, err := mime.ParseMediaType(v)
	if err != nil {
		base, rest, _ := strings.Cut(v, ";")
		return strings.ToLower(strings.TrimSpace(stripComments(base))), lenientParams(rest)
	}
	for k, pv := range params {
		params[k] = decodeWords(pv)
	}
	if strings.Contains(v, "*") {
		// mime.ParseMediaType drops RFC 2231 values in charsets other than
		// UTF-8 and US-ASCII; recover them.
		for k, pv := range lenientParams(v[strings.IndexByte(v+";", ';'):]) {
			if _, ok := params[k]; !ok {
				params[k] = pv
			}
		}
	}
	if len(params) == 0 {
		params = nil
	}
	return value, params
}

// splitMediaType splits a lower-case "type/subtype" into its two tokens,
// ignoring junk after the subtype token.
func splitMediaType(t string) (typ, sub string, ok bool) {
	typ, sub, ok = strings.Cut(t, "/")
	typ, sub = strings.TrimSpace(typ), strings.TrimSpace(sub)
	n := 0
	for n < len(sub) && isToken(sub[n:n+1]) {
		n++
	}
	if !ok || !isToken(typ) || n == 0 {
		return "", "", false
	}
	return typ, sub[:n], true
}

// isToken reports whether s is a non-empty RFC 2045 §5.1 token.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte(`()<>@,;:\"/[]?=`, c) >= 0 {
			return false
		}
	}
	return true
}

// leadingToken returns s up to its first white space, ';' or '('.
func leadingToken(s string) string {
	s = strings.TrimSpace(s)
	if i := strings.IndexAny(s, " \t;("); i >= 0 {
		s = s[:i]
	}
	return s
}

// stripComments removes RFC 5322 §3.2.2 comments outside quoted strings.
func stripComments(s string) string {
	if strings.IndexByte(s, '(') < 0 {
		return s
	}
	var b strings.Builder
	depth, quoted := 0, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && (quoted || depth > 0) && i+1 < len(s):
			if depth == 0 {
				b.WriteByte(c)
				b.WriteByte(s[i+1])
			}
			i++
			continue
		case c == '"' && depth == 0:
			quoted = !quoted
		case c == '(' && !quoted:
			depth++
			continue
		case c == ')' && depth > 0:
			depth--
			continue
		}
		if depth == 0 {
			b.WriteByte(c)
		}
	}
	return b.String()
}

// lenientParams parses "; key=value" parameters without giving up on syntax
// errors: unquoted values may hold tspecials, quotes may be unbalanced. It
// decodes RFC 2231 continuations and charsets and RFC 2047 encoded words.
// The first occurrence of a key wins, but an RFC 2231 extended value
// replaces a plain one.
func lenientParams(s string) map[string]string {
	params := make(map[string]string)
	type piece struct {
		v       string
		encoded bool
	}
	var ext map[string]map[int]piece // RFC 2231 base name -> section -> piece
	for s != "" {
		var seg string
		seg, s = cutUnquoted(s, ';')
		k, v, ok := strings.Cut(seg, "=")
		k = strings.ToLower(strings.TrimSpace(k))
		if !ok || k == "" {
			continue
		}
		v = unquote(strings.TrimSpace(v))
		base, section, isExt := strings.Cut(k, "*")
		if !isExt {
			if _, dup := params[k]; !dup {
				params[k] = decodeWords(v)
			}
			continue
		}
		// RFC 2231 §3-4: name*=…, name*0=…, name*0*=…, name*1*=…
		encoded := strings.HasSuffix(section, "*") || section == ""
		n := 0
		if section = strings.TrimSuffix(section, "*"); section != "" {
			var err error
			if n, err = strconv.Atoi(section); err != nil || n < 0 {
				continue
			}
		}
		if ext == nil {
			ext = make(map[string]map[int]piece)
		}
		if ext[base] == nil {
			ext[base] = make(map[int]piece)
		}
		if _, dup := ext[base][n]; !dup {
			ext[base][n] = piece{v, encoded}
		}
	}
	for base, pieces := range ext {
		var charset string
		var b []byte
		for n := 0; n < len(pieces); n++ {
			pc, ok := pieces[n]
			if !ok {
				break
			}
			if !pc.encoded {
				b = append(b, pc.v...)
				continue
			}
			v := pc.v
			if n == 0 {
				// charset'language'value; a missing part means no charset.
				if cs, rest, ok := strings.Cut(v, "'"); ok {
					if _, val, ok := strings.Cut(rest, "'"); ok {
						charset, v = cs, val
					}
				}
			}
			b = appendPercentDecoded(b, v)
		}
		params[base] = toUTF8(charset, b)
	}
	if len(params) == 0 {
		return nil
	}
	return params
}

// cutUnquoted splits s at the first sep outside a quoted string.
func cutUnquoted(s string, sep byte) (before, after string) {
	quoted := false
	for i := 0; i < len(s); i++ {
		switch c := s[i]; {
		case c == '\\' && quoted:
			i++
		case c == '"':
			quoted = !quoted
		case c == sep && !quoted:
			return s[:i], s[i+1:]
		}
	}
	return s, ""
}

// unquote removes the quotes and backslash escapes of a quoted string, and
// returns other values unchanged. An unterminated quote runs to the end.
func unquote(v string) string {
	if !strings.HasPrefix(v, `"`) {
		return v
	}
	var b strings.Builder
	for i := 1; i < len(v); i++ {
		c := v[i]
		if c == '\\' && i+1 < len(v) {
			i++
			c = v[i]
		} else if c == '"' {
			break
		}
		b.WriteByte(c)
	}
	return b.String()
}

// appendPercentDecoded appends the RFC 2231 §4 %XX-decoded v to b; malformed
// escapes are kept as they are.
func appendPercentDecoded(b []byte, v string) []byte {
	for i := 0; i < len(v); i++ {
		if v[i] == '%' && i+2 < len(v) {
			if x, err := strconv.ParseUint(v[i+1:i+3], 16, 8); err == nil {
				b = append(b, byte(x))
				i += 2
				continue
			}
		}
		b = append(b, v[i])
	}
	return b
}

// parseAddressList parses an address-list field value (RFC 5322 §3.4). It
// splits the list itself, since go-message flattens groups and gives up on
// the whole list at the first bad address, and parses each address with
// go-message, falling back to lenientAddress. A group missing its ';' ends
// at the end of the field. At most maxListLen entries are returned.
func parseAddressList(v string) []Address {
	var list []Address
	inGroup := false
	for v != "" && len(list) < maxListLen {
		i := nextSpecial(v, ",:;")
		piece := v[:i]
		var sep byte
		if i < len(v) {
			sep = v[i]
		}
		v = v[min(i+1, len(v)):]
		if sep == ':' && !inGroup {
			// group = display-name ":" [group-list] ";"
			list = append(list, Address{Name: decodePhrase(piece), Group: true})
			inGroup = true
			continue
		}
		if strings.TrimSpace(piece) != "" {
			if a, err := mail.ParseAddress(piece); err == nil {
				list = append(list, fromMailAddress(a))
			} else if a, ok := lenientAddress(piece); ok {
				list = append(list, a)
			}
		}
		if sep == ';' && inGroup {
			list = append(list, Address{GroupEnd: true})
			inGroup = false
		}
		// A stray ';' or ':' elsewhere is taken as a comma.
	}
	if inGroup {
		list = append(list, Address{GroupEnd: true})
	}
	return list
}

func fromMailAddress(a *mail.Address) Address {
	mbox, host := splitAddrSpec(a.Address)
	// net/mail leaves encoded words inside quoted strings alone (RFC 2047
	// §5 forbids them there), but mailers send them and readers decode them.
	return Address{Name: decodeWords(a.Name), Mailbox: clean(mbox), Host: clean(host)}
}

// splitAddrSpec splits local@domain at its last '@'.
func splitAddrSpec(s string) (mailbox, host string) {
	if i := strings.LastIndexByte(s, '@'); i >= 0 {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// lenientAddress extracts what it can from one malformed address: the
// angle-addr if there is one, else the first word with an '@', else the
// whole text as a local part.
func lenientAddress(s string) (Address, bool) {
	s = strings.TrimSpace(s)
	var name, spec string
	if lt := strings.LastIndexByte(s, '<'); lt >= 0 {
		name, spec = s[:lt], s[lt+1:]
		if gt := strings.IndexByte(spec, '>'); gt >= 0 {
			spec = spec[:gt]
		}
	} else {
		spec = stripComments(s)
		for w := range strings.FieldsSeq(spec) {
			if strings.Contains(w, "@") {
				spec = w
				break
			}
		}
	}
	// An obsolete source route (RFC 5322 §4.4): "@a,@b:user@host" keeps
	// "@a,@b" as the address's Route (ENVELOPE's addr-adl, RFC 9051
	// §7.5.2), its whitespace and comments removed.
	var route string
	if i := strings.LastIndexByte(spec, ':'); i >= 0 && strings.HasPrefix(strings.TrimSpace(spec), "@") {
		route = clean(strings.Join(strings.Fields(stripComments(spec[:i])), ""))
		spec = spec[i+1:]
	}
	mbox, host := splitAddrSpec(strings.TrimSpace(stripComments(spec)))
	a := Address{
		Route:   route,
		Name:    decodePhrase(name),
		Mailbox: clean(unquote(strings.TrimSpace(mbox))),
		Host:    clean(strings.TrimSpace(host)),
	}
	return a, a != Address{}
}

// decodePhrase decodes a display-name phrase (RFC 5322 §3.2.5): comments
// dropped, quoted strings unquoted, encoded words decoded.
func decodePhrase(s string) string {
	s = stripComments(s)
	if strings.IndexByte(s, '"') >= 0 {
		var b strings.Builder
		quoted := false
		for i := 0; i < len(s); i++ {
			c := s[i]
			switch {
			case c == '\\' && quoted && i+1 < len(s):
				i++
				c = s[i]
			case c == '"':
				quoted = !quoted
				continue
			}
			b.WriteByte(c)
		}
		s = b.String()
	}
	return decodeWords(strings.Join(strings.Fields(s), " "))
}

// nextSpecial returns the index in s of the first byte of specials that is
// outside quoted strings, comments, angle-addrs and domain literals, or len(s).
func nextSpecial(s, specials string) int {
	depth := 0 // comment nesting
	quoted, angle, literal := false, false, false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' && (quoted || depth > 0 || literal):
			i++
		case quoted:
			quoted = c != '"'
		case depth > 0:
			if c == '(' {
				depth++
			} else if c == ')' {
				depth--
			}
		case literal:
			literal = c != ']'
		case c == '"':
			quoted = true
		case c == '(':
			depth = 1
		case c == '[':
			literal = true
		case angle:
			angle = c != '>'
		case c == '<':
			angle = true
		case strings.IndexByte(specials, c) >= 0:
			return i
		}
	}
	return len(s)
}
