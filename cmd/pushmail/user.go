package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"golang.org/x/term"

	"pushmail/mailstore"
)

// dbFile is the store's file inside the data directory.
const dbFile = "pushmail.db"

// subcommand takes the SUB of "pushmail CMD SUB …" from args: none prints
// usage and fails with errUsage; -h, --help or help prints it (errHelp).
func subcommand(args []string, usage func()) (string, error) {
	if len(args) == 0 {
		usage()
		return "", errUsage
	}
	if args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage()
		return "", errHelp
	}
	return args[0], nil
}

func runUser(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	usage := func() {
		fmt.Fprintln(stderr, "Usage: pushmail user add|passwd|del|list|quota [flags] [ADDRESS]")
		fmt.Fprintln(stderr, "\n  add ADDRESS      create a user (password from a prompt or --password-stdin)")
		fmt.Fprintln(stderr, "  passwd ADDRESS   change a user's password")
		fmt.Fprintln(stderr, "  del ADDRESS      delete a user and all their mail")
		fmt.Fprintln(stderr, "  list             list users")
		fmt.Fprintln(stderr, "  quota ADDRESS    show a user's quota and usage; set it with --storage BYTES, --messages N (0 or none: no limit)")
		fmt.Fprintln(stderr, "\nEach takes --data DIR (default $PUSHMAIL_DATA or ./pushmail-data) and --store\n(default $PUSHMAIL_STORE or DIR/pushmail.db: sqlite:PATH, PATH or postgres://…).")
	}
	sub, err := subcommand(args, usage)
	if err != nil {
		return err
	}
	if sub == "quota" {
		return runUserQuota(args[1:], stdout, stderr)
	}
	fs := newFlagSet("user "+sub, "ADDRESS", stderr)
	sf := addStoreFlags(fs)
	var pwStdin *bool
	wantAddr := true
	switch sub {
	case "add", "passwd":
		pwStdin = fs.Bool("password-stdin", false, "read the password from standard input (one line) instead of a prompt")
	case "del":
	case "list":
		fs.Usage = func() {
			fmt.Fprintln(stderr, "Usage: pushmail user list [flags]\n\nFlags:")
			fs.PrintDefaults()
		}
		wantAddr = false
	default:
		fmt.Fprintf(stderr, "pushmail user: unknown sub-command %q\n", sub)
		usage()
		return errUsage
	}
	if err := parseFlags(fs, args[1:]); err != nil {
		return err
	}
	var addr string
	if wantAddr {
		if fs.NArg() != 1 {
			fmt.Fprintf(stderr, "pushmail user %s: want exactly one ADDRESS\n", sub)
			fs.Usage()
			return errUsage
		}
		addr = fs.Arg(0)
		if _, err := mailstore.NormalizeAddress(addr); err != nil {
			return err
		}
	} else if fs.NArg() != 0 {
		fmt.Fprintf(stderr, "pushmail user %s: takes no arguments\n", sub)
		return errUsage
	}

	ctx := context.Background()
	store, err := sf.open(ctx, sub == "add")
	if err != nil {
		return err
	}
	defer closeStore(store, stderr)

	switch sub {
	case "add":
		pw, err := readPassword(stdin, stderr, *pwStdin, true)
		if err != nil {
			return err
		}
		u, err := store.AddUser(ctx, addr, pw)
		if err != nil {
			return err
		}
		fmt.Fprintf(stdout, "added %s\n", u.Address)
	case "passwd":
		pw, err := readPassword(stdin, stderr, *pwStdin, true)
		if err != nil {
			return err
		}
		if err := store.SetPassword(ctx, addr, pw); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "password changed for %s\n", strings.ToLower(addr))
	case "del":
		if err := store.DeleteUser(ctx, addr); err != nil {
			return err
		}
		fmt.Fprintf(stdout, "deleted %s\n", strings.ToLower(addr))
	case "list":
		users, err := store.Users(ctx)
		if err != nil {
			return err
		}
		for _, u := range users {
			fmt.Fprintln(stdout, u.Address)
		}
	}
	return nil
}

func closeStore(store *mailstore.Store, stderr io.Writer) {
	if err := store.Close(); err != nil {
		fmt.Fprintf(stderr, "pushmail: %v\n", err)
	}
}

// readPassword reads a password from a terminal prompt (twice, to confirm)
// or, with fromStdin, one line of standard input. Passwords are never
// taken from argv, where other users can see them in ps.
func readPassword(stdin io.Reader, stderr io.Writer, fromStdin, confirm bool) (string, error) {
	if fromStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !(errors.Is(err, io.EOF) && line != "") {
			return "", fmt.Errorf("read password from standard input: %w", err)
		}
		pw := strings.TrimRight(line, "\r\n")
		if pw == "" {
			return "", errors.New("empty password on standard input")
		}
		return pw, nil
	}
	f, ok := stdin.(*os.File)
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return "", errors.New("standard input is not a terminal: use --password-stdin to pipe the password")
	}
	fmt.Fprint(stderr, "Password: ")
	pw, err := term.ReadPassword(int(f.Fd()))
	fmt.Fprintln(stderr)
	if err != nil {
		return "", fmt.Errorf("read password: %w", err)
	}
	if len(pw) == 0 {
		return "", errors.New("empty password")
	}
	if confirm {
		fmt.Fprint(stderr, "Again: ")
		again, err := term.ReadPassword(int(f.Fd()))
		fmt.Fprintln(stderr)
		if err != nil {
			return "", fmt.Errorf("read password: %w", err)
		}
		if string(again) != string(pw) {
			return "", errors.New("passwords do not match")
		}
	}
	return string(pw), nil
}
