package jmap

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/imapd"
	"pushmail/internal/authlimit"
	"pushmail/mailstore"
)

const (
	testUser     = "alice@localhost"
	testPassword = "secret"
)

// testEnv is a store with a user, the HTTP API on a loopback port, and
// an IMAP server over the same store for cross-checks.
type testEnv struct {
	store    *mailstore.Store
	srv      *Server
	url      string // http://127.0.0.1:port
	imapAddr string
	user     mailstore.Recipient
	other    mailstore.Recipient // bob@localhost, password secret
}

func newEnv(t testing.TB, limits Limits) *testEnv {
	t.Helper()
	return newEnvOptions(t, Options{Limits: limits})
}

// newEnvOptions is newEnv with the Server's options (its Logger and
// AuthLimiter are the test's).
func newEnvOptions(t testing.TB, opts Options) *testEnv {
	t.Helper()
	return newEnvHTTP(t, opts, nil)
}

// newEnvHTTP is newEnvOptions with configure, if not nil, called on the
// HTTP server before it serves.
func newEnvHTTP(t testing.TB, opts Options, configure func(*http.Server)) *testEnv {
	t.Helper()
	ctx := context.Background()
	store, err := mailstore.Open(ctx, filepath.Join(t.TempDir(), "mail.db"), mailstore.Options{PasswordCost: bcrypt.MinCost,
		Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatalf("Open = %v", err)
	}
	t.Cleanup(func() {
		if err := store.Close(); err != nil {
			t.Errorf("Close = %v", err)
		}
	})
	env := &testEnv{store: store}
	for _, addr := range []string{testUser, "bob@localhost"} {
		if _, err := store.AddUser(ctx, addr, testPassword); err != nil {
			t.Fatal(err)
		}
	}
	if env.user, err = store.Resolve(ctx, testUser); err != nil {
		t.Fatal(err)
	}
	if env.other, err = store.Resolve(ctx, "bob@localhost"); err != nil {
		t.Fatal(err)
	}
	limiter := authlimit.New(authlimit.Config{Delay: time.Millisecond, PerIP: 1000, PerAccount: 3})
	opts.Logger, opts.AuthLimiter = slog.New(slog.DiscardHandler), limiter
	env.srv = New(store, opts)
	mux := http.NewServeMux()
	env.srv.Register(mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	if configure != nil {
		configure(hs)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		hs.Serve(ln) // returns ErrServerClosed at Shutdown
	}()
	t.Cleanup(func() {
		env.srv.Close()
		if err := hs.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		<-served
	})
	env.url = "http://" + ln.Addr().String()

	imapSrv := imapd.New(store, imapd.Options{Logger: slog.New(slog.DiscardHandler), AuthLimiter: limiter})
	iln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idone := make(chan struct{})
	go func() {
		defer close(idone)
		imapSrv.Serve(iln) // ends at Shutdown
	}()
	t.Cleanup(func() {
		if err := imapSrv.Shutdown(context.Background()); err != nil {
			t.Errorf("IMAP Shutdown = %v", err)
		}
		<-idone
	})
	env.imapAddr = iln.Addr().String()
	return env
}

// account is alice's account id.
func (e *testEnv) account() string { return accountID(e.user.User) }

// do sends an HTTP request as user/password and returns the status and
// body.
func (e *testEnv) do(t *testing.T, method, path, user, password string, body []byte) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if user != "" {
		req.SetBasicAuth(user, password)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, b
}

// api posts a request of method calls (each [name, args, callId]) as
// alice and returns the method responses.
func (e *testEnv) api(t *testing.T, calls ...[]any) []response {
	t.Helper()
	body, err := json.Marshal(map[string]any{"using": []string{capCore, capMail}, "methodCalls": calls})
	if err != nil {
		t.Fatal(err)
	}
	status, out := e.do(t, "POST", "/jmap/api", testUser, testPassword, body)
	if status != http.StatusOK {
		t.Fatalf("API status %d: %s", status, out)
	}
	var resp struct {
		MethodResponses []response `json:"methodResponses"`
		SessionState    string     `json:"sessionState"`
	}
	if err := json.Unmarshal(out, &resp); err != nil {
		t.Fatalf("API response %s: %v", out, err)
	}
	if resp.SessionState == "" {
		t.Errorf("API response without sessionState: %s", out)
	}
	return resp.MethodResponses
}

// call1 runs one method and fails the test on an error response.
func (e *testEnv) call1(t *testing.T, name string, args map[string]any) map[string]any {
	t.Helper()
	if _, ok := args["accountId"]; !ok {
		args["accountId"] = e.account()
	}
	rs := e.api(t, []any{name, args, "c0"})
	if len(rs) != 1 || rs[0].Name != name {
		t.Fatalf("%s: responses %+v", name, rs)
	}
	return rs[0].Args
}

// callErr runs one method and returns its error type ("" if none).
func (e *testEnv) callErr(t *testing.T, name string, args map[string]any) string {
	t.Helper()
	rs := e.api(t, []any{name, args, "c0"})
	if len(rs) != 1 {
		t.Fatalf("%s: responses %+v", name, rs)
	}
	if rs[0].Name != "error" {
		return ""
	}
	typ, _ := rs[0].Args["type"].(string)
	return typ
}

// deliver delivers raw to alice's INBOX as SMTP would.
func (e *testEnv) deliver(t *testing.T, raw string) {
	t.Helper()
	if _, err := e.store.Deliver(context.Background(), []byte(strings.ReplaceAll(raw, "\n", "\r\n")), []mailstore.Recipient{e.user}); err != nil {
		t.Fatalf("Deliver = %v", err)
	}
}

func strs(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))
	for _, x := range list {
		s, _ := x.(string)
		out = append(out, s)
	}
	return out
}

// newBenchEnv is newEnv for a benchmark.
func newBenchEnv(b *testing.B) *testEnv { return newEnv(b, Limits{}) }

// doB is do for a benchmark, as alice.
func (e *testEnv) doB(b *testing.B, method, path string, body []byte) (int, []byte) {
	b.Helper()
	req, err := http.NewRequest(method, e.url+path, bytes.NewReader(body))
	if err != nil {
		b.Fatal(err)
	}
	req.SetBasicAuth(testUser, testPassword)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		b.Fatal(err)
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(resp.Body)
	if err != nil {
		b.Fatal(err)
	}
	return resp.StatusCode, out
}
