package jmap

import (
	"context"
	"encoding/json"
	"net/http"
	"slices"
	"testing"
)

// TestMailboxes: Mailbox/get with roles from special-use, Mailbox/set
// (a child created under a parent created in the same call, a rename,
// refusals), /changes with updatedProperties for count-only changes,
// and /query; the store holds what the answers say.
func TestMailboxes(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	ctx := context.Background()
	res := env.call1(t, "Mailbox/get", map[string]any{"properties": []string{"name", "role", "parentId", "totalEmails", "myRights"}})
	roles := map[string]any{}
	for _, m := range res["list"].([]any) {
		mb := m.(map[string]any)
		roles[mb["name"].(string)] = mb["role"]
	}
	for name, role := range map[string]any{"INBOX": "inbox", "Sent": "sent", "Drafts": "drafts", "Trash": "trash", "Junk": "junk", "Archive": "archive"} {
		if roles[name] != role {
			t.Errorf("role of %s = %v; want %v", name, roles[name], role)
		}
	}
	state0 := res["state"].(string)

	res = env.call1(t, "Mailbox/set", map[string]any{"create": map[string]any{
		"child":  map[string]any{"name": "Q3", "parentId": "#parent"},
		"parent": map[string]any{"name": "Projects", "isSubscribed": true},
		"bad":    map[string]any{"name": "a/b"},
		"dup":    map[string]any{"name": "INBOX"},
	}})
	created, _ := res["created"].(map[string]any)
	notCreated, _ := res["notCreated"].(map[string]any)
	if len(created) != 2 || notCreated["bad"] == nil || notCreated["dup"] == nil {
		t.Fatalf("Mailbox/set create: %s", jsonString(res))
	}
	parent := created["parent"].(map[string]any)["id"].(string)
	child := created["child"].(map[string]any)["id"].(string)
	if mb, err := env.store.Mailbox(ctx, env.user.User, "Projects/Q3"); err != nil || mailboxID(mb.ID) != child {
		t.Errorf("store mailbox Projects/Q3 = %v, %v; want id %s", mb, err, child)
	}
	got := env.call1(t, "Mailbox/get", map[string]any{"ids": []string{child, "M999999"}, "properties": []string{"name", "parentId"}})
	if jsonString(got["list"]) != `[{"id":"`+child+`","name":"Q3","parentId":"`+parent+`"}]` || !slices.Equal(strs(got["notFound"]), []string{"M999999"}) {
		t.Errorf("Mailbox/get child: %s", jsonString(got))
	}
	ch := env.call1(t, "Mailbox/changes", map[string]any{"sinceState": state0})
	if c := strs(ch["created"]); len(c) != 2 || ch["updatedProperties"] != nil {
		t.Errorf("Mailbox/changes after create: %s", jsonString(ch))
	}
	state1 := ch["newState"].(string)

	// A delivery changes only INBOX's counts.
	env.deliver(t, "From: a@example.org\nSubject: x\n\ny\n")
	ch = env.call1(t, "Mailbox/changes", map[string]any{"sinceState": state1})
	if !slices.Equal(strs(ch["updated"]), []string{mailboxID(env.user.Mailbox)}) || len(strs(ch["updatedProperties"])) != 4 {
		t.Errorf("Mailbox/changes after a delivery: %s; want INBOX, counts only", jsonString(ch))
	}
	state2 := ch["newState"].(string)

	// Rename the parent: the child keeps its id and its parent.
	res = env.call1(t, "Mailbox/set", map[string]any{"update": map[string]any{parent: map[string]any{"name": "Archive2024"}}})
	if _, ok := res["updated"].(map[string]any)[parent]; !ok {
		t.Fatalf("rename: %s", jsonString(res))
	}
	if _, err := env.store.Mailbox(ctx, env.user.User, "Archive2024/Q3"); err != nil {
		t.Errorf("after rename, Archive2024/Q3: %v", err)
	}
	ch = env.call1(t, "Mailbox/changes", map[string]any{"sinceState": state2})
	if !slices.Contains(strs(ch["updated"]), parent) || ch["updatedProperties"] != nil {
		t.Errorf("Mailbox/changes after rename: %s", jsonString(ch))
	}
	// Refusals: a parent with a child, INBOX, renaming INBOX.
	res = env.call1(t, "Mailbox/set", map[string]any{"destroy": []string{parent, mailboxID(env.user.Mailbox)},
		"update": map[string]any{mailboxID(env.user.Mailbox): map[string]any{"name": "Other"}}})
	nd := res["notDestroyed"].(map[string]any)
	if nd[parent].(map[string]any)["type"] != "mailboxHasChild" || nd[mailboxID(env.user.Mailbox)] == nil || res["notUpdated"] == nil {
		t.Errorf("refusals: %s", jsonString(res))
	}
	// Mailbox/query: a role filter, and children of a parent.
	q := env.call1(t, "Mailbox/query", map[string]any{"filter": map[string]any{"role": "inbox"}})
	if !slices.Equal(strs(q["ids"]), []string{mailboxID(env.user.Mailbox)}) {
		t.Errorf("Mailbox/query role inbox: %v", q)
	}
	q = env.call1(t, "Mailbox/query", map[string]any{"filter": map[string]any{"parentId": parent}})
	if !slices.Equal(strs(q["ids"]), []string{child}) {
		t.Errorf("Mailbox/query parentId: %v", q)
	}
	q = env.call1(t, "Mailbox/query", map[string]any{"filter": map[string]any{"isSubscribed": true}})
	if !slices.Contains(strs(q["ids"]), parent) {
		t.Errorf("Mailbox/query isSubscribed: %v; want the subscribed parent", q)
	}
	if got := env.callErr(t, "Mailbox/queryChanges", map[string]any{"accountId": env.account(), "sinceQueryState": "1"}); got != "cannotCalculateChanges" {
		t.Errorf("Mailbox/queryChanges: %q; want cannotCalculateChanges", got)
	}
}

