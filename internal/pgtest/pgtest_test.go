package pgtest

import (
	"fmt"
	"net/url"
	"os"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
)

// TestNewSkipsWithoutServer: without the variable, New skips the test
// with a message that says what to set.
func TestNewSkipsWithoutServer(t *testing.T) {
	t.Setenv(EnvVar, "")
	if Available() {
		t.Fatalf("Available() = true with %s empty", EnvVar)
	}
	var skipped bool
	var r *recorder
	t.Run("inner", func(t *testing.T) {
		r = &recorder{TB: t}
		defer func() { skipped = t.Skipped() }()
		New(r)
	})
	if !skipped {
		t.Fatalf("New without %s did not skip", EnvVar)
	}
	if !strings.Contains(r.msg, EnvVar) || !strings.Contains(r.msg, "./test.sh") {
		t.Errorf("skip message %q does not name %s and ./test.sh", r.msg, EnvVar)
	}
}

// recorder keeps the skip message, then skips.
type recorder struct {
	testing.TB
	msg string
}

func (r *recorder) Skipf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	r.TB.Skip(r.msg)
}

// TestNew makes two databases, checks that each is the test's own and
// has pg_trgm, and that each is gone after its test, even with a
// connection left open.
func TestNew(t *testing.T) {
	if !Available() {
		New(t) // skips, saying why
	}
	ctx := t.Context()
	var names []string
	for _, sub := range []string{"first", "second"} {
		t.Run(sub, func(t *testing.T) {
			u := New(t)
			name := dbName(t, u)
			names = append(names, name)
			conn, err := pgx.Connect(t.Context(), u)
			if err != nil {
				t.Fatalf("connect to the new database: %v", err)
			}
			// Left open on purpose: the drop at cleanup forces it
			// closed (WITH (FORCE)), as it must for a store a failed
			// test did not close.
			var db string
			if err := conn.QueryRow(t.Context(), "SELECT current_database()").Scan(&db); err != nil {
				t.Fatalf("current_database: %v", err)
			}
			if db != name || !strings.HasPrefix(db, "pushmail_test_") {
				t.Errorf("current_database() = %q, want %q (pushmail_test_…)", db, name)
			}
			var n int
			if err := conn.QueryRow(t.Context(), "SELECT count(*) FROM pg_extension WHERE extname = 'pg_trgm'").Scan(&n); err != nil || n != 1 {
				t.Errorf("pg_trgm extensions = %d, %v; want 1", n, err)
			}
			// Fresh: the table the first subtest made is not here.
			if _, err := conn.Exec(t.Context(), "CREATE TABLE mine (x int)"); err != nil {
				t.Errorf("CREATE TABLE mine in a fresh database: %v", err)
			}
		})
	}
	if len(names) != 2 || names[0] == names[1] {
		t.Fatalf("New made %q: want two different databases", names)
	}
	conn, err := pgx.Connect(ctx, os.Getenv(EnvVar))
	if err != nil {
		t.Fatalf("connect to the admin database: %v", err)
	}
	defer conn.Close(ctx)
	for _, name := range names {
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM pg_database WHERE datname = $1", name).Scan(&n); err != nil {
			t.Fatalf("pg_database: %v", err)
		}
		if n != 0 {
			t.Errorf("database %s still exists after its test", name)
		}
	}
}

func dbName(t *testing.T, s string) string {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatalf("New returned %q: %v", s, err)
	}
	return strings.TrimPrefix(u.Path, "/")
}
