package mailstore

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"pushmail/notify"
)

// One batch holding a good write, a write that fails after writing, a
// write that panics after writing, and another good write: the good ones
// are committed and published, the others are undone without a trace and
// report their own errors. (The writer first runs a batch without
// savepoints and, when a write fails, runs it again with one per write.)
func TestFailedWriteIsUndoneAloneInItsBatch(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	var batches []int
	hub := notify.New(0)
	s := openTestStore(t, Options{Hub: hub, OnCommit: func(writes, _ int, _ time.Duration) {
		batches = append(batches, writes) // the writer goroutine's alone
	}})
	u := addUser(t, s, "u@localhost")
	sub := hub.Subscribe(int64(u.Mailbox))
	defer sub.Close()

	// Hold the writer inside a write, so that the next four queue up and
	// are taken as one batch.
	running, release := make(chan struct{}), make(chan struct{})
	blocker, err := s.enqueue(ctx, 0, false, func(tx *wtx) ([]notify.Event, error) {
		close(running)
		<-release
		return nil, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	<-running
	batches = nil

	create := func(name string, then func() error) writeFunc {
		return func(tx *wtx) ([]notify.Event, error) {
			mb, err := createMailboxTx(tx, u.User, name, "", false)
			if err != nil {
				return nil, err
			}
			if err := then(); err != nil {
				return nil, err
			}
			// An event on INBOX's subscription stands for this write.
			return []notify.Event{{Mailbox: int64(u.Mailbox), Kind: notify.MailboxChanged, Messages: uint32(mb.ID)}}, nil
		}
	}
	errRefused := errors.New("refused after writing")
	ops := map[string]writeFunc{
		"good1":  create("good1", func() error { return nil }),
		"fails":  create("fails", func() error { return errRefused }),
		"panics": create("panics", func() error { panic("bug after writing") }),
		"good2":  create("good2", func() error { return nil }),
	}
	order := []string{"good1", "fails", "panics", "good2"}
	queued := map[string]*writeOp{}
	for _, name := range order {
		if queued[name], err = s.enqueue(ctx, 0, false, ops[name]); err != nil {
			t.Fatal(err)
		}
	}
	close(release)
	<-blocker.done
	for _, name := range order {
		<-queued[name].done
	}

	if !slices.Equal(batches, []int{1, 4}) {
		t.Fatalf("committed batches = %v, want [1 4]: the blocker, then the four writes in one", batches)
	}
	for name, want := range map[string]error{"good1": nil, "good2": nil, "fails": errRefused} {
		if got := queued[name].err; !errors.Is(got, want) {
			t.Errorf("%s: err = %v, want %v", name, got, want)
		}
	}
	if queued["panics"].err == nil {
		t.Error("panics: err = nil, want the panic as an error")
	}
	for _, name := range order {
		_, err := s.Mailbox(ctx, u.User, name)
		good := name == "good1" || name == "good2"
		if good && err != nil {
			t.Errorf("Mailbox(%s) = %v, want it committed", name, err)
		}
		if !good && !errors.Is(err, ErrNoSuchMailbox) {
			t.Errorf("Mailbox(%s) = %v, want ErrNoSuchMailbox: its writes undone", name, err)
		}
	}
	events, _ := sub.Take()
	if len(events) != 2 {
		t.Errorf("events = %+v, want two: one per committed write", events)
	}
}
