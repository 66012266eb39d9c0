package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/emersion/go-smtp"

	"pushmail/mailstore"
)

// Exit statuses of "pushmail deliver", from sysexits.h, which MTAs such
// as Postfix's pipe(8) and local(8) read: 75 defers, others bounce.
const (
	exUsage       = 64
	exDataErr     = 65
	exNoUser      = 67
	exUnavailable = 69
	exTempFail    = 75
)

// exitError carries a specific exit status.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

func runMailbox(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "list" {
		fmt.Fprintln(stderr, "Usage: pushmail mailbox list [--data DIR] [--store STORE] USER\n\nLists USER's mailboxes with message, unseen and size counts.")
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help") {
			return errHelp
		}
		return errUsage
	}
	fs := newFlagSet("mailbox list", "USER", stderr)
	store, err := openForCommand(fs, args[1:], 1, stderr)
	if err != nil {
		return err
	}
	defer closeStore(store, stderr)
	ctx := context.Background()
	u, err := store.User(ctx, fs.Arg(0))
	if err != nil {
		return err
	}
	list, err := store.MailboxStatuses(ctx, u.ID)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MAILBOX\tSPECIAL-USE\tMESSAGES\tUNSEEN\tSIZE\tUIDVALIDITY\tUIDNEXT\tSUBSCRIBED")
	for _, st := range list {
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%v\n", st.Name, dash(st.SpecialUse), st.Messages, st.Unseen, st.Size, st.UIDValidity, st.UIDNext, st.Subscribed)
	}
	return tw.Flush()
}

// openForCommand gives fs the --data and --store flags, parses args,
// which must leave exactly wantArgs positional arguments, and opens the
// existing store. The caller closes it with closeStore.
func openForCommand(fs *flag.FlagSet, args []string, wantArgs int, stderr io.Writer) (*mailstore.Store, error) {
	sf, err := parseStoreCommand(fs, args, wantArgs)
	if err != nil {
		return nil, err
	}
	return sf.open(context.Background(), false)
}

// parseStoreCommand gives fs the --data and --store flags and parses
// args, which must leave exactly wantArgs positional arguments.
func parseStoreCommand(fs *flag.FlagSet, args []string, wantArgs int) (storeFlags, error) {
	sf := addStoreFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return sf, err
	}
	if fs.NArg() != wantArgs {
		fs.Usage()
		return sf, errUsage
	}
	return sf, nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func runStats(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("stats", "", stderr)
	store, err := openForCommand(fs, args, 0, stderr)
	if err != nil {
		return err
	}
	defer closeStore(store, stderr)
	ctx := context.Background()
	st, err := store.Stats(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "users\t%d\naliases\t%d\nmailboxes\t%d\nmessages\t%d\nbodies\t%d\nmessage bytes\t%d\nfile bytes\t%d\nschema version\t%d\n",
		st.Users, st.Aliases, st.Mailboxes, st.Messages, st.Bodies, st.MessageBytes, st.FileBytes, st.SchemaVersion)
	return tw.Flush()
}

