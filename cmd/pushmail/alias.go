package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"pushmail/mailstore"
)

// runAlias manages aliases: addresses whose mail goes to a user's INBOX.
// Like "user", it runs beside the server, which sees changes at once.
func runAlias(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "Usage: pushmail alias add|del|list [flags] [ALIAS [USER]]")
		fmt.Fprintln(stderr, "\n  add ALIAS USER   deliver mail for ALIAS to USER (an existing user)")
		fmt.Fprintln(stderr, "  del ALIAS        remove an alias")
		fmt.Fprintln(stderr, "  list             list aliases as \"alias -> user\"")
		fmt.Fprintln(stderr, "\nEach takes --data DIR (default $PUSHMAIL_DATA or ./pushmail-data) and --store\n(default $PUSHMAIL_STORE or DIR/pushmail.db: sqlite:PATH, PATH or postgres://…).")
	}
	sub, err := subcommand(args, usage)
	if err != nil {
		return err
	}
	var want int
	var argsUsage string
	switch sub {
	case "add":
		want, argsUsage = 2, "ALIAS USER"
	case "del":
		want, argsUsage = 1, "ALIAS"
	case "list":
		want = 0
	default:
		fmt.Fprintf(stderr, "pushmail alias: unknown sub-command %q\n", sub)
		usage()
		return errUsage
	}
	fs := newFlagSet("alias "+sub, argsUsage, stderr)
	sf := addStoreFlags(fs)
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	if fs.NArg() != want {
		fmt.Fprintf(stderr, "pushmail alias %s: want %d argument(s): %s\n", sub, want, argsUsage)
		fs.Usage()
		return errUsage
	}
	for _, a := range fs.Args() {
		if _, err := mailstore.NormalizeAddress(a); err != nil {
			return err
		}
	}

	ctx := context.Background()
	store, err := sf.open(ctx, false)
	if err != nil {
		return err
	}
	defer closeStore(store, stderr)

	switch sub {
	case "add":
		return aliasAdd(ctx, store, fs.Arg(0), fs.Arg(1), stdout, stderr)
	case "del":
		return aliasDel(ctx, store, fs.Arg(0), stdout)
	default:
		list, err := store.Aliases(ctx)
		if err != nil {
			return err
		}
		for _, a := range list {
			fmt.Fprintf(stdout, "%s -> %s\n", a.Address, a.User)
		}
		return nil
	}
}

func aliasAdd(ctx context.Context, store *mailstore.Store, alias, user string, stdout, stderr io.Writer) error {
	a, _ := mailstore.NormalizeAddress(alias) // checked by the caller
	u, _ := mailstore.NormalizeAddress(user)
	// A new domain becomes local with its first alias (IsLocalDomain):
	// say so, since a typo in the domain would otherwise go unnoticed.
	domain := a[strings.LastIndexByte(a, '@')+1:]
	wasLocal, err := store.IsLocalDomain(ctx, domain)
	if err != nil {
		return err
	}
	err = store.AddAlias(ctx, a, u)
	switch {
	case errors.Is(err, mailstore.ErrUserExists):
		if _, uerr := store.User(ctx, a); uerr == nil {
			return fmt.Errorf("%s is a user's address; an alias cannot take it", a)
		}
		if to, ok := aliasTarget(ctx, store, a); ok {
			return fmt.Errorf("alias %s already exists (-> %s); delete it first to change it", a, to)
		}
		return err
	case errors.Is(err, mailstore.ErrNoSuchUser):
		if to, ok := aliasTarget(ctx, store, u); ok {
			return fmt.Errorf("%s is an alias (-> %s), not a user; point %s at %s instead", u, to, a, to)
		}
		return fmt.Errorf("no such user: %s (add it with pushmail user add)", u)
	case err != nil:
		return err
	}
	fmt.Fprintf(stdout, "added alias %s -> %s\n", a, u)
	if !wasLocal {
		fmt.Fprintf(stderr, "pushmail alias: note: %s was not the domain of any user or alias; pushmail now accepts mail for it\n", domain)
	}
	return nil
}

func aliasDel(ctx context.Context, store *mailstore.Store, alias string, stdout io.Writer) error {
	a, _ := mailstore.NormalizeAddress(alias) // checked by the caller
	err := store.DeleteAlias(ctx, a)
	if errors.Is(err, mailstore.ErrNoSuchUser) {
		if _, uerr := store.User(ctx, a); uerr == nil {
			return fmt.Errorf("%s is a user, not an alias (pushmail user del removes users)", a)
		}
		return fmt.Errorf("no such alias: %s", a)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "deleted alias %s\n", a)
	return nil
}

// aliasTarget returns the user an alias points at, if addr is an alias.
func aliasTarget(ctx context.Context, store *mailstore.Store, addr string) (string, bool) {
	list, err := store.Aliases(ctx)
	if err != nil {
		return "", false
	}
	for _, a := range list {
		if a.Address == addr {
			return a.User, true
		}
	}
	return "", false
}
