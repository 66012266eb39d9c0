package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"

	"pushmail/notify"
)

// The account change log: what changed in a user's account after a
// point, over all their mailboxes, for the HTTP API's states and
// /changes methods (RFC 8620 §5.1 "state", §5.2 "/changes"). The
// per-mailbox log (changelog.go) answers IMAP, whose clients look at one
// mailbox at a time; JMAP's objects span the account: an Email is one
// message in every mailbox it is in (the messages of the user that share
// a body row, which a copy does), and a Mailbox changes when its name,
// role or counts do.
//
// It is kept by triggers, in the transaction of every write that
// changes a message or a mailbox, so that no write path (SMTP, IMAP,
// POP3, JMAP, the admin commands) can forget it:
//
//   - users.change_seq is the account's sequence: every change of an
//     object takes the next value;
//   - account_changes holds one row per object that changed since the
//     log began (schema: this migration): its kind, its id, the seq it
//     was created at (0: before the log began, or not known to be new),
//     the seq of its latest change, for a mailbox the seq of its latest
//     change other than its counts, and whether it is destroyed (a
//     tombstone);
//   - users.change_horizon is the lowest seq from which the tombstones
//     are complete.
//
// Tombstones are bounded per account: the trigger that writes one drops
// those more than accountTombstoneWindow seqs older, and raises the
// horizon to the newest one it dropped. As each change takes a seq, an
// account keeps at most that many. Nothing else moves the horizon.

// ChangeKind is the kind of object an account change log row is about.
type ChangeKind int

// Change kinds. Their values are stored.
const (
	// KindEmail is an email: the user's messages that share one body.
	KindEmail ChangeKind = 1
	// KindMailbox is a mailbox.
	KindMailbox ChangeKind = 2
)

// accountTombstoneWindow is the number of seqs an account keeps
// tombstones for; the default of the meta row the triggers read.
const accountTombstoneWindow = 10_000

