package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"time"

	"pushmail/jmap"
)

// runWait is "pushmail wait": the flags of jmap.Wait, for test scripts
// that wait for the mail they triggered (swaks …; pushmail wait …).
func runWait(args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	fs := newFlagSet("wait", "", stderr)
	user := fs.String("user", "", "the account to watch (required)")
	passwordStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input (default: env PUSHMAIL_PASSWORD)")
	to := fs.String("to", "", "the message's To must contain this")
	from := fs.String("from", "", "the message's From must contain this")
	subject := fs.String("subject", "", "the message's Subject must contain this")
	since := fs.Duration("since", 0, "also accept a message received this long before the wait started")
	timeout := fs.Duration("timeout", 30*time.Second, "give up (exit 1) after this long")
	raw := fs.Bool("raw", false, "print the message as stored (RFC 5322) instead of JSON")
	server := fs.String("server", envDefault("PUSHMAIL_SERVER", "http://127.0.0.1:8025"), "the server's HTTP API base URL (env PUSHMAIL_SERVER)")
	fs.Usage = func() {
		fmt.Fprintln(stderr, `Usage: pushmail wait --user USER [--password-stdin] [--to ADDR] [--from ADDR]
                     [--subject TEXT] [--since DURATION] [--timeout 30s] [--raw] [--server URL]

Blocks on the server's JMAP event source until the account holds a message
matching every filter given, received after the wait started (or within
--since before it), then prints it as JSON (--raw: as RFC 5322) and exits 0.
Exits 1 when --timeout passes first, 75 when the server cannot be asked.

Flags:`)
		fs.PrintDefaults()
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if *user == "" || fs.NArg() != 0 {
		fs.Usage()
		return errUsage
	}
	password, ok := os.LookupEnv("PUSHMAIL_PASSWORD")
	if *passwordStdin {
		line, err := bufio.NewReader(stdin).ReadString('\n')
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("read password: %w", err)
		}
		password, ok = strings.TrimRight(line, "\r\n"), true
	}
	if !ok {
		fmt.Fprintln(stderr, "pushmail wait: give the password with --password-stdin or PUSHMAIL_PASSWORD")
		return errUsage
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	ctx, cancel := context.WithTimeout(ctx, *timeout)
	defer cancel()
	res, err := jmap.Wait(ctx, jmap.WaitOptions{Server: *server, User: *user, Password: password,
		To: *to, From: *from, Subject: *subject, Since: *since,
		Waiting: func() {
			fmt.Fprintf(stderr, "pushmail wait: waiting up to %s for a message for %s matching %s\n", *timeout, *user, describeFilter(*to, *from, *subject, *since))
		}}, *raw)
	if errors.Is(err, jmap.ErrWaitTimeout) {
		return &exitError{1, fmt.Errorf("timed out after %s: no message for %s matching %s", *timeout, *user, describeFilter(*to, *from, *subject, *since))}
	}
	if err != nil {
		return &exitError{exTempFail, err}
	}
	if *raw {
		_, err = stdout.Write(res.Raw)
		return err
	}
	enc := json.NewEncoder(stdout)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(res.Email)
}

func describeFilter(to, from, subject string, since time.Duration) string {
	var parts []string
	for _, f := range [][2]string{{"to", to}, {"from", from}, {"subject", subject}} {
		if f[1] != "" {
			parts = append(parts, fmt.Sprintf("%s %q", f[0], f[1]))
		}
	}
	if len(parts) == 0 {
		parts = append(parts, "anything")
	}
	s := strings.Join(parts, ", ")
	if since > 0 {
		s += fmt.Sprintf(" (received at most %s before the wait)", since)
	}
	return s
}
