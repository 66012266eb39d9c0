package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"pushmail/notify"
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
// Concurrent claims on one mailbox are serialised by the writer, so no two
// callers are ever handed the same UID. A claim is committed before
// ClaimRecent returns: after a crash, a message that was reported recent
// to one session is never reported recent again (at most once, never
// twice).
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
// Safe for concurrent use. It blocks until the claim is committed, unless
// there is nothing to claim: the mark only grows, so a mark already at or
// above upTo, as a read sees it, is answered without a write.
func (s *Store) ClaimRecent(ctx context.Context, mb MailboxID, upTo UID) (from UID, err error) {
	var mark UID
	err = s.queryRow(ctx, "SELECT recent_uid FROM mailboxes WHERE id = ?", mb).Scan(&mark)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("claim recent: %w", ErrNoSuchMailbox)
	}
	if err != nil {
		return 0, fmt.Errorf("claim recent: %w", err)
	}
	if mark >= upTo {
		return mark, nil
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		var next UID
		if err := tx.QueryRow("SELECT recent_uid, uidnext FROM mailboxes WHERE id = ?", mb).Scan(&from, &next); err != nil {
			if errors.Is(err, sql.ErrNoRows) {
				return nil, ErrNoSuchMailbox // deleted meanwhile
			}
			return nil, err
		}
		if upTo >= next {
			return nil, fmt.Errorf("UID %d not handed out yet (UIDNEXT %d)", upTo, next)
		}
		if from >= upTo {
			return nil, nil // claimed by another session since the read
		}
		if _, err := tx.Exec("UPDATE mailboxes SET recent_uid = ? WHERE id = ?", upTo, mb); err != nil {
			return nil, err
		}
		// No event: see the doc comment.
		return nil, nil
	})
	if err != nil {
		return 0, fmt.Errorf("claim recent: %w", err)
	}
	return from, nil
}
