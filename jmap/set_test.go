package jmap

import (
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
