package jmap

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/authlimit"
	"pushmail/internal/pgtest"
	"pushmail/mailstore"
	"pushmail/notify"
)

// TestEventSourceStatesEqualStore: the states the event streams are told
// (taken from the commits' events, not read from the store) are exactly
// what the store reports after each change: a delivery, a flag change
// and a mailbox creation over IMAP, a keyword change by Email/set, and a
// resync (read from the store). Every stream reaches the store's states
// and is never told one lower than it was told before; EmailDelivery
// moves with deliveries only. One stream is written to by the feed
// itself, six by the fan-out pool (more than inlineStreams).
func TestEventSourceStatesEqualStore(t *testing.T) {
	t.Parallel()
	for _, n := range []int{1, inlineStreams + 2} {
		t.Run(fmt.Sprintf("streams=%d", n), func(t *testing.T) {
			t.Parallel()
			testStatesEqualStore(t, n)
		})
	}
}

func testStatesEqualStore(t *testing.T, streams int) {
	env := newEnv(t, Limits{})
	ctx := context.Background()
	var ss []*sseStream
	told := make([]streamState, streams)
	st0, err := env.store.AccountState(ctx, env.user.User)
	if err != nil {
		t.Fatal(err)
	}
	for i := range streams {
		ss = append(ss, env.openEvents(t, "types=*&closeafter=no&ping=0", ""))
		told[i] = streamState{email: st0.Email, mailbox: st0.Mailbox, delivery: st0.Email}
	}
	c := imapLogin(t, env)

	// check waits until every stream is told the store's states after
	// step, checking each event on the way.
	check := func(step string, delivery bool) {
		t.Helper()
		st, err := env.store.AccountState(ctx, env.user.User)
		if err != nil {
			t.Fatal(err)
		}
		for i, s := range ss {
			before := told[i]
			for told[i].email != st.Email || told[i].mailbox != st.Mailbox {
				_, ev := s.nextState(t, env.account())
				got, ok := parseEventID(ev.id)
				if !ok {
					t.Fatalf("%s: stream %d: event id %q", step, i, ev.id)
				}
				if got.email < told[i].email || got.mailbox < told[i].mailbox || got.delivery < told[i].delivery ||
					got.email > st.Email || got.mailbox > st.Mailbox {
					t.Fatalf("%s: stream %d told %+v after %+v; want neither lower nor above the store's %+v", step, i, got, told[i], st)
				}
				told[i] = got
			}
			if delivery && told[i].delivery != st.Email || !delivery && told[i].delivery != before.delivery {
				t.Errorf("%s: stream %d EmailDelivery state %d (was %d); want it moved: %v", step, i, told[i].delivery, before.delivery, delivery)
			}
		}
	}

	env.deliver(t, "From: a@example.org\nSubject: one\n\nx\n")
	check("delivery", true)

	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatal(err)
	}
	if err := c.Store(imap.UIDSetNum(1), &imap.StoreFlags{Op: imap.StoreFlagsAdd, Flags: []imap.Flag{imap.FlagFlagged}, Silent: true}, nil).Close(); err != nil {
		t.Fatalf("IMAP STORE: %v", err)
	}
	check("IMAP STORE", false)

	if err := c.Create("Projects", nil).Wait(); err != nil {
		t.Fatalf("IMAP CREATE: %v", err)
	}
	check("IMAP CREATE", false)

	ids := strs(env.call1(t, "Email/query", map[string]any{})["ids"])
	if len(ids) != 1 {
		t.Fatalf("Email/query ids %v; want the one delivered", ids)
	}
	res := env.call1(t, "Email/set", map[string]any{"update": map[string]any{ids[0]: map[string]any{"keywords/$seen": true}}})
	if res["updated"] == nil {
		t.Fatalf("Email/set: %s", jsonString(res))
	}
	check("Email/set", false)

	env.deliver(t, "From: a@example.org\nSubject: two\n\nx\n")
	check("second delivery", true)

	// A resync has the feed read the store: nothing changed, nothing
	// told; then a change is told as before.
	var w notify.Wakeups
	env.store.Hub().Resync(0, int64(env.user.User), &w)
	w.Wake()
	if _, err := env.store.StoreFlags(ctx, env.user.Mailbox, mailstore.UIDSetOf(2), mailstore.FlagsAdd, []string{mailstore.FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	check("resync, then a flag change", false)

	// What the store holds: the flags and the mailbox the states count.
	flags := imapFlags(t, env, "INBOX")
	if len(flags[1]) != 2 || len(flags[2]) != 1 {
		t.Errorf("INBOX flags %v; want \\Flagged \\Seen on 1, \\Seen on 2", flags)
	}
	if _, err := env.store.Mailbox(ctx, env.user.User, "Projects"); err != nil {
		t.Errorf("mailbox Projects: %v", err)
	}
}

// TestEventSourceOtherNode: on PostgreSQL, a stream on one node is told
// of a delivery committed on another, whose events come without states
// (the feed reads them from the store), with the states its node's
// store reports.
func TestEventSourceOtherNode(t *testing.T) {
	url := pgtest.New(t)
	ctx := context.Background()
	open := func() *mailstore.Store {
		s, err := mailstore.Open(ctx, url, mailstore.Options{PasswordCost: bcrypt.MinCost, Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			if err := s.Close(); err != nil {
				t.Errorf("Close = %v", err)
			}
		})
		return s
	}
	a, b := open(), open()
	if _, err := a.AddUser(ctx, testUser, testPassword); err != nil {
		t.Fatal(err)
	}
	r, err := a.Resolve(ctx, testUser)
	if err != nil {
		t.Fatal(err)
	}
	srv := New(b, Options{Logger: slog.New(slog.DiscardHandler),
		AuthLimiter: authlimit.New(authlimit.Config{Delay: time.Millisecond, PerIP: 1000, PerAccount: 3})})
	mux := http.NewServeMux()
	srv.Register(mux)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	hs := &http.Server{Handler: mux}
	served := make(chan struct{})
	go func() {
		defer close(served)
		hs.Serve(ln) // returns ErrServerClosed at Shutdown
	}()
	t.Cleanup(func() {
		srv.Close()
		if err := hs.Shutdown(context.Background()); err != nil {
			t.Errorf("Shutdown = %v", err)
		}
		<-served
	})
	env := &testEnv{store: b, srv: srv, url: "http://" + ln.Addr().String(), user: r}
	stream := env.openEvents(t, "types=*&closeafter=no&ping=0", "")

	if _, err := a.Deliver(ctx, []byte("From: a@example.org\r\nSubject: hi\r\n\r\nx\r\n"), []mailstore.Recipient{r}); err != nil {
		t.Fatal(err)
	}
	want, err := b.AccountState(ctx, r.User)
	if err != nil {
		t.Fatal(err)
	}
	for {
		_, ev := stream.nextState(t, env.account())
		got, ok := parseEventID(ev.id)
		if !ok || got.email > want.Email || got.mailbox > want.Mailbox {
			t.Fatalf("stream on node B told %q; want at most %+v", ev.id, want)
		}
		if got.email == want.Email && got.mailbox == want.Mailbox {
			if got.delivery != want.Email {
				t.Errorf("EmailDelivery state %d after a delivery; want %d", got.delivery, want.Email)
			}
			break
		}
	}
}
