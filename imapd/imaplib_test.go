package imapd

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"

	"pushmail/mailstore"
)

// imaplibFixtures are the messages of testdata/interop/imaplib_families.py,
// by the names the script uses.
var imaplibFixtures = map[string][]byte{
	"m1": testMessage(1),
	"mp": []byte("From: Carol <carol@example.org>\r\nTo: alice@localhost\r\nSubject: multipart\r\nMessage-ID: <multipart@example.org>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"b1\"\r\n\r\npreamble\r\n--b1\r\nContent-Type: text/plain; charset=us-ascii\r\n\r\nFirst part.\r\n--b1\r\nContent-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\nContent-Disposition: attachment; filename=\"a.bin\"\r\n\r\nAAECAwQF\r\n--b1--\r\n"),
	"u8": []byte("From: Dan <dan@example.org>\r\nTo: alice@localhost\r\nSubject: =?UTF-8?Q?Gr=C3=BC=C3=9Fe?=\r\nMessage-ID: <utf8@example.org>\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\nCafé crème\r\n"),
	"ap": []byte("From: alice@localhost\r\nTo: bob@example.org\r\nSubject: appended draft\r\nMessage-ID: <appended@localhost>\r\n\r\nAppended by imaplib.\r\n"),
	"m5": []byte("From: alice@localhost\r\nSubject: to be expunged\r\n\r\nGone soon.\r\n"),
	"m6": []byte("From: Erin <erin@example.org>\r\nSubject: pushed in IDLE\r\nMessage-ID: <idle@example.org>\r\n\r\nArrived while idling.\r\n"),
}

// TestPythonImaplibCommandFamilies runs every command family through
// Python's imaplib (testdata/interop/imaplib_families.py) over plain TCP,
// STARTTLS and implicit TLS, the server's certificate verified against a
// test CA. The script checks what imaplib was told; at each of its
// checkpoints this test checks what the store holds: mailboxes,
// subscriptions, every message's UID, bytes and flags. A reply that says
// OK while the store disagrees fails here.
func TestPythonImaplibCommandFamilies(t *testing.T) {
	t.Parallel()
	python := lookTool(t, "python3", "python3")
	script, err := filepath.Abs("testdata/interop/imaplib_families.py")
	if err != nil {
		t.Fatal(err)
	}
	for _, mode := range []string{"plain", "starttls", "imaps"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			env := newTLSEnv(t)
			addr := env.addr
			if mode == "imaps" {
				addr = env.tlsAddr
			}
			testImaplibFamilies(t, env, python, script, mode, addr)
		})
	}
}

