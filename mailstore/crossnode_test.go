package mailstore

import (
	"encoding/json"
	"slices"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"pushmail/internal/pgtest"
	"pushmail/notify"
)

// openTwoNodes opens two stores on one fresh PostgreSQL database, as two
// pushmail nodes would.
func openTwoNodes(t *testing.T) (a, b *Store) {
	t.Helper()
	url := pgtest.New(t)
	a = openStoreAt(t, url, Options{PasswordCost: bcrypt.MinCost})
	b = openStoreAt(t, url, Options{PasswordCost: bcrypt.MinCost})
	return a, b
}

// nextEvents waits for sub's next events (or resync), failing t after 10 s.
func nextEvents(t *testing.T, sub *notify.Subscription) ([]notify.Event, bool) {
	t.Helper()
	select {
	case <-sub.Ready():
		return sub.Take()
	case <-time.After(10 * time.Second):
		t.Fatal("no event from the other node within 10 s")
		return nil, false
	}
}

func TestCrossNodeEvents(t *testing.T) {
	a, b := openTwoNodes(t)
	ctx := t.Context()
	r := addUser(t, a, "u@localhost")
	subB := b.Hub().Subscribe(int64(r.Mailbox))
	defer subB.Close()
	subA := a.Hub().Subscribe(int64(r.Mailbox))
	defer subA.Close()

	// A delivery committed on A reaches B's watchers, with its UID and
	// count, and B's store answers with the message.
	if _, err := a.Deliver(ctx, testMessage(1), []Recipient{r}); err != nil {
		t.Fatal(err)
	}
	evs, resync := nextEvents(t, subB)
	if resync || len(evs) != 1 || evs[0].Kind != notify.Appended || !slices.Equal(evs[0].UIDs, []uint32{1}) || evs[0].Messages != 1 {
		t.Fatalf("B heard %+v (resync %v), want Appended UID 1", evs, resync)
	}
	if evs[0].User != int64(r.User) || evs[0].Committed.IsZero() {
		t.Errorf("B's event lacks its user or commit time: %+v", evs[0])
	}
	if got := storedBodies(t, b, r.Mailbox); len(got) != 1 {
		t.Fatalf("B's store holds %d messages, want 1", len(got))
	}
	// A's own watcher heard it once, from A's writer, not twice.
	if evs, _ := nextEvents(t, subA); len(evs) != 1 {
		t.Fatalf("A heard %d events of its own delivery, want 1", len(evs))
	}

	// Flags set on B reach A.
	// Origin 77: a subscription of B; on A it names nobody (or another
	// session, which must not take the change for its own).
	if _, err := b.StoreFlags(ctx, r.Mailbox, UIDSet{{1, 1}}, FlagsAdd, []string{`\Seen`}, 77); err != nil {
		t.Fatal(err)
	}
	evs, resync = nextEvents(t, subA)
	if resync || len(evs) != 1 || evs[0].Kind != notify.FlagsChanged || len(evs[0].Flags) != 1 || !slices.Contains(evs[0].Flags[0].Flags, `\Seen`) {
		t.Fatalf("A heard %+v (resync %v), want FlagsChanged \\Seen", evs, resync)
	}
	if evs[0].Origin != 0 || !evs[0].Remote {
		t.Errorf("A's event of B's STORE: origin %d, remote %v; want 0 and true", evs[0].Origin, evs[0].Remote)
	}
	st, err := a.Status(ctx, r.Mailbox)
	if err != nil || st.Unseen != 0 {
		t.Fatalf("A's status after B's STORE: %+v, %v", st, err)
	}
	select {
	case <-subB.Ready():
		if evs, _ := subB.Take(); len(evs) != 1 || evs[0].Origin != 77 || evs[0].Remote {
			t.Errorf("B heard %+v of its own STORE, want 1 event with origin 77, not remote", evs)
		}
	case <-time.After(10 * time.Second):
		t.Error("B did not hear its own STORE")
	}
}

