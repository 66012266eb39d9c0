package imapd

import (
	"encoding/json"
	"net"
	"os/exec"
	"testing"

	"github.com/emersion/go-imap/v2"
)

// sortImaplibScript drives SORT and THREAD through imaplib's own sort()
// and thread() methods and their UID forms, and prints what imaplib
// returned as JSON.
const sortImaplibScript = `
import imaplib, json, sys
host, port, user, password = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
M = imaplib.IMAP4(host, port)
M.login(user, password)
typ, data = M.capability()
caps = sorted(c for c in data[0].decode().split() if c.startswith(("SORT", "THREAD", "ESORT")))
M.select("INBOX")
out = {"caps": caps}
for name, call in [
    ("sort_date", lambda: M.sort("(DATE)", "UTF-8", "ALL")),
    ("sort_reverse_subject", lambda: M.sort("(REVERSE SUBJECT)", "UTF-8", "ALL")),
    ("uid_sort_from", lambda: M.uid("SORT", "(FROM)", "UTF-8", "ALL")),
    ("thread_refs", lambda: M.thread("REFERENCES", "UTF-8", "ALL")),
    ("uid_thread_subject", lambda: M.uid("THREAD", "ORDEREDSUBJECT", "UTF-8", "ALL")),
    ("badcharset", lambda: M.sort("(DATE)", "KOI8-R", "ALL")),
]:
    typ, data = call()
    out[name] = [typ] + [d.decode() if isinstance(d, bytes) else d for d in data]
M.logout()
print(json.dumps(out))
`

// TestPythonImaplibSortThread runs SORT and THREAD from Python's imaplib,
// which has methods for both, and checks what it parsed and that the
// store still holds the messages unchanged.
func TestPythonImaplibSortThread(t *testing.T) {
	t.Parallel()
	python := lookTool(t, "python3", "python3")
	env := newTestEnv(t, envOptions{})
	msgs := map[imap.UID][]byte{}
	for _, m := range []string{
		"From: Zed <zed@example.org>\r\nSubject: Party\r\nDate: Sat, 1 Jan 2011 10:00:00 +0000\r\nMessage-ID: <a@x>\r\n\r\n1\r\n",
		"From: amy@example.org\r\nSubject: Re: Party\r\nDate: Sat, 1 Jan 2011 09:00:00 -0300\r\nMessage-ID: <b@x>\r\nIn-Reply-To: <a@x>\r\n\r\n2\r\n",
		"From: Bob <bob@example.org>\r\nSubject: [list] Apples\r\nDate: Fri, 31 Dec 2010 23:00:00 +0000\r\nMessage-ID: <c@x>\r\n\r\n3\r\n",
	} {
		uid := env.deliver(t, []byte(m))
		msgs[imap.UID(uid)] = []byte(m)
	}
	host, port, err := net.SplitHostPort(env.addr)
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.CommandContext(t.Context(), python, "-c", sortImaplibScript, host, port, testUser, testPassword)
	stdout, err := cmd.Output()
	if err != nil {
		var stderr []byte
		if ee, ok := err.(*exec.ExitError); ok {
			stderr = ee.Stderr
		}
		t.Fatalf("python3 = %v\n%s", err, stderr)
	}
	var got map[string]any
	if err := json.Unmarshal(stdout, &got); err != nil {
		t.Fatalf("script output %q: %v", stdout, err)
	}
	want := map[string]any{
		"caps": []any{"ESORT", "SORT", "SORT=DISPLAY", "THREAD=ORDEREDSUBJECT", "THREAD=REFERENCES"},
		// 3 (Dec 31), 1 (10:00Z), 2 (12:00Z).
		"sort_date":            []any{"OK", "3 1 2"},
		"sort_reverse_subject": []any{"OK", "1 2 3"},
		"uid_sort_from":        []any{"OK", "2 3 1"},
		"thread_refs":          []any{"OK", "(3)(1 2)"},
		"uid_thread_subject":   []any{"OK", "(3)(1 2)"},
		"badcharset":           []any{"NO", "[BADCHARSET (US-ASCII UTF-8)] Unsupported charset"},
	}
	gj, _ := json.MarshalIndent(got, "", "  ")
	wj, _ := json.MarshalIndent(want, "", "  ")
	if string(gj) != string(wj) {
		t.Errorf("imaplib saw\n%s\nwant\n%s", gj, wj)
	}
	env.checkStored(t, "INBOX", msgs)
}
