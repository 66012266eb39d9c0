package jmap

import (
	"net/http"
	"slices"
	"testing"

	"pushmail/mailstore"
)

// TestSetPreamble: every /set and /import method takes openSet's steps
// through the real HTTP API, in the same order. More objects than
// maxObjectsInSet is requestTooLarge even with a wrong ifInState (the
// count comes first); a wrong ifInState is stateMismatch (RFC 8620
// §5.3), and PushSubscription/set, which has no state, refuses the
// argument; an unknown argument is invalidArguments. None of them
// changes the store. A right ifInState lets the change through: oldState
// is the state asked for, newState the store's state afterwards.
func TestSetPreamble(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{MaxObjectsInSet: 2})
	env.deliver(t, "From: x@example.org\nSubject: one\n\nbody\n")
	ids := env.emailIDs(t, nil)
	if len(ids) != 1 {
		t.Fatalf("emails %v; want 1", ids)
	}
	e1 := ids[0]
	n1, _ := parseEmail(e1)
	inbox := mailboxID(env.user.Mailbox)
	ctx := t.Context()

	// snapshot is what a refused call must leave as it was.
	type snapshot struct {
		state     mailstore.AccountState
		mailboxes int
		messages  uint32
		flags     []string
		pushes    int
	}
	snap := func() snapshot {
		t.Helper()
		st, err := env.store.AccountState(ctx, env.user.User)
		if err != nil {
			t.Fatal(err)
		}
		mbs, err := env.store.Mailboxes(ctx, env.user.User)
		if err != nil {
			t.Fatal(err)
		}
		inboxStatus, err := env.store.Status(ctx, env.user.Mailbox)
		if err != nil {
			t.Fatal(err)
		}
		emails, err := env.store.Emails(ctx, env.user.User, []mailstore.EmailID{n1}, mailstore.EmailOptions{})
		if err != nil || len(emails) != 1 {
			t.Fatalf("Emails(%s) = %v, %v", e1, emails, err)
		}
		subs, err := env.store.PushSubscriptions(ctx, env.user.User)
		if err != nil {
			t.Fatal(err)
		}
		return snapshot{st, len(mbs), inboxStatus.Messages, slices.Sorted(slices.Values(emails[0].Flags)), len(subs)}
	}
	same := func(a, b snapshot) bool {
		return a.state == b.state && a.mailboxes == b.mailboxes && a.messages == b.messages && slices.Equal(a.flags, b.flags) && a.pushes == b.pushes
	}

	push := func(dev string) map[string]any {
		return map[string]any{"deviceClientId": dev, "url": "https://push.example.org/" + dev}
	}
	cases := []struct {
		method string
		kind   mailstore.ChangeKind
		// tooMany names three objects; one makes one change, which
		// changed checks in the store.
		tooMany, one map[string]any
		changed      func(before, after snapshot) bool
	}{
		{"Email/set", mailstore.KindEmail,
			map[string]any{"update": map[string]any{e1: map[string]any{"keywords/$seen": true}}, "destroy": []string{e1, "E999"}},
			map[string]any{"update": map[string]any{e1: map[string]any{"keywords/$flagged": true}}},
			func(_, after snapshot) bool { return slices.Contains(after.flags, mailstore.FlagFlagged) }},
		{"Email/import", mailstore.KindEmail,
			map[string]any{"emails": map[string]any{
				"a": map[string]any{"blobId": emailBlobID(n1), "mailboxIds": map[string]bool{inbox: true}},
				"b": map[string]any{"blobId": emailBlobID(n1), "mailboxIds": map[string]bool{inbox: true}},
				"c": map[string]any{"blobId": emailBlobID(n1), "mailboxIds": map[string]bool{inbox: true}}}},
			map[string]any{"emails": map[string]any{"a": map[string]any{"blobId": emailBlobID(n1), "mailboxIds": map[string]bool{inbox: true}}}},
			func(before, after snapshot) bool { return after.messages == before.messages+1 }},
		{"Mailbox/set", mailstore.KindMailbox,
			map[string]any{"create": map[string]any{"a": map[string]any{"name": "A"}, "b": map[string]any{"name": "B"}}, "destroy": []string{inbox}},
			map[string]any{"create": map[string]any{"w": map[string]any{"name": "Work"}}},
			func(before, after snapshot) bool { return after.mailboxes == before.mailboxes+1 }},
		{"PushSubscription/set", noState,
			map[string]any{"create": map[string]any{"a": push("a"), "b": push("b"), "c": push("c")}},
			map[string]any{"create": map[string]any{"p": push("p")}},
			func(before, after snapshot) bool { return after.pushes == before.pushes+1 }},
	}
	// withArgs is args plus the ones given, and accountId where the
	// method takes one.
	withArgs := func(kind mailstore.ChangeKind, args map[string]any, more ...any) map[string]any {
		out := map[string]any{}
		if kind != noState {
			out["accountId"] = env.account()
		}
		for k, v := range args {
			out[k] = v
		}
		for i := 0; i+1 < len(more); i += 2 {
			out[more[i].(string)] = more[i+1]
		}
		return out
	}
	for _, tc := range cases {
		t.Run(tc.method, func(t *testing.T) {
			before := snap()
			state := func() string {
				if tc.kind == noState {
					return "0"
				}
				return stateString(stateOf(before.state, tc.kind))
			}()
			wrong := state + "9"
			refused := []struct {
				what string
				args map[string]any
				want string
			}{
				{"too many objects", withArgs(tc.kind, tc.tooMany), "requestTooLarge"},
				{"too many objects, wrong ifInState", withArgs(tc.kind, tc.tooMany, "ifInState", wrong), "requestTooLarge"},
				{"unknown argument", withArgs(tc.kind, tc.one, "bogus", true), "invalidArguments"},
				{"wrong ifInState", withArgs(tc.kind, tc.one, "ifInState", wrong), "stateMismatch"},
			}
			if tc.kind == noState {
				// RFC 8620 §7.2.2: PushSubscription/set takes no
				// ifInState.
				refused[1].want, refused[3].want = "invalidArguments", "invalidArguments"
			}
			if tc.method == "Email/import" {
				// A missing emails is refused before the state is read.
				refused = append(refused, struct {
					what string
					args map[string]any
					want string
				}{"no emails, wrong ifInState", withArgs(tc.kind, nil, "ifInState", wrong), "invalidArguments"})
			}
			for _, r := range refused {
				if got := env.callErr(t, tc.method, r.args); got != r.want {
					t.Errorf("%s with %s = %q; want %q", tc.method, r.what, got, r.want)
				}
				if after := snap(); !same(before, after) {
					t.Errorf("%s with %s changed the store: %+v, was %+v", tc.method, r.what, after, before)
				}
			}

			args := withArgs(tc.kind, tc.one)
			if tc.kind != noState {
				args["ifInState"] = state
			}
			var res map[string]any
			if tc.kind == noState {
				// call1 would add an accountId.
				var name string
				if name, res = pushTestCall(t, env, tc.method, args); name != tc.method {
					t.Fatalf("%s: %s %s", tc.method, name, jsonString(res))
				}
			} else {
				res = env.call1(t, tc.method, args)
			}
			after := snap()
			if !tc.changed(before, after) {
				t.Errorf("%s with the right ifInState: %s; the store did not change: %+v", tc.method, jsonString(res), after)
			}
			if nc := res["notCreated"]; nc != nil || res["notUpdated"] != nil {
				t.Errorf("%s: %s; want no failures", tc.method, jsonString(res))
			}
			if tc.kind == noState {
				for _, k := range []string{"accountId", "oldState", "newState"} {
					if _, ok := res[k]; ok {
						t.Errorf("%s answers %s: %s", tc.method, k, jsonString(res))
					}
				}
				return
			}
			now := stateString(stateOf(after.state, tc.kind))
			if res["accountId"] != env.account() || res["oldState"] != state || res["newState"] != now || now == state {
				t.Errorf("%s: %s; want oldState %s, newState %s (the store's)", tc.method, jsonString(res), state, now)
			}
		})
	}
}

