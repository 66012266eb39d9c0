// Package pop3d is pushmail's POP3 server (RFC 1939, with CAPA and
// PIPELINING from RFC 2449, STLS from RFC 2595, AUTH from RFC 5034 and
// the response codes of RFC 2449 §8 and RFC 3206), over the mailstore. It
// owns the POP3 wire side: sessions, their maildrop snapshots, and the one
// mapping from store errors to -ERR replies (errors.go). It never speaks
// SQL, never parses MIME and imports neither smtpd nor imapd.
//
// Invariants:
//   - The maildrop is the user's INBOX as it was at login (RFC 1939 §8: the
//     server "acquires" the maildrop): a snapshot of UIDs and sizes.
//     Message numbers index the snapshot and never change during the
//     session; mail delivered later waits for the next session, and a
//     message expunged by IMAP meanwhile answers -ERR when retrieved.
//   - Nothing a session does changes the store before QUIT: DELE only
//     marks a message in the session (RFC 1939 §6), RSET unmarks them.
//     QUIT in the TRANSACTION state enters the UPDATE state and makes
//     every change in one durable store write (mailstore.UpdateMaildrop):
//     the marked messages are removed, exactly those UIDs, never "all",
//     and the retrieved ones that stay get \Seen. The write publishes an
//     expunge like any other, so IMAP IDLE sessions see "* n EXPUNGE". A
//     connection that ends any other way (dropped, timed out, shut down)
//     changes nothing.
//   - \Seen: RETR marks a message \Seen, as Dovecot does by default
//     (pop3_no_flag_updates = no), applied at QUIT in the same write as
//     the deletions; TOP never does (it reads headers, typically to
//     decide whether to fetch). A session that never reaches QUIT sets
//     no flag: RFC 1939 has no state but UPDATE that changes the
//     maildrop.
//   - Login reads the INBOX's sizes in CRLF form, counted when each body
//     was stored (mailstore.Maildrop): the sizes must be exact before the
//     first LIST (RFC 1939 §11), and no body is read for them; bodies are
//     read only for RETR and TOP.
//   - Messages are sent as the store holds them, with every line ended by
//     CRLF (a stored bare LF becomes CRLF) and lines starting with "."
//     byte-stuffed (RFC 1939 §3); sizes in STAT and LIST count the bytes
//     so sent (RFC 1939 §11), stuffing excluded.
//   - UIDL is "%08X%08X" of UID and UIDVALIDITY (Dovecot's default
//     pop3_uidl_format %08Xu%08Xv): stable across sessions and restarts,
//     never reused for another message, and new for every message after
//     "pushmail restore" (which renumbers UIDVALIDITY), so a client that
//     leaves mail on the server downloads it again rather than missing any.
//   - There is no maildrop lock (Dovecot's default, pop3_lock_session =
//     no): two sessions of one user may run at once; each deletes only
//     what it marked, and deleting a message the other already removed
//     is nothing.
//   - Passwords (USER/PASS, AUTH PLAIN) need TLS, implicit or after STLS,
//     except from loopback or with Options.AllowInsecureAuth; CAPA then
//     leaves USER and SASL out. Failed logins go through the shared
//     authlimit.Limiter, as IMAP and SMTP AUTH do.
//   - Every input is bounded: line length (maxLineLength), connections in
//     total and per IPv4 address or IPv6 /64 (the oldest connection not
//     logged in is evicted for a newcomer on a full Server), the time to
//     log in (LoginTimeout), to send a command (CommandTimeout), and the
//     silence allowed after login (IdleTimeout, at least 10 minutes by
//     RFC 1939 §3), and invalid commands in a row.
//   - Every session's context derives from the Server's; Shutdown closes
//     the listeners, tells each client "-ERR [SYS/TEMP]" between commands
//     (a command being answered finishes first, a QUIT's store write
//     included) and waits for every goroutine it started.
//   - Store errors become replies in one place (errors.go): a fault is
//     -ERR [SYS/TEMP] with a generic text, its cause logged.
package pop3d
