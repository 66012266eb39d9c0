// Package smtpd receives mail into the mailstore over SMTP (the inbound MX
// role), LMTP (RFC 2033, from a local MTA) and submission (RFC 6409, from
// authenticated users), on top of github.com/emersion/go-smtp.
//
// Invariants:
//   - A 250 reply to DATA or BDAT LAST is sent only after store.Deliver has
//     returned nil, which it does after the durable commit (RFC 5321 §6.1).
//     Any failure of the store is a 4xx, never a 250 and never a silent
//     drop. Every reply chosen for a mailstore error comes from reply.go;
//     a plain error is never handed to go-smtp, which would turn it into a
//     permanent 554 at DATA.
//   - Never an open relay: every recipient is resolved with store.Resolve
//     at RCPT time, and only local mailboxes are accepted, on every role.
//     Submission delivers to local users only; it does not relay outbound.
//   - All recipients of one transaction are delivered with one Deliver
//     call: one SQLite transaction, all copies or none. Recipients that
//     reach the same mailbox (an alias and its user, "user+tag" and
//     "user") get one copy, addressed to the first of them.
//   - A recipient over quota (mailstore.ErrOverQuota) is 452 4.2.2:
//     at RCPT when the user has no room for a message of the announced
//     SIZE, so the others still get the mail; at the end of DATA for the
//     whole transaction when the message itself passes a limit; and, for
//     LMTP, for that recipient alone while the others are delivered.
//   - Each copy starts with Return-Path and Delivered-To (per recipient,
//     Recipient.Header) and one Received field (shared by the copies); the
//     message itself is stored byte for byte as the client sent it, after
//     the dot-unstuffing that go-smtp does for DATA.
//   - Passwords are accepted only over TLS, from a loopback address (or a
//     unix socket), or when Options.AllowInsecureAuth is set. TLS is 1.2
//     or later whatever the configuration says (RFC 8996). Failed logins
//     slow down, then are refused, per remote IP and per account
//     (Options.AuthLimiter, shared with imapd).
//   - STARTTLS (RFC 3207) is carried out by the connection under go-smtp,
//     not by go-smtp (starttls.go), so that the replies this package
//     writes or rewrites (the EHLO greeting, the 421s) are the same before
//     and after it. Input pipelined after STARTTLS in plaintext is
//     dropped, and the session starts over at the next EHLO.
//   - Every connection is counted per listener, in total (Options.MaxConns),
//     per remote IPv4 address or IPv6 /64 (Options.MaxConnsPerIP), and
//     while unauthenticated (Options.MaxPreAuthConns; on SMTP and LMTP,
//     always). One over the per-IP limit is answered 421 and closed; on a
//     full listener the quietest unauthenticated connection not
//     transferring a message is evicted (421 4.3.2) to admit it, and only
//     with none to evict is it refused. Each command line, and DATA as a
//     whole, must arrive within ReadTimeout, so a client that trickles
//     bytes cannot hold a slot longer than that per command; and after
//     Options.MaxIdleCommands commands outside a transaction since the
//     last MAIL (NOOP, RSET, ...) a session is closed with 421 4.7.0.
//   - Memory follows the bytes received, never a client's SIZE= (RFC
//     1870 §6.2: an estimate). A transfer holds one 64 KiB buffer, which
//     doubles as bytes arrive up to Options.SpoolThreshold; the rest goes
//     to a spool file in Options.SpoolDir, removed from the directory as
//     soon as it is created. Each buffer, and each message being
//     delivered (read back whole: mailstore.Deliver takes one slice), is
//     taken from Options.Budget first. When it is spent, MAIL and the end
//     of DATA get "451 4.3.1" and a growing transfer goes to disk
//     instead. Idle buffers kept for reuse are few and small.
//   - While the store has no room for a message of the largest size
//     (mailstore's SpaceCheck: below its free-space reserve, or at its
//     size cap), MAIL gets "452 4.3.1" and no data is sent for nothing;
//     a delivery that still does not fit gets "451 4.3.0" after DATA.
//   - A message that passes MaxMessageBytes gets "552 5.3.4" and its
//     connection is closed after the reply (RFC 1870 §6.3), without
//     reading the rest; a declared SIZE= over it gets 552 at MAIL.
//   - Every connection gets a connection id (cid) that is in its log
//     lines, and every
//     transaction has an id, derived from the cid, that is in its Received
//     field, its log line and any 451 reply.
//   - Replies are held back until the server next reads from the
//     connection (or closes it), then sent in one write: the replies to a
//     pipelined group of commands go out as a unit (RFC 2920 §3.2), and
//     no reply waits while the server waits for the client.
//   - Shutdown closes the listeners, closes idle connections at once and
//     lets a transaction in progress finish before its connection closes;
//     when Shutdown's context ends first, the rest are closed by force.
package smtpd
