package wire

import (
	"reflect"
	"testing"
	"time"
)

func set(r ...NumRange) NumSet { return NumSet{Ranges: r} }

// Commands as the RFCs write them; most inputs are the RFC's examples.
func TestCommands(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Command
	}{
		{"CAPABILITY §6.1.1", "abcd CAPABILITY", Command{Tag: "abcd", Name: "CAPABILITY"}},
		{"NOOP lower case §6.1.2", "a002 noop", Command{Tag: "a002", Name: "NOOP"}},
		{"LOGOUT §6.1.3", "A023 LOGOUT", Command{Tag: "A023", Name: "LOGOUT"}},
		{"STARTTLS §6.2.1", "a002 STARTTLS", Command{Tag: "a002", Name: "STARTTLS"}},
		{"AUTHENTICATE §6.2.2", "A001 AUTHENTICATE GSSAPI", Command{Tag: "A001", Name: "AUTHENTICATE", Args: &Authenticate{Mechanism: "GSSAPI"}}},
		{"AUTHENTICATE SASL-IR RFC 4959", "a AUTHENTICATE PLAIN AGFsaWNlAHB3",
			Command{Tag: "a", Name: "AUTHENTICATE", Args: &Authenticate{Mechanism: "PLAIN", Initial: []byte("\x00alice\x00pw")}}},
		{"AUTHENTICATE empty initial response", "a AUTHENTICATE plain =",
			Command{Tag: "a", Name: "AUTHENTICATE", Args: &Authenticate{Mechanism: "PLAIN", Initial: []byte{}}}},
		{"LOGIN §6.2.3", "a001 LOGIN SMITH SESAME", Command{Tag: "a001", Name: "LOGIN", Args: &Login{"SMITH", "SESAME"}}},
		{"LOGIN quoted with escapes", `a LOGIN "fred \"x\"" "a\\b"`, Command{Tag: "a", Name: "LOGIN", Args: &Login{`fred "x"`, `a\b`}}},
		{"LOGIN astring with ]", "a LOGIN a]b pw", Command{Tag: "a", Name: "LOGIN", Args: &Login{"a]b", "pw"}}},
		{"ENABLE RFC 5161", "t2 ENABLE CONDSTORE utf8=accept", Command{Tag: "t2", Name: "ENABLE", Args: &Enable{[]string{"CONDSTORE", "UTF8=ACCEPT"}}}},
		{"SELECT §6.3.2", "A142 SELECT INBOX", Command{Tag: "A142", Name: "SELECT", Args: &Select{Mailbox: "INBOX"}}},
		{"SELECT inbox in any case", "a SELECT iNbOx", Command{Tag: "a", Name: "SELECT", Args: &Select{Mailbox: "INBOX"}}},
		{"SELECT CONDSTORE RFC 7162", "a SELECT INBOX (CONDSTORE)", Command{Tag: "a", Name: "SELECT", Args: &Select{Mailbox: "INBOX", CondStore: true}}},
		{"EXAMINE §6.3.3", "A932 EXAMINE blurdybloop", Command{Tag: "A932", Name: "EXAMINE", Args: &Select{Mailbox: "blurdybloop"}}},
		{"CREATE §6.3.4", "A003 CREATE owatagusiam/", Command{Tag: "A003", Name: "CREATE", Args: &Create{Mailbox: "owatagusiam/"}}},
		{"CREATE USE RFC 6154", `t1 CREATE "Important Messages" (USE (\Important))`,
			Command{Tag: "t1", Name: "CREATE", Args: &Create{Mailbox: "Important Messages", Use: []string{`\Important`}}}},
		{"CREATE modified UTF-7 §5.1.3", "a CREATE ~peter/mail/&U,BTFw-/&ZeVnLIqe-",
			Command{Tag: "a", Name: "CREATE", Args: &Create{Mailbox: "~peter/mail/台北/日本語"}}},
		{"DELETE §6.3.5", "A683 DELETE blurdybloop", Command{Tag: "A683", Name: "DELETE", Args: &Mailbox{"blurdybloop"}}},
		{"RENAME §6.3.6", "A682 RENAME foo sarasoop", Command{Tag: "A682", Name: "RENAME", Args: &Rename{"foo", "sarasoop"}}},
		{"SUBSCRIBE §6.3.7", "A002 SUBSCRIBE #news.comp.mail.mime", Command{Tag: "A002", Name: "SUBSCRIBE", Args: &Mailbox{"#news.comp.mail.mime"}}},
		{"UNSUBSCRIBE §6.3.8", "A002 UNSUBSCRIBE #news.comp.mail.mime", Command{Tag: "A002", Name: "UNSUBSCRIBE", Args: &Mailbox{"#news.comp.mail.mime"}}},
		{"LIST §6.3.9", `A101 LIST "" ""`, Command{Tag: "A101", Name: "LIST", Args: &List{Patterns: []string{""}}}},
		{"LIST wildcards", `A202 LIST ~/Mail/ %`, Command{Tag: "A202", Name: "LIST", Args: &List{Reference: "~/Mail/", Patterns: []string{"%"}}}},
		{"LIST-EXTENDED RFC 5258 §5", `A04 LIST (SUBSCRIBED RECURSIVEMATCH) "" "%" RETURN (CHILDREN)`,
			Command{Tag: "A04", Name: "LIST", Args: &List{Patterns: []string{"%"}, Extended: true, SelectSubscribed: true, SelectRecursiveMatch: true, ReturnChildren: true}}},
		{"LIST several patterns", `a LIST "" ("INBOX" Drafts/*)`,
			Command{Tag: "a", Name: "LIST", Args: &List{Patterns: []string{"INBOX", "Drafts/*"}, Extended: true}}},
		{"LIST-STATUS RFC 5819", `A01 LIST "" % RETURN (STATUS (MESSAGES UNSEEN))`,
			Command{Tag: "A01", Name: "LIST", Args: &List{Patterns: []string{"%"}, Extended: true, ReturnStatus: []StatusItem{StatusMessages, StatusUnseen}}}},
		{"LIST SPECIAL-USE RFC 6154", `t1 LIST (SPECIAL-USE) "" "*" RETURN (SPECIAL-USE SUBSCRIBED)`,
			Command{Tag: "t1", Name: "LIST", Args: &List{Patterns: []string{"*"}, Extended: true, SelectSpecialUse: true, ReturnSpecialUse: true, ReturnSubscribed: true}}},
		{"LSUB RFC 3501 §6.3.9", `A002 LSUB "#news." "comp.mail.*"`, Command{Tag: "A002", Name: "LSUB", Args: &Lsub{"#news.", "comp.mail.*"}}},
		{"NAMESPACE RFC 2342", "A001 NAMESPACE", Command{Tag: "A001", Name: "NAMESPACE"}},
		{"STATUS §6.3.11", "A042 STATUS blurdybloop (UIDNEXT MESSAGES)",
			Command{Tag: "A042", Name: "STATUS", Args: &Status{"blurdybloop", []StatusItem{StatusUIDNext, StatusMessages}}}},
		{"STATUS SIZE DELETED", "a STATUS INBOX (size deleted RECENT unseen uidvalidity appendlimit)",
			Command{Tag: "a", Name: "STATUS", Args: &Status{"INBOX", []StatusItem{StatusSize, StatusDeleted, StatusRecent, StatusUnseen, StatusUIDValidity, StatusAppendLimit}}}},
		{"APPEND §6.3.12", "A003 APPEND saved-messages (\\Seen) {5}\r\nhello",
			Command{Tag: "A003", Name: "APPEND", Args: &Append{Mailbox: "saved-messages", Flags: []string{`\Seen`}, Message: []byte("hello")}}},
		{"APPEND with date-time", "a APPEND INBOX () \"17-Jul-1996 02:44:25 -0700\" {2+}\r\nhi",
			Command{Tag: "a", Name: "APPEND", Args: &Append{Mailbox: "INBOX", Flags: []string{}, Date: time.Date(1996, 7, 17, 2, 44, 25, 0, time.FixedZone("", -7*3600)), Message: []byte("hi")}}},
		{"APPEND date with a space-padded day", "a APPEND INBOX \" 7-Feb-1994 21:52:25 +0100\" {2+}\r\nhi",
			Command{Tag: "a", Name: "APPEND", Args: &Append{Mailbox: "INBOX", Date: time.Date(1994, 2, 7, 21, 52, 25, 0, time.FixedZone("", 3600)), Message: []byte("hi")}}},
		{"IDLE RFC 2177", "a002 IDLE", Command{Tag: "a002", Name: "IDLE"}},
		{"CHECK RFC 3501 §6.4.1", "FXXZ CHECK", Command{Tag: "FXXZ", Name: "CHECK"}},
		{"CLOSE §6.4.1", "A341 CLOSE", Command{Tag: "A341", Name: "CLOSE"}},
		{"UNSELECT §6.4.2", "A342 UNSELECT", Command{Tag: "A342", Name: "UNSELECT"}},
		{"EXPUNGE §6.4.3", "A202 EXPUNGE", Command{Tag: "A202", Name: "EXPUNGE"}},
		{"UID EXPUNGE §6.4.9", "A003 UID EXPUNGE 3000:3002",
			Command{Tag: "A003", Name: "EXPUNGE", UID: true, Args: &Expunge{set(NumRange{3000, 3002})}}},
		{"STORE §6.4.6", `A003 STORE 2:4 +FLAGS (\Deleted)`,
			Command{Tag: "A003", Name: "STORE", Args: &Store{Set: set(NumRange{2, 4}), Op: StoreAdd, Flags: []string{`\Deleted`}}}},
		{"STORE -FLAGS.SILENT without parens", `a STORE 1 -FLAGS.SILENT \Seen $Junk`,
			Command{Tag: "a", Name: "STORE", Args: &Store{Set: set(NumRange{1, 1}), Op: StoreRemove, Silent: true, Flags: []string{`\Seen`, "$Junk"}}}},
		{"STORE FLAGS ()", `a UID STORE 7 FLAGS ()`,
			Command{Tag: "a", Name: "STORE", UID: true, Args: &Store{Set: set(NumRange{7, 7}), Flags: []string{}}}},
		{"COPY §6.4.7", "A003 COPY 2:4 MEETING", Command{Tag: "A003", Name: "COPY", Args: &Copy{set(NumRange{2, 4}), "MEETING"}}},
		{"MOVE RFC 6851", "a UID MOVE 42:69 foo", Command{Tag: "a", Name: "MOVE", UID: true, Args: &Copy{set(NumRange{42, 69}), "foo"}}},
		{"UID COPY with $ RFC 5182", "a UID COPY $ Trash", Command{Tag: "a", Name: "COPY", UID: true, Args: &Copy{NumSet{Saved: true}, "Trash"}}},
		{"ID RFC 2971 §3.1", `a023 ID ("name" "sodr" "version" "19.34" "vendor" NIL)`,
			Command{Tag: "a023", Name: "ID", Args: &ID{Fields: []IDField{{"name", "sodr", true}, {"version", "19.34", true}, {"vendor", "", false}}}}},
		{"ID NIL", "a ID NIL", Command{Tag: "a", Name: "ID", Args: &ID{Nil: true}}},
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

// Client mistakes: each is an *Error with the tag, and the next command
// parses.
func TestCommandErrors(t *testing.T) {
	tests := []struct {
		name, input string
		tag         string
		code        ErrorCode
	}{
		{"empty line", "", "", ErrSyntax},
		{"no command", "a", "", ErrSyntax},
		{"tag with +", "a+ NOOP", "", ErrSyntax},
		{"unknown command", "a XYZZY", "a", ErrUnknownCommand},
		{"ID before login is known", "a UID XYZZY 1", "a", ErrUnknownCommand},
		{"arguments after NOOP", "a NOOP now", "a", ErrSyntax},
		{"trailing space", "a NOOP ", "a", ErrSyntax},
		{"two spaces", "a LOGIN  x y", "a", ErrSyntax},
		{"missing argument", "a LOGIN x", "a", ErrSyntax},
		{"bad escape", `a LOGIN "\n" y`, "a", ErrSyntax},
		{"unterminated quoted", `a LOGIN "abc`, "a", ErrSyntax},
		{"8-bit atom", "a LOGIN \xe9 x", "a", ErrSyntax},
		{"invalid UTF-8 in quoted", "a LOGIN \"\xff\" x", "a", ErrSyntax},
		{"bad modified UTF-7", "a CREATE &AGE-", "a", ErrMailboxName},
		{"unterminated shift", "a SELECT &Jjo", "a", ErrMailboxName},
		{"unknown STATUS item", "a STATUS INBOX (MESSAGES BOGUS)", "a", ErrSyntax},
		{"empty STATUS list", "a STATUS INBOX ()", "a", ErrSyntax},
		{"unknown select param", "a SELECT INBOX (FOO)", "a", ErrSyntax},
		{"RECURSIVEMATCH alone RFC 5258 §3", `a LIST (RECURSIVEMATCH) "" %`, "a", ErrSyntax},
		{"unknown LIST return option", `a LIST "" % RETURN (BOGUS)`, "a", ErrSyntax},
		{"APPEND without literal", "a APPEND INBOX hello", "a", ErrSyntax},
		{"APPEND bad date", "a APPEND INBOX \"31-Apr-2020 00:00:00 +0000\" {1+}\r\nx", "a", ErrSyntax},
		{"APPEND then junk after the message", "a APPEND INBOX {1+}\r\nx y", "a", ErrSyntax},
		{"STORE bad item", "a STORE 1 FLAGZ x", "a", ErrSyntax},
		{"UID EXPUNGE without set", "a UID EXPUNGE", "a", ErrSyntax},
		{"AUTHENTICATE bad base64", "a AUTHENTICATE PLAIN abc", "a", ErrSyntax},
		{"ID odd list", `a ID ("name")`, "a", ErrSyntax},
		{"CREATE USE without backslash", `a CREATE x (USE (Sent))`, "a", ErrSyntax},
		{"CR without LF", "a NOOP\rb NOOP", "a", ErrSyntax},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSession(t, tt.input+"\r\nz NOOP\r\n", Limits{})
			e := s.readErr(t)
			if e.Tag != tt.tag || e.Code != tt.code || e.Fatal {
				t.Errorf("error = %+v, want tag %q code %v", e, tt.tag, tt.code)
			}
			if c := s.read(t); c.Tag != "z" {
				t.Errorf("next command = %+v, want z NOOP", c)
			}
			s.eof(t)
		})
	}
}

