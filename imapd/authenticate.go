package imapd

import (
	"errors"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapserver"
	"github.com/emersion/go-sasl"
)

var _ imapserver.SessionSASL = (*session)(nil)

// AuthenticateMechanisms lists the SASL mechanisms of AUTHENTICATE
// (RFC 9051 §6.2.2), announced as AUTH=: PLAIN (RFC 4616). Login decides
// whether a password may be sent on the connection.
func (s *session) AuthenticateMechanisms() []string { return []string{sasl.Plain} }

// Authenticate starts an AUTHENTICATE exchange. It is imapserver's own
// PLAIN, except that a malformed response is answered BAD, not
// NO [SERVERBUG]: go-sasl's error is a plain error, which imapserver would
// take for a server fault.
func (s *session) Authenticate(mech string) (sasl.Server, error) {
	if mech != sasl.Plain {
		return nil, errSASLMechanism
	}
	return saslReplies{sasl.NewPlainServer(func(identity, username, password string) error {
		if identity != "" && identity != username {
			return errSASLIdentity
		}
		return s.Login(username, password)
	})}, nil
}

// saslReplies passes on the replies of Login and makes every other error
// of a sasl.Server errBadSASLResponse.
type saslReplies struct{ sasl.Server }

func (r saslReplies) Next(response []byte) (challenge []byte, done bool, err error) {
	challenge, done, err = r.Server.Next(response)
	var ie *imap.Error
	if err != nil && !errors.As(err, &ie) {
		err = errBadSASLResponse
	}
	return challenge, done, err
}
