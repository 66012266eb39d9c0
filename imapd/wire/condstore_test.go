package wire

import (
	"reflect"
	"testing"
)

// CONDSTORE and QRESYNC (RFC 7162): the select parameters, fetch and
// store modifiers, the MODSEQ fetch item and search key and STATUS
// HIGHESTMODSEQ, mostly from the RFC's examples.
func TestCondStoreCommands(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  Command
	}{
		{"SELECT CONDSTORE §3.1.8 example 15", "a SELECT INBOX (CONDSTORE)",
			Command{Tag: "a", Name: "SELECT", Args: &Select{Mailbox: "INBOX", CondStore: true}}},
		{"SELECT QRESYNC §3.2.5 minimal", "A02 SELECT INBOX (QRESYNC (67890007 90060115194045000))",
			Command{Tag: "A02", Name: "SELECT", Args: &Select{Mailbox: "INBOX", QResync: &QResync{UIDValidity: 67890007, ModSeq: 90060115194045000}}}},
		{"SELECT QRESYNC known-uids §3.2.5.2", "A02 SELECT INBOX (QRESYNC (67890007 90060115194045000 41:211,214:541))",
			Command{Tag: "A02", Name: "SELECT", Args: &Select{Mailbox: "INBOX", QResync: &QResync{
				UIDValidity: 67890007, ModSeq: 90060115194045000, KnownUIDs: set(NumRange{41, 211}, NumRange{214, 541})}}}},
		{"EXAMINE QRESYNC seq-match-data §3.2.5.2", "B04 EXAMINE INBOX (QRESYNC (67890007 90060115194045000 1:29997 (5000,7500,9000,9990:9999 15000,22500,27000,29970,29973,29976,29979,29982,29985,29988,29991,29994,29997)))",
			Command{Tag: "B04", Name: "EXAMINE", Args: &Select{Mailbox: "INBOX", QResync: &QResync{
				UIDValidity: 67890007, ModSeq: 90060115194045000, KnownUIDs: set(NumRange{1, 29997}),
				SeqMatch: &SeqMatch{
					Seqs: set(NumRange{5000, 5000}, NumRange{7500, 7500}, NumRange{9000, 9000}, NumRange{9990, 9999}),
					UIDs: set(NumRange{15000, 15000}, NumRange{22500, 22500}, NumRange{27000, 27000}, NumRange{29970, 29970},
						NumRange{29973, 29973}, NumRange{29976, 29976}, NumRange{29979, 29979}, NumRange{29982, 29982},
						NumRange{29985, 29985}, NumRange{29988, 29988}, NumRange{29991, 29991}, NumRange{29994, 29994},
						NumRange{29997, 29997}),
				}}}}},
		{"SELECT QRESYNC seq-match without known-uids", "a select x (qresync (1 2 (1 5)) condstore)",
			Command{Tag: "a", Name: "SELECT", Args: &Select{Mailbox: "x", CondStore: true, QResync: &QResync{
				UIDValidity: 1, ModSeq: 2, SeqMatch: &SeqMatch{Seqs: set(NumRange{1, 1}), UIDs: set(NumRange{5, 5})}}}}},
		{"FETCH CHANGEDSINCE §3.1.4.1 example 12", "s100 UID FETCH 1:* (FLAGS) (CHANGEDSINCE 12345)",
			Command{Tag: "s100", Name: "FETCH", UID: true, Args: &Fetch{Set: set(NumRange{1, 0}),
				Attrs: []FetchAttr{{Kind: FetchFlags}}, HasChangedSince: true, ChangedSince: 12345}}},
		{"FETCH MODSEQ §3.1.4.2 example 13", "a FETCH 1:3 (MODSEQ)",
			Command{Tag: "a", Name: "FETCH", Args: &Fetch{Set: set(NumRange{1, 3}), Attrs: []FetchAttr{{Kind: FetchModSeq}}}}},
		{"FETCH macro with CHANGEDSINCE", "a FETCH 1 FAST (changedsince 0)",
			Command{Tag: "a", Name: "FETCH", Args: &Fetch{Set: set(NumRange{1, 1}), Macro: "FAST",
				Attrs: []FetchAttr{{Kind: FetchFlags}, {Kind: FetchInternalDate}, {Kind: FetchRFC822Size}}, HasChangedSince: true}}},
		{"UID FETCH VANISHED §3.2.6 example", "A1 UID FETCH 300:500 (FLAGS) (CHANGEDSINCE 12345 VANISHED)",
			Command{Tag: "A1", Name: "FETCH", UID: true, Args: &Fetch{Set: set(NumRange{300, 500}),
				Attrs: []FetchAttr{{Kind: FetchFlags}}, HasChangedSince: true, ChangedSince: 12345, Vanished: true}}},
		{"STORE UNCHANGEDSINCE §3.1.3 example 9", `a103 UID STORE 6,4,8 (UNCHANGEDSINCE 12121230045) +FLAGS.SILENT (\Deleted)`,
			Command{Tag: "a103", Name: "STORE", UID: true, Args: &Store{Set: set(NumRange{6, 6}, NumRange{4, 4}, NumRange{8, 8}),
				Op: StoreAdd, Silent: true, Flags: []string{`\Deleted`}, HasUnchangedSince: true, UnchangedSince: 12121230045}}},
		{"STORE UNCHANGEDSINCE 0", `a STORE 1 (UNCHANGEDSINCE 0) FLAGS \Seen`,
			Command{Tag: "a", Name: "STORE", Args: &Store{Set: set(NumRange{1, 1}), Flags: []string{`\Seen`}, HasUnchangedSince: true}}},
		{"STATUS HIGHESTMODSEQ §3.1.6", "C STATUS blurdybloop (UIDNEXT MESSAGES HIGHESTMODSEQ)",
			Command{Tag: "C", Name: "STATUS", Args: &Status{"blurdybloop", []StatusItem{StatusUIDNext, StatusMessages, StatusHighestModSeq}}}},
		{"ENABLE QRESYNC §3.2.3", "A01 ENABLE QRESYNC", Command{Tag: "A01", Name: "ENABLE", Args: &Enable{[]string{"QRESYNC"}}}},
		{"SEARCH MODSEQ §3.1.5 example 14", `a SEARCH MODSEQ "/flags/\\draft" all 620162338`,
			Command{Tag: "a", Name: "SEARCH", Args: &Search{Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{
				{Op: SearchModSeq, Str: `/flags/\draft`, Value: "all", Num: 620162338}}}}}},
		{"SEARCH OR NOT MODSEQ", `a UID SEARCH OR NOT MODSEQ 720162338 LARGER 50000`,
			Command{Tag: "a", Name: "SEARCH", UID: true, Args: &Search{Key: SearchKey{Op: SearchAnd, Keys: []SearchKey{
				{Op: SearchOr, Keys: []SearchKey{{Op: SearchNot, Keys: []SearchKey{{Op: SearchModSeq, Num: 720162338}}}, {Op: SearchLarger, Num: 50000}}}}}}}},
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

