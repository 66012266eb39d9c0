package mailstore

import (
	"context"
	"errors"
	"testing"
)

// TestPostmaster: RFC 5321 §4.5.1. postmaster at every local domain, and
// a bare "Postmaster", resolve without setup: to the postmaster alias or
// user of the domain, else Options.Postmaster, else the first user; only
// a store without users refuses it.
func TestPostmaster(t *testing.T) {
	t.Parallel()
	ctx := context.Background()

	empty := openTestStore(t, Options{Domains: []string{"example.org"}})
	for _, addr := range []string{"postmaster@example.org", "Postmaster"} {
		if _, err := empty.Resolve(ctx, addr); !errors.Is(err, ErrNoSuchUser) {
			t.Errorf("Resolve(%s) with no user = %v, want ErrNoSuchUser", addr, err)
		}
	}

	for _, tc := range []struct {
		name       string
		domains    []string
		postmaster string // Options.Postmaster
		alias      bool   // add postmaster@example.org -> bob
		rcpt, want string
	}{
		{"no setup: the first user", []string{"example.org"}, "", false, "postmaster@example.org", "first@example.org"},
		{"case-insensitive", []string{"example.org"}, "", false, "PostMaster@Example.ORG", "first@example.org"},
		{"bare Postmaster", []string{"example.org"}, "", false, "Postmaster", "first@example.org"},
		{"bare, upper case", []string{"example.org"}, "", false, "POSTMASTER", "first@example.org"},
		{"bare, no domains configured", nil, "", false, "postmaster", "first@example.org"},
		{"a user's domain", []string{"example.org"}, "", false, "postmaster@users.example", "first@example.org"},
		{"with a detail", []string{"example.org"}, "", false, "postmaster+bounces@example.org", "first@example.org"},
		{"configured account", []string{"example.org"}, "carol@example.org", false, "postmaster@example.org", "carol@example.org"},
		{"configured as an alias", []string{"example.org"}, "help@example.org", false, "postmaster@example.org", "carol@example.org"},
		{"configured account gone", []string{"example.org"}, "gone@example.org", false, "postmaster@example.org", "first@example.org"},
		{"alias first", []string{"example.org"}, "carol@example.org", true, "postmaster@example.org", "bob@example.org"},
		{"bare uses the primary domain's alias", []string{"example.org"}, "carol@example.org", true, "Postmaster", "bob@example.org"},
		{"other domains keep the rule", []string{"example.org", "other.example"}, "carol@example.org", true, "postmaster@other.example", "carol@example.org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := openTestStore(t, Options{Domains: tc.domains, Postmaster: tc.postmaster})
			addUser(t, s, "first@example.org") // lowest id
			addUser(t, s, "bob@example.org")
			addUser(t, s, "carol@example.org")
			addUser(t, s, "dave@users.example")
			if err := s.AddAlias(ctx, "help@example.org", "carol@example.org"); err != nil {
				t.Fatal(err)
			}
			if tc.alias {
				if err := s.AddAlias(ctx, "postmaster@example.org", "bob@example.org"); err != nil {
					t.Fatal(err)
				}
			}
			r, err := s.Resolve(ctx, tc.rcpt)
			if err != nil || r.Address != tc.want {
				t.Errorf("Resolve(%s) = %q, %v; want %q", tc.rcpt, r.Address, err, tc.want)
			}
		})
	}

	s := openTestStore(t, Options{Domains: []string{"example.org"}})
	addUser(t, s, "first@example.org")
	if _, err := s.Resolve(ctx, "postmaster@elsewhere.example"); !errors.Is(err, ErrNotLocal) {
		t.Errorf("Resolve(postmaster at a domain not served here) = %v, want ErrNotLocal", err)
	}
	if _, err := Open(ctx, t.TempDir()+"/x.db", Options{Postmaster: "not an address"}); !errors.Is(err, ErrInvalidAddress) {
		t.Errorf("Open with an invalid Postmaster = %v, want ErrInvalidAddress", err)
	}
}
