package wakeup

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/mailstore"
	"pushmail/notify"
)

// env is a store with users alice and bob, and a receiver that records
// every POST it gets.
type env struct {
	t      *testing.T
	path   string
	store  *mailstore.Store
	rcpt   map[string]mailstore.Recipient
	recv   *httptest.Server
	mu     sync.Mutex
	posts  []post
	got    chan post
	answer func(n int) int // the status for the n-th POST (from 1); nil: 200
	hold   chan struct{}   // if not nil, each POST waits for it to close
}

type post struct {
	path, body, signature, contentType string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, path: filepath.Join(t.TempDir(), "store.db"), rcpt: map[string]mailstore.Recipient{}, got: make(chan post, 100_000)}
	e.open()
	for _, addr := range []string{"alice@localhost", "bob@localhost"} {
		if _, err := e.store.AddUser(context.Background(), addr, "secret"); err != nil {
			t.Fatal(err)
		}
		r, err := e.store.Resolve(context.Background(), addr)
		if err != nil {
			t.Fatal(err)
		}
		e.rcpt[addr] = r
	}
	e.recv = httptest.NewServer(http.HandlerFunc(e.serve))
	t.Cleanup(e.recv.Close)
	return e
}

func (e *env) open() {
	s, err := mailstore.Open(context.Background(), e.path, mailstore.Options{PasswordCost: bcrypt.MinCost})
	if err != nil {
		e.t.Fatal(err)
	}
	e.store = s
	e.t.Cleanup(func() { s.Close() })
}

func (e *env) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	e.mu.Lock()
	hold := e.hold
	e.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-r.Context().Done():
			return
		}
	}
	p := post{path: r.URL.Path, body: string(body), signature: r.Header.Get(SignatureHeader), contentType: r.Header.Get("Content-Type")}
	e.mu.Lock()
	e.posts = append(e.posts, p)
	n := len(e.posts)
	answer := e.answer
	e.mu.Unlock()
	code := http.StatusOK
	if answer != nil {
		code = answer(n)
	}
	w.WriteHeader(code)
	e.got <- p
}

// states is the test's StateFunc: the account is "u<id>", and the Email
// state the INBOX's UIDNEXT, which every delivery raises.
func (e *env) states(ctx context.Context, user mailstore.UserID) (string, map[string]string, error) {
	box, err := e.store.Mailbox(ctx, user, "INBOX")
	if err != nil {
		return "", nil, err
	}
	st := strconv.FormatUint(uint64(box.UIDNext), 10)
	return "u" + strconv.FormatInt(int64(user), 10), map[string]string{"Email": st, "Mailbox": st}, nil
}

func (e *env) engine(opts Options) *Engine {
	e.t.Helper()
	opts.Store, opts.Hub = e.store, e.store.Hub()
	if opts.States == nil {
		opts.States = e.states
	}
	if opts.MinBackoff == 0 {
		opts.MinBackoff = 5 * time.Millisecond
	}
	opts.PersistEvery = 5 * time.Millisecond
	eng, err := New(opts)
	if err != nil {
		e.t.Fatal(err)
	}
	if err := eng.Start(context.Background()); err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { eng.Close() })
	return eng
}

func (e *env) deliver(addr string) {
	e.t.Helper()
	msg := fmt.Appendf(nil, "From: x@example.org\r\nSubject: for %s\r\n\r\nhello\r\n", addr)
	if _, err := e.store.Deliver(context.Background(), msg, []mailstore.Recipient{e.rcpt[addr]}); err != nil {
		e.t.Fatal(err)
	}
}

// next waits for the next POST.
func (e *env) next() post {
	e.t.Helper()
	select {
	case p := <-e.got:
		return p
	case <-time.After(30 * time.Second):
		e.t.Fatal("no POST reached the receiver")
		return post{}
	}
}

