package main

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// runCLI runs the command line in-process and returns exit status and output.
func runCLI(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = run(args, strings.NewReader(stdin), &out, &errb)
	return code, out.String(), errb.String()
}

func TestUserCommands(t *testing.T) {
	data := t.TempDir()
	steps := []struct {
		name       string
		stdin      string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"list before any user", "", []string{"user", "list", "--data", filepath.Join(data, "nope")}, 1, "", "no pushmail data"},
		{"add", "s3cret\n", []string{"user", "add", "Alice@Localhost", "--data", data, "--password-stdin"}, 0, "added alice@localhost\n", ""},
		{"add with flags first", "pw\n", []string{"user", "add", "--data", data, "--password-stdin", "bob@example.org"}, 0, "added bob@example.org\n", ""},
		{"add duplicate", "pw\n", []string{"user", "add", "alice@localhost", "--data", data, "--password-stdin"}, 1, "", "already exists"},
		{"add bad address", "pw\n", []string{"user", "add", "not-an-address", "--data", data, "--password-stdin"}, 1, "", "invalid address"},
		{"add empty password", "\n", []string{"user", "add", "carol@localhost", "--data", data, "--password-stdin"}, 1, "", "empty password"},
		{"add without tty or --password-stdin", "pw\n", []string{"user", "add", "carol@localhost", "--data", data}, 1, "", "--password-stdin"},
		{"add without address", "", []string{"user", "add", "--data", data}, 2, "", "exactly one ADDRESS"},
		{"list", "", []string{"user", "list", "--data", data}, 0, "alice@localhost\nbob@example.org\n", ""},
		{"passwd", "new\n", []string{"user", "passwd", "alice@localhost", "--data", data, "--password-stdin"}, 0, "password changed for alice@localhost\n", ""},
		{"passwd unknown", "new\n", []string{"user", "passwd", "zed@localhost", "--data", data, "--password-stdin"}, 1, "", "no such user"},
		{"del", "", []string{"user", "del", "bob@example.org", "--data", data}, 0, "deleted bob@example.org\n", ""},
		{"list after del", "", []string{"user", "list", "--data", data}, 0, "alice@localhost\n", ""},
		{"unknown sub-command", "", []string{"user", "frobnicate"}, 2, "", "unknown sub-command"},
		{"unknown flag", "", []string{"user", "list", "--bogus"}, 2, "", "flag provided but not defined"},
	}
	for _, st := range steps {
		code, stdout, stderr := runCLI(t, st.stdin, st.args...)
		if code != st.wantCode || (st.wantStdout != "" && stdout != st.wantStdout) || !strings.Contains(stderr, st.wantStderr) {
			t.Errorf("%s: pushmail %s = exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
				st.name, strings.Join(st.args, " "), code, stdout, stderr, st.wantCode, st.wantStdout, st.wantStderr)
		}
	}
}

func TestHelpAndVersion(t *testing.T) {
	for _, args := range [][]string{{"--help"}, {"help"}, {"serve", "--help"}, {"user", "--help"}, {"user", "add", "--help"}, {"version", "--help"}, {"config", "--help"}} {
		code, stdout, stderr := runCLI(t, "", args...)
		if code != 0 || !strings.Contains(stdout+stderr, "Usage") {
			t.Errorf("pushmail %s = exit %d, output %q; want exit 0 and a usage text", strings.Join(args, " "), code, stdout+stderr)
		}
	}
	if code, stdout, _ := runCLI(t, "", "version"); code != 0 || !strings.HasPrefix(stdout, "pushmail ") {
		t.Errorf("pushmail version = %d, %q", code, stdout)
	}
	if code, _, stderr := runCLI(t, "", "frobnicate"); code != 2 || !strings.Contains(stderr, "unknown command") {
		t.Errorf("pushmail frobnicate = %d, %q; want 2 and 'unknown command'", code, stderr)
	}
	if code, _, _ := runCLI(t, ""); code != 2 {
		t.Errorf("pushmail with no command = %d, want 2", code)
	}
	for _, flag := range []string{"--data", "--domain", "--smtp", "--lmtp", "--submission", "--imap", "--imaps", "--http", "--config", "--dev-tls", "PUSHMAIL_DATA", "PUSHMAIL_SMTP"} {
		_, _, stderr := runCLI(t, "", "serve", "--help")
		if !strings.Contains(stderr, strings.TrimPrefix(flag, "--")) {
			t.Errorf("serve --help does not mention %s", flag)
		}
	}
}

