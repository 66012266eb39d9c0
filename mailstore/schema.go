package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// migrations[i] moves the schema from user_version i to i+1. They only go
// forward; never edit one that has shipped, append a new one instead.
var migrations = []string{
	// 1: the initial schema.
	`
CREATE TABLE meta (
	key   TEXT PRIMARY KEY,
	value INTEGER NOT NULL
);
CREATE TABLE users (
	id       INTEGER PRIMARY KEY,
	address  TEXT NOT NULL UNIQUE,  -- normalised: lower-case local@domain
	domain   TEXT NOT NULL,
	password TEXT NOT NULL,         -- bcrypt hash
	created  INTEGER NOT NULL       -- unix seconds
);
CREATE INDEX users_domain ON users(domain);
CREATE TABLE aliases (
	address TEXT PRIMARY KEY,       -- normalised like users.address
	domain  TEXT NOT NULL,
	user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE
);
CREATE INDEX aliases_domain ON aliases(domain);
CREATE INDEX aliases_user ON aliases(user_id);
CREATE TABLE mailboxes (
	id             INTEGER PRIMARY KEY,
	user_id        INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name           TEXT NOT NULL,
	uidvalidity    INTEGER NOT NULL,
	uidnext        INTEGER NOT NULL DEFAULT 1,
	highest_modseq INTEGER NOT NULL DEFAULT 1,
	special_use    TEXT NOT NULL DEFAULT '',
	subscribed     INTEGER NOT NULL DEFAULT 0,
	message_count  INTEGER NOT NULL DEFAULT 0,  -- kept by triggers
	unseen_count   INTEGER NOT NULL DEFAULT 0,  -- kept by triggers
	total_size     INTEGER NOT NULL DEFAULT 0,  -- kept by triggers
	UNIQUE (user_id, name)
);
CREATE TABLE bodies (
	id     INTEGER PRIMARY KEY,
	header BLOB NOT NULL,  -- the raw header block, for header searches
	raw    BLOB NOT NULL,  -- the whole message as received
	parsed TEXT NOT NULL   -- JSON of Parsed: envelope, structure, offsets
);
CREATE TABLE messages (
	mailbox_id    INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid           INTEGER NOT NULL,
	body_id       INTEGER NOT NULL REFERENCES bodies(id),
	flags         INTEGER NOT NULL DEFAULT 0,   -- system flags, see flagBits
	keywords      TEXT NOT NULL DEFAULT '',     -- ' kw1 kw2 ' (space-framed)
	internal_date INTEGER NOT NULL,             -- unix nanoseconds
	size          INTEGER NOT NULL,
	modseq        INTEGER NOT NULL,
	PRIMARY KEY (mailbox_id, uid)
) WITHOUT ROWID;
CREATE INDEX messages_body ON messages(body_id);

CREATE TRIGGER messages_insert AFTER INSERT ON messages BEGIN
	UPDATE mailboxes SET
		message_count = message_count + 1,
		unseen_count = unseen_count + (NEW.flags & 1 = 0),
		total_size = total_size + NEW.size
	WHERE id = NEW.mailbox_id;
END;
CREATE TRIGGER messages_delete AFTER DELETE ON messages BEGIN
	UPDATE mailboxes SET
		message_count = message_count - 1,
		unseen_count = unseen_count - (OLD.flags & 1 = 0),
		total_size = total_size - OLD.size
	WHERE id = OLD.mailbox_id;
	DELETE FROM bodies WHERE id = OLD.body_id
		AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = OLD.body_id);
END;
CREATE TRIGGER messages_flags AFTER UPDATE OF flags ON messages BEGIN
	UPDATE mailboxes SET
		unseen_count = unseen_count + (NEW.flags & 1 = 0) - (OLD.flags & 1 = 0)
	WHERE id = NEW.mailbox_id;
END;
`,
	// 2: partial indexes for the common flag questions: first unseen,
	// SEARCH UNSEEN, and EXPUNGE's \Deleted messages. Queries must spell
	// the flag test literally (flags & 1 = 0, flags & 8 != 0), not as a
	// bound parameter, for SQLite to use them.
	`
CREATE INDEX messages_unseen ON messages(mailbox_id, uid) WHERE flags & 1 = 0;
CREATE INDEX messages_deleted ON messages(mailbox_id, uid) WHERE flags & 8 != 0;
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
`,
	// Version 3: ids are never handed out twice. users.id and mailboxes.id
	// are plain INTEGER PRIMARY KEYs, and SQLite gives the next row the
	// highest id plus one, reusing a deleted account's or mailbox's id when
	// it was the highest: an IMAP session still logged in as the deleted
	// user, or an SMTP transaction that resolved it at RCPT, would then
	// reach the new owner's mail. The highest id ever given is kept in meta
	// (by these triggers), and inserts take the next one (nextIDSQL).
	`
INSERT INTO meta(key, value) SELECT 'users_id_hw', COALESCE(max(id), 0) FROM users;
INSERT INTO meta(key, value) SELECT 'mailboxes_id_hw', COALESCE(max(id), 0) FROM mailboxes;
CREATE TRIGGER users_id_hw AFTER INSERT ON users BEGIN
	UPDATE meta SET value = max(value, NEW.id) WHERE key = 'users_id_hw';
END;
CREATE TRIGGER mailboxes_id_hw AFTER INSERT ON mailboxes BEGIN
	UPDATE meta SET value = max(value, NEW.id) WHERE key = 'mailboxes_id_hw';
END;
`,
	// Version 4: domains are stored in A-label form (normalizeDomain), so
	// that "bücher.example" and "xn--bcher-kva.example" are one domain.
	// Files written before may hold either form; the addresses are
	// normalised again in Go, by renormalizeAddresses, in migrationSteps.
	``,
	// Version 5: subscriptions are names, not a property of a mailbox.
	// RFC 9051 §6.3.7: a server "SHOULD NOT unilaterally remove an
	// existing mailbox name from the subscription list even if a mailbox
	// by that name no longer exists"; as a column of mailboxes, a
	// subscription went with DELETE. A subscription is now a (user, name)
	// row of its own, which DELETE leaves and DeleteUser cascades away.
	`
CREATE TABLE subscriptions (
	user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name    TEXT NOT NULL,  -- as ValidateMailboxName returns it; may name no mailbox
	PRIMARY KEY (user_id, name)
) WITHOUT ROWID;
INSERT INTO subscriptions(user_id, name) SELECT user_id, name FROM mailboxes WHERE subscribed != 0;
ALTER TABLE mailboxes DROP COLUMN subscribed;
`,
	// Version 6: the \Recent flag of IMAP4rev1 (RFC 3501 §2.3.2: "This
	// session is the first session to have been notified about this
	// message"). recent_uid is the mailbox's high-water mark: a message
	// whose UID is above it has been reported to no session yet, and
	// ClaimRecent raises it. A new mailbox starts at 0, so everything put
	// into it (delivered, appended, copied, moved, or moved by RENAME
	// INBOX) is recent. The mailboxes of a file written before start at
	// their last UID: older pushmails told no session of \Recent, but
	// their clients have seen that mail, and a client that announces
	// \Recent messages as new would otherwise announce the whole store
	// once after the upgrade.
	`
ALTER TABLE mailboxes ADD COLUMN recent_uid INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET recent_uid = uidnext - 1;
`,
	// Version 7: the change log (RFC 7162; changelog.go). Every change to
	// a mailbox's messages already took the next highest_modseq; an
	// expunge now also leaves a tombstone, (UID, the expunge's modseq),
	// so that "what vanished since modseq M" is a range of this table's
	// primary key (RFC 7162 §3.2: the server "MUST associate the
	// incremented mod-sequence with the UIDs of the expunged messages").
	// A tombstone goes with its mailbox (DELETE, DeleteUser), whose
	// successor gets a new UIDVALIDITY anyway.
	//
	// vanished_horizon is the lowest modseq M for which the tombstones
	// answer "vanished since M" in full; vanished_count is the number
	// of tombstones, which the writer bounds (pruneVanishedTx) by
	// dropping the oldest and raising the horizon. Expunges made before
	// this version left no tombstone, so a mailbox that lost any message
	// (it holds fewer messages than the UIDs it handed out: UIDs are
	// never reused) starts with its horizon at its highest modseq. One
	// that never lost one starts at 0, as a new mailbox does: nothing
	// vanished from it, ever.
	`
CREATE TABLE vanished (
	mailbox_id INTEGER NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	modseq     INTEGER NOT NULL,  -- the expunge's: the highest_modseq it raised the mailbox to
	uid        INTEGER NOT NULL,
	PRIMARY KEY (mailbox_id, modseq, uid)
) WITHOUT ROWID;
ALTER TABLE mailboxes ADD COLUMN vanished_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE mailboxes ADD COLUMN vanished_horizon INTEGER NOT NULL DEFAULT 0;
UPDATE mailboxes SET vanished_horizon = highest_modseq WHERE message_count != uidnext - 1;
`,
	// Version 8: the keywords in use in a mailbox (Keywords, for IMAP's
	// FLAGS at SELECT, RFC 9051 §7.3.5) from an index of the messages
	// that carry any, not from a pass over every message: most carry
	// none, and SELECT of a 100,000-message mailbox must stay fast.
	`
CREATE INDEX messages_keywords ON messages(mailbox_id, keywords) WHERE keywords != '';
`,
	// Version 9: quotas (RFC 9208; quota.go) and annotations (RFC 5464;
	// metadata.go). A user's usage is two counters on the user row, kept
	// by triggers from the mailboxes' counters (themselves kept by the
	// messages triggers), so it changes in the transaction that
	// delivers, appends, copies or expunges, and is never recounted. A
	// mailbox deleted with its messages takes its counts off in one
	// step: its row is gone before the cascade deletes the messages,
	// whose triggers then update no mailbox. quota_storage and
	// quota_messages are the limits, 0 for none. Files written before
	// get their usage summed once, here.
	//
	// metadata holds both server entries (mailbox_id 0) and mailbox
	// entries; a mailbox's go with it (the trigger; ids are never
	// reused, version 3), a user's with the user (the cascade).
	`
ALTER TABLE users ADD COLUMN quota_storage INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN quota_messages INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN used_storage INTEGER NOT NULL DEFAULT 0;
ALTER TABLE users ADD COLUMN used_messages INTEGER NOT NULL DEFAULT 0;
UPDATE users SET
	used_storage = (SELECT COALESCE(sum(total_size), 0) FROM mailboxes WHERE user_id = users.id),
	used_messages = (SELECT COALESCE(sum(message_count), 0) FROM mailboxes WHERE user_id = users.id);
CREATE TABLE metadata (
	user_id    INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	mailbox_id INTEGER NOT NULL,  -- 0: a server entry (RFC 5464 §3.2)
	name       TEXT NOT NULL,     -- lower case, as NormalizeEntryName returns it
	value      BLOB NOT NULL,
	PRIMARY KEY (user_id, mailbox_id, name)
) WITHOUT ROWID;
CREATE TRIGGER mailboxes_usage AFTER UPDATE OF message_count, total_size ON mailboxes BEGIN
	UPDATE users SET
		used_storage = used_storage + NEW.total_size - OLD.total_size,
		used_messages = used_messages + NEW.message_count - OLD.message_count
	WHERE id = NEW.user_id;
END;
CREATE TRIGGER mailboxes_delete_usage AFTER DELETE ON mailboxes BEGIN
	UPDATE users SET
		used_storage = used_storage - OLD.total_size,
		used_messages = used_messages - OLD.message_count
	WHERE id = OLD.user_id;
	DELETE FROM metadata WHERE user_id = OLD.user_id AND mailbox_id = OLD.id;
END;
`,
	// Account change log (account.go), for the HTTP API's states and
	// /changes (RFC 8620 §5.2): migrationAccountLog, kept as one entry.
	migrationAccountLog,
	// The wake-ups not yet delivered (package wakeup), so that they
	// survive a restart: one row per endpoint and key (PendingPush); and
	// the users' Web Push subscriptions (PushSubscription).
	`
CREATE TABLE push_pending (
	endpoint   TEXT NOT NULL,
	key        TEXT NOT NULL,
	user_id    INTEGER NOT NULL,
	payload    BLOB,              -- NULL: built when sent
	attempts   INTEGER NOT NULL,
	not_before INTEGER NOT NULL,  -- Unix ms
	PRIMARY KEY (endpoint, key)
) WITHOUT ROWID;
CREATE TABLE push_subscriptions (
	id                INTEGER PRIMARY KEY,
	user_id           INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	device_client_id  TEXT NOT NULL,
	url               TEXT NOT NULL,
	p256dh            TEXT NOT NULL,  -- keys, base64url; both '' when none
	auth              TEXT NOT NULL,
	code              TEXT NOT NULL,  -- the verification code sent to url
	verification_code TEXT NOT NULL,  -- the code the client set; equal: verified
	expires           INTEGER NOT NULL, -- Unix seconds
	types             TEXT NOT NULL   -- comma-separated; '' for every type
);
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id);
`,
	// Version 12 (sortKeysVersion): the sort keys of SORT and THREAD
	// (RFC 5256; sortkeys.go), one row per body, written with it and
	// deleted with it (the cascade: a body goes when its last message
	// does). The strings are as the envelope holds them (subject decoded
	// from RFC 2047, addresses' local parts and display forms, msg-ids
	// without brackets joined by spaces); sent is the Date field as
	// RFC 3339, NULL when missing or unparsable. backfillSortKeys writes
	// the rows of the bodies stored before.
	`
CREATE TABLE sortkeys (
	body_id      INTEGER PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
	sent         TEXT,
	subject      TEXT,
	from_mailbox TEXT,
	to_mailbox   TEXT,
	cc_mailbox   TEXT,
	display_from TEXT,
	display_to   TEXT,
	message_id   TEXT,
	in_reply_to  TEXT,
	refs         TEXT
);
`,
	// Version 13 (versionBodyText): the full-text index of message text
	// for SEARCH BODY and TEXT (fulltext.go), filled from the stored
	// bodies by indexBodyText; and each body's size in CRLF form
	// (body_crlf_size), for POP3's LIST and STAT (maildrop.go).
	migrationBodyText,
	// Version 14 (versionSaveDate): each message's save date (RFC 8514;
	// savedate.go), the existing ones' set to their internal date.
	migrationSaveDate,
}