// migrationAccountLog is the schema change that starts the account
// change log; one entry of migrations, wherever it is numbered.
//
// Email ids are body ids, so this also makes body ids never handed out
// twice, as version 3 did for users and mailboxes: a JMAP id must never
// name another object (RFC 8620 §1.2: "the same id MUST NOT be used for
// a different object"). Files written before keep their bodies; the
// objects they hold start unchanged at seq 0, so the first state of
// every account is "0".
const migrationAccountLog = `
INSERT INTO meta(key, value) SELECT 'bodies_id_hw', COALESCE(max(id), 0) FROM bodies;
CREATE TRIGGER bodies_id_hw AFTER INSERT ON bodies BEGIN
	UPDATE meta SET value = max(value, NEW.id) WHERE key = 'bodies_id_hw';
END;
INSERT INTO meta(key, value) VALUES ('account_tombstone_window', 10000);
ALTER TABLE users ADD COLUMN change_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN change_horizon INTEGER NOT NULL DEFAULT 0;
CREATE TABLE account_changes (
	user_id   INTEGER NOT NULL,
	kind      INTEGER NOT NULL,            -- ChangeKind
	id        INTEGER NOT NULL,            -- bodies.id (email) or mailboxes.id
	created   INTEGER NOT NULL DEFAULT 0,  -- seq it was created at; 0: not known to be new
	changed   INTEGER NOT NULL,            -- seq of its latest change
	meta      INTEGER NOT NULL DEFAULT 0,  -- mailbox: seq of its latest change other than counts
	destroyed INTEGER NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, kind, id)
) WITHOUT ROWID;
CREATE INDEX account_changes_seq ON account_changes(user_id, kind, changed);
CREATE INDEX account_changes_tombstones ON account_changes(user_id, changed) WHERE destroyed != 0;

-- A message added: its email is created, or updated when the user already
-- has it in another mailbox (a copy).
CREATE TRIGGER account_message_insert AFTER INSERT ON messages BEGIN
	UPDATE users SET change_seq = change_seq + 1
		WHERE id = (SELECT user_id FROM mailboxes WHERE id = NEW.mailbox_id);
	INSERT INTO account_changes(user_id, kind, id, created, changed)
		SELECT b.user_id, 1, NEW.body_id,
			CASE WHEN EXISTS (SELECT 1 FROM messages m JOIN mailboxes o ON o.id = m.mailbox_id
				WHERE m.body_id = NEW.body_id AND o.user_id = b.user_id
				AND NOT (m.mailbox_id = NEW.mailbox_id AND m.uid = NEW.uid)) THEN 0 ELSE u.change_seq END,
			u.change_seq
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.id = NEW.mailbox_id
		ON CONFLICT(user_id, kind, id) DO UPDATE SET
			created = CASE WHEN destroyed != 0 THEN excluded.changed ELSE created END,
			changed = excluded.changed, destroyed = 0;
END;

-- A message removed: its email is updated, or destroyed with its last
-- message. A mailbox's own deletion is account_mailbox_delete's: its row
-- is gone when the cascade removes its messages, and this finds no user.
CREATE TRIGGER account_message_delete AFTER DELETE ON messages BEGIN
	UPDATE users SET change_seq = change_seq + 1
		WHERE id = (SELECT user_id FROM mailboxes WHERE id = OLD.mailbox_id);
	INSERT INTO account_changes(user_id, kind, id, changed, destroyed)
		SELECT b.user_id, 1, OLD.body_id, u.change_seq,
			NOT EXISTS (SELECT 1 FROM messages m JOIN mailboxes o ON o.id = m.mailbox_id
				WHERE m.body_id = OLD.body_id AND o.user_id = b.user_id)
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.id = OLD.mailbox_id
		ON CONFLICT(user_id, kind, id) DO UPDATE SET changed = excluded.changed, destroyed = excluded.destroyed;
END;

CREATE TRIGGER account_message_flags AFTER UPDATE OF flags, keywords ON messages
WHEN OLD.flags != NEW.flags OR OLD.keywords != NEW.keywords BEGIN
	UPDATE users SET change_seq = change_seq + 1
		WHERE id = (SELECT user_id FROM mailboxes WHERE id = NEW.mailbox_id);
	INSERT INTO account_changes(user_id, kind, id, changed)
		SELECT b.user_id, 1, NEW.body_id, u.change_seq
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.id = NEW.mailbox_id
		ON CONFLICT(user_id, kind, id) DO UPDATE SET changed = excluded.changed;
END;

CREATE TRIGGER account_mailbox_insert AFTER INSERT ON mailboxes BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id;
	INSERT INTO account_changes(user_id, kind, id, created, changed, meta)
		SELECT NEW.user_id, 2, NEW.id, change_seq, change_seq, change_seq FROM users WHERE id = NEW.user_id
		ON CONFLICT(user_id, kind, id) DO UPDATE SET
			created = excluded.created, changed = excluded.changed, meta = excluded.meta, destroyed = 0;
END;

CREATE TRIGGER account_mailbox_rename AFTER UPDATE OF name, special_use ON mailboxes
WHEN OLD.name != NEW.name OR OLD.special_use != NEW.special_use BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id;
	INSERT INTO account_changes(user_id, kind, id, changed, meta)
		SELECT NEW.user_id, 2, NEW.id, change_seq, change_seq FROM users WHERE id = NEW.user_id
		ON CONFLICT(user_id, kind, id) DO UPDATE SET changed = excluded.changed, meta = excluded.meta;
END;

CREATE TRIGGER account_mailbox_counts AFTER UPDATE OF message_count, unseen_count ON mailboxes
WHEN OLD.message_count != NEW.message_count OR OLD.unseen_count != NEW.unseen_count BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id;
	INSERT INTO account_changes(user_id, kind, id, changed)
		SELECT NEW.user_id, 2, NEW.id, change_seq FROM users WHERE id = NEW.user_id
		ON CONFLICT(user_id, kind, id) DO UPDATE SET changed = excluded.changed;
END;

-- Before a mailbox goes, while its messages are still there: each of its
-- emails is updated, or destroyed when the user has it nowhere else; then
-- the mailbox is destroyed. Under DeleteUser the user row is gone
-- already, and nothing is written (the user's log goes with them).
CREATE TRIGGER account_mailbox_delete BEFORE DELETE ON mailboxes BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = OLD.user_id;
	INSERT INTO account_changes(user_id, kind, id, changed, destroyed)
		SELECT OLD.user_id, 1, m.body_id, u.change_seq,
			NOT EXISTS (SELECT 1 FROM messages o JOIN mailboxes ob ON ob.id = o.mailbox_id
				WHERE o.body_id = m.body_id AND ob.user_id = OLD.user_id AND o.mailbox_id != OLD.id)
		FROM messages m JOIN users u ON u.id = OLD.user_id WHERE m.mailbox_id = OLD.id
		GROUP BY m.body_id
		ON CONFLICT(user_id, kind, id) DO UPDATE SET changed = excluded.changed, destroyed = excluded.destroyed;
	INSERT INTO account_changes(user_id, kind, id, changed, meta, destroyed)
		SELECT OLD.user_id, 2, OLD.id, change_seq, change_seq, 1 FROM users WHERE id = OLD.user_id
		ON CONFLICT(user_id, kind, id) DO UPDATE SET changed = excluded.changed, meta = excluded.meta, destroyed = 1;
END;

-- The bound on tombstones: those more than the window older than the
-- newest go, and the horizon rises to the newest of them.
CREATE TRIGGER account_tombstone_insert AFTER INSERT ON account_changes WHEN NEW.destroyed != 0 BEGIN
	UPDATE users SET change_horizon = max(change_horizon, COALESCE((SELECT max(changed) FROM account_changes
		WHERE user_id = NEW.user_id AND destroyed != 0
		AND changed <= NEW.changed - (SELECT value FROM meta WHERE key = 'account_tombstone_window')), 0))
		WHERE id = NEW.user_id;
	DELETE FROM account_changes WHERE user_id = NEW.user_id AND destroyed != 0
		AND changed <= NEW.changed - (SELECT value FROM meta WHERE key = 'account_tombstone_window');
END;
CREATE TRIGGER account_tombstone_update AFTER UPDATE OF destroyed ON account_changes WHEN NEW.destroyed != 0 BEGIN
	UPDATE users SET change_horizon = max(change_horizon, COALESCE((SELECT max(changed) FROM account_changes
		WHERE user_id = NEW.user_id AND destroyed != 0
		AND changed <= NEW.changed - (SELECT value FROM meta WHERE key = 'account_tombstone_window')), 0))
		WHERE id = NEW.user_id;
	DELETE FROM account_changes WHERE user_id = NEW.user_id AND destroyed != 0
		AND changed <= NEW.changed - (SELECT value FROM meta WHERE key = 'account_tombstone_window');
END;

-- \Deleted hides a message from the HTTP API's counts (RFC 8621 §4.1.1),
-- which the mailbox counters do not see: setting or clearing it changes
-- the mailbox's counts there.
CREATE TRIGGER account_message_deleted AFTER UPDATE OF flags ON messages
WHEN (OLD.flags & 8) != (NEW.flags & 8) BEGIN
	UPDATE users SET change_seq = change_seq + 1
		WHERE id = (SELECT user_id FROM mailboxes WHERE id = NEW.mailbox_id);
	INSERT INTO account_changes(user_id, kind, id, changed)
		SELECT b.user_id, 2, b.id, u.change_seq
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.id = NEW.mailbox_id
		ON CONFLICT(user_id, kind, id) DO UPDATE SET changed = excluded.changed;
END;

-- A subscription is a mailbox's isSubscribed: subscribing or
-- unsubscribing the name of an existing mailbox changes that mailbox.
CREATE TRIGGER account_subscribe AFTER INSERT ON subscriptions BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id;
	INSERT INTO account_changes(user_id, kind, id, changed, meta)
		SELECT NEW.user_id, 2, b.id, u.change_seq, u.change_seq
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.user_id = NEW.user_id AND b.name = NEW.name
		ON CONFLICT(user_id, kind, id) DO UPDATE SET changed = excluded.changed, meta = excluded.meta;
END;
CREATE TRIGGER account_unsubscribe AFTER DELETE ON subscriptions BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = OLD.user_id;
	INSERT INTO account_changes(user_id, kind, id, changed, meta)
		SELECT OLD.user_id, 2, b.id, u.change_seq, u.change_seq
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.user_id = OLD.user_id AND b.name = OLD.name
		ON CONFLICT(user_id, kind, id) DO UPDATE SET changed = excluded.changed, meta = excluded.meta;
END;

-- Email/query's common case, newest first in a mailbox, as an index
-- range instead of a sort of the whole mailbox (EmailPage).
CREATE INDEX messages_date ON messages(mailbox_id, internal_date);

CREATE TRIGGER account_user_delete AFTER DELETE ON users BEGIN
	DELETE FROM account_changes WHERE user_id = OLD.id;
END;
`

