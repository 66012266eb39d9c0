package mailstore

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/binary"
	"errors"
	"fmt"
	"hash"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"

	"pushmail/message"
)

// CopyStore moves a whole store from an SQLite file to PostgreSQL
// ("pushmail store migrate"). What it keeps, and why each part matters:
//
//   - every id as it is: users' and mailboxes' ids are in the account
//     change log, bodies' ids are the HTTP API's email ids (RFC 8620
//     §1.2: an id never changes), and UIDVALIDITY, UIDNEXT,
//     HIGHESTMODSEQ, UIDs, modseqs and tombstones are what IMAP clients
//     cached (RFC 9051 §2.3.1.1, RFC 7162 §3.1): after the move a client
//     resumes with CONDSTORE/QRESYNC instead of downloading everything;
//   - the counters the triggers keep (message counts, usage, change
//     sequences) as they are: the target's user triggers are disabled for
//     the copy (ALTER TABLE … DISABLE TRIGGER USER, in the transaction,
//     enabled again before the commit), so that copying a message neither
//     counts it twice nor logs a change no client made. Foreign keys are
//     system triggers and stay on;
//   - the full-text rows: SQLite's body_text is contentless FTS5 and
//     cannot be read back, so they are computed again from each body by
//     the writer's own function (newBodyText).
//
// Everything is written in one PostgreSQL transaction, with binary COPY,
// and verified before the commit (copyVerify): a copy that fails or does
// not verify leaves the target as it found it.

// ErrCopyMismatch is CopyStore's answer when the target, read back before
// the commit, differs from the source: nothing was committed.
var ErrCopyMismatch = errors.New("the copy differs from the source")

// ErrTargetNotEmpty is CopyStore's refusal of a target that already holds
// a store's rows: a copy never merges two stores.
var ErrTargetNotEmpty = errors.New("the target store is not empty")

// StoreCopy is what CopyStore copied and verified.
type StoreCopy struct {
	// Tables holds each table's rows, in the order they were copied
	// (body_text last: computed, not read).
	Tables []TableRows
	// Mailboxes is the number of mailboxes whose messages were verified
	// one by one (count, total size, checksum of UID, flags, keywords and
	// modseq).
	Mailboxes int
	// BodyBytes is the raw size of the bodies copied, all checksummed on
	// both sides.
	BodyBytes int64
}

// TableRows is one table's row count in a StoreCopy.
type TableRows struct {
	Name string
	Rows int64
}

// Rows returns the row count of the named table (0 if it was not copied).
func (r StoreCopy) Rows(table string) int64 {
	for _, t := range r.Tables {
		if t.Name == table {
			return t.Rows
		}
	}
	return 0
}

// CopyStore copies the SQLite store at from to the PostgreSQL database at
// to (a postgres:// URL), as described above, and returns what it copied.
// The source is opened with Open (which brings an older file's schema up
// to date) and read in one read transaction: its server must be stopped,
// or the copy would miss what it writes afterwards. The target's schema
// is created by opening it with Open; a target that already holds any
// row of a store's tables is refused with ErrTargetNotEmpty. log receives
// the progress (nil: slog.Default()).
func CopyStore(ctx context.Context, from, to string, log *slog.Logger) (StoreCopy, error) {
	return copyStore(ctx, from, to, log, nil)
}

