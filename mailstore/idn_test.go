package mailstore

import (
	"context"
	"database/sql"
	"errors"
	"path/filepath"
	"strings"
	"testing"
)

// TestNormalizeIDN: a domain's U-labels and A-labels give one stored
// form, the A-labels (RFC 5890 §2.3.2.1), and invalid IDNA is refused
// with ErrInvalidIDN inside ErrInvalidAddress.
func TestNormalizeIDN(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"U-label", "info@bücher.example", "info@xn--bcher-kva.example"},
		{"A-label", "info@xn--bcher-kva.example", "info@xn--bcher-kva.example"},
		{"A-label in capitals", "Info@XN--BCHER-KVA.Example", "info@xn--bcher-kva.example"},
		{"U-label in capitals", "info@BÜCHER.example", "info@xn--bcher-kva.example"},
		{"decomposed ü (NFD)", "info@bu\u0308cher.example", "info@xn--bcher-kva.example"},
		{"ideographic full stop", "info@bücher\u3002example", "info@xn--bcher-kva.example"},
		{"non-ASCII local part kept", "Jörg@bücher.example", "jörg@xn--bcher-kva.example"},
		{"non-transitional ß", "a@straße.example", "a@xn--strae-oqa.example"},
		{"CJK", "a@例え.jp", "a@xn--r8jz45g.jp"},
		{"ASCII unchanged", "a_b@Sub_Domain.Example.", "a_b@sub_domain.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeAddress(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, in string }{
		{"bad punycode", "a@xn--zz-.example"},
		{"punycode of ASCII", "a@xn--abc-.example"},
		{"disallowed code point", "a@b\u2028c.example"},
		{"A-label decoding to a disallowed label", "a@xn--a-ecp.example"},
		{"leading combining mark", "a@\u0308bc.example"},
		{"bidi rule", "a@\u05d0a1.example"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeAddress(tc.in)
			if !errors.Is(err, ErrInvalidAddress) || !errors.Is(err, ErrInvalidIDN) {
				t.Errorf("NormalizeAddress(%q) = %q, %v; want ErrInvalidAddress and ErrInvalidIDN", tc.in, got, err)
			}
		})
	}
}

// TestIDNUsersAndAliases: a user added in one form is found, can log in,
// and its domain is local, in the other form; Options.Domains too.
func TestIDNUsersAndAliases(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{Domains: []string{"Müller.example"}})
	u := addUser(t, s, "info@bücher.example")
	if err := s.AddAlias(ctx, "shop@xn--bcher-kva.example", "info@bücher.example"); err != nil {
		t.Fatalf("AddAlias = %v", err)
	}
	for _, addr := range []string{"info@bücher.example", "info@xn--bcher-kva.example", "INFO@XN--BCHER-KVA.EXAMPLE", "shop@bücher.example", "shop@xn--bcher-kva.example", "info+tag@bücher.example"} {
		r, err := s.Resolve(ctx, addr)
		if err != nil || r.User != u.User {
			t.Errorf("Resolve(%s) = user %d, %v; want user %d", addr, r.User, err, u.User)
		}
	}
	if _, err := s.Authenticate(ctx, "info@xn--bcher-kva.example", "secret"); err != nil {
		t.Errorf("Authenticate with the A-label = %v", err)
	}
	if _, err := s.AddUser(ctx, "info@xn--bcher-kva.example", "x"); !errors.Is(err, ErrUserExists) {
		t.Errorf("AddUser of the same address as an A-label = %v, want ErrUserExists", err)
	}
	for _, d := range []string{"bücher.example", "xn--bcher-kva.example", "müller.example", "xn--mller-kva.example"} {
		if ok, err := s.IsLocalDomain(ctx, d); !ok || err != nil {
			t.Errorf("IsLocalDomain(%s) = %v, %v; want true", d, ok, err)
		}
	}
	if _, err := s.Resolve(ctx, "nobody@xn--mller-kva.example"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Resolve(unknown user at a configured IDN domain) = %v, want ErrNoSuchUser", err)
	}
	users, err := s.Users(ctx)
	if err != nil || len(users) != 1 || users[0].Address != "info@xn--bcher-kva.example" {
		t.Errorf("Users() = %v, %v; want the one user stored as info@xn--bcher-kva.example", users, err)
	}
	if err := s.DeleteUser(ctx, "info@xn--bcher-kva.example"); err != nil {
		t.Errorf("DeleteUser with the A-label = %v", err)
	}
}

