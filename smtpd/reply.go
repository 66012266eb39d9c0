package smtpd

import (
	"errors"
	"fmt"
	"io"
	"net"
	"os"

	"github.com/emersion/go-smtp"

	"pushmail/mailstore"
)

// This file is the only place where smtpd chooses a reply code: the named
// replies below, and replyFor, which maps every error (mailstore's, the
// reading of DATA, authentication) to one of them. Replies are always
// *smtp.SMTPError values, never wrapped: go-smtp looks for that type to
// send a code of ours, and turns anything else at DATA into a permanent
// 554, which would bounce mail over a disk error.
//
// Enhanced status codes are RFC 3463's, as registered by RFC 5248.

func reply(code int, class, subject, detail int, text string) *smtp.SMTPError {
	return &smtp.SMTPError{Code: code, EnhancedCode: smtp.EnhancedCode{class, subject, detail}, Message: text}
}

// Replies to MAIL FROM.
var (
	// RFC 5321 §4.1.4: MAIL inside a transaction is a sequence error.
	replyNestedMail = reply(503, 5, 5, 1, "Nested MAIL command: send RSET first")
	// RCPT or DATA without a transaction: go-smtp checks for one itself,
	// except after STARTTLS, which ended it (session.startedTLS).
	replyNeedMail = reply(503, 5, 5, 1, "Need MAIL command first")
	// RFC 3207 §4.2: after STARTTLS the client starts over with EHLO.
	replyHeloAfterTLS = reply(503, 5, 5, 1, "Send EHLO again first: TLS has started")
	// RFC 4954 §6: submission requires AUTH before MAIL.
	replyAuthRequired = reply(530, 5, 7, 0, "Authentication required")
	// RFC 5321 §4.1.2 syntax, with no control characters: the sender is
	// copied into the Return-Path field.
	replyBadSender = reply(553, 5, 1, 7, "Bad sender address syntax")
	// Submission: the sender must be the user's own address, one of their
	// aliases, or either with a +tag.
	replySenderNotOwned = reply(553, 5, 7, 1, "Sender address not owned by the authenticated user")
	// RFC 8689 §4.1: REQUIRETLS only over a TLS connection.
	replyRequireTLSNeedsTLS = reply(530, 5, 7, 10, "REQUIRETLS needs a TLS connection: use STARTTLS")
	// Shutdown has begun: no new transactions (RFC 5321 §3.8).
	replyShuttingDown = reply(421, 4, 3, 2, "Service shutting down, try again later")
	// The store has no room for a message of the largest size: below its
	// free-space reserve or at its size cap (mailstore.ErrStorageFull from
	// SpaceCheck). RFC 5321 §4.2.2 "452 Requested action not taken:
	// insufficient system storage", one of MAIL's replies (§4.3.2), and
	// RFC 1870 §6.1's reply when the server cannot take a message for
	// now; RFC 3463 X.3.1 "mail system full". Temporary: the sender
	// retries once space is freed, and has sent no data for nothing.
	replyInsufficientStorage = reply(452, 4, 3, 1, "Insufficient system storage, try again later")
)

// Replies to RCPT TO.
var (
	// RFC 5321 §3.6.2, §7.1: mail for other domains is refused, never relayed.
	replyRelayDenied = reply(550, 5, 7, 1, "Relaying denied: this server accepts mail only for its own domains")
	// Submission: authenticated users still cannot send out of the server.
	replyNoOutbound = reply(550, 5, 7, 1, "Outbound relaying is not supported: this server delivers to its local users only")
	replyNoSuchUser = reply(550, 5, 1, 1, "No such user here")
	// Quoted local parts with specials, address literals, bad characters.
	replyBadRcpt = reply(553, 5, 1, 3, "Recipient address not accepted: want a plain local@domain address")
	// RFC 5891 §5.4: bad punycode in an A-label, a code point IDNA
	// disallows, a label breaking the bidi rule.
	replyBadIDN = reply(553, 5, 1, 3, "Recipient domain is not a valid internationalized domain name (IDNA, RFC 5891)")
	// RFC 6531 §3.4: a non-ASCII address needs MAIL FROM ... SMTPUTF8.
	replyNeedSMTPUTF8 = reply(553, 5, 6, 7, "Non-ASCII address requires the SMTPUTF8 parameter on MAIL FROM")
	// The recipient is at or over their quota (mailstore.ErrOverQuota),
	// at RCPT, at the end of DATA, or per recipient for LMTP. RFC 5321
	// §4.2.2 "452 Requested action not taken: insufficient system
	// storage"; RFC 3463 X.2.2 "mailbox full". Temporary, as RFC 3463
	// §3.3 advises for a full mailbox: the user may make room, and the
	// sender retries (and bounces after its queue lifetime if not).
	replyOverQuota = reply(452, 4, 2, 2, "Mailbox full (over quota), try again later")
)

