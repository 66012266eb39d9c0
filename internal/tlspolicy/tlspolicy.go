// Package tlspolicy holds the TLS rules every pushmail listener shares.
// It imports nothing of pushmail's.
package tlspolicy

import "crypto/tls"

// MinVersion is the oldest TLS version pushmail accepts: RFC 8996
// deprecates TLS 1.0 and 1.1.
const MinVersion = tls.VersionTLS12

// Enforce returns c with MinVersion raised to at least MinVersion (a clone
// when it changes, so the caller's config is left alone); nil stays nil.
func Enforce(c *tls.Config) *tls.Config {
	if c == nil || c.MinVersion >= MinVersion {
		return c
	}
	c = c.Clone()
	c.MinVersion = MinVersion
	return c
}
