package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"pushmail/mailstore"
)

// TestUserQuotaCommand: "pushmail user quota" shows and sets a user's
// limits, and the usage it prints is the store's, after a delivery the
// new limit then refuses.
func TestUserQuotaCommand(t *testing.T) {
	data := t.TempDir()
	if code, _, stderr := runCLI(t, "pw\n", "user", "add", "u@localhost", "--data", data, "--password-stdin"); code != 0 {
		t.Fatalf("user add: %s", stderr)
	}
	steps := []struct {
		name       string
		args       []string
		wantCode   int
		wantStdout string
		wantStderr string
	}{
		{"show, no limits", []string{"user", "quota", "u@localhost", "--data", data}, 0,
			"u@localhost: storage 0 of unlimited bytes, messages 0 of unlimited\n", ""},
		{"set both", []string{"user", "quota", "U@Localhost", "--storage", "1M", "--messages", "100", "--data", data}, 0,
			"u@localhost: storage 0 of 1048576 bytes, messages 0 of 100\n", ""},
		{"set one, keep the other", []string{"user", "quota", "--data", data, "--messages", "none", "u@localhost"}, 0,
			"u@localhost: storage 0 of 1048576 bytes, messages 0 of unlimited\n", ""},
		{"set in bytes", []string{"user", "quota", "u@localhost", "--storage", "100", "--data", data}, 0,
			"u@localhost: storage 0 of 100 bytes, messages 0 of unlimited\n", ""},
		{"negative", []string{"user", "quota", "u@localhost", "--storage", "-1", "--data", data}, 1, "", "not a limit"},
		{"not a number", []string{"user", "quota", "u@localhost", "--messages", "lots", "--data", data}, 1, "", "not a limit"},
		{"unknown user", []string{"user", "quota", "x@localhost", "--data", data}, 1, "", "no such user"},
		{"no address", []string{"user", "quota", "--data", data}, 2, "", "want exactly one ADDRESS"},
		{"no data", []string{"user", "quota", "u@localhost", "--data", filepath.Join(data, "nope")}, 1, "", "no pushmail data"},
	}
	for _, st := range steps {
		code, stdout, stderr := runCLI(t, "", st.args...)
		if code != st.wantCode || stdout != st.wantStdout || !strings.Contains(stderr, st.wantStderr) {
			t.Errorf("%s: pushmail %s = exit %d, stdout %q, stderr %q; want exit %d, stdout %q, stderr containing %q",
				st.name, strings.Join(st.args, " "), code, stdout, stderr, st.wantCode, st.wantStdout, st.wantStderr)
		}
	}

	// The limit set above (100 bytes) holds in the store: a 50-byte
	// message fits, a second one does not, and the usage shows.
	ctx := context.Background()
	store, err := mailstore.Open(ctx, filepath.Join(data, dbFile), mailstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	r, err := store.Resolve(ctx, "u@localhost")
	if err != nil {
		t.Fatal(err)
	}
	msg := []byte("Subject: q\r\n\r\n" + strings.Repeat("x", 34) + "\r\n") // 50 bytes
	if _, err := store.Deliver(ctx, msg, []mailstore.Recipient{r}); err != nil {
		t.Errorf("first Deliver = %v", err)
	}
	if _, err := store.Deliver(ctx, append(msg, msg...), []mailstore.Recipient{r}); err == nil {
		t.Error("Deliver over the 100-byte quota succeeded")
	}
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI(t, "", "user", "quota", "u@localhost", "--data", data); code != 0 ||
		stdout != "u@localhost: storage 50 of 100 bytes, messages 1 of unlimited\n" {
		t.Errorf("user quota after a delivery = exit %d, %q, %q", code, stdout, stderr)
	}
}
