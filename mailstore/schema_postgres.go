package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
)

// The PostgreSQL schema. It means what the SQLite schema of version 14
// (migrations) means: the same tables, columns, keys, indexes and meta
// rows, and triggers that keep the same counters and logs. The SQL that
// reads and writes it is the SQLite SQL, rewritten by the driver wrapper;
// so every name here is the SQLite name.
//
// What differs, and why:
//
//   - INTEGER is BIGINT, BLOB is BYTEA. bodies.parsed stays TEXT holding
//     JSON (queries cast it to jsonb where they look inside).
//   - Every TEXT column is COLLATE "C": SQLite compares text by its bytes
//     (the BINARY collation), and the queries depend on that order (the
//     metadata name ranges, LIST's order); a database whose default
//     collation is a locale's would order them otherwise.
//   - bodies.id and push_subscriptions.id are identity columns, which the
//     database assigns (read back with RETURNING id) and never hands out
//     twice; bodies_id_hw is still kept by its trigger. Do not mix
//     explicit ids with the identity on one table: the sequence does not
//     see explicit ids and would later give one of them again.
//   - body_text, an FTS5 table in SQLite, is a plain table keyed by the
//     body id, with trigram GIN indexes (pg_trgm) when the extension can
//     be created (migratePostgres); without them a search scans it.
//   - Each trigger is a plpgsql function and a trigger of the same name.
//     SQLite uses a comparison as the integer 0 or 1, PostgreSQL needs it
//     spelt (CASE, ::int); scalar max(a, b) is GREATEST.
//   - Order: SQLite fires the triggers of one event newest first,
//     PostgreSQL in the order of their names. The names happen to sort
//     in SQLite's order (account_message_deleted, account_message_flags,
//     messages_flags; account_message_insert, messages_insert; ...), and
//     the order matters: it decides which change takes which change_seq.
//     A new trigger must keep it so.
//   - PostgreSQL runs a statement's AFTER ROW triggers, and its foreign
//     key cascades, once the statement has changed all its rows; SQLite
//     runs them after each row. The mailstore's writes to messages are
//     single-row statements, where the two agree; the cascades (DELETE of
//     a mailbox, of a user) come to the same rows, as the differential
//     test checks.

