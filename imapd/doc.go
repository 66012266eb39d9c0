// Package imapd is pushmail's IMAP server (RFC 9051 IMAP4rev2 and
// RFC 3501 IMAP4rev1) on its own wire layer (imapd/wire), with the
// mailstore as its backend. Its reason to exist is push: a client in IDLE sees new mail,
// flag changes and expunges as soon as the store has committed them.
// It owns the IMAP wire side: sessions, their mailbox views, and the one
// mapping from mailstore errors to IMAP replies (errors.go). It presents
// the stored message.Parsed (ENVELOPE, BODYSTRUCTURE, BODY[n] by offset)
// and never parses MIME, never speaks SQL and never imports smtpd.
//
// Invariants:
//   - Each connection has one session; each session with a selected
//     mailbox owns a notify.Subscription to it and its own view: the
//     ascending UIDs that its sequence numbers index. Every change to the
//     view is announced to the client as it is made (EXISTS when UIDs are
//     added, EXPUNGE when they are removed, or VANISHED after ENABLE
//     QRESYNC, RFC 7162 §3.2.10), so the client's sequence
//     numbers always equal the view's, whatever other sessions see
//     (RFC 9051 §7.5.1 allows them to differ). A view holds the store's
//     shared UID list (mailstore.UIDList) while its UIDs are the list's,
//     read-only, and a copy of its own only while they differ (view.go
//     share): sessions of one big mailbox do not hold a list each.
//   - Views change only from events (and the resynchronisation that
//     replaces lost ones) or from the session's own EXPUNGE and MOVE. The
//     session's own writes come back as events too: UIDs already added or
//     removed are skipped, so each change is announced exactly once.
//   - An expunge is announced only when the running command allows it
//     (RFC 9051 §7.5.1: not during FETCH, STORE or SEARCH); until then the
//     UID stays in the view, marked, so sequence numbers stay valid.
//   - A flag update older than what the client was last told about a
//     message is never sent: the session remembers the modseq of the flags
//     it reported itself until the event stream has passed it. A STORE
//     .SILENT tells the client only its own change: another session's
//     older change, not sent yet, then goes out as the flags that STORE
//     left.
//   - A HIGHESTMODSEQ the session reports (SELECT, the first CONDSTORE
//     enabling command, EXPUNGE and MOVE's tagged OK) covers only what
//     the client has been told: the view's modseq, or just below an
//     expunge not announced yet. QRESYNC's SELECT reports the changes up
//     to the view's modseq and leaves later ones to the events, so each
//     change reaches the client once (qresync.go). Once CONDSTORE is on,
//     every FETCH about changed flags carries UID and MODSEQ (RFC 7162
//     §3.1), and STORE UNCHANGEDSINCE tests and stores in one store
//     write.
//   - \Recent (RFC 3501 §2.3.2) is session state, never stored: a
//     read-write IMAP4rev1 session claims the messages it is the first
//     to hear of (mailstore.ClaimRecent), at SELECT up to the last UID it
//     announces and after each EXISTS up to the new last one, never a UID
//     it has not announced; EXAMINE shows the unclaimed ones without
//     claiming. After ENABLE IMAP4rev2 a session has none, says none and
//     claims none (RFC 9051 removed it).
//   - No FETCH shows a keyword the session has not listed in a FLAGS
//     response (and PERMANENTFLAGS, read-write) since SELECT (RFC 3501
//     §7.2.6, RFC 9051 §7.3.5): every FETCH with FLAGS goes through
//     announceKeywords first (flags.go).
//   - IDLE sleeps on one select (subscription, DONE, session context):
//     nothing polls the database. With Options.Hibernate a plaintext
//     session in IDLE with nothing to send sleeps without a goroutine,
//     buffers or parser instead, in the Server's readiness loop
//     (hibernate.go, internal/hibernate), and wakes into the same IDLE on
//     input, an event for its mailbox, IdleTimeout, a BYE or Shutdown;
//     it sends exactly what an awake session sends. Its socket is never
//     closed while it is parked. Events for its mailbox do not wake it:
//     a worker of the Server's fan-out pool (pushdirect.go,
//     internal/fanout) applies them to its view and writes the responses
//     to its socket without blocking; the session wakes only for what a
//     write cannot do (a resync, a mailbox change, a full socket).
//   - NOTIFY (RFC 5465, notify.go) watches the user's other mailboxes
//     through one per-user subscription (notify.Hub.SubscribeUser), not
//     one per mailbox. Its STATUS, LIST and METADATA responses go out
//     under wmu as they happen: between commands from a goroutine of
//     its own, in IDLE from idleWait, which sleeps on both
//     subscriptions, or from a hibernating IDLE, which hooks both (the
//     goroutine is stopped for the IDLE). Its queue is bounded
//     (Options.NotifyQueue): a session that falls further behind says
//     NOTIFICATIONOVERFLOW and drops NOTIFY instead of buffering. The
//     selected mailbox keeps its own subscription and view; NOTIFY adds
//     only when its updates go out.
//   - After COMPRESS DEFLATE (RFC 4978) the session's connection is a
//     deflateConn (compress.go): every write of its buffer is compressed
//     and sync-flushed by a pooled flate.Writer that goes back to the pool
//     before the socket write, so a session keeps only the decompressor
//     of the client's stream. A compressed session never hibernates.
//   - Every session's context derives from the Server's; Shutdown cancels
//     it, says BYE to every client and waits for the sessions to end.
//   - SORT and THREAD (sort.go, thread.go, RFC 5256) select messages as
//     SEARCH does and take their keys from the envelope stored at
//     delivery (mailstore.SortInfo), never from a body; by sequence
//     number, they hold back EXPUNGE as SEARCH does.
//   - Store errors become IMAP replies in one place (errors.go).
//   - Every input is bounded (limits.go): connections in total and per
//     IPv4 address or IPv6 /64, over all listeners; a full Server evicts
//     its oldest connection not logged in for a newcomer (server.go
//     admit), so silent connections cannot keep clients out; go-imap's fixed read timeouts are replaced
//     by Options.CommandTimeout and IdleTimeout, and a read that times out
//     ends the connection; a client must log in within LoginTimeout;
//     failed logins slow down, then are refused, per IP and per account
//     (Options.AuthLimiter, shared with smtpd); APPEND is bounded by
//     AppendLimit per message and other literals by go-imap (4096 bytes).
//     A MULTIAPPEND's messages (RFC 3502) count against the budget
//     together, and are stored in one transaction or not at all
//     (multiappend.go). An APPEND's
//     memory grows with the bytes received, never from the literal's
//     announced size, and is drawn from Options.Budget, the process-wide
//     in-flight budget shared with smtpd (append.go).
//   - A literal's data is never parsed as commands, whether or not the
//     server read it (literalguard.go, RFC 9051 §4.3, RFC 7888 §4): the
//     data of a refused non-synchronizing literal is dropped, or the
//     connection ends with BYE. The guard, not go-imap, runs STARTTLS, so
//     that it stays above TLS.
//   - A user sees only their own mailboxes: every store call carries the
//     session's user, and a name is never interpreted as a path into
//     someone else's (no shared namespaces; names starting with "#" are
//     not created).
//   - QUOTA (RFC 9208) reports the store's exact usage for the user's
//     one quota root ""; SETQUOTA is refused. METADATA (RFC 5464)
//     entries are the user's own, /shared ones included (quota.go,
//     metadata.go).
//   - TLS is 1.2 or later whatever the configuration says (RFC 8996);
//     passwords need TLS except from loopback or with AllowInsecureAuth.
package imapd
