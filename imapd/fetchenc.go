package imapd

import (
	"mime"
	"sort"
	"strings"

	"pushmail/imapd/wire"
	"pushmail/message"
)

// The ENVELOPE, BODY and BODYSTRUCTURE encoders of imapd's own wire layer.
// They write what go-imap's imapserver wrote from section.go's envelope and
// bodyStructure, byte for byte (fetchenc_test.go checks it against the
// answers that server gave), except that:
//
//   - an address's source route is written as its addr-adl (RFC 9051
//     §7.5.2); imapserver wrote NIL;
//   - with utf8, the subject and display names are UTF-8 strings, not
//     RFC 2047 encoded words (see envText);
//   - a NUL, which no IMAP string can carry (RFC 9051 §4.3 CHAR8), is
//     written as U+FFFD (see nulFree); imapserver sent it inside a literal;
//   - wire.Writer writes strings longer than 1024 bytes as literals, where
//     imapserver quoted up to 4096.

// envelopeDate is ENVELOPE's date layout, RFC 5322 §3.3 date-time.
const envelopeDate = "Mon, 02 Jan 2006 15:04:05 -0700"

// writeEnvelope writes e as ENVELOPE's value (RFC 9051 §7.5.2): "(" date
// subject from sender reply-to to cc bcc in-reply-to message-id ")". utf8
// is whether the client enabled UTF8=ACCEPT or IMAP4rev2 (RFC 6855 §3);
// w.UTF8 still decides, as for every string, quoted or literal.
func writeEnvelope(w *wire.Writer, e *message.Envelope, utf8 bool) {
	w.Raw("(")
	switch {
	case e.DateText != "":
		// RFC 9051 §7.5.2: the Date field as the message has it.
		w.String(nulFree(e.DateText))
	case e.Date.IsZero():
		w.Raw("NIL")
	default:
		// An envelope stored before DateText: its parsed date.
		w.String(e.Date.Format(envelopeDate))
	}
	w.SP()
	nstring(w, envText(e.Subject, utf8))
	// RFC 9051 §7.5.2: sender and reply-to default to from. message.Parse
	// already fills them; a stored envelope from before it did may not.
	sender, replyTo := e.Sender, e.ReplyTo
	if len(sender) == 0 {
		sender = e.From
	}
	if len(replyTo) == 0 {
		replyTo = e.From
	}
	for _, list := range [][]message.Address{e.From, sender, replyTo, e.To, e.Cc, e.Bcc} {
		w.SP()
		writeAddressList(w, list, utf8)
	}
	w.SP()
	if len(e.InReplyTo) > 0 {
		str(w, "<"+strings.Join(e.InReplyTo, "> <")+">")
	} else {
		w.Raw("NIL")
	}
	w.SP()
	if e.MessageID != "" {
		str(w, "<"+e.MessageID+">")
	} else {
		w.Raw("NIL")
	}
	w.Raw(")")
}

// envText is the subject or a display name as ENVELOPE sends it. Without
// utf8 the client may only see ASCII, so non-ASCII text is RFC 2047
// Q-encoded in UTF-8, as imapserver did (mime.QEncoding leaves printable
// ASCII alone and also encodes control characters).
//
// With utf8 the text goes as it is: RFC 6855 §3 lets the server send
// UTF-8 in quoted strings once the client enabled UTF8=ACCEPT, and a
// client that did so expects internationalized headers (RFC 6532) in
// UTF-8, not downgraded. A CR or LF makes it a literal (wire.Writer's
// String). A NUL cannot travel in any string (RFC 9051 §4.3 CHAR8), so
// text with one is Q-encoded as without utf8, where it survives as "=00".
func envText(s string, utf8 bool) string {
	if utf8 && strings.IndexByte(s, 0) < 0 {
		return s
	}
	return mime.QEncoding.Encode("utf-8", s)
}

// writeAddressList writes an env-from, env-to etc.: NIL for no address,
// else a list of "(" addr-name addr-adl addr-mailbox addr-host ")" (RFC
// 9051 §7.5.2), with section.go's addresses rules: a group starts with the
// group name as mailbox and a NIL host and ends with all NIL; an address
// without a local part or domain gets a placeholder, since a NIL host
// would read as group syntax.
func writeAddressList(w *wire.Writer, list []message.Address, utf8 bool) {
	if len(list) == 0 {
		w.Raw("NIL")
		return
	}
	w.Raw("(")
	for i, a := range list {
		if i > 0 {
			w.SP()
		}
		switch {
		case a.Group:
			name := a.Name
			if name == "" {
				name = "undisclosed-recipients"
			}
			// The group name is the mailbox, not encoded, as imapserver
			// wrote it.
			w.Raw("(NIL NIL ")
			str(w, name)
			w.Raw(" NIL)")
		case a.GroupEnd:
			w.Raw("(NIL NIL NIL NIL)")
		default:
			mbox, host := a.Mailbox, a.Host
			if mbox == "" {
				mbox = missingMailbox
			}
			if host == "" {
				host = missingDomain
			}
			w.Raw("(")
			nstring(w, envText(a.Name, utf8))
			w.SP()
			// addr-adl: the obsolete source route (RFC 5322 §4.4),
			// "@a.example,@b.example".
			nstring(w, a.Route)
			w.SP()
			str(w, mbox)
			w.SP()
			str(w, host)
			w.Raw(")")
		}
	}
	w.Raw(")")
}