// copyStore is CopyStore with a hook called after each table is copied,
// with a function that runs a statement in the target's transaction: an
// error from it aborts the copy (tests inject failures and corrupt rows
// with it).
func copyStore(ctx context.Context, from, to string, log *slog.Logger, afterTable copyHook) (StoreCopy, error) {
	if log == nil {
		log = slog.Default()
	}
	if IsPostgresURL(from) {
		return StoreCopy{}, errors.New("copy store: the source must be an SQLite file (a PostgreSQL database is copied with pg_dump and pg_restore)")
	}
	if !IsPostgresURL(to) {
		return StoreCopy{}, fmt.Errorf("copy store: the target must be a postgres:// URL, not %q", to)
	}
	// Open would create a missing file: a typo must not copy an empty store.
	if _, err := os.Stat(from); err != nil {
		return StoreCopy{}, fmt.Errorf("copy store: source: %w", err)
	}
	src, err := Open(ctx, from, Options{Logger: log})
	if err != nil {
		return StoreCopy{}, fmt.Errorf("copy store: open source: %w", err)
	}
	defer func() {
		if err := src.Close(); err != nil {
			log.Error("copy store: close source", "err", err)
		}
	}()
	// Open creates the target's schema (migratePostgres) and closes again:
	// the copy then goes through a pgx connection of its own, for COPY.
	dst, err := Open(ctx, to, Options{Logger: log})
	if err != nil {
		return StoreCopy{}, fmt.Errorf("copy store: open target: %w", err)
	}
	if err := dst.Close(); err != nil {
		return StoreCopy{}, fmt.Errorf("copy store: close target after creating its schema: %w", err)
	}

	// One read transaction: every table from the same snapshot of the
	// file (WAL), whatever a stray writer does meanwhile.
	stx, err := src.rdb.BeginTx(ctx, nil)
	if err != nil {
		return StoreCopy{}, fmt.Errorf("copy store: read source: %w", err)
	}
	defer rollbackRead(stx)

	conn, err := pgx.Connect(ctx, to)
	if err != nil {
		return StoreCopy{}, fmt.Errorf("copy store: connect to %s: %w", RedactURL(to), err)
	}
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := conn.Close(cctx); err != nil {
			log.Error("copy store: close target connection", "err", err)
		}
	}()
	ptx, err := conn.Begin(ctx)
	if err != nil {
		return StoreCopy{}, fmt.Errorf("copy store: begin: %w", err)
	}
	// After a Commit this is a no-op; otherwise nothing of the copy stays.
	defer func() {
		cctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := ptx.Rollback(cctx); err != nil && !errors.Is(err, pgx.ErrTxClosed) {
			log.Error("copy store: roll back", "err", err)
		}
	}()

	c := &copier{ctx: ctx, src: stx, dst: ptx, log: log, afterTable: afterTable}
	res, err := c.run()
	if err != nil {
		return StoreCopy{}, fmt.Errorf("copy store %s to %s: %w", from, RedactURL(to), err)
	}
	if err := ptx.Commit(ctx); err != nil {
		return StoreCopy{}, fmt.Errorf("copy store %s to %s: commit: %w", from, RedactURL(to), err)
	}
	log.Info("store copied and verified", "from", from, "to", RedactURL(to), "mailboxes", res.Mailboxes, "body_bytes", res.BodyBytes)
	return res, nil
}

// colKind is how a column is read, written and checksummed.
type colKind byte

const (
	colInt      colKind = iota // BIGINT NOT NULL
	colNullInt                 // BIGINT, NULL allowed
	colText                    // TEXT NOT NULL
	colNullText                // TEXT, NULL allowed
	colBytes                   // BYTEA NOT NULL
	colNullByte                // BYTEA, NULL allowed
)

// copyTable is one table to copy: its columns (the same names on both
// sides) and an order by a unique key, in which both sides' rows are
// compared. The text keys sort alike: SQLite's BINARY collation and the
// target's COLLATE "C" both compare bytes.
type copyTable struct {
	name  string
	cols  []string
	kinds []colKind
	order string
}

