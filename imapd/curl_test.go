package imapd

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
)

// TestCurl drives the server with curl's IMAP URLs (RFC 5092 as curl
// reads them), over plain TCP, STARTTLS (--ssl-reqd) and imaps://, the
// certificate verified against a test CA: listing, fetching by UID and
// section, searching, uploading (APPEND) and custom requests (-X) that
// store flags, expunge and examine. After each step the store must hold
// exactly what curl was told it holds.
func TestCurl(t *testing.T) {
	t.Parallel()
	curl := lookTool(t, "curl", "curl")
	for _, mode := range []string{"plain", "starttls", "imaps"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testCurl(t, curl, mode)
		})
	}
}

func testCurl(t *testing.T, curl, mode string) {
	env := newTLSEnv(t)
	want := env.deliverN(t, 3)
	if _, err := env.store.CreateMailbox(context.Background(), env.user.ID, "INBOX/Lists", ""); err != nil {
		t.Fatal(err)
	}
	base := "imap://" + env.addr
	if mode == "imaps" {
		base = "imaps://" + env.tlsAddr
	}
	// run runs curl on a URL and returns what it wrote to stdout.
	run := func(url string, args ...string) []byte {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		args = append([]string{"-sS", "-v", "--max-time", "20", "--cacert", env.pki.caFile,
			"-u", testUser + ":" + testPassword}, args...)
		if mode == "starttls" {
			args = append(args, "--ssl-reqd")
		}
		cmd := exec.CommandContext(ctx, curl, append(args, base+url)...)
		var stdout, stderr bytes.Buffer
		cmd.Stdout, cmd.Stderr = &stdout, &stderr
		if err := cmd.Run(); err != nil {
			t.Fatalf("curl %s %s: %v\n%s", strings.Join(args, " "), url, err, stderr.String())
		}
		if mode == "starttls" && !strings.Contains(stderr.String(), " STARTTLS\r\n") && !strings.Contains(stderr.String(), " STARTTLS\n") {
			t.Errorf("curl --ssl-reqd %s sent no STARTTLS:\n%s", url, stderr.String())
		}
		return stdout.Bytes()
	}
	mustContain := func(what string, out []byte, lines ...string) {
		t.Helper()
		for _, l := range lines {
			if !bytes.Contains(out, []byte(l+"\r\n")) {
				t.Errorf("%s: output lacks %q:\n%s", what, l, out)
			}
		}
	}

	// Listing: the top level, then INBOX's children (a reference without
	// its separator is read as the level below it, RFC 9051 §6.3.9).
	mustContain("list /", run("/"),
		`* LIST (\HasChildren) "/" INBOX`, `* LIST (\HasNoChildren) "/" "INBOX/Lists"`,
		`* LIST (\HasNoChildren \Sent) "/" "Sent"`, `* LIST (\HasNoChildren \Trash) "/" "Trash"`)
	mustContain("list /INBOX", run("/INBOX"), `* LIST (\HasNoChildren) "/" "INBOX/Lists"`)

	// Fetching: curl writes the literal as it came, byte for byte.
	if got := run("/INBOX;UID=2"); !bytes.Equal(got, want[2]) {
		t.Errorf("INBOX;UID=2: curl got %q, the store holds %q", got, want[2])
	}
	if got := run("/INBOX/;UID=3/;SECTION=TEXT"); string(got) != "Body of message 3.\r\n" {
		t.Errorf("INBOX/;UID=3/;SECTION=TEXT: curl got %q", got)
	}
	mustContain("search", run("/INBOX?SUBJECT%20%22test%203%22"), "* SEARCH 3")
	env.checkStored(t, "INBOX", want)
	// BODY[] and BODY[TEXT] set \Seen (RFC 9051 §6.4.5).
	env.checkFlags(t, "INBOX", map[imap.UID][]string{1: nil, 2: {`\Seen`}, 3: {`\Seen`}})

	// Upload: APPEND, CRLF and 8-bit kept as sent.
	upload := []byte("From: curl@localhost\r\nTo: alice@localhost\r\nSubject: uploaded\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nGrüße aus curl.\r\n")
	file := filepath.Join(t.TempDir(), "upload.eml")
	if err := os.WriteFile(file, upload, 0o600); err != nil {
		t.Fatal(err)
	}
	run("/INBOX", "-T", file)
	want[4] = upload
	env.checkStored(t, "INBOX", want)
	if got := run("/INBOX;UID=4"); !bytes.Equal(got, upload) {
		t.Errorf("uploaded message fetched back as %q, want %q", got, upload)
	}

	// Custom requests on the selected INBOX: UID STORE, then UID EXPUNGE
	// of one \Deleted message.
	mustContain("UID STORE", run("/INBOX", "-X", `UID STORE 1 +FLAGS (\Flagged)`), `* 1 FETCH (UID 1 FLAGS (\Flagged))`)
	run("/INBOX", "-X", `UID STORE 2,3 +FLAGS.SILENT (\Deleted)`)
	mustContain("UID EXPUNGE", run("/INBOX", "-X", "UID EXPUNGE 2"), "* 2 EXPUNGE")
	delete(want, 2)
	env.checkStored(t, "INBOX", want)
	env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Flagged`}, 3: {`\Seen`, `\Deleted`}, 4: {`\Seen`}})
	run("/INBOX", "-X", `UID STORE 3 -FLAGS.SILENT (\Deleted)`)

	// EXAMINE and STATUS with no mailbox in the URL: read only.
	mustContain("EXAMINE", run("/", "-X", "EXAMINE INBOX"), "* 3 EXISTS")
	mustContain("STATUS", run("/", "-X", "STATUS INBOX (MESSAGES UIDNEXT)"), "* STATUS INBOX (MESSAGES 3 UIDNEXT 5)")
	env.checkStored(t, "INBOX", want)
	env.checkFlags(t, "INBOX", map[imap.UID][]string{1: {`\Flagged`}, 3: {`\Seen`}, 4: {`\Seen`}})
}
