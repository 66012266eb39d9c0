package imapd

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// APPEND to a full store is NO [OVERQUOTA]; what was appended before is
// intact and the session keeps working.
func TestAppendToFullStore(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{storeMaxBytes: 512 << 10})
	c := e.login(t, nil)
	body := bytes.Repeat([]byte("filler line of a large message\r\n"), 2000) // ~64 KB
	var appended []imap.UID
	var last error
	for i := 0; i < 20; i++ {
		msg := fmt.Appendf(nil, "Subject: %d\r\n\r\n%s", i, body)
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		cmd.Write(msg)
		cmd.Close()
		data, err := cmd.Wait()
		if err != nil {
			last = err
			break
		}
		appended = append(appended, data.UID)
	}
	var ie *imap.Error
	if !errors.As(last, &ie) || ie.Type != imap.StatusResponseTypeNo || ie.Code != imap.ResponseCodeOverQuota {
		t.Fatalf("APPEND to a full store = %v, want NO [OVERQUOTA]", last)
	}
	if len(appended) == 0 {
		t.Fatal("the store was full before the first APPEND")
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT after the store filled: %v", err)
	}
	if got := viewUIDs(t, c); !slices.Equal(got, appended) {
		t.Errorf("INBOX holds %v, the acknowledged APPENDs were %v", got, appended)
	}
	// The full store was logged as an error, as it should be; no other.
	e.logs.mu.Lock()
	for _, msg := range e.logs.errors {
		if !strings.Contains(msg, "storage full") && !strings.Contains(msg, "batch failed") {
			t.Errorf("unexpected error log: %s", msg)
		}
	}
	e.logs.errors = nil
	e.logs.mu.Unlock()
}

// injectBodyFault makes the store fail, as a broken disk or database
// would, every write of a message that contains marker; other writes go
// on. Only tests reach under the store like this: a trigger added through
// a connection of their own (the sqlite3 driver is mailstore's).
func injectBodyFault(t *testing.T, e *testEnv, marker string) {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+e.store.Path()+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	_, err = db.ExecContext(context.Background(), fmt.Sprintf(
		`CREATE TRIGGER test_fault BEFORE INSERT ON bodies WHEN instr(NEW.raw, CAST('%s' AS BLOB)) > 0
		BEGIN SELECT RAISE(ABORT, 'injected disk fault'); END`, marker))
	if err != nil {
		t.Fatalf("inject the fault: %v", err)
	}
}

// An APPEND the store fails for a cause other than a full disk is
// NO [SERVERBUG] (issue 6), and the cause is logged as an error; nothing
// is stored, and the session and the server go on serving.
func TestAppendStoreFailure(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	injectBodyFault(t, e, "X-Inject: fault")
	c := e.login(t, nil)
	watcher := e.selectInbox(t, nil)

	appendMsg := func(msg string) (*imap.AppendData, error) {
		cmd := c.Append("INBOX", int64(len(msg)), nil)
		if _, err := cmd.Write([]byte(msg)); err != nil {
			t.Fatalf("APPEND: write: %v", err)
		}
		if err := cmd.Close(); err != nil {
			t.Fatalf("APPEND: close: %v", err)
		}
		return cmd.Wait()
	}
	_, err := appendMsg("X-Inject: fault\r\nSubject: doomed\r\n\r\nbody\r\n")
	var ie *imap.Error
	if !errors.As(err, &ie) || ie.Type != imap.StatusResponseTypeNo || ie.Code != imap.ResponseCodeServerBug {
		t.Fatalf("APPEND the store fails = %v, want NO [SERVERBUG]", err)
	}
	if strings.Contains(ie.Text, "injected") {
		t.Errorf("APPEND reply %q shows the client the internal cause", ie.Text)
	}

	// The same session appends the next message; another session sees it.
	data, err := appendMsg("Subject: fine\r\n\r\nbody\r\n")
	if err != nil {
		t.Fatalf("APPEND after a failed one = %v", err)
	}
	if got, want := viewUIDs(t, watcher), []imap.UID{data.UID}; !slices.Equal(got, want) {
		t.Errorf("INBOX holds %v after the failed APPEND and a good one, want %v", got, want)
	}
	st, err := c.Status("INBOX", &imap.StatusOptions{NumMessages: true}).Wait()
	if err != nil || st.NumMessages == nil || *st.NumMessages != 1 {
		t.Errorf("STATUS INBOX = %+v, %v; want 1 message", st, err)
	}
	// The failure was logged as an error, as it should be; no other.
	e.logs.mu.Lock()
	var seen bool
	for _, msg := range e.logs.errors {
		if msg == "store failure" {
			seen = true
		} else {
			t.Errorf("unexpected error log: %s", msg)
		}
	}
	if !seen {
		t.Errorf("the store failure was not logged as an error; logged: %q", e.logs.errors)
	}
	e.logs.errors = nil
	e.logs.mu.Unlock()
}