func TestConfigPrecedence(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pushmail.toml")
	os.WriteFile(file, []byte(`
data = "/from/file"
hostname = "file.example"
domains = ["file.example", "other.example"]
[listen]
smtp = "127.0.0.1:2026"
imap = ""
[limits]
max_recipients = 7
smtp_timeout = "90s"
max_store_bytes = 1048576
`), 0o600)

	env := map[string]string{"PUSHMAIL_HOSTNAME": "env.example", "PUSHMAIL_SMTP": "127.0.0.1:3000", "PUSHMAIL_DOMAIN": "env.example", "PUSHMAIL_MAX_STORE_BYTES": "2097152"}
	c, err := loadConfig(file, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil {
		t.Fatal(err)
	}
	fs := newFlagSet("serve", "", &bytes.Buffer{})
	_, apply := configFlags(fs)
	if err := parseFlags(fs, []string{"--smtp", "127.0.0.1:4000", "--domain", "a.example", "--domain", "b.example"}); err != nil {
		t.Fatal(err)
	}
	if err := apply(&c); err != nil {
		t.Fatal(err)
	}
	checks := []struct{ name, got, want string }{
		{"default (nothing overrides)", c.Listen.LMTP, "127.0.0.1:2424"},
		{"file over default", c.Data, "/from/file"},
		{"file turns a listener off", c.Listen.IMAP, ""},
		{"env over file", c.Hostname, "env.example"},
		{"flag over env over file", c.Listen.SMTP, "127.0.0.1:4000"},
		{"repeated flag accumulates, over env", strings.Join(c.Domains, ","), "a.example,b.example"},
		{"file int", formatValue(&c.Limits.MaxRecipients), "7"},
		{"file duration", c.Limits.SMTPTimeout.String(), (90 * time.Second).String()},
		{"env int64 over file", formatValue(&c.Limits.MaxStoreBytes), "2097152"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s: got %q, want %q", ch.name, ch.got, ch.want)
		}
	}
	if err := c.validate(); err != nil {
		t.Errorf("validate() = %v", err)
	}
}

func TestConfigErrors(t *testing.T) {
	dir := t.TempDir()
	cases := []struct{ name, toml, want string }{
		{"unknown key", "dta = \"x\"\n", "unknown key(s): dta"},
		{"unknown nested key", "[listen]\nsmpt = \"x\"\n", "listen.smpt"},
		{"wrong type", "[limits]\nmax_recipients = \"many\"\n", "max_recipients"},
		{"bad syntax", "data = \n", "config"},
		{"invalid value", "[log]\nformat = \"xml\"\n", "log.format"},
		{"cert without key", "[tls]\ncert = \"c.pem\"\n", "cert and key go together"},
	}
	for _, tc := range cases {
		file := filepath.Join(dir, strings.ReplaceAll(tc.name, " ", "_")+".toml")
		os.WriteFile(file, []byte(tc.toml), 0o600)
		code, _, stderr := runCLI(t, "", "config", "check", file)
		if code == 0 || !strings.Contains(stderr, tc.want) {
			t.Errorf("%s: config check = exit %d, stderr %q; want failure mentioning %q", tc.name, code, stderr, tc.want)
		}
	}
	t.Setenv("PUSHMAIL_MAX_RECIPIENTS", "lots")
	file := filepath.Join(dir, "ok.toml")
	os.WriteFile(file, []byte("data = \"d\"\n"), 0o600)
	if code, _, stderr := runCLI(t, "", "config", "check", file); code == 0 || !strings.Contains(stderr, "PUSHMAIL_MAX_RECIPIENTS") {
		t.Errorf("bad env value: exit %d, stderr %q", code, stderr)
	}
}

func TestConfigCheckPrintsEffectiveConfigWithSecretsMasked(t *testing.T) {
	file := filepath.Join(t.TempDir(), "p.toml")
	os.WriteFile(file, []byte("hostname = \"mx.example\"\n[http]\ntoken = \"hunter2\"\n"), 0o600)
	t.Setenv("PUSHMAIL_IMAP", "0.0.0.0:143")
	code, stdout, stderr := runCLI(t, "", "config", "check", file)
	if code != 0 {
		t.Fatalf("config check = %d, %s", code, stderr)
	}
	for _, want := range []string{`hostname = "mx.example"`, `imap = "0.0.0.0:143"`, `smtp = "127.0.0.1:2525"`, `token = "********"`} {
		if !strings.Contains(stdout, want) {
			t.Errorf("config check output lacks %s:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "hunter2") {
		t.Errorf("config check printed the secret token:\n%s", stdout)
	}
	// The sample file in the repository is valid and complete.
	for _, f := range []string{"../../pushmail.sample.toml", "../../deploy/pushmail.toml"} {
		if code, _, stderr := runCLI(t, "", "config", "check", f); code != 0 {
			t.Errorf("config check %s = %d: %s", f, code, stderr)
		}
	}
}
