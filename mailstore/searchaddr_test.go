package mailstore

import (
	"context"
	"slices"
	"testing"
	"time"
)

// TestSearchAddressAsEnvelope: SEARCH FROM, TO, CC and BCC match "the
// envelope structure's FROM field" (RFC 9051 §6.4.4): the addresses as
// ENVELOPE presents them (comments removed, encoded words decoded,
// quoting undone), as well as the raw field's text.
func TestSearchAddressAsEnvelope(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "search@localhost")
	msgs := []string{
		1: "From: =?utf-8?q?J=C3=BCrgen?= <j@example.org>\nTo: u@localhost\nSubject: 1\n\nbody\n",
		2: "From: \"=?utf-8?q?J=C3=BCrgen?= M.\" <j@example.org>\nTo: u@localhost\nSubject: 2\n\nbody\n",
		3: "From: \"j.doe\"@example.org\nTo: u@localhost\nSubject: 3\n\nbody\n",
		4: "From: j(the j)@example.org\nTo: u@localhost\nSubject: 4\n\nbody\n",
		5: "From: \"Doe \\\"JD\\\" John\" <jd@example.org>\nTo: u@localhost\nSubject: 5\n\nbody\n",
		6: "From: Jürgen <@route.example:j@example.org>\nTo: u@localhost\nSubject: 6\n\nbody\n",
		7: "From: x@example.org\nTo: Team: =?iso-8859-1?q?J=F6rg?= <jo@example.org>;\nSubject: 7\n\nbody\n",
	}
	for i := 1; i < len(msgs); i++ {
		if _, err := s.Append(ctx, r.Mailbox, searchCRLF(msgs[i]), nil, time.Now(), 0); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, key, value string
		want             []UID
	}{
		{"encoded display name", "From", "Jürgen", uidsOf(1, 2, 6)},
		{"address", "From", "j@example.org", uidsOf(1, 2, 4, 6)},
		{"encoded word in quotes", "From", "Jürgen M.", uidsOf(2)},
		{"quoted local part", "From", "j.doe@example.org", uidsOf(3)},
		{"comment inside the address", "From", "j@example.org", uidsOf(1, 2, 4, 6)},
		{"quoted pair in the name", "From", `Doe "JD" John`, uidsOf(5)},
		{"name and address", "From", "Jürgen <j@example.org>", uidsOf(1, 6)},
		{"group member", "To", "Jörg", uidsOf(7)},
		{"raw text still", "From", `"j.doe"`, uidsOf(3)},
		{"no match", "From", "nobody", nil},
	} {
		got, err := s.Search(ctx, r.Mailbox, &SearchCriteria{Address: []HeaderMatch{{tc.key, tc.value}}})
		if err != nil {
			t.Fatalf("%s: Search = %v", tc.name, err)
		}
		if !slices.Equal(got, tc.want) {
			t.Errorf("%s: SEARCH %s %q = %v, want %v", tc.name, tc.key, tc.value, got, tc.want)
		}
	}
}