// postgresMigrations[i] moves a PostgreSQL database from schema version i
// to i+1 (pushmail_schema.version). Like migrations, they only go
// forward: never edit one that has shipped, append a new one instead.
// Each runs as one Exec without parameters, so it may hold several
// statements; none may contain a question mark, which the driver wrapper
// would take for a parameter.
var postgresMigrations = []string{
	// 1: the schema of SQLite version 14, complete. The data migrations
	// of SQLite (renormalizeAddresses, backfillSortKeys, indexBodyText)
	// rewrite rows an older pushmail wrote; a PostgreSQL database starts
	// empty at this version, so it needs none of them.
	`
CREATE TABLE meta (
	key   TEXT COLLATE "C" PRIMARY KEY,
	value BIGINT NOT NULL
);
-- UIDVALIDITY values start at the creation time, so that a re-created
-- database does not repeat old values (RFC 9051 §2.3.1.1). The high-water
-- marks of the ids (SQLite versions 3 and 10): ids are never handed out
-- twice. account_tombstone_window: accountTombstoneWindow.
INSERT INTO meta(key, value) VALUES
	('uidvalidity', extract(epoch FROM now())::bigint),
	('users_id_hw', 0),
	('mailboxes_id_hw', 0),
	('bodies_id_hw', 0),
	('account_tombstone_window', 10000);

CREATE TABLE users (
	id             BIGINT PRIMARY KEY,  -- given by the code: nextIDSQL
	address        TEXT COLLATE "C" NOT NULL UNIQUE,  -- normalised: lower-case local@domain
	domain         TEXT COLLATE "C" NOT NULL,
	password       TEXT COLLATE "C" NOT NULL,         -- bcrypt hash
	created        BIGINT NOT NULL,                   -- unix seconds
	quota_storage  BIGINT NOT NULL DEFAULT 0,
	quota_messages BIGINT NOT NULL DEFAULT 0,
	used_storage   BIGINT NOT NULL DEFAULT 0,         -- kept by triggers
	used_messages  BIGINT NOT NULL DEFAULT 0,         -- kept by triggers
	change_seq     BIGINT NOT NULL DEFAULT 0,         -- account change log (account.go)
	change_horizon BIGINT NOT NULL DEFAULT 0
);
CREATE INDEX users_domain ON users(domain);

CREATE TABLE aliases (
	address TEXT COLLATE "C" PRIMARY KEY,  -- normalised like users.address
	domain  TEXT COLLATE "C" NOT NULL,
	user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE
);
CREATE INDEX aliases_domain ON aliases(domain);
CREATE INDEX aliases_user ON aliases(user_id);

CREATE TABLE mailboxes (
	id               BIGINT PRIMARY KEY,  -- given by the code: nextIDSQL
	user_id          BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name             TEXT COLLATE "C" NOT NULL,
	uidvalidity      BIGINT NOT NULL,
	uidnext          BIGINT NOT NULL DEFAULT 1,
	highest_modseq   BIGINT NOT NULL DEFAULT 1,
	special_use      TEXT COLLATE "C" NOT NULL DEFAULT '',
	message_count    BIGINT NOT NULL DEFAULT 0,  -- kept by triggers
	unseen_count     BIGINT NOT NULL DEFAULT 0,  -- kept by triggers
	total_size       BIGINT NOT NULL DEFAULT 0,  -- kept by triggers
	recent_uid       BIGINT NOT NULL DEFAULT 0,  -- \Recent high-water mark (recent.go)
	vanished_count   BIGINT NOT NULL DEFAULT 0,  -- tombstones in vanished (changelog.go)
	vanished_horizon BIGINT NOT NULL DEFAULT 0,
	UNIQUE (user_id, name)
);

CREATE TABLE bodies (
	id     BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	header BYTEA NOT NULL,            -- the raw header block, for header searches
	raw    BYTEA NOT NULL,            -- the whole message as received
	parsed TEXT COLLATE "C" NOT NULL  -- JSON of Parsed: envelope, structure, offsets
);

CREATE TABLE messages (
	mailbox_id    BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	uid           BIGINT NOT NULL,
	body_id       BIGINT NOT NULL REFERENCES bodies(id),
	flags         BIGINT NOT NULL DEFAULT 0,                 -- system flags, see flagBits
	keywords      TEXT COLLATE "C" NOT NULL DEFAULT '',      -- ' kw1 kw2 ' (space-framed)
	internal_date BIGINT NOT NULL,                           -- unix nanoseconds
	size          BIGINT NOT NULL,
	modseq        BIGINT NOT NULL,
	save_date     BIGINT,                                    -- unix nanoseconds (savedate.go)
	PRIMARY KEY (mailbox_id, uid)
);
CREATE INDEX messages_body ON messages(body_id);
-- The flag tests are spelt literally in the queries, as for SQLite.
CREATE INDEX messages_unseen ON messages(mailbox_id, uid) WHERE flags & 1 = 0;
CREATE INDEX messages_deleted ON messages(mailbox_id, uid) WHERE flags & 8 != 0;
CREATE INDEX messages_modseq ON messages(mailbox_id, modseq);
CREATE INDEX messages_keywords ON messages(mailbox_id, keywords) WHERE keywords != '';
CREATE INDEX messages_date ON messages(mailbox_id, internal_date);

CREATE TABLE subscriptions (
	user_id BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	name    TEXT COLLATE "C" NOT NULL,  -- as ValidateMailboxName returns it; may name no mailbox
	PRIMARY KEY (user_id, name)
);

CREATE TABLE vanished (
	mailbox_id BIGINT NOT NULL REFERENCES mailboxes(id) ON DELETE CASCADE,
	modseq     BIGINT NOT NULL,  -- the expunge's: the highest_modseq it raised the mailbox to
	uid        BIGINT NOT NULL,
	PRIMARY KEY (mailbox_id, modseq, uid)
);

CREATE TABLE metadata (
	user_id    BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	mailbox_id BIGINT NOT NULL,            -- 0: a server entry (RFC 5464 §3.2)
	name       TEXT COLLATE "C" NOT NULL,  -- lower case, as NormalizeEntryName returns it
	value      BYTEA NOT NULL,
	PRIMARY KEY (user_id, mailbox_id, name)
);

CREATE TABLE account_changes (
	user_id   BIGINT NOT NULL,
	kind      BIGINT NOT NULL,            -- ChangeKind
	id        BIGINT NOT NULL,            -- bodies.id (email) or mailboxes.id
	created   BIGINT NOT NULL DEFAULT 0,  -- seq it was created at; 0: not known to be new
	changed   BIGINT NOT NULL,            -- seq of its latest change
	meta      BIGINT NOT NULL DEFAULT 0,  -- mailbox: seq of its latest change other than counts
	destroyed BIGINT NOT NULL DEFAULT 0,
	PRIMARY KEY (user_id, kind, id)
);
CREATE INDEX account_changes_seq ON account_changes(user_id, kind, changed);
CREATE INDEX account_changes_tombstones ON account_changes(user_id, changed) WHERE destroyed != 0;

CREATE TABLE push_pending (
	endpoint   TEXT COLLATE "C" NOT NULL,
	key        TEXT COLLATE "C" NOT NULL,
	user_id    BIGINT NOT NULL,
	payload    BYTEA,             -- NULL: built when sent
	attempts   BIGINT NOT NULL,
	not_before BIGINT NOT NULL,   -- Unix ms
	PRIMARY KEY (endpoint, key)
);

CREATE TABLE push_subscriptions (
	id                BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
	user_id           BIGINT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
	device_client_id  TEXT COLLATE "C" NOT NULL,
	url               TEXT COLLATE "C" NOT NULL,
	p256dh            TEXT COLLATE "C" NOT NULL,  -- keys, base64url; both '' when none
	auth              TEXT COLLATE "C" NOT NULL,
	code              TEXT COLLATE "C" NOT NULL,  -- the verification code sent to url
	verification_code TEXT COLLATE "C" NOT NULL,  -- the code the client set; equal: verified
	expires           BIGINT NOT NULL,            -- Unix seconds
	types             TEXT COLLATE "C" NOT NULL   -- comma-separated; '' for every type
);
CREATE INDEX push_subscriptions_user ON push_subscriptions(user_id);

CREATE TABLE sortkeys (
	body_id      BIGINT PRIMARY KEY REFERENCES bodies(id) ON DELETE CASCADE,
	sent         TEXT COLLATE "C",
	subject      TEXT COLLATE "C",
	from_mailbox TEXT COLLATE "C",
	to_mailbox   TEXT COLLATE "C",
	cc_mailbox   TEXT COLLATE "C",
	display_from TEXT COLLATE "C",
	display_to   TEXT COLLATE "C",
	message_id   TEXT COLLATE "C",
	in_reply_to  TEXT COLLATE "C",
	refs         TEXT COLLATE "C"
);

-- The full-text index (fulltext.go): one row per body, id = bodies.id, the
-- text lower-cased by Go. Its trigram indexes are migratePostgres's.
CREATE TABLE body_text (
	id     BIGINT PRIMARY KEY,  -- bodies.id
	header TEXT COLLATE "C" NOT NULL,
	body   TEXT COLLATE "C" NOT NULL
);
CREATE TABLE body_crlf_size (
	id   BIGINT PRIMARY KEY,  -- bodies.id
	size BIGINT NOT NULL      -- octets with every bare LF sent as CRLF (maildrop.go)
);

-- The mailbox counters (SQLite version 1).
CREATE FUNCTION messages_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE mailboxes SET
		message_count = message_count + 1,
		unseen_count = unseen_count + CASE WHEN NEW.flags & 1 = 0 THEN 1 ELSE 0 END,
		total_size = total_size + NEW.size
	WHERE id = NEW.mailbox_id;
	RETURN NULL;
END $$;
CREATE TRIGGER messages_insert AFTER INSERT ON messages
	FOR EACH ROW EXECUTE FUNCTION messages_insert();

CREATE FUNCTION messages_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE mailboxes SET
		message_count = message_count - 1,
		unseen_count = unseen_count - CASE WHEN OLD.flags & 1 = 0 THEN 1 ELSE 0 END,
		total_size = total_size - OLD.size
	WHERE id = OLD.mailbox_id;
	DELETE FROM bodies WHERE id = OLD.body_id
		AND NOT EXISTS (SELECT 1 FROM messages WHERE body_id = OLD.body_id);
	RETURN NULL;
END $$;
CREATE TRIGGER messages_delete AFTER DELETE ON messages
	FOR EACH ROW EXECUTE FUNCTION messages_delete();

CREATE FUNCTION messages_flags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE mailboxes SET
		unseen_count = unseen_count + CASE WHEN NEW.flags & 1 = 0 THEN 1 ELSE 0 END
			- CASE WHEN OLD.flags & 1 = 0 THEN 1 ELSE 0 END
	WHERE id = NEW.mailbox_id;
	RETURN NULL;
END $$;
CREATE TRIGGER messages_flags AFTER UPDATE OF flags ON messages
	FOR EACH ROW EXECUTE FUNCTION messages_flags();

-- The ids' high-water marks (SQLite versions 3 and 10): one function
-- for the three tables, whose meta key is the table's name and "_id_hw".
CREATE FUNCTION id_hw() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE meta SET value = GREATEST(value, NEW.id) WHERE key = TG_TABLE_NAME || '_id_hw';
	RETURN NULL;
END $$;
CREATE TRIGGER users_id_hw AFTER INSERT ON users
	FOR EACH ROW EXECUTE FUNCTION id_hw();
CREATE TRIGGER mailboxes_id_hw AFTER INSERT ON mailboxes
	FOR EACH ROW EXECUTE FUNCTION id_hw();
CREATE TRIGGER bodies_id_hw AFTER INSERT ON bodies
	FOR EACH ROW EXECUTE FUNCTION id_hw();

-- Quota usage and mailbox annotations (SQLite version 9).
CREATE FUNCTION mailboxes_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET
		used_storage = used_storage + NEW.total_size - OLD.total_size,
		used_messages = used_messages + NEW.message_count - OLD.message_count
	WHERE id = NEW.user_id;
	RETURN NULL;
END $$;
CREATE TRIGGER mailboxes_usage AFTER UPDATE OF message_count, total_size ON mailboxes
	FOR EACH ROW EXECUTE FUNCTION mailboxes_usage();

CREATE FUNCTION mailboxes_delete_usage() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET
		used_storage = used_storage - OLD.total_size,
		used_messages = used_messages - OLD.message_count
	WHERE id = OLD.user_id;
	DELETE FROM metadata WHERE user_id = OLD.user_id AND mailbox_id = OLD.id;
	RETURN NULL;
END $$;
CREATE TRIGGER mailboxes_delete_usage AFTER DELETE ON mailboxes
	FOR EACH ROW EXECUTE FUNCTION mailboxes_delete_usage();

-- The account change log (account.go, migrationAccountLog): the comments
-- there say what each trigger records.
CREATE FUNCTION account_message_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_seq = change_seq + 1
		WHERE id = (SELECT user_id FROM mailboxes WHERE id = NEW.mailbox_id);
	INSERT INTO account_changes(user_id, kind, id, created, changed)
		SELECT b.user_id, 1, NEW.body_id,
			CASE WHEN EXISTS (SELECT 1 FROM messages m JOIN mailboxes o ON o.id = m.mailbox_id
				WHERE m.body_id = NEW.body_id AND o.user_id = b.user_id
				AND NOT (m.mailbox_id = NEW.mailbox_id AND m.uid = NEW.uid)) THEN 0 ELSE u.change_seq END,
			u.change_seq
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.id = NEW.mailbox_id
		ON CONFLICT (user_id, kind, id) DO UPDATE SET
			created = CASE WHEN account_changes.destroyed != 0 THEN excluded.changed ELSE account_changes.created END,
			changed = excluded.changed, destroyed = 0;
	RETURN NULL;
END $$;
CREATE TRIGGER account_message_insert AFTER INSERT ON messages
	FOR EACH ROW EXECUTE FUNCTION account_message_insert();

CREATE FUNCTION account_message_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_seq = change_seq + 1
		WHERE id = (SELECT user_id FROM mailboxes WHERE id = OLD.mailbox_id);
	INSERT INTO account_changes(user_id, kind, id, changed, destroyed)
		SELECT b.user_id, 1, OLD.body_id, u.change_seq,
			(NOT EXISTS (SELECT 1 FROM messages m JOIN mailboxes o ON o.id = m.mailbox_id
				WHERE m.body_id = OLD.body_id AND o.user_id = b.user_id))::int
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.id = OLD.mailbox_id
		ON CONFLICT (user_id, kind, id) DO UPDATE SET changed = excluded.changed, destroyed = excluded.destroyed;
	RETURN NULL;
END $$;
CREATE TRIGGER account_message_delete AFTER DELETE ON messages
	FOR EACH ROW EXECUTE FUNCTION account_message_delete();

CREATE FUNCTION account_message_flags() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_seq = change_seq + 1
		WHERE id = (SELECT user_id FROM mailboxes WHERE id = NEW.mailbox_id);
	INSERT INTO account_changes(user_id, kind, id, changed)
		SELECT b.user_id, 1, NEW.body_id, u.change_seq
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.id = NEW.mailbox_id
		ON CONFLICT (user_id, kind, id) DO UPDATE SET changed = excluded.changed;
	RETURN NULL;
END $$;
CREATE TRIGGER account_message_flags AFTER UPDATE OF flags, keywords ON messages
	FOR EACH ROW WHEN (OLD.flags != NEW.flags OR OLD.keywords != NEW.keywords)
	EXECUTE FUNCTION account_message_flags();

CREATE FUNCTION account_mailbox_insert() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id;
	INSERT INTO account_changes(user_id, kind, id, created, changed, meta)
		SELECT NEW.user_id, 2, NEW.id, change_seq, change_seq, change_seq FROM users WHERE id = NEW.user_id
		ON CONFLICT (user_id, kind, id) DO UPDATE SET
			created = excluded.created, changed = excluded.changed, meta = excluded.meta, destroyed = 0;
	RETURN NULL;
END $$;
CREATE TRIGGER account_mailbox_insert AFTER INSERT ON mailboxes
	FOR EACH ROW EXECUTE FUNCTION account_mailbox_insert();

CREATE FUNCTION account_mailbox_rename() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id;
	INSERT INTO account_changes(user_id, kind, id, changed, meta)
		SELECT NEW.user_id, 2, NEW.id, change_seq, change_seq FROM users WHERE id = NEW.user_id
		ON CONFLICT (user_id, kind, id) DO UPDATE SET changed = excluded.changed, meta = excluded.meta;
	RETURN NULL;
END $$;
CREATE TRIGGER account_mailbox_rename AFTER UPDATE OF name, special_use ON mailboxes
	FOR EACH ROW WHEN (OLD.name != NEW.name OR OLD.special_use != NEW.special_use)
	EXECUTE FUNCTION account_mailbox_rename();

CREATE FUNCTION account_mailbox_counts() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id;
	INSERT INTO account_changes(user_id, kind, id, changed)
		SELECT NEW.user_id, 2, NEW.id, change_seq FROM users WHERE id = NEW.user_id
		ON CONFLICT (user_id, kind, id) DO UPDATE SET changed = excluded.changed;
	RETURN NULL;
END $$;
CREATE TRIGGER account_mailbox_counts AFTER UPDATE OF message_count, unseen_count ON mailboxes
	FOR EACH ROW WHEN (OLD.message_count != NEW.message_count OR OLD.unseen_count != NEW.unseen_count)
	EXECUTE FUNCTION account_mailbox_counts();

-- BEFORE, as in SQLite: the mailbox's messages are still there. The
-- GROUP BY names u.change_seq too, which PostgreSQL (unlike SQLite) wants
-- of every column selected outside an aggregate; u is one row.
CREATE FUNCTION account_mailbox_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = OLD.user_id;
	INSERT INTO account_changes(user_id, kind, id, changed, destroyed)
		SELECT OLD.user_id, 1, m.body_id, u.change_seq,
			(NOT EXISTS (SELECT 1 FROM messages o JOIN mailboxes ob ON ob.id = o.mailbox_id
				WHERE o.body_id = m.body_id AND ob.user_id = OLD.user_id AND o.mailbox_id != OLD.id))::int
		FROM messages m JOIN users u ON u.id = OLD.user_id WHERE m.mailbox_id = OLD.id
		GROUP BY m.body_id, u.change_seq
		ON CONFLICT (user_id, kind, id) DO UPDATE SET changed = excluded.changed, destroyed = excluded.destroyed;
	INSERT INTO account_changes(user_id, kind, id, changed, meta, destroyed)
		SELECT OLD.user_id, 2, OLD.id, change_seq, change_seq, 1 FROM users WHERE id = OLD.user_id
		ON CONFLICT (user_id, kind, id) DO UPDATE SET changed = excluded.changed, meta = excluded.meta, destroyed = 1;
	RETURN OLD;
END $$;
CREATE TRIGGER account_mailbox_delete BEFORE DELETE ON mailboxes
	FOR EACH ROW EXECUTE FUNCTION account_mailbox_delete();

-- The bound on tombstones; one function for both triggers, as their
-- bodies were the same in SQLite.
CREATE FUNCTION account_tombstone_prune() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_horizon = GREATEST(change_horizon, COALESCE((SELECT max(changed) FROM account_changes
		WHERE user_id = NEW.user_id AND destroyed != 0
		AND changed <= NEW.changed - (SELECT value FROM meta WHERE key = 'account_tombstone_window')), 0))
		WHERE id = NEW.user_id;
	DELETE FROM account_changes WHERE user_id = NEW.user_id AND destroyed != 0
		AND changed <= NEW.changed - (SELECT value FROM meta WHERE key = 'account_tombstone_window');
	RETURN NULL;
END $$;
CREATE TRIGGER account_tombstone_insert AFTER INSERT ON account_changes
	FOR EACH ROW WHEN (NEW.destroyed != 0)
	EXECUTE FUNCTION account_tombstone_prune();
CREATE TRIGGER account_tombstone_update AFTER UPDATE OF destroyed ON account_changes
	FOR EACH ROW WHEN (NEW.destroyed != 0)
	EXECUTE FUNCTION account_tombstone_prune();

CREATE FUNCTION account_message_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_seq = change_seq + 1
		WHERE id = (SELECT user_id FROM mailboxes WHERE id = NEW.mailbox_id);
	INSERT INTO account_changes(user_id, kind, id, changed)
		SELECT b.user_id, 2, b.id, u.change_seq
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.id = NEW.mailbox_id
		ON CONFLICT (user_id, kind, id) DO UPDATE SET changed = excluded.changed;
	RETURN NULL;
END $$;
CREATE TRIGGER account_message_deleted AFTER UPDATE OF flags ON messages
	FOR EACH ROW WHEN ((OLD.flags & 8) != (NEW.flags & 8))
	EXECUTE FUNCTION account_message_deleted();

CREATE FUNCTION account_subscribe() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = NEW.user_id;
	INSERT INTO account_changes(user_id, kind, id, changed, meta)
		SELECT NEW.user_id, 2, b.id, u.change_seq, u.change_seq
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.user_id = NEW.user_id AND b.name = NEW.name
		ON CONFLICT (user_id, kind, id) DO UPDATE SET changed = excluded.changed, meta = excluded.meta;
	RETURN NULL;
END $$;
CREATE TRIGGER account_subscribe AFTER INSERT ON subscriptions
	FOR EACH ROW EXECUTE FUNCTION account_subscribe();

CREATE FUNCTION account_unsubscribe() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	UPDATE users SET change_seq = change_seq + 1 WHERE id = OLD.user_id;
	INSERT INTO account_changes(user_id, kind, id, changed, meta)
		SELECT OLD.user_id, 2, b.id, u.change_seq, u.change_seq
		FROM mailboxes b JOIN users u ON u.id = b.user_id WHERE b.user_id = OLD.user_id AND b.name = OLD.name
		ON CONFLICT (user_id, kind, id) DO UPDATE SET changed = excluded.changed, meta = excluded.meta;
	RETURN NULL;
END $$;
CREATE TRIGGER account_unsubscribe AFTER DELETE ON subscriptions
	FOR EACH ROW EXECUTE FUNCTION account_unsubscribe();

CREATE FUNCTION account_user_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM account_changes WHERE user_id = OLD.id;
	RETURN NULL;
END $$;
CREATE TRIGGER account_user_delete AFTER DELETE ON users
	FOR EACH ROW EXECUTE FUNCTION account_user_delete();

-- A body's index rows go with it (SQLite version 13).
CREATE FUNCTION bodies_text_delete() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	DELETE FROM body_text WHERE id = OLD.id;
	DELETE FROM body_crlf_size WHERE id = OLD.id;
	RETURN NULL;
END $$;
CREATE TRIGGER bodies_text_delete AFTER DELETE ON bodies
	FOR EACH ROW EXECUTE FUNCTION bodies_text_delete();
`,
}

