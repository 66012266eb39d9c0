package mailstore

import (
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" database/sql driver

	"pushmail/internal/pgtest"
)

// openTestPostgres returns a fresh, empty PostgreSQL database, or skips
// the test when pgtest.EnvVar is unset.
func openTestPostgres(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("pgx", pgtest.New(t))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close postgres: %v", err)
		}
	})
	return db
}

// openTestPostgresMigrated returns a fresh PostgreSQL database at the
// current schema.
func openTestPostgresMigrated(t *testing.T) *sql.DB {
	t.Helper()
	db := openTestPostgres(t)
	if err := migratePostgres(t.Context(), db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migratePostgres = %v", err)
	}
	return db
}

// openTestSQLiteMigrated returns a fresh SQLite database at the current
// schema, with foreign keys enforced as the store's connections do.
func openTestSQLiteMigrated(t *testing.T) *sql.DB {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+filepath.Join(t.TempDir(), "diff.db")+"?_foreign_keys=1")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := db.Close(); err != nil {
			t.Errorf("close sqlite: %v", err)
		}
	})
	if err := migrate(t.Context(), db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migrate = %v", err)
	}
	return db
}

func TestMigratePostgres(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openTestPostgres(t)
	if v, err := postgresSchemaVersion(ctx, db); err != nil || v != 0 {
		t.Fatalf("postgresSchemaVersion of an empty database = %d, %v; want 0, nil", v, err)
	}
	log := slog.New(slog.DiscardHandler)
	for i := range 2 { // the second run finds the database current
		if err := migratePostgres(ctx, db, log); err != nil {
			t.Fatalf("migratePostgres (run %d) = %v", i+1, err)
		}
		if v, err := postgresSchemaVersion(ctx, db); err != nil || v != len(postgresMigrations) {
			t.Fatalf("postgresSchemaVersion after run %d = %d, %v; want %d", i+1, v, err, len(postgresMigrations))
		}
		var rows int
		if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pushmail_schema").Scan(&rows); err != nil || rows != 1 {
			t.Fatalf("pushmail_schema rows after run %d = %d, %v; want 1", i+1, rows, err)
		}
	}

	meta := map[string]int64{}
	rows, err := db.QueryContext(ctx, "SELECT key, value FROM meta")
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var k string
		var v int64
		if err := rows.Scan(&k, &v); err != nil {
			t.Fatal(err)
		}
		meta[k] = v
	}
	if err := rows.Close(); err != nil {
		t.Fatal(err)
	}
	want := map[string]int64{"users_id_hw": 0, "mailboxes_id_hw": 0, "bodies_id_hw": 0, "account_tombstone_window": accountTombstoneWindow}
	for k, v := range want {
		if got, ok := meta[k]; !ok || got != v {
			t.Errorf("meta %s = %d (present %v); want %d", k, got, ok, v)
		}
	}
	if meta["uidvalidity"] < 1_700_000_000 {
		t.Errorf("meta uidvalidity = %d; want the creation time in unix seconds", meta["uidvalidity"])
	}
	if len(meta) != len(want)+1 {
		t.Errorf("meta = %v; want only uidvalidity and %v", meta, want)
	}

	// pgtest created pg_trgm, so the trigram indexes are there; one
	// dropped is created again at the next start.
	for _, ix := range postgresTrigramIndexes {
		if !pgIndexExists(t, db, ix.name) {
			t.Errorf("index %s missing after migratePostgres", ix.name)
		}
	}
	if _, err := db.ExecContext(ctx, "DROP INDEX body_text_body_trgm"); err != nil {
		t.Fatal(err)
	}
	if err := migratePostgres(ctx, db, log); err != nil {
		t.Fatalf("migratePostgres after dropping an index = %v", err)
	}
	if !pgIndexExists(t, db, "body_text_body_trgm") {
		t.Errorf("body_text_body_trgm not created again")
	}

	// The database assigns body ids, and the high-water mark follows.
	var id int64
	if err := db.QueryRowContext(ctx, "INSERT INTO bodies(header, raw, parsed) VALUES ('', 'x', '{}') RETURNING id").Scan(&id); err != nil {
		t.Fatal(err)
	}
	var hw int64
	if err := db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'bodies_id_hw'").Scan(&hw); err != nil || hw != id || id < 1 {
		t.Errorf("bodies_id_hw after inserting body %d = %d, %v; want %d", id, hw, err, id)
	}
	// The parsed JSON reads as jsonb, as the queries will cast it.
	var parsedOK bool
	if err := db.QueryRowContext(ctx, "SELECT parsed::jsonb = '{}'::jsonb FROM bodies WHERE id = $1", id).Scan(&parsedOK); err != nil || !parsedOK {
		t.Errorf("bodies.parsed as jsonb = %v, %v; want true", parsedOK, err)
	}
}

