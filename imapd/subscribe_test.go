package imapd

import (
	"slices"
	"strings"
	"testing"
)

// TestListSubscribedNonExistent: a subscription outlives DELETE, and a
// name with no mailbox can be subscribed (RFC 9051 §6.3.7: a server "MAY
// validate" it, pushmail does not); LIST (SUBSCRIBED) lists such names
// with \NonExistent and \Subscribed (RFC 9051 §6.3.9, its example's
// "Fruit/Peach"). UNSUBSCRIBE of a name not subscribed is OK (§6.3.8).
func TestListSubscribedNonExistent(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.raw(t)
	c.ok(`CREATE Lists/Go`)
	c.ok(`SUBSCRIBE Lists/Go`)
	c.ok(`DELETE Lists/Go`)
	c.ok(`SUBSCRIBE Nowhere`)
	c.ok(`UNSUBSCRIBE Never`)
	untagged := c.ok(`LIST (SUBSCRIBED) "" "*"`)
	for _, want := range []string{
		`* LIST (\NonExistent \Subscribed) "/" "Lists/Go"`,
		`* LIST (\NonExistent \Subscribed) "/" "Nowhere"`,
		`* LIST (\HasNoChildren \Subscribed) "/" INBOX`,
	} {
		if !hasLine(untagged, want) {
			t.Errorf("LIST (SUBSCRIBED) \"\" * lacks %q; got %q", want, untagged)
		}
	}
	// "Lists" exists (CREATE made it) but is not subscribed.
	for _, line := range untagged {
		if line == `* LIST (\HasNoChildren) "/" "Lists"` || line == `* LIST (\HasChildren) "/" "Lists"` {
			t.Errorf("LIST (SUBSCRIBED) lists the unsubscribed Lists: %q", untagged)
		}
	}
	// Without SUBSCRIBED, a name with no mailbox is not listed.
	if untagged := c.ok(`LIST "" "*"`); slices.ContainsFunc(untagged, func(l string) bool { return strings.HasSuffix(l, `"/" "Nowhere"`) }) {
		t.Errorf(`LIST "" * lists Nowhere: %q`, untagged)
	}
	// A mailbox created again under the name is subscribed.
	c.ok(`CREATE Lists/Go`)
	if untagged := c.ok(`LIST "" "Lists/Go" RETURN (SUBSCRIBED)`); !hasLine(untagged, `* LIST (\HasNoChildren \Subscribed) "/" "Lists/Go"`) {
		t.Errorf(`LIST "" Lists/Go RETURN (SUBSCRIBED) after CREATE = %q, want it \Subscribed`, untagged)
	}
	// LSUB (RFC 3501 has no \NonExistent) lists a name without a mailbox
	// as \Noselect.
	if untagged := c.ok(`LSUB "" "Now*"`); !slices.Equal(untagged, []string{`* LSUB (\Noselect \Subscribed) "/" "Nowhere"`}) {
		t.Errorf(`LSUB "" Now* = %q, want Nowhere \Noselect`, untagged)
	}
}

// TestLSubNoselectParent: RFC 3501 §6.3.9: "if "foo/bar" [...] is
// subscribed but "foo" is not. A "%" wildcard to LSUB must return foo,
// not foo/bar, in the LSUB response, and it MUST be flagged with the
// \Noselect attribute." LIST (SUBSCRIBED) without RECURSIVEMATCH has no
// such rule (RFC 5258 §3.5).
func TestLSubNoselectParent(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.raw(t)
	c.ok(`CREATE x/y/z`)
	c.ok(`SUBSCRIBE x/y/z`)
	c.ok(`SUBSCRIBE x/gone/deeper`) // no mailbox at all below x/gone
	for _, tc := range []struct {
		name, cmd string
		want      []string
	}{
		{"LSUB percent", `LSUB "" x/%`, []string{`* LSUB (\Noselect) "/" "x/gone"`, `* LSUB (\Noselect) "/" "x/y"`}},
		{"LSUB percent top", `LSUB "" %`, []string{
			`* LSUB (\HasNoChildren \Subscribed \Archive) "/" "Archive"`, `* LSUB (\HasNoChildren \Subscribed \Drafts) "/" "Drafts"`,
			`* LSUB (\HasNoChildren \Subscribed) "/" INBOX`, `* LSUB (\HasNoChildren \Subscribed \Junk) "/" "Junk"`,
			`* LSUB (\HasNoChildren \Subscribed \Sent) "/" "Sent"`, `* LSUB (\HasNoChildren \Subscribed \Trash) "/" "Trash"`,
			`* LSUB (\Noselect) "/" "x"`,
		}},
		{"LSUB star", `LSUB "" x/*`, []string{`* LSUB (\Noselect \Subscribed) "/" "x/gone/deeper"`, `* LSUB (\HasNoChildren \Subscribed) "/" "x/y/z"`}},
		{"LSUB the child", `LSUB "" x/y/%`, []string{`* LSUB (\HasNoChildren \Subscribed) "/" "x/y/z"`}},
		{"LIST SUBSCRIBED percent", `LIST (SUBSCRIBED) "" x/%`, nil},
	} {
		if got := c.ok("%s", tc.cmd); !slices.Equal(got, tc.want) {
			t.Errorf("%s: %s = %q, want %q", tc.name, tc.cmd, got, tc.want)
		}
	}
}
