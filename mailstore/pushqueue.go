package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"pushmail/notify"
)

// PendingPush is a wake-up that package wakeup has not yet delivered to
// an endpoint, kept in the store so that it survives a restart (table
// push_pending). The store only keeps the rows; what they mean is
// wakeup's.
type PendingPush struct {
	// Endpoint names the endpoint (a webhook, the device-token relay).
	Endpoint string
	// Key identifies the wake-up within the endpoint. A second one with
	// the same key replaces the first: that is how wake-ups coalesce.
	Key string
	// User is the user the wake-up is about.
	User UserID
	// Payload is the body to send; nil when it is built at send time.
	Payload []byte
	// Attempts counts the deliveries tried and failed.
	Attempts int
	// NotBefore is when the next attempt may start.
	NotBefore time.Time
}

// PendingPushKey names one PendingPush.
type PendingPushKey struct{ Endpoint, Key string }

// SavePendingPushes records put (replacing rows with the same endpoint
// and key) and removes the rows named by done, in one transaction. It is
// not on any delivery's path: wakeup calls it from its own goroutine.
func (s *Store) SavePendingPushes(ctx context.Context, put []PendingPush, done []PendingPushKey) error {
	if len(put) == 0 && len(done) == 0 {
		return nil
	}
	err := s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		for _, k := range done {
			if _, err := tx.Exec("DELETE FROM push_pending WHERE endpoint = ? AND key = ?", k.Endpoint, k.Key); err != nil {
				return nil, err
			}
		}
		for _, p := range put {
			if _, err := tx.Exec(`INSERT INTO push_pending(endpoint, key, user_id, payload, attempts, not_before)
				VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(endpoint, key) DO UPDATE SET user_id = excluded.user_id,
				payload = excluded.payload, attempts = excluded.attempts, not_before = excluded.not_before`, p.Endpoint, p.Key, p.User, p.Payload, p.Attempts, p.NotBefore.UnixMilli()); err != nil {
				return nil, err
			}
		}
		return nil, nil
	})
	if err != nil {
		return fmt.Errorf("save pending pushes: %w", err)
	}
	return nil
}

// PendingPushes returns every pending push, by endpoint and key. Those of
// users deleted since are left out and forgotten with the next save of
// their key; a user's rows do not cascade, since wakeup may hold one for
// a user being deleted.
func (s *Store) PendingPushes(ctx context.Context) ([]PendingPush, error) {
	rows, err := s.query(ctx, `SELECT endpoint, key, user_id, payload, attempts, not_before FROM push_pending
		WHERE user_id IN (SELECT id FROM users) ORDER BY endpoint, key`)
	if err != nil {
		return nil, fmt.Errorf("pending pushes: %w", err)
	}
	defer rows.Close()
	var out []PendingPush
	for rows.Next() {
		var p PendingPush
		var notBefore int64
		if err := rows.Scan(&p.Endpoint, &p.Key, &p.User, &p.Payload, &p.Attempts, &notBefore); err != nil {
			return nil, fmt.Errorf("pending pushes: %w", err)
		}
		p.NotBefore = time.UnixMilli(notBefore)
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("pending pushes: %w", err)
	}
	return out, nil
}

// UserAddress returns the address of the user with id, or ErrNoSuchUser.
func (s *Store) UserAddress(ctx context.Context, id UserID) (string, error) {
	var addr string
	err := s.queryRow(ctx, "SELECT address FROM users WHERE id = ?", id).Scan(&addr)
	if err != nil {
		if errors.Is(err, sql.ErrNoRows) {
			return "", fmt.Errorf("user %d: %w", id, ErrNoSuchUser)
		}
		return "", fmt.Errorf("user %d: %w", id, err)
	}
	return addr, nil
}
