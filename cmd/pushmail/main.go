// Command pushmail is the pushmail server and its administration tool.
//
//	pushmail serve            run the server
//	pushmail user add|passwd|del|list|quota
//	pushmail alias add|del|list
//	pushmail backup FILE, pushmail restore FILE
//	pushmail store migrate    copy an SQLite store to PostgreSQL
//	pushmail bench MODE       measure a server (package internal/bench)
//	pushmail wait --user U    wait for a matching message (a JMAP client)
//	pushmail version
//
// Run "pushmail help" or "pushmail COMMAND --help" for details.
//
// This package is the command line and its wiring only: flags and the
// configuration file, building smtpd, imapd, mailstore and notify with
// plain constructors and running them (serve.go), and the administration
// commands. It holds no protocol, storage or parsing logic, and of the
// bench sub-command only its flags (benchcmd.go); TestImportGraph and
// TestBenchHarnessOutside keep it so.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// errHelp is returned when --help was asked for: exit status 0.
var errHelp = flag.ErrHelp

// errUsage marks a command-line mistake: the message was printed with the
// usage text, and the exit status is 2.
var errUsage = errors.New("usage")

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// command is one sub-command.
type command struct {
	name    string
	summary string
	run     func(args []string, stdin io.Reader, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"serve", "run the mail server (SMTP, LMTP, submission, IMAP)", runServe},
		{"user", "manage users: add, passwd, del, list, quota", runUser},
		{"alias", "manage aliases: add, del, list", runAlias},
		{"config", "check a configuration file and print the effective configuration", runConfig},
		{"mailbox", "list a user's mailboxes", runMailbox},
		{"stats", "count users, mailboxes, messages and bytes in the store", runStats},
		{"backup", "write a consistent copy of the store while it serves", runBackup},
		{"restore", "replace the store of a stopped server with a backup", runRestore},
		{"store", "migrate: copy a stopped server's SQLite store to PostgreSQL, verified", runStore},
		{"deliver", "hand a message on stdin to the running server over LMTP (an LDA)", runDeliver},
		{"bench", "measure push latency, ingest, idle sessions and large mailboxes", runBench},
		{"wait", "wait for a matching message to arrive (JMAP event source), print it", runWait},
		{"vapid", "print the server's Web Push (VAPID) public key", runVAPID},
		{"version", "print the version", runVersion},
	}
}

// run executes one invocation and returns the process exit status.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" || args[0] == "-help" {
		printUsage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name != args[0] {
			continue
		}
		err := c.run(args[1:], stdin, stdout, stderr)
		var exit *exitError
		switch {
		case err == nil:
			return 0
		case errors.Is(err, flag.ErrHelp):
			return 0
		case errors.As(err, &exit):
			fmt.Fprintf(stderr, "pushmail %s: %v\n", c.name, exit.err)
			return exit.code
		case errors.Is(err, errUsage):
			return 2
		default:
			fmt.Fprintf(stderr, "pushmail %s: %v\n", c.name, err)
			return 1
		}
	}
	fmt.Fprintf(stderr, "pushmail: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return 2
}

func printUsage(w io.Writer) {
	fmt.Fprintln(w, "pushmail: a push email server (SMTP/LMTP in, SQLite store, IMAP IDLE out).")
	fmt.Fprintln(w, "\nUsage: pushmail COMMAND [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun \"pushmail COMMAND --help\" for a command's flags.")
}

func runVersion(args []string, _ io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("version", "", stderr)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "pushmail %s\n", version)
	return nil
}

// newFlagSet returns a flag set that reports errors instead of exiting.
func newFlagSet(name, argsUsage string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("pushmail "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: pushmail %s [flags] %s\n\nFlags:\n", name, argsUsage)
		fs.PrintDefaults()
	}
	return fs
}

// parseFlags parses args, allowing flags before and after positional
// arguments ("user add --data d a@b" and "user add a@b --data d").
func parseFlags(fs *flag.FlagSet, args []string) error {
	var positional []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return errUsage
		}
		args = fs.Args()
		if len(args) == 0 {
			break
		}
		positional = append(positional, args[0])
		args = args[1:]
	}
	// Re-parse with no flags left so fs.Args() returns the positionals.
	return fs.Parse(append([]string{"--"}, positional...))
}

// envDefault returns the environment variable's value, or def if unset.
func envDefault(name, def string) string {
	if v, ok := os.LookupEnv(name); ok {
		return v
	}
	return def
}