// AccountState is an account's position in its change log, per kind.
type AccountState struct {
	// Email and Mailbox are the seq of the latest change of an object of
	// that kind (or the horizon, when that is later): the JMAP state of
	// the type. They only grow.
	Email, Mailbox uint64
}

// accountStateSQL reads a user's AccountState: Store.AccountState, and
// the writer for the events it publishes (stampAccountStatesTx).
const accountStateSQL = `SELECT
		max(u.change_horizon, COALESCE((SELECT max(changed) FROM account_changes WHERE user_id = u.id AND kind = 1), 0)),
		max(u.change_horizon, COALESCE((SELECT max(changed) FROM account_changes WHERE user_id = u.id AND kind = 2), 0))
		FROM users u WHERE u.id = ?`

// AccountState reads user's current states.
func (s *Store) AccountState(ctx context.Context, user UserID) (AccountState, error) {
	var st AccountState
	err := s.queryRow(ctx, accountStateSQL, user).Scan(&st.Email, &st.Mailbox)
	if errors.Is(err, sql.ErrNoRows) {
		return AccountState{}, fmt.Errorf("account state: %w", ErrNoSuchUser)
	}
	if err != nil {
		return AccountState{}, fmt.Errorf("account state: %w", err)
	}
	return st, nil
}

// stampAccountStatesTx sets Event.States on the events of ops whose
// user has watchers of their own (notify.Hub.WatchesUser: the HTTP API's
// event streams), read in the batch's transaction after its last write:
// what AccountState returns once the batch is committed, since no other
// write comes between (the single writer, and on PostgreSQL the write
// lock). Every event of a user in the batch gets the batch's final
// states. A user the batch deleted has none, and their events none.
// One indexed read per watched user per batch; unwatched users cost a
// map lookup.
func (s *Store) stampAccountStatesTx(tx *wtx, ops []*writeOp) error {
	type stamp struct {
		user int64
		st   notify.AccountStates
	}
	var done []stamp // users seen: a batch rarely has more than a few
	for _, op := range ops {
		if op.err != nil {
			continue
		}
	events:
		for i := range op.events {
			ev := &op.events[i]
			if ev.User == 0 {
				continue
			}
			for _, d := range done {
				if d.user == ev.User {
					ev.States = d.st
					continue events
				}
			}
			var st notify.AccountStates
			if s.hub.WatchesUser(ev.User) {
				err := tx.QueryRow(accountStateSQL, ev.User).Scan(&st.Email, &st.Mailbox)
				switch {
				case errors.Is(err, sql.ErrNoRows):
				case err != nil:
					return fmt.Errorf("account state of user %d for its events: %w", ev.User, err)
				default:
					st.Known = true
				}
			}
			done = append(done, stamp{ev.User, st})
			ev.States = st
		}
	}
	return nil
}

