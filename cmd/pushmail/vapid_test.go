package main

import (
	"encoding/base64"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestVAPIDShow: "vapid show" makes the key pair once, in the data
// directory and readable by its owner only, and prints the same public
// key every time: an uncompressed P-256 point, base64url.
func TestVAPIDShow(t *testing.T) {
	data := t.TempDir()
	code, first, stderr := runCLI(t, "", "vapid", "show", "--data", data)
	if code != 0 {
		t.Fatalf("vapid show = %d: %s", code, stderr)
	}
	key, err := base64.RawURLEncoding.DecodeString(strings.TrimSpace(first))
	if err != nil || len(key) != 65 || key[0] != 4 {
		t.Errorf("public key %q: %d bytes, %v; want a 65-byte uncompressed point", first, len(key), err)
	}
	if _, again, _ := runCLI(t, "", "vapid", "show", "--data", data); again != first {
		t.Errorf("second vapid show printed %q, want %q", again, first)
	}
	st, err := os.Stat(filepath.Join(data, vapidFile))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("%s: %v, mode %v; want 0600", vapidFile, err, st.Mode())
	}
	if code, _, _ := runCLI(t, "", "vapid", "rotate", "--data", data); code == 0 {
		t.Error("vapid rotate succeeded; want a usage error")
	}
}