func pgIndexExists(t *testing.T, db *sql.DB, name string) bool {
	t.Helper()
	var ok bool
	if err := db.QueryRowContext(t.Context(), "SELECT to_regclass($1) IS NOT NULL", name).Scan(&ok); err != nil {
		t.Fatal(err)
	}
	return ok
}

// Two nodes starting at once on an empty database: one migrates, the
// other waits on the advisory lock and then finds the database current.
func TestMigratePostgresConcurrent(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	url := pgtest.New(t)
	const nodes = 2
	var dbs [nodes]*sql.DB
	for i := range dbs {
		db, err := sql.Open("pgx", url)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := db.Close(); err != nil {
				t.Errorf("close postgres: %v", err)
			}
		})
		dbs[i] = db
	}
	db := dbs[0]
	errs := make([]error, nodes)
	var wg sync.WaitGroup
	for i := range nodes {
		wg.Go(func() {
			errs[i] = migratePostgres(ctx, dbs[i], slog.New(slog.DiscardHandler))
		})
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("migratePostgres on node %d = %v", i, err)
		}
	}
	if v, err := postgresSchemaVersion(ctx, db); err != nil || v != len(postgresMigrations) {
		t.Fatalf("postgresSchemaVersion = %d, %v; want %d", v, err, len(postgresMigrations))
	}
	var rows int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM pushmail_schema").Scan(&rows); err != nil || rows != 1 {
		t.Fatalf("pushmail_schema rows = %d, %v; want 1", rows, err)
	}
}

// Without pg_trgm, the schema is created all the same, without the
// trigram indexes, and a warning says why; once the extension can be
// created, the next start adds them.
func TestMigratePostgresWithoutTrigram(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openTestPostgres(t)
	// pgtest created the extension; a function of one of its names in
	// the way makes CREATE EXTENSION fail, as a missing package or a role
	// without the privilege would.
	for _, q := range []string{
		"DROP EXTENSION pg_trgm",
		"CREATE FUNCTION similarity(text, text) RETURNS real LANGUAGE sql AS 'SELECT 0::real'",
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	var logs strings.Builder
	log := slog.New(slog.NewTextHandler(&logs, nil))
	if err := migratePostgres(ctx, db, log); err != nil {
		t.Fatalf("migratePostgres without pg_trgm = %v", err)
	}
	if v, err := postgresSchemaVersion(ctx, db); err != nil || v != len(postgresMigrations) {
		t.Fatalf("postgresSchemaVersion = %d, %v; want %d", v, err, len(postgresMigrations))
	}
	for _, ix := range postgresTrigramIndexes {
		if pgIndexExists(t, db, ix.name) {
			t.Errorf("index %s exists without pg_trgm", ix.name)
		}
	}
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "pg_trgm") {
		t.Errorf("log = %q; want a warning about pg_trgm", logs.String())
	}
	// The table works without its indexes.
	if _, err := db.ExecContext(ctx, "INSERT INTO body_text(id, header, body) VALUES (1, 'subject: hello', 'some text')"); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM body_text WHERE strpos(body, 'text') > 0").Scan(&n); err != nil || n != 1 {
		t.Errorf("search without the trigram indexes = %d, %v; want 1", n, err)
	}

	if _, err := db.ExecContext(ctx, "DROP FUNCTION similarity(text, text)"); err != nil {
		t.Fatal(err)
	}
	if err := migratePostgres(ctx, db, slog.New(slog.DiscardHandler)); err != nil {
		t.Fatalf("migratePostgres once pg_trgm can be created = %v", err)
	}
	for _, ix := range postgresTrigramIndexes {
		if !pgIndexExists(t, db, ix.name) {
			t.Errorf("index %s missing once pg_trgm can be created", ix.name)
		}
	}
}

func TestMigratePostgresTooNew(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	db := openTestPostgresMigrated(t)
	if _, err := db.ExecContext(ctx, "UPDATE pushmail_schema SET version = version + 1"); err != nil {
		t.Fatal(err)
	}
	err := migratePostgres(ctx, db, slog.New(slog.DiscardHandler))
	if !errors.Is(err, ErrSchemaTooNew) {
		t.Fatalf("migratePostgres on a newer database = %v; want ErrSchemaTooNew", err)
	}
}

