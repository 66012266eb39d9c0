// Package jmap is pushmail's HTTP API: JMAP Core (RFC 8620) and JMAP
// Mail (RFC 8621) over the store, with the event stream (RFC 8620 §7.3)
// fed by the notify hub. It is a protocol front end like imapd and
// pop3d: it parses requests, calls mailstore, and maps mailstore's
// errors to JMAP errors in one place (errors.go); it never speaks SQL.
//
// The object model over the store:
//   - one account per user, id "A" + the user id;
//   - a Mailbox is a store mailbox, id "M" + its id; its name is the
//     last part of the store name, its parent the mailbox named by the
//     rest (mailstore.Separator); its role is its special-use attribute
//     (RFC 8621 §2, RFC 6154), "inbox" for INBOX;
//   - an Email is the user's messages that share one body (a copy
//     shares its source's), id "E" + the body id, in every mailbox one
//     of those messages is in; its keywords are the union of their
//     flags (RFC 8621 §4.1.1 maps \Seen to $seen and so on); its blob
//     is the raw message, id "G" + the body id;
//   - every Email is its own Thread, id "T" + the body id: the server
//     does not group messages into conversations (RFC 8621 §3 leaves
//     the algorithm to the server). Thread/changes reports an Email's
//     creation and destruction only;
//   - states come from the store's account change log (mailstore
//     account.go), so a write made over IMAP, POP3 or SMTP changes them
//     exactly as one made here does; the Thread state is the Email
//     state.
//
// Invariants:
//   - Every request is authenticated with HTTP Basic and the user's
//     password, only over TLS or from loopback unless the operator
//     allows cleartext, with the same failed-login limiter as IMAP,
//     POP3 and SMTP (internal/authlimit).
//   - Every limit the session advertises is enforced
//     (maxSizeRequest, maxCallsInRequest, maxConcurrentRequests,
//     maxObjectsInGet, maxObjectsInSet, maxSizeUpload,
//     maxConcurrentUpload).
//   - Every /set and /import opens with openSet and answers with
//     setOp.response (set.go), so all of them check their arguments,
//     maxObjectsInSet and ifInState in one order; every /changes is
//     changes' body.
//   - An Email with \Deleted is not visible (RFC 8621 §4.1.1): Email/query
//     leaves it out, the mailbox counts leave it out, and every method
//     or blob that names it answers as for one that does not exist
//     (visibleEmails, hidden).
//   - Writes go through mailstore and publish like every other write;
//     the event streams of an account share one feed (feed.go): one
//     subscription (notify.Hub.SubscribeUser), woken by commits and
//     never by a timer, that takes the new states from the commit's
//     events (notify.Event.States) once for all of them, or reads them
//     from the store when the events do not carry them (a resync,
//     another node's commits). A stream is never told a state lower
//     than one it was told: the feed keeps the larger of each state.
//   - An event stream over plain HTTP/1.x leaves net/http (hijacked)
//     and sleeps between events in the Server's readiness loop
//     (internal/hibernate) with no goroutine and no buffer; each commit
//     encodes its StateChange once per account and kind of stream
//     (feed.event), and the feed itself (for a few streams) or the
//     Server's fan-out workers (internal/fanout) write it to the parked
//     sockets without waking them (parked.go).
//     TLS streams stay on a goroutine of their HTTP request.
//   - Close ends every stream, parked or not, and waits for the parked
//     ones, which the HTTP server's Shutdown does not know.
package jmap
