package main

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"pushmail/internal/pgtest"
	"pushmail/mailstore"
)

// TestPostgresStoreEndToEnd runs the real binary on a PostgreSQL store:
// a user added with --store, a server started with it, a message over
// SMTP pushed to IDLE and read over IMAP, and afterwards the store, read
// directly, holds exactly that message. The data directory keeps
// everything but the mail. It skips without PUSHMAIL_TEST_POSTGRES
// (./test.sh sets it).
func TestPostgresStoreEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	url := pgtest.New(t)
	data := t.TempDir()
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--store", url, "--password-stdin")
	srv := startServer(t, data, "--store", url)

	w := watchInbox(t, srv.addr("imap"), "alice@localhost", "secret")
	sendSMTP(t, srv.addr("smtp"), "alice@localhost", "kept in PostgreSQL")
	select {
	case n := <-w.exists:
		if n != 1 {
			t.Errorf("IDLE got * %d EXISTS, want 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("no * EXISTS in IDLE after the SMTP delivery")
	}
	if err := w.idle.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.idle.Wait(); err != nil {
		t.Fatal(err)
	}
	c := w.c
	if got := subjects(t, c); len(got) != 1 || got[1] != "kept in PostgreSQL" {
		t.Errorf("INBOX over IMAP = %v, want UID 1 \"kept in PostgreSQL\"", got)
	}
	c.Close()
	if err := srv.stop(t); err != nil {
		t.Errorf("pushmail serve after SIGTERM: %v, want exit 0", err)
	}

	logs := srv.logText()
	if !strings.Contains(logs, `store="`+mailstore.RedactURL(url)+`"`) && !strings.Contains(logs, "store="+mailstore.RedactURL(url)) {
		t.Errorf("the start line does not name the store %s", mailstore.RedactURL(url))
	}
	// min_free_bytes is on by default, and means nothing on PostgreSQL:
	// no warning unless the operator set a limit.
	if n := strings.Count(logs, "not applied to a PostgreSQL store"); n != 0 {
		t.Errorf("%d warnings that the disk limits are off, want none with the defaults", n)
	}
	if _, err := os.Stat(filepath.Join(data, dbFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (err %v): the mail went to SQLite", filepath.Join(data, dbFile), err)
	}

	// The store itself, not the client's view: one user, one message.
	ctx := context.Background()
	st, err := mailstore.Open(ctx, url, mailstore.Options{})
	if err != nil {
		t.Fatalf("mailstore.Open(%s): %v", mailstore.RedactURL(url), err)
	}
	stats, err := st.Stats(ctx)
	if cerr := st.Close(); cerr != nil {
		t.Errorf("Close: %v", cerr)
	}
	if err != nil || stats.Users != 1 || stats.Messages != 1 {
		t.Errorf("Stats() = %+v, %v; want 1 user, 1 message", stats, err)
	}
	if out := cli(t, "", "stats", "--data", data, "--store", url); !regexp.MustCompile(`(?m)^messages\s+1$`).MatchString(out) {
		t.Errorf("pushmail stats --store URL:\n%s", out)
	}
}
