package mailstore

import (
	"context"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
)

// A backup taken while deliveries go on opens cleanly and holds every
// message acknowledged before it started.
func TestBackupDuringDelivery(t *testing.T) {
	sqliteOnly(t)
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")

	var acked atomic.Int64 // highest count of acknowledged deliveries
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := 0; w < 4; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
					t.Error(err)
					return
				}
				acked.Add(1)
			}
		}()
	}
	for acked.Load() < 50 {
		if _, err := s.Deliver(ctx, testMessage(-1), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	before := acked.Load()
	dest := filepath.Join(t.TempDir(), "backup.db")
	err := s.Backup(ctx, dest)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("Backup() = %v", err)
	}
	if err := s.Backup(ctx, dest); err == nil {
		t.Error("Backup() over an existing file succeeded")
	}

	b := openStoreAt(t, dest, Options{})
	if err := b.IntegrityCheck(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := b.Stats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Every delivery acknowledged before the backup began is in it (the
	// extra warm-up deliveries only add to the count).
	if st.Messages < before {
		t.Errorf("backup holds %d messages, %d were acknowledged before it started", st.Messages, before)
	}
	if st.Users != 1 || st.Mailboxes != int64(len(DefaultMailboxes)) {
		t.Errorf("backup stats = %+v", st)
	}
	// The live store's read pool is still query-only after the backup.
	if _, err := s.rdb.Exec("DELETE FROM messages"); err == nil {
		t.Error("read pool accepts writes after Backup")
	}
}

func TestMailboxStatusesAndStats(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	s := openTestStore(t, Options{})
	r := addUser(t, s, "u@localhost")
	for i := 0; i < 3; i++ {
		if _, err := s.Deliver(ctx, testMessage(i), []Recipient{r}); err != nil {
			t.Fatal(err)
		}
	}
	u, err := s.User(ctx, "U@localhost")
	if err != nil || u.ID != r.User {
		t.Fatalf("User() = %+v, %v", u, err)
	}
	list, err := s.MailboxStatuses(ctx, u.ID)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range list {
		if st.Name == "INBOX" && (st.Messages != 3 || st.Unseen != 3 || st.Size == 0) {
			t.Errorf("INBOX status = %+v", st)
		}
	}
	st, err := s.Stats(ctx)
	version := schemaVersion
	if s.postgres {
		version = len(postgresMigrations)
	}
	if err != nil || st.Messages != 3 || st.Bodies != 3 || st.FileBytes == 0 || st.SchemaVersion != version {
		t.Errorf("Stats() = %+v, %v", st, err)
	}
}
