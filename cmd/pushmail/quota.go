package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"pushmail/mailstore"
)

// runUserQuota is "pushmail user quota ADDRESS [--storage BYTES]
// [--messages N]": it sets the limits given (0 or none: no limit; a
// limit not given stays as it was) and prints the user's limits and
// usage (RFC 9208 STORAGE and MESSAGE, kept by the store).
func runUserQuota(args []string, stdout, stderr io.Writer) error {
	fs := newFlagSet("user quota", "ADDRESS", stderr)
	sf := addStoreFlags(fs)
	storage := fs.String("storage", "", "storage limit in bytes (suffixes K, M, G: powers of 1024); 0 or none: no limit")
	messages := fs.String("messages", "", "limit on the number of messages; 0 or none: no limit")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		fmt.Fprintln(stderr, "pushmail user quota: want exactly one ADDRESS")
		fs.Usage()
		return errUsage
	}
	addr, err := mailstore.NormalizeAddress(fs.Arg(0))
	if err != nil {
		return err
	}
	var newStorage, newMessages int64
	if *storage != "" {
		if newStorage, err = parseLimit(*storage, true); err != nil {
			return fmt.Errorf("--storage: %w", err)
		}
	}
	if *messages != "" {
		if newMessages, err = parseLimit(*messages, false); err != nil {
			return fmt.Errorf("--messages: %w", err)
		}
	}

	ctx := context.Background()
	store, err := sf.open(ctx, false)
	if err != nil {
		return err
	}
	defer closeStore(store, stderr)
	u, err := store.User(ctx, addr)
	if err != nil {
		return err
	}
	if *storage != "" || *messages != "" {
		q, err := store.Quota(ctx, u.ID)
		if err != nil {
			return err
		}
		if *storage == "" {
			newStorage = q.StorageLimit
		}
		if *messages == "" {
			newMessages = q.MessageLimit
		}
		if err := store.SetQuota(ctx, addr, newStorage, newMessages); err != nil {
			return err
		}
	}
	q, err := store.Quota(ctx, u.ID)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: storage %d of %s bytes, messages %d of %s\n",
		u.Address, q.StorageUsed, limitText(q.StorageLimit), q.MessagesUsed, limitText(q.MessageLimit))
	return nil
}

// parseLimit reads a limit: a number, 0, or "none"; with bytes, a K, M
// or G suffix (KiB, MiB, GiB also) multiplies by a power of 1024.
func parseLimit(s string, bytes bool) (int64, error) {
	t := strings.ToLower(strings.TrimSpace(s))
	if t == "none" || t == "unlimited" {
		return 0, nil
	}
	mult := int64(1)
	if bytes {
		for _, u := range []struct {
			suffix string
			mult   int64
		}{{"kib", 1 << 10}, {"mib", 1 << 20}, {"gib", 1 << 30}, {"k", 1 << 10}, {"m", 1 << 20}, {"g", 1 << 30}} {
			if rest, ok := strings.CutSuffix(t, u.suffix); ok {
				t, mult = rest, u.mult
				break
			}
		}
	}
	n, err := strconv.ParseInt(t, 10, 64)
	if err != nil || n < 0 || n > (1<<63-1)/mult {
		return 0, fmt.Errorf("%q is not a limit: want a number of at least 0, or none", s)
	}
	return n * mult, nil
}

// limitText is a limit as the quota line prints it.
func limitText(n int64) string {
	if n == 0 {
		return "unlimited"
	}
	return strconv.FormatInt(n, 10)
}