// copyTables are the tables CopyStore copies, parents before children
// (the foreign keys stay checked). meta and body_text are copied apart.
var copyTables = []copyTable{
	{"users", []string{"id", "address", "domain", "password", "created", "quota_storage", "quota_messages", "used_storage", "used_messages", "change_seq", "change_horizon"},
		[]colKind{colInt, colText, colText, colText, colInt, colInt, colInt, colInt, colInt, colInt, colInt}, "id"},
	{"aliases", []string{"address", "domain", "user_id"},
		[]colKind{colText, colText, colInt}, "address"},
	{"mailboxes", []string{"id", "user_id", "name", "uidvalidity", "uidnext", "highest_modseq", "special_use", "message_count", "unseen_count", "total_size", "recent_uid", "vanished_count", "vanished_horizon"},
		[]colKind{colInt, colInt, colText, colInt, colInt, colInt, colText, colInt, colInt, colInt, colInt, colInt, colInt}, "id"},
	{"subscriptions", []string{"user_id", "name"},
		[]colKind{colInt, colText}, "user_id, name"},
	{"bodies", []string{"id", "header", "raw", "parsed"},
		[]colKind{colInt, colBytes, colBytes, colText}, "id"},
	{"body_crlf_size", []string{"id", "size"},
		[]colKind{colInt, colInt}, "id"},
	{"sortkeys", []string{"body_id", "sent", "subject", "from_mailbox", "to_mailbox", "cc_mailbox", "display_from", "display_to", "message_id", "in_reply_to", "refs"},
		[]colKind{colInt, colNullText, colNullText, colNullText, colNullText, colNullText, colNullText, colNullText, colNullText, colNullText, colNullText}, "body_id"},
	{"messages", []string{"mailbox_id", "uid", "body_id", "flags", "keywords", "internal_date", "size", "modseq", "save_date"},
		[]colKind{colInt, colInt, colInt, colInt, colText, colInt, colInt, colInt, colNullInt}, "mailbox_id, uid"},
	{"vanished", []string{"mailbox_id", "modseq", "uid"},
		[]colKind{colInt, colInt, colInt}, "mailbox_id, modseq, uid"},
	{"metadata", []string{"user_id", "mailbox_id", "name", "value"},
		[]colKind{colInt, colInt, colText, colBytes}, "user_id, mailbox_id, name"},
	{"account_changes", []string{"user_id", "kind", "id", "created", "changed", "meta", "destroyed"},
		[]colKind{colInt, colInt, colInt, colInt, colInt, colInt, colInt}, "user_id, kind, id"},
	{"push_pending", []string{"endpoint", "key", "user_id", "payload", "attempts", "not_before"},
		[]colKind{colText, colText, colInt, colNullByte, colInt, colInt}, "endpoint, key"},
	{"push_subscriptions", []string{"id", "user_id", "device_client_id", "url", "p256dh", "auth", "code", "verification_code", "expires", "types"},
		[]colKind{colInt, colInt, colText, colText, colText, colText, colText, colText, colInt, colText}, "id"},
}

// bodyTextTable is the target's full-text table, computed by CopyStore.
var bodyTextTable = copyTable{"body_text", []string{"id", "header", "body"}, []colKind{colInt, colText, colText}, "id"}

// copyHook is copyStore's hook: called after table is copied, with exec
// running a statement in the target's transaction.
type copyHook func(table string, exec func(sql string) error) error

// copier is one CopyStore run: the source's read transaction and the
// target's transaction.
type copier struct {
	ctx        context.Context
	src        *sql.Tx
	dst        pgx.Tx
	log        *slog.Logger
	afterTable copyHook
	res        StoreCopy
}

