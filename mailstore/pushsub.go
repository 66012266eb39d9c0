package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"pushmail/notify"
)

// ErrNoSuchPushSubscription is returned for a push subscription id that
// is not the user's.
var ErrNoSuchPushSubscription = errors.New("no such push subscription")

// ErrTooManyPushSubscriptions refuses a subscription past
// MaxPushSubscriptions.
var ErrTooManyPushSubscriptions = errors.New("too many push subscriptions")

// MaxPushSubscriptions bounds a user's Web Push subscriptions: each is a
// POST per change of their mail.
const MaxPushSubscriptions = 50

// PushSubscription is one of a user's Web Push subscriptions (RFC 8620
// §7.2): where to POST their StateChanges and how to encrypt them.
// Creating, updating and destroying one publishes a
// notify.PushSubscriptionsChanged event for the user.
type PushSubscription struct {
	ID             int64
	User           UserID
	DeviceClientID string
	URL            string
	// P256DH and Auth are the client's keys (RFC 8291), base64url; both
	// empty when it gave none, and StateChanges are then sent as plain
	// JSON.
	P256DH, Auth string
	// Code is the verification code the server sent (in a
	// PushVerification); VerificationCode is what the client has set.
	// Until they match nothing else is sent (RFC 8620 §7.2.2).
	Code, VerificationCode string
	Expires                time.Time
	// Types are the data types to push; nil for all.
	Types []string
}

// Verified reports whether the client has proved it receives the pushes.
func (p PushSubscription) Verified() bool {
	return p.Code != "" && p.VerificationCode == p.Code
}

const pushSubColumns = "id, user_id, device_client_id, url, p256dh, auth, code, verification_code, expires, types"

func scanPushSub(row interface{ Scan(...any) error }) (PushSubscription, error) {
	var p PushSubscription
	var expires int64
	var types string
	if err := row.Scan(&p.ID, &p.User, &p.DeviceClientID, &p.URL, &p.P256DH, &p.Auth, &p.Code, &p.VerificationCode, &expires, &types); err != nil {
		return PushSubscription{}, err
	}
	p.Expires = time.Unix(expires, 0)
	if types != "" {
		p.Types = strings.Split(types, ",")
	}
	return p, nil
}

func pushSubEvent(user UserID, id int64) []notify.Event {
	return []notify.Event{{User: int64(user), Kind: notify.PushSubscriptionsChanged, Name: strconv.FormatInt(id, 10)}}
}

// CreatePushSubscription stores p for p.User and returns its id. At
// MaxPushSubscriptions it fails with ErrTooManyPushSubscriptions.
func (s *Store) CreatePushSubscription(ctx context.Context, p PushSubscription) (int64, error) {
	var id int64
	err := s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		var n int
		if err := tx.QueryRow("SELECT COUNT(*) FROM push_subscriptions WHERE user_id = ?", p.User).Scan(&n); err != nil {
			return nil, err
		}
		if n >= MaxPushSubscriptions {
			return nil, ErrTooManyPushSubscriptions
		}
		err := tx.QueryRow("INSERT INTO push_subscriptions(user_id, device_client_id, url, p256dh, auth, code, verification_code, expires, types) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
			p.User, p.DeviceClientID, p.URL, p.P256DH, p.Auth, p.Code, p.VerificationCode, p.Expires.Unix(), strings.Join(p.Types, ",")).Scan(&id)
		if err != nil {
			return nil, err
		}
		return pushSubEvent(p.User, id), nil
	})
	if err != nil {
		return 0, fmt.Errorf("create push subscription: %w", err)
	}
	return id, nil
}

// PushSubscriptions returns the user's subscriptions, by id.
func (s *Store) PushSubscriptions(ctx context.Context, user UserID) ([]PushSubscription, error) {
	rows, err := s.query(ctx, "SELECT "+pushSubColumns+" FROM push_subscriptions WHERE user_id = ? ORDER BY id", user)
	if err != nil {
		return nil, fmt.Errorf("push subscriptions: %w", err)
	}
	defer rows.Close()
	var out []PushSubscription
	for rows.Next() {
		p, err := scanPushSub(rows)
		if err != nil {
			return nil, fmt.Errorf("push subscriptions: %w", err)
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("push subscriptions: %w", err)
	}
	return out, nil
}

// PushSubscription returns one of the user's subscriptions, or
// ErrNoSuchPushSubscription.
func (s *Store) PushSubscription(ctx context.Context, user UserID, id int64) (PushSubscription, error) {
	p, err := scanPushSub(s.queryRow(ctx, "SELECT "+pushSubColumns+" FROM push_subscriptions WHERE id = ? AND user_id = ?", id, user))
	if errors.Is(err, sql.ErrNoRows) {
		return PushSubscription{}, fmt.Errorf("push subscription %d: %w", id, ErrNoSuchPushSubscription)
	}
	if err != nil {
		return PushSubscription{}, fmt.Errorf("push subscription %d: %w", id, err)
	}
	return p, nil
}

// UpdatePushSubscription writes the fields a client may change
// (VerificationCode, Expires, Types) of the user's subscription p.ID.
func (s *Store) UpdatePushSubscription(ctx context.Context, p PushSubscription) error {
	err := s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		res, err := tx.Exec("UPDATE push_subscriptions SET verification_code = ?, expires = ?, types = ? WHERE id = ? AND user_id = ?",
			p.VerificationCode, p.Expires.Unix(), strings.Join(p.Types, ","), p.ID, p.User)
		if err != nil {
			return nil, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return nil, cmpErr(err, ErrNoSuchPushSubscription)
		}
		return pushSubEvent(p.User, p.ID), nil
	})
	if err != nil {
		return fmt.Errorf("update push subscription %d: %w", p.ID, err)
	}
	return nil
}

// DestroyPushSubscription removes the user's subscription id.
func (s *Store) DestroyPushSubscription(ctx context.Context, user UserID, id int64) error {
	err := s.write(ctx, 0, func(tx *wtx) ([]notify.Event, error) {
		res, err := tx.Exec("DELETE FROM push_subscriptions WHERE id = ? AND user_id = ?", id, user)
		if err != nil {
			return nil, err
		}
		if n, err := res.RowsAffected(); err != nil || n == 0 {
			return nil, cmpErr(err, ErrNoSuchPushSubscription)
		}
		return pushSubEvent(user, id), nil
	})
	if err != nil {
		return fmt.Errorf("destroy push subscription %d: %w", id, err)
	}
	return nil
}

// cmpErr returns err, or otherwise when err is nil.
func cmpErr(err, otherwise error) error {
	if err != nil {
		return err
	}
	return otherwise
}