// The PostgreSQL schema has the tables, columns, indexes and triggers of
// the SQLite one: a new SQLite migration without its PostgreSQL
// counterpart fails here.
func TestPostgresSchemaMatchesSQLite(t *testing.T) {
	t.Parallel()
	pg := openTestPostgresMigrated(t)
	lite := openTestSQLiteMigrated(t)

	liteTables := sqliteTables(t, lite)
	pgTables := stringColumn(t, pg, `SELECT table_name FROM information_schema.tables
		WHERE table_schema = current_schema() AND table_name != 'pushmail_schema' ORDER BY table_name`)
	if !slices.Equal(liteTables, pgTables) {
		t.Fatalf("tables: sqlite %v, postgres %v", liteTables, pgTables)
	}
	for _, table := range liteTables {
		lc := sqliteColumns(t, lite, table)
		if table == "body_text" {
			lc = append([]string{"id"}, lc...) // the FTS5 rowid
		}
		pc := stringColumn(t, pg, `SELECT column_name FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = '`+table+`' ORDER BY ordinal_position`)
		if !slices.Equal(lc, pc) {
			t.Errorf("columns of %s: sqlite %v, postgres %v", table, lc, pc)
		}
		if table == "body_text" {
			continue // FTS5 columns have no type
		}
		// Types, NOT NULL and defaults: INTEGER is bigint, BLOB bytea;
		// a primary key column is NOT NULL in PostgreSQL (SQLite lets a
		// rowid table's TEXT key hold NULL, which no write of ours does).
		lt := stringColumn(t, lite, `SELECT name || ' ' ||
			CASE type WHEN 'INTEGER' THEN 'bigint' WHEN 'BLOB' THEN 'bytea' WHEN 'TEXT' THEN 'text' ELSE type END ||
			CASE WHEN "notnull" OR pk > 0 THEN ' not null' ELSE '' END ||
			COALESCE(' default ' || dflt_value, '')
			FROM pragma_table_info('`+table+`') ORDER BY cid`)
		pt := stringColumn(t, pg, `SELECT column_name || ' ' || data_type ||
			CASE WHEN is_nullable = 'NO' THEN ' not null' ELSE '' END ||
			COALESCE(' default ' || replace(column_default, '''''::text', ''''''), '')
			FROM information_schema.columns
			WHERE table_schema = current_schema() AND table_name = '`+table+`' ORDER BY ordinal_position`)
		if !slices.Equal(lt, pt) {
			t.Errorf("column types of %s:\nsqlite   %v\npostgres %v", table, lt, pt)
		}
	}

	// Named indexes; SQLite's automatic ones (UNIQUE, PRIMARY KEY) are
	// PostgreSQL's constraint indexes.
	liteIndexes := stringColumn(t, lite, "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL ORDER BY name")
	pgIndexes := stringColumn(t, pg, `SELECT i.indexname FROM pg_indexes i
		WHERE i.schemaname = current_schema()
		AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
		AND i.indexname NOT LIKE '%\_trgm' ORDER BY i.indexname`)
	if !slices.Equal(liteIndexes, pgIndexes) {
		t.Errorf("indexes: sqlite %v, postgres %v", liteIndexes, pgIndexes)
	}
	// Each index's table, columns and whether it is partial. The
	// predicates themselves read differently once PostgreSQL has parsed
	// them; the differential test and the queries' plans answer for them.
	for _, ix := range liteIndexes {
		var table string
		var partial bool
		if err := lite.QueryRowContext(t.Context(), "SELECT tbl_name, sql LIKE '% WHERE %' FROM sqlite_master WHERE name = ?", ix).Scan(&table, &partial); err != nil {
			t.Fatal(err)
		}
		want := fmt.Sprintf("%s(%s) partial=%v", table, strings.Join(stringColumn(t, lite, "SELECT name FROM pragma_index_info('"+ix+"') ORDER BY seqno"), ","), partial)
		var got string
		if err := pg.QueryRowContext(t.Context(), `SELECT c.relname || '(' ||
				(SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(x.indkey::int2[]) WITH ORDINALITY k(attnum, n)
					JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum) ||
				') partial=' || (x.indpred IS NOT NULL)::text
			FROM pg_index x JOIN pg_class c ON c.oid = x.indrelid WHERE x.indexrelid = $1::regclass`, ix).Scan(&got); err != nil {
			t.Fatalf("index %s: %v", ix, err)
		}
		if got != want {
			t.Errorf("index %s: sqlite %s, postgres %s", ix, want, got)
		}
	}
	liteTriggers := stringColumn(t, lite, "SELECT name FROM sqlite_master WHERE type = 'trigger' ORDER BY name")
	pgTriggers := stringColumn(t, pg, `SELECT t.tgname FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
		JOIN pg_namespace n ON n.oid = c.relnamespace
		WHERE n.nspname = current_schema() AND NOT t.tgisinternal ORDER BY t.tgname`)
	if !slices.Equal(liteTriggers, pgTriggers) {
		t.Errorf("triggers: sqlite %v, postgres %v", liteTriggers, pgTriggers)
	}

	// Unique and primary keys, as column lists per table.
	liteKeys := map[string]bool{}
	for _, table := range liteTables {
		if table == "body_text" {
			liteKeys["body_text(id)"] = true
			continue
		}
		if pk := sqlitePrimaryKey(t, lite, table); len(pk) > 0 {
			liteKeys[table+"("+strings.Join(pk, ",")+")"] = true
		}
		for _, ix := range stringColumn(t, lite, "SELECT name FROM pragma_index_list('"+table+"') WHERE \"unique\" AND origin = 'u'") {
			cols := stringColumn(t, lite, "SELECT name FROM pragma_index_info('"+ix+"') ORDER BY seqno")
			liteKeys[table+"("+strings.Join(cols, ",")+")"] = true
		}
	}
	pgKeys := map[string]bool{}
	for _, k := range stringColumn(t, pg, `SELECT c.conrelid::regclass::text || '(' ||
			(SELECT string_agg(a.attname, ',' ORDER BY k.n) FROM unnest(c.conkey) WITH ORDINALITY k(attnum, n)
				JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum) || ')'
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		WHERE n.nspname = current_schema() AND c.contype IN ('p', 'u')
		AND c.conrelid::regclass::text != 'pushmail_schema'`) {
		pgKeys[k] = true
	}
	if fmt.Sprint(liteKeys) != fmt.Sprint(pgKeys) {
		t.Errorf("keys: sqlite %v, postgres %v", liteKeys, pgKeys)
	}

	// Foreign keys, with their delete actions.
	var liteFKs, pgFKs []string
	for _, table := range liteTables {
		if table == "body_text" {
			continue
		}
		for _, fk := range stringColumn(t, lite, "SELECT \""+"from"+"\" || '->' || \"table\" || '.' || \"to\" || ' ' || on_delete FROM pragma_foreign_key_list('"+table+"')") {
			liteFKs = append(liteFKs, table+"."+fk)
		}
	}
	slices.Sort(liteFKs)
	pgFKs = stringColumn(t, pg, `SELECT c.conrelid::regclass::text || '.' || a.attname || '->' || c.confrelid::regclass::text || '.' || fa.attname || ' ' ||
			CASE c.confdeltype WHEN 'c' THEN 'CASCADE' WHEN 'a' THEN 'NO ACTION' ELSE c.confdeltype::text END
		FROM pg_constraint c JOIN pg_namespace n ON n.oid = c.connamespace
		JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
		JOIN pg_attribute fa ON fa.attrelid = c.confrelid AND fa.attnum = c.confkey[1]
		WHERE n.nspname = current_schema() AND c.contype = 'f' ORDER BY 1`)
	if !slices.Equal(liteFKs, pgFKs) {
		t.Errorf("foreign keys: sqlite %v, postgres %v", liteFKs, pgFKs)
	}
}

