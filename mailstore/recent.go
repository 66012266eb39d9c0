package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
)

// ClaimRecent hands the calling session the \Recent flag of the messages
// of mailbox mb with a UID up to upTo that no session has had yet. RFC 3501
// §2.3.2: \Recent means "this session is the first session to have been
// notified about this message", so each message is recent in at most one
// session.
//
// The mailbox keeps a high-water mark (MailboxStatus.RecentUID): messages
// above it are recent to no session yet. ClaimRecent raises the mark to
// upTo if it is lower and returns the mark as it was, from: the caller
// then shows the messages with from < UID <= upTo as \Recent, for the rest
// of its session. When from >= upTo, nothing was claimed (another session
// got there first, or upTo is 0), and from is the current mark.
// ClaimRecent(ctx, mb, 0) therefore reads the mark without changing it.
//
// Concurrent claims on one mailbox are serialised in memory, so no two
// callers are ever handed the same UID. A claim does not wait for a
// commit of its own: it is written with the writer's next transaction
// (every delivery, flag change or expunge is one) and at Close. A claim
// on a push path therefore costs no fsync. After a crash, a claim not yet
// written is lost, and its messages may be \Recent once more, to one
// session of the restarted server: RFC 3501 §2.3.2's "first session to
// have been notified" then holds within each run of the server.
//
// upTo must be a UID the mailbox has handed out (below its UIDNEXT): a
// session claims what it has been told of (SELECT's view, the UIDs of an
// Appended event), never ahead of it, or messages yet to arrive would be
// lost to every other session. A larger upTo is an error, and claims
// nothing. A mailbox that does not exist (any more) is ErrNoSuchMailbox.
//
// The claim publishes no notify event and leaves HIGHESTMODSEQ alone:
// \Recent is session state, no change to the mailbox that other sessions
// or a CONDSTORE client need to hear of (RFC 3501 §2.3.2: "This flag can
// not be altered by the client", and it belongs to one session). All a
// claim changes for others is STATUS RECENT (MailboxStatus.Recent), which
// STATUS reads when asked; nothing pushes it.
//
// Safe for concurrent use. The first claim on a mailbox reads its mark
// and UIDNEXT; later ones that find the mark at or above upTo answer from
// memory.
func (s *Store) ClaimRecent(ctx context.Context, mb MailboxID, upTo UID) (from UID, err error) {
	if mark, ok := s.cachedRecentMark(mb); ok && mark >= upTo {
		// Every session of a mailbox asks after each arrival; all but
		// the first find it claimed, here, without a query.
		return mark, nil
	}
	query, args := "SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", []any{mb}
	if s.postgres {
		// Other nodes claim too: the store's mark decides, raised at
		// once (claimRecentSQLPostgres).
		query, args = claimRecentSQLPostgres, []any{mb, upTo}
	}
	var mark, next UID
	err = s.queryRow(ctx, query, args...).Scan(&mark, &next)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("claim recent: %w", ErrNoSuchMailbox)
	}
	if err != nil {
		return 0, fmt.Errorf("claim recent: %w", err)
	}
	if upTo >= next {
		return 0, fmt.Errorf("claim recent: UID %d not handed out yet (UIDNEXT %d)", upTo, next)
	}
	s.recentMu.Lock()
	defer s.recentMu.Unlock()
	if s.recentMarks == nil {
		s.recentMarks = make(map[MailboxID]UID)
		s.recentDirty = make(map[MailboxID]bool)
	}
	if s.postgres {
		// Claimed in the store already, if mark was below upTo.
		s.recentMarks[mb] = max(mark, upTo, s.recentMarks[mb])
		return mark, nil
	}
	// The mark only grows: a cached one newer than the read wins.
	from = max(mark, s.recentMarks[mb])
	if from >= upTo {
		s.recentMarks[mb] = from
		return from, nil
	}
	s.recentMarks[mb] = upTo
	s.recentDirty[mb] = true
	return from, nil
}

// claimRecentSQLPostgres is ClaimRecent's query on PostgreSQL, where
// other nodes claim too: it reads a mailbox's mark and UIDNEXT under the
// row's lock and raises the mark to ?2 if it is below it and ?2 was
// handed out, in one statement; the old mark and UIDNEXT come back. So
// two nodes' sessions can never both be first. It runs on a read-pool
// connection, whose commits do not wait for the disk (pgdriver.go): a
// claim lost in a crash makes its messages \Recent once more, as on
// SQLite, where claims ride the writer's next commit.
const claimRecentSQLPostgres = `WITH o AS (SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?1 FOR UPDATE),
u AS (UPDATE mailboxes SET recent_uid = ?2 WHERE id = ?1 AND recent_uid < ?2 AND ?2 < (SELECT uidnext FROM o))
SELECT recent_uid, uidnext FROM o`

