// Package message parses a mail message once and describes the result:
// its envelope and addresses (Envelope, Address), its MIME tree with byte
// offsets into the raw message (Part, Parsed), and, for search, the
// decoded text of its header fields and text parts (EachField, FieldText,
// DecodeText, PartText, with HTML reduced to its text by HTMLText).
//
// mailstore calls Parse at delivery and stores the Parsed value as JSON;
// protocol packages (imapd's ENVELOPE and BODYSTRUCTURE, later the HTTP
// API) present the stored value and slice the raw bytes by its offsets,
// never parsing again.
//
// Invariants:
//   - It imports no other pushmail package, and knows nothing of storage
//     or wire protocols: it sees bytes in, plain values out. Types that
//     follow IMAP's shapes (RFC 9051 §7.5.2) say so, but converting them
//     to a protocol's types is the protocol package's job.
//   - Parse never fails and never panics: malformed mail yields a
//     best-effort result, so mail is never rejected for bad MIME. Its time
//     and memory are bounded on hostile input (nesting depth, part count,
//     list lengths).
//   - A Parsed value holds no reference to the raw bytes; its offsets
//     always lie within them (HeaderStart <= BodyStart <= End <= len(raw)).
//   - Every string in a Parsed value is valid UTF-8.
//   - Nothing in the package holds mutable state: every function is safe
//     for concurrent use.
package message
