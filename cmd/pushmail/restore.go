package main

import (
	"context"
	"fmt"
	"io"
	"os"

	"pushmail/mailstore"
)

// runRestore installs a backup as the store of a stopped server; see
// mailstore.Restore for what it checks and how it keeps UIDs unique.
func runRestore(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("restore", "FILE", stderr)
	sf := addStoreFlags(fs)
	force := fs.Bool("force", false, "restore even if the current store cannot be read (its UIDVALIDITY values are then unknown)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: pushmail restore [--data DIR] [--store STORE] FILE

Replaces the store in DIR (or the SQLite file --store names) with FILE, a
file written by "pushmail backup". Stop the server first: restore refuses
while "pushmail serve" runs on DIR. SQLite stores only: a PostgreSQL store
(--store postgres://...) is restored with pg_restore.

FILE is checked (SQLite integrity, pushmail schema no newer than this
binary) and copied in; the current store is kept beside it as
DIR/pushmail.db.before-restore-TIME. Every mailbox then gets a new
UIDVALIDITY, above any the backup or the replaced store gave out, so IMAP
clients drop their cached UIDs and resynchronise instead of confusing new
messages with ones they saw before the restore (RFC 9051 §2.3.1.1).

Flags:`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return errUsage
	}
	backup := fs.Arg(0)
	dbPath, err := sf.location()
	if err != nil {
		return err
	}
	if mailstore.IsPostgresURL(dbPath) {
		return errPostgresFileCommand("restore", dbPath)
	}
	data := sf.data
	if err := os.MkdirAll(*data, 0o700); err != nil {
		return fmt.Errorf("create data directory: %w", err)
	}
	lock, err := lockDataDir(*data, "restore")
	if err != nil {
		return err
	}
	defer func() {
		if err := lock.Close(); err != nil {
			fmt.Fprintf(stderr, "pushmail restore: %v\n", err)
		}
	}()

	storeLock, err := lockStoreDir(*data, dbPath, "restore")
	if err != nil {
		return err
	}
	if storeLock != nil {
		defer func() {
			if err := storeLock.Close(); err != nil {
				fmt.Fprintf(stderr, "pushmail restore: %v\n", err)
			}
		}()
	}

	ctx := context.Background()
	res, err := mailstore.Restore(ctx, backup, dbPath, mailstore.RestoreOptions{Force: *force})
	if err != nil {
		return err
	}
	if res.ReplacedErr != nil {
		fmt.Fprintf(stderr, "pushmail restore: warning: the replaced store could not be read (%v); new UIDVALIDITY values start above the backup's and the clock only\n", res.ReplacedErr)
	}
	// Open once, still under the lock: this migrates an older backup's
	// schema and shows that the installed store works.
	store, err := mailstore.Open(ctx, dbPath, mailstore.Options{})
	if err != nil {
		return fmt.Errorf("restored %s, but it does not open: %w", dbPath, err)
	}
	st, err := store.Stats(ctx)
	closeStore(store, stderr)
	if err != nil {
		return fmt.Errorf("restored %s, but it does not answer: %w", dbPath, err)
	}

	fmt.Fprintf(stdout, "restored %s from %s: %d users, %d aliases, %d mailboxes, %d messages\n",
		dbPath, backup, st.Users, st.Aliases, st.Mailboxes, st.Messages)
	if res.Mailboxes > 0 {
		fmt.Fprintf(stdout, "renumbered %d mailboxes: UIDVALIDITY %d to %d (backup had issued up to %d, replaced store up to %d)\n",
			res.Mailboxes, res.FirstUIDValidity, res.FirstUIDValidity+uint32(res.Mailboxes)-1, res.BackupIssued, res.ReplacedIssued)
	}
	if res.Kept != "" {
		fmt.Fprintf(stdout, "previous store kept as %s (delete it when no longer needed)\n", res.Kept)
	} else {
		fmt.Fprintln(stdout, "there was no previous store")
	}
	if res.SchemaVersion != st.SchemaVersion {
		fmt.Fprintf(stdout, "schema upgraded from version %d to %d\n", res.SchemaVersion, st.SchemaVersion)
	}
	return nil
}
