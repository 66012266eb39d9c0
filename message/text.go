package message

import (
	"bytes"
	"io"
	"strings"
	"unicode/utf8"

	gomessage "github.com/emersion/go-message"
)

// This file holds what search reads from a stored message without parsing
// it again: the header block's fields, decoded, and the decoded text of a
// text part located by its Part offsets.

// maxDecodedText bounds how much decoded text of one part DecodeText
// returns, so a huge text part cannot make one search hold much memory.
const maxDecodedText = 64 << 20

// HeaderEnd returns the offset after the blank line that ends the header
// block of b, or len(b) if there is none, as Parse splits (RFC 5322 §2.1).
func HeaderEnd(b []byte) int {
	for i := 0; i < len(b); {
		if b[i] == '\n' {
			return i + 1
		}
		if b[i] == '\r' && i+1 < len(b) && b[i+1] == '\n' {
			return i + 2
		}
		nl := bytes.IndexByte(b[i:], '\n')
		if nl < 0 {
			break
		}
		i += nl + 1
	}
	return len(b)
}

// EachField calls fn with the name and raw (folded) value of each field of
// the header block b, in order, until fn returns false. Like Parse, it
// skips lines that are neither fields nor continuations instead of giving
// up: mail is searched as it is. fn must not retain name or value, which
// alias b.
func EachField(b []byte, fn func(name, value []byte) bool) {
	var name []byte
	vs, ve := -1, -1 // the current field's value
	flush := func() bool {
		if vs < 0 {
			return true
		}
		ok := fn(name, b[vs:ve])
		vs = -1
		return ok
	}
	for i := 0; i < len(b); {
		lineEnd := len(b)
		if nl := bytes.IndexByte(b[i:], '\n'); nl >= 0 {
			lineEnd = i + nl + 1
		}
		switch c := b[i]; {
		case c == '\n' || (c == '\r' && lineEnd-i == 2):
			flush()
			return // the blank line ending the header
		case c == ' ' || c == '\t':
			if vs >= 0 {
				ve = lineEnd // RFC 5322 §2.2.3: a continuation
			}
		default:
			if !flush() {
				return
			}
			if colon := bytes.IndexByte(b[i:lineEnd], ':'); colon > 0 {
				name = bytes.TrimRight(b[i:i+colon], " \t")
				vs, ve = i+colon+1, lineEnd
			}
		}
		i = lineEnd
	}
	flush()
}

// FieldText returns a field value unfolded, with its RFC 2047 encoded
// words decoded (RFC 9051 §6.4.4 matches "the text of the header field").
func FieldText(value []byte) string {
	return decodeWords(unfold(value))
}

// DecodeText undoes a text part's transfer encoding (Part.Encoding) and
// converts its charset (Part.Params["charset"]) to UTF-8 (RFC 2045 §6,
// RFC 2046 §4.1.2); b is the part's body, raw[BodyStart:End]. What cannot
// be decoded is returned as it is: a failed decoding must not hide
// readable text. At most 64 MiB of decoded text is returned.
func DecodeText(encoding, charset string, b []byte) []byte {
	switch encoding {
	case "", "7bit", "8bit", "binary":
	default:
		var h gomessage.Header
		h.Set("Content-Transfer-Encoding", encoding)
		ent, err := gomessage.New(h, bytes.NewReader(b))
		if err == nil {
			out, err := io.ReadAll(io.LimitReader(ent.Body, maxDecodedText))
			if err == nil || len(out) > 0 {
				b = out // a broken tail of base64 still leaves the head
			}
		}
	}
	return textToUTF8(charset, b)
}

// PartText returns the text that search reads in a leaf text part (type
// text, the given subtype, lower-case as Part.Subtype): the part decoded
// by DecodeText and, for text/html, reduced by HTMLText to what a reader
// sees. RFC 9051 §6.4.4 leaves "the body" to the server; matching words
// across inline markup, and not matching the markup itself, is what a
// user searching HTML mail expects.
func PartText(subtype, encoding, charset string, b []byte) []byte {
	t := DecodeText(encoding, charset, b)
	if subtype == "html" {
		t = HTMLText(t)
	}
	return t
}

// textToUTF8 converts b from charset to UTF-8. UTF-8 and US-ASCII are
// kept as they are (invalid bytes just never match), the Latin-1 family is
// converted here, others through Parse's charset support; an unknown
// charset leaves the text as it is, so its ASCII still matches.
func textToUTF8(charset string, b []byte) []byte {
	switch strings.ToLower(charset) {
	case "", "utf-8", "utf8", "us-ascii", "ascii":
		return b
	case "iso-8859-1", "iso8859-1", "latin1", "l1", "iso_8859-1", "cp819", "ibm819":
		return latin1ToUTF8(b, nil)
	case "windows-1252", "cp1252", "x-cp1252":
		return latin1ToUTF8(b, &cp1252High)
	}
	return []byte(toUTF8(charset, b))
}

// latin1ToUTF8 converts ISO-8859-1 text to UTF-8, or Windows-1252 text if
// high maps its bytes 0x80-0x9F.
func latin1ToUTF8(b []byte, high *[32]rune) []byte {
	out := make([]byte, 0, len(b)+len(b)/8)
	for _, c := range b {
		r := rune(c)
		if high != nil && c >= 0x80 && c < 0xa0 && high[c-0x80] != 0 {
			r = high[c-0x80]
		}
		out = utf8.AppendRune(out, r)
	}
	return out
}

// cp1252High maps Windows-1252 bytes 0x80-0x9F; 0 marks an unassigned byte,
// kept as the Latin-1 control character.
var cp1252High = [32]rune{
	'€', 0, '‚', 'ƒ', '„', '…', '†', '‡', 'ˆ', '‰', 'Š', '‹', 'Œ', 0, 'Ž', 0,
	0, '‘', '’', '“', '”', '•', '–', '—', '˜', '™', 'š', '›', 'œ', 0, 'ž', 'Ÿ',
}
