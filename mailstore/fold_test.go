package mailstore

import (
	"context"
	"errors"
	"testing"
)

// TestFoldLocal: how local parts compare (foldLocal). ASCII folds A-Z
// only; a non-ASCII local part is lower-cased and NFC-normalised, and a
// character with a compatibility or singleton decomposition is refused
// rather than folded onto another spelling (issue 13: the Kelvin sign).
func TestFoldLocal(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, in, want string
	}{
		{"ASCII lower-cased", "Kate@Example.org", "kate@example.org"},
		{"ASCII specials kept", "A+b.C-d_e~f=g#h$i&j'k*l/m?n^o`p{q|r}s@x.org", "a+b.c-d_e~f=g#h$i&j'k*l/m?n^o`p{q|r}s@x.org"},
		{"Turkish dotted capital İ is i and U+0307, not ASCII i", "İvan@x.org", "i\u0307van@x.org"},
		{"i with combining dot above is the same", "i\u0307van@x.org", "i\u0307van@x.org"},
		{"Turkish dotless ı stays itself", "ıvan@x.org", "ıvan@x.org"},
		{"ASCII I is i, whatever the locale", "IVAN@x.org", "ivan@x.org"},
		{"ß stays ß", "straße@x.org", "straße@x.org"},
		{"capital ẞ is ß", "STRAẞE@x.org", "straße@x.org"},
		{"SS is ss, not ß", "STRASSE@x.org", "strasse@x.org"},
		{"Σ is σ", "ΣΑΣ@x.org", "σασ@x.org"},
		{"NFD is NFC", "jo\u0308rg@x.org", "jörg@x.org"},
		{"upper-case umlaut", "JÖRG@x.org", "jörg@x.org"},
		{"CJK", "日本語@x.org", "日本語@x.org"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeAddress(tc.in)
			if err != nil || got != tc.want {
				t.Errorf("NormalizeAddress(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
			}
		})
	}
	for _, tc := range []struct{ name, in string }{
		{"Kelvin sign", "\u212Aate@x.org"},
		{"Ångström sign", "\u212Bsa@x.org"},
		{"fullwidth letters", "ｋａｔｅ@x.org"},
		{"ligature", "o\uFB03ce@x.org"},
		{"titlecase digraph", "ǅemal@x.org"},
		{"symbol", "☃@x.org"},
		{"zero-width joiner", "ka\u200Dte@x.org"},
		{"too long once folded", "İİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİİ@x.org"}, // 64 bytes in, 96 out
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := NormalizeAddress(tc.in)
			if !errors.Is(err, ErrInvalidAddress) {
				t.Errorf("NormalizeAddress(%q) = %q, %v; want ErrInvalidAddress", tc.in, got, err)
			}
		})
	}
}

// TestKelvinIsNotK: kate@ gets no mail addressed to the Kelvin-sign
// spelling, nor does İ reach an ASCII i; ASCII users still match in any
// case.
func TestKelvinIsNotK(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{Domains: []string{"example.org"}})
	kate := addUser(t, s, "kate@example.org")
	ivan := addUser(t, s, "ivan@example.org")
	for _, addr := range []string{"kate@example.org", "KATE@EXAMPLE.ORG", "Kate+tag@Example.org"} {
		if r, err := s.Resolve(ctx, addr); err != nil || r.User != kate.User {
			t.Errorf("Resolve(%s) = user %d, %v; want user %d", addr, r.User, err, kate.User)
		}
	}
	if _, err := s.Authenticate(ctx, "KaTe@example.org", "secret"); err != nil {
		t.Errorf("Authenticate in mixed ASCII case = %v", err)
	}
	if r, err := s.Resolve(ctx, "\u212Aate@example.org"); err == nil {
		t.Errorf("Resolve(Kelvin-sign Kate) = user %d, want an error", r.User)
	}
	if _, err := s.Authenticate(ctx, "\u212Aate@example.org", "secret"); err == nil {
		t.Error("Authenticate as Kelvin-sign Kate succeeded")
	}
	if _, err := s.AddUser(ctx, "\u212Aate@example.org", "x"); !errors.Is(err, ErrInvalidAddress) {
		t.Errorf("AddUser(Kelvin-sign Kate) = %v, want ErrInvalidAddress", err)
	}
	if r, err := s.Resolve(ctx, "İvan@example.org"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Resolve(İvan) = user %d (ivan is %d), %v; want ErrNoSuchUser", r.User, ivan.User, err)
	}
	if r, err := s.Resolve(ctx, "ıvan@example.org"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Resolve(ıvan) = user %d, %v; want ErrNoSuchUser", r.User, err)
	}
	strasse := addUser(t, s, "straße@example.org")
	if r, err := s.Resolve(ctx, "STRAẞE@example.org"); err != nil || r.User != strasse.User {
		t.Errorf("Resolve(STRAẞE) = user %d, %v; want user %d", r.User, err, strasse.User)
	}
	if _, err := s.Resolve(ctx, "strasse@example.org"); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("Resolve(strasse) = %v, want ErrNoSuchUser: ß is not ss", err)
	}
}