func (c *copier) run() (StoreCopy, error) {
	all := append(append([]copyTable(nil), copyTables...), bodyTextTable)
	names := make([]string, 0, len(all)+1)
	for _, t := range all {
		names = append(names, t.name)
	}
	names = append(names, "meta")
	// Another copy into the same database waits here, then finds it full.
	if _, err := c.dst.Exec(c.ctx, "LOCK TABLE "+strings.Join(names, ", ")+" IN EXCLUSIVE MODE"); err != nil {
		return c.res, fmt.Errorf("lock the target's tables: %w", err)
	}
	for _, t := range all {
		var has bool
		if err := c.dst.QueryRow(c.ctx, "SELECT EXISTS (SELECT 1 FROM "+t.name+")").Scan(&has); err != nil {
			return c.res, fmt.Errorf("look at target table %s: %w", t.name, err)
		}
		if has {
			return c.res, fmt.Errorf("%w: table %s has rows", ErrTargetNotEmpty, t.name)
		}
	}
	for _, t := range all {
		if _, err := c.dst.Exec(c.ctx, "ALTER TABLE "+t.name+" DISABLE TRIGGER USER"); err != nil {
			return c.res, fmt.Errorf("disable the triggers of %s: %w", t.name, err)
		}
	}

	digests := make(map[string]tableDigest, len(all))
	var boxes map[int64]*mailboxDigest
	for _, t := range copyTables {
		var boxSink map[int64]*mailboxDigest
		if t.name == "messages" {
			boxes = map[int64]*mailboxDigest{}
			boxSink = boxes
		}
		d, err := c.copyTable(t, boxSink)
		if err != nil {
			return c.res, err
		}
		digests[t.name] = d
	}
	d, err := c.copyBodyText()
	if err != nil {
		return c.res, err
	}
	digests[bodyTextTable.name] = d
	meta, err := c.copyMeta()
	if err != nil {
		return c.res, err
	}
	if err := c.advanceIdentities(); err != nil {
		return c.res, err
	}
	if err := c.verify(all, digests, boxes, meta); err != nil {
		return c.res, err
	}
	for _, t := range all {
		if _, err := c.dst.Exec(c.ctx, "ALTER TABLE "+t.name+" ENABLE TRIGGER USER"); err != nil {
			return c.res, fmt.Errorf("enable the triggers of %s: %w", t.name, err)
		}
	}
	return c.res, nil
}

// copyTable copies one table with COPY, returning the digest of the rows
// it sent; boxes, if not nil, collects the per-mailbox digests of
// messages.
func (c *copier) copyTable(t copyTable, boxes map[int64]*mailboxDigest) (tableDigest, error) {
	start := time.Now()
	rows, err := c.src.QueryContext(c.ctx, "SELECT "+strings.Join(t.cols, ", ")+" FROM "+t.name+" ORDER BY "+t.order)
	if err != nil {
		return tableDigest{}, fmt.Errorf("read %s: %w", t.name, err)
	}
	defer rows.Close()
	sc := newRowScanner(t.kinds)
	d := newTableDigest()
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if !rows.Next() {
			return nil, rows.Err()
		}
		if err := rows.Scan(sc.dest...); err != nil {
			return nil, err
		}
		vals := sc.values()
		d.add(t.kinds, vals)
		if boxes != nil {
			addMessage(boxes, vals)
		}
		if t.name == "bodies" {
			c.res.BodyBytes += int64(len(vals[2].([]byte)))
		}
		return vals, nil
	})
	n, err := c.dst.CopyFrom(c.ctx, pgx.Identifier{t.name}, t.cols, src)
	if err != nil {
		return tableDigest{}, fmt.Errorf("copy %s: %w", t.name, err)
	}
	if err := rows.Close(); err != nil {
		return tableDigest{}, fmt.Errorf("read %s: %w", t.name, err)
	}
	if n != d.rows {
		return tableDigest{}, fmt.Errorf("copy %s: %d rows read, %d written", t.name, d.rows, n)
	}
	return d, c.copied(t.name, n, start)
}

// copied records a table's rows and calls the hook.
func (c *copier) copied(table string, n int64, start time.Time) error {
	c.res.Tables = append(c.res.Tables, TableRows{Name: table, Rows: n})
	c.log.Info("copy store: table copied", "table", table, "rows", n, "took", time.Since(start).Round(time.Millisecond))
	if c.afterTable != nil {
		exec := func(q string) error {
			_, err := c.dst.Exec(c.ctx, q)
			return err
		}
		if err := c.afterTable(table, exec); err != nil {
			return fmt.Errorf("after copying %s: %w", table, err)
		}
	}
	return nil
}

