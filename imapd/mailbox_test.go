package imapd

import (
	"context"
	"slices"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// listNames runs LIST and returns name → attributes.
func listNames(t *testing.T, c *imapclient.Client, ref, pattern string, options *imap.ListOptions) map[string][]imap.MailboxAttr {
	t.Helper()
	list, err := c.List(ref, pattern, options).Collect()
	if err != nil {
		t.Fatalf("LIST %q %q = %v", ref, pattern, err)
	}
	out := map[string][]imap.MailboxAttr{}
	for _, d := range list {
		if d.Delim != '/' {
			t.Errorf("LIST %s: delimiter %q, want /", d.Mailbox, d.Delim)
		}
		out[d.Mailbox] = d.Attrs
	}
	return out
}

func keys(m map[string][]imap.MailboxAttr) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

func TestListPatterns(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.login(t, nil)
	for _, name := range []string{"Work/Project/2024", "Work/Notes", "Entwürfe/Grüße"} {
		if err := c.Create(name, nil).Wait(); err != nil {
			t.Fatalf("CREATE %s = %v", name, err)
		}
	}
	tests := []struct {
		ref, pattern string
		want         []string
	}{
		{"", "*", []string{"Archive", "Drafts", "Entwürfe", "Entwürfe/Grüße", "INBOX", "Junk", "Sent", "Trash", "Work", "Work/Notes", "Work/Project", "Work/Project/2024"}},
		{"", "%", []string{"Archive", "Drafts", "Entwürfe", "INBOX", "Junk", "Sent", "Trash", "Work"}},
		{"", "Work/%", []string{"Work/Notes", "Work/Project"}},
		{"Work/", "%", []string{"Work/Notes", "Work/Project"}},
		{"Work", "*", []string{"Work/Notes", "Work/Project", "Work/Project/2024"}},
		{"", "inbox", []string{"INBOX"}},
		{"", "*2024", []string{"Work/Project/2024"}},
		{"", "Entwürfe/*", []string{"Entwürfe/Grüße"}},
		{"", "nothing*", nil},
	}
	for _, tt := range tests {
		got := keys(listNames(t, c, tt.ref, tt.pattern, nil))
		if !slices.Equal(got, tt.want) {
			t.Errorf("LIST %q %q = %v, want %v", tt.ref, tt.pattern, got, tt.want)
		}
	}

	attrs := listNames(t, c, "", "*", nil)
	for name, want := range map[string][]imap.MailboxAttr{
		"Work":              {imap.MailboxAttrHasChildren},
		"Work/Notes":        {imap.MailboxAttrHasNoChildren},
		"Sent":              {imap.MailboxAttrHasNoChildren, imap.MailboxAttrSent},
		"Trash":             {imap.MailboxAttrHasNoChildren, imap.MailboxAttrTrash},
		"Work/Project/2024": {imap.MailboxAttrHasNoChildren},
	} {
		if got := attrs[name]; !slices.Equal(got, want) {
			t.Errorf("LIST %s attributes = %v, want %v", name, got, want)
		}
	}

	// LIST "" "" asks for the delimiter.
	list, err := c.List("", "", nil).Collect()
	if err != nil || len(list) != 1 || list[0].Delim != '/' || list[0].Mailbox != "" {
		t.Errorf(`LIST "" "" = %+v, %v, want one reply with delimiter /`, list, err)
	}
}

func TestListSubscribedAndStatus(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	env.deliver(t, testMessage(2))
	c := env.login(t, nil)
	if err := c.Create("Lists/Go", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"INBOX", "Lists/Go"} {
		if err := c.Subscribe(name).Wait(); err != nil {
			t.Fatalf("SUBSCRIBE %s = %v", name, err)
		}
	}
	// AddUser subscribes the default mailboxes.
	defaults := []string{"Archive", "Drafts", "INBOX", "Junk", "Sent", "Trash"}
	got := listNames(t, c, "", "*", &imap.ListOptions{SelectSubscribed: true})
	if names, want := keys(got), []string{"Archive", "Drafts", "INBOX", "Junk", "Lists/Go", "Sent", "Trash"}; !slices.Equal(names, want) {
		t.Errorf("LIST (SUBSCRIBED) = %v, want %v", names, want)
	}
	if !slices.Contains(got["INBOX"], imap.MailboxAttrSubscribed) {
		t.Errorf("LIST (SUBSCRIBED) INBOX attributes %v lack \\Subscribed", got["INBOX"])
	}
	if err := c.Unsubscribe("Lists/Go").Wait(); err != nil {
		t.Fatalf("UNSUBSCRIBE = %v", err)
	}
	if names := keys(listNames(t, c, "", "*", &imap.ListOptions{SelectSubscribed: true})); !slices.Equal(names, defaults) {
		t.Errorf("LIST (SUBSCRIBED) after UNSUBSCRIBE = %v, want %v", names, defaults)
	}
	// RFC 5258 §3.5: RECURSIVEMATCH lists the parent of a subscribed child.
	if err := c.Subscribe("Lists/Go").Wait(); err != nil {
		t.Fatal(err)
	}
	list, err := c.List("", "%", &imap.ListOptions{SelectSubscribed: true, SelectRecursiveMatch: true}).Collect()
	if err != nil {
		t.Fatalf("LIST (SUBSCRIBED RECURSIVEMATCH) = %v", err)
	}
	var lists *imap.ListData
	for _, d := range list {
		if d.Mailbox == "Lists" {
			lists = d
		}
	}
	if lists == nil || lists.ChildInfo == nil || !lists.ChildInfo.Subscribed {
		t.Errorf("LIST (SUBSCRIBED RECURSIVEMATCH) \"\" %% = %+v, want Lists with CHILDINFO (SUBSCRIBED)", list)
	}

	list, err = c.List("", "INBOX", &imap.ListOptions{ReturnStatus: &imap.StatusOptions{NumMessages: true, NumUnseen: true, UIDNext: true}}).Collect()
	if err != nil || len(list) != 1 || list[0].Status == nil {
		t.Fatalf("LIST RETURN (STATUS) = %+v, %v", list, err)
	}
	if st := list[0].Status; *st.NumMessages != 2 || *st.NumUnseen != 2 || st.UIDNext != 3 {
		t.Errorf("LIST-STATUS INBOX = messages %d unseen %d uidnext %d, want 2 2 3", *st.NumMessages, *st.NumUnseen, st.UIDNext)
	}

	st, err := c.Status("INBOX", &imap.StatusOptions{
		NumMessages: true, UIDNext: true, UIDValidity: true, NumUnseen: true, NumDeleted: true, Size: true,
	}).Wait()
	if err != nil {
		t.Fatalf("STATUS INBOX = %v", err)
	}
	size := int64(len(testMessage(1)) + len(testMessage(2)))
	if *st.NumMessages != 2 || st.UIDNext != 3 || st.UIDValidity == 0 || *st.NumUnseen != 2 || *st.NumDeleted != 0 || *st.Size != size {
		t.Errorf("STATUS INBOX = %+v, want 2 messages, UIDNEXT 3, 2 unseen, 0 deleted, size %d", st, size)
	}
	if _, err := c.Status("Nope", &imap.StatusOptions{NumMessages: true}).Wait(); imapCode(err) != imap.ResponseCodeNonExistent {
		t.Errorf("STATUS Nope = %v, want NO [NONEXISTENT]", err)
	}
}

func TestCreateDeleteRename(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	env.deliver(t, testMessage(1))
	c := env.login(t, nil)
	steps := []struct {
		name     string
		run      func() error
		wantType imap.StatusResponseType // "" for OK
		wantCode imap.ResponseCode
	}{
		{"CREATE a/b", func() error { return c.Create("a/b", nil).Wait() }, "", ""},
		{"CREATE trailing separator", func() error { return c.Create("c/", nil).Wait() }, "", ""},
		{"CREATE existing", func() error { return c.Create("a/b", nil).Wait() }, imap.StatusResponseTypeNo, imap.ResponseCodeAlreadyExists},
		{"CREATE inbox", func() error { return c.Create("inbox", nil).Wait() }, imap.StatusResponseTypeNo, imap.ResponseCodeAlreadyExists},
		{"CREATE empty level", func() error { return c.Create("x//y", nil).Wait() }, imap.StatusResponseTypeNo, imap.ResponseCodeCannot},
		{"CREATE USE (\\Flagged)", func() error {
			return c.Create("Starred", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{imap.MailboxAttrFlagged}}).Wait()
		}, "", ""},
		{"CREATE USE unknown", func() error {
			return c.Create("Odd", &imap.CreateOptions{SpecialUse: []imap.MailboxAttr{"\\Important"}}).Wait()
		}, imap.StatusResponseTypeNo, "USEATTR"},
		{"DELETE INBOX", func() error { return c.Delete("INBOX").Wait() }, imap.StatusResponseTypeNo, imap.ResponseCodeCannot},
		{"DELETE missing", func() error { return c.Delete("nope").Wait() }, imap.StatusResponseTypeNo, imap.ResponseCodeNonExistent},
		{"RENAME a b", func() error { return c.Rename("a", "z", nil).Wait() }, "", ""},
		{"RENAME onto existing", func() error { return c.Rename("c", "Sent", nil).Wait() }, imap.StatusResponseTypeNo, imap.ResponseCodeAlreadyExists},
		{"RENAME INBOX", func() error { return c.Rename("INBOX", "Old", nil).Wait() }, "", ""},
		{"DELETE c", func() error { return c.Delete("c").Wait() }, "", ""},
	}
	for _, s := range steps {
		err := s.run()
		if s.wantType == "" {
			if err != nil {
				t.Errorf("%s = %v, want OK", s.name, err)
			}
			continue
		}
		if imapType(err) != s.wantType || imapCode(err) != s.wantCode {
			t.Errorf("%s = %v, want %s [%s]", s.name, err, s.wantType, s.wantCode)
		}
	}
	got := listNames(t, c, "", "*", nil)
	if names := keys(got); !slices.Equal(names, []string{"Archive", "Drafts", "INBOX", "Junk", "Old", "Sent", "Starred", "Trash", "z", "z/b"}) {
		t.Errorf("LIST * = %v", names)
	}
	if !slices.Contains(got["Starred"], imap.MailboxAttrFlagged) {
		t.Errorf("Starred attributes %v lack \\Flagged", got["Starred"])
	}
	// RFC 9051 §6.3.6: renaming INBOX moves its messages and leaves it empty.
	if uids := env.storeUIDs(t, "INBOX"); len(uids) != 0 {
		t.Errorf("INBOX after RENAME INBOX = %v, want empty", uids)
	}
	if uids := env.storeUIDs(t, "Old"); len(uids) != 1 {
		t.Errorf("Old after RENAME INBOX = %v, want one message", uids)
	}
}

