package jmap

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"pushmail/wakeup"
)

// pushTestCall runs one accountless method (PushSubscription/*) and
// returns its response's name and arguments.
func pushTestCall(t *testing.T, env *testEnv, name string, args map[string]any) (string, map[string]any) {
	t.Helper()
	rs := env.api(t, []any{name, args, "c0"})
	if len(rs) != 1 {
		t.Fatalf("%s: responses %+v", name, rs)
	}
	return rs[0].Name, rs[0].Args
}

// TestPushSubscriptions: PushSubscription/set creates a subscription (the
// server sets id and expires; verificationCode must be null), the wake-up
// engine sends it a PushVerification, the client sets that code, and then
// a delivery brings one StateChange with the account's new Email state as
// Email/get reports it. /get never returns url or keys and refuses to;
// an http URL to anything but loopback is refused; another user does not
// see the subscription; destroy removes it.
func TestPushSubscriptions(t *testing.T) {
	env := newEnv(t, Limits{})
	got := make(chan []byte, 10)
	push := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.WriteHeader(http.StatusCreated)
		got <- b
	}))
	defer push.Close()
	eng, err := wakeup.New(wakeup.Options{Store: env.store, Hub: env.store.Hub(), States: env.srv.States,
		VAPID: &wakeup.VAPID{PublicKey: "unused-without-keys", PrivateKey: "unused", Subscriber: "mailto:postmaster@localhost"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		t.Fatal(err)
	}
	defer eng.Close()
	next := func() map[string]any {
		t.Helper()
		select {
		case b := <-got:
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatalf("push body %q: %v", b, err)
			}
			return m
		case <-time.After(30 * time.Second):
			t.Fatal("no push")
			return nil
		}
	}

	name, res := pushTestCall(t, env, "PushSubscription/set", map[string]any{"create": map[string]any{
		"k1":  map[string]any{"deviceClientId": "browser-1", "url": push.URL + "/sub", "types": []string{"Email"}},
		"bad": map[string]any{"deviceClientId": "x", "url": "http://push.example/sub"},
		"vc":  map[string]any{"deviceClientId": "x", "url": push.URL, "verificationCode": "mine"},
	}})
	created, _ := res["created"].(map[string]any)
	notCreated, _ := res["notCreated"].(map[string]any)
	k1, _ := created["k1"].(map[string]any)
	if name != "PushSubscription/set" || k1 == nil || k1["id"] == nil || k1["expires"] == nil || notCreated["bad"] == nil || notCreated["vc"] == nil {
		t.Fatalf("PushSubscription/set: %s %v", name, res)
	}
	id := k1["id"].(string)
	v := next()
	if v["@type"] != "PushVerification" || v["pushSubscriptionId"] != id || v["verificationCode"] == "" {
		t.Fatalf("first push %v, want the PushVerification of %s", v, id)
	}
	env.deliver(t, "Subject: before verifying\r\n\r\nx\r\n")
	_, res = pushTestCall(t, env, "PushSubscription/set", map[string]any{"update": map[string]any{id: map[string]any{"verificationCode": v["verificationCode"]}}})
	if updated, _ := res["updated"].(map[string]any); updated == nil {
		t.Fatalf("setting the verification code: %v", res)
	}
	env.deliver(t, "Subject: after verifying\r\n\r\nx\r\n")
	sc := next()
	state := env.call1(t, "Email/get", map[string]any{"ids": []string{}})["state"]
	changed, _ := sc["changed"].(map[string]any)
	acct, _ := changed[env.account()].(map[string]any)
	if sc["@type"] != "StateChange" || acct["Email"] != state || acct["Mailbox"] != nil {
		t.Errorf("push after verifying %v, want the Email state %v only", sc, state)
	}

	_, res = pushTestCall(t, env, "PushSubscription/get", map[string]any{})
	list, _ := res["list"].([]any)
	if len(list) != 1 {
		t.Fatalf("PushSubscription/get: %v", res)
	}
	sub := list[0].(map[string]any)
	if sub["id"] != id || sub["deviceClientId"] != "browser-1" || sub["verificationCode"] != v["verificationCode"] || sub["url"] != nil || sub["keys"] != nil {
		t.Errorf("PushSubscription/get entry %v", sub)
	}
	if name, res := pushTestCall(t, env, "PushSubscription/get", map[string]any{"properties": []string{"url"}}); name != "error" || res["type"] != "forbidden" {
		t.Errorf("asking for url: %s %v, want forbidden", name, res)
	}
	// bob sees none of alice's.
	status, out := env.do(t, "POST", "/jmap/api", "bob@localhost", "secret",
		[]byte(`{"using":["urn:ietf:params:jmap:core"],"methodCalls":[["PushSubscription/get",{},"c"],["PushSubscription/set",{"destroy":["`+id+`"]},"d"]]}`))
	var bob struct{ MethodResponses []response }
	if err := json.Unmarshal(out, &bob); status != 200 || err != nil || len(bob.MethodResponses) != 2 {
		t.Fatalf("bob's request: %d %s", status, out)
	}
	if l, _ := bob.MethodResponses[0].Args["list"].([]any); len(l) != 0 {
		t.Errorf("bob sees alice's subscriptions: %v", l)
	}
	if nd, _ := bob.MethodResponses[1].Args["notDestroyed"].(map[string]any); nd[id] == nil {
		t.Errorf("bob destroyed alice's subscription: %v", bob.MethodResponses[1].Args)
	}
	_, res = pushTestCall(t, env, "PushSubscription/set", map[string]any{"destroy": []string{id}})
	if d, _ := res["destroyed"].([]any); len(d) != 1 {
		t.Errorf("destroy: %v", res)
	}
	if subs, err := env.store.PushSubscriptions(context.Background(), env.user.User); err != nil || len(subs) != 0 {
		t.Errorf("store after destroy: %v, %v", subs, err)
	}
}
