package mailstore

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"unsafe"
)

// The shared UID list: every holder gets the same array, the writer keeps
// it current, and what a holder was given never changes under it.
func TestUIDListSharedAndKeptByTheWriter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	for i := range 5 {
		if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	a, err := s.UIDList(ctx, r.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	b, err := s.UIDList(ctx, r.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(a.UIDs, []UID{1, 2, 3, 4, 5}) || unsafe.SliceData(a.UIDs) != unsafe.SliceData(b.UIDs) {
		t.Fatalf("UIDList() twice = %v at %p, %v at %p; want [1 2 3 4 5], one array", a.UIDs, a.UIDs, b.UIDs, b.UIDs)
	}
	st, err := s.Status(ctx, r.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if a.ModSeq != st.HighestModSeq || a.Since > a.ModSeq {
		t.Fatalf("UIDList() since %d modseq %d, want modseq %d", a.Since, a.ModSeq, st.HighestModSeq)
	}

	// A delivery appends: a holder of the old list extends it to the new
	// one without a copy; its own slice still reads as before.
	if _, err := s.Deliver(ctx, testMessage(6), []Recipient{r}); err != nil {
		t.Fatal(err)
	}
	cur, ok := s.CachedUIDList(r.Mailbox)
	if !ok || !slices.Equal(cur.UIDs, []UID{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("CachedUIDList() after a delivery = %v, %v; want [1 … 6]", cur.UIDs, ok)
	}
	next, ok := a.Extend(cur, []UID{6})
	if !ok || !slices.Equal(next.UIDs, cur.UIDs) || cap(next.UIDs) != 6 {
		t.Fatalf("Extend by [6] = %v (cap %d), %v; want the shared [1 … 6]", next.UIDs, cap(next.UIDs), ok)
	}
	if _, ok := a.Extend(cur, []UID{7}); ok {
		t.Fatal("Extend by [7], which the list does not hold, succeeded")
	}
	if !slices.Equal(a.UIDs, []UID{1, 2, 3, 4, 5}) {
		t.Fatalf("the first holder's list changed to %v", a.UIDs)
	}

	// An expunge makes a new array: the old one stays as it was, and a
	// holder of it cannot extend onto the new one.
	if _, err := s.StoreFlags(ctx, r.Mailbox, UIDSetOf(2, 6), FlagsAdd, []string{FlagDeleted}, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Expunge(ctx, r.Mailbox, AllUIDs(), 0); err != nil {
		t.Fatal(err)
	}
	after, ok := s.CachedUIDList(r.Mailbox)
	if !ok || !slices.Equal(after.UIDs, []UID{1, 3, 4, 5}) {
		t.Fatalf("CachedUIDList() after the expunge = %v, %v; want [1 3 4 5]", after.UIDs, ok)
	}
	if !slices.Equal(next.UIDs, []UID{1, 2, 3, 4, 5, 6}) {
		t.Fatalf("a holder's list changed under it to %v", next.UIDs)
	}
	if _, ok := a.Extend(after, nil); ok {
		t.Fatal("Extend across an expunge succeeded")
	}
	st, err = s.Status(ctx, r.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if after.Since != st.HighestModSeq || after.ModSeq != st.HighestModSeq {
		t.Fatalf("after the expunge since %d modseq %d, want both %d", after.Since, after.ModSeq, st.HighestModSeq)
	}
	// A flag change moves ModSeq, not Since: the UIDs did not change.
	if _, err := s.StoreFlags(ctx, r.Mailbox, UIDSetOf(1), FlagsAdd, []string{FlagSeen}, 0); err != nil {
		t.Fatal(err)
	}
	flagged, _ := s.CachedUIDList(r.Mailbox)
	if flagged.Since != after.Since || flagged.ModSeq != after.ModSeq+1 {
		t.Fatalf("after a flag change since %d modseq %d, want %d and %d", flagged.Since, flagged.ModSeq, after.Since, after.ModSeq+1)
	}

	// A deleted mailbox's list goes with it.
	mb, err := s.CreateMailbox(ctx, r.User, "Other", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.UIDList(ctx, mb.ID); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteMailbox(ctx, r.User, "Other"); err != nil {
		t.Fatal(err)
	}
	if _, ok := s.CachedUIDList(mb.ID); ok {
		t.Fatal("a deleted mailbox's list is still kept")
	}
	if _, err := s.UIDList(ctx, mb.ID); !errors.Is(err, ErrNoSuchMailbox) {
		t.Fatalf("UIDList(deleted) = %v, want ErrNoSuchMailbox", err)
	}
}

// Lists read while deliveries commit: whatever the interleaving, each
// list is the mailbox's at its ModSeq, and the kept list ends up right.
func TestUIDListReadDuringDeliveries(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, 2)
	wg.Go(func() {
		for i := range n {
			if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
				errs <- err
				return
			}
		}
	})
	wg.Go(func() {
		var prev UIDList
		for range n {
			l, err := s.UIDList(ctx, r.Mailbox)
			if err != nil {
				errs <- err
				return
			}
			// UIDs are 1…k with nothing expunged: the list must be a
			// prefix of that, never shorter than one read before.
			for i, u := range l.UIDs {
				if u != UID(i+1) {
					errs <- errors.New("list is not 1…k")
					return
				}
			}
			if len(l.UIDs) < len(prev.UIDs) || l.ModSeq < prev.ModSeq {
				errs <- errors.New("list went back")
				return
			}
			prev = l
		}
	})
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	l, err := s.UIDList(ctx, r.Mailbox)
	if err != nil {
		t.Fatal(err)
	}
	if want, _ := s.UIDs(ctx, r.Mailbox); !slices.Equal(l.UIDs, want) || len(want) != n {
		t.Fatalf("UIDList() = %d UIDs, want the %d the database holds", len(l.UIDs), len(want))
	}
}
