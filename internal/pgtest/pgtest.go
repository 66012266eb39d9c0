// Package pgtest gives a test its own PostgreSQL database, so that tests
// of the PostgreSQL store run against a real server, in parallel, without
// seeing each other's rows.
//
// The server is named by the environment variable PUSHMAIL_TEST_POSTGRES
// (EnvVar): a postgres:// URL of a role that may create and drop
// databases. ./test.sh starts a throwaway cluster with scripts/pgcluster.sh
// and sets it; without it, New skips the test, so "go test ./..." still
// runs everywhere.
//
// Invariants:
//   - Each New makes a database no other test uses, named
//     pushmail_test_ and 16 random hex digits, with pg_trgm created in
//     it, and drops it (WITH (FORCE), closing what the test left open)
//     when the test and its subtests are done.
//   - The only SQL here is administration (CREATE/DROP DATABASE, CREATE
//     EXTENSION): the store's schema and queries stay in mailstore.
//   - Only tests import this package (TestImportGraph in cmd/pushmail).
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// EnvVar is the environment variable holding the admin URL of the
// PostgreSQL server tests use, for example
// postgres://postgres@127.0.0.1:5432/pushmail?sslmode=disable.
const EnvVar = "PUSHMAIL_TEST_POSTGRES"

// cleanupTimeout bounds the DROP DATABASE after a test: the test's own
// context is already cancelled when cleanups run.
const cleanupTimeout = 30 * time.Second

// Available reports whether EnvVar names a server, that is whether New
// would try to make a database rather than skip.
func Available() bool {
	return os.Getenv(EnvVar) != ""
}

// New creates a fresh database on the server EnvVar names, creates the
// pg_trgm extension in it, and returns its URL (the admin URL with the
// database name replaced). The database is dropped when t and its
// subtests finish. Without EnvVar, New skips t; a server that is named
// but cannot be reached fails t. It must be called from the test's own
// goroutine.
func New(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvVar)
	if admin == "" {
		t.Skipf("%s is not set: no PostgreSQL server to test against (./test.sh starts one; or run scripts/pgcluster.sh start DIR and set %s to the URL it prints)", EnvVar, EnvVar)
	}
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		t.Fatalf("%s must be a postgres:// URL", EnvVar)
	}
	name := "pushmail_test_" + randomHex(t, 8)
	ctx := t.Context()
	exec(ctx, t, admin, "CREATE DATABASE "+pgx.Identifier{name}.Sanitize())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), cleanupTimeout)
		defer cancel()
		if err := execErr(ctx, admin, "DROP DATABASE IF EXISTS "+pgx.Identifier{name}.Sanitize()+" WITH (FORCE)"); err != nil {
			t.Errorf("pgtest: drop test database %s: %v", name, err)
		}
	})
	u.Path = "/" + name
	dbURL := u.String()
	exec(ctx, t, dbURL, "CREATE EXTENSION IF NOT EXISTS pg_trgm")
	return dbURL
}

// exec runs one statement on its own connection to url, failing t on
// error.
func exec(ctx context.Context, t testing.TB, url, sql string) {
	t.Helper()
	if err := execErr(ctx, url, sql); err != nil {
		t.Fatalf("pgtest: %s: %v", sql, err)
	}
}

// execErr runs one statement on its own connection to url. Errors name
// the server through its redacted URL only.
func execErr(ctx context.Context, url, sql string) error {
	conn, err := pgx.Connect(ctx, url)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", redact(url), err)
	}
	_, err = conn.Exec(ctx, sql)
	if cerr := conn.Close(ctx); err == nil && cerr != nil {
		err = fmt.Errorf("close connection: %w", cerr)
	}
	return err
}

// redact hides a password in url, for messages.
func redact(s string) string {
	u, err := url.Parse(s)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatalf("pgtest: random name: %v", err)
	}
	return hex.EncodeToString(b)
}
