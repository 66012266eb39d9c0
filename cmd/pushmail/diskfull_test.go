package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-smtp"

	"pushmail/mailstore"
)

// healthz returns /healthz's status and body.
func healthz(t *testing.T, srv *server) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + srv.addr("http") + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// storeStats opens the running server's store beside it, as the CLI does,
// and counts what it holds.
func storeStats(t *testing.T, data string) mailstore.Stats {
	t.Helper()
	s, err := mailstore.Open(t.Context(), filepath.Join(data, dbFile), mailstore.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st, err := s.Stats(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// The acceptance: on a file system that is really full up to the
// reserve, deliveries are refused, SMTP ones at MAIL with 452 4.3.1
// before any data is sent, and nothing is half-stored; /healthz says
// degraded, and over IMAP and the CLI the writes that free space succeed:
// DELETE of a mailbox, "pushmail user del", STORE \Deleted and EXPUNGE.
// Once they have freed space, /healthz is ok and mail flows.
func TestFullDiskKeepsRoomToDelete(t *testing.T) {
	if testing.Short() {
		t.Skip("builds and runs the binary")
	}
	data := t.TempDir()
	if err := syscall.Mount("tmpfs", data, "tmpfs", 0, "size=32m"); err != nil {
		t.Skipf("cannot mount a tmpfs (needs root; mailstore's TestReserveFromStatfs covers the check on any disk): %v", err)
	}
	// Registered after TempDir's removal and before the server's stop, so
	// it runs after the server has exited and before the removal.
	t.Cleanup(func() {
		if err := syscall.Unmount(data, 0); err != nil {
			t.Errorf("unmount tmpfs %s: %v", data, err)
		}
	})
	const reserve = 8 << 20
	const maxMessage = 1 << 20
	srv := startServer(t, data, "--min-free-bytes", fmt.Sprint(reserve), "--max-message-bytes", fmt.Sprint(maxMessage))
	cli(t, "secret\n", "user", "add", "alice@localhost", "--data", data, "--password-stdin")
	cli(t, "secret\n", "user", "add", "bob@localhost", "--data", data, "--password-stdin")
	sendSMTP(t, srv.addr("smtp"), "bob@localhost", "for bob")
	if code, body := healthz(t, srv); code != 200 || body != "ok\n" {
		t.Fatalf("/healthz before = %d %q, want 200 ok", code, body)
	}

	c, _ := inbox(t, srv.addr("imap"), "alice@localhost", "secret")
	if err := c.Create("Projects", nil).Wait(); err != nil {
		t.Fatalf("CREATE Projects: %v", err)
	}
	appendMsg := func(mailbox string, size int) error {
		msg := "Subject: appended\r\n\r\n" + strings.Repeat(strings.Repeat("a", 62)+"\r\n", size/64)
		cmd := c.Append(mailbox, int64(len(msg)), nil)
		if _, err := io.WriteString(cmd, msg); err != nil {
			return err
		}
		if err := cmd.Close(); err != nil {
			return err
		}
		_, err := cmd.Wait()
		return err
	}
	if err := appendMsg("Projects", 100<<10); err != nil {
		t.Fatalf("APPEND to Projects: %v", err)
	}
	freeBytes := func() int64 {
		t.Helper()
		var st syscall.Statfs_t
		if err := syscall.Statfs(data, &st); err != nil {
			t.Fatal(err)
		}
		return int64(st.Bavail) * int64(st.Bsize)
	}

	// Fill the disk over SMTP until the server refuses: at MAIL, once a
	// message of the largest size (with its trace fields, twice over
	// counting the write-ahead log) would not fit above the reserve.
	body := strings.Repeat(strings.Repeat("0123456789abcdef", 4)+"\r\n", 4<<10) // 264 KiB
	delivered := 0
	for {
		if delivered > 200 {
			t.Fatal("200 messages of 264 KiB delivered to a 32 MiB file system")
		}
		msg := fmt.Sprintf("From: s@example.org\r\nTo: alice@localhost\r\nSubject: fill %d\r\n\r\n%s\r\n", delivered, body)
		err := sendSMTPMessage(srv.addr("smtp"), "alice@localhost", msg)
		if err == nil {
			delivered++
			continue
		}
		// 452 4.3.1 is only MAIL's reply (DATA's is 451 4.3.0).
		if !isReply(err, 452, "4.3.1") {
			t.Fatalf("delivery #%d on a filling disk = %v, want 452 4.3.1 at MAIL", delivered, err)
		}
		break
	}
	if delivered < 10 {
		t.Fatalf("only %d messages delivered before the first refusal", delivered)
	}
	free := freeBytes()
	t.Logf("first refusal at MAIL after %d messages, %d bytes free", delivered, free)
	// The store's measure: a message of max-message-bytes plus 64 KiB for
	// trace fields, twice (log and database).
	const watermark = reserve + 2*(maxMessage+64<<10)
	if free > watermark || free < reserve-(1<<20) {
		t.Errorf("first refusal at MAIL with %d bytes free, want between the reserve, %d, and %d", free, reserve, watermark)
	}
	// Nothing half-stored: INBOX holds what got 250, the store agrees.
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != uint32(delivered) {
		t.Errorf("SELECT INBOX at the watermark = %v messages, %v; want %d", sel, err, delivered)
	}
	if got := storeStats(t, data); got.Messages != int64(delivered+2) {
		t.Errorf("store holds %d messages at the watermark, want %d (alice's, Projects', bob's)", got.Messages, delivered+2)
	}
	code, hbody := healthz(t, srv)
	if code != 200 || !strings.HasPrefix(hbody, "degraded: ") || !strings.Contains(hbody, "reserve") {
		t.Errorf("/healthz at the watermark = %d %q, want 200 degraded naming the reserve", code, hbody)
	}

	// Smaller writes still fit above the reserve: APPEND fills the rest,
	// and is refused at the reserve itself.
	var ie *imap.Error
	appended := 0
	for {
		if appended > 20 {
			t.Fatalf("%d APPENDs of 264 KiB past the watermark, want NO [OVERQUOTA] within 2 MiB", appended)
		}
		err := appendMsg("INBOX", 264<<10)
		if err == nil {
			appended++
			continue
		}
		if !errors.As(err, &ie) || ie.Code != imap.ResponseCodeOverQuota {
			t.Fatalf("APPEND #%d at the watermark = %v, want success or NO [OVERQUOTA]", appended, err)
		}
		break
	}
	free = freeBytes()
	t.Logf("APPEND refused after %d more messages, %d bytes free", appended, free)
	if free > reserve+(2<<20) || free < reserve-(1<<20) {
		t.Errorf("APPEND refused with %d bytes free, want about the reserve, %d", free, reserve)
	}
	delivered += appended
	if err := sendSMTPMessage(srv.addr("smtp"), "alice@localhost", "Subject: small\r\n\r\nsmall\r\n"); !isReply(err, 452, "4.3.1") {
		t.Errorf("SMTP at the reserve = %v, want 452 4.3.1", err)
	}

	// The writes that free space work at the watermark.
	if err := c.Delete("Projects").Wait(); err != nil {
		t.Errorf("DELETE Projects at the watermark: %v", err)
	}
	cli(t, "", "user", "del", "bob@localhost", "--data", data)
	var all imap.SeqSet
	all.AddRange(1, uint32(delivered))
	if err := c.Store(all, &imap.StoreFlags{
		Op: imap.StoreFlagsAdd, Silent: true, Flags: []imap.Flag{imap.FlagDeleted},
	}, nil).Close(); err != nil {
		t.Fatalf("STORE \\Deleted at the watermark: %v", err)
	}
	if seqs, err := c.Expunge().Collect(); err != nil || len(seqs) != delivered {
		t.Fatalf("EXPUNGE at the watermark = %d expunged, %v; want %d", len(seqs), err, delivered)
	}
	if got := storeStats(t, data); got.Messages != 0 || got.Users != 1 || got.MessageBytes != 0 {
		t.Errorf("store after the deletes = %d messages (%d bytes), %d users; want 0, 0, 1", got.Messages, got.MessageBytes, got.Users)
	}

	// Space is back: healthy again, and mail flows.
	if code, body := healthz(t, srv); code != 200 || body != "ok\n" {
		t.Errorf("/healthz after freeing space = %d %q, want 200 ok", code, body)
	}
	sendSMTP(t, srv.addr("smtp"), "alice@localhost", "room again")
	if err := appendMsg("INBOX", 256<<10); err != nil {
		t.Errorf("APPEND after freeing space: %v", err)
	}
	if sel, err := c.Select("INBOX", nil).Wait(); err != nil || sel.NumMessages != 2 {
		t.Errorf("SELECT INBOX after freeing space = %v, %v; want 2 messages", sel, err)
	}
}

// /healthz on any disk: a reserve larger than the disk makes it say
// degraded, with the reason, and still 200; the store still answers.
func TestHealthzDegradedAtReserve(t *testing.T) {
	t.Parallel()
	store, err := mailstore.Open(t.Context(), filepath.Join(t.TempDir(), "m.db"), mailstore.Options{MinFreeBytes: 1 << 60})
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	srv := httptest.NewServer(adminHandler(store, newRegistry(), ""))
	defer srv.Close()
	code, body := get(t, srv.URL+"/healthz", "")
	if code != 200 || !strings.HasPrefix(body, "degraded: deliveries refused: mail storage full: ") || !strings.Contains(body, "reserve 1024.0 PiB") {
		t.Errorf("/healthz below the reserve = %d %q, want 200 degraded naming the reserve", code, body)
	}
}

// sendSMTPMessage sends msg to rcpt over SMTP at addr, from
// s@example.org, and returns the error of the first command refused.
func sendSMTPMessage(addr, rcpt, msg string) error {
	sc, err := smtp.Dial(addr)
	if err != nil {
		return err
	}
	defer sc.Close()
	return sc.SendMail("s@example.org", []string{rcpt}, strings.NewReader(msg))
}

// isReply reports whether err is the SMTP reply code with the enhanced
// code enh ("4.3.1").
func isReply(err error, code int, enh string) bool {
	var se *smtp.SMTPError
	if !errors.As(err, &se) {
		return false
	}
	e := se.EnhancedCode
	return se.Code == code && fmt.Sprintf("%d.%d.%d", e[0], e[1], e[2]) == enh
}
