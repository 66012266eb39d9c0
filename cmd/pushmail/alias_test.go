package main

import (
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/emersion/go-smtp"
)

func TestAliasCommands(t *testing.T) {
	data := t.TempDir()
	for _, u := range []string{"u@localhost", "v@example.org"} {
		if code, _, stderr := runCLI(t, "pw\n", "user", "add", u, "--data", data, "--password-stdin"); code != 0 {
			t.Fatalf("user add %s: %s", u, stderr)
		}
	}
	steps := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"list before any data", []string{"alias", "list", "--data", filepath.Join(data, "nope")}, 1, "", "no pushmail data"},
		{"list empty", []string{"alias", "list", "--data", data}, 0, "", ""},
		{"add", []string{"alias", "add", "Sales@Localhost", "U@localhost", "--data", data}, 0, "added alias sales@localhost -> u@localhost\n", ""},
		{"add with flags first", []string{"alias", "add", "--data", data, "abuse@localhost", "v@example.org"}, 0, "added alias abuse@localhost -> v@example.org\n", ""},
		{"add in a new domain", []string{"alias", "add", "info@new.example", "u@localhost", "--data", data}, 0, "added alias info@new.example -> u@localhost\n", "new.example was not the domain of any user or alias"},
		{"add existing alias", []string{"alias", "add", "sales@localhost", "v@example.org", "--data", data}, 1, "", "alias sales@localhost already exists (-> u@localhost)"},
		{"add over a user", []string{"alias", "add", "v@example.org", "u@localhost", "--data", data}, 1, "", "v@example.org is a user's address"},
		{"add to unknown user", []string{"alias", "add", "x@localhost", "nobody@localhost", "--data", data}, 1, "", "no such user: nobody@localhost"},
		{"add to an alias", []string{"alias", "add", "x@localhost", "sales@localhost", "--data", data}, 1, "", "sales@localhost is an alias (-> u@localhost), not a user"},
		{"add bad address", []string{"alias", "add", "not-an-address", "u@localhost", "--data", data}, 1, "", "invalid address"},
		{"add one argument", []string{"alias", "add", "x@localhost", "--data", data}, 2, "", "want 2 argument(s): ALIAS USER"},
		{"list sorted", []string{"alias", "list", "--data", data}, 0,
			"abuse@localhost -> v@example.org\ninfo@new.example -> u@localhost\nsales@localhost -> u@localhost\n", ""},
		{"del unknown", []string{"alias", "del", "x@localhost", "--data", data}, 1, "", "no such alias: x@localhost"},
		{"del a user", []string{"alias", "del", "u@localhost", "--data", data}, 1, "", "u@localhost is a user, not an alias"},
		{"del", []string{"alias", "del", "--data", data, "SALES@localhost"}, 0, "deleted alias sales@localhost\n", ""},
		{"list after del", []string{"alias", "list", "--data", data}, 0, "abuse@localhost -> v@example.org\ninfo@new.example -> u@localhost\n", ""},
		{"list with an argument", []string{"alias", "list", "x@localhost", "--data", data}, 2, "", "want 0 argument(s)"},
		{"no sub-command", []string{"alias"}, 2, "", "Usage: pushmail alias"},
		{"help", []string{"alias", "--help"}, 0, "", "Usage: pushmail alias"},
		{"unknown sub-command", []string{"alias", "frobnicate"}, 2, "", "unknown sub-command"},
		{"unknown flag", []string{"alias", "list", "--bogus"}, 2, "", "flag provided but not defined"},
	}
	for _, st := range steps {
		code, stdout, stderr := runCLI(t, "", st.args...)
		if code != st.wantCode || stdout != st.wantStdout || !strings.Contains(stderr, st.wantStderr) {
			t.Errorf("%s: pushmail %s = exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
				st.name, strings.Join(st.args, " "), code, stdout, stderr, st.wantCode, st.wantStdout, st.wantStderr)
		}
	}
	// Deleting the user takes its aliases with it.
	if code, _, stderr := runCLI(t, "", "user", "del", "v@example.org", "--data", data); code != 0 {
		t.Fatal(stderr)
	}
	if code, stdout, _ := runCLI(t, "", "alias", "list", "--data", data); code != 0 || stdout != "info@new.example -> u@localhost\n" {
		t.Errorf("alias list after user del = %d, %q", code, stdout)
	}
}

// TestAliasDelivers adds an alias while the server runs (no restart, no
// lock) and sends mail to it over SMTP: it lands in the user's INBOX.
func TestAliasDelivers(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	srv := startServer(t, data)
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")
	if out := cli(t, "", "alias", "add", "hello@localhost", "alice@localhost", "--data", data); out != "added alias hello@localhost -> alice@localhost\n" {
		t.Errorf("alias add: %q", out)
	}
	sendSMTP(t, srv.addr("smtp"), "hello@localhost", "to the alias")
	sendSMTP(t, srv.addr("smtp"), "Hello+tag@LOCALHOST", "to the alias with a detail")

	c, _ := inbox(t, srv.addr("imap"), "alice@localhost", "secret")
	if got := subjects(t, c); len(got) != 2 || got[1] != "to the alias" || got[2] != "to the alias with a detail" {
		t.Errorf("alice's INBOX = %v, want the two messages sent to her alias", got)
	}

	// Once deleted, the alias is an unknown recipient: 550 5.1.1. (Not
	// postmaster@: that one always has somewhere to go, RFC 5321 §4.5.1.)
	cli(t, "", "alias", "del", "hello@localhost", "--data", data)
	sc, err := smtp.Dial(srv.addr("smtp"))
	if err != nil {
		t.Fatal(err)
	}
	if err := sc.Mail("s@example.org", nil); err != nil {
		t.Fatal(err)
	}
	var se *smtp.SMTPError
	if err := sc.Rcpt("hello@localhost", nil); !errors.As(err, &se) || se.Code != 550 || se.EnhancedCode != (smtp.EnhancedCode{5, 1, 1}) {
		t.Errorf("RCPT to a deleted alias = %v, want 550 5.1.1", err)
	}
	sc.Close() // an open SMTP session would make the stop wait for it
	c.Close()
	if err := srv.stop(t); err != nil {
		t.Errorf("serve after SIGTERM: %v", err)
	}
}