// TestDeletedInvisible: RFC 8621 §4.1.1, "Any message with the \Deleted
// keyword MUST NOT be visible via JMAP". An email flagged \Deleted (as
// an IMAP client flags it) is left out by Email/query, and every other
// way to name it answers as for an email that does not exist:
// Email/get, Thread/get and SearchSnippet/get list it in notFound, its
// blobs are not found for download or Email/import, and Email/set
// neither updates nor destroys it. The store still holds it; once the
// flag is gone, it is visible again and can be destroyed.
func TestDeletedInvisible(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	ctx := t.Context()
	env.deliver(t, "From: x@example.org\nSubject: kept\n\nthe needle is here\n")
	env.deliver(t, "From: x@example.org\nSubject: gone\n\nthe needle is there\n")
	all := env.emailIDs(t, nil)
	if len(all) != 2 {
		t.Fatalf("emails %v; want 2", all)
	}
	// The second delivery is UID 2 in INBOX.
	setDeleted := func(op mailstore.FlagOp) {
		t.Helper()
		if _, err := env.store.StoreFlags(ctx, env.user.Mailbox, mailstore.UIDSetOf(2), op, []string{mailstore.FlagDeleted}, 0); err != nil {
			t.Fatalf("StoreFlags = %v", err)
		}
	}
	setDeleted(mailstore.FlagsAdd)
	visible := env.emailIDs(t, nil)
	if len(visible) != 1 {
		t.Fatalf("Email/query after \\Deleted: %v; want 1 email", visible)
	}
	kept := visible[0]
	gone := all[0]
	if gone == kept {
		gone = all[1]
	}
	n, _ := parseEmail(gone)
	inboxHolds := func(want uint32) {
		t.Helper()
		st, err := env.store.Status(ctx, env.user.Mailbox)
		if err != nil || st.Messages != want {
			t.Fatalf("INBOX holds %d messages (%v); want %d", st.Messages, err, want)
		}
	}

	// check asserts that gone is (in)visible everywhere but Email/query.
	check := func(wantVisible bool) {
		t.Helper()
		var wantNotFound []string
		if !wantVisible {
			wantNotFound = []string{gone}
		}
		listed := func(list any, key string) []string {
			var out []string
			for _, o := range list.([]any) {
				out = append(out, o.(map[string]any)[key].(string))
			}
			slices.Sort(out)
			return out
		}
		wantListed := []string{kept}
		if wantVisible {
			wantListed = slices.Sorted(slices.Values([]string{kept, gone}))
		}
		get := env.call1(t, "Email/get", map[string]any{"ids": []string{kept, gone}, "properties": []string{"id"}})
		if !slices.Equal(listed(get["list"], "id"), wantListed) || !slices.Equal(strs(get["notFound"]), wantNotFound) {
			t.Errorf("Email/get: %s; want list %v, notFound %v", jsonString(get), wantListed, wantNotFound)
		}
		snip := env.call1(t, "SearchSnippet/get", map[string]any{"emailIds": []string{kept, gone}, "filter": map[string]any{"text": "needle"}})
		if !slices.Equal(listed(snip["list"], "emailId"), wantListed) || !slices.Equal(strs(snip["notFound"]), wantNotFound) {
			t.Errorf("SearchSnippet/get: %s; want list %v, notFound %v", jsonString(snip), wantListed, wantNotFound)
		}
		th := env.call1(t, "Thread/get", map[string]any{"ids": []string{threadID(n)}})
		if wantVisible != (len(th["list"].([]any)) == 1) {
			t.Errorf("Thread/get: %s; want visible %v", jsonString(th), wantVisible)
		}
		wantStatus := http.StatusNotFound
		if wantVisible {
			wantStatus = http.StatusOK
		}
		for _, blob := range []string{emailBlobID(n), partBlobID(n, "1")} {
			if status, body := env.do(t, "GET", "/jmap/download/"+env.account()+"/"+blob+"/m.eml", testUser, testPassword, nil); status != wantStatus {
				t.Errorf("download %s: %d %s; want %d", blob, status, body, wantStatus)
			}
		}
	}
	check(false)
	imp := env.call1(t, "Email/import", map[string]any{"emails": map[string]any{
		"a": map[string]any{"blobId": emailBlobID(n), "mailboxIds": map[string]bool{mailboxID(env.user.Mailbox): true}}}})
	nc, _ := imp["notCreated"].(map[string]any)
	if e, _ := nc["a"].(map[string]any); e["type"] != "blobNotFound" {
		t.Errorf("Email/import of its blob: %s; want blobNotFound", jsonString(imp))
	}
	set := env.call1(t, "Email/set", map[string]any{"update": map[string]any{gone: map[string]any{"keywords/$seen": true}}, "destroy": []string{gone}})
	notUpdated, _ := set["notUpdated"].(map[string]any)
	notDestroyed, _ := set["notDestroyed"].(map[string]any)
	nu, _ := notUpdated[gone].(map[string]any)
	nd, _ := notDestroyed[gone].(map[string]any)
	if nu["type"] != "notFound" || nd["type"] != "notFound" {
		t.Errorf("Email/set update and destroy: %s; want notFound for both", jsonString(set))
	}
	inboxHolds(2)

	setDeleted(mailstore.FlagsRemove)
	check(true)
	set = env.call1(t, "Email/set", map[string]any{"destroy": []string{gone}})
	if !slices.Equal(strs(set["destroyed"]), []string{gone}) {
		t.Errorf("Email/set destroy once visible: %s", jsonString(set))
	}
	inboxHolds(1)
}