// UTF8=ACCEPT (RFC 6855 §3): names are UTF-8, "&" is just "&".
func TestUTF8Accept(t *testing.T) {
	in := "a SELECT &ZeVnLIqe-\r\nb SELECT \"Caf\xc3\xa9\"\r\n"
	s := newSession(t, in, Limits{})
	if got := s.read(t).Args.(*Select).Mailbox; got != "日本語" {
		t.Errorf("modified UTF-7 name = %q", got)
	}
	if got := s.read(t).Args.(*Select).Mailbox; got != "Café" {
		t.Errorf("raw UTF-8 without UTF8=ACCEPT = %q, want it taken", got)
	}
	s = newSession(t, in+"c SELECT {1+}\r\n\xff\r\n", Limits{})
	s.p.SetUTF8(true)
	if got := s.read(t).Args.(*Select).Mailbox; got != "&ZeVnLIqe-" {
		t.Errorf("name under UTF8=ACCEPT = %q, want it as sent", got)
	}
	s.read(t)
	if e := s.readErr(t); e.Code != ErrMailboxName {
		t.Errorf("invalid UTF-8 name = %+v, want ErrMailboxName", e)
	}
	// Unquoted UTF-8 is taken under UTF8=ACCEPT (Python's imaplib sends
	// names so); invalid UTF-8 is still refused, and without UTF8=ACCEPT
	// an 8-bit atom is a syntax error.
	s = newSession(t, "a CREATE Gr\xc3\xbc\xc3\x9fe\r\nb CREATE x\xff\r\n", Limits{})
	s.p.SetUTF8(true)
	if got := s.read(t).Args.(*Create).Mailbox; got != "Grüße" {
		t.Errorf("unquoted UTF-8 name = %q, want Grüße", got)
	}
	if e := s.readErr(t); e.Code != ErrMailboxName {
		t.Errorf("unquoted invalid UTF-8 = %+v, want ErrMailboxName", e)
	}
	s = newSession(t, "a CREATE Gr\xc3\xbc\xc3\x9fe\r\n", Limits{})
	if e := s.readErr(t); e.Code != ErrSyntax {
		t.Errorf("unquoted UTF-8 without UTF8=ACCEPT = %+v, want a syntax error", e)
	}
}

func TestReadLine(t *testing.T) {
	s := newSession(t, "AGFsaWNlAHB3\r\n*\r\ndone\r\nnope\r\n", Limits{})
	if resp, canceled, err := s.p.ReadSASL(); err != nil || canceled || string(resp) != "\x00alice\x00pw" {
		t.Errorf("ReadSASL() = %q, %v, %v", resp, canceled, err)
	}
	if _, canceled, err := s.p.ReadSASL(); err != nil || !canceled {
		t.Errorf("ReadSASL(*) = %v, %v, want canceled", canceled, err)
	}
	if err := s.p.ReadDone(); err != nil {
		t.Errorf("ReadDone(done) = %v", err)
	}
	if err := s.p.ReadDone(); err == nil {
		t.Errorf("ReadDone(nope) = nil, want an error")
	}
	s.eof(t)
}
