// Package tlspolicy holds the TLS rules every pushmail listener shares.
// It imports nothing of pushmail's.
package tlspolicy

import (
	"crypto/tls"
	"slices"
)

// MinVersion is the oldest TLS version pushmail accepts: RFC 8996
// deprecates TLS 1.0 and 1.1.
const MinVersion = tls.VersionTLS12

// aeadSuites are the TLS 1.2 suites pushmail offers: ECDHE key exchange
// (forward secrecy) with an AEAD cipher only, as RFC 9325 §4.2 recommends.
// Go's defaults still include the CBC-mode suites with HMAC-SHA1 (issue
// 13); those are left out. TLS 1.3 suites are all AEAD and not
// configurable in crypto/tls, so this list does not touch them.
var aeadSuites = []uint16{
	tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
	tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
	tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
	tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
}

// CipherSuites returns the TLS 1.2 suites pushmail offers, a new slice
// each call.
func CipherSuites() []uint16 { return slices.Clone(aeadSuites) }

// Enforce returns c with MinVersion raised to at least MinVersion and its
// TLS 1.2 suites limited to CipherSuites() (a clone when anything changes,
// so the caller's config is left alone); nil stays nil. Suites c names
// that are in that list are kept, in c's order; if c names none of them,
// the whole list is used, never Go's defaults.
func Enforce(c *tls.Config) *tls.Config {
	if c == nil {
		return nil
	}
	suites := aeadOnly(c.CipherSuites)
	if c.MinVersion >= MinVersion && slices.Equal(suites, c.CipherSuites) {
		return c
	}
	c = c.Clone()
	c.MinVersion = max(c.MinVersion, MinVersion)
	c.CipherSuites = suites
	return c
}

// aeadOnly returns the members of suites that are in aeadSuites, or all
// of aeadSuites when there are none.
func aeadOnly(suites []uint16) []uint16 {
	var kept []uint16
	for _, s := range suites {
		if slices.Contains(aeadSuites, s) {
			kept = append(kept, s)
		}
	}
	if len(kept) == 0 {
		return CipherSuites()
	}
	return kept
}
