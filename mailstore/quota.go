package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"pushmail/notify"
)

// Quotas (RFC 9208) are per user: one limit on the bytes of their
// messages and one on their number, over all their mailboxes. Usage is
// two counters on the user row that triggers keep in the transaction
// of every write that adds or removes a message (schema version 9), so
// it is exact at every commit and never recounted.
//
// Only writes that add mail to a user are held to their quota: Deliver
// (per recipient), Append and Copy. They are refused with ErrOverQuota
// when the user's usage after them would pass a limit, and store
// nothing. Move, flag changes, expunges and deletes always run: a Move
// stays within the user, so it adds nothing, and deleting is how a user
// gets under quota again. A limit lowered below the usage refuses new
// mail until enough is deleted.
//
// Storage counts each message's size, as STATUS SIZE does (RFC 8438):
// a copy counts again though it shares its body, as it would in any
// store that does not deduplicate, so the user's figure does not depend
// on how the store saves space.

// Quota is a user's limits and usage. A limit of 0 means none.
type Quota struct {
	StorageLimit int64 // bytes
	MessageLimit int64
	StorageUsed  int64 // bytes: the sum of the sizes of the user's messages
	MessagesUsed int64
}

// over returns an error wrapping ErrOverQuota naming the limit q
// passes, or nil.
func (q Quota) over() error {
	if q.StorageLimit > 0 && q.StorageUsed > q.StorageLimit {
		return fmt.Errorf("%w: %d bytes stored, limit %d", ErrOverQuota, q.StorageUsed, q.StorageLimit)
	}
	if q.MessageLimit > 0 && q.MessagesUsed > q.MessageLimit {
		return fmt.Errorf("%w: %d messages stored, limit %d", ErrOverQuota, q.MessagesUsed, q.MessageLimit)
	}
	return nil
}

// Admits returns nil if one more message of size bytes fits within q,
// and otherwise an error wrapping ErrOverQuota.
func (q Quota) Admits(size int64) error {
	q.StorageUsed += size
	q.MessagesUsed++
	return q.over()
}

const quotaColumns = "quota_storage, quota_messages, used_storage, used_messages"

func scanQuota(row interface{ Scan(...any) error }) (Quota, error) {
	var q Quota
	err := row.Scan(&q.StorageLimit, &q.MessageLimit, &q.StorageUsed, &q.MessagesUsed)
	if errors.Is(err, sql.ErrNoRows) {
		return Quota{}, ErrNoSuchUser
	}
	return q, err
}

// Quota returns a user's limits and usage. Safe for concurrent use; it
// reads the last commit.
func (s *Store) Quota(ctx context.Context, user UserID) (Quota, error) {
	q, err := scanQuota(s.queryRow(ctx, "SELECT "+quotaColumns+" FROM users WHERE id = ?", user))
	if err != nil {
		return Quota{}, fmt.Errorf("quota: %w", err)
	}
	return q, nil
}

// SetQuota sets the limits of the user with the given address: storage
// in bytes and a number of messages, 0 for no limit; negative values are
// refused. Mail already stored stays, whatever the new limits.
func (s *Store) SetQuota(ctx context.Context, address string, storage, messages int64) error {
	addr, err := NormalizeAddress(address)
	if err != nil {
		return err
	}
	if storage < 0 || messages < 0 {
		return fmt.Errorf("set quota of %s: negative limit", addr)
	}
	err = s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		res, err := tx.Exec("UPDATE users SET quota_storage = ?, quota_messages = ? WHERE address = ?", storage, messages, addr)
		if err != nil {
			return nil, err
		}
		return nil, mustAffect(res, ErrNoSuchUser)
	})
	if err != nil {
		return fmt.Errorf("set quota of %s: %w", addr, err)
	}
	return nil
}

// checkQuotaTx fails with ErrOverQuota if the user is over a limit now,
// in the transaction. Writes that add mail call it after adding: the
// usage it reads already counts what they added, and their failure
// rolls that back.
func checkQuotaTx(tx *wtx, user UserID) error {
	q, err := scanQuota(tx.QueryRow("SELECT "+quotaColumns+" FROM users WHERE id = ?", user))
	if err != nil {
		return err
	}
	return q.over()
}

// checkMailboxQuotaTx is checkQuotaTx for the owner of mailbox.
func checkMailboxQuotaTx(tx *wtx, mailbox MailboxID) error {
	q, err := scanQuota(tx.QueryRow("SELECT "+quotaColumns+" FROM users WHERE id = (SELECT user_id FROM mailboxes WHERE id = ?)", mailbox))
	if errors.Is(err, ErrNoSuchUser) {
		return ErrNoSuchMailbox
	}
	if err != nil {
		return err
	}
	return q.over()
}