func testImaplibFamilies(t *testing.T, env *tlsEnv, python, script, mode, addr string) {
	fx := imaplibFixtures
	fixtures := map[string]string{}
	for name, raw := range fx {
		fixtures[name] = base64.StdEncoding.EncodeToString(raw)
	}
	js, err := json.Marshal(fixtures)
	if err != nil {
		t.Fatal(err)
	}
	fixtureFile := filepath.Join(t.TempDir(), "fixtures.json")
	if err := os.WriteFile(fixtureFile, js, 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"m1", "mp", "u8"} {
		env.deliver(t, fx[name])
	}
	var defaults []string
	for _, mb := range mailstore.DefaultMailboxes {
		defaults = append(defaults, mb.Name)
	}
	none := map[imap.UID][]byte{}
	var subscribedBefore []string

	hooks := map[string]func(){
		"authenticate": func() {
			// AUTHENTICATE PLAIN and ENABLE UTF8=ACCEPT; CREATE Grüße, unquoted.
			env.checkMailboxes(t, append(defaults, "Grüße")...)
			env.checkStored(t, "INBOX", map[imap.UID][]byte{1: fx["m1"], 2: fx["mp"], 3: fx["u8"]})
			var err error
			subscribedBefore, err = env.store.Subscriptions(context.Background(), env.user.ID)
			if err != nil {
				t.Fatal(err)
			}
		},
		"mailboxes": func() {
			// CREATE Saved, Projects/2024 (and its parent); Old created,
			// renamed Older, deleted.
			env.checkMailboxes(t, append(defaults, "Grüße", "Saved", "Projects", "Projects/2024")...)
			env.checkStored(t, "Saved", none)
		},
		"subscriptions": func() {
			got, err := env.store.Subscriptions(context.Background(), env.user.ID)
			if err != nil {
				t.Fatal(err)
			}
			want := append(append([]string(nil), subscribedBefore...), "Saved")
			if !sameStrings(got, want) {
				t.Errorf("subscriptions on the server: %q, want %q", got, want)
			}
		},
		"append": func() {
			env.checkStored(t, "INBOX", map[imap.UID][]byte{1: fx["m1"], 2: fx["mp"], 3: fx["u8"], 4: fx["ap"]})
			env.checkFlags(t, "INBOX", map[imap.UID][]string{1: nil, 2: nil, 3: nil, 4: {`\Flagged`, "$Label1"}})
			want := time.Date(2020, 5, 6, 10, 8, 9, 0, time.UTC)
			if got := env.internalDate(t, "INBOX", 4); !got.Equal(want) {
				t.Errorf("APPEND's date: INTERNALDATE %v on the server, want %v", got, want)
			}
		},
		"examine": func() {
			// A BODY[] fetch under EXAMINE and a refused STORE change
			// nothing; nor does CLOSE after EXAMINE.
			env.checkStored(t, "INBOX", map[imap.UID][]byte{1: fx["m1"], 2: fx["mp"], 3: fx["u8"], 4: fx["ap"]})
			env.checkFlags(t, "INBOX", map[imap.UID][]string{1: nil, 2: nil, 3: nil, 4: {`\Flagged`, "$Label1"}})
		},
		"fetch": func() {
			// BODY.PEEK sets nothing, BODY[TEXT] sets \Seen.
			env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Seen`}, 2: nil, 3: nil, 4: {`\Flagged`, "$Label1"}})
		},
		"store": func() {
			env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Seen`}, 2: {`\Answered`}, 3: {`\Seen`, "$Work"}, 4: {`\Flagged`, "$Label1"}})
		},
		"copymove": func() {
			env.checkStored(t, "INBOX", map[imap.UID][]byte{1: fx["m1"], 4: fx["ap"]})
			env.checkStored(t, "Saved", map[imap.UID][]byte{1: fx["m1"], 2: fx["mp"], 3: fx["u8"]})
			env.checkStored(t, "Projects/2024", map[imap.UID][]byte{1: fx["m1"], 2: fx["mp"]})
			// Copies and moves keep their flags (RFC 9051 §6.4.7).
			env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Seen`, `\Flagged`}, 4: {`\Flagged`, "$Label1"}})
			env.checkFlags(t, "Saved", map[imap.UID][]string{1: {`\Seen`, `\Flagged`}, 2: {`\Answered`}, 3: {`\Seen`, "$Work"}})
			env.checkFlags(t, "Projects/2024", map[imap.UID][]string{1: {`\Seen`, `\Flagged`}, 2: {`\Answered`}})
		},
		"expunge": func() {
			// EXPUNGE took UID 1; UID EXPUNGE 5 took 5 and not 4, though
			// both were \Deleted.
			env.checkStored(t, "INBOX", map[imap.UID][]byte{4: fx["ap"]})
			env.checkFlags(t, "INBOX", map[imap.UID][]string{4: {`\Flagged`, "$Label1"}})
		},
		"close": func() {
			env.checkMailboxes(t, append(defaults, "Grüße", "Old Saved", "Projects", "Projects/2024")...)
			env.checkStored(t, "Old Saved", map[imap.UID][]byte{1: fx["m1"], 3: fx["u8"]})
			env.checkStored(t, "INBOX", map[imap.UID][]byte{4: fx["ap"]})
			env.checkStored(t, "Projects/2024", map[imap.UID][]byte{1: fx["m1"], 2: fx["mp"]})
			env.checkFlags(t, "Projects/2024", map[imap.UID][]string{1: {`\Seen`, `\Flagged`, `\Deleted`}, 2: {`\Answered`}})
		},
		"idle": func() {
			env.deliver(t, fx["m6"])
			inbox := env.mailbox(t, "INBOX")
			if _, err := env.store.StoreFlags(context.Background(), inbox.ID, mailstore.UIDSetOf(4), mailstore.FlagsAdd, []string{`\Seen`}, 0); err != nil {
				t.Fatalf("StoreFlags() = %v", err)
			}
		},
	}
	host, port, _ := net.SplitHostPort(addr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, python, script, host, port, mode, env.pki.caFile, testUser, testPassword, fixtureFile)
	runSynced(t, cmd, hooks)

	// LOGOUT changed nothing.
	env.checkMailboxes(t, append(defaults, "Grüße", "Old Saved", "Projects", "Projects/2024")...)
	env.checkStored(t, "INBOX", map[imap.UID][]byte{4: fx["ap"], 6: fx["m6"]})
	env.checkFlags(t, "INBOX", map[imap.UID][]string{4: {`\Flagged`, `\Seen`, "$Label1"}, 6: nil})
	env.checkStored(t, "Old Saved", map[imap.UID][]byte{1: fx["m1"], 3: fx["u8"]})
	env.checkStored(t, "Projects/2024", map[imap.UID][]byte{1: fx["m1"], 2: fx["mp"]})
	for _, box := range []string{"Sent", "Drafts", "Trash", "Junk", "Archive", "Grüße", "Projects"} {
		env.checkStored(t, box, none)
	}
}

// sameStrings reports whether a and b hold the same strings, in any
// order.
func sameStrings(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	count := map[string]int{}
	for _, s := range a {
		count[s]++
	}
	for _, s := range b {
		count[s]--
		if count[s] < 0 {
			return false
		}
	}
	return true
}