// sqliteTables lists the tables of an SQLite database, without SQLite's
// own and the FTS5 shadow tables of body_text.
func sqliteTables(t *testing.T, db *sql.DB) []string {
	t.Helper()
	return stringColumn(t, db, `SELECT name FROM sqlite_master WHERE type = 'table'
		AND name NOT LIKE 'sqlite\_%' ESCAPE '\' AND name NOT LIKE 'body\_text\_%' ESCAPE '\' ORDER BY name`)
}

func sqliteColumns(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	return stringColumn(t, db, "SELECT name FROM pragma_table_info('"+table+"') ORDER BY cid")
}

func sqlitePrimaryKey(t *testing.T, db *sql.DB, table string) []string {
	t.Helper()
	return stringColumn(t, db, "SELECT name FROM pragma_table_info('"+table+"') WHERE pk > 0 ORDER BY pk")
}

func stringColumn(t *testing.T, db *sql.DB, query string) []string {
	t.Helper()
	rows, err := db.QueryContext(t.Context(), query)
	if err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		out = append(out, s)
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return out
}

// dbPair runs the same statements on an SQLite and a PostgreSQL database
// and compares what they then hold.
type dbPair struct {
	t      *testing.T
	lite   *sql.DB
	pg     *sql.DB
	tables []string
}

