package imapd

import (
	"context"
	"net"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"testing"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// TestPythonImaplibCondStore runs CONDSTORE and QRESYNC (RFC 7162)
// through Python's imaplib (testdata/interop/imaplib_condstore.py):
// ENABLE, SELECT's HIGHESTMODSEQ, STORE's MODSEQ, FETCH CHANGEDSINCE,
// STORE UNCHANGEDSINCE with [MODIFIED], then a reconnect with SELECT
// (QRESYNC …) and UID FETCH (CHANGEDSINCE … VANISHED) after this test
// expunged, reflagged and delivered while the client was away. The
// script checks what imaplib was told; this test checks the store at
// each checkpoint.
func TestPythonImaplibCondStore(t *testing.T) {
	t.Parallel()
	python := lookTool(t, "python3", "python3")
	script, err := filepath.Abs("testdata/interop/imaplib_condstore.py")
	if err != nil {
		t.Fatal(err)
	}
	env := newTestEnv(t, envOptions{})
	for i := range 5 {
		env.deliver(t, testMessage(i))
	}
	inbox := env.mailbox(t, "INBOX")
	const expunged, flagged = 3, 4
	newUID := mailstore.UID(6)
	ctx := context.Background()
	host, port, _ := net.SplitHostPort(env.addr)
	cmd := exec.Command(python, script, host, port, testUser, testPassword,
		strconv.Itoa(expunged), strconv.Itoa(flagged), strconv.Itoa(int(newUID)))
	runSynced(t, cmd, map[string]func(){
		"stored": func() {
			// \Answered went to 2 only: 1 had changed since the
			// client's modseq (RFC 7162 §3.1.3).
			env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Seen`}, 2: {`\Answered`}, 3: {}})
		},
		"away": func() {
			if _, err := env.store.StoreFlags(ctx, inbox.ID, mailstore.UIDSetOf(expunged), mailstore.FlagsAdd, []string{mailstore.FlagDeleted}, 0); err != nil {
				t.Fatal(err)
			}
			if _, err := env.store.Expunge(ctx, inbox.ID, mailstore.UIDSetOf(expunged), 0); err != nil {
				t.Fatal(err)
			}
			if _, err := env.store.StoreFlags(ctx, inbox.ID, mailstore.UIDSetOf(flagged), mailstore.FlagsAdd, []string{mailstore.FlagFlagged}, 0); err != nil {
				t.Fatal(err)
			}
			if got := env.deliver(t, testMessage(6)); got != newUID {
				t.Fatalf("delivered UID %d, want %d", got, newUID)
			}
		},
		"resynced": func() {
			// The resync read only: the store is as the test left it.
			if got, want := env.storeUIDs(t, "INBOX"), []imap.UID{1, 2, 4, 5, 6}; !slices.Equal(got, want) {
				t.Errorf("INBOX UIDs on the server = %v, want %v", got, want)
			}
			env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Seen`}, 2: {`\Answered`}, 4: {`\Flagged`}, 5: {}, 6: {}})
		},
	})
}
