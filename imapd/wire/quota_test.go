package wire

import (
	"reflect"
	"testing"
)

// QUOTA (RFC 9208) and METADATA (RFC 5464) commands, from the RFCs'
// examples.
func TestQuotaMetadataCommands(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Command
	}{
		{"GETQUOTA RFC 9208 §4.2.1", `G0001 GETQUOTA "!partition.sda4"`,
			Command{Tag: "G0001", Name: "GETQUOTA", Args: &GetQuota{Root: "!partition.sda4"}}},
		{"GETQUOTAROOT RFC 9208 §4.2.2", "G0002 GETQUOTAROOT INBOX",
			Command{Tag: "G0002", Name: "GETQUOTAROOT", Args: &GetQuotaRoot{Mailbox: "INBOX"}}},
		{"SETQUOTA RFC 9208 §4.2.3", `S0000 SETQUOTA "User quota" (STORAGE 510)`,
			Command{Tag: "S0000", Name: "SETQUOTA", Args: &SetQuota{Root: "User quota", Limits: []QuotaLimit{{"STORAGE", 510}}}}},
		{"SETQUOTA empty", `S SETQUOTA "" ()`,
			Command{Tag: "S", Name: "SETQUOTA", Args: &SetQuota{}}},
		{"GETMETADATA one entry §4.4", `a GETMETADATA "" /shared/comment`,
			Command{Tag: "a", Name: "GETMETADATA", Args: &GetMetadata{MaxSize: -1, Entries: []string{"/shared/comment"}}}},
		{"GETMETADATA options first (ABNF)", `a GETMETADATA (MAXSIZE 1024 DEPTH infinity) INBOX (/shared/comment "/private/comment")`,
			Command{Tag: "a", Name: "GETMETADATA", Args: &GetMetadata{Mailbox: "INBOX", MaxSize: 1024, Depth: DepthInfinity,
				Entries: []string{"/shared/comment", "/private/comment"}}}},
		{"GETMETADATA options after mailbox §4.2.2", `a GETMETADATA "INBOX" (DEPTH 1) (/private/filters/values)`,
			Command{Tag: "a", Name: "GETMETADATA", Args: &GetMetadata{Mailbox: "INBOX", MaxSize: -1, Depth: 1,
				Entries: []string{"/private/filters/values"}}}},
		{"SETMETADATA §4.3", `a SETMETADATA INBOX (/private/comment "My new comment" /shared/x NIL /shared/y {3}` + "\r\nabc)",
			Command{Tag: "a", Name: "SETMETADATA", Args: &SetMetadata{Mailbox: "INBOX", Entries: []MetadataValue{
				{Name: "/private/comment", Value: []byte("My new comment")}, {Name: "/shared/x", Nil: true}, {Name: "/shared/y", Value: []byte("abc")}}}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := parseOne(t, tt.input+"\r\n")
			if !reflect.DeepEqual(*c, tt.want) {
				t.Errorf("ReadCommand(%q) =\n %+v %+v\nwant\n %+v %+v", tt.input, *c, c.Args, tt.want, tt.want.Args)
			}
		})
	}
}

// Malformed QUOTA and METADATA arguments are BAD, and the next command
// parses.
func TestQuotaMetadataErrors(t *testing.T) {
	for _, in := range []string{
		"a GETQUOTA",
		"a GETQUOTAROOT",
		"a SETQUOTA x",
		"a SETQUOTA x (STORAGE)",
		"a SETQUOTA x (STORAGE -1)",
		"a GETMETADATA INBOX",
		"a GETMETADATA (DEPTH 2) INBOX /private/x",
		"a GETMETADATA (MAXSIZE) INBOX /private/x",
		"a GETMETADATA (FOO 1) INBOX /private/x",
		"a GETMETADATA INBOX ()",
		"a SETMETADATA INBOX ()",
		"a SETMETADATA INBOX (/private/x)",
		"a SETMETADATA INBOX /private/x y",
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