// migrationSteps[v] runs after migrations[v-1], in the same transaction:
// the part of moving to version v that SQL cannot express.
var migrationSteps = map[int]func(context.Context, *sql.Tx, *slog.Logger) error{
	4:               renormalizeAddresses,
	sortKeysVersion: backfillSortKeys,
	versionBodyText: indexBodyText,
}

// renormalizeAddresses rewrites every user and alias address, and its
// domain column, in the form NormalizeAddress now gives (domains as
// A-labels). Two addresses that become the same, such as a user
// "info@bücher.example" beside a user or alias "info@xn--bcher-kva.example",
// fail the migration: they are one address under RFC 5890 §2.3.2.1, and
// which account should keep it is the operator's choice, made with the
// previous pushmail (the file stays at the old version). An address the
// IDNA rules or foldLocal now refuse (a disallowed code point) is left as
// it is and logged: nothing can address it any more, but its mail stays.
func renormalizeAddresses(ctx context.Context, tx *sql.Tx, log *slog.Logger) error {
	type entry struct {
		table string // users or aliases
		id    int64  // users.id; 0 for aliases, keyed by address
		old   string
		new   string
	}
	rows, err := tx.QueryContext(ctx, "SELECT 'users', id, address, domain FROM users UNION ALL SELECT 'aliases', 0, address, domain FROM aliases")
	if err != nil {
		return err
	}
	var all []entry
	for rows.Next() {
		var e entry
		var domain string
		if err := rows.Scan(&e.table, &e.id, &e.old, &domain); err != nil {
			rows.Close()
			return err
		}
		n, err := NormalizeAddress(e.old)
		if err != nil {
			log.Warn("stored address is not valid under IDNA (RFC 5891) or the local-part fold (foldLocal); left unchanged, and no longer reachable",
				"table", e.table, "address", e.old, "err", err)
			n = e.old
		}
		e.new = n
		if e.new != e.old || domain != domainOf(e.new) {
			all = append(all, e)
		}
	}
	if err := rows.Close(); err != nil {
		return err
	}
	for _, e := range all {
		if e.new == e.old {
			continue
		}
		var other string
		err := tx.QueryRowContext(ctx, "SELECT address FROM users WHERE address = ? UNION ALL SELECT address FROM aliases WHERE address = ?",
			e.new, e.new).Scan(&other)
		if err == nil {
			return fmt.Errorf("%q and %q are the same address (RFC 5890 §2.3.2.1: a U-label and its A-label are one label): delete or rename one with the previous pushmail, then start this one again", e.old, other)
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		for _, f := range all {
			if f != e && f.new == e.new {
				return fmt.Errorf("%q and %q are the same address (RFC 5890 §2.3.2.1: a U-label and its A-label are one label): delete or rename one with the previous pushmail, then start this one again", e.old, f.old)
			}
		}
	}
	for _, e := range all {
		var err error
		if e.table == "users" {
			_, err = tx.ExecContext(ctx, "UPDATE users SET address = ?, domain = ? WHERE id = ?", e.new, domainOf(e.new), e.id)
		} else {
			_, err = tx.ExecContext(ctx, "UPDATE aliases SET address = ?, domain = ? WHERE address = ?", e.new, domainOf(e.new), e.old)
		}
		if err != nil {
			return fmt.Errorf("rewrite %s %q as %q: %w", e.table, e.old, e.new, err)
		}
		log.Info("address normalised: domain in A-label form", "table", e.table, "from", e.old, "to", e.new)
	}
	return nil
}

// nextIDSQL returns the expression an INSERT into table (users or
// mailboxes) uses for the new row's id: one above any id the table ever
// held (schema version 3), even one whose row has since been deleted.
func nextIDSQL(table string) string {
	return "(SELECT max(value, (SELECT COALESCE(max(id), 0) FROM " + table + ")) + 1 FROM meta WHERE key = '" + table + "_id_hw')"
}

// schemaVersion is the user_version this binary writes.
var schemaVersion = len(migrations)

// migrate brings the database up to schemaVersion, one transaction per
// migration. A database from a newer pushmail is refused: this binary
// cannot know what the newer schema means.
func migrate(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	return migrateTo(ctx, db, log, schemaVersion)
}

// migrateTo brings the database up to version target, at most
// schemaVersion; tests use it to write a file as an older pushmail did.
func migrateTo(ctx context.Context, db *sql.DB, log *slog.Logger, target int) error {
	var version int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&version); err != nil {
		return fmt.Errorf("read schema version: %w", err)
	}
	if version > schemaVersion {
		return fmt.Errorf("%w: file has schema version %d, this binary knows up to %d; upgrade pushmail",
			ErrSchemaTooNew, version, schemaVersion)
	}
	for v := version; v < target; v++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("migrate to version %d: %w", v+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[v]); err != nil {
			rollback(tx)
			return fmt.Errorf("migrate to version %d: %w", v+1, err)
		}
		if step := migrationSteps[v+1]; step != nil {
			if err := step(ctx, tx, log); err != nil {
				rollback(tx)
				return fmt.Errorf("migrate to version %d: %w", v+1, err)
			}
		}
		if v == 0 {
			// UIDVALIDITY values start at the creation time so that a
			// re-created data directory does not repeat old values
			// (RFC 9051 §2.3.1.1).
			if _, err := tx.ExecContext(ctx, "INSERT INTO meta(key, value) VALUES ('uidvalidity', ?)",
				time.Now().Unix()); err != nil {
				rollback(tx)
				return fmt.Errorf("migrate to version 1: %w", err)
			}
		}
		// PRAGMA does not take bind parameters; v+1 is our own integer.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", v+1)); err != nil {
			rollback(tx)
			return fmt.Errorf("migrate to version %d: %w", v+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("migrate to version %d: commit: %w", v+1, err)
		}
	}
	return nil
}

// rollback ends a transaction that failed. Its error is deliberately
// dropped: the transaction's own error is the one worth reporting, and a
// failed rollback leaves nothing committed either.
func rollback(tx *sql.Tx) {
	_ = tx.Rollback() // see above: the original error is returned instead
}