// AccountChanges is what changed among the objects of one kind after a
// state, as RFC 8620 §5.2 /changes reports it.
type AccountChanges struct {
	// NewState is the state the lists bring the caller to: the current
	// one, or with HasMore an intermediate one to ask from next.
	NewState uint64
	HasMore  bool
	// Created, Updated and Destroyed are object ids, each in at most one
	// list. An object created and destroyed since is in none (RFC 8620
	// §5.2: "the server SHOULD remove the id from the response
	// entirely").
	Created, Updated, Destroyed []int64
	// CountsOnly (mailboxes): every updated mailbox changed only in its
	// counts since the state asked about.
	CountsOnly bool
}

// ChangesSinceState returns what changed in user's objects of kind
// after state since, at most max ids (max > 0). When there are more, it
// stops before a seq that would not fit whole and sets HasMore. A since
// below the account's horizon, or above its current state, is
// ErrCannotCalculateChanges.
func (s *Store) ChangesSinceState(ctx context.Context, user UserID, kind ChangeKind, since uint64, max int) (AccountChanges, error) {
	if max <= 0 {
		return AccountChanges{}, errors.New("account changes: max must be positive")
	}
	tx, err := s.rdb.BeginTx(ctx, nil)
	if err != nil {
		return AccountChanges{}, fmt.Errorf("account changes: %w", err)
	}
	defer rollbackRead(tx)
	var seq, horizon, current uint64
	err = tx.QueryRowContext(ctx, `SELECT change_seq, change_horizon,
		max(change_horizon, COALESCE((SELECT max(changed) FROM account_changes WHERE user_id = u.id AND kind = ?), 0))
		FROM users u WHERE id = ?`, kind, user).Scan(&seq, &horizon, &current)
	if errors.Is(err, sql.ErrNoRows) {
		return AccountChanges{}, fmt.Errorf("account changes: %w", ErrNoSuchUser)
	}
	if err != nil {
		return AccountChanges{}, fmt.Errorf("account changes: %w", err)
	}
	if since < horizon || since > seq {
		return AccountChanges{}, fmt.Errorf("account changes since %d (horizon %d, now %d): %w", since, horizon, seq, ErrCannotCalculateChanges)
	}
	rows, err := tx.QueryContext(ctx, `SELECT id, created, changed, meta, destroyed FROM account_changes
		WHERE user_id = ? AND kind = ? AND changed > ? ORDER BY changed LIMIT ?`, user, kind, since, max+1)
	if err != nil {
		return AccountChanges{}, fmt.Errorf("account changes: %w", err)
	}
	type row struct {
		id                     int64
		created, changed, meta uint64
		destroyed              bool
	}
	var list []row
	for rows.Next() {
		var r row
		if err := rows.Scan(&r.id, &r.created, &r.changed, &r.meta, &r.destroyed); err != nil {
			rows.Close()
			return AccountChanges{}, fmt.Errorf("account changes: %w", err)
		}
		list = append(list, r)
	}
	if err := rows.Close(); err != nil {
		return AccountChanges{}, fmt.Errorf("account changes: %w", err)
	}
	c := AccountChanges{NewState: max64(current, since), CountsOnly: true}
	if len(list) > max {
		// Stop before the first seq left out; the ids of one seq (a
		// mailbox deletion's emails) go together or not at all.
		cut := list[max].changed
		for len(list) > 0 && list[len(list)-1].changed >= cut {
			list = list[:len(list)-1]
		}
		if len(list) == 0 {
			return AccountChanges{}, fmt.Errorf("account changes since %d: more than %d objects changed at once: %w", since, max, ErrCannotCalculateChanges)
		}
		c.HasMore = true
		c.NewState = list[len(list)-1].changed
	}
	for _, r := range list {
		switch {
		case r.created > since && r.destroyed:
		case r.created > since:
			c.Created = append(c.Created, r.id)
		case r.destroyed:
			c.Destroyed = append(c.Destroyed, r.id)
		default:
			c.Updated = append(c.Updated, r.id)
			if r.meta > since {
				c.CountsOnly = false
			}
		}
	}
	return c, nil
}

