package mailstore

import "testing"

func TestPostgresSQL(t *testing.T) {
	for _, c := range []struct{ in, want string }{
		{"SELECT a FROM t WHERE x = ? AND y = ?", "SELECT a FROM t WHERE x = $1 AND y = $2"},
		{"SELECT ?2, ?1, ?", "SELECT $2, $1, $3"},
		{"SELECT '?' , ?", "SELECT '?' , $1"},
		{"SELECT 'it''s ?', ?", "SELECT 'it''s ?', $1"},
		{"UPDATE meta SET value = max(value, ?) WHERE key = 'k'", "UPDATE meta SET value = GREATEST(value, $1) WHERE key = 'k'"},
		{"SELECT max(uid) FROM messages WHERE mailbox_id = ?", "SELECT max(uid) FROM messages WHERE mailbox_id = $1"},
		{"SELECT min(a, max(b, ?)), min(c)", "SELECT LEAST(a, GREATEST(b, $1)), min(c)"},
		{"SELECT instr(lower(m.keywords), ?) > 0", "SELECT strpos(lower(m.keywords), $1) > 0"},
		{"SELECT group_concat(uid) FROM t", "SELECT string_agg((uid)::text, ',') FROM t"},
		{"SELECT group_concat(i.value, ' ') FROM t", "SELECT string_agg((i.value)::text, ' ') FROM t"},
		{"SELECT json_extract(b.parsed, '$.env.date')", "SELECT ((b.parsed)::jsonb #>> '{env,date}')"},
		{"SELECT json_extract(b.parsed, '$.env.from', '$.env.to')",
			"SELECT jsonb_build_array((b.parsed)::jsonb #> '{env,from}', (b.parsed)::jsonb #> '{env,to}')::text"},
		{"SELECT id FROM bodies WHERE json_type(parsed, '$.env.references') IS NULL",
			"SELECT id FROM bodies WHERE jsonb_typeof((parsed)::jsonb #> '{env,references}') IS NULL"},
		{"INSERT OR IGNORE INTO subscriptions(user_id, name) VALUES (?, ?)",
			"INSERT INTO subscriptions(user_id, name) VALUES ($1, $2) ON CONFLICT DO NOTHING"},
		{"INSERT OR IGNORE INTO t(a) VALUES (?) RETURNING a", "INSERT INTO t(a) VALUES ($1) ON CONFLICT DO NOTHING RETURNING a"},
		{"SELECT uid FROM messages INDEXED BY messages_modseq WHERE mailbox_id = ?", "SELECT uid FROM messages  WHERE mailbox_id = $1"},
		{"SELECT 1 -- a comment with ? in it\nFROM t WHERE a = ?", "SELECT 1 -- a comment with ? in it\nFROM t WHERE a = $1"},
		{"SELECT t.max(a, b)", "SELECT t.max(a, b)"},
	} {
		if got := postgresSQL(c.in); got != c.want {
			t.Errorf("postgresSQL(%q)\n got %q\nwant %q", c.in, got, c.want)
		}
	}
}
