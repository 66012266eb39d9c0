package wire

import (
	"reflect"
	"testing"
)

// NOTIFY (RFC 5465), from the RFC's examples (§3.1, §5, §6) and the
// grammar (§8).
func TestNotifyCommands(t *testing.T) {
	msgEvents := []NotifyEvent{{Name: "MessageNew"}, {Name: "MessageExpunge"}}
	tests := []struct {
		name  string
		input string
		want  Notify
	}{
		{"NONE", "a NOTIFY NONE", Notify{None: true}},
		{"fetch attributes with a section",
			"a NOTIFY SET (selected (MessageNew (uid body.peek[header.fields (from to subject)]) MessageExpunge)) (personal (MessageNew MessageExpunge))",
			Notify{Groups: []NotifyGroup{
				{Filter: "selected", Events: []NotifyEvent{
					{Name: "MessageNew", Fetch: []FetchAttr{{Kind: FetchUID}, {Kind: FetchBodySection, Peek: true,
						Section: Section{Specifier: "HEADER.FIELDS", Fields: []string{"FROM", "TO", "SUBJECT"}}}}},
					{Name: "MessageExpunge"}}},
				{Filter: "personal", Events: msgEvents},
			}}},
		{"STATUS, subtree and mailboxes lists",
			`a NOTIFY SET STATUS (selected (MessageNew (UID FLAGS) MessageExpunge FlagChange)) (subtree (Lists "Other stuff") (MessageNew MessageExpunge)) (mailboxes INBOX NONE)`,
			Notify{Status: true, Groups: []NotifyGroup{
				{Filter: "selected", Events: []NotifyEvent{
					{Name: "MessageNew", Fetch: []FetchAttr{{Kind: FetchUID}, {Kind: FetchFlags}}},
					{Name: "MessageExpunge"}, {Name: "FlagChange"}}},
				{Filter: "subtree", Mailboxes: []string{"Lists", "Other stuff"}, Events: msgEvents},
				{Filter: "mailboxes", Mailboxes: []string{"INBOX"}},
			}}},
		{"event names in any case, unknown ones kept",
			"a NOTIFY SET (Personal (mailboxname subscriptionchange MailboxMetadataChange ServerMetadataChange x-foo))",
			Notify{Groups: []NotifyGroup{{Filter: "personal", Events: []NotifyEvent{
				{Name: "MailboxName"}, {Name: "SubscriptionChange"}, {Name: "MailboxMetadataChange"},
				{Name: "ServerMetadataChange"}, {Name: "x-foo"}}}}}},
		{"selected-delayed, inboxes, subscribed",
			"a NOTIFY SET (selected-delayed (MessageNew MessageExpunge)) (inboxes (MessageNew MessageExpunge)) (subscribed (MailboxName))",
			Notify{Groups: []NotifyGroup{
				{Filter: "selected-delayed", Events: msgEvents},
				{Filter: "inboxes", Events: msgEvents},
				{Filter: "subscribed", Events: []NotifyEvent{{Name: "MailboxName"}}},
			}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseOne(t, tt.input+"\r\n")
			if c.Name != "NOTIFY" || !reflect.DeepEqual(c.Args, &tt.want) {
				t.Errorf("ReadCommand(%q) =\n %+v %+v\nwant\n %+v", tt.input, *c, c.Args, tt.want)
			}
		})
	}
}

// Malformed NOTIFY commands are BAD, and the next command parses.
func TestNotifyErrors(t *testing.T) {
	for _, in := range []string{
		"a NOTIFY",
		"a NOTIFY SET",
		"a NOTIFY FOO",
		"a NOTIFY SET STATUS",
		"a NOTIFY SET (selected)",
		"a NOTIFY SET (selected ())",
		"a NOTIFY SET (nowhere (MessageNew MessageExpunge))",
		"a NOTIFY SET (subtree (MessageNew MessageExpunge))",
		"a NOTIFY SET (mailboxes () (MessageNew MessageExpunge))",
		// RFC 5465 §8: events are a list, even one.
		"a NOTIFY SET (selected MessageNew MessageExpunge)",
		"a NOTIFY SET (selected (MessageNew (NOSUCH) MessageExpunge))",
		"a NOTIFY SET (personal (MessageNew MessageExpunge)",
	} {
		t.Run(in, func(t *testing.T) {
			s := newSession(t, in+"\r\nz NOOP\r\n", Limits{})
			if e := s.readErr(t); e.Tag != "a" || e.Code != ErrSyntax || e.Fatal {
				t.Errorf("error = %+v, want a syntax error for a", e)
			}
			if c := s.read(t); c.Tag != "z" {
				t.Errorf("next command = %+v, want z NOOP", c)
			}
		})
	}
}