// Malformed CONDSTORE and QRESYNC arguments are BAD, and the next command
// parses.
func TestCondStoreErrors(t *testing.T) {
	for _, in := range []string{
		"a SELECT INBOX (QRESYNC)",
		"a SELECT INBOX (QRESYNC ())",
		"a SELECT INBOX (QRESYNC (0 5))",
		"a SELECT INBOX (QRESYNC (1))",
		"a SELECT INBOX (QRESYNC (1 5 1:*))",
		"a SELECT INBOX (QRESYNC (1 5 $))",
		"a SELECT INBOX (QRESYNC (1 5 1:9 (1,2)))",
		"a SELECT INBOX (QRESYNC (1 5 1:9 (1 *)))",
		"a SELECT INBOX (QRESYNC (1 5) QRESYNC (1 5))",
		"a SELECT INBOX (QRESYNC (1 9223372036854775808))",
		"a FETCH 1 (FLAGS) (CHANGEDSINCE)",
		"a FETCH 1 (FLAGS) (CHANGEDSINCE 5 CHANGEDSINCE 6)",
		"a FETCH 1 (FLAGS) (VANISHED VANISHED)",
		"a FETCH 1 (FLAGS) (FOO)",
		"a FETCH 1 (FLAGS) ()",
		"a FETCH 1 (MODSEQ 5)",
		"a STORE 1 (UNCHANGEDSINCE) +FLAGS x",
		"a STORE 1 (UNCHANGEDSINCE 5 UNCHANGEDSINCE 6) +FLAGS x",
		"a STORE 1 (UNCHANGEDSINCE 5)+FLAGS x",
		"a STORE 1 +FLAGS x (UNCHANGEDSINCE 5)",
		"a SEARCH MODSEQ",
		"a SEARCH MODSEQ x",
		`a SEARCH MODSEQ "/flags/\\seen" 5`,
		`a SEARCH MODSEQ "/other/x" all 5`,
		`a SEARCH MODSEQ "/flags/\\seen" mine 5`,
	} {
		t.Run(in, func(t *testing.T) {
			s := newSession(t, in+"\r\nz NOOP\r\n", Limits{})
			if e := s.readErr(t); e.Tag != "a" || e.Code != ErrSyntax || e.Fatal {
				t.Errorf("error = %+v, want a syntax error for a", e)
			}
			if c := s.read(t); c.Tag != "z" {
				t.Errorf("next command = %+v, want z NOOP", c)
			}
			s.eof(t)
		})
	}
}
