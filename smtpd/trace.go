package smtpd

import (
	"crypto/tls"
	"net"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Trace fields. RFC 5321 §4.4: at final delivery the server adds
// Return-Path at the beginning of the message, and every server adds a
// Received field above those already there. Return-Path and Delivered-To
// differ per recipient and go into Recipient.Header, which the store
// prepends to that copy only; the Received field is the same for every
// copy and is prepended to the message once. A copy thus reads, top down:
//
//	Return-Path: <sender@example.com>
//	Delivered-To: user+tag@example.org
//	Received: from client.example ([192.0.2.1])
//		by mx.example.org (pushmail) with ESMTPS (TLS1.3 TLS_AES_128_GCM_SHA256) id cid.1
//		for <user+tag@example.org>; Mon, 02 Jan 2006 15:04:05 +0000
//	(the message as sent)
//
// Delivered-To carries the address as the client gave it (with its +tag
// or alias), bare as Postfix and Dovecot write it.

// recipientTrace returns the Return-Path and Delivered-To fields of one
// copy. The recipient was validated by store.Resolve and the sender by
// validPath, so neither holds a line break.
func recipientTrace(from, rcpt string) []byte {
	return []byte("Return-Path: <" + quotePath(from) + ">\r\nDelivered-To: " + rcpt + "\r\n")
}

// appendReceived appends the Received field of transaction t to b.
// remoteInfo and the TLS description are computed once per session.
func (ss *session) appendReceived(b []byte, t *transaction, now time.Time) []byte {
	b = append(b, "Received: from "...)
	b = append(b, cleanHelo(t.helo)...)
	if ss.remoteInfo != "" {
		b = append(b, " ("...)
		b = append(b, ss.remoteInfo...)
		b = append(b, ')')
	}
	b = append(b, "\r\n\tby "...)
	b = append(b, ss.srv.opts.Hostname...)
	b = append(b, " (pushmail) with "...)
	b = ss.appendProtocol(b)
	if ss.tlsInfo != "" {
		b = append(b, " ("...)
		b = append(b, ss.tlsInfo...)
		b = append(b, ')')
	}
	b = append(b, " id "...)
	b = append(b, t.id...)
	if len(t.rcpts) == 1 {
		// Only for a single recipient, so that copies do not disclose
		// each other's recipients (RFC 5321 §7.6).
		b = append(b, "\r\n\tfor <"...)
		b = append(b, t.rcpts[0].addr...)
		b = append(b, '>')
	}
	b = append(b, ";\r\n\t"...)
	b = now.AppendFormat(b, time.RFC1123Z) // RFC 5322 §3.3 date-time
	return append(b, "\r\n"...)
}

// appendProtocol appends the "with" keyword of RFC 3848: ESMTP or LMTP,
// plus S with TLS and A after AUTH. Callers hold ss.mu.
func (ss *session) appendProtocol(b []byte) []byte {
	if ss.role == roleLMTP {
		b = append(b, "LMTP"...)
	} else {
		b = append(b, "ESMTP"...)
	}
	if ss.tls != nil {
		b = append(b, 'S')
	}
	if ss.user != nil {
		b = append(b, 'A')
	}
	return b
}

// tlsInfo describes a TLS connection for the Received field: version and
// cipher suite; "" without TLS.
func tlsInfo(st *tls.ConnectionState) string {
	if st == nil {
		return ""
	}
	return tls.VersionName(st.Version) + " " + tls.CipherSuiteName(st.CipherSuite)
}

// tcpInfo is the client's address as an RFC 5321 §4.1.3 address literal,
// or "local" for a unix socket.
func tcpInfo(a net.Addr) string {
	switch a := a.(type) {
	case *net.TCPAddr:
		if ip4 := a.IP.To4(); ip4 != nil {
			return "[" + ip4.String() + "]"
		}
		return "[IPv6:" + a.IP.String() + "]"
	case *net.UnixAddr:
		return "local"
	}
	return ""
}

// cleanHelo returns the EHLO argument if it looks like a domain or an
// address literal, and "unknown" otherwise, so that a client cannot shape
// the Received field.
func cleanHelo(h string) string {
	if h == "" || len(h) > 255 || !utf8.ValidString(h) {
		return "unknown"
	}
	if strings.HasPrefix(h, "[") && strings.HasSuffix(h, "]") {
		inner := strings.TrimPrefix(h[1:len(h)-1], "IPv6:")
		if inner != "" && strings.Trim(inner, "0123456789abcdefABCDEF:.") == "" {
			return h
		}
		return "unknown"
	}
	for _, r := range h {
		ok := r == '-' || r == '.' || r == '_' ||
			'0' <= r && r <= '9' || 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' ||
			r >= utf8.RuneSelf && (unicode.IsLetter(r) || unicode.IsDigit(r))
		if !ok {
			return "unknown"
		}
	}
	return h
}

// quotePath writes an address for a path: as is when its local part is a
// dot-string, else with the local part quoted (RFC 5321 §4.1.2), as a
// sender given as "a b"@example.com reaches us unquoted from go-smtp.
func quotePath(addr string) string {
	at := strings.LastIndexByte(addr, '@')
	if at < 0 {
		return addr // the null path, or no domain: nothing to quote
	}
	local := addr[:at]
	if isDotString(local) {
		return addr
	}
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range local {
		if r == '"' || r == '\\' {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	b.WriteByte('"')
	return b.String() + addr[at:]
}

// isDotString reports whether s is an RFC 5321 Dot-string (with RFC 6531
// UTF-8).
func isDotString(s string) bool {
	if s == "" || s[0] == '.' || s[len(s)-1] == '.' || strings.Contains(s, "..") {
		return false
	}
	for _, r := range s {
		if r < utf8.RuneSelf && !(r == '.' || isAtext(byte(r))) {
			return false
		}
	}
	return true
}

// isAtext reports whether c is an RFC 5322 §3.2.3 atext character.
func isAtext(c byte) bool {
	return 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' ||
		strings.IndexByte("!#$%&'*+-/=?^_`{|}~", c) >= 0
}
