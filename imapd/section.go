package imapd

import (
	"bytes"
	"encoding/base64"
	"io"
	"mime/quotedprintable"
	"strings"

	"github.com/emersion/go-imap/v2"

	"pushmail/message"
)

// Placeholders for an address without a local part or domain: a NIL host
// would read as group syntax (RFC 9051 §7.5.2). Dovecot uses the same.
const (
	missingMailbox = "MISSING_MAILBOX"
	missingDomain  = "MISSING_DOMAIN"
)

func isMessage(p *message.Part) bool {
	return p.Type == "message" && (p.Subtype == "rfc822" || p.Subtype == "global")
}

// findPart follows a section's part numbers (RFC 9051 §6.4.5): parts of a
// multipart are numbered from 1; a part that is not multipart has only
// part 1, itself; below a message/rfc822 part, numbers index the
// encapsulated message.
func findPart(root *message.Part, path []int) (*message.Part, bool) {
	cur := root
	for i, n := range path {
		if i > 0 && isMessage(cur) && len(cur.Parts) == 1 {
			cur = &cur.Parts[0]
		}
		if cur.Type == "multipart" && len(cur.Parts) > 0 {
			if n < 1 || n > len(cur.Parts) {
				return nil, false
			}
			cur = &cur.Parts[n-1]
		} else if n != 1 {
			return nil, false
		}
	}
	return cur, true
}

// slice returns raw[start:end], or nil if the offsets do not fit raw.
func slice(raw []byte, start, end int64) []byte {
	if start < 0 || end < start || end > int64(len(raw)) {
		return nil
	}
	return raw[start:end]
}

// bodySection returns the bytes of BODY[section]<partial>: a missing part
// is the empty string, as Dovecot answers.
func bodySection(raw []byte, parsed *message.Parsed, bs *imap.FetchItemBodySection) []byte {
	part, ok := findPart(&parsed.Root, bs.Part)
	if !ok {
		return nil
	}
	// msg is the message whose HEADER or TEXT is meant: the whole message,
	// or the one encapsulated in a message/rfc822 part.
	msg := part
	if len(bs.Part) > 0 {
		msg = nil
		if isMessage(part) && len(part.Parts) == 1 {
			msg = &part.Parts[0]
		}
	}
	var b []byte
	switch bs.Specifier {
	case imap.PartSpecifierNone:
		if len(bs.Part) == 0 {
			b = raw
		} else {
			b = slice(raw, part.BodyStart, part.End)
		}
	case imap.PartSpecifierMIME:
		b = slice(raw, part.HeaderStart, part.BodyStart)
	case imap.PartSpecifierHeader:
		if msg != nil {
			b = slice(raw, msg.HeaderStart, msg.BodyStart)
			switch {
			case len(bs.HeaderFields) > 0:
				b = filterHeader(b, bs.HeaderFields, true)
			case len(bs.HeaderFieldsNot) > 0:
				b = filterHeader(b, bs.HeaderFieldsNot, false)
			}
		}
	case imap.PartSpecifierText:
		if msg != nil {
			b = slice(raw, msg.BodyStart, msg.End)
		}
	}
	return partial(b, bs.Partial)
}

// partial applies <offset.size> (RFC 9051 §6.4.5): past the end is empty.
func partial(b []byte, p *imap.SectionPartial) []byte {
	if p == nil {
		return b
	}
	if p.Offset >= int64(len(b)) {
		return nil
	}
	b = b[p.Offset:]
	if p.Size < int64(len(b)) {
		b = b[:p.Size]
	}
	return b
}

// filterHeader returns the fields of a header block whose names are (keep)
// or are not (!keep) in names, case-insensitively, each as it was written,
// followed by the blank line (RFC 9051 §6.4.5 HEADER.FIELDS).
func filterHeader(block []byte, names []string, keep bool) []byte {
	want := make(map[string]bool, len(names))
	for _, n := range names {
		want[strings.ToLower(n)] = true
	}
	var out []byte
	take := false
	for len(block) > 0 {
		line := block
		if i := bytes.IndexByte(block, '\n'); i >= 0 {
			line = block[:i+1]
		}
		block = block[len(line):]
		if len(bytes.TrimRight(line, "\r\n")) == 0 {
			break // the blank line ending the header
		}
		if line[0] != ' ' && line[0] != '\t' {
			name, _, ok := bytes.Cut(line, []byte(":"))
			take = ok && want[strings.ToLower(string(bytes.TrimSpace(name)))] == keep
		}
		if take {
			out = append(out, line...)
			if !bytes.HasSuffix(line, []byte("\n")) {
				out = append(out, '\r', '\n')
			}
		}
	}
	return append(out, '\r', '\n')
}

// errUnknownCTE answers BINARY for an encoding the server cannot undo
// (RFC 3516 §4.3).
var errUnknownCTE = &imap.Error{
	Type: imap.StatusResponseTypeNo,
	Code: imap.ResponseCodeUnknownCTE,
	Text: "Cannot decode this part's Content-Transfer-Encoding",
}

// binarySection returns BINARY[part] (RFC 3516): the part's body with its
// transfer encoding undone. BINARY[] is the whole message; multipart and
// message parts have only identity encodings and are returned as stored.
func binarySection(raw []byte, parsed *message.Parsed, path []int) ([]byte, error) {
	if len(path) == 0 {
		return raw, nil
	}
	part, ok := findPart(&parsed.Root, path)
	if !ok {
		return nil, nil
	}
	body := slice(raw, part.BodyStart, part.End)
	switch part.Encoding {
	case "", "7bit", "8bit", "binary":
		return body, nil
	case "base64":
		return decodeBase64(body), nil
	case "quoted-printable":
		b, err := io.ReadAll(quotedprintable.NewReader(bytes.NewReader(body)))
		if err != nil && len(b) == 0 {
			return nil, errUnknownCTE
		}
		return b, nil
	}
	return nil, errUnknownCTE
}

// decodeBase64 decodes base64 leniently: line breaks, padding and other
// bytes outside the alphabet are skipped, as mail readers do.
func decodeBase64(b []byte) []byte {
	clean := make([]byte, 0, len(b))
	for _, c := range b {
		if c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' {
			clean = append(clean, c)
		}
	}
	if len(clean)%4 == 1 {
		clean = clean[:len(clean)-1] // a lone trailing character holds no byte
	}
	out := make([]byte, base64.RawStdEncoding.DecodedLen(len(clean)))
	n, _ := base64.RawStdEncoding.Decode(out, clean) // only the alphabet is left
	return out[:n]
}
