package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"

	"pushmail/mailstore"
)

// runStore is "pushmail store SUB": operations on the store as a whole.
func runStore(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "Usage: pushmail store migrate [flags]")
		fmt.Fprintln(stderr, "\n  migrate   copy a stopped server's SQLite store into an empty PostgreSQL database, and verify the copy")
		fmt.Fprintln(stderr, "\nRun \"pushmail store migrate --help\" for its flags.")
	}
	sub, err := subcommand(args, usage)
	if err != nil {
		return err
	}
	switch sub {
	case "migrate":
		return runStoreMigrate(args[1:], stdout, stderr)
	default:
		fmt.Fprintf(stderr, "pushmail store: unknown sub-command %q\n\n", sub)
		usage()
		return errUsage
	}
}

// runStoreMigrate copies an SQLite store to PostgreSQL with
// mailstore.CopyStore, under the source's data-directory lock.
func runStoreMigrate(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("store migrate", "", stderr)
	data := fs.String("data", envDefault("PUSHMAIL_DATA", "./pushmail-data"), "data directory whose store is the source when --from is not given (env PUSHMAIL_DATA)")
	from := fs.String("from", "", "the source: sqlite:PATH or a plain PATH of an SQLite store (default: DIR/"+dbFile+" of --data)")
	to := fs.String("to", "", "the target: a postgres:// URL of an empty database (required); the password may also come from PGPASSWORD or ~/.pgpass")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: pushmail store migrate [--data DIR | --from sqlite:PATH] --to postgres://USER@HOST/DB

Copies a whole SQLite store into a PostgreSQL database: users and their
password hashes, quotas, aliases, mailboxes with their UIDVALIDITY, UIDNEXT
and HIGHESTMODSEQ, every message with its UID, flags, keywords and modseq,
expunge tombstones, subscriptions, metadata, the HTTP API's ids, states and
change log, and the Web Push subscriptions and pending wake-ups. IMAP and
JMAP clients then resume against the new store without downloading again.

Stop the server first: migrate refuses while "pushmail serve" holds the
source's data directory. The target must hold no store yet (its schema is
created if missing). Everything is written in one transaction and checked
before the commit: row counts of every table, each mailbox's messages
(count, size, checksum of UIDs, flags, keywords and modseqs) and a SHA-256
of every table's rows, the message bytes among them. A failed or
mismatching copy leaves the target empty; the source is only read (an
older store's schema is brought up to date first).

Flags:`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 0 || *to == "" {
		fs.Usage()
		return errUsage
	}
	if !mailstore.IsPostgresURL(*to) {
		return fmt.Errorf("--to must be a postgres:// URL, not %q", *to)
	}
	src := strings.TrimPrefix(*from, "sqlite:")
	if *from == "" {
		src = filepath.Join(*data, dbFile)
	}
	if mailstore.IsPostgresURL(src) {
		return errors.New("--from must be an SQLite store (sqlite:PATH); to copy a PostgreSQL database use pg_dump and pg_restore")
	}
	if _, err := os.Stat(src); err != nil {
		return fmt.Errorf("source store: %w", err)
	}
	// The server keeps writing while it runs: a copy taken meanwhile
	// would miss what it writes afterwards. Its lock says it runs.
	lock, err := lockDataDir(filepath.Dir(src), "store migrate")
	if err != nil {
		return err
	}
	defer func() {
		if err := lock.Close(); err != nil {
			fmt.Fprintf(stderr, "pushmail store migrate: %v\n", err)
		}
	}()

	// Ctrl-C cancels the copy, whose transaction then leaves nothing.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	log := slog.New(slog.NewTextHandler(stderr, nil))
	res, err := mailstore.CopyStore(ctx, src, *to, log)
	if err != nil {
		if errors.Is(err, mailstore.ErrTargetNotEmpty) {
			return fmt.Errorf("%w (migrate copies into an empty database only; drop and re-create it to start over)", err)
		}
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "copied %s to %s\n", src, mailstore.RedactURL(*to))
	for _, t := range res.Tables {
		fmt.Fprintf(tw, "%s\t%d\n", t.Name, t.Rows)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "verified: every table's rows, %d mailboxes message by message, %d message bytes\n", res.Mailboxes, res.BodyBytes)
	return nil
}
