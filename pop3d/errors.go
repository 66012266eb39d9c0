package pop3d

import (
	"context"
	"errors"

	"pushmail/mailstore"
)

// Error is a negative reply: "-ERR [Code] Text". Code is an RFC 2449 §8
// extended response code, or "" for none.
type Error struct {
	Code string
	Text string
}

func (e *Error) Error() string {
	if e.Code == "" {
		return e.Text
	}
	return "[" + e.Code + "] " + e.Text
}

// Response codes (RFC 2449 §8, RFC 3206 §4), announced by CAPA's
// RESP-CODES and AUTH-RESP-CODE.
const (
	// codeAuth: the failure is due to the credentials (or their use on
	// this connection); the client should not retry them unchanged.
	codeAuth = "AUTH"
	// codeSysTemp: a temporary problem of the server; retry later.
	codeSysTemp = "SYS/TEMP"
	// codeSysPerm: a problem of the server that retrying will not fix.
	codeSysPerm = "SYS/PERM"
)

// Replies used outside the store mapping.
var (
	errUnknownCommand = &Error{Text: "Unknown command"}
	errWrongState     = &Error{Text: "Command not valid in this state"}
	errSyntax         = &Error{Text: "Syntax error"}
	errNoSuchMessage  = &Error{Text: "No such message"}
	errDeleted        = &Error{Text: "Message already deleted"}
	// The message was expunged (over IMAP) since the snapshot.
	errMessageGone = &Error{Text: "Message no longer exists"}
	// RFC 3206 §4: AUTH on every credentials failure (RFC 3206 §6,
	// AUTH-RESP-CODE: a code on every PASS or AUTH failure).
	errAuthFailed = &Error{Code: codeAuth, Text: "Authentication failed"}
	// RFC 2595 §2, DESIGN.md §5: no cleartext password on an
	// unprotected link. Dovecot answers the same code.
	errPlaintext = &Error{Code: codeAuth, Text: "Plaintext authentication disallowed on non-secure connections; use STLS"}
	// RFC 4616 §2: acting for another identity is not supported.
	errAuthzid      = &Error{Code: codeAuth, Text: "SASL authorization identity not supported"}
	errTooManyFails = &Error{Code: codeSysTemp, Text: "Too many failed logins, try again later"}
	errEvicted      = &Error{Code: codeSysTemp, Text: "Server full, try again later"}
	errShuttingDown = &Error{Code: codeSysTemp, Text: "Server shutting down"}
	errServerFault  = &Error{Code: codeSysTemp, Text: "Internal server error, try again later"}
	errNoMaildrop   = &Error{Code: codeSysPerm, Text: "Maildrop not available"}
	// RFC 5034 §4: "*" cancels the exchange, which fails.
	errAuthCancelled = &Error{Text: "Authentication cancelled"}
	errBadSASL       = &Error{Text: "Malformed SASL response"}
	errMechanism     = &Error{Text: "Unsupported SASL mechanism"}
	errNoUser        = &Error{Text: "USER first"}
	errTLSActive     = &Error{Text: "Command not permitted when TLS active"}
	errNoTLS         = &Error{Text: "STLS not available"}
)

// reply maps an error from the mailstore (or the session's own checks)
// to the -ERR reply; this is the only place that chooses replies for
// store errors. Errors nobody expects become -ERR [SYS/TEMP] with a
// generic text, their cause logged with the connection id.
func (s *session) reply(err error) *Error {
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, mailstore.ErrAuthFailed):
		return errAuthFailed
	case errors.Is(err, mailstore.ErrClosed),
		errors.Is(err, context.Canceled) && s.ctx.Err() != nil:
		return errShuttingDown
	case errors.Is(err, mailstore.ErrNoSuchUser), errors.Is(err, mailstore.ErrNoSuchMailbox):
		// The account was deleted meanwhile, or it has no INBOX.
		s.log.Info("maildrop not available", "err", err)
		return errNoMaildrop
	}
	s.log.Error("store failure", "err", err)
	return errServerFault
}