// copyBodyText writes the full-text row of every body, computed as the
// writer computes it (newBody: the parsed message's MIME tree).
func (c *copier) copyBodyText() (tableDigest, error) {
	start := time.Now()
	rows, err := c.src.QueryContext(c.ctx, "SELECT id, raw FROM bodies ORDER BY id")
	if err != nil {
		return tableDigest{}, fmt.Errorf("read bodies for the full-text rows: %w", err)
	}
	defer rows.Close()
	d := newTableDigest()
	src := pgx.CopyFromFunc(func() ([]any, error) {
		if !rows.Next() {
			return nil, rows.Err()
		}
		var id int64
		var raw []byte
		if err := rows.Scan(&id, &raw); err != nil {
			return nil, err
		}
		p := message.Parse(raw)
		text := newBodyText(raw, toSearchPart(&p.Root))
		vals := []any{id, text.header, text.body}
		d.add(bodyTextTable.kinds, vals)
		return vals, nil
	})
	n, err := c.dst.CopyFrom(c.ctx, pgx.Identifier{bodyTextTable.name}, bodyTextTable.cols, src)
	if err != nil {
		return tableDigest{}, fmt.Errorf("copy body_text: %w", err)
	}
	if err := rows.Close(); err != nil {
		return tableDigest{}, fmt.Errorf("read bodies for the full-text rows: %w", err)
	}
	return d, c.copied(bodyTextTable.name, n, start)
}

// copyMeta sets the target's meta rows to the source's (the ids'
// high-water marks, the UIDVALIDITY counter, the tombstone window),
// returning them. The target's migration wrote its own values for the
// same keys; the source's replace them.
func (c *copier) copyMeta() (map[string]int64, error) {
	rows, err := c.src.QueryContext(c.ctx, "SELECT key, value FROM meta ORDER BY key")
	if err != nil {
		return nil, fmt.Errorf("read meta: %w", err)
	}
	meta := map[string]int64{}
	for rows.Next() {
		var k string
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read meta: %w", err)
		}
		meta[k] = v
	}
	if err := rows.Close(); err != nil {
		return nil, fmt.Errorf("read meta: %w", err)
	}
	// copyBodyText wrote every body's full-text row, also of those the
	// source had not indexed yet: the target's mark covers them all
	// (fulltextmark.go).
	var top int64
	if err := c.src.QueryRowContext(c.ctx, "SELECT COALESCE(max(id), 0) FROM bodies").Scan(&top); err != nil {
		return nil, fmt.Errorf("read meta: highest body id: %w", err)
	}
	meta[bodyTextMarkKey] = top
	for k, v := range meta {
		if _, err := c.dst.Exec(c.ctx, "INSERT INTO meta(key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value", k, v); err != nil {
			return nil, fmt.Errorf("write meta %s: %w", k, err)
		}
	}
	c.res.Tables = append(c.res.Tables, TableRows{Name: "meta", Rows: int64(len(meta))})
	return meta, nil
}

// advanceIdentities moves every identity sequence of the target past the
// ids copied: COPY wrote explicit ids, which a sequence does not see, and
// it would otherwise give one of them again (push_subscriptions takes
// its ids from its sequence).
func (c *copier) advanceIdentities() error {
	rows, err := c.dst.Query(c.ctx, `SELECT table_name, column_name FROM information_schema.columns
		WHERE table_schema = current_schema() AND is_identity = 'YES'`)
	if err != nil {
		return fmt.Errorf("list identity columns: %w", err)
	}
	type col struct{ table, column string }
	var cols []col
	for rows.Next() {
		var x col
		if err := rows.Scan(&x.table, &x.column); err != nil {
			rows.Close()
			return fmt.Errorf("list identity columns: %w", err)
		}
		cols = append(cols, x)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list identity columns: %w", err)
	}
	for _, x := range cols {
		t, col := pgx.Identifier{x.table}.Sanitize(), pgx.Identifier{x.column}.Sanitize()
		// setval's value must be at least 1; is_called false on an empty
		// table leaves the next value at 1.
		q := "SELECT setval(pg_get_serial_sequence($1, $2), GREATEST(m, 1), m > 0) FROM (SELECT COALESCE(max(" + col + "), 0) AS m FROM " + t + ") x"
		if _, err := c.dst.Exec(c.ctx, q, t, x.column); err != nil {
			return fmt.Errorf("advance the identity of %s.%s: %w", x.table, x.column, err)
		}
	}
	return nil
}

