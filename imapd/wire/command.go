package wire

import "time"

// Command is one client command. Name is upper case without "UID"; UID
// is set for the UID forms (RFC 9051 §6.4.9). Args is nil for commands
// without arguments, else the pointer type named after the command.
type Command struct {
	Tag  string
	Name string
	UID  bool
	Args any
}

// Authenticate is AUTHENTICATE (RFC 9051 §6.2.2) with SASL-IR's initial
// response (RFC 4959 §3): Initial is nil without one, empty for "=".
type Authenticate struct {
	Mechanism string // upper case
	Initial   []byte // decoded from base64
}

// Login is LOGIN (RFC 9051 §6.2.3).
type Login struct{ Username, Password string }

// Enable is ENABLE (RFC 5161 §3.1): capability names in upper case.
type Enable struct{ Caps []string }

// Select is SELECT or EXAMINE (RFC 9051 §6.3.2, §6.3.3).
type Select struct {
	Mailbox   string
	CondStore bool     // the CONDSTORE select-param (RFC 7162 §3.1.8)
	QResync   *QResync // the QRESYNC select-param (RFC 7162 §3.2.5), nil without
}

// QResync is SELECT's QRESYNC parameter (RFC 7162 §3.2.5): the client's
// last known UIDVALIDITY and modseq, and optionally the UIDs it knows
// (KnownUIDs.Ranges nil when absent) and pairs of sequence numbers and
// UIDs it knows them by (SeqMatch nil when absent; its two sets name the
// same number of messages, ascending, which the parser does not check).
// None of the sets holds "*" or "$".
type QResync struct {
	UIDValidity uint32
	ModSeq      uint64
	KnownUIDs   NumSet
	SeqMatch    *SeqMatch
}

// SeqMatch is QRESYNC's seq-match-data (RFC 7162 §3.2.5.2).
type SeqMatch struct{ Seqs, UIDs NumSet }

// Create is CREATE (RFC 9051 §6.3.4), with CREATE-SPECIAL-USE's USE
// (RFC 6154 §3): attributes as sent, backslash included.
type Create struct {
	Mailbox string
	Use     []string
}

// Mailbox is the argument of DELETE, SUBSCRIBE and UNSUBSCRIBE.
type Mailbox struct{ Name string }

// Rename is RENAME (RFC 9051 §6.3.6).
type Rename struct{ From, To string }

// List is LIST (RFC 9051 §6.3.9, LIST-EXTENDED RFC 5258, LIST-STATUS
// RFC 5819, SPECIAL-USE RFC 6154 §4).
type List struct {
	Reference string
	Patterns  []string
	// Extended: the command used LIST-EXTENDED syntax (selection
	// options, several patterns or return options).
	Extended bool

	SelectSubscribed     bool
	SelectRemote         bool
	SelectRecursiveMatch bool
	SelectSpecialUse     bool

	ReturnSubscribed bool
	ReturnChildren   bool
	ReturnSpecialUse bool
	ReturnStatus     []StatusItem // nil without STATUS
}

// Lsub is LSUB (RFC 3501 §6.3.9).
type Lsub struct{ Reference, Pattern string }

// StatusItem is a status-att (RFC 9051 §6.3.11; SIZE and DELETED are
// IMAP4rev2's, RECENT IMAP4rev1's, APPENDLIMIT RFC 7889's).
type StatusItem string

const (
	StatusMessages    StatusItem = "MESSAGES"
	StatusRecent      StatusItem = "RECENT"
	StatusUIDNext     StatusItem = "UIDNEXT"
	StatusUIDValidity StatusItem = "UIDVALIDITY"
	StatusUnseen      StatusItem = "UNSEEN"
	StatusDeleted     StatusItem = "DELETED"
	StatusSize        StatusItem = "SIZE"
	StatusAppendLimit StatusItem = "APPENDLIMIT"
	// StatusHighestModSeq is CONDSTORE's (RFC 7162 §3.1.6).
	StatusHighestModSeq StatusItem = "HIGHESTMODSEQ"
	// StatusMailboxID is OBJECTID's (RFC 8474 §4.3).
	StatusMailboxID StatusItem = "MAILBOXID"
)

// Status is STATUS (RFC 9051 §6.3.11).
type Status struct {
	Mailbox string
	Items   []StatusItem
}

// Append is APPEND (RFC 9051 §6.3.12), with literal8 (RFC 3516 §4.4),
// UTF8 (RFC 6855 §4) and MULTIAPPEND (RFC 3502): the first message in
// its own fields, the others in More (see Messages).
type Append struct {
	Mailbox string
	Flags   []string  // nil without a flag list
	Date    time.Time // zero without a date-time
	Message []byte
	Binary  bool // sent as literal8
	UTF8    bool // sent as "UTF8 (…)"
	// More holds the messages after the first of a MULTIAPPEND, in
	// order; nil for one message.
	More []AppendMessage
}

// Copy is COPY or MOVE (RFC 9051 §6.4.7, §6.4.8) and their UID forms.
type Copy struct {
	Set     NumSet
	Mailbox string
}

// Expunge is UID EXPUNGE (RFC 9051 §6.4.9); plain EXPUNGE has no Args.
type Expunge struct{ Set NumSet }

// Search is SEARCH (RFC 9051 §6.4.4), with ESEARCH's RETURN (RFC 4731)
// and SEARCHRES's SAVE (RFC 5182).
type Search struct {
	Charset string // "" when not given
	// Return is nil without RETURN; RETURN () is ReturnAll (RFC 4731 §3.1).
	Return *SearchReturn
	Key    SearchKey // an And of the keys given
}

// SearchReturn holds the search-return-opts. Partial is PARTIAL's range
// (RFC 9394 §3.1), nil without it; the parser refuses it beside ALL.
type SearchReturn struct {
	Min, Max, All, Count, Save bool
	Partial                    *PartialRange
}

// StoreOp is STORE's FLAGS, +FLAGS or -FLAGS.
type StoreOp int

const (
	StoreReplace StoreOp = iota
	StoreAdd
	StoreRemove
)

// Store is STORE (RFC 9051 §6.4.6), with CONDSTORE's UNCHANGEDSINCE
// modifier (RFC 7162 §3.1.3).
type Store struct {
	Set    NumSet
	Op     StoreOp
	Silent bool
	Flags  []string
	// HasUnchangedSince: the UNCHANGEDSINCE modifier was given, with
	// UnchangedSince (0 is a valid value, which every message fails).
	HasUnchangedSince bool
	UnchangedSince    uint64
}

// ID is ID (RFC 2971 §3.1): Nil for "ID NIL", else the pairs in order.
type ID struct {
	Nil    bool
	Fields []IDField
}

// IDField is one pair; HasValue is false for a NIL value.
type IDField struct {
	Key, Value string
	HasValue   bool
}
