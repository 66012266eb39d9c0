// Package bench is the harness behind "pushmail bench": it starts a
// pushmail server (in this process, as a child "pushmail serve", or names
// a running one), drives it over real loopback sockets with SMTP senders
// and IMAP watchers, and reports push latency, ingest rate, the cost of
// idle sessions, large-mailbox commands and the disk's fsync rate.
//
// It owns the modes (Modes), their flags and figures (Report and the
// *Result types), the server it starts, and its own raw SMTP and IMAP
// clients. cmd/pushmail owns the sub-command: its shared flags, their
// validation, and the in-process server (Options.Serve), which it wires
// as "pushmail serve" does.
//
// Invariants:
//   - Nothing but cmd/pushmail imports it; it imports mailstore (to fill a
//     fresh store before the server starts) and none of the protocol
//     packages: it measures the server from outside, through sockets.
//   - The raw SMTP and IMAP clients (rawSMTP, rawIMAP) are test-quality
//     code: minimal, plaintext, tuned to keep the client's cost out of the
//     figures, and correct only against pushmail. They are not a mail
//     client library and must not become one.
//   - Every server, client and goroutine a run starts is stopped before
//     the run returns; a temporary data directory is removed.
//   - A run only measures: it never retries a failure into a success. A
//     missed push or a lost message is counted and reported.
package bench
