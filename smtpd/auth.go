package smtpd

import (
	"errors"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"pushmail/internal/authlimit"
	"pushmail/mailstore"
)

var _ smtp.AuthSession = (*submissionSession)(nil)

// submissionSession is a session that offers AUTH (RFC 4954): only the
// submission role has one, so the MX and LMTP roles do not advertise AUTH.
type submissionSession struct{ *session }

// AuthMechanisms lists PLAIN (RFC 4616) and LOGIN where passwords may be
// sent, and nothing elsewhere, so EHLO does not offer AUTH on a plaintext
// remote connection (RFC 4954 §4, DESIGN.md §5).
func (ss *submissionSession) AuthMechanisms() []string {
	if !ss.authAllowed() {
		return nil
	}
	return []string{sasl.Plain, sasl.Login}
}

// Auth starts an exchange for mech.
func (ss *submissionSession) Auth(mech string) (sasl.Server, error) {
	if ss.tc.awaitingHelo() {
		return nil, replyHeloAfterTLS
	}
	if !ss.authAllowed() {
		return nil, replyEncryptionRequired
	}
	switch mech {
	case sasl.Plain:
		return saslReplies{sasl.NewPlainServer(ss.authenticate)}, nil
	case sasl.Login:
		return saslReplies{&loginServer{authenticate: ss.authenticate}}, nil
	}
	return nil, smtp.ErrAuthUnknownMechanism
}

// authAllowed reports whether a password may be sent on this session:
// after STARTTLS, from a loopback address or unix socket, or when the
// operator allows it everywhere.
func (ss *submissionSession) authAllowed() bool {
	return ss.tls != nil || ss.srv.opts.AllowInsecureAuth || ss.srv.loopback(ss.remote)
}

// authenticate checks a password with the store. The AuthLimiter may
// refuse the attempt without a check (too many recent failures from the
// client's address or for the account); a failure is answered only after
// the delay it gives.
func (ss *submissionSession) authenticate(identity, username, password string) error {
	// RFC 4616 §2: an authorization identity other than the user's own
	// would mean acting for someone else, which is not supported.
	if identity != "" && identity != username {
		return replyAuthzidDenied
	}
	ip := ipKey(ss.remote)
	if ip == "" {
		ip = "local"
	}
	// Only a well-formed address can name an account; anything else is
	// counted against the address alone.
	account, err := mailstore.NormalizeAddress(username)
	if err != nil {
		account = ""
	}
	if v := ss.srv.auth.Check(ip, account, time.Now()); v != authlimit.Allowed {
		ss.log.Info("authentication refused: too many failures", "user", username, "why", v.String())
		return replyAuthTooMany
	}
	u, err := ss.srv.store.Authenticate(ss.ctx, username, password)
	if err == nil {
		ss.srv.auth.Succeeded(ip, account, time.Now())
		ss.tc.authenticated()
		ss.mu.Lock()
		ss.user = &u
		ss.mu.Unlock()
		ss.log.Info("authenticated", "user", u.Address)
		return nil
	}
	if errors.Is(err, mailstore.ErrAuthFailed) {
		delay := ss.srv.auth.Failed(ip, account, time.Now())
		ss.log.Info("authentication failed", "user", username, "delay", delay)
		timer := time.NewTimer(delay)
		select {
		case <-timer.C:
		case <-ss.ctx.Done():
			timer.Stop()
		}
	}
	return ss.replyFor(stageAuth, err, ss.cid)
}

// saslReplies makes the errors of a sasl.Server replies: go-sasl's own
// (a malformed PLAIN response) would reach the client as raw text.
type saslReplies struct{ sasl.Server }

func (s saslReplies) Next(response []byte) (challenge []byte, done bool, err error) {
	challenge, done, err = s.Server.Next(response)
	if err != nil {
		if _, ok := err.(*smtp.SMTPError); !ok { // go-smtp checks the type, not a chain
			err = replyAuthMalformed
		}
	}
	return challenge, done, err
}

// loginServer is the server side of the LOGIN mechanism
// (draft-murchison-sasl-login): "Username:", then "Password:". go-sasl
// has only the client side. An initial response is the user name.
type loginServer struct {
	authenticate func(identity, username, password string) error
	step         int
	username     string
}

func (l *loginServer) Next(response []byte) (challenge []byte, done bool, err error) {
	switch l.step {
	case 0:
		if response == nil {
			l.step = 1
			return []byte("Username:"), false, nil
		}
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 1:
		l.username, l.step = string(response), 2
		return []byte("Password:"), false, nil
	case 2:
		l.step = 3
		return nil, true, l.authenticate("", l.username, string(response))
	}
	return nil, false, replyAuthMalformed
}
