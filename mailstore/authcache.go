package mailstore

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"sync"
	"time"
)

// authCache remembers the passwords Authenticate has verified, so that a
// client that sends its password with every request (the HTTP API's
// Basic authentication, RFC 7617, on every call) costs one bcrypt
// comparison per authCacheTTL, not one per request: at the default cost
// that is tens of milliseconds of CPU, more than the request itself.
//
// An entry is a keyed digest (HMAC-SHA-256, under a random key of the
// process's) of the user's stored bcrypt hash and the password, and only
// ever answers "this password matches this hash": a password change
// stores a new hash (a new salt), which no entry names, so the old
// password stops working at once; a deleted user has no hash to match.
// Failures are never cached: every wrong password pays the full bcrypt
// comparison, and the callers' throttling (internal/authlimit) sees
// every attempt as before. Neither passwords nor their hashes are kept.
// The zero value is ready to use; it is safe for concurrent use.
type authCache struct {
	once sync.Once
	key  [32]byte

	mu      sync.Mutex
	entries map[[sha256.Size]byte]time.Time // digest -> when it expires
}

// authCacheTTL is how long a verified password is remembered.
const authCacheTTL = 5 * time.Minute

// authCacheMax bounds the entries: one per (user, password) verified in
// the last authCacheTTL. When it is full, the expired ones go, and if
// none has, all of them: the next logins pay bcrypt again.
const authCacheMax = 10_000

// digest returns the entry for password against the stored hash.
func (c *authCache) digest(hash, password string) [sha256.Size]byte {
	c.once.Do(func() {
		if _, err := rand.Read(c.key[:]); err != nil {
			panic("mailstore: no random key for the login cache: " + err.Error()) // crypto/rand does not fail on Linux
		}
	})
	m := hmac.New(sha256.New, c.key[:])
	m.Write([]byte(hash))
	m.Write([]byte{0}) // bcrypt hashes hold no NUL: hash and password cannot run together
	m.Write([]byte(password))
	var d [sha256.Size]byte
	m.Sum(d[:0])
	return d
}

// verified reports whether password was found to match hash less than
// authCacheTTL before now.
func (c *authCache) verified(hash, password string, now time.Time) bool {
	d := c.digest(hash, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	exp, ok := c.entries[d]
	if ok && !now.Before(exp) {
		delete(c.entries, d)
		return false
	}
	return ok
}

// remember records that password matches hash, as of now.
func (c *authCache) remember(hash, password string, now time.Time) {
	d := c.digest(hash, password)
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.entries == nil {
		c.entries = map[[sha256.Size]byte]time.Time{}
	}
	if _, ok := c.entries[d]; !ok && len(c.entries) >= authCacheMax {
		for k, exp := range c.entries {
			if !now.Before(exp) {
				delete(c.entries, k)
			}
		}
		if len(c.entries) >= authCacheMax {
			clear(c.entries)
		}
	}
	c.entries[d] = now.Add(authCacheTTL)
}
