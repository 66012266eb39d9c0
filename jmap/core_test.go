package jmap

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestSession: the session resource (RFC 8620 §2) names the
// capabilities with their limits, the user's account as primary for
// both, and absolute URLs on the address the client used.
func TestSession(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{MaxCallsInRequest: 7})
	status, body := env.do(t, "GET", "/.well-known/jmap", testUser, testPassword, nil)
	if status != http.StatusOK {
		t.Fatalf("session: %d %s", status, body)
	}
	var s struct {
		Capabilities    map[string]map[string]any
		Accounts        map[string]map[string]any
		PrimaryAccounts map[string]string
		Username        string
		APIURL          string `json:"apiUrl"`
		DownloadURL     string `json:"downloadUrl"`
		UploadURL       string `json:"uploadUrl"`
		EventSourceURL  string `json:"eventSourceUrl"`
		State           string
	}
	if err := json.Unmarshal(body, &s); err != nil {
		t.Fatal(err)
	}
	core := s.Capabilities[capCore]
	for _, k := range []string{"maxSizeUpload", "maxConcurrentUpload", "maxSizeRequest", "maxConcurrentRequests",
		"maxCallsInRequest", "maxObjectsInGet", "maxObjectsInSet", "collationAlgorithms"} {
		if _, ok := core[k]; !ok {
			t.Errorf("core capability lacks %s: %v", k, core)
		}
	}
	if core["maxCallsInRequest"] != float64(7) {
		t.Errorf("maxCallsInRequest = %v; want 7 (the configured limit)", core["maxCallsInRequest"])
	}
	if _, ok := s.Capabilities[capMail]; !ok {
		t.Errorf("no mail capability: %v", s.Capabilities)
	}
	acct := env.account()
	if s.PrimaryAccounts[capCore] != acct || s.PrimaryAccounts[capMail] != acct || s.Accounts[acct]["name"] != testUser {
		t.Errorf("accounts %v, primary %v; want %s as alice's", s.Accounts, s.PrimaryAccounts, acct)
	}
	if len(s.Accounts) != 1 {
		t.Errorf("accounts %v; want only alice's", s.Accounts)
	}
	mail, _ := s.Accounts[acct]["accountCapabilities"].(map[string]any)[capMail].(map[string]any)
	if mail == nil || mail["mayCreateTopLevelMailbox"] != true {
		t.Errorf("account mail capability %v", mail)
	}
	if s.APIURL != env.url+"/jmap/api" || !strings.HasPrefix(s.DownloadURL, env.url+"/jmap/download/{accountId}/{blobId}/{name}") ||
		s.UploadURL != env.url+"/jmap/upload/{accountId}/" || !strings.Contains(s.EventSourceURL, "{types}") || s.State == "" || s.Username != testUser {
		t.Errorf("session URLs/state: %+v", s)
	}
}