// postgresSchemaLockKey is the pg_advisory_xact_lock key that
// migratePostgres holds, so that nodes starting together migrate one
// after the other: "pushmail" in ASCII. Advisory locks are per database.
const postgresSchemaLockKey = 0x707573686d61696c

// postgresTrigramIndexes are the trigram indexes of body_text, created
// only where the pg_trgm extension is available.
var postgresTrigramIndexes = []struct{ name, column string }{
	{"body_text_header_trgm", "header"},
	{"body_text_body_trgm", "body"},
}

// migratePostgres brings a PostgreSQL database up to
// len(postgresMigrations), in one transaction under an advisory lock: of
// nodes starting at once, one migrates and the others then find the
// database current. A database from a newer pushmail is refused with
// ErrSchemaTooNew. It also creates body_text's trigram indexes when they
// are missing and pg_trgm can be had; when it cannot (the extension is
// not installed, or the role may not create it), it logs a warning and
// goes on: searches then scan body_text.
//
// The statements carry no bind parameters, so they run alike on the pgx
// driver and on a wrapper that rewrites placeholders.
func migratePostgres(ctx context.Context, db *sql.DB, log *slog.Logger) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("migrate postgres: %w", err)
	}
	if err := migratePostgresTx(ctx, tx, log); err != nil {
		rollback(tx)
		return fmt.Errorf("migrate postgres: %w", err)
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("migrate postgres: commit: %w", err)
	}
	return nil
}