// Replies to DATA and BDAT.
var (
	// RFC 1870 §6.3 with RFC 3463 X.3.4.
	replyTooBig = reply(552, 5, 3, 4, "Message too big")
	// RFC 5321 §4.5.3.1.6 limits text lines; go-smtp closes the connection.
	replyLineTooLong = reply(500, 5, 5, 2, "Line too long")
	// The client went away or reset during the transfer; no one reads it.
	replyTransferAborted = reply(451, 4, 4, 2, "Message transfer aborted")
	// DATA did not arrive within ReadTimeout (RFC 5321 §4.5.3.2.5-6);
	// RFC 3463 X.4.2: bad connection.
	replyDataTimeout = reply(451, 4, 4, 2, "Timeout waiting for message data")
	// The disk or the store's size cap is full. Temporary, so the sender
	// retries once space is freed. DESIGN.md gives every store failure one
	// reply, 451 4.3.0 (RFC 5321 §4.2.3 "local error in processing"; RFC
	// 3463 X.3.0 "other mail system status"), rather than 452 4.3.1: the
	// text says what happened, for the sender's logs.
	replyStorageFull = reply(451, 4, 3, 0, "Mail system full (insufficient storage), try again later")
	// Options.Budget is spent: the messages in transit hold all the
	// memory allowed for them. RFC 3463 X.3.1 "mail system full"; RFC
	// 5321 §4.2.3: 451 at MAIL and at the end of DATA, so the sender
	// retries later.
	replyNoResources = reply(451, 4, 3, 1, "Insufficient system resources, try again later")
)

// Replies to AUTH (RFC 4954 §6).
var (
	replyEncryptionRequired = reply(538, 5, 7, 11, "Encryption required for requested authentication mechanism: use STARTTLS")
	replyAuthFailed         = reply(535, 5, 7, 8, "Authentication credentials invalid")
	replyAuthzidDenied      = reply(535, 5, 7, 8, "Authorization identity must be empty or equal to the user name")
	replyAuthMalformed      = reply(501, 5, 5, 2, "Malformed authentication response")
	// Refused by the AuthLimiter, without a password check: too many
	// recent failures from the client's address or for the account.
	replyAuthTooMany = reply(454, 4, 7, 0, "Too many failed authentication attempts, try again later")
)

// Greetings of a connection over a limit. RFC 5321 §3.1: a server may
// answer the connection with 421 instead of 220.
var (
	// Options.MaxConnsPerIP.
	replyTooManyConns = reply(421, 4, 7, 0, "Too many connections from your address, try again later")
	// Options.MaxConns; RFC 3463 X.3.2: system not accepting network
	// messages.
	replyTooManyConnsTotal = reply(421, 4, 3, 2, "Too many connections, try again later")
	// An unauthenticated connection evicted to make room for a new one on
	// a full listener (see listener).
	replyEvicted = reply(421, 4, 3, 2, "Too many connections, closing the least active, try again later")
	// Options.MaxIdleCommands: RFC 3463 X.7.0, a policy status.
	replyTooManyIdleCommands = reply(421, 4, 7, 0, "Too many commands without a transaction")
)

// replyDelivered is the 250 at the end of DATA (and per recipient, for
// LMTP). go-smtp's own says "OK: queued", but nothing waits in a queue
// here: the message is in the recipients' mailboxes, on disk. The
// transaction id ties the sender's log line (Postfix logs the reply text)
// to ours.
func replyDelivered(id string) *smtp.SMTPError {
	return reply(250, 2, 0, 0, "Delivered (id "+id+")")
}