// RecentClaimed reports whether mailbox mb's \Recent mark is known, in
// this process, to be at or above upTo: then ClaimRecent(ctx, mb, upTo)
// answers at once, without a query or a write. A session uses it to send
// what it has (EXISTS) before a claim that must read the store.
func (s *Store) RecentClaimed(mb MailboxID, upTo UID) bool {
	mark, ok := s.cachedRecentMark(mb)
	return ok && mark >= upTo
}

// forgetRecentMark drops a deleted mailbox's mark: ClaimRecent then
// reads the store, and finds the mailbox gone. (Mailboxes of a deleted
// user keep theirs: their sessions end, and ids are never reused.)
func (s *Store) forgetRecentMark(mb MailboxID) {
	s.recentMu.Lock()
	defer s.recentMu.Unlock()
	delete(s.recentMarks, mb)
	delete(s.recentDirty, mb)
}

func (s *Store) cachedRecentMark(mb MailboxID) (UID, bool) {
	s.recentMu.Lock()
	defer s.recentMu.Unlock()
	mark, ok := s.recentMarks[mb]
	return mark, ok
}

// writeRecentMarks writes the claims not yet in the database, within
// the writer's transaction tx; a failed commit gives them back
// (restoreRecentMarks). Run by the writer goroutine only.
func (s *Store) writeRecentMarks(tx *sql.Tx) (map[MailboxID]UID, error) {
	s.recentMu.Lock()
	dirty := make(map[MailboxID]UID, len(s.recentDirty))
	for mb := range s.recentDirty {
		dirty[mb] = s.recentMarks[mb]
	}
	clear(s.recentDirty)
	s.recentMu.Unlock()
	if len(dirty) == 0 {
		return nil, nil
	}
	// In a savepoint: marks that cannot be written are undone alone and
	// kept for the next commit, without failing the batch's writes.
	if _, err := tx.Exec("SAVEPOINT recent_marks"); err != nil {
		s.restoreRecentMarks(dirty)
		return nil, fmt.Errorf("write recent marks: %w", err)
	}
	for mb, mark := range dirty {
		// MAX: the mark never goes down, whatever order claims land in.
		if _, err := tx.Exec("UPDATE mailboxes SET recent_uid = MAX(recent_uid, ?) WHERE id = ?", mark, mb); err != nil {
			s.restoreRecentMarks(dirty)
			if _, rerr := tx.Exec("ROLLBACK TO recent_marks"); rerr == nil {
				_, _ = tx.Exec("RELEASE recent_marks") // releasing a rolled-back savepoint cannot fail
			}
			return nil, fmt.Errorf("write recent marks: %w", err)
		}
	}
	if _, err := tx.Exec("RELEASE recent_marks"); err != nil {
		s.restoreRecentMarks(dirty)
		return nil, fmt.Errorf("write recent marks: %w", err)
	}
	return dirty, nil
}

// restoreRecentMarks marks claims unwritten again after a failed commit.
func (s *Store) restoreRecentMarks(marks map[MailboxID]UID) {
	s.recentMu.Lock()
	defer s.recentMu.Unlock()
	for mb := range marks {
		s.recentDirty[mb] = true
	}
}

// flushRecentMarks writes the claims not yet in the database on their
// own, at Close, once the writer has stopped.
func (s *Store) flushRecentMarks() error {
	s.recentMu.Lock()
	n := len(s.recentDirty)
	s.recentMu.Unlock()
	if n == 0 {
		return nil
	}
	tx, err := s.wdb.Begin()
	if err != nil {
		return fmt.Errorf("write recent marks: %w", err)
	}
	if _, err := s.writeRecentMarks(tx); err != nil {
		rollback(tx)
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("write recent marks: %w", err)
	}
	return nil
}

// freshenRecent corrects a status read from the database for claims not
// yet written there.
func (s *Store) freshenRecent(ctx context.Context, st *MailboxStatus) error {
	mark, ok := s.cachedRecentMark(st.ID)
	if !ok || mark <= st.RecentUID {
		return nil
	}
	st.RecentUID = mark
	return s.queryRow(ctx, "SELECT COUNT(*) FROM messages WHERE mailbox_id = ? AND uid > ?", st.ID, mark).Scan(&st.Recent)
}
