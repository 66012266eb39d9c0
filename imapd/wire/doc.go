// Package wire is imapd's IMAP wire layer: bytes to commands (Parser)
// and responses to bytes (Writer), for IMAP4rev1 (RFC 3501) and
// IMAP4rev2 (RFC 9051). It knows no sessions, no mailboxes and no store,
// and imports nothing of ours and nothing of go-imap: its command model
// is its own small structs (Command and the Args types), kept as the
// client wrote them (a NumSet keeps "5:2" and "$").
//
// Invariants:
//   - Every size is bounded before it is read (Limits): a line at
//     MaxLine, a literal by its announced size against MaxLiteral, or
//     MaxMessage for APPEND's message, and NonSyncMax for LITERAL-
//     (RFC 7888 §5); nesting at MaxDepth, lists at MaxList, items at
//     MaxArgs, a whole command at MaxCommand. A literal's buffer grows
//     with the bytes received, so a client that announces much and
//     sends little holds little.
//   - A synchronizing literal's data is read only after Options.OnLiteral
//     accepted it (and wrote "+"); it can refuse, and then no data
//     follows (RFC 9051 §7.5).
//   - A literal's data is never parsed as commands. After any parse
//     error the parser consumes the rest of the failed command: each of
//     its lines up to LF, and the data of every non-synchronizing literal
//     such a line announced (RFC 7888 §4, read and drop), up to
//     Limits.MaxDiscard; past that, or when a dropped line's literal size
//     cannot be known, the Error is Fatal and the server must close.
//   - Quoted strings never hold CR, LF or NUL; literals hold NUL only as
//     literal8, which only APPEND takes (RFC 3516 §4.1); the Writer
//     writes NUL only in literal8 (NString8) and fails with ErrNUL
//     otherwise.
//   - Mailbox names are decoded from modified UTF-7 (RFC 3501 §5.1.3),
//     raw UTF-8 accepted as go-imap did, until SetUTF8 (RFC 6855 §3:
//     UTF8=ACCEPT, or IMAP4rev2); "INBOX" in any case is INBOX.
//   - The Writer never flushes on its own: one Flush per command or per
//     batch of pushed updates. Both sides use the caller's bufio buffers
//     and hold none of their own between commands.
//
// Grammar covered: every command imapd serves today (CAPABILITY, NOOP,
// LOGOUT, STARTTLS, AUTHENTICATE with SASL-IR, LOGIN, ENABLE,
// SELECT/EXAMINE with CONDSTORE and QRESYNC, CREATE with USE, DELETE, RENAME,
// SUBSCRIBE, UNSUBSCRIBE, LIST with LIST-EXTENDED selection and return
// options and LIST-STATUS, LSUB, NAMESPACE, STATUS with SIZE and
// DELETED and HIGHESTMODSEQ, APPEND with literal8 and UTF8, IDLE and
// DONE, CHECK, CLOSE, UNSELECT, EXPUNGE, UID EXPUNGE, SEARCH with RETURN
// (PARTIAL too, RFC 9394 §3.1) and CHARSET and the RFC 9051 §6.4.4 keys
// plus NEW/OLD/RECENT and MODSEQ (RFC 7162 §3.1.5), FETCH with macros,
// BODY/BINARY sections and partials, MODSEQ and the CHANGEDSINCE,
// VANISHED and PARTIAL modifiers (RFC 7162 §3.1.4, §3.2.6; RFC 9394
// §3.2), STORE with UNCHANGEDSINCE (§3.1.3), COPY, MOVE, their
// UID forms) and ID (RFC 2971).
//
// Not yet here (issue 14 and after): MULTIAPPEND, extensions' commands (NOTIFY, COMPRESS, SORT/THREAD,
// QUOTA, METADATA), SEARCH in charsets other than US-ASCII and UTF-8
// (the parser passes CHARSET on; the session answers BADCHARSET), and
// the response side's composite data (FETCH items, ENVELOPE,
// BODYSTRUCTURE, LIST, ESEARCH), which the session builds with the
// Writer's primitives. APPEND's message is read into memory, bounded by
// MaxMessage; streaming it to a spool is left to the session work.
package wire