// waitPending waits until the engine's queue for endpoint holds n.
func waitPending(t *testing.T, eng *Engine, endpoint string, n int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for eng.Pending()[endpoint] != n {
		if time.Now().After(deadline) {
			t.Fatalf("pending for %s = %d, want %d", endpoint, eng.Pending()[endpoint], n)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (e *env) stateChange(p post) StateChange {
	e.t.Helper()
	var sc StateChange
	if err := json.Unmarshal([]byte(p.body), &sc); err != nil || sc.Type != "StateChange" {
		e.t.Fatalf("POST body %q is not a StateChange: %v", p.body, err)
	}
	return sc
}

// TestWebhookSignedStateChange: a delivery to a watched user is POSTed as
// a StateChange with a signature the receiver can check with the secret;
// a user the webhook does not watch sends nothing.
func TestWebhookSignedStateChange(t *testing.T) {
	e := newEnv(t)
	hook := Webhook{URL: e.recv.URL + "/hook", Users: []string{"alice@localhost"}, Types: []string{"Email"}, Secret: "s3cret"}
	eng := e.engine(Options{Webhooks: []Webhook{hook}})
	e.deliver("bob@localhost")
	e.deliver("alice@localhost")
	p := e.next()
	if p.path != "/hook" || p.contentType != "application/json" {
		t.Errorf("POST %s, Content-Type %q", p.path, p.contentType)
	}
	// The receiver's check: recompute with t from the header.
	ts, _, ok := strings.Cut(strings.TrimPrefix(p.signature, "t="), ",")
	sec, err := strconv.ParseInt(ts, 10, 64)
	if !ok || err != nil || Sign("s3cret", time.Unix(sec, 0), []byte(p.body)) != p.signature {
		t.Errorf("signature %q does not verify for body %q", p.signature, p.body)
	}
	if Sign("other", time.Unix(sec, 0), []byte(p.body)) == p.signature {
		t.Error("signature verifies with the wrong secret")
	}
	sc := e.stateChange(p)
	alice := "u" + strconv.FormatInt(int64(e.rcpt["alice@localhost"].User), 10)
	if len(sc.Changed) != 1 || sc.Changed[alice]["Email"] != "2" || sc.Changed[alice]["Mailbox"] != "" {
		t.Errorf("StateChange %+v, want alice's Email state 2 and nothing else", sc)
	}
	waitPending(t, eng, "webhook "+hook.URL, 0)
	e.mu.Lock()
	n := len(e.posts)
	e.mu.Unlock()
	if n != 1 {
		t.Errorf("%d POSTs, want 1 (bob is not watched)", n)
	}
}

// TestWebhookCoalescesAndRetries: while the endpoint is slow, twenty
// deliveries become at most one more POST, carrying the newest state;
// failures are retried until the endpoint answers, then nothing is left
// pending, in memory or in the store.
func TestWebhookCoalescesAndRetries(t *testing.T) {
	e := newEnv(t)
	hold := make(chan struct{})
	e.hold = hold
	e.answer = func(n int) int {
		if n == 2 || n == 3 {
			return http.StatusServiceUnavailable
		}
		return http.StatusOK
	}
	hook := Webhook{URL: e.recv.URL, Users: []string{"*"}}
	eng := e.engine(Options{Webhooks: []Webhook{hook}, PerEndpoint: 1})
	e.deliver("alice@localhost")
	for range 20 {
		e.deliver("alice@localhost")
	}
	close(hold)
	e.mu.Lock()
	e.hold = nil
	e.mu.Unlock()
	var last StateChange
	for range 4 { // the first, two refused, then the newest state
		last = e.stateChange(e.next())
	}
	alice := "u" + strconv.FormatInt(int64(e.rcpt["alice@localhost"].User), 10)
	if got := last.Changed[alice]["Email"]; got != "22" {
		t.Errorf("last StateChange has Email state %q, want 22 (all 21 deliveries)", got)
	}
	waitPending(t, eng, "webhook "+hook.URL, 0)
	e.mu.Lock()
	n := len(e.posts)
	e.mu.Unlock()
	if n != 4 {
		t.Errorf("%d POSTs for 21 deliveries with a slow, failing endpoint; want 4", n)
	}
	eng.Close()
	if left, err := e.store.PendingPushes(context.Background()); err != nil || len(left) != 0 {
		t.Errorf("store holds %v, %v after delivery; want none", left, err)
	}
}

// TestWebhookGone: an endpoint answering 410 drops the wake-up at once.
func TestWebhookGone(t *testing.T) {
	e := newEnv(t)
	e.answer = func(int) int { return http.StatusGone }
	hook := Webhook{URL: e.recv.URL, Users: []string{"*"}}
	eng := e.engine(Options{Webhooks: []Webhook{hook}})
	e.deliver("alice@localhost")
	e.next()
	waitPending(t, eng, "webhook "+hook.URL, 0)
	e.deliver("bob@localhost") // the endpoint is still asked about new changes
	e.next()
	waitPending(t, eng, "webhook "+hook.URL, 0)
	e.mu.Lock()
	n := len(e.posts)
	e.mu.Unlock()
	if n != 2 {
		t.Errorf("%d POSTs, want 2 (no retries after 410)", n)
	}
}

// TestPendingSurvivesRestart: a wake-up whose endpoint did not answer
// before the engine stopped is delivered by the next engine, after the
// store is reopened.
func TestPendingSurvivesRestart(t *testing.T) {
	e := newEnv(t)
	e.hold = make(chan struct{}) // never answers
	hook := Webhook{URL: e.recv.URL, Users: []string{"*"}}
	eng := e.engine(Options{Webhooks: []Webhook{hook}})
	e.deliver("alice@localhost")
	deadline := time.Now().Add(30 * time.Second)
	for {
		left, err := e.store.PendingPushes(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		if len(left) == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("pending pushes in the store: %v, want 1", left)
		}
		time.Sleep(2 * time.Millisecond)
	}
	if err := eng.Close(); err != nil {
		t.Fatal(err)
	}
	e.store.Close()

	e.open()
	e.mu.Lock()
	e.hold = nil
	e.mu.Unlock()
	eng = e.engine(Options{Webhooks: []Webhook{hook}})
	sc := e.stateChange(e.next())
	alice := "u" + strconv.FormatInt(int64(e.rcpt["alice@localhost"].User), 10)
	if sc.Changed[alice]["Email"] != "2" {
		t.Errorf("StateChange after restart %+v, want alice's", sc)
	}
	waitPending(t, eng, "webhook "+hook.URL, 0)
}

// TestDeviceTokenRelay: a user who stored a device token on INBOX gets
// one relay POST per new INBOX message, the token as the body; a user
// without one gets none; a relay answering 410 has the token removed.
func TestDeviceTokenRelay(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	eng := e.engine(Options{Relay: &Relay{URL: e.recv.URL + "/notify"}})
	alice := e.rcpt["alice@localhost"]
	inbox, err := e.store.Mailbox(ctx, alice.User, "INBOX")
	if err != nil {
		t.Fatal(err)
	}
	err = e.store.SetMetadata(ctx, alice.User, inbox.ID, []mailstore.MetadataEntry{{Name: DeviceTokenEntry, Value: []byte("tok-1")}})
	if err != nil {
		t.Fatal(err)
	}
	e.deliver("bob@localhost")
	e.deliver("alice@localhost")
	e.deliver("alice@localhost")
	for range 2 {
		if p := e.next(); p.path != "/notify" || p.body != "tok-1" {
			t.Errorf("relay POST %s %q, want /notify with the token", p.path, p.body)
		}
	}
	waitPending(t, eng, "relay "+e.recv.URL+"/notify", 0)
	e.mu.Lock()
	if len(e.posts) != 2 {
		t.Errorf("%d relay POSTs, want 2 (bob has no token)", len(e.posts))
	}
	e.answer = func(int) int { return http.StatusGone }
	e.mu.Unlock()
	e.deliver("alice@localhost")
	e.next()
	deadline := time.Now().Add(30 * time.Second)
	for {
		entries, err := e.store.Metadata(ctx, alice.User, inbox.ID, []string{DeviceTokenEntry}, mailstore.DepthZero)
		if err != nil {
			t.Fatal(err)
		}
		if len(entries) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("device token still stored after the relay answered 410: %q", entries[0].Value)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// TestFloodStaysBounded: many deliveries to watched users while the
// endpoint does not answer queue one wake-up per user, not one per
// delivery.
func TestFloodStaysBounded(t *testing.T) {
	e := newEnv(t)
	e.hold = make(chan struct{})
	t.Cleanup(func() { close(e.hold) })
	hook := Webhook{URL: e.recv.URL, Users: []string{"*"}}
	eng := e.engine(Options{Webhooks: []Webhook{hook}})
	var wg sync.WaitGroup
	for _, addr := range []string{"alice@localhost", "bob@localhost"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 300 {
				msg := []byte("Subject: flood\r\n\r\nx\r\n")
				if _, err := e.store.Deliver(context.Background(), msg, []mailstore.Recipient{e.rcpt[addr]}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := eng.Pending()["webhook "+hook.URL]; n > 2 {
		t.Errorf("%d wake-ups queued for 600 deliveries to 2 users, want at most 2", n)
	}
}

// TestNewRejectsBadConfig: unknown types, a duplicate webhook and
// webhooks without a state source are refused.
func TestNewRejectsBadConfig(t *testing.T) {
	for name, opts := range map[string]Options{
		"unknown type": {Webhooks: []Webhook{{URL: "http://x", Types: []string{"Emails"}}}, States: func(context.Context, mailstore.UserID) (string, map[string]string, error) { return "", nil, nil }},
		"duplicate":    {Webhooks: []Webhook{{URL: "http://x"}, {URL: "http://x"}}, States: func(context.Context, mailstore.UserID) (string, map[string]string, error) { return "", nil, nil }},
		"no states":    {Webhooks: []Webhook{{URL: "http://x"}}},
	} {
		if _, err := New(opts); err == nil {
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestRemoteEventsWakeNothing: a change another node committed (nodes
// sharing a PostgreSQL store) is that node's to wake for; this engine
// sends only what its own node committed.
func TestRemoteEventsWakeNothing(t *testing.T) {
	e := newEnv(t)
	hook := Webhook{URL: e.recv.URL + "/hook", Users: []string{"alice@localhost", "bob@localhost"}, Types: []string{"Email"}, Secret: "s"}
	eng := e.engine(Options{Webhooks: []Webhook{hook}})
	alice := e.rcpt["alice@localhost"]
	e.store.Hub().Publish(notify.Event{Mailbox: int64(alice.Mailbox), User: int64(alice.User), Kind: notify.Appended,
		UIDs: []uint32{1}, ModSeq: 2, Messages: 1, Remote: true})
	e.deliver("bob@localhost")
	sc := e.stateChange(e.next())
	bob := "u" + strconv.FormatInt(int64(e.rcpt["bob@localhost"].User), 10)
	if _, ok := sc.Changed[bob]; !ok || len(sc.Changed) != 1 {
		t.Errorf("StateChange %+v, want bob's alone: alice's change was another node's", sc)
	}
	waitPending(t, eng, "webhook "+hook.URL, 0)
}