func runBackup(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("backup", "FILE", stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: pushmail backup [--data DIR] [--store STORE] FILE

Writes a consistent copy of the store to FILE (which must not exist) while
the server keeps running. To restore: stop the server, run
"pushmail restore --data DIR FILE", start the server. Do not copy FILE over
DIR/pushmail.db by hand: restore also gives every mailbox a new
UIDVALIDITY, without which IMAP clients would take new messages for ones
they saw before the restore.

SQLite stores only: a PostgreSQL store (--store postgres://...) is backed
up with pg_dump and restored with pg_restore.

Flags:`)
		fs.PrintDefaults()
	}
	sf, err := parseStoreCommand(fs, args, 1)
	if err != nil {
		return err
	}
	loc, err := sf.location()
	if err != nil {
		return err
	}
	if mailstore.IsPostgresURL(loc) {
		return errPostgresFileCommand("backup", loc)
	}
	ctx := context.Background()
	store, err := openStore(ctx, *sf.data, loc, false)
	if err != nil {
		return err
	}
	defer closeStore(store, stderr)
	start := time.Now()
	if err := store.Backup(ctx, fs.Arg(0)); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s in %v\n", fs.Arg(0), time.Since(start).Round(time.Millisecond))
	return nil
}

// runDeliver is a local delivery agent: it reads one message from standard
// input and hands it to the running server over LMTP, so that the
// delivery is group-committed and pushed to IDLE clients like any other.
func runDeliver(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("deliver", "", stderr)
	var to listFlag
	fs.Var(&to, "to", "recipient address, repeatable (required)")
	from := fs.String("from", "", "envelope sender (default: the null sender <>)")
	lmtp := fs.String("lmtp", envDefault("PUSHMAIL_LMTP", "127.0.0.1:2424"), "the running server's LMTP address, or unix:/path (env PUSHMAIL_LMTP)")
	timeout := fs.Duration("timeout", 5*time.Minute, "give up (exit 75, try again later) after this long")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: pushmail deliver --to USER [--to USER2 ...] < message

Hands a message on standard input to the running pushmail over LMTP.
Exit status follows sysexits.h: 0 delivered to every recipient, 67 unknown
recipient, 75 temporary failure (the caller should retry), 65 bad input.

Flags:`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		if errors.Is(err, errHelp) {
			return err
		}
		return &exitError{exUsage, errors.New("bad arguments")}
	}
	if len(to) == 0 || fs.NArg() != 0 {
		fs.Usage()
		return &exitError{exUsage, errors.New("need at least one --to and no arguments")}
	}
	msg, err := io.ReadAll(io.LimitReader(stdin, 1<<30))
	if err != nil {
		return &exitError{exTempFail, fmt.Errorf("read message: %w", err)}
	}
	if len(msg) == 0 {
		return &exitError{exDataErr, errors.New("empty message on standard input")}
	}
	return lmtpDeliver(*lmtp, *from, to, msg, *timeout)
}

type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }
func (l *listFlag) Set(v string) error {
	*l = append(*l, v)
	return nil
}

// lmtpDeliver sends msg over LMTP and turns the replies into an exit status.
func lmtpDeliver(addr, from string, to []string, msg []byte, timeout time.Duration) error {
	network, address := "tcp", addr
	if path, ok := strings.CutPrefix(addr, "unix:"); ok {
		network, address = "unix", path
	}
	conn, err := net.DialTimeout(network, address, 30*time.Second)
	if err != nil {
		return &exitError{exTempFail, fmt.Errorf("connect to LMTP %s (is pushmail serve running?): %w", addr, err)}
	}
	if err := conn.SetDeadline(time.Now().Add(timeout)); err != nil {
		conn.Close()
		return &exitError{exTempFail, err}
	}
	c := smtp.NewClientLMTP(conn)
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return replyExit("LHLO", err)
	}
	if err := c.Mail(from, nil); err != nil {
		return replyExit("MAIL FROM", err)
	}
	var rejected []error
	accepted := 0
	for _, rcpt := range to {
		if err := c.Rcpt(rcpt, nil); err != nil {
			rejected = append(rejected, fmt.Errorf("<%s>: %w", rcpt, err))
			continue
		}
		accepted++
	}
	if accepted > 0 {
		w, err := c.Data()
		if err != nil {
			return replyExit("DATA", err)
		}
		if _, err := w.Write(msg); err != nil {
			return &exitError{exTempFail, fmt.Errorf("send message: %w", err)}
		}
		if _, err := w.CloseWithLMTPResponse(); err != nil {
			var perRcpt smtp.LMTPDataError
			if !errors.As(err, &perRcpt) {
				return replyExit("end of DATA", err)
			}
			rejected = append(rejected, perRcpt.Unwrap()...)
		}
	}
	if err := c.Quit(); err != nil && len(rejected) == 0 {
		// Every recipient was already answered 250: the mail is stored.
		fmt.Fprintf(os.Stderr, "pushmail deliver: QUIT: %v\n", err)
	}
	if len(rejected) == 0 {
		return nil
	}
	// Temporary beats permanent: the MTA retries and may yet deliver.
	code := exNoUser
	for _, e := range rejected {
		var se *smtp.SMTPError
		if errors.As(e, &se) && se.Temporary() {
			code = exTempFail
		} else if errors.As(e, &se) && code != exTempFail && se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
			code = exUnavailable
		}
	}
	return &exitError{code, fmt.Errorf("not delivered: %w", errors.Join(rejected...))}
}

// replyExit maps an LMTP error outside the per-recipient replies.
func replyExit(stage string, err error) error {
	var se *smtp.SMTPError
	if errors.As(err, &se) && !se.Temporary() {
		return &exitError{exUnavailable, fmt.Errorf("%s: %w", stage, err)}
	}
	return &exitError{exTempFail, fmt.Errorf("%s: %w", stage, err)}
}
