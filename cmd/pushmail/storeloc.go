package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strings"

	"pushmail/mailstore"
)

// storeUsage describes the store setting, for --store's help.
const storeUsage = "the store: sqlite:PATH, an SQLite file PATH, or a postgres:// URL of a PostgreSQL database several servers may share; empty: DIR/" + dbFile

// storeLocation turns the store setting into the location mailstore.Open
// takes: "" is DATA/pushmail.db, as before the setting existed;
// "sqlite:PATH" and a bare PATH name an SQLite file (relative to the
// working directory, as --data is); a postgres:// or postgresql:// URL
// names a PostgreSQL database and is returned as it is. Any other
// "scheme://" is a mistake, not a file name.
func storeLocation(data, store string) (string, error) {
	switch {
	case store == "":
		if data == "" {
			return "", errors.New("store: no data directory to put " + dbFile + " in")
		}
		return filepath.Join(data, dbFile), nil
	case mailstore.IsPostgresURL(store):
		u, err := url.Parse(store)
		if err != nil {
			// Not url.Parse's message: it would quote the password.
			return "", errors.New("store: the postgres:// URL does not parse")
		}
		if u.Host == "" && u.Query().Get("host") == "" {
			return "", fmt.Errorf("store: %s names no host", mailstore.RedactURL(store))
		}
		return store, nil
	case strings.HasPrefix(store, "sqlite:"):
		path := strings.TrimPrefix(store, "sqlite:")
		if path == "" || strings.HasPrefix(path, "//") {
			return "", fmt.Errorf("store: want sqlite:PATH, got %q", store)
		}
		return path, nil
	case strings.Contains(store, "://"):
		scheme, _, _ := strings.Cut(store, "://")
		return "", fmt.Errorf("store: unknown kind %q: want sqlite:PATH, a file path, or a postgres:// URL", scheme)
	}
	return store, nil
}

// errPostgresFileCommand is the refusal of "pushmail backup" and
// "pushmail restore" (cmd) on a PostgreSQL store: they copy an SQLite
// file, and PostgreSQL has its own tools for a consistent copy.
func errPostgresFileCommand(cmd, location string) error {
	return fmt.Errorf("the store is the PostgreSQL database %s and %q handles SQLite files only: "+
		"back it up with pg_dump (pg_dump -Fc -f FILE URL) and restore it with pg_restore (pg_restore --clean -d URL FILE)",
		mailstore.RedactURL(location), "pushmail "+cmd)
}

// storeFlags are the --data and --store flags of an admin command.
type storeFlags struct {
	data  *string
	store *string
}

// addStoreFlags gives fs --data and --store, with their environment
// variables as defaults.
func addStoreFlags(fs *flag.FlagSet) storeFlags {
	return storeFlags{
		data:  fs.String("data", envDefault("PUSHMAIL_DATA", "./pushmail-data"), "data directory (env PUSHMAIL_DATA)"),
		store: fs.String("store", envDefault("PUSHMAIL_STORE", ""), storeUsage+" (env PUSHMAIL_STORE)"),
	}
}

// location is the store the flags name.
func (f storeFlags) location() (string, error) {
	return storeLocation(*f.data, *f.store)
}

// open opens the store the flags name; see openStore.
func (f storeFlags) open(ctx context.Context, create bool) (*mailstore.Store, error) {
	loc, err := f.location()
	if err != nil {
		return nil, err
	}
	return openStore(ctx, *f.data, loc, create)
}

// openStore opens the store at location (from storeLocation) for an
// admin command. Only create (user add) makes a missing SQLite store and
// its directory; the others fail on a mistyped --data or --store rather
// than make an empty store there. A PostgreSQL store needs no directory.
func openStore(ctx context.Context, data, location string, create bool) (*mailstore.Store, error) {
	if !mailstore.IsPostgresURL(location) {
		if create {
			if err := os.MkdirAll(filepath.Dir(location), 0o700); err != nil {
				return nil, fmt.Errorf("create data directory: %w", err)
			}
		} else if _, err := os.Stat(location); err != nil {
			return nil, fmt.Errorf("no pushmail data in %s (use --data DIR or --store, or add a user first): %w", data, err)
		}
	}
	return mailstore.Open(ctx, location, mailstore.Options{})
}

// serveStoreLimits returns the limits on the store's disk use that serve
// passes to mailstore. They measure an SQLite file and the file system
// it is on; a PostgreSQL server's disk is its own to watch, so there they
// are not applied, and one warning says so when the operator set either
// (min_free_bytes has a default, which says nothing on PostgreSQL).
func serveStoreLimits(location string, l LimitsConfig, logger *slog.Logger) (maxDatabaseBytes, minFreeBytes int64) {
	if !mailstore.IsPostgresURL(location) {
		return l.MaxStoreBytes, l.MinFreeBytes
	}
	if l.MaxStoreBytes != 0 || l.MinFreeBytes != 0 && l.MinFreeBytes != DefaultMinFreeBytes {
		logger.Warn("limits.max_store_bytes and limits.min_free_bytes measure an SQLite file and are not applied to a PostgreSQL store: watch the database server's disk instead",
			"max_store_bytes", l.MaxStoreBytes, "min_free_bytes", l.MinFreeBytes)
	}
	return 0, 0
}

// lockStoreDir takes the lock of an SQLite store's own directory when it
// is not the data directory, whose lock the caller holds already: the
// notifier is in-process, so two servers with different data directories
// must not share one SQLite file either. It returns nil, and locks
// nothing, for a store in the data directory and for PostgreSQL, where
// every server's LISTEN carries the others' changes.
func lockStoreDir(data, location, what string) (*dataLock, error) {
	if mailstore.IsPostgresURL(location) {
		return nil, nil
	}
	dir, err := filepath.Abs(filepath.Dir(location))
	if err != nil {
		return nil, err
	}
	dataAbs, err := filepath.Abs(data)
	if err != nil {
		return nil, err
	}
	if dir == dataAbs {
		return nil, nil
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create the store's directory: %w", err)
	}
	return lockDataDir(dir, what)
}
