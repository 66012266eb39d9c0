// Package pgtest gives tests a fresh PostgreSQL database of their own on
// the server named by the environment variable EnvVar, and skips them
// when it is unset. It speaks to the server with pgx directly, not
// database/sql, which only mailstore may import (cmd/pushmail's
// TestImportGraph).
//
// Each database is created by New and dropped WITH (FORCE) when the test
// ends, so tests may run in parallel and leave nothing behind.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"

	"github.com/jackc/pgx/v5"
)

// EnvVar names the environment variable holding the URL of a PostgreSQL
// server and a database on it, as a user allowed to CREATE DATABASE.
const EnvVar = "PUSHMAIL_TEST_POSTGRES"

// Available reports whether EnvVar is set, that is whether New will give
// a database rather than skip the test.
func Available() bool {
	return os.Getenv(EnvVar) != ""
}

// New creates a fresh database with the pg_trgm extension and returns its
// URL; the database is dropped, with any connection still open to it, at
// the test's cleanup. It skips t when EnvVar is unset.
func New(t testing.TB) string {
	t.Helper()
	admin := os.Getenv(EnvVar)
	if admin == "" {
		t.Skipf("%s is unset: no PostgreSQL server to test against", EnvVar)
	}
	u, err := url.Parse(admin)
	if err != nil {
		t.Fatalf("parse %s: %v", EnvVar, err)
	}
	var b [8]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	name := "pushmail_test_" + hex.EncodeToString(b[:])

	adb, err := pgx.Connect(t.Context(), admin)
	if err != nil {
		t.Fatalf("connect to %s: %v", EnvVar, err)
	}
	defer closeConn(t, adb)
	// The name is our own hex string: no quoting needed, and CREATE
	// DATABASE takes no bind parameters.
	if _, err := adb.Exec(t.Context(), "CREATE DATABASE "+name); err != nil {
		t.Fatalf("create database: %v", err)
	}
	t.Cleanup(func() {
		// t.Context is done by now; the drop must still run.
		ctx := context.Background()
		db, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("connect to %s for cleanup: %v", EnvVar, err)
			return
		}
		defer closeConn(t, db)
		if _, err := db.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("drop database %s: %v", name, err)
		}
	})

	u.Path = "/" + name
	dsn := u.String()
	db, err := pgx.Connect(t.Context(), dsn)
	if err != nil {
		t.Fatalf("connect to test database: %v", err)
	}
	defer closeConn(t, db)
	if _, err := db.Exec(t.Context(), "CREATE EXTENSION IF NOT EXISTS pg_trgm"); err != nil {
		t.Fatalf("create extension pg_trgm: %v", err)
	}
	return dsn
}

// closeConn closes a connection of New's, reporting a failure.
func closeConn(t testing.TB, c *pgx.Conn) {
	if err := c.Close(context.Background()); err != nil {
		t.Errorf("close connection: %v", err)
	}
}