// rawAddress inserts a user or alias row as an older pushmail wrote it,
// without today's normalisation.
func rawAddress(t *testing.T, s *Store, query string, args ...any) {
	t.Helper()
	if _, err := s.wdb.Exec(query, args...); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
}

// TestMigrationIDN: a file at schema 3 holds a user with an A-label
// domain and an alias, and another user, with U-labels. Opening it
// rewrites the U-label addresses and their domains in A-labels, and
// every form then reaches the right user.
func TestMigrationIDN(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v3.db")
	s := openStoreAt(t, path, Options{})
	a := addUser(t, s, "info@xn--bcher-kva.example")
	// Written by schema 3's normalisation: lower case, U-labels kept.
	rawAddress(t, s, "INSERT INTO aliases(address, domain, user_id) VALUES (?, ?, ?)", "shop@bücher.example", "bücher.example", a.User)
	b := addUser(t, s, "bob@localhost")
	rawAddress(t, s, "UPDATE users SET address = ?, domain = ? WHERE id = ?", "bob@straße.example", "straße.example", b.User)
	rawAddress(t, s, undoSaveDate+undoSchemaBodyText+undoSortKeys+undoSchemaPush+undoAccountLog+undoSchema9+undoSchema8+undoSchema7+undoSchema6+undoSchema5+"PRAGMA user_version = 3")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	s = openStoreAt(t, path, Options{})
	var version int
	if err := s.rdb.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != schemaVersion {
		t.Fatalf("user_version after reopening = %d, %v; want %d", version, err, schemaVersion)
	}
	for _, tc := range []struct {
		query, key, want string
	}{
		{"SELECT address || ' ' || domain FROM aliases WHERE user_id = ?", "alias", "shop@xn--bcher-kva.example xn--bcher-kva.example"},
		{"SELECT address || ' ' || domain FROM users WHERE id = ?", "user a", "info@xn--bcher-kva.example xn--bcher-kva.example"},
		{"SELECT address || ' ' || domain FROM users WHERE id = ?", "user b", "bob@xn--strae-oqa.example xn--strae-oqa.example"},
	} {
		id := a.User
		if tc.key == "user b" {
			id = b.User
		}
		var got string
		if err := s.rdb.QueryRow(tc.query, id).Scan(&got); err != nil || got != tc.want {
			t.Errorf("%s after migration: %q, %v; want %q", tc.key, got, err, tc.want)
		}
	}
	for addr, want := range map[string]UserID{
		"info@bücher.example": a.User, "shop@bücher.example": a.User, "shop@xn--bcher-kva.example": a.User,
		"bob@straße.example": b.User, "bob@xn--strae-oqa.example": b.User,
	} {
		if r, err := s.Resolve(ctx, addr); err != nil || r.User != want {
			t.Errorf("Resolve(%s) after migration = user %d, %v; want %d", addr, r.User, err, want)
		}
	}
}

// TestMigrationIDNConflict: two accounts that are one address under IDNA
// stop the migration with an error naming both; the file stays at
// schema 3, for the previous pushmail to sort out.
func TestMigrationIDNConflict(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "v3.db")
	s := openStoreAt(t, path, Options{})
	addUser(t, s, "info@xn--bcher-kva.example")
	b := addUser(t, s, "other@localhost")
	rawAddress(t, s, "UPDATE users SET address = ?, domain = ? WHERE id = ?", "info@bücher.example", "bücher.example", b.User)
	rawAddress(t, s, undoSaveDate+undoSchemaBodyText+undoSortKeys+undoSchemaPush+undoAccountLog+undoSchema9+undoSchema8+undoSchema7+undoSchema6+undoSchema5+"PRAGMA user_version = 3")
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	_, err := Open(context.Background(), path, Options{})
	if err == nil || !strings.Contains(err.Error(), "info@bücher.example") || !strings.Contains(err.Error(), "info@xn--bcher-kva.example") {
		t.Fatalf("Open of a file with a U-label and an A-label account for one address = %v, want an error naming both", err)
	}
	db, err := sql.Open("sqlite3", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var version int
	if err := db.QueryRow("PRAGMA user_version").Scan(&version); err != nil || version != 3 {
		t.Errorf("user_version after the failed migration = %d, %v; want 3", version, err)
	}
}