// pgPlaceholders turns the statement's ? into $1, $2, ... (the test's
// statements hold no ? in a literal).
func pgPlaceholders(q string) string {
	var b strings.Builder
	n := 0
	for _, r := range q {
		if r == '?' {
			n++
			b.WriteString("$" + strconv.Itoa(n))
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}

// exec runs q on both databases and checks that both succeed and change
// the same number of rows, then that every table holds the same rows.
func (p *dbPair) exec(q string, args ...any) {
	p.t.Helper()
	ctx := p.t.Context()
	lr, err := p.lite.ExecContext(ctx, q, args...)
	if err != nil {
		p.t.Fatalf("sqlite: %s: %v", q, err)
	}
	pr, err := p.pg.ExecContext(ctx, pgPlaceholders(q), args...)
	if err != nil {
		p.t.Fatalf("postgres: %s: %v", q, err)
	}
	ln, err := lr.RowsAffected()
	if err != nil {
		p.t.Fatal(err)
	}
	pn, err := pr.RowsAffected()
	if err != nil {
		p.t.Fatal(err)
	}
	if ln != pn {
		p.t.Fatalf("%s: sqlite changed %d rows, postgres %d", q, ln, pn)
	}
	p.compare(q)
}

// insertID runs an INSERT ... RETURNING id on both and checks that both
// databases chose the same id.
func (p *dbPair) insertID(q string, args ...any) int64 {
	p.t.Helper()
	ctx := p.t.Context()
	var lid, pid int64
	if err := p.lite.QueryRowContext(ctx, q, args...).Scan(&lid); err != nil {
		p.t.Fatalf("sqlite: %s: %v", q, err)
	}
	if err := p.pg.QueryRowContext(ctx, pgPlaceholders(q), args...).Scan(&pid); err != nil {
		p.t.Fatalf("postgres: %s: %v", q, err)
	}
	if lid != pid {
		p.t.Fatalf("%s: sqlite id %d, postgres id %d", q, lid, pid)
	}
	p.compare(q)
	return lid
}

// compare fails the test at the first table whose rows differ, naming
// the statement after which they did.
func (p *dbPair) compare(after string) {
	p.t.Helper()
	for _, table := range p.tables {
		l := p.dump(p.lite, table, true)
		g := p.dump(p.pg, table, false)
		if !slices.Equal(l, g) {
			p.t.Fatalf("after %s\ntable %s differs:\nsqlite:\n  %s\npostgres:\n  %s",
				after, table, strings.Join(l, "\n  "), strings.Join(g, "\n  "))
		}
	}
}

// dump reads a table's rows, in primary key order, as strings. The FTS5
// body_text of SQLite is contentless: only its rowids can be read back,
// so only the ids are compared.
func (p *dbPair) dump(db *sql.DB, table string, lite bool) []string {
	p.t.Helper()
	var q string
	if table == "body_text" {
		q = "SELECT id FROM body_text ORDER BY id"
		if lite {
			q = "SELECT rowid AS id FROM body_text ORDER BY rowid"
		}
	} else {
		cols := sqliteColumns(p.t, p.lite, table)
		q = "SELECT " + strings.Join(cols, ", ") + " FROM " + table +
			" ORDER BY " + strings.Join(sqlitePrimaryKey(p.t, p.lite, table), ", ")
	}
	rows, err := db.QueryContext(p.t.Context(), q)
	if err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		p.t.Fatal(err)
	}
	var out []string
	for rows.Next() {
		vals := make([]any, len(cols))
		ptrs := make([]any, len(cols))
		for i := range vals {
			ptrs[i] = &vals[i]
		}
		if err := rows.Scan(ptrs...); err != nil {
			p.t.Fatalf("%s: %v", q, err)
		}
		var b strings.Builder
		for i, v := range vals {
			if i > 0 {
				b.WriteString(" | ")
			}
			b.WriteString(cols[i] + "=")
			switch v := v.(type) {
			case nil:
				b.WriteString("NULL")
			case []byte:
				b.WriteString(strconv.Quote(string(v)))
			case string:
				b.WriteString(strconv.Quote(v))
			case int32:
				b.WriteString(strconv.FormatInt(int64(v), 10))
			case int64:
				b.WriteString(strconv.FormatInt(v, 10))
			default:
				fmt.Fprintf(&b, "%T(%v)", v, v)
			}
		}
		out = append(out, b.String())
	}
	if err := rows.Err(); err != nil {
		p.t.Fatalf("%s: %v", q, err)
	}
	return out
}

// TestPostgresTriggersMatchSQLite is the differential test of the
// triggers: the same writes, as the mailstore makes them (one row per
// statement) and as the cascades do (many rows), leave the same rows in
// every table of both databases: the mailbox and quota counters, the
// account change log with its tombstone bound, the id high-water marks,
// and what goes with a deleted message, body, mailbox or user.
func TestPostgresTriggersMatchSQLite(t *testing.T) {
	t.Parallel()
	p := &dbPair{t: t, lite: openTestSQLiteMigrated(t), pg: openTestPostgresMigrated(t)}
	p.tables = sqliteTables(t, p.lite)

	// uidvalidity is the creation time of each; a small tombstone window
	// makes the bound act within a few changes.
	p.exec("UPDATE meta SET value = 1000 WHERE key = 'uidvalidity'")
	p.exec("UPDATE meta SET value = 4 WHERE key = 'account_tombstone_window'")

	// Users and aliases, ids given as nextIDSQL would.
	p.exec("INSERT INTO users(id, address, domain, password, created) VALUES (?, ?, ?, ?, ?)", 1, "ann@example.org", "example.org", "hash", 100)
	p.exec("INSERT INTO users(id, address, domain, password, created, quota_storage) VALUES (?, ?, ?, ?, ?, ?)", 2, "bob@example.org", "example.org", "hash", 101, 5000)
	p.exec("INSERT INTO aliases(address, domain, user_id) VALUES (?, ?, ?)", "a@example.org", "example.org", 1)

	// Mailboxes: ann's INBOX, Archive, Trash; bob's INBOX.
	mailbox := "INSERT INTO mailboxes(id, user_id, name, uidvalidity, special_use) VALUES (?, ?, ?, ?, ?)"
	p.exec(mailbox, 1, 1, "INBOX", 1001, "")
	p.exec(mailbox, 2, 1, "Archive", 1002, "")
	p.exec(mailbox, 3, 2, "INBOX", 1003, "")
	p.exec(mailbox, 4, 1, "Trash", 1004, `\Trash`)

	// A subscription of an existing mailbox changes it; one of a name
	// without a mailbox changes nothing but the seq.
	p.exec("INSERT INTO subscriptions(user_id, name) VALUES (?, ?)", 1, "Archive")
	p.exec("INSERT INTO subscriptions(user_id, name) VALUES (?, ?)", 1, "Nowhere")
	p.exec("INSERT INTO subscriptions(user_id, name) VALUES (?, ?)", 2, "INBOX")

	// Bodies: the database picks the first ids (RETURNING id); later ones
	// are given, as nextIDSQL("bodies") does, never the identity again.
	var bodies []int64
	for i := range 4 {
		id := p.insertID("INSERT INTO bodies(header, raw, parsed) VALUES (?, ?, ?) RETURNING id",
			[]byte(fmt.Sprintf("Subject: %d\r\n", i)), []byte(fmt.Sprintf("Subject: %d\r\n\r\nbody %d\n", i, i)), `{"n":`+strconv.Itoa(i)+`}`)
		bodies = append(bodies, id)
	}
	nextBody := int64(100)
	body := func() int64 {
		nextBody++
		id := nextBody
		p.exec("INSERT INTO bodies(id, header, raw, parsed) VALUES (?, ?, ?, ?)", id, []byte("H"), []byte("H\r\n\r\nB"), "{}")
		p.exec("INSERT INTO body_crlf_size(id, size) VALUES (?, ?)", id, 6)
		p.exec("INSERT INTO sortkeys(body_id, subject) VALUES (?, ?)", id, "s")
		return id
	}
	for _, id := range bodies {
		p.exec("INSERT INTO body_crlf_size(id, size) VALUES (?, ?)", id, 20+id)
		p.exec("INSERT INTO sortkeys(body_id, sent, subject, from_mailbox, message_id) VALUES (?, ?, ?, ?, ?)",
			id, "2024-01-02T03:04:05Z", fmt.Sprintf("subject %d", id), "ann", fmt.Sprintf("m%d@x", id))
	}
	bodyText := func(id int64) {
		if _, err := p.lite.ExecContext(t.Context(), "INSERT INTO body_text(rowid, header, body) VALUES (?, ?, ?)", id, "subject", "body text"); err != nil {
			t.Fatal(err)
		}
		if _, err := p.pg.ExecContext(t.Context(), "INSERT INTO body_text(id, header, body) VALUES ($1, $2, $3)", id, "subject", "body text"); err != nil {
			t.Fatal(err)
		}
		p.compare("body_text insert")
	}
	for _, id := range bodies {
		bodyText(id)
	}

	// Messages, one per statement as the mailstore writes them; a copy
	// shares its original's body.
	msg := "INSERT INTO messages(mailbox_id, uid, body_id, flags, keywords, internal_date, size, modseq, save_date) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
	p.exec(msg, 1, 1, bodies[0], 0, "", 10, 100, 2, 10)
	p.exec(msg, 1, 2, bodies[1], 1, "", 11, 200, 3, 11)          // \Seen
	p.exec(msg, 1, 3, bodies[2], 8, " $label1 ", 12, 300, 4, 12) // \Deleted
	p.exec(msg, 2, 1, bodies[0], 1, "", 10, 100, 2, 13)          // a copy into Archive
	p.exec(msg, 3, 1, bodies[3], 0, "", 14, 400, 2, 14)          // bob's
	p.exec(msg, 4, 1, bodies[1], 0, " $junk ", 11, 200, 2, 15)   // a copy into Trash
	p.exec(msg, 3, 2, bodies[1], 0, "", 11, 200, 3, 16)          // the same body for another user
	p.exec("INSERT INTO messages(mailbox_id, uid, body_id, flags, keywords, internal_date, size, modseq, save_date) SELECT ?, ?, ?, ?, ?, ?, ?, highest_modseq, ? FROM mailboxes WHERE id = ?",
		2, 2, bodies[2], 0, "", 12, 300, 17, 2) // COPY's form (messages.go)

	// Flags: \Seen set and cleared (unseen_count), \Deleted toggled (the
	// mailbox's JMAP counts), keywords only, nothing changed (no log
	// entry), the modseq alone (no trigger).
	flags := "UPDATE messages SET flags = ?, keywords = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?"
	p.exec(flags, 1, "", 5, 1, 1)
	p.exec(flags, 9, "", 6, 1, 1)
	p.exec(flags, 9, " $label2 ", 7, 1, 1)
	p.exec(flags, 9, " $label2 ", 8, 1, 1)
	p.exec(flags, 0, "", 9, 1, 3)
	p.exec("UPDATE messages SET flags = ?, modseq = ? WHERE mailbox_id = ? AND uid = ?", 8, 10, 1, 2)
	p.exec("UPDATE messages SET modseq = modseq + 1 WHERE mailbox_id = ? AND uid = ?", 1, 2)
	p.exec("UPDATE mailboxes SET highest_modseq = ?, uidnext = ? WHERE id = ?", 11, 4, 1)
	// Statements of many rows on messages are left out: each row's
	// triggers take the next change_seq, and the two databases need not
	// visit the rows in one order (SQLite goes by primary key, PostgreSQL
	// by where the rows lie in the heap). The mailstore writes messages
	// one row per statement.
	for _, uid := range []int{1, 2} {
		p.exec("UPDATE messages SET flags = flags | 2 WHERE mailbox_id = ? AND uid = ?", 1, uid)
	}
	for _, k := range [][2]int{{1, 1}, {1, 2}, {2, 1}, {2, 2}} {
		p.exec("UPDATE messages SET flags = flags & ~1 WHERE mailbox_id = ? AND uid = ?", k[0], k[1])
	}

	// Rename, special use, and a rename to the same name (no entry).
	p.exec("UPDATE mailboxes SET name = ? WHERE id = ?", "Archive2", 2)
	p.exec("UPDATE mailboxes SET special_use = ? WHERE id = ?", `\Archive`, 2)
	p.exec("UPDATE mailboxes SET name = ? WHERE id = ?", "Archive2", 2)
	p.exec("DELETE FROM subscriptions WHERE user_id = ? AND name = ?", 1, "Archive") // no mailbox of that name now
	p.exec("INSERT INTO subscriptions(user_id, name) VALUES (?, ?)", 1, "Archive2")
	p.exec("DELETE FROM subscriptions WHERE user_id = ? AND name = ?", 1, "Archive2")
	p.exec("INSERT INTO subscriptions(user_id, name) VALUES (?, ?)", 1, "Trash")

	// Annotations: a server entry, and mailbox entries of Archive2 and
	// Trash.
	meta := "INSERT INTO metadata(user_id, mailbox_id, name, value) VALUES (?, ?, ?, ?)"
	p.exec(meta, 1, 0, "/private/comment", []byte("server"))
	p.exec(meta, 1, 2, "/private/comment", []byte("archive"))
	p.exec(meta, 1, 4, "/shared/comment", []byte("trash"))
	p.exec(meta, 2, 3, "/private/comment", []byte("bob inbox"))

	// Tombstones of expunges (changelog.go).
	p.exec("INSERT INTO vanished(mailbox_id, modseq, uid) VALUES (?, ?, ?)", 4, 3, 7)
	p.exec("UPDATE mailboxes SET vanished_count = vanished_count + 1 WHERE id = ?", 4)

	// Expunge: the last message of a body takes the body, its sort keys,
	// index row and CRLF size; one with a copy left keeps them.
	p.exec("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", 1, 3)
	p.exec("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", 2, 1)
	// The last copy of bodies[0] goes; bodies[1] stays in Trash and in
	// bob's INBOX.
	p.exec("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", 1, 1)
	p.exec("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", 1, 2)

	// Enough changes that the tombstone bound drops old tombstones and
	// raises the horizon: a message delivered and expunged, again and
	// again.
	for i := range 6 {
		id := body()
		bodyText(id)
		uid := 10 + i
		p.exec(msg, 4, uid, id, 0, "", 20+i, 50, 20+i, 20+i)
		p.exec(flags, 1, "", 30+i, 4, uid)
		p.exec("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", 4, uid)
	}

	// Expunges in a row: their tombstones lie two seqs apart (each
	// expunge also changes the mailbox's counts), so the window of 4
	// drops them exactly at its edge.
	var row []int64
	for i := range 5 {
		id := body()
		row = append(row, id)
		p.exec(msg, 4, 20+i, id, 0, "", 30+i, 60, 40+i, 30+i)
	}
	for i := range row {
		p.exec("DELETE FROM messages WHERE mailbox_id = ? AND uid = ?", 4, 20+i)
	}

	// A mailbox re-created under a freed name, and a message copied back.
	p.exec(mailbox, 5, 1, "INBOX2", 1005, "")
	p.exec(msg, 5, 1, bodies[1], 0, "", 11, 200, 2, 40)
	// A copy of many messages in one statement, in a stated order: each
	// copy's email is updated, not created (PostgreSQL's triggers see
	// all the statement's rows, SQLite's the rows before).
	p.exec("INSERT INTO messages(mailbox_id, uid, body_id, flags, keywords, internal_date, size, modseq, save_date) SELECT 5, uid + 100, body_id, flags, keywords, internal_date, size, 3, save_date FROM messages WHERE mailbox_id = ? ORDER BY uid", 4)

	// Two mailboxes deleted in one statement, sharing a body, with one
	// only in the second: the BEFORE trigger of the second sees the first
	// gone (in PostgreSQL, before the first's cascade has run). Both
	// databases happen to visit 6 before 7 (PostgreSQL: its row lies
	// first in the heap, which is deterministic for this sequence of
	// writes); the store deletes one mailbox per statement.
	p.exec(mailbox, 6, 1, "P", 1006, "")
	p.exec(mailbox, 7, 1, "P/c", 1007, "")
	shared, only := body(), body()
	p.exec(msg, 6, 1, shared, 0, "", 1, 10, 2, 1)
	p.exec(msg, 7, 1, shared, 1, "", 1, 10, 2, 1)
	p.exec(msg, 7, 2, only, 0, "", 1, 20, 3, 1)
	p.exec(meta, 1, 7, "/private/comment", []byte("child"))
	p.exec("DELETE FROM mailboxes WHERE user_id = ? AND id IN (6, 7)", 1)

	// DELETE of a mailbox with messages, a body shared with another
	// mailbox and held twice in this one (one change log row per body),
	// tombstones and annotations (the store's form).
	p.exec(msg, 4, 50, bodies[1], 0, "", 11, 200, 50, 50)
	p.exec("DELETE FROM mailboxes WHERE user_id = ? AND name = ?", 1, "Trash")

	// Web Push state of bob, then bob deleted: everything of his goes,
	// his change log too, and the bodies only he had.
	p.insertID("INSERT INTO push_subscriptions(user_id, device_client_id, url, p256dh, auth, code, verification_code, expires, types) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
		2, "dev", "https://push.example/1", "", "", "c", "", 99, "")
	p.exec("INSERT INTO push_pending(endpoint, key, user_id, payload, attempts, not_before) VALUES (?, ?, ?, ?, ?, ?)", "https://push.example/1", "k", 2, nil, 0, 5)
	p.exec("INSERT INTO push_pending(endpoint, key, user_id, payload, attempts, not_before) VALUES (?, ?, ?, ?, ?, ?)", "https://push.example/1", "l", 2, []byte("p"), 1, 6)
	p.exec("DELETE FROM users WHERE id = ?", 2)

	// The scenario reached what it means to: the bound dropped
	// tombstones and raised ann's horizon; bodies went with their last
	// message.
	var horizon, tombstones, bodyRows int64
	if err := p.pg.QueryRowContext(t.Context(), `SELECT change_horizon,
		(SELECT count(*) FROM account_changes WHERE user_id = 1 AND destroyed != 0),
		(SELECT count(*) FROM bodies) FROM users WHERE id = 1`).Scan(&horizon, &tombstones, &bodyRows); err != nil {
		t.Fatal(err)
	}
	if horizon == 0 || tombstones == 0 || bodyRows == 0 || bodyRows >= nextBody-100+int64(len(bodies)) {
		t.Errorf("ann's change_horizon %d, tombstones %d, bodies %d: the scenario missed the tombstone bound or the body cleanup", horizon, tombstones, bodyRows)
	}

	// A user created after: ids keep rising (the high-water marks); then
	// the last users go, and with them everything.
	p.exec("INSERT INTO users(id, address, domain, password, created) VALUES (?, ?, ?, ?, ?)", 3, "cy@example.org", "example.org", "hash", 102)
	p.exec(mailbox, 8, 3, "INBOX", 1008, "")
	p.exec(msg, 8, 1, bodies[1], 0, "", 11, 200, 2, 1) // shared with ann
	p.exec("DELETE FROM users WHERE id = ?", 1)
	p.exec("DELETE FROM users WHERE id = ?", 3)
	for _, table := range []string{"users", "aliases", "mailboxes", "messages", "bodies", "account_changes", "metadata", "subscriptions", "vanished", "sortkeys", "body_crlf_size", "body_text"} {
		if rows := p.dump(p.pg, table, false); len(rows) != 0 {
			t.Errorf("%s after deleting every user: %v; want none", table, rows)
		}
	}
}
