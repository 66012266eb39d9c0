package mailstore

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestKeywords: Keywords lists each keyword some message of the mailbox
// carries, once whatever its case, sorted; system flags are not
// keywords; a keyword goes once no message has it; other mailboxes'
// keywords are not listed.
func TestKeywords(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	other, err := s.CreateMailbox(ctx, r.User, "Other", "")
	if err != nil {
		t.Fatalf("CreateMailbox(Other) = %v", err)
	}
	check := func(what string, mb MailboxID, want []string) {
		t.Helper()
		got, err := s.Keywords(ctx, mb)
		if err != nil {
			t.Fatalf("%s: Keywords(%d) = %v", what, mb, err)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: Keywords(%d) = %q, want %q", what, mb, got, want)
		}
	}
	check("empty mailbox", r.Mailbox, nil)
	deliverN(t, s, r, 3)
	check("messages without flags", r.Mailbox, nil)

	steps := []struct {
		name  string
		set   UIDSet
		op    FlagOp
		flags []string
		want  []string
	}{
		{"system flags are not keywords", AllUIDs(), FlagsAdd, []string{FlagSeen, FlagFlagged}, nil},
		{"one keyword", UIDSetOf(1), FlagsAdd, []string{"Work"}, []string{"Work"}},
		{"another spelling of it is the same keyword", UIDSetOf(2), FlagsAdd, []string{"work", "$Junk"}, []string{"$Junk", "Work"}},
		{"keywords combined on one message", UIDSetOf(3), FlagsAdd, []string{"b", "a", "$Junk"}, []string{"$Junk", "Work", "a", "b"}},
		{"a keyword goes with its last message", UIDSetOf(3), FlagsRemove, []string{"a"}, []string{"$Junk", "Work", "b"}},
		{"removed from one message, kept by another", UIDSetOf(1), FlagsRemove, []string{"Work"}, []string{"$Junk", "b", "work"}},
		{"FLAGS () clears all", AllUIDs(), FlagsSet, nil, nil},
	}
	for _, st := range steps {
		if _, err := s.StoreFlags(ctx, r.Mailbox, st.set, st.op, st.flags, 0); err != nil {
			t.Fatalf("%s: StoreFlags = %v", st.name, err)
		}
		check(st.name, r.Mailbox, st.want)
	}

	if _, err := s.Append(ctx, other.ID, testMessage(9), []string{"Appended", FlagDraft}, time.Now(), 0); err != nil {
		t.Fatalf("Append(Other) = %v", err)
	}
	check("appended to another mailbox", other.ID, []string{"Appended"})
	check("INBOX does not list Other's", r.Mailbox, nil)
	check("unknown mailbox", MailboxID(1<<40), nil)
}

// undoSchema8 turns a file written at schema 8 back into one of schema 7,
// for the tests of older files.
const undoSchema8 = `DROP INDEX messages_keywords;
`

// Keywords reads the index of messages that carry any, not every message
// of the mailbox (schema 8).
func TestKeywordsQueryPlan(t *testing.T) {
	sqliteOnly(t)
	t.Parallel()
	s := openTestStore(t, Options{})
	var plan []string
	rows, err := s.rdb.Query("EXPLAIN QUERY PLAN SELECT DISTINCT keywords FROM messages WHERE mailbox_id = ? AND keywords != ''", 1)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	for rows.Next() {
		var id, parent, unused int
		var detail string
		if err := rows.Scan(&id, &parent, &unused, &detail); err != nil {
			t.Fatal(err)
		}
		plan = append(plan, detail)
	}
	if got := strings.Join(plan, "; "); !strings.Contains(got, "USING COVERING INDEX messages_keywords") {
		t.Errorf("Keywords plan = %q, want the covering index messages_keywords", got)
	}
}
