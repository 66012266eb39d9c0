package main

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestStoreLocation(t *testing.T) {
	cases := []struct {
		name, data, store string
		want              string // "" with wantErr
		wantErr           string
	}{
		{name: "default: the file in the data directory", data: "/var/lib/pushmail", store: "", want: "/var/lib/pushmail/pushmail.db"},
		{name: "default, relative data directory", data: "./pushmail-data", store: "", want: "pushmail-data/pushmail.db"},
		{name: "sqlite: absolute", data: "/d", store: "sqlite:/srv/mail/store.db", want: "/srv/mail/store.db"},
		{name: "sqlite: relative, to the working directory", data: "/d", store: "sqlite:store.db", want: "store.db"},
		{name: "bare path", data: "/d", store: "/srv/mail/store.db", want: "/srv/mail/store.db"},
		{name: "bare relative path", data: "/d", store: "mail.db", want: "mail.db"},
		{name: "postgres URL as it is", data: "/d", store: "postgres://pushmail:pw@db.example:5432/mail?sslmode=verify-full", want: "postgres://pushmail:pw@db.example:5432/mail?sslmode=verify-full"},
		{name: "postgresql scheme", data: "/d", store: "postgresql://db.example/mail", want: "postgresql://db.example/mail"},
		{name: "scheme in capitals", data: "/d", store: "POSTGRES://db.example/mail", want: "POSTGRES://db.example/mail"},
		{name: "unix socket as host parameter", data: "/d", store: "postgres:///mail?host=/run/postgresql", want: "postgres:///mail?host=/run/postgresql"},
		{name: "postgres URL without a host", data: "/d", store: "postgres:///mail", wantErr: "names no host"},
		{name: "sqlite: without a path", data: "/d", store: "sqlite:", wantErr: "want sqlite:PATH"},
		{name: "sqlite:// is not a path", data: "/d", store: "sqlite:///srv/x.db", wantErr: "want sqlite:PATH"},
		{name: "another database", data: "/d", store: "mysql://db.example/mail", wantErr: `unknown kind "mysql"`},
		{name: "no data directory for the default", data: "", store: "", wantErr: "no data directory"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got, err := storeLocation(tc.data, tc.store)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("storeLocation(%q, %q) = %q, %v; want error containing %q", tc.data, tc.store, got, err, tc.wantErr)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("storeLocation(%q, %q) = %q, %v; want %q", tc.data, tc.store, got, err, tc.want)
			}
		})
	}
}

// TestStoreLocationKeepsPasswordsOut: an error about a PostgreSQL URL
// never repeats its password.
func TestStoreLocationKeepsPasswordsOut(t *testing.T) {
	for _, store := range []string{
		"postgres://u:hunter2@/mail",      // no host
		"postgres://u:hunter2@h:bad/mail", // port does not parse
	} {
		_, err := storeLocation("/d", store)
		if err == nil {
			t.Errorf("storeLocation(%q) = nil error, want one", store)
			continue
		}
		if strings.Contains(err.Error(), "hunter2") {
			t.Errorf("storeLocation(%q) error %q shows the password", store, err)
		}
	}
}

