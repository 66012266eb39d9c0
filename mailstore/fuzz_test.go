package mailstore

import (
	"strings"
	"testing"
	"unicode/utf8"
)

// FuzzNormalizeAddress: any input either fails or yields an address that
// is stable under normalisation, lower-case, with one '@' and no routing
// characters: what Resolve relies on to never relay.
func FuzzNormalizeAddress(f *testing.F) {
	for _, seed := range []string{
		"alice@localhost", "Alice@LocalHost.", "a+tag@x.org", "jörg@例え.jp", `"quoted"@x.org`,
		"@relay.net:a@x.org", "a%b@x.org", "a!b@x.org", "a@@b", "a@b@c", "", "@", "a@", "@b",
		"a..b@x.org", ".a@x.org", "\u212Aate@x.org", "İvan@x.org", "STRAẞE@x.org", "jo\u0308rg@x.org", "a@x..org", "a@-x.org", "a\x00@x.org", "\xff@x.org", strings.Repeat("a", 65) + "@x.org",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := NormalizeAddress(in)
		if err != nil {
			return
		}
		again, err := NormalizeAddress(out)
		if err != nil || again != out {
			t.Fatalf("NormalizeAddress(%q) = %q, but NormalizeAddress(%q) = %q, %v", in, out, out, again, err)
		}
		if strings.Count(out, "@") != 1 || strings.ContainsAny(out, "%!\"<>[]:, \x00") || !utf8.ValidString(out) {
			t.Fatalf("NormalizeAddress(%q) = %q: not a plain address", in, out)
		}
		if out != strings.ToLower(out) {
			t.Fatalf("NormalizeAddress(%q) = %q: not lower-case", in, out)
		}
	})
}

// FuzzValidateMailboxName: any input either fails or yields a name that is
// stable, valid UTF-8, bounded, without control characters or empty
// hierarchy levels.
func FuzzValidateMailboxName(f *testing.F) {
	for _, seed := range []string{
		"INBOX", "inbox", "InBox/Sub", "a/b/c", "Ünïcödé/日本語", "..", "../other", "a//b", "/a", "a/",
		"%", "*", "a\x00b", "\t", "\xff\xfe", strings.Repeat("x", MaxMailboxNameLen+1), "other@user/INBOX",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, in string) {
		out, err := ValidateMailboxName(in)
		if err != nil {
			return
		}
		again, err := ValidateMailboxName(out)
		if err != nil || again != out {
			t.Fatalf("ValidateMailboxName(%q) = %q, then %q, %v", in, out, again, err)
		}
		if !utf8.ValidString(out) || len(out) > MaxMailboxNameLen || out == "" {
			t.Fatalf("ValidateMailboxName(%q) = %q: bad", in, out)
		}
		for _, part := range strings.Split(out, Separator) {
			if part == "" {
				t.Fatalf("ValidateMailboxName(%q) = %q: empty level", in, out)
			}
		}
		for _, r := range out {
			if r < 0x20 || r == 0x7f {
				t.Fatalf("ValidateMailboxName(%q) = %q: control character", in, out)
			}
		}
	})
}