func migratePostgresTx(ctx context.Context, tx *sql.Tx, log *slog.Logger) error {
	// The lock comes first: even CREATE TABLE IF NOT EXISTS fails in one
	// of two transactions that run it at once (a unique violation in the
	// catalogue).
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("SELECT pg_advisory_xact_lock(%d)", postgresSchemaLockKey)); err != nil {
		return fmt.Errorf("lock: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "CREATE TABLE IF NOT EXISTS pushmail_schema (version INTEGER NOT NULL)"); err != nil {
		return fmt.Errorf("create pushmail_schema: %w", err)
	}
	version, err := postgresSchemaVersion(ctx, tx)
	if err != nil {
		return err
	}
	if version > len(postgresMigrations) {
		return fmt.Errorf("%w: database has schema version %d, this binary knows up to %d; upgrade pushmail",
			ErrSchemaTooNew, version, len(postgresMigrations))
	}
	if version < len(postgresMigrations) {
		for v := version; v < len(postgresMigrations); v++ {
			if _, err := tx.ExecContext(ctx, postgresMigrations[v]); err != nil {
				return fmt.Errorf("to version %d: %w", v+1, err)
			}
		}
		// The table holds one row; DELETE then INSERT sets it whether
		// this created the table or found it. The version is our own
		// integer.
		if _, err := tx.ExecContext(ctx, fmt.Sprintf("DELETE FROM pushmail_schema; INSERT INTO pushmail_schema(version) VALUES (%d)",
			len(postgresMigrations))); err != nil {
			return fmt.Errorf("record version %d: %w", len(postgresMigrations), err)
		}
		log.Info("postgres schema migrated", "from", version, "to", len(postgresMigrations))
	}
	return ensureTrigramIndexes(ctx, tx, log)
}

