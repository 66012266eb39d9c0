package mailstore

import "errors"

// Sentinel errors. Callers test them with errors.Is; the protocol packages
// map them to replies in one place each.
var (
	ErrClosed         = errors.New("mailstore: store closed")
	ErrSchemaTooNew   = errors.New("mailstore: database schema is newer than this pushmail")
	ErrInvalidAddress = errors.New("invalid address")
	// ErrInvalidIDN: a domain is not a valid internationalized domain
	// name (RFC 5891): bad punycode, a disallowed code point. It comes
	// wrapped together with ErrInvalidAddress.
	ErrInvalidIDN    = errors.New("invalid internationalized domain name")
	ErrNoSuchUser    = errors.New("no such user")
	ErrUserExists    = errors.New("user already exists")
	ErrNotLocal      = errors.New("domain is not local")
	ErrAuthFailed    = errors.New("authentication failed")
	ErrNoSuchMailbox = errors.New("no such mailbox")
	ErrMailboxExists = errors.New("mailbox already exists")
	ErrInvalidName   = errors.New("invalid mailbox name")
	ErrProtected     = errors.New("operation not allowed on this mailbox")
	ErrNoSuchMessage = errors.New("no such message")
	ErrTooBig        = errors.New("message too big")
	// ErrStorageFull: the disk is full, or a write that adds mail would
	// pass the store's reserve (Options.MinFreeBytes) or cap
	// (Options.MaxDatabaseBytes). It is temporary from a sender's point
	// of view: space may be freed.
	ErrStorageFull = errors.New("mail storage full")
)