func max64(a, b uint64) uint64 {
	if a > b {
		return a
	}
	return b
}

// HiddenCounts returns, for each of user's mailboxes that holds messages
// with \Deleted, how many it holds and how many of them lack \Seen: what
// the HTTP API takes off the mailbox's counters (RFC 8621 §4.1.1: such
// messages are "not counted in the totalEmails, unreadEmails,
// totalThreads, and unreadThreads Mailbox properties"). It reads the
// \Deleted messages only (index messages_deleted).
func (s *Store) HiddenCounts(ctx context.Context, user UserID) (map[MailboxID][2]uint32, error) {
	// flags & 8 spelt out: the messages_deleted index needs the literal;
	// INDEXED BY, or SQLite reads every message by the primary key.
	rows, err := s.query(ctx, `SELECT m.mailbox_id, count(*), sum(m.flags & 1 = 0) FROM mailboxes b
		JOIN messages m INDEXED BY messages_deleted ON m.mailbox_id = b.id AND m.flags & 8 != 0 WHERE b.user_id = ? GROUP BY m.mailbox_id`, user)
	if err != nil {
		return nil, fmt.Errorf("hidden counts: %w", err)
	}
	defer rows.Close()
	out := map[MailboxID][2]uint32{}
	for rows.Next() {
		var mb MailboxID
		var n, unseen uint32
		if err := rows.Scan(&mb, &n, &unseen); err != nil {
			return nil, fmt.Errorf("hidden counts: %w", err)
		}
		out[mb] = [2]uint32{n, unseen}
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("hidden counts: %w", err)
	}
	return out, nil
}