// ensureTrigramIndexes creates body_text's trigram indexes if they are
// missing, creating pg_trgm first; if the extension cannot be created,
// it logs a warning and leaves the indexes out. It runs at every start,
// so that an extension installed later gets its indexes then.
func ensureTrigramIndexes(ctx context.Context, tx *sql.Tx, log *slog.Logger) error {
	var missing int
	for _, ix := range postgresTrigramIndexes {
		var present bool
		// to_regclass is NULL for a name that is no relation; the name
		// is our own constant.
		if err := tx.QueryRowContext(ctx, "SELECT to_regclass('"+ix.name+"') IS NOT NULL").Scan(&present); err != nil {
			return fmt.Errorf("look for index %s: %w", ix.name, err)
		}
		if !present {
			missing++
		}
	}
	if missing == 0 {
		return nil
	}
	// A failed statement aborts the whole transaction in PostgreSQL; the
	// savepoint confines CREATE EXTENSION's failure to itself.
	if _, err := tx.ExecContext(ctx, "SAVEPOINT pushmail_trgm"); err != nil {
		return fmt.Errorf("savepoint: %w", err)
	}
	if _, err := tx.ExecContext(ctx, "CREATE EXTENSION IF NOT EXISTS pg_trgm"); err != nil {
		if _, rerr := tx.ExecContext(ctx, "ROLLBACK TO SAVEPOINT pushmail_trgm"); rerr != nil {
			return fmt.Errorf("roll back to savepoint after CREATE EXTENSION pg_trgm failed (%v): %w", err, rerr)
		}
		log.Warn("postgres: cannot create the pg_trgm extension; full-text search (SEARCH BODY, TEXT) will scan every message instead of using trigram indexes. Install pg_trgm (postgresql-contrib) or CREATE EXTENSION pg_trgm as a superuser, then restart",
			"err", err)
		return nil
	}
	if _, err := tx.ExecContext(ctx, "RELEASE SAVEPOINT pushmail_trgm"); err != nil {
		return fmt.Errorf("release savepoint: %w", err)
	}
	for _, ix := range postgresTrigramIndexes {
		if _, err := tx.ExecContext(ctx, "CREATE INDEX IF NOT EXISTS "+ix.name+" ON body_text USING gin ("+ix.column+" gin_trgm_ops)"); err != nil {
			return fmt.Errorf("create index %s: %w", ix.name, err)
		}
	}
	log.Info("postgres: trigram indexes of body_text created")
	return nil
}

// rowQueryer is what postgresSchemaVersion reads with: a *sql.DB, *sql.Conn
// or *sql.Tx.
type rowQueryer interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// postgresSchemaVersion returns the schema version of a PostgreSQL
// database: 0 when pushmail_schema is missing (a database pushmail never
// migrated) or empty.
func postgresSchemaVersion(ctx context.Context, q rowQueryer) (int, error) {
	var exists bool
	if err := q.QueryRowContext(ctx, "SELECT to_regclass('pushmail_schema') IS NOT NULL").Scan(&exists); err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	if !exists {
		return 0, nil
	}
	var version int
	err := q.QueryRowContext(ctx, "SELECT version FROM pushmail_schema").Scan(&version)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("read schema version: %w", err)
	}
	return version, nil
}