// TestAuthentication: no credentials is 401 with a challenge; a wrong
// password is 401, and counts against the account like an IMAP
// failure: after the limiter's PerAccount (3), even the right password
// is refused (429) from this address.
func TestAuthentication(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	req, _ := http.NewRequest("GET", env.url+"/.well-known/jmap", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized || !strings.HasPrefix(resp.Header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("no credentials: %d %q; want 401 with a Basic challenge", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
	}
	for i := range 3 {
		if status, _ := env.do(t, "GET", "/.well-known/jmap", "bob@localhost", "wrong", nil); status != http.StatusUnauthorized {
			t.Errorf("wrong password #%d: %d; want 401", i+1, status)
		}
	}
	if status, _ := env.do(t, "GET", "/.well-known/jmap", "bob@localhost", testPassword, nil); status != http.StatusTooManyRequests {
		t.Errorf("right password after 3 failures: %d; want 429 (throttled)", status)
	}
	if status, _ := env.do(t, "GET", "/.well-known/jmap", testUser, testPassword, nil); status != http.StatusOK {
		t.Errorf("another account from the same address: %d; want 200", status)
	}
}

// TestRequestLevelErrors: RFC 8620 §3.6.1's problem types, and the
// limits enforced as advertised.
func TestRequestLevelErrors(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{MaxCallsInRequest: 2, MaxSizeRequest: 4096})
	echo := `["Core/echo", {}, "c"]`
	for _, tc := range []struct {
		name, body, wantType, wantLimit string
		wantStatus                      int
	}{
		{"not JSON", `{"using": [`, errNotJSON, "", 400},
		{"not a request", `{"using": ["urn:ietf:params:jmap:core"]}`, errNotRequest, "", 400},
		{"bad invocation", `{"using": [], "methodCalls": [["Core/echo", {}]]}`, errNotRequest, "", 400},
		{"unknown capability", `{"using": ["urn:example:nope"], "methodCalls": []}`, errUnknownCapability, "", 400},
		{"too many calls", `{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [` + echo + `,` + echo + `,` + echo + `]}`, errLimit, "maxCallsInRequest", 400},
		{"too large", `{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Core/echo", {"x": "` + strings.Repeat("a", 5000) + `"}, "c"]]}`, errLimit, "maxSizeRequest", 413},
	} {
		status, body := env.do(t, "POST", "/jmap/api", testUser, testPassword, []byte(tc.body))
		var p map[string]any
		json.Unmarshal(body, &p)
		if status != tc.wantStatus || p["type"] != tc.wantType || (tc.wantLimit != "" && p["limit"] != tc.wantLimit) {
			t.Errorf("%s: %d %s; want %d %s %s", tc.name, status, body, tc.wantStatus, tc.wantType, tc.wantLimit)
		}
	}
	// Two calls are within the limit, and echo answers its arguments.
	rs := env.api(t, []any{"Core/echo", map[string]any{"hello": true}, "a"}, []any{"Core/echo", map[string]any{}, "b"})
	if len(rs) != 2 || rs[0].Args["hello"] != true || rs[1].CallID != "b" {
		t.Errorf("echo: %+v", rs)
	}
}

// TestMethodLevelErrors: RFC 8620 §3.6.2's errors, each in place of its
// call's response while the other calls run.
func TestMethodLevelErrors(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{MaxObjectsInGet: 2})
	acct := env.account()
	for _, tc := range []struct {
		name   string
		method string
		args   map[string]any
		want   string
	}{
		{"unknown method", "Mailbox/frobnicate", map[string]any{"accountId": acct}, "unknownMethod"},
		{"unknown argument", "Mailbox/get", map[string]any{"accountId": acct, "bogus": 1}, "invalidArguments"},
		{"wrong type", "Mailbox/get", map[string]any{"accountId": acct, "ids": "M1"}, "invalidArguments"},
		{"no accountId", "Mailbox/get", map[string]any{}, "invalidArguments"},
		{"unknown account", "Mailbox/get", map[string]any{"accountId": "A999999"}, "accountNotFound"},
		{"another user's account", "Mailbox/get", map[string]any{"accountId": accountID(env.other.User)}, "forbidden"},
		{"too many ids", "Mailbox/get", map[string]any{"accountId": acct, "ids": []string{"M1", "M2", "M3"}}, "requestTooLarge"},
		{"state mismatch", "Mailbox/set", map[string]any{"accountId": acct, "ifInState": "12345",
			"create": map[string]any{"k": map[string]any{"name": "X"}}}, "stateMismatch"},
		{"unknown state", "Email/changes", map[string]any{"accountId": acct, "sinceState": "nonsense"}, "cannotCalculateChanges"},
		{"unsupported filter", "Email/query", map[string]any{"accountId": acct, "filter": map[string]any{"bogus": 1}}, "unsupportedFilter"},
		{"unsupported sort", "Email/query", map[string]any{"accountId": acct, "sort": []any{map[string]any{"property": "bogus"}}}, "unsupportedSort"},
	} {
		if got := env.callErr(t, tc.method, tc.args); got != tc.want {
			t.Errorf("%s: error %q; want %q", tc.name, got, tc.want)
		}
	}
	// The state mismatch created nothing.
	if _, err := env.store.Mailbox(t.Context(), env.user.User, "X"); err == nil {
		t.Errorf("Mailbox/set with a wrong ifInState created the mailbox")
	}
	// A method of a capability the request did not declare is unknown.
	body := `{"using": ["urn:ietf:params:jmap:core"], "methodCalls": [["Mailbox/get", {"accountId": "` + acct + `"}, "c"]]}`
	_, out := env.do(t, "POST", "/jmap/api", testUser, testPassword, []byte(body))
	if !strings.Contains(string(out), `"unknownMethod"`) {
		t.Errorf("Mailbox/get without the mail capability: %s; want unknownMethod", out)
	}
}

