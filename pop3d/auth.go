package pop3d

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"net"
	"strings"
	"time"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
)

// userCmd is USER (RFC 1939 §7): it remembers the name for PASS. A
// connection that may not carry a password is refused here already, so
// that the client does not send one.
func (s *session) userCmd(arg string) error {
	if !s.authAllowed() {
		s.log.Debug("plaintext USER refused")
		return errPlaintext
	}
	name := strings.TrimSpace(arg)
	if name == "" {
		return errSyntax
	}
	s.userArg = name
	s.ok("Send your password")
	return nil
}

// pass is PASS (RFC 1939 §7). The password is the rest of the line,
// spaces included ("a POP3 server may treat spaces in the argument as
// part of the password"). Failure returns to USER: the name is
// forgotten.
func (s *session) pass(arg string) error {
	if s.userArg == "" {
		return errNoUser
	}
	name := s.userArg
	s.userArg = ""
	if err := s.login(name, arg); err != nil {
		return err
	}
	s.okf("Logged in, %d messages (%d octets)", s.drop.count(), s.drop.size())
	return nil
}

// auth is AUTH (RFC 5034) with the one mechanism offered, PLAIN (RFC
// 4616), its initial response on the command line or after a "+ "
// continuation. AUTH without an argument lists the mechanisms, as many
// servers do for clients that probe that way.
func (s *session) auth(arg string) error {
	mech, initial, hasInitial := strings.Cut(arg, " ")
	if mech == "" {
		s.ok("")
		if s.authAllowed() {
			s.line("PLAIN")
		}
		s.end()
		return nil
	}
	if !strings.EqualFold(mech, "PLAIN") {
		return errMechanism
	}
	if !s.authAllowed() {
		s.log.Debug("plaintext AUTH refused")
		return errPlaintext
	}
	if !hasInitial {
		// RFC 5034 §4: "+" SP and the base64 challenge, empty for PLAIN.
		s.bw.WriteString("+ \r\n")
		if err := s.bw.Flush(); err != nil {
			return err
		}
		// The session's end (Shutdown, an eviction, the login timer)
		// ends the wait: the reader holds wmu, which they need.
		stop := context.AfterFunc(s.ctx, func() {
			if err := s.raw.SetReadDeadline(time.Now()); err != nil {
				s.log.Debug("cut AUTH read", "err", err)
			}
		})
		line, err := s.readLine()
		stop()
		if err != nil {
			// Where the response ends is lost (too long), or the
			// connection failed: either way the session ends.
			s.log.Debug("AUTH response", "err", err)
			s.byeLocked("", "Authentication response not read")
			return nil
		}
		if line == "*" {
			return errAuthCancelled
		}
		initial = line
	} else if initial == "=" {
		// RFC 5034 §4: "=" is an empty initial response.
		initial = ""
	}
	resp, err := base64.StdEncoding.DecodeString(initial)
	if err != nil {
		return errBadSASL
	}
	// RFC 4616 §2: [authzid] NUL authcid NUL passwd.
	parts := bytes.Split(resp, []byte{0})
	if len(parts) != 3 || len(parts[1]) == 0 {
		return errBadSASL
	}
	authzid, authcid, password := string(parts[0]), string(parts[1]), string(parts[2])
	if authzid != "" && authzid != authcid {
		return errAuthzid
	}
	if err := s.login(authcid, password); err != nil {
		return err
	}
	s.okf("Logged in, %d messages (%d octets)", s.drop.count(), s.drop.size())
	return nil
}

// login checks a password and opens the maildrop: the snapshot of INBOX
// the session will work on (RFC 1939 §7: the server acquires the
// maildrop when the password is accepted). The AuthLimiter may refuse
// the attempt without a check; a failure is answered only after the
// delay it gives.
func (s *session) login(username, password string) error {
	if !s.authAllowed() {
		return errPlaintext
	}
	// Only a well-formed address can name an account; anything else
	// counts against the client's address alone.
	account, err := mailstore.NormalizeAddress(username)
	if err != nil {
		account = ""
	}
	if v := s.srv.logins.Check(s.ip, account, time.Now()); v != authlimit.Allowed {
		s.log.Info("login refused: too many failures", "user", username, "why", v.String())
		return errTooManyFails
	}
	u, err := s.srv.store.Authenticate(s.ctx, username, password)
	if errors.Is(err, mailstore.ErrAuthFailed) {
		delay := s.srv.logins.Failed(s.ip, account, time.Now())
		s.log.Info("login failed", "user", username, "delay", delay)
		s.srv.opts.Metrics.loginFailed()
		t := time.NewTimer(delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-s.ctx.Done():
		}
	}
	if err != nil {
		return err
	}
	drop, err := s.openMaildrop(u)
	if err != nil {
		return err
	}
	if !s.srv.loggedIn(s) {
		// Evicted while the password was checked: the connection is
		// being closed.
		return errEvicted
	}
	s.srv.logins.Succeeded(s.ip, account, time.Now())
	s.authed.Store(true)
	s.releaseLoginTimer()
	s.user = &u
	s.drop = drop
	s.state = stateTransaction
	s.log = s.log.With("user", u.Address)
	s.log.Debug("logged in", "messages", drop.count())
	return nil
}

// authAllowed reports whether the connection may carry a password: it is
// TLS (implicit or after STLS), or its peer is on loopback, or the
// operator allowed cleartext.
func (s *session) authAllowed() bool {
	if s.srv.opts.AllowInsecureAuth || isTLS(s.nc) {
		return true
	}
	ip := net.ParseIP(s.ip)
	return ip != nil && ip.IsLoopback()
}