// Two nodes delivering to one mailbox at once: every delivery succeeds,
// UIDs are distinct and never reused, and each node's watcher hears every
// UID, in ascending order, with no resync.
func TestCrossNodeConcurrentDeliveriesConverge(t *testing.T) {
	a, b := openTwoNodes(t)
	ctx := t.Context()
	r := addUser(t, a, "u@localhost")
	const perNode = 60
	type view struct {
		sub  *notify.Subscription
		uids map[uint32]bool
		last uint32 // the highest UID heard
	}
	views := []*view{{sub: a.Hub().Subscribe(int64(r.Mailbox))}, {sub: b.Hub().Subscribe(int64(r.Mailbox))}}
	for _, v := range views {
		defer v.sub.Close()
		v.uids = map[uint32]bool{}
	}
	var wg sync.WaitGroup
	errs := make(chan error, 2*perNode)
	for _, s := range []*Store{a, b} {
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := range perNode / 3 {
					if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
						errs <- err
					}
				}
			}()
		}
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Deliver = %v, want every delivery to succeed", err)
	}
	want, err := a.UIDList(ctx, r.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if len(want.UIDs) != 2*perNode {
		t.Fatalf("store holds %d messages, want %d", len(want.UIDs), 2*perNode)
	}
	for i := 1; i < len(want.UIDs); i++ {
		if want.UIDs[i] <= want.UIDs[i-1] {
			t.Fatalf("UIDs not strictly increasing: %v", want.UIDs)
		}
	}
	for n, v := range views {
		deadline := time.After(10 * time.Second)
		for len(v.uids) < 2*perNode {
			select {
			case <-v.sub.Ready():
			case <-deadline:
				t.Fatalf("node %d's watcher knows %d of %d messages after 10 s", n, len(v.uids), 2*perNode)
			}
			evs, resync := v.sub.Take()
			if resync {
				// Every node publishes in commit order (publishOwn):
				// no resync is ever needed here.
				t.Errorf("node %d's watcher was told to resynchronise", n)
				// Rebuild from the store, as a session does.
				s := []*Store{a, b}[n]
				l, err := s.UIDList(ctx, r.Mailbox)
				if err != nil {
					t.Fatal(err)
				}
				clear(v.uids)
				for _, u := range l.UIDs {
					v.uids[uint32(u)] = true
				}
			}
			for _, ev := range evs {
				for _, u := range ev.UIDs {
					// A session appends new UIDs at the end of its view:
					// they must come in ascending order, whichever node
					// committed them.
					if u <= v.last {
						t.Errorf("node %d's watcher heard UID %d after UID %d", n, u, v.last)
					}
					v.last = u
					v.uids[u] = true
				}
			}
		}
		if len(v.uids) != len(want.UIDs) {
			t.Errorf("node %d's watcher knows %d UIDs, store has %d", n, len(v.uids), len(want.UIDs))
		}
		for _, u := range want.UIDs {
			if !v.uids[uint32(u)] {
				t.Errorf("node %d's watcher never heard of UID %d", n, u)
			}
		}
	}
	// Each node's shared UID list agrees with the store.
	for n, s := range []*Store{a, b} {
		l, err := s.UIDList(ctx, r.Mailbox)
		if err != nil || !slices.Equal(l.UIDs, want.UIDs) {
			t.Errorf("node %d's UID list = %v, %v; want the store's %v", n, l.UIDs, err, want.UIDs)
		}
	}
}

// A lost LISTEN connection makes every watcher resynchronise once it is
// back: what was committed meanwhile was never heard.
func TestCrossNodeListenReconnectResyncs(t *testing.T) {
	a, b := openTwoNodes(t)
	ctx := t.Context()
	r := addUser(t, a, "u@localhost")
	sub := b.Hub().Subscribe(int64(r.Mailbox))
	defer sub.Close()
	before := b.Hub().Resyncs()
	// End B's listening session from the server side, as a network cut
	// or a restart of PostgreSQL would.
	var killed int
	err := a.wdb.QueryRowContext(ctx, "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE application_name = 'pushmail-listen' AND datname = current_database()").Scan(&killed)
	if err != nil || killed != 2 {
		t.Fatalf("terminated %d listeners (%v), want both nodes'", killed, err)
	}
	if _, err := a.Deliver(ctx, testMessage(1), []Recipient{r}); err != nil {
		t.Fatal(err)
	}
	deadline := time.After(15 * time.Second)
	for {
		select {
		case <-sub.Ready():
		case <-deadline:
			t.Fatal("B's watcher was neither told of the delivery nor resynchronised after the listener came back")
		}
		evs, resync := sub.Take()
		if resync {
			if b.Hub().Resyncs() <= before {
				t.Error("resync not counted")
			}
			l, err := b.UIDList(ctx, r.Mailbox)
			if err != nil || !slices.Equal(l.UIDs, []UID{1}) {
				t.Errorf("B's UID list after the resync = %v, %v; want [1]", l.UIDs, err)
			}
			return
		}
		if len(evs) > 0 {
			// The delivery was heard: only possible if the listener was
			// back before it committed; it must still resync.
			continue
		}
	}
}

func TestNotifyPayloads(t *testing.T) {
	c := &crossNode{id: 42}
	var events []notify.Event
	for i := range 400 {
		events = append(events, notify.Event{Mailbox: int64(i%3 + 1), User: 9, Kind: notify.Appended, UIDs: []uint32{uint32(i)}, ModSeq: uint64(i), Messages: uint32(i)})
	}
	huge := notify.Event{Mailbox: 2, User: 9, Kind: notify.Expunged, ModSeq: 1000}
	for u := range 5000 {
		huge.UIDs = append(huge.UIDs, uint32(u))
	}
	events = append(events, huge)
	payloads, err := c.notifyPayloads(events, time.Unix(0, 12345), 7)
	if err != nil {
		t.Fatal(err)
	}
	if len(payloads) < 2 {
		t.Fatalf("%d payloads for 400 events, want them split", len(payloads))
	}
	var got []notify.Event
	var resync [][2]int64
	for _, p := range payloads {
		if len(p) > maxNotifyPayload {
			t.Errorf("payload of %d bytes, over %d", len(p), maxNotifyPayload)
		}
		var m wireEvents
		if err := json.Unmarshal([]byte(p), &m); err != nil {
			t.Fatal(err)
		}
		if m.Node != 42 || m.Time != 12345 || m.Batch != 7 {
			t.Errorf("envelope = node %d time %d", m.Node, m.Time)
		}
		got = append(got, m.Events...)
		resync = append(resync, m.Resync...)
	}
	if len(got) != 400 {
		t.Fatalf("%d events decoded, want 400", len(got))
	}
	for i, ev := range got {
		if ev.ModSeq != uint64(i) || ev.UIDs[0] != uint32(i) {
			t.Fatalf("event %d = %+v: order or content lost", i, ev)
		}
	}
	if !slices.Equal(resync, [][2]int64{{2, 9}}) {
		t.Errorf("resync markers = %v, want the huge expunge's mailbox", resync)
	}
}