// TestBackupAndRestoreRefusePostgres: both copy SQLite files, so on a
// PostgreSQL store they fail, point at pg_dump/pg_restore, hide the
// password, and touch nothing (no database is needed to see this).
func TestBackupAndRestoreRefusePostgres(t *testing.T) {
	const url = "postgres://pushmail:hunter2@127.0.0.1:1/mail?sslmode=disable"
	for _, tc := range []struct {
		name string
		args []string
		env  bool // the URL from PUSHMAIL_STORE instead of --store
		want string
	}{
		{"backup --store", []string{"backup", "--store", url}, false, "pg_dump"},
		{"backup, PUSHMAIL_STORE", []string{"backup"}, true, "pg_dump"},
		{"restore --store", []string{"restore", "--store", url}, false, "pg_restore"},
		{"restore, PUSHMAIL_STORE", []string{"restore"}, true, "pg_restore"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			data := filepath.Join(t.TempDir(), "data")
			file := filepath.Join(t.TempDir(), "backup.db")
			if tc.env {
				t.Setenv("PUSHMAIL_STORE", url)
			}
			args := append(append([]string(nil), tc.args...), "--data", data, file)
			code, stdout, stderr := runCLI(t, "", args...)
			if code != 1 {
				t.Errorf("pushmail %s: exit %d, want 1\nstdout: %s\nstderr: %s", tc.name, code, stdout, stderr)
			}
			for _, want := range []string{tc.want, "PostgreSQL", "127.0.0.1:1/mail"} {
				if !strings.Contains(stderr, want) {
					t.Errorf("stderr %q lacks %q", stderr, want)
				}
			}
			if strings.Contains(stderr, "hunter2") || strings.Contains(stdout, "hunter2") {
				t.Errorf("output shows the password: %s%s", stdout, stderr)
			}
			for _, p := range []string{data, file} {
				if _, err := os.Stat(p); !errors.Is(err, os.ErrNotExist) {
					t.Errorf("%s exists after the refusal (err %v)", p, err)
				}
			}
		})
	}
}

// TestServeStoreLimits: the SQLite file's limits pass through; on
// PostgreSQL they are off, with one warning when the operator set one.
func TestServeStoreLimits(t *testing.T) {
	set := LimitsConfig{MaxStoreBytes: 1 << 30, MinFreeBytes: DefaultMinFreeBytes}
	for _, tc := range []struct {
		name          string
		location      string
		limits        LimitsConfig
		wantMax       int64
		wantFree      int64
		wantWarnLines int
	}{
		{"sqlite", "/d/pushmail.db", set, 1 << 30, DefaultMinFreeBytes, 0},
		{"postgres, limits set", "postgres://db.example/mail", set, 0, 0, 1},
		{"postgres, limits off", "postgres://db.example/mail", LimitsConfig{}, 0, 0, 0},
		{"postgres, default reserve", "postgres://db.example/mail", LimitsConfig{MinFreeBytes: DefaultMinFreeBytes}, 0, 0, 0},
		{"postgres, reserve set", "postgres://db.example/mail", LimitsConfig{MinFreeBytes: 1 << 30}, 0, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var log bytes.Buffer
			logger := slog.New(slog.NewTextHandler(&log, nil))
			gotMax, gotFree := serveStoreLimits(tc.location, tc.limits, logger)
			if gotMax != tc.wantMax || gotFree != tc.wantFree {
				t.Errorf("serveStoreLimits(%q) = %d, %d; want %d, %d", tc.location, gotMax, gotFree, tc.wantMax, tc.wantFree)
			}
			if n := strings.Count(log.String(), "level=WARN"); n != tc.wantWarnLines {
				t.Errorf("%d WARN lines, want %d:\n%s", n, tc.wantWarnLines, log.String())
			}
		})
	}
}

