package imapd

import (
	"bytes"
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