// verify reads every table back from the target, in the transaction, and
// compares it with what was sent: row counts, a digest of every row in
// key order (the bodies' raw bytes among them), each mailbox's messages,
// and the meta rows.
func (c *copier) verify(tables []copyTable, sent map[string]tableDigest, boxes map[int64]*mailboxDigest, meta map[string]int64) error {
	start := time.Now()
	for _, t := range tables {
		rows, err := c.dst.Query(c.ctx, "SELECT "+strings.Join(t.cols, ", ")+" FROM "+t.name+" ORDER BY "+t.order)
		if err != nil {
			return fmt.Errorf("verify %s: %w", t.name, err)
		}
		sc := newRowScanner(t.kinds)
		d := newTableDigest()
		var got map[int64]*mailboxDigest
		if t.name == "messages" {
			got = map[int64]*mailboxDigest{}
		}
		for rows.Next() {
			if err := rows.Scan(sc.dest...); err != nil {
				rows.Close()
				return fmt.Errorf("verify %s: %w", t.name, err)
			}
			vals := sc.values()
			d.add(t.kinds, vals)
			if got != nil {
				addMessage(got, vals)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("verify %s: %w", t.name, err)
		}
		want := sent[t.name]
		if d.rows != want.rows {
			return fmt.Errorf("%w: %s: the target has %d rows, the source %d", ErrCopyMismatch, t.name, d.rows, want.rows)
		}
		if got != nil {
			if err := compareMailboxes(boxes, got); err != nil {
				return fmt.Errorf("%w: messages: %w", ErrCopyMismatch, err)
			}
			c.res.Mailboxes = len(boxes)
		}
		if d.sum() != want.sum() {
			return fmt.Errorf("%w: %s: the rows differ from the source's (checksum)", ErrCopyMismatch, t.name)
		}
	}
	// Every body has its full-text row: the count above compares body_text
	// with the rows computed, this with the bodies.
	if sent["body_text"].rows != sent["bodies"].rows {
		return fmt.Errorf("%w: body_text: %d rows for %d bodies", ErrCopyMismatch, sent["body_text"].rows, sent["bodies"].rows)
	}
	for k, v := range meta {
		var got int64
		if err := c.dst.QueryRow(c.ctx, "SELECT value FROM meta WHERE key = $1", k).Scan(&got); err != nil {
			return fmt.Errorf("verify meta %s: %w", k, err)
		}
		if got != v {
			return fmt.Errorf("%w: meta %s: the target has %d, the source %d", ErrCopyMismatch, k, got, v)
		}
	}
	c.log.Info("copy store: verified", "tables", len(tables), "mailboxes", c.res.Mailboxes, "took", time.Since(start).Round(time.Millisecond))
	return nil
}

// rowScanner holds the scan destinations of one row of a table.
type rowScanner struct {
	kinds []colKind
	dest  []any
}

func newRowScanner(kinds []colKind) *rowScanner {
	s := &rowScanner{kinds: kinds, dest: make([]any, len(kinds))}
	for i, k := range kinds {
		switch k {
		case colInt:
			s.dest[i] = new(int64)
		case colNullInt:
			s.dest[i] = new(*int64)
		case colText:
			s.dest[i] = new(string)
		case colNullText:
			s.dest[i] = new(*string)
		case colBytes:
			s.dest[i] = new([]byte)
		case colNullByte:
			s.dest[i] = new(*[]byte)
		}
	}
	return s
}

// values returns the row last scanned as COPY takes it: int64, string,
// []byte, or nil for NULL. A NOT NULL BYTEA is never nil (COPY would
// send NULL).
func (s *rowScanner) values() []any {
	vals := make([]any, len(s.kinds))
	for i, k := range s.kinds {
		switch k {
		case colInt:
			vals[i] = *s.dest[i].(*int64)
		case colNullInt:
			if p := *s.dest[i].(**int64); p != nil {
				vals[i] = *p
			}
		case colText:
			vals[i] = *s.dest[i].(*string)
		case colNullText:
			if p := *s.dest[i].(**string); p != nil {
				vals[i] = *p
			}
		case colBytes:
			b := *s.dest[i].(*[]byte)
			if b == nil {
				b = []byte{}
			}
			vals[i] = b
		case colNullByte:
			if p := *s.dest[i].(**[]byte); p != nil {
				b := *p
				if b == nil {
					b = []byte{}
				}
				vals[i] = b
			}
		}
	}
	return vals
}

// tableDigest is a table's row count and a SHA-256 over its rows in key
// order, each value framed (a NULL tag, or a length and the bytes).
type tableDigest struct {
	rows int64
	h    hash.Hash
}

func newTableDigest() tableDigest { return tableDigest{h: sha256.New()} }

func (d *tableDigest) add(kinds []colKind, vals []any) {
	d.rows++
	var buf [9]byte
	for _, v := range vals {
		switch v := v.(type) {
		case nil:
			d.h.Write([]byte{0})
		case int64:
			buf[0] = 1
			binary.BigEndian.PutUint64(buf[1:], uint64(v))
			d.h.Write(buf[:])
		case string:
			buf[0] = 2
			binary.BigEndian.PutUint64(buf[1:], uint64(len(v)))
			d.h.Write(buf[:])
			d.h.Write([]byte(v))
		case []byte:
			buf[0] = 2 // as text: a column is one or the other on both sides
			binary.BigEndian.PutUint64(buf[1:], uint64(len(v)))
			d.h.Write(buf[:])
			d.h.Write(v)
		}
	}
}

func (d tableDigest) sum() string {
	if d.h == nil {
		return ""
	}
	return string(d.h.Sum(nil))
}

// mailboxDigest is one mailbox's messages: their number, total size and
// an order-independent checksum of (uid, flags, keywords, modseq), the
// sum of each message's truncated SHA-256.
type mailboxDigest struct {
	count, size int64
	sum         uint64
}

// addMessage adds a row of messages (copyTables' column order) to its
// mailbox's digest.
func addMessage(boxes map[int64]*mailboxDigest, vals []any) {
	box := vals[0].(int64)
	d := boxes[box]
	if d == nil {
		d = new(mailboxDigest)
		boxes[box] = d
	}
	d.count++
	d.size += vals[6].(int64)
	h := sha256.New()
	var buf [8]byte
	for _, i := range []int{1, 3, 7} { // uid, flags, modseq
		binary.BigEndian.PutUint64(buf[:], uint64(vals[i].(int64)))
		h.Write(buf[:])
	}
	h.Write([]byte(vals[4].(string))) // keywords
	d.sum += binary.BigEndian.Uint64(h.Sum(nil))
}

// compareMailboxes reports the first mailbox whose messages differ.
func compareMailboxes(want, got map[int64]*mailboxDigest) error {
	if len(want) != len(got) {
		return fmt.Errorf("messages in %d mailboxes on the target, %d on the source", len(got), len(want))
	}
	for id, w := range want {
		g := got[id]
		switch {
		case g == nil:
			return fmt.Errorf("mailbox %d: no messages on the target, %d on the source", id, w.count)
		case g.count != w.count:
			return fmt.Errorf("mailbox %d: %d messages on the target, %d on the source", id, g.count, w.count)
		case g.size != w.size:
			return fmt.Errorf("mailbox %d: %d bytes on the target, %d on the source", id, g.size, w.size)
		case g.sum != w.sum:
			return fmt.Errorf("mailbox %d: UIDs, flags, keywords or modseqs differ from the source's", id)
		}
	}
	return nil
}