func TestUTF8MailboxNames(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.login(t, nil)
	const name = "Entwürfe/日本語"
	// imapclient sends modified UTF-7 (RFC 3501 §5.1.3).
	if err := c.Create(name, nil).Wait(); err != nil {
		t.Fatalf("CREATE %s = %v", name, err)
	}
	if _, err := env.store.Mailbox(context.Background(), env.user.ID, name); err != nil {
		t.Errorf("store has no mailbox %q: %v", name, err)
	}
	if _, err := c.Select(name, nil).Wait(); err != nil {
		t.Errorf("SELECT %s = %v", name, err)
	}
	if _, ok := listNames(t, c, "", "Entw*", nil)[name]; !ok {
		t.Errorf("LIST does not return %q", name)
	}

	// With UTF8=ACCEPT (RFC 6855) names travel as UTF-8.
	c2 := env.login(t, nil)
	if _, err := c2.Enable(imap.CapUTF8Accept).Wait(); err != nil {
		t.Fatalf("ENABLE UTF8=ACCEPT = %v", err)
	}
	if err := c2.Create("Ünïcödé", nil).Wait(); err != nil {
		t.Fatalf("CREATE under UTF8=ACCEPT = %v", err)
	}
	if _, ok := listNames(t, c2, "", "*", nil)["Ünïcödé"]; !ok {
		t.Error("LIST under UTF8=ACCEPT does not return Ünïcödé")
	}
}

func TestNamespace(t *testing.T) {
	t.Parallel()
	env := newTestEnv(t, envOptions{})
	c := env.login(t, nil)
	ns, err := c.Namespace().Wait()
	if err != nil {
		t.Fatalf("NAMESPACE = %v", err)
	}
	if len(ns.Personal) != 1 || ns.Personal[0].Prefix != "" || ns.Personal[0].Delim != '/' || ns.Other != nil || ns.Shared != nil {
		t.Errorf("NAMESPACE = %+v, want ((\"\" \"/\")) NIL NIL", ns)
	}
}
