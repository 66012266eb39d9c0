package imapd

import (
	"crypto/tls"
	"errors"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// Login checks a LOGIN or AUTHENTICATE PLAIN password against the store.
func (s *session) Login(username, password string) error {
	// RFC 9051 §6.2.3, §11.1: no cleartext passwords on an unprotected
	// link. imapserver's switch is global, so the rule is applied here.
	if !s.authAllowed() {
		s.log.Debug("plaintext login refused")
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodePrivacyRequired,
			Text: "TLS is required to authenticate",
		}
	}
	keys := []string{"ip:" + s.ip, "user:" + strings.ToLower(username)}
	if s.srv.logins.blocked(keys, time.Now()) {
		s.log.Info("login refused: too many failures", "user", username)
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeUnavailable,
			Text: "Too many failed logins, try again later",
		}
	}
	u, err := s.srv.store.Authenticate(s.ctx, username, password)
	if errors.Is(err, mailstore.ErrAuthFailed) {
		delay := s.srv.logins.fail(keys, time.Now())
		s.log.Info("login failed", "user", username, "delay", delay)
		// Slow the client down before it may guess again.
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
		}
	}
	if err != nil {
		return s.reply(err, roleMailbox)
	}
	s.user = &u
	s.log = s.log.With("user", u.Address)
	s.log.Debug("logged in")
	return nil
}

// authAllowed reports whether the connection may carry a password.
func (s *session) authAllowed() bool {
	return authAllowed(s.conn.NetConn(), s.srv.opts.AllowInsecureAuth)
}

// authAllowed reports whether a password may be sent over nc: it is TLS
// (implicit or after STARTTLS), or its peer is on loopback, or the
// operator allowed cleartext.
func authAllowed(nc net.Conn, allowInsecure bool) bool {
	if allowInsecure {
		return true
	}
	if _, ok := nc.(*tls.Conn); ok {
		return true
	}
	ip := net.ParseIP(remoteIP(nc.RemoteAddr()))
	return ip != nil && ip.IsLoopback()
}

// Login throttling. Each failure for a client address or an account name
// doubles the delay before the next reply, up to loginDelayMax; after
// loginMaxFailures within loginWindow the key is refused outright until
// the window passes. Nothing about success is recorded.
const (
	loginDelayBase   = 250 * time.Millisecond
	loginDelayMax    = 8 * time.Second
	loginWindow      = 15 * time.Minute
	loginMaxFailures = 30
	loginMaxKeys     = 100000 // bound on remembered keys
)

// loginDelay is the pause after the n-th recent failure (n >= 1).
func loginDelay(n int) time.Duration {
	d := loginDelayBase
	for i := 1; i < n && d < loginDelayMax; i++ {
		d *= 2
	}
	return min(d, loginDelayMax)
}

// loginLimiter counts recent login failures per key. It is safe for
// concurrent use.
type loginLimiter struct {
	mu   sync.Mutex
	keys map[string]*loginFailures
}

type loginFailures struct {
	n    int
	last time.Time
}

func newLoginLimiter() *loginLimiter {
	return &loginLimiter{keys: make(map[string]*loginFailures)}
}

// countLocked returns the recent failures of key, forgetting old ones.
func (l *loginLimiter) countLocked(key string, now time.Time) int {
	f := l.keys[key]
	if f == nil {
		return 0
	}
	if now.Sub(f.last) > loginWindow {
		delete(l.keys, key)
		return 0
	}
	return f.n
}

// blocked reports whether any key has reached loginMaxFailures.
func (l *loginLimiter) blocked(keys []string, now time.Time) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, k := range keys {
		if l.countLocked(k, now) >= loginMaxFailures {
			return true
		}
	}
	return false
}

// fail records a failure for each key and returns the delay to impose.
func (l *loginLimiter) fail(keys []string, now time.Time) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.keys) >= loginMaxKeys {
		for k := range l.keys {
			l.countLocked(k, now) // drops expired entries
		}
	}
	n := 0
	for _, k := range keys {
		c := l.countLocked(k, now) + 1
		if len(l.keys) < loginMaxKeys || l.keys[k] != nil {
			l.keys[k] = &loginFailures{n: c, last: now}
		}
		n = max(n, c)
	}
	return loginDelay(n)
}
