package pop3d

import (
	"bufio"
	"context"
	"net"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"pushmail/imapd"
)

// DELE and QUIT over POP3 are an expunge like any other: an IMAP session
// in IDLE on the same INBOX is told "* n EXPUNGE" for each removed
// message, without polling, and its view then matches the store.
func TestDeleQuitPushesExpungeToIdle(t *testing.T) {
	t.Parallel()
	e := newTestEnv(t, envOptions{})
	for i := range 3 {
		e.deliver(t, testMessage(i))
	}
	imapSrv := imapd.New(e.store, imapd.Options{Logger: e.srv.opts.Logger})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- imapSrv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitTimeout)
		defer cancel()
		if err := imapSrv.Shutdown(ctx); err != nil {
			t.Errorf("imapd Shutdown() = %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("imapd Serve() = %v", err)
		}
	})

	conn, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if err := conn.SetDeadline(time.Now().Add(waitTimeout)); err != nil {
		t.Fatal(err)
	}
	r := bufio.NewReader(conn)
	readUntil := func(prefix string) []string {
		t.Helper()
		var lines []string
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				t.Fatalf("IMAP read: %v (after %q)", err, lines)
			}
			line = strings.TrimRight(line, "\r\n")
			lines = append(lines, line)
			if strings.HasPrefix(line, prefix) {
				return lines
			}
		}
	}
	send := func(line string) {
		t.Helper()
		if _, err := conn.Write([]byte(line + "\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	readUntil("* OK")
	send("a LOGIN " + testUser + " " + testPassword)
	readUntil("a OK")
	send("b SELECT INBOX")
	readUntil("b OK")
	send("c IDLE")
	readUntil("+ ")

	p := e.login(t)
	p.cmd("DELE 1", `^\+OK`)
	p.cmd("DELE 3", `^\+OK`)
	// Nothing before QUIT: DELE only marks.
	e.holds(t, 1, 2, 3)
	p.cmd("QUIT", `^\+OK`)

	expunge := regexp.MustCompile(`^\* (\d+) EXPUNGE$`)
	var got []string
	for len(got) < 2 {
		lines := readUntil("* ")
		line := lines[len(lines)-1]
		if expunge.MatchString(line) {
			got = append(got, line)
		} else if !strings.HasPrefix(line, "* OK") {
			t.Fatalf("IDLE got %q, want EXPUNGE responses", line)
		}
	}
	// Messages 1 and 3 of 1, 2, 3: "3 then 1", or "1 then 2".
	if s := strings.Join(got, ","); s != "* 3 EXPUNGE,* 1 EXPUNGE" && s != "* 1 EXPUNGE,* 2 EXPUNGE" {
		t.Errorf("IDLE got %q, want the EXPUNGEs of messages 1 and 3", got)
	}
	send("DONE")
	readUntil("c OK")
	send("d UID SEARCH ALL")
	lines := readUntil("d OK")
	if !slices.Contains(lines, "* SEARCH 2") {
		t.Errorf("UID SEARCH ALL after the POP3 QUIT = %q, want * SEARCH 2", lines)
	}
	e.holds(t, 2)
}
