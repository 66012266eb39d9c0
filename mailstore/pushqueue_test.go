package mailstore

import (
	"context"
	"errors"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// undoSchemaPush turns a file written with the push_pending table back
// into one of the schema before it.
const undoSchemaPush = `DROP TABLE push_pending;
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
