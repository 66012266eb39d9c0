package mailstore

// The save date (RFC 8514, IMAP SAVEDATE) is when a message was stored
// into its mailbox: delivery, APPEND, or COPY or MOVE into it (each makes
// a new message row, so each sets it). It differs from the internal date,
// which APPEND lets the client choose and COPY and MOVE keep.

// versionSaveDate is the schema version whose migration adds the save
// date, messages.save_date (unix nanoseconds).
const versionSaveDate = 14

// migrationSaveDate is the migration to versionSaveDate. A message stored
// before has no record of when it was saved; it gets its internal date,
// which is exactly its save date for mail delivered into the mailbox
// (delivery sets the internal date to the time of storing) and the best
// estimate there is for the rest. RFC 8514 §4.3 itself falls back to the
// internal date for SAVEDBEFORE, SAVEDON and SAVEDSINCE where no save
// date is known; filling it in once keeps every mailbox one that has
// save dates (SAVEDATESUPPORTED matches all its messages, and FETCH
// SAVEDATE is never NIL), rather than answering NIL for old messages and
// a date for new ones in the same mailbox. The column stays nullable
// (ALTER TABLE cannot add a NOT NULL column without a constant default);
// every INSERT sets it, and a NULL reads as unknown.
//
// The UPDATE touches no column a trigger watches (flags, keywords), so it
// writes no change-log entries and moves no modseq.
const migrationSaveDate = `
ALTER TABLE messages ADD COLUMN save_date INTEGER;
UPDATE messages SET save_date = internal_date;
`
