package wire

import (
	"encoding/base64"
	"errors"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// Modified UTF-7 (RFC 3501 §5.1.3): printable ASCII stands for itself
// except "&", written "&-"; anything else is "&" + modified base64 of its
// UTF-16BE + "-", with "," for "/" and no padding.
var mbase64 = base64.NewEncoding("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,").WithPadding(base64.NoPadding)

var errMUTF7 = errors.New("invalid modified UTF-7")

// DecodeMUTF7 decodes a modified UTF-7 mailbox name. Raw UTF-8 passes
// through, as clients that never enabled UTF8=ACCEPT send it and go-imap
// took it; what RFC 3501 §5.1.3 forbids is an error: a control
// character, "&" not shifting, an empty or non-minimal shift ("&AGE-"
// for "a"), two shifts back to back, bad base64 or UTF-16.
func DecodeMUTF7(s string) (string, error) {
	if !utf8.ValidString(s) {
		return "", errMUTF7
	}
	if !strings.Contains(s, "&") {
		for i := 0; i < len(s); i++ {
			if s[i] < 0x20 || s[i] == 0x7f {
				return "", errMUTF7
			}
		}
		return s, nil
	}
	var sb strings.Builder
	prevShift := false
	for i := 0; i < len(s); {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return "", errMUTF7
		}
		if c != '&' {
			sb.WriteByte(c)
			prevShift = false
			i++
			continue
		}
		end := strings.IndexByte(s[i+1:], '-')
		if end < 0 {
			return "", errMUTF7
		}
		enc := s[i+1 : i+1+end]
		i += end + 2
		if enc == "" {
			sb.WriteByte('&')
			prevShift = false
			continue
		}
		if prevShift {
			return "", errMUTF7
		}
		raw, err := mbase64.DecodeString(enc)
		if err != nil || len(raw)%2 != 0 || len(raw) == 0 {
			return "", errMUTF7
		}
		// Non-zero leftover bits mean a non-canonical encoding.
		if mbase64.EncodeToString(raw) != enc {
			return "", errMUTF7
		}
		units := make([]uint16, len(raw)/2)
		for j := range units {
			units[j] = uint16(raw[2*j])<<8 | uint16(raw[2*j+1])
		}
		for j := 0; j < len(units); j++ {
			r := rune(units[j])
			if utf16.IsSurrogate(r) {
				if j+1 == len(units) {
					return "", errMUTF7
				}
				r = utf16.DecodeRune(r, rune(units[j+1]))
				if r == utf8.RuneError {
					return "", errMUTF7
				}
				j++
			} else if r >= 0x20 && r <= 0x7e {
				// Printable ASCII must stand for itself.
				return "", errMUTF7
			}
			sb.WriteRune(r)
		}
		prevShift = true
	}
	return sb.String(), nil
}

// EncodeMUTF7 encodes a UTF-8 mailbox name in modified UTF-7.
func EncodeMUTF7(s string) string {
	var sb strings.Builder
	var pending []uint16
	flush := func() {
		if len(pending) == 0 {
			return
		}
		raw := make([]byte, 2*len(pending))
		for i, u := range pending {
			raw[2*i], raw[2*i+1] = byte(u>>8), byte(u)
		}
		sb.WriteByte('&')
		sb.WriteString(mbase64.EncodeToString(raw))
		sb.WriteByte('-')
		pending = pending[:0]
	}
	for _, r := range s {
		if r >= 0x20 && r <= 0x7e {
			flush()
			if r == '&' {
				sb.WriteString("&-")
			} else {
				sb.WriteRune(r)
			}
			continue
		}
		pending = utf16.AppendRune(pending, r)
	}
	flush()
	return sb.String()
}
