package mailstore

import (
	"context"
	"errors"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/notify"
)

// undoSchemaPush turns a file written with the push_pending table back
// into one of the schema before it.
const undoSchemaPush = `DROP TABLE push_pending; DROP TABLE push_subscriptions;
`

// TestPendingPushes: pending pushes are replaced by key, removed by key,
// survive a reopen, and those of a deleted user are not returned.
func TestPendingPushes(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "store.db")
	s := openStoreAt(t, path, Options{PasswordCost: bcrypt.MinCost})
	alice := addUser(t, s, "alice@localhost")
	bob := addUser(t, s, "bob@localhost")
	at := time.UnixMilli(time.Now().UnixMilli())
	err := s.SavePendingPushes(ctx, []PendingPush{
		{Endpoint: "webhook:a", Key: "state", User: alice.User, Attempts: 1, NotBefore: at},
		{Endpoint: "webhook:a", Key: "state:bob", User: bob.User, NotBefore: at},
		{Endpoint: "relay", Key: "msg:1", User: alice.User, Payload: []byte("token"), NotBefore: at},
	}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// Replace one, remove another.
	err = s.SavePendingPushes(ctx, []PendingPush{{Endpoint: "webhook:a", Key: "state", User: alice.User, Attempts: 3, NotBefore: at}},
		[]PendingPushKey{{"relay", "msg:1"}})
	if err != nil {
		t.Fatal(err)
	}
	s.Close()
	s = openStoreAt(t, path, Options{})
	got, err := s.PendingPushes(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0].Key != "state" || got[0].Attempts != 3 || !got[0].NotBefore.Equal(at) || got[0].User != alice.User ||
		got[1].Key != "state:bob" || got[1].Payload != nil {
		t.Fatalf("pending pushes after reopen = %+v", got)
	}
	if err := s.DeleteUser(ctx, "bob@localhost"); err != nil {
		t.Fatal(err)
	}
	got, err = s.PendingPushes(ctx)
	if err != nil || len(got) != 1 || got[0].User != alice.User {
		t.Fatalf("pending pushes after deleting bob = %+v, %v; want alice's only", got, err)
	}
	if addr, err := s.UserAddress(ctx, alice.User); err != nil || addr != "alice@localhost" {
		t.Errorf("UserAddress(alice) = %q, %v", addr, err)
	}
	if _, err := s.UserAddress(ctx, bob.User); !errors.Is(err, ErrNoSuchUser) {
		t.Errorf("UserAddress(deleted bob) = %v, want ErrNoSuchUser", err)
	}
}

// TestPushSubscriptions: a subscription is created, read, verified,
// destroyed only by its user, each change publishes an event for the
// user, and the user's deletion takes their subscriptions along.
func TestPushSubscriptions(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openStoreAt(t, filepath.Join(t.TempDir(), "store.db"), Options{PasswordCost: bcrypt.MinCost})
	alice := addUser(t, s, "alice@localhost")
	bob := addUser(t, s, "bob@localhost")
	watch := s.Hub().SubscribeUser(int64(alice.User), 0)
	defer watch.Close()
	exp := time.Unix(time.Now().Add(24*time.Hour).Unix(), 0)
	id, err := s.CreatePushSubscription(ctx, PushSubscription{User: alice.User, DeviceClientID: "phone", URL: "https://push.example/x",
		P256DH: "key", Auth: "auth", Code: "c0de", Expires: exp, Types: []string{"Email", "Mailbox"}})
	if err != nil {
		t.Fatal(err)
	}
	p, err := s.PushSubscription(ctx, alice.User, id)
	if err != nil || p.URL != "https://push.example/x" || !p.Expires.Equal(exp) || len(p.Types) != 2 || p.Verified() {
		t.Fatalf("PushSubscription = %+v, %v", p, err)
	}
	if _, err := s.PushSubscription(ctx, bob.User, id); !errors.Is(err, ErrNoSuchPushSubscription) {
		t.Errorf("bob reads alice's subscription: %v", err)
	}
	if err := s.DestroyPushSubscription(ctx, bob.User, id); !errors.Is(err, ErrNoSuchPushSubscription) {
		t.Errorf("bob destroys alice's subscription: %v", err)
	}
	p.VerificationCode, p.Types = "c0de", nil
	if err := s.UpdatePushSubscription(ctx, p); err != nil {
		t.Fatal(err)
	}
	if list, err := s.PushSubscriptions(ctx, alice.User); err != nil || len(list) != 1 || !list[0].Verified() || list[0].Types != nil {
		t.Fatalf("PushSubscriptions after verifying = %+v, %v", list, err)
	}
	evs, _ := watch.Take()
	if len(evs) != 2 || evs[0].Kind != notify.PushSubscriptionsChanged || evs[1].Name != strconv.FormatInt(id, 10) {
		t.Errorf("events %+v, want two PushSubscriptionsChanged", evs)
	}
	for i := 1; i < MaxPushSubscriptions; i++ {
		if _, err := s.CreatePushSubscription(ctx, PushSubscription{User: alice.User, URL: "https://push.example/y", Expires: exp}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.CreatePushSubscription(ctx, PushSubscription{User: alice.User, URL: "https://push.example/z", Expires: exp}); !errors.Is(err, ErrTooManyPushSubscriptions) {
		t.Errorf("subscription past the limit: %v", err)
	}
	if err := s.DestroyPushSubscription(ctx, alice.User, id); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteUser(ctx, "alice@localhost"); err != nil {
		t.Fatal(err)
	}
	var n int
	s.rdb.QueryRow("SELECT COUNT(*) FROM push_subscriptions").Scan(&n)
	if n != 0 {
		t.Errorf("%d subscriptions left after deleting their user", n)
	}
}
