package imapd

import (
	"context"
	"errors"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// errRole says what a mailbox named in the failed command was for, where
// one store error needs different replies.
type errRole int

const (
	roleMailbox errRole = iota // the mailbox the command acts on
	// roleTarget is the destination of COPY, MOVE or APPEND: a missing one
	// is NO [TRYCREATE] (RFC 9051 §6.3.12, §6.4.7).
	roleTarget
	// roleCreateUse is CREATE with USE: once the name has been validated,
	// ErrInvalidName means the attribute (RFC 6154 §3: NO [USEATTR]).
	roleCreateUse
)

// Replies used outside the store mapping.
var (
	errReadOnly = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeCannot,
		Text: "Mailbox is read-only (EXAMINE)",
	}
	errBadSeqNum = &imap.Error{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: "Message sequence number out of range",
	}
	errShuttingDown = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeUnavailable,
		Text: "Server shutting down",
	}
	// errAccountGone answers the command of a session whose account was
	// deleted. The client never reads it: accountGone has said BYE
	// (RFC 9051 §7.1.5) and closed the connection.
	errAccountGone = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeUnavailable,
		Text: "Account no longer exists",
	}
	// errMailboxGoneReply answers the command of a session whose selected
	// mailbox was deleted; like errAccountGone, the client never reads it.
	errMailboxGoneReply = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeNonExistent,
		Text: "Selected mailbox was deleted",
	}
	// errRecentInRev2 answers STATUS RECENT and SEARCH RECENT, NEW or
	// OLD after ENABLE IMAP4rev2: RFC 9051 removed them from its grammar
	// (§9 status-att, search-key; Appendix E), so they are syntax errors.
	errRecentInRev2 = &imap.Error{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: "RECENT, NEW and OLD are not part of IMAP4rev2 (RFC 9051)",
	}
	errQResyncNotEnabled = &imap.Error{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: "QRESYNC needs ENABLE QRESYNC first (RFC 7162)",
	}
	// RFC 7162 §3.2.6: VANISHED only in UID FETCH, with CHANGEDSINCE,
	// after ENABLE QRESYNC.
	errVanishedMisused = &imap.Error{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: "VANISHED needs UID FETCH, CHANGEDSINCE and ENABLE QRESYNC (RFC 7162)",
	}
	// RFC 9394 §3.2: the PARTIAL fetch modifier is defined for UID FETCH;
	// positions in a set of sequence numbers are the client's own
	// arithmetic, so plain FETCH with it is a client error.
	errPartialNeedsUID = &imap.Error{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: "the PARTIAL fetch modifier needs UID FETCH (RFC 9394)",
	}
	errServerBug = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeServerBug,
		Text: "Internal server error, try again later",
	}
	// RFC 9051 §6.2.2: a malformed AUTHENTICATE response is the client's
	// error (BAD), not the server's.
	errBadSASLResponse = &imap.Error{
		Type: imap.StatusResponseTypeBad,
		Code: imap.ResponseCodeClientBug,
		Text: "Malformed SASL response",
	}
	errAuthFailed = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeAuthenticationFailed,
		Text: "Authentication failed",
	}
	// RFC 9051 §6.2.3, §11.1: no cleartext passwords on an unprotected
	// link.
	errPrivacyRequired = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodePrivacyRequired,
		Text: "TLS is required to authenticate",
	}
	errSASLMechanism = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Text: "SASL mechanism not supported",
	}
	// RFC 4616 §2: acting for another identity is not supported.
	errSASLIdentity = &imap.Error{
		Type: imap.StatusResponseTypeNo,
		Code: imap.ResponseCodeAuthorizationFailed,
		Text: "SASL authorization identity not supported",
	}
)

// reply maps an error from the mailstore (or from the session's own
// checks) to the IMAP reply; this is the only place that chooses replies
// for store errors. Errors nobody expects become NO [SERVERBUG] with a
// generic text, and their cause is logged with the connection id.
func (s *session) reply(err error, role errRole) error {
	if err == nil {
		return nil
	}
	var ie *imap.Error
	if errors.As(err, &ie) {
		return ie
	}
	no := func(code imap.ResponseCode, text string) error {
		s.log.Debug("command refused", "code", code, "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeNo, Code: code, Text: text}
	}
	switch {
	case errors.Is(err, mailstore.ErrNoSuchUser):
		// The logged-in account was deleted (checkAccount).
		return s.accountGone(err)
	case errors.Is(err, mailstore.ErrNoSuchMailbox) && s.accountDeleted():
		// Deleted since this command's checkAccount.
		return s.accountGone(err)
	case errors.Is(err, mailstore.ErrAuthFailed):
		return errAuthFailed
	case errors.Is(err, mailstore.ErrNoSuchMailbox) && role == roleTarget:
		return no(imap.ResponseCodeTryCreate, "No such mailbox")
	case errors.Is(err, mailstore.ErrNoSuchMailbox):
		return no(imap.ResponseCodeNonExistent, "No such mailbox")
	case errors.Is(err, mailstore.ErrMailboxExists):
		return no(imap.ResponseCodeAlreadyExists, "Mailbox already exists")
	case errors.Is(err, mailstore.ErrInvalidName) && role == roleCreateUse:
		return no("USEATTR", "Unsupported special-use attribute")
	case errors.Is(err, mailstore.ErrInvalidName):
		return no(imap.ResponseCodeCannot, "Invalid mailbox name")
	case errors.Is(err, mailstore.ErrProtected):
		return no(imap.ResponseCodeCannot, "Operation not allowed on this mailbox")
	case errors.Is(err, mailstore.ErrTooBig):
		// RFC 7889 §4: a message over the limit is NO [TOOBIG].
		return no(imap.ResponseCodeTooBig, "Message too big")
	case errors.Is(err, mailstore.ErrStorageFull):
		// RFC 9208 §4.3: OVERQUOTA, also for a full store: the client
		// should not retry until space is freed.
		s.log.Error("mail storage full", "err", err)
		return no(imap.ResponseCodeOverQuota, "Mail storage is full")
	case errors.Is(err, mailstore.ErrOverQuota):
		// RFC 9208 §4.3: APPEND, COPY (and MOVE) past the user's limit.
		return no(imap.ResponseCodeOverQuota, "Over quota: delete mail to make room")
	case errors.Is(err, mailstore.ErrMetadataTooBig):
		// RFC 5464 §4.3: the largest value the server takes.
		return no(imap.ResponseCode(metadataMaxSize.Name+" "+metadataMaxSize.Args), "Metadata value too big")
	case errors.Is(err, mailstore.ErrMetadataTooMany):
		return no("METADATA TOOMANY", "Too many metadata entries")
	case errors.Is(err, mailstore.ErrInvalidEntry):
		return errInvalidEntry
	case errors.Is(err, mailstore.ErrNoSuchMessage):
		return no(imap.ResponseCodeNonExistent, "No such message")
	case errors.Is(err, mailstore.ErrInvalidFlag):
		// RFC 9051 §9: a flag is an atom; \Recent cannot be stored.
		s.log.Debug("invalid flag", "err", err)
		return &imap.Error{Type: imap.StatusResponseTypeBad, Code: imap.ResponseCodeClientBug, Text: "Invalid flag"}
	case errors.Is(err, mailstore.ErrClosed),
		errors.Is(err, context.Canceled) && s.ctx.Err() != nil:
		return errShuttingDown
	}
	if s.accountDeleted() {
		// For example CREATE's insert, whose user row has just gone:
		// "FOREIGN KEY constraint failed".
		return s.accountGone(err)
	}
	s.log.Error("store failure", "err", err)
	return errServerBug
}