// TestResultReferences: RFC 8620 §3.7's example shape — a query's ids
// feed a get, and "*" maps over a list — plus the error for a reference
// to nothing.
func TestResultReferences(t *testing.T) {
	t.Parallel()
	env := newEnv(t, Limits{})
	env.deliver(t, "From: Joe <joe@example.org>\nTo: alice@localhost\nSubject: one\n\nfirst\n")
	env.deliver(t, "From: Ann <ann@example.org>\nTo: alice@localhost\nSubject: two\n\nsecond\n")
	acct := env.account()
	rs := env.api(t,
		[]any{"Email/query", map[string]any{"accountId": acct, "sort": []any{map[string]any{"property": "receivedAt", "isAscending": false}}}, "t0"},
		[]any{"Email/get", map[string]any{"accountId": acct, "#ids": map[string]any{"resultOf": "t0", "name": "Email/query", "path": "/ids"},
			"properties": []string{"threadId", "subject"}}, "t1"},
		[]any{"Thread/get", map[string]any{"accountId": acct, "#ids": map[string]any{"resultOf": "t1", "name": "Email/get", "path": "/list/*/threadId"}}, "t2"},
		[]any{"Mailbox/get", map[string]any{"accountId": acct, "#ids": map[string]any{"resultOf": "t9", "name": "Email/get", "path": "/list"}}, "t3"},
		[]any{"Mailbox/get", map[string]any{"accountId": acct, "ids": []string{}, "#ids": map[string]any{"resultOf": "t0", "name": "Email/query", "path": "/ids"}}, "t4"},
	)
	if len(rs) != 5 {
		t.Fatalf("responses: %+v", rs)
	}
	list, _ := rs[1].Args["list"].([]any)
	if len(list) != 2 {
		t.Fatalf("Email/get by reference: %+v", rs[1])
	}
	if s := list[0].(map[string]any)["subject"]; s != "two" {
		t.Errorf("first email's subject %v; want two (newest first)", s)
	}
	threads, _ := rs[2].Args["list"].([]any)
	if len(threads) != 2 {
		t.Errorf("Thread/get by /list/*/threadId: %+v", rs[2])
	}
	if rs[3].Name != "error" || rs[3].Args["type"] != "invalidResultReference" {
		t.Errorf("reference to a missing call: %+v; want invalidResultReference", rs[3])
	}
	if rs[4].Name != "error" || rs[4].Args["type"] != "invalidArguments" {
		t.Errorf("ids and #ids together: %+v; want invalidArguments", rs[4])
	}
}

func TestEvalPointer(t *testing.T) {
	t.Parallel()
	var doc any
	json.Unmarshal([]byte(`{"list": [{"id": "a", "ids": ["x", "y"]}, {"id": "b", "ids": ["z"]}], "a/b": {"m~n": 1}}`), &doc)
	for _, tc := range []struct {
		path string
		want string
		ok   bool
	}{
		{"/list/*/id", `["a","b"]`, true},
		{"/list/*/ids", `["x","y","z"]`, true}, // arrays flattened (RFC 8620 §3.7)
		{"/list/1/id", `"b"`, true},
		{"/a~1b/m~0n", `1`, true},
		{"/list/2/id", ``, false},
		{"/nope", ``, false},
		{"list", ``, false},
	} {
		v, ok := evalPointer(doc, tc.path)
		js, _ := json.Marshal(v)
		if ok != tc.ok || (ok && string(js) != tc.want) {
			t.Errorf("evalPointer(%q) = %s, %v; want %s, %v", tc.path, js, ok, tc.want, tc.ok)
		}
	}
}
