package notify

import "time"

// Kind says what an Event reports.
type Kind int

// Event kinds.
const (
	// Appended reports new messages: UIDs holds their UIDs, ascending.
	Appended Kind = iota + 1
	// Expunged reports removed messages: UIDs holds their UIDs, ascending.
	Expunged
	// FlagsChanged reports new flag sets: Flags holds one entry per message.
	FlagsChanged
	// MailboxChanged reports that the mailbox itself was created, renamed
	// or deleted; subscribers re-read what they need from the store. Name
	// is its name after the change ("" once deleted), OldName before it
	// ("" when it was created).
	MailboxChanged
	// SubscriptionChanged reports that the user subscribed or
	// unsubscribed Name; Mailbox is 0, since a subscription is a name that
	// need not have a mailbox (RFC 9051 §6.3.7). Only user watchers
	// (SubscribeUser) receive it.
	SubscriptionChanged
	// MetadataChanged reports that entries of the mailbox (or of the
	// server, Mailbox 0, then only for user watchers) were set or
	// removed; Entries names them.
	MetadataChanged
	// PushSubscriptionsChanged reports that the user's Web Push
	// subscriptions (RFC 8620 §7.2) were created, updated or destroyed;
	// Mailbox is 0, and Name is the subscription's id. Only user and
	// server-wide watchers receive it.
	PushSubscriptionsChanged
)

// String returns the kind's name, for logs.
func (k Kind) String() string {
	switch k {
	case Appended:
		return "appended"
	case Expunged:
		return "expunged"
	case FlagsChanged:
		return "flags"
	case MailboxChanged:
		return "mailbox"
	case SubscriptionChanged:
		return "subscription"
	case MetadataChanged:
		return "metadata"
	case PushSubscriptionsChanged:
		return "pushsubscriptions"
	}
	return "unknown"
}

// FlagUpdate is the complete new flag set of one message.
type FlagUpdate struct {
	UID   uint32
	Flags []string
}

// AccountStates is a user's position in the account change log
// (mailstore's AccountState: RFC 8620 §5.1 "state" per type) right
// after a commit: the states a read of the store would return then.
type AccountStates struct {
	// Email and Mailbox are the states of the Email and Mailbox types.
	Email, Mailbox uint64
	// Known is set when the publisher read the states in the commit's
	// transaction; without it, Email and Mailbox mean nothing.
	Known bool
}

// Event is one change to one mailbox, published after it was committed.
// Events are shared between subscribers: treat them as read-only.
type Event struct {
	Mailbox int64 // the mailbox that changed
	// User owns the mailbox (or the subscription, or the server
	// metadata); it routes the event to the user's watchers
	// (SubscribeUser) as Mailbox routes it to the mailbox's.
	User   int64
	Kind   Kind
	UIDs   []uint32     // Appended, Expunged
	Flags  []FlagUpdate // FlagsChanged
	ModSeq uint64       // the mailbox's highest modification sequence after the change
	// Name and OldName: MailboxChanged (the names after and before the
	// change), SubscriptionChanged (Name: the name whose subscription
	// changed; OldName is "").
	Name, OldName string
	// Subscribed: SubscriptionChanged, the name's state after the change.
	Subscribed bool
	// Entries: MetadataChanged, the names of the entries set or removed.
	Entries []string
	// Messages is the mailbox's message count after the change (Appended,
	// Expunged), so a watcher can check its own view.
	Messages uint32
	// Committed is when the change became durable; a subscriber measures
	// push latency from it.
	Committed time.Time
	// Remote marks a change committed by another node sharing the store
	// (PostgreSQL; mailstore's crossnode.go). Every watcher acts on it
	// like on a local one, except the server's own work that one node
	// does for each commit, such as the wake-ups (package wakeup): the
	// committing node does it.
	Remote bool `json:"-"`
	// States is User's position in the account change log after the
	// commit that published the event, when the publisher knows it
	// (States.Known): what the HTTP API's event streams tell their
	// clients, without a read of the store per commit. Not sent to
	// other nodes: their watchers read the store.
	States AccountStates `json:"-"`
	// Origin identifies the writer that caused the change (an IMAP
	// session's Subscription.ID, or 0 for deliveries). Events are sent to
	// their origin too, so every session keeps its view by the same path;
	// the origin uses Origin to skip replies it already sent itself, such
	// as the FETCH answer to its own STORE.
	Origin uint64
}
