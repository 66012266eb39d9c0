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
	// ErrOverQuota: the write would take the user past their storage or
	// message limit (RFC 9208; quota.go). Nothing was stored. Deleting
	// mail, or a higher limit, makes room.
	ErrOverQuota = errors.New("over quota")
	// Annotations (RFC 5464; metadata.go): a malformed entry name, a
	// value over MaxMetadataValue, more than MaxMetadataEntries entries.
	ErrInvalidEntry    = errors.New("invalid metadata entry name")
	ErrMetadataTooBig  = errors.New("metadata value too big")
	ErrMetadataTooMany = errors.New("too many metadata entries")
	// ErrNoSuchEmail: the account has no email with that id (emails.go).
	ErrNoSuchEmail = errors.New("no such email")
	// ErrCannotCalculateChanges: the account change log (account.go)
	// cannot say what changed since the state asked about: its
	// tombstones from then are gone (the horizon is past it), or the
	// state is not one the account ever had (RFC 8620 §5.2,
	// cannotCalculateChanges).
	ErrCannotCalculateChanges = errors.New("cannot calculate changes")
)
