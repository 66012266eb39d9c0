package imapd

import (
	"context"
	"errors"
	"net"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
)

// Login checks a LOGIN or AUTHENTICATE PLAIN password against the store.
// The AuthLimiter may refuse the attempt without a check (too many recent
// failures from the client's address or for the account); a failure is
// answered only after the delay it gives.
func (s *session) Login(username, password string) error {
	// RFC 9051 §6.2.3, §11.1: no cleartext passwords on an unprotected
	// link.
	if !s.authAllowed() {
		s.log.Debug("plaintext login refused")
		return errPrivacyRequired
	}
	// Only a well-formed address can name an account; anything else is
	// counted against the client's address alone.
	account, err := mailstore.NormalizeAddress(username)
	if err != nil {
		account = ""
	}
	if v := s.srv.logins.Check(s.ip, account, time.Now()); v != authlimit.Allowed {
		s.log.Info("login refused: too many failures", "user", username, "why", v.String())
		return &imap.Error{
			Type: imap.StatusResponseTypeNo,
			Code: imap.ResponseCodeUnavailable,
			Text: "Too many failed logins, try again later",
		}
	}
	// One row by key, then bcrypt: not worth cancelling; and a query on
	// the session's context leaves on it, for the session's life, the
	// channel and the map of children that the driver's watch of it
	// made (~360 bytes a hibernating session would keep, issue 15).
	u, err := s.srv.store.Authenticate(context.WithoutCancel(s.ctx), username, password)
	if errors.Is(err, mailstore.ErrAuthFailed) {
		delay := s.srv.logins.Failed(s.ip, account, time.Now())
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
	if !s.srv.loggedIn(s) {
		// Evicted while the password was checked: the connection is
		// being closed with a BYE.
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: imap.ResponseCodeUnavailable, Text: "Server full, try again later"}
	}
	s.srv.logins.Succeeded(s.ip, account, time.Now())
	s.authed.Store(true)
	s.releaseLoginTimer()
	s.user = &u
	s.log = s.log.With("user", u.Address)
	s.log.Debug("logged in")
	return nil
}

// authAllowed reports whether the connection may carry a password.
func (s *session) authAllowed() bool {
	return authAllowed(s.nc, s.srv.opts.AllowInsecureAuth)
}

// authAllowed reports whether a password may be sent over nc: it is TLS
// (implicit or after STARTTLS), or its peer is on loopback, or the
// operator allowed cleartext.
func authAllowed(nc net.Conn, allowInsecure bool) bool {
	if allowInsecure {
		return true
	}
	if connIsTLS(nc) {
		return true
	}
	ip := net.ParseIP(remoteIP(nc.RemoteAddr()))
	return ip != nil && ip.IsLoopback()
}
