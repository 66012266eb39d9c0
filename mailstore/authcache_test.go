package mailstore

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestAuthenticateRemembers: a verified password is accepted again (from
// the cache) and a wrong one still refused; a password change makes the
// old password fail at once, however recently it was verified; a deleted
// user cannot log in with a remembered password.
func TestAuthenticateRemembers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	addUser(t, s, "u@localhost") // password "secret"
	auth := func(password string) error {
		t.Helper()
		_, err := s.Authenticate(ctx, "u@localhost", password)
		return err
	}
	for i := range 3 {
		if err := auth("secret"); err != nil {
			t.Fatalf("Authenticate #%d = %v", i+1, err)
		}
	}
	if err := auth("Secret"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("Authenticate with a wrong password after a right one = %v, want ErrAuthFailed", err)
	}
	if err := s.SetPassword(ctx, "u@localhost", "new"); err != nil {
		t.Fatal(err)
	}
	if err := auth("secret"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("Authenticate with the old password after SetPassword = %v, want ErrAuthFailed", err)
	}
	if err := auth("new"); err != nil {
		t.Errorf("Authenticate with the new password = %v", err)
	}
	if err := auth("new"); err != nil {
		t.Errorf("Authenticate with the new password again = %v", err)
	}
	if err := s.DeleteUser(ctx, "u@localhost"); err != nil {
		t.Fatal(err)
	}
	if err := auth("new"); !errors.Is(err, ErrAuthFailed) {
		t.Errorf("Authenticate of a deleted user = %v, want ErrAuthFailed", err)
	}
}

// TestAuthCache: entries match their hash and password only, expire
// after authCacheTTL, and stay within authCacheMax.
func TestAuthCache(t *testing.T) {
	t.Parallel()
	var c authCache
	now := time.Unix(1_700_000_000, 0)
	c.remember("$2a$04$hashA", "pw", now)
	cases := []struct {
		name         string
		hash, pw     string
		at           time.Duration
		wantVerified bool
	}{
		{"same", "$2a$04$hashA", "pw", time.Minute, true},
		{"other password", "$2a$04$hashA", "pw2", time.Minute, false},
		{"other hash", "$2a$04$hashB", "pw", time.Minute, false},
		{"run together", "$2a$04$hashAp", "w", time.Minute, false},
		{"expired", "$2a$04$hashA", "pw", authCacheTTL, false},
	}
	for _, tc := range cases {
		if got := c.verified(tc.hash, tc.pw, now.Add(tc.at)); got != tc.wantVerified {
			t.Errorf("%s: verified = %v, want %v", tc.name, got, tc.wantVerified)
		}
	}
	for i := range authCacheMax + 10 {
		c.remember("h", string(rune(i+1000)), now)
	}
	if n := len(c.entries); n > authCacheMax {
		t.Errorf("%d entries, want at most %d", n, authCacheMax)
	}
}
