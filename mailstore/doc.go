// Package mailstore is pushmail's durable message store: one SQLite file
// holding users, aliases, mailboxes, messages and their bodies. It is the
// only package that speaks SQL; it parses no MIME itself (package message
// does, at delivery) and chooses no protocol reply (smtpd and imapd map
// its errors).
//
// Invariants:
//   - Every write (deliveries, appends, flag changes, expunges, copies,
//     moves, mailbox and user changes) goes through one writer goroutine
//     that applies a batch of pending writes in one transaction, commits it
//     once (WAL, synchronous=FULL: the commit is on disk), queues the
//     batch's notify events on their subscriptions in commit order, and
//     only then returns to each caller; a waker goroutine wakes the
//     subscribers after. A caller that got a nil error may acknowledge the
//     write.
//   - One failing write (for example a delivery to a mailbox that
//     vanished) rolls back only itself and never half of itself: a batch
//     with a failed write is run again with a SAVEPOINT per write. A
//     multi-recipient delivery is all or none.
//   - UIDs strictly increase per mailbox and are never reused: UIDNEXT only
//     grows, a deleted and re-created mailbox gets a new UIDVALIDITY, and
//     so does every mailbox of a restored backup (Restore). CopyStore,
//     which moves a store to PostgreSQL, keeps every id, UIDVALIDITY,
//     UIDNEXT, modseq and counter as it was, and advances the target's
//     identity sequences past the ids it copied.
//   - User and mailbox ids are never handed out twice (schema version 3).
//   - A message is \Recent (RFC 3501 §2.3.2) in at most one session of a
//     running server: a per-mailbox high-water mark (schema version 6)
//     that only grows, raised in memory by ClaimRecent and written with the
//     writer's next transaction, or at Close; a crash loses only claims not
//     yet written. Claims are session state: they publish no event and
//     bump no modseq.
//   - Every write that changes a mailbox's messages takes the mailbox's
//     next modseq (RFC 7162 §3.1) in its own transaction: a delivery,
//     append, copy or move in, one per message; a flag or keyword
//     change, one for all the messages it changed (none if it changed
//     none); an expunge (EXPUNGE, MOVE out, RENAME of INBOX), one for all
//     it removed, and a tombstone (UID, modseq) for each (schema version
//     7, changelog.go). So "what changed since modseq M" is ChangesSince,
//     an indexed read. Mailbox-level changes take none: creating a
//     mailbox starts its log (HIGHESTMODSEQ 1, nothing vanished), RENAME
//     keeps the mailbox and its log (same id, same UIDVALIDITY), DELETE
//     drops the log with the mailbox, and a mailbox created again under
//     the name has a new UIDVALIDITY, which every client modseq is tied
//     to (RFC 7162 §3.2.5). Subscriptions and \Recent claims are not
//     message state.
//   - Tombstones are bounded per mailbox (Options.MaxVanished): the
//     expunge that passes the bound drops the oldest, down to three
//     quarters of it, and raises the mailbox's horizon, the lowest
//     modseq "vanished since" still answers for (pruneVanishedTx).
//     Nothing else moves it: no timer.
//   - The account change log (account.go; the HTTP API's states and
//     /changes) is kept by triggers in the transaction of every write
//     that adds, removes or reflags a message, or creates, renames,
//     deletes, (un)subscribes or recounts a mailbox, whichever front end
//     made it: each such change takes the account's next seq, and an
//     email (the user's messages sharing a body) or mailbox that is gone
//     leaves a tombstone. Tombstones older than the account's window
//     (meta account_tombstone_window, 10,000 seqs) are dropped by the
//     trigger that writes a new one, which raises the account's horizon;
//     /changes from before it is ErrCannotCalculateChanges. Body ids,
//     the emails' ids, are never handed out twice.
//   - Every event names its mailbox's owner (notify.Event.Account), for
//     the account-wide subscriptions.
//   - Messages are parsed once, at delivery (message.Parse), and the result
//     is stored beside the body; FETCH-style reads use the stored
//     envelope, structure and offsets and never re-parse.
//   - The full-text index (schema version 13, fulltext.go) holds one row
//     per body at or below its mark (fulltextmark.go), written behind the
//     deliveries a few hundred at a time with the mark raised in the same
//     transaction, and deleted by a trigger in the one that deletes the
//     body. Every body above the mark is a candidate of every search, so
//     SEARCH BODY and TEXT never miss committed mail nor meet expunged
//     mail. It only narrows: the candidates are checked as the scanning
//     search checks every message, so the answers are the same. It needs SQLite's FTS5
//     (the build tag sqlite_fts5); Open refuses a binary without it.
//   - SortInfo (SORT, THREAD) keeps what it read in memory per mailbox
//     (sort.go): valid forever, since a message's envelope never changes
//     and a mailbox's UIDs are never reused; bounded in entries, never
//     written, lost at Close. It reads the sort keys written with each
//     body, in the delivery's transaction (sortkeys.go), never a body.
//   - UIDList hands every caller the same array of a mailbox's UIDs
//     (uidlist.go). The writer keeps it current from the events of each
//     commit before publishing them, so a subscriber that hears of a
//     change finds the list past it; appends extend the array past every
//     length handed out, an expunge makes a new one, so what a holder
//     was given never changes. Bounded in UIDs (least recently used
//     lists go first), lost at Close.
//   - A message copied to another mailbox shares its body row; a body is
//     deleted with the last message that refers to it (a trigger). So a
//     message's email id (Message.Email, the body id) is the same in
//     every mailbox it was copied or moved to: the id JMAP's Email and
//     IMAP's EMAILID (RFC 8474) show.
//   - Each message row has its own save date (RFC 8514, savedate.go): set
//     when the row is inserted (delivery, APPEND, COPY or MOVE in), never
//     changed; rows from before versionSaveDate got their internal date.
//   - Only writes that add mail (Deliver, Append, Copy) are held to the
//     free-space reserve and the size cap; they are refused with
//     ErrStorageFull before they run, so the writes that free space
//     (flags, Expunge, DeleteMailbox, DeleteUser) keep the reserve's room
//     for the write-ahead log they need (space.go).
//   - A user's quota usage (RFC 9208: bytes and messages over all their
//     mailboxes) is kept by triggers in the transaction of every write
//     that adds or removes a message (schema version 9), never
//     recounted. Deliver (per recipient), Append and Copy fail with
//     ErrOverQuota, storing nothing, when they would take the user past
//     a limit; Move, flag changes, expunges and deletes always run
//     (quota.go).
//   - Annotations (RFC 5464) belong to one user, on the server or on one
//     of their mailboxes; a mailbox's keep through RENAME and go with
//     DELETE, a user's with the user (metadata.go).
//   - The package knows nothing of SMTP or IMAP: it speaks of users,
//     mailboxes, UIDs and flags (the RFC 9051 flag names, such as \Seen,
//     are used as plain strings).
package mailstore
