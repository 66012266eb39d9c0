// Package notify is pushmail's in-process change notifier: the mailstore
// publishes one Event per mailbox it changed after each durable commit, and
// every IMAP session watching that mailbox receives it through its own
// Subscription. A watcher of all of a user's mailboxes (IMAP NOTIFY)
// subscribes to the user instead (Hub.SubscribeUser): every event names
// its user, and some (subscriptions, server metadata) name no mailbox. It owns only the hand-over of events between goroutines:
// it never reads the store, never blocks a publisher and knows no mail
// protocol.
//
// Invariants:
//   - Publish never blocks and never allocates per subscriber beyond the
//     bounded queue; a subscriber that does not keep up loses its queued
//     events and is told to resynchronise from the store instead.
//   - Events reach each subscriber in the order they were published, which
//     is the mailstore's commit order.
//   - A subscription watches one mailbox (Subscribe) or every mailbox of
//     one account (SubscribeAccount, by Event.Account), including those
//     created after it; both kinds queue, overflow and wake alike.
//   - Nothing here polls: a subscriber sleeps on Ready until woken.
//   - notify imports nothing else of pushmail's, so the same interface can
//     later be fed by a shared database's change feed.
package notify