// replyTempFailure is the reply for every error this package does not
// recognise, chiefly the store's (closed, disk full, I/O): 451 4.3.0 so
// the client retries (RFC 5321 §4.2.5), with the id the cause is logged
// under. At AUTH, RFC 4954 §6 asks for 454 4.7.0 instead.
func replyTempFailure(st stage, id string) *smtp.SMTPError {
	if st == stageAuth {
		return reply(454, 4, 7, 0, "Temporary authentication failure, try again later (id "+id+")")
	}
	return reply(451, 4, 3, 0, "Temporary local error, try again later (id "+id+")")
}

// stage is the command an error happened in; the same error can need a
// different reply at each.
type stage int

const (
	stageMail stage = iota // MAIL FROM: the store's room, submission's sender
	stageRcpt
	stageData // reading DATA/BDAT, and store.Deliver
	stageAuth
)

func (st stage) String() string {
	return [...]string{"mail", "rcpt", "data", "auth"}[st]
}

// replyFor maps err, which happened at stage st, to a reply. A reply value
// passes through unchanged. An error it does not know is logged with id
// and becomes replyTempFailure.
func (ss *session) replyFor(st stage, err error, id string) *smtp.SMTPError {
	if err == nil {
		return nil
	}
	var se *smtp.SMTPError
	if errors.As(err, &se) { // ours, or go-smtp's ErrDataTooLarge
		return se
	}
	switch st {
	case stageMail:
		switch {
		case errors.Is(err, mailstore.ErrStorageFull):
			ss.log.Warn("mail refused: storage full", "id", id, "err", err)
			return replyInsufficientStorage
		case errors.Is(err, mailstore.ErrInvalidIDN):
			return replyBadSender
		case errors.Is(err, mailstore.ErrInvalidAddress),
			errors.Is(err, mailstore.ErrNotLocal),
			errors.Is(err, mailstore.ErrNoSuchUser):
			return replySenderNotOwned
		}
	case stageRcpt:
		switch {
		case errors.Is(err, mailstore.ErrInvalidIDN):
			return replyBadIDN
		case errors.Is(err, mailstore.ErrInvalidAddress):
			return replyBadRcpt
		case errors.Is(err, mailstore.ErrNotLocal):
			if ss.role == roleSubmission {
				return replyNoOutbound
			}
			return replyRelayDenied
		case errors.Is(err, mailstore.ErrNoSuchUser):
			return replyNoSuchUser
		case errors.Is(err, mailstore.ErrOverQuota):
			ss.log.Info("recipient over quota", "id", id, "err", err)
			return replyOverQuota
		}
	case stageData:
		switch {
		case errors.Is(err, mailstore.ErrTooBig):
			return replyTooBig
		case errors.Is(err, mailstore.ErrOverQuota):
			ss.log.Info("delivery over quota", "id", id, "err", err)
			return replyOverQuota
		case errors.Is(err, mailstore.ErrStorageFull):
			ss.log.Error("mail storage full", "id", id, "err", err)
			return replyStorageFull
		case errors.Is(err, mailstore.ErrNoSuchMailbox):
			// A recipient's account was deleted between RCPT and the end of
			// DATA: not a fault. Temporary, so the sender retries and then
			// learns at RCPT that the user is gone (550 5.1.1).
			ss.log.Info("recipient deleted during the transaction", "id", id, "err", err)
			return replyTempFailure(st, id)
		case errors.Is(err, smtp.ErrTooLongLine):
			return replyLineTooLong
		case errors.Is(err, smtp.ErrDataReset), errors.Is(err, io.ErrUnexpectedEOF),
			errors.Is(err, net.ErrClosed): // closed under the transfer, by us or forceClose
			ss.log.Debug("message transfer aborted", "id", id, "err", err)
			return replyTransferAborted
		case errors.Is(err, os.ErrDeadlineExceeded):
			ss.log.Debug("message transfer timed out", "id", id, "err", err)
			return replyDataTimeout
		}
	case stageAuth:
		if errors.Is(err, mailstore.ErrAuthFailed) {
			return replyAuthFailed
		}
	}
	ss.log.Error("temporary failure", "stage", st.String(), "id", id, "err", err)
	return replyTempFailure(st, id)
}

// replyLine formats r as one reply line, for the few places that write to
// a connection before go-smtp has it.
func replyLine(r *smtp.SMTPError, hostname string) string {
	e := r.EnhancedCode
	return fmt.Sprintf("%d %d.%d.%d %s %s\r\n", r.Code, e[0], e[1], e[2], hostname, r.Message)
}
