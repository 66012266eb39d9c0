package imapd

import (
	"strings"
	"testing"
)

// TestSearchFromAsEnvelope: SEARCH FROM matches "the envelope
// structure's FROM field" (RFC 9051 §6.4.4): the address as ENVELOPE
// presents it, quoting undone and comments removed, as well as the raw
// field's text.
func TestSearchFromAsEnvelope(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	for _, from := range []string{
		`=?utf-8?q?J=C3=BCrgen?= <j@example.org>`,
		`"j.doe"@example.org`,
		`j(the j)@example.org`,
		`"Doe \"JD\" John" <jd@example.org>`,
	} {
		env.deliver(t, []byte("From: "+from+"\r\nTo: u@localhost\r\nSubject: s\r\n\r\nbody\r\n"))
	}
	c := env.raw(t)
	c.ok("ENABLE UTF8=ACCEPT") // RFC 6855 §3: UTF-8 in quoted strings
	c.ok("SELECT INBOX")
	for _, tc := range []struct{ cmd, want string }{
		{`UID SEARCH FROM "Jürgen"`, "* SEARCH 1"},
		{`UID SEARCH FROM "j@example.org"`, "* SEARCH 1 3"},
		{`UID SEARCH FROM "j.doe@example.org"`, "* SEARCH 2"},
		{`UID SEARCH FROM "Doe \"JD\" John"`, "* SEARCH 4"},
		{`UID SEARCH FROM "the j"`, "* SEARCH 3"}, // the raw text still matches
	} {
		got := c.ok("%s", tc.cmd)
		if strings.Join(got, "|") != tc.want {
			t.Errorf("%s = %q, want %q", tc.cmd, got, tc.want)
		}
	}
}