// TestUploadImport: an upload becomes an Email by Email/import, in two
// mailboxes with keywords; Thread/get and Thread/changes follow; the
// upload limits hold.
func TestUploadImport(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{MaxSizeUpload: 1000})
	raw := "From: x@example.org\r\nSubject: imported\r\n\r\nhi\r\n"
	status, body := env.do(t, "POST", "/jmap/upload/"+env.account()+"/", testUser, testPassword, []byte(raw))
	var up map[string]any
	json.Unmarshal(body, &up)
	if status != http.StatusCreated || up["size"] != float64(len(raw)) || up["accountId"] != env.account() {
		t.Fatalf("upload: %d %s", status, body)
	}
	if status, _ := env.do(t, "POST", "/jmap/upload/"+env.account()+"/", testUser, testPassword, make([]byte, 1001)); status != http.StatusRequestEntityTooLarge {
		t.Errorf("upload over maxSizeUpload: %d; want 413", status)
	}
	if status, _ := env.do(t, "POST", "/jmap/upload/"+accountID(env.other.User)+"/", testUser, testPassword, []byte(raw)); status != http.StatusNotFound {
		t.Errorf("upload to bob's account: %d; want 404", status)
	}
	state0 := env.call1(t, "Thread/get", map[string]any{"ids": []string{}})["state"].(string)
	sent, err := env.store.Mailbox(t.Context(), env.user.User, "Sent")
	if err != nil {
		t.Fatal(err)
	}
	res := env.call1(t, "Email/import", map[string]any{"emails": map[string]any{
		"a":    map[string]any{"blobId": up["blobId"], "mailboxIds": map[string]bool{mailboxID(env.user.Mailbox): true, mailboxID(sent.ID): true}, "keywords": map[string]bool{"$seen": true}, "receivedAt": "2025-03-04T05:06:07Z"},
		"none": map[string]any{"blobId": "Unope", "mailboxIds": map[string]bool{mailboxID(env.user.Mailbox): true}},
		"bob":  map[string]any{"blobId": up["blobId"], "mailboxIds": map[string]bool{mailboxID(env.other.Mailbox): true}},
	}})
	created, _ := res["created"].(map[string]any)
	nc, _ := res["notCreated"].(map[string]any)
	if len(created) != 1 || nc["none"].(map[string]any)["type"] != "blobNotFound" || nc["bob"] == nil {
		t.Fatalf("Email/import: %s", jsonString(res))
	}
	id := created["a"].(map[string]any)["id"].(string)
	got := env.call1(t, "Email/get", map[string]any{"ids": []string{id}, "properties": []string{"mailboxIds", "keywords", "receivedAt", "subject", "threadId"}})
	m := got["list"].([]any)[0].(map[string]any)
	if len(m["mailboxIds"].(map[string]any)) != 2 || jsonString(m["keywords"]) != `{"$seen":true}` || m["receivedAt"] != "2025-03-04T05:06:07Z" || m["subject"] != "imported" {
		t.Errorf("imported email: %s", jsonString(m))
	}
	if st, _ := env.store.Status(t.Context(), env.other.Mailbox); st.Messages != 0 {
		t.Errorf("bob's INBOX holds %d messages; want 0", st.Messages)
	}
	th := env.call1(t, "Thread/get", map[string]any{"ids": []string{m["threadId"].(string)}})
	if jsonString(th["list"]) != `[{"emailIds":["`+id+`"],"id":"`+m["threadId"].(string)+`"}]` {
		t.Errorf("Thread/get: %s", jsonString(th))
	}
	tc := env.call1(t, "Thread/changes", map[string]any{"sinceState": state0})
	if !slices.Equal(strs(tc["created"]), []string{m["threadId"].(string)}) {
		t.Errorf("Thread/changes: %s", jsonString(tc))
	}
}