// TestStoreSetting: store comes from the file, PUSHMAIL_STORE or --store
// like every setting, is checked by validate, and config check hides a
// URL's password.
func TestStoreSetting(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "pushmail.toml")
	if err := os.WriteFile(file, []byte("store = \"sqlite:/from/file.db\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := loadConfig(file, func(string) (string, bool) { return "", false })
	if err != nil || c.Store != "sqlite:/from/file.db" {
		t.Fatalf("loadConfig: store = %q, %v; want the file's", c.Store, err)
	}
	env := map[string]string{"PUSHMAIL_STORE": "postgres://env.example/mail"}
	c, err = loadConfig(file, func(k string) (string, bool) { v, ok := env[k]; return v, ok })
	if err != nil || c.Store != "postgres://env.example/mail" {
		t.Fatalf("loadConfig with PUSHMAIL_STORE: store = %q, %v; want the environment's", c.Store, err)
	}
	fs := newFlagSet("serve", "", &bytes.Buffer{})
	_, apply := configFlags(fs)
	if err := parseFlags(fs, []string{"--store", "postgres://flag.example/mail"}); err != nil {
		t.Fatal(err)
	}
	if err := apply(&c); err != nil || c.Store != "postgres://flag.example/mail" {
		t.Fatalf("--store: store = %q, %v; want the flag's", c.Store, err)
	}
	if err := c.validate(); err != nil {
		t.Errorf("validate() = %v", err)
	}
	c.Store = "mysql://db/mail"
	if err := c.validate(); err == nil || !strings.Contains(err.Error(), "mysql") {
		t.Errorf("validate() with a mysql:// store = %v, want an error naming it", err)
	}

	if err := os.WriteFile(file, []byte("store = \"postgres://pushmail:hunter2@db.example/mail\"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// The file's URL, not one from the caller's environment: Setenv
	// restores it afterwards, Unsetenv takes it away for this test.
	t.Setenv("PUSHMAIL_STORE", "")
	os.Unsetenv("PUSHMAIL_STORE")
	code, stdout, stderr := runCLI(t, "", "config", "check", file)
	if code != 0 {
		t.Fatalf("config check = %d: %s", code, stderr)
	}
	if strings.Contains(stdout, "hunter2") || !strings.Contains(stdout, `store = "postgres://pushmail:xxxxx@db.example/mail"`) {
		t.Errorf("config check shows the store as:\n%s", stdout)
	}
}

// TestUserCommandsOnStorePath: --store sqlite:PATH puts the store there,
// not in the data directory, and the other commands find it there.
func TestUserCommandsOnStorePath(t *testing.T) {
	data := filepath.Join(t.TempDir(), "data")
	path := filepath.Join(t.TempDir(), "elsewhere", "mail.db")
	if code, _, stderr := runCLI(t, "pw\n", "user", "add", "a@localhost", "--password-stdin", "--data", data, "--store", "sqlite:"+path); code != 0 {
		t.Fatalf("user add --store sqlite:PATH = %d: %s", code, stderr)
	}
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("no store at %s: %v", path, err)
	}
	if _, err := os.Stat(filepath.Join(data, dbFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("%s exists (err %v): the store went to the data directory", filepath.Join(data, dbFile), err)
	}
	t.Setenv("PUSHMAIL_STORE", path) // a bare path, from the environment
	code, stdout, stderr := runCLI(t, "", "user", "list", "--data", data)
	if code != 0 || strings.TrimSpace(stdout) != "a@localhost" {
		t.Errorf("user list with PUSHMAIL_STORE = %d, %q, %s; want a@localhost", code, stdout, stderr)
	}
	// A store that is not there is an error, not a new empty store.
	missing := filepath.Join(t.TempDir(), "missing.db")
	if code, _, _ := runCLI(t, "", "user", "list", "--data", data, "--store", missing); code == 0 {
		t.Error("user list on a missing --store file succeeded")
	}
	if _, err := os.Stat(missing); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("user list made %s (err %v)", missing, err)
	}
}

// TestLockStoreDir: an SQLite store outside the data directory has its
// directory locked too; in the data directory, or on PostgreSQL, nothing
// more is locked.
func TestLockStoreDir(t *testing.T) {
	data := t.TempDir()
	for _, loc := range []string{filepath.Join(data, dbFile), "postgres://db.example/mail"} {
		l, err := lockStoreDir(data, loc, "serve")
		if err != nil || l != nil {
			t.Errorf("lockStoreDir(%q) = %v, %v; want no lock", loc, l, err)
		}
	}
	elsewhere := filepath.Join(t.TempDir(), "mail.db")
	l, err := lockStoreDir(data, elsewhere, "serve")
	if err != nil || l == nil {
		t.Fatalf("lockStoreDir(%q) = %v, %v; want a lock", elsewhere, l, err)
	}
	defer l.Close()
	other := t.TempDir()
	if l2, err := lockStoreDir(other, elsewhere, "serve"); !errors.Is(err, errDataLocked) {
		if l2 != nil {
			l2.Close()
		}
		t.Errorf("second lockStoreDir from another data directory = %v, want errDataLocked", err)
	}
}