// writeBodyStructure writes p as BODYSTRUCTURE's value when extended, else
// as BODY's (RFC 9051 §7.5.2: BODY is BODYSTRUCTURE without extension
// data, here at every level, as imapserver wrote it). utf8 is passed to
// the envelopes of message/rfc822 and message/global parts.
//
// As section.go's bodyStructure: a message/rfc822 or message/global Part
// with its encapsulated message is body-type-msg (envelope, body, lines);
// one without (encoded, or at the nesting limit), and a multipart without
// parts, cannot be written as body-type-msg or body-type-mpart (RFC 9051
// §9) and are opaque application/octet-stream; text/* has its lines.
func writeBodyStructure(w *wire.Writer, p *message.Part, extended bool, utf8 bool) {
	w.Raw("(")
	if p.Type == "multipart" && len(p.Parts) > 0 {
		// body-type-mpart = 1*body SP media-subtype [SP body-ext-mpart]:
		// no space between the bodies.
		for i := range p.Parts {
			writeBodyStructure(w, &p.Parts[i], extended, utf8)
		}
		w.SP()
		str(w, p.Subtype)
		if extended {
			// body-ext-mpart = body-fld-param [SP body-fld-dsp
			// [SP body-fld-lang [SP body-fld-loc *(SP body-extension)]]]
			w.SP()
			writeParams(w, p.Params)
			writeBodyExt(w, p)
		}
		w.Raw(")")
		return
	}

	typ, sub, params := p.Type, p.Subtype, p.Params
	msg := isMessage(p) && len(p.Parts) == 1
	if !msg && (isMessage(p) || p.Type == "multipart") {
		typ, sub, params = "application", "octet-stream", nil
	}
	// body-fields = body-fld-param SP body-fld-id SP body-fld-desc SP
	// body-fld-enc SP body-fld-octets
	str(w, typ)
	w.SP()
	str(w, sub)
	w.SP()
	writeParams(w, params)
	w.SP()
	nstring(w, p.ID)
	w.SP()
	nstring(w, p.Description)
	w.SP()
	// body-fld-enc; lower case, as imapserver wrote it (message.Parse
	// already lowers it).
	enc := strings.ToLower(p.Encoding)
	if enc == "" {
		enc = "7bit"
	}
	str(w, enc)
	w.SP().Number(uint64(max(p.End-p.BodyStart, 0)))
	switch {
	case msg:
		env := p.Envelope
		if env == nil {
			env = &message.Envelope{}
		}
		w.SP()
		writeEnvelope(w, env, utf8)
		w.SP()
		writeBodyStructure(w, &p.Parts[0], extended, utf8)
		w.SP().Number(uint64(max(p.Lines, 0)))
	case typ == "text":
		w.SP().Number(uint64(max(p.Lines, 0)))
	}
	if extended {
		// body-ext-1part = body-fld-md5 [SP body-fld-dsp [SP body-fld-lang
		// [SP body-fld-loc *(SP body-extension)]]]. The MD5 is NIL, as
		// imapserver wrote it, though message.Part has Content-MD5.
		w.Raw(" NIL")
		writeBodyExt(w, p)
	}
	w.Raw(")")
}

// writeBodyExt writes SP body-fld-dsp SP body-fld-lang SP body-fld-loc.
func writeBodyExt(w *wire.Writer, p *message.Part) {
	w.SP()
	if p.Disposition == "" {
		w.Raw("NIL")
	} else {
		// body-fld-dsp = "(" string SP body-fld-param ")" / nil
		w.Raw("(")
		str(w, p.Disposition)
		w.SP()
		writeParams(w, p.DispositionParams)
		w.Raw(")")
	}
	w.SP()
	// body-fld-lang = nstring / "(" string *(SP string) ")": always the
	// list form, as imapserver wrote it.
	if len(p.Language) == 0 {
		w.Raw("NIL")
	} else {
		w.Raw("(")
		for i, l := range p.Language {
			if i > 0 {
				w.SP()
			}
			str(w, l)
		}
		w.Raw(")")
	}
	w.SP()
	nstring(w, p.Location)
}

// writeParams writes body-fld-param = "(" string SP string *(SP string SP
// string) ")" / nil, sorted by name so the answer does not change from one
// FETCH to the next.
func writeParams(w *wire.Writer, params map[string]string) {
	if len(params) == 0 {
		w.Raw("NIL")
		return
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	sort.Strings(names)
	w.Raw("(")
	for i, k := range names {
		if i > 0 {
			w.SP()
		}
		str(w, k)
		w.SP()
		str(w, params[k])
	}
	w.Raw(")")
}

// str writes s as a string (RFC 9051 §9), quoted or literal.
func str(w *wire.Writer, s string) { w.String(nulFree(s)) }

// nstring writes NIL for "", else s as a string: "" and absent are one in
// message.Envelope and message.Part.
func nstring(w *wire.Writer, s string) { w.NString(nulFree(s), s != "") }

// nulFree replaces each NUL of s by U+FFFD. No IMAP string may hold a NUL
// (RFC 9051 §4.3: CHAR8 excludes it; only BINARY's literal8 may), and
// wire.Writer fails the whole response on one, yet message.Parse keeps
// those of a header (testdata/malformed/nul-bytes.eml has one in an
// address). U+FFFD is what message.Parse puts for invalid UTF-8 too.
func nulFree(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
