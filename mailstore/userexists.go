package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// UserAndMailbox looks up, for a protocol session that logged in earlier, the
// user with the given id and, unless mailbox is 0, the mailbox with that
// id: whoever owns it now and its UIDVALIDITY. It fails with
// ErrNoSuchUser if the user is gone, else with ErrNoSuchMailbox if the
// mailbox is. An account may be deleted while its sessions are open, by
// this process or by another one on the same database (pushmail user
// del), which this process hears nothing of.
//
// Since schema version 3 no id is handed out twice, but a file from before
// may already hold a reused one: the caller compares the user's Address
// and Created, and the mailbox's User and UIDValidity, with those it
// knows, as well as the ids.
func (s *Store) UserAndMailbox(ctx context.Context, user UserID, mailbox MailboxID) (User, Mailbox, error) {
	u := User{ID: user}
	var created int64
	var owner, validity int64 // 0 if the mailbox is gone: ids start at 1
	// Subqueries, not a LEFT JOIN, which took twice as long.
	err := s.queryRow(ctx, `
SELECT address, created,
	COALESCE((SELECT user_id FROM mailboxes WHERE id = ?1), 0),
	COALESCE((SELECT uidvalidity FROM mailboxes WHERE id = ?1), 0)
FROM users WHERE id = ?2`, mailbox, user).Scan(&u.Address, &created, &owner, &validity)
	if errors.Is(err, sql.ErrNoRows) {
		return User{}, Mailbox{}, fmt.Errorf("%w: id %d", ErrNoSuchUser, user)
	}
	if err != nil {
		return User{}, Mailbox{}, fmt.Errorf("user %d: %w", user, err)
	}
	u.Created = time.Unix(created, 0)
	if mailbox == 0 {
		return u, Mailbox{}, nil
	}
	if owner == 0 {
		return u, Mailbox{}, fmt.Errorf("%w: id %d", ErrNoSuchMailbox, mailbox)
	}
	return u, Mailbox{ID: mailbox, User: UserID(owner), UIDValidity: uint32(validity)}, nil
}
